/**
 * The model file format of the MNIST CNN: safetensors. Decoding and encoding bytes only (no file system), so the
 * browser page reads the same files; reading and writing paths is model-file.ts's.
 *
 * One model: the PyTorch `state_dict` names and shapes of PARAM_SPECS, F32, row-major — exactly what
 * `safetensors.torch.save_file(model.state_dict(), path)` writes for the PyTorch-examples Net, so such a
 * file loads as is (whatever metadata it has, if any).
 *
 * N models: the same names with a leading N dimension (the layout of `torch.func.stack_module_state`),
 * plus metadata {"format": "mnist-gpujs", "num_models": "N"}.
 *
 * Reading also accepts F16/BF16 tensors (widened to float32 by the codec). Non-finite weights are
 * refused both when reading and when writing, so a diverged model never silently round-trips.
 */
import { InputError } from '../errors.ts';
import { PARAM_SPECS, elementCount, type ParamName, type ParamSet } from '../model/cnn.ts';
import { replicatedModels, stackedModels, type ModelSource } from '../model/stack.ts';
import { decodeSafetensors, encodeSafetensors, type DecodedTensor } from './safetensors.ts';

export const MODEL_FORMAT = 'mnist-gpujs';
const RESERVED_METADATA = ['format', 'num_models'] as const;

export interface ModelFile {
  numModels: number;
  /** True when the tensors carry a leading model dimension (even if it is 1). */
  stacked: boolean;
  /** Each array holds numModels consecutive models, PyTorch layout. May be views on the file's bytes. */
  params: ParamSet;
  metadata: Record<string, string>;
}

const KNOWN_NAMES: ReadonlySet<string> = new Set(PARAM_SPECS.map((s) => s.name));

export function decodeModelFile(bytes: Uint8Array, label: string): ModelFile {
  const { tensors, metadata } = decodeSafetensors(bytes, label);

  const missing = PARAM_SPECS.map((s) => s.name).filter((n) => !tensors.has(n));
  const unexpected = [...tensors.keys()].filter((n) => !KNOWN_NAMES.has(n));
  if (missing.length > 0 || unexpected.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing tensor${missing.length > 1 ? 's' : ''} ${nameList(missing)}`);
    if (unexpected.length > 0) parts.push(`unexpected tensor${unexpected.length > 1 ? 's' : ''} ${nameList(unexpected)}`);
    throw new InputError(`${label}: not an MNIST CNN model file: ${parts.join('; ')}`);
  }

  // Every tensor must be either exactly the single-model shape or that shape with one leading N,
  // and all of them must agree on which (and on N).
  let layout: { stacked: boolean; n: number; from: ParamName } | undefined;
  const params = {} as ParamSet;
  for (const spec of PARAM_SPECS) {
    const t = tensors.get(spec.name)!;
    const here = layoutOf(t, spec.shape);
    if (here === undefined) {
      throw new InputError(
        `${label}: tensor "${spec.name}" has shape ${fmtShape(t.shape)}, expected ${fmtShape(spec.shape)} ` +
          `(one model) or [N, ${spec.shape.join(', ')}] (N stacked models)`,
      );
    }
    if (layout === undefined) {
      layout = { ...here, from: spec.name };
    } else if (here.stacked !== layout.stacked || here.n !== layout.n) {
      throw new InputError(
        `${label}: tensor "${spec.name}" has shape ${fmtShape(t.shape)} (${describeLayout(here)}) ` +
          `but "${layout.from}" has shape ${fmtShape(tensors.get(layout.from)!.shape)} (${describeLayout(layout)})`,
      );
    }
    params[spec.name] = t.data;
  }
  const { stacked, n: numModels } = layout!;
  if (numModels === 0) throw new InputError(`${label}: the tensors have a leading dimension of 0: the file holds no models`);

  const declared = metadata.num_models;
  if (declared !== undefined) {
    if (!/^[1-9][0-9]*$/.test(declared)) {
      throw new InputError(`${label}: metadata num_models ${JSON.stringify(declared)} is not a positive integer`);
    }
    if (Number(declared) !== numModels) {
      throw new InputError(`${label}: metadata num_models is ${declared} but the tensor shapes hold ${numModels} model(s)`);
    }
  }

  for (const spec of PARAM_SPECS) {
    const bad = describeNonFinite(params[spec.name], elementCount(spec.shape));
    if (bad) throw new InputError(`${label}: tensor "${spec.name}" ${bad}`);
  }

  return { numModels, stacked, params, metadata };
}

/**
 * Serialize numModels models. numModels === 1 writes the plain PyTorch shapes (loadable by
 * `safetensors.torch.load_file` into the PyTorch Net); more writes a leading N dimension.
 * Metadata always carries format and num_models; extraMetadata adds keys but may not override those.
 */
export function encodeModelFile(params: ParamSet, numModels: number, extraMetadata: Record<string, string> = {}): Buffer {
  if (!Number.isSafeInteger(numModels) || numModels < 1) {
    throw new InputError(`cannot save model file: number of models must be a positive integer, got ${numModels}`);
  }
  for (const key of RESERVED_METADATA) {
    if (Object.hasOwn(extraMetadata, key)) {
      throw new InputError(`cannot save model file: metadata key "${key}" is reserved`);
    }
  }
  const tensors = PARAM_SPECS.map((spec) => {
    const data = params[spec.name];
    const count = elementCount(spec.shape);
    if (!(data instanceof Float32Array)) {
      throw new InputError(`cannot save model file: tensor "${spec.name}" is missing or not a Float32Array`);
    }
    if (data.length !== numModels * count) {
      throw new InputError(
        `cannot save model file: tensor "${spec.name}" has ${data.length} values, expected ${numModels} × ${count} = ${numModels * count}`,
      );
    }
    const bad = describeNonFinite(data, count);
    if (bad) throw new InputError(`cannot save model file: tensor "${spec.name}" ${bad}`);
    const shape = numModels === 1 ? [...spec.shape] : [numModels, ...spec.shape];
    return { name: spec.name, dtype: 'F32' as const, shape, data };
  });
  const metadata = { ...extraMetadata, format: MODEL_FORMAT, num_models: String(numModels) };
  return encodeSafetensors(tensors, metadata);
}

/** N models for serving from one model file (`servedModelsOf`). */
export interface ServedModels extends ModelSource {
  /** how many models the file holds */
  fileModels: number;
  /** set when the file's single model was replicated */
  note?: string;
}

/**
 * N models for serving from a decoded model file: a stacked file gives N distinct models (`requested` undefined:
 * all of them); a single-model file asked for N > 1 is replicated, with a note to show, as the PyTorch example
 * does. A replicated model is held once: the runners stack the groups they need from it as they build their plans.
 * `label` names the file in the note and in errors.
 */
export function servedModelsOf(file: ModelFile, requested: number | undefined, label: string): ServedModels {
  const N = requested ?? file.numModels;
  if (N <= file.numModels) {
    return { ...stackedModels(file.params, N), fileModels: file.numModels };
  }
  if (file.numModels === 1) {
    return {
      ...replicatedModels(file.params, N),
      fileModels: 1,
      note: `${label} holds one model; it is replicated ${N} times (identical models)`,
    };
  }
  throw new InputError(`${label} holds ${file.numModels} models; --num-models ${N} needs a file with at least ${N} (or a single-model file, which is replicated)`);
}

function layoutOf(t: DecodedTensor, single: readonly number[]): { stacked: boolean; n: number } | undefined {
  if (sameShape(t.shape, single)) return { stacked: false, n: 1 };
  if (t.shape.length === single.length + 1 && sameShape(t.shape.slice(1), single)) return { stacked: true, n: t.shape[0]! };
  return undefined;
}

function describeLayout(l: { stacked: boolean; n: number }): string {
  return l.stacked ? `${l.n} stacked model(s)` : 'one unstacked model';
}

/** "holds NaN at index i (model m, element e)" for the first non-finite value, or undefined. */
function describeNonFinite(data: Float32Array, perModel: number): string | undefined {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) { // false only for NaN and ±Infinity; cheaper than Number.isFinite in a hot loop
      const what = Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
      const where = data.length > perModel ? ` (model ${Math.floor(i / perModel)}, element ${i % perModel})` : '';
      return `holds ${what} at index ${i}${where}`;
    }
  }
  return undefined;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function nameList(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((n) => JSON.stringify(n)).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}
