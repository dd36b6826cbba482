/**
 * The CNN for M models at once in training, composed from the per-layer kernels: the forward pass with dropout
 * keeping what the backward pass needs, and the backward pass; one dispatch per layer for all M models (M = 1 is
 * an ordinary single model). Parameters are stacked along a leading model dimension, PyTorch layout. Inference
 * (evaluation and serving) runs through `InferencePlan` instead: one compiled plan with resident weights.
 *
 * Two input modes: `sharedInput` (every model sees the same batch x [B,1,28,28]) and per-model batches
 * (x [M,B,1,28,28], for training M models on different shuffles).
 *
 * Memory: a result nothing in the pass reads again is handed back to the device as soon as its last reader has
 * run (`consume`, `recycle`), so a later kernel of the same step is read back into it. Everything else the passes
 * return (the cache, the gradients, the loss) belongs to the step that called them: run inside `Device.scope`,
 * it is handed back when that step ends unless the step returns or keeps it.
 */
import { DROPOUT1, DROPOUT2, FC1, IMAGE_SIDE, NUM_CLASSES, PARAM_SPECS, elementCount, type ParamSet } from '../model/cnn.ts';
import type { Device } from './device.ts';
import { cnnShapes, maxStackedModels, maxTrainingBatch } from './shapes.ts';
import type { KernelSpec } from '../../kernels/spec.ts';
import { computeRowsInfo } from '../../kernels/shapes.ts';
import { conv2dForward, conv2dGradBias, conv2dGradWeight, conv2dGradWeightLayout, conv2dLayoutRelu } from '../../kernels/conv2d.ts';
import {
  conv2dFlipWeightsChannelsLast, conv2dGradBiasPooled, conv2dGradInputChannelsLast, conv2dGradInputReluLayout,
  conv2dGradWeightPooled, conv2dGradWeightPooledLayout, maxPool2dReluBackwardChannelsLast, maxPool2dReluWindows,
} from '../../kernels/conv2d-pool-backward.ts';
import { convInputToChannelsLast, transposePlanes } from '../../kernels/layout.ts';
import { reluBackward } from '../../kernels/relu.ts';
import { maxPool2dRelu, maxPool2dReluArgmax } from '../../kernels/pool.ts';
import { computeDropoutInfo, dropoutApply } from '../../kernels/dropout.ts';
import {
  linearForward, linearGradBias, linearGradInput, linearGradWeight, linearRowQuads, linearRows, linearRowsDropout, linearRowsRelu,
} from '../../kernels/linear.ts';
import { logSoftmaxForward, logSoftmaxNllBackward, nllLoss } from '../../kernels/log-softmax-nll.ts';

/** 0/1 masks for the two dropout layers: drop1 [M,B,9216] after the pool, drop2 [M,B,128] after fc1's ReLU. */
export interface DropoutMasks { drop1: Float32Array; drop2: Float32Array }

export interface ForwardOptions {
  sharedInput: boolean;
  dropout: DropoutMasks;
}

/** What the backward pass needs from the forward pass. */
export interface ForwardCache {
  B: number; sharedInput: boolean; masks: DropoutMasks;
  x: Float32Array; h1: Float32Array; pooled: Float32Array; argmax: Float32Array;
  d1: Float32Array; h3: Float32Array; d2: Float32Array; logp: Float32Array;
}

export interface ForwardResult {
  /** log-probabilities [M, B, 10] */
  logp: Float32Array;
  cache: ForwardCache;
}

export interface BackwardResult {
  /** mean NLL loss of each model over its batch */
  loss: Float32Array;
  grads: ParamSet;
}

export const POOLED_FEATURES = FC1.inFeatures;

/** Every kernel spec of the network for one (M, B, input mode), derived once from the architecture. */
function buildLayers(M: number, B: number, sharedInput: boolean) {
  const { conv1, conv2, pool, fc1, fc2 } = cnnShapes(M, B, sharedInput);
  const rows = computeRowsInfo({ M, B, C: NUM_CLASSES });
  const h3 = { n: M * B * fc1.outF };
  const dropout1 = computeDropoutInfo(M * B * fc1.inF, DROPOUT1);
  const dropout2 = computeDropoutInfo(h3.n, DROPOUT2);
  return {
    conv1: conv2dForward(conv1), conv1Relu: conv2dLayoutRelu(conv1),
    // conv2's ReLU is fused into the pool, which reads the convolution's column output directly
    conv2: conv2dForward(conv2), pool: maxPool2dRelu(pool), poolArgmax: maxPool2dReluArgmax(pool),
    drop1: dropoutApply(dropout1),
    fc1: linearForward(fc1), fc1RowsRelu: linearRowsRelu(linearRowQuads(fc1, 'forward')),
    drop2: dropoutApply(dropout2),
    fc2: linearForward(fc2), fc2Rows: linearRows(linearRowQuads(fc2, 'forward')), logSoftmax: logSoftmaxForward(rows),
    nll: nllLoss(rows), logSoftmaxNllBack: logSoftmaxNllBackward(rows),
    fc2GradW: linearGradWeight(fc2), fc2GradWRows: linearRows(linearRowQuads(fc2, 'gradWeight')), fc2GradB: linearGradBias(fc2),
    fc2GradIn: linearGradInput(fc2), fc2GradInRowsDropout: linearRowsDropout(linearRowQuads(fc2, 'gradInput'), dropout2),
    relu3Back: reluBackward(h3),
    fc1GradW: linearGradWeight(fc1), fc1GradWRows: linearRows(linearRowQuads(fc1, 'gradWeight')), fc1GradB: linearGradBias(fc1),
    fc1GradIn: linearGradInput(fc1), fc1GradInRowsDropout: linearRowsDropout(linearRowQuads(fc1, 'gradInput'), dropout1),
    // conv2 → ReLU → pool backward, channels last: kernels/conv2d-pool-backward.ts
    // conv1's output [M, B, C, H*W] → [M, B, H*W, C]
    h1Last: transposePlanes(convInputToChannelsLast(conv2)), poolWindows: maxPool2dReluWindows(conv2, pool),
    conv2GradW: conv2dGradWeightPooled(conv2, pool), conv2GradWLayout: conv2dGradWeightPooledLayout(conv2),
    conv2GradB: conv2dGradBiasPooled(conv2, pool),
    poolReluBack: maxPool2dReluBackwardChannelsLast(conv2, pool), conv2FlipW: conv2dFlipWeightsChannelsLast(conv2),
    conv2GradIn: conv2dGradInputChannelsLast(conv2, pool), conv2GradInReluLayout: conv2dGradInputReluLayout(conv2, pool),
    conv1GradW: conv2dGradWeight(conv1), conv1GradWLayout: conv2dGradWeightLayout(conv1), conv1GradB: conv2dGradBias(conv1),
  };
}
type Layers = ReturnType<typeof buildLayers>;

export class Net {
  readonly device: Device;
  readonly numModels: number;
  /** Stacked parameters [M, ...]; the optimizer replaces these arrays after each step. */
  params: ParamSet;
  private readonly layers = new Map<string, Layers>();

  constructor(device: Device, numModels: number, params: ParamSet) {
    if (numModels > maxStackedModels(device)) {
      throw new Error(`Net: ${numModels} models exceed the ${maxStackedModels(device)} one stacked kernel holds on ${device.backend}`);
    }
    for (const spec of PARAM_SPECS) {
      const expected = numModels * elementCount(spec.shape);
      if (params[spec.name]?.length !== expected) {
        throw new Error(`Net: ${spec.name} holds ${params[spec.name]?.length} values, expected ${expected} for ${numModels} model(s)`);
      }
    }
    this.device = device;
    this.numModels = numModels;
    this.params = params;
  }

  /** The largest training batch one pass can take on this device. */
  maxBatch(): number {
    return maxTrainingBatch(this.device, this.numModels);
  }

  private layersFor(B: number, sharedInput: boolean): Layers {
    const key = `${B}|${sharedInput}`;
    let layers = this.layers.get(key);
    if (!layers) {
      layers = buildLayers(this.numModels, B, sharedInput);
      this.layers.set(key, layers);
    }
    return layers;
  }

  /** x: [B,1,28,28] when sharedInput, else [M,B,1,28,28], normalised pixels; B at most `maxBatch()`. */
  async forward(x: Float32Array, B: number, opts: ForwardOptions): Promise<ForwardResult> {
    const M = this.numModels;
    const pixels = IMAGE_SIDE * IMAGE_SIDE;
    const expected = (opts.sharedInput ? 1 : M) * B * pixels;
    if (x.length !== expected) throw new Error(`Net.forward: input holds ${x.length} values, expected ${expected}`);
    const limit = this.maxBatch();
    if (B > limit) throw new Error(`Net: a training batch of ${B} for ${M} model(s) exceeds the ${limit} one pass holds on ${this.device.backend}`);
    const masks = opts.dropout;
    if (masks.drop1.length !== M * B * POOLED_FEATURES || masks.drop2.length !== M * B * FC1.outFeatures) {
      throw new Error('Net.forward: dropout masks do not match [M, B, features]');
    }
    const L = this.layersFor(B, opts.sharedInput);
    const p = this.params;
    const d = this.device;
    const h1 = await this.consume(L.conv1Relu, await d.run(L.conv1, x, p['conv1.weight'], p['conv1.bias']));
    const y2 = await d.run(L.conv2, h1, p['conv2.weight'], p['conv2.bias']);
    const pooled = await d.run(L.pool, y2);
    const argmax = await this.consume(L.poolArgmax, y2);
    const d1 = await d.run(L.drop1, pooled, masks.drop1);
    const h3 = await this.consume(L.fc1RowsRelu, await d.run(L.fc1, d1, p['fc1.weight'], p['fc1.bias']));
    const d2 = await d.run(L.drop2, h3, masks.drop2);
    const logp = await this.consume(L.logSoftmax, await this.consume(L.fc2Rows, await d.run(L.fc2, d2, p['fc2.weight'], p['fc2.bias'])));
    return { logp, cache: { B, sharedInput: opts.sharedInput, masks, x, h1, pooled, argmax, d1, h3, d2, logp } };
  }

  /** Gradients of each model's mean NLL loss; targets [M, B] class indices. */
  async backward(cache: ForwardCache, targets: Float32Array): Promise<BackwardResult> {
    const M = this.numModels;
    if (targets.length !== M * cache.B) throw new Error(`Net.backward: ${targets.length} targets, expected ${M * cache.B}`);
    const L = this.layersFor(cache.B, cache.sharedInput);
    const p = this.params;
    const d = this.device;
    const loss = await d.run(L.nll, cache.logp, targets);
    const dz2 = await d.run(L.logSoftmaxNllBack, cache.logp, targets);
    const grads = {} as ParamSet;
    grads['fc2.weight'] = await this.consume(L.fc2GradWRows, await d.run(L.fc2GradW, dz2, cache.d2));
    grads['fc2.bias'] = await d.run(L.fc2GradB, dz2);
    const dh3 = await this.consume(L.fc2GradInRowsDropout, await this.consume(L.fc2GradIn, dz2, p['fc2.weight']), cache.masks.drop2);
    const dz1 = await d.run(L.relu3Back, cache.h3, dh3);
    d.recycle(dh3);
    grads['fc1.weight'] = await this.consume(L.fc1GradWRows, await d.run(L.fc1GradW, dz1, cache.d1));
    grads['fc1.bias'] = await d.run(L.fc1GradB, dz1);
    const dPooled = await this.consume(L.fc1GradInRowsDropout, await this.consume(L.fc1GradIn, dz1, p['fc1.weight']), cache.masks.drop1);
    // conv2's weight and bias gradients from the pooled windows, its input gradient from the dense output gradient
    const windows = await d.run(L.poolWindows, cache.argmax, dPooled, cache.pooled);
    d.recycle(dPooled);
    const h1Last = await d.run(L.h1Last, cache.h1);
    const conv2Rows = await d.run(L.conv2GradW, windows, h1Last);
    d.recycle(h1Last);
    grads['conv2.weight'] = await this.consume(L.conv2GradWLayout, conv2Rows);
    grads['conv2.bias'] = await d.run(L.conv2GradB, windows);
    const dy2 = await this.consume(L.poolReluBack, windows);
    const flipped = await d.run(L.conv2FlipW, p['conv2.weight']);
    const da1 = await this.consume(L.conv2GradInReluLayout, await this.consume(L.conv2GradIn, dy2, flipped), cache.h1);
    d.recycle(flipped);
    grads['conv1.weight'] = await this.consume(L.conv1GradWLayout, await d.run(L.conv1GradW, da1, cache.x));
    grads['conv1.bias'] = await this.consume(L.conv1GradB, da1);
    return { loss, grads };
  }

  /** Runs `spec` with `spent` as its first argument, then hands `spent` back: a result nothing reads again. */
  private async consume(spec: KernelSpec, spent: Float32Array, ...rest: Array<Float32Array | number>): Promise<Float32Array> {
    const out = await this.device.run(spec, spent, ...rest);
    this.device.recycle(spent);
    return out;
  }
}
