/**
 * ALiBi (Press et al. 2022, "Train Short, Test Long"): no position embedding; each head adds
 * -slope * distance to its attention scores. The fused attention op takes the slopes and applies
 * the bias itself, so no (T, S) table is built.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { tensor } from "../ops/creation.ts";
import type { Tensor } from "../tensor.ts";

/**
 * The paper's per-head slopes: for n a power of two the geometric sequence starting at and with
 * ratio 2^(-8/n); otherwise those of the closest smaller power of two p, followed by every
 * other slope of the 2p-head sequence (the reference implementation's rule).
 *
 * @param nHead number of heads
 * @returns (nHead) slopes, largest first
 * @example
 * ```ts
 * import { alibiSlopes } from "@denograd/denograd";
 * console.log(Array.from(alibiSlopes(4))); // [0.25, 0.0625, 0.015625, 0.00390625]
 * ```
 */
export function alibiSlopes(nHead: number): Float32Array {
  if (!Number.isInteger(nHead) || nHead < 1) {
    throw new RangeError(`alibiSlopes: nHead must be a positive integer, got ${nHead}`);
  }
  const powerOfTwo = (n: number) => {
    const start = 2 ** (-(2 ** -(Math.log2(n) - 3)));
    return Array.from({ length: n }, (_, i) => start ** (i + 1));
  };
  const p = 2 ** Math.floor(Math.log2(nHead));
  const slopes = powerOfTwo(p);
  if (p < nHead) {
    slopes.push(...powerOfTwo(2 * p).filter((_, i) => i % 2 === 0).slice(0, nHead - p));
  }
  return Float32Array.from(slopes);
}

/**
 * The slopes as a tensor on `device` (what the fused attention op takes).
 *
 * @param nHead number of heads
 * @returns (nHead) f32
 * @example
 * ```ts
 * import { alibiSlopesTensor } from "@denograd/denograd";
 * console.log(alibiSlopesTensor(8).shape); // [8]
 * ```
 */
export function alibiSlopesTensor(nHead: number, device?: Device): Tensor {
  return tensor(alibiSlopes(nHead), { shape: [nHead], device });
}
