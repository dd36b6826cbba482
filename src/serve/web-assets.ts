/**
 * The files the page at `/` fetches under `/web/`: the browser bundle `npm run build:web` writes to web/dist/, and
 * the shipped model files the page computes with in the browser. Only these names are served: a request names a
 * file, never a path.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const BUNDLE_FILE = 'mnist-gpujs.js';

/** The shipped model files the page offers, by the name it fetches them as (`/web/<name>`). */
export const PAGE_MODEL_FILES = {
  'mnist_ensemble4.safetensors': 'fixtures/mnist_ensemble4.safetensors',
  'mnist_cnn.safetensors': 'fixtures/mnist_cnn.safetensors',
} as const;

/** The digit the page's benchmark times when none has been drawn: `bench`'s default image. */
export const DEFAULT_BENCH_IMAGE = '1.png';
const BENCH_IMAGE_PATH = 'fixtures/1.png';

export interface WebAssets {
  /** web/dist/mnist-gpujs.js, or null when it is not built */
  bundle: string | null;
  /** name → path of each model file the page may fetch */
  models: Record<string, string>;
  /** fixtures/1.png, or null where the package lacks it */
  benchImage: string | null;
}

/** No bundle and no model files: the page computes on the server only. */
export const NO_WEB_ASSETS: WebAssets = { bundle: null, models: {}, benchImage: null };

/** What the package under `root` has built and ships. */
export function findWebAssets(root: string): WebAssets {
  const bundle = resolve(root, 'web/dist', BUNDLE_FILE);
  const models: Record<string, string> = {};
  for (const [name, path] of Object.entries(PAGE_MODEL_FILES)) {
    const full = resolve(root, path);
    if (existsSync(full)) models[name] = full;
  }
  const image = resolve(root, BENCH_IMAGE_PATH);
  return { bundle: existsSync(bundle) ? bundle : null, models, benchImage: existsSync(image) ? image : null };
}

/** The file a request for `/web/<name>` gets, with its content type; undefined for any other name. */
export function webFile(web: WebAssets, name: string): { path: string; type: string } | undefined {
  if (name === BUNDLE_FILE && web.bundle) return { path: web.bundle, type: 'text/javascript; charset=utf-8' };
  if (name === DEFAULT_BENCH_IMAGE && web.benchImage) return { path: web.benchImage, type: 'image/png' };
  const model = Object.hasOwn(web.models, name) ? web.models[name] : undefined;
  return model ? { path: model, type: 'application/octet-stream' } : undefined;
}
