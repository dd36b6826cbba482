/**
 * The dashboard's state and the pure reducer that makes it from events: the harness's own (`BenchEvent`: every
 * call with its latency and output, the result) and the controller's few (a new request, the inputs it read, a
 * failure, a stop). No clock, no device, no I/O: `reduce(state, event, atMs)` is the whole of what the panels
 * show, so a test can drive it with events alone.
 */
import { DEFAULT_CHUNKS, pathStats, type Agreement, type BenchEvent, type PathKey, type PathStats } from '../bench/harness.ts';
import { NUM_CLASSES } from '../model/cnn.ts';
import { argmax } from '../model/outputs.ts';
import type { PeerResult } from '../bench/peers.ts';

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

/** The next batch size after `current` in BATCH_SIZES, wrapping around (a --batch-size off the list goes to the next above). */
export function nextBatchSize(current: number): number {
  return BATCH_SIZES.find((b) => b > current) ?? BATCH_SIZES[0]!;
}

/** Alternation chunks the dashboard asks the harness for (see CALLS_PER_CHUNK). */
export function dashboardChunks(iters: number): number {
  return Math.max(DEFAULT_CHUNKS, Math.ceil(iters / CALLS_PER_CHUNK));
}

export interface Progress {
  done: number;
  total: number;
}

export interface PathView {
  warmup: Progress;
  timed: Progress;
  /** latencies of the timed calls so far, in the order they were taken */
  samplesMs: readonly number[];
  /** statistics of the timed calls up to the last finished chunk, or of the whole run once it is done */
  stats: PathStats | undefined;
  /** mean latency (ms) of each finished chunk, oldest first; kept across reruns of the same N and B */
  history: readonly number[];
  /** each model's digit for the image, from this path's latest output; undefined before the first call */
  predictions: readonly number[] | undefined;
  /** plan runs one request takes: N sequentially, 1 (or a few groups) in single dispatch */
  planRunsPerRequest: number | undefined;
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
  notes: readonly string[];
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
  /** when the current run was requested (ms, the controller's clock) */
  startedAtMs: number;
  /** how long the current run has taken (ms), as of its latest event */
  elapsedMs: number;
  /** shown as a red line; a failed run, or a change that was refused (N beyond the file) */
  error: string | undefined;
  /** the other engines (`--peers`), timed after our paths finish; undefined when none were asked for */
  peers: { running: boolean; results: readonly PeerResult[] } | undefined;
}

/** What the controller itself reports; everything else the dashboard shows comes from the harness. */
export type ControllerEvent =
  /** a run with this N and B is asked for: the panels start afresh (their history stays when N and B do) */
  | { type: 'request'; numModels: number; batchSize: number }
  /** the run's inputs have been read */
  | { type: 'inputs'; fileModels: number; image: { width: number; height: number; inverted: boolean }; notes: readonly string[] }
  /** a change was refused (the run in progress goes on) */
  | { type: 'refused'; error: string }
  | { type: 'failed'; error: string }
  | { type: 'stopped' }
  /** our paths are done; the peers are being timed */
  | { type: 'peers-running' }
  | { type: 'peers'; results: readonly PeerResult[] };

export type DashboardEvent = BenchEvent | ControllerEvent;

export interface DashboardConfig {
  backend: string;
  modelPath: string;
  imagePath: string;
  numModels: number;
  batchSize: number;
  warmup: number;
  iters: number;
  /** whether other engines are timed after each run (`--peers`) */
  peers?: boolean;
}

function emptyPath(warmup: number, iters: number, history: readonly number[] = []): PathView {
  return {
    warmup: { done: 0, total: warmup }, timed: { done: 0, total: iters }, samplesMs: [], stats: undefined, history,
    predictions: undefined, planRunsPerRequest: undefined, executorKind: undefined,
  };
}

/** The state before the first run, phase 'loading'. */
export function initialState(c: DashboardConfig, atMs: number): DashboardState {
  return {
    backend: c.backend, modelPath: c.modelPath, imagePath: c.imagePath,
    fileModels: undefined, image: undefined, notes: [],
    numModels: c.numModels, batchSize: c.batchSize, warmup: c.warmup, iters: c.iters, chunks: dashboardChunks(c.iters),
    phase: 'loading', activePath: undefined,
    paths: { sequential: emptyPath(c.warmup, c.iters), singleDispatch: emptyPath(c.warmup, c.iters) },
    speedup: undefined, agreement: undefined, startedAtMs: atMs, elapsedMs: 0, error: undefined,
    peers: c.peers ? { running: false, results: [] } : undefined,
  };
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function withPaths(s: DashboardState, paths: Record<PathKey, PathView>): DashboardState {
  const seq = paths.sequential.stats;
  const sd = paths.singleDispatch.stats;
  return { ...s, paths, speedup: seq && sd ? seq.meanMs / sd.meanMs : s.speedup };
}

function updatePath(s: DashboardState, path: PathKey, change: Partial<PathView>): DashboardState {
  return withPaths(s, { ...s.paths, [path]: { ...s.paths[path], ...change } });
}

/** The state after `event`, which happened at `atMs` on the controller's clock. */
export function reduce(s: DashboardState, event: DashboardEvent, atMs: number): DashboardState {
  const running = { ...s, elapsedMs: atMs - s.startedAtMs };
  switch (event.type) {
    case 'request': {
      const same = event.numModels === s.numModels && event.batchSize === s.batchSize;
      const history = (path: PathKey) => (same ? s.paths[path].history : []);
      return {
        ...s, numModels: event.numModels, batchSize: event.batchSize, phase: 'loading', activePath: undefined,
        paths: { sequential: emptyPath(s.warmup, s.iters, history('sequential')), singleDispatch: emptyPath(s.warmup, s.iters, history('singleDispatch')) },
        speedup: undefined, agreement: undefined, startedAtMs: atMs, elapsedMs: 0, error: undefined,
        peers: s.peers && { running: false, results: [] },
      };
    }
    case 'peers-running':
      return { ...running, peers: s.peers && { running: true, results: [] } };
    case 'peers':
      return { ...running, peers: s.peers && { running: false, results: event.results } };
    case 'inputs':
      return { ...running, fileModels: event.fileModels, image: event.image, notes: event.notes };
    case 'refused':
      return { ...s, error: event.error };
    case 'failed':
      return { ...running, phase: 'error', activePath: undefined, error: event.error, peers: s.peers && { ...s.peers, running: false } };
    case 'stopped':
      return { ...running, phase: 'stopped', activePath: undefined, peers: s.peers && { ...s.peers, running: false } };
    case 'start': {
      const plans = (path: PathKey) => ({ ...s.paths[path], planRunsPerRequest: event.planRuns[path] });
      return { ...running, phase: 'compiling', paths: { sequential: plans('sequential'), singleDispatch: plans('singleDispatch') } };
    }
    case 'first-request': {
      const exec = (path: PathKey) => ({ ...s.paths[path], executorKind: event.execution[path].executorKind });
      return { ...running, agreement: event.agreement, paths: { sequential: exec('sequential'), singleDispatch: exec('singleDispatch') } };
    }
    case 'phase':
      return updatePath({ ...running, phase: event.phase, activePath: event.path }, event.path, {
        [event.phase]: { done: 0, total: event.total },
      });
    case 'call': {
      const view = s.paths[event.path];
      // each model's digit for the first image (the B images of a request are copies of one)
      const predictions = Array.from({ length: event.numModels }, (_, m) => argmax(event.output, m * s.batchSize * NUM_CLASSES));
      const progress = { done: event.done, total: event.total };
      const next = { ...running, phase: event.phase, activePath: event.path };
      if (event.phase === 'warmup') return updatePath(next, event.path, { warmup: progress, predictions });
      const samplesMs = [...view.samplesMs, event.latencyMs];
      if (!event.endsChunk) return updatePath(next, event.path, { timed: progress, predictions, samplesMs });
      // a chunk ends: its mean joins the history, and the statistics move on to every sample so far (the
      // previous chunk ended where the statistics stood)
      const chunk = samplesMs.slice(view.stats?.samples ?? 0);
      return updatePath(next, event.path, {
        timed: progress, predictions, samplesMs,
        history: [...view.history, mean(chunk)].slice(-HISTORY_LENGTH),
        stats: pathStats(samplesMs, event.numModels * s.batchSize),
      });
    }
    case 'result': {
      // the harness's own figures for the whole run
      const r = event.result;
      const final = (path: PathKey) => ({ ...s.paths[path], stats: r[path] });
      return {
        ...withPaths(running, { sequential: final('sequential'), singleDispatch: final('singleDispatch') }),
        phase: 'done', activePath: undefined, agreement: r.agreement, speedup: r.speedup,
      };
    }
  }
}
