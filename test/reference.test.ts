/**
 * Checks of the float64 reference (reference.ts) that the GPU kernels are compared with: every backward
 * against central finite differences, plus small hand-computed cases. Each test draws a fresh seed and
 * logs it; run with TEST_SEED=<seed> to replay a failure.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { DROPOUT1, DROPOUT2, FC1, PARAM_SPECS, elementCount, type ParamName } from '../src/model/cnn.ts';
import {
  adadeltaStep, cnnBackward, cnnForward, conv2d, conv2dBackward, dropout, dropoutBackward, linear,
  linearBackward, logSoftmax, logSoftmaxNllBackward, maxPool2d, maxPool2dBackward, nllLoss, randomParams,
  randomTensor, relativeError, relu, reluBackward, sgdStep, stepLr, tensor,
  type CnnCache, type DropoutMasks, type Params64, type T64,
} from './reference.ts';
import { freshSeed, makeRng, randn } from './rng.ts';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** A fresh, logged seed for one test. */
function seededRng(testName: string): () => number {
  const seed = freshSeed();
  console.log(`[reference.test] ${testName}: seed ${seed} (replay with TEST_SEED=${seed})`);
  return makeRng(seed);
}

const H = 1e-6;

/** Central difference of f with respect to data[i]; data is restored afterwards. */
function centralDiff(f: () => number, data: Float64Array, i: number, h = H): number {
  const orig = data[i];
  const up = orig + h;
  const down = orig - h;
  data[i] = up;
  const fUp = f();
  data[i] = down;
  const fDown = f();
  data[i] = orig;
  // Divide by the step actually taken (up - down is not exactly 2h in floating point).
  return (fUp - fDown) / (up - down);
}

/** Finite-difference gradient of f with respect to every element of t. */
function numericGrad(f: () => number, t: T64): Float64Array {
  const g = new Float64Array(t.data.length);
  for (let i = 0; i < g.length; i++) g[i] = centralDiff(f, t.data, i);
  return g;
}

/** Σ y ⊙ r: a scalar whose gradient with respect to y is r, so backward(dy = r) can be checked by FD. */
function dot(y: T64, r: T64): number {
  expect(y.shape).toEqual(r.shape);
  let s = 0;
  for (let i = 0; i < y.data.length; i++) s += y.data[i] * r.data[i];
  return s;
}

function randomMask(rng: () => number, n: number, p: number): Float64Array {
  const m = new Float64Array(n);
  for (let i = 0; i < n; i++) m[i] = rng() < p ? 0 : 1;
  return m;
}

function randomTargets(rng: () => number, b: number, classes: number): number[] {
  return Array.from({ length: b }, () => Math.floor(rng() * classes));
}

const FD_TOL = 1e-6;

// ---------------------------------------------------------------------------------------------
// rng.ts
// ---------------------------------------------------------------------------------------------

describe('rng', () => {
  it('makeRng is deterministic per seed, in [0,1), and seeds differ', () => {
    const seed = freshSeed();
    console.log(`[reference.test] rng: seed ${seed}`);
    const a = makeRng(seed);
    const b = makeRng(seed);
    const c = makeRng((seed + 1) >>> 0);
    const xs = Array.from({ length: 1000 }, a);
    expect(Array.from({ length: 1000 }, b)).toEqual(xs);
    expect(Array.from({ length: 1000 }, c)).not.toEqual(xs);
    for (const x of xs) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
    // Not stuck: many distinct values, mean near 1/2.
    expect(new Set(xs).size).toBeGreaterThan(990);
    expect(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5)).toBeLessThan(0.06);
  });

  it('randn has mean ≈ 0 and variance ≈ 1', () => {
    const rng = seededRng('randn');
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const z = randn(rng);
      expect(Number.isFinite(z)).toBe(true);
      s += z;
      s2 += z * z;
    }
    const mean = s / n;
    // Standard error of the mean is 1/sqrt(n) ≈ 0.007; these bounds are ~7 sigma.
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(s2 / n - mean * mean - 1)).toBeLessThan(0.07);
  });

  it('freshSeed gives 32-bit seeds, and TEST_SEED pins it', () => {
    const saved = process.env.TEST_SEED;
    try {
      delete process.env.TEST_SEED;
      const seeds = Array.from({ length: 8 }, freshSeed);
      for (const s of seeds) {
        expect(Number.isInteger(s)).toBe(true);
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThanOrEqual(0xffffffff);
      }
      expect(new Set(seeds).size).toBeGreaterThan(1);
      process.env.TEST_SEED = '12345';
      expect(freshSeed()).toBe(12345);
      process.env.TEST_SEED = 'abc';
      expect(() => freshSeed()).toThrow(/TEST_SEED/);
    } finally {
      if (saved === undefined) delete process.env.TEST_SEED;
      else process.env.TEST_SEED = saved;
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

describe('tensor', () => {
  it('is zeros by default, copies data, and rejects a wrong length', () => {
    expect(Array.from(tensor([2, 3]).data)).toEqual([0, 0, 0, 0, 0, 0]);
    const src = [1, 2, 3, 4];
    const t = tensor([2, 2], src);
    src[0] = 99;
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4]);
    expect(t.shape).toEqual([2, 2]);
    expect(() => tensor([2, 2], [1, 2, 3])).toThrow();
    expect(() => tensor([2, -1])).toThrow();
  });

  it('randomTensor scales standard normals', () => {
    const seed = freshSeed();
    console.log(`[reference.test] randomTensor: seed ${seed}`);
    const a = randomTensor(makeRng(seed), [4, 5]);
    const b = randomTensor(makeRng(seed), [4, 5], 0.5);
    expect(b.shape).toEqual([4, 5]);
    for (let i = 0; i < 20; i++) expect(b.data[i]).toBeCloseTo(a.data[i] * 0.5, 14);
  });
});

// ---------------------------------------------------------------------------------------------
// conv2d
// ---------------------------------------------------------------------------------------------

describe('conv2d', () => {
  it('computes a hand-worked 3x3 input with a 2x2 kernel (cross-correlation, not convolution)', () => {
    const x = tensor([1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // y[i,j] = x[i,j] - x[i+1,j+1] + 1 = -4 + 1 everywhere; a flipped (true) convolution would give +5.
    const w = tensor([1, 1, 2, 2], [1, 0, 0, -1]);
    const y = conv2d(x, w, tensor([1], [1]));
    expect(y.shape).toEqual([1, 1, 2, 2]);
    expect(Array.from(y.data)).toEqual([-3, -3, -3, -3]);

    // Asymmetric kernel on an asymmetric input: y[i,j] = 2*x[i,j+1] + 3*x[i+1,j].
    const x2 = tensor([1, 1, 2, 3], [1, 2, 3, 10, 20, 30]);
    const w2 = tensor([1, 1, 2, 2], [0, 2, 3, 0]);
    expect(Array.from(conv2d(x2, w2, tensor([1])).data)).toEqual([2 * 2 + 3 * 10, 2 * 3 + 3 * 20]);
  });

  it('an identity (centre-tap) kernel crops, and channels/batches are indexed NCHW', () => {
    const rng = seededRng('conv2d identity');
    const B = 2;
    const Cin = 2;
    const Hh = 5;
    const W = 4;
    const x = randomTensor(rng, [B, Cin, Hh, W]);
    // out 0 = centre tap of input channel 1, + 0.5; out 1 = top-left tap of input channel 0, - 1.
    const w = tensor([2, Cin, 3, 3]);
    w.data[((0 * Cin + 1) * 3 + 1) * 3 + 1] = 1;
    w.data[((1 * Cin + 0) * 3 + 0) * 3 + 0] = 1;
    const y = conv2d(x, w, tensor([2], [0.5, -1]));
    expect(y.shape).toEqual([B, 2, 3, 2]);
    const xAt = (n: number, c: number, i: number, j: number) => x.data[((n * Cin + c) * Hh + i) * W + j];
    const yAt = (n: number, o: number, i: number, j: number) => y.data[((n * 2 + o) * 3 + i) * 2 + j];
    for (let n = 0; n < B; n++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 2; j++) {
          expect(yAt(n, 0, i, j)).toBe(xAt(n, 1, i + 1, j + 1) + 0.5);
          expect(yAt(n, 1, i, j)).toBe(xAt(n, 0, i, j) - 1);
        }
      }
    }
  });

  it('rejects mismatched shapes', () => {
    expect(() => conv2d(tensor([1, 2, 5, 5]), tensor([1, 3, 3, 3]), tensor([1]))).toThrow();
    expect(() => conv2d(tensor([1, 1, 5, 5]), tensor([2, 1, 3, 3]), tensor([3]))).toThrow();
    expect(() => conv2d(tensor([1, 1, 2, 2]), tensor([1, 1, 3, 3]), tensor([1]))).toThrow();
  });

  it('backward matches finite differences (B=2, Cin=3, 7x6, Cout=4, K=3)', () => {
    const rng = seededRng('conv2dBackward FD');
    const x = randomTensor(rng, [2, 3, 7, 6]);
    const w = randomTensor(rng, [4, 3, 3, 3], 0.5);
    const b = randomTensor(rng, [4]);
    const r = randomTensor(rng, [2, 4, 5, 4]);
    const f = () => dot(conv2d(x, w, b), r);
    const { dx, dw, db } = conv2dBackward(x, w, r);
    expect(dx.shape).toEqual(x.shape);
    expect(dw.shape).toEqual(w.shape);
    expect(db.shape).toEqual(b.shape);
    expect(relativeError(dx.data, numericGrad(f, x))).toBeLessThan(FD_TOL);
    expect(relativeError(dw.data, numericGrad(f, w))).toBeLessThan(FD_TOL);
    expect(relativeError(db.data, numericGrad(f, b))).toBeLessThan(FD_TOL);
  });
});

// ---------------------------------------------------------------------------------------------
// ReLU
// ---------------------------------------------------------------------------------------------

describe('relu', () => {
  it('forward and backward on known values (gradient 0 at exactly 0)', () => {
    const x = tensor([1, 5], [-2, -0, 0, 0.5, 3]);
    expect(Array.from(relu(x).data)).toEqual([0, 0, 0, 0.5, 3]);
    const dy = tensor([1, 5], [10, 20, 30, 40, 50]);
    expect(Array.from(reluBackward(x, dy).data)).toEqual([0, 0, 0, 40, 50]);
  });

  it('backward matches finite differences away from the kink', () => {
    const rng = seededRng('reluBackward FD');
    const x = randomTensor(rng, [3, 7]);
    // Keep every input at least 0.01 from 0, far beyond the FD step.
    for (let i = 0; i < x.data.length; i++) x.data[i] = Math.sign(x.data[i] || 1) * (Math.abs(x.data[i]) + 0.01);
    const r = randomTensor(rng, [3, 7]);
    const g = reluBackward(x, r);
    expect(relativeError(g.data, numericGrad(() => dot(relu(x), r), x))).toBeLessThan(FD_TOL);
  });
});

// ---------------------------------------------------------------------------------------------
// Max pooling
// ---------------------------------------------------------------------------------------------

describe('maxPool2d', () => {
  it('picks known maxima, the first of a tie, and floors odd sizes', () => {
    // 3x5 input → 1x2 output; row 2 and column 4 are dropped by the floor.
    // Window 0 rows 0-1 cols 0-1: [1, 7 / 7, 2] → tie between (0,1) and (1,0): (0,1) wins (index 1).
    // Window 1 rows 0-1 cols 2-3: [3, 4 / 9, 5] → 9 at (1,0) = index 7. Dropped elements hold 100.
    const x = tensor([1, 1, 3, 5], [
      1, 7, 3, 4, 100,
      7, 2, 9, 5, 100,
      100, 100, 100, 100, 100,
    ]);
    const { y, argmax } = maxPool2d(x);
    expect(y.shape).toEqual([1, 1, 1, 2]);
    expect(Array.from(y.data)).toEqual([7, 9]);
    expect(Array.from(argmax)).toEqual([1, 7]);

    // All four equal: the first, (0,0), wins.
    const flat = maxPool2d(tensor([1, 1, 2, 2], [-3, -3, -3, -3]));
    expect(Array.from(flat.argmax)).toEqual([0]);

    // Backward routes each dy to its argmax only.
    const dx = maxPool2dBackward(x.shape, argmax, tensor([1, 1, 1, 2], [10, 20]));
    const expected = new Array(15).fill(0);
    expected[1] = 10;
    expected[7] = 20;
    expect(Array.from(dx.data)).toEqual(expected);
  });

  it('indexes batches and channels NCHW (argmax is a flat index into x)', () => {
    const rng = seededRng('maxPool2d NCHW');
    const x = randomTensor(rng, [2, 3, 4, 6]);
    const { y, argmax } = maxPool2d(x);
    expect(y.shape).toEqual([2, 3, 2, 3]);
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < 3; c++) {
        for (let i = 0; i < 2; i++) {
          for (let j = 0; j < 3; j++) {
            const window = [0, 1].flatMap((di) => [0, 1].map((dj) => ((n * 3 + c) * 4 + 2 * i + di) * 6 + 2 * j + dj));
            const yi = ((n * 3 + c) * 2 + i) * 3 + j;
            expect(window).toContain(argmax[yi]);
            expect(y.data[yi]).toBe(Math.max(...window.map((k) => x.data[k])));
            expect(x.data[argmax[yi]]).toBe(y.data[yi]);
          }
        }
      }
    }
  });

  it('backward matches finite differences on 5x7 inputs with no near-ties', () => {
    const rng = seededRng('maxPool2dBackward FD');
    const shape = [2, 3, 5, 7];
    const n = elementCount(shape);
    // Distinct values 0.01 apart, randomly placed: no tie is within the FD step.
    const perm = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const k = Math.floor(rng() * (i + 1));
      [perm[i], perm[k]] = [perm[k], perm[i]];
    }
    const x = tensor(shape, perm.map((v) => (v - n / 2) * 0.01));
    const { y, argmax } = maxPool2d(x);
    expect(y.shape).toEqual([2, 3, 2, 3]);
    const r = randomTensor(rng, y.shape);
    const g = maxPool2dBackward(x.shape, argmax, r);
    expect(g.shape).toEqual(shape);
    expect(relativeError(g.data, numericGrad(() => dot(maxPool2d(x).y, r), x))).toBeLessThan(FD_TOL);
  });
});

// ---------------------------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------------------------

describe('dropout', () => {
  it('scales kept elements by 1/(1-p) and zeroes dropped ones', () => {
    const x = tensor([1, 4], [1, -2, 3, -4]);
    expect(Array.from(dropout(x, [1, 0, 1, 0], 0.5).data)).toEqual([2, -0, 6, -0]);
    expect(Array.from(dropout(x, [1, 1, 0, 1], 0.25).data)).toEqual([4 / 3, -8 / 3, 0, -16 / 3]);
    expect(() => dropout(x, [1, 1, 1], 0.5)).toThrow();
    expect(() => dropout(x, [1, 1, 1, 1], 1)).toThrow();
  });

  it('backward matches finite differences', () => {
    const rng = seededRng('dropoutBackward FD');
    const x = randomTensor(rng, [3, 6]);
    const mask = randomMask(rng, 18, 0.25);
    const r = randomTensor(rng, [3, 6]);
    const g = dropoutBackward(r, mask, 0.25);
    expect(relativeError(g.data, numericGrad(() => dot(dropout(x, mask, 0.25), r), x))).toBeLessThan(FD_TOL);
  });
});

// ---------------------------------------------------------------------------------------------
// Linear
// ---------------------------------------------------------------------------------------------

describe('linear', () => {
  it('computes x·wᵀ + b on a hand-worked case', () => {
    const x = tensor([2, 3], [1, 2, 3, 4, 5, 6]);
    const w = tensor([2, 3], [1, 0, -1, 0.5, 0.5, 0.5]);
    const y = linear(x, w, tensor([2], [10, 20]));
    expect(y.shape).toEqual([2, 2]);
    expect(Array.from(y.data)).toEqual([1 - 3 + 10, 3 + 20, 4 - 6 + 10, 7.5 + 20]);
  });

  it('backward matches finite differences (3x5 → 4)', () => {
    const rng = seededRng('linearBackward FD');
    const x = randomTensor(rng, [3, 5]);
    const w = randomTensor(rng, [4, 5]);
    const b = randomTensor(rng, [4]);
    const r = randomTensor(rng, [3, 4]);
    const f = () => dot(linear(x, w, b), r);
    const { dx, dw, db } = linearBackward(x, w, r);
    expect(relativeError(dx.data, numericGrad(f, x))).toBeLessThan(FD_TOL);
    expect(relativeError(dw.data, numericGrad(f, w))).toBeLessThan(FD_TOL);
    expect(relativeError(db.data, numericGrad(f, b))).toBeLessThan(FD_TOL);
  });
});

// ---------------------------------------------------------------------------------------------
// Log-softmax and NLL
// ---------------------------------------------------------------------------------------------

describe('logSoftmax / nllLoss', () => {
  it('matches the naive formula and normalises each row', () => {
    const rng = seededRng('logSoftmax naive');
    const z = randomTensor(rng, [3, 5], 2);
    const lp = logSoftmax(z);
    for (let n = 0; n < 3; n++) {
      let sum = 0;
      for (let c = 0; c < 5; c++) sum += Math.exp(z.data[n * 5 + c]);
      let total = 0;
      for (let c = 0; c < 5; c++) {
        expect(lp.data[n * 5 + c]).toBeCloseTo(z.data[n * 5 + c] - Math.log(sum), 12);
        total += Math.exp(lp.data[n * 5 + c]);
      }
      expect(total).toBeCloseTo(1, 14);
    }
  });

  it('is stable for huge logits', () => {
    const lp = logSoftmax(tensor([2, 2], [1000, 1000 + Math.log(3), -1000, -1000]));
    expect(lp.data[0]).toBeCloseTo(-Math.log(4), 12);
    expect(lp.data[1]).toBeCloseTo(Math.log(3) - Math.log(4), 12);
    expect(lp.data[2]).toBeCloseTo(-Math.log(2), 12);
    expect(lp.data[3]).toBeCloseTo(-Math.log(2), 12);
  });

  it('nllLoss is the batch mean of -logp at the targets', () => {
    const logp = tensor([2, 3], [-1, -2, -3, -4, -5, -6]);
    expect(nllLoss(logp, [2, 0])).toBe((3 + 4) / 2);
    expect(nllLoss(logSoftmax(tensor([1, 10])), [7])).toBeCloseTo(Math.log(10), 14);
    expect(() => nllLoss(logp, [3, 0])).toThrow();
    expect(() => nllLoss(logp, [0])).toThrow();
  });

  it('logSoftmaxNllBackward matches finite differences of nllLoss(logSoftmax(z))', () => {
    const rng = seededRng('logSoftmaxNllBackward FD');
    const z = randomTensor(rng, [3, 5], 2);
    const targets = randomTargets(rng, 3, 5);
    const g = logSoftmaxNllBackward(z, targets);
    expect(g.shape).toEqual([3, 5]);
    expect(relativeError(g.data, numericGrad(() => nllLoss(logSoftmax(z), targets), z))).toBeLessThan(FD_TOL);
    // Each row of (softmax - onehot)/B sums to 0.
    for (let n = 0; n < 3; n++) {
      let s = 0;
      for (let c = 0; c < 5; c++) s += g.data[n * 5 + c];
      expect(Math.abs(s)).toBeLessThan(1e-15);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Optimisers and schedule
// ---------------------------------------------------------------------------------------------

describe('optimisers', () => {
  it('sgdStep with momentum and weight decay, two steps by hand', () => {
    const o = { lr: 0.1, momentum: 0.9, weightDecay: 0.01 };
    let w = tensor([2], [1, -2]);
    let buf = tensor([2]);
    // Step 1: g' = [0.5 + 0.01, 1 - 0.02] = [0.51, 0.98]; buf = g'; w = [1 - 0.051, -2 - 0.098].
    ({ w, buf } = sgdStep(w, tensor([2], [0.5, 1]), buf, o));
    expect(buf.data[0]).toBeCloseTo(0.51, 14);
    expect(buf.data[1]).toBeCloseTo(0.98, 14);
    expect(w.data[0]).toBeCloseTo(0.949, 14);
    expect(w.data[1]).toBeCloseTo(-2.098, 14);
    // Step 2: g' = [-1 + 0.00949, 0.25 - 0.02098] = [-0.99051, 0.22902];
    // buf = 0.9*[0.51, 0.98] + g' = [-0.53151, 1.11102]; w = [0.949 + 0.053151, -2.098 - 0.111102].
    ({ w, buf } = sgdStep(w, tensor([2], [-1, 0.25]), buf, o));
    expect(buf.data[0]).toBeCloseTo(-0.53151, 14);
    expect(buf.data[1]).toBeCloseTo(1.11102, 14);
    expect(w.data[0]).toBeCloseTo(1.002151, 14);
    expect(w.data[1]).toBeCloseTo(-2.209102, 14);
  });

  it('sgdStep without momentum is plain gradient descent on g + wd*w', () => {
    const { w } = sgdStep(tensor([2], [1, -2]), tensor([2], [0.5, 1]), tensor([2], [7, 7]),
      { lr: 0.1, momentum: 0, weightDecay: 0.01 });
    expect(w.data[0]).toBeCloseTo(1 - 0.1 * 0.51, 14);
    expect(w.data[1]).toBeCloseTo(-2 - 0.1 * 0.98, 14);
  });

  it('adadeltaStep, one step by hand', () => {
    // rho 0.5, eps 4, lr 0.5, wd 0.5. Chosen so every square root is exact.
    // elem 0: w 0, g 2 → g' 2; sa' = 0.5*6 + 0.5*4 = 5; std = sqrt(9) = 3; delta = sqrt(5+4)/3*2 = 2;
    //         ad' = 0.5*5 + 0.5*4 = 4.5; w' = 0 - 0.5*2 = -1.
    // elem 1: w 2, g 3 → g' 4; sa' = 0.5*8 + 0.5*16 = 12; std = 4; delta = sqrt(12+4)/4*4 = 4;
    //         ad' = 0.5*12 + 0.5*16 = 14; w' = 2 - 0.5*4 = 0.
    const r = adadeltaStep(tensor([2], [0, 2]), tensor([2], [2, 3]), tensor([2], [6, 8]), tensor([2], [5, 12]),
      { lr: 0.5, rho: 0.5, eps: 4, weightDecay: 0.5 });
    expect(Array.from(r.squareAvg.data)).toEqual([5, 12]);
    expect(Array.from(r.accDelta.data)).toEqual([4.5, 14]);
    expect(Array.from(r.w.data)).toEqual([-1, 0]);
  });

  it('adadeltaStep from zero state with PyTorch defaults (rho 0.9, eps 1e-6)', () => {
    // g = 1: sa' = 0.1; delta = sqrt(1e-6) / sqrt(0.1 + 1e-6) = 1e-3 / sqrt(0.100001); ad' = 0.1 * delta².
    const r = adadeltaStep(tensor([1], [0.25]), tensor([1], [1]), tensor([1]), tensor([1]),
      { lr: 1, rho: 0.9, eps: 1e-6, weightDecay: 0 });
    const delta = 1e-3 / Math.sqrt(0.100001);
    expect(delta).toBeCloseTo(0.0031622618, 10);
    expect(r.squareAvg.data[0]).toBeCloseTo(0.1, 15);
    expect(r.w.data[0]).toBeCloseTo(0.25 - delta, 15);
    expect(r.accDelta.data[0]).toBeCloseTo(0.1 * delta * delta, 18);
  });

  it('stepLr decays by gamma each epoch from epoch 0', () => {
    expect(stepLr(1, 0.7, 0)).toBe(1);
    expect(stepLr(1, 0.7, 1)).toBeCloseTo(0.7, 15);
    expect(stepLr(1, 0.7, 2)).toBeCloseTo(0.49, 15);
    expect(stepLr(0.5, 0.1, 3)).toBeCloseTo(0.0005, 15);
    expect(() => stepLr(1, 0.7, -1)).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// relativeError
// ---------------------------------------------------------------------------------------------

describe('relativeError', () => {
  it('is ‖a − e‖ / ‖e‖', () => {
    expect(relativeError([3, 4.5], [3, 4])).toBeCloseTo(0.1, 15);
    expect(relativeError([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(relativeError([0, 0], [0, 0])).toBe(0);
    expect(relativeError([1e-3], [0])).toBeGreaterThan(1);
    expect(() => relativeError([1, 2], [1])).toThrow();
  });

  it('is NaN when actual holds NaN or ±Inf, so toBeLessThan fails', () => {
    expect(relativeError([1, NaN, 3], [1, 2, 3])).toBeNaN();
    expect(relativeError([Infinity, 2], [1, 2])).toBeNaN();
    expect(relativeError([-Infinity], [1])).toBeNaN();
    expect(relativeError(new Float32Array([NaN]), [0])).toBeNaN();
    // Every comparison with NaN is false, so a tolerance check cannot pass by accident.
    expect(NaN < 1).toBe(false);
    expect(() => expect(relativeError([NaN], [1])).toBeLessThan(1)).toThrow();
    expect(() => expect(relativeError([Infinity], [1])).toBeLessThan(1e300)).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// The whole CNN
// ---------------------------------------------------------------------------------------------

describe('randomParams', () => {
  it('has PyTorch shapes and stays within ±1/sqrt(fan_in)', () => {
    const p = randomParams(seededRng('randomParams'));
    const fanIn: Record<ParamName, number> = {
      'conv1.weight': 9, 'conv1.bias': 9, 'conv2.weight': 288, 'conv2.bias': 288,
      'fc1.weight': 9216, 'fc1.bias': 9216, 'fc2.weight': 128, 'fc2.bias': 128,
    };
    for (const spec of PARAM_SPECS) {
      const t = p[spec.name];
      expect(t.shape).toEqual([...spec.shape]);
      const bound = 1 / Math.sqrt(fanIn[spec.name]);
      let maxAbs = 0;
      for (const v of t.data) maxAbs = Math.max(maxAbs, Math.abs(v));
      expect(maxAbs).toBeLessThanOrEqual(bound);
      // Uses the range, not a tiny corner of it (even the 10-element fc2.bias).
      expect(maxAbs).toBeGreaterThan(0.3 * bound);
    }
  });
});

type Stage = 'conv1' | 'conv2' | 'fc1' | 'fc2';
const STAGE_OF: Record<ParamName, Stage> = {
  'conv1.weight': 'conv1', 'conv1.bias': 'conv1', 'conv2.weight': 'conv2', 'conv2.bias': 'conv2',
  'fc1.weight': 'fc1', 'fc1.bias': 'fc1', 'fc2.weight': 'fc2', 'fc2.bias': 'fc2',
};

/**
 * Re-runs the CNN from the layer that owns a parameter onwards, reusing the unchanged earlier
 * intermediates from `base` (the full forward is ~0.1 s, too slow to repeat for every FD point).
 * The same exported layer functions are used, and the test checks that at unperturbed parameters every
 * stage reproduces cnnForward's output bit for bit.
 */
function forwardFrom(stage: Stage, p: Params64, base: CnnCache, masks: DropoutMasks): CnnCache {
  if (stage === 'conv1') return cnnForward(p, base.x, masks).cache;
  let { a2, z2, pooled, argmax, d1, z3, a3, d2 } = base;
  if (stage === 'conv2') {
    z2 = conv2d(base.a1, p['conv2.weight'], p['conv2.bias']);
    a2 = relu(z2);
    ({ y: pooled, argmax } = maxPool2d(a2));
    d1 = dropout(tensor([base.x.shape[0], FC1.inFeatures], pooled.data), masks.drop1, DROPOUT1);
  }
  if (stage === 'conv2' || stage === 'fc1') {
    z3 = linear(d1, p['fc1.weight'], p['fc1.bias']);
    a3 = relu(z3);
    d2 = dropout(a3, masks.drop2, DROPOUT2);
  }
  const z4 = linear(d2, p['fc2.weight'], p['fc2.bias']);
  const logp = logSoftmax(z4);
  return { ...base, z2, a2, pooled, argmax, d1, z3, a3, d2, z4, logp, masks };
}

/** Whether every ReLU sign and every pool choice is the same in both passes (no kink between them). */
function samePattern(a: CnnCache, b: CnnCache): boolean {
  for (const k of ['z1', 'z2', 'z3'] as const) {
    const x = a[k].data;
    const y = b[k].data;
    for (let i = 0; i < x.length; i++) if (x[i] > 0 !== y[i] > 0) return false;
  }
  for (let i = 0; i < a.argmax.length; i++) if (a.argmax[i] !== b.argmax[i]) return false;
  return true;
}

describe('cnnForward / cnnBackward', () => {
  const B = 2;
  let params: Params64;
  let x: T64;
  let masks: DropoutMasks;
  let targets: number[];
  let base: CnnCache;
  let loss: number;
  let grads: Record<ParamName, T64>;
  let rng: () => number;

  beforeAll(() => {
    rng = seededRng('cnn');
    params = randomParams(rng);
    x = randomTensor(rng, [B, 1, 28, 28]);
    masks = { drop1: randomMask(rng, B * 9216, 0.25), drop2: randomMask(rng, B * 128, 0.5) };
    targets = randomTargets(rng, B, 10);
    base = cnnForward(params, x, masks).cache;
    ({ loss, grads } = cnnBackward(params, base, targets));
  });

  it('forward gives normalised log-probabilities of shape [B,10], dropout only with masks', () => {
    const inference = cnnForward(params, x);
    expect(inference.logp.shape).toEqual([B, 10]);
    for (let n = 0; n < B; n++) {
      let s = 0;
      for (let c = 0; c < 10; c++) s += Math.exp(inference.logp.data[n * 10 + c]);
      expect(s).toBeCloseTo(1, 13);
    }
    // Without masks, d1 is the pool output flattened in NCHW order, unscaled.
    expect(inference.cache.d1.shape).toEqual([B, 9216]);
    expect(Array.from(inference.cache.d1.data)).toEqual(Array.from(inference.cache.pooled.data));
    // With all-ones masks, dropout only rescales by 1/(1-p), which changes the output.
    const ones = { drop1: new Float64Array(B * 9216).fill(1), drop2: new Float64Array(B * 128).fill(1) };
    const scaled = cnnForward(params, x, ones).cache;
    expect(scaled.d1.data[5]).toBeCloseTo(inference.cache.d1.data[5] / 0.75, 15);
    expect(relativeError(scaled.logp.data, inference.logp.data)).toBeGreaterThan(1e-6);
  });

  it('backward returns the loss of the forward pass and gradients of every parameter shape', () => {
    expect(loss).toBe(nllLoss(base.logp, targets));
    expect(loss).toBe(nllLoss(cnnForward(params, x, masks).logp, targets));
    expect(Number.isFinite(loss)).toBe(true);
    for (const spec of PARAM_SPECS) expect(grads[spec.name].shape).toEqual([...spec.shape]);
  });

  it('every partial re-run reproduces cnnForward exactly at unperturbed parameters', () => {
    for (const stage of ['conv1', 'conv2', 'fc1', 'fc2'] as const) {
      expect(Array.from(forwardFrom(stage, params, base, masks).logp.data)).toEqual(Array.from(base.logp.data));
    }
  });

  it('the kink guard notices a flipped ReLU sign or pool choice', () => {
    expect(samePattern(base, base)).toBe(true);
    const z2 = tensor(base.z2.shape, base.z2.data);
    z2.data[17] = z2.data[17] > 0 ? -1 : 1;
    expect(samePattern({ ...base, z2 }, base)).toBe(false);
    const argmax = base.argmax.slice();
    argmax[3] += 1;
    expect(samePattern({ ...base, argmax }, base)).toBe(false);
  });

  // Spot checks: convolution stages cost a ~0.1 s forward per FD point, so they get fewer coordinates.
  const COORDS: Record<Stage, number> = { conv1: 4, conv2: 4, fc1: 5, fc2: 5 };
  for (const spec of PARAM_SPECS) {
    it(`${spec.name}: gradient matches finite differences at random coordinates`, () => {
      const stage = STAGE_OF[spec.name];
      const t = params[spec.name];
      const g = grads[spec.name];
      // The loss depends on every parameter tensor, so an all-zero gradient would itself be a bug.
      expect(g.data.some((v) => v !== 0)).toBe(true);

      let checked = 0;
      let skipped = 0;
      while (checked < COORDS[stage]) {
        const i = Math.floor(rng() * t.data.length);
        let kink = false;
        const f = () => {
          const c = forwardFrom(stage, params, base, masks);
          if (!samePattern(c, base)) kink = true;
          return nllLoss(c.logp, targets);
        };
        const fd = centralDiff(f, t.data, i);
        if (kink) {
          // A ReLU or pool decision flipped within ±h: FD is not a derivative there. Pick another point.
          skipped++;
          expect(skipped).toBeLessThan(10);
          continue;
        }
        // FD rounding noise here is ~eps·loss/h ≈ 3e-10 absolute, so 1e-8 leaves a wide margin.
        const err = Math.abs(fd - g.data[i]);
        expect(err, `${spec.name}[${i}]: analytic ${g.data[i]}, FD ${fd}`).toBeLessThanOrEqual(1e-6 * Math.abs(fd) + 1e-8);
        checked++;
      }
    }, 30_000);
  }
});
