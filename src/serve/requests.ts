/**
 * What the server accepts as input, decoded into normalised images [B,1,28,28], and what it answers. Every
 * problem with a request is a `ServingError` with status 400 and a message naming what is wrong.
 */
import { IMAGE_PIXELS, normalizeImages, normalizeUnitPixels } from '../data/normalize.ts';
import { InputError } from '../errors.ts';
import { decodeDigitPng } from '../io/png.ts';
import { IMAGE_SIDE, NUM_CLASSES } from '../model/cnn.ts';
import { ENSEMBLE, imagePredictions } from '../model/outputs.ts';
import { ServingError } from './batcher.ts';

/** The model names a server answers to: `model0` … `model{N-1}`, and `ensemble` (mean of probabilities). */

export function modelNames(numModels: number): string[] {
  return [...Array.from({ length: numModels }, (_, i) => `model${i}`), ENSEMBLE];
}

/** The model index of a name, 'ensemble', or undefined for a name this server does not serve. */
export function resolveModel(name: string, numModels: number): number | 'ensemble' | undefined {
  if (name === ENSEMBLE) return ENSEMBLE;
  const m = /^model(0|[1-9][0-9]*)$/.exec(name);
  const i = m ? Number(m[1]) : NaN;
  return i < numModels ? i : undefined;
}

function invalid(message: string): ServingError {
  return new ServingError(400, message, 'bad_request');
}

/**
 * The largest image a request may hold, read from its header before anything is inflated. A body under the size
 * limit can still inflate to hundreds of megabytes (a PNG of zeros compresses ~1000:1); a digit needs no more.
 */
export const MAX_REQUEST_PIXELS = 1024 * 1024;

/** One PNG (any depth or colour type `predict` takes, up to MAX_REQUEST_PIXELS) → one normalised image. */
export function decodePngImage(bytes: Uint8Array, label: string): Float32Array {
  if (bytes.length === 0) throw invalid(`${label}: empty body: send a PNG`);
  try {
    return normalizeImages(decodeDigitPng(bytes, label, { maxPixels: MAX_REQUEST_PIXELS }).pixels);
  } catch (err) {
    if (err instanceof InputError) throw invalid(err.message);
    throw err;
  }
}

/** A KServe v2 inference request, as far as the server reads it. */
interface InferInput {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

export interface DecodedInfer {
  id: string | undefined;
  x: Float32Array;
  count: number;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * `{id?, inputs: [{name, shape: [B,1,28,28], datatype: "FP32", data}]}` with pixels 0..1 in MNIST polarity
 * (light digit on dark), flat or nested, or `{inputs: [{name, datatype: "BYTES", shape: [B], data: [base64 PNG, …]}]}`.
 */
export function decodeInferRequest(body: unknown, maxImages: number): DecodedInfer {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be a JSON object with "inputs"');
  const { id, inputs } = body as { id?: unknown; inputs?: unknown };
  if (id !== undefined && typeof id !== 'string') throw invalid('"id" must be a string');
  if (!Array.isArray(inputs) || inputs.length !== 1) throw invalid('"inputs" must be an array of exactly one input');
  const input = inputs[0] as InferInput;
  if (typeof input !== 'object' || input === null) throw invalid('inputs[0] must be an object');
  if (typeof input.name !== 'string') throw invalid('inputs[0].name must be a string');
  const shape = input.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalid('inputs[0].shape must be an array of non-negative integers');
  }
  if (!Array.isArray(input.data)) throw invalid('inputs[0].data must be an array');
  // flat, or nested as deep as the shape at most; anything deeper is left as an array and refused below
  const data = (input.data as unknown[]).flat(Math.max(0, shape.length - 1));
  const images = shape[0] as number;
  if (images > maxImages) {
    throw invalid(`a request holds at most ${maxImages} images (--max-batch-size); this one holds ${images}`);
  }

  if (input.datatype === 'FP32') {
    const [B, c, h, w] = shape as number[];
    if (shape.length !== 4 || c !== 1 || h !== IMAGE_SIDE || w !== IMAGE_SIDE || B! < 1) {
      throw invalid(`inputs[0].shape must be [B, 1, ${IMAGE_SIDE}, ${IMAGE_SIDE}] with B ≥ 1 for FP32, got [${shape.join(', ')}]`);
    }
    if (data.length !== B! * IMAGE_PIXELS) throw invalid(`inputs[0].data holds ${data.length} values; shape [${shape.join(', ')}] needs ${B! * IMAGE_PIXELS}`);
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw invalid(`inputs[0].data[${i}] is ${JSON.stringify(v)}: FP32 pixels must be numbers in 0..1 (light digit on dark, as MNIST)`);
      }
    }
    return { id, x: normalizeUnitPixels(data as number[]), count: B! };
  }
  if (input.datatype === 'BYTES') {
    if (shape.length !== 1 || shape[0] !== data.length || data.length < 1) {
      throw invalid(`inputs[0].shape must be [B] with B = the number of base64 PNGs in data (${data.length})`);
    }
    const x = new Float32Array(data.length * IMAGE_PIXELS);
    data.forEach((item, b) => {
      if (typeof item !== 'string' || !BASE64.test(item) || item.length % 4 !== 0) {
        throw invalid(`inputs[0].data[${b}] is not base64 text`);
      }
      x.set(decodePngImage(Buffer.from(item, 'base64'), `inputs[0].data[${b}]`), b * IMAGE_PIXELS);
    });
    return { id, x, count: data.length };
  }
  throw invalid(`inputs[0].datatype must be "FP32" (pixels) or "BYTES" (base64 PNGs), got ${JSON.stringify(input.datatype)}`);
}

/** The v2 outputs for B images of one model (or the ensemble's mean probabilities). */
export function inferOutputs(logp: Float32Array, B: number, N: number, model: number | 'ensemble') {
  const probabilities = new Float32Array(B * NUM_CLASSES);
  const prediction: number[] = [];
  for (let b = 0; b < B; b++) {
    const p = imagePredictions(logp, b, B, N);
    const chosen = model === ENSEMBLE ? p.ensemble : p.models[model]!;
    probabilities.set(chosen.probabilities, b * NUM_CLASSES);
    prediction.push(chosen.prediction);
  }
  return [
    { name: 'probabilities', datatype: 'FP32', shape: [B, NUM_CLASSES], data: Array.from(probabilities) },
    { name: 'prediction', datatype: 'INT64', shape: [B], data: prediction },
  ];
}
