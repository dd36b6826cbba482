/**
 * linear (fully connected) and its three gradients. x [M or shared, B, inF], w [M, outF, inF] (PyTorch's
 * layout), b [M, outF], y / dy [M, B, outF].
 *
 * Each contraction computes four rows of its output per cell (`Array(4)`), so each lane-dependent read (the
 * costly kind on webasm: four scalar loads) feeds four sums instead of one. Its loop is unrolled by four, with a
 * tail loop for the rest (counted from 0: WGSL increments only integer counters), each sum still added term by
 * term in order, so unrolling changes no result by a bit. Unrolled, a multiply-add pays for fewer float loop
 * counters and index conversions (measurements: bench/RESULTS.md, "2026-12-01, commits 704ffd5–88655d3",
 * "Training kernels: both cores for small grids, unrolled linear loops"). The cells' results come out in quads of
 * rows, [M, ceil(R/4), padF, 4] (rows of F padded to a multiple of 4, `pad4`); `linearRows` (or its ReLU / dropout
 * variants, fused into the pass that follows anyway) turns them into [M, R, F]. A quad's rows beyond R read past
 * their operand and are dropped there.
 *
 * The forward also splits its sum over the input features into `linearForwardParts` parts, one cell each, so that
 * fc1's small grid runs on both of webasm's worker threads; the rows pass adds the parts, in order. That order
 * depends on the batch size (the parts are chosen from the grid), so a sample's fc1 output can differ in its last
 * bits between batch sizes; never between M, the number of models trained together.
 */
import { fours, linearForwardParts, pad4, type LinearInfo } from './shapes.ts';
import type { DropoutInfo } from './dropout.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<LinearInfo>;

/** Quads of 4 rows covering n rows. */
const quads = (n: number): number => Math.ceil(n / 4);

/** The forward's split of the input features: `parts` parts of `partLen`, unrolled up to `partLen4`. */
type ForwardInfo = LinearInfo & { parts: number; partLen: number; partLen4: number };

/**
 * Part p of y[m,b,o] = b[m,o] + Σ_k x[m,b,k] · w[m,o,k]: the sum over k in [p·partLen, (p+1)·partLen), the bias in
 * part 0; batch rows b in quads. Grid [pad4(outF), ceil(B/4), M·parts] → [M, parts, ceil(B/4), pad4(outF), 4].
 */
export function linearForward(info: LinearInfo): KernelSpec {
  const parts = linearForwardParts(info);
  const partLen = info.inF / parts;
  return {
    name: 'linear.forward',
    fn: function (this: KernelThis<ForwardInfo>, x: Float32Array, w: Float32Array, bias: Float32Array): number[] {
      const m = Math.floor(this.thread.z / this.constants.parts);
      const part = this.thread.z - m * this.constants.parts;
      let s0 = 0;
      if (part === 0) {
        s0 = bias[m * this.constants.outF + this.thread.x];
      }
      let s1 = s0;
      let s2 = s0;
      let s3 = s0;
      const wo = (m * this.constants.outF + this.thread.x) * this.constants.inF + part * this.constants.partLen;
      const xo = m * this.constants.xModelStride + 4 * this.thread.y * this.constants.inF + part * this.constants.partLen;
      for (let k = 0; k < this.constants.partLen4; k += 4) {
        const w0 = w[wo + k];
        const w1 = w[wo + k + 1];
        const w2 = w[wo + k + 2];
        const w3 = w[wo + k + 3];
        s0 += x[xo + k] * w0;
        s0 += x[xo + k + 1] * w1;
        s0 += x[xo + k + 2] * w2;
        s0 += x[xo + k + 3] * w3;
        s1 += x[xo + this.constants.inF + k] * w0;
        s1 += x[xo + this.constants.inF + k + 1] * w1;
        s1 += x[xo + this.constants.inF + k + 2] * w2;
        s1 += x[xo + this.constants.inF + k + 3] * w3;
        s2 += x[xo + 2 * this.constants.inF + k] * w0;
        s2 += x[xo + 2 * this.constants.inF + k + 1] * w1;
        s2 += x[xo + 2 * this.constants.inF + k + 2] * w2;
        s2 += x[xo + 2 * this.constants.inF + k + 3] * w3;
        s3 += x[xo + 3 * this.constants.inF + k] * w0;
        s3 += x[xo + 3 * this.constants.inF + k + 1] * w1;
        s3 += x[xo + 3 * this.constants.inF + k + 2] * w2;
        s3 += x[xo + 3 * this.constants.inF + k + 3] * w3;
      }
      for (let t = 0; t < this.constants.partLen - this.constants.partLen4; t++) {
        const k = this.constants.partLen4 + t;
        const wk = w[wo + k];
        s0 += x[xo + k] * wk;
        s1 += x[xo + this.constants.inF + k] * wk;
        s2 += x[xo + 2 * this.constants.inF + k] * wk;
        s3 += x[xo + 3 * this.constants.inF + k] * wk;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [pad4(info.outF), quads(info.B), info.M * parts],
    constants: { ...info, parts, partLen, partLen4: fours(partLen) },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/** dx[m,b,k] = Σ_o dy[m,b,o] · w[m,o,k], batch rows b in quads. Grid [pad4(inF), ceil(B/4), M] → rows B, F = inF. */
export function linearGradInput(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.gradInput',
    fn: function (this: KernelThis<LinearInfo & { outF4: number }>, dy: Float32Array, w: Float32Array): number[] {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      const dyo = (this.thread.z * this.constants.B + 4 * this.thread.y) * this.constants.outF;
      const wo = this.thread.z * this.constants.outF * this.constants.inF;
      for (let o = 0; o < this.constants.outF4; o += 4) {
        const w0 = w[wo + o * this.constants.inF + this.thread.x];
        const w1 = w[wo + (o + 1) * this.constants.inF + this.thread.x];
        const w2 = w[wo + (o + 2) * this.constants.inF + this.thread.x];
        const w3 = w[wo + (o + 3) * this.constants.inF + this.thread.x];
        s0 += dy[dyo + o] * w0;
        s0 += dy[dyo + o + 1] * w1;
        s0 += dy[dyo + o + 2] * w2;
        s0 += dy[dyo + o + 3] * w3;
        s1 += dy[dyo + this.constants.outF + o] * w0;
        s1 += dy[dyo + this.constants.outF + o + 1] * w1;
        s1 += dy[dyo + this.constants.outF + o + 2] * w2;
        s1 += dy[dyo + this.constants.outF + o + 3] * w3;
        s2 += dy[dyo + 2 * this.constants.outF + o] * w0;
        s2 += dy[dyo + 2 * this.constants.outF + o + 1] * w1;
        s2 += dy[dyo + 2 * this.constants.outF + o + 2] * w2;
        s2 += dy[dyo + 2 * this.constants.outF + o + 3] * w3;
        s3 += dy[dyo + 3 * this.constants.outF + o] * w0;
        s3 += dy[dyo + 3 * this.constants.outF + o + 1] * w1;
        s3 += dy[dyo + 3 * this.constants.outF + o + 2] * w2;
        s3 += dy[dyo + 3 * this.constants.outF + o + 3] * w3;
      }
      for (let t = 0; t < this.constants.outF - this.constants.outF4; t++) {
        const o = this.constants.outF4 + t;
        const wk = w[wo + o * this.constants.inF + this.thread.x];
        s0 += dy[dyo + o] * wk;
        s1 += dy[dyo + this.constants.outF + o] * wk;
        s2 += dy[dyo + 2 * this.constants.outF + o] * wk;
        s3 += dy[dyo + 3 * this.constants.outF + o] * wk;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [pad4(info.inF), quads(info.B), info.M],
    constants: { ...info, outF4: fours(info.outF) },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/** dw[m,o,k] = Σ_b dy[m,b,o] · x[m,b,k], output rows o in quads. Grid [pad4(inF), ceil(outF/4), M] → rows outF, F = inF. */
export function linearGradWeight(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.gradWeight',
    fn: function (this: KernelThis<LinearInfo & { B4: number }>, dy: Float32Array, x: Float32Array): number[] {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      const xo = this.thread.z * this.constants.xModelStride;
      const dyo = this.thread.z * this.constants.B * this.constants.outF + 4 * this.thread.y;
      for (let b = 0; b < this.constants.B4; b += 4) {
        const x0 = x[xo + b * this.constants.inF + this.thread.x];
        const x1 = x[xo + (b + 1) * this.constants.inF + this.thread.x];
        const x2 = x[xo + (b + 2) * this.constants.inF + this.thread.x];
        const x3 = x[xo + (b + 3) * this.constants.inF + this.thread.x];
        s0 += dy[dyo + b * this.constants.outF] * x0;
        s0 += dy[dyo + (b + 1) * this.constants.outF] * x1;
        s0 += dy[dyo + (b + 2) * this.constants.outF] * x2;
        s0 += dy[dyo + (b + 3) * this.constants.outF] * x3;
        s1 += dy[dyo + b * this.constants.outF + 1] * x0;
        s1 += dy[dyo + (b + 1) * this.constants.outF + 1] * x1;
        s1 += dy[dyo + (b + 2) * this.constants.outF + 1] * x2;
        s1 += dy[dyo + (b + 3) * this.constants.outF + 1] * x3;
        s2 += dy[dyo + b * this.constants.outF + 2] * x0;
        s2 += dy[dyo + (b + 1) * this.constants.outF + 2] * x1;
        s2 += dy[dyo + (b + 2) * this.constants.outF + 2] * x2;
        s2 += dy[dyo + (b + 3) * this.constants.outF + 2] * x3;
        s3 += dy[dyo + b * this.constants.outF + 3] * x0;
        s3 += dy[dyo + (b + 1) * this.constants.outF + 3] * x1;
        s3 += dy[dyo + (b + 2) * this.constants.outF + 3] * x2;
        s3 += dy[dyo + (b + 3) * this.constants.outF + 3] * x3;
      }
      for (let t = 0; t < this.constants.B - this.constants.B4; t++) {
        const b = this.constants.B4 + t;
        const xb = x[xo + b * this.constants.inF + this.thread.x];
        s0 += dy[dyo + b * this.constants.outF] * xb;
        s1 += dy[dyo + b * this.constants.outF + 1] * xb;
        s2 += dy[dyo + b * this.constants.outF + 2] * xb;
        s3 += dy[dyo + b * this.constants.outF + 3] * xb;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [pad4(info.inF), quads(info.outF), info.M],
    constants: { ...info, B4: fours(info.B) },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/**
 * The shape of a contraction's result in quads of rows: M matrices of R rows of F values, each in `parts` partial
 * sums (the forward's split; 1 for the gradients).
 */
export interface RowQuadsInfo { M: number; R: number; F: number; quadsR: number; parts: number; padF: number }

/** The quads of `linearForward` / `linearGradInput` (rows B) or `linearGradWeight` (rows outF). */
export function linearRowQuads(info: LinearInfo, of: 'forward' | 'gradInput' | 'gradWeight'): RowQuadsInfo {
  const [R, F] = of === 'forward' ? [info.B, info.outF] : of === 'gradInput' ? [info.B, info.inF] : [info.outF, info.inF];
  return { M: info.M, R, F, quadsR: quads(R), parts: of === 'forward' ? linearForwardParts(info) : 1, padF: pad4(F) };
}

/**
 * [M, parts, ceil(R/4), padF, 4] → [M, R, F], the parts added in order (one part: the value itself, to the bit).
 * Grid [F, R, M].
 */
export function linearRows(info: RowQuadsInfo): KernelSpec {
  return {
    name: 'linear.rows',
    fn: function (this: KernelThis<RowQuadsInfo>, quadded: Float32Array): number {
      const q = Math.floor(this.thread.y / 4);
      const at = ((this.thread.z * this.constants.parts * this.constants.quadsR + q) * this.constants.padF + this.thread.x) * 4 + this.thread.y - 4 * q;
      let v = quadded[at];
      for (let p = 1; p < this.constants.parts; p++) {
        v += quadded[at + p * this.constants.quadsR * this.constants.padF * 4];
      }
      return v;
    },
    output: [info.F, info.R, info.M],
    constants: { ...info },
    flops: (info.parts - 1) * info.M * info.R * info.F,
  };
}

/** `linearRows` with the ReLU that follows fc1 fused in: y = max(v, 0), as `reluForward`. */
export function linearRowsRelu(info: RowQuadsInfo): KernelSpec {
  return {
    name: 'linear.rowsRelu',
    fn: function (this: KernelThis<RowQuadsInfo>, quadded: Float32Array): number {
      const q = Math.floor(this.thread.y / 4);
      const at = ((this.thread.z * this.constants.parts * this.constants.quadsR + q) * this.constants.padF + this.thread.x) * 4 + this.thread.y - 4 * q;
      let v = quadded[at];
      for (let p = 1; p < this.constants.parts; p++) {
        v += quadded[at + p * this.constants.quadsR * this.constants.padF * 4];
      }
      return Math.max(v, 0);
    },
    output: [info.F, info.R, info.M],
    constants: { ...info },
    flops: info.parts * info.M * info.R * info.F,
  };
}

/**
 * `linearRows` with a dropout's backward fused in (the input gradient of the layer after a dropout):
 * v · mask · scale, as `dropoutApply`; mask [M, R, F].
 */
export function linearRowsDropout(info: RowQuadsInfo, dropout: DropoutInfo): KernelSpec {
  return {
    name: 'linear.rowsDropout',
    fn: function (this: KernelThis<RowQuadsInfo & DropoutInfo>, quadded: Float32Array, mask: Float32Array): number {
      const q = Math.floor(this.thread.y / 4);
      const at = ((this.thread.z * this.constants.parts * this.constants.quadsR + q) * this.constants.padF + this.thread.x) * 4 + this.thread.y - 4 * q;
      let v = quadded[at];
      for (let p = 1; p < this.constants.parts; p++) {
        v += quadded[at + p * this.constants.quadsR * this.constants.padF * 4];
      }
      return v * mask[(this.thread.z * this.constants.R + this.thread.y) * this.constants.F + this.thread.x] * this.constants.scale;
    },
    output: [info.F, info.R, info.M],
    constants: { ...info, ...dropout },
    flops: (info.parts + 1) * info.M * info.R * info.F,
  };
}

/** db[m,o] = Σ_b dy[m,b,o]. Grid [outF, M]. */
export function linearGradBias(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.gradBias',
    fn: function (this: This, dy: Float32Array): number {
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        sum += dy[(this.thread.y * this.constants.B + b) * this.constants.outF + this.thread.x];
      }
      return sum;
    },
    output: [info.outF, info.M],
    constants: { ...info },
    flops: info.M * info.B * info.outF,
  };
}
