/**
 * Fused optimizer kernels: one pass over the parameter and its state per update.
 * @module
 */

import type { AdamWStepOptions, View } from "../backend.ts";
import { f32Of } from "./buffer.ts";
import { sizeOf } from "./strided.ts";
import { isContiguous } from "../../_shape.ts";

function dense(v: View, n: number, what: string): Float32Array {
  const a = f32Of(v, "adamwStep");
  if (!isContiguous(v.shape, v.strides)) {
    throw new TypeError(`adamwStep: ${what} must be contiguous`);
  }
  if (sizeOf(v.shape) !== n) {
    throw new RangeError(`adamwStep: ${what} has ${sizeOf(v.shape)} elements, param has ${n}`);
  }
  return a.subarray(v.offset, v.offset + n);
}

/**
 * torch.optim.AdamW's update, in the same order of operations: decay, moments, bias-corrected
 * step. Each element's arithmetic runs in f64 and is rounded to f32 when stored (torch rounds
 * every intermediate tensor to f32; the results agree to a few ulps).
 */
export function adamwStep(param: View, grad: View, m: View, v: View, o: AdamWStepOptions): void {
  const n = sizeOf(param.shape);
  const p = dense(param, n, "param"), g = dense(grad, n, "grad");
  const ma = dense(m, n, "m"), va = dense(v, n, "v");
  const { lr, beta1, beta2, eps, weightDecay, step } = o;
  const decay = 1 - lr * weightDecay;
  const c1 = 1 - beta1, c2 = 1 - beta2;
  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = ma[i] = ma[i] * beta1 + gi * c1;
    const vi = va[i] = va[i] * beta2 + c2 * gi * gi;
    p[i] = p[i] * decay - stepSize * (mi / (Math.sqrt(vi) / bc2Sqrt + eps));
  }
}
