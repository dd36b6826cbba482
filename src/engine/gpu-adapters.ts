/**
 * Finding the GPU behind Node's two GPU backends, and telling a real GPU from a software one.
 *
 * - webgpu: gpu.js reads the global `navigator.gpu`, which Node does not have. npm `webgpu` (Dawn) provides it.
 *   Dawn is loaded only when webgpu is asked for or probed, so the other backends never pay for it. Whether an
 *   adapter answers is asked in a child process first: Dawn prints its driver warnings straight to stderr (and a
 *   broken driver can crash the process), so the probe keeps both away from the user's terminal and turns them
 *   into one line of reason.
 * - headlessgl: the `gl` addon names only itself ("stack-gl", "ANGLE"), not the GPU or Mesa llvmpipe behind it.
 *
 * Software adapters (SwiftShader, llvmpipe, lavapipe) run kernels correctly but far slower than webasm: they
 * are for testing the GPU paths on machines without a GPU, and `--backend auto` never picks them.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

import { SOFTWARE_RENDERERS, describeAdapter, type AdapterInfo } from './device.ts';

const require = createRequire(import.meta.url);

export type AdapterProbe = { info: AdapterInfo; reason?: undefined } | { info?: undefined; reason: string };


/** What would give webgpu an adapter, appended to every "no adapter" message. */
export const WEBGPU_HINT = 'a GPU with its Vulkan driver gives one; for testing without a GPU, point VK_ICD_FILENAMES at a software driver '
  + '(Debian\'s chromium-common ships SwiftShader: `dpkg -L chromium-common | grep icd.json`)';

/** Dawn's Vulkan WSI complains on stderr when this is unset; nothing here presents to a screen, so any directory does. */
function dawnEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.XDG_RUNTIME_DIR ? env : { ...env, XDG_RUNTIME_DIR: '/tmp' };
}

function webgpuModuleUrl(): string | null {
  try {
    return pathToFileURL(require.resolve('webgpu')).href;
  } catch {
    return null;
  }
}

/** The script the probe runs: request an adapter, print its info as JSON. */
const PROBE_SCRIPT = `
const { create, globals } = await import(process.argv[1]);
Object.assign(globalThis, globals);
const adapter = await create([]).requestAdapter();
const i = adapter?.info;
process.stdout.write(JSON.stringify(adapter ? { vendor: i.vendor, architecture: i.architecture, description: i.description, fallback: !!i.isFallbackAdapter } : null));
process.exit(0);
`;


/** Dawn's first warning line, trimmed to its message: the reason no adapter answered. */
function dawnReason(stderr: string): string | null {
  const line = stderr.split('\n').map((l) => l.trim()).find((l) => /^(Warning|Error):/.test(l));
  return line ? line.replace(/^(Warning|Error):\s*/, '') : null;
}

let probed: Promise<AdapterProbe> | undefined;

/** Whether a WebGPU adapter answers on this machine, asked once per process in a child process. */
export function probeWebGPU(): Promise<AdapterProbe> {
  probed ??= new Promise((resolve) => {
    const url = webgpuModuleUrl();
    if (!url) {
      resolve({ reason: 'the npm package `webgpu` is not installed (run `npm install`)' });
      return;
    }
    execFile(process.execPath, ['--input-type=module', '-e', PROBE_SCRIPT, url], { env: dawnEnv(process.env), timeout: 30_000 },
      (error, stdout, stderr) => {
        let found: Parameters<typeof describeAdapter>[0] | null = null;
        try {
          found = error ? null : JSON.parse(stdout);
        } catch { /* not JSON: treated as no adapter */ }
        if (found) {
          resolve({ info: describeAdapter(found) });
          return;
        }
        const why = dawnReason(stderr) ?? (error ? `the probe failed: ${error.message.split('\n')[0]}` : null);
        resolve({ reason: `no WebGPU adapter answered${why ? ` (Dawn: ${why})` : ''}; ${WEBGPU_HINT}` });
      });
  });
  return probed;
}

let installed: Promise<AdapterInfo> | undefined;

/**
 * Loads Dawn into this process and gives gpu.js its `navigator.gpu` (and the WebGPU globals such as
 * GPUBufferUsage). Call only after `probeWebGPU` found an adapter. Returns the adapter gpu.js will get.
 */
export function installWebGPU(): Promise<AdapterInfo> {
  installed ??= (async () => {
    process.env.XDG_RUNTIME_DIR ||= dawnEnv(process.env).XDG_RUNTIME_DIR;
    const { create, globals } = await import('webgpu') as unknown as { create: (flags: string[]) => any; globals: Record<string, unknown> };
    for (const [name, value] of Object.entries(globals)) {
      if (!(name in globalThis)) (globalThis as any)[name] = value;
    }
    const gpu = create([]);
    const nav = (globalThis as any).navigator;
    if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    else (globalThis as any).navigator = { gpu };
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new Error(`no WebGPU adapter answered in this process; ${WEBGPU_HINT}`);
    const i = adapter.info;
    return describeAdapter({ vendor: i.vendor, architecture: i.architecture, description: i.description, fallback: i.isFallbackAdapter });
  })();
  return installed;
}

/**
 * What headlessgl reports about itself (needs the `gl` addon and an X display), or null when there is none.
 * The addon answers "ANGLE" for the renderer, whatever draws behind it, so `software` is known only when the
 * string names a software renderer; otherwise it is false meaning "not known to be software".
 */
export function headlessGLRenderer(): AdapterInfo | null {
  try {
    const createGL = require('gl') as (w: number, h: number) => any;
    const gl = createGL(1, 1);
    if (!gl) return null;
    const renderer = String(gl.getParameter(gl.RENDERER));
    const version = String(gl.getParameter(gl.VERSION));
    gl.getExtension('STACKGL_destroy_context')?.destroy();
    return { description: `${renderer} (${version}; the renderer behind it is not reported)`, software: SOFTWARE_RENDERERS.test(renderer) };
  } catch {
    return null;
  }
}
