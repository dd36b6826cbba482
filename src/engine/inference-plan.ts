/**
 * Inference for M stacked models as one compiled plan: the steps of `kernels/fused-forward.ts` (five fused kernels
 * and a transpose) chained by `Device.plan`, one plan per batch size. The weights are resident (uploaded once, at a
 * plan's first run); a call uploads only the images and reads back only the log-probabilities. One call is one
 * plan run: on webgpu one submission for the whole forward of every model.
 *
 * The weights come from a loader. On webasm a plan lets go of the loaded arrays after its first run, since it
 * holds its own copy (`Plan.releaseBuildInputs`): a replicated model's stacked group then lives on the host only
 * until then, and a later batch size calls the loader again. Elsewhere the plans keep the loaded arrays, and every
 * batch size's plan is built from that one loaded set (each plan also keeps its own channels-last copies of the two
 * convolutions' weights, 1.2 KB and 74 KB a model).
 */
import { IMAGE_SIDE, NUM_CLASSES, type ParamSet } from '../model/cnn.ts';
import type { Device, Plan } from './device.ts';
import { cnnShapes, maxServingBatch } from './shapes.ts';
import {
  conv2dBiasReluPoolQuadResident, conv2dBiasReluPoolResident, conv2dBiasReluResident, linearLogSoftmaxResident, linearPartialsBiasRelu, linearPartialsQuadResident, linearPartialsResident,
} from '../../kernels/fused-forward.ts';
import { pooledToChannelsFirst, transposePlanes } from '../../kernels/layout.ts';

/** Let go of at least this many bytes of host weights, a plan asks for a full garbage collection. */
const COLLECT_AFTER_BYTES = 64 * 2 ** 20;

export class InferencePlan {
  readonly numModels: number;
  private readonly device: Device;
  private readonly loadWeights: () => ParamSet;
  /** One compiled plan per batch size seen (the grid is part of a compiled kernel). */
  private readonly plans = new Map<number, Plan>();
  /** The loaded weights, while a plan may still need them: until a first run lets them go, or for good. */
  private loaded: ParamSet | null = null;
  /** Whether the loaded weights are this plan's alone, so that letting go of them frees them. */
  private readonly freshWeights: boolean;
  /** Calls run one after another, so a call after a failed one finds the failed plan already replaced. */
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * weights: M models stacked, or a loader that builds them (on webasm called once per batch size).
   * freshWeights: the loader builds new arrays that nothing else holds, so that letting go of them frees them.
   */
  constructor(device: Device, weights: ParamSet | (() => ParamSet), numModels: number, opts: { freshWeights?: boolean } = {}) {
    this.device = device;
    this.loadWeights = typeof weights === 'function' ? weights : () => weights;
    this.freshWeights = typeof weights === 'function' && (opts.freshWeights ?? false);
    this.numModels = numModels;
  }

  /** The largest batch one plan call takes: conv1's output, the largest intermediate, must stay indexable. */
  get maxBatch(): number {
    return maxServingBatch(this.device, this.numModels);
  }

  /** x: [B,1,28,28] shared by every model; returns log-probabilities [M, B, 10]. A large B runs in chunks. */
  async predict(x: Float32Array, B: number): Promise<Float32Array> {
    const pixels = IMAGE_SIDE * IMAGE_SIDE;
    if (x.length !== B * pixels) throw new Error(`InferencePlan: input holds ${x.length} values, expected ${B * pixels}`);
    const chunk = this.maxBatch;
    if (B <= chunk) return this.run(B, x);
    const M = this.numModels;
    const logp = new Float32Array(M * B * NUM_CLASSES);
    for (let start = 0; start < B; start += chunk) {
      const Bc = Math.min(chunk, B - start);
      const part = await this.run(Bc, x.subarray(start * pixels, (start + Bc) * pixels));
      for (let m = 0; m < M; m++) {
        logp.set(part.subarray(m * Bc * NUM_CLASSES, (m + 1) * Bc * NUM_CLASSES), (m * B + start) * NUM_CLASSES);
      }
    }
    return logp;
  }

  /** How GPU.js ran the plan (see `Plan.executorKind`); 'not run yet' before the first call. */
  get executorKind(): string {
    const first = this.plans.values().next().value;
    return first ? first.executorKind : 'not run yet';
  }

  get fallbackReason(): string | null {
    const first = this.plans.values().next().value;
    return first ? first.fallbackReason : null;
  }

  /**
   * One call of the plan for B. After its first run the plan holds its own copy of the weights and lets go of
   * the loaded arrays (`Plan.releaseBuildInputs`); a plan whose run failed is dropped, and the next call builds
   * it again from the loader.
   */
  private run(B: number, x: Float32Array): Promise<Float32Array> {
    const result = this.queue.then(async () => {
      const plan = this.planFor(B);
      try {
        const logp = await plan.run(x);
        if (plan.releaseBuildInputs() && this.loaded) {
          // a group the loader stacked afresh (a replicated model's: hundreds of MB at N = 64) is garbage now;
          // views of a loaded file, or the model itself, free nothing. Only a count is kept: a reference to the
          // arrays would keep them alive through the collection.
          const freedBytes = this.freshWeights ? Object.values(this.loaded).reduce((sum, a) => sum + a.byteLength, 0) : 0;
          this.loaded = null;
          if (freedBytes >= COLLECT_AFTER_BYTES) this.device.collectGarbage();
        }
        return logp;
      } catch (e) {
        this.plans.delete(B);
        plan.destroy();
        throw e;
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private planFor(B: number): Plan {
    let plan = this.plans.get(B);
    if (plan) return plan;
    const M = this.numModels;
    const p = this.loaded ??= this.loadWeights();
    const { conv1, conv2, pool, fc1, fc2 } = cnnShapes(M, B, true);
    const vectorCells = this.device.planVectorCells;
    const fc1Quad = vectorCells && B % 4 === 0;
    plan = this.device.plan([
      conv2dBiasReluResident(conv1, { weight: p['conv1.weight'], bias: p['conv1.bias'] }),
      // four channels per cell where a step may pass vector cells on: the same output, each input read shared more
      (vectorCells ? conv2dBiasReluPoolQuadResident : conv2dBiasReluPoolResident)(
        conv2, pool, { weight: p['conv2.weight'], bias: p['conv2.bias'] }),
      // [M, B, poolH*poolW, C] → [M, B, C, poolH*poolW], PyTorch's order for fc1
      transposePlanes(pooledToChannelsFirst(pool)),
      // and four images a cell in fc1 where the batch is a multiple of 4: each weight read serves four images
      (fc1Quad ? linearPartialsQuadResident : linearPartialsResident)(fc1, p['fc1.weight']),
      linearPartialsBiasRelu(fc1, p['fc1.bias'], fc1Quad ? 4 : 1),
      linearLogSoftmaxResident(fc2, { weight: p['fc2.weight'], bias: p['fc2.bias'] }),
    ], ([c1, c2, toChannelsFirst, f1, f1Relu, f2], x) => f2(f1Relu(f1(toChannelsFirst(c2(c1(x)))))));
    this.plans.set(B, plan);
    return plan;
  }

  /** Frees every compiled plan and its resident weights. */
  destroy(): void {
    for (const plan of this.plans.values()) plan.destroy();
    this.plans.clear();
  }
}
