/**
 * ReLU's backward pass over any flat tensor (all M models at once: elementwise ops need no model index). Its
 * forward pass has no kernel of its own: it is fused into the kernel before it (conv1's layout, conv2's pool,
 * fc1's row sums), which writes max(v, 0) directly.
 */
import type { KernelSpec, KernelThis } from './spec.ts';

export interface ElementwiseInfo { n: number }

/** dx = dy where x > 0, else 0 (PyTorch's gradient at exactly 0 is 0). Grid [n]. */
export function reluBackward(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'relu.backward',
    fn: function (this: KernelThis<ElementwiseInfo>, x: Float32Array, dy: Float32Array): number {
      if (x[this.thread.x] > 0) {
        return dy[this.thread.x];
      }
      return 0;
    },
    output: [info.n], constants: { ...info }, flops: info.n,
  };
}
