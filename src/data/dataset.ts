/**
 * Datasets for language-model training: fixed-length windows over a token stream, inputs and
 * targets shifted by one (the book's GPTDatasetV1), and a train/validation split.
 * @module
 */

/** One training example: `target[i]` is the token that follows `input[i]`. */
export interface Example {
  /** Token ids fed to the model, (T). */
  input: Int32Array;
  /** The next token at every position, (T). */
  target: Int32Array;
}

/** Random access to a fixed number of items (what {@linkcode DataLoader} batches). */
export interface Dataset<T = Example> {
  /** Number of items. */
  readonly length: number;
  /** Item `index`, 0 <= index < length. */
  get(index: number): T;
}

/** Options of {@linkcode slidingWindows}. */
export interface SlidingWindowOptions {
  /** Tokens per window (the context length T). */
  maxLength: number;
  /** Tokens between the starts of consecutive windows; default maxLength (no overlap). */
  stride?: number;
}

/** Token ids from any array-like, checked once, as an Int32Array (copied unless already one). */
function toIds(op: string, tokens: ArrayLike<number>): Int32Array {
  if (tokens instanceof Int32Array) return tokens;
  if (tokens instanceof Uint16Array || tokens instanceof Uint8Array) return Int32Array.from(tokens);
  if (tokens === null || typeof tokens !== "object" || typeof tokens.length !== "number") {
    throw new TypeError(`${op}: tokens must be an array or typed array of token ids`);
  }
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < out.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > 0x7fffffff) {
      throw new RangeError(`${op}: tokens[${i}] = ${t} is not a token id`);
    }
    out[i] = t;
  }
  return out;
}

/**
 * Overlapping or adjacent windows of a token stream. Items are views into one shared array (no
 * copies), so treat them as read-only.
 */
export class TokenWindows implements Dataset<Example> {
  /** The token stream. */
  readonly tokens: Int32Array;
  /** Tokens per window. */
  readonly maxLength: number;
  /** Tokens between window starts. */
  readonly stride: number;
  /** Number of windows. */
  readonly length: number;

  /** See {@linkcode slidingWindows}, which validates the arguments. */
  constructor(tokens: Int32Array, maxLength: number, stride: number) {
    this.tokens = tokens;
    this.maxLength = maxLength;
    this.stride = stride;
    // Starts 0, stride, ... below len - maxLength: each window needs maxLength + 1 tokens.
    this.length = Math.max(0, Math.ceil((tokens.length - maxLength) / stride));
  }

  /** Window `index`: input tokens [s, s + T), targets [s + 1, s + T + 1), s = index * stride. */
  get(index: number): Example {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new RangeError(`TokenWindows.get: index ${index} outside [0, ${this.length})`);
    }
    const s = index * this.stride, t = this.maxLength;
    return {
      input: this.tokens.subarray(s, s + t),
      target: this.tokens.subarray(s + 1, s + t + 1),
    };
  }
}

/**
 * Cuts a token stream into windows of `maxLength` tokens starting every `stride` tokens, each with
 * its targets shifted by one: exactly the windows of the book's `GPTDatasetV1`.
 *
 * @param tokens token ids (e.g. from `Tokenizer.encode` or `readShard`)
 * @throws {RangeError} for bad options or fewer than maxLength + 1 tokens (no window)
 * @example
 * ```ts
 * import { slidingWindows } from "@denograd/denograd";
 * const ds = slidingWindows([10, 11, 12, 13, 14, 15], { maxLength: 2, stride: 2 });
 * console.log(ds.length, ds.get(1)); // 2 { input: Int32Array [12, 13], target: Int32Array [13, 14] }
 * ```
 */
export function slidingWindows(
  tokens: ArrayLike<number>,
  options: SlidingWindowOptions,
): TokenWindows {
  const { maxLength, stride = maxLength } = options ?? {};
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new RangeError(`slidingWindows: maxLength must be a positive integer, got ${maxLength}`);
  }
  if (!Number.isInteger(stride) || stride < 1) {
    throw new RangeError(`slidingWindows: stride must be a positive integer, got ${stride}`);
  }
  const ids = toIds("slidingWindows", tokens);
  if (ids.length <= maxLength) {
    throw new RangeError(
      `slidingWindows: ${ids.length} tokens make no window: one needs maxLength + 1 = ${
        maxLength + 1
      } (inputs plus the shifted target)`,
    );
  }
  return new TokenWindows(ids, maxLength, stride);
}

/** Options of {@linkcode trainValSplit}. */
export interface TrainValSplitOptions {
  /** Fraction of the tokens, taken from the end, held out for validation; default 0.1. */
  valFraction?: number;
}

/**
 * Splits a token stream into a leading training part and a trailing validation part (the book
 * splits the text 90/10 the same way). Both are views of one Int32Array.
 *
 * @example
 * ```ts
 * import { trainValSplit } from "@denograd/denograd";
 * const { train, val } = trainValSplit([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { valFraction: 0.2 });
 * console.log(train.length, val); // 8 Int32Array [9, 10]
 * ```
 */
export function trainValSplit(
  tokens: ArrayLike<number>,
  options: TrainValSplitOptions = {},
): { train: Int32Array; val: Int32Array } {
  const { valFraction = 0.1 } = options;
  if (typeof valFraction !== "number" || !(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`trainValSplit: valFraction must be in [0, 1), got ${valFraction}`);
  }
  const ids = toIds("trainValSplit", tokens);
  const cut = Math.floor(ids.length * (1 - valFraction));
  return { train: ids.subarray(0, cut), val: ids.subarray(cut) };
}
