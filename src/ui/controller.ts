/**
 * The dashboard's controller: a small scheduler of benchmark runs for the current (N, B). It reads the inputs,
 * builds the paths through its dependencies, hands them to the harness (`benchmarkModels`, which runs and times
 * every call), and folds the harness's events into the state with the pure reducer of dashboard-state.ts. The
 * Ink components read immutable snapshots through React's useSyncExternalStore.
 *
 * Changing N or B, a rerun and quitting abort the run in progress (AbortSignal; the harness stops at its next
 * chunk boundary); requests made meanwhile coalesce, and the latest starts once the old run has settled, so
 * two runs never share the device. Events of an aborted run are dropped: the next run owns the state.
 */
import { normalizeImages } from '../data/normalize.ts';
import type { ServedModels } from '../io/model-file.ts';
import type { LoadedDigit } from '../io/png.ts';
import type { ModelSource } from '../model/stack.ts';
import { benchmarkModels, destroyPaths, repeatImage, type ServingPaths } from '../bench/harness.ts';
import type { PeerResult } from '../bench/peers.ts';
import {
  initialState, nextBatchSize, reduce, type DashboardConfig, type DashboardEvent, type DashboardState,
} from './dashboard-state.ts';

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

/** Where a run gets its inputs and paths; the real ones read files and build runners on a Device. */
export interface RunDeps {
  /** N models (loadServedModels semantics: a single-model file is replicated, a stacked one bounds N); throws */
  loadModels(numModels: number): ServedModels;
  loadImage(): LoadedDigit;
  makePaths(models: ModelSource, numModels: number): ServingPaths;
  /** the other engines on the same request, given our single dispatch's log-probabilities for it (`--peers`) */
  runPeers?(models: ModelSource, numModels: number, x: Float32Array, B: number, ours: Float32Array, signal: AbortSignal): Promise<PeerResult[]>;
}

export interface ControllerOptions extends DashboardConfig {
  deps: RunDeps;
  /** the first run's inputs when the caller already loaded them (startup checks) */
  initial?: { models: ServedModels; digit: LoadedDigit };
  /** snapshots are published at most this often while a run reports calls */
  publishIntervalMs?: number;
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

export class BenchController implements DashboardController {
  private readonly opts: ControllerOptions;
  private readonly listeners = new Set<() => void>();
  private state: DashboardState;
  /** the latest state, ahead of `state` between two publishes */
  private latest: DashboardState;
  private pending: Request | undefined;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private running = false;
  private stopped = false;
  private publishTimer: NodeJS.Timeout | undefined;

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    this.state = this.latest = initialState(opts, performance.now());
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getState = (): DashboardState => this.state;

  /** Starts the first run (with the startup inputs when given). */
  start(): void {
    const init = this.opts.initial;
    this.request({ numModels: this.latest.numModels, batchSize: this.latest.batchSize, models: init?.models, digit: init?.digit });
  }

  changeModels(delta: number): void {
    const n = this.latest.numModels + delta;
    if (n < 1 || this.stopped) return;
    let models: ServedModels;
    try {
      // read now so that an N the file cannot provide is refused before the run in progress is stopped
      models = this.opts.deps.loadModels(n);
    } catch (err) {
      this.dispatch({ type: 'refused', error: `N=${n}: ${message(err)}` }, true);
      return;
    }
    this.request({ numModels: n, batchSize: this.latest.batchSize, models });
  }

  cycleBatchSize(): void {
    if (!this.stopped) this.request({ numModels: this.latest.numModels, batchSize: nextBatchSize(this.latest.batchSize) });
  }

  rerun(): void {
    if (!this.stopped) this.request({ numModels: this.latest.numModels, batchSize: this.latest.batchSize });
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
    this.pending = req;
    this.abort?.abort();
    this.dispatch({ type: 'request', numModels: req.numModels, batchSize: req.batchSize }, true);
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
          await this.runOnce(req, abort.signal);
        } catch (err) {
          if (!abort.signal.aborted) this.dispatch({ type: 'failed', error: message(err) }, true);
        }
        if (abort.signal.aborted && !this.pending) this.dispatch({ type: 'stopped' }, true);
      }
    } finally {
      // reset in the same step as the loop's last check, so a request never finds a loop that is about to end
      this.running = false;
    }
  }

  /** One run: inputs, paths, the harness; its events reach the state only while it is not aborted. */
  private async runOnce(req: Request, signal: AbortSignal): Promise<void> {
    const { deps, warmup, iters } = this.opts;
    const N = req.numModels;
    const B = req.batchSize;
    const models = req.models ?? deps.loadModels(N);
    const digit = req.digit ?? deps.loadImage();
    const notes = [...(models.note ? [models.note] : []), ...digit.warnings];
    this.dispatch({ type: 'inputs', fileModels: models.fileModels, image: { width: digit.width, height: digit.height, inverted: digit.inverted }, notes }, true);
    const x = repeatImage(normalizeImages(digit.pixels), B);
    const paths = deps.makePaths(models, N);
    let ours: Float32Array | undefined;
    try {
      await benchmarkModels(paths, x, B, {
        warmup, iters, chunks: this.latest.chunks, signal,
        onEvent: (e) => {
          if (e.type === 'call' && e.path === 'singleDispatch') ours = e.output;
          if (!signal.aborted) this.dispatch(e, e.type !== 'call');
        },
      });
      // an abort during the harness's last yield still counts
      signal.throwIfAborted();
    } finally {
      // the plans hold compiled kernels and resident weights; a dashboard left open visits many N and B
      destroyPaths(paths);
    }
    if (deps.runPeers && ours) {
      this.dispatch({ type: 'peers-running' }, true);
      const results = await deps.runPeers(models, N, x, B, ours, signal);
      signal.throwIfAborted();
      this.dispatch({ type: 'peers', results }, true);
    }
  }

  /** Folds one event into the state; publishes now, or (for the stream of calls) at the next interval. */
  private dispatch(event: DashboardEvent, now: boolean): void {
    this.latest = reduce(this.latest, event, performance.now());
    if (now) this.publish();
    else this.schedulePublish();
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
    this.state = this.latest;
    for (const listener of this.listeners) listener();
  }
}
