/**
 * `npm run bench:web`: the page's benchmark panel in headless Chromium, driven as a person would (choose N and B,
 * press Run, read the JSON it offers to copy), once per browser backend. Starts `mnist-gpujs web`'s server on a
 * free loopback port (the bundle is built first), launches Debian's chromium (`CHROMIUM_PATH` to use another),
 * and prints one line per run, or with `--json` every run's `bench --json` document.
 *
 * Without a GPU, Chromium's WebGL2 and WebGPU run on SwiftShader, on the CPU: such figures check that the paths
 * agree and the panel works; they say nothing about a GPU's speed.
 *
 *   npm run bench:web -- --backends webgl2,webgpu --num-models 1,2,4 --batch-size 1 --warmup 3 --iters 20 [--json]
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { buildWebServer } from '../src/serve/server.ts';
import { findWebAssets } from '../src/serve/web-assets.ts';
import { ms, rate } from '../src/format.ts';
import { buildWeb } from '../web/build.ts';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const BACKEND_FLAGS: Record<string, string[]> = {
  webgl2: [],
  webgpu: ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'],
  cpu: [],
};

interface Args { backends: string[]; numModels: number[]; batchSize: number; warmup: number; iters: number; json: boolean }

function parseArgs(argv: string[]): Args {
  const args: Args = { backends: ['webgl2', 'webgpu'], numModels: [1, 2, 4], batchSize: 1, warmup: 3, iters: 20, json: false };
  const int = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`bench:web: ${flag} needs a non-negative integer, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--backends') args.backends = (argv[++i] ?? '').split(',');
    else if (flag === '--num-models') args.numModels = (argv[++i] ?? '').split(',').map((v) => int(flag, v));
    else if (flag === '--batch-size') args.batchSize = int(flag, argv[++i]);
    else if (flag === '--warmup') args.warmup = int(flag, argv[++i]);
    else if (flag === '--iters') args.iters = int(flag, argv[++i]);
    else if (flag === '--json') args.json = true;
    else throw new Error(`bench:web: unknown option ${flag} (see the comment at the top of bench/web.ts)`);
  }
  for (const b of args.backends) if (!(b in BACKEND_FLAGS)) throw new Error(`bench:web: --backends takes ${Object.keys(BACKEND_FLAGS).join(', ')}, got ${b}`);
  if (![1, 8, 64].includes(args.batchSize)) throw new Error('bench:web: the panel offers --batch-size 1, 8 or 64');
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!existsSync(CHROMIUM)) throw new Error(`bench:web: ${CHROMIUM} not found (apt-get install chromium, or set CHROMIUM_PATH)`);
  await buildWeb();
  const app = await buildWebServer({ bodyLimitBytes: 1024, version: 'bench', web: findWebAssets(ROOT) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
  const docs: object[] = [];
  try {
    for (const backend of args.backends) {
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', ...BACKEND_FLAGS[backend]!] });
      try {
        const page = await browser.newPage();
        await page.goto(url);
        for (const N of args.numModels) {
          // the ensemble file holds 4 models; beyond that the single model is replicated, as `bench` does
          const file = N <= 4 ? 'mnist_ensemble4.safetensors' : 'mnist_cnn.safetensors';
          if (await page.inputValue('#model-file') !== file || await page.inputValue('#backend') !== backend) {
            await page.selectOption('#model-file', file);
            await page.selectOption('#backend', backend);
          }
          await page.waitForFunction((b) => document.getElementById('status')!.textContent!.startsWith(`In this browser: ${b}`)
            || document.getElementById('status')!.className === 'error', backend, { timeout: 300_000 });
          const status = (await page.textContent('#status'))!;
          if (!status.startsWith('In this browser')) throw new Error(`bench:web: ${backend}: ${status}`);
          await page.selectOption('#bench-n', String(N));
          await page.selectOption('#bench-b', String(args.batchSize));
          await page.fill('#bench-warmup', String(args.warmup));
          await page.fill('#bench-iters', String(args.iters));
          await page.click('#bench-run');
          await page.waitForFunction(() => !document.getElementById('bench-run')!.hasAttribute('disabled'), undefined, { timeout: 600_000 });
          const json = await page.textContent('#bench-json');
          if (await page.isHidden('#bench-json') || !json) throw new Error(`bench:web: ${backend} N=${N}: ${await page.textContent('#bench-phase')}`);
          const doc = JSON.parse(json);
          docs.push(doc);
          if (!args.json) {
            process.stdout.write(`${backend} N=${N} B=${args.batchSize} (${doc.adapter}): sequential ${ms(doc.sequential.meanMs)} ms (p50 ${ms(doc.sequential.p50Ms)}), `
              + `single dispatch ${ms(doc.singleDispatch.meanMs)} ms (p50 ${ms(doc.singleDispatch.p50Ms)}), speedup ${doc.speedup.toFixed(2)}x, `
              + `${rate(doc.singleDispatch.modelEvaluationsPerSecond)} model evaluations/s, max |diff| ${doc.agreement.maxAbsDiff}\n`);
          }
        }
      } finally {
        await browser.close();
      }
    }
  } finally {
    await app.close();
  }
  if (args.json) process.stdout.write(JSON.stringify(docs, null, 2) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).message.split('\n')[0]}\n`);
  process.exit(1);
});
