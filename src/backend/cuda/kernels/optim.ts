/**
 * Wrappers of cuda/optim.cu: fused Adam/AdamW and SGD updates. param and state are f32 (master
 * copies), the gradient f32 or bf16; all contiguous with equal element counts. Step-dependent
 * scalars (bias corrections) are computed here in f64 and passed as f32.
 * @module
 */

import type { AdamWStepOptions, SgdStepOptions, View } from "../../backend.ts";
import type { KernelLauncher } from "../launcher.ts";
import { expectContiguous, expectDType, strideGrid } from "./_layout.ts";
import { numel } from "../../../_shape.ts";

/** Validates the update's views; returns their element count. */
function checkViews(op: string, param: View, grad: View, state: Record<string, View>): number {
  const n = numel(param.shape);
  expectDType(op, "param", param, ["f32"]);
  expectDType(op, "grad", grad, ["f32", "bf16"]);
  for (const [what, v] of [["param", param], ["grad", grad], ...Object.entries(state)] as const) {
    if (what !== "param" && what !== "grad") expectDType(op, what, v, ["f32"]);
    expectContiguous(op, what, v);
    if (numel(v.shape) !== n) {
      throw new RangeError(`${op}: ${what} has ${numel(v.shape)} elements, param has ${n}`);
    }
  }
  return n;
}

function checkAdamOptions(op: string, o: AdamWStepOptions): void {
  if (!Number.isInteger(o.step) || o.step < 1) {
    throw new RangeError(`${op}: step must be an integer >= 1, got ${o.step}`);
  }
}

/** Shared launch of adam_step_*: `decay` scales p first (AdamW), `l2` is added to g (Adam). */
function adamLaunch(
  l: KernelLauncher,
  op: string,
  param: View,
  grad: View,
  m: View,
  v: View,
  o: AdamWStepOptions,
  decay: number,
  l2: number,
): void {
  const n = checkViews(op, param, grad, { m, v });
  checkAdamOptions(op, o);
  if (n === 0) return;
  l.launch(`adam_step_${grad.dtype}`, strideGrid(n), [256, 1, 1], 0, [
    { ptr: l.address(param) },
    { ptr: l.address(m) },
    { ptr: l.address(v) },
    { ptr: l.address(grad) },
    { i64: BigInt(n) },
    { f32: o.beta1 },
    { f32: o.beta2 },
    { f32: 1 - o.beta1 },
    { f32: 1 - o.beta2 },
    { f32: o.lr / (1 - o.beta1 ** o.step) },
    { f32: Math.sqrt(1 - o.beta2 ** o.step) },
    { f32: o.eps },
    { f32: decay },
    { f32: l2 },
  ]);
}

/** torch.optim.AdamW: p *= 1 - lr * weightDecay, then the bias-corrected Adam step. */
export function adamwStep(
  l: KernelLauncher,
  param: View,
  grad: View,
  m: View,
  v: View,
  options: AdamWStepOptions,
): void {
  adamLaunch(l, "adamwStep", param, grad, m, v, options, 1 - options.lr * options.weightDecay, 0);
}

/** torch.optim.Adam: g' = g + weightDecay * p, then the bias-corrected Adam step. */
export function adamStep(
  l: KernelLauncher,
  param: View,
  grad: View,
  m: View,
  v: View,
  options: AdamWStepOptions,
): void {
  adamLaunch(l, "adamStep", param, grad, m, v, options, 1, options.weightDecay);
}

/** torch.optim.SGD (see Backend.sgdStep); `momentumBuf` is null exactly when momentum == 0. */
export function sgdStep(
  l: KernelLauncher,
  param: View,
  grad: View,
  momentumBuf: View | null,
  options: SgdStepOptions,
): void {
  const op = "sgdStep";
  if (options.momentum === 0 && momentumBuf !== null) {
    throw new TypeError(`${op}: momentumBuf must be null when momentum is 0`);
  }
  if (options.momentum !== 0 && momentumBuf === null) {
    throw new TypeError(`${op}: momentumBuf is required when momentum is ${options.momentum}`);
  }
  const n = checkViews(op, param, grad, momentumBuf ? { momentumBuf } : {});
  if (n === 0) return;
  l.launch(`sgd_step_${grad.dtype}`, strideGrid(n), [256, 1, 1], 0, [
    { ptr: l.address(param) },
    { ptr: momentumBuf ? l.address(momentumBuf) : 0n },
    { ptr: l.address(grad) },
    { i64: BigInt(n) },
    { f32: options.lr },
    { f32: options.momentum },
    { f32: 1 - options.dampening },
    { f32: options.weightDecay },
    { i32: options.nesterov ? 1 : 0 },
    { i32: options.firstStep ? 1 : 0 },
  ]);
}
