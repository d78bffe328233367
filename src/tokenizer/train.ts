/**
 * Learning a byte-level BPE vocabulary from a corpus, with GPT-2's pre-tokenization.
 *
 * The corpus is reduced to a table of distinct pieces and their frequencies. Each merge touches
 * only the words that contain the merged pair (found through a pair -> words index), adjusts the
 * counts of the neighbouring pairs, and the next pair comes off a max-heap whose stale entries
 * are re-checked when popped (lazy invalidation).
 * @module
 */

import type { BpeVocab } from "./vocab.ts";
import { binaryToBytes, GPT2_BYTE_ORDER, utf8Binary } from "./_bytes.ts";
import { nextPiece } from "./_pretokenize.ts";
import { requireString, typeName } from "./_validate.ts";

/** Options for {@link trainBpe}. */
export interface TrainBpeOptions {
  /**
   * The vocabulary size to reach, counting the 256 byte tokens and the special tokens; training
   * stops earlier when no pair is frequent enough.
   */
  vocabSize: number;
  /** Special tokens, given ids after the learned tokens in this order; never learned from. */
  specialTokens?: readonly string[];
  /** A pair must occur at least this often to be merged. Default 2. */
  minFrequency?: number;
  /**
   * Called once the corpus is counted (with 0), every 100 merges, and at the end, with the
   * number of tokens learned so far and the number wanted.
   */
  onProgress?: (learned: number, wanted: number) => void;
}

const PAIR = 1 << 21; // pair key = left * PAIR + right: orders by left, then right

/** Max-heap of (count, pair key): the highest count first, then the smallest key. */
class PairHeap {
  #counts: number[] = [];
  #keys: number[] = [];

  get size(): number {
    return this.#keys.length;
  }

  #above(c1: number, k1: number, c2: number, k2: number): boolean {
    return c1 > c2 || (c1 === c2 && k1 < k2);
  }

  push(count: number, key: number): void {
    const counts = this.#counts, keys = this.#keys;
    let i = keys.length;
    counts.push(count);
    keys.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#above(count, key, counts[p], keys[p])) break;
      counts[i] = counts[p];
      keys[i] = keys[p];
      i = p;
    }
    counts[i] = count;
    keys[i] = key;
  }

  /** Removes the top entry; returns its [count, key]. */
  pop(): [number, number] {
    const counts = this.#counts, keys = this.#keys;
    const top: [number, number] = [counts[0], keys[0]];
    const count = counts.pop()!, key = keys.pop()!;
    const n = keys.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.#above(counts[c + 1], keys[c + 1], counts[c], keys[c])) c++;
      if (!this.#above(counts[c], keys[c], count, key)) break;
      counts[i] = counts[c];
      keys[i] = keys[c];
      i = c;
    }
    counts[i] = count;
    keys[i] = key;
    return top;
  }
}

/** Distinct pieces of the corpus with their frequencies. */
function countPieces(
  corpus: string | Iterable<string>,
  specials: readonly string[],
): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (text: string, start: number, end: number): void => {
    for (let i = start; i < end;) {
      const j = nextPiece(text, i, end) >> 1;
      const piece = text.slice(i, j);
      counts.set(piece, (counts.get(piece) ?? 0) + 1);
      i = j;
    }
  };
  let doc = 0;
  for (const text of typeof corpus === "string" ? [corpus] : corpus) {
    if (typeof text !== "string") requireString(text, "trainBpe", `corpus document ${doc}`);
    doc++;
    let start = 0;
    for (;;) { // special-token text splits the corpus and is not learned from
      let at = -1, len = 0;
      for (const s of specials) {
        const p = text.indexOf(s, start);
        if (p >= 0 && (at < 0 || p < at)) [at, len] = [p, s.length];
      }
      add(text, start, at < 0 ? text.length : at);
      if (at < 0) break;
      start = at + len;
    }
  }
  return counts;
}

/**
 * Learns a byte-level BPE vocabulary. Deterministic: the most frequent pair wins, ties go to the
 * pair with the lower (left id, right id). Single bytes get GPT-2's byte ranks (so " " is 220),
 * learned tokens follow in merge order, then the special tokens.
 *
 * @example
 * ```ts
 * import { Tokenizer, trainBpe } from "@denograd/denograd";
 * const vocab = trainBpe("low lower lowest low low", { vocabSize: 260, specialTokens: ["<|endoftext|>"] });
 * const tok = new Tokenizer(vocab);
 * console.log(tok.encode("low lower")); // [257, 258, 68, 81]: "low", " low", "e", "r"
 * ```
 * @param corpus the training text, or an iterable of documents (strings; else a TypeError)
 * @param options target vocabulary size, special tokens, minimum pair frequency
 * @returns the vocabulary
 */
export function trainBpe(corpus: string | Iterable<string>, options: TrainBpeOptions): BpeVocab {
  if (
    typeof corpus !== "string" &&
    (typeof corpus !== "object" || corpus === null || !(Symbol.iterator in corpus))
  ) {
    throw new TypeError(
      `trainBpe: corpus must be a string or an iterable of strings, got ${typeName(corpus)}`,
    );
  }
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`trainBpe: options must be an object, got ${typeName(options)}`);
  }
  if (options.specialTokens !== undefined && !Array.isArray(options.specialTokens)) {
    throw new TypeError(
      `trainBpe: options.specialTokens must be an array of strings, got ${
        typeName(options.specialTokens)
      }`,
    );
  }
  options.specialTokens?.forEach((s, i) =>
    requireString(s, "trainBpe", `options.specialTokens[${i}]`)
  );
  const specials = options.specialTokens ?? [];
  const minFrequency = options.minFrequency ?? 2;
  const target = options.vocabSize - specials.length;
  if (!Number.isInteger(options.vocabSize) || target < 256 || options.vocabSize >= PAIR) {
    throw new RangeError(
      `trainBpe: vocabSize ${options.vocabSize} must be an integer from ${256 + specials.length} ` +
        `(the 256 bytes + ${specials.length} special tokens) to ${PAIR - 1}`,
    );
  }
  if (new Set(specials).size !== specials.length || specials.some((s) => s === "")) {
    throw new RangeError(`trainBpe: special tokens must be distinct and non-empty`);
  }

  // Words: their symbols (token ids) packed in one pool, with frequencies.
  const pieces = countPieces(corpus, specials);
  const idOfByte = new Int32Array(256);
  GPT2_BYTE_ORDER.forEach((b, rank) => idOfByte[b] = rank);
  const tokens: string[] = GPT2_BYTE_ORDER.map((b) => String.fromCharCode(b));
  const rankOf = new Map(tokens.map((t, i) => [t, i]));
  const words: string[] = [];
  const freq: number[] = [];
  let poolSize = 0;
  for (const [piece, count] of pieces) {
    const bytes = /[\u0080-\uffff]/.test(piece) ? utf8Binary(piece) : piece;
    if (bytes.length < 2) continue; // nothing to merge
    words.push(bytes);
    freq.push(count);
    poolSize += bytes.length;
  }
  pieces.clear();
  const pool = new Int32Array(poolSize);
  const start = new Int32Array(words.length);
  const length = new Int32Array(words.length);
  for (let w = 0, at = 0; w < words.length; w++) {
    const bytes = words[w];
    start[w] = at;
    length[w] = bytes.length;
    for (let k = 0; k < bytes.length; k++) pool[at++] = idOfByte[bytes.charCodeAt(k)];
  }
  words.length = 0;

  // Pair counts and the pair -> words index (a word may be listed twice or no longer hold it).
  const counts = new Map<number, number>();
  const where = new Map<number, number[]>();
  const add = (key: number, delta: number, w: number): void => {
    const count = (counts.get(key) ?? 0) + delta;
    if (count <= 0) { // gone from every word: forget it (counts of other pairs never rise)
      counts.delete(key);
      where.delete(key);
      return;
    }
    counts.set(key, count);
    if (delta > 0) {
      const list = where.get(key);
      if (list === undefined) where.set(key, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
    }
  };
  for (let w = 0; w < start.length; w++) {
    for (let i = start[w], end = start[w] + length[w] - 1; i < end; i++) {
      add(pool[i] * PAIR + pool[i + 1], freq[w], w);
    }
  }
  const heap = new PairHeap();
  for (const [key, count] of counts) heap.push(count, key);
  const progress = (): void => options.onProgress?.(tokens.length - 256, target - 256);
  progress();

  const seen = new Int32Array(start.length).fill(-1); // the merge that last visited each word
  const touched = new Set<number>();
  for (let merge = 0; tokens.length < target && heap.size > 0; merge++) {
    const [count, key] = heap.pop();
    const actual = counts.get(key) ?? 0;
    if (actual !== count) { // stale: counts only fall until popped, so re-queue the real count
      if (actual > 0) heap.push(actual, key);
      continue;
    }
    if (count < minFrequency) break;
    const a = Math.floor(key / PAIR), b = key % PAIR;
    const bytes = tokens[a] + tokens[b];
    let z = rankOf.get(bytes); // the same bytes by another split reuse the existing token
    if (z === undefined) {
      z = tokens.length;
      tokens.push(bytes);
      rankOf.set(bytes, z);
      if (z % 100 === 0) progress();
    }
    touched.clear();
    const zPair = (x: number, y: number, delta: number, w: number): void => {
      const k = x * PAIR + y;
      add(k, delta, w);
      touched.add(k);
    };
    for (const w of where.get(key)!) {
      if (seen[w] === merge) continue;
      seen[w] = merge;
      const s = start[w], len = length[w], f = freq[w];
      let o = s;
      for (let i = s, end = s + len; i < end;) {
        if (i + 1 < end && pool[i] === a && pool[i + 1] === b) {
          // (p, a) becomes (p, z); (b, q) becomes (z, q). p is already rewritten (may be z).
          if (o > s) {
            add(pool[o - 1] * PAIR + a, -f, w);
            zPair(pool[o - 1], z, f, w);
          }
          if (i + 2 < end) {
            add(b * PAIR + pool[i + 2], -f, w);
            zPair(z, pool[i + 2], f, w);
          }
          pool[o++] = z;
          i += 2;
        } else {
          pool[o++] = pool[i++];
        }
      }
      length[w] = o - s;
    }
    counts.delete(key);
    where.delete(key);
    for (const k of touched) {
      const c = counts.get(k);
      if (c !== undefined) heap.push(c, k);
    }
  }
  progress();
  const specialTokens: Record<string, number> = {};
  specials.forEach((s, i) => specialTokens[s] = tokens.length + i);
  return { tokens: tokens.map(binaryToBytes), specialTokens };
}
