/**
 * Pure data movement between layouts: no arithmetic, exact on every backend.
 */
import type { Conv2DInfo, Pool2DInfo } from './shapes.ts';
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

/** A pooled layer's output, channels last [M*B, poolH*poolW, C], as planes to turn channels first (PyTorch's order). */
export function pooledToChannelsFirst(pool: Pool2DInfo): PlanesInfo {
  return { planes: pool.M * pool.B, rows: pool.outH * pool.outW, cols: pool.C };
}

/** A convolution's input, channels first [planes, inC, inH*inW], as planes to turn channels last (one set per model, or one shared). */
export function convInputToChannelsLast(info: Conv2DInfo): PlanesInfo {
  return { planes: (info.xModelStride === 0 ? 1 : info.M) * info.B, rows: info.inC, cols: info.inH * info.inW };
}
