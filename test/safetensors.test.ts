import { describe, it, expect } from 'vitest';
import {
  MAX_HEADER_BYTES,
  decodeSafetensors,
  encodeSafetensors,
  halfToFloat,
} from '../src/io/safetensors.ts';
import { expectInputError } from './expect-input-error.ts';

/** Assemble a file by hand from a header string and raw data, independently of the encoder. */
function rawFile(header: string, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const json = Buffer.from(header, 'utf8');
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(headerLength ?? BigInt(json.length), 0);
  json.copy(out, 8);
  Buffer.from(data).copy(out, 8 + json.length);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Check a file against the format rules, written out independently of the decoder. */
function checkFormatRules(file: Uint8Array): { header: Record<string, any>; dataStart: number } {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(buf.readBigUInt64LE(0));
  expect(n % 8).toBe(0);
  const text = buf.subarray(8, 8 + n).toString('utf8');
  expect(text.startsWith('{')).toBe(true);
  expect(text.trimEnd().endsWith('}')).toBe(true);
  expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true); // only space padding
  const header = JSON.parse(text);
  const spans = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([, v]: [string, any]) => v.data_offsets as [number, number])
    .sort((a, b) => a[0] - b[0]);
  let cursor = 0;
  for (const [b, e] of spans) {
    expect(b).toBe(cursor);
    cursor = e;
  }
  expect(8 + n + cursor).toBe(file.byteLength);
  return { header, dataStart: 8 + n };
}

describe('encodeSafetensors / decodeSafetensors round trip', () => {
  const special = new Float32Array([
    0, -0, 1, -1, 1.5, 3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -1e-45, 1.1754942e-38, 1.17549435e-38,
    Math.PI, 123456.789,
  ]);

  it('is bit exact, including -0, subnormals and extremes', () => {
    const big = new Float32Array(1000).map((_, i) => Math.sin(i) * 10 ** ((i % 60) - 30));
    const file = encodeSafetensors(
      [
        { name: 'special', dtype: 'F32', shape: [special.length], data: special },
        { name: 'big', dtype: 'F32', shape: [10, 10, 10], data: big },
        { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([7]) },
        { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      ],
      { hello: 'world' },
    );
    const { tensors, metadata } = decodeSafetensors(file, 'rt.safetensors');
    expect(metadata).toEqual({ hello: 'world' });
    expect(tensors.get('special')!.shape).toEqual([special.length]);
    expect(bytesOf(tensors.get('special')!.data).equals(bytesOf(special))).toBe(true);
    expect(Object.is(tensors.get('special')!.data[1], -0)).toBe(true);
    expect(bytesOf(tensors.get('big')!.data).equals(bytesOf(big))).toBe(true);
    expect(tensors.get('big')!.shape).toEqual([10, 10, 10]);
    expect(tensors.get('scalar')!.shape).toEqual([]);
    expect(Array.from(tensors.get('scalar')!.data)).toEqual([7]);
    expect(tensors.get('empty')!.data.length).toBe(0);
    expect(tensors.get('empty')!.dtype).toBe('F32');
  });

  it('writes a header padded with spaces to a multiple of 8 that follows the format rules', () => {
    for (let len = 1; len <= 9; len++) {
      // Vary the name length so every padding amount 0..7 occurs.
      const file = encodeSafetensors([{ name: 'x'.repeat(len), dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
      const { header, dataStart } = checkFormatRules(file);
      expect(header['x'.repeat(len)]).toEqual({ dtype: 'F32', shape: [2], data_offsets: [0, 8] });
      expect(dataStart % 8).toBe(0);
    }
  });

  it('produces the exact reference byte layout for a simple file', () => {
    const file = encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, -2]) }]);
    const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    const expected = Buffer.concat([
      Buffer.from(new BigUint64Array([BigInt(padded.length)]).buffer),
      Buffer.from(padded, 'utf8'),
      Buffer.from(f32Bytes([1, -2])),
    ]);
    expect(Buffer.compare(file, expected)).toBe(0);
  });

  it('orders tensors deterministically by name, metadata first', () => {
    const a = { name: 'b.w', dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) };
    const b = { name: 'a.w', dtype: 'F32' as const, shape: [2], data: new Float32Array([2, 3]) };
    const c = { name: '10', dtype: 'F32' as const, shape: [1], data: new Float32Array([4]) };
    const one = encodeSafetensors([a, b, c], { z: '1', y: '2' });
    const two = encodeSafetensors([c, b, a], { y: '2', z: '1' });
    expect(Buffer.compare(one, two)).toBe(0);
    const text = one.subarray(8, 8 + Number(one.readBigUInt64LE(0))).toString('utf8');
    expect(text.indexOf('__metadata__')).toBeLessThan(text.indexOf('"10"'));
    expect(text.indexOf('"10"')).toBeLessThan(text.indexOf('"a.w"'));
    expect(text.indexOf('"a.w"')).toBeLessThan(text.indexOf('"b.w"'));
    const decoded = decodeSafetensors(one, 'order');
    expect([...decoded.tensors.keys()]).toEqual(['10', 'a.w', 'b.w']); // layout order
    expect(checkFormatRules(one).header['b.w'].data_offsets).toEqual([12, 16]);
  });

  it('omits __metadata__ when there is none and decodes to an empty object', () => {
    const file = encodeSafetensors([{ name: 't', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
    expect(file.toString('utf8')).not.toContain('__metadata__');
    expect(decodeSafetensors(file, 'f').metadata).toEqual({});
  });

  it('rejects invalid encoder input', () => {
    const t = (over: object) => ({ name: 't', dtype: 'F32' as const, shape: [2], data: new Float32Array(2), ...over });
    expectInputError(() => encodeSafetensors([t({ data: new Float32Array(3) })]), '"t"', 'needs 2 values, got 3');
    expectInputError(() => encodeSafetensors([t({}), t({})]), '"t"', 'twice');
    expectInputError(() => encodeSafetensors([t({ name: '__metadata__' })]), 'invalid tensor name');
    expectInputError(() => encodeSafetensors([t({ shape: [-1] })]), '"t"', 'invalid shape');
    expectInputError(() => encodeSafetensors([t({})], { k: 5 as unknown as string }), 'metadata', '"k"');
  });
});

describe('decoding F16 and BF16', () => {
  it('converts half-precision bit patterns exactly', () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc100)).toBe(-2.5);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(halfToFloat(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(halfToFloat(0x0400)).toBe(2 ** -14); // smallest normal
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(halfToFloat(0x7e00)).toBeNaN();
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(halfToFloat(0x3555)).toBe(0.333251953125);
  });

  it('decodes bfloat16 bit patterns exactly', () => {
    // 1, -2.5, 65536, the smallest subnormal, ±Infinity, NaN, the largest finite value
    const patterns = [0x3f80, 0xc020, 0x4780, 0x0001, 0x7f80, 0xff80, 0x7fc0, 0x7f7f];
    const data = new Uint8Array(2 * patterns.length);
    const dv = new DataView(data.buffer);
    patterns.forEach((p, i) => dv.setUint16(2 * i, p, true));
    const header = JSON.stringify({ b: { dtype: 'BF16', shape: [patterns.length], data_offsets: [0, data.length] } });
    const values = Array.from(decodeSafetensors(rawFile(header, data), 'bf16.safetensors').tensors.get('b')!.data);
    expect(values).toEqual([1, -2.5, 65536, 2 ** -133, Infinity, -Infinity, NaN, 3.3895313892515355e38]);
    expect(values[6]).toBeNaN();
  });

  it('decodes F16 and BF16 tensors from a file into Float32Array', () => {
    const half = [0x3c00, 0xc100, 0x7bff, 0x0001, 0x7c00];
    const bf = [0x3f80, 0xc020, 0x0001, 0xff80];
    const data = new Uint8Array(2 * (half.length + bf.length));
    const dv = new DataView(data.buffer);
    [...half, ...bf].forEach((h, i) => dv.setUint16(2 * i, h, true));
    const header = JSON.stringify({
      h: { dtype: 'F16', shape: [5], data_offsets: [0, 10] },
      b: { dtype: 'BF16', shape: [2, 2], data_offsets: [10, 18] },
    });
    const { tensors } = decodeSafetensors(rawFile(header, data), 'half.safetensors');
    const h = tensors.get('h')!;
    expect(h.dtype).toBe('F16');
    expect(h.data).toBeInstanceOf(Float32Array);
    expect(Array.from(h.data)).toEqual([1, -2.5, 65504, 2 ** -24, Infinity]);
    const b = tensors.get('b')!;
    expect(b.dtype).toBe('BF16');
    expect(b.shape).toEqual([2, 2]);
    expect(Array.from(b.data)).toEqual([1, -2.5, 2 ** -133, -Infinity]);
  });
});

describe('alignment', () => {
  it('copies F32 data whose bytes are not 4-aligned in memory', () => {
    const file = encodeSafetensors([{ name: 'v', dtype: 'F32', shape: [3], data: new Float32Array([1.25, -7, 1e-40]) }]);
    // Place the file at an odd offset inside a larger buffer.
    const backing = new Uint8Array(file.length + 3);
    backing.set(file, 1);
    const shifted = backing.subarray(1, 1 + file.length);
    const v = decodeSafetensors(shifted, 'odd').tensors.get('v')!.data;
    expect(bytesOf(v).equals(Buffer.from(f32Bytes([1.25, -7, 1e-40])))).toBe(true);
    expect(v.buffer).not.toBe(backing.buffer);
  });

  it('handles a header whose length is not a multiple of 4 (data starts unaligned)', () => {
    const header = '{"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'; // 55 bytes, unpadded
    expect(header.length % 4).not.toBe(0);
    const v = decodeSafetensors(rawFile(header, f32Bytes([3.5, -0])), 'unpadded').tensors.get('v')!.data;
    expect(v[0]).toBe(3.5);
    expect(Object.is(v[1], -0)).toBe(true);
  });

  it('returns a view (no copy) for aligned data', () => {
    const file = encodeSafetensors([{ name: 'v', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
    const v = decodeSafetensors(file, 'aligned').tensors.get('v')!.data;
    expect(v.buffer).toBe(file.buffer);
  });
});

describe('decodeSafetensors rejections', () => {
  const good = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, ...extra });
  const eight = f32Bytes([1, 2]);

  it('accepts the baseline used below', () => {
    expect(decodeSafetensors(rawFile(good(), eight), 'ok').tensors.get('w')!.shape).toEqual([2]);
  });

  it('rejects a file shorter than 8 bytes', () => {
    expectInputError(() => decodeSafetensors(new Uint8Array(5), 'short.st'), 'short.st', '5 bytes');
  });

  it('rejects a header length beyond the file', () => {
    expectInputError(() => decodeSafetensors(rawFile(good(), eight, 1000n), 'long.st'), 'long.st', 'runs past the end');
  });

  it('rejects a header length over 100 MB', () => {
    expectInputError(
      () => decodeSafetensors(rawFile(good(), eight, BigInt(MAX_HEADER_BYTES + 1)), 'huge.st'),
      'huge.st',
      'exceeds',
    );
    expectInputError(() => decodeSafetensors(rawFile(good(), eight, 2n ** 64n - 1n), 'huge.st'), 'huge.st', 'exceeds');
  });

  it('rejects invalid JSON, invalid UTF-8 and non-object headers', () => {
    expectInputError(() => decodeSafetensors(rawFile('{"w": ', eight), 'bad.st'), 'bad.st', 'not valid JSON');
    expectInputError(() => decodeSafetensors(rawFile('[1, 2, 3]', eight), 'arr.st'), 'arr.st', 'not a JSON object');
    expectInputError(() => decodeSafetensors(rawFile('null', eight), 'null.st'), 'null.st', 'not a JSON object');
    expectInputError(() => decodeSafetensors(rawFile('', eight), 'empty.st'), 'empty.st', 'not a JSON object');
    const badUtf8 = Buffer.concat([Buffer.from(new BigUint64Array([4n]).buffer), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]);
    expectInputError(() => decodeSafetensors(badUtf8, 'utf.st'), 'utf.st', 'UTF-8');
  });

  it('rejects tensor entries with missing or mistyped fields, naming the tensor', () => {
    const cases: [unknown, string][] = [
      [{ shape: [2], data_offsets: [0, 8] }, 'no "dtype"'],
      [{ dtype: 'F32', data_offsets: [0, 8] }, 'no "shape"'],
      [{ dtype: 'F32', shape: [2] }, 'no "data_offsets"'],
      [{ dtype: 32, shape: [2], data_offsets: [0, 8] }, '"dtype" is not a string'],
      [{ dtype: 'F32', shape: '2', data_offsets: [0, 8] }, '"shape"'],
      [{ dtype: 'F32', shape: [2.5], data_offsets: [0, 8] }, '"shape"'],
      [{ dtype: 'F32', shape: [-2], data_offsets: [0, 8] }, '"shape"'],
      [{ dtype: 'F32', shape: [2], data_offsets: [0] }, '"data_offsets"'],
      [{ dtype: 'F32', shape: [2], data_offsets: ['0', '8'] }, '"data_offsets"'],
      [{ dtype: 'F32', shape: [2], data_offsets: [8, 0] }, '"data_offsets"'],
      ['not an object', 'not a JSON object'],
    ];
    for (const [entry, fragment] of cases) {
      const header = JSON.stringify({ w: entry });
      expectInputError(() => decodeSafetensors(rawFile(header, eight), 'fields.st'), 'fields.st', 'tensor "w"', fragment);
    }
  });

  it('rejects unsupported dtypes, naming the tensor and the dtype', () => {
    for (const dtype of ['F64', 'I64', 'U8', 'bogus']) {
      const header = JSON.stringify({ w: { dtype, shape: [1], data_offsets: [0, 8] } });
      expectInputError(() => decodeSafetensors(rawFile(header, eight), 'dt.st'), 'dt.st', 'tensor "w"', `"${dtype}"`);
    }
  });

  it('rejects a byte length that does not match shape × dtype size', () => {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } });
    expectInputError(() => decodeSafetensors(rawFile(header, eight), 'len.st'), 'len.st', 'tensor "w"', 'needs 12 bytes');
    const half = JSON.stringify({ w: { dtype: 'F16', shape: [2], data_offsets: [0, 8] } });
    expectInputError(() => decodeSafetensors(rawFile(half, eight), 'len.st'), 'tensor "w"', 'needs 4 bytes');
  });

  it('rejects data offsets beyond the data buffer', () => {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } });
    expectInputError(() => decodeSafetensors(rawFile(header, eight), 'oob.st'), 'oob.st', 'tensor "w"', 'past the end');
  });

  it('rejects overlapping tensors, naming both', () => {
    const header = JSON.stringify({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    });
    expectInputError(() => decodeSafetensors(rawFile(header, new Uint8Array(12)), 'ov.st'), 'ov.st', '"a"', '"b"', 'overlap');
    const same = JSON.stringify({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    });
    expectInputError(() => decodeSafetensors(rawFile(same, new Uint8Array(8)), 'ov.st'), 'overlap');
  });

  it('rejects gaps and trailing bytes that belong to no tensor', () => {
    const gap = JSON.stringify({
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    });
    expectInputError(() => decodeSafetensors(rawFile(gap, new Uint8Array(12)), 'gap.st'), 'gap.st', '"b"', '[4, 8)');
    const lead = JSON.stringify({ b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } });
    expectInputError(() => decodeSafetensors(rawFile(lead, new Uint8Array(8)), 'gap.st'), '"b"', '[0, 4)');
    expectInputError(() => decodeSafetensors(rawFile(good(), new Uint8Array(12)), 'tail.st'), 'tail.st', 'cover only 8');
  });

  it('rejects metadata that is not an object of strings', () => {
    expectInputError(
      () => decodeSafetensors(rawFile(good({ __metadata__: { n: 3 } }), eight), 'meta.st'),
      'meta.st',
      '"n"',
      'not a string',
    );
    expectInputError(() => decodeSafetensors(rawFile(good({ __metadata__: ['x'] }), eight), 'meta.st'), '__metadata__');
  });

  it('accepts space-padded headers, unknown entry keys and zero-size tensors', () => {
    const header = JSON.stringify({
      __metadata__: { format: 'pt' },
      z: { dtype: 'F32', shape: [0], data_offsets: [0, 0] },
      w: { dtype: 'F32', shape: [2], data_offsets: [0, 8], extra: true },
    }) + '     ';
    const { tensors, metadata } = decodeSafetensors(rawFile(header, eight), 'ok.st');
    expect(metadata).toEqual({ format: 'pt' });
    expect(Array.from(tensors.get('w')!.data)).toEqual([1, 2]);
    expect(tensors.get('z')!.data.length).toBe(0);
  });
});
