import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AGREEMENT_TOLERANCE, AgreementError, PATHS, benchmarkModels, checkAgreement, chunkSizes, destroyPaths, firstRequest,
  ONE_MODEL_NOTE, latencyStats, makePaths, pathStats, percentile, repeatImage,
  type BenchEvent, type ServingPaths,
} from '../src/bench/harness.ts';
import { run } from '../src/cli/commands/bench.ts';
import { main } from '../src/cli/main.ts';
import type { BenchOptions } from '../src/cli/options.ts';
import { NUM_CLASSES, formatArchitecture } from '../src/model/cnn.ts';
import { predictionsOf } from '../src/model/outputs.ts';
import { stackParams, stackedModels } from '../src/model/stack.ts';
import { PLAN_EXECUTORS, resolveBackend, openDevice } from '../src/engine/device-node.ts';
import { initParams } from '../src/engine/init.ts';
import type { Runner } from '../src/engine/runners.ts';
import { normalizeImages } from '../src/data/normalize.ts';
import { InputError } from '../src/errors.ts';
import { readDigitPng } from '../src/io/png.ts';
import { writeModelFile } from '../src/io/model-file.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const IMAGE = join(ROOT, 'fixtures/7.png');
// webasm when this Node has it (faster), else cpu; never a backend that needs extra setup
const BACKEND = await resolveBackend('auto');
const SLOW = 120_000;

const dir = mkdtempSync(join(tmpdir(), 'mnist-gpujs-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ONE = join(dir, 'one.safetensors');
const THREE = join(dir, 'three.safetensors');
writeModelFile(ONE, initParams(1), 1);
writeModelFile(THREE, stackParams([initParams(1), initParams(2), initParams(3)]), 3);

interface Captured { out: string; err: string }
function collector(stdoutTTY = false): { io: { stdout: { write: (s: string) => void; isTTY: boolean }; stderr: { write: (s: string) => void } }; c: Captured } {
  const c: Captured = { out: '', err: '' };
  return {
    c,
    io: { stdout: { write: (s) => { c.out += s; }, isTTY: stdoutTTY }, stderr: { write: (s) => { c.err += s; } } },
  };
}

function opts(over: Partial<BenchOptions> = {}): BenchOptions {
  return {
    numModels: 2, imagePath: IMAGE, modelPath: ONE, batchSize: 1, warmup: 2, iters: 6, backend: BACKEND,
    sweep: undefined, json: false, ui: false, invert: 'auto', peers: [], peerThreads: 1, ...over,
  };
}

const STATS_FIELDS = ['meanMs', 'p50Ms', 'p95Ms', 'p99Ms', 'minMs', 'maxMs', 'samples', 'requestsPerSecond', 'modelEvaluationsPerSecond'];
const ENTRY_FIELDS = ['numModels', 'replicated', 'predictions', 'agreement', 'sequential', 'singleDispatch', 'execution', 'speedup'];
const DOC_FIELDS = ['backend', 'adapter', 'modelPath', 'fileModels', 'batchSize', 'warmup', 'iters', 'chunks', 'image'];

/** A per-N result; `exact`: it has no other fields (false for the top level of a one-N document). */
function expectEntry(e: any, N: number, iters: number, exact = true): void {
  if (exact) expect(Object.keys(e).sort()).toEqual([...ENTRY_FIELDS].sort());
  expect(e.numModels).toBe(N);
  expect(e.predictions).toHaveLength(N);
  for (const p of e.predictions) expect(p).toSatisfy((d: number) => Number.isInteger(d) && d >= 0 && d < NUM_CLASSES);
  expect(Object.keys(e.agreement).sort()).toEqual(['maxAbsDiff', 'samePredictions', 'tolerance']);
  expect(e.agreement.samePredictions).toBe(true);
  expect(e.agreement.maxAbsDiff).toBeLessThanOrEqual(AGREEMENT_TOLERANCE);
  for (const path of [e.sequential, e.singleDispatch]) {
    expect(Object.keys(path).sort()).toEqual([...STATS_FIELDS].sort());
    expect(path.samples).toBe(iters);
    expect(path.meanMs).toBeGreaterThan(0);
    expect(path.minMs).toBeLessThanOrEqual(path.p50Ms);
    expect(path.p50Ms).toBeLessThanOrEqual(path.p95Ms);
    expect(path.p95Ms).toBeLessThanOrEqual(path.p99Ms);
    expect(path.p99Ms).toBeLessThanOrEqual(path.maxMs);
    expect(path.requestsPerSecond).toBeCloseTo(1000 / path.meanMs, 6);
  }
  expect(e.speedup).toBeCloseTo(e.sequential.meanMs / e.singleDispatch.meanMs, 9);
  // one plan run per model sequentially, one for all of them in single dispatch, each run as the backend's executor;
  // `dispatches` is planRuns' former name, kept for one release
  expect(e.execution.sequential.planRuns).toBe(N);
  expect(e.execution.singleDispatch.planRuns).toBe(1);
  for (const path of PATHS) expect(e.execution[path].dispatches).toBe(e.execution[path].planRuns);
  for (const path of [e.execution.sequential, e.execution.singleDispatch]) {
    expect(PLAN_EXECUTORS[BACKEND]).toContain(path.executorKind);
  }
}

describe('statistics', () => {
  it('percentiles are nearest-rank on known samples', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([50, 95, 99, 100].map((p) => percentile(hundred, p))).toEqual([50, 95, 99, 100]);
    expect(percentile([10, 20, 30, 40], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 95)).toBe(40);
    expect(percentile([7], 99)).toBe(7);
    expect(() => percentile([], 50)).toThrow(RangeError);
  });

  it('latency stats sort their samples; throughput scales with N × B', () => {
    expect(latencyStats([40, 10, 30, 20])).toEqual({ meanMs: 25, p50Ms: 20, p95Ms: 40, p99Ms: 40, minMs: 10, maxMs: 40, samples: 4 });
    const s = pathStats([40, 10, 30, 20], 6);
    expect(s.requestsPerSecond).toBe(40);
    expect(s.modelEvaluationsPerSecond).toBe(240);
  });

  it('chunk sizes add up to iters, differ by at most one, and never exceed iters in count', () => {
    expect(chunkSizes(25, 10)).toEqual([3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
    expect(chunkSizes(1000, 10)).toEqual(Array(10).fill(100));
    expect(chunkSizes(3, 10)).toEqual([1, 1, 1]);
  });
});

describe('agreement check', () => {
  const N = 2;
  const B = 3;
  // log-probabilities whose argmax is class (m + b) % 10
  const base = new Float32Array(N * B * NUM_CLASSES).map((_, i) => {
    const row = Math.floor(i / NUM_CLASSES);
    return (i % NUM_CLASSES) === ((Math.floor(row / B) + (row % B)) % NUM_CLASSES) ? -0.1 : -5;
  });

  it('accepts identical outputs and small float differences', () => {
    expect(checkAgreement(base, base.slice(), N, B)).toEqual({ maxAbsDiff: 0, samePredictions: true, tolerance: AGREEMENT_TOLERANCE });
    const near = base.slice();
    near[13] += 4e-6;
    expect(checkAgreement(base, near, N, B).maxAbsDiff).toBe(Math.abs(near[13]! - base[13]!));
    expect(predictionsOf(base, N, B)).toEqual([[0, 1, 2], [1, 2, 3]]);
  });

  it('detects a planted log-probability mismatch that leaves the predictions alone', () => {
    const off = base.slice();
    off[2 * NUM_CLASSES * B - 1] += 1e-3; // last class of the last row, not its argmax
    expect(predictionsOf(off, N, B)).toEqual(predictionsOf(base, N, B));
    expect(() => checkAgreement(base, off, N, B)).toThrow(AgreementError);
    expect(() => checkAgreement(base, off, N, B)).toThrow(/disagree for 2 model\(s\).*model 1, image 2, class 9/);
  });

  it('detects a flipped prediction and NaN', () => {
    const flipped = base.slice();
    flipped[5] = 0; // model 0, image 0: class 5 now wins
    expect(() => checkAgreement(base, flipped, N, B)).toThrow(/predictions sequential \[0 1 2, 1 2 3\], single dispatch \[5 1 2, 1 2 3\]/);
    const nan = base.slice();
    nan[7] = NaN;
    expect(() => checkAgreement(base, nan, N, B)).toThrow(AgreementError);
    expect(() => checkAgreement(base, base.subarray(1), N, B)).toThrow(AgreementError);
  });
});

describe('benchmarkModels (fake runners)', () => {
  /** Each call is logged and takes `ms[kind]` of busy waiting; model m answers class m. */
  function fakePaths(calls: string[], N = 2, ms = { sequential: 0, 'single-dispatch': 0 }): ServingPaths {
    const runner = (kind: Runner['kind']): Runner => ({
      kind, numModels: N, planRuns: kind === 'sequential' ? N : 1, executorKind: 'fake', destroy: () => {},
      predict: async (_x, B) => {
        calls.push(kind);
        const until = performance.now() + ms[kind];
        while (performance.now() < until) { /* busy: the harness's clock must see it */ }
        const out = new Float32Array(N * B * NUM_CLASSES).fill(-9);
        for (let m = 0; m < N; m++) for (let b = 0; b < B; b++) out[(m * B + b) * NUM_CLASSES + m] = 0;
        return out;
      },
    });
    return { numModels: N, sequential: runner('sequential'), singleDispatch: runner('single-dispatch') };
  }

  it('warms each path up, then alternates chunks in ABBA order; every call is an event with its latency and output', async () => {
    const calls: string[] = [];
    const events: BenchEvent[] = [];
    const r = await benchmarkModels(fakePaths(calls, 2, { sequential: 3, 'single-dispatch': 1 }), new Float32Array(784), 1,
      { warmup: 2, iters: 4, chunks: 2, onEvent: (e) => events.push(e) });
    const S = 'sequential';
    const D = 'single-dispatch';
    // first request (single dispatch first), warm-up, chunk 0, chunk 1
    expect(calls).toEqual([D, S, S, S, D, D, S, S, D, D, D, D, S, S]);
    expect(events.map((e) => e.type).filter((t, i, a) => t !== a[i - 1]))
      .toEqual(['start', 'first-request', 'phase', 'call', 'phase', 'call', 'phase', 'call', 'result']);
    expect(events[0]).toEqual({ type: 'start', numModels: 2, batchSize: 1, planRuns: { sequential: 2, singleDispatch: 1 } });
    const timed = (path: string) => events.flatMap((e) => (e.type === 'call' && e.phase === 'timed' && e.path === path ? [e] : []));
    expect(timed('singleDispatch').map((e) => `${e.done}/${e.total}${e.endsChunk ? '|' : ''}`)).toEqual(['1/4', '2/4|', '3/4', '4/4|']);
    // the statistics are the latencies the events carried, each call's own
    for (const path of PATHS) {
      const latencies = timed(path).map((e) => e.latencyMs);
      expect(r[path].samples).toBe(4);
      expect(r[path].meanMs).toBeCloseTo(latencies.reduce((a, b) => a + b, 0) / 4, 9);
      expect(r[path].minMs).toBe(Math.min(...latencies));
    }
    expect(Math.min(...timed('sequential').map((e) => e.latencyMs))).toBeGreaterThanOrEqual(3);
    expect(r.speedup).toBeGreaterThan(1);
    expect(predictionsOf(timed('sequential')[0]!.output, 2, 1)).toEqual([[0], [1]]);
    const last = events.at(-1)!;
    expect(last.type === 'result' && last.result).toBe(r);
    expect(r.execution.sequential).toEqual({ planRuns: 2, dispatches: 2, executorKind: 'fake' });
  });

  it('stops at the next chunk boundary when aborted', async () => {
    const calls: string[] = [];
    const abort = new AbortController();
    const run = benchmarkModels(fakePaths(calls), new Float32Array(784), 1, {
      warmup: 0, iters: 10, chunks: 5, signal: abort.signal,
      onEvent: (e) => { if (e.type === 'call' && e.phase === 'timed') abort.abort(); },
    });
    await expect(run).rejects.toThrow(/abort/i);
    // the first request, then one chunk of two calls
    expect(calls).toEqual(['single-dispatch', 'sequential', 'sequential', 'sequential']);
  });
});

describe('sequential and single dispatch on a real device', () => {
  it('agree for N = 1, 2 and 7 distinct models, with B = 1 and B = 3', async () => {
    const stacked = stackedModels(stackParams(Array.from({ length: 7 }, (_, i) => initParams(100 + i))), 7);
    const image = normalizeImages(readDigitPng(IMAGE).pixels);
    const device = await openDevice(BACKEND);
    try {
      for (const N of [1, 2, 7]) {
        for (const B of [1, 3]) {
          const paths = makePaths(device, stacked, N);
          const x = repeatImage(image, B);
          const seq = await paths.sequential.predict(x, B);
          const sd = await paths.singleDispatch.predict(x, B);
          expect(predictionsOf(seq, N, B)).toEqual(predictionsOf(sd, N, B));
          let maxDiff = 0;
          for (let i = 0; i < seq.length; i++) maxDiff = Math.max(maxDiff, Math.abs(seq[i]! - sd[i]!));
          expect(maxDiff).toBeLessThanOrEqual(AGREEMENT_TOLERANCE);
          const first = await firstRequest(paths, x, B);
          expect(first.predictions).toEqual(predictionsOf(sd, N, B));
          expect(first.agreement.samePredictions).toBe(true);
        }
      }
      // distinct random models: the 7 do not all answer alike, so a runner mixing models up would show
      const seven = await makePaths(device, stacked, 7).singleDispatch.predict(image, 1);
      expect(new Set(predictionsOf(seven, 7, 1).map((r) => r[0])).size).toBeGreaterThan(1);
    } finally {
      device.destroy();
    }
  }, SLOW);

  it('benchmarkModels counts its calls and reports the sample prediction first', async () => {
    const device = await openDevice(BACKEND);
    const paths = makePaths(device, stackedModels(initParams(5), 1), 1);
    try {
      const seen: number[][][] = [];
      const r = await benchmarkModels(paths, normalizeImages(readDigitPng(IMAGE).pixels), 1,
        { warmup: 0, iters: 3, onEvent: (e) => { if (e.type === 'first-request') seen.push(e.predictions); } });
      expect(seen).toEqual([[[r.predictions[0]]]]);
      expectEntry({ ...r, replicated: false }, 1, 3);
    } finally {
      destroyPaths(paths);
      device.destroy();
    }
  }, SLOW);
});

describe('bench command', () => {
  it('prints the seed-style lines in plain mode, exit 0', async () => {
    const { io, c } = collector();
    expect(await run(opts(), io)).toBe(0);
    expect(c.out).toContain(formatArchitecture());
    expect(c.out).toMatch(/^Net\(\n {2}\(conv1\): Conv2d\(1, 32, kernel_size=\(3, 3\), stride=\(1, 1\)\)\n/);
    expect(c.out).toContain(`Model file: ${ONE} (holds 1 model)\nNumber of models: 2 (the file's one model replicated)\n`);
    expect(c.out).toContain('Image shape: [1, 1, 28, 28]\n');
    expect(c.out).toContain(`Backend: ${BACKEND}\n`);
    expect(c.out).toMatch(/^Sample prediction \(single dispatch, each model's digit\): \[(\d), \1\]$/m);
    expect(c.out).toContain('Timing: 2 warm-up call(s) per path, then 6 timed call(s) per path, alternating in 6 chunk(s)\n');
    expect(c.out).toMatch(/^Avg time taken for prediction without vmap \(sequential, 2 models\): \d+\.\d\d ms \(p50 .*p95 .*p99 .* requests\/s, .* model evaluations\/s\)$/m);
    expect(c.out).toMatch(/^Avg time taken for prediction with single dispatch \(vmap-style, 2 models\): \d+\.\d\d ms /m);
    expect(c.out).toMatch(/^Speedup: \d+\.\d\dx$/m);
    expect(c.out).toMatch(/^Outputs agree: same predictions on both paths, max \|difference\| of log-probabilities .* \(tolerance 1e-5\)$/m);
    expect(c.err).toBe(`mnist-gpujs: note: ${ONE} holds one model; it is replicated 2 times (identical models)\n`);
  }, SLOW);

  it('with the UI asked for but no interactive stdout, notes once that it prints plain text; B > 1 repeats the image', async () => {
    const { io, c } = collector(true);
    expect(await run(opts({ ui: true, modelPath: THREE, numModels: 1, batchSize: 2, warmup: 0, iters: 2 }), io)).toBe(0);
    expect(c.err.match(/stdout is not a terminal; printing plain text/g)).toHaveLength(1);
    expect(c.out).toContain('Image shape: [2, 1, 28, 28] (the image repeated 2 times per request)\n');
    expect(c.out).toContain('Number of models: 1\n');
    // one model: the two paths are the same plan, and the speedup line says so
    expect(c.out).toMatch(new RegExp(`^Speedup: \\d+\\.\\d\\dx \\(${ONE_MODEL_NOTE}\\)$`, 'm'));
  }, SLOW);

  it('--json prints one document with every documented field', async () => {
    const { io, c } = collector();
    expect(await run(opts({ json: true }), io)).toBe(0);
    const doc = JSON.parse(c.out);
    expect(Object.keys(doc).sort()).toEqual([...DOC_FIELDS, ...ENTRY_FIELDS].sort());
    expect(doc).toMatchObject({ backend: BACKEND, adapter: null, modelPath: ONE, fileModels: 1, batchSize: 1, warmup: 2, iters: 6, chunks: 6, replicated: true });
    expect(doc.image).toEqual({ path: IMAGE, width: 28, height: 28, shape: [1, 1, 28, 28], inverted: false, warnings: [] });
    expectEntry(doc, 2, 6, false);
    // replicated models answer alike
    expect(doc.predictions[0]).toBe(doc.predictions[1]);
  }, SLOW);

  it('--sweep 1,2 gives two entries and a table in plain mode', async () => {
    const json = collector();
    expect(await run(opts({ json: true, sweep: [1, 2], modelPath: THREE, warmup: 1, iters: 4 }), json.io)).toBe(0);
    const doc = JSON.parse(json.c.out);
    expect(Object.keys(doc).sort()).toEqual([...DOC_FIELDS, 'sweep'].sort());
    expect(doc.sweep.map((e: any) => e.numModels)).toEqual([1, 2]);
    doc.sweep.forEach((e: any, i: number) => {
      expectEntry(e, i + 1, 4);
      expect(e.replicated).toBe(false);
    });
    expect(json.c.err).toBe('');

    const plain = collector();
    expect(await run(opts({ sweep: [1, 2], modelPath: THREE, warmup: 0, iters: 2 }), plain.io)).toBe(0);
    expect(plain.c.out).toMatch(/^N +sequential ms +single-dispatch ms +speedup +sequential models\/s +single-dispatch models\/s\n1 +\d+\.\d\d +\d+\.\d\d +\d+\.\d\dx +[\d.]+ +[\d.]+\n2 +\d+\.\d\d/m);
    expect(plain.c.out).toContain(`\n(${ONE_MODEL_NOTE})\n`);
    expect(plain.c.out.match(/^Backend: /gm)).toHaveLength(1);
  }, SLOW);

  it('more models than a stacked file holds, or a missing image, is an InputError before any timing', async () => {
    const { io, c } = collector();
    await expect(run(opts({ modelPath: THREE, numModels: 4 }), io)).rejects.toThrow(InputError);
    await expect(run(opts({ modelPath: THREE, sweep: [1, 4] }), io)).rejects.toThrow(/holds 3 models; --num-models 4 needs a file with at least 4/);
    await expect(run(opts({ imagePath: join(dir, 'missing.png') }), io)).rejects.toThrow(InputError);
    await expect(run(opts({ modelPath: join(dir, 'missing.safetensors') }), io)).rejects.toThrow(/missing\.safetensors: file not found/);
    expect(c.out).toBe('');

    let err = '';
    const code = await main(['node', 'mnist-gpujs', 'bench', '--no-ui', '--model-path', THREE, '--num-models', '4'],
      { stdout: { write: () => {} }, stderr: { write: (s: string) => { err += s; } }, env: {} });
    expect(code).toBe(1);
    expect(err).toBe(`mnist-gpujs: ${THREE} holds 3 models; --num-models 4 needs a file with at least 4 (or a single-model file, which is replicated)\n`);
  });
});
