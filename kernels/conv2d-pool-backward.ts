/**
 * The backward pass of conv2d → ReLU → 2x2 max-pool (the CNN's conv2 block), channels last.
 *
 * Weight and bias gradients from the pooled gradient. Max-pool hands each window's gradient to one of its four
 * cells, so three quarters of the conv's output gradient are zeros, and a weight gradient summed over the dense
 * gradient spends three quarters of its multiply-adds on them. `maxPool2dReluWindows` keeps, per window, the
 * gradient that passes the ReLU and where its winner's input patch starts; `conv2dGradWeightPooled` adds a
 * window's gradient times that 3x3 patch of x (channels last, `transposePlanes` of kernels/layout.ts), one sample
 * per cell, and
 * `conv2dGradWeightPooledLayout` adds the samples.
 *
 * The input gradient as a dense convolution, channels last: `maxPool2dReluBackwardChannelsLast` spreads the
 * windows back over the conv's output, inside the zero border a full convolution needs, and `conv2dGradInputChannelsLast` convolves it
 * with the flipped weights (`conv2dFlipWeightsChannelsLast`) as the serving kernels convolve: SIMD lanes over the
 * channels it writes, each cell a 2x2 block from one 4x4 patch per channel it reads;
 * `conv2dGradInputReluLayout` lays the blocks out channels first through the ReLU of the layer below.
 *
 * The winner's offset enters the weight gradient's indices as Math.floor of a value read from an array; the
 * patched webasm backend computes such an index in i32 (exact past 2^24 elements).
 * Shapes: x channels last [M or shared, B, inH, inW, inC]; w [M, outC, inC, 3, 3]; the conv's output must pool
 * without a remainder (outH = 2·poolH, outW = 2·poolW).
 */
import type { Conv2DInfo, Pool2DInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type PooledThis = KernelThis<Conv2DInfo & { poolH: number; poolW: number; blocksH: number; blocksW: number; padH: number; padW: number }>;

/** The pooled geometry these kernels share, checked: a 3x3 conv whose output pools exactly into `pool`. */
function pooledConstants(info: Conv2DInfo, pool: Pool2DInfo) {
  if (info.M !== pool.M || info.B !== pool.B) {
    throw new Error(`conv2d pooled backward: the conv holds ${info.M} model(s) x ${info.B} samples, the pool ${pool.M} x ${pool.B}`);
  }
  if (info.K !== 3 || info.outH !== 2 * pool.outH || info.outW !== 2 * pool.outW || info.outC !== pool.C) {
    throw new Error(`conv2d pooled backward: a ${info.outC}x${info.outH}x${info.outW} conv output does not pool exactly into ${pool.C}x${pool.outH}x${pool.outW}`);
  }
  // blocks: the input gradient's 2x2 blocks of input cells; pad: its output gradient inside a border of K - 1
  return {
    ...info, poolH: pool.outH, poolW: pool.outW, blocksH: info.inH / 2, blocksW: info.inW / 2,
    padH: info.outH + 4, padW: info.outW + 4,
  };
}

/**
 * Per pooling window: the gradient that reaches its winner through ReLU (dy where the pooled value is > 0, else
 * 0), and where the winner's 3x3 input patch starts relative to the window's first: ay rows and ax columns on
 * (the winner a = 2·ay + ax, `maxPool2dReluArgmax`) in the conv's input, channels last, i.e.
 * (ay·inW + ax)·inC elements. argmax, dy and pooled [M, B, C, poolH, poolW].
 * Grid [poolW, poolH, M*B*C], Array(2) → [M, B, C, poolH, poolW, (gradient, offset)].
 */
export function maxPool2dReluWindows(info: Conv2DInfo, pool: Pool2DInfo): KernelSpec {
  return {
    name: 'maxPool2d.reluWindows',
    fn: function (this: PooledThis, argmax: Float32Array, dy: Float32Array, pooled: Float32Array): number[] {
      const cell = (this.thread.z * this.constants.poolH + this.thread.y) * this.constants.poolW + this.thread.x;
      const a = argmax[cell];
      const ay = Math.floor(a / 2);
      let g = 0;
      if (pooled[cell] > 0) g = dy[cell];
      return [g, (ay * this.constants.inW + a - 2 * ay) * this.constants.inC];
    },
    returnType: 'Array(2)',
    output: [pool.outW, pool.outH, pool.M * pool.B * pool.C],
    constants: pooledConstants(info, pool),
    flops: 0,
  };
}

/**
 * dw[m,co,ci,ky,kx] = Σ_b,py,px g[m,b,co,py,px] · x[m,b,Y+ky,X+kx,ci], (Y, X) = the window's winner: 9
 * multiply-adds per window and input channel, a quarter of the dense sum's. One cell owns a row of three taps (ky;
 * kx = 0..2) of one (co, ci) for one sample; the SIMD lanes run over ci, so the window's gradient and offset are
 * the same in every lane (one load each) and each input read is four consecutive channels (x channels last).
 * Cells run sample by sample, so one sample's input stays in cache while every co reads it. Each sum runs over
 * (py, px) in order. Grid [inC, 3 (ky), M*B*outC], Array(3) → [M, B, outC, ky, inC, kx];
 * `conv2dGradWeightPooledLayout` adds the samples.
 */
export function conv2dGradWeightPooled(info: Conv2DInfo, pool: Pool2DInfo): KernelSpec {
  return {
    name: 'conv2d.gradWeightPooled',
    fn: function (this: PooledThis, windows: Float32Array, x: Float32Array): number[] {
      const mb = Math.floor(this.thread.z / this.constants.outC);
      const m = Math.floor(mb / this.constants.B);
      const b = mb - m * this.constants.B;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      for (let py = 0; py < this.constants.poolH; py++) {
        const at = (this.thread.z * this.constants.poolH + py) * this.constants.poolW * 2;
        // the window's first cell, input row 2·py + ky
        const row = m * this.constants.xModelStride
          + ((b * this.constants.inH + 2 * py + this.thread.y) * this.constants.inW) * this.constants.inC;
        for (let px = 0; px < this.constants.poolW; px++) {
          const g = windows[at + 2 * px];
          const xo = row + 2 * px * this.constants.inC + Math.floor(windows[at + 2 * px + 1]);
          s0 += g * x[xo + this.thread.x];
          s1 += g * x[xo + this.constants.inC + this.thread.x];
          s2 += g * x[xo + 2 * this.constants.inC + this.thread.x];
        }
      }
      return [s0, s1, s2];
    },
    returnType: 'Array(3)',
    output: [info.inC, 3, info.M * info.B * info.outC],
    constants: pooledConstants(info, pool),
    flops: 2 * info.M * info.B * info.outC * pool.outH * pool.outW * info.inC * 9,
  };
}

/** [M, B, outC, ky, inC, kx] → [M, outC, inC, ky, kx], PyTorch's layout: the samples added in order. Grid [9, inC, M*outC]. */
export function conv2dGradWeightPooledLayout(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.gradWeightPooledLayout',
    fn: function (this: KernelThis<Conv2DInfo>, rows: Float32Array): number {
      const m = Math.floor(this.thread.z / this.constants.outC);
      const co = this.thread.z - m * this.constants.outC;
      const ky = Math.floor(this.thread.x / 3);
      const kx = this.thread.x - ky * 3;
      let v = 0;
      for (let b = 0; b < this.constants.B; b++) {
        v += rows[((((m * this.constants.B + b) * this.constants.outC + co) * 3 + ky) * this.constants.inC + this.thread.y) * 3 + kx];
      }
      return v;
    },
    output: [9, info.inC, info.M * info.outC],
    constants: { ...info },
    flops: info.M * info.B * info.outC * info.inC * 9,
  };
}

/** db[m,co] = Σ_b,py,px g[m,b,co,py,px], the windows' gradients in order. Grid [outC, M]. */
export function conv2dGradBiasPooled(info: Conv2DInfo, pool: Pool2DInfo): KernelSpec {
  return {
    name: 'conv2d.gradBiasPooled',
    fn: function (this: PooledThis, windows: Float32Array): number {
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        const at = ((this.thread.y * this.constants.B + b) * this.constants.outC + this.thread.x) * this.constants.poolH * this.constants.poolW * 2;
        for (let i = 0; i < this.constants.poolH * this.constants.poolW; i++) {
          sum += windows[at + 2 * i];
        }
      }
      return sum;
    },
    output: [info.outC, info.M],
    constants: pooledConstants(info, pool),
    flops: info.M * info.B * info.outC * pool.outH * pool.outW,
  };
}

/**
 * The conv's output gradient through ReLU and max-pool, dense and channels last, inside the zero border of K - 1
 * cells its input gradient convolves: each window's gradient (`maxPool2dReluWindows`, which applied the ReLU) at
 * its winner, 0 at the window's other three cells. A cell is its window's winner when the window's offset is the
 * cell's own. Grid [C, padH*padW, M*B] → [M, B, outH + 4, outW + 4, C].
 */
export function maxPool2dReluBackwardChannelsLast(info: Conv2DInfo, pool: Pool2DInfo): KernelSpec {
  return {
    name: 'maxPool2d.reluBackwardChannelsLast',
    fn: function (this: PooledThis, windows: Float32Array): number {
      const y = Math.floor(this.thread.y / this.constants.padW);
      const iy = y - 2;
      const ix = this.thread.y - y * this.constants.padW - 2;
      if (iy >= 0 && ix >= 0 && iy < this.constants.outH && ix < this.constants.outW) {
        const py = Math.floor(iy / 2);
        const px = Math.floor(ix / 2);
        const at = (((this.thread.z * this.constants.outC + this.thread.x) * this.constants.poolH + py) * this.constants.poolW + px) * 2;
        if (windows[at + 1] === ((iy - 2 * py) * this.constants.inW + ix - 2 * px) * this.constants.inC) {
          return windows[at];
        }
      }
      return 0;
    },
    output: [info.outC, (info.outH + 4) * (info.outW + 4), info.M * info.B],
    constants: pooledConstants(info, pool),
    flops: 0,
  };
}

/**
 * The flipped weights the input gradient convolves with, channels last: f[m,co,t,ci] = w[m,co,ci,8-t] (t = ky·3 +
 * kx), so one tap's weights for consecutive ci lie side by side. Grid [inC, 9, M*outC] → [M, outC, 9, inC].
 */
export function conv2dFlipWeightsChannelsLast(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.flipWeightsChannelsLast',
    fn: function (this: KernelThis<Conv2DInfo>, w: Float32Array): number {
      return w[(this.thread.z * this.constants.inC + this.thread.x) * 9 + 8 - this.thread.y];
    },
    output: [info.inC, 9, info.M * info.outC],
    constants: { ...info },
    flops: 0,
  };
}

/**
 * dx[m,b,y,x,ci] = Σ_co,ky,kx dy[m,b,y+ky,x+kx,co] · f[m,co,ky·3+kx,ci], dy inside its border of 2: the full
 * convolution of the conv's output gradient with the flipped weights (`maxPool2dReluBackwardChannelsLast`, `conv2dFlipWeightsChannelsLast`).
 * As the serving kernels do: the SIMD lanes run over ci, so the 16 reads of a 4x4 patch of one output channel are
 * the same in every lane (one load each) and the 9 weight reads are four consecutive channels (one 128-bit load
 * each on webasm); each cell owns a 2x2 block of input cells, 36 multiply-adds per channel from the 16 reads.
 * Each sum runs over co in order. Grid [inC, inW/2, M*B*inH/2], Array(4) → [M, B, inH/2, inW/2, inC, 2x2].
 */
export function conv2dGradInputChannelsLast(info: Conv2DInfo, pool: Pool2DInfo): KernelSpec {
  const constants = pooledConstants(info, pool);
  return {
    name: 'conv2d.gradInputChannelsLast',
    fn: function (this: PooledThis, dy: Float32Array, flipped: Float32Array): number[] {
      const mb = Math.floor(this.thread.z / this.constants.blocksH);
      const by = this.thread.z - mb * this.constants.blocksH;
      const m = Math.floor(mb / this.constants.B);
      // one padded row, one column step: channels last
      const row = this.constants.padW * this.constants.outC;
      const col = this.constants.outC;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      for (let co = 0; co < this.constants.outC; co++) {
        const xo = ((mb * this.constants.padH + 2 * by) * this.constants.padW + 2 * this.thread.y) * this.constants.outC + co;
        // uniform across the lanes; each weight read adds this.thread.x last
        const wo = (m * this.constants.outC + co) * 9 * this.constants.inC;
        const w0 = flipped[wo + this.thread.x];
        const w1 = flipped[wo + this.constants.inC + this.thread.x];
        const w2 = flipped[wo + 2 * this.constants.inC + this.thread.x];
        const w3 = flipped[wo + 3 * this.constants.inC + this.thread.x];
        const w4 = flipped[wo + 4 * this.constants.inC + this.thread.x];
        const w5 = flipped[wo + 5 * this.constants.inC + this.thread.x];
        const w6 = flipped[wo + 6 * this.constants.inC + this.thread.x];
        const w7 = flipped[wo + 7 * this.constants.inC + this.thread.x];
        const w8 = flipped[wo + 8 * this.constants.inC + this.thread.x];
        const a0 = dy[xo];
        const a1 = dy[xo + col];
        const a2 = dy[xo + 2 * col];
        const a3 = dy[xo + 3 * col];
        const b0 = dy[xo + row];
        const b1 = dy[xo + row + col];
        const b2 = dy[xo + row + 2 * col];
        const b3 = dy[xo + row + 3 * col];
        const c0 = dy[xo + 2 * row];
        const c1 = dy[xo + 2 * row + col];
        const c2 = dy[xo + 2 * row + 2 * col];
        const c3 = dy[xo + 2 * row + 3 * col];
        const d0 = dy[xo + 3 * row];
        const d1 = dy[xo + 3 * row + col];
        const d2 = dy[xo + 3 * row + 2 * col];
        const d3 = dy[xo + 3 * row + 3 * col];
        s00 += a0 * w0 + a1 * w1 + a2 * w2 + b0 * w3 + b1 * w4 + b2 * w5 + c0 * w6 + c1 * w7 + c2 * w8;
        s01 += a1 * w0 + a2 * w1 + a3 * w2 + b1 * w3 + b2 * w4 + b3 * w5 + c1 * w6 + c2 * w7 + c3 * w8;
        s10 += b0 * w0 + b1 * w1 + b2 * w2 + c0 * w3 + c1 * w4 + c2 * w5 + d0 * w6 + d1 * w7 + d2 * w8;
        s11 += b1 * w0 + b2 * w1 + b3 * w2 + c1 * w3 + c2 * w4 + c3 * w5 + d1 * w6 + d2 * w7 + d3 * w8;
      }
      return [s00, s01, s10, s11];
    },
    returnType: 'Array(4)',
    output: [info.inC, constants.blocksW, info.M * info.B * constants.blocksH],
    constants,
    flops: 2 * info.M * info.B * info.outC * info.inH * info.inW * info.inC * 9,
  };
}

/**
 * The input gradient's blocks → [M, B, inC, inH, inW], through the ReLU of the layer below: dz = dx where that
 * layer's output h > 0, else 0 (`reluBackward`'s rule), in one pass. h [M, B, inC, inH, inW].
 * Grid [inH*inW, M*B*inC].
 */
export function conv2dGradInputReluLayout(info: Conv2DInfo, pool: Pool2DInfo): KernelSpec {
  return {
    name: 'conv2d.gradInputReluLayout',
    fn: function (this: PooledThis, blocks: Float32Array, h: Float32Array): number {
      const mb = Math.floor(this.thread.y / this.constants.inC);
      const ci = this.thread.y - mb * this.constants.inC;
      const y = Math.floor(this.thread.x / this.constants.inW);
      const x = this.thread.x - y * this.constants.inW;
      const by = Math.floor(y / 2);
      const bx = Math.floor(x / 2);
      const v = blocks[(((mb * this.constants.blocksH + by) * this.constants.blocksW + bx) * this.constants.inC + ci) * 4
        + (y - 2 * by) * 2 + x - 2 * bx];
      if (h[this.thread.y * this.constants.inH * this.constants.inW + this.thread.x] > 0) return v;
      return 0;
    },
    output: [info.inH * info.inW, info.M * info.B * info.inC],
    constants: pooledConstants(info, pool),
    flops: 0,
  };
}
