/**
 * Reading the CNN's output: log-probabilities [N, B, 10] for N models and B images become each model's digit and
 * probabilities, and the ensemble's (the mean of the N models' probabilities: averaging, not a pipeline).
 */
import { NUM_CLASSES } from './cnn.ts';

/** Index of the largest of the 10 class scores starting at `at` (the first on a tie). */
export function argmax(v: ArrayLike<number>, at: number): number {
  let best = 0;
  for (let c = 1; c < NUM_CLASSES; c++) if (v[at + c]! > v[at + best]!) best = c;
  return best;
}

/** Each model's predicted class for each image: [N][B], from log-probabilities [N, B, 10]. */
export function predictionsOf(logp: Float32Array, numModels: number, B: number): number[][] {
  return Array.from({ length: numModels }, (_, m) =>
    Array.from({ length: B }, (_, b) => argmax(logp, (m * B + b) * NUM_CLASSES)));
}

/** The ensemble's name, beside `model0` … `model{N-1}`. */
export const ENSEMBLE = 'ensemble';

export interface ModelPrediction {
  prediction: number;
  probabilities: number[];
}

export interface ImagePredictions {
  models: ModelPrediction[];
  /** the mean of the models' probabilities, and its argmax */
  ensemble: ModelPrediction;
  /** models whose prediction equals the ensemble's */
  agreement: number;
}

/** Every model's and the ensemble's prediction for image `b` of log-probabilities [N, B, 10]. */
export function imagePredictions(logp: Float32Array, b: number, B: number, N: number): ImagePredictions {
  const models: ModelPrediction[] = [];
  const mean = new Array<number>(NUM_CLASSES).fill(0);
  for (let m = 0; m < N; m++) {
    const row = (m * B + b) * NUM_CLASSES;
    const probabilities = Array.from(logp.subarray(row, row + NUM_CLASSES), Math.exp);
    probabilities.forEach((p, c) => { mean[c] += p / N; });
    models.push({ prediction: argmax(logp, row), probabilities });
  }
  const ensemble = { prediction: argmax(mean, 0), probabilities: mean };
  return { models, ensemble, agreement: models.filter((m) => m.prediction === ensemble.prediction).length };
}

/** The answer for one image and one model (or the ensemble): what `predict --json` gives per model. */
export function predictionBody(logp: Float32Array, b: number, B: number, N: number, model: number | 'ensemble'):
  ModelPrediction | (ModelPrediction & { models: ModelPrediction[]; agreement: number }) {
  const p = imagePredictions(logp, b, B, N);
  if (model === ENSEMBLE) return { ...p.ensemble, models: p.models, agreement: p.agreement };
  return p.models[model]!;
}
