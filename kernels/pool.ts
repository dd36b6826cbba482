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

/** dx[iy,ix] = dy[iy/2, ix/2] if (iy,ix) won its window, else 0. Grid [inW, inH, M*B*C]. */
export function maxPool2dBackward(info: Pool2DInfo): KernelSpec {
  return {
    name: 'maxPool2d.backward',
    fn: function (this: This, argmax: Float32Array, dy: Float32Array): number {
      const py = Math.floor(this.thread.y / 2);
      const px = Math.floor(this.thread.x / 2);
      if (py < this.constants.outH && px < this.constants.outW) {
        const cell = (this.thread.z * this.constants.outH + py) * this.constants.outW + px;
        if (argmax[cell] === (this.thread.y - 2 * py) * 2 + this.thread.x - 2 * px) {
          return dy[cell];
        }
      }
      return 0;
    },
    output: [info.inW, info.inH, info.M * info.B * info.C],
    constants: { ...info },
    flops: info.M * info.B * info.C * info.inH * info.inW,
  };
}
