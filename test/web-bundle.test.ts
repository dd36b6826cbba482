/**
 * The browser bundle (`npm run build:web`) and the files `serve` hands the page. The bundle's modules import
 * nothing from Node: esbuild resolves for the browser, so a Node built-in fails the build, shown here by bundling
 * Node's device module, which must fail; and none of Node's own modules (the device's Node side, file reading,
 * the PNG decoder) is among the bundle's inputs. The server tests use `inject()`, without a socket.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildWebServer } from '../src/serve/server.ts';
import { NO_WEB_ASSETS, findWebAssets, type WebAssets } from '../src/serve/web-assets.ts';
import { BUNDLE_NAME, buildWeb, type WebBuild } from '../web/build.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Modules that read files, start processes or load Node addons: the browser has none of them. */
const NODE_SIDE = ['src/engine/device-node.ts', 'src/engine/gpu-adapters.ts', 'src/io/read-input.ts', 'src/io/png.ts',
  'src/io/model-file.ts', 'src/io/atomic-write.ts', 'src/data/mnist.ts'];

describe('the browser bundle', () => {
  let out: string;
  let built: WebBuild;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'mnist-gpujs-web-'));
    built = await buildWeb(out);
  }, 60_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('bundles the engine core, the kernels and the page code, and none of Node\'s modules', () => {
    const inputs = Object.keys(built.metafile.inputs).map((p) => p.replace(/\\/g, '/'));
    const ours = (suffix: string) => inputs.some((p) => p.endsWith(suffix));
    for (const core of ['src/engine/device.ts', 'src/engine/device-browser.ts', 'src/engine/inference-plan.ts', 'kernels/fused-forward.ts',
      'src/io/model-format.ts', 'src/io/safetensors.ts', 'src/bench/harness.ts', 'src/ui/dashboard-state.ts', 'web/bench-panel.ts']) {
      expect(ours(core), core).toBe(true);
    }
    for (const nodeSide of NODE_SIDE) expect(ours(nodeSide), nodeSide).toBe(false);
    // gpu.js comes from its sources (the patched code Node runs), not its prebuilt browser file
    expect(inputs.some((p) => p.includes('gpu.js/src/gpu.js'))).toBe(true);
    expect(inputs.some((p) => p.includes('gpu.js/dist/'))).toBe(false);
  });

  it('keeps kernel sources as written (GPU.js compiles them from their text)', () => {
    const bundle = readFileSync(built.file, 'utf8');
    expect(built.file.endsWith(BUNDLE_NAME)).toBe(true);
    // a kernel body with its names and its `this.thread` indexing intact
    expect(bundle).toMatch(/this\.thread\.x/);
    expect(bundle).toContain('this.constants.');
    expect(bundle).not.toMatch(/__name\(/);
  });

  it('fails to build a module that imports a Node built-in', async () => {
    await expect(buildWeb(out, join(ROOT, 'src/engine/device-node.ts'))).rejects.toThrow(/node:module|child_process|node:url/);
  }, 60_000);
});

describe('the page\'s files under /web/', () => {
  let app: FastifyInstance;
  let web: WebAssets;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mnist-gpujs-web-'));
    const built = await buildWeb(join(dir, 'web/dist'));
    web = { ...findWebAssets(ROOT), bundle: built.file };
    app = await buildWebServer({ bodyLimitBytes: 1024, version: 'test', web });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    if (web?.bundle) rmSync(join(web.bundle, '../../..'), { recursive: true, force: true });
  });

  it('serves the page, saying it computes in the browser only', async () => {
    const r = await app.inject({ method: 'GET', url: '/' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/html/);
    expect(r.body).toContain('"serverCompute":false');
    expect(r.body).toContain('"browserBundle":true');
    expect(r.body).not.toMatch(/(src|href)="https?:/);
  });

  it('serves the bundle, the shipped model files and the benchmark digit, byte for byte', async () => {
    const bundle = await app.inject({ method: 'GET', url: '/web/mnist-gpujs.js' });
    expect(bundle.statusCode).toBe(200);
    expect(bundle.headers['content-type']).toMatch(/^text\/javascript/);
    expect(bundle.body).toBe(readFileSync(web.bundle!, 'utf8'));
    for (const [name, path] of [['mnist_ensemble4.safetensors', 'fixtures/mnist_ensemble4.safetensors'], ['mnist_cnn.safetensors', 'fixtures/mnist_cnn.safetensors'], ['1.png', 'fixtures/1.png']]) {
      const r = await app.inject({ method: 'GET', url: `/web/${name}` });
      expect(r.statusCode, name).toBe(200);
      expect(Buffer.compare(r.rawPayload, readFileSync(join(ROOT, path!))), name).toBe(0);
    }
  });

  it('answers 404 for any other name, 405 for another method, and computes nothing', async () => {
    for (const url of ['/web/package.json', '/web/..%2Fpackage.json', '/web/2.png']) {
      const r = await app.inject({ method: 'GET', url });
      expect(r.statusCode, url).toBe(404);
      expect(r.json().error).toMatch(/^no such file/);
    }
    expect((await app.inject({ method: 'POST', url: '/web/mnist-gpujs.js' })).statusCode).toBe(405);
    const predict = await app.inject({ method: 'POST', url: '/predictions/ensemble', headers: { 'content-type': 'image/png' }, payload: readFileSync(join(ROOT, 'fixtures/7.png')) });
    expect(predict.statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/ping' })).json()).toEqual({ status: 'Healthy' });
  });

  it('without a built bundle, the page says how to build it and the bundle is a 404 naming the command', async () => {
    const bare = await buildWebServer({ bodyLimitBytes: 1024, version: 'test', web: NO_WEB_ASSETS });
    try {
      expect((await bare.inject({ method: 'GET', url: '/' })).body).toContain('"browserBundle":false');
      const r = await bare.inject({ method: 'GET', url: '/web/mnist-gpujs.js' });
      expect(r.statusCode).toBe(404);
      expect(r.json().error).toContain('npm run build:web');
    } finally {
      await bare.close();
    }
    expect(findWebAssets(tmpdir()).bundle).toBeNull();
  });
});
