/**
 * Dropout as a module: active in training mode, the identity after `eval()`.
 * @module
 */

import { dropout } from "../ops/nn.ts";
import type { Tensor } from "../tensor.ts";
import { Module } from "./module.ts";

/**
 * Inverted dropout with probability `p`, masks from the seeded generator. In eval mode (or with
 * p = 0) `forward` returns its input itself.
 *
 * @example
 * ```ts
 * import { Dropout, ones } from "@denograd/denograd";
 * const drop = new Dropout(0.1);
 * const x = ones([4]);
 * console.log(drop.eval().forward(x) === x); // true
 * ```
 */
export class Dropout extends Module {
  /** Probability of zeroing each element. */
  readonly p: number;

  /**
   * A dropout layer.
   *
   * @param p probability in [0, 1]
   */
  constructor(p: number) {
    super();
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
      throw new RangeError(`Dropout: p must be a probability in [0, 1], got ${p}`);
    }
    this.p = p;
  }

  /**
   * Applies dropout in training mode.
   *
   * @param x any shape
   * @returns x's shape; `x` itself outside training
   */
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
