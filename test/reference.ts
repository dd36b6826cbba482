/**
 * A float64 reference implementation of every operation the GPU.js engine performs, written for
 * obvious correctness (plain nested loops, PyTorch semantics and layouts: row-major, NCHW), not speed.
 * The GPU kernels are checked against it; it is itself checked against finite differences and
 * hand-computed cases in reference.test.ts.
 */
import { CONV1, DROPOUT1, DROPOUT2, FC1, IMAGE_SIDE, NUM_CLASSES, PARAM_SPECS, elementCount, type ParamName } from '../src/model/cnn.ts';
import { randn } from './rng.ts';

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

export interface T64 {
  data: Float64Array;
  shape: number[];
}

/** A tensor of the given shape: zeros, or a float64 copy of `data` (whose length must match). */
export function tensor(shape: number[], data?: ArrayLike<number>): T64 {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`bad shape [${shape.join(',')}]`);
  }
  const n = elementCount(shape);
  const out = new Float64Array(n);
  if (data !== undefined) {
    if (data.length !== n) {
      throw new Error(`data has ${data.length} elements, shape [${shape.join(',')}] needs ${n}`);
    }
    for (let i = 0; i < n; i++) out[i] = data[i];
  }
  return { data: out, shape: [...shape] };
}

/** Independent normal samples times `scale`. */
export function randomTensor(rng: () => number, shape: number[], scale = 1): T64 {
  const t = tensor(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = randn(rng) * scale;
  return t;
}

function expectRank(t: T64, rank: number, what: string): void {
  if (t.shape.length !== rank) throw new Error(`${what}: expected rank ${rank}, got [${t.shape.join(',')}]`);
}

function expectShape(t: T64, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${what}: expected shape [${shape.join(',')}], got [${t.shape.join(',')}]`);
  }
}

function expectLength(a: ArrayLike<number>, n: number, what: string): void {
  if (a.length !== n) throw new Error(`${what}: expected ${n} elements, got ${a.length}`);
}

// ---------------------------------------------------------------------------------------------
// Convolution (stride 1, no padding, cross-correlation as in PyTorch)
// ---------------------------------------------------------------------------------------------

/** x [B,Cin,H,W], w [Cout,Cin,K,K], b [Cout] → y [B,Cout,H-K+1,W-K+1]. */
export function conv2d(x: T64, w: T64, b: T64): T64 {
  expectRank(x, 4, 'conv2d x');
  expectRank(w, 4, 'conv2d w');
  const [B, Cin, H, W] = x.shape;
  const [Cout, wCin, K, K2] = w.shape;
  if (wCin !== Cin || K !== K2) throw new Error(`conv2d: w [${w.shape.join(',')}] does not fit x [${x.shape.join(',')}]`);
  expectShape(b, [Cout], 'conv2d b');
  const Ho = H - K + 1;
  const Wo = W - K + 1;
  if (Ho <= 0 || Wo <= 0) throw new Error(`conv2d: kernel ${K} larger than input ${H}x${W}`);

  // y[n,o,i,j] = b[o] + Σ_{c,ki,kj} w[o,c,ki,kj] · x[n,c,i+ki,j+kj]. The sum is taken one kernel tap at a
  // time: each tap adds its weight times the input window shifted by (ki,kj) to the whole output plane.
  const y = tensor([B, Cout, Ho, Wo]);
  const xd = x.data; // locals keep the hot loop free of property loads
  const yd = y.data;
  for (let n = 0; n < B; n++) {
    for (let o = 0; o < Cout; o++) {
      const yPlane = (n * Cout + o) * Ho * Wo; // y[n,o,0,0]
      for (let p = 0; p < Ho * Wo; p++) yd[yPlane + p] = b.data[o];
      for (let c = 0; c < Cin; c++) {
        for (let ki = 0; ki < K; ki++) {
          for (let kj = 0; kj < K; kj++) {
            const wv = w.data[((o * Cin + c) * K + ki) * K + kj];
            for (let i = 0; i < Ho; i++) {
              const xRow = ((n * Cin + c) * H + i + ki) * W + kj; // x[n,c,i+ki,kj]
              const yRow = yPlane + i * Wo;                     // y[n,o,i,0]
              for (let j = 0; j < Wo; j++) yd[yRow + j] += wv * xd[xRow + j];
            }
          }
        }
      }
    }
  }
  return y;
}

/** Gradients of conv2d given dy [B,Cout,Ho,Wo]: each output element scatters into dx, dw, db. */
export function conv2dBackward(x: T64, w: T64, dy: T64): { dx: T64; dw: T64; db: T64 } {
  expectRank(x, 4, 'conv2dBackward x');
  expectRank(w, 4, 'conv2dBackward w');
  const [B, Cin, H, W] = x.shape;
  const [Cout, , K] = w.shape;
  const Ho = H - K + 1;
  const Wo = W - K + 1;
  expectShape(w, [Cout, Cin, K, K], 'conv2dBackward w');
  expectShape(dy, [B, Cout, Ho, Wo], 'conv2dBackward dy');

  // Same tap-by-tap order as the forward pass. For output y[n,o,i,j] and tap (c,ki,kj):
  //   dw[o,c,ki,kj] += dy[n,o,i,j] · x[n,c,i+ki,j+kj]     dx[n,c,i+ki,j+kj] += dy[n,o,i,j] · w[o,c,ki,kj]
  const dx = tensor(x.shape);
  const dw = tensor(w.shape);
  const db = tensor([Cout]);
  for (let n = 0; n < B; n++) {
    for (let o = 0; o < Cout; o++) {
      const dyPlane = (n * Cout + o) * Ho * Wo; // dy[n,o,0,0]
      for (let p = 0; p < Ho * Wo; p++) db.data[o] += dy.data[dyPlane + p];
      for (let c = 0; c < Cin; c++) {
        for (let ki = 0; ki < K; ki++) {
          for (let kj = 0; kj < K; kj++) {
            const wi = ((o * Cin + c) * K + ki) * K + kj;
            const wv = w.data[wi];
            let dwSum = 0;
            for (let i = 0; i < Ho; i++) {
              const xRow = ((n * Cin + c) * H + i + ki) * W + kj; // x[n,c,i+ki,kj]
              const dyRow = dyPlane + i * Wo;                   // dy[n,o,i,0]
              for (let j = 0; j < Wo; j++) {
                dwSum += dy.data[dyRow + j] * x.data[xRow + j];
                dx.data[xRow + j] += dy.data[dyRow + j] * wv;
              }
            }
            dw.data[wi] += dwSum;
          }
        }
      }
    }
  }
  return { dx, dw, db };
}

// ---------------------------------------------------------------------------------------------
// ReLU
// ---------------------------------------------------------------------------------------------

export function relu(x: T64): T64 {
  const y = tensor(x.shape);
  for (let i = 0; i < x.data.length; i++) y.data[i] = x.data[i] > 0 ? x.data[i] : 0;
  return y;
}

/** dy where the forward input x > 0, else 0 (PyTorch's choice at x == 0 is gradient 0). */
export function reluBackward(x: T64, dy: T64): T64 {
  expectShape(dy, x.shape, 'reluBackward dy');
  const dx = tensor(x.shape);
  for (let i = 0; i < x.data.length; i++) dx.data[i] = x.data[i] > 0 ? dy.data[i] : 0;
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Max pooling, 2x2 window, stride 2, floor (trailing odd row/column ignored)
// ---------------------------------------------------------------------------------------------

/**
 * argmax[i] is the flat index into x.data of the element chosen for y.data[i]. Ties go to the first
 * element in window order (0,0),(0,1),(1,0),(1,1), because only a strictly greater value replaces it.
 */
export function maxPool2d(x: T64): { y: T64; argmax: Int32Array } {
  expectRank(x, 4, 'maxPool2d x');
  const [B, C, H, W] = x.shape;
  const Ho = Math.floor(H / 2);
  const Wo = Math.floor(W / 2);
  const y = tensor([B, C, Ho, Wo]);
  const argmax = new Int32Array(y.data.length);
  for (let n = 0; n < B; n++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < Ho; i++) {
        for (let j = 0; j < Wo; j++) {
          let best = -1;
          for (let di = 0; di < 2; di++) {
            for (let dj = 0; dj < 2; dj++) {
              const xi = ((n * C + c) * H + 2 * i + di) * W + 2 * j + dj;
              if (best < 0 || x.data[xi] > x.data[best]) best = xi;
            }
          }
          const yi = ((n * C + c) * Ho + i) * Wo + j;
          y.data[yi] = x.data[best];
          argmax[yi] = best;
        }
      }
    }
  }
  return { y, argmax };
}

/** Routes each dy element to the input element that won its window; all others get 0. */
export function maxPool2dBackward(xShape: number[], argmax: Int32Array, dy: T64): T64 {
  expectLength(argmax, dy.data.length, 'maxPool2dBackward argmax');
  const dx = tensor(xShape);
  for (let i = 0; i < dy.data.length; i++) {
    const xi = argmax[i];
    if (xi < 0 || xi >= dx.data.length) throw new Error(`maxPool2dBackward: argmax ${xi} out of range`);
    dx.data[xi] += dy.data[i];
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Dropout with an explicit 0/1 mask (inverted dropout: kept elements are scaled by 1/(1-p))
// ---------------------------------------------------------------------------------------------

function checkDropout(n: number, mask: ArrayLike<number>, p: number, what: string): void {
  expectLength(mask, n, `${what} mask`);
  if (!(p >= 0 && p < 1)) throw new Error(`${what}: p must be in [0, 1), got ${p}`);
}

export function dropout(x: T64, mask: ArrayLike<number>, p: number): T64 {
  checkDropout(x.data.length, mask, p, 'dropout');
  const y = tensor(x.shape);
  for (let i = 0; i < x.data.length; i++) y.data[i] = (x.data[i] * mask[i]) / (1 - p);
  return y;
}

/** The same elementwise linear map as the forward pass, applied to dy. */
export function dropoutBackward(dy: T64, mask: ArrayLike<number>, p: number): T64 {
  checkDropout(dy.data.length, mask, p, 'dropoutBackward');
  const dx = tensor(dy.shape);
  for (let i = 0; i < dy.data.length; i++) dx.data[i] = (dy.data[i] * mask[i]) / (1 - p);
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Linear (fully connected)
// ---------------------------------------------------------------------------------------------

/** x [B,In], w [Out,In], b [Out] → y [B,Out] = x·wᵀ + b. */
export function linear(x: T64, w: T64, b: T64): T64 {
  expectRank(x, 2, 'linear x');
  expectRank(w, 2, 'linear w');
  const [B, In] = x.shape;
  const [Out] = w.shape;
  expectShape(w, [Out, In], 'linear w');
  expectShape(b, [Out], 'linear b');
  const y = tensor([B, Out]);
  for (let n = 0; n < B; n++) {
    for (let o = 0; o < Out; o++) {
      let s = b.data[o];
      for (let i = 0; i < In; i++) s += x.data[n * In + i] * w.data[o * In + i];
      y.data[n * Out + o] = s;
    }
  }
  return y;
}

/** dx = dy·w, dw = dyᵀ·x, db = column sums of dy. */
export function linearBackward(x: T64, w: T64, dy: T64): { dx: T64; dw: T64; db: T64 } {
  expectRank(x, 2, 'linearBackward x');
  expectRank(w, 2, 'linearBackward w');
  const [B, In] = x.shape;
  const [Out] = w.shape;
  expectShape(w, [Out, In], 'linearBackward w');
  expectShape(dy, [B, Out], 'linearBackward dy');
  const dx = tensor([B, In]);
  const dw = tensor([Out, In]);
  const db = tensor([Out]);
  for (let n = 0; n < B; n++) {
    for (let o = 0; o < Out; o++) {
      const g = dy.data[n * Out + o];
      db.data[o] += g;
      for (let i = 0; i < In; i++) {
        dw.data[o * In + i] += g * x.data[n * In + i];
        dx.data[n * In + i] += g * w.data[o * In + i];
      }
    }
  }
  return { dx, dw, db };
}

// ---------------------------------------------------------------------------------------------
// Log-softmax and negative log-likelihood
// ---------------------------------------------------------------------------------------------

/** Row-wise log-softmax of z [B,C]: z - max - log(sum(exp(z - max))), so large logits do not overflow. */
export function logSoftmax(z: T64): T64 {
  expectRank(z, 2, 'logSoftmax z');
  const [B, C] = z.shape;
  const out = tensor([B, C]);
  for (let n = 0; n < B; n++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, z.data[n * C + c]);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(z.data[n * C + c] - max);
    const logSum = Math.log(sum);
    for (let c = 0; c < C; c++) out.data[n * C + c] = z.data[n * C + c] - max - logSum;
  }
  return out;
}

function checkTargets(targets: ArrayLike<number>, B: number, C: number, what: string): void {
  expectLength(targets, B, `${what} targets`);
  for (let n = 0; n < B; n++) {
    const t = targets[n];
    if (!Number.isInteger(t) || t < 0 || t >= C) throw new Error(`${what}: target ${t} not a class in [0, ${C})`);
  }
}

/** Mean over the batch of -logp[b, target_b] (PyTorch's nll_loss with reduction 'mean', no weights). */
export function nllLoss(logp: T64, targets: ArrayLike<number>): number {
  expectRank(logp, 2, 'nllLoss logp');
  const [B, C] = logp.shape;
  checkTargets(targets, B, C, 'nllLoss');
  let s = 0;
  for (let n = 0; n < B; n++) s -= logp.data[n * C + targets[n]];
  return s / B;
}

/** d mean-NLL(logSoftmax(z)) / dz = (softmax(z) - onehot(target)) / B. */
export function logSoftmaxNllBackward(z: T64, targets: ArrayLike<number>): T64 {
  expectRank(z, 2, 'logSoftmaxNllBackward z');
  const [B, C] = z.shape;
  checkTargets(targets, B, C, 'logSoftmaxNllBackward');
  const logp = logSoftmax(z);
  const dz = tensor([B, C]);
  for (let n = 0; n < B; n++) {
    for (let c = 0; c < C; c++) {
      const onehot = c === targets[n] ? 1 : 0;
      dz.data[n * C + c] = (Math.exp(logp.data[n * C + c]) - onehot) / B;
    }
  }
  return dz;
}

// ---------------------------------------------------------------------------------------------
// Optimisers and schedule
// ---------------------------------------------------------------------------------------------

/**
 * PyTorch SGD with dampening 0 and nesterov off. buf starts at zeros, which on the first step gives
 * buf' = g', the same as PyTorch's clone. With momentum 0 the update uses g' (buf' is still returned).
 */
export function sgdStep(
  w: T64, g: T64, buf: T64, o: { lr: number; momentum: number; weightDecay: number },
): { w: T64; buf: T64 } {
  expectShape(g, w.shape, 'sgdStep g');
  expectShape(buf, w.shape, 'sgdStep buf');
  const w2 = tensor(w.shape);
  const buf2 = tensor(w.shape);
  for (let i = 0; i < w.data.length; i++) {
    const gd = g.data[i] + o.weightDecay * w.data[i];
    buf2.data[i] = o.momentum * buf.data[i] + gd;
    const step = o.momentum !== 0 ? buf2.data[i] : gd;
    w2.data[i] = w.data[i] - o.lr * step;
  }
  return { w: w2, buf: buf2 };
}

/** PyTorch Adadelta (torch.optim.Adadelta, single-tensor path, maximize off). */
export function adadeltaStep(
  w: T64, g: T64, squareAvg: T64, accDelta: T64, o: { lr: number; rho: number; eps: number; weightDecay: number },
): { w: T64; squareAvg: T64; accDelta: T64 } {
  expectShape(g, w.shape, 'adadeltaStep g');
  expectShape(squareAvg, w.shape, 'adadeltaStep squareAvg');
  expectShape(accDelta, w.shape, 'adadeltaStep accDelta');
  const w2 = tensor(w.shape);
  const sa2 = tensor(w.shape);
  const ad2 = tensor(w.shape);
  for (let i = 0; i < w.data.length; i++) {
    const gd = g.data[i] + o.weightDecay * w.data[i];
    sa2.data[i] = o.rho * squareAvg.data[i] + (1 - o.rho) * gd * gd;
    const std = Math.sqrt(sa2.data[i] + o.eps);
    const delta = (Math.sqrt(accDelta.data[i] + o.eps) / std) * gd;
    ad2.data[i] = o.rho * accDelta.data[i] + (1 - o.rho) * delta * delta;
    w2.data[i] = w.data[i] - o.lr * delta;
  }
  return { w: w2, squareAvg: sa2, accDelta: ad2 };
}

/** StepLR(step_size=1): the learning rate used during `epoch` (counted from 0) is lr0 * gamma^epoch. */
export function stepLr(lr0: number, gamma: number, epoch: number): number {
  if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`stepLr: epoch must be a non-negative integer, got ${epoch}`);
  return lr0 * gamma ** epoch;
}

// ---------------------------------------------------------------------------------------------
// The whole PyTorch-examples MNIST CNN
// ---------------------------------------------------------------------------------------------

export type Params64 = Record<ParamName, T64>;

/** fan_in of a parameter: for a weight, all dims but the first; for a bias, that of its layer's weight. */
function fanIn(name: ParamName): number {
  const weightName = name.replace(/\.bias$/, '.weight') as ParamName;
  const spec = PARAM_SPECS.find((s) => s.name === weightName);
  if (spec === undefined) throw new Error(`no spec for ${weightName}`);
  return elementCount(spec.shape.slice(1));
}

/** Uniform in ±1/sqrt(fan_in) for weights and biases: the scale of PyTorch's default initialisation. */
export function randomParams(rng: () => number): Params64 {
  const out = {} as Params64;
  for (const spec of PARAM_SPECS) {
    const bound = 1 / Math.sqrt(fanIn(spec.name));
    const t = tensor([...spec.shape]);
    for (let i = 0; i < t.data.length; i++) t.data[i] = (2 * rng() - 1) * bound;
    out[spec.name] = t;
  }
  return out;
}

/** drop1: B*9216 (after the pool, p=0.25); drop2: B*128 (after fc1's ReLU, p=0.5). Entries 0 or 1. */
export interface DropoutMasks {
  drop1: ArrayLike<number>;
  drop2: ArrayLike<number>;
}

/** Every intermediate of cnnForward that cnnBackward needs (and tests may inspect). */
export interface CnnCache {
  x: T64;            // [B,1,28,28]
  z1: T64;           // conv1 output [B,32,26,26]
  a1: T64;           // relu(z1)
  z2: T64;           // conv2 output [B,64,24,24]
  a2: T64;           // relu(z2)
  pooled: T64;       // [B,64,12,12]
  argmax: Int32Array; // flat indices into a2.data
  d1: T64;           // flattened pool output after dropout1 [B,9216]
  z3: T64;           // fc1 output [B,128]
  a3: T64;           // relu(z3)
  d2: T64;           // a3 after dropout2 [B,128]
  z4: T64;           // fc2 output (logits) [B,10]
  logp: T64;         // log_softmax(z4) [B,10]
  masks?: DropoutMasks;
}

function checkParams(params: Params64): void {
  for (const spec of PARAM_SPECS) {
    const t = params[spec.name];
    if (t === undefined) throw new Error(`params: missing ${spec.name}`);
    expectShape(t, spec.shape, `params ${spec.name}`);
  }
}

/** Same data, new shape (row-major, so PyTorch's flatten/view is just a relabelling). */
function reshape(t: T64, shape: number[]): T64 {
  if (elementCount(shape) !== t.data.length) throw new Error(`reshape [${t.shape.join(',')}] → [${shape.join(',')}]`);
  return { data: t.data, shape: [...shape] };
}

/** x [B,1,28,28] → log-probabilities [B,10]. Without masks this is inference: dropout is the identity. */
export function cnnForward(params: Params64, x: T64, masks?: DropoutMasks): { logp: T64; cache: CnnCache } {
  checkParams(params);
  expectRank(x, 4, 'cnnForward x');
  const B = x.shape[0];
  expectShape(x, [B, CONV1.inChannels, IMAGE_SIDE, IMAGE_SIDE], 'cnnForward x');

  const z1 = conv2d(x, params['conv1.weight'], params['conv1.bias']);
  const a1 = relu(z1);
  const z2 = conv2d(a1, params['conv2.weight'], params['conv2.bias']);
  const a2 = relu(z2);
  const { y: pooled, argmax } = maxPool2d(a2);
  const flat = reshape(pooled, [B, FC1.inFeatures]);
  const d1 = masks ? dropout(flat, masks.drop1, DROPOUT1) : flat;
  const z3 = linear(d1, params['fc1.weight'], params['fc1.bias']);
  const a3 = relu(z3);
  const d2 = masks ? dropout(a3, masks.drop2, DROPOUT2) : a3;
  const z4 = linear(d2, params['fc2.weight'], params['fc2.bias']);
  const logp = logSoftmax(z4);
  return { logp, cache: { x, z1, a1, z2, a2, pooled, argmax, d1, z3, a3, d2, z4, logp, masks } };
}

/** Loss (mean NLL) and the gradient of it with respect to every parameter, by the chain rule backwards. */
export function cnnBackward(
  params: Params64, cache: CnnCache, targets: ArrayLike<number>,
): { loss: number; grads: Record<ParamName, T64> } {
  checkParams(params);
  expectShape(cache.logp, [cache.x.shape[0], NUM_CLASSES], 'cnnBackward cache.logp');
  const { masks } = cache;
  const loss = nllLoss(cache.logp, targets);

  const dz4 = logSoftmaxNllBackward(cache.z4, targets);
  const fc2 = linearBackward(cache.d2, params['fc2.weight'], dz4);
  const da3 = masks ? dropoutBackward(fc2.dx, masks.drop2, DROPOUT2) : fc2.dx;
  const dz3 = reluBackward(cache.z3, da3);
  const fc1 = linearBackward(cache.d1, params['fc1.weight'], dz3);
  const dflat = masks ? dropoutBackward(fc1.dx, masks.drop1, DROPOUT1) : fc1.dx;
  const dpooled = reshape(dflat, cache.pooled.shape);
  const da2 = maxPool2dBackward(cache.a2.shape, cache.argmax, dpooled);
  const dz2 = reluBackward(cache.z2, da2);
  const conv2 = conv2dBackward(cache.a1, params['conv2.weight'], dz2);
  const dz1 = reluBackward(cache.z1, conv2.dx);
  const conv1 = conv2dBackward(cache.x, params['conv1.weight'], dz1);

  const grads: Record<ParamName, T64> = {
    'conv1.weight': conv1.dw,
    'conv1.bias': conv1.db,
    'conv2.weight': conv2.dw,
    'conv2.bias': conv2.db,
    'fc1.weight': fc1.dw,
    'fc1.bias': fc1.db,
    'fc2.weight': fc2.dw,
    'fc2.bias': fc2.db,
  };
  return { loss, grads };
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

const TINY = 1e-30;

/**
 * ‖actual − expected‖₂ / max(‖expected‖₂, tiny). NaN if any element of either is NaN or ±Inf, so that
 * `expect(relativeError(a, e)).toBeLessThan(tol)` fails (every comparison with NaN is false).
 */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expectLength(actual, expected.length, 'relativeError actual');
  let diff2 = 0;
  let ref2 = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(a) || !Number.isFinite(e)) return NaN;
    diff2 += (a - e) * (a - e);
    ref2 += e * e;
  }
  return Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), TINY);
}

/** Arrays laid end to end, as float64 (the reference of M stacked models is its per-model results concatenated). */
export function concat(parts: ReadonlyArray<ArrayLike<number>>): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
