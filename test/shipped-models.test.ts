/**
 * The models shipped in fixtures/ (README, "Model files"): what they are, and that they do what the README says,
 * through the real `predict` command in-process on webasm: every fixture digit 0–9 (the first test-split digit
 * of its class) is classified correctly, by each model and, for the ensemble, by the mean of its probabilities.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { backendUnavailableReason } from '../src/engine/device-node.ts';
import { readModelFile } from '../src/io/model-file.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BACKEND = 'webasm';
const webasmMissing = await backendUnavailableReason(BACKEND);
if (webasmMissing) console.log(`[shipped-models.test] predictions skipped: webasm unavailable (${webasmMissing})`);

const SHIPPED = [
  { file: 'fixtures/mnist_cnn.safetensors', models: 1 },
  { file: 'fixtures/mnist_ensemble4.safetensors', models: 4 },
];
const DIGITS = Array.from({ length: 10 }, (_, d) => join(ROOT, `fixtures/${d}.png`));

interface PredictJson {
  numModels: number; replicated: boolean;
  images: Array<{ path: string; models: Array<{ prediction: number }>; ensemble: { prediction: number }; agreement: number }>;
}

async function predict(modelPath: string): Promise<PredictJson> {
  let out = '';
  let err = '';
  const code = await main(['node', 'mnist-gpujs', 'predict', ...DIGITS, '--model-path', modelPath, '--backend', BACKEND, '--json'], {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    cwd: ROOT,
    env: {},
  });
  expect(code, err).toBe(0);
  return JSON.parse(out) as PredictJson;
}

describe.each(SHIPPED)('$file', ({ file, models }) => {
  const path = join(ROOT, file);

  it(`holds ${models} model(s), trained 5 epochs with seed 1, as the README says`, () => {
    const { numModels, metadata } = readModelFile(path);
    expect(numModels).toBe(models);
    expect(metadata).toMatchObject({ format: 'mnist-gpujs', num_models: String(models), epochs: '5', seed: '1' });
  });

  it.skipIf(webasmMissing)('classifies every fixture digit 0-9 correctly, each model and the ensemble', async () => {
    const r = await predict(path);
    expect(r.numModels).toBe(models);
    expect(r.replicated).toBe(false);
    expect(r.images.map((img) => img.ensemble.prediction)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [digit, img] of r.images.entries()) {
      expect(img.models.map((m) => m.prediction), img.path).toEqual(Array(models).fill(digit));
      expect(img.agreement).toBe(models);
    }
  }, 60_000);
});
