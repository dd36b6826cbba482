/**
 * N same-architecture models stacked along a leading model dimension (the layout of PyTorch's
 * `torch.func.stack_module_state`), and the sources that hand them out a group at a time. Host arrays only: no
 * device, no file format.
 */
import { InputError } from '../errors.ts';
import { PARAM_SPECS, elementCount, type ParamSet } from './cnn.ts';

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
  /** Whether `slice(…, count)` builds new arrays that nothing else holds, so that letting go of them frees them. */
  slicesAreFresh(count: number): boolean;
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
    slicesAreFresh: () => false,
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
    slicesAreFresh: (count) => count > 1,
  };
  return source;
}
