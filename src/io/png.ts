/**
 * PNG input: turns any reasonable PNG into one MNIST-shaped gray digit (28x28 uint8, row-major,
 * light strokes on a dark background). Callers normalise the pixels the MNIST way elsewhere.
 *
 * Pipeline: signature + IHDR checks (size limit before any allocation) → chunk walk and our own
 * capped inflate of the image data → pngjs decode (raw sample depth kept) → gray, alpha over black
 * → area-average resize to 28x28 if needed → inversion (digit-pixels.ts; 'auto': when the 28x28 result's border is
 * mostly light, i.e. a dark digit on a light background).
 */
import { inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { InputError } from '../errors.ts';
import { readInputFile } from './read-input.ts';
import { digitFromRgba, type InvertMode } from './digit-pixels.ts';

export type { InvertMode };

export interface LoadedDigit {
  /** IMAGE_SIDE*IMAGE_SIDE gray pixels after resize and inversion. */
  pixels: Uint8Array;
  /** Size of the image as stored in the file. */
  width: number;
  height: number;
  /** Whether the gray image was inverted (255 - p). */
  inverted: boolean;
  /** Human-readable notes for stderr, e.g. that the image was resized. */
  warnings: string[];
}

export interface DecodeOptions {
  invert?: InvertMode;
  /** refuse images with more pixels than this, from the header alone (default MAX_PIXELS) */
  maxPixels?: number;
}

/** Refuse images bigger than this before decoding: a hostile header must not allocate gigabytes. */
export const MAX_PIXELS = 50_000_000;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** 8 signature + 4 length + 4 type + 13 IHDR data + 4 CRC. */
const MIN_HEADER_BYTES = 33;
const COLOR_TYPE_PALETTE = 3;
/** PNG spec: samples per pixel and the bit depths allowed, by colour type. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ALLOWED_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
/** Adam7 passes: x start, y start, x step, y step. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;

interface Header {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

/** Reads a PNG file and decodes it as a digit; the path is used as the label in messages. */
export function readDigitPng(path: string, opts: DecodeOptions = {}): LoadedDigit {
  const bytes = readInputFile(path, 'a PNG file');
  return decodeDigitPng(bytes, path, opts);
}

/** Decodes PNG bytes as a digit. `label` names the source (usually the path) in errors and warnings. */
export function decodeDigitPng(bytes: Uint8Array, label: string, opts: DecodeOptions = {}): LoadedDigit {
  const invert = opts.invert ?? 'auto';
  if (invert !== 'auto' && invert !== 'yes' && invert !== 'no') {
    throw new InputError(`${label}: invert must be 'auto', 'yes' or 'no', got '${String(invert)}'`);
  }
  const header = checkHeader(bytes, label, opts.maxPixels ?? MAX_PIXELS);
  const { width, height } = header;
  checkImageData(collectImageData(bytes, label), header, label);

  let decoded: { width: number; height: number; depth: number; colorType: number; data: ArrayLike<number> };
  try {
    // skipRescale keeps 16-bit (and 1/2/4-bit gray) samples at their stored depth; pngjs would
    // otherwise round them to 8 bits before we compute luminance. Palette images always come out
    // as 8-bit RGBA from the palette (tRNS applied as palette alpha).
    decoded = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipRescale: true });
  } catch (err) {
    throw new InputError(`${label}: corrupt PNG (${oneLine(err)})`);
  }
  if (decoded.width !== width || decoded.height !== height || decoded.data.length !== width * height * 4) {
    throw new InputError(`${label}: corrupt PNG (decoded size does not match its header)`);
  }

  const maxSample = decoded.colorType === COLOR_TYPE_PALETTE ? 255 : 2 ** decoded.depth - 1;
  return { ...digitFromRgba(decoded.data, width, height, { maxSample, invert, label }), width, height };
}

/** Encodes 8-bit gray pixels (row-major) as a gray PNG. */
export function encodeGrayPng(pixels: Uint8Array, width: number, height: number): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new InputError(`encodeGrayPng: width and height must be positive integers, got ${width}x${height}`);
  }
  if (pixels.length !== width * height) {
    throw new InputError(`encodeGrayPng: ${pixels.length} pixels given for a ${width}x${height} image (expected ${width * height})`);
  }
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  png.data = Buffer.from(pixels);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
}

/**
 * Checks the signature and reads width/height from IHDR ourselves (bytes 16..23, big-endian), so
 * that absurd sizes are refused before pngjs allocates anything.
 */
function checkHeader(bytes: Uint8Array, label: string, maxPixels: number): Header {
  if (bytes.length === 0) throw new InputError(`${label}: file is empty (0 bytes)`);
  const hasSignature = bytes.length >= PNG_SIGNATURE.length && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
  if (!hasSignature) throw new InputError(`${label}: not a PNG file (bad signature)`);
  if (bytes.length < MIN_HEADER_BYTES) throw new InputError(`${label}: truncated PNG (ends inside the header)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunkType = String.fromCharCode(bytes[12]!, bytes[13]!, bytes[14]!, bytes[15]!);
  if (view.getUint32(8) !== 13 || chunkType !== 'IHDR') {
    throw new InputError(`${label}: corrupt PNG (first chunk is not a valid IHDR)`);
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  if (width === 0 || height === 0) throw new InputError(`${label}: corrupt PNG (image is ${width}x${height})`);
  if (width * height > maxPixels) {
    throw new InputError(`${label}: image is ${width}x${height}, larger than the ${maxPixels / 1e6} megapixel limit`);
  }
  const bitDepth = bytes[24]!;
  const colorType = bytes[25]!;
  const interlaced = bytes[28] === 1;
  if (!ALLOWED_DEPTHS[colorType]?.includes(bitDepth)) {
    throw new InputError(`${label}: corrupt PNG (colour type ${colorType} with bit depth ${bitDepth} is not valid)`);
  }
  return { width, height, bitDepth, colorType, interlaced };
}

/**
 * Walks the chunk lengths (no CRC or content checks) and returns the IDAT payloads joined. A cut-off
 * file gets a plain "truncated" message here; pngjs's own wording for that case is cryptic.
 */
function collectImageData(bytes: Uint8Array, label: string): Buffer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let at = PNG_SIGNATURE.length;
  while (at + 8 <= bytes.length) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!);
    const end = at + 12 + length; // length + type + data + CRC
    if (end > bytes.length) throw new InputError(`${label}: truncated PNG (file ends inside its ${type} chunk)`);
    if (type === 'IDAT') idat.push(bytes.subarray(at + 8, at + 8 + length));
    if (type === 'IEND') {
      if (idat.length === 0) throw new InputError(`${label}: corrupt PNG (no image data)`);
      return Buffer.concat(idat);
    }
    at = end;
  }
  if (at < bytes.length) throw new InputError(`${label}: truncated PNG (file ends inside a chunk header)`);
  throw new InputError(`${label}: truncated PNG (no IEND chunk)`);
}

/**
 * Inflates the image data ourselves, capped at the exact size the header implies, and insists on
 * that size. Why: pngjs's sync inflater does not reliably throw on a broken zlib stream and can
 * hand back uninitialised memory as pixels; the cap also stops a small file inflating to gigabytes.
 */
function checkImageData(idat: Buffer, header: Header, label: string): void {
  const expected = rawDataBytes(header);
  let inflated: Buffer;
  try {
    inflated = inflateSync(idat, { maxOutputLength: expected + 1 });
  } catch (err) {
    if (err instanceof RangeError) throw new InputError(`${label}: corrupt PNG (image data is larger than its ${header.width}x${header.height} header allows)`);
    throw new InputError(`${label}: corrupt PNG (image data does not inflate: ${oneLine(err)})`);
  }
  if (inflated.length !== expected) {
    throw new InputError(`${label}: corrupt PNG (image data is ${inflated.length} bytes, expected ${expected} for ${header.width}x${header.height})`);
  }
}

/** Size of the filtered scanlines (a filter byte + packed samples per row), per Adam7 pass if interlaced. */
function rawDataBytes(h: Header): number {
  const bitsPerPixel = CHANNELS[h.colorType]! * h.bitDepth;
  const scanlines = (w: number, rows: number) => (w === 0 || rows === 0 ? 0 : rows * (1 + Math.ceil((w * bitsPerPixel) / 8)));
  if (!h.interlaced) return scanlines(h.width, h.height);
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    total += scanlines(Math.ceil((h.width - x0) / dx), Math.ceil((h.height - y0) / dy));
  }
  return total;
}


function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s+/g, ' ').trim();
}
