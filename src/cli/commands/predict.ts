/**
 * `mnist-gpujs predict IMAGE...`: classify PNG digits with the model(s) of a model file, all models stacked in
 * one plan run (single dispatch). Prints each model's prediction, the ensemble's (mean of probabilities) and how many
 * models agree with it; `--json` prints one JSON document instead.
 */
import { imagePredictions, type ImagePredictions } from '../../model/outputs.ts';
import { openDevice } from '../device.ts';
import { SingleDispatchRunner } from '../../engine/runners.ts';
import { IMAGE_PIXELS, normalizeImages } from '../../data/normalize.ts';
import { readDigitPng, type LoadedDigit } from '../../io/png.ts';
import { loadServedModels } from '../../io/model-file.ts';
import type { CliIO, PredictOptions } from '../options.ts';

export type { PredictOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** One image's entry in the JSON document. */
export interface ImagePrediction extends ImagePredictions {
  path: string; width: number; height: number; inverted: boolean; warnings: string[];
}

export async function run(opts: PredictOptions, io: CliIO = processIO): Promise<number> {
  const served = loadServedModels(opts.modelPath, opts.numModels);
  const digits: LoadedDigit[] = opts.images.map((p) => readDigitPng(p, { invert: opts.invert }));
  for (const d of digits) for (const w of d.warnings) io.stderr.write(`mnist-gpujs: warning: ${w}\n`);
  if (served.note) io.stderr.write(`mnist-gpujs: note: ${served.note}\n`);

  const B = digits.length;
  const x = new Float32Array(B * IMAGE_PIXELS);
  digits.forEach((d, i) => x.set(normalizeImages(d.pixels), i * IMAGE_PIXELS));
  const device = await openDevice(opts.backend, io);
  try {
    const runner = new SingleDispatchRunner(device, served, served.numModels);
    const logp = await runner.predict(x, B);
    const results = digits.map((d, b) => describe(opts.images[b], d, logp, b, B, served.numModels));
    if (opts.json) {
      io.stdout.write(JSON.stringify({
        backend: device.backend, adapter: device.adapterLabel, executorKind: runner.executorKind,
        modelPath: opts.modelPath, numModels: served.numModels,
        replicated: served.note !== undefined, images: results,
      }, null, 2) + '\n');
    } else {
      io.stdout.write(`${served.numModels} model(s) from ${opts.modelPath}, backend ${device.description} (plan: ${runner.executorKind})\n`);
      for (const r of results) io.stdout.write(formatPlain(r, served.numModels));
    }
  } finally {
    device.destroy();
  }
  return 0;
}

function describe(path: string, d: LoadedDigit, logp: Float32Array, b: number, B: number, N: number): ImagePrediction {
  return { path, width: d.width, height: d.height, inverted: d.inverted, warnings: d.warnings, ...imagePredictions(logp, b, B, N) };
}

const percent = (p: number): string => `${(100 * p).toFixed(1)}%`;

function formatPlain(r: ImagePrediction, N: number): string {
  const e = r.ensemble;
  const head = N === 1
    ? `${r.path}: ${e.prediction} (${percent(e.probabilities[e.prediction])})`
    : `${r.path}: ${e.prediction} (ensemble ${percent(e.probabilities[e.prediction])}, ${r.agreement}/${N} models agree)`;
  const lines = [head + (r.inverted ? ' [inverted]' : '')];
  if (N > 1) {
    lines.push('  ' + r.models.map((m, i) => `model ${i}: ${m.prediction} (${percent(m.probabilities[m.prediction])})`).join(', '));
  }
  lines.push('  probabilities: ' + e.probabilities.map((p, c) => `${c}:${p.toFixed(3)}`).join(' '));
  return lines.join('\n') + '\n';
}
