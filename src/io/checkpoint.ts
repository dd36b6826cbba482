/**
 * Training checkpoints: everything `train --resume` needs to continue exactly where a run stopped — the K
 * models' parameters, the optimizer's state buffers, the number of finished epochs and the settings that
 * shape the run. A safetensors file (`<model>.ckpt.safetensors`) beside the model file, which stays a plain,
 * PyTorch-loadable weights file. Tensors: `model.<param>` [K, ...] and `optimizer.<param>.<buffer>` [K, ...].
 */
import { PARAM_SPECS, elementCount, type ParamSet } from '../model/cnn.ts';
import { InputError } from '../errors.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { readInputFile } from './read-input.ts';
import { decodeSafetensors, encodeSafetensors, type TensorToEncode } from './safetensors.ts';

export const CHECKPOINT_FORMAT = 'mnist-gpujs-checkpoint';

export interface Checkpoint {
  numModels: number;
  epochsDone: number;
  params: ParamSet;
  optimizerState: Map<string, Float32Array>;
  /** settings of the run that wrote it (seed, optimizer, lr, gamma, batch size), as strings */
  settings: Record<string, string>;
}

/** `mnist_cnn.safetensors` → `mnist_cnn.ckpt.safetensors`. */
export function checkpointPathFor(modelPath: string): string {
  return modelPath.replace(/(\.safetensors)?$/, '.ckpt.safetensors');
}

export function writeCheckpoint(path: string, ckpt: Checkpoint): void {
  const K = ckpt.numModels;
  const tensors: TensorToEncode[] = PARAM_SPECS.map(({ name, shape }) => ({
    name: `model.${name}`, dtype: 'F32', shape: [K, ...shape], data: ckpt.params[name],
  }));
  for (const [key, data] of ckpt.optimizerState) {
    const param = PARAM_SPECS.find((s) => key.startsWith(`${s.name}.`))!;
    tensors.push({ name: `optimizer.${key}`, dtype: 'F32', shape: [K, ...param.shape], data });
  }
  const metadata = { ...ckpt.settings, format: CHECKPOINT_FORMAT, num_models: String(K), epochs_done: String(ckpt.epochsDone) };
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export function readCheckpoint(path: string): Checkpoint {
  const bytes = readInputFile(path, 'a checkpoint');
  const { tensors, metadata } = decodeSafetensors(bytes, path);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new InputError(`${path}: not a training checkpoint (resume from the .ckpt.safetensors file that --save-model writes)`);
  }
  const K = Number(metadata.num_models);
  const epochsDone = Number(metadata.epochs_done);
  if (!Number.isSafeInteger(K) || K < 1 || !Number.isSafeInteger(epochsDone) || epochsDone < 0) {
    throw new InputError(`${path}: checkpoint metadata num_models/epochs_done are not valid counts`);
  }
  const params = {} as ParamSet;
  const optimizerState = new Map<string, Float32Array>();
  for (const [name, t] of tensors) {
    const param = PARAM_SPECS.find((s) => name === `model.${s.name}` || name.startsWith(`optimizer.${s.name}.`));
    if (!param) throw new InputError(`${path}: unexpected tensor "${name}" in checkpoint`);
    const expected = K * elementCount(param.shape);
    if (t.data.length !== expected) throw new InputError(`${path}: tensor "${name}" has ${t.data.length} values, expected ${expected}`);
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new InputError(`${path}: tensor "${name}" holds a non-finite value at index ${bad}`);
    // copy: training writes into these arrays, and the decoder may hand out views of the file's bytes
    if (name.startsWith('model.')) params[param.name] = new Float32Array(t.data);
    else optimizerState.set(name.slice('optimizer.'.length), new Float32Array(t.data));
  }
  const missing = PARAM_SPECS.filter((s) => !params[s.name]).map((s) => s.name);
  if (missing.length) throw new InputError(`${path}: checkpoint lacks model tensors ${missing.join(', ')}`);
  const { format: _f, num_models: _n, epochs_done: _e, ...settings } = metadata;
  return { numModels: K, epochsDone, params, optimizerState, settings };
}
