/**
 * Dynamic batching for the server: one queue for every endpoint, folded into plan runs. A plan run computes every
 * model for every image, so one run answers requests for any model and for the ensemble at once.
 *
 * - Requests that arrive while a run is busy join the next run, up to `maxBatchSize` images. With
 *   `maxBatchDelayMs` > 0 a run waits at most that long, counted from the *oldest* queued request's arrival, and
 *   starts at once when the batch is full. With 0 it starts as soon as the event loop is free, so requests that
 *   arrived in the same turn share it.
 * - A batch is padded up to the next bucket, so the device only ever sees the bucket sizes, each compiled and
 *   run once by `warm()` before the server says it is ready.
 * - A request that waits longer than `queueTimeoutMs` is answered 503 by its own timer and never dispatched; a
 *   client that goes away while queued (its AbortSignal) frees its slot; a full queue answers 503 at once.
 * - A failed run fails its own requests (500); the next batch runs as usual.
 */
import { IMAGE_PIXELS } from '../data/normalize.ts';
import { NUM_CLASSES } from '../model/cnn.ts';

export interface BatcherConfig {
  maxBatchSize: number;
  maxBatchDelayMs: number;
  /** batch sizes the device sees; `maxBatchSize` is always one of them */
  buckets: readonly number[];
  /** requests waiting (not yet dispatched) at most */
  queueSize: number;
  queueTimeoutMs: number;
}

/** Runs one batch: x [B,1,28,28] normalised → log-probabilities [N, B, 10]. */
export type RunBatch = (x: Float32Array, B: number) => Promise<Float32Array>;

/** Why a request got no answer from the engine (`bad_request`: its input could not be read). */
export type RejectReason = 'queue_full' | 'queue_timeout' | 'shutting_down' | 'engine_error' | 'client_gone' | 'too_large' | 'bad_request';

/** Why a request got no answer from the engine, with the HTTP status that says so. */
export class ServingError extends Error {
  constructor(readonly status: number, message: string, readonly reason: RejectReason, readonly retryAfterS?: number) {
    super(message);
    this.name = 'ServingError';
  }
}

/** What the server's metrics see of each batch and request. */
export interface BatcherHooks {
  onBatch?(b: { images: number; padded: number; requests: number; ms: number }): void;
  onReject?(reason: RejectReason): void;
}

/** The answer to one request, with where its time went. */
export interface BatchResult {
  /** log-probabilities [N, count, 10] */
  logp: Float32Array;
  queueMs: number;
  computeMs: number;
  /** images in the plan run that answered it, before padding */
  batchImages: number;
}

interface Job {
  x: Float32Array;
  count: number;
  arrivedAt: number;
  resolve(r: BatchResult): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
  detach(): void;
}

/** The buckets in force: sorted, without duplicates, none above `maxBatchSize`, which is always the last. */
export function effectiveBuckets(buckets: readonly number[], maxBatchSize: number): number[] {
  return [...new Set([...buckets.filter((b) => b < maxBatchSize), maxBatchSize])].sort((a, b) => a - b);
}

export class Batcher {
  readonly buckets: readonly number[];
  private readonly queue: Job[] = [];
  private running = false;
  private closed = false;
  private delayTimer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly cfg: BatcherConfig, private readonly numModels: number, private readonly run: RunBatch,
    private readonly hooks: BatcherHooks = {}) {
    this.buckets = effectiveBuckets(cfg.buckets, cfg.maxBatchSize);
  }

  /** Requests waiting for a plan run. */
  get pending(): number {
    return this.queue.length;
  }

  get remainingCapacity(): number {
    return Math.max(0, this.cfg.queueSize - this.queue.length);
  }

  /** Whether a plan run is in progress. */
  get busy(): boolean {
    return this.running;
  }

  /** Compiles and runs every bucket's plan once (zeros in), so no request pays a compile. */
  async warm(): Promise<void> {
    for (const B of this.buckets) await this.run(new Float32Array(B * IMAGE_PIXELS), B);
  }

  /** Queues `count` images x [count,1,28,28]; resolves with their log-probabilities [N, count, 10]. */
  submit(x: Float32Array, count: number, signal?: AbortSignal): Promise<BatchResult> {
    if (x.length !== count * IMAGE_PIXELS) throw new RangeError(`submit: ${x.length} values for ${count} images`);
    const reject = (status: number, message: string, reason: RejectReason, retryAfterS?: number) => {
      this.hooks.onReject?.(reason);
      return Promise.reject(new ServingError(status, message, reason, retryAfterS));
    };
    if (this.closed) return reject(503, 'the server is shutting down', 'shutting_down');
    if (count > this.cfg.maxBatchSize) {
      return reject(400, `a request holds at most ${this.cfg.maxBatchSize} images (--max-batch-size); this one holds ${count}`, 'too_large');
    }
    if (this.queue.length >= this.cfg.queueSize) {
      return reject(503, `queue full: ${this.cfg.queueSize} requests are waiting (--queue-size); retry later`, 'queue_full', 1);
    }
    if (signal?.aborted) return reject(499, 'the client went away', 'client_gone');
    return new Promise<BatchResult>((resolve, rejectJob) => {
      const job: Job = {
        x, count, arrivedAt: performance.now(), resolve, reject: rejectJob, timer: undefined,
        detach: () => {
          clearTimeout(job.timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      const drop = (status: number, message: string, reason: RejectReason) => {
        const at = this.queue.indexOf(job);
        if (at < 0) return; // already dispatched: it is answered with its batch
        this.queue.splice(at, 1);
        job.detach();
        this.hooks.onReject?.(reason);
        rejectJob(new ServingError(status, message, reason));
        this.schedule();
      };
      const onAbort = () => drop(499, 'the client went away', 'client_gone');
      job.timer = setTimeout(() => drop(503, `request timed out after ${this.cfg.queueTimeoutMs} ms in the queue (--queue-timeout-ms)`, 'queue_timeout'),
        this.cfg.queueTimeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(job);
      this.schedule();
    });
  }

  /** Refuses new requests from now on; resolves once every queued and running request has been answered. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.delayTimer);
    this.delayTimer = undefined;
    if (!this.running && this.queue.length === 0) return;
    this.schedule(); // what waits for a batching delay runs now
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts a run when one may start: now, at the end of this turn, or when the oldest request's delay is up. */
  private schedule(): void {
    if (this.running || this.queue.length === 0) {
      if (!this.running && this.queue.length === 0) this.settleIdle();
      return;
    }
    const queuedImages = this.queue.reduce((n, j) => n + j.count, 0);
    const full = queuedImages >= this.cfg.maxBatchSize;
    if (this.cfg.maxBatchDelayMs > 0 && !full && !this.closed) {
      const wait = this.queue[0]!.arrivedAt + this.cfg.maxBatchDelayMs - performance.now();
      if (wait > 0) {
        clearTimeout(this.delayTimer);
        this.delayTimer = setTimeout(() => { this.delayTimer = undefined; this.schedule(); }, wait);
        return;
      }
    }
    if (this.scheduled) return;
    // the rest of this turn's requests join the batch
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.running && this.queue.length > 0) void this.runNext();
    });
  }

  private async runNext(): Promise<void> {
    clearTimeout(this.delayTimer);
    this.delayTimer = undefined;
    const jobs: Job[] = [];
    let images = 0;
    while (this.queue.length > 0 && images + this.queue[0]!.count <= this.cfg.maxBatchSize) {
      const job = this.queue.shift()!;
      job.detach();
      jobs.push(job);
      images += job.count;
    }
    this.running = true;
    const B = this.buckets.find((b) => b >= images)!;
    const x = new Float32Array(B * IMAGE_PIXELS); // padding images are zeros; their outputs are dropped
    let at = 0;
    for (const job of jobs) {
      x.set(job.x, at * IMAGE_PIXELS);
      at += job.count;
    }
    const started = performance.now();
    try {
      const logp = await this.run(x, B);
      const computeMs = performance.now() - started;
      this.hooks.onBatch?.({ images, padded: B, requests: jobs.length, ms: computeMs });
      at = 0;
      for (const job of jobs) {
        job.resolve({ logp: this.slice(logp, B, at, job.count), queueMs: started - job.arrivedAt, computeMs, batchImages: images });
        at += job.count;
      }
    } catch (err) {
      const message = `the engine failed on this batch: ${err instanceof Error ? err.message : String(err)}`;
      for (const job of jobs) {
        this.hooks.onReject?.('engine_error');
        job.reject(new ServingError(500, message, 'engine_error'));
      }
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  /** Images [first, first + count) of every model: [N, count, 10] out of [N, B, 10]. */
  private slice(logp: Float32Array, B: number, first: number, count: number): Float32Array {
    const out = new Float32Array(this.numModels * count * NUM_CLASSES);
    for (let m = 0; m < this.numModels; m++) {
      out.set(logp.subarray((m * B + first) * NUM_CLASSES, (m * B + first + count) * NUM_CLASSES), m * count * NUM_CLASSES);
    }
    return out;
  }

  private settleIdle(): void {
    if (!this.closed) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
