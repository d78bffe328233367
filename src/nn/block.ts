/**
 * One GPT-2 transformer block: pre-LayerNorm attention and MLP, each added to the residual stream.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import type { Tensor } from "../tensor.ts";
import { tidy } from "../memory.ts";
import {
  type AttentionCache,
  CausalSelfAttention,
  type CausalSelfAttentionOptions,
} from "./attention.ts";
import { LayerNorm } from "./layer_norm.ts";
import { MLP } from "./mlp.ts";
import { Module } from "./module.ts";
import { MoE, type MoEConfig } from "./moe.ts";

/** Options of {@linkcode Block}. */
export interface BlockOptions {
  /** Dropout on attention weights and both residual branches (default 0). */
  dropout?: number;
  /** Biases in the linear layers (default true). */
  bias?: boolean;
  /** LayerNorm epsilon (default 1e-5). */
  eps?: number;
  /** Where the parameters live (default "cpu"). */
  device?: Device;
  /** Init std of the linear weights (default: PyTorch's uniform init); biases start at 0. */
  std?: number;
  /** Init std of the two output projections, c_proj (default: `std`). */
  projStd?: number;
  /** A mixture of experts instead of the MLP, with this routing (default: the dense MLP). */
  moe?: MoEConfig;
  /** Attention's position scheme, kv heads, window and kernel (default: GPT-2's attention). */
  attention?: Pick<
    CausalSelfAttentionOptions,
    "position" | "rope" | "nKvHeads" | "slidingWindow" | "kernel"
  >;
}

/**
 * `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`, with Hugging Face GPT-2's field names
 * `ln_1`, `attn`, `ln_2`, `mlp`.
 *
 * @example
 * ```ts
 * import { Block, randn } from "@denograd/denograd";
 * const block = new Block(16, 4);
 * console.log(block.forward(randn([2, 5, 16])).shape); // [2, 5, 16]
 * ```
 */
export class Block extends Module {
  /** LayerNorm before attention. */
  ln_1: LayerNorm;
  /** Causal self-attention. */
  attn: CausalSelfAttention;
  /** LayerNorm before the MLP. */
  ln_2: LayerNorm;
  /** Feed-forward part: GPT-2's MLP, or a mixture of experts with the `moe` option. */
  mlp: MLP | MoE;

  /**
   * A block with fresh parameters.
   *
   * @param nEmbd model width C
   * @param nHead attention heads (must divide C)
   */
  constructor(nEmbd: number, nHead: number, options: BlockOptions = {}) {
    super();
    const { eps = 1e-5, device, moe, attention, ...rest } = options;
    this.ln_1 = new LayerNorm(nEmbd, { eps, device });
    this.attn = new CausalSelfAttention(nEmbd, nHead, { device, ...rest, ...attention });
    this.ln_2 = new LayerNorm(nEmbd, { eps, device });
    this.mlp = moe
      ? new MoE(nEmbd, { ...moe, device, ...rest })
      : new MLP(nEmbd, { device, ...rest });
  }

  /**
   * Runs the block on the residual stream.
   *
   * @param x (B, T, C)
   * @param cache this layer's KV cache (inference only), see {@linkcode CausalSelfAttention}
   * @returns (B, T, C)
   */
  forward(x: Tensor, cache?: AttentionCache): Tensor {
    return tidy(() => {
      const x1 = x.add(this.attn.forward(this.ln_1.forward(x), cache)); // (B, T, C) residual
      return x1.add(this.mlp.forward(this.ln_2.forward(x1))); // (B, T, C)
    });
  }
}
