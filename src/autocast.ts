/**
 * Mixed precision in the style of `torch.autocast`: inside `autocast("bf16", fn)`, matrix products
 * (`matmul`, `linear`) cast their inputs to bf16 and return bf16, so they run on bf16 tensor cores
 * with f32 accumulation; softmax, log-softmax, layer norm and cross-entropy take bf16 inputs but
 * compute in f32; elementwise ops promote mixed inputs to f32. Parameters stay f32 ("master
 * weights"): each forward casts them again, and the cast's backward hands the optimizer f32
 * gradients. bf16 has f32's exponent range, so no loss scaling is needed.
 *
 * Autocast applies to tensors on devices that compute in bf16 (CUDA). On the CPU it is a no-op
 * — the CPU backend stores bf16 but computes only in f32 — just as `torch.autocast("cuda")` leaves
 * CPU tensors alone; code written for the GPU therefore runs unchanged (in f32) on the CPU.
 * @module
 */

/** The reduced-precision dtype autocast can switch matrix products to. */
export type AutocastDType = "bf16";

let current: AutocastDType | null = null;

/**
 * Runs `fn` with matrix products in `dtype` (or with autocast off, for `null`), restoring the
 * previous setting afterwards; nests. `fn` must be synchronous: the setting covers only the code
 * that runs before it returns (wrap each forward pass, not an `await`ing loop).
 *
 * @param dtype "bf16", or null to turn autocast off inside
 * @param fn the forward pass
 * @returns what `fn` returned
 * @example
 * ```ts
 * import { autocast, linear, randn } from "@denograd/denograd";
 * const w = randn([4, 3], { requiresGrad: true }); // f32 master weight
 * const y = autocast("bf16", () => linear(randn([2, 3]), w));
 * console.log(y.dtype); // "f32" on the CPU (a no-op there); "bf16" on CUDA
 * ```
 */
export function autocast<T>(dtype: AutocastDType | null, fn: () => T): T {
  if (dtype !== null && dtype !== "bf16") {
    throw new TypeError(`autocast: dtype must be "bf16" or null, got ${JSON.stringify(dtype)}`);
  }
  if (typeof fn !== "function") throw new TypeError("autocast: fn must be a function");
  const prev = current;
  current = dtype;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/**
 * The dtype autocast asks for right now (null when off), whatever the device.
 * @example
 * ```ts
 * import { autocast, autocastDType } from "@denograd/denograd";
 * console.log(autocast("bf16", () => autocastDType())); // "bf16"
 * ```
 */
export function autocastDType(): AutocastDType | null {
  return current;
}

/**
 * @internal The dtype a matrix product on `device` computes in under the current autocast: null
 * when autocast is off or the device computes only in f32 (the CPU).
 */
export function autocastFor(device: string): AutocastDType | null {
  return current !== null && device !== "cpu" ? current : null;
}
