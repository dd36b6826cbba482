/**
 * The training loop of the PyTorch example, for K models trained together in one dispatch per layer:
 * each model has its own seed (seed, seed+1, …), hence its own initialisation, shuffle order and dropout masks,
 * and all K take their step on the same device call. Per epoch: shuffle, batches of `batchSize` (the last one
 * may be smaller), dropout on, NLL loss, optimizer step; the learning rate follows StepLR.
 */
import { DROPOUT1, DROPOUT2, FC1, NUM_CLASSES, type ParamSet } from '../model/cnn.ts';
import { argmax } from '../model/outputs.ts';
import { stackParams } from '../model/stack.ts';
import type { Device } from './device.ts';
import { InferencePlan } from './inference-plan.ts';
import { initParams } from './init.ts';
import { Net, POOLED_FEATURES, type DropoutMasks } from './net.ts';
import { Optimizer, stepLr, type OptimizerConfig } from './optimizer.ts';
import { deriveSeed, dropoutMask, makeRng, permutation } from './random.ts';
import { gatherNormalized, type DigitSet } from '../data/mnist.ts';
import { IMAGE_PIXELS } from '../data/normalize.ts';

export interface TrainConfig {
  numModels: number;
  /** model i uses seed + i */
  seed: number;
  batchSize: number;
  testBatchSize: number;
  lr: number;
  gamma: number;
  optimizer: OptimizerConfig;
  /** one batch per epoch */
  dryRun: boolean;
}

export interface BatchReport {
  epoch: number;          // 1-based, as the PyTorch example prints it
  batchIndex: number;     // 0-based
  batches: number;        // in this epoch
  seen: number;           // samples of this epoch so far, per model, including this batch
  total: number;          // training samples per model
  loss: Float32Array;     // per model
}

export interface EvalReport {
  /** mean NLL per model over the set */
  loss: number[];
  correct: number[];
  total: number;
  /** argmax of the mean of the K models' probabilities */
  ensembleCorrect: number;
}

/** Everything needed to continue training exactly where it stopped. */
export interface TrainState {
  epochsDone: number;
  params: ParamSet;
  optimizerState: Map<string, Float32Array>;
}

const STREAM_SHUFFLE = 1;
const STREAM_DROPOUT = 2;

export class Trainer {
  readonly net: Net;
  readonly optimizer: Optimizer;
  readonly config: TrainConfig;
  epochsDone: number;

  constructor(device: Device, config: TrainConfig, resume?: TrainState) {
    this.config = config;
    const K = config.numModels;
    const params = resume?.params ?? stackParams(Array.from({ length: K }, (_, i) => initParams(config.seed + i)));
    this.net = new Net(device, K, params);
    this.optimizer = new Optimizer(device, config.optimizer, params, resume?.optimizerState);
    this.epochsDone = resume?.epochsDone ?? 0;
  }

  /** The learning rate of the next epoch (StepLR, step 1). */
  get lr(): number {
    return stepLr(this.config.lr, this.config.gamma, this.epochsDone);
  }

  state(): TrainState {
    return { epochsDone: this.epochsDone, params: this.net.params, optimizerState: this.optimizer.state };
  }

  /**
   * One epoch over `train`. `shouldStop` is polled between batches: when it answers true the epoch is
   * abandoned (weights then hold a partial epoch; the caller keeps the last finished one).
   */
  async trainEpoch(train: DigitSet, onBatch?: (r: BatchReport) => void, shouldStop?: () => boolean): Promise<boolean> {
    const { numModels: K, batchSize, seed } = this.config;
    const epoch = this.epochsDone;
    const lr = this.lr;
    const orders = Array.from({ length: K }, (_, i) => permutation(makeRng(deriveSeed(seed + i, epoch, STREAM_SHUFFLE)), train.count));
    const maskRngs = Array.from({ length: K }, (_, i) => makeRng(deriveSeed(seed + i, epoch, STREAM_DROPOUT)));
    const batches = this.config.dryRun ? 1 : Math.ceil(train.count / batchSize);
    for (let bi = 0; bi < batches; bi++) {
      if (shouldStop?.()) return false;
      const start = bi * batchSize;
      const B = Math.min(batchSize, train.count - start);
      const x = new Float32Array(K * B * IMAGE_PIXELS);
      const targets = new Float32Array(K * B);
      const drop1 = new Float32Array(K * B * POOLED_FEATURES);
      const drop2 = new Float32Array(K * B * FC1.outFeatures);
      for (let i = 0; i < K; i++) {
        const indices = orders[i].subarray(start, start + B);
        gatherNormalized(train, indices, x, i * B);
        for (let k = 0; k < B; k++) targets[i * B + k] = train.labels[indices[k]];
        dropoutMask(maskRngs[i], B * POOLED_FEATURES, DROPOUT1, drop1.subarray(i * B * POOLED_FEATURES, (i + 1) * B * POOLED_FEATURES));
        dropoutMask(maskRngs[i], B * FC1.outFeatures, DROPOUT2, drop2.subarray(i * B * FC1.outFeatures, (i + 1) * B * FC1.outFeatures));
      }
      const loss = await trainStep(this.net, this.optimizer, { x, B, targets, dropout: { drop1, drop2 } }, lr);
      onBatch?.({ epoch: epoch + 1, batchIndex: bi, batches, seen: start + B, total: train.count, loss });
    }
    this.epochsDone++;
    return true;
  }

  /** Test-set loss and accuracy of each model and of their ensemble; every model sees the same batches. */
  async evaluate(set: DigitSet): Promise<EvalReport> {
    return evaluateModels(this.net, set, this.config.testBatchSize);
  }
}

/** One batch of per-model inputs x [K,B,1,28,28], targets [K,B] and the dropout masks of its forward pass. */
export interface TrainBatch { x: Float32Array; B: number; targets: Float32Array; dropout: DropoutMasks }

/**
 * One training step: forward, backward and the optimizer's update, run as one `Device.scope`, which owns its
 * memory: the step's results (the forward cache, the gradients, the optimizer's intermediates) go back to the
 * device when it ends, the new parameters and optimizer state survive it (the optimizer keeps them), and so does
 * the returned loss of each model. The batch's own arrays were not made by the device and are left alone.
 */
export async function trainStep(net: Net, optimizer: Optimizer, batch: TrainBatch, lr: number): Promise<Float32Array> {
  return net.device.scope(async () => {
    const { cache } = await net.forward(batch.x, batch.B, { sharedInput: false, dropout: batch.dropout });
    const { loss, grads } = await net.backward(cache, batch.targets);
    await optimizer.step(net.params, grads, lr);
    return loss;
  });
}

/**
 * Evaluates through an inference plan of the current weights, the path `predict` and `bench` serve with, so a
 * saved model reproduces these figures exactly; the plan (its resident weights) is freed afterwards.
 */
export async function evaluateModels(net: Net, set: DigitSet, batchSize: number): Promise<EvalReport> {
  const K = net.numModels;
  const plan = new InferencePlan(net.device, net.params, K);
  try {
    return await evaluateWith(plan, K, set, batchSize);
  } finally {
    plan.destroy();
  }
}

async function evaluateWith(plan: InferencePlan, K: number, set: DigitSet, batchSize: number): Promise<EvalReport> {
  const lossSum = new Array<number>(K).fill(0);
  const correct = new Array<number>(K).fill(0);
  let ensembleCorrect = 0;
  for (let start = 0; start < set.count; start += batchSize) {
    const B = Math.min(batchSize, set.count - start);
    const x = new Float32Array(B * IMAGE_PIXELS);
    gatherNormalized(set, Array.from({ length: B }, (_, k) => start + k), x);
    const logp = await plan.predict(x, B);
    for (let b = 0; b < B; b++) {
      const label = set.labels[start + b];
      const meanProb = new Float64Array(NUM_CLASSES);
      for (let i = 0; i < K; i++) {
        const row = (i * B + b) * NUM_CLASSES;
        lossSum[i] -= logp[row + label];
        if (argmax(logp, row) === label) correct[i]++;
        for (let c = 0; c < NUM_CLASSES; c++) meanProb[c] += Math.exp(logp[row + c]) / K;
      }
      if (argmax(meanProb, 0) === label) ensembleCorrect++;
    }
  }
  return { loss: lossSum.map((s) => s / set.count), correct, total: set.count, ensembleCorrect };
}
