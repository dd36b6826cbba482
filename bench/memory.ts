/**
 * `npm run bench:memory`: the memory that serving N models costs, as `bench` builds them. Issue 6's bound is a
 * peak resident set of at most 2 × the weight bytes + 200 MB at N = 64, and RSS flat over long runs.
 *
 *   npx tsx bench/memory.ts [--num-models 64] [--backend webasm] [--iters 20] [--sample-every K] [--model PATH] [--json]
 *
 * One process, the stages in the order `bench` meets them: the model file loaded and replicated to N, both
 * serving paths built, each path's first request (compiles its plans), then --iters requests per path. After
 * each stage: RSS, the process's peak RSS so far (getrusage's maxrss, so a spike between samples counts), and the
 * threads the process runs (Linux: /proc/self/status), since every GPU.js worker thread carries a V8 isolate.
 * `--sample-every K` also records every K requests, to see whether RSS stays flat over a long run; with
 * NODE_OPTIONS=--expose-gc each sample follows a full garbage collection, so growth there is memory still held.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { IMAGE_SIDE } from '../src/model/cnn.ts';
import { BACKENDS, openDevice } from '../src/engine/device-node.ts';
import { scriptArgs } from './script-args.ts';
import { paramCount } from '../src/model/cnn.ts';
import { firstRequest, makePaths, repeatImage } from '../src/bench/harness.ts';
import { loadServedModels } from '../src/io/model-file.ts';

const USAGE = `usage: npx tsx bench/memory.ts [options]
  --num-models N   models served by each path (default 64)
  --backend NAME   ${BACKENDS.join(', ')} (default webasm)
  --iters N        requests per path after the first (default 20)
  --sample-every K also record every K requests of each path (default: only after each stage)
  --model PATH     model file (default fixtures/mnist_cnn.safetensors, replicated N times)
  --json           print the stages as JSON
  -h, --help       this text`;

const { values, integer, backend: backendOf } = scriptArgs('bench/memory', USAGE, {
  'num-models': { type: 'string', default: '64' },
  backend: { type: 'string', default: 'webasm' },
  iters: { type: 'string', default: '20' },
  'sample-every': { type: 'string', default: '0' },
  model: { type: 'string', default: 'fixtures/mnist_cnn.safetensors' },
  json: { type: 'boolean', default: false },
});
const N = integer('num-models', values['num-models'], 1);
const iters = integer('iters', values.iters, 0);
const sampleEvery = integer('sample-every', values['sample-every'], 0);
const backend = backendOf(values.backend);

const MiB = 2 ** 20;

/** Threads of this process (main, libuv, V8 helpers and every worker thread); null where /proc is absent. */
function threadCount(): number | null {
  try {
    const match = /^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

interface Stage {
  stage: string;
  rssMiB: number;
  peakRssMiB: number;
  threads: number | null;
}
const stages: Stage[] = [];
/** Under `node --expose-gc` (NODE_OPTIONS=--expose-gc), a full collection before each sample: what is left is held. */
const collect = (globalThis as { gc?: () => void }).gc;
function record(stage: string): void {
  collect?.();
  const s: Stage = {
    stage,
    rssMiB: process.memoryUsage().rss / MiB,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    threads: threadCount(),
  };
  stages.push(s);
  if (!values.json) {
    process.stdout.write(`${stage.padEnd(40)} rss ${s.rssMiB.toFixed(0).padStart(6)} MiB   peak ${s.peakRssMiB.toFixed(0).padStart(6)} MiB   threads ${s.threads ?? '?'}\n`);
  }
}

record('start');
const device = await openDevice(backend);
const served = loadServedModels(values.model, N);
// the weights of N models, whether or not they exist on the host at once (a replicated model is held once)
const weightBytes = N * paramCount() * Float32Array.BYTES_PER_ELEMENT;
record(`loaded (${N} models, ${(weightBytes / MiB).toFixed(0)} MiB of weights)`);

const image = new Float32Array(IMAGE_SIDE * IMAGE_SIDE).map((_, i) => ((i * 37) % 255) / 255);
const x = repeatImage(image, 1);
const paths = makePaths(device, served, N);
record('paths set up (plans build on first use)');
await firstRequest(paths, x, 1);
record('first request of each path');
for (const path of ['sequential', 'singleDispatch'] as const) {
  for (let i = 1; i <= iters; i++) {
    await paths[path].predict(x, 1);
    if (sampleEvery > 0 && i % sampleEvery === 0 && i < iters) record(`${i} requests of ${path}`);
  }
  record(`${iters} requests of ${path}`);
}
const executors = { sequential: paths.sequential.executorKind, singleDispatch: paths.singleDispatch.executorKind };
paths.sequential.destroy();
paths.singleDispatch.destroy();
device.destroy();

// getrusage's maxrss only grows, so the last sample holds the run's peak
const peakMiB = stages[stages.length - 1]!.peakRssMiB;
const boundMiB = (2 * weightBytes) / MiB + 200 * 1e6 / MiB;
const summary = {
  backend, numModels: N, weightMiB: weightBytes / MiB, peakRssMiB: peakMiB, boundMiB,
  withinBound: peakMiB <= boundMiB, executors, cpus: os.cpus().length, collectedBeforeSamples: collect !== undefined, stages,
};
if (values.json) {
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
} else {
  process.stdout.write(`peak ${peakMiB.toFixed(0)} MiB; bound 2 × ${(weightBytes / MiB).toFixed(0)} MiB + 200 MB = ${boundMiB.toFixed(0)} MiB: ${summary.withinBound ? 'within' : 'over'}\n`);
}
