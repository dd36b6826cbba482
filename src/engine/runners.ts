/**
 * The two ways to serve N same-architecture models on one device:
 * - sequential: N nets of one model each, run one after another (N dispatches per layer);
 * - single dispatch: one net holding all N models stacked, one dispatch per layer (the counterpart of PyTorch's
 *   `torch.func.vmap` over `stack_module_state`).
 * Both take one batch shared by every model and return log-probabilities [N, B, 10].
 */
import { NUM_CLASSES, sliceParams, type ParamSet } from './architecture.ts';
import type { Device } from './device.ts';
import { Net } from './net.ts';

export type RunnerKind = 'sequential' | 'single-dispatch';

export interface Runner {
  readonly kind: RunnerKind;
  readonly numModels: number;
  /** x: [B,1,28,28] normalised pixels; returns log-probabilities [N, B, 10]. */
  predict(x: Float32Array, B: number): Promise<Float32Array>;
}

export class SequentialRunner implements Runner {
  readonly kind = 'sequential';
  readonly numModels: number;
  private readonly nets: Net[];

  constructor(device: Device, stacked: ParamSet, numModels: number) {
    this.numModels = numModels;
    this.nets = Array.from({ length: numModels }, (_, i) => new Net(device, 1, sliceParams(stacked, i)));
  }

  async predict(x: Float32Array, B: number): Promise<Float32Array> {
    const out = new Float32Array(this.numModels * B * NUM_CLASSES);
    for (let i = 0; i < this.nets.length; i++) {
      const { logp } = await this.nets[i].forward(x, B, { sharedInput: true });
      out.set(logp, i * B * NUM_CLASSES);
    }
    return out;
  }
}

export class SingleDispatchRunner implements Runner {
  readonly kind = 'single-dispatch';
  readonly numModels: number;
  private readonly net: Net;

  constructor(device: Device, stacked: ParamSet, numModels: number) {
    this.numModels = numModels;
    this.net = new Net(device, numModels, stacked);
  }

  async predict(x: Float32Array, B: number): Promise<Float32Array> {
    return (await this.net.forward(x, B, { sharedInput: true })).logp;
  }
}

export function makeRunner(kind: RunnerKind, device: Device, stacked: ParamSet, numModels: number): Runner {
  return kind === 'sequential' ? new SequentialRunner(device, stacked, numModels) : new SingleDispatchRunner(device, stacked, numModels);
}
