/**
 * Arrays for a Device's results, handed back by the code that has finished with them and handed out again for
 * later results of the same length (as GPU frameworks keep a caching allocator for their buffers).
 *
 * Why: freshly allocated memory is slow to touch on some hosts. On the 2-core development machine (a VM whose
 * guest returns freed pages to its host), copying conv1's 5.5 MB training output into a new array took 16–20 ms
 * whenever the allocator had to map fresh pages (about 12 µs a page), and 0.3 ms into a reused one.
 *
 * Safety: only arrays this pool handed out are taken back, each once until it is handed out again, so an input
 * array or a second hand-back is ignored rather than turned into two results sharing memory. An array given back
 * stays marked until it is handed out again (`givenBack`), so that its owner can refuse to read it meanwhile.
 */
export class ResultPool {
  private readonly free = new Map<number, Float32Array[]>();
  /** Arrays handed out and not yet given back. */
  private readonly issued = new WeakSet<Float32Array>();
  /** Arrays given back and not handed out since (kept for reuse or left to the garbage collector). */
  private readonly returned = new WeakSet<Float32Array>();
  private freeBytes = 0;

  /** @param capBytes most bytes kept for reuse; arrays given back beyond it are left to the garbage collector */
  constructor(private readonly capBytes: number) {}

  /** An array of `length` values for a result: a given-back one when there is one, else a new one. */
  take(length: number): Float32Array {
    let array = this.free.get(length)?.pop();
    if (array) {
      this.freeBytes -= array.byteLength;
      this.returned.delete(array);
    } else {
      array = new Float32Array(length);
    }
    this.issued.add(array);
    return array;
  }

  /** Takes back arrays `take` handed out; the caller must not use them again. Other arrays are ignored. */
  give(...arrays: Float32Array[]): void {
    for (const array of arrays) {
      if (!this.issued.delete(array)) continue;
      this.returned.add(array);
      if (this.freeBytes + array.byteLength > this.capBytes) continue;
      let list = this.free.get(array.length);
      if (!list) this.free.set(array.length, list = []);
      list.push(array);
      this.freeBytes += array.byteLength;
    }
  }

  /** Whether `array` was given back and not handed out since: what it holds may be overwritten by any later result. */
  givenBack(array: Float32Array): boolean {
    return this.returned.has(array);
  }

  /** Bytes held for reuse. */
  get heldBytes(): number {
    return this.freeBytes;
  }

  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }
}
