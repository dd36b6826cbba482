import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError } from '../src/errors.ts';
import {
  encodeIdxImages,
  encodeIdxLabels,
  readIdxImages,
  readIdxLabels,
  writeIdxFile,
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
} from '../src/io/idx.ts';
import { expectInputError } from './expect-input-error.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'idx-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function sampleImages(count: number) {
  const pixels = new Uint8Array(count * 784);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + 11) % 256;
  return { count, rows: 28, cols: 28, pixels };
}

describe('IDX encoding', () => {
  it('writes the big-endian headers of the MNIST format', () => {
    const img = encodeIdxImages(sampleImages(3));
    expect([...img.subarray(0, 16)]).toEqual([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28]);
    expect(img.length).toBe(16 + 3 * 784);
    const lab = encodeIdxLabels(Uint8Array.from([7, 2, 1]));
    expect([...lab]).toEqual([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]);
    expect(IDX_IMAGES_MAGIC).toBe(0x803);
    expect(IDX_LABELS_MAGIC).toBe(0x801);
  });

  it('rejects a pixel count that does not match the shape', () => {
    expect(() => encodeIdxImages({ count: 2, rows: 28, cols: 28, pixels: new Uint8Array(784) })).toThrow(
      InputError,
    );
  });
});

describe('IDX round trip', () => {
  for (const suffix of ['', '.gz']) {
    it(`reads back images and labels written ${suffix ? 'gzipped' : 'plain'}`, () => {
      const images = sampleImages(5);
      const labels = Uint8Array.from([0, 9, 3, 3, 5]);
      const imgPath = join(dir, `rt-images${suffix}`);
      const labPath = join(dir, `rt-labels${suffix}`);
      writeIdxFile(imgPath, encodeIdxImages(images));
      writeIdxFile(labPath, encodeIdxLabels(labels));
      const back = readIdxImages(imgPath);
      expect(back.count).toBe(5);
      expect(back.rows).toBe(28);
      expect(back.cols).toBe(28);
      expect(back.pixels).toEqual(images.pixels);
      expect(readIdxLabels(labPath)).toEqual(labels);
    });
  }

  it('detects gzip by content, not by file name', () => {
    const path = join(dir, 'gz-without-suffix');
    writeFileSync(path, gzipSync(encodeIdxLabels(Uint8Array.from([4, 2]))));
    expect(readIdxLabels(path)).toEqual(Uint8Array.from([4, 2]));
  });
});

describe('IDX corruption', () => {
  it('bad magic: says which was found and which expected', () => {
    const path = join(dir, 'labels-as-images');
    writeFileSync(path, encodeIdxLabels(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])));
    expectInputError(() => readIdxImages(path), path, /0x00000801.*expected 0x00000803/);
    const path2 = join(dir, 'images-as-labels');
    writeFileSync(path2, encodeIdxImages(sampleImages(1)));
    expectInputError(() => readIdxLabels(path2), path2, /0x00000803.*expected 0x00000801/);
  });

  it('wrong dims', () => {
    const path = join(dir, 'wrong-dims');
    writeFileSync(path, encodeIdxImages({ count: 1, rows: 32, cols: 32, pixels: new Uint8Array(1024) }));
    expectInputError(() => readIdxImages(path), path, /32x32.*expected 28x28/);
  });

  it('truncated image file names expected vs actual bytes', () => {
    const path = join(dir, 'truncated-images');
    const full = encodeIdxImages(sampleImages(4));
    writeFileSync(path, full.subarray(0, full.length - 100));
    expectInputError(() => readIdxImages(path), path, new RegExp(`truncated.*${full.length}.*${full.length - 100}`));
  });

  it('truncated header and truncated gzipped labels', () => {
    const path = join(dir, 'tiny');
    writeFileSync(path, Buffer.from([0, 0, 8]));
    expectInputError(() => readIdxImages(path), path, /truncated/);
    const gz = join(dir, 'truncated-labels.gz');
    const full = encodeIdxLabels(Uint8Array.from([1, 2, 3]));
    writeIdxFile(gz, full.subarray(0, full.length - 1));
    expectInputError(() => readIdxLabels(gz), gz, /truncated.*expected 11 bytes.*got 10/);
  });

  it('trailing bytes are rejected too', () => {
    const path = join(dir, 'long-labels');
    writeFileSync(path, Buffer.concat([encodeIdxLabels(Uint8Array.from([1, 2])), Buffer.from([0])]));
    expectInputError(() => readIdxLabels(path), path, /trailing.*expected 10 bytes.*got 11/);
  });

  it('label out of range', () => {
    const path = join(dir, 'bad-label');
    writeFileSync(path, encodeIdxLabels(Uint8Array.from([3, 10, 4])));
    expectInputError(() => readIdxLabels(path), path, /label 1 is 10/);
  });

  it('corrupt gzip', () => {
    const path = join(dir, 'corrupt.gz');
    const gz = gzipSync(encodeIdxImages(sampleImages(2)));
    // Keep the gzip magic, damage the deflate stream and cut it short.
    const bad = Buffer.from(gz.subarray(0, 40));
    bad.fill(0xff, 12, 40);
    writeFileSync(path, bad);
    expectInputError(() => readIdxImages(path), path, /corrupt gzip/);
  });

  it('missing file and directory instead of file', () => {
    const path = join(dir, 'no-such-file');
    expectInputError(() => readIdxLabels(path), path, /not found/);
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    expectInputError(() => readIdxImages(sub), sub, /directory/);
  });
});
