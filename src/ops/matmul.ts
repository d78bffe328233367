/**
 * Matrix products: `matmul` with NumPy/PyTorch batch broadcasting and `linear`. Transposed
 * operands are passed to the backend as strided views (BLAS transpose flags), never copied.
 * @module
 */

import { attach } from "../autograd.ts";
import type { Tensor } from "../tensor.ts";
import { broadcastShapes, fmt } from "../_shape.ts";
import {
  broadcastView,
  checkDType,
  checkSameDevice,
  checkTensor,
  empty,
  sumTo,
} from "./_helpers.ts";
import { add } from "./elementwise.ts";
import { reshape, squeeze, transpose, unsqueeze } from "./movement.ts";

/**
 * Matrix product with PyTorch semantics: 1-D operands are promoted to a row/column and the added
 * dim removed; batch dims (all but the last two) broadcast.
 *
 * @example
 * ```ts
 * import { matmul, randn } from "@denograd/denograd";
 * const y = matmul(randn([8, 1, 3, 4]), randn([5, 4, 2]));
 * console.log(y.shape); // [8, 5, 3, 2]
 * ```
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor("matmul", a);
  checkTensor("matmul", b, "other");
  checkSameDevice("matmul", a, b);
  checkDType("matmul", a, "f32");
  checkDType("matmul", b, "f32", "other");
  if (a.ndim === 0 || b.ndim === 0) {
    throw new RangeError(
      `matmul: both operands need >= 1 dim, got ${fmt(a.shape)} @ ${fmt(b.shape)}`,
    );
  }
  const k1 = a.shape[a.ndim - 1];
  const k2 = b.shape[Math.max(b.ndim - 2, 0)];
  if (k1 !== k2) {
    throw new RangeError(`matmul: inner dimensions differ: ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  }
  if (a.ndim === 1 || b.ndim === 1) {
    const a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
    const b2 = b.ndim === 1 ? unsqueeze(b, 1) : b;
    let out = matmulNd(a2, b2);
    if (a2 !== a) a2.dispose();
    if (b2 !== b) b2.dispose();
    // Drop the promoted dims again (views; disposing the parent only drops a reference).
    for (const [isVec, dim] of [[b.ndim === 1, -1], [a.ndim === 1, -2]] as const) {
      if (!isVec) continue;
      const o = squeeze(out, dim);
      out.dispose();
      out = o;
    }
    return out;
  }
  return matmulNd(a, b);
}

/** Both operands rank >= 2. */
function matmulNd(a: Tensor, b: Tensor): Tensor {
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.ndim - 1];
  const batch = broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = empty([...batch, m, n], "f32", a);
  a.backend.matmul(
    broadcastView(a, [...batch, m, k]),
    broadcastView(b, [...batch, k, n]),
    out._view(),
    { transA: false, transB: false },
  );
  return attach(out, "matmul", [a, b], (g) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) {
      const bt = transpose(b, -1, -2);
      const full = matmulNd(g, bt); // (..., M, N) @ (..., N, K)
      ga = sumTo(full, a.shape);
      if (ga !== full) full.dispose();
      bt.dispose();
    }
    if (b.requiresGrad) {
      if (b.ndim === 2 && a.ndim > 2) {
        // Shared weight: fold the batch into rows for one GEMM, (K, B*M) @ (B*M, N).
        const a2 = reshape(a, [-1, k]);
        const g2 = reshape(g, [-1, n]);
        const a2t = transpose(a2, 0, 1);
        gb = matmulNd(a2t, g2);
        for (const t of [a2, g2, a2t]) t.dispose();
      } else {
        const at = transpose(a, -1, -2);
        const full = matmulNd(at, g); // (..., K, M) @ (..., M, N)
        gb = sumTo(full, b.shape);
        if (gb !== full) full.dispose();
        at.dispose();
      }
    }
    return [ga, gb];
  });
}

/**
 * `x @ weight^T + bias`, PyTorch's layout: weight is (out_features, in_features).
 *
 * @example
 * ```ts
 * import { linear, randn } from "@denograd/denograd";
 * const y = linear(randn([2, 5, 8]), randn([16, 8]), randn([16]));
 * console.log(y.shape); // [2, 5, 16]
 * ```
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  checkTensor("linear", x);
  checkTensor("linear", weight, "weight");
  if (weight.ndim !== 2) {
    throw new RangeError(`linear: weight must be 2-D (out, in), got ${fmt(weight.shape)}`);
  }
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new RangeError(
      `linear: input features differ: input ${fmt(x.shape)} vs weight ${
        fmt(weight.shape)
      } (out, in)`,
    );
  }
  if (bias) {
    checkTensor("linear", bias, "bias");
    if (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0]) {
      throw new RangeError(
        `linear: bias must have shape [${weight.shape[0]}], got ${fmt(bias.shape)}`,
      );
    }
  }
  const wt = transpose(weight, 0, 1);
  const y = matmul(x, wt);
  wt.dispose();
  if (!bias) return y;
  const out = add(y, bias);
  y.dispose();
  return out;
}
