/**
 * The server's dynamic batcher on a fake engine (no device): how requests fold into plan runs, padding to a
 * bucket, each request's own slice of the answer, and every way a request can leave the queue unanswered.
 */
import { describe, expect, it, vi } from 'vitest';
import { IMAGE_PIXELS } from '../src/data/normalize.ts';
import { NUM_CLASSES } from '../src/model/cnn.ts';
import { Batcher, ServingError, effectiveBuckets, type BatcherConfig } from '../src/serve/batcher.ts';

const N = 2;
const CONFIG: BatcherConfig = { maxBatchSize: 8, maxBatchDelayMs: 0, buckets: [1, 2, 4, 8], queueSize: 4, queueTimeoutMs: 5000 };

/** An image whose pixels all hold `tag`, so the fake engine can tell which image it saw. */
const image = (tag: number, count = 1) => new Float32Array(count * IMAGE_PIXELS).fill(tag);

/**
 * A fake engine: model m's log-probability for class c of an image tagged t is t * 100 + m * 10 + c, so every
 * value says which image and model it belongs to. Runs can be held back (`stall`) and made to fail.
 */
function fakeEngine() {
  const runs: Array<{ B: number; tags: number[] }> = [];
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let failNext = false;
  const run = async (x: Float32Array, B: number): Promise<Float32Array> => {
    runs.push({ B, tags: Array.from({ length: B }, (_, b) => x[b * IMAGE_PIXELS]!) });
    if (gate) await gate;
    if (failNext) {
      failNext = false;
      throw new Error('device lost');
    }
    const out = new Float32Array(N * B * NUM_CLASSES);
    for (let m = 0; m < N; m++) for (let b = 0; b < B; b++) for (let c = 0; c < NUM_CLASSES; c++) {
      out[(m * B + b) * NUM_CLASSES + c] = x[b * IMAGE_PIXELS]! * 100 + m * 10 + c;
    }
    return out;
  };
  return {
    runs, run,
    stall() { gate = new Promise((resolve) => { open = resolve; }); },
    release() { gate = undefined; open?.(); },
    failNext() { failNext = true; },
  };
}

/** What the fake engine answers for `tags` (one per image), as [N, count, 10]. */
function expected(tags: number[]): Float32Array {
  const out = new Float32Array(N * tags.length * NUM_CLASSES);
  for (let m = 0; m < N; m++) tags.forEach((t, b) => {
    for (let c = 0; c < NUM_CLASSES; c++) out[(m * tags.length + b) * NUM_CLASSES + c] = t * 100 + m * 10 + c;
  });
  return out;
}

const settle = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));
/** Until the fake engine has been handed `n` runs. */
const runsStarted = (engine: { runs: unknown[] }, n: number) =>
  vi.waitFor(() => expect(engine.runs.length).toBe(n), { timeout: 2000, interval: 1 });

async function rejection(p: Promise<unknown>): Promise<ServingError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ServingError);
  return err as ServingError;
}

describe('dynamic batching', () => {
  it('folds requests of one turn into one run, padded to the next bucket, each answered with its own images', async () => {
    const engine = fakeEngine();
    const b = new Batcher(CONFIG, N, engine.run);
    const answers = await Promise.all([b.submit(image(1), 1), b.submit(image(2, 2), 2), b.submit(image(3), 1), b.submit(image(4), 1)]);
    // 5 images: one run of the bucket 8, three padding images of zeros
    expect(engine.runs).toEqual([{ B: 8, tags: [1, 2, 2, 3, 4, 0, 0, 0] }]);
    expect(answers[0]!.logp).toEqual(expected([1]));
    expect(answers[1]!.logp).toEqual(expected([2, 2]));
    expect(answers[3]!.logp).toEqual(expected([4]));
    expect(answers.map((a) => a.batchImages)).toEqual([5, 5, 5, 5]);
  });

  it('with no delay, requests that arrive during a run form the next batch', async () => {
    const engine = fakeEngine();
    const b = new Batcher({ ...CONFIG, queueSize: 10 }, N, engine.run);
    engine.stall();
    const first = b.submit(image(1), 1);
    await runsStarted(engine, 1);
    const later = [2, 3, 4].map((t) => b.submit(image(t), 1));
    await settle();
    expect(engine.runs).toEqual([{ B: 1, tags: [1] }]);
    engine.release();
    await Promise.all([first, ...later]);
    expect(engine.runs).toEqual([{ B: 1, tags: [1] }, { B: 4, tags: [2, 3, 4, 0] }]);
  });

  it('a batch never exceeds max-batch-size; a request larger than it is refused with 400', async () => {
    const engine = fakeEngine();
    const b = new Batcher({ ...CONFIG, queueSize: 10 }, N, engine.run);
    await Promise.all([b.submit(image(1, 5), 5), b.submit(image(2, 4), 4)]);
    expect(engine.runs.map((r) => r.B)).toEqual([8, 4]);
    const err = await rejection(b.submit(image(3, 9), 9));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/at most 8 images/);
  });

  it('with a delay, a run waits from the oldest request, and starts at once when the batch is full', async () => {
    const engine = fakeEngine();
    let runAt = 0;
    const timed = async (x: Float32Array, B: number) => { runAt = performance.now(); return engine.run(x, B); };
    const b = new Batcher({ ...CONFIG, maxBatchDelayMs: 1000, queueSize: 20 }, N, timed);
    const t0 = performance.now();
    const first = b.submit(image(1), 1);
    await settle(400);
    const secondAt = performance.now();
    const second = b.submit(image(2), 1);
    await Promise.all([first, second]);
    // timed from the first request's arrival (about 600 ms after the second's), not the second's (1000 ms after it)
    expect(runAt - t0).toBeGreaterThanOrEqual(995);
    expect(runAt - secondAt).toBeLessThan(950);
    expect(engine.runs).toEqual([{ B: 2, tags: [1, 2] }]);

    // a full batch does not wait for a delay it could never use
    const patient = new Batcher({ ...CONFIG, maxBatchDelayMs: 60_000, queueSize: 20 }, N, engine.run);
    await Promise.all(Array.from({ length: 8 }, (_, i) => patient.submit(image(10 + i), 1)));
    expect(engine.runs[1]!.B).toBe(8);
  });

  it('max-batch-size is always a bucket; buckets above it go', () => {
    expect(effectiveBuckets([1, 2, 4, 8, 16], 16)).toEqual([1, 2, 4, 8, 16]);
    expect(effectiveBuckets([4, 1, 32], 10)).toEqual([1, 4, 10]);
  });

  it('warm() runs every bucket once', async () => {
    const engine = fakeEngine();
    await new Batcher(CONFIG, N, engine.run).warm();
    expect(engine.runs.map((r) => r.B)).toEqual([1, 2, 4, 8]);
  });
});

describe('requests the engine does not answer', () => {
  it('a full queue accepts exactly --queue-size while the engine stalls; the next gets 503 "queue full" with Retry-After', async () => {
    const engine = fakeEngine();
    const rejected: string[] = [];
    const b = new Batcher(CONFIG, N, engine.run, { onReject: (r) => rejected.push(r) });
    engine.stall();
    const running = b.submit(image(1), 1);
    await runsStarted(engine, 1);
    const queued = [2, 3, 4, 5].map((t) => b.submit(image(t), 1));
    expect(b.pending).toBe(4);
    expect(b.remainingCapacity).toBe(0);
    const err = await rejection(b.submit(image(6), 1));
    expect(err.status).toBe(503);
    expect(err.message).toMatch(/^queue full/);
    expect(err.retryAfterS).toBeGreaterThan(0);
    expect(rejected).toEqual(['queue_full']);
    engine.release();
    const done = await Promise.all([running, ...queued]);
    expect(done.map((d) => d.logp[0])).toEqual([100, 200, 300, 400, 500]);
  });

  it('a request past its queue timeout is answered 503 and never dispatched', async () => {
    const engine = fakeEngine();
    const b = new Batcher({ ...CONFIG, queueTimeoutMs: 30 }, N, engine.run);
    engine.stall();
    const running = b.submit(image(1), 1);
    await runsStarted(engine, 1);
    const late = b.submit(image(2), 1);
    const err = await rejection(late);
    expect(err.status).toBe(503);
    expect(err.message).toMatch(/timed out after 30 ms/);
    expect(b.pending).toBe(0);
    engine.release();
    await running;
    await settle(5);
    expect(engine.runs.map((r) => r.tags[0])).toEqual([1]);
  });

  it('a client that goes away while queued frees its slot and is not computed', async () => {
    const engine = fakeEngine();
    const b = new Batcher(CONFIG, N, engine.run);
    engine.stall();
    const running = b.submit(image(1), 1);
    await runsStarted(engine, 1);
    const gone = new AbortController();
    const left = b.submit(image(2), 1, gone.signal);
    const stays = b.submit(image(3), 1);
    gone.abort();
    expect((await rejection(left)).reason).toBe('client_gone');
    expect(b.pending).toBe(1);
    engine.release();
    await Promise.all([running, stays]);
    expect(engine.runs.map((r) => r.tags)).toEqual([[1], [3]]);
  });

  it('an engine failure answers that batch 500; the next batch runs', async () => {
    const engine = fakeEngine();
    const b = new Batcher(CONFIG, N, engine.run);
    engine.failNext();
    const [a, c] = await Promise.allSettled([b.submit(image(1), 1), b.submit(image(2), 1)]);
    for (const r of [a, c]) {
      expect(r!.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as ServingError;
      expect(err.status).toBe(500);
      expect(err.message).toMatch(/device lost/);
    }
    expect((await b.submit(image(3), 1)).logp).toEqual(expected([3]));
  });

  it('close() answers what is queued and running, refuses new requests with 503, and skips the batching delay', async () => {
    const engine = fakeEngine();
    const b = new Batcher({ ...CONFIG, maxBatchDelayMs: 60_000 }, N, engine.run);
    const queued = [b.submit(image(1), 1), b.submit(image(2), 1)];
    await settle();
    expect(engine.runs).toEqual([]);
    const closed = b.close();
    const refused = await rejection(b.submit(image(3), 1));
    expect(refused.status).toBe(503);
    expect(refused.message).toMatch(/shutting down/);
    await closed;
    expect((await Promise.all(queued)).map((q) => q.logp[0])).toEqual([100, 200]);
  });
});
