/**
 * Pure data movement between layouts: no arithmetic, exact on every backend.
 */
import type { KernelSpec, KernelThis } from './spec.ts';

/** A stack of `planes` matrices, each `rows` × `cols` (row-major). */
export interface PlanesInfo { planes: number; rows: number; cols: number }

/**
 * [planes, rows, cols] → [planes, cols, rows]: channels first ↔ channels last, e.g. [M*B, C, H*W] → [M*B, H*W, C]
 * (rows = C) or back (rows = H*W). The grid's x runs over `rows`, which the output holds innermost, so a
 * multiple of 4 runs with SIMD on webasm (32 or 64 channels; 144 positions). Grid [rows, cols, planes].
 */
export function transposePlanes(info: PlanesInfo): KernelSpec {
  return {
    name: 'layout.transposePlanes',
    fn: function (this: KernelThis<PlanesInfo>, x: Float32Array): number {
      return x[(this.thread.z * this.constants.rows + this.thread.x) * this.constants.cols + this.thread.y];
    },
    output: [info.rows, info.cols, info.planes],
    constants: { ...info },
    flops: 0,
  };
}
