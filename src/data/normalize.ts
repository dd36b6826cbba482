/**
 * MNIST's input normalisation, as PyTorch's example does it: pixels to 0..1, minus the training set's mean, over
 * its standard deviation, in float32. Imports nothing from Node: the browser page normalises with it too.
 */
import { IMAGE_SIDE } from '../model/cnn.ts';

/** Mean and standard deviation of MNIST training pixels in [0,1], as PyTorch's example uses. */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

/** Pixels in one image. */
export const IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE;

// PyTorch's pipeline in float32: ToTensor divides by 255, Normalize subtracts the mean and divides
// by the std, each op rounded to float32. Math.fround after each step reproduces that exactly.
export const NORMALIZE_LUT = (() => {
  const lut = new Float32Array(256);
  const mean = Math.fround(MNIST_MEAN);
  const std = Math.fround(MNIST_STD);
  for (let p = 0; p < 256; p++) {
    const x = Math.fround(p / 255);
    lut[p] = Math.fround(Math.fround(x - mean) / std);
  }
  return lut;
})();

/**
 * (x/255 - MEAN)/STD for images [start, start+count) of `pixels` (start and count in images of
 * 784 pixels; by default all of them), as float32 in the same layout.
 */
export function normalizeImages(pixels: Uint8Array, start = 0, count?: number): Float32Array {
  const total = Math.floor(pixels.length / IMAGE_PIXELS);
  const n = count ?? total - start;
  if (!Number.isInteger(start) || !Number.isInteger(n) || start < 0 || n < 0 || start + n > total) {
    throw new RangeError(`normalizeImages: images [${start}, ${start + n}) out of range 0..${total}`);
  }
  const from = start * IMAGE_PIXELS;
  const out = new Float32Array(n * IMAGE_PIXELS);
  for (let i = 0; i < out.length; i++) out[i] = NORMALIZE_LUT[pixels[from + i]!]!;
  return out;
}

/**
 * (v - MEAN)/STD for pixels already scaled to 0..1 (what ToTensor gives), rounded to float32 at each step as the
 * lookup table is: a value p/255 in float32 normalises exactly as the uint8 pixel p does.
 */
export function normalizeUnitPixels(values: ArrayLike<number>): Float32Array {
  const mean = Math.fround(MNIST_MEAN);
  const std = Math.fround(MNIST_STD);
  const out = new Float32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(Math.fround(Math.fround(values[i]!) - mean) / std);
  return out;
}

