/**
 * Model files on disk: reading, atomic writing, and loading N models to serve. The format itself (safetensors,
 * PyTorch's names and shapes, N stacked models) is described and decoded in model-format.ts, which this module
 * re-exports for Node's callers.
 */
import { writeFileAtomic } from './atomic-write.ts';
import { decodeModelFile, encodeModelFile, servedModelsOf, type ModelFile, type ServedModels } from './model-format.ts';
import { readInputFile } from './read-input.ts';
import type { ParamSet } from '../model/cnn.ts';

export * from './model-format.ts';

export function readModelFile(path: string): ModelFile {
  return decodeModelFile(readInputFile(path, 'a model file'), path);
}

/** Encode, then replace `path` atomically (an interrupted save leaves the old file untouched). */
export function writeModelFile(
  path: string,
  params: ParamSet,
  numModels: number,
  extraMetadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeModelFile(params, numModels, extraMetadata));
}

/**
 * N models for serving (bench, predict, the dashboard, serve) from a model file on disk (see `servedModelsOf`).
 */
export function loadServedModels(path: string, requested: number | undefined): ServedModels {
  return servedModelsOf(readModelFile(path), requested, path);
}
