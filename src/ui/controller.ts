/**
 * The dashboard's state and the controller that produces it: runs the benchmark harness for the current
 * (N, B), one run at a time, and publishes immutable snapshots for the Ink components (through
 * React's useSyncExternalStore). UI-free, so the components can be tested on fake state and this module on fake
 * runners.
 *
 * A run is the harness's own sequence (first request with agreement check, warm-up, timed calls alternating
 * in chunks, agreement on the last outputs), composed here from the harness's exported steps rather than
 * through benchmarkModels, because benchmarkModels builds its runners itself and the dashboard needs to see
 * each call: the runners are wrapped by an observer that reports each call's latency and output, so the
 * panels show running statistics and each path's own predictions while the harness measures. The figures
 * shown once a run is done are the harness's own samples.
 *
 * Changing N or B, a rerun and quitting abort the run in progress (AbortSignal; the harness stops at its next
 * chunk boundary); requests made meanwhile coalesce, and the latest starts once the old run has settled, so
 * two runs never share the device.
 */
import type { ModelSource } from '../model/stack.ts';
import type { Runner } from '../engine/runners.ts';
import { predictionsOf } from '../model/cnn.ts';
import { normalizeImages } from '../data/mnist.ts';
import type { ServedModels } from '../io/model-file.ts';
import type { LoadedDigit } from '../io/png.ts';
import {
  DEFAULT_CHUNKS, PATHS, checkAgreement, chunkSizes, firstRequest, measure, pathStats, repeatImage,
  type Agreement, type BenchProgress, type PathKey, type PathStats, type ServingPaths,
} from '../bench/harness.ts';

/** `b` cycles through these batch sizes. */
export const BATCH_SIZES: readonly number[] = [1, 8, 64];
/** Per-chunk means kept for the sparkline. */
export const HISTORY_LENGTH = 60;
/**
 * Timed calls per alternation chunk, at most. The harness yields (keys, redraws) only between chunks, so the
 * dashboard asks for more, smaller chunks than plain bench: at most this many calls pass between two chances
 * to react to a key, and the history gets a point per chunk. The yields are outside the timed calls.
 */
export const CALLS_PER_CHUNK = 10;

export interface Progress {
  done: number;
  total: number;
}

export interface PathView {
  warmup: Progress;
  timed: Progress;
  /** statistics of the timed calls so far (live), or of the whole run once it is done; undefined before any */
  stats: PathStats | undefined;
  /** mean latency (ms) of each finished chunk, oldest first; kept across reruns of the same N and B */
  history: number[];
  /** each model's digit for the image, from this path's latest output; undefined before the first call */
  predictions: number[] | undefined;
  /** compiled forward plans one request runs: N sequentially, 1 (or a few groups) in one dispatch */
  dispatchesPerRequest: number | undefined;
  /** how GPU.js ran the plans (e.g. 'fused-threaded', 'fused-encoder'), known after the first request */
  executorKind: string | undefined;
}

export type RunPhase = 'loading' | 'compiling' | 'warmup' | 'timed' | 'done' | 'stopped' | 'error';

export interface DashboardState {
  backend: string;
  modelPath: string;
  imagePath: string;
  /** models the model file holds; undefined until it has been read */
  fileModels: number | undefined;
  image: { width: number; height: number; inverted: boolean } | undefined;
  /** notes about the inputs: replication, image warnings */
  notes: string[];
  numModels: number;
  batchSize: number;
  warmup: number;
  iters: number;
  chunks: number;
  phase: RunPhase;
  /** the path the harness ran last (the one in progress while running) */
  activePath: PathKey | undefined;
  paths: Record<PathKey, PathView>;
  /** sequential mean / single-dispatch mean, live while timing */
  speedup: number | undefined;
  /** set once the first request of a run has compared both paths */
  agreement: Agreement | undefined;
  /** how long the current run has taken (ms), updated with each snapshot */
  elapsedMs: number;
  /** shown as a red line; a failed run, or a change that was refused (N beyond the file) */
  error: string | undefined;
}

/** What the App needs from a controller; tests pass a fake. */
export interface DashboardController {
  subscribe(listener: () => void): () => void;
  getState(): DashboardState;
  /** N ± delta; a value the model file cannot provide is refused with an error line, the current run goes on */
  changeModels(delta: number): void;
  /** next of BATCH_SIZES */
  cycleBatchSize(): void;
  /** restart the run with the current N and B (the model file and image are read again) */
  rerun(): void;
  /** abort the run and wait until it has settled; no run starts afterwards */
  stop(): Promise<void>;
}

/** Where a run gets its inputs and runners; the real ones read files and open kernels on a Device. */
export interface RunDeps {
  /** N models (loadServedModels semantics: a single-model file is replicated, a stacked one bounds N); throws */
  loadModels(numModels: number): ServedModels;
  loadImage(): LoadedDigit;
  makePaths(models: ModelSource, numModels: number): ServingPaths;
}

export interface ControllerOptions {
  backend: string;
  modelPath: string;
  imagePath: string;
  numModels: number;
  batchSize: number;
  warmup: number;
  iters: number;
  deps: RunDeps;
  /** the first run's inputs when the caller already loaded them (startup checks) */
  initial?: { models: ServedModels; digit: LoadedDigit };
  /** snapshots are published at most this often while a run reports progress */
  publishIntervalMs?: number;
}

/** The next batch size after `current` in BATCH_SIZES, wrapping around (a --batch-size off the list goes to the next above). */
export function nextBatchSize(current: number): number {
  return BATCH_SIZES.find((b) => b > current) ?? BATCH_SIZES[0]!;
}

/** Alternation chunks the dashboard asks the harness for (see CALLS_PER_CHUNK). */
export function dashboardChunks(iters: number): number {
  return Math.max(DEFAULT_CHUNKS, Math.ceil(iters / CALLS_PER_CHUNK));
}

function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
}

interface Request {
  numModels: number;
  batchSize: number;
  models?: ServedModels;
  digit?: LoadedDigit;
}

/** Mutable per-path record of the run in progress; snapshots are made from it. */
interface PathRun {
  warmup: Progress;
  timed: Progress;
  samples: number[];
  final: PathStats | undefined;
  history: number[];
  /** latency of the observed call that has not been matched with a progress event yet */
  pendingMs: number | undefined;
  /** timed-call count at which each chunk ends */
  chunkEnds: number[];
  chunk: number;
  chunkStart: number;
  predictions: number[] | undefined;
  dispatchesPerRequest: number | undefined;
  executorKind: string | undefined;
}

function emptyPath(warmup: number, iters: number, chunkEnds: number[], history: number[] = []): PathRun {
  return {
    warmup: { done: 0, total: warmup }, timed: { done: 0, total: iters }, samples: [], final: undefined, history,
    pendingMs: undefined, chunkEnds, chunk: 0, chunkStart: 0, predictions: undefined, dispatchesPerRequest: undefined, executorKind: undefined,
  };
}

/** Wraps a runner so that each call's latency and output reach the live view. */
function observe(runner: Runner, rec: PathRun, N: number, B: number): Runner {
  return {
    kind: runner.kind,
    numModels: runner.numModels,
    get dispatches() { return runner.dispatches; },
    get executorKind() { return runner.executorKind; },
    destroy: () => runner.destroy(),
    predict: async (x, b) => {
      const t0 = performance.now();
      const out = await runner.predict(x, b);
      rec.pendingMs = performance.now() - t0;
      rec.predictions = predictionsOf(out, N, B).map((row) => row[0]!);
      return out;
    },
  };
}

/** Applies one harness progress event to a path's record. */
function record(rec: PathRun, p: BenchProgress): void {
  if (p.phase === 'warmup') {
    rec.warmup = { done: p.done, total: p.total };
    return;
  }
  rec.timed = { done: p.done, total: p.total };
  // a timed event follows the call it counts, whose latency the observer has just recorded
  if (p.done > rec.samples.length && rec.pendingMs !== undefined) {
    rec.samples.push(rec.pendingMs);
    rec.pendingMs = undefined;
    if (rec.samples.length === rec.chunkEnds[rec.chunk]) {
      const chunk = rec.samples.slice(rec.chunkStart);
      rec.history = [...rec.history, chunk.reduce((a, b) => a + b, 0) / chunk.length].slice(-HISTORY_LENGTH);
      rec.chunk++;
      rec.chunkStart = rec.samples.length;
    }
  }
}

export class BenchController implements DashboardController {
  private readonly opts: ControllerOptions;
  private readonly listeners = new Set<() => void>();
  private readonly chunks: number;
  private readonly chunkEnds: number[];
  private state: DashboardState;
  private paths: Record<PathKey, PathRun>;
  private numModels: number;
  private batchSize: number;
  private pending: Request | undefined;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private running = false;
  private stopped = false;
  private publishTimer: NodeJS.Timeout | undefined;
  private runStarted = 0;
  private runEnded: number | undefined;
  // the red line: why the last run failed, or why a change was refused
  private error: string | undefined;
  private phase: RunPhase = 'loading';
  private activePath: PathKey | undefined;
  private agreement: Agreement | undefined;
  private inputs: Pick<DashboardState, 'fileModels' | 'image' | 'notes'> = { fileModels: undefined, image: undefined, notes: [] };

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    this.numModels = opts.numModels;
    this.batchSize = opts.batchSize;
    this.chunks = dashboardChunks(opts.iters);
    const sizes = chunkSizes(opts.iters, this.chunks);
    this.chunkEnds = sizes.map((_, i) => sizes.slice(0, i + 1).reduce((a, b) => a + b, 0));
    this.paths = this.freshPaths(false);
    this.state = this.snapshot();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getState = (): DashboardState => this.state;

  /** Starts the first run (with the startup inputs when given). */
  start(): void {
    const init = this.opts.initial;
    this.request({ numModels: this.numModels, batchSize: this.batchSize, models: init?.models, digit: init?.digit });
  }

  changeModels(delta: number): void {
    const n = this.numModels + delta;
    if (n < 1 || this.stopped) return;
    let models: ServedModels;
    try {
      // read now so that an N the file cannot provide is refused before the run in progress is stopped
      models = this.opts.deps.loadModels(n);
    } catch (err) {
      this.error = `N=${n}: ${message(err)}`;
      this.publish();
      return;
    }
    this.request({ numModels: n, batchSize: this.batchSize, models });
  }

  cycleBatchSize(): void {
    if (!this.stopped) this.request({ numModels: this.numModels, batchSize: nextBatchSize(this.batchSize) });
  }

  rerun(): void {
    if (!this.stopped) this.request({ numModels: this.numModels, batchSize: this.batchSize });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pending = undefined;
    this.abort?.abort();
    await this.loop;
    clearTimeout(this.publishTimer);
    this.publishTimer = undefined;
  }

  private request(req: Request): void {
    const sameConfig = req.numModels === this.numModels && req.batchSize === this.batchSize;
    this.numModels = req.numModels;
    this.batchSize = req.batchSize;
    this.pending = req;
    this.error = undefined;
    this.phase = 'loading';
    this.activePath = undefined;
    // the run being aborted keeps writing to its own records until it notices; these are the next run's
    this.paths = this.freshPaths(sameConfig);
    this.agreement = undefined;
    this.runStarted = performance.now();
    this.runEnded = undefined;
    this.abort?.abort();
    this.publish();
    if (!this.running) {
      this.running = true;
      this.loop = this.drain();
    }
  }

  /** Runs the latest request until none is left. */
  private async drain(): Promise<void> {
    try {
      while (this.pending && !this.stopped) {
        const req = this.pending;
        this.pending = undefined;
        const abort = new AbortController();
        this.abort = abort;
        try {
          await this.runOnce(req, this.paths, abort.signal);
        } catch (err) {
          if (!abort.signal.aborted) {
            this.phase = 'error';
            this.error = message(err);
            this.runEnded = performance.now();
          }
        }
        if (abort.signal.aborted && !this.pending) {
          this.phase = 'stopped';
          this.runEnded = performance.now();
        }
        if (!this.pending) this.publish();
      }
    } finally {
      // reset in the same step as the loop's last check, so a request never finds a loop that is about to end
      this.running = false;
    }
  }

  /** One run; writes to the shared state only while it is not aborted (a newer run owns it then). */
  private async runOnce(req: Request, rec: Record<PathKey, PathRun>, signal: AbortSignal): Promise<void> {
    const { deps, warmup, iters } = this.opts;
    const N = req.numModels;
    const B = req.batchSize;
    const models = req.models ?? deps.loadModels(N);
    const digit = req.digit ?? deps.loadImage();
    this.inputs = {
      fileModels: models.fileModels,
      image: { width: digit.width, height: digit.height, inverted: digit.inverted },
      notes: [...(models.note ? [models.note] : []), ...digit.warnings],
    };
    const x = repeatImage(normalizeImages(digit.pixels), B);
    const built = deps.makePaths(models, N);
    try {
      const paths: ServingPaths = {
        numModels: N,
        sequential: observe(built.sequential, rec.sequential, N, B),
        singleDispatch: observe(built.singleDispatch, rec.singleDispatch, N, B),
      };
      rec.sequential.dispatchesPerRequest = built.sequential.dispatches;
      rec.singleDispatch.dispatchesPerRequest = built.singleDispatch.dispatches;
      this.phase = 'compiling';
      this.publish();

      const first = await firstRequest(paths, x, B);
      signal.throwIfAborted();
      rec.sequential.executorKind = built.sequential.executorKind;
      rec.singleDispatch.executorKind = built.singleDispatch.executorKind;
      this.agreement = first.agreement;
      const m = await measure(paths, x, B, {
        warmup, iters, chunks: this.chunks, signal,
        onProgress: (p) => {
          if (signal.aborted) return;
          this.activePath = p.path;
          this.phase = p.phase;
          record(rec[p.path], p);
          this.schedulePublish();
        },
      });
      // an abort during the harness's last yield still counts
      signal.throwIfAborted();
      const last = checkAgreement(m.lastOutputs.sequential, m.lastOutputs.singleDispatch, N, B);
      this.agreement = { ...first.agreement, maxAbsDiff: Math.max(first.agreement.maxAbsDiff, last.maxAbsDiff) };
      // the harness's own samples for the final figures
      for (const path of PATHS) rec[path].final = pathStats(m.samplesMs[path], N * B);
    } finally {
      // the plans hold compiled kernels and resident weights; a long session visits many N and B
      built.sequential.destroy();
      built.singleDispatch.destroy();
    }
    this.phase = 'done';
    this.activePath = undefined;
    this.runEnded = performance.now();
  }

  private freshPaths(keepHistory: boolean): Record<PathKey, PathRun> {
    const history = (path: PathKey) => (keepHistory ? this.paths?.[path]?.history : undefined) ?? [];
    return {
      sequential: emptyPath(this.opts.warmup, this.opts.iters, this.chunkEnds, history('sequential')),
      singleDispatch: emptyPath(this.opts.warmup, this.opts.iters, this.chunkEnds, history('singleDispatch')),
    };
  }

  private schedulePublish(): void {
    if (this.publishTimer) return;
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined;
      this.publish();
    }, this.opts.publishIntervalMs ?? 100);
  }

  private publish(): void {
    clearTimeout(this.publishTimer);
    this.publishTimer = undefined;
    this.state = this.snapshot();
    for (const listener of this.listeners) listener();
  }

  private snapshot(): DashboardState {
    const N = this.numModels;
    const B = this.batchSize;
    const view = (run: PathRun): PathView => ({
      warmup: { ...run.warmup },
      timed: { ...run.timed },
      stats: run.final ?? (run.samples.length > 0 ? pathStats(run.samples, N * B) : undefined),
      history: run.history,
      predictions: run.predictions,
      dispatchesPerRequest: run.dispatchesPerRequest,
      executorKind: run.executorKind,
    });
    const paths = { sequential: view(this.paths.sequential), singleDispatch: view(this.paths.singleDispatch) };
    const seq = paths.sequential.stats;
    const sd = paths.singleDispatch.stats;
    return {
      backend: this.opts.backend,
      modelPath: this.opts.modelPath,
      imagePath: this.opts.imagePath,
      ...this.inputs,
      numModels: N,
      batchSize: B,
      warmup: this.opts.warmup,
      iters: this.opts.iters,
      chunks: this.chunkEnds.length,
      phase: this.phase,
      activePath: this.activePath,
      paths,
      speedup: seq && sd ? seq.meanMs / sd.meanMs : undefined,
      agreement: this.agreement,
      elapsedMs: (this.runEnded ?? performance.now()) - this.runStarted,
      error: this.error,
    };
  }
}
