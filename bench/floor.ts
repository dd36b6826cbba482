/**
 * The movement floor of a kernel: a kernel with the same grid, constants, return type and arguments that does no
 * arithmetic, only one read of each argument and the write of every output value. Timed as the engine calls a
 * kernel (`device.run`: arguments uploaded, kernel, result read back), it is what any formulation with that output
 * grid pays before its first multiply-add, so `flops / floor time` bounds the GFLOP/s the kernel could reach on
 * this backend without changing what it writes. Read back into a recycled array (as the Net's calls are), the
 * floor of every per-layer contraction leaves it above the matmul's rate; into fresh arrays, conv1's forward (9
 * multiply-adds per output written) was bound by it, because touching new memory is slow on the development VM.
 * fc2's small grids are bound by running on one core instead.
 */
import type { KernelSpec, KernelThis } from '../kernels/spec.ts';

type This = KernelThis<Record<string, number>>;

// GPU.js compiles each function's source, so every (arguments, values per cell) shape is written out
const FLOORS: Partial<Record<string, KernelSpec['fn']>> = {
  '2/3': function (this: This, a: Float32Array, b: Float32Array): number[] {
    return [a[this.thread.x], b[this.thread.y], 0];
  },
  '2/4': function (this: This, a: Float32Array, b: Float32Array): number[] {
    return [a[this.thread.x], b[this.thread.y], 0, 0];
  },
  '3/4': function (this: This, a: Float32Array, b: Float32Array, c: Float32Array): number[] {
    return [a[this.thread.x], b[this.thread.y], c[this.thread.z], 0];
  },
};

/** The floor of `spec` called with `argCount` array arguments; null for a shape written out above for none. */
export function movementFloor(spec: KernelSpec, argCount: number): KernelSpec | null {
  const perCell = spec.returnType ? Number(spec.returnType[6]) : 1;
  const fn = FLOORS[`${argCount}/${perCell}`];
  return fn ? { ...spec, name: `${spec.name}.floor`, fn, flops: 0 } : null;
}
