/**
 * The inference forward as five fused kernels and a transpose (`transposePlanes`, kernels/layout.ts), with the
 * weights resident:
 *
 *   conv1 + bias + ReLU (channels last) → conv2 + bias + ReLU + 2x2 max-pool (channels last) → channels first
 *   → fc1 (four partial sums per output) → + bias + ReLU → fc2 + bias + log_softmax
 *
 * Weights and biases are `constants`, which a backend uploads once when it builds the kernel (webgpu: storage
 * buffers; webasm: its wasm memory; GL: textures) and never per call. Dropout is the identity at inference, so it
 * has no kernel here; training uses the per-layer kernels of the other files.
 *
 * The chain runs as one `gpu.createPipeline` plan. Where a plan's step may hand cells of several values to the next
 * step (`Device.planVectorCells`: webasm with the gpu.js patch, and the cpu), conv2 computes four output channels a cell
 * (`conv2dBiasReluPoolQuadResident`) and, at batches that are a multiple of 4, fc1 four images a cell
 * (`linearPartialsQuadResident`), so that each read serves more multiply-adds; both give the same values in the
 * same order as their one-value forms, which the GL backends and webgpu run.
 *
 * Parameter layouts are PyTorch's, stacked over M models, so the constants are the model's own arrays (views, no
 * copy on the host), except the two convolutions' weights: their kernels' lanes run over output channels, so each
 * takes a copy laid out channels last (`outChannelsLast`, 1.2 KB and 74 KB a model). fc1 reads its weight in
 * PyTorch's layout too: its adjacent cells read adjacent weights by splitting each row's sum four ways
 * (`linearPartialsResident`), so no transposed copy of its 4.7 MB is needed.
 */
import { fours, type Conv2DInfo, type LinearInfo, type Pool2DInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type ConvThis = KernelThis<Conv2DInfo & { weight: Float32Array; bias: Float32Array }>;
type PoolThis = KernelThis<Conv2DInfo & { poolW: number; weight: Float32Array; bias: Float32Array }>;
type LinearThis = KernelThis<LinearInfo & { weight: Float32Array; bias: Float32Array }>;

/** Weights given to a fused kernel: [M, ...] stacked, uploaded with the kernel. */
export interface ResidentParams { weight: Float32Array; bias: Float32Array }

/**
 * relu(b[m,co] + Σ_ci,ky,kx x[m,b,ci,oy+ky,ox+kx] · w[m,co,ci,ky,kx]), taps written out, written channels last for
 * `conv2dBiasReluPoolResident`. The SIMD lanes run over output channels, as in that kernel: the 9 input reads of a
 * channel are the same in every lane (one load each) and the 9 weight reads are four consecutive weights of the
 * channels-last copy (`outChannelsLast`; one 128-bit load each on webasm). Lanes over output positions instead
 * gathered every input read from a row 26 wide (measurements: bench/RESULTS.md, "2026-12-06").
 * Grid [outC, outH*outW, M*B] → [M, B, outH*outW, outC]. x is channels first (conv1's is the image).
 */
export function conv2dBiasReluResident(info: Conv2DInfo, p: ResidentParams): KernelSpec {
  return {
    name: 'fused.conv2dBiasRelu',
    fn: function (this: ConvThis, x: Float32Array): number {
      const m = Math.floor(this.thread.z / this.constants.B);
      const b = this.thread.z - m * this.constants.B;
      const oy = Math.floor(this.thread.y / this.constants.outW);
      const ox = this.thread.y - oy * this.constants.outW;
      let sum = this.constants.bias[m * this.constants.outC + this.thread.x];
      for (let ci = 0; ci < this.constants.inC; ci++) {
        const xo = m * this.constants.xModelStride
          + ((b * this.constants.inC + ci) * this.constants.inH + oy) * this.constants.inW + ox;
        // uniform across the lanes; each weight read adds this.thread.x last
        const wo = (m * this.constants.inC + ci) * 9 * this.constants.outC;
        sum += x[xo] * this.constants.weight[wo + this.thread.x]
          + x[xo + 1] * this.constants.weight[wo + this.constants.outC + this.thread.x]
          + x[xo + 2] * this.constants.weight[wo + 2 * this.constants.outC + this.thread.x]
          + x[xo + this.constants.inW] * this.constants.weight[wo + 3 * this.constants.outC + this.thread.x]
          + x[xo + this.constants.inW + 1] * this.constants.weight[wo + 4 * this.constants.outC + this.thread.x]
          + x[xo + this.constants.inW + 2] * this.constants.weight[wo + 5 * this.constants.outC + this.thread.x]
          + x[xo + 2 * this.constants.inW] * this.constants.weight[wo + 6 * this.constants.outC + this.thread.x]
          + x[xo + 2 * this.constants.inW + 1] * this.constants.weight[wo + 7 * this.constants.outC + this.thread.x]
          + x[xo + 2 * this.constants.inW + 2] * this.constants.weight[wo + 8 * this.constants.outC + this.thread.x];
      }
      return Math.max(sum, 0);
    },
    output: [info.outC, info.outH * info.outW, info.M * info.B],
    constants: { ...info, weight: outChannelsLast(p.weight, info), bias: p.bias },
    flops: 2 * info.M * info.B * info.outC * info.outH * info.outW * info.inC * 9,
  };
}

/**
 * w [M, outC, inC, K, K] (PyTorch's) → [M, inC, K*K, outC]: one tap's weights for the output channels side by side,
 * in the order a kernel's SIMD lanes (x) read them. One channel a cell (`perCell` 1): channel co at co. Four
 * channels a cell (4), cell x computing channels 4x … 4x+3: channel 4x+k at k·outC/4 + x, so that lanes x … x+3
 * still read four consecutive weights.
 */
export function outChannelsLast(w: Float32Array, info: Conv2DInfo, perCell: 1 | 4 = 1): Float32Array {
  const taps = info.K * info.K;
  const expected = info.M * info.outC * info.inC * taps;
  if (w.length !== expected) throw new Error(`conv2d weight: ${w.length} values, expected ${expected} (M·outC·inC·K·K)`);
  const cells = info.outC / perCell;
  const out = new Float32Array(w.length);
  for (let m = 0; m < info.M; m++) {
    for (let co = 0; co < info.outC; co++) {
      const slot = (co % perCell) * cells + Math.floor(co / perCell);
      for (let ci = 0; ci < info.inC; ci++) {
        for (let t = 0; t < taps; t++) {
          out[((m * info.inC + ci) * taps + t) * info.outC + slot] = w[((m * info.outC + co) * info.inC + ci) * taps + t];
        }
      }
    }
  }
  return out;
}

/**
 * max_pool2d(relu(conv2d(x) + b), 2), x channels last [M, B, inH*inW, inC] (as `conv2dBiasReluResident` writes
 * it): each cell computes the four convolution outputs under its pooling window
 * from one 4x4 input patch per input channel (16 reads shared by 36 multiply-adds), then takes
 * max(0, max of the four + bias): ReLU and the shared bias commute with the max. The SIMD lanes run over output
 * channels, so the 16 input reads are the same in every lane (one load each) and the 9 weight reads are four
 * consecutive weights of the channels-last copy (one 128-bit load each on webasm), instead of four gathers at
 * stride 2 had the lanes run over pooled columns (measurements: bench/RESULTS.md, "2026-12-01, commits
 * 84b4512–87277a0", "Serving: conv2's SIMD lanes over output channels").
 * Grid [outC, poolH*poolW, M*B] → [M, B, poolH*poolW, outC], channels last: `transposePlanes` turns it into
 * PyTorch's [M, B, outC, poolH, poolW] for fc1. The weight is given in PyTorch's layout; the spec holds a
 * channels-last copy made on the host, which GPU.js uploads with the other constants.
 */
export function conv2dBiasReluPoolResident(info: Conv2DInfo, pool: Pool2DInfo, p: ResidentParams): KernelSpec {
  return {
    name: 'fused.conv2dBiasReluPool',
    fn: function (this: PoolThis, x: Float32Array): number {
      const m = Math.floor(this.thread.z / this.constants.B);
      const b = this.thread.z - m * this.constants.B;
      const py = Math.floor(this.thread.y / this.constants.poolW);
      const px = this.thread.y - py * this.constants.poolW;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      // one input row, one column step: channels last
      const row = this.constants.inW * this.constants.inC;
      const col = this.constants.inC;
      for (let ci = 0; ci < this.constants.inC; ci++) {
        const xo = m * this.constants.xModelStride
          + ((b * this.constants.inH + 2 * py) * this.constants.inW + 2 * px) * this.constants.inC + ci;
        // uniform across the lanes; each weight read adds this.thread.x last
        const wo = (m * this.constants.inC + ci) * 9 * this.constants.outC;
        const w0 = this.constants.weight[wo + this.thread.x];
        const w1 = this.constants.weight[wo + this.constants.outC + this.thread.x];
        const w2 = this.constants.weight[wo + 2 * this.constants.outC + this.thread.x];
        const w3 = this.constants.weight[wo + 3 * this.constants.outC + this.thread.x];
        const w4 = this.constants.weight[wo + 4 * this.constants.outC + this.thread.x];
        const w5 = this.constants.weight[wo + 5 * this.constants.outC + this.thread.x];
        const w6 = this.constants.weight[wo + 6 * this.constants.outC + this.thread.x];
        const w7 = this.constants.weight[wo + 7 * this.constants.outC + this.thread.x];
        const w8 = this.constants.weight[wo + 8 * this.constants.outC + this.thread.x];
        const a0 = x[xo];
        const a1 = x[xo + col];
        const a2 = x[xo + 2 * col];
        const a3 = x[xo + 3 * col];
        const b0 = x[xo + row];
        const b1 = x[xo + row + col];
        const b2 = x[xo + row + 2 * col];
        const b3 = x[xo + row + 3 * col];
        const c0 = x[xo + 2 * row];
        const c1 = x[xo + 2 * row + col];
        const c2 = x[xo + 2 * row + 2 * col];
        const c3 = x[xo + 2 * row + 3 * col];
        const d0 = x[xo + 3 * row];
        const d1 = x[xo + 3 * row + col];
        const d2 = x[xo + 3 * row + 2 * col];
        const d3 = x[xo + 3 * row + 3 * col];
        s00 += a0 * w0 + a1 * w1 + a2 * w2 + b0 * w3 + b1 * w4 + b2 * w5 + c0 * w6 + c1 * w7 + c2 * w8;
        s01 += a1 * w0 + a2 * w1 + a3 * w2 + b1 * w3 + b2 * w4 + b3 * w5 + c1 * w6 + c2 * w7 + c3 * w8;
        s10 += b0 * w0 + b1 * w1 + b2 * w2 + c0 * w3 + c1 * w4 + c2 * w5 + d0 * w6 + d1 * w7 + d2 * w8;
        s11 += b1 * w0 + b2 * w1 + b3 * w2 + c1 * w3 + c2 * w4 + c3 * w5 + d1 * w6 + d2 * w7 + d3 * w8;
      }
      const top = Math.max(Math.max(s00, s01), Math.max(s10, s11));
      return Math.max(top + this.constants.bias[m * this.constants.outC + this.thread.x], 0);
    },
    output: [info.outC, pool.outH * pool.outW, info.M * info.B],
    constants: { ...info, poolW: pool.outW, weight: outChannelsLast(p.weight, info), bias: p.bias },
    flops: 2 * info.M * info.B * info.outC * 4 * pool.outH * pool.outW * info.inC * 9,
  };
}

/**
 * The same pooled convolution as `conv2dBiasReluPoolResident`, four output channels per cell: cell x computes
 * channels 4x … 4x+3 (`Array(4)`), so each of its 16 input reads serves 144 multiply-adds instead of 36. Its
 * four values lie side by side in the result, which is therefore the same [M, B, poolH*poolW, outC] array, read by
 * the same transpose. Its weight copy (`outChannelsLast`, four channels a cell) puts channel 4x+k of a tap at
 * k·outC/4 + x, so the lanes (x) still read four consecutive weights: one 128-bit load each on webasm.
 * Only where a plan step may pass vector cells to the next (`Device.planVectorCells`: webasm with the patch, the
 * cpu's stepwise plan); the GL backends keep one value per cell. Needs outC a multiple of 4.
 * Grid [outC/4, poolH*poolW, M*B], 4 values a cell.
 */
export function conv2dBiasReluPoolQuadResident(info: Conv2DInfo, pool: Pool2DInfo, p: ResidentParams): KernelSpec {
  if (info.outC % 4 !== 0) throw new RangeError(`conv2dBiasReluPoolQuadResident: ${info.outC} output channels, not a multiple of 4`);
  return {
    name: 'fused.conv2dBiasReluPoolQuad',
    fn: function (this: PoolThis & KernelThis<{ quarter: number }>, x: Float32Array): number[] {
      const m = Math.floor(this.thread.z / this.constants.B);
      const b = this.thread.z - m * this.constants.B;
      const py = Math.floor(this.thread.y / this.constants.poolW);
      const px = this.thread.y - py * this.constants.poolW;
      // s<channel k><row><column> of the 2x2 window
      let s000 = 0, s001 = 0, s010 = 0, s011 = 0;
      let s100 = 0, s101 = 0, s110 = 0, s111 = 0;
      let s200 = 0, s201 = 0, s210 = 0, s211 = 0;
      let s300 = 0, s301 = 0, s310 = 0, s311 = 0;
      const row = this.constants.inW * this.constants.inC;
      const col = this.constants.inC;
      // weight of tap t, channel 4x+k: wo + t·tap + k·q + x; each read adds this.thread.x last (a local that held
      // it made every read a gather: 2x slower)
      const tap = this.constants.outC;
      const q = this.constants.quarter;
      for (let ci = 0; ci < this.constants.inC; ci++) {
        const xo = m * this.constants.xModelStride
          + ((b * this.constants.inH + 2 * py) * this.constants.inW + 2 * px) * this.constants.inC + ci;
        const wo = (m * this.constants.inC + ci) * 9 * this.constants.outC;
        const a0 = x[xo];
        const a1 = x[xo + col];
        const a2 = x[xo + 2 * col];
        const a3 = x[xo + 3 * col];
        const b0 = x[xo + row];
        const b1 = x[xo + row + col];
        const b2 = x[xo + row + 2 * col];
        const b3 = x[xo + row + 3 * col];
        const c0 = x[xo + 2 * row];
        const c1 = x[xo + 2 * row + col];
        const c2 = x[xo + 2 * row + 2 * col];
        const c3 = x[xo + 2 * row + 3 * col];
        const d0 = x[xo + 3 * row];
        const d1 = x[xo + 3 * row + col];
        const d2 = x[xo + 3 * row + 2 * col];
        const d3 = x[xo + 3 * row + 3 * col];
        const w00 = this.constants.weight[wo + this.thread.x];
        const w01 = this.constants.weight[wo + tap + this.thread.x];
        const w02 = this.constants.weight[wo + 2 * tap + this.thread.x];
        const w03 = this.constants.weight[wo + 3 * tap + this.thread.x];
        const w04 = this.constants.weight[wo + 4 * tap + this.thread.x];
        const w05 = this.constants.weight[wo + 5 * tap + this.thread.x];
        const w06 = this.constants.weight[wo + 6 * tap + this.thread.x];
        const w07 = this.constants.weight[wo + 7 * tap + this.thread.x];
        const w08 = this.constants.weight[wo + 8 * tap + this.thread.x];
        s000 += a0 * w00 + a1 * w01 + a2 * w02 + b0 * w03 + b1 * w04 + b2 * w05 + c0 * w06 + c1 * w07 + c2 * w08;
        s001 += a1 * w00 + a2 * w01 + a3 * w02 + b1 * w03 + b2 * w04 + b3 * w05 + c1 * w06 + c2 * w07 + c3 * w08;
        s010 += b0 * w00 + b1 * w01 + b2 * w02 + c0 * w03 + c1 * w04 + c2 * w05 + d0 * w06 + d1 * w07 + d2 * w08;
        s011 += b1 * w00 + b2 * w01 + b3 * w02 + c1 * w03 + c2 * w04 + c3 * w05 + d1 * w06 + d2 * w07 + d3 * w08;
        const w10 = this.constants.weight[wo + q + this.thread.x];
        const w11 = this.constants.weight[wo + tap + q + this.thread.x];
        const w12 = this.constants.weight[wo + 2 * tap + q + this.thread.x];
        const w13 = this.constants.weight[wo + 3 * tap + q + this.thread.x];
        const w14 = this.constants.weight[wo + 4 * tap + q + this.thread.x];
        const w15 = this.constants.weight[wo + 5 * tap + q + this.thread.x];
        const w16 = this.constants.weight[wo + 6 * tap + q + this.thread.x];
        const w17 = this.constants.weight[wo + 7 * tap + q + this.thread.x];
        const w18 = this.constants.weight[wo + 8 * tap + q + this.thread.x];
        s100 += a0 * w10 + a1 * w11 + a2 * w12 + b0 * w13 + b1 * w14 + b2 * w15 + c0 * w16 + c1 * w17 + c2 * w18;
        s101 += a1 * w10 + a2 * w11 + a3 * w12 + b1 * w13 + b2 * w14 + b3 * w15 + c1 * w16 + c2 * w17 + c3 * w18;
        s110 += b0 * w10 + b1 * w11 + b2 * w12 + c0 * w13 + c1 * w14 + c2 * w15 + d0 * w16 + d1 * w17 + d2 * w18;
        s111 += b1 * w10 + b2 * w11 + b3 * w12 + c1 * w13 + c2 * w14 + c3 * w15 + d1 * w16 + d2 * w17 + d3 * w18;
        const w20 = this.constants.weight[wo + 2 * q + this.thread.x];
        const w21 = this.constants.weight[wo + tap + 2 * q + this.thread.x];
        const w22 = this.constants.weight[wo + 2 * tap + 2 * q + this.thread.x];
        const w23 = this.constants.weight[wo + 3 * tap + 2 * q + this.thread.x];
        const w24 = this.constants.weight[wo + 4 * tap + 2 * q + this.thread.x];
        const w25 = this.constants.weight[wo + 5 * tap + 2 * q + this.thread.x];
        const w26 = this.constants.weight[wo + 6 * tap + 2 * q + this.thread.x];
        const w27 = this.constants.weight[wo + 7 * tap + 2 * q + this.thread.x];
        const w28 = this.constants.weight[wo + 8 * tap + 2 * q + this.thread.x];
        s200 += a0 * w20 + a1 * w21 + a2 * w22 + b0 * w23 + b1 * w24 + b2 * w25 + c0 * w26 + c1 * w27 + c2 * w28;
        s201 += a1 * w20 + a2 * w21 + a3 * w22 + b1 * w23 + b2 * w24 + b3 * w25 + c1 * w26 + c2 * w27 + c3 * w28;
        s210 += b0 * w20 + b1 * w21 + b2 * w22 + c0 * w23 + c1 * w24 + c2 * w25 + d0 * w26 + d1 * w27 + d2 * w28;
        s211 += b1 * w20 + b2 * w21 + b3 * w22 + c1 * w23 + c2 * w24 + c3 * w25 + d1 * w26 + d2 * w27 + d3 * w28;
        const w30 = this.constants.weight[wo + 3 * q + this.thread.x];
        const w31 = this.constants.weight[wo + tap + 3 * q + this.thread.x];
        const w32 = this.constants.weight[wo + 2 * tap + 3 * q + this.thread.x];
        const w33 = this.constants.weight[wo + 3 * tap + 3 * q + this.thread.x];
        const w34 = this.constants.weight[wo + 4 * tap + 3 * q + this.thread.x];
        const w35 = this.constants.weight[wo + 5 * tap + 3 * q + this.thread.x];
        const w36 = this.constants.weight[wo + 6 * tap + 3 * q + this.thread.x];
        const w37 = this.constants.weight[wo + 7 * tap + 3 * q + this.thread.x];
        const w38 = this.constants.weight[wo + 8 * tap + 3 * q + this.thread.x];
        s300 += a0 * w30 + a1 * w31 + a2 * w32 + b0 * w33 + b1 * w34 + b2 * w35 + c0 * w36 + c1 * w37 + c2 * w38;
        s301 += a1 * w30 + a2 * w31 + a3 * w32 + b1 * w33 + b2 * w34 + b3 * w35 + c1 * w36 + c2 * w37 + c3 * w38;
        s310 += b0 * w30 + b1 * w31 + b2 * w32 + c0 * w33 + c1 * w34 + c2 * w35 + d0 * w36 + d1 * w37 + d2 * w38;
        s311 += b1 * w30 + b2 * w31 + b3 * w32 + c1 * w33 + c2 * w34 + c3 * w35 + d1 * w36 + d2 * w37 + d3 * w38;
      }
      const bo = m * this.constants.outC + 4 * this.thread.x;
      return [
        Math.max(Math.max(Math.max(s000, s001), Math.max(s010, s011)) + this.constants.bias[bo], 0),
        Math.max(Math.max(Math.max(s100, s101), Math.max(s110, s111)) + this.constants.bias[bo + 1], 0),
        Math.max(Math.max(Math.max(s200, s201), Math.max(s210, s211)) + this.constants.bias[bo + 2], 0),
        Math.max(Math.max(Math.max(s300, s301), Math.max(s310, s311)) + this.constants.bias[bo + 3], 0),
      ];
    },
    returnType: 'Array(4)',
    output: [info.outC / 4, pool.outH * pool.outW, info.M * info.B],
    constants: { ...info, poolW: pool.outW, quarter: info.outC / 4, weight: outChannelsLast(p.weight, info, 4), bias: p.bias },
    flops: 2 * info.M * info.B * info.outC * 4 * pool.outH * pool.outW * info.inC * 9,
  };
}

/**
 * fc1 in two steps, because at B = 1 every weight is read once per request and model: no cell can share a weight
 * read with another. So the lanes read consecutive weights instead: the 4 cells of a row split the sum over k by
 * k mod 4, cell p summing k = p, p+4, p+8, … (the tail of an inF not a multiple of 4 included), and both its reads,
 * `x[… + j + thread.x]` and `weight[… + j + thread.x]`, are four consecutive elements, one vector load each on
 * webasm (patches/: stock gpu.js gathers them one by one). In the whole threaded plan the step is bound by
 * streaming the weights from memory (measurements: bench/RESULTS.md, "2026-12-01, commits 704ffd5–88655d3",
 * "Contiguous loads (patches/) and fc1's serving kernel").
 * Grid [4, outF, M*B] → partial sums [M, B, outF, 4]; `linearPartialsBiasRelu` adds them.
 */
export function linearPartialsResident(info: LinearInfo, weight: Float32Array): KernelSpec {
  return {
    name: 'fused.linearPartials',
    fn: function (this: KernelThis<LinearInfo & { inF4: number; weight: Float32Array }>, x: Float32Array): number {
      const m = Math.floor(this.thread.z / this.constants.B);
      const b = this.thread.z - m * this.constants.B;
      const xo = m * this.constants.xModelStride + b * this.constants.inF;
      const wo = (m * this.constants.outF + this.thread.y) * this.constants.inF;
      let sum = 0;
      for (let j = 0; j < this.constants.inF4; j += 4) {
        sum += x[xo + j + this.thread.x] * this.constants.weight[wo + j + this.thread.x];
      }
      if (this.thread.x < this.constants.inF - this.constants.inF4) {
        sum += x[xo + this.constants.inF4 + this.thread.x] * this.constants.weight[wo + this.constants.inF4 + this.thread.x];
      }
      return sum;
    },
    output: [4, info.outF, info.M * info.B],
    constants: { ...info, inF4: fours(info.inF), weight },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/**
 * `linearPartialsResident` for four images a cell, where B is a multiple of 4 and a plan step may pass vector cells
 * on (`Device.planVectorCells`): each weight read (one 128-bit load on webasm) serves four images' sums instead of one,
 * so the 4.7 MB weight of a model is streamed B/4 times instead of B times. Cell (p, o, m·B/4 + q) returns the
 * partial sums p of images 4q … 4q+3, side by side: [M, B/4, outF, 4 partials, 4 images], which
 * `linearPartialsBiasRelu` reads with `imagesPerCell` 4. Same sums in the same order as `linearPartialsResident`.
 * Grid [4, outF, M*B/4], 4 values a cell.
 */
export function linearPartialsQuadResident(info: LinearInfo, weight: Float32Array): KernelSpec {
  if (info.B % 4 !== 0) throw new RangeError(`linearPartialsQuadResident: batch ${info.B}, not a multiple of 4`);
  return {
    name: 'fused.linearPartialsQuad',
    fn: function (this: KernelThis<LinearInfo & { inF4: number; groups: number; weight: Float32Array }>, x: Float32Array): number[] {
      const m = Math.floor(this.thread.z / this.constants.groups);
      const q = this.thread.z - m * this.constants.groups;
      const xo = m * this.constants.xModelStride + 4 * q * this.constants.inF;
      const wo = (m * this.constants.outF + this.thread.y) * this.constants.inF;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let j = 0; j < this.constants.inF4; j += 4) {
        const w = this.constants.weight[wo + j + this.thread.x];
        s0 += x[xo + j + this.thread.x] * w;
        s1 += x[xo + this.constants.inF + j + this.thread.x] * w;
        s2 += x[xo + 2 * this.constants.inF + j + this.thread.x] * w;
        s3 += x[xo + 3 * this.constants.inF + j + this.thread.x] * w;
      }
      if (this.thread.x < this.constants.inF - this.constants.inF4) {
        const w = this.constants.weight[wo + this.constants.inF4 + this.thread.x];
        s0 += x[xo + this.constants.inF4 + this.thread.x] * w;
        s1 += x[xo + this.constants.inF + this.constants.inF4 + this.thread.x] * w;
        s2 += x[xo + 2 * this.constants.inF + this.constants.inF4 + this.thread.x] * w;
        s3 += x[xo + 3 * this.constants.inF + this.constants.inF4 + this.thread.x] * w;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [4, info.outF, (info.M * info.B) / 4],
    // groups: cells of four images per model
    constants: { ...info, inF4: fours(info.inF), groups: info.B / 4, weight },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/**
 * relu(b[m,o] + the four partial sums of `linearPartialsResident` (`imagesPerCell` 1) or of
 * `linearPartialsQuadResident` (4), added in order). Grid [outF, B, M].
 */
export function linearPartialsBiasRelu(info: LinearInfo, bias: Float32Array, imagesPerCell: 1 | 4 = 1): KernelSpec {
  if (info.B % imagesPerCell !== 0) throw new RangeError(`linearPartialsBiasRelu: batch ${info.B}, not a multiple of ${imagesPerCell}`);
  return {
    name: 'fused.linearPartialsBiasRelu',
    fn: function (this: KernelThis<LinearInfo & { bias: Float32Array; imagesPerCell: number; groups: number }>, partials: Float32Array): number {
      // image b is value i of group q's cells
      const q = Math.floor(this.thread.y / this.constants.imagesPerCell);
      const i = this.thread.y - q * this.constants.imagesPerCell;
      const at = ((this.thread.z * this.constants.groups + q) * this.constants.outF + this.thread.x) * 4 * this.constants.imagesPerCell + i;
      return Math.max(this.constants.bias[this.thread.z * this.constants.outF + this.thread.x]
        + partials[at] + partials[at + this.constants.imagesPerCell] + partials[at + 2 * this.constants.imagesPerCell]
        + partials[at + 3 * this.constants.imagesPerCell], 0);
    },
    output: [info.outF, info.B, info.M],
    constants: { ...info, bias, imagesPerCell, groups: info.B / imagesPerCell },
    flops: 5 * info.M * info.B * info.outF,
  };
}

/**
 * log_softmax(b + x · wᵀ) over the outF classes of each row, w in PyTorch's [M, outF, inF] layout. Each cell
 * recomputes its row's logits (10 × 128 multiply-adds, negligible) for the max and the sum of exponentials.
 * Grid [outF, B, M] → [M, B, outF].
 */
export function linearLogSoftmaxResident(info: LinearInfo, p: ResidentParams): KernelSpec {
  return {
    name: 'fused.linearLogSoftmax',
    fn: function (this: LinearThis, x: Float32Array): number {
      const xo = this.thread.z * this.constants.xModelStride + this.thread.y * this.constants.inF;
      let top = -3.4e38;
      let own = 0;
      for (let o = 0; o < this.constants.outF; o++) {
        let z = this.constants.bias[this.thread.z * this.constants.outF + o];
        for (let k = 0; k < this.constants.inF; k++) {
          z += x[xo + k] * this.constants.weight[(this.thread.z * this.constants.outF + o) * this.constants.inF + k];
        }
        top = Math.max(top, z);
        if (o === this.thread.x) own = z;
      }
      let sum = 0;
      for (let o = 0; o < this.constants.outF; o++) {
        let z = this.constants.bias[this.thread.z * this.constants.outF + o];
        for (let k = 0; k < this.constants.inF; k++) {
          z += x[xo + k] * this.constants.weight[(this.thread.z * this.constants.outF + o) * this.constants.inF + k];
        }
        sum += Math.exp(z - top);
      }
      return own - top - Math.log(sum);
    },
    output: [info.outF, info.B, info.M],
    constants: { ...info, weight: p.weight, bias: p.bias },
    flops: 4 * info.M * info.B * info.outF * info.inF,
  };
}
