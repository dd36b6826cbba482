/**
 * The CNN's kernel shapes (from the model's description through kernels/shapes.ts) and the limits a device's
 * exact index range sets on them: how many models one stacked kernel holds and how large a batch one pass takes.
 */
import { CONV1, CONV2, FC1, FC2, IMAGE_SIDE, PARAM_SPECS, elementCount } from '../model/cnn.ts';
import { computeConv2DInfo, computeLinearInfo, computePool2DInfo } from '../../kernels/shapes.ts';
import type { Device } from './device.ts';

/**
 * Every layer's kernel shapes for M models and a batch of B per model, derived from the architecture through
 * kernels/shapes.ts. `sharedInput`: every model reads the same batch (conv1's input is not per model).
 */
export function cnnShapes(M: number, B: number, sharedInput: boolean) {
  const conv1 = computeConv2DInfo({ M, B, inC: CONV1.inChannels, inH: IMAGE_SIDE, inW: IMAGE_SIDE, outC: CONV1.outChannels, K: CONV1.kernel, sharedInput });
  const conv2 = computeConv2DInfo({ M, B, inC: CONV2.inChannels, inH: conv1.outH, inW: conv1.outW, outC: CONV2.outChannels, K: CONV2.kernel });
  const pool = computePool2DInfo({ M, B, C: conv2.outC, inH: conv2.outH, inW: conv2.outW });
  const fc1 = computeLinearInfo({ M, B, inF: pool.C * pool.outH * pool.outW, outF: FC1.outFeatures });
  const fc2 = computeLinearInfo({ M, B, inF: FC2.inFeatures, outF: FC2.outFeatures });
  return { conv1, conv2, pool, fc1, fc2 };
}

/** The largest parameter of one model: fc1's weight. */
const LARGEST_PARAM = Math.max(...PARAM_SPECS.map((s) => elementCount(s.shape)));
/** conv1's output for one sample of one model: the serving plan's largest intermediate. */
const CONV1_OUT = (({ outC, outH, outW }) => outC * outH * outW)(cnnShapes(1, 1, true).conv1);
/**
 * The largest array of one sample of one model in training: conv2's output gradient, channels last, inside the
 * zero border of K - 1 cells its input gradient convolves (`maxPool2dReluBackwardChannelsLast`).
 */
const CONV2_GRAD_PADDED = (({ outC, outH, outW, K }) => outC * (outH + 2 * (K - 1)) * (outW + 2 * (K - 1)))(cnnShapes(1, 1, false).conv2);

/** How many models one stacked kernel holds on a device: every stacked array must stay within its exact index range. */
export function maxStackedModels(device: Device): number {
  return Math.floor(device.maxElements / LARGEST_PARAM);
}

/** The largest batch one serving plan run takes for M models: conv1's output must stay indexable. */
export function maxServingBatch(device: Device, M: number): number {
  return Math.floor(device.maxElements / (M * CONV1_OUT));
}

/** The largest training batch one pass takes for M models: conv2's padded output gradient must stay indexable. */
export function maxTrainingBatch(device: Device, M: number): number {
  return Math.floor(device.maxElements / (M * CONV2_GRAD_PADDED));
}
