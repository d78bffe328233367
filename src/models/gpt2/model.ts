/**
 * GPT-2 (Radford et al., 2019), as in nanoGPT: token + position embeddings, a stack of pre-LayerNorm
 * transformer blocks, a final LayerNorm, and an output head that reuses the token embedding.
 * Field names follow Hugging Face's `GPT2Model`, so `stateDict()` names are theirs without the
 * `transformer.` prefix (`wte.weight`, `h.0.attn.c_attn.weight`, ..., `ln_f.bias`); our linear
 * weights are (out, in) where their Conv1D stores (in, out).
 * @module
 */

import type { Device } from "../../backend/backend.ts";
import { isGradEnabled } from "../../autograd.ts";
import { arange } from "../../ops/creation.ts";
import { linear } from "../../ops/matmul.ts";
import { crossEntropy } from "../../ops/nn.ts";
import { Tensor } from "../../tensor.ts";
import { fmt } from "../../_shape.ts";
import { disposeExcept } from "../../nn/_dispose.ts";
import { Block } from "../../nn/block.ts";
import { Dropout } from "../../nn/dropout.ts";
import { Embedding } from "../../nn/embedding.ts";
import { LayerNorm } from "../../nn/layer_norm.ts";
import { Module } from "../../nn/module.ts";
import { type GPT2Config, validateConfig } from "./config.ts";
import { KVCache } from "./kv_cache.ts";

/** Options of the {@linkcode GPT2} constructor. */
export interface GPT2Options {
  /** Where the parameters live (default "cpu"). */
  device?: Device;
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
  /** Learned position embedding (contextLength, C). */
  wpe: Embedding;
  /** Dropout on the summed embeddings. */
  drop: Dropout;
  /** The transformer blocks. */
  h: Block[];
  /** Final LayerNorm. */
  ln_f: LayerNorm;

  /**
   * A model with GPT-2's initialisation, drawn from the seeded generator.
   *
   * @param config e.g. `gpt2Config("gpt2")`
   */
  constructor(config: GPT2Config, options: GPT2Options = {}) {
    super();
    const c = Object.freeze({ ...validateConfig(config) });
    const { device } = options;
    const std = 0.02;
    // Each block adds two projections into the residual stream; scale them so its variance
    // does not grow with depth (GPT-2 paper, section 2.3).
    const projStd = std / Math.sqrt(2 * c.nLayer);
    this.config = c;
    this.wte = new Embedding(c.vocabSize, c.nEmbd, { device, std });
    this.wpe = new Embedding(c.contextLength, c.nEmbd, { device, std });
    this.drop = new Dropout(c.dropout);
    this.h = Array.from(
      { length: c.nLayer },
      () => new Block(c.nEmbd, c.nHead, { dropout: c.dropout, bias: c.bias, device, std, projStd }),
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
   * @param idx (B, T) i32 token ids, T + (cache length) <= contextLength
   * @returns (B, T, V) logits, or (B, 1, V) with `lastOnly`
   * @throws {RangeError} when the sequence does not fit the context or the cache
   */
  forward(idx: Tensor, options: GPT2ForwardOptions = {}): Tensor {
    const { cache, lastOnly = false } = options;
    const [B, T] = this.#checkIds("forward", idx);
    const past = cache ? this.#checkCache(cache, B, T) : 0;
    const pos = arange(past, past + T, 1, { device: this.device }); // (T) positions
    const tok = this.wte.forward(idx); // (B, T, C) token embeddings
    const posEmb = this.wpe.forward(pos); // (T, C) position embeddings
    const sum = tok.add(posEmb); // (B, T, C)
    let x = this.drop.forward(sum); // (B, T, C)
    disposeExcept(x, pos, tok, posEmb, sum);
    this.h.forEach((block, i) => {
      const next = block.forward(x, cache?.layer(i)); // (B, T, C)
      x.dispose();
      x = next;
    });
    const last = lastOnly ? x.narrow(1, T - 1, 1) : x; // (B, T', C), T' = 1 with lastOnly
    const normed = this.ln_f.forward(last); // (B, T', C)
    const logits = linear(normed, this.wte.weight); // (B, T', V): the head shares wte's weight
    disposeExcept(logits, x, last, normed);
    cache?.advance(T);
    return logits;
  }

  /**
   * Mean cross-entropy of the next-token predictions.
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
    const logits = this.forward(idx); // (B, T, V)
    const loss = crossEntropy(logits, targets);
    logits.dispose();
    return loss;
  }

  /**
   * A KV cache sized for this model on its device; pass it to `forward` (under noGrad) and
   * `dispose()` it when done.
   *
   * @param batch sequences decoded together
   */
  createCache(batch: number): KVCache {
    return new KVCache(this.config, batch, { device: this.device });
  }

  #checkIds(op: string, idx: Tensor): [number, number] {
    if (!(idx instanceof Tensor)) throw new TypeError(`GPT2.${op}: idx must be a Tensor`);
    if (idx.dtype !== "i32") {
      throw new TypeError(`GPT2.${op}: idx must be i32 token ids, got ${idx.dtype}`);
    }
    if (idx.ndim !== 2 || idx.shape[0] < 1 || idx.shape[1] < 1) {
      throw new RangeError(`GPT2.${op}: idx must be (B, T) with B, T >= 1, got ${fmt(idx.shape)}`);
    }
    if (idx.shape[1] > this.config.contextLength) {
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
    if (cache.length + t > cache.capacity) {
      throw new RangeError(
        `GPT2.forward: ${t} new tokens after ${cache.length} cached exceed the context of ${cache.capacity}`,
      );
    }
    return cache.length;
  }
}
