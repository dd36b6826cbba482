/**
 * A Device is one GPU.js instance on one backend, plus a cache of compiled kernels. It turns the kernel
 * declarations of `kernels/` into callable kernels, runs them under GPU.js's async contract (so webasm can use
 * its worker threads and webgpu can run at all), returns flat Float32Arrays, and refuses to report a backend
 * that did not actually run: a kernel that GPU.js silently moved to another backend is an error.
 *
 * This module runs in Node and in a browser alike: it imports nothing from Node. Choosing and opening a backend is
 * each platform's own: `device-node.ts` (webasm's patch probes, the `webgpu` addon, headless-gl) and
 * `device-browser.ts` (`navigator.gpu`, a WebGL2 canvas). Front ends open a device through their platform's module.
 */
import gpujs from 'gpu.js';
import type { GPU as GPUType, IKernelRunShortcut } from 'gpu.js';
import { outputSize, type KernelSpec } from '../../kernels/spec.ts';
import { ResultPool } from './result-pool.ts';

const { GPU } = gpujs as unknown as { GPU: typeof GPUType };

/** Every GPU.js backend a Device runs on: the first four in Node, webgl2 (and cpu, webgpu) in a browser. */
export type Backend = 'cpu' | 'webasm' | 'headlessgl' | 'webgpu' | 'webgl2';

export interface AdapterInfo {
  /** What a user reads: vendor, architecture and driver, e.g. "google swiftshader (SwiftShader driver 5.0.0)". */
  description: string;
  /** A CPU implementation of the GPU API, not a GPU. */
  software: boolean;
}

/** Renderer names of GPU APIs implemented on the CPU: correct results, far slower than a GPU. */
export const SOFTWARE_RENDERERS = /swiftshader|llvmpipe|lavapipe|softpipe|software/i;

/** A WebGPU adapter's info (Dawn's in Node, `navigator.gpu`'s in a browser) as a user reads it. */
export function describeAdapter(a: { vendor?: string; architecture?: string; description?: string; fallback?: boolean }): AdapterInfo {
  const name = [a.vendor, a.architecture].filter((s) => s).join(' ') || 'unnamed adapter';
  const description = a.description ? `${name} (${a.description})` : name;
  return { description, software: !!a.fallback || SOFTWARE_RENDERERS.test(`${name} ${a.description ?? ''}`) };
}

/**
 * Largest array (elements) a kernel may read or write on a backend. The GL backends address textures through
 * float coordinates, so an index beyond 2^24 is no longer exact there. webasm computes every index built from
 * integer terms in i32 (patches/: its locals are f32, each integer local gets an i32 shadow) and refuses to
 * compile a kernel that would index an array past 2^24 in f32, so its bound is memory: one kernel's arrays share
 * one 32-bit WebAssembly memory (4 GiB, 2^30 floats). cpu (JS doubles) and webgpu (i32 indices) have no such
 * limit short of memory.
 */
export const MAX_EXACT_INDEX = 2 ** 24;
/** webasm's largest array: a quarter of its 4 GiB memory, so a kernel's inputs and output fit beside it. */
export const MAX_WEBASM_ELEMENTS = 2 ** 28;

/**
 * Most bytes of recycled result arrays a Device keeps for reuse: a training step of K = 4 models at B = 64
 * hands back ~400 MB; what is given back beyond this is left to the garbage collector.
 */
const RECYCLED_BYTES = 512 * 2 ** 20;

/** webasmExactIndices: gpu.js carries this project's patch, which computes integer indices in i32 on webasm. */
export function maxElementsFor(backend: Backend, webasmExactIndices: boolean): number {
  if (backend === 'webasm') return webasmExactIndices ? MAX_WEBASM_ELEMENTS : MAX_EXACT_INDEX;
  return backend === 'headlessgl' || backend === 'webgl2' ? MAX_EXACT_INDEX : 2 ** 31 - 1;
}

/** The GPU.js kernel class that runs on each backend (GL kernels all report mode 'gpu', so the class tells). */
export const KERNEL_CLASS: Record<Backend, string> = {
  cpu: 'CPUKernel', webasm: 'WebAssemblyKernel', headlessgl: 'HeadlessGLKernel', webgpu: 'WebGPUKernel', webgl2: 'WebGL2Kernel',
};

type CompiledKernel = IKernelRunShortcut & { kernel: { constructor: { name: string }; fallbackReason?: string | null } };

/** A kernel GPU.js silently moved to another backend (its class tells) is an error, not a result. */
function checkKernelClass(spec: KernelSpec, k: CompiledKernel, backend: Backend): void {
  const inner = k.kernel;
  const ran = inner?.constructor?.name;
  if (ran !== KERNEL_CLASS[backend]) {
    const why = inner?.fallbackReason ? `: ${inner.fallbackReason}` : '';
    throw new Error(`kernel ${spec.name} ran as ${ran ?? 'an unknown kernel'}, not on ${backend}${why}`);
  }
}

/**
 * The kernel cache's key: name, grid and sizes, computed once per spec object (the Net keeps its specs, so a
 * training step does not re-serialise them). Array constants (resident weights) are refused: plans own those.
 */
const cacheKeys = new WeakMap<KernelSpec, string>();
function cacheKey(spec: KernelSpec): string {
  let key = cacheKeys.get(spec);
  if (key === undefined) {
    if (Object.values(spec.constants).some((v) => typeof v !== 'number')) {
      throw new Error(`kernel ${spec.name}: array constants (resident weights) belong in a plan, not the kernel cache`);
    }
    key = `${spec.name}|${spec.output.join('x')}|${JSON.stringify(spec.constants)}`;
    cacheKeys.set(spec, key);
  }
  return key;
}

/** What a platform's module found out before opening a Device. */
export interface DeviceSetup {
  backend: Backend;
  /** The GPU behind a GPU backend; undefined on cpu and webasm. */
  adapter?: AdapterInfo;
  /** A line worth showing the user about how this backend runs here, if any. */
  note?: string | null;
  /** Whether kernels can read results back into arrays handed to them (webasm with the gpu.js patch). */
  recycleResults?: boolean;
  /** False where webasm still computes indices in f32 (gpu.js without the patch): arrays stay within 2^24. */
  webasmExactIndices?: boolean;
  /** Whether webasm plans pass vector cells between steps (the gpu.js patch); see `PLAN_VECTOR_CELLS`. */
  webasmVectorCells?: boolean;
  /** A full garbage collection, where the platform offers one (Node); see `Device.collectGarbage`. */
  collectGarbage?: () => void;
  /** How many compiled kernels to keep (default 256). */
  maxKernels?: number;
}

export class Device {
  readonly backend: Backend;
  /** Largest array a kernel may touch here; the Net splits work to stay under it. */
  readonly maxElements: number;
  /**
   * Whether this device's plans may pass cells of several values from one step to the next (`PLAN_VECTOR_CELLS`,
   * and on webasm only with the gpu.js patch): InferencePlan then runs its four-values-a-cell kernels.
   */
  readonly planVectorCells: boolean;
  /** The GPU behind a GPU backend (webgpu's adapter, headlessgl's renderer); undefined on cpu and webasm. */
  readonly adapter: AdapterInfo | undefined;
  /** A line worth showing the user about how this backend runs here (webasm on unpatched gpu.js), or null. */
  readonly note: string | null;
  private readonly gpu: GPUType;
  private readonly plans = new Set<Plan>();
  /** Compiled kernels, least recently used first (a Map keeps insertion order; a hit moves its entry last). */
  private readonly kernels = new Map<string, CompiledKernel>();
  private readonly verified = new Set<CompiledKernel>();
  /** Arrays that results are read back into, recycled (`recycle`); null where the backend allocates its own. */
  private readonly results: ResultPool | null;
  /**
   * The results of the open step (`scope`) not yet handed back nor kept; null outside a step. Held in an object of
   * its own so that views of the device (`Object.create(device)`, whose fields resolve to this one's) share it.
   */
  private readonly step: { live: Set<Float32Array> | null } = { live: null };
  /**
   * How many compiled kernels to keep. Each holds its own memory (on webasm a WebAssembly memory sized for
   * its arguments and output), so a long session that visits many shapes (the dashboard's N and B keys)
   * must not keep them all; one training run uses under 100.
   */
  private readonly maxKernels: number;
  private readonly fullCollection: (() => void) | null;

  /** Opened by a platform's module (`openDevice` in device-node.ts, `openBrowserDevice` in device-browser.ts). */
  constructor(setup: DeviceSetup) {
    this.backend = setup.backend;
    this.adapter = setup.adapter;
    this.maxKernels = setup.maxKernels ?? 256;
    this.maxElements = maxElementsFor(setup.backend, setup.webasmExactIndices ?? false);
    this.planVectorCells = PLAN_VECTOR_CELLS[setup.backend] && (setup.backend !== 'webasm' || (setup.webasmVectorCells ?? false));
    this.note = setup.note ?? null;
    this.fullCollection = setup.collectGarbage ?? null;
    this.gpu = new GPU({ mode: setup.backend } as any);
    this.results = setup.recycleResults ? new ResultPool(RECYCLED_BYTES) : null;
  }

  /**
   * Frees host arrays that were just let go of, where the platform can (Node): a plan that copied hundreds of
   * megabytes of weights into its own memory drops the host copies, and V8 may keep them for a long while, since
   * nothing on its heap grows meanwhile. Elsewhere a no-op.
   */
  collectGarbage(): void {
    this.fullCollection?.();
  }

  /** The GPU behind a GPU backend as a user reads it, saying so when it is a software one; null on cpu and webasm. */
  get adapterLabel(): string | null {
    if (!this.adapter) return null;
    return `${this.adapter.description}${this.adapter.software ? ', a software adapter' : ''}`;
  }

  /** The backend that runs, and for a GPU backend the adapter behind it. */
  get description(): string {
    return this.adapterLabel ? `${this.backend} on ${this.adapterLabel}` : this.backend;
  }

  /** The compiled kernel for a spec, built on first use and cached by name, grid and constants. */
  kernel(spec: KernelSpec): CompiledKernel {
    const key = cacheKey(spec);
    let k = this.kernels.get(key);
    if (k) {
      this.kernels.delete(key);
    } else {
      this.evictOldest();
      k = this.compile(spec);
    }
    this.kernels.set(key, k);
    return k;
  }

  private compile(spec: KernelSpec): CompiledKernel {
    const k = this.gpu.createKernel(spec.fn as any, {
      output: spec.output,
      constants: spec.constants,
      ...(spec.returnType ? { returnType: spec.returnType } : {}),
      asyncMode: true,
      precision: 'single',
      tactic: 'precision',
      // loops have constant bounds; this only lifts GPU.js's guard for dynamic ones
      loopMaxIterations: 1 << 20,
    } as any) as unknown as CompiledKernel;
    shapeReadBack(k, this.results);
    return k;
  }

  /**
   * Compiles a chain of kernels into one GPU.js plan (`gpu.createPipeline`): each call uploads the plan's
   * one argument, runs every step with the intermediates kept on the device (webasm: one wasm memory, the whole
   * plan on the worker pool; webgpu: one command encoder, one submission), and reads back only the last output.
   * `chain` receives the compiled steps in order and the plan's argument, and returns the last step's output.
   * The plan is not cached: its owner keeps it (it holds its steps' resident weights) and destroys it.
   */
  plan(steps: KernelSpec[], chain: (kernels: Array<(arg: unknown) => unknown>, input: unknown) => unknown): Plan {
    const kernels = steps.map((s) => this.compile(s));
    // GPU.js counts a plan's arguments by the function's declared parameters: exactly one here
    const pipeline = this.backend === 'cpu' ? stepwisePlan(steps, kernels, chain)
      : (this.gpu as any).createPipeline(function (input: unknown) {
        return chain(kernels as any, input);
      });
    const plan = new Plan(this, steps, kernels, pipeline);
    this.plans.add(plan);
    return plan;
  }

  /** @internal called by Plan.destroy */
  forgetPlan(plan: Plan): void {
    this.plans.delete(plan);
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
      if (typeof a === 'number') continue;
      if (a.length > this.maxElements) this.tooLarge(spec, a.length);
      // a handed-back array may already hold another result: reading it would be silently wrong
      if (this.results?.givenBack(a)) throw new Error(`kernel ${spec.name}: an argument was handed back for reuse and may hold another result`);
    }
    if (size > this.maxElements) this.tooLarge(spec, size);
    const k = this.kernel(spec);
    const result = await (k as any)(...args);
    if (!this.verified.has(k)) {
      this.verifyBackend(spec, k);
      this.verified.add(k);
    }
    const out = flattenResult(result, size);
    this.step.live?.add(out);
    return out;
  }

  /**
   * Runs one step (a training step: forward, backward, the optimizer's update) as the owner of its results'
   * memory: every result `run` returns meanwhile is handed back for reuse when the step ends, except what the
   * step returns (an array, or the arrays among the values of a list or plain object it returns) and what it
   * `keep`s. Within the step, `recycle` hands a result back as soon as its last reader has run, so that a later
   * kernel of the same step is read back into it. A step that throws hands nothing back (its arrays are left to
   * the garbage collector, so none is reused while a caller may still hold it). One step at a time per device,
   * as its runs are awaited one at a time.
   */
  async scope<T>(step: () => Promise<T>): Promise<T> {
    if (this.step.live) throw new Error('Device.scope: a step is already running on this device');
    const live = this.step.live = new Set();
    try {
      const result = await step();
      for (const a of arraysIn(result)) live.delete(a);
      this.results?.give(...live);
      return result;
    } finally {
      this.step.live = null;
    }
  }

  /**
   * Results that outlive the open step (`scope`), such as the new parameters and optimizer state: the
   * step does not hand them back. Outside a step, results are never handed back unasked, so there is nothing to do.
   */
  keep(...arrays: Float32Array[]): void {
    for (const a of arrays) this.step.live?.delete(a);
  }

  /**
   * Hands arrays that `run` returned back for reuse now: a later result of the same length may be read back into
   * them, so the caller must not read or write them again (`run` refuses them as arguments). Anything else
   * (inputs, arrays from elsewhere, an array already handed back) is ignored; so is everything on backends that
   * allocate their own results.
   */
  recycle(...arrays: Float32Array[]): void {
    for (const a of arrays) this.step.live?.delete(a);
    this.results?.give(...arrays);
  }

  private tooLarge(spec: KernelSpec, elements: number): never {
    throw new Error(`kernel ${spec.name}: an array of ${elements} elements exceeds the ${this.maxElements} that ${this.backend} indexes exactly`);
  }

  private verifyBackend(spec: KernelSpec, k: CompiledKernel): void {
    checkKernelClass(spec, k, this.backend);
  }

  /** Number of distinct compiled kernels (one per operation and shape). */
  get kernelCount(): number {
    return this.kernels.size;
  }

  destroy(): void {
    for (const p of [...this.plans]) p.destroy();
    for (const k of this.kernels.values()) k.destroy();
    this.kernels.clear();
    this.results?.clear();
    this.gpu.destroy();
  }
}

/**
 * GPU.js shapes a result on webasm and webgpu (`_shapeOutput`) as nested rows of Float32Array views: one view
 * per row of a scalar result (114,688 for the pool backward's [28, 28, 4096] grid at B = 64), one per cell of a
 * vector (`Array(4)`) result (~0.2 µs each: ~100 ms for conv2's forward at B = 64). Every caller here takes the
 * flat result (`flattenResult`), so the kernel hands back the flat copy it has already made (into a fresh or a
 * recycled array), in grid order.
 * Should GPU.js swap in another kernel object, results arrive nested again, which `flattenResult` also takes:
 * slower, never wrong.
 */
function shapeReadBack(k: CompiledKernel, pool: ResultPool | null): void {
  const kernel = (k as any).kernel;
  if (typeof kernel?._shapeOutput === 'function') kernel._shapeOutput = (data: Float32Array) => data;
  // webasm, patched: read each result into an array from the pool instead of a fresh one (`recycle`)
  if (kernel && pool) kernel.resultTarget = (length: number) => pool.take(length);
}

/** The Float32Arrays a step returns (`Device.scope`): the value itself, or those among its values, one level deep. */
function arraysIn(value: unknown): Float32Array[] {
  if (value instanceof Float32Array) return [value];
  if (value === null || typeof value !== 'object') return [];
  return Object.values(value).filter((v): v is Float32Array => v instanceof Float32Array);
}

/**
 * How a plan runs on each backend: fused where GPU.js has a fused executor (webasm: one wasm memory, on its
 * worker pool when threads are available; webgpu: one command encoder, one submission), GPU.js's generic
 * executor on headlessgl (textures end to end), our stepwise stand-in on cpu. Anything else is a degradation,
 * and a Plan refuses it rather than report a path that did not run.
 */
export const PLAN_EXECUTORS: Record<Backend, readonly string[]> = {
  cpu: ['stepwise'], webasm: ['fused-threaded', 'fused-sync'], headlessgl: ['generic'], webgpu: ['fused-encoder'], webgl2: ['generic'],
};

/**
 * Whether a plan's step may hand cells of several values (`returnType: 'Array(n)'`) to the next step, which reads
 * them as one flat array (n values per cell, side by side): webasm's fused executor does with the gpu.js patch
 * (`Device.planVectorCells` says whether it is there), and so does
 * the cpu's stepwise plan, which flattens every output. On the GL backends and webgpu the next kernel would read
 * a texture or buffer of vectors, not a flat array, so their plans keep one value per cell.
 */
export const PLAN_VECTOR_CELLS: Record<Backend, boolean> = {
  cpu: true, webasm: true, headlessgl: false, webgpu: false, webgl2: false,
};

/**
 * The cpu backend's stand-in for a plan: the same kernels called one by one, each output flattened for the next.
 * GPU.js's generic executor hands a cpu step's 3D output on as nested rows, which our flat-indexed kernels
 * cannot read. Reports `executorKind` 'stepwise'.
 */
function stepwisePlan(steps: KernelSpec[], kernels: CompiledKernel[], chain: Parameters<Device['plan']>[1]) {
  const calls = kernels.map((k, i) => async (input: unknown) => flattenResult(await (k as any)(await input), outputSize(steps[i]!)));
  return Object.assign((input: Float32Array) => chain(calls, input), {
    executorKind: 'stepwise', backend: 'cpu', fallbackReason: null, destroy: () => {},
  });
}

/** A compiled chain of kernels (see `Device.plan`). */
export class Plan {
  private readonly device: Device;
  private readonly steps: KernelSpec[];
  private readonly kernels: CompiledKernel[];
  private readonly pipeline: any;
  /** values the last step returns */
  private readonly outputSize: number;
  private verified = false;
  /** releaseBuildInputs's answer, asked once the plan has run (its executor is settled then); null before */
  private buildInputsReleased: boolean | null = null;

  constructor(device: Device, steps: KernelSpec[], kernels: CompiledKernel[], pipeline: unknown) {
    this.device = device;
    this.steps = steps;
    this.kernels = kernels;
    this.pipeline = pipeline;
    this.outputSize = outputSize(steps[steps.length - 1]!);
  }

  /**
   * How GPU.js executed the plan after its first run: 'fused-threaded' / 'fused-sync' (webasm),
   * 'fused-encoder' (webgpu), or 'generic' (every step as its own kernel call, intermediates still on the device).
   */
  get executorKind(): string {
    return this.pipeline.executorKind ?? 'not run yet';
  }

  /** Why a fused executor declined the plan (null while fused or on a backend without one). */
  get fallbackReason(): string | null {
    return this.pipeline.fallbackReason ?? null;
  }

  async run(input: Float32Array): Promise<Float32Array> {
    if (input.length > this.device.maxElements) this.tooLarge(input.length);
    const result = await this.pipeline(input);
    if (!this.verified) {
      this.verify();
      this.verified = true;
    }
    return flattenResult(result, this.outputSize);
  }

  private tooLarge(elements: number): never {
    throw new Error(`plan ${this.steps.map((s) => s.name).join(' → ')}: an array of ${elements} elements exceeds the ${this.device.maxElements} that ${this.device.backend} indexes exactly`);
  }

  /** The plan must have run as the device's backend runs plans; a fused executor that declined is an error. */
  private verify(): void {
    const expected = PLAN_EXECUTORS[this.device.backend];
    if (!expected.includes(this.executorKind)) {
      const why = this.fallbackReason ? `: ${this.fallbackReason}` : '';
      throw new Error(`plan ${this.steps.map((s) => s.name).join(' → ')} ran as '${this.executorKind}', not as ${expected.join(' or ')} on ${this.device.backend}${why}`);
    }
    this.kernels.forEach((k, i) => checkKernelClass(this.steps[i]!, k, this.device.backend));
  }

  /**
   * Lets go of what only a rebuild of the plan would read, once the plan holds its own copy: the resident
   * weights (the arrays among the steps' constants, cleared in the specs' own constants objects) and the kernels'
   * parsed sources, so that a weight costs its bytes once, not twice. GPU.js does it (`releaseBuildInputs`,
   * patches/), for webasm's fused executor only, whose first run copies every constant array into the plan's wasm
   * memory. The plan cannot be rebuilt afterwards (GPU.js refuses to): its owner replaces a plan whose run failed
   * (`InferencePlan`). Returns whether they were let go: false before the first run, on other backends and on
   * unpatched gpu.js, where they stay.
   */
  releaseBuildInputs(): boolean {
    if (this.buildInputsReleased === null && this.verified) {
      this.buildInputsReleased = typeof this.pipeline.releaseBuildInputs === 'function' && this.pipeline.releaseBuildInputs() === true;
    }
    return this.buildInputsReleased ?? false;
  }

  destroy(): void {
    this.pipeline.destroy();
    for (const k of this.kernels) k.destroy();
    this.device.forgetPlan(this);
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
