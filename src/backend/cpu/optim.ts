/**
 * Fused optimizer kernels: one pass over the parameter and its state per update.
 * @module
 */

import type { AdamWStepOptions, SgdStepOptions, View } from "../backend.ts";
import { f32Of } from "./buffer.ts";
import { sizeOf } from "./strided.ts";
import { isContiguous } from "../../_shape.ts";

function dense(op: string, v: View, n: number, what: string): Float32Array {
  const a = f32Of(v, op);
  if (!isContiguous(v.shape, v.strides)) {
    throw new TypeError(`${op}: ${what} must be contiguous`);
  }
  if (sizeOf(v.shape) !== n) {
    throw new RangeError(`${op}: ${what} has ${sizeOf(v.shape)} elements, param has ${n}`);
  }
  return a.subarray(v.offset, v.offset + n);
}

/**
 * The Adam moments and bias-corrected step shared by Adam and AdamW. `decay` multiplies p first
 * (AdamW's decoupled decay; 1 for Adam) and `l2` adds l2 * p to the gradient (Adam's coupled
 * decay; 0 for AdamW).
 */
function adamLoop(
  op: string,
  param: View,
  grad: View,
  m: View,
  v: View,
  o: AdamWStepOptions,
  decay: number,
  l2: number,
): void {
  const n = sizeOf(param.shape);
  const p = dense(op, param, n, "param"), g = dense(op, grad, n, "grad");
  const ma = dense(op, m, n, "m"), va = dense(op, v, n, "v");
  const { lr, beta1, beta2, eps, step } = o;
  const c1 = 1 - beta1, c2 = 1 - beta2;
  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  for (let i = 0; i < n; i++) {
    const pi = p[i];
    // torch materialises g' as an f32 tensor; l2 == 0 leaves g exact (and inf params alone).
    const gi = l2 === 0 ? g[i] : Math.fround(g[i] + l2 * pi);
    const mi = ma[i] = ma[i] * beta1 + gi * c1;
    const vi = va[i] = va[i] * beta2 + c2 * gi * gi;
    p[i] = pi * decay - stepSize * (mi / (Math.sqrt(vi) / bc2Sqrt + eps));
  }
}

/**
 * torch.optim.AdamW's update, in the same order of operations: decay, moments, bias-corrected
 * step. Each element's arithmetic runs in f64 and is rounded to f32 when stored (torch rounds
 * every intermediate tensor to f32; the results agree to a few ulps).
 */
export function adamwStep(param: View, grad: View, m: View, v: View, o: AdamWStepOptions): void {
  adamLoop("adamwStep", param, grad, m, v, o, 1 - o.lr * o.weightDecay, 0);
}

/** torch.optim.Adam's update: L2 decay folded into the gradient, then AdamW's moments and step. */
export function adamStep(param: View, grad: View, m: View, v: View, o: AdamWStepOptions): void {
  adamLoop("adamStep", param, grad, m, v, o, 1, o.weightDecay);
}

/**
 * torch.optim.SGD's update (see Backend.sgdStep), one pass; each element's arithmetic runs in
 * f64, with g' rounded to f32 as torch stores it.
 */
export function sgdStep(param: View, grad: View, buf: View | null, o: SgdStepOptions): void {
  const op = "sgdStep";
  const n = sizeOf(param.shape);
  const p = dense(op, param, n, "param"), g = dense(op, grad, n, "grad");
  const { lr, momentum, dampening, weightDecay, nesterov, firstStep } = o;
  if (momentum === 0) {
    if (buf !== null) throw new TypeError(`${op}: momentumBuf must be null when momentum is 0`);
    for (let i = 0; i < n; i++) {
      p[i] -= lr * (weightDecay === 0 ? g[i] : Math.fround(g[i] + weightDecay * p[i]));
    }
    return;
  }
  if (buf === null) {
    throw new TypeError(`${op}: momentumBuf is required when momentum is ${momentum}`);
  }
  const b = dense(op, buf, n, "momentumBuf");
  const keep = 1 - dampening;
  for (let i = 0; i < n; i++) {
    const gi = weightDecay === 0 ? g[i] : Math.fround(g[i] + weightDecay * p[i]);
    b[i] = firstStep ? gi : momentum * b[i] + keep * gi;
    p[i] -= lr * (nesterov ? Math.fround(gi + momentum * b[i]) : b[i]);
  }
}
