/**
 * The two ways to serve N same-architecture models on one device:
 * - sequential: N nets of one model each, run one after another (N dispatches per layer);
 * - single dispatch: one net holding all N models stacked, one dispatch per layer (the counterpart of PyTorch's
 *   `torch.func.vmap` over `stack_module_state`).
 * Both take one batch shared by every model and return log-probabilities [N, B, 10].
 */
import { NUM_CLASSES, sliceModels, type ParamSet } from './architecture.ts';
import type { Device } from './device.ts';
import { Net, maxModelsPerDispatch } from './net.ts';

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
    this.nets = Array.from({ length: numModels }, (_, i) => new Net(device, 1, sliceModels(stacked, i, 1)));
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

/**
 * All models in one net. A device bounds how many models one dispatch holds (webasm: 14, by fc1's stacked
 * weight and float32 indexing); beyond that the models are split into as few groups as possible.
 */
export class SingleDispatchRunner implements Runner {
  readonly kind = 'single-dispatch';
  readonly numModels: number;
  /** dispatches per layer: 1 unless the device needed the models split into groups */
  readonly groups: number;
  private readonly nets: Net[];

  constructor(device: Device, stacked: ParamSet, numModels: number) {
    this.numModels = numModels;
    const perGroup = maxModelsPerDispatch(device);
    this.groups = Math.ceil(numModels / perGroup);
    const size = Math.ceil(numModels / this.groups);
    this.nets = [];
    for (let first = 0; first < numModels; first += size) {
      const count = Math.min(size, numModels - first);
      this.nets.push(new Net(device, count, sliceModels(stacked, first, count)));
    }
  }

  async predict(x: Float32Array, B: number): Promise<Float32Array> {
    if (this.nets.length === 1) return (await this.nets[0].forward(x, B, { sharedInput: true })).logp;
    const out = new Float32Array(this.numModels * B * NUM_CLASSES);
    let at = 0;
    for (const net of this.nets) {
      const { logp } = await net.forward(x, B, { sharedInput: true });
      out.set(logp, at);
      at += logp.length;
    }
    return out;
  }
}

export function makeRunner(kind: RunnerKind, device: Device, stacked: ParamSet, numModels: number): Runner {
  return kind === 'sequential' ? new SequentialRunner(device, stacked, numModels) : new SingleDispatchRunner(device, stacked, numModels);
}
