/**
 * `bench --peers`: the other engines on the same models. Each peer's stacked graph equals its sequential loop and
 * this project's log-probabilities within 1e-4, on freshly initialised random weights (three models, B = 2) and on
 * the shipped ensemble; a missing package is the one line naming `npm run setup:peers`; `bench --json --peers all`
 * has every documented field. The peers are optional packages: without them the suite is skipped with a note,
 * unless MNIST_GPUJS_REQUIRE_PEERS=1 (CI sets it after `npm run setup:peers`).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { normalizeImages } from '../src/data/normalize.ts';
import { openDevice, resolveBackend, type Device } from '../src/engine/device-node.ts';
import { initParams } from '../src/engine/init.ts';
import { SingleDispatchRunner } from '../src/engine/runners.ts';
import { InputError } from '../src/errors.ts';
import { loadServedModels } from '../src/io/model-file.ts';
import { readDigitPng } from '../src/io/png.ts';
import { stackParams, stackedModels, type ModelSource } from '../src/model/stack.ts';
import { PEER_NAMES, PeerMissingError, PeerRunner, openPeers, type Peer } from '../src/peers/peer.ts';
import { AgreementError, repeatImage } from '../src/bench/harness.ts';
import { benchmarkPeers } from '../src/bench/peers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const required = process.env.MNIST_GPUJS_REQUIRE_PEERS === '1';
const TOLERANCE = 1e-4;

const missing = await openPeers([...PEER_NAMES], 1).then(() => undefined, (e: Error) => e.message);
if (missing && !required) console.log(`[peers.test] skipped: ${missing}`);

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

describe('a missing peer package', () => {
  it('is one InputError naming npm run setup:peers, for each peer', async () => {
    const notInstalled = async (name: string) => { throw Object.assign(new Error(`Cannot find package '${name}'`), { code: 'ERR_MODULE_NOT_FOUND' }); };
    for (const name of PEER_NAMES) {
      const err = await openPeers([name], 1, notInstalled).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PeerMissingError);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(new RegExp(`^bench --peers ${name} needs \\S+, which is not installed: run \`npm run setup:peers\`$`));
    }
  });

  it('an unknown peer name is a usage error (exit 2, one line)', async () => {
    let err = '';
    const code = await main(['node', 'mnist-gpujs', 'bench', '--peers', 'tfjs,pytorch'], { stdout: { write: () => true }, stderr: { write: (s: string) => { err += s; } }, cwd: ROOT, env: {} });
    expect(code).toBe(2);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toMatch(/--peers takes tfjs, onnxruntime or all/);
  });
});

describe('a peer that fails or disagrees (fake engines)', () => {
  const N = 2;
  const B = 1;
  const ours = new Float32Array(N * B * 10).fill(-2.302585);
  const runner = (out: Float32Array) => new PeerRunner('sequential', N, N, 'fake', async () => out.slice(), () => {});
  const fake = (engine: 'tfjs' | 'onnxruntime', paths: Peer['paths']): Peer => ({ engine, version: '0', backend: 'fake', threads: 1, paths });
  const models = stackedModels(stackParams([initParams(1), initParams(2)]), N);
  const cfg = { warmup: 1, iters: 2 };

  it('an engine that fails is reported with its error, and the next peer still runs', async () => {
    const broken = fake('tfjs', async () => { throw new Error('Aborted()'); });
    const fine = fake('onnxruntime', async () => ({ numModels: N, sequential: runner(ours), singleDispatch: runner(ours) }));
    const results = await benchmarkPeers([broken, fine], models, N, new Float32Array(784), B, ours, cfg);
    expect(results[0]).toEqual({ engine: 'tfjs', version: '0', backend: 'fake', threads: 1, error: 'Aborted()' });
    expect(results[1]!.error).toBeUndefined();
    expect(results[1]).toMatchObject({ engine: 'onnxruntime', agreement: { maxAbsDiff: 0, tolerance: TOLERANCE } });
  });

  it('a peer whose answer differs from ours by more than 1e-4 is an AgreementError, not a result', async () => {
    const off = ours.map((v, i) => (i === 3 ? v + 1e-3 : v));
    const wrong = fake('onnxruntime', async () => ({ numModels: N, sequential: runner(off), singleDispatch: runner(off) }));
    await expect(benchmarkPeers([wrong], models, N, new Float32Array(784), B, ours, cfg)).rejects.toBeInstanceOf(AgreementError);
  });
});

describe.skipIf(missing !== undefined && !required)('the peers on the same models', () => {
  let device: Device;
  let peers: Peer[];

  beforeAll(async () => {
    if (missing) throw new Error(`MNIST_GPUJS_REQUIRE_PEERS=1 but ${missing}`);
    device = await openDevice(await resolveBackend('auto'));
    peers = await openPeers([...PEER_NAMES], 1);
  }, 60_000);
  afterAll(() => device?.destroy());

  async function compare(models: ModelSource, N: number, x: Float32Array, B: number) {
    const oursRunner = new SingleDispatchRunner(device, models, N);
    try {
      const ours = await oursRunner.predict(x, B);
      for (const peer of peers) {
        const paths = await peer.paths(models, N);
        try {
          const sequential = await paths.sequential.predict(x, B);
          const stacked = await paths.singleDispatch.predict(x, B);
          expect(maxAbsDiff(stacked, sequential), `${peer.engine}: stacked vs sequential`).toBeLessThanOrEqual(TOLERANCE);
          expect(maxAbsDiff(sequential, ours), `${peer.engine}: sequential vs ours`).toBeLessThanOrEqual(TOLERANCE);
          expect(maxAbsDiff(stacked, ours), `${peer.engine}: stacked vs ours`).toBeLessThanOrEqual(TOLERANCE);
        } finally {
          paths.sequential.destroy();
          paths.singleDispatch.destroy();
        }
      }
    } finally {
      oursRunner.destroy();
    }
  }

  it('random weights (three models, two different images): stacked = sequential = ours within 1e-4', async () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    console.log(`[peers.test] init seeds ${seed}…${seed + 2}`);
    const models = stackedModels(stackParams([0, 1, 2].map((k) => initParams(seed + k))), 3);
    const x = new Float32Array([...normalizeImages(readDigitPng(join(ROOT, 'fixtures/3.png')).pixels), ...normalizeImages(readDigitPng(join(ROOT, 'fixtures/8.png')).pixels)]);
    await compare(models, 3, x, 2);
  }, 60_000);

  it('the shipped ensemble: stacked = sequential = ours within 1e-4', async () => {
    const served = loadServedModels(join(ROOT, 'fixtures/mnist_ensemble4.safetensors'), 4);
    await compare(served, 4, repeatImage(normalizeImages(readDigitPng(join(ROOT, 'fixtures/7.png')).pixels), 1), 1);
  }, 60_000);

  it('bench --json --peers all: a peers entry per engine with every field', async () => {
    let out = '';
    let err = '';
    const code = await main(['node', 'mnist-gpujs', 'bench', '--num-models', '2', '--iters', '4', '--warmup', '1', '--json', '--peers', 'all'],
      { stdout: { write: (s: string) => { out += s; } }, stderr: { write: (s: string) => { err += s; } }, cwd: ROOT, env: {} });
    expect(code, err).toBe(0);
    const doc = JSON.parse(out);
    expect(doc.peers.map((p: { engine: string }) => p.engine)).toEqual(['tfjs', 'onnxruntime']);
    for (const p of doc.peers) {
      expect(typeof p.version).toBe('string');
      expect(typeof p.backend).toBe('string');
      expect(p.threads).toBe(1);
      for (const way of ['sequential', 'stacked']) {
        for (const field of ['meanMs', 'p50Ms', 'p95Ms', 'p99Ms', 'minMs', 'maxMs', 'requestsPerSecond', 'modelEvaluationsPerSecond']) {
          expect(p[way][field], `${p.engine}.${way}.${field}`).toBeGreaterThan(0);
        }
        expect(p[way].samples).toBe(4);
      }
      expect(p.agreement.tolerance).toBe(TOLERANCE);
      expect(p.agreement.maxAbsDiff).toBeGreaterThanOrEqual(0);
      expect(p.agreement.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    }
  }, 120_000);
});
