/**
 * The page `serve` answers at `/`, in a real browser: Debian's Chromium, headless, driven by playwright-core (no
 * browser download). Drawing a "1" with the mouse and choosing a PNG file both show the ensemble's digit, every
 * model's row and the latency. A screenshot goes to test-output/ (ignored by git) for a person to look at.
 *
 * Without Chromium the suite is skipped with a note, unless MNIST_GPUJS_REQUIRE_CHROMIUM=1 (CI sets it), which
 * makes its absence a failure.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_MISSING, CHROMIUM_REQUIRED, LAUNCH_ARGS, drawOne } from './chromium.ts';
import { startServer, type RunningServer } from '../src/cli/commands/serve.ts';
import { resolveBackend } from '../src/engine/device-node.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const required = CHROMIUM_REQUIRED;
const missing = CHROMIUM_MISSING;
if (missing && !required) console.log(`[serve-page.test] skipped: ${missing}`);

describe.skipIf(missing !== undefined && !required)('the serve page in headless Chromium', () => {
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    if (missing) throw new Error(`MNIST_GPUJS_REQUIRE_CHROMIUM=1 but ${missing}`);
    server = await startServer({
      numModels: 4, modelPath: join(ROOT, 'fixtures/mnist_ensemble4.safetensors'), backend: await resolveBackend('auto'),
      host: '127.0.0.1', port: 0, path: 'single', maxBatchSize: 16, maxBatchDelayMs: 0, batchBuckets: [1], queueSize: 100,
      queueTimeoutMs: 5000, bodyLimitBytes: 1024 ** 2, exitTimeoutS: 30, jsonLog: false, webOnly: false,
    }, { stdout: { write: () => true }, stderr: { write: () => true } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...LAUNCH_ARGS, '--disable-gpu'],
    });
    page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(server.url + '/');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a "1" drawn with the mouse is classified as 1, with every model\'s row and the latency', async () => {
    await drawOne(page);
    await page.waitForFunction(() => document.getElementById('digit')!.textContent !== '–', undefined, { timeout: 30_000 });
    expect(await page.textContent('#digit')).toBe('1');
    expect(await page.textContent('#latency')).toMatch(/^\d+\.\d ms, \d\/4 models agree$/);
    expect(await page.locator('#models tr').count()).toBe(1 + 1 + 4); // header, ensemble, four models
    mkdirSync(join(ROOT, 'test-output'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'test-output/serve-page.png'), fullPage: true });
    expect(consoleErrors).toEqual([]);
  }, 60_000);

  it('a PNG chosen as a file is classified, and Clear empties the answer', async () => {
    await page.setInputFiles('#file', join(ROOT, 'fixtures/7.png'));
    await page.waitForFunction(() => document.getElementById('digit')!.textContent === '7', undefined, { timeout: 30_000 });
    await page.click('#clear');
    expect(await page.textContent('#digit')).toBe('–');
    expect(consoleErrors).toEqual([]);
  }, 60_000);
});
