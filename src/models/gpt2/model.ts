/**
 * GPT-2 (Radford et al., 2019), as in nanoGPT: token + position embeddings, a stack of pre-LayerNorm
 * transformer blocks, a final LayerNorm, and an output head that reuses the token embedding.
 * The config can swap GPT-2's learned positions for RoPE (with NTK/YaRN/interpolation scaling),
 * ALiBi or none, and add grouped-query attention and a sliding window.
 * Field names follow Hugging Face's `GPT2Model`, so `stateDict()` names are theirs without the
 * `transformer.` prefix (`wte.weight`, `h.0.attn.c_attn.weight`, ..., `ln_f.bias`); our linear
 * weights are (out, in) where their Conv1D stores (in, out).
 * @module
 */

import type { Device } from "../../backend/backend.ts";
import { isGradEnabled } from "../../autograd.ts";
import { tidy } from "../../memory.ts";
import { arange } from "../../ops/creation.ts";
import { linear } from "../../ops/matmul.ts";
import { crossEntropy } from "../../ops/nn.ts";
import { Tensor } from "../../tensor.ts";
import { fmt } from "../../_shape.ts";
import { Block } from "../../nn/block.ts";
import { Dropout } from "../../nn/dropout.ts";
import { Embedding } from "../../nn/embedding.ts";
import { LayerNorm } from "../../nn/layer_norm.ts";
import { Module } from "../../nn/module.ts";
import { MoE, type MoELayerStats } from "../../nn/moe.ts";
import { attentionSettings, type GPT2Config, validateConfig } from "./config.ts";
import { moeLayerIndices } from "./moe_config.ts";
import { KVCache } from "./kv_cache.ts";

/** Options of the {@linkcode GPT2} constructor. */
export interface GPT2Options {
  /** Where the parameters live (default "cpu"). */
  device?: Device;
  /**
   * "fused" (default): the fused scaled-dot-product attention op; "naive": the reference path
   * that materialises the scores (for comparisons). Each block's `attn.kernel` can be changed later.
   */
  attentionKernel?: "fused" | "naive";
}

/** Options of {@linkcode GPT2.createCache}. */
export interface CreateCacheOptions {
  /**
   * Positions the cache holds (default contextLength; more allowed without learned positions,
   * e.g. to decode past the training context).
   */
  capacity?: number;
}

/** Options of {@linkcode GPT2.forward}. */
export interface GPT2ForwardOptions {
  /**
   * Continue a sequence: `idx` holds the tokens at positions [cache.length, cache.length + T),
   * their keys and values are appended, and `cache.length` advances by T. Inference only (run
   * under noGrad()).
   */
  cache?: KVCache;
  /** Compute logits for the last position only: (B, 1, V) (what sampling needs). */
  lastOnly?: boolean;
}

/**
 * The GPT-2 language model. Initialised as GPT-2 was (weights N(0, 0.02²), the residual output
 * projections N(0, (0.02/√(2·nLayer))²), biases 0, LayerNorms 1/0) from the seeded generator.
 *
 * @example
 * ```ts
 * import { GPT2, gpt2Config, manualSeed, tensor } from "@denograd/denograd";
 * manualSeed(0);
 * const model = new GPT2(gpt2Config("small-test"));
 * const idx = tensor([[1, 2, 3], [4, 5, 6]], { dtype: "i32" }); // (B, T)
 * console.log(model.forward(idx).shape); // [2, 3, 64]
 * const loss = model.loss(idx, tensor([[2, 3, 4], [5, 6, -100]], { dtype: "i32" }));
 * loss.backward(); // gradients in model.parameters()
 * ```
 */
export class GPT2 extends Module {
  /** The (validated, frozen) hyperparameters. */
  readonly config: Readonly<GPT2Config>;
  /** Token embedding (V, C); also the output head's weight. */
  wte: Embedding;
  /** Learned position embedding (contextLength, C); null unless config.position is "learned". */
  wpe: Embedding | null;
  /** Dropout on the summed embeddings. */
  drop: Dropout;
  /** The transformer blocks. */
  h: Block[];
  /** Final LayerNorm. */
  ln_f: LayerNorm;
  /**
   * The output head. null (GPT-2's own): tied to the token embedding, logits = x·wteᵀ. A module
   * here replaces it, e.g. LoRA on the tied weight (`applyLoRA` with the target "lm_head").
   */
  lm_head: (Module & { forward(x: Tensor): Tensor }) | null = null;

  /**
   * A model with GPT-2's initialisation, drawn from the seeded generator.
   *
   * @param config e.g. `gpt2Config("gpt2")`
   */
  constructor(config: GPT2Config, options: GPT2Options = {}) {
    super();
    const c = Object.freeze({ ...validateConfig(config) });
    const { device, attentionKernel: kernel = "fused" } = options;
    const std = 0.02;
    // Each block adds two projections into the residual stream; scale them so its variance
    // does not grow with depth (GPT-2 paper, section 2.3).
    const projStd = std / Math.sqrt(2 * c.nLayer);
    this.config = c;
    this.wte = new Embedding(c.vocabSize, c.nEmbd, { device, std });
    const a = attentionSettings(c);
    this.wpe = a.position === "learned"
      ? new Embedding(c.contextLength, c.nEmbd, { device, std })
      : null;
    const attention = {
      position: a.position === "learned" ? "none" as const : a.position,
      rope: { theta: a.ropeTheta, scaling: a.ropeScaling },
      nKvHeads: a.nKvHeads,
      slidingWindow: a.slidingWindow,
      kernel,
    };
    this.drop = new Dropout(c.dropout);
    const moeLayers = new Set(moeLayerIndices(c));
    this.h = Array.from(
      { length: c.nLayer },
      (_, i) =>
        new Block(c.nEmbd, c.nHead, {
          dropout: c.dropout,
          bias: c.bias,
          device,
          std,
          projStd,
          moe: moeLayers.has(i) ? c.moe : undefined,
          attention,
        }),
    );
    this.ln_f = new LayerNorm(c.nEmbd, { device });
  }

  /** The device holding the parameters. */
  get device(): Device {
    return this.wte.weight.device;
  }

  /**
   * Next-token logits for every position.
   *
   * @param idx (B, T) i32 token ids; with learned positions T + (cache length) <= contextLength
   * @returns (B, T, V) logits, or (B, 1, V) with `lastOnly`
   * @throws {RangeError} when the sequence does not fit the context or the cache
   */
  forward(idx: Tensor, options: GPT2ForwardOptions = {}): Tensor {
    return tidy(() => {
      const normed = this.hiddenStates(idx, options); // (B, T', C), T' = 1 with lastOnly
      return this.lm_head // (B, T', V)
        ? this.lm_head.forward(normed)
        : linear(normed, this.wte.weight); // the tied head: wte's weight
    });
  }

  /**
   * The final hidden states: the transformer's output after the final LayerNorm, before the
   * language-model head. Heads other than next-token prediction (a classifier) start here.
   *
   * @param idx (B, T) i32 token ids; with learned positions T + (cache length) <= contextLength
   * @returns (B, T, C), or (B, 1, C) with `lastOnly`
   * @throws {RangeError} when the sequence does not fit the context or the cache
   * @example
   * ```ts
   * import { GPT2, gpt2Config, manualSeed, tensor } from "@denograd/denograd";
   * manualSeed(0);
   * const model = new GPT2(gpt2Config("small-test"));
   * const h = model.hiddenStates(tensor([[1, 2, 3]], { dtype: "i32" }));
   * console.log(h.shape); // [1, 3, 16]
   * ```
   */
  hiddenStates(idx: Tensor, options: GPT2ForwardOptions = {}): Tensor {
    const { cache, lastOnly = false } = options;
    const [B, T] = this.#checkIds("forward", idx);
    const past = cache ? this.#checkCache(cache, B, T) : 0;
    const normed = tidy(() => {
      let x = this.wte.forward(idx); // (B, T, C) token embeddings
      if (this.wpe) {
        const pos = arange(past, past + T, 1, { device: this.device }); // (T) positions
        x = x.add(this.wpe.forward(pos)); // (B, T, C) plus position embeddings
      } // (otherwise positions enter inside attention, if at all)
      x = this.drop.forward(x); // (B, T, C)
      this.h.forEach((block, i) => {
        x = block.forward(x, cache?.layer(i)); // (B, T, C)
      });
      const last = lastOnly ? x.narrow(1, T - 1, 1) : x; // (B, T', C), T' = 1 with lastOnly
      return this.ln_f.forward(last); // (B, T', C)
    });
    cache?.advance(T);
    return normed;
  }

  /**
   * Mean cross-entropy of the next-token predictions; in training mode plus the weighted router
   * losses (load balancing, z-loss) of the mixture-of-experts blocks, if any. In eval mode it is
   * the cross-entropy alone, comparable with a dense model's.
   *
   * @param idx (B, T) i32 inputs
   * @param targets (B, T) i32 next tokens; -100 marks positions to ignore
   * @returns a scalar
   */
  loss(idx: Tensor, targets: Tensor): Tensor {
    const [B, T] = this.#checkIds("loss", idx);
    if (!(targets instanceof Tensor) || targets.dtype !== "i32") {
      throw new TypeError(`GPT2.loss: targets must be an i32 Tensor`);
    }
    if (targets.ndim !== 2 || targets.shape[0] !== B || targets.shape[1] !== T) {
      throw new RangeError(
        `GPT2.loss: targets ${fmt(targets.shape)} must have the inputs' shape ${fmt(idx.shape)}`,
      );
    }
    return tidy(() => {
      let loss = crossEntropy(this.forward(idx), targets); // ()
      for (const block of this.h) {
        const router = block.mlp instanceof MoE ? block.mlp.takeRouterLoss() : null;
        if (!router) continue;
        loss = loss.add(router); // () plus the MoE block's router losses
        router.dispose(); // taken, so no tidy scope holds it
      }
      return loss;
    });
  }

  /**
   * What each mixture-of-experts block routed in the last forward: tokens per expert, dropped
   * choices, the router losses' values. Empty for a dense model (or before the first forward).
   *
   * @returns one entry per MoE block, with its block index
   * @example
   * ```ts
   * import { GPT2, gpt2Config, manualSeed, tensor } from "@denograd/denograd";
   * manualSeed(0);
   * const model = new GPT2(gpt2Config("small-test", { moe: { experts: 4, topK: 1 } }));
   * model.forward(tensor([[1, 2, 3]], { dtype: "i32" }));
   * console.log(model.moeStats().map((s) => s.tokensPerExpert.length)); // [4, 4]
   * ```
   */
  moeStats(): MoELayerStats[] {
    const out: MoELayerStats[] = [];
    this.h.forEach((block, layer) => {
      const stats = block.mlp instanceof MoE ? block.mlp.stats : null;
      if (stats) out.push({ layer, ...stats });
    });
    return out;
  }

  /**
   * A KV cache sized for this model on its device; pass it to `forward` (under noGrad) and
   * `dispose()` it when done.
   *
   * @param batch sequences decoded together
   */
  createCache(batch: number, options: CreateCacheOptions = {}): KVCache {
    return new KVCache(this.config, batch, { device: this.device, capacity: options.capacity });
  }

  #checkIds(op: string, idx: Tensor): [number, number] {
    if (!(idx instanceof Tensor)) throw new TypeError(`GPT2.${op}: idx must be a Tensor`);
    if (idx.dtype !== "i32") {
      throw new TypeError(`GPT2.${op}: idx must be i32 token ids, got ${idx.dtype}`);
    }
    if (idx.ndim !== 2 || idx.shape[0] < 1 || idx.shape[1] < 1) {
      throw new RangeError(`GPT2.${op}: idx must be (B, T) with B, T >= 1, got ${fmt(idx.shape)}`);
    }
    if (this.wpe && idx.shape[1] > this.config.contextLength) {
      throw new RangeError(
        `GPT2.${op}: sequence length ${
          idx.shape[1]
        } exceeds contextLength ${this.config.contextLength}`,
      );
    }
    return [idx.shape[0], idx.shape[1]];
  }

  #checkCache(cache: KVCache, batch: number, t: number): number {
    if (!(cache instanceof KVCache)) throw new TypeError("GPT2.forward: cache must be a KVCache");
    if (isGradEnabled() && this.wte.weight.requiresGrad) {
      throw new TypeError(
        "GPT2.forward: a forward with a KV cache is inference-only; run it under noGrad()",
      );
    }
    if (cache.nLayer !== this.config.nLayer || cache.batch !== batch) {
      throw new RangeError(
        `GPT2.forward: the cache holds ${cache.nLayer} layers x batch ${cache.batch}, the call needs ${this.config.nLayer} x ${batch}`,
      );
    }
    if (this.wpe && cache.length + t > this.config.contextLength) {
      throw new RangeError(
        `GPT2.forward: ${t} new tokens after ${cache.length} cached exceed the context of ${this.config.contextLength} learned positions`,
      );
    }
    if (!cache.reserve(t)) {
      throw new RangeError(
        `GPT2.forward: ${t} new tokens after ${cache.length} cached exceed the context of ${cache.capacity}`,
      );
    }
    return cache.length;
  }
}
