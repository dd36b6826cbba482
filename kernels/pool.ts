/**
 * max_pool2d with a 2x2 window and stride 2 (odd edges dropped). The forward keeps, per output cell, which of
 * the four window cells won (0..3 in order (0,0),(0,1),(1,0),(1,1); ties go to the first), which the backward
 * uses to route the gradient. x [M, B, C, inH, inW], y [M, B, C, outH, outW].
 */
import type { Pool2DInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<Pool2DInfo>;

/** Grid [outW, outH, M*B*C]. */
export function maxPool2dForward(info: Pool2DInfo): KernelSpec {
  return {
    name: 'maxPool2d.forward',
    fn: function (this: This, x: Float32Array): number {
      const top = (this.thread.z * this.constants.inH + 2 * this.thread.y) * this.constants.inW + 2 * this.thread.x;
      return Math.max(Math.max(x[top], x[top + 1]),
        Math.max(x[top + this.constants.inW], x[top + this.constants.inW + 1]));
    },
    output: [info.outW, info.outH, info.M * info.B * info.C],
    constants: { ...info },
    flops: 3 * info.M * info.B * info.C * info.outH * info.outW,
  };
}

/** The winning window position, 0..3 (as a float). Grid [outW, outH, M*B*C]. */
export function maxPool2dArgmax(info: Pool2DInfo): KernelSpec {
  return {
    name: 'maxPool2d.argmax',
    fn: function (this: This, x: Float32Array): number {
      const top = (this.thread.z * this.constants.inH + 2 * this.thread.y) * this.constants.inW + 2 * this.thread.x;
      let best = x[top];
      let at = 0;
      if (x[top + 1] > best) { best = x[top + 1]; at = 1; }
      if (x[top + this.constants.inW] > best) { best = x[top + this.constants.inW]; at = 2; }
      if (x[top + this.constants.inW + 1] > best) { at = 3; }
      return at;
    },
    output: [info.outW, info.outH, info.M * info.B * info.C],
    constants: { ...info },
    flops: 3 * info.M * info.B * info.C * info.outH * info.outW,
  };
}

/**
 * The gradient through ReLU then max-pool, in one pass: dx[iy,ix] = dy[iy/2, ix/2] where (iy, ix) won its window
 * and the pool's input x (the ReLU's output) is > 0 there, else 0. It is written with a zero border of `pad`
 * cells: the padding conv2d's input gradient convolves (`conv2dGradInputInfo`: pad K-1), which the conv's weight
 * and bias gradients skip (their `dyPad`), so one pass replaces three (pool backward, ReLU backward, pad).
 * x [M, B, C, inH, inW]. Grid [inW + 2 pad, inH + 2 pad, M*B*C].
 */
export function maxPool2dReluBackward(info: Pool2DInfo, pad: number): KernelSpec {
  return {
    name: 'maxPool2d.reluBackward',
    fn: function (this: KernelThis<Pool2DInfo & { pad: number }>, argmax: Float32Array, dy: Float32Array, x: Float32Array): number {
      const iy = this.thread.y - this.constants.pad;
      const ix = this.thread.x - this.constants.pad;
      if (iy >= 0 && ix >= 0 && iy < 2 * this.constants.outH && ix < 2 * this.constants.outW) {
        const py = Math.floor(iy / 2);
        const px = Math.floor(ix / 2);
        const cell = (this.thread.z * this.constants.outH + py) * this.constants.outW + px;
        if (argmax[cell] === (iy - 2 * py) * 2 + ix - 2 * px && x[(this.thread.z * this.constants.inH + iy) * this.constants.inW + ix] > 0) {
          return dy[cell];
        }
      }
      return 0;
    },
    output: [info.inW + 2 * pad, info.inH + 2 * pad, info.M * info.B * info.C],
    constants: { ...info, pad },
    flops: info.M * info.B * info.C * info.inH * info.inW,
  };
}
