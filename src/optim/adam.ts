/**
 * Adam (Kingma & Ba): per-parameter step sizes from running moments of the gradient, with L2
 * weight decay folded into the gradient; exactly torch.optim.Adam's update, run as one fused
 * backend kernel per parameter. For decoupled weight decay use {@linkcode AdamW}.
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { AdamBase } from "./_adam_base.ts";
import type { ParamGroup } from "./optimizer.ts";

/** Adam's hyperparameters (torch's defaults). */
export interface AdamOptions {
  /** Learning rate; default 1e-3. */
  lr: number;
  /** Decay rates of the first and second moments; default [0.9, 0.999]. */
  betas: readonly [number, number];
  /** Added to the denominator for stability; default 1e-8. */
  eps: number;
  /** L2 penalty added to the gradient (g += weightDecay * p) before the moments; default 0. */
  weightDecay: number;
}

const DEFAULTS: AdamOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 };

/**
 * Adam over parameters or parameter groups (each group may override any option). Parameters
 * without a gradient are skipped, as in PyTorch. State: `m` and `v` per parameter.
 *
 * @example
 * ```ts
 * import { Adam, randn, tensor } from "@denograd/denograd";
 * const w = randn([3], { requiresGrad: true });
 * const opt = new Adam([w], { lr: 0.1 });
 * for (let i = 0; i < 100; i++) {
 *   w.sub(tensor([1, 2, 3])).pow(2).sum().backward(); // pull w toward [1, 2, 3]
 *   opt.step();
 *   opt.zeroGrad();
 * }
 * console.log(w.toArray()); // close to [1, 2, 3]
 * ```
 */
export class Adam extends AdamBase<AdamOptions> {
  /**
   * Validates the parameters and options; state is allocated on each parameter's first update.
   *
   * @param params parameters, or groups `{ params, ...options }` with their own options
   * @param options defaults for every group
   */
  constructor(
    params: readonly Tensor[] | readonly ParamGroup<AdamOptions>[],
    options: Partial<AdamOptions> = {},
  ) {
    super("Adam", "adamStep", params, { ...DEFAULTS, ...options });
  }
}
