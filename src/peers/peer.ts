/**
 * The engines a user would pick instead of this one, run beside it by `bench --peers`: TensorFlow.js on its
 * WebAssembly backend and onnxruntime-node, each on the same N models (the model file's weights), two ways:
 * sequential (N graphs or sessions, one after another) and stacked (one graph for all N, the peer's single
 * dispatch). Each way is a `Runner`, so the harness times a peer exactly as it times this project's paths.
 *
 * The peers are optional packages (large, native): not installed by `npm install`; `npm run setup:peers` installs
 * them. They are loaded by name at run time, so nothing here needs their type declarations.
 */
import { InputError } from '../errors.ts';
import type { Runner } from '../engine/runners.ts';
import type { ModelSource } from '../model/stack.ts';

export const PEER_NAMES = ['tfjs', 'onnxruntime'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/** What the JSON's `peers[]` says about an engine. */
export interface PeerInfo {
  engine: PeerName;
  version: string;
  /** e.g. "wasm" (TF.js), "cpu" (onnxruntime's CPU execution provider) */
  backend: string;
  threads: number;
}

export interface Peer extends PeerInfo {
  /** Both ways over the first N models of `models`: N graphs (sequential) and one stacked graph (singleDispatch). */
  paths(models: ModelSource, numModels: number): Promise<{ numModels: number; sequential: Runner; singleDispatch: Runner }>;
}

/** Loads a package by name; tests substitute one that fails as a missing package does. */
export type Importer = (name: string) => Promise<any>;
export const importPackage: Importer = (name) => import(name);

/** The one line `bench --peers` prints when a peer's packages are not installed. */
export class PeerMissingError extends InputError {
  constructor(peer: PeerName, pkg: string) {
    super(`bench --peers ${peer} needs ${pkg}, which is not installed: run \`npm run setup:peers\``);
  }
}

/** Loads `pkg` for `peer`, turning "not installed" into PeerMissingError and leaving other failures as they are. */
export async function requirePeerPackage(peer: PeerName, pkg: string, importer: Importer): Promise<any> {
  try {
    return await importer(pkg);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new PeerMissingError(peer, pkg);
    throw err;
  }
}

/** Opens the named peers, in order, with `threads` threads each where the engine has a thread pool. */
export async function openPeers(names: readonly PeerName[], threads: number, importer: Importer = importPackage): Promise<Peer[]> {
  const peers: Peer[] = [];
  for (const name of names) {
    const module = name === 'tfjs' ? await import('./tfjs.ts') : await import('./onnxruntime.ts');
    peers.push(await module.openPeer(threads, importer));
  }
  return peers;
}

/** A runner over per-call functions: N calls of one model each (sequential) or one call for all (stacked). */
export class PeerRunner implements Runner {
  constructor(
    readonly kind: Runner['kind'],
    readonly numModels: number,
    /** graph runs per request: N sequentially, 1 stacked */
    readonly planRuns: number,
    readonly executorKind: string,
    private readonly run: (x: Float32Array, B: number) => Promise<Float32Array>,
    private readonly free: () => void,
  ) {}

  predict(x: Float32Array, B: number): Promise<Float32Array> {
    return this.run(x, B);
  }

  destroy(): void {
    this.free();
  }
}

/** Each model's output [B, 10] one after another: [N, B, 10], as this project's runners return. */
export function concatenated(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** w [rows, cols] row-major → [cols, rows], for each of `count` stacked matrices. */
export function transposeEach(w: Float32Array, count: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let n = 0; n < count; n++) {
    const base = n * rows * cols;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[base + c * rows + r] = w[base + r * cols + c]!;
  }
  return out;
}
