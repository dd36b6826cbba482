/**
 * Loading N models for serving (bench, predict, dashboard) from a model file: a stacked file gives N distinct
 * models; a single-model file asked for N > 1 is replicated, with a visible note, as the PyTorch example does.
 * A replicated model is held once: the runners stack the groups they need from it as they build their plans.
 */
import { replicatedModels, stackedModels } from '../engine/architecture.ts';
import { InputError } from '../errors.ts';
import { readModelFile, type ServedModels } from '../io/model-file.ts';

export function loadServedModels(path: string, requested: number | undefined): ServedModels {
  const file = readModelFile(path);
  const N = requested ?? file.numModels;
  if (N <= file.numModels) {
    return { ...stackedModels(file.params, N), fileModels: file.numModels };
  }
  if (file.numModels === 1) {
    return {
      ...replicatedModels(file.params, N),
      fileModels: 1,
      note: `${path} holds one model; it is replicated ${N} times (identical models)`,
    };
  }
  throw new InputError(`${path} holds ${file.numModels} models; --num-models ${N} needs a file with at least ${N} (or a single-model file, which is replicated)`);
}
