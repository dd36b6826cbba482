/**
 * `mnist-gpujs bench`: the PyTorch seed script's benchmark, done properly. Loads the model(s), prints the
 * architecture and the request's shape, a sample prediction, then times N models served one by one (sequential:
 * N plan runs per request) against all N stacked in one plan (single dispatch: one plan run, the vmap
 * counterpart), checks that both paths agree, and prints latency, throughput and the speedup. `--sweep` repeats that for each model count and adds a table.
 * The measuring lives in src/bench/harness.ts; this file only loads inputs and formats.
 *
 * `--json` prints one JSON document on stdout and nothing else there (notes, warnings and progress go to stderr):
 *   backend            string    the GPU.js backend that ran every kernel (cpu, webasm, headlessgl, webgpu)
 *   adapter            string | null  the GPU behind a GPU backend, e.g. "google swiftshader (SwiftShader driver
 *                      5.0.0)", with ", a software adapter" when it is not a GPU; null on cpu and webasm
 *   modelPath          string    the model file
 *   fileModels         number    how many models the file holds
 *   batchSize          number    B: images per request (the image repeated B times)
 *   warmup, iters      number    untimed and timed calls per path (per model count)
 *   chunks             number    how many alternating chunks the timed calls were split into
 *   image              {path, width, height, shape: [B, 1, 28, 28], inverted, warnings: string[]}
 * and, for one model count, these fields at the top level; with --sweep, `sweep`: an array of them, one per N:
 *   numModels          number    N
 *   replicated         boolean   true when the file's single model was copied to make N models
 *   predictions        number[]  each model's predicted digit (single dispatch)
 *   agreement          {maxAbsDiff, samePredictions, tolerance}: sequential vs single-dispatch log-probabilities
 *                      over the whole request, on the first and the last timed call
 *   sequential, singleDispatch
 *                      {meanMs, p50Ms, p95Ms, p99Ms, minMs, maxMs, samples, requestsPerSecond,
 *                       modelEvaluationsPerSecond}: per-call latency (percentiles nearest-rank), requests/s
 *                      (1000 / meanMs) and N × B × requests/s
 *   execution          {sequential, singleDispatch: {planRuns, dispatches, executorKind}}: plan runs per request
 *                      (N and 1, or a few groups past a device's limit; `dispatches` is its former name, kept
 *                      for one release) and how GPU.js executed them: 'fused-threaded' or
 *                      'fused-sync' (webasm), 'fused-encoder' (webgpu: one submission), 'generic' (headlessgl),
 *                      'stepwise' (cpu)
 *   speedup            number    sequential meanMs / singleDispatch meanMs
 *   peers              with --peers only: [{engine, version, backend, threads, sequential, stacked, agreement}] per
 *                      other engine, timed the same way on the same models: `sequential` and `stacked` (its one
 *                      graph for all N) have the stats fields above; agreement {maxAbsDiff, tolerance} against our
 *                      single dispatch, over both of its ways; or, where the engine itself failed at that N
 *                      and B (TF.js's wasm heap can run out), {engine, version, backend, threads, error}
 * A disagreement between the paths (or with a peer) is an error (exit 1), so a document always describes agreeing paths.
 */
import { IMAGE_SIDE, formatArchitecture } from '../../model/cnn.ts';
import { openDevice } from '../device.ts';
import { normalizeImages } from '../../data/normalize.ts';
import { readDigitPng } from '../../io/png.ts';
import {
  DEFAULT_CHUNKS, ONE_MODEL_NOTE, PATH_LABEL, benchDocument, benchmarkModels, chunkSizes, destroyPaths, makePaths, repeatImage,
  type Agreement, type BenchEntry, type BenchEvent, type ModelsBenchmark, type PathStats,
} from '../../bench/harness.ts';
import { ms, plural, rate } from '../../format.ts';
import { loadServedModels } from '../../io/model-file.ts';
import { EXIT_INTERRUPTED } from '../../exit-codes.ts';
import { ENGINE_LABEL, benchmarkPeers, type PeerResult } from '../../bench/peers.ts';
import { openPeers } from '../../peers/peer.ts';
import type { BenchOptions, CliIO, Writer } from '../options.ts';
import { ProgressLine } from '../progress.ts';

export type { BenchOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

export async function run(opts: BenchOptions, io: CliIO = processIO): Promise<number> {
  if (opts.ui && io.stdout.isTTY) {
    // On an interactive terminal the live dashboard (src/ui/) takes over. It shows one model count at a time,
    // so a sweep stays plain (its table is the point); so does a terminal whose stdin cannot give keys.
    // Loaded lazily: plain, --json and --sweep runs never load Ink and React.
    const dashboard = opts.sweep ? undefined : await import('./dashboard.ts');
    const why = dashboard ? dashboard.dashboardUnavailable(io) : 'the live dashboard shows one model count at a time, not a --sweep';
    if (dashboard && why === undefined) {
      const { numModels, imagePath, modelPath, batchSize, warmup, iters, backend, invert, peers, peerThreads } = opts;
      return dashboard.run({ numModels, imagePath, modelPath, batchSize, warmup, iters, backend, invert, peers, peerThreads }, io);
    }
    io.stderr.write(`mnist-gpujs: note: ${why}; printing plain text (--no-ui hides this note)\n`);
  }
  // the peers' packages are optional: a missing one is one line before anything is timed
  const peers = opts.peers.length > 0 ? await openPeers(opts.peers, opts.peerThreads) : [];
  const counts = opts.sweep ?? [opts.numModels];
  // Loaded once for the largest N: a stacked file that is too small fails here, before any timing.
  const served = loadServedModels(opts.modelPath, Math.max(...counts));
  const digit = readDigitPng(opts.imagePath, { invert: opts.invert });
  for (const w of digit.warnings) io.stderr.write(`mnist-gpujs: warning: ${w}\n`);
  if (served.note) io.stderr.write(`mnist-gpujs: note: ${served.note}\n`);

  const B = opts.batchSize;
  const x = repeatImage(normalizeImages(digit.pixels), B);
  const shape = [B, 1, IMAGE_SIDE, IMAGE_SIDE];
  const chunks = chunkSizes(opts.iters, DEFAULT_CHUNKS).length;
  // Plain lines go to stdout, except with --json, whose stdout is the document alone.
  const out: Writer | undefined = opts.json ? undefined : io.stdout;
  const print = (line: string) => out?.write(line + '\n');

  print(formatArchitecture());
  print(`Model file: ${opts.modelPath} (holds ${plural(served.fileModels, 'model')})`);
  const copies = served.note ? ' (the file\'s one model replicated)' : '';
  print((opts.sweep ? `Number of models: sweep over ${counts.join(', ')}` : `Number of models: ${counts[0]}`) + copies);
  print(`Image: ${opts.imagePath} (${digit.width}x${digit.height}${digit.inverted ? ', inverted' : ''})`);
  print(`Image shape: [${shape.join(', ')}]` + (B > 1 ? ` (the image repeated ${B} times per request)` : ''));

  print(`Timing: ${opts.warmup} warm-up call(s) per path, then ${opts.iters} timed call(s) per path, alternating in ${chunks} chunk(s)`);

  const device = await openDevice(opts.backend, io);
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(EXIT_INTERRUPTED); // a second Ctrl-C does not wait for the chunk
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = new ProgressView(io.stderr);
  const entries: BenchEntry[] = [];
  try {
    for (const N of counts) {
      if (opts.sweep) print(`\n== ${plural(N, 'model')} ==`);
      const paths = makePaths(device, served, N);
      let result: ModelsBenchmark;
      let ours: Float32Array | undefined;
      try {
        result = await benchmarkModels(paths, x, B, {
          warmup: opts.warmup, iters: opts.iters, chunks: DEFAULT_CHUNKS, signal: abort.signal,
          onEvent: (e) => {
            progress.update(e);
            if (e.type === 'call' && e.path === 'singleDispatch') ours = e.output;
            if (e.type !== 'first-request') return;
            // printed once kernels have run: Device refuses a kernel that fell back to another backend
            if (entries.length === 0) print(`Backend: ${device.description}`);
            print(`Sample prediction (single dispatch, each model's digit): [${e.predictions.map((row) => row[0]).join(', ')}]`);
          },
        });
      } finally {
        destroyPaths(paths);
      }
      progress.clear();
      print(formatResult(result));
      let peerResults: PeerResult[] | undefined;
      if (peers.length > 0) {
        peerResults = await benchmarkPeers(peers, served, N, x, B, ours!, {
          warmup: opts.warmup, iters: opts.iters, chunks: DEFAULT_CHUNKS, signal: abort.signal,
          onEvent: (e) => progress.update(e, 'peer'),
        });
        progress.clear();
        for (const p of peerResults) print(formatPeer(p, N));
      }
      entries.push({ ...result, replicated: served.fileModels === 1 && N > 1, ...(peerResults ? { peers: peerResults } : {}) });
    }
  } catch (err) {
    progress.clear();
    if (!abort.signal.aborted) throw err;
    const done = entries.map((e) => e.numModels);
    io.stderr.write(`mnist-gpujs: interrupted${done.length > 0 ? ` (finished: ${done.join(', ')} model(s))` : ''}; no summary printed\n`);
    return EXIT_INTERRUPTED;
  } finally {
    process.off('SIGINT', onSigint);
    device.destroy();
  }

  if (opts.sweep) print('\n' + (peers.length > 0 ? formatEnginesTable(entries) : formatSweepTable(entries)));
  if (opts.json) {
    const doc = benchDocument({
      backend: device.backend, adapter: device.adapterLabel, modelPath: opts.modelPath, fileModels: served.fileModels, batchSize: B,
      warmup: opts.warmup, iters: opts.iters, chunks,
      image: { path: opts.imagePath, width: digit.width, height: digit.height, shape, inverted: digit.inverted, warnings: digit.warnings },
    }, entries, opts.sweep !== undefined);
    io.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  }
  return 0;
}

/** One progress line per (N, phase, path) on stderr; only the active one is drawn. Silent when not a TTY. */
class ProgressView {
  private readonly bars = new Map<string, ProgressLine>();
  private current: ProgressLine | undefined;

  constructor(private readonly err: Writer) {}

  update(e: BenchEvent, who = ''): void {
    if ((e.type !== 'phase' && e.type !== 'call') || e.total === 0) return;
    const key = `${who}|${e.numModels}|${e.phase}|${e.path}`;
    let bar = this.bars.get(key);
    if (!bar) {
      const label = `N=${e.numModels} ${e.phase === 'warmup' ? 'warm-up' : 'timed'} ${who ? `${who} ` : ''}${PATH_LABEL[e.path]}`;
      bar = new ProgressLine(this.err, label, e.total, 'calls');
      this.bars.set(key, bar);
    }
    if (bar !== this.current) this.current?.clear();
    this.current = bar;
    bar.update(e.type === 'call' ? e.done : 0);
  }

  clear(): void {
    this.current?.clear();
    this.current = undefined;
    this.bars.clear();
  }
}

function formatStats(s: PathStats): string {
  return `${ms(s.meanMs)} ms (p50 ${ms(s.p50Ms)}, p95 ${ms(s.p95Ms)}, p99 ${ms(s.p99Ms)} ms; `
    + `${rate(s.requestsPerSecond)} requests/s, ${rate(s.modelEvaluationsPerSecond)} model evaluations/s)`;
}

function formatAgreement(a: Agreement): string {
  const diff = a.maxAbsDiff === 0 ? '0' : a.maxAbsDiff.toExponential(2);
  return `Outputs agree: same predictions on both paths, max |difference| of log-probabilities ${diff} `
    + `(tolerance ${a.tolerance.toExponential()})`;
}

function formatResult(r: ModelsBenchmark): string {
  const models = plural(r.numModels, 'model');
  return [
    `Avg time taken for prediction without vmap (sequential, ${models}): ${formatStats(r.sequential)}`,
    `Avg time taken for prediction with single dispatch (vmap-style, ${models}): ${formatStats(r.singleDispatch)}`,
    `Speedup: ${r.speedup.toFixed(2)}x${r.numModels === 1 ? ` (${ONE_MODEL_NOTE})` : ''}`,
    `Execution: sequential ${plural(r.execution.sequential.planRuns, 'plan run')} per request (${r.execution.sequential.executorKind}), `
      + `single dispatch ${plural(r.execution.singleDispatch.planRuns, 'plan run')} (${r.execution.singleDispatch.executorKind})`,
    formatAgreement(r.agreement),
  ].join('\n');
}

function formatPeer(p: PeerResult, N: number): string {
  const who = `${ENGINE_LABEL[p.engine]} ${p.version} (${p.backend}, ${plural(p.threads, 'thread')})`;
  if (p.error !== undefined) return `${who} failed at N = ${N}: ${p.error}`;
  const diff = p.agreement.maxAbsDiff === 0 ? '0' : p.agreement.maxAbsDiff.toExponential(2);
  return [
    `${who} sequential (${plural(N, 'graph')}): ${formatStats(p.sequential)}`,
    `${who} stacked (one graph): ${formatStats(p.stacked)}`,
    `${who} agrees with ours: max |difference| of log-probabilities ${diff} (tolerance ${p.agreement.tolerance.toExponential()})`,
  ].join('\n');
}

/** --sweep with --peers: every engine's mean latency and model evaluations/s per N, one row per engine and way. */
function formatEnginesTable(entries: readonly BenchEntry[]): string {
  const header = ['N', 'engine', 'way', 'mean ms', 'p50 ms', 'models/s'];
  const rows: string[][] = [];
  for (const e of entries) {
    const row = (engine: string, way: string, s: PathStats) => rows.push([String(e.numModels), engine, way, ms(s.meanMs), ms(s.p50Ms), rate(s.modelEvaluationsPerSecond)]);
    row('mnist-gpujs', 'sequential', e.sequential);
    row('mnist-gpujs', 'single dispatch', e.singleDispatch);
    for (const p of e.peers ?? []) {
      if (p.error !== undefined) {
        rows.push([String(e.numModels), ENGINE_LABEL[p.engine], 'failed', '–', '–', '–']);
        continue;
      }
      row(ENGINE_LABEL[p.engine], 'sequential', p.sequential);
      row(ENGINE_LABEL[p.engine], 'stacked', p.stacked);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i === 1 || i === 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n');
}

function formatSweepTable(entries: readonly ModelsBenchmark[]): string {
  const header = ['N', 'sequential ms', 'single-dispatch ms', 'speedup', 'sequential models/s', 'single-dispatch models/s'];
  const rows = entries.map((e) => [
    String(e.numModels), ms(e.sequential.meanMs), ms(e.singleDispatch.meanMs), `${e.speedup.toFixed(2)}x`,
    rate(e.sequential.modelEvaluationsPerSecond), rate(e.singleDispatch.modelEvaluationsPerSecond),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const table = [header, ...rows].map((r) => r.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
  if (entries.some((e) => e.numModels === 1)) table.push(`(${ONE_MODEL_NOTE})`);
  return table.join('\n');
}
