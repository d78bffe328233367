/**
 * GELU as a module (the tanh approximation GPT-2 was trained with).
 * @module
 */

import { gelu } from "../ops/elementwise.ts";
import type { Tensor } from "../tensor.ts";
import { Module } from "./module.ts";

/**
 * `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, PyTorch's `GELU(approximate="tanh")`.
 *
 * @example
 * ```ts
 * import { GELU, tensor } from "@denograd/denograd";
 * console.log(new GELU().forward(tensor([0, 1])).toArray()); // [0, ~0.8412]
 * ```
 */
export class GELU extends Module {
  /** The approximation used; only "tanh" is implemented. */
  readonly approximate: "tanh" = "tanh";

  /**
   * Applies GELU elementwise.
   *
   * @param x any shape
   * @returns x's shape
   */
  forward(x: Tensor): Tensor {
    return gelu(x);
  }
}
