/**
 * GPT-2 with mixture-of-experts blocks: the `moe` field of a {@linkcode GPT2Config}, which blocks
 * it applies to, and the parameter counts it implies (total, and active per token).
 * @module
 */

import { type MoEConfig, resolveMoEConfig } from "../../nn/moe.ts";

/**
 * Which blocks get a mixture of experts instead of the MLP: every block, every other block
 * (1, 3, 5, ...: the first block stays dense, as in GShard and the Switch Transformer), or the
 * listed block indices.
 */
export type MoELayers = "all" | "every-other" | readonly number[];

/** The `moe` field of a {@linkcode GPT2Config}: routing hyperparameters plus the blocks. */
export interface GPT2MoEConfig extends MoEConfig {
  /** The blocks whose MLP becomes a mixture of experts (default "all"). */
  layers?: MoELayers;
}

/**
 * The parts of a {@linkcode GPT2Config} the mixture-of-experts layout depends on (a structural
 * type, so this file does not import the config's).
 */
export interface MoEShape {
  /** Embedding width. */
  nEmbd: number;
  /** Transformer blocks. */
  nLayer: number;
  /** Biases in the linear layers. */
  bias?: boolean;
  /** The mixture-of-experts settings, if any. */
  moe?: GPT2MoEConfig;
}

/**
 * The block indices that hold a mixture of experts (ascending); empty without `config.moe`.
 * Checks the `moe` field (defaults filled in), throwing what {@linkcode validateConfig} throws.
 *
 * @example
 * ```ts
 * import { gpt2Config, moeLayerIndices } from "@denograd/denograd";
 * const c = gpt2Config("tiny", { moe: { experts: 4, layers: "every-other" } });
 * console.log(moeLayerIndices(c)); // [1, 3]
 * ```
 */
export function moeLayerIndices(config: MoEShape): number[] {
  const moe = config.moe;
  if (moe === undefined) return [];
  resolveMoEConfig("GPT2Config: moe", moe, config.nEmbd);
  const layers = moe.layers ?? "all";
  const all = Array.from({ length: config.nLayer }, (_, i) => i);
  if (layers === "all") return all;
  if (layers === "every-other") {
    if (config.nLayer < 2) {
      throw new RangeError(
        `GPT2Config: moe.layers "every-other" selects no block of a ${config.nLayer}-layer model`,
      );
    }
    return all.filter((i) => i % 2 === 1);
  }
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new TypeError(
      `GPT2Config: moe.layers must be "all", "every-other" or a non-empty array of block ` +
        `indices, got ${JSON.stringify(layers)}`,
    );
  }
  for (const i of layers) {
    if (!Number.isInteger(i) || i < 0 || i >= config.nLayer) {
      throw new RangeError(
        `GPT2Config: moe.layers entries must be block indices in [0, ${config.nLayer}), got ${i}`,
      );
    }
  }
  if (new Set(layers).size !== layers.length) {
    throw new RangeError(`GPT2Config: moe.layers repeats a block: ${JSON.stringify(layers)}`);
  }
  return [...layers].sort((a, b) => a - b);
}

/**
 * Parameters of all the feed-forward parts (dense MLPs and mixtures of experts) of a config:
 * every expert when `active` is false, only the k experts a token runs through when true.
 * @internal
 */
export function feedForwardParameters(config: MoEShape, active: boolean): number {
  const { nEmbd: c, nLayer, bias } = config;
  const b = bias ? 1 : 0;
  const mlp = (hidden: number) => c * hidden + b * hidden + hidden * c + b * c;
  const moeBlocks = moeLayerIndices(config).length;
  let total = (nLayer - moeBlocks) * mlp(4 * c);
  if (moeBlocks > 0) {
    const { experts, topK, hidden } = resolveMoEConfig("GPT2Config: moe", config.moe!, c);
    const router = experts * c;
    total += moeBlocks * (router + (active ? topK : experts) * mlp(hidden));
  }
  return total;
}
