/**
 * log_softmax over the classes of z [M, B, C], the mean NLL loss per model, and the fused backward of
 * NLL(log_softmax(z)) with respect to z. Targets are class indices as floats, [M, B].
 */
import type { RowsInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<RowsInfo>;

/** logp[m,b,j] = z[m,b,j] - max_k z - log Σ_k exp(z[m,b,k] - max). Grid [C, B, M]. */
export function logSoftmaxForward(info: RowsInfo): KernelSpec {
  return {
    name: 'logSoftmax.forward',
    fn: function (this: This, z: Float32Array): number {
      const row = (this.thread.z * this.constants.B + this.thread.y) * this.constants.C;
      let top = z[row];
      for (let k = 1; k < this.constants.C; k++) {
        top = Math.max(top, z[row + k]);
      }
      let sum = 0;
      for (let k = 0; k < this.constants.C; k++) {
        sum += Math.exp(z[row + k] - top);
      }
      return z[row + this.thread.x] - top - Math.log(sum);
    },
    output: [info.C, info.B, info.M],
    constants: { ...info },
    flops: 4 * info.M * info.B * info.C * info.C,
  };
}

/** loss[m] = -(1/B) Σ_b logp[m, b, target[m,b]]. Grid [M]. */
export function nllLoss(info: RowsInfo): KernelSpec {
  return {
    name: 'nll.loss',
    fn: function (this: This, logp: Float32Array, target: Float32Array): number {
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        const row = this.thread.x * this.constants.B + b;
        sum -= logp[row * this.constants.C + target[row]];
      }
      return sum / this.constants.B;
    },
    output: [info.M],
    constants: { ...info },
    flops: info.M * info.B,
  };
}

/** dz[m,b,j] = (exp(logp[m,b,j]) - [j == target[m,b]]) / B. Grid [C, B, M]. */
export function logSoftmaxNllBackward(info: RowsInfo): KernelSpec {
  return {
    name: 'logSoftmaxNll.backward',
    fn: function (this: This, logp: Float32Array, target: Float32Array): number {
      const row = this.thread.z * this.constants.B + this.thread.y;
      let hit = 0;
      if (target[row] === this.thread.x) {
        hit = 1;
      }
      return (Math.exp(logp[row * this.constants.C + this.thread.x]) - hit) / this.constants.B;
    },
    output: [info.C, info.B, info.M],
    constants: { ...info },
    flops: 3 * info.M * info.B * info.C,
  };
}
