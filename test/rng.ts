/**
 * Deterministic random numbers for tests. Each test run draws a fresh seed (so inputs differ run to run)
 * and logs it; setting TEST_SEED=<seed> in the environment replays a failing run exactly.
 */
import { randomBytes } from 'node:crypto';

/** The engine's own seeded generator (mulberry32), uniform floats in [0, 1). */
export { makeRng } from '../src/engine/random.ts';

/** A new unsigned 32-bit seed from the OS's CSPRNG, unless TEST_SEED pins one (for replaying a failure). */
export function freshSeed(): number {
  const pinned = process.env.TEST_SEED;
  if (pinned !== undefined && pinned !== '') {
    const seed = Number(pinned);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`TEST_SEED must be an unsigned 32-bit integer, got "${pinned}"`);
    }
    return seed;
  }
  return randomBytes(4).readUInt32LE(0);
}

/** Standard normal sample by Box–Muller (one of the pair; the other is dropped for simplicity). */
export function randn(rng: () => number): number {
  // 1 - u lies in (0, 1], so the log is finite.
  const u1 = 1 - rng();
  const u2 = rng();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
