/**
 * y = max(x, 0) as a kernel of its own, grid [n]: the smallest real kernel, for the tests of the Device and the
 * gpu.js patch (the product fuses ReLU's forward into the kernel before it, see kernels/relu.ts).
 */
import type { KernelSpec, KernelThis } from '../kernels/spec.ts';
import type { ElementwiseInfo } from '../kernels/relu.ts';

export function reluForward(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'relu.forward',
    fn: function (this: KernelThis<ElementwiseInfo>, x: Float32Array): number {
      return Math.max(x[this.thread.x], 0);
    },
    output: [info.n], constants: { ...info }, flops: info.n,
  };
}
