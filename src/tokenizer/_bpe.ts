/**
 * The byte-pair merge loop, with tiktoken's semantics: starting from single bytes, repeatedly merge
 * the adjacent pair whose concatenated bytes have the lowest rank (leftmost on ties) until no pair
 * concatenates to a token.
 *
 * Every part is always a whole token, so "the rank of the concatenated bytes" is a function of the
 * two parts' ranks: we look each pair up by its bytes once and remember the answer in a hash table
 * of int pairs, so the merge loop builds no strings.
 * @module
 */

/** Rank meaning "these two parts do not merge". */
export const NO_MERGE = 0x7fffffff;

/** Pieces longer than this (in bytes) merge with a heap, O(n log n) instead of O(n^2). */
export const HEAP_THRESHOLD = 128;

/** Ranks of merged pairs plus the merge loops that use them. */
export class PairRanks {
  readonly #tokens: readonly string[];
  readonly #rankOf: ReadonlyMap<string, number>;
  /** The rank of each single byte (-1 when the vocab lacks it). */
  readonly byteRank: Int32Array = new Int32Array(256).fill(-1);

  // (left, right) -> rank, NO_MERGE included, filled as pairs are first asked about. Open
  // addressing with key and value side by side (left, right, rank per slot), so that a probe
  // touches one cache line; random memory access is what such tables cost.
  #slots = new Int32Array(3 << 12).fill(-1);
  #bits = 12;
  #used = 0;

  // Scratch for the merge loops, grown on demand.
  #pairRank = new Int32Array(64);
  #next = new Int32Array(0);
  #prev = new Int32Array(0);
  #heap = new Float64Array(0);

  /**
   * @param tokens token bytes as binary strings, indexed by rank
   * @param rankOf binary string -> rank for the same tokens
   */
  constructor(tokens: readonly string[], rankOf: ReadonlyMap<string, number>) {
    this.#tokens = tokens;
    this.#rankOf = rankOf;
    for (let r = 0; r < tokens.length; r++) {
      if (tokens[r].length === 1) this.byteRank[tokens[r].charCodeAt(0)] = r;
    }
  }

  /** The rank of the token that is part a followed by part b, or NO_MERGE. */
  rank(a: number, b: number): number {
    const slots = this.#slots;
    const mask = (1 << this.#bits) - 1;
    // Multiplicative hashing keeps the high bits, which depend on all bits of the key.
    let s = Math.imul(Math.imul(a, 0x9e3779b1) + b, 0x85ebca77) >>> (32 - this.#bits);
    for (;; s = (s + 1) & mask) {
      const l = slots[3 * s];
      if (l === a && slots[3 * s + 1] === b) return slots[3 * s + 2];
      if (l === -1) break;
    }
    // First time: the bytes of a then b, looked up whole.
    const rank = this.#rankOf.get(this.#tokens[a] + this.#tokens[b]) ?? NO_MERGE;
    slots[3 * s] = a;
    slots[3 * s + 1] = b;
    slots[3 * s + 2] = rank;
    if (++this.#used * 2 > mask) this.#grow();
    return rank;
  }

  #grow(): void {
    const old = this.#slots;
    // Past 2^22 pairs (48 MB) start afresh rather than keep every pair ever seen.
    if (this.#bits < 23) this.#bits++;
    this.#slots = new Int32Array(3 << this.#bits).fill(-1);
    this.#used = 0;
    if (this.#bits === 23 && old.length === this.#slots.length) return;
    const mask = (1 << this.#bits) - 1;
    for (let i = 0; i < old.length; i += 3) {
      const a = old[i], b = old[i + 1];
      if (a === -1) continue;
      let s = Math.imul(Math.imul(a, 0x9e3779b1) + b, 0x85ebca77) >>> (32 - this.#bits);
      while (this.#slots[3 * s] !== -1) s = (s + 1) & mask;
      this.#slots.set(old.subarray(i, i + 3), 3 * s);
      this.#used++;
    }
  }

  /**
   * Merges parts[0..n) (token ranks, initially single bytes) in place; pairs ranked at or above
   * `limit` never merge. Returns the number of parts left.
   */
  merge(parts: Int32Array, n: number, limit: number = NO_MERGE): number {
    return n > HEAP_THRESHOLD ? this.mergeHeap(parts, n, limit) : this.mergeLinear(parts, n, limit);
  }

  /** tiktoken's loop: rescan for the minimum after every merge. Fastest for short pieces. */
  mergeLinear(parts: Int32Array, n: number, limit: number = NO_MERGE): number {
    if (this.#pairRank.length < n) this.#pairRank = new Int32Array(n * 2);
    const pr = this.#pairRank; // pr[i]: rank of merging parts[i] with parts[i + 1]
    for (let i = 0; i + 1 < n; i++) pr[i] = this.#limited(parts[i], parts[i + 1], limit);
    pr[n - 1] = NO_MERGE;
    while (n > 1) {
      let best = NO_MERGE;
      let at = -1;
      for (let i = 0; i + 1 < n; i++) {
        if (pr[i] < best) {
          best = pr[i];
          at = i;
        }
      }
      if (at < 0) break;
      parts[at] = best; // the merged token's rank is the pair's rank
      n--;
      parts.copyWithin(at + 1, at + 2, n + 1);
      pr.copyWithin(at + 1, at + 2, n + 1);
      pr[at] = at + 1 < n ? this.#limited(best, parts[at + 1], limit) : NO_MERGE;
      if (at > 0) pr[at - 1] = this.#limited(parts[at - 1], best, limit);
    }
    return n;
  }

  /**
   * The same merges in the same order for long pieces: a linked list of parts and a min-heap of
   * (rank, position) with lazy invalidation; a stale entry is one whose position no longer starts
   * a part or whose pair rank has changed since it was pushed.
   */
  mergeHeap(parts: Int32Array, n: number, limit: number = NO_MERGE): number {
    if (this.#next.length < n + 1 || this.#pairRank.length < n + 1) {
      this.#next = new Int32Array(n + 1);
      this.#prev = new Int32Array(n + 1);
      this.#pairRank = new Int32Array(n + 1);
      this.#heap = new Float64Array(3 * n + 8);
    }
    const next = this.#next, prev = this.#prev, pr = this.#pairRank, heap = this.#heap;
    let size = 0;
    // Key = rank * 2^32 + position: exact in a double for ranks below 2^21.
    const push = (key: number): void => {
      let i = size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heap[p] <= key) break;
        heap[i] = heap[p];
        i = p;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap[--size];
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= size) break;
        if (c + 1 < size && heap[c + 1] < heap[c]) c++;
        if (heap[c] >= last) break;
        heap[i] = heap[c];
        i = c;
      }
      heap[i] = last;
      return top;
    };
    for (let i = 0; i < n; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
      pr[i] = i + 1 < n ? this.#limited(parts[i], parts[i + 1], limit) : NO_MERGE;
      if (pr[i] !== NO_MERGE) push(pr[i] * 4294967296 + i);
    }
    while (size > 0) {
      const key = pop();
      const at = key % 4294967296;
      const rank = (key - at) / 4294967296;
      if (pr[at] !== rank) continue; // stale (merged away parts have pr = NO_MERGE)
      const gone = next[at];
      parts[at] = rank;
      pr[gone] = NO_MERGE;
      next[at] = next[gone];
      if (next[at] < n) prev[next[at]] = at;
      pr[at] = next[at] < n ? this.#limited(rank, parts[next[at]], limit) : NO_MERGE;
      if (pr[at] !== NO_MERGE) push(pr[at] * 4294967296 + at);
      const p = prev[at];
      if (p >= 0) {
        pr[p] = this.#limited(parts[p], rank, limit);
        if (pr[p] !== NO_MERGE) push(pr[p] * 4294967296 + p);
      }
    }
    let count = 0;
    for (let i = 0; i < n; i = next[i]) parts[count++] = parts[i];
    return count;
  }

  #limited(a: number, b: number, limit: number): number {
    const r = this.rank(a, b);
    return r < limit ? r : NO_MERGE;
  }
}
