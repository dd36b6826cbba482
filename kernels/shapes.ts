/**
 * Shape arithmetic for every kernel, in one place: kernel files declare math, this file derives sizes.
 * `M` is the number of models, `B` the batch per model. `xModelStride` is the distance between two models'
 * inputs: 0 when every model reads the same batch (ensembling), B * (one sample's size) when each model has
 * its own batch (training several models at once).
 */
/**
 * A grid row's width padded to a multiple of 4: webasm runs a kernel with SIMD only when its rows are (fc2's 10
 * outputs ran scalar). The padding cells compute values their layout pass drops.
 */
export const pad4 = (n: number): number => Math.ceil(n / 4) * 4;

/** The largest multiple of 4 ≤ n: where a loop unrolled by four hands over to its tail. */
export const fours = (n: number): number => n - (n % 4);

/**
 * conv2d's column output (`conv2dForward`), read by its layout passes and by the pool that follows conv2: each cell
 * holds a column of four output rows, a plane is `rowBlocks` rows of `rowW` cells, laid out [rowBlocks, rowW, 4].
 * `rowW` is outW padded to a multiple of 4, because webasm's worker threads run a kernel with SIMD only when its x
 * size is a multiple of 4 (otherwise every cell runs scalar).
 */
export function convColumns(outH: number, outW: number): { rowW: number; rowBlocks: number } {
  return { rowW: pad4(outW), rowBlocks: Math.ceil(outH / 4) };
}

export interface Conv2DInfo {
  M: number; B: number;
  inC: number; inH: number; inW: number;
  outC: number; K: number; outH: number; outW: number;
  xModelStride: number;
}

export function computeConv2DInfo(p: {
  M: number; B: number; inC: number; inH: number; inW: number; outC: number; K: number; sharedInput?: boolean;
}): Conv2DInfo {
  const outH = p.inH - p.K + 1;
  const outW = p.inW - p.K + 1;
  if (outH < 1 || outW < 1) throw new Error(`conv2d: a ${p.K}x${p.K} kernel does not fit a ${p.inH}x${p.inW} input`);
  checkCounts({ M: p.M, B: p.B, inC: p.inC, outC: p.outC, K: p.K });
  // the kernels write the 3x3 taps out
  if (p.K !== 3) throw new Error(`conv2d: only 3x3 kernels are implemented, got ${p.K}x${p.K}`);
  return {
    M: p.M, B: p.B, inC: p.inC, inH: p.inH, inW: p.inW, outC: p.outC, K: p.K, outH, outW,
    xModelStride: p.sharedInput ? 0 : p.B * p.inC * p.inH * p.inW,
  };
}

/** 2x2 max pooling, stride 2; odd rows/columns are dropped (floor), as PyTorch does. */
export interface Pool2DInfo { M: number; B: number; C: number; inH: number; inW: number; outH: number; outW: number }

export function computePool2DInfo(p: { M: number; B: number; C: number; inH: number; inW: number }): Pool2DInfo {
  const outH = Math.floor(p.inH / 2);
  const outW = Math.floor(p.inW / 2);
  if (outH < 1 || outW < 1) throw new Error(`max_pool2d: a ${p.inH}x${p.inW} input is smaller than the 2x2 window`);
  checkCounts({ M: p.M, B: p.B, C: p.C });
  return { ...p, outH, outW };
}

export interface LinearInfo { M: number; B: number; inF: number; outF: number; xModelStride: number }

export function computeLinearInfo(p: { M: number; B: number; inF: number; outF: number; sharedInput?: boolean }): LinearInfo {
  checkCounts({ ...p });
  return { M: p.M, B: p.B, inF: p.inF, outF: p.outF, xModelStride: p.sharedInput ? 0 : p.B * p.inF };
}

/**
 * GPU.js's webasm backend gives a kernel one worker thread per 4,096 cells of its grid (up to its pool's size), so a
 * grid of 4,096 cells or fewer runs on one core.
 */
export const CELLS_PER_WORKER = 4096;

/**
 * How many parts to split a kernel's sum into, each part a cell of its own, so that a small grid of `cells` cells
 * per model runs on two worker threads: the smallest power of two up to `maxParts` that takes the grid past
 * `CELLS_PER_WORKER`, then halved until `fits` accepts it (1 always fits). Chosen from one model's grid, never from
 * M: a model trained beside others sums in the same order as one trained alone.
 */
function threadingParts(cells: number, maxParts: number, fits: (parts: number) => boolean): number {
  let parts = 1;
  while (parts < maxParts && cells * parts <= CELLS_PER_WORKER) parts *= 2;
  while (parts > 1 && !fits(parts)) parts /= 2;
  return parts;
}

/**
 * The linear forward's parts of its sum over the input features (added up by the rows pass): fc1 at B = 64 has
 * 128 × 16 = 2,048 cells of four rows, so whole it runs on one core; in 4 parts it runs on two. At most 8 parts,
 * each of at least 256 features, so a small layer such as fc2 stays whole.
 */
export function linearForwardParts(info: LinearInfo): number {
  return threadingParts(info.outF * Math.ceil(info.B / 4), 8, (parts) => info.inF % parts === 0 && info.inF / parts >= 256);
}

/**
 * The conv weight gradient's parts of its sum over the batch (added up by its layout pass): conv1's grid is
 * 28 columns × 3 taps × 32 output channels = 2,688 cells, so whole it runs on one core; in 2 parts it runs on two.
 * Each part holds a whole number of samples.
 */
export function convGradWeightParts(info: Conv2DInfo): number {
  return threadingParts(pad4(info.outW) * info.K * info.inC * info.outC, info.B, (parts) => info.B % parts === 0);
}

/** Row-wise ops over [M, B, C] (log-softmax, NLL). */
export interface RowsInfo { M: number; B: number; C: number }

export function computeRowsInfo(p: RowsInfo): RowsInfo {
  checkCounts({ ...p });
  return { M: p.M, B: p.B, C: p.C };
}

function checkCounts(counts: Record<string, number | boolean | undefined>): void {
  for (const [name, v] of Object.entries(counts)) {
    if (typeof v === 'number' && (!Number.isInteger(v) || v < 1)) {
      throw new Error(`shape: ${name} must be a positive integer, got ${v}`);
    }
  }
}
