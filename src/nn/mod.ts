/**
 * Layers and GPT-2's building blocks as {@linkcode Module}s.
 * @module
 */

export { type LoadStateDictOptions, Module, parameter } from "./module.ts";
export { Linear, type LinearOptions } from "./linear.ts";
export { Embedding, type EmbeddingOptions } from "./embedding.ts";
export { LayerNorm, type LayerNormOptions } from "./layer_norm.ts";
export { Dropout } from "./dropout.ts";
export { GELU } from "./gelu.ts";
export {
  type AttentionCache,
  CausalSelfAttention,
  type CausalSelfAttentionOptions,
} from "./attention.ts";
export {
  applyRope,
  clearRopeCache,
  type RopeConfig,
  type RopeFrequencies,
  ropeFrequencies,
  type RopeScaling,
  validateRopeScaling,
} from "./rope.ts";
export { alibiSlopes, alibiSlopesTensor } from "./alibi.ts";
export { MLP, type MLPOptions } from "./mlp.ts";
export { Block, type BlockOptions } from "./block.ts";
export { ExpertLinear, Experts } from "./experts.ts";
export {
  mergeMoEStats,
  MoE,
  type MoEConfig,
  type MoELayerStats,
  type MoEOptions,
  type MoERouting,
  type MoEStats,
} from "./moe.ts";
export {
  applyLoRA,
  type ApplyLoRAOptions,
  linearShapes,
  loraLayers,
  LoRALinear,
  loraParameterCount,
  mergeLoRA,
  unmergeLoRA,
} from "./lora.ts";
