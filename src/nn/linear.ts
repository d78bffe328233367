/**
 * Linear: `y = x @ weight^T + bias`, PyTorch's layout (weight is (out, in)).
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { noGrad } from "../autograd.ts";
import { rand, randn, zeros } from "../ops/creation.ts";
import { linear } from "../ops/matmul.ts";
import type { Tensor } from "../tensor.ts";
import { Module, parameter } from "./module.ts";

/** Options of {@linkcode Linear}. */
export interface LinearOptions {
  /** Add a learned bias (default true). */
  bias?: boolean;
  /** Where the parameters live (default "cpu"). */
  device?: Device;
  /**
   * Draw the weight from N(0, std²) and start the bias at 0 (GPT-2's init). Without it the init is
   * PyTorch's default: weight and bias uniform in ±1/√inFeatures.
   */
  std?: number;
}

/** @internal N(0, std²) draws from the seeded generator, as a new parameter. */
export function normalParameter(shape: readonly number[], std: number, device?: Device): Tensor {
  if (!(std >= 0) || !Number.isFinite(std)) {
    throw new RangeError(`init: std must be a finite number >= 0, got ${std}`);
  }
  return parameter(noGrad(() => {
    const z = randn(shape, { device });
    if (std === 1) return z;
    const w = z.mul(std);
    z.dispose();
    return w;
  }));
}

/** @internal Uniform draws in [-bound, bound) from the seeded generator, as a new parameter. */
export function uniformParameter(shape: readonly number[], bound: number, device?: Device): Tensor {
  return parameter(noGrad(() => {
    const u = rand(shape, { device });
    const centered = u.sub(0.5);
    const w = centered.mul(2 * bound);
    u.dispose();
    centered.dispose();
    return w;
  }));
}

/** @internal Throws unless `n` is a positive integer. */
export function checkSize(op: string, name: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`${op}: ${name} must be a positive integer, got ${n}`);
  }
}

/**
 * A fully connected layer with fields `weight` (out, in) and `bias` (out) or null.
 *
 * @example
 * ```ts
 * import { Linear, randn } from "@denograd/denograd";
 * const fc = new Linear(8, 16);
 * console.log(fc.forward(randn([2, 5, 8])).shape); // [2, 5, 16]
 * ```
 */
export class Linear extends Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** (outFeatures, inFeatures). */
  weight: Tensor;
  /** (outFeatures), or null without bias. */
  bias: Tensor | null;

  /**
   * A layer with freshly initialised parameters.
   *
   * @param inFeatures size of the last input dim
   * @param outFeatures size of the last output dim
   */
  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    checkSize("Linear", "inFeatures", inFeatures);
    checkSize("Linear", "outFeatures", outFeatures);
    const { bias = true, device, std } = options;
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    if (std === undefined) {
      const bound = 1 / Math.sqrt(inFeatures);
      this.weight = uniformParameter([outFeatures, inFeatures], bound, device);
      this.bias = bias ? uniformParameter([outFeatures], bound, device) : null;
    } else {
      this.weight = normalParameter([outFeatures, inFeatures], std, device);
      this.bias = bias ? parameter(zeros([outFeatures], { device })) : null;
    }
  }

  /**
   * Applies the layer.
   *
   * @param x (..., inFeatures)
   * @returns (..., outFeatures)
   */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
