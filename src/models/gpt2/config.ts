/**
 * GPT-2 hyperparameters: the four OpenAI sizes, small presets for experiments and tests, checks,
 * and the parameter count a config implies.
 * @module
 */

/** The shape of a GPT-2 model. */
export interface GPT2Config {
  /** Number of token ids (50257 for GPT-2's BPE). */
  vocabSize: number;
  /** Longest sequence (number of learned positions). */
  contextLength: number;
  /** Model width C. */
  nEmbd: number;
  /** Number of transformer blocks. */
  nLayer: number;
  /** Attention heads per block (must divide nEmbd). */
  nHead: number;
  /** Dropout on embeddings, attention weights and residual branches (0 to disable). */
  dropout: number;
  /** Biases in the linear layers (q/k/v, projections, MLP); GPT-2 has them. */
  bias: boolean;
}

/** Names accepted by {@linkcode gpt2Config}. */
export type GPT2ConfigName =
  | "gpt2"
  | "gpt2-medium"
  | "gpt2-large"
  | "gpt2-xl"
  | "tiny"
  | "small-test";

const GPT2_VOCAB = 50257;

const PRESETS: Record<GPT2ConfigName, GPT2Config> = {
  // OpenAI's released sizes (Hugging Face's dropout 0.1; eval() turns it off).
  "gpt2": preset(768, 12, 12), // 124M
  "gpt2-medium": preset(1024, 24, 16), // 350M
  "gpt2-large": preset(1280, 36, 20), // 774M
  "gpt2-xl": preset(1600, 48, 25), // 1558M
  // GPT-2's tokenizer with a small body: trains on a CPU in minutes.
  "tiny": {
    vocabSize: GPT2_VOCAB,
    contextLength: 256,
    nEmbd: 128,
    nLayer: 4,
    nHead: 4,
    dropout: 0,
    bias: true,
  },
  // A few thousand parameters for unit tests (tests/fixtures/gpt2_tiny.* use it).
  "small-test": {
    vocabSize: 64,
    contextLength: 16,
    nEmbd: 16,
    nLayer: 2,
    nHead: 4,
    dropout: 0,
    bias: true,
  },
};

function preset(nEmbd: number, nLayer: number, nHead: number): GPT2Config {
  return {
    vocabSize: GPT2_VOCAB,
    contextLength: 1024,
    nEmbd,
    nLayer,
    nHead,
    dropout: 0.1,
    bias: true,
  };
}

/** Every preset name. */
export const GPT2_CONFIG_NAMES: readonly GPT2ConfigName[] = Object.freeze(
  Object.keys(PRESETS) as GPT2ConfigName[],
);

/**
 * A preset config by name (a fresh copy), with optional overrides.
 *
 * @param name "gpt2" (124M), "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny" or "small-test"
 * @param overrides fields to change, e.g. `{ dropout: 0 }`
 * @returns the validated config
 * @throws {RangeError} for an unknown name (the message lists the valid ones) or a bad override
 * @example
 * ```ts
 * import { gpt2Config } from "@denograd/denograd";
 * const c = gpt2Config("gpt2", { dropout: 0 });
 * console.log(c.nLayer, c.nEmbd); // 12 768
 * ```
 */
export function gpt2Config(
  name: GPT2ConfigName,
  overrides: Partial<GPT2Config> = {},
): GPT2Config {
  if (!Object.hasOwn(PRESETS, name)) {
    throw new RangeError(
      `gpt2Config: unknown config "${name}"; expected one of ${
        GPT2_CONFIG_NAMES.map((n) => `"${n}"`).join(", ")
      }`,
    );
  }
  return validateConfig({ ...PRESETS[name], ...overrides });
}

/**
 * Checks every field of a config (types, ranges, nHead dividing nEmbd).
 *
 * @returns the same config
 * @throws {TypeError} for a missing or non-numeric field, {RangeError} for a bad value
 */
export function validateConfig(config: GPT2Config): GPT2Config {
  if (typeof config !== "object" || config === null) {
    throw new TypeError(`GPT2Config: expected an object, got ${config}`);
  }
  for (const key of ["vocabSize", "contextLength", "nEmbd", "nLayer", "nHead"] as const) {
    const v = config[key];
    if (typeof v !== "number") throw new TypeError(`GPT2Config: ${key} must be a number, got ${v}`);
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`GPT2Config: ${key} must be a positive integer, got ${v}`);
    }
  }
  if (typeof config.dropout !== "number" || !(config.dropout >= 0 && config.dropout < 1)) {
    throw new RangeError(`GPT2Config: dropout must be in [0, 1), got ${config.dropout}`);
  }
  if (typeof config.bias !== "boolean") {
    throw new TypeError(`GPT2Config: bias must be a boolean, got ${config.bias}`);
  }
  if (config.nEmbd % config.nHead !== 0) {
    throw new RangeError(
      `GPT2Config: nHead ${config.nHead} must divide nEmbd ${config.nEmbd}`,
    );
  }
  return config;
}

/**
 * The number of trainable parameters a config implies (the output head is tied to the token
 * embedding, so it is counted once), without building the model.
 *
 * @example
 * ```ts
 * import { countParameters, gpt2Config } from "@denograd/denograd";
 * console.log(countParameters(gpt2Config("gpt2"))); // 124439808
 * ```
 */
export function countParameters(config: GPT2Config): number {
  const { vocabSize: v, contextLength: t, nEmbd: c, nLayer: l, bias } = validateConfig(config);
  const b = bias ? 1 : 0;
  const layerNorm = 2 * c;
  const attn = c * 3 * c + b * 3 * c + c * c + b * c;
  const mlp = c * 4 * c + b * 4 * c + 4 * c * c + b * c;
  return v * c + t * c + l * (2 * layerNorm + attn + mlp) + layerNorm;
}
