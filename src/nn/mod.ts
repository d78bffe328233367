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
export { MLP, type MLPOptions } from "./mlp.ts";
export { Block, type BlockOptions } from "./block.ts";
