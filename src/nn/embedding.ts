/**
 * Embedding: a lookup table of learned vectors, one row per id.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { embedding } from "../ops/nn.ts";
import type { Tensor } from "../tensor.ts";
import { checkSize, normalParameter } from "./linear.ts";
import { Module } from "./module.ts";

/** Options of {@linkcode Embedding}. */
export interface EmbeddingOptions {
  /** Where the table lives (default "cpu"). */
  device?: Device;
  /** Standard deviation of the N(0, std²) init (default 1, PyTorch's; GPT-2 uses 0.02). */
  std?: number;
}

/**
 * A table `weight` (numEmbeddings, embeddingDim); `forward(ids)` picks rows.
 *
 * @example
 * ```ts
 * import { Embedding, tensor } from "@denograd/denograd";
 * const wte = new Embedding(100, 8);
 * console.log(wte.forward(tensor([[1, 2, 3]], { dtype: "i32" })).shape); // [1, 3, 8]
 * ```
 */
export class Embedding extends Module {
  /** Number of rows (vocabulary or positions). */
  readonly numEmbeddings: number;
  /** Width of each row. */
  readonly embeddingDim: number;
  /** (numEmbeddings, embeddingDim). */
  weight: Tensor;

  /**
   * A table with N(0, std²) rows.
   *
   * @param numEmbeddings number of rows
   * @param embeddingDim width of each row
   */
  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    checkSize("Embedding", "numEmbeddings", numEmbeddings);
    checkSize("Embedding", "embeddingDim", embeddingDim);
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = normalParameter([numEmbeddings, embeddingDim], options.std ?? 1, options.device);
  }

  /**
   * Looks up the rows of `ids`.
   *
   * @param ids i32 ids of any shape, each in [0, numEmbeddings)
   * @returns (...ids.shape, embeddingDim)
   */
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}
