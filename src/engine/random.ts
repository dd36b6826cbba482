/**
 * A small seeded PRNG (mulberry32): same seed, same stream, on every machine and backend. Used for weight
 * initialisation, shuffling and dropout masks, so training runs are reproducible.
 */
export type Rng = () => number;

export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 0/1 dropout mask of n cells, each kept with probability 1 - p. */
export function dropoutMask(rng: Rng, n: number, p: number, out = new Float32Array(n)): Float32Array {
  for (let i = 0; i < n; i++) out[i] = rng() < p ? 0 : 1;
  return out;
}

/** Fisher–Yates shuffle of 0..n-1. */
export function permutation(rng: Rng, n: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/**
 * A seed derived from several integers (e.g. model seed, epoch, stream), so each epoch's shuffle and masks can
 * be recreated without carrying generator state: resuming at epoch e draws exactly what a straight run drew.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}
