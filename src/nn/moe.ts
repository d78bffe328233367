/**
 * Mixture of experts: a drop-in replacement for the transformer's MLP in which a linear router
 * sends each token to k of E expert MLPs (Shazeer et al. 2017; GShard; Switch Transformer;
 * Mixtral). Only the chosen experts run on a token, so parameters grow with E while the compute
 * per token grows with k.
 *
 * One forward:
 *
 *   logits = x @ router^T                          (N, E)   N = tokens
 *   probs  = softmax(logits)                       (N, E)
 *   top-k experts per token, capacity slots        (host: discrete, see _moe_routing.ts)
 *   gates  = probs at the chosen experts           (N, k)   renormalised to sum 1 if normalizeGates
 *   xd     = x rows gathered into expert slots     (E, capacity, C)
 *   yd     = c_proj(gelu(c_fc(xd))) per expert     (E, capacity, C)   two batched GEMMs
 *   y[n]   = sum_j gates[n, j] * yd[slot(n, j)]    (N, C)   dropped choices add nothing
 *
 * Router losses (training mode only; read them with {@linkcode MoE.takeRouterLoss}):
 * the Switch Transformer load-balancing loss `E * sum_e f_e * P_e` (f_e: fraction of the N*k
 * choices routed to e, before capacity, a constant; P_e: mean router probability of e; it is 1
 * when both are uniform), and the ST-MoE router z-loss `mean_n logsumexp(logits_n)^2`.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { noGrad } from "../autograd.ts";
import { keep } from "../memory.ts";
import { tensor } from "../ops/creation.ts";
import { gather, indexSelect, reshape } from "../ops/movement.ts";
import { softmax } from "../ops/nn.ts";
import { logsumexp, mean, sum } from "../ops/reduce.ts";
import { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { disposeExcept } from "./_dispose.ts";
import { planRouting, routerLossValues, type RoutingPlan } from "./_moe_routing.ts";
import { Dropout } from "./dropout.ts";
import { Experts } from "./experts.ts";
import { checkSize, Linear } from "./linear.ts";
import { Module } from "./module.ts";

/** The routing hyperparameters of a mixture-of-experts layer (shared with GPT-2's config). */
export interface MoEConfig {
  /** Number of experts E (>= 1). */
  experts: number;
  /** Experts per token k, 1 <= k <= E. Default 2. */
  topK?: number;
  /** Hidden width of each expert MLP. Default 4 * C (a GPT-2 MLP per expert). */
  hidden?: number;
  /**
   * Slots per expert = ceil(k * tokens * capacityFactor / E) (at most `tokens`); choices beyond an
   * expert's capacity are dropped. Default 1.25 (Switch Transformer); `Infinity` drops nothing.
   * Applies in training mode.
   */
  capacityFactor?: number;
  /**
   * The capacity factor in eval mode. Default `Infinity`: nothing is dropped, so a token's output
   * does not depend on the other tokens of the batch (generation with and without the KV cache
   * agrees); the buffer is then just as large as the busiest expert needs.
   */
  evalCapacityFactor?: number;
  /**
   * Rescale the k chosen probabilities to sum to 1 (GShard, Mixtral). Default: true when k > 1,
   * false for k = 1 (Switch: the gate is the raw probability, so the router still learns from the
   * main loss).
   */
  normalizeGates?: boolean;
  /** Weight of the load-balancing loss in {@linkcode MoE.takeRouterLoss}. Default 0.01 (Switch). */
  auxLossWeight?: number;
  /** Weight of the router z-loss. Default 0.001 (ST-MoE). */
  zLossWeight?: number;
}

/** Options of {@linkcode MoE}: the routing config plus how the parameters are made. */
export interface MoEOptions extends MoEConfig {
  /** Dropout on the output (default 0). */
  dropout?: number;
  /** Biases in the experts' c_fc and c_proj (default true); the router has none. */
  bias?: boolean;
  /** Where the parameters live (default "cpu"). */
  device?: Device;
  /** Init std of the router and c_fc weights (default: PyTorch's uniform init); biases start at 0. */
  std?: number;
  /** Init std of c_proj's weights (default: `std`). */
  projStd?: number;
}

/** What one forward of a {@linkcode MoE} routed (counts are of token-expert choices). */
export interface MoEStats {
  /** Tokens routed. */
  tokens: number;
  /** Slots per expert. */
  capacity: number;
  /** (E) choices each expert processed (at most `capacity` each). */
  tokensPerExpert: number[];
  /** (E) choices that picked each expert before capacity was applied. */
  routed: number[];
  /** Choices dropped because their expert was full. */
  dropped: number;
  /** Tokens with every choice dropped: the layer adds nothing to them. */
  droppedTokens: number;
  /** The load-balancing loss (unweighted; 1 when perfectly balanced). */
  auxLoss: number;
  /** The router z-loss (unweighted). */
  zLoss: number;
}

/** Where {@linkcode MoE.route} sends each token; arrays are (N, k) row-major. */
export interface MoERouting {
  /** Slots per expert. */
  capacity: number;
  /** The chosen experts of each token, best first (highest probability first). */
  experts: Int32Array;
  /** Their gate weights (renormalised when `normalizeGates`), dropped choices included. */
  gates: Float32Array;
  /** Slot e * capacity + position in expert e's buffer, or -1 where the choice was dropped. */
  slots: Int32Array;
}

/** {@linkcode MoEStats} of one block of a model, e.g. from `GPT2.moeStats()`. */
export interface MoELayerStats extends MoEStats {
  /** The block's index. */
  layer: number;
}

/** Throws a RangeError for a bad number, else a TypeError (unless `kind` says which). */
function fail(
  where: string,
  field: string,
  expected: string,
  got: unknown,
  kind: typeof RangeError | typeof TypeError = typeof got === "number" ? RangeError : TypeError,
): never {
  throw new kind(`${where}.${field} must be ${expected}, got ${String(got)}`);
}

/**
 * @internal Checks a {@linkcode MoEConfig} and fills in the defaults. `where` prefixes the errors,
 * e.g. "MoE: options" or "GPT2Config: moe".
 */
export function resolveMoEConfig(
  where: string,
  config: MoEConfig,
  nEmbd: number,
): Required<MoEConfig> {
  if (typeof config !== "object" || config === null) {
    throw new TypeError(`${where} must be an object, got ${config}`);
  }
  const {
    experts,
    topK = 2,
    hidden = 4 * nEmbd,
    capacityFactor = 1.25,
    evalCapacityFactor = Infinity,
    normalizeGates = topK > 1,
    auxLossWeight = 0.01,
    zLossWeight = 0.001,
  } = config;
  const positiveInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
  if (!positiveInt(experts)) fail(where, "experts", "a positive integer", experts);
  if (!positiveInt(topK) || topK > experts) {
    fail(where, "topK", `an integer in [1, experts = ${experts}]`, topK);
  }
  if (!positiveInt(hidden)) fail(where, "hidden", "a positive integer", hidden);
  const factors = [["capacityFactor", capacityFactor], ["evalCapacityFactor", evalCapacityFactor]];
  for (const [field, v] of factors) {
    if (typeof v !== "number" || !(v > 0)) {
      fail(where, field as string, "a number > 0 (Infinity: no drops)", v);
    }
  }
  if (typeof normalizeGates !== "boolean") {
    fail(where, "normalizeGates", "a boolean", normalizeGates, TypeError);
  }
  for (const [field, v] of [["auxLossWeight", auxLossWeight], ["zLossWeight", zLossWeight]]) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      fail(where, field as string, "a finite number >= 0", v);
    }
  }
  return {
    experts,
    topK,
    hidden,
    capacityFactor,
    evalCapacityFactor,
    normalizeGates,
    auxLossWeight,
    zLossWeight,
  };
}

/**
 * A mixture-of-experts MLP with GPT-2-style experts (see the module doc for the computation).
 * Field names: `router` (a bias-free Linear C -> E), `experts` (`c_fc`, `act`, `c_proj`, weights
 * stacked (E, out, in)), `dropout`.
 *
 * Routing is decided on the host from a copy of the router logits (one read per forward: a sync
 * point on a GPU); everything differentiable stays on the device. After each forward,
 * {@linkcode MoE.stats} tells how many tokens each expert got and how many were dropped.
 *
 * @example
 * ```ts
 * import { manualSeed, MoE, randn } from "@denograd/denograd";
 * manualSeed(0);
 * const moe = new MoE(16, { experts: 4, topK: 2 });
 * const y = moe.forward(randn([2, 5, 16])); // (B, T, C)
 * const loss = y.mul(y).mean();
 * const router = moe.takeRouterLoss()!; // weighted load-balancing + z-loss (training mode)
 * loss.add(router).backward();
 * console.log(y.shape, moe.stats!.tokensPerExpert.length); // [2, 5, 16] 4
 * ```
 */
export class MoE extends Module {
  /** Model width C. */
  readonly nEmbd: number;
  /** The routing hyperparameters, defaults filled in. */
  readonly config: Readonly<Required<MoEConfig>>;
  /** Token -> expert logits, (E, C), no bias. */
  router: Linear;
  /** The E expert MLPs. */
  experts: Experts;
  /** Dropout on the output, before the residual add. */
  dropout: Dropout;
  #stats: MoEStats | null = null;
  #routerLoss: Tensor | null = null;

  /**
   * A layer with fresh parameters.
   *
   * @param nEmbd model width C
   * @param options experts, topK, capacity and loss weights, init
   * @throws {RangeError} / {TypeError} for a bad option, naming it
   */
  constructor(nEmbd: number, options: MoEOptions) {
    super();
    checkSize("MoE", "nEmbd", nEmbd);
    const config = resolveMoEConfig("MoE: options", options, nEmbd);
    const { dropout = 0, bias = true, device, std, projStd = std } = options;
    this.nEmbd = nEmbd;
    this.config = Object.freeze(config);
    this.router = new Linear(nEmbd, config.experts, { bias: false, device, std });
    this.experts = new Experts(config.experts, nEmbd, config.hidden, {
      bias,
      device,
      std,
      projStd,
    });
    this.dropout = new Dropout(dropout);
  }

  /** What the last forward routed, or null before the first. */
  get stats(): MoEStats | null {
    return this.#stats;
  }

  /**
   * Routes every token to its top-k experts and mixes their outputs by the gates.
   *
   * @param x (..., C), e.g. (B, T, C)
   * @returns x's shape
   */
  forward(x: Tensor): Tensor {
    const { experts: e, topK: k } = this.config;
    const c = this.nEmbd;
    const device = x.device;
    const { flat, logits, probs, gates, plan } = this.#route("forward", x);
    const { tokens: n, capacity } = plan;
    this.#stats = {
      tokens: n,
      capacity,
      tokensPerExpert: plan.processed,
      routed: plan.routed,
      dropped: plan.dropped,
      droppedTokens: plan.droppedTokens,
      ...routerLossValues(plan.hostLogits, plan),
    };
    // Dropped choices weigh 0 (their combine index may point anywhere, here at slot 0).
    const kept = plan.dropped > 0 ? keptMask(plan, device) : null; // (N, k)
    const mix = kept ? gates.mul(kept) : gates; // (N, k)

    // Dispatch: expert e's slot s holds token tokenOfSlot[e * capacity + s]. Empty slots read
    // token 0; their outputs are never combined, so they get no gradient either.
    const dispatchIndex = indexTensor(plan.tokenOfSlot, device); // (E * cap)
    const gathered = indexSelect(flat, 0, dispatchIndex); // (E * cap, C)
    const dispatched = reshape(gathered, [e, capacity, c]); // (E, cap, C)
    const expertOut = this.experts.forward(dispatched); // (E, cap, C)
    const outRows = reshape(expertOut, [e * capacity, c]); // (E * cap, C)

    // Combine: y[n] = sum_j mix[n, j] * expertOut[slotOf[n, j]].
    const combineIndex = indexTensor(plan.slotOf, device); // (N * k)
    const picked = indexSelect(outRows, 0, combineIndex); // (N * k, C)
    let y: Tensor;
    if (k === 1) {
      y = picked.mul(mix); // (N, C) * (N, 1)
    } else {
      const perChoice = reshape(picked, [n, k, c]); // (N, k, C)
      const w = reshape(mix, [n, k, 1]); // (N, k, 1)
      const weighted = perChoice.mul(w); // (N, k, C)
      y = sum(weighted, 1); // (N, C)
      for (const t of [perChoice, w, weighted]) t.dispose();
    }
    const out = reshape(y, x.shape); // (..., C)
    const result = this.dropout.forward(out);

    this.#routerLoss?.dispose();
    // Kept: it outlives the forward (and any tidy around it) until takeRouterLoss hands it over.
    const routerLoss = this.training ? this.#buildRouterLoss(logits, probs, plan.routed) : null;
    this.#routerLoss = routerLoss && keep(routerLoss);
    const temps = [flat, logits, probs, gates, mix, dispatchIndex, gathered, dispatched];
    temps.push(expertOut, outRows, combineIndex, picked, y, out, ...(kept ? [kept] : []));
    return disposeExcept(result, ...temps);
  }

  /**
   * Where {@linkcode MoE.forward} would send the tokens of `x`, without running the experts
   * (and without gradients): the chosen experts, their gate weights and capacity slots.
   *
   * @param x (..., C)
   * @returns host arrays, each (N, k) row-major with N = tokens of x
   * @example
   * ```ts
   * import { manualSeed, MoE, randn } from "@denograd/denograd";
   * manualSeed(0);
   * const r = new MoE(8, { experts: 4, topK: 2 }).route(randn([3, 8]));
   * console.log(r.experts.length, r.capacity); // 6 2
   * ```
   */
  route(x: Tensor): MoERouting {
    return noGrad(() => {
      const { flat, logits, probs, gates, plan } = this.#route("route", x);
      const gateValues = gates.toTypedArray() as Float32Array;
      for (const t of [flat, logits, probs, gates]) t.dispose();
      return {
        capacity: plan.capacity,
        experts: plan.expertOf,
        gates: gateValues,
        slots: plan.slotOf,
      };
    });
  }

  /** The router's part of a forward: logits, the host's routing plan, and the gates. */
  #route(op: string, x: Tensor): {
    flat: Tensor;
    logits: Tensor;
    probs: Tensor;
    gates: Tensor;
    plan: RoutingPlan & { hostLogits: Float32Array };
  } {
    if (!(x instanceof Tensor)) throw new TypeError(`MoE.${op}: x must be a Tensor`);
    const c = this.nEmbd;
    if (x.dtype !== "f32" || x.ndim < 1 || x.shape[x.ndim - 1] !== c || x.size === 0) {
      throw new RangeError(
        `MoE.${op}: x must be a non-empty f32 (..., ${c}), got ${x.dtype} ${fmt(x.shape)}`,
      );
    }
    const { experts: e, topK: k, normalizeGates } = this.config;
    const factor = this.training ? this.config.capacityFactor : this.config.evalCapacityFactor;
    const n = x.size / c;
    const flat = reshape(x, [n, c]); // (N, C)
    const logits = this.router.forward(flat); // (N, E)
    // Sync point on a GPU: expert and slot choices are discrete, made on the host from a copy
    // of the (small) logits.
    const hostLogits = logits.toTypedArray() as Float32Array;
    const plan = planRouting(hostLogits, n, e, k, factor);
    const probs = softmax(logits, -1); // (N, E)
    const choice = tensor(plan.expertOf, { shape: [n, k], dtype: "i32", device: x.device });
    const chosen = gather(probs, 1, choice); // (N, k) probabilities of the chosen experts
    choice.dispose();
    if (!normalizeGates) {
      return { flat, logits, probs, gates: chosen, plan: { ...plan, hostLogits } };
    }
    const total = sum(chosen, -1, true); // (N, 1)
    const gates = chosen.div(total); // (N, k), each row sums to 1
    total.dispose();
    chosen.dispose();
    return { flat, logits, probs, gates, plan: { ...plan, hostLogits } };
  }

  /**
   * The weighted router losses of the last training-mode forward, `auxLossWeight * aux +
   * zLossWeight * z`, as a differentiable scalar to add to the training loss; the caller owns it.
   * Null when there is none (eval mode, both weights 0, or already taken).
   */
  takeRouterLoss(): Tensor | null {
    const t = this.#routerLoss;
    this.#routerLoss = null;
    if (t) t.kept = false; // the caller owns it now and disposes it
    return t;
  }

  /** Frees the parameters and a router loss nobody took. */
  override dispose(): void {
    this.#routerLoss?.dispose();
    this.#routerLoss = null;
    super.dispose();
  }

  #buildRouterLoss(logits: Tensor, probs: Tensor, routed: number[]): Tensor | null {
    const { experts: e, topK: k, auxLossWeight, zLossWeight } = this.config;
    const n = logits.shape[0];
    const terms: Tensor[] = [];
    if (auxLossWeight > 0) {
      // f_e is a count (no gradient); P_e carries the gradient to the router.
      const f = tensor(routed.map((r) => (e * auxLossWeight * r) / (n * k)), {
        device: logits.device,
      }); // (E) E * weight * f_e
      const meanProb = mean(probs, 0); // (E) P_e
      const prod = meanProb.mul(f); // (E)
      terms.push(sum(prod));
      for (const t of [f, meanProb, prod]) t.dispose();
    }
    if (zLossWeight > 0) {
      const lse = logsumexp(logits, -1); // (N)
      const sq = lse.mul(lse); // (N)
      const z = mean(sq);
      terms.push(z.mul(zLossWeight));
      for (const t of [lse, sq, z]) t.dispose();
    }
    if (terms.length < 2) return terms[0] ?? null;
    const total = terms[0].add(terms[1]);
    for (const t of terms) t.dispose();
    return total;
  }
}

/** Host indices as an i32 tensor, -1 (nothing there) replaced by 0 (any valid row). */
function indexTensor(index: Int32Array, device: Device): Tensor {
  const data = index.map((i) => Math.max(i, 0));
  return tensor(data, { shape: [index.length], dtype: "i32", device });
}

/** (N, k) 1 where the choice got a slot, 0 where it was dropped. */
function keptMask(
  plan: { slotOf: Int32Array; tokens: number; topK: number },
  device: Device,
): Tensor {
  const mask = Float32Array.from(plan.slotOf, (s) => (s >= 0 ? 1 : 0));
  return tensor(mask, { shape: [plan.tokens, plan.topK], device });
}

/**
 * Adds up the stats of several forwards of one layer (micro-batches of a training step): counts
 * are summed, `capacity` is the total slots per expert, the losses are token-weighted means.
 *
 * @example
 * ```ts
 * import { mergeMoEStats, type MoEStats } from "@denograd/denograd";
 * const a: MoEStats = {
 *   tokens: 4, capacity: 3, tokensPerExpert: [3, 1], routed: [3, 1],
 *   dropped: 0, droppedTokens: 0, auxLoss: 1.25, zLoss: 0.5,
 * };
 * console.log(mergeMoEStats(a, a).tokensPerExpert); // [6, 2]
 * ```
 */
export function mergeMoEStats(a: MoEStats, b: MoEStats): MoEStats {
  if (a.routed.length !== b.routed.length) {
    throw new RangeError(
      `mergeMoEStats: stats of ${a.routed.length} and ${b.routed.length} experts differ`,
    );
  }
  const tokens = a.tokens + b.tokens;
  const add = (x: number[], y: number[]) => x.map((v, i) => v + y[i]);
  const avg = (x: number, y: number) => (x * a.tokens + y * b.tokens) / tokens;
  return {
    tokens,
    capacity: a.capacity + b.capacity,
    tokensPerExpert: add(a.tokensPerExpert, b.tokensPerExpert),
    routed: add(a.routed, b.routed),
    dropped: a.dropped + b.dropped,
    droppedTokens: a.droppedTokens + b.droppedTokens,
    auxLoss: avg(a.auxLoss, b.auxLoss),
    zLoss: avg(a.zLoss, b.zLoss),
  };
}
