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
   * One update of every parameter, in place in `params` (arrays are replaced). The arrays replaced (parameters
   * and state from an earlier step) and this step's intermediates go back to the device for reuse, so nothing
   * may keep them across a step; arrays the device did not make (initial weights, loaded state) are left alone.
   */
  async step(params: ParamSet, grads: ParamSet, lr: number): Promise<void> {
    const d = this.device;
    const c = this.config;
    for (const { name } of PARAM_SPECS) {
      const w = params[name];
      const g = grads[name];
      const info = { n: w.length };
      if (c.kind === 'adadelta') {
        const oldSquareAvg = this.state.get(`${name}.square_avg`)!;
        const sa = await d.run(adadeltaSquareAvg(info), w, g, oldSquareAvg, c.rho, c.weightDecay);
        const ad = this.state.get(`${name}.acc_delta`)!;
        const delta = await d.run(adadeltaDelta(info), w, g, sa, ad, c.eps, c.weightDecay);
        this.state.set(`${name}.acc_delta`, await d.run(adadeltaAccDelta(info), ad, delta, c.rho));
        this.state.set(`${name}.square_avg`, sa);
        params[name] = await d.run(applyUpdate(info), w, delta, lr);
        d.recycle(oldSquareAvg, ad, delta, w);
      } else if (c.momentum > 0) {
        const oldBuf = this.state.get(`${name}.momentum_buffer`)!;
        const buf = await d.run(sgdMomentumBuffer(info), w, g, oldBuf, c.momentum, c.weightDecay);
        this.state.set(`${name}.momentum_buffer`, buf);
        params[name] = await d.run(applyUpdate(info), w, buf, lr);
        d.recycle(oldBuf, w);
      } else {
        params[name] = await d.run(sgdStep(info), w, g, lr, c.weightDecay);
        d.recycle(w);
      }
    }
  }
}
