/**
 * Stochastic gradient descent with momentum, Nesterov momentum and (coupled) weight decay, exactly
 * torch.optim.SGD's update, run as one fused backend kernel per parameter.
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { Optimizer, type ParamGroup } from "./optimizer.ts";

/** SGD's hyperparameters (torch's defaults, except that lr has one: 1e-2). */
export interface SGDOptions {
  /** Learning rate; default 1e-2. */
  lr: number;
  /** Momentum factor; default 0 (plain SGD). */
  momentum: number;
  /** Dampening of the momentum; default 0. */
  dampening: number;
  /** L2 penalty added to the gradient (g += weightDecay * p); default 0. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0); default false. */
  nesterov: boolean;
}

const DEFAULTS: SGDOptions = {
  lr: 1e-2,
  momentum: 0,
  dampening: 0,
  weightDecay: 0,
  nesterov: false,
};

function checkOptions(o: SGDOptions, where: string): void {
  for (const k of ["lr", "momentum", "dampening", "weightDecay"] as const) {
    if (!(Number.isFinite(o[k]) && o[k] >= 0)) {
      throw new RangeError(`SGD: ${k} must be a finite number >= 0${where}, got ${o[k]}`);
    }
  }
  if (o.dampening > 1) {
    throw new RangeError(`SGD: dampening must be in [0, 1]${where}, got ${o.dampening}`);
  }
  if (typeof o.nesterov !== "boolean") {
    throw new TypeError(`SGD: nesterov must be a boolean${where}, got ${o.nesterov}`);
  }
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
    throw new RangeError(`SGD: nesterov needs momentum > 0 and dampening 0${where}`);
  }
}

/**
 * SGD over parameters or parameter groups. State: `momentum` per parameter (when momentum > 0).
 *
 * @example
 * ```ts
 * import { SGD, tensor } from "@denograd/denograd";
 * const w = tensor([4], { requiresGrad: true });
 * const opt = new SGD([w], { lr: 0.1, momentum: 0.9 });
 * w.pow(2).sum().backward(); // dw = 2w = 8
 * opt.step();
 * console.log(w.toArray()); // [3.2]
 * ```
 */
export class SGD extends Optimizer<SGDOptions> {
  /**
   * Validates the parameters and options; state is allocated on each parameter's first update.
   *
   * @param params parameters, or groups `{ params, ...options }` with their own options
   * @param options defaults for every group
   */
  constructor(
    params: readonly Tensor[] | readonly ParamGroup<SGDOptions>[],
    options: Partial<SGDOptions> = {},
  ) {
    const defaults = { ...DEFAULTS, ...options };
    checkOptions(defaults, "");
    super("SGD", params, defaults, (o) => o.momentum !== 0 ? ["momentum"] : [], checkOptions);
  }

  /** One SGD update of every parameter that has a gradient. */
  step(): void {
    let index = 0;
    for (const group of this.paramGroups) {
      const { lr, momentum, dampening, weightDecay, nesterov } = group;
      for (const p of group.params) {
        const i = index++;
        const g = p.grad;
        if (!g) continue;
        if (g.shape.length !== p.ndim || g.shape.some((d, k) => d !== p.shape[k])) {
          throw new RangeError(
            `SGD.step: gradient ${fmt(g.shape)} of parameter ${i} differs from its shape ${
              fmt(p.shape)
            }`,
          );
        }
        if (!p.isContiguous || !g.isContiguous) {
          throw new TypeError(`SGD.step: parameter ${i} and its gradient must be contiguous`);
        }
        const firstStep = this.steps[i]++ === 0;
        const buf = momentum !== 0 ? this.slot(i, "momentum")._view() : null;
        p.backend.sgdStep(p._view("SGD.step"), g._view("SGD.step"), buf, {
          lr,
          momentum,
          dampening,
          weightDecay,
          nesterov,
          firstStep,
        });
      }
    }
  }
}
