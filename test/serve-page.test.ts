/**
 * The page `serve` answers at `/`, in a real browser: Debian's Chromium, headless, driven by playwright-core (no
 * browser download). Drawing a "1" with the mouse and choosing a PNG file both show the ensemble's digit, every
 * model's row and the latency. A screenshot goes to test-output/ (ignored by git) for a person to look at.
 *
 * Without Chromium the suite is skipped with a note, unless MNIST_GPUJS_REQUIRE_CHROMIUM=1 (CI sets it), which
 * makes its absence a failure.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startServer, type RunningServer } from '../src/cli/commands/serve.ts';
import { resolveBackend } from '../src/engine/device-node.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const required = process.env.MNIST_GPUJS_REQUIRE_CHROMIUM === '1';
const missing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found (apt-get install chromium)`;
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
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
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
    const pad = (await page.locator('#pad').boundingBox())!;
    await page.mouse.move(pad.x + pad.width * 0.52, pad.y + pad.height * 0.15);
    await page.mouse.down();
    for (let i = 1; i <= 12; i++) await page.mouse.move(pad.x + pad.width * (0.52 - 0.01 * i / 12), pad.y + pad.height * (0.15 + 0.7 * i / 12));
    await page.mouse.up();
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
