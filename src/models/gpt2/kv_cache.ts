/**
 * The KV cache for incremental decoding: every layer's keys and values of the tokens seen so far,
 * in buffers allocated once, so generating a token costs one position instead of the whole prefix.
 *
 * Under every position scheme the cache stores what attention reads: keys already rotated at their
 * absolute positions (RoPE), plain keys (learned, ALiBi: the op biases by the distance it derives
 * from the offset between queries and slot 0), and only the nKvHeads key/value heads (GQA).
 * With a sliding window W the cache is bounded: when the next tokens do not fit, the last W - 1
 * positions (all a later query can see) move to the front and `start` advances, so decoding runs
 * on without limit at O(1) amortised copying per token (one move of W - 1 slots per
 * capacity - W + 1 tokens).
 * @module
 */

import type { Device } from "../../backend/backend.ts";
import { noGrad } from "../../autograd.ts";
import { keep } from "../../memory.ts";
import { zeros } from "../../ops/creation.ts";
import type { Tensor } from "../../tensor.ts";
import type { AttentionCache } from "../../nn/attention.ts";
import { attentionSettings, type GPT2Config } from "./config.ts";

/** Options of {@linkcode KVCache}. */
export interface KVCacheOptions {
  /** Where the buffers live (default "cpu"). */
  device?: Device;
  /**
   * Positions the buffers hold (default config.contextLength, or twice the sliding window if
   * larger and positions are not learned). With learned positions at most
   * contextLength; RoPE, ALiBi and no positions allow more (decoding past the training context).
   */
  capacity?: number;
}

/**
 * Keys and values per layer, each (B, nKvHeads, capacity, headDim), pre-allocated; slots
 * [0, length - start) hold positions [start, length) (start is 0 without a sliding window). Created by `GPT2.createCache(batch)` and passed to `forward`, which
 * appends and advances `length`. Its buffers are kept out of tidy scopes: call `dispose()`.
 *
 * @example
 * ```ts
 * import { GPT2, gpt2Config, noGrad, tensor } from "@denograd/denograd";
 * const model = new GPT2(gpt2Config("small-test")).eval();
 * const cache = model.createCache(1);
 * noGrad(() => model.forward(tensor([[1, 2, 3]], { dtype: "i32" }), { cache })); // prefill
 * noGrad(() => model.forward(tensor([[4]], { dtype: "i32" }), { cache })); // one more token
 * console.log(cache.length); // 4
 * cache.dispose();
 * ```
 */
export class KVCache {
  /** Sequences per batch. */
  readonly batch: number;
  /** Positions each buffer holds. */
  readonly capacity: number;
  /** Per layer: (B, nKvHeads, capacity, headDim). */
  readonly keys: readonly Tensor[];
  /** Per layer: (B, nKvHeads, capacity, headDim). */
  readonly values: readonly Tensor[];
  /** The model's sliding window (0: none; the cache then holds positions [0, capacity)). */
  readonly window: number;
  #length = 0;
  #start = 0;

  /**
   * Allocates the buffers (zeros).
   *
   * @param config the model's config (layers, heads, width, context)
   * @param batch sequences generated together
   */
  constructor(
    config: Pick<
      GPT2Config,
      "nLayer" | "nHead" | "nEmbd" | "contextLength" | "position" | "nKvHeads" | "slidingWindow"
    >,
    batch: number,
    options: KVCacheOptions = {},
  ) {
    const { position, nKvHeads, slidingWindow } = attentionSettings(config);
    // A rolling window cache moves W - 1 slots each time it fills: twice the window keeps
    // that to one move per W + 1 tokens.
    const rolling = position !== "learned" ? 2 * slidingWindow : 0;
    const { device, capacity = Math.max(config.contextLength, rolling) } = options;
    if (!Number.isInteger(batch) || batch < 1) {
      throw new RangeError(`KVCache: batch must be a positive integer, got ${batch}`);
    }
    const max = position === "learned" ? config.contextLength : Number.MAX_SAFE_INTEGER;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > max) {
      throw new RangeError(
        `KVCache: capacity must be an integer in [1, ${
          position === "learned" ? `${max}] (learned positions)` : "∞)"
        }, got ${capacity}`,
      );
    }
    this.batch = batch;
    this.capacity = capacity;
    this.window = slidingWindow;
    const shape = [batch, nKvHeads, capacity, config.nEmbd / config.nHead];
    const make = () => Array.from({ length: config.nLayer }, () => keep(zeros(shape, { device })));
    this.keys = make();
    this.values = make();
  }

  /** Positions seen so far (the position of the next token). */
  get length(): number {
    return this.#length;
  }

  /** The position held by slot 0 (advances only under a sliding window). */
  get start(): number {
    return this.#start;
  }

  /**
   * Makes room for `t` more positions: under a sliding window, when they do not fit, drops the
   * positions no later query can see (all but the last window - 1) and moves the rest to the
   * front. Returns whether they fit now. The model calls this before its layers write.
   */
  reserve(t: number): boolean {
    const filled = this.#length - this.#start;
    if (filled + t <= this.capacity) return true;
    if (this.window === 0) return false;
    const kept = Math.min(filled, this.window - 1);
    if (kept + t > this.capacity) return false;
    const from = filled - kept;
    noGrad(() => {
      for (const buf of [...this.keys, ...this.values]) {
        const src = buf.narrow(2, from, kept), copy = src.clone(); // a copy: ranges may overlap
        const dst = buf.narrow(2, 0, kept);
        dst.assign(copy);
        for (const tmp of [src, copy, dst]) tmp.dispose();
      }
    });
    this.#start += from;
    return true;
  }

  /** Number of layers. */
  get nLayer(): number {
    return this.keys.length;
  }

  /** Layer `i`'s buffers and the current length, for {@linkcode CausalSelfAttention.forward}. */
  layer(i: number): AttentionCache {
    if (!Number.isInteger(i) || i < 0 || i >= this.keys.length) {
      throw new RangeError(`KVCache: layer ${i} out of range [0, ${this.keys.length})`);
    }
    return {
      keys: this.keys[i],
      values: this.values[i],
      length: this.#length,
      start: this.#start,
    };
  }

  /** Marks `t` more positions as filled (after every layer has written them). */
  advance(t: number): void {
    if (!Number.isInteger(t) || t < 0 || this.#length - this.#start + t > this.capacity) {
      throw new RangeError(
        `KVCache: cannot advance ${t} positions from ${this.#length} (slot ${
          this.#length - this.#start
        } of capacity ${this.capacity})`,
      );
    }
    this.#length += t;
  }

  /** Empties the cache for a new sequence (the buffers are reused, not cleared). */
  reset(): void {
    this.#length = 0;
    this.#start = 0;
  }

  /** Frees the buffers; the cache cannot be used afterwards. */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
    this.#length = 0;
  }

  /** `using cache = model.createCache(1)` disposes it at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
