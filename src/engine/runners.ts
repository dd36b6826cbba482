/**
 * The two ways to serve N same-architecture models on one device, both through compiled inference plans
 * (`InferencePlan`: the whole forward as one chain of fused kernels, weights resident):
 * - sequential: N plans of one model each, run one after another (N plan runs per request);
 * - single dispatch: one plan holding all N models stacked (one plan run per request: the counterpart of
 *   PyTorch's `torch.func.vmap` over `stack_module_state`).
 * Both take one batch shared by every model and return log-probabilities [N, B, 10]. Both serve the first N
 * models of a `ModelSource`, each plan loading its own group of them.
 */
import { NUM_CLASSES } from '../model/cnn.ts';
import type { ModelSource } from '../model/stack.ts';
import type { Device } from './device.ts';
import { InferencePlan } from './inference-plan.ts';
import { maxStackedModels } from './shapes.ts';

export type RunnerKind = 'sequential' | 'single-dispatch';

export interface Runner {
  readonly kind: RunnerKind;
  readonly numModels: number;
  /** Plan runs one request takes: N sequentially, 1 in single dispatch (a few groups past a device's limit). */
  readonly planRuns: number;
  /** How GPU.js executed the plans (e.g. 'fused-threaded', 'fused-encoder'); known after the first request. */
  readonly executorKind: string;
  /** x: [B,1,28,28] normalised pixels; returns log-probabilities [N, B, 10]. */
  predict(x: Float32Array, B: number): Promise<Float32Array>;
  /** Frees the compiled plans and their resident weights. */
  destroy(): void;
}

/** Runs plans one after another and concatenates their [models, B, 10] outputs. */
abstract class PlanRunner implements Runner {
  abstract readonly kind: RunnerKind;
  readonly numModels: number;
  protected readonly plans: InferencePlan[];

  protected constructor(numModels: number, plans: InferencePlan[], models: ModelSource) {
    // plans load their models on first use; a count the source cannot give fails now
    if (numModels > models.numModels) throw new RangeError(`${numModels} models asked of a source holding ${models.numModels}`);
    this.numModels = numModels;
    this.plans = plans;
  }

  get planRuns(): number {
    return this.plans.length;
  }

  get executorKind(): string {
    return this.plans[0]!.executorKind;
  }

  async predict(x: Float32Array, B: number): Promise<Float32Array> {
    if (this.plans.length === 1) return this.plans[0]!.predict(x, B);
    const out = new Float32Array(this.numModels * B * NUM_CLASSES);
    let at = 0;
    for (const plan of this.plans) {
      const logp = await plan.predict(x, B);
      out.set(logp, at);
      at += logp.length;
    }
    return out;
  }

  destroy(): void {
    for (const plan of this.plans) plan.destroy();
  }
}

/** N plans of one model each, run one after another: N plan runs per request. */
export class SequentialRunner extends PlanRunner {
  readonly kind = 'sequential';

  constructor(device: Device, models: ModelSource, numModels: number) {
    super(numModels, Array.from({ length: numModels }, (_, i) => new InferencePlan(device, () => models.slice(i, 1), 1, { freshWeights: models.slicesAreFresh(1) })), models);
  }
}

/**
 * All models stacked in one plan: one plan run per request. A device bounds how many models one plan holds
 * (the GL backends: 14, by fc1's stacked weight and float32 texture coordinates); beyond that the models are split into as few
 * groups as possible.
 */
export class SingleDispatchRunner extends PlanRunner {
  readonly kind = 'single-dispatch';

  constructor(device: Device, models: ModelSource, numModels: number) {
    const groups = Math.ceil(numModels / maxStackedModels(device));
    const size = Math.ceil(numModels / groups);
    const plans: InferencePlan[] = [];
    for (let first = 0; first < numModels; first += size) {
      const count = Math.min(size, numModels - first);
      plans.push(new InferencePlan(device, () => models.slice(first, count), count, { freshWeights: models.slicesAreFresh(count) }));
    }
    super(numModels, plans, models);
  }
}
