/**
 * Dropout: y = x · mask / (1 - p), with a 0/1 mask drawn per model from a seeded generator on the host (so the
 * same seed gives the same masks on every backend). The backward is the same product applied to dy.
 * At inference the engine skips the kernel: dropout is the identity there.
 */
import type { ElementwiseInfo } from './relu.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

export interface DropoutInfo extends ElementwiseInfo { scale: number }

export function computeDropoutInfo(n: number, p: number): DropoutInfo {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  return { n, scale: 1 / (1 - p) };
}

/** Grid [n]; serves forward (v = x) and backward (v = dy). */
export function dropoutApply(info: DropoutInfo): KernelSpec {
  return {
    name: 'dropout.apply',
    fn: function (this: KernelThis<DropoutInfo>, v: Float32Array, mask: Float32Array): number {
      return v[this.thread.x] * mask[this.thread.x] * this.constants.scale;
    },
    output: [info.n], constants: { ...info }, flops: 2 * info.n,
  };
}
