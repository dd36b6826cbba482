/**
 * `npm run bench:kernels`: every kernel of the engine at the CNN's real shapes, as the Net calls them in a
 * training step (per-model batches, dropout on), timed with tinybench on each backend, for each batch size B and
 * model count M; plus a plain matmul (bench/matmul.ts) as each backend's reference ceiling.
 *
 *   npx tsx bench/kernels.ts [--backend cpu,webasm,headlessgl] [--batch 1,64] [--models 1,32] [--time 200]
 *                            [--iterations 5] [--max-call-ms 3000] [--matmul 512] [--only REGEX] [--quick] [--json]
 *
 * What one sample is: one `device.run(spec, ...inputs)`, awaited, so it covers argument upload, the kernel and
 * the read-back into a flat Float32Array, as the Net sees a call; the result is then recycled, as the Net does.
 * The serving path's fused kernels (`serve.*`, weights resident as constants) are timed as one-step plans, as an
 * InferencePlan runs them: upload of the activation, the kernel, the read-back; a kernel of vector cells
 * (`serve.conv2Quad+channelsFirst`, `serve.fc1Quad+BiasRelu`) with the step that reads them. Each case runs twice untimed
 * first (the first call compiles, the second sizes the run), so GPU.js compilation never lands in the warm-up or
 * a sample.
 *
 * A contraction's `% matmul` is against the matmul timed right before and right after it (`matmul GF/s`, the mean
 * of the two), not only at the start of the run: on a shared host the matmul's own rate moved by up to 46% between
 * runs and 30% within one, so only a ceiling timed next to the kernel makes the ratio a measurement of the kernel.
 *
 * Each per-layer contraction is also timed as its movement floor (bench/floor.ts: same grid and arguments, no
 * arithmetic): `floor ms`, and `max %`, the share of that matmul its flops would reach in that time.
 *
 * Cells a backend cannot run exactly (an array beyond device.maxElements) are reported `n/a`, not run. Cells
 * whose call exceeds --max-call-ms are skipped too, so a default run stays within minutes (cpu at B = 64,
 * M = 32 would spend minutes per conv kernel): the call time is extrapolated from the same kernel at a smaller
 * B·M (by flops, or cells written), or else taken from the untimed second call.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import {
  conv2dForward, conv2dGradBias, conv2dGradWeight, conv2dGradWeightLayout, conv2dLayoutRelu,
} from '../kernels/conv2d.ts';
import { computeDropoutInfo, dropoutApply } from '../kernels/dropout.ts';
import {
  linearForward, linearGradBias, linearGradInput, linearGradWeight, linearRowQuads, linearRows, linearRowsDropout, linearRowsRelu,
} from '../kernels/linear.ts';
import { logSoftmaxForward, logSoftmaxNllBackward, nllLoss } from '../kernels/log-softmax-nll.ts';
import {
  adadeltaAccDelta, adadeltaDelta, adadeltaSquareAvg, applyUpdate, sgdMomentumBuffer, sgdStep,
} from '../kernels/optim.ts';
import { maxPool2dRelu, maxPool2dReluArgmax } from '../kernels/pool.ts';
import { reluBackward } from '../kernels/relu.ts';
import {
  conv2dFlipWeightsChannelsLast, conv2dGradBiasPooled, conv2dGradInputChannelsLast, conv2dGradInputReluLayout,
  conv2dGradWeightPooled, conv2dGradWeightPooledLayout, maxPool2dReluBackwardChannelsLast, maxPool2dReluWindows,
} from '../kernels/conv2d-pool-backward.ts';
import {
  conv2dBiasReluPoolQuadResident, conv2dBiasReluPoolResident, conv2dBiasReluResident, linearLogSoftmaxResident, linearPartialsBiasRelu, linearPartialsQuadResident, linearPartialsResident,
} from '../kernels/fused-forward.ts';
import { convInputToChannelsLast, pooledToChannelsFirst, transposePlanes } from '../kernels/layout.ts';
import { computeRowsInfo } from '../kernels/shapes.ts';
import { outputSize, type KernelSpec } from '../kernels/spec.ts';
import { DROPOUT1, DROPOUT2, IMAGE_SIDE, NUM_CLASSES } from '../src/model/cnn.ts';
import { cnnShapes } from '../src/engine/shapes.ts';
import { BACKENDS, Device, backendUnavailableReason, type Backend, openDevice } from '../src/engine/device-node.ts';
import { makeRng } from '../src/engine/random.ts';
import { movementFloor } from './floor.ts';
import { MATMUL_LAYOUTS, computeMatmulInfo, matmul, matmulAt, matmulReferenceAt, type MatmulLayout } from './matmul.ts';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const USAGE = `usage: npx tsx bench/kernels.ts [options]
  --backend LIST      backends to run, comma-separated (default cpu,webasm; also headlessgl)
  --batch LIST        batch sizes B (default 1,64)
  --models LIST       model counts M (default 1,32)
  --quick             B = 1 and M = 1 only
  --only REGEX        only the kernels whose label or spec name matches (e.g. conv2, 'gradWeight$')
  --time MS           tinybench time budget per case (default 200)
  --iterations N      minimum timed calls per case (default 5; 3 for a case slower than --time)
  --max-call-ms MS    skip a case whose call exceeds this, estimated or probed (default 3000; 0 = never)
  --matmul N          size of the N x N x N reference matmul, a multiple of 4 (default 512)
  --json              print one JSON document instead of tables
  --help              this text`;

interface Options {
  backends: Backend[];
  batches: number[];
  models: number[];
  timeMs: number;
  iterations: number;
  maxCallMs: number;
  matmulSize: number;
  only: RegExp | null;
  json: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'cpu,webasm' },
      batch: { type: 'string', default: '1,64' },
      models: { type: 'string', default: '1,32' },
      quick: { type: 'boolean', default: false },
      time: { type: 'string', default: '200' },
      iterations: { type: 'string', default: '5' },
      'max-call-ms': { type: 'string', default: '3000' },
      matmul: { type: 'string', default: '512' },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const backends = list(values.backend).map((b) => {
    if (!(BACKENDS as readonly string[]).includes(b)) fail(`unknown backend "${b}" (one of ${BACKENDS.join(', ')})`);
    return b as Backend;
  });
  const ints = (flag: string, s: string) => unique(list(s).map((v) => positiveInt(flag, v)));
  return {
    backends: [...new Set(backends)],
    batches: values.quick ? [1] : ints('--batch', values.batch),
    models: values.quick ? [1] : ints('--models', values.models),
    timeMs: nonNegative('--time', values.time),
    iterations: positiveInt('--iterations', values.iterations),
    maxCallMs: nonNegative('--max-call-ms', values['max-call-ms']),
    matmulSize: positiveInt('--matmul', values.matmul),
    only: values.only === undefined ? null : regex(values.only),
    json: values.json,
  };
}

function list(s: string): string[] {
  return s.split(',').map((v) => v.trim()).filter((v) => v.length > 0);
}

function unique(xs: number[]): number[] {
  return [...new Set(xs)].sort((a, b) => a - b);
}

function positiveInt(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`${flag} needs positive integers, got "${v}"`);
  return n;
}

function nonNegative(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) fail(`${flag} needs a number ≥ 0, got "${v}"`);
  return n;
}

function regex(s: string): RegExp {
  try {
    return new RegExp(s);
  } catch {
    fail(`--only needs a regular expression, got "${s}"`);
  }
}

function fail(message: string): never {
  console.error(`bench:kernels: ${message}\n${USAGE}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Cases: the kernels of one training step, as src/engine/net.ts and optimizer.ts build and call them
// ---------------------------------------------------------------------------------------------

/** How an input is filled: values that steer a kernel (indices, masks) must look like the real ones. */
type Fill = 'uniform' | 'zeros' | 'classes' | 'argmax' | { keep: number } | { inW: number; inC: number };

interface ArrayArg { n: number; fill: Fill }
type Arg = ArrayArg | number;

interface Case {
  /** layer and step, e.g. 'conv2.gradInput.conv' */
  label: string;
  spec: KernelSpec;
  args: Arg[];
  /**
   * A fused serving kernel with resident weights: timed as a one-step plan (`Device.plan`), as InferencePlan
   * chains it; its one argument is the activation, the weights were uploaded when the plan was built.
   */
  resident?: boolean;
  /**
   * A step the resident case's plan runs after it, timed with it: the reader of a kernel's vector cells in an
   * InferencePlan, so that the host does not reshape them into one small array per cell, which a plan never does.
   */
  then?: KernelSpec;
  /** a contraction (conv / linear), compared with the matmul ceiling */
  contraction: boolean;
  /** independent of B: measured once per M (at the smallest B) and reported with B = null */
  batchFree: boolean;
}

function buildCases(M: number, B: number, inputs: Inputs): Case[] {
  const { conv1, conv2, pool, fc1, fc2 } = cnnShapes(M, B, false);
  const rows = computeRowsInfo({ M, B, C: NUM_CLASSES });

  const u = (n: number): ArrayArg => ({ n, fill: 'uniform' });
  const x = M * B * IMAGE_SIDE * IMAGE_SIDE;
  const w1 = M * conv1.outC * conv1.inC * 9;
  const b1 = M * conv1.outC;
  const h1 = M * B * conv1.outC * conv1.outH * conv1.outW;
  const w2 = M * conv2.outC * conv2.inC * 9;
  const b2 = M * conv2.outC;
  const pooled = M * B * fc1.inF;
  const wf1 = M * fc1.outF * fc1.inF;
  const h3 = M * B * fc1.outF;
  const wf2 = M * fc2.outF * fc2.inF;
  const logits = M * B * NUM_CLASSES;
  const targets: ArrayArg = { n: M * B, fill: 'classes' };
  const blocked = (spec: KernelSpec) => u(outputSize(spec));

  const cases: Case[] = [];
  const add = (label: string, spec: KernelSpec, args: Arg[], extra: Partial<Pick<Case, 'contraction' | 'batchFree' | 'resident' | 'then'>> = {}) =>
    cases.push({ label, spec, args, contraction: false, batchFree: false, ...extra });

  // serving: the steps of an InferencePlan (one batch shared by the M models), weights resident
  const served = cnnShapes(M, B, true);
  const resident = (n: number) => inputs.get(u(n));
  const fused = { contraction: true, resident: true };
  add('serve.conv1BiasRelu', conv2dBiasReluResident(served.conv1, { weight: resident(w1), bias: resident(b1) }), [u(B * IMAGE_SIDE * IMAGE_SIDE)], fused);
  add('serve.conv2BiasReluPool', conv2dBiasReluPoolResident(served.conv2, served.pool, { weight: resident(w2), bias: resident(b2) }), [u(h1)], fused);
  const channelsFirst = transposePlanes(pooledToChannelsFirst(served.pool));
  add('serve.channelsFirst', channelsFirst, [u(pooled)], { resident: true });
  // four channels a cell, what webasm and cpu plans run instead (Device.planVectorCells), timed with the transpose that
  // reads its cells: compare with the two rows above
  add('serve.conv2Quad+channelsFirst', conv2dBiasReluPoolQuadResident(served.conv2, served.pool, { weight: resident(w2), bias: resident(b2) }), [u(h1)],
    { ...fused, then: channelsFirst });
  const fc1Partials = linearPartialsResident(served.fc1, resident(wf1));
  add('serve.fc1Partials', fc1Partials, [u(pooled)], fused);
  add('serve.fc1PartialsBiasRelu', linearPartialsBiasRelu(served.fc1, resident(M * fc1.outF)), [blocked(fc1Partials)], { resident: true });
  // four images a cell (B a multiple of 4, vector cells), timed with the bias + ReLU that reads its cells: compare
  // with the two rows above
  if (B % 4 === 0) {
    add('serve.fc1Quad+BiasRelu', linearPartialsQuadResident(served.fc1, resident(wf1)), [u(pooled)],
      { ...fused, then: linearPartialsBiasRelu(served.fc1, resident(M * fc1.outF), 4) });
  }
  add('serve.fc2LogSoftmax', linearLogSoftmaxResident(served.fc2, { weight: resident(wf2), bias: resident(M * fc2.outF) }), [u(h3)], fused);

  // forward
  const conv1Fwd = conv2dForward(conv1);
  add('conv1.forward', conv1Fwd, [u(x), u(w1), u(b1)], { contraction: true });
  add('conv1.layoutRelu', conv2dLayoutRelu(conv1), [blocked(conv1Fwd)]);
  const conv2Fwd = conv2dForward(conv2);
  add('conv2.forward', conv2Fwd, [u(h1), u(w2), u(b2)], { contraction: true });
  // conv2's ReLU is fused into the pool, which reads the convolution's column output
  add('pool.reluForward', maxPool2dRelu(pool), [blocked(conv2Fwd)]);
  add('pool.reluArgmax', maxPool2dReluArgmax(pool), [blocked(conv2Fwd)]);
  // dropout in the forward pass (its backward is fused into the layout of the next layer's input gradient)
  add('dropout1.apply', dropoutApply(computeDropoutInfo(pooled, DROPOUT1)), [u(pooled), { n: pooled, fill: { keep: 1 - DROPOUT1 } }]);
  const fc1Fwd = linearForward(fc1);
  add('fc1.forward', fc1Fwd, [u(pooled), u(wf1), u(M * fc1.outF)], { contraction: true });
  add('fc1.rowsRelu', linearRowsRelu(linearRowQuads(fc1, 'forward')), [blocked(fc1Fwd)]);
  add('dropout2.apply', dropoutApply(computeDropoutInfo(h3, DROPOUT2)), [u(h3), { n: h3, fill: { keep: 1 - DROPOUT2 } }]);
  const fc2Fwd = linearForward(fc2);
  add('fc2.forward', fc2Fwd, [u(h3), u(wf2), u(M * fc2.outF)], { contraction: true });
  add('fc2.rows', linearRows(linearRowQuads(fc2, 'forward')), [blocked(fc2Fwd)]);
  add('logSoftmax.forward', logSoftmaxForward(rows), [u(logits)]);

  // backward
  add('nll.loss', nllLoss(rows), [u(logits), targets]);
  add('logSoftmaxNll.backward', logSoftmaxNllBackward(rows), [u(logits), targets]);
  const fc2GradW = linearGradWeight(fc2);
  add('fc2.gradWeight', fc2GradW, [u(logits), u(h3)], { contraction: true });
  add('fc2.gradWeightRows', linearRows(linearRowQuads(fc2, 'gradWeight')), [blocked(fc2GradW)]);
  add('fc2.gradBias', linearGradBias(fc2), [u(logits)]);
  const fc2GradIn = linearGradInput(fc2);
  add('fc2.gradInput', fc2GradIn, [u(logits), u(wf2)], { contraction: true });
  add('fc2.gradInputRowsDropout', linearRowsDropout(linearRowQuads(fc2, 'gradInput'), computeDropoutInfo(h3, DROPOUT2)),
    [blocked(fc2GradIn), { n: h3, fill: { keep: 1 - DROPOUT2 } }]);
  add('fc1.reluBackward', reluBackward({ n: h3 }), [u(h3), u(h3)]);
  const fc1GradW = linearGradWeight(fc1);
  add('fc1.gradWeight', fc1GradW, [u(h3), u(pooled)], { contraction: true });
  add('fc1.gradWeightRows', linearRows(linearRowQuads(fc1, 'gradWeight')), [blocked(fc1GradW)]);
  add('fc1.gradBias', linearGradBias(fc1), [u(h3)]);
  const fc1GradIn = linearGradInput(fc1);
  add('fc1.gradInput', fc1GradIn, [u(h3), u(wf1)], { contraction: true });
  add('fc1.gradInputRowsDropout', linearRowsDropout(linearRowQuads(fc1, 'gradInput'), computeDropoutInfo(pooled, DROPOUT1)),
    [blocked(fc1GradIn), { n: pooled, fill: { keep: 1 - DROPOUT1 } }]);
  // conv2 → ReLU → pool backward, channels last: weight and bias gradients from the pooled windows, the input gradient dense
  add('conv2.channelsLast', transposePlanes(convInputToChannelsLast(conv2)), [u(h1)]);
  const windowsSpec = maxPool2dReluWindows(conv2, pool);
  const windows: ArrayArg = { n: outputSize(windowsSpec), fill: { inW: conv2.inW, inC: conv2.inC } };
  add('pool.reluWindows', windowsSpec, [{ n: pooled, fill: 'argmax' }, u(pooled), u(pooled)]);
  const gradWPooled = conv2dGradWeightPooled(conv2, pool);
  add('conv2.gradWeight', gradWPooled, [windows, u(h1)], { contraction: true });
  add('conv2.gradWeightLayout', conv2dGradWeightPooledLayout(conv2), [blocked(gradWPooled)]);
  add('conv2.gradBias', conv2dGradBiasPooled(conv2, pool), [windows]);
  const dyLast = maxPool2dReluBackwardChannelsLast(conv2, pool);
  add('pool.reluBackward', dyLast, [windows]);
  add('conv2.gradInput.flip', conv2dFlipWeightsChannelsLast(conv2), [u(w2)], { batchFree: true });
  const gradInLast = conv2dGradInputChannelsLast(conv2, pool);
  add('conv2.gradInput.conv', gradInLast, [blocked(dyLast), u(w2)], { contraction: true });
  add('conv2.gradInput.reluLayout', conv2dGradInputReluLayout(conv2, pool), [blocked(gradInLast), u(h1)]);
  const conv1GradW = conv2dGradWeight(conv1);
  add('conv1.gradWeight', conv1GradW, [u(h1), u(x)], { contraction: true });
  add('conv1.gradWeightLayout', conv2dGradWeightLayout(conv1), [blocked(conv1GradW)]);
  add('conv1.gradBias', conv2dGradBias(conv1), [u(h1)]);

  // optimizer kernels over fc1's weight (the largest parameter), hyper-parameters as the defaults pass them
  const n = { n: wf1 };
  const optimizer = (label: string, spec: KernelSpec, args: Arg[]) => add(label, spec, args, { batchFree: true });
  optimizer('adadelta.squareAvg', adadeltaSquareAvg(n), [u(wf1), u(wf1), u(wf1), 0.9, 0]);
  optimizer('adadelta.delta', adadeltaDelta(n), [u(wf1), u(wf1), u(wf1), u(wf1), 1e-6, 0]);
  optimizer('adadelta.accDelta', adadeltaAccDelta(n), [u(wf1), u(wf1), 0.9]);
  optimizer('optim.applyUpdate', applyUpdate(n), [u(wf1), u(wf1), 1]);
  optimizer('sgd.momentumBuffer', sgdMomentumBuffer(n), [u(wf1), u(wf1), u(wf1), 0.9, 0]);
  optimizer('sgd.step', sgdStep(n), [u(wf1), u(wf1), 0.01, 0]);
  return cases;
}

/** Seeded inputs, shared by every case of one (B, M) that needs the same fill and size. */
class Inputs {
  private readonly arrays = new Map<string, Float32Array>();

  get(arg: ArrayArg): Float32Array {
    const key = `${typeof arg.fill === 'object' ? JSON.stringify(arg.fill) : arg.fill}|${arg.n}`;
    let a = this.arrays.get(key);
    if (!a) {
      a = new Float32Array(arg.n);
      // seeded by size, so every backend and every run times the same data
      const rng = makeRng(arg.n);
      const fill = arg.fill;
      if (fill === 'uniform') for (let i = 0; i < a.length; i++) a[i] = rng() * 2 - 1;
      else if (fill === 'classes') for (let i = 0; i < a.length; i++) a[i] = Math.floor(rng() * NUM_CLASSES);
      else if (fill === 'argmax') for (let i = 0; i < a.length; i++) a[i] = Math.floor(rng() * 4);
      // (gradient, offset of the winner's patch) pairs, as maxPool2dReluWindows writes them for an input fill.inW wide
      else if (typeof fill === 'object' && 'inW' in fill) {
        for (let i = 0; i < a.length; i++) a[i] = i % 2 === 0 ? rng() * 2 - 1 : (Math.floor(rng() * 2) * fill.inW + Math.floor(rng() * 2)) * fill.inC;
      }
      else if (typeof fill === 'object' && 'keep' in fill) for (let i = 0; i < a.length; i++) a[i] = rng() < fill.keep ? 1 : 0;
      this.arrays.set(key, a);
    }
    return a;
  }

  clear(): void {
    this.arrays.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

interface Timing { ms: number; rmePercent: number; samples: number }

/** One call as the Net makes it in a training step: its result is handed back for reuse once read (`recycle`). */
async function runRecycled(device: Device, spec: KernelSpec, ...args: Array<Float32Array | number>): Promise<void> {
  device.recycle(await device.run(spec, ...args));
}

/**
 * Times one kernel with its own Bench: tinybench's iteration floor and warm-up are per Bench, and a slow case
 * (one call longer than the time budget) gets a floor of 3 calls and 1 warm-up call, where a fast one runs for
 * the whole budget anyway. Assumes the kernel is already compiled.
 */
async function measure(name: string, call: () => Promise<unknown>, opts: Options, slow: boolean): Promise<Timing> {
  const bench = new Bench({
    time: opts.timeMs,
    iterations: slow ? Math.min(opts.iterations, 3) : opts.iterations,
    warmup: true,
    warmupTime: opts.timeMs / 4,
    warmupIterations: slow ? 1 : 2,
    throws: true,
  });
  bench.add(name, async () => {
    await call();
  }, { async: true });
  await bench.run();
  const r = bench.tasks[0].result;
  if (r.state !== 'completed') throw new Error(`tinybench ended in state ${r.state}`);
  return { ms: r.latency.mean, rmePercent: r.latency.rme, samples: r.latency.samplesCount };
}

function gflops(spec: KernelSpec, ms: number): number | null {
  return spec.flops > 0 ? spec.flops / (ms * 1e6) : null;
}

/** What the call-time estimate scales with: flops, or cells written for pure data movement. */
function work(spec: KernelSpec): number {
  return spec.flops > 0 ? spec.flops : outputSize(spec);
}

function elementsLabel(n: number): string {
  const log = Math.log2(n);
  return Number.isInteger(log) ? `2^${log}` : String(n);
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

interface Row {
  backend: Backend;
  label: string;
  kernel: string;
  B: number | null;
  M: number;
  flops: number;
  ms: number | null;
  gflops: number | null;
  /** contractions: the best matmul layout's GFLOP/s, the mean of its timings right before and right after this kernel */
  matmulGflops: number | null;
  /** GFLOP/s as a percentage of `matmulGflops` (contractions only) */
  pctOfMatmul: number | null;
  rmePercent: number | null;
  samples: number | null;
  /** per-layer contractions: the movement floor's call time (bench/floor.ts), and the % of the matmul it allows */
  floorMs: number | null;
  maxPctOfMatmul: number | null;
  /** why the cell has no timing: 'exceeds 2^24 elements on headlessgl', 'estimated … > --max-call-ms …', 'error: …' */
  skipped: string | null;
}

interface MatmulTiming { layout: MatmulLayout; kernel: string; ms: number; gflops: number; rmePercent: number; samples: number }

interface MatmulResult {
  size: number;
  /** the faster layout's GFLOP/s at the start of the run; each contraction row is compared with its own timing of it */
  ceilingGflops: number;
  best: MatmulLayout;
  layouts: MatmulTiming[];
  /**
   * The best layout as a 64 × 128 product over the same inner size: its grid (2,048 cells) stays below GPU.js's
   * threading floor, so it runs on one core: the matmul kernel's rate for a grid as small as fc2's.
   */
  oneCore: { rows: number; cols: number; inner: number; gflops: number };
}

interface BackendReport {
  backend: Backend;
  available: boolean;
  reason?: string;
  maxElements?: number;
  matmul?: MatmulResult;
  rows: Row[];
}

/** The matmul result, and a way to time its best layout again (GFLOP/s) next to a kernel. */
async function runMatmul(device: Device, opts: Options): Promise<{ result: MatmulResult; retime: () => Promise<number> }> {
  const info = computeMatmulInfo(opts.matmulSize, opts.matmulSize, opts.matmulSize);
  // A and B (or Bᵀ) from two streams: one seeded array would serve as both
  const rng = makeRng(0x6d6d);
  const random = (n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = rng() * 2 - 1;
    return out;
  };
  const a = random(info.rows * info.inner);
  const b = random(info.inner * info.cols);
  const layouts: MatmulTiming[] = [];
  for (const layout of MATMUL_LAYOUTS) {
    const spec = matmul(info, layout);
    const c = await device.run(spec, a, b);
    // spot-check a few entries, so the ceiling is a real product and not a fast wrong kernel
    for (let t = 0; t < 16; t++) {
      const i = Math.floor(rng() * info.rows);
      const j = Math.floor(rng() * info.cols);
      const err = Math.abs(matmulAt(info, c, i, j) - matmulReferenceAt(info, layout, a, b, i, j));
      if (!(err < 1e-4 * info.inner)) throw new Error(`${spec.name} on ${device.backend} is wrong: C[${i},${j}] off by ${err}`);
    }
    const t = await measure(spec.name, () => runRecycled(device, spec, a, b), opts, false);
    layouts.push({ layout, kernel: spec.name, ms: t.ms, gflops: spec.flops / (t.ms * 1e6), rmePercent: t.rmePercent, samples: t.samples });
  }
  const best = layouts.reduce((p, q) => (q.gflops > p.gflops ? q : p));
  const small = computeMatmulInfo(64, 128, opts.matmulSize);
  const smallSpec = matmul(small, best.layout);
  const smallArgs = [a.subarray(0, small.rows * small.inner), b.subarray(0, small.inner * small.cols)];
  // `measure`'s untimed warm-up compiles it
  const oneCoreMs = (await measure(smallSpec.name, () => runRecycled(device, smallSpec, ...smallArgs), opts, false)).ms;
  const bestSpec = matmul(info, best.layout);
  // a few plain calls (the kernel is compiled and warm), as many as fit in half a case's time budget and at most
  // five: tinybench's 2 warm-up and 5 timed calls would add seconds per contraction on cpu (~0.5 s a matmul)
  const startMs = bestSpec.flops / (best.gflops * 1e6);
  const calls = Math.max(1, Math.min(5, Math.round(opts.timeMs / 2 / startMs)));
  const retime = async () => {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await runRecycled(device, bestSpec, a, b);
    return bestSpec.flops / ((performance.now() - t0) / calls * 1e6);
  };
  return {
    result: {
      size: opts.matmulSize, ceilingGflops: best.gflops, best: best.layout, layouts,
      oneCore: { ...small, gflops: smallSpec.flops / (oneCoreMs * 1e6) },
    },
    retime,
  };
}

const progress = process.stderr.isTTY
  ? (line: string) => process.stderr.write(`\r\x1b[K${line}`)
  : () => {};

async function runBackend(backend: Backend, opts: Options): Promise<BackendReport> {
  const reason = await backendUnavailableReason(backend);
  if (reason) return { backend, available: false, reason, rows: [] };
  const device = await openDevice(backend);
  const report: BackendReport = { backend, available: true, maxElements: device.maxElements, rows: [] };
  try {
    progress(`${backend}: matmul ${opts.matmulSize}^3`);
    const matmulRun = await runMatmul(device, opts);
    report.matmul = matmulRun.result;
    // last measured call per kernel, to extrapolate the next (larger) case's call time
    const seen = new Map<string, { ms: number; work: number }>();
    const inputs = new Inputs();
    // smallest work first, so every estimate extrapolates from a measured smaller case
    const combos = opts.models.flatMap((M) => opts.batches.map((B) => ({ B, M })))
      .sort((p, q) => p.B * p.M - q.B * q.M || p.M - q.M);
    for (const { B, M } of combos) {
      inputs.clear();
      for (const c of buildCases(M, B, inputs)) {
        if (c.batchFree && B !== opts.batches[0]) continue;
        if (opts.only && !opts.only.test(c.label) && !opts.only.test(c.spec.name)) continue;
        const row: Row = {
          backend, label: c.label, kernel: c.spec.name, B: c.batchFree ? null : B, M, flops: c.spec.flops,
          ms: null, gflops: null, matmulGflops: null, pctOfMatmul: null, rmePercent: null, samples: null, floorMs: null, maxPctOfMatmul: null, skipped: null,
        };
        report.rows.push(row);
        const largest = Math.max(outputSize(c.spec), ...c.args.map((a) => (typeof a === 'number' ? 0 : a.n)),
          ...Object.values(c.spec.constants).map((v) => (typeof v === 'number' ? 0 : v.length)));
        if (c.then && !device.planVectorCells) {
          row.skipped = `a plan step on ${backend} passes one value a cell on (Device.planVectorCells)`;
          continue;
        }
        if (largest > device.maxElements) {
          row.skipped = `exceeds ${elementsLabel(device.maxElements)} elements on ${backend}`;
          continue;
        }
        const prev = seen.get(c.label);
        const estimate = prev ? prev.ms * work(c.spec) / prev.work : null;
        if (opts.maxCallMs > 0 && estimate !== null && estimate > opts.maxCallMs) {
          row.skipped = `estimated ${formatMs(estimate)} ms per call > --max-call-ms ${opts.maxCallMs}`;
          continue;
        }
        progress(`${backend}: B=${B} M=${M} ${c.label}`);
        const args = c.args.map((a) => (typeof a === 'number' ? a : inputs.get(a)));
        const plan = !c.resident ? undefined : c.then ? device.plan([c.spec, c.then], ([k, next], input) => next!(k!(input)))
          : device.plan([c.spec], ([k], input) => k!(input));
        const call = plan ? () => plan.run(args[0] as Float32Array) : () => runRecycled(device, c.spec, ...args);
        try {
          // untimed: the first call compiles the kernel; the second gives the call time that sizes the run
          await call();
          const t0 = performance.now();
          await call();
          const probe = performance.now() - t0;
          if (opts.maxCallMs > 0 && probe > opts.maxCallMs) {
            // one untimed call is all such a case gets; the next larger case of this kernel skips without a call
            seen.set(c.label, { ms: probe, work: work(c.spec) });
            row.skipped = `one call took ${formatMs(probe)} ms > --max-call-ms ${opts.maxCallMs}`;
            continue;
          }
          const before = c.contraction ? await matmulRun.retime() : null;
          const t = await measure(c.spec.name, call, opts, probe > opts.timeMs);
          const ceiling = before === null ? null : (before + await matmulRun.retime()) / 2;
          seen.set(c.label, { ms: t.ms, work: work(c.spec) });
          row.ms = t.ms;
          row.gflops = gflops(c.spec, t.ms);
          row.matmulGflops = ceiling;
          row.pctOfMatmul = ceiling !== null && row.gflops !== null ? 100 * row.gflops / ceiling : null;
          row.rmePercent = t.rmePercent;
          row.samples = t.samples;
          const floor = c.contraction && !plan ? movementFloor(c.spec, args.length) : null;
          if (floor && ceiling !== null) {
            row.floorMs = (await measure(floor.name, () => runRecycled(device, floor, ...args), opts, false)).ms;
            row.maxPctOfMatmul = 100 * (c.spec.flops / (row.floorMs * 1e6)) / ceiling;
          }
        } catch (err) {
          row.skipped = `error: ${err instanceof Error ? err.message : String(err)}`;
        } finally {
          plan?.destroy();
        }
      }
    }
  } finally {
    progress('');
    device.destroy();
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);
}

function formatRate(g: number): string {
  return g >= 10 ? g.toFixed(1) : g >= 0.1 ? g.toFixed(2) : g.toPrecision(2);
}

function printTable(report: BackendReport): void {
  if (!report.available) {
    console.log(`== ${report.backend}: skipped — ${report.reason}\n`);
    return;
  }
  const mm = report.matmul!;
  const layouts = mm.layouts.map((l) => `${l.kernel} ${formatMs(l.ms)} ms = ${formatRate(l.gflops)} GFLOP/s`).join(', ');
  console.log(`== ${report.backend} — matmul ${mm.size}x${mm.size}x${mm.size}: ${layouts}; `
    + `each contraction's % is against the ${mm.layouts.find((l) => l.layout === mm.best)!.kernel} timed right before and after it (matmul GF/s)`);
  console.log(`   on one core (${mm.oneCore.rows}x${mm.oneCore.cols}x${mm.oneCore.inner}, a grid below GPU.js's threading floor): `
    + `${formatRate(mm.oneCore.gflops)} GFLOP/s = ${(100 * mm.oneCore.gflops / mm.ceilingGflops).toFixed(0)}%`);
  const header = ['kernel', 'spec', 'B', 'M', 'ms', 'GFLOP/s', 'matmul GF/s', '% matmul', '±%', 'n', 'floor ms', 'max %'];
  const cells = report.rows.map((r) => {
    const head = [r.label, r.kernel, r.B === null ? '-' : String(r.B), String(r.M)];
    if (r.skipped !== null) {
      return [...head, r.skipped.startsWith('exceeds') ? `n/a (${r.skipped})` : `skipped (${r.skipped})`];
    }
    return [
      ...head, formatMs(r.ms!), r.gflops === null ? '-' : formatRate(r.gflops),
      r.matmulGflops === null ? '' : formatRate(r.matmulGflops), r.pctOfMatmul === null ? '' : `${r.pctOfMatmul.toFixed(0)}%`, r.rmePercent!.toFixed(1), String(r.samples),
      r.floorMs === null ? '' : formatMs(r.floorMs), r.maxPctOfMatmul === null ? '' : `${r.maxPctOfMatmul.toFixed(0)}%`,
    ];
  });
  // a skipped row's note runs on past the numeric columns, so it sets no width there
  const widths = header.map((h, i) => Math.max(h.length, ...cells.filter((c) => i < c.length - 1 || c.length === header.length).map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => {
    if (c.length < header.length && i === c.length - 1) return v;
    return i < 2 ? v.padEnd(widths[i]) : v.padStart(widths[i]);
  }).join('  ').trimEnd();
  console.log(line(header));
  let batch = 0;
  let models = 0;
  report.rows.forEach((r, i) => {
    // a blank line between (B, M) groups; batch-free rows (B = null) stay in their group
    const b = r.B ?? batch;
    if (i > 0 && (b !== batch || r.M !== models)) console.log('');
    batch = b;
    models = r.M;
    console.log(line(cells[i]));
  });
  console.log('');
}

function gpujsVersion(): string {
  return (createRequire(import.meta.url)('gpu.js/package.json') as { version: string }).version;
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    gpujs: gpujsVersion(),
  };
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

const opts = parseOptions(process.argv.slice(2));
const started = new Date();
const reports: BackendReport[] = [];
if (!opts.json) {
  const m = machine();
  console.log(`bench:kernels — ${m.cpu} (${m.cores} cores), Node ${m.node}, gpu.js ${m.gpujs}; `
    + `B ${opts.batches.join(',')}, M ${opts.models.join(',')}, ${opts.timeMs} ms per case, ≥${opts.iterations} calls\n`);
}
for (const backend of opts.backends) {
  const report = await runBackend(backend, opts);
  reports.push(report);
  if (!opts.json) printTable(report);
}
if (opts.json) {
  console.log(JSON.stringify({
    benchmark: 'mnist-gpujs bench:kernels',
    startedAt: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 100) / 10,
    machine: machine(),
    settings: {
      batches: opts.batches, models: opts.models, timeMs: opts.timeMs, minIterations: opts.iterations,
      maxCallMs: opts.maxCallMs, matmulSize: opts.matmulSize, only: opts.only?.source ?? null,
      sample: 'one awaited device.run (upload, kernel, read-back into a recycled array); compilation excluded',
    },
    backends: reports.map(({ rows: _rows, ...rest }) => rest),
    rows: reports.flatMap((r) => r.rows),
  }, null, 2));
}
// webasm's worker pool keeps the event loop alive
process.exit(0);
