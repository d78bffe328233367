/**
 * Moving tensors between devices, differentiably: the gradient goes back to the source device.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { canonicalDevice, getBackend } from "../backend/registry.ts";
import { toBf16Array } from "../dtype.ts";
import { attach, noGrad } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { checkTensor } from "./_helpers.ts";
import { contiguous } from "./movement.ts";

/**
 * `x` on `device` ("cpu", "cuda", "cuda:N"): a copy through host memory when the device differs,
 * else a new tensor sharing x's memory (so disposing one never frees the other's data early).
 * Gradients flow back to x on its own device.
 *
 * @param x the tensor to move
 * @param device the destination device
 * @returns a tensor of x's shape and dtype on `device`
 * @example
 * ```ts
 * import { tensor, to } from "@denograd/denograd";
 * const x = tensor([1, 2], { requiresGrad: true });
 * const y = to(x, "cpu").mul(3).sum();
 * y.backward();
 * console.log(x.grad!.toArray()); // [3, 3]
 * ```
 */
export function to(x: Tensor, device: Device): Tensor {
  checkTensor("to", x);
  if (typeof device !== "string") {
    throw new TypeError(`to: device must be a string like "cuda:0", got ${typeof device}`);
  }
  const target = getBackend(device);
  let out: Tensor;
  if (target === x.backend) out = x.alias();
  else {
    // Read the values (a sync point on an asynchronous device) and write them to the target.
    const src = x.isContiguous ? x : noGrad(() => contiguous(x));
    const v = src._view("to");
    const host = src.backend.read(v.buffer, src.dtype, src.offset, src.size);
    if (src !== x) src.dispose();
    out = Tensor.empty(x.shape, x.dtype, target);
    // bf16 reads come back widened to f32; narrowing them again is exact.
    const bits = x.dtype === "bf16" ? toBf16Array(host) : host;
    if (bits.length > 0) target.write(out.storage.buffer, bits);
  }
  const from = canonicalDevice(x.device);
  return attach(out, "to", [x], (g) => [to(g, from)]);
}
