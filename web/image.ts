/**
 * Images in the browser to the digit the CNN reads. The browser decodes the PNG (or draws the canvas); the
 * arithmetic after that, luminance, resize and inversion, is the one `predict` and `serve` use (digit-pixels.ts),
 * so a file gives the same 28x28 pixels here as on the server.
 */
import { digitFromRgba } from '../src/io/digit-pixels.ts';

/** A digit ready for the CNN: 28x28 light-on-dark gray pixels, and how it was made from the image. */
export interface PreparedDigit {
  pixels: Uint8Array;
  width: number;
  height: number;
  inverted: boolean;
  warnings: string[];
}

/** The digit in an image's RGBA pixels (a canvas's ImageData). */
export function digitFromImageData(rgba: ArrayLike<number>, width: number, height: number, label = 'the image'): PreparedDigit {
  return { ...digitFromRgba(rgba, width, height, { label }), width, height };
}

/** The digit drawn on a canvas (the page's 28x28 preparation of a drawing). */
export function digitFromCanvas(canvas: HTMLCanvasElement, label = 'the drawing'): PreparedDigit {
  const { data, width, height } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
  return digitFromImageData(data, width, height, label);
}

/**
 * The digit in an image file. Decoded without colour management or premultiplied alpha, so a gray PNG's samples
 * arrive as stored; alpha is composed over black, as the PNG decoder does.
 */
export async function digitFromBlob(blob: Blob, label = 'the image'): Promise<PreparedDigit> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new Error(`${label}: not an image this browser can decode`);
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return digitFromImageData(ctx.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height, label);
}
