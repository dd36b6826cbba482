/**
 * GPU.js's webasm backend as patched at install (patches/gpu.js+2.24.1.patch, applied by `patch-package` on
 * `npm install`). Seven changes, each tested here against exact expected values:
 *
 * Integer indices. Kernel locals are f32, exact only up to 2^24; a local whose every definition is integer
 * arithmetic also keeps an i32 shadow, and an index built from integer terms is computed in i32. Math.floor of a
 * value read from an array is such a term too (a position stored as data); arithmetic on that value is not. Arrays
 * past 2^24 elements then read and write exactly to their last element, an index that is not integer arithmetic
 * into one is refused at compile time, and floor division of negative integers still floors.
 *
 * Contiguous reads. A read `a[U + this.thread.x]` with U the same in every lane is one vector load of four
 * consecutive elements instead of four scalar loads; in-bounds lanes must read exactly what they read before, at
 * the array's end, inside a lane-divergent branch, and a wild index in a branch no lane takes must not trap. Where
 * the range of U (thread ids over the output, counted loops, remainders) keeps every quad inside the array, the
 * load goes without the test for the array's ends.
 *
 * The worker pool. Every kernel and plan shares one process-wide pool instead of spawning workers of its own.
 * Stock gpu.js gave each threaded plan its own pool, so the sequential path's N one-model plans ran 2N worker
 * threads (~1 GiB more resident memory at N = 64). These tests fail if the patch is missing or breaks plans:
 * many plans and kernels on a handful of workers, plans run concurrently (the shared pool queues their
 * dispatches, since a plan's run holds each worker at a barrier until all its peers arrive), plans destroyed
 * while others keep running (stock gpu.js terminated the workers on destroy), and a worker that dies after a run's
 * last barrier but before its acknowledgement (stock gpu.js then failed the plan's next run).
 *
 * Releasing a built plan's inputs. `releaseBuildInputs` drops what only building a fused webasm plan reads (the
 * kernels' constant arrays, copied into the plan's memory by its first run, and their parsed sources): the plan
 * runs on, the arrays can be collected, and a rebuild is refused instead of reading what is gone.
 *
 * Results read back into given arrays. A kernel whose `resultTarget(length)` hook is set copies its result into
 * the array the hook returns (Device recycles results this way) instead of a fresh one; a hook that returns null
 * gets a fresh array, one of the wrong length an error rather than a truncated result.
 *
 * Shared shortcut forwarders. The function `createKernel` returns forwards each of its kernel's methods and
 * properties (~150 on webasm); stock gpu.js made a closure (and a getter/setter pair) per property per kernel, ~19
 * KiB of heap each, two kernels per step of every compiled plan. Patched, every kernel shares one forwarder per property name that reaches
 * its own kernel through `this.kernel`.
 *
 * Vector cells between plan steps. A fused webasm plan's step returning `Array(n)` may feed the next step, which
 * reads the n values of each cell side by side, cell by cell, as one flat array (stock gpu.js refused to fuse such
 * a plan, and ran its generic executor). The serving conv2 computes four channels a cell this way, and fc1 four
 * images a cell. A module compiled for one reader of a buffer is not reused for a reader of the same buffer under
 * other dims (a buffer written in turn by steps of different values per cell).
 */
import { createRequire } from 'node:module';
import gpujs from 'gpu.js';
import { afterAll, describe, expect, it } from 'vitest';
import { reluForward } from './relu-kernel.ts';
import type { KernelSpec, KernelThis } from '../kernels/spec.ts';
import { webasmPatchMissing, type Plan, openDevice } from '../src/engine/device-node.ts';
import { collectGarbage } from './gc.ts';
import { freshSeed, makeRng } from './rng.ts';

interface PoolWorker {
  dead: boolean; handle: { terminate(): Promise<number> }; state: { pending: Map<number, unknown> }; die(error: Error): void;
}
interface WorkerPool { size: number; shared: boolean; workers: PoolWorker[] }
const requireGpujs = createRequire(import.meta.url);
const workerPoolModule = requireGpujs('gpu.js/src/backend/web-assembly/worker-pool.js') as {
  sharedWorkerPool?: () => WorkerPool;
};
const functionNodeModule = requireGpujs('gpu.js/src/backend/web-assembly/function-node.js') as {
  WebAssemblyFunctionNode: { prototype: { vContiguousBase?: unknown } };
};
const pipelineExecutorModule = requireGpujs('gpu.js/src/backend/web-assembly/pipeline-executor.js') as {
  WebAssemblyPipelineExecutor: { prototype: { stepOutputDims?: unknown } };
};
const pipelineModule = requireGpujs('gpu.js/src/pipeline.js') as { Pipeline: { prototype: { releaseBuildInputs?: unknown } } };
const kernelModule = requireGpujs('gpu.js/src/backend/web-assembly/kernel.js') as {
  WebAssemblyKernel: { prototype: { _readBack?: unknown } };
};

const webasm = (await openDevice('webasm').catch(() => null));
afterAll(() => webasm?.destroy());

// 16,384 cells: above the 4,096 per worker from which GPU.js splits a plan over its threads
const N = 16384;
const seed = freshSeed();
console.log(`[gpujs-patch] TEST_SEED=${seed}`);

function input(rng: () => number, n = N): Float32Array {
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}
const relu = (x: Float32Array): Float32Array => x.map((v) => Math.max(v, 0));
/** A plan of `steps` ReLUs over n values (still a ReLU): threaded on webasm from 8,192 values on two cores. */
const reluPlan = (n = N, steps = 1): Plan =>
  webasm!.plan(Array.from({ length: steps }, () => reluForward({ n })), (ks, x) => ks.reduce((v, k) => k(v), x));
/** Runs `plan` on fresh input and checks every value against the host's ReLU. */
async function expectRelu(plan: Plan, rng: () => number, n = N): Promise<void> {
  const x = input(rng, n);
  expect(Array.from(await plan.run(x))).toEqual(Array.from(relu(x)));
}

type ReadThis = KernelThis<{ n: number; off: number }>;
/** A kernel of `width` cells (a multiple of 4, so webasm runs it with SIMD) whose cell x reads what `fn` reads. */
function reader(name: string, width: number, constants: { n: number; off: number }, fn: KernelSpec['fn']): KernelSpec {
  return { name: `patch-test.${name}`, fn, output: [width], constants, flops: 0 };
}

describe.skipIf(webasm === null)('webasm contiguous reads (gpu.js patched at install)', () => {
  const n = 1001;
  const a = Float32Array.from({ length: n }, (_, i) => i + 0.5);

  it('the read is compiled on the fast path (these tests would pass on stock gpu.js\'s gathers too)', async () => {
    const proto = functionNodeModule.WebAssemblyFunctionNode.prototype as { vContiguousBase: (ast: unknown) => unknown };
    const original = proto.vContiguousBase;
    let matched = 0;
    proto.vContiguousBase = function (this: unknown, ast: unknown) {
      const base = original.call(this, ast);
      if (base) matched++;
      return base;
    };
    try {
      await webasm!.run(reader('spy', 8, { n, off: 5 }, function (this: ReadThis, v: Float32Array): number {
        return v[this.constants.off + this.thread.x];
      }), a);
    } finally {
      proto.vContiguousBase = original;
    }
    expect(matched).toBeGreaterThan(0);
  });

  it('a[U + thread.x] reads element U + x in every lane, for any U, up to the last element', async () => {
    const rng = makeRng(seed + 3);
    for (const off of [0, 1, 2, 3, Math.floor(rng() * (n - 64)), n - 64]) {
      const out = await webasm!.run(reader('offset', 64, { n, off }, function (this: ReadThis, v: Float32Array): number {
        return v[this.constants.off + this.thread.x];
      }), a);
      expect(Array.from(out), `U = ${off}`).toEqual(Array.from(a.subarray(off, off + 64)));
    }
  });

  it('this.thread.x + U, with U a uniform expression of thread.y and a loop counter', async () => {
    const out = await webasm!.run({
      name: 'patch-test.loop', output: [8, 5], constants: { n, off: 7 }, flops: 0,
      fn: function (this: ReadThis, v: Float32Array): number {
        let s = 0;
        for (let k = 0; k < 3; k++) {
          s += v[this.thread.x + ((this.thread.y * 3 + k) * 10 + this.constants.off)];
        }
        return s;
      },
    }, a);
    const expected = Array.from({ length: 40 }, (_, c) => {
      const [x, y] = [c % 8, Math.floor(c / 8)];
      return [0, 1, 2].reduce((s, k) => s + a[x + (y * 3 + k) * 10 + 7]!, 0);
    });
    expect(Array.from(out)).toEqual(expected);
  });

  it('the last quad\'s in-bounds lanes read exactly, where its other lanes run past the array', async () => {
    const out = await webasm!.run(reader('tail', 4, { n, off: n - 2 }, function (this: ReadThis, v: Float32Array): number {
      return v[this.constants.off + this.thread.x];
    }), a);
    expect([out[0], out[1]]).toEqual([a[n - 2], a[n - 1]]);
  });

  it('a quad that starts before the array: its in-bounds lanes read exactly (a guarded stencil)', async () => {
    const out = await webasm!.run(reader('before', 8, { n, off: -2 }, function (this: ReadThis, v: Float32Array): number {
      let r = -1;
      if (this.constants.off + this.thread.x >= 0) {
        r = v[this.constants.off + this.thread.x];
      }
      return r;
    }), a);
    expect(Array.from(out)).toEqual([-1, -1, a[0], a[1], a[2], a[3], a[4], a[5]]);
  });

  it('a read proved inside the array loads without a bounds test, one not proved keeps it; both read exactly', async () => {
    const proto = functionNodeModule.WebAssemblyFunctionNode.prototype as unknown as { quadInBounds: (...args: unknown[]) => boolean };
    const original = proto.quadInBounds;
    let decisions: boolean[] = [];
    proto.quadInBounds = function (this: unknown, ...args: unknown[]) {
      const proved = original.apply(this, args);
      decisions.push(proved);
      return proved;
    };
    const decided = () => {
      const made = decisions;
      decisions = [];
      return [...new Set(made)];
    };
    const v = Float32Array.from({ length: 64 }, (_, i) => i * 3 + 1);
    // q·32 + r·16 + j + x reaches 1·32 + 1·16 + 12 + 3 = 63 at most: the remainder r = y − q·2 is 0 or 1, j steps to 12
    const expected = Array.from({ length: 16 }, (_, c) => {
      const [x, y] = [c % 4, Math.floor(c / 4)];
      const [q, r] = [Math.floor(y / 2), y % 2];
      return [0, 4, 8, 12].reduce((sum, j) => sum + v[q * 32 + r * 16 + j + x]!, 0);
    });
    // the same reads, the loop bounded by the constant n: n = 16 proves them inside the array, n = 64 does not
    // (j may reach 60 as far as the ranges know; the test j < 16 keeps the reads in)
    const sums = (n: number) => webasm!.run({
      name: 'patch-test.bounded', output: [4, 4], constants: { n, off: 0 }, flops: 0,
      fn: function (this: ReadThis, a: Float32Array): number {
        const q = Math.floor(this.thread.y / 2);
        const r = this.thread.y - q * 2;
        let sum = 0;
        for (let j = 0; j < this.constants.n; j += 4) {
          if (j < 16) sum += a[q * 32 + r * 16 + j + this.thread.x]!;
        }
        return sum;
      },
    }, v);
    try {
      const proved = await sums(16);
      expect(decided(), 'the read of the loop bounded by 16').toEqual([true]);
      const tested = await sums(64);
      expect(decided(), 'the read of the loop bounded by 64').toEqual([false]);
      expect(Array.from(proved)).toEqual(expected);
      expect(Array.from(tested)).toEqual(expected);
      // a counter redeclared by a loop inside its own loop: the one local both share leaves the inner loop at 100,
      // so the outer body's read is not provable and keeps its test (and stays inside the array)
      const nested = await webasm!.run({
        name: 'patch-test.nested', output: [4], constants: { n: 64, off: 0 }, flops: 0,
        fn: function (this: ReadThis, a: Float32Array): number {
          let sum = 0;
          for (let j = 0; j < 4; j++) {
            for (let j = 0; j < 100; j++) {
              sum += 0;
            }
            sum += a[j * 8 + this.thread.x]!;
          }
          return sum;
        },
      }, v);
      expect(decided(), 'the read after the nested loop').toEqual([false]);
      expect(nested.every(Number.isFinite)).toBe(true);
    } finally {
      proto.quadInBounds = original;
    }
  });

  it('inside a lane-divergent branch, and with a wild index in a branch no lane takes', async () => {
    const out = await webasm!.run(reader('branch', 16, { n, off: 40 }, function (this: ReadThis, v: Float32Array): number {
      let r = -1;
      if (this.thread.x % 3 === 1) {
        r = v[this.constants.off + this.thread.x];
      }
      if (this.thread.x > 1000) {
        r = v[this.constants.n * 100000 + this.thread.x];
      }
      return r;
    }), a);
    expect(Array.from(out)).toEqual(Array.from({ length: 16 }, (_, x) => (x % 3 === 1 ? a[40 + x]! : -1)));
  });
});

describe.skipIf(webasm === null)('webasm integer indices (gpu.js patched at install)', () => {
  type BigThis = KernelThis<{ off: number; half: number }>;
  // 2^24 + 13 elements, each a different value from its neighbours; f32 holds only even integers past 2^24, so an
  // index computed in f32 at an odd position reads its neighbour
  const n = 2 ** 24 + 13;
  const big = Float32Array.from({ length: n }, (_, i) => i % 4099);

  it('an array of more than 2^24 elements reads exactly up to its last element, through integer locals', async () => {
    // a uniform local (i32 shadow) plus thread.x: the contiguous vector load, from the odd 2^24 + 1
    const tail = await webasm!.run({
      name: 'patch-test.bigTail', output: [4, 3], constants: { off: n - 12, half: 0.5 }, flops: 0,
      fn: function (this: BigThis, v: Float32Array): number {
        const row = this.constants.off + this.thread.y * 4;
        return v[row + this.thread.x]!;
      },
    }, big);
    expect(Array.from(tail)).toEqual(Array.from(big.subarray(n - 12)));
    // a loop counter and a scalar read per cell, at odd positions past 2^24
    const sums = await webasm!.run({
      name: 'patch-test.bigLoop', output: [3], constants: { off: n - 12, half: 0.5 }, flops: 0,
      fn: function (this: BigThis, v: Float32Array): number {
        let s = 0;
        for (let k = 0; k < 4; k++) {
          s += v[this.constants.off + this.thread.x * 4 + k]!;
        }
        return s;
      },
    }, big);
    const expected = [0, 1, 2].map((r) => [0, 1, 2, 3].reduce((s, k) => s + big[n - 12 + r * 4 + k]!, 0));
    expect(Array.from(sums)).toEqual(expected);
  });

  it('a kernel of more than 2^24 cells writes every cell, reading through a lane-varying local, exactly', async () => {
    const out = await webasm!.run({
      name: 'patch-test.bigWrite', output: [n], constants: { off: 0, half: 0.5 }, flops: 0,
      fn: function (this: BigThis, v: Float32Array): number {
        const i = this.thread.x;
        return v[i]! + 1;
      },
    }, big);
    expect(out.length).toBe(n);
    for (const i of [0, 1, 2 ** 24 - 1, 2 ** 24, 2 ** 24 + 1, 2 ** 24 + 3, 2 ** 24 + 5, n - 2, n - 1]) {
      expect(out[i], `cell ${i}`).toBe(big[i]! + 1);
    }
  });

  it('an index into such an array that is not integer arithmetic is refused when the kernel compiles', async () => {
    await expect(webasm!.run({
      name: 'patch-test.bigFloat', output: [4], constants: { off: 0, half: 0.5 }, flops: 0,
      fn: function (this: BigThis, v: Float32Array): number {
        const f = this.thread.x * this.constants.half;
        return v[Math.floor(f * 2)]!;
      },
    }, big)).rejects.toThrow(/more than 2\^24/);
    // Math.floor of arithmetic on a value read from an array is refused too: only the value itself is exact
    await expect(webasm!.run({
      name: 'patch-test.bigFloorArithmetic', output: [4], constants: { off: 0, half: 0.5 }, flops: 0,
      fn: function (this: BigThis, v: Float32Array): number {
        return v[this.constants.off + Math.floor(v[this.thread.x]! * this.constants.half)]!;
      },
    }, big)).rejects.toThrow(/more than 2\^24/);
  });

  it('Math.floor of a value read from an array adds to an exact base past 2^24, in the lanes and uniformly', async () => {
    // off is odd and past 2^24: in f32, off + 0 already reads its even neighbour
    const off = 2 ** 24 + 1;
    // every read stays inside the array; a NaN position counts as 0
    const at = Float32Array.from([0, 1.5, 2.25, 3.75, 0.5, NaN, 3.99, -0.25]);
    const floor = (p: number) => (Number.isNaN(p) ? 0 : Math.floor(p));
    const out = await webasm!.run({
      name: 'patch-test.bigFloor', output: [8, 8], constants: { off, half: 0.5 }, flops: 0,
      fn: function (this: BigThis, v: Float32Array, positions: Float32Array): number {
        const row = positions[this.thread.y]!; // a local written by a read, the same in every lane
        // a read written inline, varying across the lanes
        return v[this.constants.off + 1 + Math.floor(positions[this.thread.x]!)]! + 4099 * v[this.constants.off + Math.floor(row) + this.thread.x]!;
      },
    }, big, at);
    const expected = Array.from({ length: 64 }, (_, c) => {
      const [x, y] = [c % 8, Math.floor(c / 8)];
      return Math.fround(big[off + 1 + floor(at[x]!)]! + 4099 * big[off + floor(at[y]!) + x]!);
    });
    expect(Array.from(out)).toEqual(expected);
  });

  /** Runs `fn` on webasm over `a` and counts the integer index code emitted (scalar and lane-wise). */
  async function runCountingIntPaths(spec: KernelSpec, a: Float32Array): Promise<{ out: Float32Array; scalar: number; lanes: number }> {
    const proto = functionNodeModule.WebAssemblyFunctionNode.prototype as unknown as Record<'emitIntExpr' | 'vEmitIntExpr', (ast: unknown) => void>;
    const originals = { emitIntExpr: proto.emitIntExpr, vEmitIntExpr: proto.vEmitIntExpr };
    const counts = { emitIntExpr: 0, vEmitIntExpr: 0 };
    for (const key of ['emitIntExpr', 'vEmitIntExpr'] as const) {
      proto[key] = function (this: unknown, ast: unknown) {
        counts[key]++;
        return originals[key].call(this, ast);
      };
    }
    try {
      const out = await webasm!.run(spec, a);
      return { out, scalar: counts.emitIntExpr, lanes: counts.vEmitIntExpr };
    } finally {
      Object.assign(proto, originals);
    }
  }

  it('integer locals through =, +=, -=, *=, ++ and floor division of negative values read what JS reads', async () => {
    const a = Float32Array.from({ length: 64 }, (_, i) => i * 10 + 0.25);
    const fn = function (this: KernelThis<{ n: number; off: number }>, v: Float32Array): number {
      let k = 1;
      for (let j = 0; j < 3; j++) {
        k *= 3;
        k -= 1;
      }
      k += 2;
      const q3 = Math.floor((this.thread.y - 6) / 3);
      const q4 = Math.floor((this.thread.y - 9) / 4);
      return v[k + q3 + q4 + this.constants.off] + v[this.thread.x + q3 + 2] + k;
    };
    const { out, scalar } = await runCountingIntPaths({ name: 'patch-test.intLocals', output: [4, 16], constants: { n: 64, off: 10 }, flops: 0, fn }, a);
    // the indices took the i32 path (these values would read the same through f32 too)
    expect(scalar).toBeGreaterThan(0);
    const expected = Array.from({ length: 64 }, (_, c) => {
      const [x, y] = [c % 4, Math.floor(c / 4)];
      const k = 16; // ((1·3 − 1)·3 − 1)·3 − 1 = 14, + 2
      const q3 = Math.floor((y - 6) / 3);
      const q4 = Math.floor((y - 9) / 4);
      return Math.fround(a[k + q3 + q4 + 10]! + a[x + q3 + 2]!) + k;
    });
    expect(Array.from(out)).toEqual(expected.map(Math.fround));
  });

  it('lane-varying integer locals, written under lane masks and floor-divided lane by lane, read what JS reads', async () => {
    const a = Float32Array.from({ length: 64 }, (_, i) => i * 7 + 0.5);
    const fn = function (this: KernelThis<{ n: number; off: number }>, v: Float32Array): number {
      let i = this.thread.x * 2;
      if (this.thread.x % 3 === 1) {
        i = this.thread.x * 3 + 1;
      }
      i += 1;
      const q = Math.floor((this.thread.x + this.constants.off) / 3);
      return v[i] + v[q * 2 + 1];
    };
    const { out, lanes } = await runCountingIntPaths({ name: 'patch-test.laneLocals', output: [16], constants: { n: 64, off: 5 }, flops: 0, fn }, a);
    expect(lanes).toBeGreaterThan(0);
    const expected = Array.from({ length: 16 }, (_, x) => {
      const i = (x % 3 === 1 ? x * 3 + 1 : x * 2) + 1;
      return Math.fround(a[i]! + a[Math.floor((x + 5) / 3) * 2 + 1]!);
    });
    expect(Array.from(out)).toEqual(expected);
  });

  it('a loop whose test floor-divides its own counter, one whose last step passes 2^31, and floor division near -2^31, as JS', async () => {
    const a = Float32Array.from({ length: 64 }, (_, i) => i + 0.25);
    type T = KernelThis<{ n: number; off: number }>;
    // the counter's range depends on itself: the analysis must stop, not recurse
    const selfBound = await webasm!.run({
      name: 'patch-test.selfBound', output: [4], constants: { n: 64, off: 0 }, flops: 0,
      fn: function (this: T, v: Float32Array): number {
        let s = 0;
        for (let i = 0; i < Math.floor(i / 2) + 4; i++) {
          s += v[i + this.thread.x]!;
        }
        return s;
      },
    }, a);
    expect(Array.from(selfBound)).toEqual([0, 1, 2, 3].map((x) => {
      let s = 0;
      for (let i = 0; i < Math.floor(i / 2) + 4; i++) s = Math.fround(s + a[i + x]!);
      return s;
    }));
    // 0, 1.5e9, then 3e9 ends the loop: a test made in wrapped i32 would run the body again at negative values
    const bigSteps = await webasm!.run({
      name: 'patch-test.bigSteps', output: [4], constants: { n: 64, off: 0 }, flops: 0,
      fn: function (this: T, v: Float32Array): number {
        let s = 0;
        for (let i = 0; i < 2000000000; i += 1500000000) {
          s += 1;
        }
        return s + v[this.thread.x]!;
      },
    }, a);
    expect(Array.from(bigSteps)).toEqual([0, 1, 2, 3].map((x) => 2 + a[x]!));
    // floor((x − (2^31 − 1)) / 3): the dividend reaches −2^31 + 1, where moving it down first would wrap
    const nearMin = await webasm!.run({
      name: 'patch-test.nearMin', output: [4], constants: { n: 64, off: 0 }, flops: 0,
      fn: function (this: T, v: Float32Array): number {
        const t = this.thread.x - 2147483647;
        const q = Math.floor(t / 3);
        return v[q + 715827883]!;
      },
    }, a);
    expect(Array.from(nearMin)).toEqual([0, 1, 2, 3].map((x) => a[Math.floor((x - 2147483647) / 3) + 715827883]!));
  });

  it('a division whose dividend may leave i32 is computed as before, in f32, and reads what JS reads', async () => {
    const a = Float32Array.from({ length: 32 }, (_, i) => i + 0.5);
    const out = await webasm!.run({
      name: 'patch-test.wrap', output: [8, 4], constants: { n: 32, off: 0 }, flops: 0,
      fn: function (this: KernelThis<{ n: number; off: number }>, v: Float32Array): number {
        // y · 2^30 passes 2^31 at y = 2: wrapped in i32, it would divide to a negative row (y is a local, which
        // stock gpu.js computes with in f32; thread ids written inline it multiplies in i32 itself)
        const y = this.thread.y;
        const row = Math.floor(y * 1073741824 / 1073741824);
        return v[row * 8 + this.thread.x]!;
      },
    }, a);
    expect(Array.from(out)).toEqual(Array.from(a));
  });
});

it('the patch is installed: gpu.js exports the process-wide pool, plans contiguous reads, releases plan inputs, reads back into given arrays', () => {
  expect(typeof workerPoolModule.sharedWorkerPool, 'run `npm install` (its postinstall applies patches/ with patch-package)').toBe('function');
  expect(typeof functionNodeModule.WebAssemblyFunctionNode.prototype.vContiguousBase).toBe('function');
  expect(typeof (functionNodeModule.WebAssemblyFunctionNode.prototype as { requireExactIndex?: unknown }).requireExactIndex).toBe('function');
  expect(typeof pipelineModule.Pipeline.prototype.releaseBuildInputs).toBe('function');
  expect(typeof kernelModule.WebAssemblyKernel.prototype._readBack).toBe('function');
  expect(workerPoolModule.sharedWorkerPool!().shared).toBe(true);
});

it('kernels share their shortcut forwarders, and each still reaches its own kernel', () => {
  // the shortcut is the same on every backend; cpu needs nothing of the machine
  const gpu = new (gpujs as unknown as { GPU: new (s: object) => any }).GPU({ mode: 'cpu' });
  try {
    const double = function (this: KernelThis<Record<string, never>>, a: Float32Array): number {
      return 2 * a[this.thread.x]!;
    };
    const k1 = gpu.createKernel(double, { output: [4] });
    const k2 = gpu.createKernel(double, { output: [8] });
    // one function per method and one getter per property for every kernel (stock gpu.js: closures per kernel)
    expect(k1.setOutput).toBe(k2.setOutput);
    expect(k1.destroy).toBe(k2.destroy);
    expect(Object.getOwnPropertyDescriptor(k1, 'output')!.get).toBe(Object.getOwnPropertyDescriptor(k2, 'output')!.get);
    // each reaches its own kernel: reads, writes, chained setters (returning the shortcut called) and calls
    expect([k1.output, k2.output]).toEqual([[4], [8]]);
    expect(k1.setOutput([6])).toBe(k1);
    k2.loopMaxIterations = 77;
    expect([k1.output, k2.output, k1.kernel.loopMaxIterations === 77, k2.kernel.loopMaxIterations]).toEqual([[6], [8], false, 77]);
    const a = Float32Array.from({ length: 8 }, (_, i) => i + 1);
    expect(Array.from(k1(a) as Float32Array)).toEqual([2, 4, 6, 8, 10, 12]);
    expect(Array.from(k2(a) as Float32Array)).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
    // a replaced kernel (GPU.js's fallbacks and switches do this) is what the forwarders reach next
    const spare = gpu.createKernel(double, { output: [2] });
    k1.replaceKernel(spare.kernel);
    expect([k1.output, Array.from(k1(a) as Float32Array)]).toEqual([[2], [2, 4]]);
    // a forwarder taken off its kernel says so instead of reaching some other object
    const detached = k2.setOutput as (output: number[]) => unknown;
    expect(() => detached([3])).toThrow('called without its kernel');
    expect(k2.output).toEqual([8]);
  } finally {
    gpu.destroy();
  }
});

it('the commands note an unpatched gpu.js on webasm, and only then', () => {
  expect(webasmPatchMissing()).toBeNull();
  expect(webasm?.note ?? null).toBeNull();
  /** What webasmPatchMissing() says with `owner[key]` gone, as gpu.js looks without (that part of) the patch. */
  const missingWithout = (owner: object, key: string): string | null => {
    const o = owner as Record<string, unknown>;
    const saved = o[key];
    try {
      delete o[key];
      return webasmPatchMissing();
    } finally {
      o[key] = saved;
    }
  };
  // what gpu.js looks like when npm install ran with --ignore-scripts
  expect(missingWithout(workerPoolModule, 'sharedWorkerPool')).toMatch(/gpu\.js is not patched .*npx patch-package/);
  // older versions of the patch, without its third or its fourth change
  expect(missingWithout(pipelineModule.Pipeline.prototype, 'releaseBuildInputs')).toMatch(/gpu\.js is not patched/);
  expect(missingWithout(kernelModule.WebAssemblyKernel.prototype, '_readBack')).toMatch(/gpu\.js is not patched/);
  // ... or without vector cells between plan steps (the plans then run one value a cell)
  expect(missingWithout(pipelineExecutorModule.WebAssemblyPipelineExecutor.prototype, 'stepOutputDims')).toMatch(/vector cells/);
  // ... or without integer indices
  expect(missingWithout(functionNodeModule.WebAssemblyFunctionNode.prototype, 'requireExactIndex')).toMatch(/2\^24/);
  expect(webasmPatchMissing()).toBeNull();
});

describe.skipIf(webasm === null)('webasm results read back into given arrays (gpu.js patched at install)', () => {
  it.each([[37, 'on the calling thread'], [N, 'after the worker pool ran']])(
    '%i values (%s): into the hook\'s array, or a fresh one when it returns null; a wrong length throws',
    async (n) => {
      const rng = makeRng(seed);
      const spec = reluForward({ n });
      const kernel = (webasm!.kernel(spec) as unknown as { kernel: { resultTarget?: (length: number) => Float32Array | null } }).kernel;
      const saved = kernel.resultTarget;
      try {
        const target = new Float32Array(n).fill(NaN);
        kernel.resultTarget = (length) => (length === n ? target : null);
        const x = input(rng, n);
        const into = await webasm!.run(spec, x);
        const threaded = n === N && workerPoolModule.sharedWorkerPool!().size >= 2;
        expect((kernel as { _lastRunPath?: string })._lastRunPath === 'threaded', 'ran on the worker pool').toBe(threaded);
        expect(into).toBe(target);
        expect(Array.from(into)).toEqual(Array.from(relu(x)));
        kernel.resultTarget = () => null;
        const fresh = await webasm!.run(spec, x);
        expect(fresh).not.toBe(target);
        expect(Array.from(fresh)).toEqual(Array.from(relu(x)));
        kernel.resultTarget = () => new Float32Array(n - 1);
        await expect(webasm!.run(spec, x)).rejects.toThrow(`resultTarget returned ${n - 1} values for a result of ${n}`);
      } finally {
        kernel.resultTarget = saved;
      }
    },
  );
});

describe.skipIf(webasm === null)('webasm worker pool (gpu.js patched at install)', () => {
  const pool = (): WorkerPool => workerPoolModule.sharedWorkerPool!();
  const threads = (): boolean => pool().size >= 2;

  it('many threaded plans and kernels run on one pool: never more workers than it has slots', async (ctx) => {
    if (!threads()) ctx.skip(); // one core: GPU.js never threads, so there is no pool to share
    const rng = makeRng(seed);
    const plans = Array.from({ length: 12 }, () => reluPlan());
    try {
      for (const plan of plans) {
        await expectRelu(plan, rng);
        expect(plan.executorKind).toBe('fused-threaded');
      }
      // a cached threaded kernel (the training path) uses the same workers
      const x = input(rng);
      expect(Array.from(await webasm!.run(reluForward({ n: N }), x))).toEqual(Array.from(relu(x)));
      expect(pool().workers.length).toBeLessThanOrEqual(pool().size);
      expect(pool().workers.length).toBeGreaterThanOrEqual(2);
    } finally {
      for (const plan of plans) plan.destroy();
    }
  });

  it('plans called concurrently all finish with their own results', async (ctx) => {
    if (!threads()) ctx.skip();
    const rng = makeRng(seed + 1);
    const plans = Array.from({ length: 4 }, () => reluPlan());
    try {
      for (let round = 0; round < 10; round++) {
        // not awaited one by one: the plans' run messages interleave on the workers
        await Promise.all(plans.map((plan) => expectRelu(plan, rng)));
      }
    } finally {
      for (const plan of plans) plan.destroy();
    }
  }, 30_000);

  it('a plan destroyed right after its run leaves the workers and the other plans running', async (ctx) => {
    if (!threads()) ctx.skip();
    const rng = makeRng(seed + 2);
    const kept = reluPlan();
    try {
      await kept.run(input(rng));
      const workersBefore = [...pool().workers];
      for (let i = 0; i < 5; i++) {
        const doomed = reluPlan();
        await expectRelu(doomed, rng);
        doomed.destroy(); // its workers may not have acknowledged the run yet
        await expectRelu(kept, rng);
      }
      // the same worker threads throughout: none was terminated and respawned
      expect(pool().workers).toEqual(workersBefore);
      expect(pool().workers.every((w) => !w.dead)).toBe(true);
    } finally {
      kept.destroy();
    }
  });

  /** Kills a pool worker as a crash would, and waits until the pool has seen it die. */
  async function kill(worker: PoolWorker): Promise<void> {
    await worker.handle.terminate();
    for (let i = 0; i < 200 && !worker.dead; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(worker.dead).toBe(true);
  }

  it('a worker that dies between runs is replaced, and every plan and kernel runs on', async (ctx) => {
    if (!threads()) ctx.skip();
    const rng = makeRng(seed + 4);
    const plans = [reluPlan(), reluPlan()];
    try {
      for (const plan of plans) await plan.run(input(rng));
      const victim = pool().workers[1]!;
      await kill(victim);
      for (const plan of plans) await expectRelu(plan, rng);
      const x = input(rng);
      expect(Array.from(await webasm!.run(reluForward({ n: N }), x))).toEqual(Array.from(relu(x)));
      expect(pool().workers[1]).not.toBe(victim);
      expect(pool().workers.every((w) => !w.dead)).toBe(true);
    } finally {
      for (const plan of plans) plan.destroy();
    }
  }, 30_000);

  it('a worker that dies after a run\'s last barrier, its acknowledgement still pending: the next run is unaffected', async (ctx) => {
    // A plan's run resolves once its last barrier fills; each worker's acknowledgement may still be on its way
    // (in ~92% of runs here). Stock gpu.js aborted the plan on a death in that window, so its next run failed
    // with the death; the killing test above hit that window in ~3% of runs. The death is made here, at once.
    if (!threads()) ctx.skip();
    const rng = makeRng(seed + 6);
    const plan = reluPlan();
    try {
      let victim: PoolWorker | undefined;
      for (let i = 0; i < 50 && !victim; i++) {
        await plan.run(input(rng));
        victim = pool().workers.find((w) => !w.dead && w.state.pending.size > 0);
      }
      if (!victim) throw new Error('no run in 50 left an acknowledgement pending; the window could not be reached');
      victim.die(new Error('killed in the acknowledgement window'));
      await expectRelu(plan, rng);
      await expectRelu(plan, rng);
    } finally {
      plan.destroy();
    }
  }, 30_000);

  it('a worker that dies during a run: that run settles (no hang), the next runs are right', async (ctx) => {
    if (!threads()) ctx.skip();
    const rng = makeRng(seed + 5);
    // long enough (8 steps over 2^20 values) that the kill lands while the workers are inside it
    const big = 64 * N;
    const plan = reluPlan(big, 8);
    const other = reluPlan();
    try {
      await plan.run(input(rng, big));
      await other.run(input(rng));
      const running = plan.run(input(rng, big));
      await kill(pool().workers[1]!);
      // resolved (the worker had finished its share) or rejected (it had not): either way, settled
      console.log('[gpujs-patch] run during a death:', await running.then(() => 'resolved', (e) => 'rejected: ' + e.message));
      await expectRelu(plan, rng, big);
      await expectRelu(other, rng);
    } finally {
      plan.destroy();
      other.destroy();
    }
  }, 30_000);
});

describe.skipIf(webasm === null)('releasing a built plan\'s inputs (gpu.js patched at install)', () => {
  type ScaleThis = KernelThis<{ w: Float32Array }>;
  /**
   * A one-step pipeline x·w with w a constant array that only the pipeline's kernels reference, and its expected
   * outputs for `inputs` (computed here, so that nothing in the test holds w).
   */
  function scalePipeline(mode: 'webasm' | 'cpu', inputs: Float32Array[], rng: () => number) {
    const n = inputs[0]!.length;
    const gpu = new (gpujs as unknown as { GPU: new (s: object) => any }).GPU({ mode });
    const w = input(rng, n);
    // w must not be captured by a closure of this scope: the pipeline's closure would keep the scope's context
    const expected = products(inputs, w);
    const kernel = gpu.createKernel(function (this: ScaleThis, x: Float32Array): number {
      return x[this.thread.x] * this.constants.w[this.thread.x];
    }, { output: [n], constants: { w }, precision: 'single' });
    const pipeline = gpu.createPipeline(function (x: unknown) {
      return kernel(x);
    });
    return { gpu, pipeline, weight: new WeakRef(w), expected };
  }
  const values = (r: unknown): number[] => Array.from(r as Float32Array);
  function products(inputs: Float32Array[], w: Float32Array): number[][] {
    return inputs.map((x) => Array.from(x.map((v, i) => v * w[i]!)));
  }

  it('after the first run the constant arrays go, the plan runs on, and a rebuild is refused', async () => {
    const rng = makeRng(seed + 6);
    const [x, y] = [input(rng), input(rng)];
    const { gpu, pipeline, weight, expected } = scalePipeline('webasm', [x, y], rng);
    try {
      expect(pipeline.releaseBuildInputs()).toBe(false); // nothing built yet
      expect(values(await pipeline(x))).toEqual(expected[0]);
      expect(pipeline.releaseBuildInputs()).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
      collectGarbage();
      expect(weight.deref(), 'the constant array is collectable').toBeUndefined();
      expect(values(await pipeline(y))).toEqual(expected[1]);
      pipeline.setConstants({}); // the next call would re-trace and rebuild
      await expect(pipeline(y)).rejects.toThrow('its build inputs were released');
    } finally {
      gpu.destroy();
    }
  });

  it('an executor that reads the constants again keeps them (cpu)', async () => {
    const rng = makeRng(seed + 7);
    const x = input(rng, 64);
    const { gpu, pipeline, expected } = scalePipeline('cpu', [x], rng);
    try {
      expect(values(await pipeline(x))).toEqual(expected[0]);
      expect(pipeline.releaseBuildInputs()).toBe(false);
    } finally {
      gpu.destroy();
    }
  });
});

describe.skipIf(webasm === null)('webasm plan steps that pass vector cells on (gpu.js patched at install)', () => {
  type GridThis = KernelThis<{ W: number }>;
  /** Step 1: three values a cell, [2x, x + 1, -x] of the cell's input, over a grid [W, H]. */
  const triple = (W: number, H: number): KernelSpec => ({
    name: 'patch-test.triple',
    fn: function (this: GridThis, x: Float32Array): number[] {
      const v = x[this.thread.y * this.constants.W + this.thread.x];
      return [2 * v, v + 1, -v];
    },
    returnType: 'Array(3)', output: [W, H], constants: { W }, flops: 0,
  });
  /** Step 2: the flat array step 1 hands on, copied as read (3W values a row): its packing made visible. */
  const copy = (W: number, H: number): KernelSpec => ({
    name: 'patch-test.copyFlat',
    fn: function (this: GridThis, v: Float32Array): number {
      return v[this.thread.y * this.constants.W + this.thread.x];
    },
    output: [3 * W, H], constants: { W: 3 * W }, flops: 0,
  });

  it('a webasm device runs its plans with vector cells only where gpu.js has this change', async () => {
    expect(webasm!.planVectorCells).toBe(true);
    const proto = pipelineExecutorModule.WebAssemblyPipelineExecutor.prototype as Record<string, unknown>;
    const saved = proto.stepOutputDims;
    delete proto.stepOutputDims;
    let unpatched: Awaited<ReturnType<typeof openDevice>> | undefined;
    try {
      unpatched = await openDevice('webasm');
    } finally {
      proto.stepOutputDims = saved;
    }
    try {
      expect(unpatched.planVectorCells).toBe(false);
    } finally {
      unpatched.destroy();
    }
  });

  // stock gpu.js refuses to fuse such a plan (its step would feed another step), and Plan refuses the fallback
  it.each([[20, 600, 'threaded'], [7, 5, 'on the calling thread']])('a grid of %i x %i (%s): the next step reads each cell\'s values side by side, cell by cell', async (W, H, how) => {
    const rng = makeRng(seed + 8);
    const x = input(rng, W * H);
    const plan = webasm!.plan([triple(W, H), copy(W, H)], ([t, c], input) => c!(t!(input)));
    try {
      const out = await plan.run(x);
      expect(plan.fallbackReason).toBeNull();
      const expected = Array.from(x).flatMap((v) => [2 * v, Math.fround(v + 1), -v]);
      expect(Array.from(out)).toEqual(expected);
      const threads = workerPoolModule.sharedWorkerPool!().size >= 2;
      expect(plan.executorKind).toBe(how === 'threaded' && threads ? 'fused-threaded' : 'fused-sync');
    } finally {
      plan.destroy();
    }
  });

  it('one kernel reading, in turn, a buffer of vector cells and the same buffer of one value a cell: each read under its own dims', async () => {
    // x → pair (two values a cell) → rows → plusOne (one value a cell, into the buffer pair wrote) → rows: the
    // second rows reads [W, H] where the first read [2W, H], the same kernel at the same offsets
    const [W, H] = [8, 3];
    const gpu = new (gpujs as unknown as { GPU: new (s: object) => any }).GPU({ mode: 'webasm' });
    try {
      const settings = { output: [W, H], precision: 'single' };
      const pair = gpu.createKernel(function (this: KernelThis<object>, x: number[][]): number[] {
        const v = x[this.thread.y][this.thread.x];
        return [2 * v, -v];
      }, { ...settings, returnType: 'Array(2)' });
      const rows = gpu.createKernel(function (this: KernelThis<object>, v: number[][]): number {
        return v[this.thread.y][this.thread.x];
      }, settings);
      const plusOne = gpu.createKernel(function (this: KernelThis<object>, v: number[][]): number {
        return v[this.thread.y][this.thread.x] + 1;
      }, settings);
      const pipeline = gpu.createPipeline(function (x: unknown) {
        return rows(plusOne(rows(pair(x))));
      });
      const x = Array.from({ length: H }, (_, y) => Float32Array.from({ length: W }, (_, i) => y * W + i + 1));
      const result = (await pipeline(x)) as Float32Array[];
      expect(pipeline.executorKind).toMatch(/^fused-/);
      // the first rows reads row y of the packed [2W] values: cell i's pair at 2i, 2i + 1; so its [W] values are
      // the first W/2 cells' pairs
      const expected = x.map((row) => Array.from({ length: W }, (_, i) => (i % 2 === 0 ? 2 * row[i / 2]! : -row[(i - 1) / 2]!) + 1));
      expect(result.map((row) => Array.from(row))).toEqual(expected);
    } finally {
      gpu.destroy();
    }
  });
});
