/**
 * conv2d, 3x3-style square kernels, stride 1, no padding (cross-correlation, as PyTorch), with its three
 * gradients. Shapes: x [M or shared, B, inC, inH, inW], w [M, outC, inC, K, K], b [M, outC],
 * y / dy [M, B, outC, outH, outW].
 */
import type { Conv2DInfo } from './shapes.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<Conv2DInfo>;

/** y[m,b,co,oy,ox] = b[m,co] + Σ_ci,ky,kx x[m,b,ci,oy+ky,ox+kx] · w[m,co,ci,ky,kx]. Grid [outW, outH, M*B*outC]. */
export function conv2dForward(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.forward',
    fn: function (this: This, x: Float32Array, w: Float32Array, bias: Float32Array): number {
      const co = this.thread.z % this.constants.outC;
      const mb = Math.floor(this.thread.z / this.constants.outC);
      const m = Math.floor(mb / this.constants.B);
      const b = mb - m * this.constants.B;
      let sum = bias[m * this.constants.outC + co];
      for (let ci = 0; ci < this.constants.inC; ci++) {
        for (let ky = 0; ky < this.constants.K; ky++) {
          for (let kx = 0; kx < this.constants.K; kx++) {
            sum += x[m * this.constants.xModelStride
                + ((b * this.constants.inC + ci) * this.constants.inH + this.thread.y + ky) * this.constants.inW
                + this.thread.x + kx]
              * w[(((m * this.constants.outC + co) * this.constants.inC + ci) * this.constants.K + ky) * this.constants.K + kx];
          }
        }
      }
      return sum;
    },
    output: [info.outW, info.outH, info.M * info.B * info.outC],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outC * info.outH * info.outW * info.inC * info.K * info.K,
  };
}

/**
 * The input gradient is itself a convolution: dx = conv2d(pad(dy, K-1), flip(wᵀ)), where flip(wᵀ)[m,ci,co,ky,kx] =
 * w[m,co,ci,K-1-ky,K-1-kx]. Expressing it so (as TF.js does) reuses the forward kernel, branch-free, instead of
 * a loop that tests every tap against dy's borders. These two kernels prepare its operands; the engine chains
 * them with `conv2dForward(conv2dGradInputInfo(info))`.
 */
export function conv2dGradInputInfo(info: Conv2DInfo): Conv2DInfo {
  const pad = 2 * (info.K - 1);
  return {
    M: info.M, B: info.B, inC: info.outC, inH: info.outH + pad, inW: info.outW + pad,
    outC: info.inC, K: info.K, outH: info.inH, outW: info.inW, xModelStride: info.B * info.outC * (info.outH + pad) * (info.outW + pad),
  };
}

/** dy [M,B,outC,outH,outW] zero-padded by K-1 on every side. Grid [outW+2(K-1), outH+2(K-1), M*B*outC]. */
export function conv2dPadOutputGrad(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.padOutputGrad',
    fn: function (this: This, dy: Float32Array): number {
      const oy = this.thread.y - (this.constants.K - 1);
      const ox = this.thread.x - (this.constants.K - 1);
      if (oy >= 0 && oy < this.constants.outH && ox >= 0 && ox < this.constants.outW) {
        return dy[(this.thread.z * this.constants.outH + oy) * this.constants.outW + ox];
      }
      return 0;
    },
    output: [info.outW + 2 * (info.K - 1), info.outH + 2 * (info.K - 1), info.M * info.B * info.outC],
    constants: { ...info },
    flops: 0,
  };
}

/** flip(wᵀ)[m,ci,co,ky,kx] = w[m,co,ci,K-1-ky,K-1-kx]. Grid [K*K, outC, M*inC]. */
export function conv2dFlipWeights(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.flipWeights',
    fn: function (this: This, w: Float32Array): number {
      const ci = this.thread.z % this.constants.inC;
      const m = Math.floor(this.thread.z / this.constants.inC);
      const kk = this.constants.K * this.constants.K - 1 - this.thread.x;
      return w[((m * this.constants.outC + this.thread.y) * this.constants.inC + ci) * this.constants.K * this.constants.K + kk];
    },
    output: [info.K * info.K, info.outC, info.M * info.inC],
    constants: { ...info },
    flops: 0,
  };
}

/** dw[m,co,ci,ky,kx] = Σ_b,oy,ox dy[m,b,co,oy,ox] · x[m,b,ci,oy+ky,ox+kx]. Grid [K*K, inC, M*outC]. */
export function conv2dGradWeight(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.gradWeight',
    fn: function (this: This, dy: Float32Array, x: Float32Array): number {
      const ky = Math.floor(this.thread.x / this.constants.K);
      const kx = this.thread.x - ky * this.constants.K;
      const co = this.thread.z % this.constants.outC;
      const m = Math.floor(this.thread.z / this.constants.outC);
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        for (let oy = 0; oy < this.constants.outH; oy++) {
          for (let ox = 0; ox < this.constants.outW; ox++) {
            sum += dy[(((m * this.constants.B + b) * this.constants.outC + co) * this.constants.outH + oy) * this.constants.outW + ox]
              * x[m * this.constants.xModelStride
                + ((b * this.constants.inC + this.thread.y) * this.constants.inH + oy + ky) * this.constants.inW + ox + kx];
          }
        }
      }
      return sum;
    },
    output: [info.K * info.K, info.inC, info.M * info.outC],
    constants: { ...info },
    flops: 2 * info.M * info.B * info.outC * info.outH * info.outW * info.inC * info.K * info.K,
  };
}

/** db[m,co] = Σ_b,oy,ox dy[m,b,co,oy,ox]. Grid [outC, M]. */
export function conv2dGradBias(info: Conv2DInfo): KernelSpec {
  return {
    name: 'conv2d.gradBias',
    fn: function (this: This, dy: Float32Array): number {
      let sum = 0;
      for (let b = 0; b < this.constants.B; b++) {
        for (let p = 0; p < this.constants.outH * this.constants.outW; p++) {
          sum += dy[((this.thread.y * this.constants.B + b) * this.constants.outC + this.thread.x)
            * this.constants.outH * this.constants.outW + p];
        }
      }
      return sum;
    },
    output: [info.outC, info.M],
    constants: { ...info },
    flops: info.M * info.B * info.outC * info.outH * info.outW,
  };
}
