/**
 * conv2d with 3x3 kernels, stride 1, no padding (cross-correlation, as PyTorch), with its weight and bias
 * gradients. Shapes: x [M or shared, B, inC, inH, inW], w [M, outC, inC, K, K], b [M, outC],
 * y / dy [M, B, outC, outH, outW] (y after `conv2dLayoutRelu`: `conv2dForward` writes columns, `convColumns`).
 * The CNN needs no input gradient of conv1, and conv2's backward, through its ReLU and pool, is
 * kernels/conv2d-pool-backward.ts.
 */
import { convColumns, convGradWeightParts, pad4, type Conv2DInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<Conv2DInfo>;

/**
 * y[m,b,co,oy,ox] = b[m,co] + Σ_ci,ky,kx x[m,b,ci,oy+ky,ox+kx] · w[m,co,ci,ky,kx], a column of four outputs per
 * cell with the 3x3 taps written out: per input channel, 18 reads of a 6x3 input patch and 9 weight reads feed 36
 * multiply-adds. The lanes run over output columns, so each input read is four consecutive values (one 128-bit
 * load on webasm, written `U + this.thread.x` for GPU.js to see it), and the weights are the same for all four
 * lanes (measurements: bench/RESULTS.md, "2026-12-01, commits 8f5abbe–6ebf699", "conv2d's forward: a column of
 * four outputs per cell"). Index arithmetic on thread ids stays integer.
 * Grid [rowW, rowBlocks, M*B*outC] (`convColumns`), Array(4): the result is laid out
 * [M, B, outC, rowBlocks, rowW, 4 (rows)]; `conv2dLayoutRelu` turns it into [M, B, outC, outH, outW]. Outputs beyond
 * outW or outH (the padding) read past their row or plane and are dropped by the layout.
 */
export function conv2dForward(info: Conv2DInfo): KernelSpec {
  const { rowW, rowBlocks } = convColumns(info.outH, info.outW);
  return {
    name: 'conv2d.forward',
    fn: function (this: This, x: Float32Array, w: Float32Array, bias: Float32Array): number[] {
      const mb = Math.floor(this.thread.z / this.constants.outC);
      const co = this.thread.z - mb * this.constants.outC;
      const m = Math.floor(mb / this.constants.B);
      const b = mb - m * this.constants.B;
      let s0 = bias[m * this.constants.outC + co];
      let s1 = s0;
      let s2 = s0;
      let s3 = s0;
      for (let ci = 0; ci < this.constants.inC; ci++) {
        // uniform across the lanes; each input read adds this.thread.x last
        const xo = m * this.constants.xModelStride
          + ((b * this.constants.inC + ci) * this.constants.inH + 4 * this.thread.y) * this.constants.inW;
        const wo = ((m * this.constants.outC + co) * this.constants.inC + ci) * 9;
        const w0 = w[wo];
        const w1 = w[wo + 1];
        const w2 = w[wo + 2];
        const w3 = w[wo + 3];
        const w4 = w[wo + 4];
        const w5 = w[wo + 5];
        const w6 = w[wo + 6];
        const w7 = w[wo + 7];
        const w8 = w[wo + 8];
        const a0 = x[xo + this.thread.x];
        const a1 = x[xo + 1 + this.thread.x];
        const a2 = x[xo + 2 + this.thread.x];
        const b0 = x[xo + this.constants.inW + this.thread.x];
        const b1 = x[xo + this.constants.inW + 1 + this.thread.x];
        const b2 = x[xo + this.constants.inW + 2 + this.thread.x];
        const c0 = x[xo + 2 * this.constants.inW + this.thread.x];
        const c1 = x[xo + 2 * this.constants.inW + 1 + this.thread.x];
        const c2 = x[xo + 2 * this.constants.inW + 2 + this.thread.x];
        const d0 = x[xo + 3 * this.constants.inW + this.thread.x];
        const d1 = x[xo + 3 * this.constants.inW + 1 + this.thread.x];
        const d2 = x[xo + 3 * this.constants.inW + 2 + this.thread.x];
        const e0 = x[xo + 4 * this.constants.inW + this.thread.x];
        const e1 = x[xo + 4 * this.constants.inW + 1 + this.thread.x];
        const e2 = x[xo + 4 * this.constants.inW + 2 + this.thread.x];
        const f0 = x[xo + 5 * this.constants.inW + this.thread.x];
        const f1 = x[xo + 5 * this.constants.inW + 1 + this.thread.x];
        const f2 = x[xo + 5 * this.constants.inW + 2 + this.thread.x];
        s0 += a0 * w0 + a1 * w1 + a2 * w2 + b0 * w3 + b1 * w4 + b2 * w5 + c0 * w6 + c1 * w7 + c2 * w8;
        s1 += b0 * w0 + b1 * w1 + b2 * w2 + c0 * w3 + c1 * w4 + c2 * w5 + d0 * w6 + d1 * w7 + d2 * w8;
        s2 += c0 * w0 + c1 * w1 + c2 * w2 + d0 * w3 + d1 * w4 + d2 * w5 + e0 * w6 + e1 * w7 + e2 * w8;
        s3 += d0 * w0 + d1 * w1 + d2 * w2 + e0 * w3 + e1 * w4 + e2 * w5 + f0 * w6 + f1 * w7 + f2 * w8;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [rowW, rowBlocks, info.M * info.B * info.outC],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outC * info.outH * info.outW * info.inC * info.K * info.K,
  };
}

type LayoutThis = KernelThis<Conv2DInfo & { rowW: number; rowBlocks: number }>;

/**
 * [M, B, outC, rowBlocks, rowW, 4] → relu of [M, B, outC, outH, outW]: the layout and the ReLU that follows every conv
 * of the CNN in one pass. Grid [outH*outW, M*B*outC]: one row per plane, so the row is a multiple of 4 wide (676 for
 * conv1) and webasm's threads run it with SIMD.
 */
export function conv2dLayoutRelu(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.layoutRelu',
    fn: function (this: LayoutThis, columns: Float32Array): number {
      const oy = Math.floor(this.thread.x / this.constants.outW);
      const ox = this.thread.x - oy * this.constants.outW;
      const by = Math.floor(oy / 4);
      return Math.max(0, columns[((this.thread.y * this.constants.rowBlocks + by) * this.constants.rowW + ox) * 4 + oy - 4 * by]);
    },
    output: [info.outH * info.outW, info.M * info.B * info.outC],
    constants: { ...info, ...convColumns(info.outH, info.outW) },
    flops: info.M * info.B * info.outC * info.outH * info.outW,
  };
}

/**
 * dw[m,co,ci,ky,kx] = Σ_b,oy,ox dy[m,b,co,oy,ox] · x[m,b,ci,oy+ky,ox+kx]. One cell owns an output column ox and
 * sums over (b, oy) for a column of three taps (ky = 0..2) of one (co, ci, kx); `conv2dGradWeightLayout` then adds
 * the columns. The lanes run over ox, so the gradient and the input are read as four consecutive values (one
 * 128-bit load on webasm, written `U + this.thread.x` for GPU.js to see it), and walking down the rows lets two of
 * the three inputs slide along from the previous row: two loads feed three multiply-adds (measurements:
 * bench/RESULTS.md, "2026-12-01, commits 8f5abbe–6ebf699", "conv2d's weight gradient: lanes over output columns,
 * walking down the rows"). The row is padded to a multiple of 4 (`pad4`) for webasm's SIMD; padding columns read
 * past their row and are dropped by the layout.
 * The sum over the batch is split into `convGradWeightParts` parts of whole samples, so that conv1's small grid
 * runs on both of webasm's worker threads; within a cell each sum runs over (b, oy) in order.
 * Grid [pad4(outW), inC*K, M*parts*outC], Array(3) (K = 3): the result is laid out
 * [M, parts, outC, inC, K (kx), pad4(outW), K (ky)].
 */
export function conv2dGradWeight(info: Conv2DInfo): KernelSpec {
  const parts = convGradWeightParts(info);
  return {
    name: 'conv2d.gradWeight',
    fn: function (this: KernelThis<Conv2DInfo & { parts: number; partB: number }>, dy: Float32Array, x: Float32Array): number[] {
      const mp = Math.floor(this.thread.z / this.constants.outC);
      const co = this.thread.z - mp * this.constants.outC;
      const m = Math.floor(mp / this.constants.parts);
      const part = mp - m * this.constants.parts;
      const ci = Math.floor(this.thread.y / 3);
      const kx = this.thread.y - ci * 3;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      for (let i = 0; i < this.constants.partB; i++) {
        const b = part * this.constants.partB + i;
        // the offsets are uniform across the lanes; each read adds this.thread.x last
        let dyAt = ((m * this.constants.B + b) * this.constants.outC + co) * this.constants.outH * this.constants.outW;
        let xAt = m * this.constants.xModelStride + (b * this.constants.inC + ci) * this.constants.inH * this.constants.inW + kx;
        let x0 = x[xAt + this.thread.x];
        let x1 = x[xAt + this.constants.inW + this.thread.x];
        xAt += 2 * this.constants.inW;
        for (let oy = 0; oy < this.constants.outH; oy++) {
          const g = dy[dyAt + this.thread.x];
          const x2 = x[xAt + this.thread.x];
          s0 += g * x0;
          s1 += g * x1;
          s2 += g * x2;
          x0 = x1;
          x1 = x2;
          dyAt += this.constants.outW;
          xAt += this.constants.inW;
        }
      }
      return [s0, s1, s2];
    },
    returnType: 'Array(3)',
    output: [pad4(info.outW), info.inC * info.K, info.M * parts * info.outC],
    constants: { ...info, parts, partB: info.B / parts },
    flops: 2 * info.M * info.B * info.outC * info.outH * info.outW * info.inC * info.K * info.K,
  };
}

/**
 * [M, parts, outC, inC, K (kx), pad4(outW), K (ky)] → [M, outC, inC, K, K], PyTorch's layout: for each weight the
 * parts added in order, each part's columns in order. Grid [K*K, inC, M*outC].
 */
export function conv2dGradWeightLayout(info: Conv2DInfo): KernelSpec {
  const parts = convGradWeightParts(info);
  return {
    name: 'conv2d.gradWeightLayout',
    fn: function (this: KernelThis<Conv2DInfo & { parts: number; rowW: number }>, columns: Float32Array): number {
      const m = Math.floor(this.thread.z / this.constants.outC);
      const co = this.thread.z - m * this.constants.outC;
      const ky = Math.floor(this.thread.x / 3);
      const kx = this.thread.x - ky * 3;
      let v = 0;
      for (let p = 0; p < this.constants.parts; p++) {
        const at = ((((m * this.constants.parts + p) * this.constants.outC + co) * this.constants.inC + this.thread.y) * 3 + kx) * this.constants.rowW * 3 + ky;
        for (let ox = 0; ox < this.constants.outW; ox++) {
          v += columns[at + ox * 3];
        }
      }
      return v;
    },
    output: [info.K * info.K, info.inC, info.M * info.outC],
    constants: { ...info, parts, rowW: pad4(info.outW) },
    flops: (parts * info.outW - 1) * info.M * info.outC * info.inC * info.K * info.K,
  };
}

/** db[m,co] = Σ_b,oy,ox dy[m,b,co,oy,ox]. Grid [outC, M]. */
export function conv2dGradBias(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.gradBias',
    fn: function (this: This, dy: Float32Array): number {
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        for (let oy = 0; oy < this.constants.outH; oy++) {
          const row = (((this.thread.y * this.constants.B + b) * this.constants.outC + this.thread.x) * this.constants.outH + oy) * this.constants.outW;
          for (let ox = 0; ox < this.constants.outW; ox++) {
            sum += dy[row + ox];
          }
        }
      }
      return sum;
    },
    output: [info.outC, info.M],
    constants: { ...info },
    flops: info.M * info.B * info.outC * info.outH * info.outW,
  };
}
