/**
 * The GPU path end to end: `--backend webgpu` through the real CLI in child processes (the adapter probe and
 * Dawn are per process, and the environment decides which Vulkan driver answers), and training on webgpu
 * against the cpu backend. The kernel and Net suites run on webgpu like every other backend (kernels.test.ts,
 * net.test.ts); this file checks what only the GPU path has: the adapter, the one-line error without one, that
 * `auto` never picks a software adapter, single dispatch as one GPU submission ('fused-encoder').
 *
 * CI runs webgpu on SwiftShader (VK_ICD_FILENAMES set by .ci/run) and requires it
 * (MNIST_GPUJS_REQUIRE_BACKENDS=…,webgpu); elsewhere the webgpu cases skip with the probe's reason.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PARAM_SPECS, elementCount } from '../src/model/cnn.ts';
import { stackParams } from '../src/model/stack.ts';
import { openDevice } from '../src/engine/device-node.ts';
import { InferencePlan } from '../src/engine/inference-plan.ts';
import { initParams } from '../src/engine/init.ts';
import { probeWebGPU } from '../src/engine/gpu-adapters.ts';
import { Trainer } from '../src/engine/trainer.ts';
import { ADADELTA_DEFAULTS } from '../src/engine/optimizer.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { availableBackends, declareUnrunBackends } from './backends.ts';
import { relativeError } from './reference.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'src/cli/bin.js');
const DIGIT = join(ROOT, 'fixtures/1.png');
const SLOW = 180_000;

interface Run { code: number; out: string; err: string; errLines: string[] }

/** The real CLI in a child process, with `env` over this process's environment (undefined removes a variable). */
function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, CI: 'true', ...env })) if (v !== undefined) merged[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env: merged, timeout: SLOW }, (error, out, err) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, out, err, errLines: err.split('\n').filter((l) => l !== '') });
    });
  });
}

describe('without an adapter', () => {
  it('--backend webgpu is one stderr line saying what would give one, exit 1', async () => {
    // an ICD list naming no real driver: Vulkan finds nothing, so Dawn offers no adapter
    const r = await cli(['predict', DIGIT, '--backend', 'webgpu'], { VK_ICD_FILENAMES: '/nonexistent/icd.json' });
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.errLines).toHaveLength(1);
    expect(r.errLines[0]).toMatch(/^mnist-gpujs: backend webgpu is not available: no WebGPU adapter answered/);
    expect(r.errLines[0]).toMatch(/Vulkan driver/);
    expect(r.errLines[0]).toMatch(/VK_ICD_FILENAMES/);
  }, SLOW);
});

const plan = await availableBackends();
const webgpu = plan.run.includes('webgpu');
const onlyWebgpu = <T extends { backend: string }>(list: T[]): T[] => list.filter((e) => e.backend === 'webgpu');
declareUnrunBackends('webgpu', { run: [], skipped: onlyWebgpu(plan.skipped), missing: onlyWebgpu(plan.missing) });

describe.runIf(webgpu)('on the webgpu adapter of this machine', async () => {
  const probe = webgpu ? await probeWebGPU() : undefined;
  console.log(`[webgpu.test] adapter: ${probe?.info?.description} (${probe?.info?.software ? 'software' : 'hardware'})`);

  it('predict names the adapter, runs the plan as one submission, and gets the digit right', async () => {
    const r = await cli(['predict', DIGIT, '--backend', 'webgpu', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.backend).toBe('webgpu');
    expect(doc.adapter).toBe(`${probe!.info!.description}${probe!.info!.software ? ', a software adapter' : ''}`);
    expect(doc.executorKind).toBe('fused-encoder');
    expect(doc.images[0].ensemble.prediction).toBe(1);

    const plain = await cli(['predict', DIGIT, '--backend', 'webgpu']);
    expect(plain.code).toBe(0);
    expect(plain.out).toContain(`backend webgpu on ${probe!.info!.description}`);
    expect(plain.out).toMatch(/1\.png: 1 \(/);
  }, SLOW);

  it('auto never picks a software adapter', async () => {
    const r = await cli(['predict', DIGIT, '--json']);
    expect(r.code).toBe(0);
    const { backend } = JSON.parse(r.out);
    if (probe!.info!.software) expect(backend).not.toBe('webgpu');
    else expect(backend).toBe('webgpu');
  }, SLOW);

  it('bench --json: single dispatch is one fused-encoder plan, sequential one per model, and they agree', async () => {
    const r = await cli(['bench', '--backend', 'webgpu', '--num-models', '3', '--warmup', '1', '--iters', '2', '--json', '--no-ui']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.backend).toBe('webgpu');
    expect(doc.adapter).toContain(probe!.info!.description);
    expect(doc.execution).toEqual({
      sequential: { planRuns: 3, dispatches: 3, executorKind: 'fused-encoder' },
      singleDispatch: { planRuns: 1, dispatches: 1, executorKind: 'fused-encoder' },
    });
    expect(doc.agreement.samePredictions).toBe(true);
    expect(doc.agreement.maxAbsDiff).toBeLessThanOrEqual(1e-5);
    expect(doc.predictions).toEqual([1, 1, 1]);
  }, SLOW);

  it('weights stay resident: after the first call, a request writes only its images to the GPU', async () => {
    const M = 2;
    const device = await openDevice('webgpu');
    const plan = new InferencePlan(device, stackParams([initParams(1), initParams(2)]), M);
    const x = new Float32Array(28 * 28).fill(0.5);
    const queue = (globalThis as any).GPUQueue.prototype;
    const write = queue.writeBuffer;
    let bytes = 0;
    try {
      await plan.predict(x, 1); // builds the plan: the weights go up here, once
      queue.writeBuffer = function (this: unknown, buffer: unknown, offset: number, data: ArrayBufferView, ...rest: unknown[]) {
        bytes += data.byteLength;
        return write.call(this, buffer, offset, data, ...rest);
      };
      for (let i = 0; i < 3; i++) await plan.predict(x, 1);
    } finally {
      queue.writeBuffer = write;
      plan.destroy();
      device.destroy();
    }
    const weightBytes = M * PARAM_SPECS.reduce((n, p) => n + elementCount(p.shape), 0) * 4;
    console.log(`[webgpu.test] bytes written to the GPU per request: ${bytes / 3} (images ${x.byteLength}, weights ${weightBytes})`);
    expect(bytes / 3).toBeGreaterThanOrEqual(x.byteLength); // the images do go up each time
    expect(bytes / 3).toBeLessThan(x.byteLength + 4096); // and nothing near the 9.6 MB of weights
  }, SLOW);

  it('training: a short run lowers the loss, and its first steps match the cpu backend', async () => {
    const data = loadMnist({ limit: 96, testLimit: 20 });
    const config = {
      numModels: 2, seed: 3, batchSize: 8, testBatchSize: 20, lr: 1, gamma: 0.7,
      optimizer: { ...ADADELTA_DEFAULTS, weightDecay: 0 }, dryRun: false,
    };
    const lossesOn = async (backend: 'cpu' | 'webgpu', steps: number): Promise<Float32Array[]> => {
      const device = await openDevice(backend);
      try {
        const trainer = new Trainer(device, config);
        const losses: Float32Array[] = [];
        await trainer.trainEpoch(data.train, (r) => losses.push(Float32Array.from(r.loss)), () => losses.length >= steps);
        return losses;
      } finally {
        device.destroy();
      }
    };
    let t0 = performance.now();
    const gpu = await lossesOn('webgpu', 8);
    const gpuSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const cpu = await lossesOn('cpu', 2);
    console.log(`[webgpu.test] 8 webgpu steps in ${gpuSeconds.toFixed(1)} s, 2 cpu steps in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    console.log(`[webgpu.test] losses webgpu ${gpu.map((l) => l[0]!.toFixed(4)).join(' ')}; cpu ${cpu.map((l) => l[0]!.toFixed(4)).join(' ')}`);
    expect(gpu).toHaveLength(8);
    // same initialisation, shuffles and masks: the first steps agree to float32 rounding
    for (let i = 0; i < 2; i++) {
      expect(relativeError(gpu[i]!, cpu[i]!), `step ${i + 1} losses`).toBeLessThanOrEqual(1e-4);
    }
    // and it learns: the last three steps' mean loss is below the first three's, for both models
    for (let m = 0; m < 2; m++) {
      const mean = (ls: Float32Array[]) => ls.reduce((s, l) => s + l[m]!, 0) / ls.length;
      expect(mean(gpu.slice(-3)), `model ${m}`).toBeLessThan(mean(gpu.slice(0, 3)));
    }
  }, SLOW);
});
