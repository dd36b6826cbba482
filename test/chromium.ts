/**
 * What the browser suites share: Debian's Chromium (no browser download; CHROMIUM_PATH for another), whether it is
 * required (MNIST_GPUJS_REQUIRE_CHROMIUM=1, as CI sets), the flags it runs with here, and drawing a digit.
 */
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_REQUIRED = process.env.MNIST_GPUJS_REQUIRE_CHROMIUM === '1';
/** Why the browser suites cannot run here, or undefined. */
export const CHROMIUM_MISSING = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found (apt-get install chromium)`;
/** Root needs --no-sandbox; the rest keeps a headless run off the network. */
export const LAUNCH_ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A "1" drawn with the mouse on the page's pad: one stroke, top to bottom, slightly slanted. */
export async function drawOne(page: Page): Promise<void> {
  const pad = (await page.locator('#pad').boundingBox())!;
  await page.mouse.move(pad.x + pad.width * 0.52, pad.y + pad.height * 0.15);
  await page.mouse.down();
  for (let i = 1; i <= 12; i++) await page.mouse.move(pad.x + pad.width * (0.52 - 0.01 * i / 12), pad.y + pad.height * (0.15 + 0.7 * i / 12));
  await page.mouse.up();
}
