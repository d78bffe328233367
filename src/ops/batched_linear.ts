/**
 * `batchedLinear`: G independent linear layers applied to G groups of rows in one batched GEMM
 * (the experts of a mixture-of-experts layer). Forward and backward are each one batched matmul
 * per product, with the transposes handed to the backend as strides, so the weight gradient comes
 * out contiguous in the weight's own (G, out, in) layout.
 * @module
 */

import type { View } from "../backend/backend.ts";
import { attach } from "../autograd.ts";
import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { checkDType, checkSameDevice, checkTensor, empty } from "./_helpers.ts";
import { contiguous } from "./movement.ts";

/** A contiguous (G, R, C) tensor's view, optionally as its per-group transpose (G, C, R). */
function groups(t: Tensor, transposed = false): View {
  const v = t._view();
  const [g, r, c] = t.shape;
  return transposed
    ? { ...v, shape: [g, c, r], strides: [r * c, 1, c] }
    : { ...v, shape: [g, r, c], strides: [r * c, c, 1] };
}

/**
 * `out[g] = x[g] @ weight[g]^T + bias[g]` for every group g: PyTorch's `torch.baddbmm(bias,
 * x, weight.transpose(1, 2))`, i.e. a separate {@linkcode linear} per group with weights stacked
 * in Linear's (out, in) layout.
 *
 * @param x (G, M, K) rows of each group
 * @param weight (G, N, K) one (out, in) matrix per group
 * @param bias (G, N) or null
 * @returns (G, M, N)
 * @throws {TypeError} for non-tensors, wrong dtypes or mixed devices
 * @throws {RangeError} for shapes that do not fit together
 * @example
 * ```ts
 * import { batchedLinear, randn } from "@denograd/denograd";
 * const y = batchedLinear(randn([4, 10, 8]), randn([4, 16, 8]), randn([4, 16]));
 * console.log(y.shape); // [4, 10, 16]
 * ```
 */
export function batchedLinear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  checkTensor("batchedLinear", x);
  checkTensor("batchedLinear", weight, "weight");
  checkDType("batchedLinear", x, "f32");
  checkDType("batchedLinear", weight, "f32", "weight");
  if (x.ndim !== 3 || weight.ndim !== 3) {
    throw new RangeError(
      `batchedLinear: expected x (G, M, K) and weight (G, N, K), got ${fmt(x.shape)} and ${
        fmt(weight.shape)
      }`,
    );
  }
  const [g, m, k] = x.shape;
  const [gw, n, kw] = weight.shape;
  if (gw !== g || kw !== k) {
    throw new RangeError(
      `batchedLinear: x ${fmt(x.shape)} (G, M, K) does not fit weight ${
        fmt(weight.shape)
      } (G, N, K)`,
    );
  }
  if (bias) {
    checkTensor("batchedLinear", bias, "bias");
    checkDType("batchedLinear", bias, "f32", "bias");
    if (bias.ndim !== 2 || bias.shape[0] !== g || bias.shape[1] !== n) {
      throw new RangeError(
        `batchedLinear: bias must have shape [${g}, ${n}] (G, N), got ${fmt(bias.shape)}`,
      );
    }
  }
  checkSameDevice("batchedLinear", x, weight, ...(bias ? [bias] : []));
  const be = x.backend;
  const xc = contiguous(x);
  const wc = contiguous(weight);
  const y = empty([g, m, n], "f32", x);
  const yv = groups(y);
  be.matmul(groups(xc), groups(wc, true), yv, { transA: false, transB: false }); // (G,M,K)@(G,K,N)
  if (bias) {
    // The bias row of each group broadcast over its M rows (stride 0).
    const bv = bias._view();
    be.binary("add", yv, {
      ...bv,
      shape: [g, m, n],
      strides: [bias.strides[0], 0, bias.strides[1]],
    }, yv);
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const saved = [...(xc !== x ? [xc] : []), ...(wc !== weight ? [wc] : [])];
  return attach(y, "batchedLinear", inputs, (grad) => {
    const gc = contiguous(grad);
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (x.requiresGrad) { // (G, M, N) @ (G, N, K)
      dx = empty([g, m, k], "f32", grad);
      be.matmul(groups(gc), groups(wc), groups(dx), { transA: false, transB: false });
    }
    if (weight.requiresGrad) { // grad^T @ x: (G, N, M) @ (G, M, K), already in weight's layout
      dw = empty([g, n, k], "f32", grad);
      be.matmul(groups(gc, true), groups(xc), groups(dw), { transA: false, transB: false });
    }
    if (bias?.requiresGrad) { // sums of grad over each group's rows
      db = empty([g, n], "f32", grad);
      be.reduce("sum", groups(gc), [1], { ...db._view(), shape: [g, 1, n], strides: [n, n, 1] });
    }
    if (gc !== grad) gc.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  }, saved);
}
