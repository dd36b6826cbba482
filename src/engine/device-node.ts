/**
 * The device in Node: which backends this machine can run, `auto`'s choice, and opening one. Node's parts live
 * here and in gpu-adapters.ts (the `webgpu` addon probed in a child process, headless-gl's renderer) and nowhere
 * else in the engine: the Device itself (device.ts) runs in a browser too, opened there by device-browser.ts.
 */
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import vm from 'node:vm';
import gpujs from 'gpu.js';
import { InputError } from '../errors.ts';
import { Device, type Backend as AnyBackend } from './device.ts';
import { headlessGLRenderer, installWebGPU, probeWebGPU } from './gpu-adapters.ts';

export * from './device.ts';

const { GPU } = gpujs as unknown as { GPU: { isHeadlessGLSupported: boolean; isWebAssemblySupported: boolean } };

/** The backends a Device runs on in Node. */
export const BACKENDS = ['cpu', 'webasm', 'headlessgl', 'webgpu'] as const satisfies readonly AnyBackend[];
/** Node's backends (this name shadows device.ts's, which also counts the browser's webgl2). */
export type Backend = (typeof BACKENDS)[number];
export type BackendChoice = Backend | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', ...BACKENDS];

/** Why a backend cannot run here, or null when it can. No kernel is compiled; webgpu asks a child process. */
export async function backendUnavailableReason(backend: Backend): Promise<string | null> {
  switch (backend) {
    case 'cpu':
      return null;
    case 'webasm':
      return GPU.isWebAssemblySupported ? null : 'this Node.js has no WebAssembly SIMD support';
    case 'headlessgl':
      return GPU.isHeadlessGLSupported ? null
        : 'the optional `gl` addon is not built or no X display is available (run `npm run setup:gl`, then run under `xvfb-run -a`)';
    case 'webgpu':
      return (await probeWebGPU()).reason ?? null;
  }
}

/**
 * `auto` resolves to webgpu when a hardware GPU answers, otherwise to webasm. It never picks a software adapter
 * (SwiftShader, lavapipe): those run kernels correctly but far slower than webasm. Nor does it pick headlessgl:
 * the `gl` addon reports only "ANGLE", never the renderer behind it, so a GPU cannot be told from Mesa's
 * llvmpipe (what it draws on without one); headlessgl runs when asked for.
 */
export async function resolveBackend(choice: BackendChoice): Promise<Backend> {
  if (choice !== 'auto') return choice;
  const webgpu = await probeWebGPU();
  if (webgpu.info && !webgpu.info.software) return 'webgpu';
  return GPU.isWebAssemblySupported ? 'webasm' : 'cpu';
}

/** Opens a device in Node; an unavailable backend is a user-facing error naming what would enable it. */
export async function openDevice(choice: BackendChoice = 'auto', opts: { maxKernels?: number } = {}): Promise<Device> {
  const backend = await resolveBackend(choice);
  const reason = await backendUnavailableReason(backend);
  if (reason) throw new InputError(`backend ${backend} is not available: ${reason}`);
  // gpu.js's webgpu backend needs navigator.gpu before the GPU instance exists
  const adapter = backend === 'webgpu' ? await installWebGPU()
    : backend === 'headlessgl' ? headlessGLRenderer() ?? undefined : undefined;
  const webasm = backend === 'webasm';
  return new Device({
    backend, adapter, maxKernels: opts.maxKernels,
    note: webasm ? webasmPatchMissing() : null,
    recycleResults: webasm && webasmReadsBackIntoTargets(),
    webasmExactIndices: webasmIndexesExactly(),
    webasmVectorCells: webasmPassesVectorCells(),
    collectGarbage: fullCollection,
  });
}

let gc: (() => void) | null = null;
/** V8's full collection: `gc` where node runs with --expose-gc, else the same function taken from a fresh context. */
function fullCollection(): void {
  if (!gc) {
    const global = (globalThis as { gc?: () => void }).gc;
    if (global) {
      gc = global;
    } else {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as () => void;
    }
  }
  gc();
}

/**
 * Why webasm runs slower here than it should, or null: gpu.js without this project's patch (patches/, applied by
 * `npm install`'s postinstall, so missing after `npm install --ignore-scripts`). Results are the same either way.
 */
export function webasmPatchMissing(): string | null {
  const require = createRequire(import.meta.url);
  const pool = require('gpu.js/src/backend/web-assembly/worker-pool.js') as { sharedWorkerPool?: unknown };
  if (typeof pool.sharedWorkerPool === 'function' && patched('backend/web-assembly/function-node.js', 'WebAssemblyFunctionNode', 'vContiguousBase')
    && patched('pipeline.js', 'Pipeline', 'releaseBuildInputs') && webasmReadsBackIntoTargets() && webasmIndexesExactly()
    && webasmPassesVectorCells()) {
    return null;
  }
  return 'gpu.js is not patched (installed with --ignore-scripts?): run `npx patch-package` for its shared worker '
    + 'pool, integer indices, contiguous loads, released plan inputs, recycled results and vector cells between plan '
    + 'steps; webasm runs without them, '
    + 'slower, with more memory and with arrays limited to 2^24 elements';
}

/** Whether gpu.js's `src/<file>` exports a class `name` whose prototype has `method`: one part of patches/. */
function patched(file: string, name: string, method: string): boolean {
  const exported = createRequire(import.meta.url)(`gpu.js/src/${file}`) as Record<string, { prototype?: Record<string, unknown> } | undefined>;
  return typeof exported[name]?.prototype?.[method] === 'function';
}

/** Whether fused webasm plans pass a step's vector cells to the next step as one flat array (patches/). */
function webasmPassesVectorCells(): boolean {
  return patched('backend/web-assembly/pipeline-executor.js', 'WebAssemblyPipelineExecutor', 'stepOutputDims');
}

/** Whether webasm kernels compute integer indices in i32 and refuse inexact ones (patches/), so arrays may pass 2^24. */
function webasmIndexesExactly(): boolean {
  return patched('backend/web-assembly/function-node.js', 'WebAssemblyFunctionNode', 'requireExactIndex');
}

/** Whether webasm kernels copy results into arrays the caller hands them (`resultTarget`, patches/). */
function webasmReadsBackIntoTargets(): boolean {
  return patched('backend/web-assembly/kernel.js', 'WebAssemblyKernel', '_readBack');
}
