/**
 * Test support shared by the engine suites: which GPU.js backends to run on (the same suite runs per backend,
 * as GPU.js tests its own backends), one Device per backend per file, and a way to run a kernel so that an
 * output cell it never writes reads as NaN instead of a stale or zero value.
 *
 * Environment:
 * - MNIST_GPUJS_BACKENDS=cpu,webasm           run only these (default: every backend of BACKENDS);
 * - MNIST_GPUJS_REQUIRE_BACKENDS=headlessgl   these must run: when one is unavailable its suites FAIL instead of
 *                                             being skipped (CI uses this so a broken GL setup cannot pass green).
 */
import { afterAll, beforeAll, it } from 'vitest';
import { BACKENDS, Device, backendUnavailableReason, type Backend, openDevice } from '../src/engine/device-node.ts';
import { outputSize, type KernelSpec } from '../kernels/spec.ts';

export interface BackendPlan {
  /** Backends the suites run on. */
  run: Backend[];
  /** Backends not run, and why (unavailable here, or left out by MNIST_GPUJS_BACKENDS). */
  skipped: Array<{ backend: Backend; reason: string }>;
  /** Required backends (MNIST_GPUJS_REQUIRE_BACKENDS) that cannot run: their suites must fail. */
  missing: Array<{ backend: Backend; reason: string }>;
}

/** The GPU.js kernel class each backend compiles to: how a test tells which backend really ran. */
export { KERNEL_CLASS } from '../src/engine/device-node.ts';

function parseBackendList(variable: string, value: string | undefined): Backend[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of names) {
    // a typo must not silently turn into "run nothing"
    if (!(BACKENDS as readonly string[]).includes(name)) {
      throw new Error(`${variable}: unknown backend "${name}", expected some of ${BACKENDS.join(', ')}`);
    }
  }
  return names as Backend[];
}

/**
 * Which backends to run, from the environment and what this machine supports. A required backend runs even if
 * MNIST_GPUJS_BACKENDS leaves it out (requiring it is the stronger statement). `unavailable` is injectable so the
 * selection logic can be tested without the backends themselves.
 */
export async function availableBackends(
  env: Record<string, string | undefined> = process.env,
  unavailable: (b: Backend) => string | null | Promise<string | null> = backendUnavailableReason,
): Promise<BackendPlan> {
  const selected = parseBackendList('MNIST_GPUJS_BACKENDS', env.MNIST_GPUJS_BACKENDS);
  const required = parseBackendList('MNIST_GPUJS_REQUIRE_BACKENDS', env.MNIST_GPUJS_REQUIRE_BACKENDS) ?? [];
  const plan: BackendPlan = { run: [], skipped: [], missing: [] };
  for (const backend of BACKENDS) {
    const isRequired = required.includes(backend);
    if (selected && !selected.includes(backend) && !isRequired) {
      plan.skipped.push({ backend, reason: `not in MNIST_GPUJS_BACKENDS=${env.MNIST_GPUJS_BACKENDS}` });
      continue;
    }
    const reason = await unavailable(backend);
    if (reason === null) plan.run.push(backend);
    else if (isRequired) plan.missing.push({ backend, reason });
    else plan.skipped.push({ backend, reason });
  }
  return plan;
}

/**
 * Makes the backends a suite does not run visible: a console line and a skipped test whose title carries the
 * reason for each skipped one, and a failing test for each required one that is missing.
 */
export function declareUnrunBackends(suite: string, plan: BackendPlan): void {
  for (const { backend, reason } of plan.skipped) {
    console.log(`[${suite}] backend ${backend} skipped: ${reason}`);
    it.skip(`${suite} on ${backend} — skipped: ${reason}`, () => {});
  }
  for (const { backend, reason } of plan.missing) {
    it(`${suite} on ${backend} — required by MNIST_GPUJS_REQUIRE_BACKENDS`, () => {
      throw new Error(`backend ${backend} is required but unavailable: ${reason}`);
    });
  }
}

/** Opens one Device for the enclosing suite (its kernel cache lives on it) and destroys it after. */
export function useDevice(backend: Backend): () => Device {
  let device: Device | undefined;
  beforeAll(async () => {
    device = await openDevice(backend);
  });
  afterAll(() => {
    device?.destroy();
    device = undefined;
  });
  return () => {
    if (!device) throw new Error(`no ${backend} device: useDevice() must be called inside the describe block`);
    return device;
  };
}

interface WasmEntry { f32?: Float32Array; layout?: { outputOffset?: number }; run?: (start: number, end: number, seed: number) => void }

/** The webasm kernel's live instance (wasm memory, layout), present once the kernel has run. */
export function wasmEntry(device: Device, spec: KernelSpec): Required<WasmEntry> {
  const entry = (device.kernel(spec) as unknown as { kernel?: { _active?: WasmEntry } }).kernel?._active;
  if (!entry?.f32 || typeof entry.layout?.outputOffset !== 'number' || typeof entry.run !== 'function') {
    // fail loudly: if GPU.js's internals move, poisoning must not silently stop happening
    throw new Error(`${spec.name}: no webasm instance to poison (run the kernel once first, or GPU.js internals changed)`);
  }
  return entry as Required<WasmEntry>;
}

/** The kernel's output cells inside its wasm memory (a live view, not a copy). */
export function wasmOutputRegion(device: Device, spec: KernelSpec): Float32Array {
  const entry = wasmEntry(device, spec);
  const base = entry.layout.outputOffset! / 4;
  return entry.f32.subarray(base, base + outputSize(spec));
}

/**
 * NaN-fills the output of an already-run kernel, where the backend lets us reach it. Only webasm can be
 * poisoned: its compiled kernel keeps the output in wasm memory between calls. cpu allocates a fresh output array
 * on every call (no stale values to hide behind, but nothing to poison either); headlessgl and webgpu keep theirs
 * in textures / GPU buffers that are not reachable from here. Returns whether it poisoned.
 */
export function poisonOutput(device: Device, spec: KernelSpec): boolean {
  if (device.backend !== 'webasm') return false;
  const region = wasmOutputRegion(device, spec);
  region.fill(NaN);
  for (let i = 0; i < region.length; i++) {
    if (!Number.isNaN(region[i])) throw new Error(`${spec.name}: poisoning did not stick at output cell ${i}`);
  }
  return true;
}

/**
 * Runs a kernel so that any output cell it does not write comes back NaN (and fails every comparison):
 * on webasm it runs once (which instantiates the wasm memory), poisons the output region, and returns the
 * result of a second run; on the other backends it simply runs (see `poisonOutput`).
 */
export async function runPoisoned(device: Device, spec: KernelSpec, ...args: Array<Float32Array | number>): Promise<Float32Array> {
  const first = await device.run(spec, ...args);
  if (!poisonOutput(device, spec)) return first;
  return device.run(spec, ...args);
}

/**
 * The same device, but every `run` goes through `runPoisoned`: lets the engine's own classes (Net, Optimizer),
 * which call only `run` and `recycle` (inherited unchanged), be tested with poisoned outputs.
 */
export function poisoningDevice(device: Device): Device {
  const view = Object.create(device) as Device;
  Object.defineProperty(view, 'run', {
    value: (spec: KernelSpec, ...args: Array<Float32Array | number>) => runPoisoned(device, spec, ...args),
  });
  return view;
}
