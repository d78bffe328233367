/**
 * AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, exactly torch.optim.AdamW's
 * update, run as one fused backend kernel per parameter.
 * @module
 */

import type { Tensor } from "../tensor.ts";
import type { Module } from "../nn/module.ts";
import { fmt } from "../_shape.ts";
import { Optimizer, type ParamGroup } from "./optimizer.ts";

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

function checkOptions(o: AdamWOptions, where: string): void {
  const bad = (what: string, v: unknown) => new RangeError(`AdamW: ${what}${where}, got ${v}`);
  if (!(Number.isFinite(o.lr) && o.lr >= 0)) throw bad("lr must be a finite number >= 0", o.lr);
  if (!(Number.isFinite(o.eps) && o.eps >= 0)) throw bad("eps must be a finite number >= 0", o.eps);
  if (!(Number.isFinite(o.weightDecay) && o.weightDecay >= 0)) {
    throw bad("weightDecay must be a finite number >= 0", o.weightDecay);
  }
  const b = o.betas;
  if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => x >= 0 && x < 1)) {
    throw bad("betas must be two numbers in [0, 1)", JSON.stringify(b));
  }
}

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
export class AdamW extends Optimizer<AdamWOptions> {
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
    const defaults = { ...DEFAULTS, ...options };
    checkOptions(defaults, "");
    super("AdamW", params, defaults, ["m", "v"], checkOptions);
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
  static forModel(model: Module, options: Partial<AdamWOptions> = {}): AdamW {
    const params = model.parameters();
    const groups: ParamGroup<AdamWOptions>[] = [
      { params: params.filter((p) => p.ndim >= 2) },
      { params: params.filter((p) => p.ndim < 2), weightDecay: 0 },
    ].filter((g) => g.params.length > 0);
    return new AdamW(groups, options);
  }

  /** One AdamW update of every parameter that has a gradient. */
  step(): void {
    let index = 0;
    for (const group of this.paramGroups) {
      const { lr, betas: [beta1, beta2], eps, weightDecay } = group;
      for (const p of group.params) {
        const i = index++;
        const g = p.grad;
        if (!g) continue;
        if (g.shape.length !== p.ndim || g.shape.some((d, k) => d !== p.shape[k])) {
          throw new RangeError(
            `AdamW.step: gradient ${fmt(g.shape)} of parameter ${i} differs from its shape ${
              fmt(p.shape)
            }`,
          );
        }
        if (!p.isContiguous || !g.isContiguous) {
          throw new TypeError(`AdamW.step: parameter ${i} and its gradient must be contiguous`);
        }
        const m = this.slot(i, "m"), v = this.slot(i, "v");
        const step = ++this.steps[i];
        p.backend.adamwStep(p._view("AdamW.step"), g._view("AdamW.step"), m._view(), v._view(), {
          lr,
          beta1,
          beta2,
          eps,
          weightDecay,
          step,
        });
      }
    }
  }
}
