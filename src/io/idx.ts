/**
 * The IDX format of the original MNIST files (yann.lecun.com / torchvision), read and written.
 *
 * Layout, all integers big-endian uint32:
 *   images: magic 0x00000803 (uint8 data, 3 dims), count, rows, cols, then count*rows*cols pixels
 *   labels: magic 0x00000801 (uint8 data, 1 dim), count, then count labels
 * Files may be gzip-compressed; that is detected from the content (1f 8b), not the file name.
 */
import { writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { IMAGE_SIDE, NUM_CLASSES } from '../model/cnn.ts';
import { InputError } from '../errors.ts';
import { readInputFile } from './read-input.ts';

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;
const IMAGES_HEADER_BYTES = 16;
const LABELS_HEADER_BYTES = 8;

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  /** count*rows*cols bytes, row-major, one image after another. */
  pixels: Uint8Array;
}

/** Reads an MNIST image file (plain or gzip). Images must be 28x28. */
export function readIdxImages(path: string): IdxImages {
  return parseIdxImages(readMaybeGzipped(path), path);
}

/** Reads an MNIST label file (plain or gzip). Every label must be a digit 0..9. */
export function readIdxLabels(path: string): Uint8Array {
  return parseIdxLabels(readMaybeGzipped(path), path);
}

/** Parses decompressed image-file bytes; `name` is used in error messages. */
export function parseIdxImages(bytes: Uint8Array, name: string): IdxImages {
  const header = readHeader(bytes, name, IDX_IMAGES_MAGIC, 'images', IMAGES_HEADER_BYTES);
  const count = header.getUint32(4);
  const rows = header.getUint32(8);
  const cols = header.getUint32(12);
  if (rows !== IMAGE_SIDE || cols !== IMAGE_SIDE) {
    throw new InputError(
      `${name}: images are ${rows}x${cols}, expected ${IMAGE_SIDE}x${IMAGE_SIDE} (MNIST digits)`,
    );
  }
  checkLength(bytes, name, IMAGES_HEADER_BYTES, count, rows * cols, `${count} images of ${rows}x${cols}`);
  // Copy out of the file buffer so the result is a plain, independent Uint8Array.
  const pixels = new Uint8Array(bytes.subarray(IMAGES_HEADER_BYTES));
  return { count, rows, cols, pixels };
}

/** Parses decompressed label-file bytes; `name` is used in error messages. */
export function parseIdxLabels(bytes: Uint8Array, name: string): Uint8Array {
  const header = readHeader(bytes, name, IDX_LABELS_MAGIC, 'labels', LABELS_HEADER_BYTES);
  const count = header.getUint32(4);
  checkLength(bytes, name, LABELS_HEADER_BYTES, count, 1, `${count} labels`);
  const labels = new Uint8Array(bytes.subarray(LABELS_HEADER_BYTES));
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! >= NUM_CLASSES) {
      throw new InputError(
        `${name}: label ${i} is ${labels[i]}, expected a digit 0..${NUM_CLASSES - 1}`,
      );
    }
  }
  return labels;
}

/** Serialises images to IDX bytes (uncompressed). Any rows/cols; the reader is what insists on 28x28. */
export function encodeIdxImages(images: IdxImages): Buffer {
  const { count, rows, cols, pixels } = images;
  if (pixels.length !== count * rows * cols) {
    throw new InputError(
      `images to encode: ${pixels.length} pixels given, expected ${count}*${rows}*${cols} = ${count * rows * cols}`,
    );
  }
  const out = Buffer.alloc(IMAGES_HEADER_BYTES + pixels.length);
  out.writeUInt32BE(IDX_IMAGES_MAGIC, 0);
  out.writeUInt32BE(count, 4);
  out.writeUInt32BE(rows, 8);
  out.writeUInt32BE(cols, 12);
  out.set(pixels, IMAGES_HEADER_BYTES);
  return out;
}

/** Serialises labels to IDX bytes (uncompressed). Values are written as given, not checked. */
export function encodeIdxLabels(labels: Uint8Array): Buffer {
  const out = Buffer.alloc(LABELS_HEADER_BYTES + labels.length);
  out.writeUInt32BE(IDX_LABELS_MAGIC, 0);
  out.writeUInt32BE(labels.length, 4);
  out.set(labels, LABELS_HEADER_BYTES);
  return out;
}

/** Writes IDX bytes to `path`, gzip-compressed when the name ends in `.gz` (as the MNIST downloads are). */
export function writeIdxFile(path: string, bytes: Uint8Array): void {
  writeFileSync(path, path.endsWith('.gz') ? gzipSync(bytes) : bytes);
}

/** Reads a file and gunzips it when it starts with the gzip magic bytes. */
export function readMaybeGzipped(path: string): Uint8Array {
  const raw = readInputFile(path, 'an IDX file');
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (err) {
      throw new InputError(`${path}: corrupt gzip data (${oneLine(err)})`);
    }
  }
  return raw;
}

function readHeader(
  bytes: Uint8Array,
  name: string,
  expectedMagic: number,
  kind: string,
  headerBytes: number,
): DataView {
  if (bytes.length < headerBytes) {
    throw new InputError(
      `${name}: truncated: ${bytes.length} bytes, shorter than the ${headerBytes}-byte IDX ${kind} header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const magic = view.getUint32(0);
  if (magic !== expectedMagic) {
    throw new InputError(
      `${name}: bad magic number ${hex(magic)}, expected ${hex(expectedMagic)} (IDX ${kind} file)`,
    );
  }
  return view;
}

function checkLength(
  bytes: Uint8Array,
  name: string,
  headerBytes: number,
  count: number,
  itemBytes: number,
  what: string,
): void {
  const expected = headerBytes + count * itemBytes;
  if (bytes.length === expected) return;
  const problem = bytes.length < expected ? 'truncated' : 'has trailing bytes';
  throw new InputError(
    `${name}: ${problem}: header promises ${what}, so expected ${expected} bytes (decompressed), got ${bytes.length}`,
  );
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s+/g, ' ').trim();
}
