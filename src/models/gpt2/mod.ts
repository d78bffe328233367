/**
 * GPT-2: config presets, the model, its KV cache and sampling.
 * @module
 */

export {
  assertGpt2Layout,
  type AttentionSettings,
  attentionSettings,
  countActiveParameters,
  countParameters,
  GPT2_CONFIG_NAMES,
  type GPT2Config,
  gpt2Config,
  type GPT2ConfigName,
  type PositionScheme,
  validateConfig,
} from "./config.ts";
export {
  type CreateCacheOptions,
  GPT2,
  type GPT2ForwardOptions,
  type GPT2Options,
} from "./model.ts";
export {
  type GPT2MoEConfig,
  moeLayerIndices,
  type MoELayers,
  type MoEShape,
} from "./moe_config.ts";
export { KVCache, type KVCacheOptions } from "./kv_cache.ts";
export { generate, type GenerateOptions } from "./generate.ts";
