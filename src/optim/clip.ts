/**
 * Gradient clipping by global norm, computed on the device with one read back.
 * @module
 */

import { Tensor } from "../tensor.ts";
import { noGrad } from "../autograd.ts";
import { keep, tidy } from "../memory.ts";
import { full } from "../ops/creation.ts";
import { stack } from "../ops/movement.ts";
import { broadcastView } from "../ops/_helpers.ts";

/**
 * Scales the gradients of `params` in place so their global L2 norm is at most `maxNorm`, as
 * torch.nn.utils.clip_grad_norm_ does (coefficient `min(1, maxNorm / (norm + 1e-6))`, applied on
 * the device without a branch). Parameters without a gradient are skipped.
 *
 * @returns the global norm before clipping (the one synchronising read); 0 with no gradients
 * @example
 * ```ts
 * import { clipGradNorm, tensor } from "@denograd/denograd";
 * const w = tensor([3, 4], { requiresGrad: true });
 * w.mul(w).mul(0.5).sum().backward(); // grad = w = [3, 4], norm 5
 * console.log(clipGradNorm([w], 1), w.grad!.toArray()); // 5, [0.6, 0.8]
 * ```
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (typeof maxNorm !== "number" || !(maxNorm > 0)) {
    throw new RangeError(`clipGradNorm: maxNorm must be a number > 0, got ${maxNorm}`);
  }
  const owners = gradOwners("clipGradNorm", params);
  if (owners.length === 0) return 0;
  const norm = noGrad(() =>
    tidy(() => {
      const total = totalNorm(owners); // ()
      const coef = full([], maxNorm, { device: total.device }).div(total.add(1e-6)).minimum(1);
      for (const p of owners) {
        const g = p.grad!;
        if (g.storage.shared) {
          // A gradient may share memory with another (backward can hand one tensor to two
          // inputs): scale a private copy so the other is not scaled twice.
          p.grad = keep(g.mul(coef));
          g.dispose();
          continue;
        }
        const v = g._view("clipGradNorm");
        g.backend.binary("mul", v, broadcastView(coef, g.shape), v);
      }
      return total;
    })
  );
  const value = norm.item();
  norm.dispose();
  return value;
}

/** The parameters that hold a gradient, checked to be tensors on one device. */
function gradOwners(op: string, params: readonly Tensor[]): Tensor[] {
  if (!Array.isArray(params) || !params.every((p) => p instanceof Tensor)) {
    throw new TypeError(`${op}: params must be an array of tensors`);
  }
  const owners = params.filter((p) => p.grad && !p.grad.disposed);
  const devices = new Set(owners.map((p) => p.grad!.device));
  if (devices.size > 1) {
    throw new TypeError(`${op}: gradients are on several devices: ${[...devices]}`);
  }
  return owners;
}

/** The global L2 norm of the owners' gradients, on the device: shape (). */
function totalNorm(owners: readonly Tensor[]): Tensor {
  const sq = owners.map((p) => p.grad!.mul(p.grad!).sum()); // () each
  return (sq.length === 1 ? sq[0] : stack(sq).sum()).sqrt();
}

/**
 * The global L2 norm of the gradients of `params`, as {@linkcode clipGradNorm} measures it but
 * without scaling anything (a training loop's health check when clipping is off).
 *
 * @returns the norm (one synchronising read); 0 with no gradients; NaN or Infinity when a
 *   gradient holds one
 * @example
 * ```ts
 * import { gradNorm, tensor } from "@denograd/denograd";
 * const w = tensor([3, 4], { requiresGrad: true });
 * w.mul(w).mul(0.5).sum().backward(); // grad = w = [3, 4]
 * console.log(gradNorm([w])); // 5
 * ```
 */
export function gradNorm(params: readonly Tensor[]): number {
  const owners = gradOwners("gradNorm", params);
  if (owners.length === 0) return 0;
  const norm = noGrad(() => tidy(() => totalNorm(owners)));
  const value = norm.item();
  norm.dispose();
  return value;
}
