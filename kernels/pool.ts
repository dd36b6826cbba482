/**
 * max_pool2d(relu(y)) with a 2x2 window and stride 2 (odd edges dropped), reading conv2d's column output
 * directly ([M*B*C planes, rowBlocks, rowW, 4 rows], `convColumns`): the ReLU commutes with the max exactly
 * (max(relu a, relu b) = relu(max(a, b))), so the ReLU and the layout pass that turns columns into rows need no
 * pass of their own, and the ReLU's output is never stored. The forward keeps, per output cell, which of the four
 * window cells won (0..3 in order (0,0),(0,1),(1,0),(1,1); ties go to the first), which the backward uses to
 * route the gradient (kernels/conv2d-pool-backward.ts). y [M, B, C, inH, inW] as columns, pooled [M, B, C, outH, outW].
 */
import { convColumns, type Pool2DInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type ColumnsThis = KernelThis<Pool2DInfo & { rowW: number; rowBlocks: number }>;

/**
 * Grid [outW, outH, M*B*C]. A window's two rows 2·py and 2·py+1 lie in one column of four (row block py/2, rows
 * 0–1 or 2–3 of it), so its four values sit at `at`, `at + 1` (the row below) and four further on (the next
 * column).
 */
export function maxPool2dRelu(info: Pool2DInfo): KernelSpec {
  return {
    name: 'maxPool2d.reluForward',
    fn: function (this: ColumnsThis, y: Float32Array): number {
      const by = Math.floor(this.thread.y / 2);
      const at = ((this.thread.z * this.constants.rowBlocks + by) * this.constants.rowW + 2 * this.thread.x) * 4 + 2 * this.thread.y - 4 * by;
      return Math.max(0, Math.max(Math.max(y[at], y[at + 4]), Math.max(y[at + 1], y[at + 5])));
    },
    output: [info.outW, info.outH, info.M * info.B * info.C],
    constants: { ...info, ...convColumns(info.inH, info.inW) },
    flops: 4 * info.M * info.B * info.C * info.outH * info.outW,
  };
}

/** The winning window position of relu(y), 0..3 (as a float), y as columns. Grid [outW, outH, M*B*C]. */
export function maxPool2dReluArgmax(info: Pool2DInfo): KernelSpec {
  return {
    name: 'maxPool2d.reluArgmax',
    fn: function (this: ColumnsThis, y: Float32Array): number {
      const by = Math.floor(this.thread.y / 2);
      const at = ((this.thread.z * this.constants.rowBlocks + by) * this.constants.rowW + 2 * this.thread.x) * 4 + 2 * this.thread.y - 4 * by;
      let best = Math.max(0, y[at]);
      let win = 0;
      if (Math.max(0, y[at + 4]) > best) { best = Math.max(0, y[at + 4]); win = 1; }
      if (Math.max(0, y[at + 1]) > best) { best = Math.max(0, y[at + 1]); win = 2; }
      if (Math.max(0, y[at + 5]) > best) { win = 3; }
      return win;
    },
    output: [info.outW, info.outH, info.M * info.B * info.C],
    constants: { ...info, ...convColumns(info.inH, info.inW) },
    flops: 7 * info.M * info.B * info.C * info.outH * info.outW,
  };
}
