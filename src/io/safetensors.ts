/**
 * A small, strict codec for the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [u64 little-endian N] [N bytes of UTF-8 JSON header, space padded] [raw little-endian tensor bytes]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative
 * to the start of the byte buffer) plus an optional "__metadata__" object of string → string.
 *
 * Decoding follows the reference implementation's validation: the header is at most 100 MB, and the
 * tensors must tile the byte buffer exactly — sorted by offset, each begins where the previous one
 * ends, with no overlap, no gap and no trailing bytes. Unknown keys inside a tensor entry are ignored,
 * as the reference does. F32, F16 and BF16 tensors are decoded to Float32Array; other dtypes are
 * rejected. Encoding writes F32 only.
 */
import { InputError } from '../errors.ts';

/** The reference implementation refuses headers larger than this (a guard against hostile files). */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

const DTYPE_BYTES = { F32: 4, F16: 2, BF16: 2 } as const;
export type DecodableDtype = keyof typeof DTYPE_BYTES;

export interface TensorToEncode {
  name: string;
  dtype: 'F32';
  shape: readonly number[];
  data: Float32Array;
}

export interface DecodedTensor {
  /** The dtype stored in the file; `data` is always float32. */
  dtype: DecodableDtype;
  shape: number[];
  /**
   * The values, row-major. For an F32 tensor whose bytes are 4-aligned in memory this is a view on the
   * decoded bytes (no copy): writing to it writes into them. Otherwise it is a fresh array.
   */
  data: Float32Array;
}

export interface DecodedSafetensors {
  /** In the order the tensors are laid out in the byte buffer. */
  tensors: Map<string, DecodedTensor>;
  /** The "__metadata__" object; empty when the file has none. */
  metadata: Record<string, string>;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/**
 * Serialize float32 tensors. Tensors are written sorted by name (as the reference does for tensors of
 * one dtype), so the bytes depend only on the content, not the order given. Metadata keys are sorted
 * too; an empty or absent metadata object writes no "__metadata__" entry. The header is padded with
 * spaces to a multiple of 8 bytes so the data buffer starts 8-aligned.
 */
export function encodeSafetensors(tensors: readonly TensorToEncode[], metadata?: Record<string, string>): Buffer {
  const seen = new Set<string>();
  for (const t of tensors) {
    const where = `cannot encode safetensors: tensor ${JSON.stringify(t.name)}`;
    if (typeof t.name !== 'string' || t.name === '' || t.name === METADATA_KEY) {
      throw new InputError(`cannot encode safetensors: invalid tensor name ${JSON.stringify(t.name)}`);
    }
    if (seen.has(t.name)) throw new InputError(`${where} appears twice`);
    seen.add(t.name);
    if (t.dtype !== 'F32') throw new InputError(`${where}: only F32 can be written, got ${String(t.dtype)}`);
    if (!isShape(t.shape)) throw new InputError(`${where}: invalid shape ${JSON.stringify(t.shape)}`);
    if (!(t.data instanceof Float32Array)) throw new InputError(`${where}: data is not a Float32Array`);
    const count = product(t.shape);
    if (t.data.length !== count) {
      throw new InputError(`${where}: shape [${t.shape.join(', ')}] needs ${count} values, got ${t.data.length}`);
    }
  }

  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  // Built by hand rather than JSON.stringify(object): JS objects put integer-like keys first,
  // which would make the order differ from the data layout.
  const entries: string[] = [];
  const metaKeys = metadata ? Object.keys(metadata).sort() : [];
  if (metaKeys.length > 0) {
    const parts = metaKeys.map((k) => {
      const v = metadata![k];
      if (typeof v !== 'string') {
        throw new InputError(`cannot encode safetensors: metadata value for ${JSON.stringify(k)} is not a string`);
      }
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    entries.push(`${JSON.stringify(METADATA_KEY)}:{${parts.join(',')}}`);
  }
  let offset = 0;
  for (const t of sorted) {
    const end = offset + t.data.byteLength;
    const info = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, end] };
    entries.push(`${JSON.stringify(t.name)}:${JSON.stringify(info)}`);
    offset = end;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const headerLength = json.length + ((8 - (json.length % 8)) % 8);
  if (headerLength > MAX_HEADER_BYTES) throw new InputError('cannot encode safetensors: header exceeds 100 MB');

  // Every byte is written below (header, padding, contiguous data), so no zero-fill is needed.
  const out = Buffer.allocUnsafe(8 + headerLength + offset);
  out.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(out, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of sorted) {
    const src = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (HOST_LITTLE_ENDIAN) out.set(src, at);
    else copySwapped32(src, out.subarray(at, at + src.length));
    at += src.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

interface HeaderEntry {
  name: string;
  dtype: DecodableDtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parse and validate a safetensors file held in memory. `fileLabel` (usually the path) prefixes every
 * error message. Throws InputError for anything malformed.
 */
export function decodeSafetensors(bytes: Uint8Array, fileLabel: string): DecodedSafetensors {
  const fail = (msg: string): InputError => new InputError(`${fileLabel}: ${msg}`);

  if (bytes.byteLength < 8) {
    throw fail(`not a safetensors file: ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLengthBig = view.getBigUint64(0, true);
  if (headerLengthBig > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`not a safetensors file: header length ${headerLengthBig} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLength = Number(headerLengthBig);
  if (headerLength > bytes.byteLength - 8) {
    throw fail(`not a safetensors file: header length ${headerLength} runs past the end of the file (${bytes.byteLength} bytes)`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;

  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    throw fail('safetensors header is not valid UTF-8');
  }
  // The reference insists on '{' first; this also rules out a BOM or leading whitespace.
  if (!headerText.startsWith('{')) throw fail('safetensors header is not a JSON object');
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (err) {
    throw fail(`safetensors header is not valid JSON (${oneLine(err)})`);
  }
  if (!isPlainObject(header)) throw fail('safetensors header is not a JSON object');

  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(raw, fail);
      continue;
    }
    entries.push(parseEntry(name, raw, dataLength, fail));
  }

  checkCoverage(entries, dataLength, fail);

  const tensors = new Map<string, DecodedTensor>();
  for (const e of [...entries].sort(byOffsets)) {
    const src = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: toFloat32(src, e.dtype) });
  }
  return { tensors, metadata };
}

function parseMetadata(raw: unknown, fail: (msg: string) => InputError): Record<string, string> {
  if (!isPlainObject(raw)) throw fail(`${METADATA_KEY} is not a JSON object`);
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw fail(`${METADATA_KEY} value for ${JSON.stringify(k)} is not a string`);
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays plain data.
  return Object.fromEntries(Object.entries(raw as Record<string, string>));
}

function parseEntry(name: string, raw: unknown, dataLength: number, fail: (msg: string) => InputError): HeaderEntry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(raw)) throw fail(`${where}: header entry is not a JSON object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (dtype === undefined) throw fail(`${where}: header entry has no "dtype"`);
  if (shape === undefined) throw fail(`${where}: header entry has no "shape"`);
  if (offsets === undefined) throw fail(`${where}: header entry has no "data_offsets"`);
  if (typeof dtype !== 'string') throw fail(`${where}: "dtype" is not a string`);
  if (!isShape(shape)) {
    throw fail(`${where}: "shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isByteCount) || offsets[0] > offsets[1]) {
    throw fail(`${where}: "data_offsets" must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  if (!(dtype in DTYPE_BYTES)) {
    throw fail(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16)`);
  }
  const dt = dtype as DecodableDtype;
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) {
    throw fail(`${where}: data_offsets [${begin}, ${end}] run past the end of the data buffer (${dataLength} bytes)`);
  }
  const expected = product(shape) * DTYPE_BYTES[dt];
  if (end - begin !== expected) {
    throw fail(
      `${where}: shape [${shape.join(', ')}] of ${dt} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype: dt, shape: [...shape], begin, end };
}

/** The tensors must tile [0, dataLength) exactly, as the reference format requires. */
function checkCoverage(entries: readonly HeaderEntry[], dataLength: number, fail: (msg: string) => InputError): void {
  const sorted = [...entries].sort(byOffsets);
  let cursor = 0;
  let previous: HeaderEntry | undefined;
  for (const e of sorted) {
    if (e.begin < cursor) {
      throw fail(
        `tensors ${JSON.stringify(previous!.name)} and ${JSON.stringify(e.name)} overlap ` +
          `(data_offsets [${previous!.begin}, ${previous!.end}] and [${e.begin}, ${e.end}])`,
      );
    }
    if (e.begin > cursor) {
      throw fail(`data bytes [${cursor}, ${e.begin}) before tensor ${JSON.stringify(e.name)} belong to no tensor`);
    }
    cursor = e.end;
    previous = e;
  }
  if (cursor !== dataLength) {
    throw fail(`data buffer has ${dataLength} bytes but the tensors cover only ${cursor} (trailing bytes belong to no tensor)`);
  }
}

function byOffsets(a: HeaderEntry, b: HeaderEntry): number {
  return a.begin - b.begin || a.end - b.end;
}

function toFloat32(src: Uint8Array, dtype: DecodableDtype): Float32Array {
  if (dtype === 'F32') {
    const count = src.byteLength / 4;
    // A Float32Array view needs a 4-aligned offset (and matching byte order); otherwise copy.
    if (HOST_LITTLE_ENDIAN && src.byteOffset % 4 === 0) return new Float32Array(src.buffer, src.byteOffset, count);
    const copy = new Uint8Array(src.byteLength);
    if (HOST_LITTLE_ENDIAN) copy.set(src);
    else copySwapped32(src, copy);
    return new Float32Array(copy.buffer);
  }
  const count = src.byteLength / 2;
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const out = new Float32Array(count);
  if (dtype === 'F16') {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
  } else {
    // bfloat16 is the top half of a float32: write the bits directly, so every value (NaN payloads too) is exact.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16;
  }
  return out;
}

/** IEEE 754 binary16 bits → number (exact: every half value is a float32 value). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero (keeps its sign) and subnormals
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1024 + fraction) * 2 ** (exponent - 25); // (1 + f/1024) · 2^(e-15)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function copySwapped32(src: Uint8Array, dst: Uint8Array): void {
  for (let i = 0; i < src.length; i += 4) {
    dst[i] = src[i + 3]!;
    dst[i + 1] = src[i + 2]!;
    dst[i + 2] = src[i + 1]!;
    dst[i + 3] = src[i]!;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isByteCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isShape(v: unknown): v is number[] {
  return Array.isArray(v) && v.every(isByteCount);
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
