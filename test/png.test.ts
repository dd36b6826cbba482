import { describe, it, expect, afterAll } from 'vitest';
import { deflateSync } from 'node:zlib';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { decodeDigitPng, readDigitPng, encodeGrayPng, MAX_PIXELS } from '../src/io/png.ts';
import { loadBundledMnist } from '../src/data/mnist.ts';
import { expectInputError } from './expect-input-error.ts';

// ---- a tiny PNG writer, so every colour type / bit depth / tRNS case is built byte by byte ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(data)]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  typeAndData.copy(out, 4);
  out.writeUInt32BE(crc32(typeAndData), 8 + data.length);
  return out;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

interface RawPng {
  width: number;
  height: number;
  bitDepth: 1 | 2 | 4 | 8 | 16;
  colorType: 0 | 2 | 3 | 4 | 6;
  /** Row-major samples, CHANNELS[colorType] per pixel, each at the stored bit depth. */
  samples: number[];
  plte?: number[]; // flat RGB triples
  trns?: number[]; // raw tRNS bytes
  interlace?: boolean; // Adam7
  idat?: Uint8Array; // override the compressed image data
}

/** Filtered scanlines (filter byte 0 = None) for a w x h block of samples. */
function scanlines(samples: number[], w: number, h: number, channels: number, bitDepth: number): Buffer {
  const perRow = w * channels;
  const rowBytes = Math.ceil((perRow * bitDepth) / 8);
  const raw = Buffer.alloc(h * (rowBytes + 1));
  for (let y = 0; y < h; y++) {
    const base = y * (rowBytes + 1) + 1;
    for (let s = 0; s < perRow; s++) {
      const v = samples[y * perRow + s]!;
      if (bitDepth === 16) raw.writeUInt16BE(v, base + 2 * s);
      else if (bitDepth === 8) raw[base + s] = v;
      else {
        const bit = s * bitDepth;
        raw[base + (bit >> 3)]! |= v << (8 - bitDepth - (bit & 7));
      }
    }
  }
  return raw;
}

const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

/** The uncompressed IDAT payload, Adam7-interlaced if asked. */
function rawImageData(p: RawPng): Buffer {
  const ch = CHANNELS[p.colorType]!;
  if (!p.interlace) return scanlines(p.samples, p.width, p.height, ch, p.bitDepth);
  const passes: Buffer[] = [];
  for (const [x0, y0, dx, dy] of ADAM7) {
    const sub: number[] = [];
    let w = 0;
    let h = 0;
    for (let y = y0!; y < p.height; y += dy!, h++) {
      w = 0;
      for (let x = x0!; x < p.width; x += dx!, w++) sub.push(...p.samples.slice((y * p.width + x) * ch, (y * p.width + x + 1) * ch));
    }
    if (w > 0 && h > 0) passes.push(scanlines(sub, w, h, ch, p.bitDepth));
  }
  return Buffer.concat(passes);
}

function ihdrChunk(p: Pick<RawPng, 'width' | 'height' | 'bitDepth' | 'colorType' | 'interlace'>): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(p.width, 0);
  ihdr.writeUInt32BE(p.height, 4);
  ihdr[8] = p.bitDepth;
  ihdr[9] = p.colorType;
  ihdr[12] = p.interlace ? 1 : 0;
  return chunk('IHDR', ihdr);
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function buildPng(p: RawPng): Buffer {
  const parts = [SIGNATURE, ihdrChunk(p)];
  if (p.plte) parts.push(chunk('PLTE', Uint8Array.from(p.plte)));
  if (p.trns) parts.push(chunk('tRNS', Uint8Array.from(p.trns)));
  parts.push(chunk('IDAT', p.idat ?? deflateSync(rawImageData(p))), chunk('IEND', new Uint8Array(0)));
  return Buffer.concat(parts);
}

/** A 28x28 image where every pixel has the same samples. */
function uniform(colorType: RawPng['colorType'], bitDepth: RawPng['bitDepth'], px: number[], extra: Partial<RawPng> = {}): Buffer {
  const samples: number[] = [];
  for (let i = 0; i < 28 * 28; i++) samples.push(...px);
  return buildPng({ width: 28, height: 28, bitDepth, colorType, samples, ...extra });
}

const lum = (r: number, g: number, b: number) => Math.round(0.299 * r + 0.587 * g + 0.114 * b);

function expectAll(pixels: Uint8Array, value: number): void {
  expect(pixels.length).toBe(784);
  const distinct = [...new Set(pixels)];
  expect(distinct).toEqual([value]);
}

const decode = (bytes: Uint8Array) => decodeDigitPng(bytes, 'test.png', { invert: 'no' });

const tmp = mkdtempSync(join(tmpdir(), 'mnist-png-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---- colour types and bit depths ----

describe('decodeDigitPng colour conversion', () => {
  it('8-bit gray is passed through', () => {
    const samples = Array.from({ length: 784 }, (_, i) => i % 256);
    const r = decode(buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 0, samples }));
    expect(Array.from(r.pixels)).toEqual(samples);
    expect(r.width).toBe(28);
    expect(r.height).toBe(28);
    expect(r.warnings).toEqual([]);
    expect(r.inverted).toBe(false);
  });

  it('16-bit gray keeps precision (0x8080 → 128, 0x7fff → 127, 0xffff → 255)', () => {
    expectAll(decode(uniform(0, 16, [0x8080])).pixels, 128);
    expectAll(decode(uniform(0, 16, [0x7fff])).pixels, 127); // 127.498 → 127
    expectAll(decode(uniform(0, 16, [0x8000])).pixels, 128); // 127.502 → 128
    expectAll(decode(uniform(0, 16, [0xffff])).pixels, 255);
  });

  it('low bit depth gray (1, 2, 4 bit) scales to 0..255', () => {
    expectAll(decode(uniform(0, 1, [1])).pixels, 255);
    expectAll(decode(uniform(0, 2, [1])).pixels, 85);
    expectAll(decode(uniform(0, 4, [7])).pixels, 119);
  });

  it('8-bit RGB uses 0.299R + 0.587G + 0.114B', () => {
    expectAll(decode(uniform(2, 8, [255, 0, 0])).pixels, lum(255, 0, 0));
    expectAll(decode(uniform(2, 8, [0, 255, 0])).pixels, lum(0, 255, 0));
    expectAll(decode(uniform(2, 8, [0, 0, 255])).pixels, lum(0, 0, 255));
    expectAll(decode(uniform(2, 8, [10, 200, 90])).pixels, lum(10, 200, 90));
    expectAll(decode(uniform(2, 8, [77, 77, 77])).pixels, 77);
  });

  it('16-bit RGB uses the full sample precision', () => {
    // pure red at 16 bits is the same red as at 8 bits
    expectAll(decode(uniform(2, 16, [0xffff, 0, 0])).pixels, lum(255, 0, 0));
    // (0x8080, 0x8080, 0x8080) is exactly gray 128
    expectAll(decode(uniform(2, 16, [0x8080, 0x8080, 0x8080])).pixels, 128);
    // 0x7fff in every channel must not be pre-rounded up to 128 by an 8-bit rescale
    expectAll(decode(uniform(2, 16, [0x7fff, 0x7fff, 0x7fff])).pixels, 127);
  });

  it('gray+alpha composites over black (8 and 16 bit)', () => {
    expectAll(decode(uniform(4, 8, [200, 255])).pixels, 200);
    expectAll(decode(uniform(4, 8, [200, 0])).pixels, 0);
    expectAll(decode(uniform(4, 8, [255, 128])).pixels, 128);
    expectAll(decode(uniform(4, 8, [200, 51])).pixels, 40); // 200 * 51/255
    expectAll(decode(uniform(4, 16, [0xffff, 0x8080])).pixels, 128);
    // exact: 255 * 0x8000/0xffff * 0x40d1/0xffff = 32.28; rounding gray and alpha to 8 bits first would give 33
    expectAll(decode(uniform(4, 16, [0x8000, 0x40d1])).pixels, 32);
  });

  it('RGBA composites over black (8 and 16 bit)', () => {
    expectAll(decode(uniform(6, 8, [255, 0, 0, 255])).pixels, lum(255, 0, 0));
    expectAll(decode(uniform(6, 8, [255, 255, 255, 102])).pixels, 102);
    expectAll(decode(uniform(6, 8, [0, 255, 0, 0])).pixels, 0);
    expectAll(decode(uniform(6, 16, [0xffff, 0xffff, 0xffff, 0x8080])).pixels, 128);
  });

  it('images written by pngjs itself decode the same way', () => {
    const png = new PNG({ width: 28, height: 28 });
    for (let i = 0; i < 784; i++) png.data.set([0, 0, 255, 255], i * 4);
    const rgb = PNG.sync.write(png, { colorType: 2, inputColorType: 6, inputHasAlpha: true, bitDepth: 8 });
    expectAll(decode(rgb).pixels, lum(0, 0, 255));
    const rgba = PNG.sync.write(png, { colorType: 6, inputColorType: 6, inputHasAlpha: true, bitDepth: 8 });
    expectAll(decode(rgba).pixels, lum(0, 0, 255));
  });

  it('palette (8-bit and 4-bit indices) looks colours up', () => {
    const plte = [0, 0, 0, 255, 0, 0, 255, 255, 255];
    const samples = Array.from({ length: 784 }, (_, i) => i % 3);
    const expected = samples.map((s) => [0, lum(255, 0, 0), 255][s]);
    for (const bitDepth of [8, 4, 2] as const) {
      const r = decode(buildPng({ width: 28, height: 28, bitDepth, colorType: 3, samples, plte }));
      expect(Array.from(r.pixels)).toEqual(expected);
    }
  });

  it('palette with tRNS composites each entry by its alpha', () => {
    // entry 0 white fully transparent, 1 white half transparent, 2 red opaque (no tRNS entry)
    const plte = [255, 255, 255, 255, 255, 255, 255, 0, 0];
    const trns = [0, 51];
    const samples = Array.from({ length: 784 }, (_, i) => i % 3);
    const expected = samples.map((s) => [0, 51, lum(255, 0, 0)][s]);
    const r = decode(buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 3, samples, plte, trns }));
    expect(Array.from(r.pixels)).toEqual(expected);
  });

  it('Adam7-interlaced images decode to the same pixels', () => {
    for (const [w, h] of [[28, 28], [5, 3], [56, 56]] as const) {
      const samples = Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
      const plain = decode(buildPng({ width: w, height: h, bitDepth: 8, colorType: 2, samples }));
      const interlaced = decode(buildPng({ width: w, height: h, bitDepth: 8, colorType: 2, samples, interlace: true }));
      expect(Array.from(interlaced.pixels)).toEqual(Array.from(plain.pixels));
    }
    const r = decode(buildPng({ width: 28, height: 28, bitDepth: 16, colorType: 0, samples: new Array(784).fill(0x8080), interlace: true }));
    expectAll(r.pixels, 128);
  });

  it('gray and RGB tRNS colour keys become black', () => {
    const gray = decode(uniform(0, 8, [90], { trns: [0, 90] }));
    expectAll(gray.pixels, 0);
    const rgb = decode(uniform(2, 8, [10, 20, 30], { trns: [0, 10, 0, 20, 0, 30] }));
    expectAll(rgb.pixels, 0);
    const other = decode(uniform(2, 8, [10, 20, 31], { trns: [0, 10, 0, 20, 0, 30] }));
    expectAll(other.pixels, lum(10, 20, 31));
  });
});

// ---- resize ----

describe('decodeDigitPng resize', () => {
  it('downscales 56x56 by area-averaging 2x2 blocks, with a warning', () => {
    // 2x2 blocks with values a, b, c, d: output = round((a+b+c+d)/4)
    const samples: number[] = [];
    for (let y = 0; y < 56; y++) for (let x = 0; x < 56; x++) samples.push([[0, 100], [50, 255]][y % 2]![x % 2]!);
    const r = decodeDigitPng(buildPng({ width: 56, height: 56, bitDepth: 8, colorType: 0, samples }), 'fixtures/x.png', { invert: 'no' });
    expectAll(r.pixels, Math.round((0 + 100 + 50 + 255) / 4)); // 101.25 → 101
    expect(r.width).toBe(56);
    expect(r.height).toBe(56);
    expect(r.warnings).toEqual(['fixtures/x.png is 56x56; resized to 28x28']);
  });

  it('downscale keeps position: a bright 2x2 block lands on one output pixel', () => {
    const samples = new Array<number>(56 * 56).fill(0);
    for (const [y, x] of [[10, 20], [10, 21], [11, 20], [11, 21]]) samples[y! * 56 + x!] = 200;
    const r = decode(buildPng({ width: 56, height: 56, bitDepth: 8, colorType: 0, samples }));
    const expected = new Uint8Array(784);
    expected[5 * 28 + 10] = 200;
    expect(Array.from(r.pixels)).toEqual(Array.from(expected));
  });

  it('upscales 14x14 so that each source pixel becomes a 2x2 block, with a warning', () => {
    const samples = Array.from({ length: 196 }, (_, i) => (i * 7) % 256);
    const r = decodeDigitPng(buildPng({ width: 14, height: 14, bitDepth: 8, colorType: 0, samples }), 'small.png', { invert: 'no' });
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) expect(r.pixels[y * 28 + x]).toBe(samples[(y >> 1) * 14 + (x >> 1)]);
    }
    expect(r.warnings).toEqual(['small.png is 14x14; resized to 28x28']);
  });

  it('keeps the value of a uniform image exactly, for awkward and non-square sizes', () => {
    for (const [w, h] of [[29, 29], [27, 31], [100, 3], [1, 1], [97, 113]] as const) {
      const samples = new Array<number>(w * h).fill(137);
      const r = decode(buildPng({ width: w, height: h, bitDepth: 8, colorType: 0, samples }));
      expectAll(r.pixels, 137);
    }
    // a 16-bit uniform whose 8-bit value is non-integer rounds the same as without resizing
    const big = decode(buildPng({ width: 57, height: 33, bitDepth: 16, colorType: 0, samples: new Array(57 * 33).fill(0x7fff) }));
    expectAll(big.pixels, 127);
  });

  it('says when the aspect ratio was not kept', () => {
    const r = decodeDigitPng(buildPng({ width: 56, height: 28, bitDepth: 8, colorType: 0, samples: new Array(56 * 28).fill(0) }), 'wide.png');
    expect(r.warnings).toEqual(['wide.png is 56x28; resized to 28x28 (aspect ratio not kept)']);
  });

  it('is deterministic', () => {
    const samples = Array.from({ length: 45 * 37 }, (_, i) => (i * 31 + 7) % 256);
    const bytes = buildPng({ width: 45, height: 37, bitDepth: 8, colorType: 0, samples });
    expect(Array.from(decode(bytes).pixels)).toEqual(Array.from(decode(bytes).pixels));
    // mean intensity survives a non-integer ratio up to rounding
    const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean(decode(bytes).pixels) - mean(samples))).toBeLessThan(0.5);
  });
});

// ---- inversion ----

describe('decodeDigitPng invert', () => {
  // a dark "1" on white
  const darkOnWhite = (() => {
    const s = new Array<number>(784).fill(255);
    for (let y = 4; y < 24; y++) s[y * 28 + 14] = 0;
    return buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 0, samples: s });
  })();
  const lightOnBlack = (() => {
    const s = new Array<number>(784).fill(0);
    for (let y = 4; y < 24; y++) s[y * 28 + 14] = 255;
    return buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 0, samples: s });
  })();

  it('auto inverts a white-background image into MNIST polarity', () => {
    const r = decodeDigitPng(darkOnWhite, 'w.png');
    expect(r.inverted).toBe(true);
    expect(r.pixels[0]).toBe(0);
    expect(r.pixels[10 * 28 + 14]).toBe(255);
  });

  it('auto leaves a black-background image alone', () => {
    const r = decodeDigitPng(lightOnBlack, 'b.png', { invert: 'auto' });
    expect(r.inverted).toBe(false);
    expect(r.pixels[0]).toBe(0);
    expect(r.pixels[10 * 28 + 14]).toBe(255);
  });

  it('auto decides on the border only, not on the overall mean', () => {
    // mostly white interior, black 1-pixel frame: border is dark, so no inversion
    const s = new Array<number>(784).fill(255);
    for (let i = 0; i < 28; i++) s[i] = s[27 * 28 + i] = s[i * 28] = s[i * 28 + 27] = 0;
    const r = decodeDigitPng(buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 0, samples: s }), 'f.png');
    expect(r.inverted).toBe(false);
    expect(r.pixels[14 * 28 + 14]).toBe(255);
  });

  it('yes and no force the choice', () => {
    const yes = decodeDigitPng(lightOnBlack, 'b.png', { invert: 'yes' });
    expect(yes.inverted).toBe(true);
    expect(yes.pixels[0]).toBe(255);
    expect(yes.pixels[10 * 28 + 14]).toBe(0);
    const no = decodeDigitPng(darkOnWhite, 'w.png', { invert: 'no' });
    expect(no.inverted).toBe(false);
    expect(no.pixels[0]).toBe(255);
    expect(no.pixels[10 * 28 + 14]).toBe(0);
  });

  it('rejects an unknown invert mode', () => {
    expectInputError(() => decodeDigitPng(lightOnBlack, 'b.png', { invert: 'maybe' as never }), /b\.png: invert must be/);
  });
});

// ---- errors ----

describe('errors', () => {
  const good = uniform(0, 8, [0]);

  it('file not found', () => {
    const path = join(tmp, 'missing.png');
    expectInputError(() => readDigitPng(path), new RegExp(`${escape(path)}: file not found`));
  });

  it('a directory instead of a file', () => {
    const dir = join(tmp, 'adir.png');
    mkdirSync(dir);
    expectInputError(() => readDigitPng(dir), /adir\.png: is a directory/);
  });

  it('zero-size file', () => {
    const path = join(tmp, 'empty.png');
    writeFileSync(path, new Uint8Array(0));
    expectInputError(() => readDigitPng(path), /empty\.png: file is empty/);
  });

  it('not a PNG', () => {
    const path = join(tmp, 'text.png');
    writeFileSync(path, 'hello, this is not an image');
    expectInputError(() => readDigitPng(path), /text\.png: not a PNG file/);
    expectInputError(() => decodeDigitPng(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0]), 'photo.jpg'), /photo\.jpg: not a PNG file/);
  });

  it('truncated inside the header', () => {
    expectInputError(() => decodeDigitPng(good.subarray(0, 20), 'cut.png'), /cut\.png: truncated PNG/);
  });

  it('truncated body', () => {
    const idatEnd = good.indexOf('IEND') - 4;
    expectInputError(() => decodeDigitPng(good.subarray(0, 40), 'cut.png'), /^cut\.png: truncated PNG \(file ends inside a chunk header\)$/);
    expectInputError(() => decodeDigitPng(good.subarray(0, 45), 'cut.png'), /^cut\.png: truncated PNG \(file ends inside its IDAT chunk\)$/);
    expectInputError(() => decodeDigitPng(good.subarray(0, idatEnd), 'cut.png'), /^cut\.png: truncated PNG \(no IEND chunk\)$/);
    expectInputError(() => decodeDigitPng(good.subarray(0, good.length - 2), 'cut.png'), /^cut\.png: truncated PNG \(file ends inside its IEND chunk\)$/);
  });

  it('corrupt body: pngjs errors are wrapped in one line', () => {
    const badCrc = Buffer.from(good);
    badCrc[29] ^= 0xff; // IHDR CRC
    expectInputError(() => decodeDigitPng(badCrc, 'crc.png'), /^crc\.png: corrupt PNG \(.+\)$/);
    // valid chunk structure and CRCs, but the IDAT payload is not a zlib stream
    const ihdr = good.subarray(8, 33);
    const notZlib = Buffer.concat([good.subarray(0, 8), ihdr, chunk('IDAT', Buffer.from('definitely not deflate')), chunk('IEND', new Uint8Array(0))]);
    // repeated: pngjs alone sometimes returns uninitialised memory here instead of throwing
    for (let i = 0; i < 5; i++) {
      expectInputError(() => decodeDigitPng(notZlib, 'data.png'), /^data\.png: corrupt PNG \(image data does not inflate: .+\)$/);
    }
    // valid zlib, but too few or too many bytes for a 28x28 8-bit gray image (28 * 29 = 812)
    const short = buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 0, samples: [], idat: deflateSync(Buffer.alloc(800)) });
    expectInputError(() => decodeDigitPng(short, 'short.png'), /^short\.png: corrupt PNG \(image data is 800 bytes, expected 812 for 28x28\)$/);
    const long = buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 0, samples: [], idat: deflateSync(Buffer.alloc(10_000_000)) });
    expectInputError(() => decodeDigitPng(long, 'bomb.png'), /^bomb\.png: corrupt PNG \(image data is larger than its 28x28 header allows\)$/);
    // no IDAT chunk at all
    const noData = Buffer.concat([SIGNATURE, ihdrChunk({ width: 28, height: 28, bitDepth: 8, colorType: 0 }), chunk('IEND', new Uint8Array(0))]);
    expectInputError(() => decodeDigitPng(noData, 'nodata.png'), /^nodata\.png: corrupt PNG \(no image data\)$/);
    // colour type / bit depth combination the spec forbids
    const badDepth = buildPng({ width: 28, height: 28, bitDepth: 4, colorType: 2, samples: new Array(784 * 3).fill(0) });
    expectInputError(() => decodeDigitPng(badDepth, 'depth.png'), /^depth\.png: corrupt PNG \(colour type 2 with bit depth 4 is not valid\)$/);
    // palette index beyond the palette
    const badIndex = buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 3, samples: new Array(784).fill(5), plte: [0, 0, 0] });
    expectInputError(() => decodeDigitPng(badIndex, 'pal.png'), /^pal\.png: corrupt PNG \(.*palette.*\)$/);
    // palette image without a PLTE chunk
    const noPlte = buildPng({ width: 28, height: 28, bitDepth: 8, colorType: 3, samples: new Array(784).fill(0) });
    expectInputError(() => decodeDigitPng(noPlte, 'nopal.png'), /^nopal\.png: corrupt PNG/);
  });

  it('first chunk is not IHDR', () => {
    const b = Buffer.from(good);
    b.write('IHDX', 12, 'latin1');
    expectInputError(() => decodeDigitPng(b, 'x.png'), /x\.png: corrupt PNG \(first chunk is not a valid IHDR\)/);
  });

  it('zero width', () => {
    const b = Buffer.from(good);
    b.writeUInt32BE(0, 16);
    expectInputError(() => decodeDigitPng(b, 'zero.png'), /zero\.png: corrupt PNG \(image is 0x28\)/);
  });

  it('absurdly large images are refused from the header, before decoding', () => {
    const b = Buffer.from(good);
    b.writeUInt32BE(100000, 16);
    b.writeUInt32BE(100000, 20);
    const started = performance.now();
    expectInputError(() => decodeDigitPng(b, 'huge.png'), /huge\.png: image is 100000x100000, larger than the 50 megapixel limit/);
    expect(performance.now() - started).toBeLessThan(50);
    // just over the limit is refused too; the limit itself is stated
    const over = Buffer.from(good);
    over.writeUInt32BE(MAX_PIXELS / 1000 + 1, 16);
    over.writeUInt32BE(1000, 20);
    expectInputError(() => decodeDigitPng(over, 'over.png'), /over\.png: image is 50001x1000/);
  });

  it('encodeGrayPng rejects a pixel count that does not match the size', () => {
    expectInputError(() => encodeGrayPng(new Uint8Array(10), 28, 28), /784/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- encodeGrayPng and fixtures ----

describe('encodeGrayPng', () => {
  it('round-trips through the decoder, including non-28 sizes', () => {
    const pixels = Uint8Array.from({ length: 784 }, (_, i) => (i * 13) % 256);
    const bytes = encodeGrayPng(pixels, 28, 28);
    const meta = PNG.sync.read(bytes);
    expect(meta.colorType).toBe(0);
    expect(meta.depth).toBe(8);
    expect(Array.from(decode(bytes).pixels)).toEqual(Array.from(pixels));
    const path = join(tmp, 'round.png');
    writeFileSync(path, bytes);
    expect(Array.from(readDigitPng(path, { invert: 'no' }).pixels)).toEqual(Array.from(pixels));
    const wide = encodeGrayPng(new Uint8Array(56 * 28).fill(9), 56, 28);
    expectAll(decode(wide).pixels, 9);
  });
});

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

describe('fixtures (checked in; regenerate with npm run fixtures)', () => {
  it('each fixtures/<d>.png is the first test-split sample of class d', () => {
    const { test } = loadBundledMnist();
    for (let d = 0; d < 10; d++) {
      const first = test.labels.indexOf(d);
      expect(first).toBeGreaterThanOrEqual(0);
      const expected = test.images.subarray(first * 784, (first + 1) * 784);
      const r = readDigitPng(join(FIXTURES, `${d}.png`), { invert: 'auto' });
      expect(r.width).toBe(28);
      expect(r.height).toBe(28);
      expect(r.warnings).toEqual([]);
      expect(r.inverted).toBe(false); // already MNIST polarity: dark border
      expect(Array.from(r.pixels)).toEqual(Array.from(expected));
    }
  });
});
