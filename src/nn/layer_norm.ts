/**
 * LayerNorm over the last dim, with a learned scale and shift.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { ones, zeros } from "../ops/creation.ts";
import { layerNorm } from "../ops/nn.ts";
import type { Tensor } from "../tensor.ts";
import { checkSize } from "./linear.ts";
import { Module, parameter } from "./module.ts";

/** Options of {@linkcode LayerNorm}. */
export interface LayerNormOptions {
  /** Added to the variance (default 1e-5, GPT-2's and PyTorch's). */
  eps?: number;
  /** Learn a shift `bias` (default true). */
  bias?: boolean;
  /** Where the parameters live (default "cpu"). */
  device?: Device;
}

/**
 * Normalises the last dim to zero mean and unit (biased) variance, then scales by `weight`
 * (init 1) and shifts by `bias` (init 0).
 *
 * @example
 * ```ts
 * import { LayerNorm, randn } from "@denograd/denograd";
 * const ln = new LayerNorm(8);
 * console.log(ln.forward(randn([2, 8])).shape); // [2, 8]
 * ```
 */
export class LayerNorm extends Module {
  /** Size of the normalised (last) dim. */
  readonly dim: number;
  /** Added to the variance. */
  readonly eps: number;
  /** (dim), init 1. */
  weight: Tensor;
  /** (dim), init 0; null without bias. */
  bias: Tensor | null;

  /**
   * A LayerNorm with weight 1 and bias 0.
   *
   * @param dim size of the last input dim
   */
  constructor(dim: number, options: LayerNormOptions = {}) {
    super();
    checkSize("LayerNorm", "dim", dim);
    const { eps = 1e-5, bias = true, device } = options;
    if (!(eps >= 0)) throw new RangeError(`LayerNorm: eps must be >= 0, got ${eps}`);
    this.dim = dim;
    this.eps = eps;
    this.weight = parameter(ones([dim], { device }));
    this.bias = bias ? parameter(zeros([dim], { device })) : null;
  }

  /**
   * Normalises the last dim.
   *
   * @param x (..., dim)
   * @returns (..., dim)
   */
  forward(x: Tensor): Tensor {
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}
