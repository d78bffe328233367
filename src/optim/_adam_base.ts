/**
 * What Adam and AdamW share: options, their validation and the step loop over one fused backend
 * kernel per parameter. They differ only in the kernel (where weight decay enters).
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { Optimizer, type ParamGroup } from "./optimizer.ts";

/** The options Adam and AdamW share (their own interfaces document the defaults). */
export interface AdamFamilyOptions {
  /** Learning rate. */
  lr: number;
  /** Decay rates of the first and second moments. */
  betas: readonly [number, number];
  /** Added to the denominator for stability. */
  eps: number;
  /** Weight decay (L2 for Adam, decoupled for AdamW). */
  weightDecay: number;
}

/** Throws a RangeError naming `name`, the option and its value when an option is out of range. */
export function checkAdamOptions(name: string): (o: AdamFamilyOptions, where: string) => void {
  return (o, where) => {
    const bad = (what: string, v: unknown) => new RangeError(`${name}: ${what}${where}, got ${v}`);
    if (!(Number.isFinite(o.lr) && o.lr >= 0)) throw bad("lr must be a finite number >= 0", o.lr);
    if (!(Number.isFinite(o.eps) && o.eps >= 0)) {
      throw bad("eps must be a finite number >= 0", o.eps);
    }
    if (!(Number.isFinite(o.weightDecay) && o.weightDecay >= 0)) {
      throw bad("weightDecay must be a finite number >= 0", o.weightDecay);
    }
    const b = o.betas;
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => x >= 0 && x < 1)) {
      throw bad("betas must be two numbers in [0, 1)", JSON.stringify(b));
    }
  };
}

/** Adam's and AdamW's step: state `m` and `v` per parameter, one fused kernel call each. */
export abstract class AdamBase<O extends AdamFamilyOptions> extends Optimizer<O> {
  readonly #name: string;
  readonly #kernel: "adamStep" | "adamwStep";

  /** Validates parameters and options (see {@linkcode Optimizer}). */
  protected constructor(
    name: string,
    kernel: "adamStep" | "adamwStep",
    params: readonly Tensor[] | readonly ParamGroup<O>[],
    defaults: O,
  ) {
    const check = checkAdamOptions(name);
    check(defaults, "");
    super(name, params, defaults, ["m", "v"], check);
    this.#name = name;
    this.#kernel = kernel;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    const op = `${this.#name}.step`;
    let index = 0;
    for (const group of this.paramGroups) {
      const { lr, betas: [beta1, beta2], eps, weightDecay } = group;
      for (const p of group.params) {
        const i = index++;
        const g = p.grad;
        if (!g) continue;
        if (g.shape.length !== p.ndim || g.shape.some((d, k) => d !== p.shape[k])) {
          throw new RangeError(
            `${op}: gradient ${fmt(g.shape)} of parameter ${i} differs from its shape ${
              fmt(p.shape)
            }`,
          );
        }
        if (!p.isContiguous || !g.isContiguous) {
          throw new TypeError(`${op}: parameter ${i} and its gradient must be contiguous`);
        }
        const m = this.slot(i, "m"), v = this.slot(i, "v");
        const step = ++this.steps[i];
        p.backend[this.#kernel](p._view(op), g._view(op), m._view(), v._view(), {
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
