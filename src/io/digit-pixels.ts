/**
 * From any image's RGBA samples to the 28x28 light-on-dark digit the CNN reads: luminance, an area-average resize,
 * and inversion of a dark-on-light image. Pure arithmetic on arrays: `predict` and `serve` reach it through the
 * PNG decoder, the browser page through a canvas's pixels, and both get the same digit from the same image.
 */
import { IMAGE_SIDE } from '../model/cnn.ts';

export type InvertMode = 'auto' | 'yes' | 'no';

/**
 * Gray values are carried as fixed point with this many steps per gray level, so that the resize
 * sums are exact integers in float64 (max 255*4096*50e6 ≈ 5.2e13 < 2^53) and the only rounding to
 * uint8 happens once, at the end.
 */
const FIX = 4096;

/** auto-invert when the mean of the outermost ring of the 28x28 image is above this. */
const LIGHT_BORDER_THRESHOLD = 127.5;

export interface RgbaDigitOptions {
  /** The largest sample value (255 for 8-bit samples, 65535 for 16-bit). */
  maxSample?: number;
  invert?: InvertMode;
  /** Names the image in warnings. */
  label?: string;
}

/** The digit in `width` x `height` RGBA samples, with whether it was inverted and what the user should be told. */
export function digitFromRgba(rgba: ArrayLike<number>, width: number, height: number, opts: RgbaDigitOptions = {}): { pixels: Uint8Array; inverted: boolean; warnings: string[] } {
  const { maxSample = 255, invert = 'auto', label = 'the image' } = opts;
  const gray = toGrayFixed(rgba, width * height, maxSample);
  const warnings: string[] = [];
  let pixels: Uint8Array;
  if (width === IMAGE_SIDE && height === IMAGE_SIDE) {
    pixels = new Uint8Array(IMAGE_SIDE * IMAGE_SIDE);
    for (let i = 0; i < pixels.length; i++) pixels[i] = roundRatio(gray[i]!, FIX);
  } else {
    pixels = resizeAreaAverage(gray, width, height, IMAGE_SIDE, IMAGE_SIDE);
    const aspect = width === height ? '' : ' (aspect ratio not kept)';
    warnings.push(`${label} is ${width}x${height}; resized to ${IMAGE_SIDE}x${IMAGE_SIDE}${aspect}`);
  }

  const inverted = invert === 'yes' || (invert === 'auto' && borderMean(pixels, IMAGE_SIDE, IMAGE_SIDE) > LIGHT_BORDER_THRESHOLD);
  if (inverted) {
    for (let i = 0; i < pixels.length; i++) pixels[i] = 255 - pixels[i]!;
  }
  return { pixels, inverted, warnings };
}

/**
 * RGBA samples (each 0..maxSample) → gray in fixed point (0..255*FIX).
 * Luminance is ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B, done in integer thousandths so that a
 * gray pixel (R=G=B) maps exactly to itself. Alpha is composited over black, i.e. gray * alpha/max.
 */
function toGrayFixed(rgba: ArrayLike<number>, count: number, maxSample: number): Uint32Array {
  const out = new Uint32Array(count);
  // Numerator and denominator stay below 2^53, so the division is correctly rounded.
  const denom = 1000 * maxSample * maxSample;
  const scale = 255 * FIX;
  for (let p = 0, i = 0; p < count; p++, i += 4) {
    const lum1000 = 299 * rgba[i]! + 587 * rgba[i + 1]! + 114 * rgba[i + 2]!;
    out[p] = Math.round(((lum1000 * rgba[i + 3]!) / denom) * scale);
  }
  return out;
}

/** round(num / den) with halves rounded up, exact for non-negative integers below 2^52. */
function roundRatio(num: number, den: number): number {
  return Math.floor((2 * num + den) / (2 * den));
}

/**
 * For each output index, the source indices it overlaps and the overlap lengths. Coordinates are
 * measured in units of 1/(srcLen*dstLen): source pixel j spans [j*dstLen, (j+1)*dstLen) and output
 * pixel i spans [i*srcLen, (i+1)*srcLen), so every overlap is an integer and each output's weights
 * sum to srcLen exactly.
 */
function overlapWeights(srcLen: number, dstLen: number): { index: number[]; weight: number[] }[] {
  const result: { index: number[]; weight: number[] }[] = [];
  for (let i = 0; i < dstLen; i++) {
    const start = i * srcLen;
    const end = start + srcLen;
    const index: number[] = [];
    const weight: number[] = [];
    for (let j = Math.floor(start / dstLen); j * dstLen < end; j++) {
      const overlap = Math.min(end, (j + 1) * dstLen) - Math.max(start, j * dstLen);
      if (overlap > 0) {
        index.push(j);
        weight.push(overlap);
      }
    }
    result.push({ index, weight });
  }
  return result;
}

/**
 * Area-averaging (box) resize, used for both down- and upscaling: each output pixel is the mean of
 * the source area it covers. Integer weights make it exact and deterministic; a uniform image keeps
 * its value exactly. Separable: rows first, then columns.
 */
function resizeAreaAverage(gray: Uint32Array, srcW: number, srcH: number, dstW: number, dstH: number): Uint8Array {
  const wx = overlapWeights(srcW, dstW);
  const wy = overlapWeights(srcH, dstH);
  // Horizontal pass: srcH rows of dstW sums (each weighted by up to srcW).
  const rows = new Float64Array(srcH * dstW);
  for (let y = 0; y < srcH; y++) {
    const rowBase = y * srcW;
    for (let x = 0; x < dstW; x++) {
      const { index, weight } = wx[x]!;
      let sum = 0;
      for (let k = 0; k < index.length; k++) sum += gray[rowBase + index[k]!]! * weight[k]!;
      rows[y * dstW + x] = sum;
    }
  }
  const out = new Uint8Array(dstW * dstH);
  const den = srcW * srcH * FIX;
  for (let y = 0; y < dstH; y++) {
    const { index, weight } = wy[y]!;
    for (let x = 0; x < dstW; x++) {
      let sum = 0;
      for (let k = 0; k < index.length; k++) sum += rows[index[k]! * dstW + x]! * weight[k]!;
      out[y * dstW + x] = roundRatio(sum, den);
    }
  }
  return out;
}

/** Mean of the outermost ring of pixels. */
function borderMean(pixels: Uint8Array, w: number, h: number): number {
  let sum = 0;
  let n = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y === 0 || y === h - 1 || x === 0 || x === w - 1) {
        sum += pixels[y * w + x]!;
        n++;
      }
    }
  }
  return sum / n;
}
