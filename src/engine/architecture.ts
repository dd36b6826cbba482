import { InputError } from '../errors.ts';
import { computeConv2DInfo, computeLinearInfo, computePool2DInfo } from '../../kernels/shapes.ts';

/**
 * The PyTorch-examples MNIST CNN, described once. Every other module (model files, kernels' shapes,
 * the Net) derives its sizes from here.
 *
 * input [B,1,28,28] → conv1 (1→32, 3x3) → ReLU → conv2 (32→64, 3x3) → ReLU → max_pool 2x2
 * → dropout(0.25) → flatten (9216) → fc1 (9216→128) → ReLU → dropout(0.5) → fc2 (128→10) → log_softmax
 */
export const IMAGE_SIDE = 28;
export const NUM_CLASSES = 10;

export const CONV1 = { inChannels: 1, outChannels: 32, kernel: 3 } as const;
export const CONV2 = { inChannels: 32, outChannels: 64, kernel: 3 } as const;
export const POOL = 2;
export const FC1 = { inFeatures: 9216, outFeatures: 128 } as const;
export const FC2 = { inFeatures: 128, outFeatures: NUM_CLASSES } as const;
export const DROPOUT1 = 0.25;
export const DROPOUT2 = 0.5;

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

/** A learnable tensor of one model, named and shaped as in PyTorch's `state_dict`. */
export interface ParamSpec {
  name: ParamName;
  shape: readonly number[];
}

export type ParamName =
  | 'conv1.weight' | 'conv1.bias' | 'conv2.weight' | 'conv2.bias'
  | 'fc1.weight' | 'fc1.bias' | 'fc2.weight' | 'fc2.bias';

/** State-dict order, as PyTorch lists it. */
export const PARAM_SPECS: readonly ParamSpec[] = [
  { name: 'conv1.weight', shape: [CONV1.outChannels, CONV1.inChannels, CONV1.kernel, CONV1.kernel] },
  { name: 'conv1.bias', shape: [CONV1.outChannels] },
  { name: 'conv2.weight', shape: [CONV2.outChannels, CONV2.inChannels, CONV2.kernel, CONV2.kernel] },
  { name: 'conv2.bias', shape: [CONV2.outChannels] },
  { name: 'fc1.weight', shape: [FC1.outFeatures, FC1.inFeatures] },
  { name: 'fc1.bias', shape: [FC1.outFeatures] },
  { name: 'fc2.weight', shape: [FC2.outFeatures, FC2.inFeatures] },
  { name: 'fc2.bias', shape: [FC2.outFeatures] },
];

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** One model's parameters (or M models' stacked along a leading dimension), flat float32, PyTorch layout. */
export type ParamSet = Record<ParamName, Float32Array>;

/** Models [first, first + count) of a stack (views, no copy). */
export function sliceModels(stacked: ParamSet, first: number, count: number): ParamSet {
  const out = {} as ParamSet;
  for (const { name, shape } of PARAM_SPECS) {
    const n = elementCount(shape);
    if (stacked[name].length < (first + count) * n) throw new RangeError(`sliceModels: ${name} holds fewer than ${first + count} models`);
    out[name] = stacked[name].subarray(first * n, (first + count) * n);
  }
  return out;
}

/** Concatenate single models along a new leading dimension (fresh arrays). */
export function stackParams(models: readonly ParamSet[]): ParamSet {
  if (models.length === 0) throw new InputError('cannot stack models: no models given');
  const out = {} as ParamSet;
  for (const spec of PARAM_SPECS) {
    const count = elementCount(spec.shape);
    const stacked = new Float32Array(models.length * count);
    models.forEach((m, i) => {
      const data = m[spec.name];
      if (!(data instanceof Float32Array) || data.length !== count) {
        throw new InputError(
          `cannot stack models: model ${i} tensor "${spec.name}" has ${data instanceof Float32Array ? data.length : 'no'} values, expected ${count}`,
        );
      }
      stacked.set(data, i * count);
    });
    out[spec.name] = stacked;
  }
  return out;
}

/**
 * The models a runner serves, handed out a group at a time: `slice(first, count)` gives models
 * [first, first + count) stacked. Runners take groups, not one stacked set, so a source decides what exists on
 * the host: a loaded stack gives views of itself; a replicated model builds only the group asked for, and a plan
 * that has copied a group into its own memory lets it go (see `InferencePlan`).
 */
export interface ModelSource {
  readonly numModels: number;
  slice(first: number, count: number): ParamSet;
}

/** Models [first, first + count) of a source, checked against its size. */
function checkSlice(source: ModelSource, first: number, count: number): void {
  if (!(Number.isInteger(first) && Number.isInteger(count) && first >= 0 && count >= 1 && first + count <= source.numModels)) {
    throw new RangeError(`models [${first}, ${first + count}) are not within the source's ${source.numModels} models`);
  }
}

/** A stack already in memory (a model file, a Net's parameters): slices are views of it. */
export function stackedModels(stacked: ParamSet, numModels: number): ModelSource {
  const source: ModelSource = {
    numModels,
    slice(first, count) {
      checkSlice(source, first, count);
      return sliceModels(stacked, first, count);
    },
  };
  return source;
}

/**
 * One model served N times. A group of one is the model itself (every sequential plan reads the same arrays);
 * a larger group is stacked afresh on each call. On webasm a plan lets its group go after its first run, so N
 * host copies never exist at once; elsewhere each plan keeps its group, as a plan of a loaded stack keeps its view.
 */
export function replicatedModels(model: ParamSet, numModels: number): ModelSource {
  const source: ModelSource = {
    numModels,
    slice(first, count) {
      checkSlice(source, first, count);
      return count === 1 ? model : stackParams(Array.from({ length: count }, () => model));
    },
  };
  return source;
}
