/**
 * linear (fully connected) and its three gradients. x [M or shared, B, inF], w [M, outF, inF] (PyTorch's
 * layout), b [M, outF], y / dy [M, B, outF].
 */
import type { LinearInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<LinearInfo>;

/** y[m,b,o] = b[m,o] + Σ_k x[m,b,k] · w[m,o,k]. Grid [outF, B, M]. */
export function linearForward(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.forward',
    fn: function (this: This, x: Float32Array, w: Float32Array, bias: Float32Array): number {
      let sum = bias[this.thread.z * this.constants.outF + this.thread.x];
      for (let k = 0; k < this.constants.inF; k++) {
        sum += x[this.thread.z * this.constants.xModelStride + this.thread.y * this.constants.inF + k]
          * w[(this.thread.z * this.constants.outF + this.thread.x) * this.constants.inF + k];
      }
      return sum;
    },
    output: [info.outF, info.B, info.M],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/** dx[m,b,k] = Σ_o dy[m,b,o] · w[m,o,k]. Grid [inF, B, M]. */
export function linearGradInput(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.gradInput',
    fn: function (this: This, dy: Float32Array, w: Float32Array): number {
      let sum = 0;
      for (let o = 0; o < this.constants.outF; o++) {
        sum += dy[(this.thread.z * this.constants.B + this.thread.y) * this.constants.outF + o]
          * w[(this.thread.z * this.constants.outF + o) * this.constants.inF + this.thread.x];
      }
      return sum;
    },
    output: [info.inF, info.B, info.M],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outF * info.inF,
  };
}

/** dw[m,o,k] = Σ_b dy[m,b,o] · x[m,b,k]. Grid [inF, outF, M]. */
export function linearGradWeight(info: LinearInfo): KernelSpec {
  return {
    name: 'linear.gradWeight',
    fn: function (this: This, dy: Float32Array, x: Float32Array): number {
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        sum += dy[(this.thread.z * this.constants.B + b) * this.constants.outF + this.thread.y]
          * x[this.thread.z * this.constants.xModelStride + b * this.constants.inF + this.thread.x];
      }
      return sum;
    },
    output: [info.inF, info.outF, info.M],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outF * info.inF,
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
