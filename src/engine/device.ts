/**
 * A Device is one GPU.js instance on one backend, plus a cache of compiled kernels. It turns the kernel
 * declarations of `kernels/` into callable kernels, runs them under GPU.js's async contract (so webasm can use
 * its worker threads and webgpu can run at all), returns flat Float32Arrays, and refuses to report a backend
 * that did not actually run: a kernel that GPU.js silently moved to another backend is an error.
 */
import gpujs from 'gpu.js';
import type { GPU as GPUType, IKernelRunShortcut } from 'gpu.js';
import { InputError } from '../errors.ts';
import { outputSize, type KernelSpec } from '../../kernels/spec.ts';

const { GPU } = gpujs as unknown as { GPU: typeof GPUType & { isHeadlessGLSupported: boolean; isWebAssemblySupported: boolean } };

export const BACKENDS = ['cpu', 'webasm', 'headlessgl', 'webgpu'] as const;
export type Backend = (typeof BACKENDS)[number];
export type BackendChoice = Backend | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', ...BACKENDS];

/** Why a backend cannot run here, or null when it can. Cheap: no kernel is compiled. */
export function backendUnavailableReason(backend: Backend): string | null {
  switch (backend) {
    case 'cpu':
      return null;
    case 'webasm':
      return GPU.isWebAssemblySupported ? null : 'this Node.js has no WebAssembly SIMD support';
    case 'headlessgl':
      return GPU.isHeadlessGLSupported ? null
        : 'the optional `gl` addon is not built or no X display is available (run `npm run setup:gl`, then run under `xvfb-run -a`)';
    case 'webgpu':
      return 'the webgpu backend is not wired up in this version yet';
  }
}

/** `auto` resolves to the fastest backend that works on this machine. */
export function resolveBackend(choice: BackendChoice): Backend {
  if (choice !== 'auto') return choice;
  return backendUnavailableReason('webasm') === null ? 'webasm' : 'cpu';
}

/**
 * Largest array (elements) a kernel may read or write on a backend. webasm computes indices in float32 (its
 * kernel locals are f32), and the GL backends address textures through float coordinates, so an index
 * beyond 2^24 is no longer exact there: measured on webasm, reads past 2^24 land on neighbouring elements.
 * cpu (JS doubles) and webgpu (i32 indices) have no such limit short of memory.
 */
export const MAX_EXACT_INDEX = 2 ** 24;

export function maxElementsFor(backend: Backend): number {
  return backend === 'webasm' || backend === 'headlessgl' ? MAX_EXACT_INDEX : 2 ** 31 - 1;
}

/** The GPU.js kernel class that runs on each backend (GL kernels all report mode 'gpu', so the class tells). */
export const KERNEL_CLASS: Record<Backend, string> = {
  cpu: 'CPUKernel', webasm: 'WebAssemblyKernel', headlessgl: 'HeadlessGLKernel', webgpu: 'WebGPUKernel',
};

type CompiledKernel = IKernelRunShortcut & { kernel: { constructor: { name: string }; fallbackReason?: string | null } };

export class Device {
  readonly backend: Backend;
  /** Largest array a kernel may touch here; the Net splits work to stay under it. */
  readonly maxElements: number;
  private readonly gpu: GPUType;
  /** Compiled kernels, least recently used first (a Map keeps insertion order; a hit moves its entry last). */
  private readonly kernels = new Map<string, CompiledKernel>();
  private readonly verified = new Set<CompiledKernel>();
  /**
   * How many compiled kernels to keep. Each holds its own memory (on webasm a WebAssembly memory sized for
   * its arguments and output), so a long session that visits many shapes (the dashboard's N and B keys)
   * must not keep them all; one training run uses under 100.
   */
  private readonly maxKernels: number;

  private constructor(backend: Backend, maxKernels: number) {
    this.backend = backend;
    this.maxKernels = maxKernels;
    this.maxElements = maxElementsFor(backend);
    this.gpu = new GPU({ mode: backend });
  }

  /** Opens a device; an unavailable backend is a user-facing error naming what would enable it. */
  static open(choice: BackendChoice = 'auto', opts: { maxKernels?: number } = {}): Device {
    const backend = resolveBackend(choice);
    const reason = backendUnavailableReason(backend);
    if (reason) throw new InputError(`backend ${backend} is not available: ${reason}`);
    return new Device(backend, opts.maxKernels ?? 256);
  }

  /** The compiled kernel for a spec, built on first use and cached by name, grid and constants. */
  kernel(spec: KernelSpec): CompiledKernel {
    const key = `${spec.name}|${spec.output.join('x')}|${JSON.stringify(spec.constants)}`;
    let k = this.kernels.get(key);
    if (k) {
      this.kernels.delete(key);
    } else {
      this.evictOldest();
      k = this.gpu.createKernel(spec.fn as any, {
        output: spec.output,
        constants: spec.constants,
        ...(spec.returnType ? { returnType: spec.returnType } : {}),
        asyncMode: true,
        precision: 'single',
        tactic: 'precision',
        // loops have constant bounds; this only lifts GPU.js's guard for dynamic ones
        loopMaxIterations: 1 << 20,
      } as any) as unknown as CompiledKernel;
    }
    this.kernels.set(key, k);
    return k;
  }

  /** Frees the least recently used kernel when the cache is full (runs are awaited one at a time, so it is idle). */
  private evictOldest(): void {
    if (this.kernels.size < this.maxKernels) return;
    const [key, oldest] = this.kernels.entries().next().value as [string, CompiledKernel];
    this.kernels.delete(key);
    this.verified.delete(oldest);
    oldest.destroy();
  }

  /** Runs a kernel and returns its output as one flat Float32Array in grid order (x fastest). */
  async run(spec: KernelSpec, ...args: Array<Float32Array | number>): Promise<Float32Array> {
    const size = outputSize(spec);
    for (const a of args) {
      if (typeof a !== 'number' && a.length > this.maxElements) this.tooLarge(spec, a.length);
    }
    if (size > this.maxElements) this.tooLarge(spec, size);
    const k = this.kernel(spec);
    const result = await (k as any)(...args);
    if (!this.verified.has(k)) {
      this.verifyBackend(spec, k);
      this.verified.add(k);
    }
    return flattenResult(result, size);
  }

  private tooLarge(spec: KernelSpec, elements: number): never {
    throw new Error(`kernel ${spec.name}: an array of ${elements} elements exceeds the ${this.maxElements} that ${this.backend} indexes exactly`);
  }

  private verifyBackend(spec: KernelSpec, k: CompiledKernel): void {
    const inner = k.kernel;
    const ran = inner?.constructor?.name;
    if (ran !== KERNEL_CLASS[this.backend]) {
      const why = inner?.fallbackReason ? `: ${inner.fallbackReason}` : '';
      throw new Error(`kernel ${spec.name} ran as ${ran ?? 'an unknown kernel'}, not on ${this.backend}${why}`);
    }
  }

  /** Number of distinct compiled kernels (one per operation and shape). */
  get kernelCount(): number {
    return this.kernels.size;
  }

  destroy(): void {
    for (const k of this.kernels.values()) k.destroy();
    this.kernels.clear();
    this.gpu.destroy();
  }
}

/**
 * GPU.js returns 2D/3D outputs as nested arrays of rows. On webasm those rows are views of one fresh buffer,
 * which we reuse without copying; otherwise (cpu rows, padded GL textures) the rows are copied out.
 */
export function flattenResult(result: unknown, size: number): Float32Array {
  if (result instanceof Float32Array) {
    if (result.length !== size) throw new Error(`kernel returned ${result.length} values, expected ${size}`);
    return result;
  }
  let first: unknown = result;
  while (Array.isArray(first)) first = first[0];
  if (first instanceof Float32Array && first.byteOffset === 0 && first.buffer.byteLength === size * 4) {
    return new Float32Array(first.buffer, 0, size);
  }
  const out = new Float32Array(size);
  let at = 0;
  const copy = (v: unknown): void => {
    if (v instanceof Float32Array) {
      out.set(v, at);
      at += v.length;
    } else {
      for (const row of v as unknown[]) copy(row);
    }
  };
  copy(result);
  if (at !== size) throw new Error(`kernel returned ${at} values, expected ${size}`);
  return out;
}
