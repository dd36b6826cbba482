/**
 * The device in a browser: the twin of device-node.ts. GPU.js finds WebGPU as `navigator.gpu` and WebGL2 as a
 * canvas context; this module asks both what they are (the adapter's or the renderer's name, and whether it is a
 * software one) before a Device is opened on them. `auto` prefers WebGPU, then WebGL2, then plain JavaScript.
 */
import { Device, SOFTWARE_RENDERERS, describeAdapter, type AdapterInfo } from './device.ts';

export * from './device.ts';

export const BROWSER_BACKENDS = ['webgpu', 'webgl2', 'cpu'] as const;
export type BrowserBackend = (typeof BROWSER_BACKENDS)[number];
export type BrowserBackendChoice = BrowserBackend | 'auto';

export type BrowserProbe = { info: AdapterInfo | undefined; reason?: undefined } | { info?: undefined; reason: string };

/** The WebGPU adapter this browser gives, or why there is none. */
async function probeWebGPU(): Promise<BrowserProbe> {
  const gpu = (globalThis.navigator as any)?.gpu;
  if (!gpu) return { reason: 'this browser has no WebGPU (navigator.gpu is missing; Chromium needs a secure context, or localhost)' };
  let adapter: any;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { reason: `WebGPU's requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) return { reason: 'WebGPU answered no adapter' };
  const i = adapter.info ?? (typeof adapter.requestAdapterInfo === 'function' ? await adapter.requestAdapterInfo() : {});
  return { info: describeAdapter({ vendor: i.vendor, architecture: i.architecture, description: i.description, fallback: !!(adapter.isFallbackAdapter ?? i.isFallbackAdapter) }) };
}

/** The WebGL2 renderer, when WebGL2 can render float textures (GPU.js's single precision needs them). */
function probeWebGL2(): BrowserProbe {
  if (typeof document === 'undefined') return { reason: 'no document to make a canvas in' };
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return { reason: 'this browser gives no WebGL2 context' };
  try {
    if (!gl.getExtension('EXT_color_buffer_float')) return { reason: 'WebGL2 here cannot render to float textures (EXT_color_buffer_float)' };
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    const vendor = String(gl.getParameter(debug ? debug.UNMASKED_VENDOR_WEBGL : gl.VENDOR));
    return { info: { description: `${renderer} (${vendor}, ${String(gl.getParameter(gl.VERSION))})`, software: SOFTWARE_RENDERERS.test(renderer) } };
  } finally {
    gl.getExtension('WEBGL_lose_context')?.loseContext();
  }
}

/** What each backend is here (its adapter) or why it cannot run; cpu always runs. */
export async function probeBrowserBackend(backend: BrowserBackend): Promise<BrowserProbe> {
  if (backend === 'webgpu') return probeWebGPU();
  if (backend === 'webgl2') return probeWebGL2();
  return { info: undefined };
}

/**
 * Opens a Device in this browser. `auto` takes the first of WebGPU, WebGL2 and cpu that answers (a software
 * adapter included: in a browser there is no faster fallback than the GPU API it gives). A backend asked for by
 * name that cannot run is an error saying why.
 */
export async function openBrowserDevice(choice: BrowserBackendChoice = 'auto'): Promise<Device> {
  if (choice !== 'auto') {
    const probe = await probeBrowserBackend(choice);
    if (probe.reason !== undefined) throw new Error(probe.reason);
    return new Device({ backend: choice, adapter: probe.info });
  }
  const refused: string[] = [];
  for (const backend of BROWSER_BACKENDS) {
    const probe = await probeBrowserBackend(backend);
    if (probe.reason === undefined) return new Device({ backend, adapter: probe.info });
    refused.push(`${backend}: ${probe.reason}`);
  }
  throw new Error(`no backend can run here (${refused.join('; ')})`);
}
