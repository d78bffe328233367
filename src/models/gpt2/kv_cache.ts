/**
 * The KV cache for incremental decoding: every layer's keys and values of the tokens seen so far,
 * in buffers allocated once, so generating a token costs one position instead of the whole prefix.
 * @module
 */

import type { Device } from "../../backend/backend.ts";
import { keep } from "../../memory.ts";
import { zeros } from "../../ops/creation.ts";
import type { Tensor } from "../../tensor.ts";
import type { AttentionCache } from "../../nn/attention.ts";
import type { GPT2Config } from "./config.ts";

/** Options of {@linkcode KVCache}. */
export interface KVCacheOptions {
  /** Where the buffers live (default "cpu"). */
  device?: Device;
  /** Positions the cache can hold (default and maximum: config.contextLength). */
  capacity?: number;
}

/**
 * Keys and values per layer, each (B, nHead, capacity, headDim), pre-allocated; positions
 * [0, length) are filled. Created by `GPT2.createCache(batch)` and passed to `forward`, which
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
  /** Per layer: (B, nHead, capacity, headDim). */
  readonly keys: readonly Tensor[];
  /** Per layer: (B, nHead, capacity, headDim). */
  readonly values: readonly Tensor[];
  #length = 0;

  /**
   * Allocates the buffers (zeros).
   *
   * @param config the model's config (layers, heads, width, context)
   * @param batch sequences generated together
   */
  constructor(
    config: Pick<GPT2Config, "nLayer" | "nHead" | "nEmbd" | "contextLength">,
    batch: number,
    options: KVCacheOptions = {},
  ) {
    const { device, capacity = config.contextLength } = options;
    if (!Number.isInteger(batch) || batch < 1) {
      throw new RangeError(`KVCache: batch must be a positive integer, got ${batch}`);
    }
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > config.contextLength) {
      throw new RangeError(
        `KVCache: capacity must be an integer in [1, ${config.contextLength}], got ${capacity}`,
      );
    }
    this.batch = batch;
    this.capacity = capacity;
    const shape = [batch, config.nHead, capacity, config.nEmbd / config.nHead];
    const make = () => Array.from({ length: config.nLayer }, () => keep(zeros(shape, { device })));
    this.keys = make();
    this.values = make();
  }

  /** Positions filled so far (the position of the next token). */
  get length(): number {
    return this.#length;
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
    return { keys: this.keys[i], values: this.values[i], length: this.#length };
  }

  /** Marks `t` more positions as filled (after every layer has written them). */
  advance(t: number): void {
    if (!Number.isInteger(t) || t < 0 || this.#length + t > this.capacity) {
      throw new RangeError(
        `KVCache: cannot advance ${t} positions from ${this.#length} (capacity ${this.capacity})`,
      );
    }
    this.#length += t;
  }

  /** Empties the cache for a new sequence (the buffers are reused, not cleared). */
  reset(): void {
    this.#length = 0;
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
