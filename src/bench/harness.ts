/**
 * The benchmark harness behind `mnist-gpujs bench` and the live dashboard, the one place that runs and times the
 * two serving paths: check that both give the same answer, then time them fairly. UI-free: callers see every
 * call through events (`BenchEvent`) and can stop a run with an AbortSignal; the harness yields to the event loop
 * between chunks so a live view can redraw.
 *
 * Timing method. We time each call ourselves with performance.now() rather than through tinybench: we need
 * exactly --warmup and --iters calls per path, per-call progress for the bars, one sample set per path merged
 * across alternating chunks, and an abort point between chunks. A tinybench Bench resets its results on each
 * run() and reports only per-cycle events, so driving it chunk by chunk would leave us re-merging its retained
 * samples and recomputing every statistic anyway, with nothing left for it to do but read the clock.
 * - Every call is awaited: a runner's promise resolves with the read-back log-probabilities, so a sample
 *   covers upload, the plan runs and read-back, as a caller would see it.
 * - Both paths have run once before warm-up (the agreement check), so kernel compilation never lands in the
 *   warm-up count or in a sample, even with --warmup 0.
 * - The timed calls alternate between the paths in chunks (ABBA order: sequential first in even chunks, single
 *   dispatch first in odd ones), so drift from other load on the machine, thermal state or GC hits both paths.
 */
import { NUM_CLASSES } from '../model/cnn.ts';
import { predictionsOf } from '../model/outputs.ts';
import type { ModelSource } from '../model/stack.ts';
import type { Device } from '../engine/device.ts';
import { SequentialRunner, SingleDispatchRunner, type Runner } from '../engine/runners.ts';
import type { PeerResult } from './peers.ts';

/** The two paths, named as in the JSON output. */
export type PathKey = 'sequential' | 'singleDispatch';
export const PATHS: readonly PathKey[] = ['sequential', 'singleDispatch'];
/** The paths as people read them, in every front end. */
export const PATH_LABEL: Record<PathKey, string> = { sequential: 'sequential', singleDispatch: 'single dispatch' };

/** Largest |sequential − single dispatch| log-probability accepted as the same answer. */
export const AGREEMENT_TOLERANCE = 1e-5;
/** Largest |this project − another engine| log-probability accepted (other kernels, other summation orders). */
export const PEER_TOLERANCE = 1e-4;
export const DEFAULT_CHUNKS = 10;
/** What a speedup at N = 1 means, shown beside it by `bench` and the dashboard: both paths are one and the same plan. */
export const ONE_MODEL_NOTE = 'N = 1: both paths run the same plan, so the ratio is only timing noise';

export interface LatencyStats {
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
  /** number of timed calls */
  samples: number;
}

export interface PathStats extends LatencyStats {
  /** Requests (calls of B images) per second, one request in flight: 1000 / meanMs. */
  requestsPerSecond: number;
  /** N × B × requestsPerSecond: single-image, single-model forward passes per second. */
  modelEvaluationsPerSecond: number;
}

export interface Agreement {
  maxAbsDiff: number;
  samePredictions: boolean;
  tolerance: number;
}

/** How one path ran: plan runs per request, and the executor GPU.js ran its plans with. */
export interface PathExecution {
  /** plan runs one request takes: N sequentially; 1 in single dispatch (a few past a device's limit) */
  planRuns: number;
  /** the former name of `planRuns` in the JSON output, kept for one release */
  dispatches: number;
  /** e.g. 'fused-threaded', 'fused-encoder'; see `Plan.executorKind` */
  executorKind: string;
}

/** One model count's result; the shape of the JSON output's per-N fields. */
export interface ModelsBenchmark {
  numModels: number;
  /** Each model's predicted digit for the image (single dispatch; the B copies are the same image). */
  predictions: number[];
  agreement: Agreement;
  sequential: PathStats;
  singleDispatch: PathStats;
  execution: Record<PathKey, PathExecution>;
  /** sequential mean / single-dispatch mean */
  speedup: number;
}

/** One model count's result as `bench --json` prints it (and the browser page's benchmark panel copies). */
export type BenchEntry = ModelsBenchmark & { replicated: boolean; peers?: PeerResult[] };

/** What `bench --json` says about the run around its entries; the page's panel fills in the same fields. */
export interface BenchRunInfo {
  backend: string;
  adapter: string | null;
  modelPath: string;
  fileModels: number;
  batchSize: number;
  warmup: number;
  iters: number;
  chunks: number;
  image: { path: string; width: number; height: number; shape: number[]; inverted: boolean; warnings: string[] };
}

/** The `bench --json` document: one model count's entry at the top level, or a sweep's entries under `sweep`. */
export function benchDocument(run: BenchRunInfo, entries: readonly BenchEntry[], sweep: boolean): object {
  return { ...run, ...(sweep ? { sweep: entries } : entries[0]) };
}

export type Phase = 'warmup' | 'timed';

/**
 * What the harness reports while it benchmarks one model count, in this order: `start`; `first-request`; per
 * path a warm-up `phase` and its `call`s; both paths' timed `phase`s, then their `call`s alternating chunk by
 * chunk; `result`. Every call comes with its latency and output, so a live view needs no clock of its own.
 */
export type BenchEvent =
  | { type: 'start'; numModels: number; batchSize: number; planRuns: Record<PathKey, number> }
  | {
    type: 'first-request'; numModels: number;
    /** [N][B] */
    predictions: number[][];
    agreement: Agreement;
    execution: Record<PathKey, PathExecution>;
  }
  | { type: 'phase'; numModels: number; phase: Phase; path: PathKey; total: number }
  | {
    type: 'call'; numModels: number; phase: Phase; path: PathKey;
    /** calls done of `total` in this phase for this path, this one included */
    done: number;
    total: number;
    /** this call's latency; in the timed phase it is the sample the statistics use */
    latencyMs: number;
    /** log-probabilities [N, B, 10] */
    output: Float32Array;
    /** the last call of a timed chunk: the harness yields to the event loop after it */
    endsChunk: boolean;
  }
  | { type: 'result'; result: ModelsBenchmark };

export interface BenchConfig {
  warmup: number;
  iters: number;
  /** Alternation chunks; capped at iters. */
  chunks?: number;
  /** checked between calls of the warm-up and between chunks: an aborted run rejects with the signal's reason */
  signal?: AbortSignal;
  /** largest |sequential − single dispatch| accepted (default AGREEMENT_TOLERANCE; another engine's two graphs get PEER_TOLERANCE) */
  tolerance?: number;
  onEvent?: (e: BenchEvent) => void;
}

/** The two paths disagree: a bug in a kernel or runner, never the user's input. */
export class AgreementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgreementError';
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile of ascending samples: the smallest sample with at least p% of samples ≤ it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no samples');
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function latencyStats(samplesMs: readonly number[]): LatencyStats {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const meanMs = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    meanMs,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    minMs: sorted[0]!,
    maxMs: sorted[sorted.length - 1]!,
    samples: sorted.length,
  };
}

export function pathStats(samplesMs: readonly number[], modelEvaluationsPerRequest: number): PathStats {
  const stats = latencyStats(samplesMs);
  const requestsPerSecond = 1000 / stats.meanMs;
  return { ...stats, requestsPerSecond, modelEvaluationsPerSecond: modelEvaluationsPerRequest * requestsPerSecond };
}

// ---------------------------------------------------------------------------------------------
// Agreement

/**
 * Compares the two paths' outputs for one request; throws AgreementError when a prediction differs or a
 * log-probability differs by more than `tolerance` (NaN counts as a difference).
 */
export function checkAgreement(
  sequential: Float32Array, singleDispatch: Float32Array, numModels: number, B: number, tolerance = AGREEMENT_TOLERANCE,
): Agreement {
  const size = numModels * B * NUM_CLASSES;
  if (sequential.length !== size || singleDispatch.length !== size) {
    throw new AgreementError(`outputs hold ${sequential.length} (sequential) and ${singleDispatch.length} (single dispatch) values, expected ${size}`);
  }
  let maxAbsDiff = 0;
  let worst = 0;
  for (let i = 0; i < size; i++) {
    const d = Math.abs(sequential[i]! - singleDispatch[i]!);
    // written so that NaN on either side counts as the worst difference
    if (!(d <= maxAbsDiff)) {
      maxAbsDiff = Number.isNaN(d) ? Infinity : d;
      worst = i;
    }
  }
  const seqPred = predictionsOf(sequential, numModels, B);
  const sdPred = predictionsOf(singleDispatch, numModels, B);
  const samePredictions = seqPred.every((row, m) => row.every((c, b) => c === sdPred[m]![b]));
  if (!samePredictions || !(maxAbsDiff <= tolerance)) {
    const at = Math.floor(worst / NUM_CLASSES);
    const list = (p: number[][]) => `[${p.map((row) => row.join(' ')).join(', ')}]`;
    throw new AgreementError(`sequential and single-dispatch outputs disagree for ${numModels} model(s): `
      + `max |difference| of log-probabilities ${maxAbsDiff.toExponential(2)} (tolerance ${tolerance}) at model `
      + `${Math.floor(at / B)}, image ${at % B}, class ${worst % NUM_CLASSES}; predictions sequential ${list(seqPred)}, `
      + `single dispatch ${list(sdPred)}`);
  }
  return { maxAbsDiff, samePredictions, tolerance };
}

// ---------------------------------------------------------------------------------------------
// Runs

/** The two paths serving the same N models, built by the caller (`makePaths`, or runners of its own). */
export interface ServingPaths {
  numModels: number;
  sequential: Runner;
  singleDispatch: Runner;
}

/** Both paths serving the first `numModels` of `models`; free them with `destroyPaths`. */
export function makePaths(device: Device, models: ModelSource, numModels: number): ServingPaths {
  return {
    numModels,
    sequential: new SequentialRunner(device, models, numModels),
    singleDispatch: new SingleDispatchRunner(device, models, numModels),
  };
}

/** Frees both paths' compiled plans and resident weights. */
export function destroyPaths(paths: ServingPaths): void {
  paths.sequential.destroy();
  paths.singleDispatch.destroy();
}

/** One request on each path (compiling their kernels on first use), checked for agreement. */
export async function firstRequest(paths: ServingPaths, x: Float32Array, B: number, tolerance = AGREEMENT_TOLERANCE): Promise<{
  predictions: number[][]; agreement: Agreement;
}> {
  const singleDispatch = await paths.singleDispatch.predict(x, B);
  const sequential = await paths.sequential.predict(x, B);
  const agreement = checkAgreement(sequential, singleDispatch, paths.numModels, B, tolerance);
  return { predictions: predictionsOf(singleDispatch, paths.numModels, B), agreement };
}

/** Lets a live view redraw between chunks: setImmediate in Node, a zero timeout in a browser (which has none). */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => (globalThis.setImmediate ?? setTimeout)(resolve));

/** `iters` split into `chunks` near-equal parts (sizes differ by at most one, larger first). */
export function chunkSizes(iters: number, chunks: number): number[] {
  const n = Math.max(1, Math.min(chunks, iters));
  return Array.from({ length: n }, (_, i) => Math.floor(iters / n) + (i < iters % n ? 1 : 0));
}

/** One awaited call, timed: upload, compute and read-back, as a caller sees it. */
async function timedCall(runner: Runner, x: Float32Array, B: number): Promise<{ latencyMs: number; output: Float32Array }> {
  const t0 = performance.now();
  const output = await runner.predict(x, B);
  return { latencyMs: performance.now() - t0, output };
}

function executionOf(runner: Runner): PathExecution {
  return { planRuns: runner.planRuns, dispatches: runner.planRuns, executorKind: runner.executorKind };
}

/**
 * The whole benchmark for one model count, on paths the caller built and frees: first request and agreement,
 * warm-up, alternating timed calls, and agreement again on the last timed outputs (a path that drifts once warm
 * is caught too). Progress, every call and the result go to `cfg.onEvent` (see `BenchEvent`).
 */
export async function benchmarkModels(paths: ServingPaths, x: Float32Array, B: number, cfg: BenchConfig): Promise<ModelsBenchmark> {
  const { signal } = cfg;
  const emit = cfg.onEvent ?? (() => {});
  const N = paths.numModels;
  emit({ type: 'start', numModels: N, batchSize: B, planRuns: { sequential: paths.sequential.planRuns, singleDispatch: paths.singleDispatch.planRuns } });

  const first = await firstRequest(paths, x, B, cfg.tolerance);
  const execution = { sequential: executionOf(paths.sequential), singleDispatch: executionOf(paths.singleDispatch) };
  emit({ type: 'first-request', numModels: N, ...first, execution });
  signal?.throwIfAborted(); // compiling may have taken long: a stop asked for meanwhile takes effect now

  for (const path of PATHS) {
    emit({ type: 'phase', numModels: N, phase: 'warmup', path, total: cfg.warmup });
    for (let i = 0; i < cfg.warmup; i++) {
      signal?.throwIfAborted();
      const call = await timedCall(paths[path], x, B);
      emit({ type: 'call', numModels: N, phase: 'warmup', path, done: i + 1, total: cfg.warmup, ...call, endsChunk: false });
      await yieldToEventLoop(); // untimed, so a live view may redraw after every call
    }
  }

  const samplesMs: Record<PathKey, number[]> = { sequential: [], singleDispatch: [] };
  const lastOutputs = {} as Record<PathKey, Float32Array>;
  const sizes = chunkSizes(cfg.iters, cfg.chunks ?? DEFAULT_CHUNKS);
  // both paths' timed phases start now (they interleave), so rates and ETAs are measured from here
  for (const path of PATHS) emit({ type: 'phase', numModels: N, phase: 'timed', path, total: cfg.iters });
  for (let c = 0; c < sizes.length; c++) {
    const order: readonly PathKey[] = c % 2 === 0 ? PATHS : [...PATHS].reverse();
    for (const path of order) {
      const samples = samplesMs[path];
      for (let i = 0; i < sizes[c]!; i++) {
        const call = await timedCall(paths[path], x, B);
        samples.push(call.latencyMs);
        lastOutputs[path] = call.output;
        emit({ type: 'call', numModels: N, phase: 'timed', path, done: samples.length, total: cfg.iters, ...call, endsChunk: i === sizes[c]! - 1 });
      }
      signal?.throwIfAborted();
      await yieldToEventLoop();
    }
  }

  const last = checkAgreement(lastOutputs.sequential, lastOutputs.singleDispatch, N, B, cfg.tolerance);
  const sequential = pathStats(samplesMs.sequential, N * B);
  const singleDispatch = pathStats(samplesMs.singleDispatch, N * B);
  const result: ModelsBenchmark = {
    numModels: N,
    predictions: first.predictions.map((row) => row[0]!),
    agreement: { ...first.agreement, maxAbsDiff: Math.max(first.agreement.maxAbsDiff, last.maxAbsDiff) },
    sequential,
    singleDispatch,
    execution,
    speedup: sequential.meanMs / singleDispatch.meanMs,
  };
  emit({ type: 'result', result });
  return result;
}

/** The request: one normalised image [1,28,28] repeated B times → [B,1,28,28]. */
export function repeatImage(image: Float32Array, B: number): Float32Array {
  const x = new Float32Array(B * image.length);
  for (let b = 0; b < B; b++) x.set(image, b * image.length);
  return x;
}
