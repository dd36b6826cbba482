/**
 * The engine as the browser page uses it: a model file fetched once, a Device on this browser's best backend,
 * one single-dispatch plan answering a drawn digit for every model at once, and the benchmark harness `bench`
 * runs in Node. No DOM here: the page (bench-panel.ts, src/serve/page.ts) draws what this returns.
 */
import { DEFAULT_CHUNKS, benchDocument, benchmarkModels, chunkSizes, destroyPaths, makePaths, repeatImage, type BenchEvent } from '../src/bench/harness.ts';
import { normalizeImages } from '../src/data/normalize.ts';
import { openBrowserDevice, BROWSER_BACKENDS, type BrowserBackend, type BrowserBackendChoice, type Device } from '../src/engine/device-browser.ts';
import { SingleDispatchRunner } from '../src/engine/runners.ts';
import { decodeModelFile, servedModelsOf, type ModelFile, type ServedModels } from '../src/io/model-format.ts';
import { IMAGE_SIDE } from '../src/model/cnn.ts';
import { predictionBody } from '../src/model/outputs.ts';
import type { PreparedDigit } from './image.ts';

export interface BrowserEngineOptions {
  /** where the model file is fetched from (the server's /web/models/…) */
  modelUrl: string;
  /** the file as a person reads it, in messages and in the benchmark's JSON `modelPath` */
  modelLabel?: string;
  backend?: BrowserBackendChoice;
}

export interface BenchmarkOptions {
  numModels: number;
  batchSize: number;
  warmup: number;
  iters: number;
  /** alternation chunks (default as `bench`); the panel asks for more, smaller ones so that it can redraw */
  chunks?: number;
  signal?: AbortSignal;
  onEvent?: (e: BenchEvent) => void;
}

/** Model files already fetched, by URL: another backend or a reopened engine decodes no file twice. */
const fetched = new Map<string, Promise<ModelFile>>();

function fetchModelFile(url: string, label: string): Promise<ModelFile> {
  let file = fetched.get(url);
  if (!file) {
    file = (async () => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${label}: the server answered ${response.status} ${response.statusText}`);
      return decodeModelFile(new Uint8Array(await response.arrayBuffer()), label);
    })();
    fetched.set(url, file);
    file.catch(() => fetched.delete(url)); // a failed fetch is tried again next time
  }
  return file;
}

export class BrowserEngine {
  /** why backends tried before this one could not serve (auto mode): shown, never hidden */
  readonly refused: string[];
  private readonly device: Device;
  private readonly file: ModelFile;
  /** the file's models, every one of which answers a digit */
  private readonly models: ServedModels;
  private readonly modelLabel: string;
  private readonly plan: SingleDispatchRunner;

  private constructor(device: Device, file: ModelFile, models: ServedModels, modelLabel: string, plan: SingleDispatchRunner, refused: string[]) {
    this.device = device;
    this.file = file;
    this.models = models;
    this.modelLabel = modelLabel;
    this.plan = plan;
    this.refused = refused;
  }

  /**
   * Fetches and decodes the model file (once per URL), then opens the backend and runs the file's models once on a blank image.
   * With `auto`, a backend whose kernels fail to compile, or that GPU.js moved to another backend (the Device
   * refuses that), is passed over for the next one, and why is kept in `refused`.
   */
  static async open(opts: BrowserEngineOptions): Promise<BrowserEngine> {
    const label = opts.modelLabel ?? opts.modelUrl;
    const file = await fetchModelFile(opts.modelUrl, label);
    const models = servedModelsOf(file, undefined, label);
    const choice = opts.backend ?? 'auto';
    const candidates: readonly BrowserBackend[] = choice === 'auto' ? BROWSER_BACKENDS : [choice];
    const refused: string[] = [];
    for (const backend of candidates) {
      let device: Device | undefined;
      let plan: SingleDispatchRunner | undefined;
      try {
        device = await openBrowserDevice(backend);
        plan = new SingleDispatchRunner(device, models, models.numModels);
        await plan.predict(new Float32Array(IMAGE_SIDE * IMAGE_SIDE), 1);
        return new BrowserEngine(device, file, models, label, plan, refused);
      } catch (err) {
        plan?.destroy();
        device?.destroy();
        refused.push(`${backend}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no backend could run the models here (${refused.join('; ')})`);
  }

  get backend(): string {
    return this.device.backend;
  }

  /** e.g. "webgpu on google swiftshader (…), a software adapter" */
  get description(): string {
    return this.device.description;
  }

  get adapterLabel(): string | null {
    return this.device.adapterLabel;
  }

  /** how many models the file holds (all of them answer a digit) */
  get numModels(): number {
    return this.models.numModels;
  }

  /** How GPU.js ran the plan, e.g. 'fused-encoder' on webgpu, 'generic' on webgl2. */
  get executorKind(): string {
    return this.plan.executorKind;
  }

  /** Log-probabilities [N, 1, 10] of every model for one prepared digit. */
  async logProbabilities(digit: Uint8Array): Promise<Float32Array> {
    return this.plan.predict(normalizeImages(digit), 1);
  }

  /** What `POST /predictions/ensemble` answers for one digit, and how long it took here. */
  async predict(digit: Uint8Array): Promise<{ body: ReturnType<typeof predictionBody>; ms: number }> {
    const t0 = performance.now();
    const logp = await this.logProbabilities(digit);
    const ms = performance.now() - t0;
    return { body: predictionBody(logp, 0, 1, this.numModels, 'ensemble'), ms };
  }

  /**
   * `bench` in this browser: sequential against single dispatch for N models (the file's first N, or its one model
   * replicated) at batch B, timed by the same harness, returned as the document `bench --json` prints.
   */
  async benchmark(image: PreparedDigit, imageLabel: string, opts: BenchmarkOptions): Promise<object> {
    const { numModels: N, batchSize: B, warmup, iters, chunks = DEFAULT_CHUNKS } = opts;
    const served = servedModelsOf(this.file, N, this.modelLabel);
    const paths = makePaths(this.device, served, N);
    try {
      const x = repeatImage(normalizeImages(image.pixels), B);
      const result = await benchmarkModels(paths, x, B, { warmup, iters, chunks, signal: opts.signal, onEvent: opts.onEvent });
      return benchDocument({
        backend: this.device.backend, adapter: this.device.adapterLabel, modelPath: this.modelLabel, fileModels: served.fileModels,
        batchSize: B, warmup, iters, chunks: chunkSizes(iters, chunks).length,
        image: { path: imageLabel, width: image.width, height: image.height, shape: [B, 1, IMAGE_SIDE, IMAGE_SIDE], inverted: image.inverted, warnings: image.warnings },
      }, [{ ...result, replicated: served.fileModels === 1 && N > 1 }], false);
    } finally {
      destroyPaths(paths);
    }
  }

  destroy(): void {
    this.plan.destroy();
    this.device.destroy();
  }
}
