/**
 * linear (fully connected) and its three gradients. x [M or shared, B, inF], w [M, outF, inF] (PyTorch's
 * layout), b [M, outF], y / dy [M, B, outF].
 *
 * Each contraction computes four rows of its output per cell (`Array(4)`), so each lane-dependent read (the
 * costly kind on webasm: four scalar loads) feeds four sums instead of one, and each sum still runs in order, so
 * the results are those of one output per cell to the bit. The cells' results come out in quads of rows,
 * [M, ceil(R/4), F, 4]; `linearRows` (or its ReLU / dropout variants, fused into the pass that follows anyway)
 * turns them into [M, R, F]. A quad's rows beyond R read past their operand and are dropped there.
 */
import type { LinearInfo } from './shapes.ts';
import type { DropoutInfo } from './dropout.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<LinearInfo>;

/** Quads of 4 rows covering n rows. */
const quads = (n: number): number => Math.ceil(n / 4);

/** y[m,b,o] = b[m,o] + Σ_k x[m,b,k] · w[m,o,k], batch rows b in quads. Grid [outF, ceil(B/4), M] → rows B, F = outF. */
export function linearForward(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.forward',
    fn: function (this: This, x: Float32Array, w: Float32Array, bias: Float32Array): number[] {
      let s0 = bias[this.thread.z * this.constants.outF + this.thread.x];
      let s1 = s0;
      let s2 = s0;
      let s3 = s0;
      for (let k = 0; k < this.constants.inF; k++) {
        const wk = w[(this.thread.z * this.constants.outF + this.thread.x) * this.constants.inF + k];
        s0 += x[this.thread.z * this.constants.xModelStride + 4 * this.thread.y * this.constants.inF + k] * wk;
        s1 += x[this.thread.z * this.constants.xModelStride + (4 * this.thread.y + 1) * this.constants.inF + k] * wk;
        s2 += x[this.thread.z * this.constants.xModelStride + (4 * this.thread.y + 2) * this.constants.inF + k] * wk;
        s3 += x[this.thread.z * this.constants.xModelStride + (4 * this.thread.y + 3) * this.constants.inF + k] * wk;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [info.outF, quads(info.B), info.M],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/** dx[m,b,k] = Σ_o dy[m,b,o] · w[m,o,k], batch rows b in quads. Grid [inF, ceil(B/4), M] → rows B, F = inF. */
export function linearGradInput(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.gradInput',
    fn: function (this: This, dy: Float32Array, w: Float32Array): number[] {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let o = 0; o < this.constants.outF; o++) {
        const wo = w[(this.thread.z * this.constants.outF + o) * this.constants.inF + this.thread.x];
        s0 += dy[(this.thread.z * this.constants.B + 4 * this.thread.y) * this.constants.outF + o] * wo;
        s1 += dy[(this.thread.z * this.constants.B + 4 * this.thread.y + 1) * this.constants.outF + o] * wo;
        s2 += dy[(this.thread.z * this.constants.B + 4 * this.thread.y + 2) * this.constants.outF + o] * wo;
        s3 += dy[(this.thread.z * this.constants.B + 4 * this.thread.y + 3) * this.constants.outF + o] * wo;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [info.inF, quads(info.B), info.M],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/** dw[m,o,k] = Σ_b dy[m,b,o] · x[m,b,k], output rows o in quads. Grid [inF, ceil(outF/4), M] → rows outF, F = inF. */
export function linearGradWeight(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.gradWeight',
    fn: function (this: This, dy: Float32Array, x: Float32Array): number[] {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let b = 0; b < this.constants.B; b++) {
        const xb = x[this.thread.z * this.constants.xModelStride + b * this.constants.inF + this.thread.x];
        s0 += dy[(this.thread.z * this.constants.B + b) * this.constants.outF + 4 * this.thread.y] * xb;
        s1 += dy[(this.thread.z * this.constants.B + b) * this.constants.outF + 4 * this.thread.y + 1] * xb;
        s2 += dy[(this.thread.z * this.constants.B + b) * this.constants.outF + 4 * this.thread.y + 2] * xb;
        s3 += dy[(this.thread.z * this.constants.B + b) * this.constants.outF + 4 * this.thread.y + 3] * xb;
      }
      return [s0, s1, s2, s3];
    },
    returnType: 'Array(4)',
    output: [info.inF, quads(info.outF), info.M],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/** The shape of a contraction's result in quads of rows: M matrices of R rows of F values. */
export interface RowQuadsInfo { M: number; R: number; F: number; quadsR: number }

/** The quads of `linearForward` / `linearGradInput` (rows B) or `linearGradWeight` (rows outF). */
export function linearRowQuads(info: LinearInfo, of: 'forward' | 'gradInput' | 'gradWeight'): RowQuadsInfo {
  const [R, F] = of === 'forward' ? [info.B, info.outF] : of === 'gradInput' ? [info.B, info.inF] : [info.outF, info.inF];
  return { M: info.M, R, F, quadsR: quads(R) };
}

/** [M, ceil(R/4), F, 4] → [M, R, F]. Grid [F, R, M]. */
export function linearRows(info: RowQuadsInfo): KernelSpec {
  return {
    name: 'linear.rows',
    fn: function (this: KernelThis<RowQuadsInfo>, quadded: Float32Array): number {
      const q = Math.floor(this.thread.y / 4);
      return quadded[((this.thread.z * this.constants.quadsR + q) * this.constants.F + this.thread.x) * 4 + this.thread.y - 4 * q];
    },
    output: [info.F, info.R, info.M],
    constants: { ...info },
    flops: 0,
  };
}

/** `linearRows` with the ReLU that follows fc1 fused in: y = max(v, 0), as `reluForward`. */
export function linearRowsRelu(info: RowQuadsInfo): KernelSpec {
  return {
    name: 'linear.rowsRelu',
    fn: function (this: KernelThis<RowQuadsInfo>, quadded: Float32Array): number {
      const q = Math.floor(this.thread.y / 4);
      return Math.max(quadded[((this.thread.z * this.constants.quadsR + q) * this.constants.F + this.thread.x) * 4 + this.thread.y - 4 * q], 0);
    },
    output: [info.F, info.R, info.M],
    constants: { ...info },
    flops: info.M * info.R * info.F,
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
      return quadded[((this.thread.z * this.constants.quadsR + q) * this.constants.F + this.thread.x) * 4 + this.thread.y - 4 * q]
        * mask[(this.thread.z * this.constants.R + this.thread.y) * this.constants.F + this.thread.x] * this.constants.scale;
    },
    output: [info.F, info.R, info.M],
    constants: { ...info, ...dropout },
    flops: 2 * info.M * info.R * info.F,
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
