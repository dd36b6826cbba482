/**
 * The page computing in the browser, in a real one: Debian's Chromium, headless, driven by playwright-core (no
 * browser download), on WebGL2 and on WebGPU (both on SwiftShader here: correctness, not speed), and on GPU.js's
 * plain-JavaScript backend, the page's last fallback. The bundle is built first (`npm run build:web`'s code). On
 * each backend: the page opens the engine on the backend asked for and says which adapter; its log-probabilities for fixtures/0.png … 9.png equal Node's within 1e-4 for
 * the shipped ensemble; a "1" drawn with the mouse is classified as 1; the benchmark panel completes a short run
 * (N = 2, B = 1) whose JSON parses with `bench --json`'s fields and agreeing paths; nothing is fetched from
 * another origin and nothing is logged as an error. A screenshot of each goes to test-output/ (ignored by git).
 *
 * Without Chromium the suite is skipped with a note, unless MNIST_GPUJS_REQUIRE_CHROMIUM=1 (CI sets it).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_MISSING, CHROMIUM_REQUIRED, LAUNCH_ARGS, drawOne } from './chromium.ts';
import { startServer, type RunningServer } from '../src/cli/commands/serve.ts';
import { normalizeImages } from '../src/data/normalize.ts';
import { openDevice, resolveBackend } from '../src/engine/device-node.ts';
import { SingleDispatchRunner } from '../src/engine/runners.ts';
import { loadServedModels } from '../src/io/model-file.ts';
import { readDigitPng } from '../src/io/png.ts';
import { buildWeb } from '../web/build.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ENSEMBLE = join(ROOT, 'fixtures/mnist_ensemble4.safetensors');
const required = CHROMIUM_REQUIRED;
const missing = CHROMIUM_MISSING;
if (missing && !required) console.log(`[web-page.test] skipped: ${missing}`);

/**
 * The two GPU APIs a browser gives GPU.js, with the Chromium flags that give them here without a GPU, and the
 * plain-JavaScript fallback: how each runs a plan, and what it names as its adapter.
 */
const BROWSER_BACKENDS = [
  { backend: 'webgl2', args: [] as string[], executor: 'generic', adapter: /swiftshader/i },
  { backend: 'webgpu', args: ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'], executor: 'fused-encoder', adapter: /swiftshader/i },
  { backend: 'cpu', args: [] as string[], executor: 'stepwise', adapter: null },
] as const;
const DIGITS = Array.from({ length: 10 }, (_, d) => d);
const TOLERANCE = 1e-4;

/** Node's log-probabilities [4, 1, 10] of the shipped ensemble for fixtures/d.png, one digit at a time. */
async function nodeLogProbabilities(): Promise<Float32Array[]> {
  const device = await openDevice(await resolveBackend('auto'));
  const runner = new SingleDispatchRunner(device, loadServedModels(ENSEMBLE, undefined), 4);
  try {
    const out: Float32Array[] = [];
    for (const d of DIGITS) out.push(await runner.predict(normalizeImages(readDigitPng(join(ROOT, `fixtures/${d}.png`)).pixels), 1));
    return out;
  } finally {
    runner.destroy();
    device.destroy();
  }
}

describe.skipIf(missing !== undefined && !required)('the page computing in headless Chromium', () => {
  let server: RunningServer;
  let expected: Float32Array[];

  beforeAll(async () => {
    if (missing) throw new Error(`MNIST_GPUJS_REQUIRE_CHROMIUM=1 but ${missing}`);
    await buildWeb();
    expected = await nodeLogProbabilities();
    server = await startServer({
      numModels: 4, modelPath: ENSEMBLE, backend: await resolveBackend('auto'),
      host: '127.0.0.1', port: 0, path: 'single', maxBatchSize: 16, maxBatchDelayMs: 0, batchBuckets: [1], queueSize: 100,
      queueTimeoutMs: 5000, bodyLimitBytes: 1024 ** 2, exitTimeoutS: 30, jsonLog: false, webOnly: false,
    }, { stdout: { write: () => true }, stderr: { write: () => true } });
  }, 180_000);

  afterAll(async () => {
    await server?.close();
  });

  describe.each(BROWSER_BACKENDS)('on $backend', ({ backend, args, executor, adapter }) => {
    let browser: Browser;
    let page: Page;
    const consoleErrors: string[] = [];
    const foreignRequests: string[] = [];
    let modelFetches = 0;

    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: [...LAUNCH_ARGS, ...args] });
      page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
      page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
      page.on('pageerror', (e) => consoleErrors.push(e.message));
      page.on('request', (r) => {
        if (!r.url().startsWith(server.url + '/') && !r.url().startsWith('data:')) foreignRequests.push(r.url());
        if (r.url().endsWith('/web/mnist_ensemble4.safetensors')) modelFetches++;
      });
      await page.goto(server.url + '/');
      await page.check('#compute-browser');
      await page.selectOption('#backend', backend);
      // the engine opened on the backend asked for, or an error said why not
      await page.waitForFunction((b) => {
        const status = document.getElementById('status')!;
        return status.className === 'error' || status.textContent!.startsWith(`In this browser: ${b}`);
      }, backend, { timeout: 120_000 });
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
    });

    it(`opens the engine on ${backend} and names its adapter`, async () => {
      const status = await page.textContent('#status');
      if (adapter) {
        expect(status).toMatch(new RegExp(`^In this browser: ${backend} on .+, a software adapter, plan ${executor}, 4 models$`));
        expect(status).toMatch(adapter); // the software adapter is named as such, not hidden
      } else {
        expect(status).toBe(`In this browser: ${backend}, plan ${executor}, 4 models`);
      }
    });

    it('gives the log-probabilities Node gives for fixtures 0–9, within 1e-4', async () => {
      const pngs = DIGITS.map((d) => readFileSync(join(ROOT, `fixtures/${d}.png`)).toString('base64'));
      const got = await page.evaluate(async (files) => {
        const pageApi = (window as any).mnistGpujsPage;
        const engine = await pageApi.browserEngine();
        const out: number[][] = [];
        for (const [d, b64] of files.entries()) {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const digit = await pageApi.decode(new Blob([bytes], { type: 'image/png' }), `${d}.png`);
          out.push(Array.from(await engine.logProbabilities(digit.pixels)));
        }
        return out;
      }, pngs);
      let worst = 0;
      for (const d of DIGITS) {
        expect(got[d]).toHaveLength(40);
        for (let i = 0; i < 40; i++) {
          const diff = Math.abs(got[d]![i]! - expected[d]![i]!);
          expect(Number.isFinite(got[d]![i]!)).toBe(true);
          worst = Math.max(worst, diff);
        }
      }
      console.log(`[web-page.test] ${backend}: largest |log-probability - Node's| over fixtures 0-9: ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(TOLERANCE);
    }, 120_000);

    it('classifies a "1" drawn with the mouse as 1, every model answering', async () => {
      await page.click('#clear');
      await drawOne(page);
      await page.waitForFunction(() => document.getElementById('digit')!.textContent !== '–', undefined, { timeout: 60_000 });
      expect(await page.textContent('#error')).toBe('');
      expect(await page.textContent('#digit')).toBe('1');
      expect(await page.textContent('#latency')).toMatch(/^\d+\.\d ms, \d\/4 models agree$/);
      expect(await page.locator('#models tr').count()).toBe(1 + 1 + 4);
    }, 90_000);

    it('runs the benchmark panel (N = 2, B = 1) to a JSON document with bench --json\'s fields', async () => {
      await page.selectOption('#bench-n', '2');
      await page.selectOption('#bench-b', '1');
      await page.fill('#bench-warmup', '1');
      await page.fill('#bench-iters', '4');
      await page.click('#bench-run');
      await page.waitForFunction(() => !document.getElementById('bench-json')!.hidden || /failed/.test(document.getElementById('bench-phase')!.textContent ?? ''),
        undefined, { timeout: 150_000 });
      expect(await page.textContent('#bench-phase')).toMatch(/: done, /);
      const doc = JSON.parse((await page.textContent('#bench-json'))!);
      expect(doc).toMatchObject({
        backend, modelPath: 'mnist_ensemble4.safetensors', fileModels: 4, batchSize: 1, warmup: 1, iters: 4, numModels: 2, replicated: false,
        image: { path: 'the drawing', width: 28, height: 28, shape: [1, 1, 28, 28] },
        agreement: { samePredictions: true },
        execution: { sequential: { planRuns: 2 }, singleDispatch: { planRuns: 1 } },
      });
      if (adapter) expect(doc.adapter).toMatch(adapter);
      else expect(doc.adapter).toBeNull();
      expect(doc.execution.singleDispatch.executorKind).toBe(executor);
      expect(doc.predictions).toEqual([1, 1]);
      expect(doc.agreement.maxAbsDiff).toBeLessThanOrEqual(doc.agreement.tolerance);
      for (const path of ['sequential', 'singleDispatch']) {
        for (const field of ['meanMs', 'p50Ms', 'p95Ms', 'p99Ms', 'minMs', 'maxMs', 'requestsPerSecond', 'modelEvaluationsPerSecond']) {
          expect(doc[path][field], `${path}.${field}`).toBeGreaterThan(0);
        }
        expect(doc[path].samples).toBe(4);
      }
      expect(doc.speedup).toBeCloseTo(doc.sequential.meanMs / doc.singleDispatch.meanMs, 6);
      expect(await page.locator('#bench-table tr').count()).toBe(3);
      mkdirSync(join(ROOT, 'test-output'), { recursive: true });
      await page.screenshot({ path: join(ROOT, `test-output/web-page-${backend}.png`), fullPage: true });
    }, 180_000);

    it('fetched the model file once (auto, then the backend asked for), nothing from another origin, and logged no error', () => {
      expect(modelFetches).toBe(1);
      expect(foreignRequests).toEqual([]);
      expect(consoleErrors).toEqual([]);
    });
  });
});

describe('the web command (serve --web-only)', () => {
  beforeAll(async () => {
    await buildWeb();
  }, 60_000);

  it('prints its URL, serves the page and the bundle, computes nothing, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'src/cli/bin.js'), 'web', '--port', '0', '--json-log'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await vi.waitFor(() => expect(out).toContain('"event":"listening"'), { timeout: 30_000, interval: 50 });
      const { url, webOnly } = JSON.parse(out.split('\n')[0]!) as { url: string; webOnly: boolean };
      expect(webOnly).toBe(true);
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('"serverCompute":false');
      const bundle = await fetch(`${url}/web/mnist-gpujs.js`);
      expect(bundle.status).toBe(200);
      expect((await bundle.text()).length).toBeGreaterThan(100_000);
      const predict = await fetch(`${url}/predictions/ensemble`, { method: 'PUT', body: readFileSync(join(ROOT, 'fixtures/7.png')) });
      expect(predict.status).toBe(404);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
