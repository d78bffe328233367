/**
 * The transformer's feed-forward part: expand 4x, GELU, project back.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import type { Tensor } from "../tensor.ts";
import { tidy } from "../memory.ts";
import { Dropout } from "./dropout.ts";
import { GELU } from "./gelu.ts";
import { checkSize, Linear } from "./linear.ts";
import { Module } from "./module.ts";

/** Options of {@linkcode MLP}. */
export interface MLPOptions {
  /** Dropout on the output (default 0). */
  dropout?: number;
  /** Biases in c_fc and c_proj (default true). */
  bias?: boolean;
  /** Where the parameters live (default "cpu"). */
  device?: Device;
  /** Init std of c_fc's weight (default: PyTorch's uniform init); biases start at 0. */
  std?: number;
  /** Init std of c_proj's weight (default: `std`). */
  projStd?: number;
}

/**
 * GPT-2's MLP with Hugging Face's field names: `c_fc` (C -> 4C), `act` (tanh GELU), `c_proj`
 * (4C -> C), `dropout`.
 *
 * @example
 * ```ts
 * import { MLP, randn } from "@denograd/denograd";
 * console.log(new MLP(16).forward(randn([2, 5, 16])).shape); // [2, 5, 16]
 * ```
 */
export class MLP extends Module {
  /** (C -> 4C). */
  c_fc: Linear;
  /** The nonlinearity. */
  act: GELU;
  /** (4C -> C). */
  c_proj: Linear;
  /** Dropout on the output, before the residual add. */
  dropout: Dropout;

  /**
   * An MLP with fresh parameters.
   *
   * @param nEmbd model width C
   */
  constructor(nEmbd: number, options: MLPOptions = {}) {
    super();
    checkSize("MLP", "nEmbd", nEmbd);
    const { dropout = 0, bias = true, device, std, projStd = std } = options;
    this.c_fc = new Linear(nEmbd, 4 * nEmbd, { bias, device, std });
    this.act = new GELU();
    this.c_proj = new Linear(4 * nEmbd, nEmbd, { bias, device, std: projStd });
    this.dropout = new Dropout(dropout);
  }

  /**
   * Runs the MLP.
   *
   * @param x (B, T, C)
   * @returns (B, T, C)
   */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.c_fc.forward(x); // (B, T, 4C)
      const a = this.act.forward(h); // (B, T, 4C)
      const y = this.c_proj.forward(a); // (B, T, C)
      return this.dropout.forward(y);
    });
  }
}
