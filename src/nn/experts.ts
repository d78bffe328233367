/**
 * The experts of a mixture-of-experts layer: E linear layers with stacked parameters
 * ({@linkcode ExpertLinear}) and E GPT-2 MLPs built from them ({@linkcode Experts}), each run on
 * an (E, rows, features) buffer as one batched GEMM per layer rather than a loop over experts.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { batchedLinear } from "../ops/batched_linear.ts";
import { zeros } from "../ops/creation.ts";
import type { Tensor } from "../tensor.ts";
import { tidy } from "../memory.ts";
import { GELU } from "./gelu.ts";
import { checkSize, normalParameter, uniformParameter } from "./linear.ts";
import { Module, parameter } from "./module.ts";

/**
 * E independent linear layers with stacked parameters, applied to E groups of rows by
 * {@linkcode batchedLinear}: `weight` (E, out, in) (each slice in Linear's layout), `bias` (E, out).
 *
 * @example
 * ```ts
 * import { ExpertLinear, randn } from "@denograd/denograd";
 * const fc = new ExpertLinear(4, 8, 16);
 * console.log(fc.forward(randn([4, 10, 8])).shape); // [4, 10, 16]
 * ```
 */
export class ExpertLinear extends Module {
  /** (experts, outFeatures, inFeatures). */
  weight: Tensor;
  /** (experts, outFeatures), or null without bias. */
  bias: Tensor | null;

  /**
   * Freshly initialised experts: like {@linkcode Linear}, N(0, std²) weights and zero biases with
   * `std`, else PyTorch's uniform ±1/√inFeatures for both.
   *
   * @param experts E
   * @param inFeatures size of the input rows
   * @param outFeatures size of the output rows
   */
  constructor(
    experts: number,
    inFeatures: number,
    outFeatures: number,
    options: { bias?: boolean; device?: Device; std?: number } = {},
  ) {
    super();
    checkSize("ExpertLinear", "experts", experts);
    checkSize("ExpertLinear", "inFeatures", inFeatures);
    checkSize("ExpertLinear", "outFeatures", outFeatures);
    const { bias = true, device, std } = options;
    if (std === undefined) {
      const bound = 1 / Math.sqrt(inFeatures);
      this.weight = uniformParameter([experts, outFeatures, inFeatures], bound, device);
      this.bias = bias ? uniformParameter([experts, outFeatures], bound, device) : null;
    } else {
      this.weight = normalParameter([experts, outFeatures, inFeatures], std, device);
      this.bias = bias ? parameter(zeros([experts, outFeatures], { device })) : null;
    }
  }

  /**
   * Applies expert e to row group e.
   *
   * @param x (E, M, inFeatures)
   * @returns (E, M, outFeatures)
   */
  forward(x: Tensor): Tensor {
    return batchedLinear(x, this.weight, this.bias);
  }
}

/**
 * E GPT-2 MLPs side by side: `c_fc` (C -> H), tanh GELU, `c_proj` (H -> C), run on an
 * (E, capacity, C) dispatch buffer as two batched GEMMs.
 *
 * @example
 * ```ts
 * import { Experts, randn } from "@denograd/denograd";
 * console.log(new Experts(4, 8, 32).forward(randn([4, 5, 8])).shape); // [4, 5, 8]
 * ```
 */
export class Experts extends Module {
  /** (E, H, C). */
  c_fc: ExpertLinear;
  /** The nonlinearity. */
  act: GELU;
  /** (E, C, H). */
  c_proj: ExpertLinear;

  /**
   * E fresh expert MLPs, initialised as {@linkcode ExpertLinear} does.
   *
   * @param experts E
   * @param nEmbd model width C
   * @param hidden expert width H
   */
  constructor(
    experts: number,
    nEmbd: number,
    hidden: number,
    options: { bias?: boolean; device?: Device; std?: number; projStd?: number } = {},
  ) {
    super();
    const { bias, device, std, projStd = std } = options;
    this.c_fc = new ExpertLinear(experts, nEmbd, hidden, { bias, device, std });
    this.act = new GELU();
    this.c_proj = new ExpertLinear(experts, hidden, nEmbd, { bias, device, std: projStd });
  }

  /**
   * Runs expert e on row group e.
   *
   * @param x (E, M, C)
   * @returns (E, M, C)
   */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.c_fc.forward(x); // (E, M, H)
      return this.c_proj.forward(this.act.forward(h)); // (E, M, C)
    });
  }
}
