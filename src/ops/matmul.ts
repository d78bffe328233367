/**
 * Matrix products: `matmul` with NumPy/PyTorch batch broadcasting and `linear`. Transposed
 * operands are passed to the backend as strided views (BLAS transpose flags), never copied.
 * @module
 */

import { attach } from "../autograd.ts";
import { autocastFor } from "../autocast.ts";
import type { View } from "../backend/backend.ts";
import type { Tensor } from "../tensor.ts";
import { broadcastShapes, fmt, numel } from "../_shape.ts";
import {
  broadcastView,
  checkDType,
  checkSameDevice,
  checkTensor,
  empty,
  sumTo,
} from "./_helpers.ts";
import { contiguous, reshape, squeeze, transpose, unsqueeze } from "./movement.ts";
import { cast } from "./elementwise.ts";

/**
 * Inputs of a matrix product in the dtype they compute in: both cast to bf16 under autocast on a
 * bf16-capable device (differentiable casts: f32 masters get f32 gradients), else as given, which
 * must be one float dtype. `temps` are the casts, to dispose after the op.
 */
function matmulInputs(
  op: string,
  ts: Tensor[],
  names: string[],
): { ins: Tensor[]; temps: Tensor[] } {
  // Integer operands are an error whatever autocast says (f32 is the dtype they should be).
  ts.forEach((t, i) => {
    if (t.dtype === "i32") checkDType(op, t, "f32", names[i]);
  });
  const target = autocastFor(ts[0].device);
  const temps: Tensor[] = [];
  const ins = ts.map((t) => {
    if (target === null || t.dtype === target) return t;
    const c = cast(t, target);
    temps.push(c);
    return c;
  });
  if (ins.some((t) => t.dtype !== ins[0].dtype)) {
    throw new TypeError(
      `${op}: ${names.join(", ")} must share one dtype (f32 or bf16), got ${
        ins.map((t) => t.dtype).join(", ")
      }`,
    );
  }
  return { ins, temps };
}

/**
 * Matrix product with PyTorch semantics: 1-D operands are promoted to a row/column and the added
 * dim removed; batch dims (all but the last two) broadcast.
 *
 * @param a the left operand (..., M, K), or a K vector
 * @param b the right operand (..., K, N), or a K vector; the same float dtype as `a`
 * @returns a new tensor (...batch, M, N), without the dims a vector operand added
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
  const { ins, temps } = matmulInputs("matmul", [a, b], ["input", "other"]);
  if (temps.length > 0) {
    const out = matmul(ins[0], ins[1]);
    for (const t of temps) t.dispose(); // the graph keeps what backward needs
    return out;
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
  const out = empty([...batch, m, n], a.dtype, a);
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
 * @param x the input (..., in_features)
 * @param weight (out_features, in_features)
 * @param bias (out_features), or null / omitted for none
 * @returns a new tensor (..., out_features)
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
  checkSameDevice("linear", x, weight, ...(bias ? [bias] : []));
  const { ins, temps } = matmulInputs(
    "linear",
    bias ? [x, weight, bias] : [x, weight],
    ["input", "weight", "bias"],
  );
  if (temps.length > 0) {
    const out = linear(ins[0], ins[1], ins[2] ?? null);
    for (const t of temps) t.dispose();
    return out;
  }
  const dtype = x.dtype;
  const [n, k] = weight.shape;
  const rows = numel(x.shape.slice(0, -1)); // every leading dim folds into the GEMM's M
  const be = x.backend;
  const mat = (t: Tensor, r: number, c: number): View => ({
    ...t._view(),
    shape: [r, c],
    strides: [c, 1],
  });
  const wT: View = {
    ...weight._view(),
    shape: [k, n],
    strides: [weight.strides[1], weight.strides[0]],
  };
  const xc = contiguous(x);
  const y = empty([...x.shape.slice(0, -1), n], dtype, x);
  if (bias && be.linearBias && (bias.strides[0] === 1 || n === 1)) {
    be.linearBias(mat(xc, rows, k), weight._view(), bias._view(), mat(y, rows, n)); // one fused GEMM
  } else {
    be.matmul(mat(xc, rows, k), wT, mat(y, rows, n), { transA: false, transB: false });
    if (bias) {
      const yv = mat(y, rows, n);
      const bv: View = { ...bias._view(), shape: [rows, n], strides: [0, bias.strides[0]] };
      be.binary("add", yv, bv, yv);
    }
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return attach(y, "linear", inputs, (g) => {
    const gc = contiguous(g);
    const g2 = mat(gc, rows, n);
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (x.requiresGrad) { // (rows, N) @ (N, K)
      dx = empty(x.shape, dtype, g);
      be.matmul(g2, weight._view(), mat(dx, rows, k), { transA: false, transB: false });
    }
    if (weight.requiresGrad) { // g^T @ x: (N, rows) @ (rows, K), already in W's layout
      dw = empty([n, k], dtype, g);
      const gT: View = { ...g2, shape: [n, rows], strides: [1, n] };
      be.matmul(gT, mat(xc, rows, k), dw._view(), { transA: false, transB: false });
    }
    if (bias?.requiresGrad) { // column sums of g
      db = empty([n], dtype, g);
      const dbRow: View = { ...db._view(), shape: [1, n], strides: [n, 1] };
      if (dtype === "f32") be.reduce("sum", g2, [0], dbRow);
      else {
        // bf16: a GEMM with a row of ones sums in f32 inside cuBLAS, (1, rows) @ (rows, N).
        const ones = empty([1, rows], dtype, g);
        be.fill(ones._view(), 1);
        be.matmul(ones._view(), g2, dbRow, { transA: false, transB: false });
        ones.dispose();
      }
    }
    if (gc !== g) gc.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  }, xc !== x ? [xc] : []);
}
