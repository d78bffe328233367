/**
 * Causal multi-head self-attention, GPT-2's: one projection to q, k, v, scaled dot products with
 * future positions masked, and an output projection. Optionally reads and extends a KV cache.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { isGradEnabled } from "../autograd.ts";
import { arange } from "../ops/creation.ts";
import { gt } from "../ops/elementwise.ts";
import { matmul } from "../ops/matmul.ts";
import { tidy } from "../memory.ts";
import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { disposeExcept } from "./_dispose.ts";
import { Dropout } from "./dropout.ts";
import { checkSize, Linear } from "./linear.ts";
import { Module } from "./module.ts";

/** One layer's slice of a KV cache: pre-allocated key/value buffers and how much is filled. */
export interface AttentionCache {
  /** (B, nHead, capacity, headDim): keys of positions [0, length) are valid. */
  readonly keys: Tensor;
  /** (B, nHead, capacity, headDim): values of positions [0, length) are valid. */
  readonly values: Tensor;
  /** Positions already in the cache; the new tokens sit at positions length, length+1, ... */
  readonly length: number;
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
}

/**
 * Causal self-attention with fields named as in Hugging Face's GPT-2: `c_attn` (C -> 3C, q|k|v),
 * `c_proj` (C -> C), `attn_dropout` and `resid_dropout`.
 *
 * @example
 * ```ts
 * import { CausalSelfAttention, randn } from "@denograd/denograd";
 * const attn = new CausalSelfAttention(16, 4);
 * console.log(attn.forward(randn([2, 5, 16])).shape); // [2, 5, 16]
 * ```
 */
export class CausalSelfAttention extends Module {
  /** Model width C. */
  readonly nEmbd: number;
  /** Number of heads; C / nHead is the head size. */
  readonly nHead: number;
  /** (C -> 3C): queries, keys and values side by side. */
  c_attn: Linear;
  /** (C -> C): mixes the heads back. */
  c_proj: Linear;
  /** Dropout on the attention weights. */
  attn_dropout: Dropout;
  /** Dropout on the output, before the residual add. */
  resid_dropout: Dropout;

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
    const { dropout = 0, bias = true, device, std, projStd = std } = options;
    this.nEmbd = nEmbd;
    this.nHead = nHead;
    this.c_attn = new Linear(nEmbd, 3 * nEmbd, { bias, device, std });
    this.c_proj = new Linear(nEmbd, nEmbd, { bias, device, std: projStd });
    this.attn_dropout = new Dropout(dropout);
    this.resid_dropout = new Dropout(dropout);
  }

  /**
   * Attends each position to itself and every earlier one. With a `cache`, `x` holds the tokens
   * at positions [cache.length, cache.length + T): their keys and values are written into the
   * cache and the queries attend over [0, cache.length + T). The caller advances the length.
   * Writing the cache is not differentiable, so a cached forward must run under noGrad().
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
    const nh = this.nHead, hs = C / nh;
    const past = cache ? this.#checkCache(cache, B, T) : 0;
    const qkv = this.c_attn.forward(x); // (B, T, 3C)
    const temps: Tensor[] = [qkv];
    const heads = (t: Tensor): Tensor => {
      const split = t.view([B, T, nh, hs]); // (B, T, nh, hs)
      temps.push(t, split);
      return split.transpose(1, 2); // (B, nh, T, hs)
    };
    const [q, k, v] = qkv.split(C, 2).map(heads);
    temps.push(q, k, v);
    let keys = k, values = v; // (B, nh, S, hs): the S = past + T positions attended over
    if (cache) {
      const kSlot = cache.keys.narrow(2, past, T), vSlot = cache.values.narrow(2, past, T);
      kSlot.assign(k);
      vSlot.assign(v);
      keys = cache.keys.narrow(2, 0, past + T);
      values = cache.values.narrow(2, 0, past + T);
      temps.push(kSlot, vSlot, keys, values);
    }
    const S = past + T;
    const kT = keys.transpose(-2, -1); // (B, nh, hs, S)
    const scores = matmul(q, kT); // (B, nh, T, S)
    const scaled = scores.mul(1 / Math.sqrt(hs));
    const mask = causalMask(T, S, past, x.device); // (T, S), 1 = future
    const masked = scaled.maskedFill(mask, -Infinity);
    const att = masked.softmax(-1); // (B, nh, T, S) attention weights
    const attDrop = this.attn_dropout.forward(att);
    const y = matmul(attDrop, values); // (B, nh, T, hs)
    const yT = y.transpose(1, 2); // (B, T, nh, hs)
    const merged = yT.reshape([B, T, C]); // (B, T, C): heads side by side again
    const proj = this.c_proj.forward(merged); // (B, T, C)
    temps.push(kT, scores, scaled, mask, masked, att, attDrop, y, yT, merged, proj);
    return disposeExcept(this.resid_dropout.forward(proj), ...temps);
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
      if (buf.ndim !== 4 || b !== batch || h !== this.nHead || c !== capacity || d !== hs) {
        throw new RangeError(
          `CausalSelfAttention: cache buffers must be (${batch}, ${this.nHead}, capacity, ${hs}), got ${
            fmt(buf.shape)
          }`,
        );
      }
    }
    if (cache.length + t > capacity) {
      throw new RangeError(
        `CausalSelfAttention: ${t} new positions after ${cache.length} cached exceed the cache capacity ${capacity}`,
      );
    }
    return cache.length;
  }
}

/**
 * (T, S) i32: 1 where key j lies in the future of query i, else 0. Query i sits at position
 * past + i, so it sees keys j <= past + i.
 */
function causalMask(t: number, s: number, past: number, device: Device): Tensor {
  return tidy(() => {
    const rows = arange(past, past + t, 1, { device }).view([t, 1]); // (T, 1)
    const cols = arange(s, undefined, 1, { device }).view([1, s]); // (1, S)
    return gt(cols, rows);
  });
}
