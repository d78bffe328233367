/**
 * Causal multi-head self-attention, GPT-2's, generalised: one projection to q, k, v, optional
 * rotary (RoPE) or ALiBi positions, grouped-query heads, a sliding window, the fused
 * scaled-dot-product attention op (or its naive reference), and an output projection.
 * Optionally reads and extends a KV cache.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { isGradEnabled } from "../autograd.ts";
import { keep, tidy } from "../memory.ts";
import { naiveAttention, scaledDotProductAttention } from "../ops/attention.ts";
import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { alibiSlopesTensor } from "./alibi.ts";
import { Dropout } from "./dropout.ts";
import { checkSize, Linear } from "./linear.ts";
import { Module } from "./module.ts";
import { applyRope, type RopeConfig, validateRopeScaling } from "./rope.ts";

/** One layer's slice of a KV cache: pre-allocated key/value buffers and how much is filled. */
export interface AttentionCache {
  /** (B, nKvHeads, capacity, headDim): slots [0, length - start) hold positions [start, length). */
  readonly keys: Tensor;
  /** (B, nKvHeads, capacity, headDim), as `keys`. */
  readonly values: Tensor;
  /** Positions seen so far; the new tokens sit at positions length, length+1, ... */
  readonly length: number;
  /**
   * Absolute position held by slot 0 (default 0). A sliding-window cache drops positions no
   * query can see any more and moves the rest to the front, so it grows past 0.
   */
  readonly start?: number;
}

/** Options of {@linkcode CausalSelfAttention}. */
export interface CausalSelfAttentionOptions {
  /** Dropout on the attention weights and on the output (default 0). */
  dropout?: number;
  /** Biases in c_attn and c_proj (default true). */
  bias?: boolean;
  /** Where the parameters live (default "cpu"). */
  device?: Device;
  /** Init std of c_attn's weight (default: PyTorch's uniform init); biases start at 0. */
  std?: number;
  /** Init std of c_proj's weight (default: `std`). */
  projStd?: number;
  /**
   * Positions inside attention: "rope" rotates q and k, "alibi" biases the scores per head, and
   * "none" (default) adds nothing (GPT-2's learned table is added to the input by the model).
   */
  position?: "rope" | "alibi" | "none";
  /** RoPE's theta and scaling (with position "rope"). */
  rope?: RopeConfig;
  /** Key/value heads (grouped-query attention); must divide nHead (default nHead). */
  nKvHeads?: number;
  /** Attend to at most this many most recent positions, itself included (default 0: all). */
  slidingWindow?: number;
  /**
   * "fused" (default): {@linkcode scaledDotProductAttention}, which never builds the (T, S)
   * score matrix; "naive": the materialised reference path (for tests and comparisons).
   */
  kernel?: "fused" | "naive";
}

/**
 * Causal self-attention with fields named as in Hugging Face's GPT-2: `c_attn` (C -> q|k|v:
 * C + 2·nKvHeads·D), `c_proj` (C -> C), `attn_dropout` (its `p` goes to the fused op) and
 * `resid_dropout`.
 *
 * @example
 * ```ts
 * import { CausalSelfAttention, randn } from "@denograd/denograd";
 * const attn = new CausalSelfAttention(16, 4, { position: "rope", nKvHeads: 2 });
 * console.log(attn.forward(randn([2, 5, 16])).shape); // [2, 5, 16]
 * ```
 */
export class CausalSelfAttention extends Module {
  /** Model width C. */
  readonly nEmbd: number;
  /** Number of query heads; C / nHead is the head size. */
  readonly nHead: number;
  /** Number of key/value heads; query head h reads kv head floor(h / (nHead / nKvHeads)). */
  readonly nKvHeads: number;
  /** How positions enter the scores. */
  readonly position: "rope" | "alibi" | "none";
  /** RoPE settings (position "rope"). */
  readonly rope: Readonly<RopeConfig>;
  /** Window size, 0 = unlimited. */
  readonly slidingWindow: number;
  /** Fused op or naive reference. */
  kernel: "fused" | "naive";
  /** (C -> C + 2·nKvHeads·D): queries, keys and values side by side. */
  c_attn: Linear;
  /** (C -> C): mixes the heads back. */
  c_proj: Linear;
  /** Dropout on the attention weights (applied inside the attention op). */
  attn_dropout: Dropout;
  /** Dropout on the output, before the residual add. */
  resid_dropout: Dropout;
  #slopes: Tensor | null = null;

  /**
   * An attention layer with fresh parameters.
   *
   * @param nEmbd model width C
   * @param nHead number of heads (must divide C)
   */
  constructor(nEmbd: number, nHead: number, options: CausalSelfAttentionOptions = {}) {
    super();
    checkSize("CausalSelfAttention", "nEmbd", nEmbd);
    checkSize("CausalSelfAttention", "nHead", nHead);
    if (nEmbd % nHead !== 0) {
      throw new RangeError(`CausalSelfAttention: nHead ${nHead} does not divide nEmbd ${nEmbd}`);
    }
    const {
      dropout = 0,
      bias = true,
      device,
      std,
      projStd = std,
      position = "none",
      rope = {},
      nKvHeads = nHead,
      slidingWindow = 0,
      kernel = "fused",
    } = options;
    if (position !== "rope" && position !== "alibi" && position !== "none") {
      throw new RangeError(
        `CausalSelfAttention: position must be "rope", "alibi" or "none", got ${position}`,
      );
    }
    if (!Number.isInteger(nKvHeads) || nKvHeads < 1 || nHead % nKvHeads !== 0) {
      throw new RangeError(
        `CausalSelfAttention: nKvHeads must be a positive integer dividing nHead ${nHead}, got ${nKvHeads}`,
      );
    }
    if (!Number.isInteger(slidingWindow) || slidingWindow < 0) {
      throw new RangeError(
        `CausalSelfAttention: slidingWindow must be an integer >= 0, got ${slidingWindow}`,
      );
    }
    if (kernel !== "fused" && kernel !== "naive") {
      throw new RangeError(`CausalSelfAttention: kernel must be "fused" or "naive", got ${kernel}`);
    }
    const hs = nEmbd / nHead;
    if (position === "rope") {
      if (hs % 2 !== 0) {
        throw new RangeError(`CausalSelfAttention: RoPE needs an even head size, got ${hs}`);
      }
      if (rope.scaling) validateRopeScaling(rope.scaling, "CausalSelfAttention");
    }
    this.nEmbd = nEmbd;
    this.nHead = nHead;
    this.nKvHeads = nKvHeads;
    this.position = position;
    this.rope = Object.freeze({ ...rope });
    this.slidingWindow = slidingWindow;
    this.kernel = kernel;
    this.c_attn = new Linear(nEmbd, nEmbd + 2 * nKvHeads * hs, { bias, device, std });
    this.c_proj = new Linear(nEmbd, nEmbd, { bias, device, std: projStd });
    this.attn_dropout = new Dropout(dropout);
    this.resid_dropout = new Dropout(dropout);
  }

  /**
   * Attends each position to itself and earlier ones (the last `slidingWindow` with a window).
   * With a `cache`, `x` holds the tokens at positions [cache.length, cache.length + T): their
   * keys (rotated at those positions under RoPE) and values are written into the cache and the
   * queries attend over the cached positions too. The caller advances the length. Writing the
   * cache is not differentiable, so a cached forward must run under noGrad().
   *
   * @param x (B, T, C)
   * @returns (B, T, C)
   */
  forward(x: Tensor, cache?: AttentionCache): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.nEmbd) {
      throw new RangeError(
        `CausalSelfAttention: input must be (B, T, ${this.nEmbd}), got ${fmt(x.shape)}`,
      );
    }
    const [B, T, C] = x.shape;
    const nh = this.nHead, nkv = this.nKvHeads, hs = C / nh;
    const past = cache ? cache.length : 0; // absolute position of the first new token
    const slot = cache ? this.#checkCache(cache, B, T) : 0; // where it goes in the buffers
    return tidy(() => {
      const qkv = this.c_attn.forward(x); // (B, T, C + 2·nkv·hs)
      // (B, T, n·hs) -> (B, n, T, hs): a strided view, no copy
      const heads = (t: Tensor, n: number) => t.view([B, T, n, hs]).transpose(1, 2);
      const [qs, ks, vs] = qkv.split([C, nkv * hs, nkv * hs], 2);
      let q = heads(qs, nh), k = heads(ks, nkv); // (B, nh, T, hs), (B, nkv, T, hs)
      const v = heads(vs, nkv); // (B, nkv, T, hs)
      if (this.position === "rope") {
        // Rotate at absolute positions, so cached keys need no further rotation.
        q = applyRope(q, past, this.rope);
        k = applyRope(k, past, this.rope);
      }
      let keys = k, values = v; // (B, nkv, S, hs): the positions attended over
      if (cache) {
        const kSlot = cache.keys.narrow(2, slot, T), vSlot = cache.values.narrow(2, slot, T);
        kSlot.assign(k);
        vSlot.assign(v);
        keys = cache.keys.narrow(2, 0, slot + T);
        values = cache.values.narrow(2, 0, slot + T);
      }
      const attend = this.kernel === "fused" ? scaledDotProductAttention : naiveAttention;
      const y = attend(q, keys, values, {
        causal: true,
        scale: 1 / Math.sqrt(hs),
        qOffset: slot, // query row 0 sits `slot` positions after key 0
        window: this.slidingWindow,
        dropout: this.attn_dropout.training ? this.attn_dropout.p : 0,
        alibiSlopes: this.position === "alibi" ? this.#alibiSlopes(x.device) : undefined,
      }); // (B, nh, T, hs)
      const yT = y.transpose(1, 2); // (B, T, nh, hs)
      const merged = yT.reshape([B, T, C]); // (B, T, C): heads side by side again
      const proj = this.c_proj.forward(merged); // (B, T, C)
      return this.resid_dropout.forward(proj);
    });
  }

  /** Frees the parameters and the cached ALiBi slopes. */
  override dispose(): void {
    this.#slopes?.dispose();
    this.#slopes = null;
    super.dispose();
  }

  /** The ALiBi slopes on `device`, built once (not a parameter: nothing to learn or save). */
  #alibiSlopes(device: Device): Tensor {
    if (this.#slopes?.device !== device) {
      this.#slopes?.dispose();
      this.#slopes = keep(alibiSlopesTensor(this.nHead, device));
    }
    return this.#slopes;
  }

  #checkCache(cache: AttentionCache, batch: number, t: number): number {
    if (isGradEnabled() && this.c_attn.weight.requiresGrad) {
      throw new TypeError(
        "CausalSelfAttention: a forward with a KV cache is inference-only; run it under noGrad()",
      );
    }
    const hs = this.nEmbd / this.nHead, capacity = cache.keys.shape[2];
    for (const buf of [cache.keys, cache.values]) {
      const [b, h, c, d] = buf.shape;
      if (buf.ndim !== 4 || b !== batch || h !== this.nKvHeads || c !== capacity || d !== hs) {
        throw new RangeError(
          `CausalSelfAttention: cache buffers must be (${batch}, ${this.nKvHeads}, capacity, ${hs}), got ${
            fmt(buf.shape)
          }`,
        );
      }
    }
    const start = cache.start ?? 0;
    if (!Number.isInteger(start) || start < 0 || start > cache.length) {
      throw new RangeError(
        `CausalSelfAttention: cache.start must be an integer in [0, length ${cache.length}], got ${start}`,
      );
    }
    const filled = cache.length - start;
    if (filled + t > capacity) {
      throw new RangeError(
        `CausalSelfAttention: ${t} new positions after ${filled} cached exceed the cache capacity ${capacity}`,
      );
    }
    return filled;
  }
}
