/**
 * AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, exactly torch.optim.AdamW's
 * update, run as one fused backend kernel per parameter.
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { AdamBase } from "./_adam_base.ts";
import { isBiasName } from "./_names.ts";
import type { ModelParameters, ParamGroup } from "./optimizer.ts";

/** AdamW's hyperparameters (torch's defaults). */
export interface AdamWOptions {
  /** Learning rate; default 1e-3. */
  lr: number;
  /** Decay rates of the first and second moments; default [0.9, 0.999]. */
  betas: readonly [number, number];
  /** Added to the denominator for stability; default 1e-8. */
  eps: number;
  /** Decoupled weight decay (p -= lr * weightDecay * p each step); default 0.01. */
  weightDecay: number;
}

const DEFAULTS: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 };

/**
 * AdamW over parameters or parameter groups (each group may override any option). Parameters
 * without a gradient are skipped, as in PyTorch. State: `m` and `v` per parameter.
 *
 * @example
 * ```ts
 * import { AdamW, randn, tensor } from "@denograd/denograd";
 * const w = randn([3], { requiresGrad: true });
 * const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
 * for (let i = 0; i < 100; i++) {
 *   w.sub(tensor([1, 2, 3])).pow(2).sum().backward(); // pull w toward [1, 2, 3]
 *   opt.step();
 *   opt.zeroGrad();
 * }
 * console.log(w.toArray()); // close to [1, 2, 3]
 * ```
 */
export class AdamW extends AdamBase<AdamWOptions> {
  /**
   * Validates the parameters and options; state is allocated on each parameter's first update.
   *
   * @param params parameters, or groups `{ params, ...options }` with their own options
   * @param options defaults for every group
   */
  constructor(
    params: readonly Tensor[] | readonly ParamGroup<AdamWOptions>[],
    options: Partial<AdamWOptions> = {},
  ) {
    super("AdamW", "adamwStep", params, { ...DEFAULTS, ...options });
  }

  /**
   * AdamW for a model with GPT-2's decay convention (nanoGPT's rule): matrices and embeddings
   * (ndim >= 2) are decayed; biases and LayerNorm parameters (ndim < 2) go to a group with
   * weightDecay 0. Parameter order: the decayed ones, then the rest, each in model order.
   *
   * @example
   * ```ts
   * import { AdamW, Module, parameter, randn, zeros, type Tensor } from "@denograd/denograd";
   * class Lin extends Module {
   *   weight: Tensor = parameter(randn([2, 3]));
   *   bias: Tensor = parameter(zeros([2]));
   * }
   * const opt = AdamW.forModel(new Lin(), { lr: 3e-4, weightDecay: 0.1 });
   * console.log(opt.paramGroups.map((g) => g.weightDecay)); // [0.1, 0]
   * ```
   */
  static forModel(
    model: Pick<ModelParameters, "namedParameters">,
    options: Partial<AdamWOptions> = {},
  ): AdamW {
    // nanoGPT's rule (decay matrices, not vectors), plus: a bias never decays, whatever its rank
    // (a mixture-of-experts layer stacks its experts' biases into (E, out) matrices).
    const named = model.namedParameters();
    const decays = ([name, p]: [string, Tensor]) => p.ndim >= 2 && !isBiasName(name);
    const groups: ParamGroup<AdamWOptions>[] = [
      { params: named.filter(decays).map(([, p]) => p) },
      { params: named.filter((e) => !decays(e)).map(([, p]) => p), weightDecay: 0 },
    ].filter((g) => g.params.length > 0);
    return new AdamW(groups, options);
  }
}
