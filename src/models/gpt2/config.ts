/**
 * GPT-2 hyperparameters: the four OpenAI sizes, small presets for experiments and tests, checks,
 * and the parameter count a config implies.
 * @module
 */

import { type RopeScaling, validateRopeScaling } from "../../nn/rope.ts";
import { feedForwardParameters, type GPT2MoEConfig, moeLayerIndices } from "./moe_config.ts";

/**
 * How the model knows token positions: GPT-2's learned absolute table ("learned"), rotary
 * embeddings of q and k ("rope"), per-head linear attention biases ("alibi"), or nothing but the
 * causal mask ("none").
 */
export type PositionScheme = "learned" | "rope" | "alibi" | "none";

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
  /** Replace the MLP of some blocks with a mixture of experts (absent: dense, as GPT-2). */
  moe?: GPT2MoEConfig;
  /**
   * Position scheme (default "learned", GPT-2's). With "learned" sequences are limited to
   * contextLength; the others run at any length (contextLength is then the training context).
   */
  position?: PositionScheme;
  /** RoPE's base theta (default 10000); only with position "rope". */
  ropeTheta?: number;
  /** RoPE's context extension (default { type: "none" }); only with position "rope". */
  ropeScaling?: RopeScaling;
  /** Key/value heads (grouped-query attention; must divide nHead; default nHead). */
  nKvHeads?: number;
  /** Each token attends to at most this many most recent positions, itself included (0 = all). */
  slidingWindow?: number;
}

/** A config's attention fields with every default filled in. */
export interface AttentionSettings {
  /** Position scheme. */
  position: PositionScheme;
  /** RoPE's base. */
  ropeTheta: number;
  /** RoPE's context extension. */
  ropeScaling: RopeScaling;
  /** Key/value heads. */
  nKvHeads: number;
  /** Window, 0 = none. */
  slidingWindow: number;
}

/**
 * The attention fields of a config with their defaults (GPT-2's: learned positions, no RoPE,
 * nKvHeads = nHead, no window).
 *
 * @example
 * ```ts
 * import { attentionSettings, gpt2Config } from "@denograd/denograd";
 * console.log(attentionSettings(gpt2Config("small-test")).position); // learned
 * ```
 */
export function attentionSettings(
  config: Pick<
    GPT2Config,
    "nHead" | "position" | "ropeTheta" | "ropeScaling" | "nKvHeads" | "slidingWindow"
  >,
): AttentionSettings {
  return {
    position: config.position ?? "learned",
    ropeTheta: config.ropeTheta ?? 10000,
    ropeScaling: config.ropeScaling ?? { type: "none" },
    nKvHeads: config.nKvHeads ?? config.nHead,
    slidingWindow: config.slidingWindow ?? 0,
  };
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
  if (config.moe !== undefined) moeLayerIndices(config); // checks the moe field
  validateAttention(config);
  return config;
}

const POSITIONS: readonly PositionScheme[] = ["learned", "rope", "alibi", "none"];

function validateAttention(config: GPT2Config): void {
  const { position, ropeTheta, ropeScaling, nKvHeads, slidingWindow } = attentionSettings(config);
  if (!POSITIONS.includes(position)) {
    throw new RangeError(
      `GPT2Config: position must be one of ${
        POSITIONS.map((p) => `"${p}"`).join(", ")
      }, got ${position}`,
    );
  }
  const isRope = position === "rope";
  if (!isRope && (config.ropeTheta !== undefined || config.ropeScaling !== undefined)) {
    throw new RangeError(
      `GPT2Config: ropeTheta and ropeScaling need position "rope", got position "${position}"`,
    );
  }
  if (typeof ropeTheta !== "number" || !(ropeTheta > 1) || !Number.isFinite(ropeTheta)) {
    throw new RangeError(`GPT2Config: ropeTheta must be a finite number > 1, got ${ropeTheta}`);
  }
  validateRopeScaling(ropeScaling, "GPT2Config");
  if (isRope && (config.nEmbd / config.nHead) % 2 !== 0) {
    throw new RangeError(
      `GPT2Config: RoPE needs an even head size, got nEmbd / nHead = ${
        config.nEmbd / config.nHead
      }`,
    );
  }
  if (!Number.isInteger(nKvHeads) || nKvHeads < 1 || config.nHead % nKvHeads !== 0) {
    throw new RangeError(
      `GPT2Config: nKvHeads must be a positive integer dividing nHead ${config.nHead}, got ${nKvHeads}`,
    );
  }
  if (!Number.isInteger(slidingWindow) || slidingWindow < 0) {
    throw new RangeError(
      `GPT2Config: slidingWindow must be an integer >= 0 (0 = no window), got ${slidingWindow}`,
    );
  }
}

/**
 * Throws unless the config has GPT-2's own layout (learned positions, one kv head per head, no
 * window), the only one Hugging Face's GPT-2 files and config.json can hold.
 *
 * @param where the caller, for the message
 * @throws {RangeError} naming each field GPT-2 cannot represent
 * @example
 * ```ts
 * import { assertGpt2Layout, gpt2Config } from "@denograd/denograd";
 * assertGpt2Layout(gpt2Config("gpt2"), "export"); // fine
 * try {
 *   assertGpt2Layout(gpt2Config("gpt2", { position: "rope" }), "export");
 * } catch (e) {
 *   console.log((e as Error).message); // export: ... position "rope" (GPT-2 has "learned")
 * }
 * ```
 */
export function assertGpt2Layout(config: GPT2Config, where: string): void {
  const s = attentionSettings(config);
  const problems: string[] = [];
  if (s.position !== "learned") problems.push(`position "${s.position}" (GPT-2 has "learned")`);
  if (s.nKvHeads !== config.nHead) {
    problems.push(`nKvHeads ${s.nKvHeads} (GPT-2 has one per head, ${config.nHead})`);
  }
  if (s.slidingWindow !== 0) problems.push(`slidingWindow ${s.slidingWindow} (GPT-2 has none)`);
  if (config.moe !== undefined && moeLayerIndices(config).length > 0) {
    problems.push(`moe (GPT-2 blocks have a dense MLP)`);
  }
  if (problems.length) {
    throw new RangeError(
      `${where}: the config cannot be represented as a Hugging Face GPT-2: ${problems.join("; ")}`,
    );
  }
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
  return count(config, false);
}

/**
 * The parameters one token runs through: {@linkcode countParameters} with only `topK` of the
 * experts of each mixture-of-experts block counted (and their routers); the same number for a
 * dense config. What "equal active parameters" compares.
 *
 * @example
 * ```ts
 * import { countActiveParameters, countParameters, gpt2Config } from "@denograd/denograd";
 * const c = gpt2Config("small-test", { moe: { experts: 8, topK: 2 } });
 * console.log(countParameters(c) > countActiveParameters(c)); // true
 * ```
 */
export function countActiveParameters(config: GPT2Config): number {
  return count(config, true);
}

function count(config: GPT2Config, active: boolean): number {
  const { vocabSize: v, contextLength: t, nEmbd: c, nLayer: l, bias } = validateConfig(config);
  const b = bias ? 1 : 0;
  const layerNorm = 2 * c;
  const { position, nKvHeads } = attentionSettings(config);
  const qkv = c + 2 * (c / config.nHead) * nKvHeads; // q (H*D) + k, v (Hkv*D each)
  const attn = c * qkv + b * qkv + c * c + b * c;
  const positions = position === "learned" ? t * c : 0; // only GPT-2's scheme has a table
  const feedForward = feedForwardParameters(config, active); // all blocks' MLPs or experts
  return v * c + positions + l * (2 * layerNorm + attn) + feedForward + layerNorm;
}
