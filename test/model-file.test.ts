import { describe, it, expect, afterEach, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PARAM_SPECS, elementCount, type ParamSet } from '../src/model/cnn.ts';
import { sliceModels, stackParams } from '../src/model/stack.ts';
import { decodeSafetensors, encodeSafetensors } from '../src/io/safetensors.ts';
import { writeFileAtomic } from '../src/io/atomic-write.ts';
import {
  MODEL_FORMAT,
  decodeModelFile,
  encodeModelFile,
  loadServedModels,
  readModelFile,
  writeModelFile,
  type ModelFile,
} from '../src/io/model-file.ts';
import { expectInputError } from './expect-input-error.ts';

/** Model `index` of a file, as views on its arrays. */
const modelOf = (file: ModelFile, index: number): ParamSet => sliceModels(file.params, index, 1);

/** Deterministic pseudo-random model (xorshift), with a few special values mixed in. */
function makeModel(seed: number): ParamSet {
  let s = (seed * 2654435761) >>> 0 || 1;
  const params = {} as ParamSet;
  for (const spec of PARAM_SPECS) {
    const data = new Float32Array(elementCount(spec.shape));
    for (let i = 0; i < data.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      data[i] = (s / 2 ** 32 - 0.5) * 0.2;
    }
    data[0] = -0;
    data[data.length - 1] = 1e-42; // subnormal
    params[spec.name] = data;
  }
  return params;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function expectSameParams(a: ParamSet, b: ParamSet): void {
  for (const spec of PARAM_SPECS) {
    expect(a[spec.name].length, spec.name).toBe(b[spec.name].length);
    expect(bytesOf(a[spec.name]).equals(bytesOf(b[spec.name])), spec.name).toBe(true);
  }
}

/** Raw safetensors tensors for a model set, so tests can corrupt them before encoding. */
function rawTensors(params: ParamSet, leading?: number) {
  return PARAM_SPECS.map((spec) => ({
    name: spec.name as string,
    dtype: 'F32' as const,
    shape: leading === undefined ? [...spec.shape] : [leading, ...spec.shape],
    data: params[spec.name],
  }));
}

const tmpDirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-gpujs-model-'));
  tmpDirs.push(d);
  return d;
}
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const model0 = makeModel(1);
const model1 = makeModel(2);
const model2 = makeModel(3);

describe('single model (PyTorch state_dict layout)', () => {
  it('round trips bit-exactly with exactly the PyTorch shapes', () => {
    const file = encodeModelFile(model0, 1);
    const { tensors, metadata } = decodeSafetensors(file, 'm');
    expect([...tensors.keys()].sort()).toEqual(PARAM_SPECS.map((s) => s.name).sort());
    for (const spec of PARAM_SPECS) {
      expect(tensors.get(spec.name)!.shape).toEqual([...spec.shape]);
      expect(tensors.get(spec.name)!.dtype).toBe('F32');
    }
    expect(tensors.get('conv1.weight')!.shape).toEqual([32, 1, 3, 3]);
    expect(tensors.get('fc1.weight')!.shape).toEqual([128, 9216]);
    expect(metadata).toEqual({ format: MODEL_FORMAT, num_models: '1' });

    const decoded = decodeModelFile(file, 'm');
    expect(decoded.numModels).toBe(1);
    expect(decoded.stacked).toBe(false);
    expectSameParams(decoded.params, model0);
    expectSameParams(modelOf(decoded, 0), model0);
  });

  it('loads a file as PyTorch save_file writes it: no metadata, any tensor order', () => {
    const reversed = rawTensors(model0).reverse();
    const decoded = decodeModelFile(encodeSafetensors(reversed), 'torch.safetensors');
    expect(decoded.numModels).toBe(1);
    expect(decoded.metadata).toEqual({});
    expectSameParams(decoded.params, model0);
  });

  it('accepts arbitrary foreign metadata', () => {
    const decoded = decodeModelFile(encodeSafetensors(rawTensors(model0), { format: 'pt' }), 'pt.safetensors');
    expect(decoded.metadata).toEqual({ format: 'pt' });
  });
});

describe('stacked models', () => {
  it('round trips N=3 with a leading dim, metadata, and model i of the file = model i', () => {
    const stacked = stackParams([model0, model1, model2]);
    const file = encodeModelFile(stacked, 3, { epoch: '4' });
    const { tensors, metadata } = decodeSafetensors(file, 'm3');
    for (const spec of PARAM_SPECS) expect(tensors.get(spec.name)!.shape).toEqual([3, ...spec.shape]);
    expect(metadata).toEqual({ format: MODEL_FORMAT, num_models: '3', epoch: '4' });

    const decoded = decodeModelFile(file, 'm3');
    expect(decoded.numModels).toBe(3);
    expect(decoded.stacked).toBe(true);
    expect(decoded.metadata.num_models).toBe('3');
    expectSameParams(decoded.params, stacked);
    expectSameParams(modelOf(decoded, 0), model0);
    expectSameParams(modelOf(decoded, 1), model1);
    expectSameParams(modelOf(decoded, 2), model2);
  });

  it('stackParams lays models out consecutively, model-major', () => {
    const s = stackParams([model0, model1]);
    const n = elementCount([32]);
    expect(s['conv1.bias'].length).toBe(2 * n);
    expect(bytesOf(s['conv1.bias'].subarray(n)).equals(bytesOf(model1['conv1.bias']))).toBe(true);
    expect(s['conv1.bias']).not.toBe(model0['conv1.bias']); // fresh arrays
  });

  it('reads a stacked file with a leading dim of 1 as stacked', () => {
    const decoded = decodeModelFile(encodeSafetensors(rawTensors(model0, 1)), 'one.st');
    expect(decoded.stacked).toBe(true);
    expect(decoded.numModels).toBe(1);
  });

  it('rejects bad stack input', () => {
    expectInputError(() => stackParams([]), 'no models');
    expectInputError(() => stackParams([model0, { ...model1, 'fc2.bias': new Float32Array(3) }]), 'model 1', '"fc2.bias"');
  });
});

describe('model file rejections', () => {
  it('rejects missing tensors, naming them', () => {
    const tensors = rawTensors(model0).filter((t) => t.name !== 'fc2.bias');
    expectInputError(() => decodeModelFile(encodeSafetensors(tensors), 'miss.st'), 'miss.st', 'missing tensor "fc2.bias"');
  });

  it('rejects extra/unknown tensors, naming them', () => {
    const tensors = [...rawTensors(model0), { name: 'fc3.weight', dtype: 'F32' as const, shape: [1], data: new Float32Array(1) }];
    expectInputError(() => decodeModelFile(encodeSafetensors(tensors), 'extra.st'), 'extra.st', 'unexpected tensor "fc3.weight"');
  });

  it('rejects a wrong shape, saying expected and found', () => {
    const tensors = rawTensors(model0).map((t) =>
      t.name === 'fc1.weight' ? { ...t, shape: [9216, 128] } : t,
    );
    expectInputError(
      () => decodeModelFile(encodeSafetensors(tensors), 'shape.st'),
      'shape.st',
      '"fc1.weight"',
      '[9216, 128]',
      'expected [128, 9216]',
    );
  });

  it('rejects inconsistent leading N across tensors', () => {
    const two = stackParams([model0, model1]);
    const three = stackParams([model0, model1, model2]);
    const tensors = rawTensors(two, 2).map((t) =>
      t.name === 'conv2.bias' ? { ...t, shape: [3, 64], data: three['conv2.bias'] } : t,
    );
    expectInputError(() => decodeModelFile(encodeSafetensors(tensors), 'n.st'), 'n.st', '"conv2.bias"', '3 stacked', '2 stacked');
  });

  it('rejects a mix of stacked and unstacked tensors', () => {
    const tensors = rawTensors(model0, 1).map((t) =>
      t.name === 'fc1.bias' ? { ...t, shape: [128] } : t,
    );
    expectInputError(() => decodeModelFile(encodeSafetensors(tensors), 'mix.st'), 'mix.st', '"fc1.bias"', 'unstacked');
  });

  it('rejects a leading dimension of 0', () => {
    const empty = rawTensors(model0, 0).map((t) => ({ ...t, data: new Float32Array(0) }));
    expectInputError(() => decodeModelFile(encodeSafetensors(empty), 'zero.st'), 'zero.st', 'no models');
  });

  it('rejects metadata num_models that disagrees with the shapes', () => {
    const stacked = stackParams([model0, model1]);
    expectInputError(
      () => decodeModelFile(encodeSafetensors(rawTensors(stacked, 2), { num_models: '3' }), 'meta.st'),
      'meta.st',
      'num_models is 3',
      '2 model',
    );
    expectInputError(
      () => decodeModelFile(encodeSafetensors(rawTensors(model0), { num_models: 'two' }), 'meta.st'),
      'num_models "two"',
    );
  });

  it('rejects NaN and Inf weights, naming the tensor and the first bad index', () => {
    const nan = { ...model0, 'conv2.weight': Float32Array.from(model0['conv2.weight']) };
    nan['conv2.weight'][17] = NaN;
    nan['conv2.weight'][20] = Infinity;
    expectInputError(() => decodeModelFile(encodeSafetensors(rawTensors(nan)), 'nan.st'), 'nan.st', '"conv2.weight"', 'NaN at index 17');

    const stacked = stackParams([model0, model1]);
    stacked['fc2.bias'][13] = -Infinity;
    expectInputError(
      () => decodeModelFile(encodeSafetensors(rawTensors(stacked, 2)), 'inf.st'),
      '"fc2.bias"',
      '-Infinity at index 13 (model 1, element 3)',
    );
  });

  it('refuses to encode invalid parameter sets', () => {
    expectInputError(() => encodeModelFile(model0, 0), 'positive integer');
    expectInputError(() => encodeModelFile(model0, 2), '"conv1.weight"', 'expected 2 × 288');
    expectInputError(() => encodeModelFile(model0, 1, { num_models: '5' }), '"num_models"', 'reserved');
    const bad = { ...model0, 'fc1.bias': Float32Array.from(model0['fc1.bias']) };
    bad['fc1.bias'][5] = NaN;
    expectInputError(() => encodeModelFile(bad, 1), '"fc1.bias"', 'NaN at index 5');
  });

  it('reports a codec-level corruption with the file label', () => {
    const file = encodeModelFile(model0, 1);
    expectInputError(() => decodeModelFile(file.subarray(0, file.length - 4), 'trunc.st'), 'trunc.st');
  });
});

describe('reading and writing files', () => {
  it('writes atomically and reads back', () => {
    const dir = tmpDir();
    const p = path.join(dir, 'model.safetensors');
    writeModelFile(p, stackParams([model0, model1]), 2);
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']); // no temp file left behind
    const read = readModelFile(p);
    expect(read.numModels).toBe(2);
    expectSameParams(modelOf(read, 1), model1);

    writeModelFile(p, model2, 1); // replace an existing file
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
    expectSameParams(readModelFile(p).params, model2);
  });

  it('names the path when the file is missing or is a directory', () => {
    const dir = tmpDir();
    const missing = path.join(dir, 'nope.safetensors');
    expectInputError(() => readModelFile(missing), missing, 'not found');
    expectInputError(() => readModelFile(dir), dir, 'directory');
  });

  it('names the path when the file is corrupt', () => {
    const dir = tmpDir();
    const p = path.join(dir, 'junk.safetensors');
    fs.writeFileSync(p, 'hello');
    expectInputError(() => readModelFile(p), p, '5 bytes');
  });
});

describe('served models (loadServedModels)', () => {
  it('a single-model file served N times holds the model once and stacks only the groups asked for', () => {
    const p = path.join(tmpDir(), 'one.safetensors');
    writeModelFile(p, model0, 1);
    const served = loadServedModels(p, 3);
    expect([served.numModels, served.fileModels]).toEqual([3, 1]);
    expect(served.note).toContain('replicated 3 times');
    // a group of one is the model itself, the same arrays for every index
    // (identity compared as booleans: vitest would format the 1.2M-value arrays for its message)
    expect(served.slice(2, 1)['fc1.weight'] === served.slice(0, 1)['fc1.weight']).toBe(true);
    expectSameParams(served.slice(1, 1), model0);
    // a larger group is a fresh stack of copies
    const two = served.slice(1, 2);
    expect(two['fc1.weight'] === served.slice(1, 2)['fc1.weight']).toBe(false);
    expectSameParams(two, stackParams([model0, model0]));
    expect(() => served.slice(2, 2)).toThrow(RangeError);
    expect(() => served.slice(-1, 1)).toThrow(RangeError);
  });

  it('a stacked file gives views of its models, the first N of them', () => {
    const p = path.join(tmpDir(), 'three.safetensors');
    writeModelFile(p, stackParams([model0, model1, model2]), 3);
    const served = loadServedModels(p, 2);
    expect([served.numModels, served.fileModels, served.note]).toEqual([2, 3, undefined]);
    expectSameParams(served.slice(1, 1), model1);
    expectSameParams(served.slice(0, 2), stackParams([model0, model1]));
    expect(served.slice(1, 1)['fc1.weight'].buffer === served.slice(0, 2)['fc1.weight'].buffer).toBe(true);
    expect(() => served.slice(1, 2)).toThrow(RangeError); // model 2 is in the file but not served
    expectInputError(() => loadServedModels(p, 4), 'holds 3 models; --num-models 4 needs a file with at least 4');
  });
});

describe('writeFileAtomic', () => {
  it('fails with a clear error for a nonexistent directory, leaving the existing file untouched', () => {
    const dir = tmpDir();
    const existing = path.join(dir, 'model.safetensors');
    fs.writeFileSync(existing, 'old contents');
    const target = path.join(dir, 'no-such-dir', 'model.safetensors');
    expectInputError(() => writeFileAtomic(target, new Uint8Array([1, 2, 3])), target, 'does not exist');
    expect(fs.readFileSync(existing, 'utf8')).toBe('old contents');
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('keeps the old file and removes the temp file when the final rename fails', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'model.safetensors');
    fs.writeFileSync(target, 'old contents');
    vi.spyOn(fs, 'renameSync').mockImplementation(() => {
      throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    });
    expectInputError(() => writeFileAtomic(target, new Uint8Array(1000)), target, 'EIO');
    expect(fs.readFileSync(target, 'utf8')).toBe('old contents');
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('keeps the old file and removes the temp file when writing the data fails', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'model.safetensors');
    fs.writeFileSync(target, 'old contents');
    vi.spyOn(fs, 'writeSync').mockImplementation(() => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    expectInputError(() => writeFileAtomic(target, new Uint8Array(1000)), target, 'no space left');
    expect(fs.readFileSync(target, 'utf8')).toBe('old contents');
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('refuses to replace a directory, leaving nothing behind', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'sub');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x');
    expectInputError(() => writeFileAtomic(target, new Uint8Array(4)), target);
    expect(fs.readdirSync(dir)).toEqual(['sub']);
    expect(fs.readdirSync(target)).toEqual(['keep']);
  });

  it('writes exactly the given bytes, also for a view into a larger buffer', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'out.bin');
    const backing = new Uint8Array(64).map((_, i) => i);
    writeFileAtomic(target, backing.subarray(10, 42));
    expect(Buffer.compare(fs.readFileSync(target), Buffer.from(backing.subarray(10, 42)))).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['out.bin']);
  });
});
