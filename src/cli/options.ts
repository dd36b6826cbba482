/**
 * Flag parsing for the CLI: value parsers for commander's `argParser`, the typed options object
 * each command's `run` receives, and the checks that involve more than one flag.
 *
 * Parsers are factories taking the flag's name so their messages read on their own
 * (`--batch-size must be a positive integer`); commander prefixes the flag and the raw value.
 * They are strict on purpose: `1e3`, `0x10`, `1.0` and `` are not integers, and a value that
 * would silently wrap or round (a seed above 2^32-1, `1e400`) is refused rather than changed.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../engine/device-node.ts';
import type { InvertMode } from '../io/png.ts';
import { PEER_NAMES, type PeerName } from '../peers/peer.ts';

export { BACKEND_CHOICES };
export type { BackendChoice, InvertMode };

/** Where the CLI writes; process.stdout/stderr fit, and tests pass collectors. */
export interface Writer {
  write(text: string): unknown;
  /** Terminal width when the writer is a TTY; used for help text wrapping. */
  columns?: number;
  isTTY?: boolean;
}

export interface CliIO {
  stdout: Writer;
  stderr: Writer;
}

export const INVERT_MODES = ['auto', 'yes', 'no'] as const satisfies readonly InvertMode[];
// Fails to compile if png.ts grows an InvertMode this list lacks.
const _invertModesComplete: InvertMode extends (typeof INVERT_MODES)[number] ? true : never = true;
void _invertModesComplete;

export const OPTIMIZERS = ['adadelta', 'sgd'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

/** The seeded PRNG takes the seed as a uint32 (`seed >>> 0`); larger seeds would silently wrap. */
export const MAX_SEED = 0xffff_ffff;

/** The package root (holds package.json and fixtures/), independent of the cwd. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_MODEL_FILE = 'mnist_cnn.safetensors';
export const DEFAULT_IMAGE = 'fixtures/1.png';
export const SHIPPED_MODEL = 'fixtures/mnist_cnn.safetensors';

/** A mistake in how flags combine (as opposed to one flag's value). The CLI reports it with exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

// ---------------------------------------------------------------------------------------------
// Value parsers

const INTEGER = /^[0-9]+$/;
// Plain decimal with optional exponent; excludes hex, `Infinity`, `NaN` and the empty string,
// all of which Number() would otherwise accept or turn into 0.
const DECIMAL = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

function integer(name: string, value: string, min: number, max: number, what: string): number {
  const n = INTEGER.test(value) ? Number(value) : NaN;
  if (!(n >= min)) throw new InvalidArgumentError(`${name} must be ${what}.`);
  // Also catches digit strings beyond 2^53, which Number() would round.
  if (n > max) throw new InvalidArgumentError(`${name} must be at most ${max}.`);
  return n;
}

export function positiveInt(name: string, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => integer(name, value, 1, max, 'a positive integer');
}

export function nonNegativeInt(name: string, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => integer(name, value, 0, max, 'a non-negative integer');
}

function finite(name: string, value: string, positive: boolean): number {
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  const ok = Number.isFinite(n) && (positive ? n > 0 : n >= 0);
  // -0 parses fine but reads oddly downstream; normalise it.
  if (ok) return n === 0 ? 0 : n;
  throw new InvalidArgumentError(`${name} must be a ${positive ? 'positive' : 'non-negative'} finite number.`);
}

export function positiveNumber(name: string): (value: string) => number {
  return (value) => finite(name, value, true);
}

export function nonNegativeNumber(name: string): (value: string) => number {
  return (value) => finite(name, value, false);
}

/** Exact, case-sensitive match: the help text shows the spellings. */
export function choice<T extends string>(name: string, choices: readonly T[]): (value: string) => T {
  return (value) => {
    if ((choices as readonly string[]).includes(value)) return value as T;
    throw new InvalidArgumentError(`${name} must be one of ${choices.join(', ')}.`);
  };
}

/**
 * `1,2,4,8` → [1, 2, 4, 8]. Spaces around items are allowed; empty items and duplicates are errors
 * (a duplicate is almost surely a typo, and a sweep point measured twice is wasted time). The result
 * is sorted ascending so a sweep reads as a scaling curve whatever order it was typed in.
 */
export function positiveIntList(name: string, max = Number.MAX_SAFE_INTEGER): (value: string) => number[] {
  return (value) => {
    const items = value.split(',').map((s) => s.trim());
    const seen = new Set<number>();
    for (const item of items) {
      const n = INTEGER.test(item) ? Number(item) : NaN;
      if (!(n >= 1)) {
        throw new InvalidArgumentError(`${name} must be a comma-separated list of positive integers, e.g. 1,2,4,8.`);
      }
      if (n > max) throw new InvalidArgumentError(`${name} values must be at most ${max}.`);
      if (seen.has(n)) throw new InvalidArgumentError(`${name} lists ${n} more than once.`);
      seen.add(n);
    }
    return [...seen].sort((a, b) => a - b);
  };
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** `tfjs,onnxruntime` or `all` → the peers, in the order of PEER_NAMES; unknown names and duplicates are errors. */
export function peerList(name: string): (value: string) => PeerName[] {
  return (value) => {
    if (value.trim() === 'all') return [...PEER_NAMES];
    const items = value.split(',').map((s) => s.trim());
    for (const item of items) {
      if (!(PEER_NAMES as readonly string[]).includes(item)) throw new InvalidArgumentError(`${name} takes ${PEER_NAMES.join(', ')} or all, comma-separated; got "${item}".`);
    }
    if (new Set(items).size !== items.length) throw new InvalidArgumentError(`${name} lists a peer more than once.`);
    return PEER_NAMES.filter((p) => items.includes(p));
  };
}

/** `1mb`, `512kb`, `65536` → bytes (binary units, case-insensitive); at least 1 KiB, at most 1 GiB. */
export function byteSize(name: string): (value: string) => number {
  return (value) => {
    const m = /^([0-9]+)\s*(b|kb|mb|gb)?$/i.exec(value.trim());
    const n = m ? Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()]! : NaN;
    if (!(n >= 1024 && n <= 1024 ** 3)) {
      throw new InvalidArgumentError(`${name} must be a size from 1kb to 1gb, e.g. 1mb, 512kb or 65536 (bytes).`);
    }
    return n;
  };
}

/** A TCP port, 0 (any free port) to 65535. */
export function port(name: string): (value: string) => number {
  return (value) => integer(name, value, 0, 65535, 'a port number from 0 to 65535');
}

// ---------------------------------------------------------------------------------------------
// Options objects, one per command. Paths are absolute (resolved against the cwd).

export interface TrainOptions {
  batchSize: number;
  testBatchSize: number;
  epochs: number;
  lr: number;
  gamma: number;
  seed: number;
  logInterval: number;
  dryRun: boolean;
  /** True with --save-model, or when --model-path was given (naming a file means "save it there"). */
  saveModel: boolean;
  optimizer: OptimizerName;
  /** SGD only; always 0 with adadelta (a non-zero value there is refused). */
  momentum: number;
  weightDecay: number;
  backend: BackendChoice;
  /** Directory of IDX files; undefined: the digits bundled with the `mnist` package. */
  dataDir: string | undefined;
  /** Use at most this many training digits; undefined: all of them. */
  limit: number | undefined;
  /** Stratified first N test digits; undefined: the whole test split. */
  testLimit: number | undefined;
  modelPath: string;
  numModels: number;
  /** Model file to continue training from; undefined: fresh weights from --seed. */
  resume: string | undefined;
  json: boolean;
}

export interface PredictOptions {
  /** At least one path. */
  images: string[];
  /** undefined: every model in the file */
  numModels: number | undefined;
  modelPath: string;
  backend: BackendChoice;
  invert: InvertMode;
  json: boolean;
}

/** What to serve, on what, and how long to time it: the options bench and the dashboard share. */
export interface ServingBenchOptions {
  /** Models per run; with bench --sweep, the sweep's values are used instead. */
  numModels: number;
  imagePath: string;
  modelPath: string;
  batchSize: number;
  warmup: number;
  iters: number;
  backend: BackendChoice;
  invert: InvertMode;
}

/** The dashboard takes the shared options and the peers. */
export interface DashboardOptions extends ServingBenchOptions {
  /** Other engines timed after this project's paths on the same models (`--peers`); empty: none. */
  peers: PeerName[];
  /** Threads of each onnxruntime session (TF.js's wasm backend has none in Node). */
  peerThreads: number;
}

export interface BenchOptions extends DashboardOptions {
  /** Distinct model counts to benchmark, ascending; undefined: just numModels. */
  sweep: number[] | undefined;
  json: boolean;
  /** Live terminal UI; always false with --json, whose stdout is the JSON document. */
  ui: boolean;
}

export const SERVE_PATHS = ['single', 'sequential'] as const;
export type ServePath = (typeof SERVE_PATHS)[number];

export interface ServeOptions {
  /** Models served; a single-model file is replicated. */
  numModels: number;
  modelPath: string;
  backend: BackendChoice;
  host: string;
  /** 0: any free port */
  port: number;
  path: ServePath;
  maxBatchSize: number;
  maxBatchDelayMs: number;
  batchBuckets: number[];
  queueSize: number;
  queueTimeoutMs: number;
  bodyLimitBytes: number;
  exitTimeoutS: number;
  jsonLog: boolean;
  /** serve the page and its files only: no models loaded, the visitor's browser computes (`mnist-gpujs web`) */
  webOnly: boolean;
}

/** What the builders need besides the flag values. */
export interface ParseContext {
  cwd: string;
  /** Names (camelCase) of the options the user gave on the command line, as opposed to defaults. */
  explicit: ReadonlySet<string>;
}

/** A built options object plus notes to print as warnings (the run still goes ahead). */
export interface Parsed<T> {
  options: T;
  warnings: string[];
}

/** ./mnist_cnn.safetensors when the cwd has one (what `train --save-model` writes), else the shipped model. */
export function defaultModelPath(cwd: string): string {
  const local = resolve(cwd, DEFAULT_MODEL_FILE);
  return existsSync(local) ? local : resolve(PACKAGE_ROOT, SHIPPED_MODEL);
}

/** fixtures/1.png from the cwd when it has one (e.g. in a clone), else the shipped fixture. */
export function defaultImagePath(cwd: string): string {
  const local = resolve(cwd, DEFAULT_IMAGE);
  return existsSync(local) ? local : resolve(PACKAGE_ROOT, DEFAULT_IMAGE);
}

function optionalPath(cwd: string, p: unknown): string | undefined {
  return typeof p === 'string' ? resolve(cwd, p) : undefined;
}

// Commander hands back Record<string, any>; each builder reads the keys its command declared.
type Raw = Record<string, any>;

export function buildTrainOptions(raw: Raw, ctx: ParseContext): Parsed<TrainOptions> {
  const optimizer = raw.optimizer as OptimizerName;
  const momentum = raw.momentum as number;
  // Fail fast: a long training run with a silently ignored hyperparameter is the worse outcome.
  if (momentum !== 0 && optimizer !== 'sgd') {
    throw new UsageError(`--momentum applies only to --optimizer sgd (got --optimizer ${optimizer}).`);
  }
  return {
    options: {
      batchSize: raw.batchSize,
      testBatchSize: raw.testBatchSize,
      epochs: raw.epochs,
      lr: raw.lr,
      gamma: raw.gamma,
      seed: raw.seed,
      logInterval: raw.logInterval,
      dryRun: raw.dryRun === true,
      // a resumed run exists to be kept, so it saves too
      saveModel: raw.saveModel === true || ctx.explicit.has('modelPath') || raw.resume !== undefined,
      optimizer,
      momentum,
      weightDecay: raw.weightDecay,
      backend: raw.backend,
      dataDir: optionalPath(ctx.cwd, raw.dataDir),
      limit: raw.limit,
      testLimit: raw.testLimit,
      modelPath: resolve(ctx.cwd, raw.modelPath),
      numModels: raw.numModels,
      resume: optionalPath(ctx.cwd, raw.resume),
      json: raw.json === true,
    },
    warnings: [],
  };
}

/** The options bench and dashboard share: what to serve, on what, how long to time it, and the peers. */
function servingBenchOptions(raw: Raw, ctx: ParseContext): DashboardOptions {
  return {
    peers: (raw.peers as PeerName[] | undefined) ?? [],
    peerThreads: raw.peerThreads as number,
    numModels: raw.numModels,
    imagePath: optionalPath(ctx.cwd, raw.imagePath) ?? defaultImagePath(ctx.cwd),
    modelPath: optionalPath(ctx.cwd, raw.modelPath) ?? defaultModelPath(ctx.cwd),
    batchSize: raw.batchSize,
    warmup: raw.warmup,
    iters: raw.iters,
    backend: raw.backend,
    invert: raw.invert,
  };
}

export function buildBenchOptions(raw: Raw, ctx: ParseContext): Parsed<BenchOptions> {
  const warnings: string[] = [];
  const sweep = raw.sweep as number[] | undefined;
  if (sweep && ctx.explicit.has('numModels')) {
    warnings.push(`--sweep ${sweep.join(',')} overrides --num-models ${raw.numModels}.`);
  }
  const json = raw.json === true;
  return {
    options: {
      ...servingBenchOptions(raw, ctx),
      sweep,
      json,
      // JSON goes to stdout, so a live UI there would corrupt it
      ui: raw.ui !== false && !json,
    },
    warnings,
  };
}

export function buildPredictOptions(images: string[], raw: Raw, ctx: ParseContext): Parsed<PredictOptions> {
  return {
    options: {
      images: images.map((p) => resolve(ctx.cwd, p)),
      numModels: raw.numModels,
      modelPath: optionalPath(ctx.cwd, raw.modelPath) ?? defaultModelPath(ctx.cwd),
      backend: raw.backend,
      invert: raw.invert,
      json: raw.json === true,
    },
    warnings: [],
  };
}

export function buildServeOptions(raw: Raw, ctx: ParseContext): Parsed<ServeOptions> {
  const warnings: string[] = [];
  const buckets = raw.batchBuckets as number[];
  const maxBatchSize = raw.maxBatchSize as number;
  const above = buckets.filter((b) => b > maxBatchSize);
  if (above.length > 0) warnings.push(`--batch-buckets ${above.join(',')} exceed --max-batch-size ${maxBatchSize}; they are not used.`);
  if (ctx.explicit.has('batchBuckets') && !buckets.includes(maxBatchSize)) {
    warnings.push(`--max-batch-size ${maxBatchSize} is not among --batch-buckets; it is added as the largest bucket.`);
  }
  // Node runs a longer timer after 1 ms: a large value would expire every request at once
  const MAX_TIMER_MS = 2 ** 31 - 1;
  for (const [flag, ms] of [['--queue-timeout-ms', raw.queueTimeoutMs], ['--max-batch-delay-ms', raw.maxBatchDelayMs], ['--exit-timeout-s', raw.exitTimeoutS * 1000]] as const) {
    if (ms > MAX_TIMER_MS) throw new UsageError(`${flag} is too large: at most ${flag.endsWith('-s') ? Math.floor(MAX_TIMER_MS / 1000) : MAX_TIMER_MS}.`);
  }
  if (raw.maxBatchDelayMs >= raw.queueTimeoutMs) {
    warnings.push(`--max-batch-delay-ms ${raw.maxBatchDelayMs} is not below --queue-timeout-ms ${raw.queueTimeoutMs}: a lone request would time out before its batch runs.`);
  }
  return {
    options: {
      numModels: raw.numModels,
      modelPath: optionalPath(ctx.cwd, raw.modelPath) ?? defaultModelPath(ctx.cwd),
      backend: raw.backend,
      host: raw.host,
      port: raw.port,
      path: raw.path,
      maxBatchSize,
      maxBatchDelayMs: raw.maxBatchDelayMs,
      batchBuckets: buckets,
      queueSize: raw.queueSize,
      queueTimeoutMs: raw.queueTimeoutMs,
      bodyLimitBytes: raw.bodyLimit,
      exitTimeoutS: raw.exitTimeoutS,
      jsonLog: raw.jsonLog === true,
      webOnly: raw.webOnly === true,
    },
    warnings,
  };
}

export function buildDashboardOptions(raw: Raw, ctx: ParseContext): Parsed<DashboardOptions> {
  return { options: servingBenchOptions(raw, ctx), warnings: [] };
}
