/**
 * Optimizer updates, elementwise over a parameter tensor of all M models at once (PyTorch semantics).
 * Hyper-parameters are scalar arguments, so a learning-rate schedule never recompiles a kernel.
 * Each kernel produces one tensor; an optimizer step chains them (GPU.js kernels have one output).
 */
import type { ElementwiseInfo } from './relu.ts';
import type { KernelSpec, KernelThis } from './spec.ts';

type This = KernelThis<ElementwiseInfo>;

/** SGD momentum buffer: buf' = momentum · buf + (g + wd · w). Grid [n]. */
export function sgdMomentumBuffer(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'sgd.momentumBuffer',
    fn: function (this: This, w: Float32Array, g: Float32Array, buf: Float32Array, momentum: number, weightDecay: number): number {
      const i = this.thread.x;
      return momentum * buf[i] + g[i] + weightDecay * w[i];
    },
    output: [info.n], constants: { ...info }, flops: 4 * info.n,
  };
}

/** SGD step without momentum: w' = w - lr · (g + wd · w). Grid [n]. */
export function sgdStep(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'sgd.step',
    fn: function (this: This, w: Float32Array, g: Float32Array, lr: number, weightDecay: number): number {
      const i = this.thread.x;
      return w[i] - lr * (g[i] + weightDecay * w[i]);
    },
    output: [info.n], constants: { ...info }, flops: 4 * info.n,
  };
}

/** Adadelta running average of squared gradients: sa' = rho · sa + (1 - rho) · g'². Grid [n]. */
export function adadeltaSquareAvg(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'adadelta.squareAvg',
    fn: function (this: This, w: Float32Array, g: Float32Array, squareAvg: Float32Array, rho: number, weightDecay: number): number {
      const i = this.thread.x;
      const grad = g[i] + weightDecay * w[i];
      return rho * squareAvg[i] + (1 - rho) * grad * grad;
    },
    output: [info.n], constants: { ...info }, flops: 6 * info.n,
  };
}

/** Adadelta update direction: delta = sqrt(ad + eps) / sqrt(sa' + eps) · g'. Grid [n]. */
export function adadeltaDelta(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'adadelta.delta',
    fn: function (this: This, w: Float32Array, g: Float32Array, squareAvgNew: Float32Array, accDelta: Float32Array, eps: number, weightDecay: number): number {
      const i = this.thread.x;
      const grad = g[i] + weightDecay * w[i];
      return Math.sqrt(accDelta[i] + eps) / Math.sqrt(squareAvgNew[i] + eps) * grad;
    },
    output: [info.n], constants: { ...info }, flops: 8 * info.n,
  };
}

/** Adadelta running average of squared updates: ad' = rho · ad + (1 - rho) · delta². Grid [n]. */
export function adadeltaAccDelta(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'adadelta.accDelta',
    fn: function (this: This, accDelta: Float32Array, delta: Float32Array, rho: number): number {
      const i = this.thread.x;
      return rho * accDelta[i] + (1 - rho) * delta[i] * delta[i];
    },
    output: [info.n], constants: { ...info }, flops: 4 * info.n,
  };
}

/** w' = w - lr · d: applies an update direction (Adadelta's delta, SGD's momentum buffer). Grid [n]. */
export function applyUpdate(info: ElementwiseInfo): KernelSpec {
  return {
    name: 'optim.applyUpdate',
    fn: function (this: This, w: Float32Array, d: Float32Array, lr: number): number {
      return w[this.thread.x] - lr * d[this.thread.x];
    },
    output: [info.n], constants: { ...info }, flops: 2 * info.n,
  };
}
