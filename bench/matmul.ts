/**
 * A plain matrix product C = A · B, A [rows, inner] row-major: the reference ceiling that bench/kernels.ts
 * measures on each backend and divides every conv/linear kernel's GFLOP/s by.
 *
 * What "ceiling" means here: the best a straightforward GPU.js kernel reaches on that backend with the same
 * register blocking as the engine's conv kernels, not a tuned BLAS. Each cell computes four rows of one column of
 * C, so each read of B (the lane-dependent one: a four-load gather on webasm's f32x4 path) feeds four sums while
 * the reads of A do not depend on thread.x (one load + splat on webasm); k is unrolled by four, as the conv
 * kernels write their nine taps out. No tiling or shared memory: GPU.js offers neither on cpu/webasm.
 * Two layouts of B, because which one is faster depends on the backend (cache lines vs lanes):
 * - 'ab':  B [inner, cols] — the four lanes of a quad read four consecutive elements (one vector load on webasm,
 *          patches/), each cell walks B down a column;
 * - 'abt': Bᵀ [cols, inner] — each cell walks a row of Bᵀ contiguously (the linear layer's y = x · wᵀ form).
 * The benchmark runs both and takes the faster as 100%. Not a hard bound: a kernel with a long inner loop per cell
 * (conv2's weight gradient) can pass it, since per-cell overhead weighs less there.
 */
import type { KernelSpec, KernelThis } from '../kernels/spec.ts';

export interface MatmulInfo { rows: number; cols: number; inner: number }
export type MatmulLayout = 'ab' | 'abt';
export const MATMUL_LAYOUTS: readonly MatmulLayout[] = ['ab', 'abt'];

export function computeMatmulInfo(rows: number, cols: number, inner: number): MatmulInfo {
  for (const [name, v] of Object.entries({ rows, cols, inner })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`matmul: ${name} must be a positive integer, got ${v}`);
  }
  if (rows % 4 !== 0) throw new Error(`matmul: rows must be a multiple of 4 (four rows per cell), got ${rows}`);
  if (inner % 4 !== 0) throw new Error(`matmul: inner must be a multiple of 4 (k is unrolled by four), got ${inner}`);
  return { rows, cols, inner };
}

type This = KernelThis<MatmulInfo>;

/**
 * Grid [cols, rows/4], Array(4): cell (j, g) holds C[4g..4g+3, j], so the flat result is laid out
 * [rows/4, cols, 4] (`matmulAt` reads it); the benchmark never needs the row-major C, so no layout pass.
 */
export function matmul(info: MatmulInfo, layout: MatmulLayout): KernelSpec {
  const common = {
    returnType: 'Array(4)' as const,
    output: [info.cols, info.rows / 4],
    constants: { ...info },
    flops: 2 * info.rows * info.cols * info.inner,
  };
  if (layout === 'ab') {
    return {
      name: 'matmul.ab',
      fn: function (this: This, a: Float32Array, b: Float32Array): number[] {
        const a0 = this.thread.y * 4 * this.constants.inner;
        const a1 = a0 + this.constants.inner;
        const a2 = a1 + this.constants.inner;
        const a3 = a2 + this.constants.inner;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let k = 0; k < this.constants.inner; k += 4) {
          // written `uniform + thread.x`: the four lanes' reads are one vector load on webasm (patches/)
          const bo = k * this.constants.cols;
          const b0 = b[bo + this.thread.x];
          const b1 = b[bo + this.constants.cols + this.thread.x];
          const b2 = b[bo + 2 * this.constants.cols + this.thread.x];
          const b3 = b[bo + 3 * this.constants.cols + this.thread.x];
          s0 += a[a0 + k] * b0 + a[a0 + k + 1] * b1 + a[a0 + k + 2] * b2 + a[a0 + k + 3] * b3;
          s1 += a[a1 + k] * b0 + a[a1 + k + 1] * b1 + a[a1 + k + 2] * b2 + a[a1 + k + 3] * b3;
          s2 += a[a2 + k] * b0 + a[a2 + k + 1] * b1 + a[a2 + k + 2] * b2 + a[a2 + k + 3] * b3;
          s3 += a[a3 + k] * b0 + a[a3 + k + 1] * b1 + a[a3 + k + 2] * b2 + a[a3 + k + 3] * b3;
        }
        return [s0, s1, s2, s3];
      },
      ...common,
    };
  }
  return {
    name: 'matmul.abt',
    fn: function (this: This, a: Float32Array, bt: Float32Array): number[] {
      const a0 = this.thread.y * 4 * this.constants.inner;
      const a1 = a0 + this.constants.inner;
      const a2 = a1 + this.constants.inner;
      const a3 = a2 + this.constants.inner;
      const bo = this.thread.x * this.constants.inner;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < this.constants.inner; k += 4) {
        const b0 = bt[bo + k];
        const b1 = bt[bo + k + 1];
        const b2 = bt[bo + k + 2];
        const b3 = bt[bo + k + 3];
        s0 += a[a0 + k] * b0 + a[a0 + k + 1] * b1 + a[a0 + k + 2] * b2 + a[a0 + k + 3] * b3;
        s1 += a[a1 + k] * b0 + a[a1 + k + 1] * b1 + a[a1 + k + 2] * b2 + a[a1 + k + 3] * b3;
        s2 += a[a2 + k] * b0 + a[a2 + k + 1] * b1 + a[a2 + k + 2] * b2 + a[a2 + k + 3] * b3;
        s3 += a[a3 + k] * b0 + a[a3 + k + 1] * b1 + a[a3 + k + 2] * b2 + a[a3 + k + 3] * b3;
      }
      return [s0, s1, s2, s3];
    },
    ...common,
  };
}

/** C[i, j] read from the kernel's [rows/4, cols, 4] result. */
export function matmulAt(info: MatmulInfo, c: Float32Array, i: number, j: number): number {
  return c[(Math.floor(i / 4) * info.cols + j) * 4 + (i % 4)];
}

/** C[i, j] computed on the host in float64, to spot-check the kernel; `b` in the layout the kernel reads. */
export function matmulReferenceAt(info: MatmulInfo, layout: MatmulLayout, a: Float32Array, b: Float32Array, i: number, j: number): number {
  let sum = 0;
  for (let k = 0; k < info.inner; k++) {
    sum += a[i * info.inner + k] * (layout === 'ab' ? b[k * info.cols + j] : b[j * info.inner + k]);
  }
  return sum;
}
