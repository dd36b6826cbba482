/**
 * Optimizers over stacked parameters (all M models updated by one dispatch per kernel), PyTorch semantics:
 * Adadelta (the PyTorch example's default: lr 1.0, rho 0.9, eps 1e-6) and SGD with optional momentum and
 * weight decay; plus StepLR (step size 1): lr = lr0 · gamma^epoch.
 */
import { PARAM_SPECS, type ParamName, type ParamSet } from '../model/cnn.ts';
import type { Device } from './device.ts';
import {
  adadeltaAccDelta, adadeltaDelta, adadeltaSquareAvg, applyUpdate, sgdMomentumBuffer, sgdStep,
} from '../../kernels/optim.ts';

export type OptimizerConfig =
  | { kind: 'adadelta'; rho: number; eps: number; weightDecay: number }
  | { kind: 'sgd'; momentum: number; weightDecay: number };

export const ADADELTA_DEFAULTS = { kind: 'adadelta', rho: 0.9, eps: 1e-6, weightDecay: 0 } as const;

export function stepLr(lr0: number, gamma: number, epoch: number): number {
  return lr0 * gamma ** epoch;
}

/** Per-parameter optimizer state, named as PyTorch's state_dict names it (square_avg, acc_delta, momentum_buffer). */
export type OptimizerState = Partial<Record<string, Float32Array>>;

export class Optimizer {
  readonly config: OptimizerConfig;
  private readonly device: Device;
  /** `${param}.${buffer}` → stacked state, zeros at the start (PyTorch's lazy init is equivalent). */
  readonly state: Map<string, Float32Array>;

  constructor(device: Device, config: OptimizerConfig, params: ParamSet, state?: Map<string, Float32Array>) {
    this.device = device;
    this.config = config;
    this.state = state ?? new Map();
    for (const name of this.bufferNames()) {
      const param = params[name.slice(0, name.lastIndexOf('.')) as ParamName];
      const existing = this.state.get(name);
      if (existing && existing.length !== param.length) throw new Error(`optimizer state ${name} does not match its parameter`);
      if (!existing) this.state.set(name, new Float32Array(param.length));
    }
  }

  /** Names of the state buffers this optimizer keeps. */
  bufferNames(): string[] {
    const buffers = this.config.kind === 'adadelta' ? ['square_avg', 'acc_delta']
      : this.config.momentum > 0 ? ['momentum_buffer'] : [];
    return PARAM_SPECS.flatMap((s) => buffers.map((b) => `${s.name}.${b}`));
  }

  /**
   * One update of every parameter, in place in `params` (arrays are replaced). The new parameters and state outlive
   * the step (`Device.keep`); the arrays they replace (from an earlier step) go back to the device for reuse, so
   * nothing may keep them across a step; arrays the device did not make (initial weights, loaded state) are left
   * alone. This step's intermediates belong to the step that called it (`Device.scope`).
   */
  async step(params: ParamSet, grads: ParamSet, lr: number): Promise<void> {
    const d = this.device;
    const c = this.config;
    /** `next` survives the step in place of `old`, which goes back to the device (every reader of `old` has run). */
    const replace = (old: Float32Array, next: Float32Array): Float32Array => {
      d.keep(next);
      d.recycle(old);
      return next;
    };
    for (const { name } of PARAM_SPECS) {
      const w = params[name];
      const g = grads[name];
      const info = { n: w.length };
      if (c.kind === 'adadelta') {
        const sa = this.state.get(`${name}.square_avg`)!;
        const ad = this.state.get(`${name}.acc_delta`)!;
        const nextSa = await d.run(adadeltaSquareAvg(info), w, g, sa, c.rho, c.weightDecay);
        const delta = await d.run(adadeltaDelta(info), w, g, nextSa, ad, c.eps, c.weightDecay);
        const nextAd = await d.run(adadeltaAccDelta(info), ad, delta, c.rho);
        const nextW = await d.run(applyUpdate(info), w, delta, lr);
        this.state.set(`${name}.square_avg`, replace(sa, nextSa));
        this.state.set(`${name}.acc_delta`, replace(ad, nextAd));
        params[name] = replace(w, nextW);
      } else if (c.momentum > 0) {
        const buf = this.state.get(`${name}.momentum_buffer`)!;
        const nextBuf = await d.run(sgdMomentumBuffer(info), w, g, buf, c.momentum, c.weightDecay);
        const nextW = await d.run(applyUpdate(info), w, nextBuf, lr);
        this.state.set(`${name}.momentum_buffer`, replace(buf, nextBuf));
        params[name] = replace(w, nextW);
      } else {
        params[name] = replace(w, await d.run(sgdStep(info), w, g, lr, c.weightDecay));
      }
    }
  }
}
