/**
 * GPU.js's webasm worker pool, as patched at install (patches/gpu.js+2.24.1.patch, applied by `patch-package`
 * on `npm install`): every kernel and plan shares one process-wide pool instead of spawning workers of its own.
 * Stock gpu.js gave each threaded plan its own pool, so the sequential path's N one-model plans ran 2N worker
 * threads (~1 GiB more resident memory at N = 64). These tests fail if the patch is missing or breaks plans:
 * many plans and kernels on a handful of workers, plans run concurrently (the shared pool queues their
 * dispatches, since a plan's run holds each worker at a barrier until all its peers arrive), and plans destroyed
 * while others keep running (stock gpu.js terminated the workers on destroy).
 */
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { reluForward } from '../kernels/relu.ts';
import { Device, type Plan } from '../src/engine/device.ts';
import { freshSeed, makeRng } from './rng.ts';

interface PoolWorker { dead: boolean }
interface WorkerPool { size: number; shared: boolean; workers: PoolWorker[] }
const workerPoolModule = createRequire(import.meta.url)('gpu.js/src/backend/web-assembly/worker-pool.js') as {
  sharedWorkerPool?: () => WorkerPool;
};

const webasm = (await Device.open('webasm').catch(() => null));
afterAll(() => webasm?.destroy());

// 16,384 cells: above the 4,096 per worker from which GPU.js splits a plan over its threads
const N = 16384;
const seed = freshSeed();
console.log(`[worker-pool] TEST_SEED=${seed}`);

function input(rng: () => number): Float32Array {
  return Float32Array.from({ length: N }, () => rng() * 2 - 1);
}
const relu = (x: Float32Array): Float32Array => x.map((v) => Math.max(v, 0));

describe.skipIf(webasm === null)('webasm worker pool (gpu.js patched at install)', () => {
  it('the patch is installed: gpu.js exports the process-wide pool', () => {
    expect(typeof workerPoolModule.sharedWorkerPool, 'run `npm install` (its postinstall applies patches/ with patch-package)').toBe('function');
    expect(workerPoolModule.sharedWorkerPool!().shared).toBe(true);
  });

  const pool = (): WorkerPool => workerPoolModule.sharedWorkerPool!();
  const threads = (): boolean => pool().size >= 2;

  it('many threaded plans and kernels run on one pool: never more workers than it has slots', async (ctx) => {
    if (!threads()) ctx.skip(); // one core: GPU.js never threads, so there is no pool to share
    const d = webasm!;
    const rng = makeRng(seed);
    const plans: Plan[] = Array.from({ length: 12 }, () => d.plan([reluForward({ n: N })], ([k], x) => k!(x)));
    try {
      for (const plan of plans) {
        const x = input(rng);
        expect(Array.from(await plan.run(x))).toEqual(Array.from(relu(x)));
        expect(plan.executorKind).toBe('fused-threaded');
      }
      // a cached threaded kernel (the training path) uses the same workers
      const x = input(rng);
      expect(Array.from(await d.run(reluForward({ n: N }), x))).toEqual(Array.from(relu(x)));
      expect(pool().workers.length).toBeLessThanOrEqual(pool().size);
      expect(pool().workers.length).toBeGreaterThanOrEqual(2);
    } finally {
      for (const plan of plans) plan.destroy();
    }
  });

  it('plans called concurrently all finish with their own results', async (ctx) => {
    if (!threads()) ctx.skip();
    const d = webasm!;
    const rng = makeRng(seed + 1);
    const plans = Array.from({ length: 4 }, () => d.plan([reluForward({ n: N })], ([k], x) => k!(x)));
    try {
      for (let round = 0; round < 10; round++) {
        const xs = plans.map(() => input(rng));
        // not awaited one by one: the plans' run messages interleave on the workers
        const outs = await Promise.all(plans.map((plan, i) => plan.run(xs[i]!)));
        outs.forEach((out, i) => expect(Array.from(out), `round ${round}, plan ${i}`).toEqual(Array.from(relu(xs[i]!))));
      }
    } finally {
      for (const plan of plans) plan.destroy();
    }
  }, 30_000);

  it('a plan destroyed right after its run leaves the workers and the other plans running', async (ctx) => {
    if (!threads()) ctx.skip();
    const d = webasm!;
    const rng = makeRng(seed + 2);
    const kept = d.plan([reluForward({ n: N })], ([k], x) => k!(x));
    try {
      await kept.run(input(rng));
      const workersBefore = [...pool().workers];
      for (let i = 0; i < 5; i++) {
        const doomed = d.plan([reluForward({ n: N })], ([k], x) => k!(x));
        const x = input(rng);
        expect(Array.from(await doomed.run(x))).toEqual(Array.from(relu(x)));
        doomed.destroy(); // its workers may not have acknowledged the run yet
        const y = input(rng);
        expect(Array.from(await kept.run(y))).toEqual(Array.from(relu(y)));
      }
      // the same worker threads throughout: none was terminated and respawned
      expect(pool().workers).toEqual(workersBefore);
      expect(pool().workers.every((w) => !w.dead)).toBe(true);
    } finally {
      kept.destroy();
    }
  });
});
