/**
 * conv2d with 3x3 kernels, stride 1, no padding (cross-correlation, as PyTorch), with its three
 * gradients. Shapes: x [M or shared, B, inC, inH, inW], w [M, outC, inC, K, K], b [M, outC],
 * y / dy [M, B, outC, outH, outW].
 */
import { convGradWeightParts, pad4, type Conv2DInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<Conv2DInfo>;
/** The weight and bias gradients read dy inside a zero border of `dyPad` cells. */
type PaddedThis = KernelThis<Conv2DInfo & { dyPad: number }>;

/**
 * Layout constants of the forward's blocked output: a plane's 2x2 output blocks, `blocksH` rows of `blocksW`,
 * numbered row by row into one grid dimension of `blocks` cells. That count is padded to a multiple of 4
 * because webasm's worker threads run a kernel with SIMD only when its x size is a multiple of 4 (otherwise every
 * cell runs scalar). Numbering a plane's blocks in one dimension pads the plane once (conv1's output and conv2's
 * input gradient: 13 x 13 = 169 blocks, 172 cells) where padding each row of 13 blocks to 16 ran 23% more cells.
 */
function blockGrid(info: Conv2DInfo) {
  const blocksH = Math.ceil(info.outH / 2);
  const blocksW = Math.ceil(info.outW / 2);
  return { blocksH, blocksW, blocks: pad4(blocksH * blocksW) };
}

/**
 * y[m,b,co,oy,ox] = b[m,co] + Σ_ci,ky,kx x[m,b,ci,oy+ky,ox+kx] · w[m,co,ci,ky,kx], a 2x2 block of outputs per
 * cell with the 3x3 taps written out: per input channel, 16 reads of a 4x4 input patch (lane-dependent, the
 * costly kind on webasm) and 9 weight reads feed 36 multiply-adds. Measured against four output channels per
 * cell (9 input and 36 weight reads per 36 multiply-adds), with bit-identical results, on webasm at B = 64:
 * 1.15–1.25x on conv2's forward and 1.40–1.59x on its input gradient (bench/RESULTS.md). Index arithmetic on
 * thread ids stays integer.
 * Grid [blocks, M*B*outC] (`blockGrid`), Array(4): the result is laid out [M, B, outC, blocks, (dy, dx)], the
 * blocks row by row; `conv2dLayout` turns it into [M, B, outC, outH, outW]. Outputs beyond outW or outH (an odd
 * size, the padding cells) read past their row or plane and are dropped by the layout.
 */
export function conv2dForward(info: Conv2DInfo): KernelSpec {
  const { blocks, blocksW } = blockGrid(info);
  return {
    name: 'conv2d.forward',
    fn: function (this: KernelThis<Conv2DInfo & { blocksW: number }>, x: Float32Array, w: Float32Array, bias: Float32Array): number[] {
      const mb = Math.floor(this.thread.y / this.constants.outC);
      const co = this.thread.y - mb * this.constants.outC;
      const m = Math.floor(mb / this.constants.B);
      const b = mb - m * this.constants.B;
      const by = Math.floor(this.thread.x / this.constants.blocksW);
      const bx = this.thread.x - by * this.constants.blocksW;
      let s00 = bias[m * this.constants.outC + co];
      let s01 = s00;
      let s10 = s00;
      let s11 = s00;
      for (let ci = 0; ci < this.constants.inC; ci++) {
        const xo = m * this.constants.xModelStride
          + ((b * this.constants.inC + ci) * this.constants.inH + 2 * by) * this.constants.inW + 2 * bx;
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
        const a0 = x[xo];
        const a1 = x[xo + 1];
        const a2 = x[xo + 2];
        const a3 = x[xo + 3];
        const b0 = x[xo + this.constants.inW];
        const b1 = x[xo + this.constants.inW + 1];
        const b2 = x[xo + this.constants.inW + 2];
        const b3 = x[xo + this.constants.inW + 3];
        const c0 = x[xo + 2 * this.constants.inW];
        const c1 = x[xo + 2 * this.constants.inW + 1];
        const c2 = x[xo + 2 * this.constants.inW + 2];
        const c3 = x[xo + 2 * this.constants.inW + 3];
        const d0 = x[xo + 3 * this.constants.inW];
        const d1 = x[xo + 3 * this.constants.inW + 1];
        const d2 = x[xo + 3 * this.constants.inW + 2];
        const d3 = x[xo + 3 * this.constants.inW + 3];
        s00 += a0 * w0 + a1 * w1 + a2 * w2 + b0 * w3 + b1 * w4 + b2 * w5 + c0 * w6 + c1 * w7 + c2 * w8;
        s01 += a1 * w0 + a2 * w1 + a3 * w2 + b1 * w3 + b2 * w4 + b3 * w5 + c1 * w6 + c2 * w7 + c3 * w8;
        s10 += b0 * w0 + b1 * w1 + b2 * w2 + c0 * w3 + c1 * w4 + c2 * w5 + d0 * w6 + d1 * w7 + d2 * w8;
        s11 += b1 * w0 + b2 * w1 + b3 * w2 + c1 * w3 + c2 * w4 + c3 * w5 + d1 * w6 + d2 * w7 + d3 * w8;
      }
      return [s00, s01, s10, s11];
    },
    returnType: 'Array(4)',
    output: [blocks, info.M * info.B * info.outC],
    constants: { ...info, blocksW },
    flops: 2 * info.M * info.B * info.outC * info.outH * info.outW * info.inC * info.K * info.K,
  };
}

/**
 * [M, B, outC, blocks, 4] → [M, B, outC, outH, outW]. Grid [outH*outW, M*B*outC]: one row per plane,
 * so the row is a multiple of 4 wide (676 for conv1) and webasm's threads run it with SIMD.
 */
export function conv2dLayout(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.layout',
    fn: function (this: KernelThis<Conv2DInfo & { blocks: number; blocksW: number }>, blocked: Float32Array): number {
      const oy = Math.floor(this.thread.x / this.constants.outW);
      const ox = this.thread.x - oy * this.constants.outW;
      const by = Math.floor(oy / 2);
      const bx = Math.floor(ox / 2);
      return blocked[(this.thread.y * this.constants.blocks + by * this.constants.blocksW + bx) * 4 + (oy - 2 * by) * 2 + ox - 2 * bx];
    },
    output: [info.outH * info.outW, info.M * info.B * info.outC],
    constants: { ...info, ...blockGrid(info) },
    flops: 0,
  };
}

/** `conv2dLayout` with the ReLU that follows every conv of the CNN fused in: one pass instead of two. */
export function conv2dLayoutRelu(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.layoutRelu',
    fn: function (this: KernelThis<Conv2DInfo & { blocks: number; blocksW: number }>, blocked: Float32Array): number {
      const oy = Math.floor(this.thread.x / this.constants.outW);
      const ox = this.thread.x - oy * this.constants.outW;
      const by = Math.floor(oy / 2);
      const bx = Math.floor(ox / 2);
      return Math.max(0, blocked[(this.thread.y * this.constants.blocks + by * this.constants.blocksW + bx) * 4 + (oy - 2 * by) * 2 + ox - 2 * bx]);
    },
    output: [info.outH * info.outW, info.M * info.B * info.outC],
    constants: { ...info, ...blockGrid(info) },
    flops: info.M * info.B * info.outC * info.outH * info.outW,
  };
}

/**
 * The input gradient is itself a convolution: dx = conv2d(pad(dy, K-1), flip(wᵀ)), where flip(wᵀ)[m,ci,co,ky,kx] =
 * w[m,co,ci,K-1-ky,K-1-kx]. Expressing it so (as TF.js does) reuses the forward kernel, branch-free, instead of
 * a loop that tests every tap against dy's borders. The padded dy is written directly by the pass that computes
 * it (`maxPool2dReluBackward` with pad K-1: in this CNN a conv's output gradient comes through ReLU and pool),
 * `conv2dFlipWeights` prepares the weights, and `conv2dForward(conv2dGradInputInfo(info))` (+ `conv2dLayout`)
 * convolves them.
 */
export function conv2dGradInputInfo(info: Conv2DInfo): Conv2DInfo {
  const pad = 2 * (info.K - 1);
  return {
    M: info.M, B: info.B, inC: info.outC, inH: info.outH + pad, inW: info.outW + pad,
    outC: info.inC, K: info.K, outH: info.inH, outW: info.inW, xModelStride: info.B * info.outC * (info.outH + pad) * (info.outW + pad),
  };
}

/** flip(wᵀ)[m,ci,co,ky,kx] = w[m,co,ci,K-1-ky,K-1-kx]. Grid [K*K, outC, M*inC]. */
export function conv2dFlipWeights(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.flipWeights',
    fn: function (this: This, w: Float32Array): number {
      const ci = this.thread.z % this.constants.inC;
      const m = Math.floor(this.thread.z / this.constants.inC);
      const kk = this.constants.K * this.constants.K - 1 - this.thread.x;
      return w[((m * this.constants.outC + this.thread.y) * this.constants.inC + ci) * this.constants.K * this.constants.K + kk];
    },
    output: [info.K * info.K, info.outC, info.M * info.inC],
    constants: { ...info },
    flops: 0,
  };
}

/**
 * dw[m,co,ci,ky,kx] = Σ_b,oy,ox dy[m,b,co,oy,ox] · x[m,b,ci,oy+ky,ox+kx]. One cell owns an output column ox and
 * sums over (b, oy) for a column of three taps (ky = 0..2) of one (co, ci, kx); `conv2dGradWeightLayout` then adds
 * the columns. The lanes run over ox, so the gradient and the input are read as four consecutive values (one
 * 128-bit load on webasm, written `U + this.thread.x` for GPU.js to see it), and walking down the rows lets two of
 * the three inputs slide along from the previous row: two loads feed three multiply-adds. Measured on conv2 at
 * B = 64 against lanes over output channels (a four-plane gather of the gradient per step): 1.5x
 * (bench/RESULTS.md). The row is padded to a multiple of 4 (`pad4`) for webasm's SIMD; padding columns read
 * past their row and are dropped by the layout. dy may carry a zero border of `dyPad` cells (the input
 * gradient's padding, `maxPool2dReluBackward`), which is skipped.
 * The sum over the batch is split into `convGradWeightParts` parts of whole samples, so that conv1's small grid
 * runs on both of webasm's worker threads; within a cell each sum runs over (b, oy) in order.
 * Grid [pad4(outW), inC*K, M*parts*outC], Array(3) (K = 3): the result is laid out
 * [M, parts, outC, inC, K (kx), pad4(outW), K (ky)].
 */
export function conv2dGradWeight(info: Conv2DInfo, dyPad = 0): KernelSpec {
  const parts = convGradWeightParts(info);
  return {
    name: 'conv2d.gradWeight',
    fn: function (this: KernelThis<Conv2DInfo & { dyPad: number; parts: number; partB: number }>, dy: Float32Array, x: Float32Array): number[] {
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
        let dyAt = (((m * this.constants.B + b) * this.constants.outC + co) * (this.constants.outH + 2 * this.constants.dyPad)
          + this.constants.dyPad) * (this.constants.outW + 2 * this.constants.dyPad) + this.constants.dyPad;
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
          dyAt += this.constants.outW + 2 * this.constants.dyPad;
          xAt += this.constants.inW;
        }
      }
      return [s0, s1, s2];
    },
    returnType: 'Array(3)',
    output: [pad4(info.outW), info.inC * info.K, info.M * parts * info.outC],
    constants: { ...info, dyPad, parts, partB: info.B / parts },
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

/** db[m,co] = Σ_b,oy,ox dy[m,b,co,oy,ox], dy inside a zero border of `dyPad` cells. Grid [outC, M]. */
export function conv2dGradBias(info: Conv2DInfo, dyPad = 0): KernelSpec {
  return {
    name: 'conv2d.gradBias',
    fn: function (this: PaddedThis, dy: Float32Array): number {
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        for (let oy = 0; oy < this.constants.outH; oy++) {
          const row = (((this.thread.y * this.constants.B + b) * this.constants.outC + this.thread.x) * (this.constants.outH + 2 * this.constants.dyPad)
            + oy + this.constants.dyPad) * (this.constants.outW + 2 * this.constants.dyPad) + this.constants.dyPad;
          for (let ox = 0; ox < this.constants.outW; ox++) {
            sum += dy[row + ox];
          }
        }
      }
      return sum;
    },
    output: [info.outC, info.M],
    constants: { ...info, dyPad },
    flops: info.M * info.B * info.outC * info.outH * info.outW,
  };
}
