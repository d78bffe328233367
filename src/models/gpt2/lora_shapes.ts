/**
 * GPT-2's linear layers as LoRA sees them, from the config alone (no weights allocated).
 * @module
 */

import type { LinearShape } from "../../nn/lora.ts";
import { type GPT2Config, validateConfig } from "./config.ts";

/**
 * The linear layers of a {@linkcode GPT2} built from `config`, in the model's tree order, with
 * the tied head `lm_head` (C -> V) last: what `linearShapes(new GPT2(config))` returns, without
 * building the model. Dense configs only (no `moe`). Feed it to `loraParameterCount` to size an adapter for GPT-2 124M or larger.
 *
 * @param config the model's hyperparameters
 * @returns one entry per linear layer
 * @example
 * ```ts
 * import { gpt2Config, gpt2LinearShapes, loraParameterCount } from "@denograd/denograd";
 * const shapes = gpt2LinearShapes(gpt2Config("gpt2"));
 * console.log(loraParameterCount(shapes, { targets: ["attn.c_attn"], rank: 8 })); // 12·8·(768+2304) = 294912
 * ```
 */
export function gpt2LinearShapes(config: GPT2Config): LinearShape[] {
  const { nLayer, nEmbd: c, vocabSize, moe } = validateConfig(config);
  if (moe !== undefined) {
    throw new RangeError(
      "gpt2LinearShapes: the config has mixture-of-experts blocks, whose experts are not Linear " +
        "layers; build the model and use linearShapes(model)",
    );
  }
  const out: LinearShape[] = [];
  for (let i = 0; i < nLayer; i++) {
    const layer = (name: string, inFeatures: number, outFeatures: number) =>
      out.push({ name: `h.${i}.${name}`, inFeatures, outFeatures });
    layer("attn.c_attn", c, 3 * c);
    layer("attn.c_proj", c, c);
    layer("mlp.c_fc", c, 4 * c);
    layer("mlp.c_proj", 4 * c, c);
  }
  out.push({ name: "lm_head", inFeatures: c, outFeatures: vocabSize });
  return out;
}
