/**
 * Several optimizers stepped as one (Muon for the hidden matrices, AdamW for the rest), and the
 * usual Muon + AdamW split of a model.
 * @module
 */

import { Tensor } from "../tensor.ts";
import { AdamW, type AdamWOptions } from "./adamw.ts";
import { Muon, type MuonOptions } from "./muon.ts";
import { isBiasName } from "./_names.ts";
import type { ModelParameters, ParamGroup, TrainOptimizer } from "./optimizer.ts";

/**
 * Optimizers over disjoint parameter sets, driven as one: `step`, `zeroGrad`, `scaleLr` (each
 * group relative to its own initial lr) and checkpoint state, whose names are the parts' names
 * prefixed with `"<part>."`.
 *
 * @example
 * ```ts
 * import { AdamW, CombinedOptimizer, Muon, randn, zeros } from "@denograd/denograd";
 * const w = randn([4, 4], { requiresGrad: true }), b = zeros([4], { requiresGrad: true });
 * const opt = new CombinedOptimizer({ muon: new Muon([w]), adamw: new AdamW([b]) });
 * w.sum().add(b.sum()).backward();
 * opt.step();
 * console.log(Object.keys(opt.state())); // muon.step, muon.0.momentum, adamw.step, adamw.0.m, ...
 * ```
 */
export class CombinedOptimizer implements TrainOptimizer {
  /** The parts by name. */
  readonly parts: Readonly<Record<string, TrainOptimizer>>;
  /** Every parameter: the parts' parameters in part order. */
  readonly params: readonly Tensor[];

  /**
   * Combines `parts`, which must not share a parameter.
   *
   * @param parts optimizers by name (letters, digits and `_`; no dots)
   */
  constructor(parts: Record<string, TrainOptimizer>) {
    const entries = Object.entries(parts ?? {});
    if (entries.length === 0) {
      throw new TypeError("CombinedOptimizer: expected at least one named optimizer");
    }
    const seen = new Map<Tensor, string>();
    for (const [name, part] of entries) {
      if (!/^\w+$/.test(name)) {
        throw new RangeError(
          `CombinedOptimizer: part names are letters, digits and _, got ${JSON.stringify(name)}`,
        );
      }
      if (!part || typeof part.step !== "function" || typeof part.checkState !== "function") {
        throw new TypeError(`CombinedOptimizer: part "${name}" is not an optimizer`);
      }
      part.params.forEach((p, i) => {
        const other = seen.get(p);
        if (other !== undefined) {
          throw new TypeError(
            `CombinedOptimizer: parameter ${i} of "${name}" is also in "${other}"`,
          );
        }
        seen.set(p, name);
      });
    }
    this.parts = Object.freeze(Object.fromEntries(entries));
    this.params = entries.flatMap(([, part]) => part.params);
  }

  /** Steps every part. */
  step(): void {
    for (const part of Object.values(this.parts)) part.step();
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const part of Object.values(this.parts)) part.zeroGrad();
  }

  /** Scales every group of every part from its own initial lr (see `Optimizer.scaleLr`). */
  scaleLr(factor: number): void {
    for (const part of Object.values(this.parts)) part.scaleLr(factor);
  }

  /** Every group's lr, parts in order. */
  lrs(): number[] {
    return Object.values(this.parts).flatMap((part) => part.lrs());
  }

  /** Every part's state, names prefixed `"<part>."`; fresh tensors the caller owns. */
  state(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [name, part] of Object.entries(this.parts)) {
      for (const [key, t] of Object.entries(part.state())) out[`${name}.${key}`] = t;
    }
    return out;
  }

  /** Every problem of every part's share of `state`, and names that belong to no part. */
  checkState(state: Record<string, Tensor>): string[] {
    if (state === null || typeof state !== "object") return ["expected a record of tensors"];
    const { shares, problems } = this.#split(state);
    for (const [name, part] of Object.entries(this.parts)) {
      problems.push(...part.checkState(shares[name]).map((p) => `${name}: ${p}`));
    }
    return problems;
  }

  /**
   * Restores a {@linkcode CombinedOptimizer.state}; every part's share is checked before any part
   * is written.
   *
   * @throws {RangeError} listing every problem found
   */
  loadState(state: Record<string, Tensor>): void {
    const problems = this.checkState(state);
    if (problems.length) {
      throw new RangeError(
        `CombinedOptimizer.loadState: ${problems.length} problem(s): ${problems.join("; ")}`,
      );
    }
    const { shares } = this.#split(state);
    for (const [name, part] of Object.entries(this.parts)) part.loadState(shares[name]);
  }

  /** Frees every part's state. */
  dispose(): void {
    for (const part of Object.values(this.parts)) part.dispose();
  }

  #split(state: Record<string, Tensor>) {
    const shares: Record<string, Record<string, Tensor>> = {};
    for (const name of Object.keys(this.parts)) shares[name] = {};
    const problems: string[] = [];
    for (const [key, t] of Object.entries(state)) {
      const dot = key.indexOf(".");
      const name = dot < 0 ? "" : key.slice(0, dot);
      if (!(name in shares)) problems.push(`unexpected "${key}" (no part "${name}")`);
      else shares[name][key.slice(dot + 1)] = t;
    }
    return { shares, problems };
  }
}

/** Options of {@linkcode muonWithAdamW}. */
export interface MuonWithAdamWOptions {
  /** Options of the Muon part (hidden matrices); Muon's defaults otherwise. */
  muon?: Partial<MuonOptions>;
  /**
   * Options of the AdamW part; its `weightDecay` applies to embeddings and other matrices left
   * to AdamW, while biases and norms (ndim < 2) get none. AdamW's defaults otherwise.
   */
  adamw?: Partial<AdamWOptions>;
  /**
   * Which parameters Muon takes, by dotted name; default: every 2-D parameter that is not an
   * {@linkcode Embedding}'s table (so a head tied to the token embedding stays with AdamW).
   * Pass a rule to keep, e.g., an untied output head out: `(name, p) => p.ndim === 2 &&
   * !name.startsWith("lm_head.")`.
   */
  isHidden?: (name: string, param: Tensor) => boolean;
}

/** An embedding layer (nn's `Embedding`, by its shape: rows, width and a weight table). */
function isLookupTable(m: object): m is { weight: Tensor } {
  const e = m as { numEmbeddings?: unknown; embeddingDim?: unknown; weight?: unknown };
  return typeof e.numEmbeddings === "number" && typeof e.embeddingDim === "number" &&
    e.weight instanceof Tensor;
}

/**
 * The split modern GPT speedruns use: Muon for the hidden 2-D weight matrices of the blocks
 * (attention and MLP projections), AdamW for embeddings (and the tied head), biases and
 * LayerNorms. Returns one {@linkcode CombinedOptimizer} with parts `muon` and `adamw`; AdamW's
 * groups are `[matrices and embeddings (decayed), biases and norms (weightDecay 0)]`. GPT2's
 * fused query/key/value projection `c_attn` (3C, C) is orthogonalised as one matrix (the
 * speedrun's model keeps q, k and v apart).
 *
 * @param model e.g. a GPT2
 * @param options per-part options and the rule that picks Muon's parameters
 * @returns the combined optimizer
 * @example
 * ```ts
 * import { GPT2, gpt2Config, muonWithAdamW } from "@denograd/denograd";
 * const model = new GPT2(gpt2Config("small-test"));
 * const opt = muonWithAdamW(model, { muon: { lr: 0.02 }, adamw: { lr: 1e-3, weightDecay: 0.1 } });
 * console.log(opt.parts.muon.params.length, opt.parts.adamw.params.length); // 4 per block, rest
 * ```
 */
export function muonWithAdamW(
  model: ModelParameters,
  options: MuonWithAdamWOptions = {},
): CombinedOptimizer {
  if (!model || typeof model.namedParameters !== "function") {
    throw new TypeError("muonWithAdamW: model must be a Module");
  }
  const tables = new Set<Tensor>();
  for (const [, m] of model.namedModules()) if (isLookupTable(m)) tables.add(m.weight);
  const isHidden = options.isHidden ??
    ((name: string, p: Tensor) => p.ndim === 2 && !tables.has(p) && !isBiasName(name));
  const hidden: Tensor[] = [], matrices: Tensor[] = [], small: Tensor[] = [];
  for (const [name, p] of model.namedParameters()) {
    if (isHidden(name, p)) hidden.push(p);
    else (p.ndim >= 2 && !isBiasName(name) ? matrices : small).push(p);
  }
  if (hidden.length === 0) {
    throw new RangeError("muonWithAdamW: no parameter is a hidden matrix for Muon");
  }
  const groups: ParamGroup<AdamWOptions>[] = [
    { params: matrices },
    { params: small, weightDecay: 0 },
  ].filter((g) => g.params.length > 0);
  const parts: Record<string, TrainOptimizer> = { muon: new Muon(hidden, options.muon) };
  if (groups.length > 0) parts.adamw = new AdamW(groups, options.adamw);
  return new CombinedOptimizer(parts);
}
