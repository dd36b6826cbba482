/**
 * Every kernel of kernels/ against the float64 reference (test/reference.ts), on every available backend, with
 * fresh random inputs each run (each test logs its seed; TEST_SEED=<seed> replays it). Shapes are small and
 * mostly odd; each family also has one case of at least 4096 cells, because webasm hands such grids to its worker
 * pool (a different code path, split into chunks) and a chunking error would leave cells unwritten. Outputs are
 * poisoned before the run where the backend allows it (see runPoisoned), so an unwritten cell fails as NaN.
 *
 * Tolerances: ‖out − ref‖/‖ref‖ ≤ 1e-5 for forward ops, ≤ 1e-4 for gradients and optimizer updates; pure data
 * movement (padding, flipping, pooling, ReLU) must be exact.
 */
import gpujs from 'gpu.js';
import { describe, expect, it } from 'vitest';
import { conv2dForward, conv2dGradBias, conv2dGradWeight, conv2dGradWeightLayout, conv2dLayoutRelu } from '../kernels/conv2d.ts';
import {
  conv2dFlipWeightsChannelsLast, conv2dGradBiasPooled, conv2dGradInputChannelsLast, conv2dGradInputReluLayout,
  conv2dGradWeightPooled, conv2dGradWeightPooledLayout, maxPool2dReluBackwardChannelsLast, maxPool2dReluWindows,
} from '../kernels/conv2d-pool-backward.ts';
import { computeDropoutInfo, dropoutApply } from '../kernels/dropout.ts';
import {
  conv2dBiasReluPoolQuadResident, conv2dBiasReluPoolResident, conv2dBiasReluResident, linearLogSoftmaxResident, linearPartialsBiasRelu, linearPartialsQuadResident, linearPartialsResident,
} from '../kernels/fused-forward.ts';
import { convInputToChannelsLast, pooledToChannelsFirst, transposePlanes } from '../kernels/layout.ts';
import {
  linearForward, linearGradBias, linearGradInput, linearGradWeight, linearRowQuads, linearRows, linearRowsDropout, linearRowsRelu,
} from '../kernels/linear.ts';
import { logSoftmaxForward, logSoftmaxNllBackward, nllLoss } from '../kernels/log-softmax-nll.ts';
import { maxPool2dRelu, maxPool2dReluArgmax } from '../kernels/pool.ts';
import { reluBackward } from '../kernels/relu.ts';
import { reluForward } from './relu-kernel.ts';
import {
  computeConv2DInfo, computeLinearInfo, computePool2DInfo, computeRowsInfo, convColumns, convGradWeightParts, linearForwardParts,
} from '../kernels/shapes.ts';
import type { KernelSpec } from '../kernels/spec.ts';
import { PARAM_SPECS, type ParamSet } from '../src/model/cnn.ts';
import { Device, PLAN_EXECUTORS, openDevice } from '../src/engine/device-node.ts';
import { Optimizer, stepLr, type OptimizerConfig } from '../src/engine/optimizer.ts';
import { ResultPool } from '../src/engine/result-pool.ts';
import {
  availableBackends, declareUnrunBackends, KERNEL_CLASS, poisonOutput, poisoningDevice, runPoisoned, useDevice,
  wasmEntry, wasmOutputRegion,
} from './backends.ts';
import * as ref from './reference.ts';
import { concat, relativeError, tensor, type T64 } from './reference.ts';
import { freshSeed, makeRng, randn } from './rng.ts';

type Rng = () => number;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** A fresh generator for the running test, its seed logged with the test's full name. */
function testRng(): Rng {
  const seed = freshSeed();
  console.log(`[kernels.test] ${expect.getState().currentTestName}: seed ${seed} (replay with TEST_SEED=${seed})`);
  return makeRng(seed);
}

function randn32(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = randn(rng) * scale;
  return out;
}

/** Model m's slice of a tensor stacked along a leading model dimension. */
function part(a: Float32Array, m: number, size: number): Float32Array {
  return a.subarray(m * size, (m + 1) * size);
}

/** The reference of a stacked op: run `perModel` for each model and concatenate, as M separate models would. */
function perModel(M: number, f: (m: number) => ArrayLike<number>): Float64Array {
  return concat(Array.from({ length: M }, (_, m) => f(m)));
}

function expectRelative(actual: Float32Array, expected: ArrayLike<number>, tol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const err = relativeError(actual, expected); // NaN (and so a failure) if any output cell is NaN/Inf
  expect(err, `${what}: relative error ${err}`).toBeLessThanOrEqual(tol);
}

/** Exact equality (0 and -0 alike) for kernels that only move or select values. */
function expectExact(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let bad = -1;
  for (let i = 0; i < expected.length && bad < 0; i++) {
    if (!(actual[i] === expected[i])) bad = i; // NaN fails too
  }
  expect(bad < 0 ? 'equal' : `first difference at ${bad}: got ${actual[bad]}, expected ${expected[bad]}`, what).toBe('equal');
}

const FORWARD_TOL = 1e-5;
const GRAD_TOL = 1e-4;


// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

interface ConvCase { M: number; B: number; inC: number; inH: number; inW: number; outC: number; sharedInput: boolean }

const CONV_CASES: ConvCase[] = [
  { M: 1, B: 1, inC: 1, inH: 5, inW: 7, outC: 4, sharedInput: false },
  { M: 1, B: 3, inC: 3, inH: 6, inW: 5, outC: 8, sharedInput: true },
  { M: 3, B: 2, inC: 5, inH: 7, inW: 6, outC: 4, sharedInput: false },
  // shared input with the weight gradient's sum in 4 parts (convGradWeightParts)
  { M: 2, B: 4, inC: 2, inH: 5, inW: 9, outC: 8, sharedInput: true },
  // ≥ 4096 cells for the webasm worker pool: the forward grid here (20 columns · 6 row blocks · 48 planes)
  { M: 2, B: 3, inC: 2, inH: 23, inW: 21, outC: 8, sharedInput: false },
  { M: 2, B: 1, inC: 32, inH: 5, inW: 6, outC: 32, sharedInput: true },
  // the weight gradient's: 12 columns · 12 tap columns · (2 models · 2 parts · 16 channels)
  { M: 2, B: 2, inC: 4, inH: 10, inW: 14, outC: 16, sharedInput: false },
  // output channels not a multiple of 4
  { M: 2, B: 2, inC: 3, inH: 7, inW: 8, outC: 5, sharedInput: false },
  // one input channel, as conv1: the weight gradient's sum in 4 parts of one sample (convGradWeightParts)
  { M: 2, B: 4, inC: 1, inH: 6, inW: 6, outC: 4, sharedInput: false },
];

const convName = (c: ConvCase): string =>
  `M=${c.M} B=${c.B} ${c.inC}x${c.inH}x${c.inW}→${c.outC}, ${c.sharedInput ? 'shared x' : 'per-model x'}`;

interface PoolCase { M: number; B: number; C: number; inH: number; inW: number }
const POOL_CASES: PoolCase[] = [
  { M: 1, B: 1, C: 1, inH: 4, inW: 4 },
  { M: 2, B: 3, C: 3, inH: 5, inW: 7 },
  { M: 3, B: 2, C: 2, inH: 7, inW: 6 },
  { M: 2, B: 3, C: 8, inH: 25, inW: 23 }, // 11·12·48 cells
];
const poolName = (c: PoolCase): string => `M=${c.M} B=${c.B} C=${c.C} ${c.inH}x${c.inW}`;

interface LinearCase { M: number; B: number; inF: number; outF: number; sharedInput: boolean }
const LINEAR_CASES: LinearCase[] = [
  { M: 1, B: 1, inF: 1, outF: 1, sharedInput: false },
  { M: 1, B: 4, inF: 7, outF: 3, sharedInput: true },
  { M: 3, B: 2, inF: 33, outF: 10, sharedInput: false },
  { M: 2, B: 5, inF: 17, outF: 9, sharedInput: true },
  { M: 2, B: 17, inF: 33, outF: 128, sharedInput: false },
  // the forward split into parts (linearForwardParts): 2 parts of 515 (unrolled to 512, tail of 3), 8 of 257
  { M: 2, B: 5, inF: 1030, outF: 9, sharedInput: false },
  { M: 1, B: 3, inF: 2056, outF: 5, sharedInput: true },
  // four images a cell (linearPartialsQuadResident) on the worker pool: 4 partials · 130 outputs · 2 · 16/4 cells, a tail of 3
  { M: 2, B: 16, inF: 35, outF: 130, sharedInput: false },
];
/**
 * > 4096 cells in every per-layer contraction's grid, for the webasm worker pool: forward 128·17·2, input gradient
 * 132·17·2, weight gradient 132·32·2 (129 features padded to a multiple of 4; the fused kernels' cases above
 * already reach it with one output per cell).
 */
const LINEAR_THREADED_CASE: LinearCase = { M: 2, B: 65, inF: 129, outF: 128, sharedInput: false };
const linearName = (c: LinearCase): string =>
  `M=${c.M} B=${c.B} ${c.inF}→${c.outF}, ${c.sharedInput ? 'shared x' : 'per-model x'}`;

interface RowsCase { M: number; B: number; C: number; scale: number }
const ROWS_CASES: RowsCase[] = [
  { M: 1, B: 1, C: 10, scale: 3 },
  { M: 3, B: 4, C: 10, scale: 3 },
  { M: 2, B: 3, C: 7, scale: 40 }, // large logits: only a max-shifted log-sum-exp survives these
  { M: 2, B: 205, C: 10, scale: 3 }, // 10·205·2 cells
];
const rowsName = (c: RowsCase): string => `M=${c.M} B=${c.B} C=${c.C} logits×${c.scale}`;

const ELEMENTWISE_SIZES = [1, 37, 5003];

// ---------------------------------------------------------------------------------------------
// Random problems and their references
// ---------------------------------------------------------------------------------------------

function convProblem(rng: Rng, c: ConvCase) {
  const info = computeConv2DInfo({ ...c, K: 3 });
  const xSize = c.B * c.inC * c.inH * c.inW;
  const wSize = c.outC * c.inC * 9;
  const ySize = c.B * c.outC * info.outH * info.outW;
  const x = randn32(rng, (c.sharedInput ? 1 : c.M) * xSize);
  const w = randn32(rng, c.M * wSize, 1 / Math.sqrt(c.inC * 9));
  const b = randn32(rng, c.M * c.outC, 0.5);
  const dy = randn32(rng, c.M * ySize);
  const xOf = (m: number): T64 => tensor([c.B, c.inC, c.inH, c.inW], c.sharedInput ? x : part(x, m, xSize));
  const wOf = (m: number): T64 => tensor([c.outC, c.inC, 3, 3], part(w, m, wSize));
  const dyOf = (m: number): T64 => tensor([c.B, c.outC, info.outH, info.outW], part(dy, m, ySize));
  const y = Array.from({ length: c.M }, (_, m) => ref.conv2d(xOf(m), wOf(m), tensor([c.outC], part(b, m, c.outC))));
  const grads = Array.from({ length: c.M }, (_, m) => ref.conv2dBackward(xOf(m), wOf(m), dyOf(m)));
  return {
    info, x, w, b, dy,
    y: concat(y.map((t) => t.data)),
    dw: concat(grads.map((g) => g.dw.data)),
    db: concat(grads.map((g) => g.db.data)),
    dx: concat(grads.map((g) => g.dx.data)),
  };
}

/** [planes, C, P] → [planes, P, C]: channels first to channels last. */
function toChannelsLast<T extends Float32Array | Float64Array>(a: T, planes: number, C: number, P: number): T {
  const out = new (a.constructor as new (n: number) => T)(a.length);
  for (let q = 0; q < planes; q++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < P; i++) out[(q * P + i) * C + c] = a[(q * C + c) * P + i]!;
    }
  }
  return out;
}

/** planes of H x W values with a zero border of `pad` cells (float64, as the references are). */
function padPlanes(values: ArrayLike<number>, planes: number, H: number, W: number, pad: number): Float64Array {
  const pH = H + 2 * pad;
  const pW = W + 2 * pad;
  const out = new Float64Array(planes * pH * pW);
  for (let z = 0; z < planes; z++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) out[(z * pH + y + pad) * pW + x + pad] = values[(z * H + y) * W + x];
    }
  }
  return out;
}

/** A random linear problem: stacked x, w, b and dy, each model's logits z = x·wᵀ + b and gradients (float64). */
function linearProblem(rng: Rng, c: LinearCase, wScale = 1) {
  const info = computeLinearInfo(c);
  const xSize = c.B * c.inF;
  const wSize = c.outF * c.inF;
  const x = randn32(rng, (c.sharedInput ? 1 : c.M) * xSize);
  const w = randn32(rng, c.M * wSize, wScale / Math.sqrt(c.inF));
  const b = randn32(rng, c.M * c.outF, 0.5);
  const dy = randn32(rng, c.M * c.B * c.outF);
  const xOf = (m: number): T64 => tensor([c.B, c.inF], c.sharedInput ? x : part(x, m, xSize));
  const wOf = (m: number): T64 => tensor([c.outF, c.inF], part(w, m, wSize));
  const z = Array.from({ length: c.M }, (_, m) => ref.linear(xOf(m), wOf(m), tensor([c.outF], part(b, m, c.outF))));
  const grads = Array.from({ length: c.M }, (_, m) => ref.linearBackward(xOf(m), wOf(m), tensor([c.B, c.outF], part(dy, m, c.B * c.outF))));
  return { info, x, w, b, dy, z, grads };
}

/** Distinct values (no ties), shuffled: k/8 for k = -n/2 .. n/2, exact in float32. */
function distinctValues(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (i - Math.floor(n / 2)) / 8;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Planes [planes, H, W] in conv2d's column layout ([planes, rowBlocks, rowW, 4 rows], `convColumns`), as
 * `conv2dForward` writes them. The padding cells hold 1e30, which would win any max or argmax that read one, so
 * a stray read fails the exact comparisons on every backend.
 */
function toColumns(x: Float32Array, planes: number, H: number, W: number): Float32Array {
  const { rowW, rowBlocks } = convColumns(H, W);
  const out = new Float32Array(planes * rowBlocks * rowW * 4).fill(1e30);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < H; y++) {
      const by = Math.floor(y / 4);
      for (let col = 0; col < W; col++) out[((p * rowBlocks + by) * rowW + col) * 4 + y - 4 * by] = x[(p * H + y) * W + col];
    }
  }
  return out;
}

/** conv2d's column output back to planes [planes, H, W], the padding cells dropped: `toColumns` undone. */
function fromColumns(columns: Float32Array, planes: number, H: number, W: number): Float32Array {
  const { rowW, rowBlocks } = convColumns(H, W);
  const out = new Float32Array(planes * H * W);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < H; y++) {
      const by = Math.floor(y / 4);
      for (let col = 0; col < W; col++) out[(p * H + y) * W + col] = columns[((p * rowBlocks + by) * rowW + col) * 4 + y - 4 * by]!;
    }
  }
  return out;
}

/** The reference pool's argmax (flat indices into x) as the kernel's window positions 0..3. */
function windowPositions(argmax: Int32Array, inH: number, inW: number): Float64Array {
  const outH = Math.floor(inH / 2);
  const outW = Math.floor(inW / 2);
  const out = new Float64Array(argmax.length);
  for (let yi = 0; yi < argmax.length; yi++) {
    const i = Math.floor(yi / outW) % outH;
    const j = yi % outW;
    const row = Math.floor(argmax[yi] / inW) % inH;
    const col = argmax[yi] % inW;
    out[yi] = (row - 2 * i) * 2 + (col - 2 * j);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Backend-independent checks
// ---------------------------------------------------------------------------------------------

describe('availableBackends', () => {
  const onlyCpuAndWasm = (b: string): string | null => (b === 'cpu' || b === 'webasm' ? null : `no ${b} here`);

  it('runs every available backend and names why the others are skipped', async () => {
    const plan = await availableBackends({}, onlyCpuAndWasm);
    expect(plan.run).toEqual(['cpu', 'webasm']);
    expect(plan.skipped).toEqual([
      { backend: 'headlessgl', reason: 'no headlessgl here' },
      { backend: 'webgpu', reason: 'no webgpu here' },
    ]);
    expect(plan.missing).toEqual([]);
  });

  it('MNIST_GPUJS_BACKENDS restricts the list', async () => {
    const plan = await availableBackends({ MNIST_GPUJS_BACKENDS: ' webasm ' }, onlyCpuAndWasm);
    expect(plan.run).toEqual(['webasm']);
    expect(plan.skipped.map((s) => s.backend)).toEqual(['cpu', 'headlessgl', 'webgpu']);
    expect(plan.skipped[0].reason).toMatch(/MNIST_GPUJS_BACKENDS/);
  });

  it('MNIST_GPUJS_REQUIRE_BACKENDS turns a missing backend into a failure, and adds an available one', async () => {
    const plan = await availableBackends({ MNIST_GPUJS_BACKENDS: 'cpu', MNIST_GPUJS_REQUIRE_BACKENDS: 'headlessgl,webasm' }, onlyCpuAndWasm);
    expect(plan.run).toEqual(['cpu', 'webasm']);
    expect(plan.missing).toEqual([{ backend: 'headlessgl', reason: 'no headlessgl here' }]);
    expect(plan.skipped.map((s) => s.backend)).toEqual(['webgpu']);
  });

  it('rejects an unknown backend name instead of running nothing', async () => {
    await expect(availableBackends({ MNIST_GPUJS_BACKENDS: 'cpu,webgl' }, onlyCpuAndWasm)).rejects.toThrow(/unknown backend "webgl"/);
    await expect(availableBackends({ MNIST_GPUJS_REQUIRE_BACKENDS: 'gpu' }, onlyCpuAndWasm)).rejects.toThrow(/MNIST_GPUJS_REQUIRE_BACKENDS/);
  });
});

describe('Device backend check', () => {
  // Needs no GL: it hands Device's check a kernel object of each class. GPU.js's HeadlessGLKernel inherits its
  // static `mode` from GLKernel, which is 'gpu', not 'headlessgl'.
  it('accepts a kernel that ran on headlessgl and rejects one that fell back to cpu', () => {
    const classes = gpujs as unknown as Record<string, { prototype: object }>;
    const device = Object.create(Device.prototype) as { verifyBackend(spec: KernelSpec, k: unknown): void };
    Object.defineProperty(device, 'backend', { value: 'headlessgl' });
    const spec = reluForward({ n: 1 });
    expect(() => device.verifyBackend(spec, { kernel: Object.create(classes.CPUKernel.prototype) })).toThrow(/ran as CPUKernel, not on headlessgl/);
    expect(() => device.verifyBackend(spec, { kernel: Object.create(classes.HeadlessGLKernel.prototype) })).not.toThrow();
  });
});

describe('Device kernel cache', () => {
  it('keeps at most maxKernels compiled kernels, evicting the least recently used, and still computes right', async () => {
    const d = await openDevice('cpu', { maxKernels: 2 });
    try {
      const x = new Float32Array([-1, 2, -3, 4]);
      const [a, b, c] = [4, 3, 2].map((n) => reluForward({ n }));
      await d.run(a, x);
      await d.run(b, x.subarray(0, 3));
      await d.run(a, x); // a is now the most recently used, so b goes first
      await d.run(c, x.subarray(0, 2));
      expect(d.kernelCount).toBe(2);
      const first = d.kernel(a);
      expect(d.kernel(a)).toBe(first); // a survived the eviction (no recompile)
      expect(Array.from(await d.run(b, x.subarray(0, 3)))).toEqual([0, 2, 0]); // b was rebuilt
      expect(d.kernelCount).toBe(2);
    } finally {
      d.destroy();
    }
  });
});

describe('ResultPool', () => {
  it('hands an array back out for the next take of its length, and only then', () => {
    const pool = new ResultPool(1 << 20);
    const a = pool.take(4);
    expect(a).toHaveLength(4);
    pool.give(a);
    expect(pool.heldBytes).toBe(16);
    expect(pool.take(5)).not.toBe(a);
    expect(pool.take(4)).toBe(a);
    expect(pool.heldBytes).toBe(0);
  });

  it('ignores arrays it did not hand out, and a second hand-back of one it did', () => {
    const pool = new ResultPool(1 << 20);
    pool.give(new Float32Array(4));
    expect(pool.heldBytes).toBe(0);
    const a = pool.take(4);
    pool.give(a, a);
    expect(pool.heldBytes).toBe(16);
    expect(pool.take(4)).toBe(a);
    expect(pool.take(4)).not.toBe(a);
  });

  it('keeps at most capBytes; what comes back beyond it is dropped', () => {
    const pool = new ResultPool(32);
    const [a, b, c] = [pool.take(4), pool.take(4), pool.take(4)];
    pool.give(a, b, c);
    expect(pool.heldBytes).toBe(32);
    const again = [pool.take(4), pool.take(4), pool.take(4)];
    expect(new Set(again.slice(0, 2))).toEqual(new Set([a, b]));
    expect(again[2]).not.toBe(c);
    pool.give(...again);
    pool.clear();
    expect(pool.heldBytes).toBe(0);
    expect(again).not.toContain(pool.take(4));
  });
});

describe('linearForwardParts', () => {
  const parts = (B: number, inF: number, outF: number) => linearForwardParts(computeLinearInfo({ M: 1, B, inF, outF }));
  it('splits a grid below two workers\' worth of cells, never into parts under 256 features', () => {
    expect(parts(64, 9216, 128)).toBe(4); // fc1 at B = 64: 2,048 cells → 8,192
    expect(parts(16, 9216, 128)).toBe(8); // at most 8 parts
    expect(parts(64, 128, 10)).toBe(1); // fc2: too few features to split
    expect(parts(256, 9216, 128)).toBe(1); // 8,192 cells already
    expect(parts(5, 1030, 9)).toBe(2); // 1030 divides by 2 only
    expect(parts(3, 2056, 5)).toBe(8);
  });
});

describe('convGradWeightParts', () => {
  const parts = (B: number, inC: number, outC: number) =>
    convGradWeightParts(computeConv2DInfo({ M: 1, B, inC, inH: 28, inW: 28, outC, K: 3 }));
  it('splits a grid of one worker\'s cells or fewer over whole samples', () => {
    expect(parts(64, 1, 32)).toBe(2); // conv1 at B = 64: 28 · 3 · 32 = 2,688 cells → 5,376, two workers
    expect(parts(64, 32, 64)).toBe(1); // conv2: 28 · 96 · 64 cells already
    expect(parts(4, 1, 4)).toBe(4); // 336 cells; at most one part per sample
    expect(parts(3, 1, 32)).toBe(1); // 3 samples split into no whole power-of-two parts
  });
});

describe('stepLr', () => {
  it('matches the reference schedule lr0 · gamma^epoch', () => {
    for (const [lr0, gamma] of [[1, 0.7], [0.1, 0.5], [0.01, 1]]) {
      for (let epoch = 0; epoch < 6; epoch++) {
        expect(stepLr(lr0, gamma, epoch)).toBe(ref.stepLr(lr0, gamma, epoch));
      }
    }
    expect(stepLr(1, 0.7, 3)).toBeCloseTo(0.343, 12);
  });
});

// ---------------------------------------------------------------------------------------------
// The kernels, per backend
// ---------------------------------------------------------------------------------------------

const plan = await availableBackends();
declareUnrunBackends('kernels', plan);

describe.each(plan.run)('kernels on %s', (backend) => {
  const device = useDevice(backend);

  it('compiles to the backend asked for', async () => {
    const d = device();
    const spec = reluForward({ n: 3 });
    expectExact(await d.run(spec, new Float32Array([-1, 0, 2])), [0, 0, 2], 'relu');
    expect(d.backend).toBe(backend);
    expect(d.kernel(spec).kernel.constructor.name).toBe(KERNEL_CLASS[backend]);
  });

  it('hands back each call of a vector-returning kernel as its own array', async () => {
    // webasm and webgpu return their flat copy as is (Device keeps GPU.js from shaping it into rows), so a
    // second call must not write into the first call's result
    const d = device();
    const rng = testRng();
    const c = { M: 1, B: 4, inF: 6, outF: 8, sharedInput: false }; // one whole quad of rows: no dropped cells
    const first = linearProblem(rng, c);
    const second = linearProblem(rng, c);
    const spec = linearForward(first.info);
    const a = await d.run(spec, first.x, first.w, first.b);
    const kept = Float32Array.from(a);
    const b = await d.run(spec, second.x, second.w, second.b);
    expect(b).not.toBe(a);
    expectExact(a, kept, 'first result after a second call');
    expect(Array.from(b)).not.toEqual(Array.from(a));
  });

  it('a result handed back (Device.recycle) is reused for the next of its length on webasm; every value stays right', async () => {
    const d = device();
    const rng = testRng();
    for (const n of [37, 16384]) { // on webasm: read back on the calling thread, then after the worker pool ran
      const spec = reluForward({ n });
      const [x1, x2, x3] = [randn32(rng, n), randn32(rng, n), randn32(rng, n)];
      const x1Kept = Float32Array.from(x1);
      const r1 = await d.run(spec, x1);
      expectExact(r1, ref.relu(tensor([n], x1)).data, `relu of ${n}, first`);
      d.recycle(r1, x1); // x1 is the caller's input, not a result: ignored
      d.recycle(r1); // a second hand-back: ignored, so two results never share r1
      const r2 = await d.run(spec, x2);
      expect(r2 === r1, 'the recycled array holds the next result (webasm only)').toBe(backend === 'webasm');
      expectExact(r2, ref.relu(tensor([n], x2)).data, `relu of ${n}, into the recycled array`);
      const r3 = await d.run(spec, x3);
      expect(r3).not.toBe(r2);
      expect(r3).not.toBe(x1);
      expectExact(r3, ref.relu(tensor([n], x3)).data, `relu of ${n}, third`);
      expectExact(r2, ref.relu(tensor([n], x2)).data, `relu of ${n}, second result after a third call`);
      expectExact(x1, x1Kept, 'an input handed to recycle');
    }
  });

  describe.skipIf(backend !== 'webasm')('poisoning (webasm: the one backend whose output memory is reachable)', () => {
    const specs: Array<[string, (rng: Rng) => { spec: KernelSpec; args: Float32Array[]; expected: ArrayLike<number> }]> = [
      ['relu, 37 cells', (rng) => {
        const x = randn32(rng, 37);
        return { spec: reluForward({ n: 37 }), args: [x], expected: ref.relu(tensor([37], x)).data };
      }],
      ['relu, 5003 cells (worker pool)', (rng) => {
        const x = randn32(rng, 5003);
        return { spec: reluForward({ n: 5003 }), args: [x], expected: ref.relu(tensor([5003], x)).data };
      }],
      ['conv2d forward, 4 values per cell', (rng) => {
        const p = convProblem(rng, CONV_CASES[2]);
        return { spec: conv2dForward(p.info), args: [p.x, p.w, p.b], expected: [] };
      }],
    ];

    it.each(specs)('an output cell the kernel does not write reads NaN: %s', async (_name, make) => {
      const d = device();
      const { spec, args, expected } = make(testRng());
      const first = await d.run(spec, ...args);
      if (expected.length > 0) expectRelative(first, expected, FORWARD_TOL, 'first run');
      expect(poisonOutput(d, spec)).toBe(true);
      const region = wasmOutputRegion(d, spec);
      expect(region.length).toBe(first.length);
      expect(region.every(Number.isNaN)).toBe(true);
      // a dispatch that covers only the first part of the grid, the failure poisoning is there to catch
      const entry = wasmEntry(d, spec);
      const cells = spec.output.reduce((a, b) => a * b, 1);
      const half = Math.floor(cells / 2);
      entry.run(0, half, 0);
      const perCell = first.length / cells;
      const partial = Float32Array.from(region);
      expectExact(partial.subarray(0, half * perCell), first.subarray(0, half * perCell), 'written half');
      expect(partial.subarray(half * perCell).every(Number.isNaN)).toBe(true);
      expect(relativeError(partial, first)).toBeNaN();
      // and a full run through runPoisoned writes everything again
      expectExact(await runPoisoned(d, spec, ...args), first, 'poisoned rerun');
    });
  });

  describe('conv2d', () => {
    it.each(CONV_CASES.map((c) => [convName(c), c] as const))('forward (+ layout, + fused relu, + relu and pool), %s', async (_name, c) => {
      const rng = testRng();
      const d = device();
      const p = convProblem(rng, c);
      const blocked = await runPoisoned(d, conv2dForward(p.info), p.x, p.w, p.b);
      expectRelative(fromColumns(blocked, c.M * c.B * c.outC, p.info.outH, p.info.outW), p.y, FORWARD_TOL, `conv2d forward ${convName(c)}`);
      const relu = p.y.map((v) => (v > 0 ? v : 0));
      expectRelative(await runPoisoned(d, conv2dLayoutRelu(p.info), blocked), relu, FORWARD_TOL, `conv2d forward+relu ${convName(c)}`);
      // the pool that follows conv2 reads the same column output
      const pool = computePool2DInfo({ M: c.M, B: c.B, C: c.outC, inH: p.info.outH, inW: p.info.outW });
      const size = c.B * c.outC * p.info.outH * p.info.outW;
      const pooled = perModel(c.M, (m) =>
        ref.maxPool2d(ref.relu(tensor([c.B, c.outC, p.info.outH, p.info.outW], p.y.subarray(m * size, (m + 1) * size)))).y.data);
      expectRelative(await runPoisoned(d, maxPool2dRelu(pool), blocked), pooled, FORWARD_TOL, `conv2d forward+relu+pool ${convName(c)}`);
    });

    it.each(CONV_CASES.map((c) => [convName(c), c] as const))('gradWeight (+ layout) and gradBias, %s', async (_name, c) => {
      const rng = testRng();
      const d = device();
      const p = convProblem(rng, c);
      const blocked = await runPoisoned(d, conv2dGradWeight(p.info), p.dy, p.x);
      expectRelative(await runPoisoned(d, conv2dGradWeightLayout(p.info), blocked), p.dw, GRAD_TOL, `conv2d dw ${convName(c)}`);
      expectRelative(await runPoisoned(d, conv2dGradBias(p.info), p.dy), p.db, GRAD_TOL, `conv2d db ${convName(c)}`);
    });
  });

  describe('conv2d → ReLU → max-pool backward from the pooled gradient', () => {
    // even conv outputs (they pool exactly); input channels 1, 3 (scalar on webasm) and multiples of 4 (SIMD)
    const POOLED_CASES: ConvCase[] = [
      { M: 1, B: 1, inC: 4, inH: 6, inW: 6, outC: 4, sharedInput: false },
      { M: 2, B: 2, inC: 3, inH: 8, inW: 10, outC: 5, sharedInput: false },
      { M: 2, B: 3, inC: 8, inH: 10, inW: 8, outC: 4, sharedInput: true },
      { M: 1, B: 2, inC: 1, inH: 6, inW: 8, outC: 3, sharedInput: false },
      // ≥ 4096 cells for the webasm worker pool: the weight gradient's 32 · 3 · 64 and the input gradient's 32 · 6 · 24
      { M: 2, B: 2, inC: 32, inH: 12, inW: 12, outC: 32, sharedInput: false },
    ];

    /**
     * A conv → ReLU → pool problem: y = conv2d(x), pooled and argmax of relu(y), a random pooled gradient, and the
     * float64 references of the conv's gradients through the pool and the ReLU, and of the ReLU below the conv.
     */
    function pooledProblem(rng: Rng, c: ConvCase) {
      const p = convProblem(rng, c);
      const pool = computePool2DInfo({ M: c.M, B: c.B, C: c.outC, inH: p.info.outH, inW: p.info.outW });
      const xSize = c.B * c.inC * c.inH * c.inW;
      const ySize = c.B * c.outC * p.info.outH * p.info.outW;
      const pooledSize = c.B * c.outC * pool.outH * pool.outW;
      const yShape = [c.B, c.outC, p.info.outH, p.info.outW];
      const dPooled = randn32(rng, c.M * pooledSize);
      const pools = Array.from({ length: c.M }, (_, m) => ref.maxPool2d(ref.relu(tensor(yShape, p.y.subarray(m * ySize, (m + 1) * ySize)))));
      const grads = Array.from({ length: c.M }, (_, m) => {
        const dRelu = ref.maxPool2dBackward(yShape, pools[m]!.argmax, tensor([c.B, c.outC, pool.outH, pool.outW], part(dPooled, m, pooledSize)));
        const dy = ref.reluBackward(tensor(yShape, p.y.subarray(m * ySize, (m + 1) * ySize)), dRelu);
        const x = tensor([c.B, c.inC, c.inH, c.inW], c.sharedInput ? p.x : part(p.x, m, xSize));
        const g = ref.conv2dBackward(x, tensor([c.outC, c.inC, 3, 3], part(p.w, m, c.outC * c.inC * 9)), dy);
        return { ...g, dy, dz: ref.reluBackward(x, g.dx) };
      });
      return {
        info: p.info, pool, x: p.x, w: p.w, dPooled,
        pooled: Float32Array.from(concat(pools.map((r) => r.y.data))),
        argmax: Float32Array.from(concat(pools.map((r) => windowPositions(r.argmax, p.info.outH, p.info.outW)))),
        dw: concat(grads.map((g) => g.dw.data)),
        db: concat(grads.map((g) => g.db.data)),
        dz: concat(grads.map((g) => g.dz.data)),
        dy: concat(grads.map((g) => g.dy.data)),
      };
    }

    it.each(POOLED_CASES.map((c) => [convName(c), c] as const))('weight and bias gradients from the windows, input gradient channels last through the ReLU below, %s', async (_name, c) => {
      const d = device();
      const q = pooledProblem(testRng(), c);
      const planes = (c.sharedInput ? 1 : c.M) * c.B;
      const xLast = await runPoisoned(d, transposePlanes(convInputToChannelsLast(q.info)), q.x);
      expectExact(xLast, toChannelsLast(q.x, planes, c.inC, c.inH * c.inW), 'channels last');

      const windows = await runPoisoned(d, maxPool2dReluWindows(q.info, q.pool), q.argmax, q.dPooled, q.pooled);
      expectExact(windows, Float64Array.from({ length: 2 * q.argmax.length }, (_, i) => {
        const w = i >> 1;
        const a = q.argmax[w]!;
        return i % 2 === 0 ? (q.pooled[w]! > 0 ? q.dPooled[w]! : 0) : ((a >> 1) * c.inW + (a & 1)) * c.inC;
      }), 'windows: (gradient, offset of the winner\'s patch)');
      const rows = await runPoisoned(d, conv2dGradWeightPooled(q.info, q.pool), windows, xLast);
      expectRelative(await runPoisoned(d, conv2dGradWeightPooledLayout(q.info), rows), q.dw, GRAD_TOL, `dw ${convName(c)}`);
      expectRelative(await runPoisoned(d, conv2dGradBiasPooled(q.info, q.pool), windows), q.db, GRAD_TOL, `db ${convName(c)}`);

      const dyLast = await runPoisoned(d, maxPool2dReluBackwardChannelsLast(q.info, q.pool), windows);
      const [padH, padW] = [q.info.outH + 4, q.info.outW + 4];
      expectExact(dyLast, toChannelsLast(padPlanes(q.dy, c.M * c.B * c.outC, q.info.outH, q.info.outW, 2), c.M * c.B, c.outC, padH * padW),
        'output gradient, padded, channels last');
      const flipped = await runPoisoned(d, conv2dFlipWeightsChannelsLast(q.info), q.w);
      expectExact(flipped, Float64Array.from({ length: q.w.length }, (_, i) => {
        const [mco, t, ci] = [Math.floor(i / (9 * c.inC)), Math.floor(i / c.inC) % 9, i % c.inC];
        return q.w[(mco * c.inC + ci) * 9 + 8 - t]!;
      }), 'flipped weights, channels last');
      const blocks = await runPoisoned(d, conv2dGradInputChannelsLast(q.info, q.pool), dyLast, flipped);
      // h of the layer below: the test's x stands in for it, negative cells included
      const h = Float32Array.from(c.sharedInput ? concat(Array.from({ length: c.M }, () => q.x)) : q.x);
      expectRelative(await runPoisoned(d, conv2dGradInputReluLayout(q.info, q.pool), blocks, h), q.dz, GRAD_TOL, `dz ${convName(c)}`);
    });

    it('a conv output that does not pool exactly is refused with one sentence', () => {
      const info = computeConv2DInfo({ M: 1, B: 1, inC: 2, inH: 7, inW: 6, outC: 2, K: 3 });
      const pool = computePool2DInfo({ M: 1, B: 1, C: 2, inH: info.outH, inW: info.outW });
      expect(() => conv2dGradWeightPooled(info, pool)).toThrow(/does not pool exactly/);
    });
  });

  describe('relu', () => {
    it.each(ELEMENTWISE_SIZES)('forward and backward, n = %i (exact zeros included)', async (n) => {
      const rng = testRng();
      const d = device();
      const x = randn32(rng, n);
      for (let i = 0; i < n; i += 5) x[i] = 0; // the gradient at exactly 0 is 0, as in PyTorch
      const dy = randn32(rng, n);
      const xt = tensor([n], x);
      expectExact(await runPoisoned(d, reluForward({ n }), x), ref.relu(xt).data, 'relu forward');
      expectExact(await runPoisoned(d, reluBackward({ n }), x, dy), ref.reluBackward(xt, tensor([n], dy)).data, 'relu backward');
    });
  });

  describe('maxPool2d', () => {
    it.each(POOL_CASES.map((c) => [poolName(c), c] as const))('relu + pool forward and argmax on distinct values, %s', async (_name, c) => {
      const rng = testRng();
      const d = device();
      const info = computePool2DInfo(c);
      const inSize = c.B * c.C * c.inH * c.inW;
      const x = distinctValues(rng, c.M * inSize);
      const columns = toColumns(x, c.M * c.B * c.C, c.inH, c.inW);
      const refs = Array.from({ length: c.M }, (_, m) => ref.maxPool2d(ref.relu(tensor([c.B, c.C, c.inH, c.inW], part(x, m, inSize)))));

      const pooled = await runPoisoned(d, maxPool2dRelu(info), columns);
      expectExact(pooled, concat(refs.map((r) => r.y.data)), `relu + pool forward ${poolName(c)}`);
      const argmax = await runPoisoned(d, maxPool2dReluArgmax(info), columns);
      expectExact(argmax, concat(refs.map((r) => windowPositions(r.argmax, c.inH, c.inW))), `relu + pool argmax ${poolName(c)}`);
    });

    it('ties go to the first cell of the window, as in the reference, after the ReLU', async () => {
      const d = device();
      const info = computePool2DInfo({ M: 1, B: 1, C: 1, inH: 2, inW: 8 });
      // windows [5 5; 5 5], [1 3; 3 2], [0 -1; 4 4], [-2 -1; -3 -4] (all 0 after the ReLU)
      const x = new Float32Array([5, 5, 1, 3, 0, -1, -2, -1, 5, 5, 3, 2, 4, 4, -3, -4]);
      const columns = toColumns(x, 1, 2, 8);
      const argmax = await runPoisoned(d, maxPool2dReluArgmax(info), columns);
      expectExact(argmax, [0, 1, 2, 0], 'argmax');
      expectExact(argmax, windowPositions(ref.maxPool2d(ref.relu(tensor([1, 1, 2, 8], x))).argmax, 2, 8), 'argmax vs reference');
      const pooled = await runPoisoned(d, maxPool2dRelu(info), columns);
      expectExact(pooled, [5, 3, 4, 0], 'pooled');
    });
  });

  describe('dropout', () => {
    it.each([[1, 0.5], [37, 0.25], [5003, 0.5]])('apply forward and backward, n = %i, p = %d', async (n, p) => {
      const rng = testRng();
      const d = device();
      const x = randn32(rng, n);
      const dy = randn32(rng, n);
      const mask = new Float32Array(n);
      for (let i = 0; i < n; i++) mask[i] = rng() < p ? 0 : 1;
      const spec = dropoutApply(computeDropoutInfo(n, p));
      expectRelative(await runPoisoned(d, spec, x, mask), ref.dropout(tensor([n], x), mask, p).data, FORWARD_TOL, 'dropout forward');
      expectRelative(await runPoisoned(d, spec, dy, mask), ref.dropoutBackward(tensor([n], dy), mask, p).data, GRAD_TOL, 'dropout backward');
    });
  });

  describe('linear', () => {
    it.each([...LINEAR_CASES, LINEAR_THREADED_CASE].map((c) => [linearName(c), c] as const))('forward, gradInput, gradWeight, gradBias, %s', async (_name, c) => {
      const rng = testRng();
      const d = device();
      const { info, x, w, b, dy, z, grads } = linearProblem(rng, c);
      const name = linearName(c);
      // the contractions return quads of rows; the rows kernels (plain, + ReLU, + dropout) lay them out
      const rows = async (of: 'forward' | 'gradInput' | 'gradWeight', quadded: Float32Array) =>
        runPoisoned(d, linearRows(linearRowQuads(info, of)), quadded);
      const y = concat(z.map((t) => t.data));
      const dx = concat(grads.map((g) => g.dx.data));

      const yQuads = await runPoisoned(d, linearForward(info), x, w, b);
      expectRelative(await rows('forward', yQuads), y, FORWARD_TOL, `linear forward ${name}`);
      expectRelative(await runPoisoned(d, linearRowsRelu(linearRowQuads(info, 'forward')), yQuads),
        ref.relu(tensor([y.length], y)).data, FORWARD_TOL, `linear forward + relu ${name}`);
      const dxQuads = await runPoisoned(d, linearGradInput(info), dy, w);
      expectRelative(await rows('gradInput', dxQuads), dx, GRAD_TOL, `linear dx ${name}`);
      const p = 0.25;
      const mask = new Float32Array(dx.length);
      for (let i = 0; i < mask.length; i++) mask[i] = rng() < p ? 0 : 1;
      expectRelative(await runPoisoned(d, linearRowsDropout(linearRowQuads(info, 'gradInput'), computeDropoutInfo(dx.length, p)), dxQuads, mask),
        ref.dropoutBackward(tensor([dx.length], dx), mask, p).data, GRAD_TOL, `linear dx + dropout ${name}`);
      expectRelative(await rows('gradWeight', await runPoisoned(d, linearGradWeight(info), dy, x)), concat(grads.map((g) => g.dw.data)), GRAD_TOL, `linear dw ${name}`);
      expectRelative(await runPoisoned(d, linearGradBias(info), dy), concat(grads.map((g) => g.db.data)), GRAD_TOL, `linear db ${name}`);
    });
  });

  describe('logSoftmax / nll', () => {
    it.each(ROWS_CASES.map((c) => [rowsName(c), c] as const))('logSoftmax forward, nll loss, fused backward, %s', async (_name, c) => {
      const rng = testRng();
      const d = device();
      const info = computeRowsInfo({ M: c.M, B: c.B, C: c.C });
      const rowSize = c.B * c.C;
      const z = randn32(rng, c.M * rowSize, c.scale);
      const targets = new Float32Array(c.M * c.B);
      for (let i = 0; i < targets.length; i++) targets[i] = Math.floor(rng() * c.C);
      const zOf = (m: number): T64 => tensor([c.B, c.C], part(z, m, rowSize));
      const tOf = (m: number): Float32Array => part(targets, m, c.B);
      const logp = perModel(c.M, (m) => ref.logSoftmax(zOf(m)).data);
      const name = rowsName(c);

      expectRelative(await runPoisoned(d, logSoftmaxForward(info), z), logp, FORWARD_TOL, `logSoftmax ${name}`);
      // the loss and backward kernels take log-probabilities: give them the reference's, rounded to float32
      const logp32 = Float32Array.from(logp);
      const loss = perModel(c.M, (m) => [ref.nllLoss(tensor([c.B, c.C], part(logp32, m, rowSize)), tOf(m))]);
      expectRelative(await runPoisoned(d, nllLoss(info), logp32, targets), loss, FORWARD_TOL, `nll loss ${name}`);
      const dz = perModel(c.M, (m) => ref.logSoftmaxNllBackward(zOf(m), tOf(m)).data);
      expectRelative(await runPoisoned(d, logSoftmaxNllBackward(info), logp32, targets), dz, GRAD_TOL, `logSoftmaxNll backward ${name}`);
    });
  });

  describe('fused forward (resident weights, run as a compiled plan)', () => {
    /** Runs fused kernels chained as one plan, as InferencePlan chains them, and checks how the plan ran. */
    async function runAsPlan(d: Device, spec: KernelSpec | KernelSpec[], x: Float32Array): Promise<Float32Array> {
      const specs = Array.isArray(spec) ? spec : [spec];
      const plan = d.plan(specs, (ks, input) => ks.reduce((value, k) => k(value), input));
      try {
        const out = await plan.run(x);
        expect(PLAN_EXECUTORS[backend], `${specs.map((s) => s.name).join(' → ')}: executor (${plan.fallbackReason ?? 'no fallback reason'})`).toContain(plan.executorKind);
        return out;
      } finally {
        plan.destroy();
      }
    }

    it.each(CONV_CASES.map((c) => [convName(c), c] as const))('conv2d + bias + relu, written channels last, %s', async (_name, c) => {
      const d = device();
      const p = convProblem(testRng(), c);
      const y = await runAsPlan(d, conv2dBiasReluResident(p.info, { weight: p.w, bias: p.b }), p.x);
      const relu = p.y.map((v) => (v > 0 ? v : 0));
      expectRelative(y, toChannelsLast(relu, c.M * c.B, c.outC, p.info.outH * p.info.outW), FORWARD_TOL, `fused conv2d+relu ${convName(c)}`);
    });

    it.each(CONV_CASES.map((c) => [convName(c), c] as const))('conv2d + bias + relu + 2x2 max-pool (channels last), then channels first, %s', async (_name, c) => {
      const d = device();
      const p = convProblem(testRng(), c);
      const pool = computePool2DInfo({ M: c.M, B: c.B, C: c.outC, inH: p.info.outH, inW: p.info.outW });
      const size = c.B * c.outC * p.info.outH * p.info.outW;
      const expected = perModel(c.M, (m) =>
        ref.maxPool2d(ref.relu(tensor([c.B, c.outC, p.info.outH, p.info.outW], p.y.subarray(m * size, (m + 1) * size)))).y.data);
      // as InferencePlan runs it: the pool reads and writes channels last, the transpose turns it back into
      // PyTorch's order
      const pooled = conv2dBiasReluPoolResident(p.info, pool, { weight: p.w, bias: p.b });
      const x = toChannelsLast(p.x, (c.sharedInput ? 1 : c.M) * c.B, c.inC, c.inH * c.inW);
      const toChannelsFirst = transposePlanes(pooledToChannelsFirst(pool));
      const y = await runAsPlan(d, [pooled, toChannelsFirst], x);
      expectRelative(y, expected, FORWARD_TOL, `fused conv2d+relu+pool ${convName(c)}`);
      // and the pool's own output is that, channels last: [M, B, poolH*poolW, C]
      const channelsLast = toChannelsLast(expected, c.M * c.B, c.outC, pool.outH * pool.outW);
      expectRelative(await runAsPlan(d, pooled, x), channelsLast, FORWARD_TOL, `fused conv2d+relu+pool, channels last ${convName(c)}`);
      // four channels a cell, where a plan step may pass vector cells on: the same array, read by the same transpose
      if (!d.planVectorCells || c.outC % 4 !== 0) return;
      const quad = conv2dBiasReluPoolQuadResident(p.info, pool, { weight: p.w, bias: p.b });
      expectRelative(await runAsPlan(d, [quad, toChannelsFirst], x), expected, FORWARD_TOL, `fused conv2d+relu+pool, four channels a cell ${convName(c)}`);
      expectRelative(await runAsPlan(d, quad, x), channelsLast, FORWARD_TOL, `fused conv2d+relu+pool, four channels a cell, channels last ${convName(c)}`);
    });

    it('four images a cell needs a batch that is a multiple of 4', () => {
      const info = computeLinearInfo({ M: 1, B: 6, inF: 8, outF: 2 });
      expect(() => linearPartialsQuadResident(info, new Float32Array(16))).toThrow('not a multiple of 4');
      expect(() => linearPartialsBiasRelu(info, new Float32Array(2), 4)).toThrow('not a multiple of 4');
    });

    it('four channels a cell needs a multiple of 4 output channels', () => {
      const c = CONV_CASES.find((k) => k.outC % 4 !== 0)!;
      const p = convProblem(testRng(), c);
      const pool = computePool2DInfo({ M: c.M, B: c.B, C: c.outC, inH: p.info.outH, inW: p.info.outW });
      expect(() => conv2dBiasReluPoolQuadResident(p.info, pool, { weight: p.w, bias: p.b })).toThrow('not a multiple of 4');
    });

    it.each(LINEAR_CASES.map((c) => [linearName(c), c] as const))('linear in four partial sums + bias + relu, and linear + log_softmax, %s', async (_name, c) => {
      const d = device();
      // larger weights than the linear test's, so the log-softmax sees logits of several units
      const { info, x, w, b, z } = linearProblem(testRng(), c, 3);
      const relu = concat(z.map((t) => ref.relu(t).data));
      expectRelative(await runAsPlan(d, [linearPartialsResident(info, w), linearPartialsBiasRelu(info, b)], x),
        relu, FORWARD_TOL, `fused linear+relu ${linearName(c)}`);
      if (d.planVectorCells && c.B % 4 === 0) {
        // four images a cell, read by the same bias + ReLU with imagesPerCell 4
        expectRelative(await runAsPlan(d, [linearPartialsQuadResident(info, w), linearPartialsBiasRelu(info, b, 4)], x),
          relu, FORWARD_TOL, `fused linear+relu, four images a cell ${linearName(c)}`);
      }
      expectRelative(await runAsPlan(d, linearLogSoftmaxResident(info, { weight: w, bias: b }), x),
        concat(z.map((t) => ref.logSoftmax(t).data)), FORWARD_TOL, `fused linear+log_softmax ${linearName(c)}`);
    });
  });

  describe('optimizer', () => {
    // A stand-in parameter set: every name the Optimizer iterates, two odd sizes (one for the worker pool).
    const SIZES = [37, 4099];
    type Case = { label: string; config: OptimizerConfig; lr0: number };
    const CASES: Case[] = [
      { label: 'SGD', config: { kind: 'sgd', momentum: 0, weightDecay: 0 }, lr0: 0.1 },
      { label: 'SGD + weight decay', config: { kind: 'sgd', momentum: 0, weightDecay: 0.01 }, lr0: 0.1 },
      { label: 'SGD + momentum', config: { kind: 'sgd', momentum: 0.9, weightDecay: 0 }, lr0: 0.1 },
      { label: 'SGD + momentum + weight decay', config: { kind: 'sgd', momentum: 0.9, weightDecay: 0.01 }, lr0: 0.1 },
      { label: 'Adadelta (PyTorch example defaults)', config: { kind: 'adadelta', rho: 0.9, eps: 1e-6, weightDecay: 0 }, lr0: 1 },
      { label: 'Adadelta rho 0.95 + weight decay', config: { kind: 'adadelta', rho: 0.95, eps: 1e-6, weightDecay: 0.01 }, lr0: 1 },
    ];
    const STEPS = 3;
    const GAMMA = 0.7;

    it.each(CASES)('$label: 3 steps under StepLR vs the reference', async ({ config, lr0 }) => {
      const rng = testRng();
      const d = device();
      const params = {} as ParamSet;
      PARAM_SPECS.forEach((s, i) => { params[s.name] = randn32(rng, SIZES[i % 2], 0.5); });
      const initial = Object.fromEntries(PARAM_SPECS.map((s) => [s.name, Float32Array.from(params[s.name])]));
      // reference state per parameter, float64
      const refState = new Map(PARAM_SPECS.map((s) => {
        const n = params[s.name].length;
        return [s.name, { w: tensor([n], params[s.name]), buf: tensor([n]), sa: tensor([n]), ad: tensor([n]) }];
      }));
      const opt = new Optimizer(poisoningDevice(d), config, params);
      let kernelsAfterFirstStep = 0;

      for (let step = 0; step < STEPS; step++) {
        const lr = stepLr(lr0, GAMMA, step);
        const grads = {} as ParamSet;
        for (const s of PARAM_SPECS) grads[s.name] = randn32(rng, params[s.name].length);
        await opt.step(params, grads, lr);
        if (step === 0) kernelsAfterFirstStep = d.kernelCount;

        for (const s of PARAM_SPECS) {
          const r = refState.get(s.name)!;
          const g = tensor([r.w.data.length], grads[s.name]);
          const what = `${s.name} after step ${step + 1}`;
          if (config.kind === 'sgd') {
            const next = ref.sgdStep(r.w, g, r.buf, { lr, momentum: config.momentum, weightDecay: config.weightDecay });
            r.w = next.w;
            r.buf = next.buf;
            if (config.momentum > 0) expectRelative(opt.state.get(`${s.name}.momentum_buffer`)!, r.buf.data, GRAD_TOL, `${what}: momentum_buffer`);
          } else {
            const next = ref.adadeltaStep(r.w, g, r.sa, r.ad, { lr, rho: config.rho, eps: config.eps, weightDecay: config.weightDecay });
            r.w = next.w;
            r.sa = next.squareAvg;
            r.ad = next.accDelta;
            expectRelative(opt.state.get(`${s.name}.square_avg`)!, r.sa.data, GRAD_TOL, `${what}: square_avg`);
            expectRelative(opt.state.get(`${s.name}.acc_delta`)!, r.ad.data, GRAD_TOL, `${what}: acc_delta`);
          }
          expectRelative(params[s.name], r.w.data, GRAD_TOL, `${what}: weights`);
          // the displacement from the start is far smaller than the weights: a stricter check of the updates
          const moved = Float32Array.from(params[s.name], (v, i) => v - initial[s.name][i]);
          const refMoved = r.w.data.map((v, i) => v - initial[s.name][i]);
          expectRelative(moved, refMoved, GRAD_TOL, `${what}: displacement`);
        }
      }
      // the learning rate is a kernel argument: a schedule never compiles new kernels
      expect(d.kernelCount).toBe(kernelsAfterFirstStep);
    });
  });
});
