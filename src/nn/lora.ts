/**
 * LoRA (Hu et al., 2021): a frozen linear layer plus a trainable low-rank update,
 * `y = x·Wᵀ + b + (alpha/rank)·dropout(x)·Aᵀ·Bᵀ` with A (rank, in) and B (out, rank). B starts at
 * zero, so a wrapped model computes exactly what the base model did until training moves B.
 * {@linkcode applyLoRA} wraps layers of any module tree by name pattern; adapters are saved and
 * loaded on their own (a few MB instead of the whole model).
 * @module
 */

import { noGrad } from "../autograd.ts";
import { tidy } from "../memory.ts";
import { zeros } from "../ops/creation.ts";
import { linear, matmul } from "../ops/matmul.ts";
import { Tensor } from "../tensor.ts";
import { Dropout } from "./dropout.ts";
import { Linear, uniformParameter } from "./linear.ts";
import { Module, parameter } from "./module.ts";

/** Hyperparameters of a LoRA update. */
export interface LoRAConfig {
  /** Rank r of the update (the inner size of B·A). */
  rank: number;
  /** The update is scaled by alpha / rank (default: rank, i.e. scaling 1). */
  alpha?: number;
  /** Dropout on the LoRA path's input (default 0). */
  dropout?: number;
}

/** What LoRALinear wraps: a weight (out, in) in PyTorch's layout and an optional bias. */
export interface LinearLike {
  /** (out, in). */
  weight: Tensor;
  /** (out), or null. */
  bias: Tensor | null;
}

/** Options of {@linkcode LoRALinear} besides the config. */
export interface LoRALinearOptions extends LoRAConfig {
  /**
   * The name of another tensor the base weight is (weight tying, e.g. "wte.weight" for GPT-2's
   * head). Merging is refused for such a layer: it would change that tensor's other use too.
   */
  tiedTo?: string;
}

function checkConfig(where: string, c: LoRAConfig): Required<LoRAConfig> {
  if (typeof c !== "object" || c === null) throw new TypeError(`${where}: options are required`);
  const { rank, alpha = rank, dropout = 0 } = c;
  if (!Number.isInteger(rank) || rank < 1) {
    throw new RangeError(`${where}: rank must be a positive integer, got ${rank}`);
  }
  if (typeof alpha !== "number" || !Number.isFinite(alpha) || alpha <= 0) {
    throw new RangeError(`${where}: alpha must be a finite number > 0, got ${alpha}`);
  }
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    throw new RangeError(`${where}: dropout must be in [0, 1), got ${dropout}`);
  }
  return { rank, alpha, dropout };
}

/**
 * A linear layer with a frozen base weight and a trainable low-rank update. The base `weight`
 * and `bias` keep their field names (so a wrapped model's state-dict names for them do not
 * change) and have requiresGrad off; `lora_A` (rank, in) is drawn like PyTorch's
 * `kaiming_uniform_(a=√5)` (uniform in ±1/√in, what the LoRA reference code and peft use) and
 * `lora_B` (out, rank) starts at zero.
 *
 * @example
 * ```ts
 * import { Linear, LoRALinear, randn } from "@denograd/denograd";
 * const base = new Linear(8, 4);
 * const x = randn([2, 8]);
 * const before = base.forward(x).toArray();
 * const lora = new LoRALinear(base, { rank: 2, alpha: 4 });
 * console.log(lora.forward(x).toArray()); // equals `before`: B starts at zero
 * console.log(lora.numParameters()); // 24 = 2·8 (A) + 4·2 (B)
 * ```
 */
export class LoRALinear extends Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** Rank of the update. */
  readonly rank: number;
  /** Scale numerator: the update is multiplied by alpha / rank. */
  readonly alpha: number;
  /** alpha / rank. */
  readonly scaling: number;
  /** Dropout probability on the LoRA input. */
  readonly dropoutP: number;
  /** Name of the tensor the base weight is tied to, or null. */
  readonly tiedTo: string | null;
  /** The base weight (out, in), frozen. */
  weight: Tensor;
  /** The base bias (out) or null, frozen. */
  bias: Tensor | null;
  /** (rank, in): projects the input down. */
  lora_A: Tensor;
  /** (out, rank): projects back up; zero at init. */
  lora_B: Tensor;
  /** Dropout on the input of the LoRA path only. */
  lora_dropout: Dropout;
  #merged = false;

  /**
   * Wraps `base` (its tensors are reused, not copied, and frozen).
   *
   * @param base a {@linkcode Linear} or anything with `weight` (out, in) and `bias`
   * @param options rank, alpha (default rank), dropout (default 0)
   */
  constructor(base: LinearLike, options: LoRALinearOptions) {
    super();
    if (
      typeof base !== "object" || base === null || !(base.weight instanceof Tensor) ||
      base.weight.ndim !== 2
    ) {
      throw new TypeError("LoRALinear: base must be a Linear (a 2-D weight (out, in) and a bias)");
    }
    if (base.bias !== null && !(base.bias instanceof Tensor)) {
      throw new TypeError("LoRALinear: base.bias must be a Tensor or null");
    }
    const { rank, alpha, dropout } = checkConfig("LoRALinear", options);
    const [out, inF] = base.weight.shape;
    const device = base.weight.device;
    this.inFeatures = inF;
    this.outFeatures = out;
    this.rank = rank;
    this.alpha = alpha;
    this.scaling = alpha / rank;
    this.dropoutP = dropout;
    this.tiedTo = options.tiedTo ?? null;
    this.weight = base.weight;
    this.bias = base.bias;
    for (const t of [this.weight, this.bias]) {
      if (t) {
        t.zeroGrad();
        t.requiresGrad = false;
      }
    }
    this.lora_A = uniformParameter([rank, inF], 1 / Math.sqrt(inF), device); // (r, in)
    this.lora_B = parameter(zeros([out, rank], { device })); // (out, r)
    this.lora_dropout = new Dropout(dropout);
  }

  /** Whether the update is currently folded into `weight`. */
  get merged(): boolean {
    return this.#merged;
  }

  /**
   * Applies the layer.
   *
   * @param x (..., in)
   * @returns (..., out)
   */
  forward(x: Tensor): Tensor {
    const base = linear(x, this.weight, this.bias); // (..., out)
    if (this.#merged) return base;
    const xd = this.lora_dropout.forward(x); // (..., in)
    const down = linear(xd, this.lora_A); // (..., r)
    // Scaling the r-wide activation instead of the out-wide one costs out/r times less.
    const scaled = down.mul(this.scaling); // (..., r)
    const up = linear(scaled, this.lora_B); // (..., out)
    const y = base.add(up); // (..., out)
    if (xd !== x) xd.dispose();
    for (const t of [base, down, scaled, up]) t.dispose();
    return y;
  }

  /**
   * The update (alpha/rank)·B·A as a new (out, in) tensor, without gradient.
   *
   * @returns a tensor the caller owns
   */
  delta(): Tensor {
    // (out, r) @ (r, in) -> (out, in)
    return noGrad(() => tidy(() => matmul(this.lora_B, this.lora_A).mul(this.scaling)));
  }

  /**
   * Folds the update into the base weight (W += (alpha/rank)·B·A), so the forward costs what the
   * base layer's does; {@linkcode LoRALinear.unmerge} takes it out again. Equal outputs up to
   * float rounding.
   *
   * @throws {TypeError} when already merged or the weight is tied to another tensor
   */
  merge(): void {
    this.#fold("merge", 1);
    this.#merged = true;
  }

  /** Takes a merged update back out of the base weight (W -= (alpha/rank)·B·A). */
  unmerge(): void {
    this.#fold("unmerge", -1);
    this.#merged = false;
  }

  #fold(op: "merge" | "unmerge", sign: 1 | -1): void {
    if (this.#merged !== (sign === -1)) {
      throw new TypeError(
        `LoRALinear.${op}: the update is ${this.#merged ? "already" : "not"} merged`,
      );
    }
    if (this.tiedTo !== null) {
      throw new TypeError(
        `LoRALinear.${op}: the base weight is tied to "${this.tiedTo}"; merging would change that ` +
          `use of it too, so this layer always runs its update separately`,
      );
    }
    const delta = this.delta();
    noGrad(() =>
      tidy(() => this.weight.assign(sign > 0 ? this.weight.add(delta) : this.weight.sub(delta)))
    );
    delta.dispose();
  }
}

// ---- applying LoRA to a tree by name ----

/** Options of {@linkcode applyLoRA}. */
export interface ApplyLoRAOptions extends LoRAConfig {
  /**
   * Which linear layers to wrap, as dotted-name patterns matched against the end of each layer's
   * path: `"attn.c_attn"` matches `h.0.attn.c_attn`, `h.1.attn.c_attn`, ...; `*` matches within
   * one name segment (`"mlp.*"` is every linear layer of every MLP, `"*"` every linear layer).
   * `"lm_head"` names GPT-2's output head, which has no Linear of its own (see
   * {@linkcode applyLoRA}). Every pattern must match something.
   */
  targets: readonly string[];
}

/** What {@linkcode applyLoRA} did. */
export interface LoRAReport {
  /** Paths of the wrapped layers, in tree order. */
  names: string[];
  /** The new layers, in the same order. */
  layers: LoRALinear[];
  /** Trainable scalars of the model after wrapping (only A and B unless unfrozen since). */
  trainableParameters: number;
  /** All scalars of the model, frozen ones included (each tied tensor once). */
  totalParameters: number;
}

/** A linear layer's place and size, what LoRA targeting looks at. */
export interface LinearShape {
  /** Dotted path in the module tree. */
  name: string;
  /** Input features. */
  inFeatures: number;
  /** Output features. */
  outFeatures: number;
}

/** The name of GPT-2's tied output head as a LoRA target. */
export const TIED_HEAD = "lm_head";

/** A GPT-2-style model whose output head is its token embedding (no `lm_head` module yet). */
export interface TiedHeadModel extends Module {
  lm_head: Module | null;
  wte: { weight: Tensor };
}

/** The model, when its output head is its token embedding; null otherwise (for adapter files). */
export function tiedHead(m: Module): TiedHeadModel | null {
  const c = m as Partial<TiedHeadModel>;
  return "lm_head" in m && c.lm_head === null && c.wte?.weight instanceof Tensor
    ? m as TiedHeadModel
    : null;
}

function patternRegex(pattern: string): RegExp {
  const seg = pattern.split(".").map((s) =>
    s.split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[^.]*")
  );
  return new RegExp(`(^|\\.)${seg.join("\\.")}$`);
}

/**
 * The linear layers LoRA can target in `model`: every {@linkcode Linear} (and already wrapped
 * {@linkcode LoRALinear}) by path, plus `lm_head` for a GPT-2 whose head is tied to `wte`.
 *
 * @returns names and sizes in tree order
 * @example
 * ```ts
 * import { GPT2, gpt2Config, linearShapes } from "@denograd/denograd";
 * const shapes = linearShapes(new GPT2(gpt2Config("small-test")));
 * console.log(shapes.length, shapes[0], shapes.at(-1)); // 9 { name: "h.0.attn.c_attn", inFeatures: 16, outFeatures: 48 } { name: "lm_head", ... }
 * ```
 */
export function linearShapes(model: Module): LinearShape[] {
  if (!(model instanceof Module)) throw new TypeError("linearShapes: model must be a Module");
  const out: LinearShape[] = [];
  for (const [name, m] of model.namedModules()) {
    if (m instanceof Linear || m instanceof LoRALinear) {
      out.push({ name, inFeatures: m.inFeatures, outFeatures: m.outFeatures });
    }
  }
  const tied = tiedHead(model);
  if (tied) {
    const [v, c] = tied.wte.weight.shape;
    out.push({ name: TIED_HEAD, inFeatures: c, outFeatures: v });
  }
  return out;
}

/**
 * The layers of `shapes` that `targets` select (see {@linkcode ApplyLoRAOptions.targets}).
 *
 * @param shapes the candidates, e.g. from {@linkcode linearShapes}
 * @param targets name patterns
 * @param where the caller's name for error messages
 * @returns the selected shapes, in the given order
 * @throws {RangeError} naming a pattern that matches nothing, and listing the candidates
 * @example
 * ```ts
 * import { selectLoRATargets } from "@denograd/denograd";
 * const shapes = ["h.0.attn.c_proj", "h.0.mlp.c_fc", "h.0.mlp.c_proj"]
 *   .map((name) => ({ name, inFeatures: 4, outFeatures: 4 }));
 * console.log(selectLoRATargets(shapes, ["mlp.*"]).map((s) => s.name)); // ["h.0.mlp.c_fc", "h.0.mlp.c_proj"]
 * console.log(selectLoRATargets(shapes, ["c_proj"]).length); // 2: both c_proj layers
 * ```
 */
export function selectLoRATargets(
  shapes: readonly LinearShape[],
  targets: readonly string[],
  where = "selectLoRATargets",
): LinearShape[] {
  if (
    !Array.isArray(targets) || targets.length === 0 ||
    targets.some((t) => typeof t !== "string" || t === "")
  ) {
    throw new TypeError(`${where}: targets must be a non-empty array of name patterns`);
  }
  const regexes = targets.map(patternRegex);
  for (let i = 0; i < targets.length; i++) {
    if (!shapes.some((s) => regexes[i].test(s.name))) {
      throw new RangeError(
        `${where}: target "${targets[i]}" matches no linear layer; the linear layers are: ${
          shapes.map((s) => s.name).join(", ") || "(none)"
        }`,
      );
    }
  }
  return shapes.filter((s) => regexes.some((r) => r.test(s.name)));
}

/**
 * Trainable scalars that LoRA with `options` adds to layers of these sizes: rank·(in + out) per
 * wrapped layer. Needs only the shapes, so it answers for models too large to build.
 *
 * @param shapes e.g. {@linkcode linearShapes}(model) or `gpt2LinearShapes(config)`
 * @returns the parameter count
 * @example
 * ```ts
 * import { loraParameterCount } from "@denograd/denograd";
 * const shapes = [{ name: "fc", inFeatures: 768, outFeatures: 3072 }];
 * console.log(loraParameterCount(shapes, { targets: ["fc"], rank: 16 })); // 61440
 * ```
 */
export function loraParameterCount(
  shapes: readonly LinearShape[],
  options: { targets: readonly string[]; rank: number },
): number {
  const { rank } = checkConfig("loraParameterCount", options);
  return selectLoRATargets(shapes, options.targets, "loraParameterCount")
    .reduce((n, s) => n + rank * (s.inFeatures + s.outFeatures), 0);
}

/**
 * Wraps the linear layers of `model` that match `targets` in {@linkcode LoRALinear}s, in place,
 * after freezing the whole model (as peft does): afterwards only the A and B matrices train.
 * To train something else too (a new classification head), `unfreeze()` it after this call.
 *
 * GPT-2's output head has no Linear of its own: it reuses the token embedding `wte` (tied).
 * Targeting `"lm_head"` gives it a LoRA update of its own: logits = x·wteᵀ + (alpha/r)·x·Aᵀ·Bᵀ
 * with A (r, C) and B (V, r); the token-embedding lookup stays as it was. Such a head cannot be
 * merged (that would change the embedding as well), and `wte` stays frozen.
 *
 * @param model any module tree
 * @param options targets (name patterns), rank, alpha, dropout
 * @returns the wrapped names and layers and the trainable/total parameter counts
 * @throws {RangeError} naming a pattern that matches no linear layer, and listing the layers
 * @example
 * ```ts
 * import { applyLoRA, GPT2, gpt2Config, manualSeed } from "@denograd/denograd";
 * manualSeed(0);
 * const model = new GPT2(gpt2Config("small-test")); // nEmbd 16, 2 layers
 * const report = applyLoRA(model, { targets: ["attn.c_attn", "mlp.*"], rank: 4, alpha: 8 });
 * console.log(report.names); // ["h.0.attn.c_attn", "h.0.mlp.c_fc", "h.0.mlp.c_proj", "h.1.attn.c_attn", ...]
 * console.log(report.trainableParameters); // 2 · 4·((16+48) + (16+64) + (64+16)) = 1792
 * ```
 */
export function applyLoRA(model: Module, options: ApplyLoRAOptions): LoRAReport {
  if (!(model instanceof Module)) throw new TypeError("applyLoRA: model must be a Module");
  const config = checkConfig("applyLoRA", options);
  const selected = selectLoRATargets(linearShapes(model), options?.targets, "applyLoRA");
  const byName = modulesByName(model);
  const wrappedAlready = selected.filter((s) => byName.get(s.name) instanceof LoRALinear);
  if (wrappedAlready.length) {
    throw new TypeError(
      `applyLoRA: already wrapped: ${wrappedAlready.map((s) => s.name).join(", ")}`,
    );
  }
  model.freeze();
  const layers: LoRALinear[] = [];
  for (const { name } of selected) {
    const tied = name === TIED_HEAD ? tiedHead(model) : null;
    if (tied) {
      const layer = new LoRALinear({ weight: tied.wte.weight, bias: null }, {
        ...config,
        tiedTo: `wte.weight`,
      });
      tied.lm_head = layer;
      layers.push(layer);
    } else {
      const layer = new LoRALinear(byName.get(name) as Linear, config);
      model.setSubmodule(name, layer);
      layers.push(layer);
    }
  }
  return {
    names: selected.map((s) => s.name),
    layers,
    trainableParameters: model.numParameters(),
    totalParameters: model.numParameters({ includeFrozen: true }),
  };
}

/** Every submodule by its path. */
export function modulesByName(model: Module): Map<string, Module> {
  return new Map(model.namedModules());
}

/**
 * Every LoRA layer of `model` with its path.
 *
 * @returns [path, layer] pairs in tree order
 * @example
 * ```ts
 * import { applyLoRA, GPT2, gpt2Config, loraLayers } from "@denograd/denograd";
 * const model = new GPT2(gpt2Config("small-test"));
 * applyLoRA(model, { targets: ["h.1.mlp.c_fc"], rank: 2 });
 * console.log(loraLayers(model).map(([name, l]) => [name, l.rank])); // [["h.1.mlp.c_fc", 2]]
 * ```
 */
export function loraLayers(model: Module): [string, LoRALinear][] {
  return model.namedModules().filter((e): e is [string, LoRALinear] => e[1] instanceof LoRALinear);
}

/**
 * Merges every LoRA layer of `model` (see {@linkcode LoRALinear.merge}); tied layers cannot be
 * merged and are checked before anything changes.
 *
 * @returns the number of layers merged
 * @example
 * ```ts
 * import { applyLoRA, GPT2, gpt2Config, mergeLoRA, unmergeLoRA } from "@denograd/denograd";
 * const model = new GPT2(gpt2Config("small-test"));
 * applyLoRA(model, { targets: ["attn.*"], rank: 2 });
 * console.log(mergeLoRA(model), unmergeLoRA(model)); // 4 4
 * ```
 */
export function mergeLoRA(model: Module): number {
  const layers = loraLayers(model).filter(([, l]) => !l.merged);
  const tied = layers.filter(([, l]) => l.tiedTo !== null);
  if (tied.length) {
    throw new TypeError(
      `mergeLoRA: ${tied.map(([n, l]) => `"${n}" (tied to ${l.tiedTo})`).join(", ")} cannot be ` +
        `merged: the weight has another use`,
    );
  }
  for (const [, l] of layers) l.merge();
  return layers.length;
}

/**
 * Unmerges every merged LoRA layer of `model` (see {@linkcode mergeLoRA} for an example).
 *
 * @returns the number of layers unmerged
 */
export function unmergeLoRA(model: Module): number {
  const layers = loraLayers(model).filter(([, l]) => l.merged);
  for (const [, l] of layers) l.unmerge();
  return layers.length;
}
