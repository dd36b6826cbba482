/**
 * The inference forward as five fused kernels and a transpose (`transposePlanes`, kernels/layout.ts), each one
 * value per cell, with the weights resident:
 *
 *   conv1 + bias + ReLU (channels last) → conv2 + bias + ReLU + 2x2 max-pool (channels last) → channels first
 *   → fc1 (four partial sums per output) → + bias + ReLU → fc2 + bias + log_softmax
 *
 * Weights and biases are `constants`, which a backend uploads once when it builds the kernel (webgpu: storage
 * buffers; webasm: its wasm memory; GL: textures) and never per call. Each cell returns one value because the chain
 * runs as one `gpu.createPipeline` plan, and plans take no vector-returning intermediates. Dropout is the
 * identity at inference, so it has no kernel here; training uses the per-layer kernels of the other files.
 *
 * Parameter layouts are PyTorch's, stacked over M models, so the constants are the model's own arrays (views, no
 * copy on the host), except the two convolutions' weights: their kernels' lanes run over output channels, so each
 * takes a copy laid out channels last (`outChannelsLast`, 1.2 KB and 74 KB a model). fc1 reads its weight in PyTorch's layout too: its adjacent
 * cells read adjacent weights by splitting each row's sum four ways (`linearPartialsResident`), so no transposed
 * copy of its 4.7 MB is needed.
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

/** w [M, outC, inC, K, K] (PyTorch's) → [M, inC, K*K, outC]: one tap's weights for consecutive output channels side by side. */
export function outChannelsLast(w: Float32Array, info: Conv2DInfo): Float32Array {
  const taps = info.K * info.K;
  const expected = info.M * info.outC * info.inC * taps;
  if (w.length !== expected) throw new Error(`conv2d weight: ${w.length} values, expected ${expected} (M·outC·inC·K·K)`);
  const out = new Float32Array(w.length);
  for (let m = 0; m < info.M; m++) {
    for (let co = 0; co < info.outC; co++) {
      for (let ci = 0; ci < info.inC; ci++) {
        for (let t = 0; t < taps; t++) {
          out[((m * info.inC + ci) * taps + t) * info.outC + co] = w[((m * info.outC + co) * info.inC + ci) * taps + t];
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

/** relu(b[m,o] + the four partial sums of `linearPartialsResident`, added in order). Grid [outF, B, M]. */
export function linearPartialsBiasRelu(info: LinearInfo, bias: Float32Array): KernelSpec {
  return {
    name: 'fused.linearPartialsBiasRelu',
    fn: function (this: KernelThis<LinearInfo & { bias: Float32Array }>, partials: Float32Array): number {
      const at = ((this.thread.z * this.constants.B + this.thread.y) * this.constants.outF + this.thread.x) * 4;
      return Math.max(this.constants.bias[this.thread.z * this.constants.outF + this.thread.x]
        + partials[at] + partials[at + 1] + partials[at + 2] + partials[at + 3], 0);
    },
    output: [info.outF, info.B, info.M],
    constants: { ...info, bias },
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
