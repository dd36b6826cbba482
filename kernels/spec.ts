/**
 * What a kernel file exports: a declaration of one GPU.js kernel (its per-cell function, output grid and
 * constants), with no GPU instance and no I/O. The engine's Device compiles specs into kernels and caches them.
 *
 * Conventions shared by every kernel:
 * - every argument is a flat Float32Array in PyTorch's row-major layout, with M (the model count) as the leading
 *   dimension of weights and activations; M = 1 is the ordinary single-model case. The exceptions are
 *   intermediates a kernel writes for a partner that reads them: blocked results (`Array(n)` cells) and their
 *   layout passes, conv2d's column output (`convColumns`), which `conv2dLayoutRelu` and `maxPool2dRelu*` read, and
 *   the channels-last arrays of conv2's backward (kernels/conv2d-pool-backward.ts);
 * - sizes are `constants`, so loops have fixed bounds and the compiled kernel is specialised per shape;
 * - the output grid is [x, y, z] with x fastest, and the flat result is read in that order, so a grid of
 *   [W, H, M*B*C] yields exactly the [M, B, C, H, W] layout.
 */
import type { IKernelFunctionThis } from 'gpu.js';

/** Sizes, plus (in the fused inference kernels) resident weight arrays, which a backend uploads once per kernel. */
export type Constants = Record<string, number | Float32Array>;

/** `this` inside a kernel body whose constants are C. */
export type KernelThis<C> = IKernelFunctionThis<C>;

export interface KernelSpec {
  /** Family and operation, e.g. 'conv2d.forward'; with the constants it identifies the compiled kernel. */
  name: string;
  /** The per-cell function, transpiled by GPU.js. It may read `this.constants.*` only inline. */
  fn: (...args: any[]) => number | number[];
  /** Output grid [x] | [x, y] | [x, y, z]. */
  output: number[];
  constants: Constants;
  /**
   * Set when each cell computes several values (sharing its reads among several accumulators); the flat
   * result then holds that many consecutive values per cell.
   */
  returnType?: 'Array(2)' | 'Array(3)' | 'Array(4)';
  /** Floating-point operations of one call (multiply-add = 2), for GFLOP/s in benchmarks. */
  flops: number;
}

/** Values in the flat result: cells × values per cell. */
export function outputSize(spec: KernelSpec): number {
  const perCell = spec.returnType ? Number(spec.returnType[6]) : 1;
  return spec.output.reduce((a, b) => a * b, perCell);
}
