/**
 * Elementwise kernels: fill, unary, binary (broadcasting through stride-0 views) and where.
 * Dims are merged first (`mergeDims`); then each innermost row runs a specialised loop: dense
 * rows and scalar-broadcast rows run on 0-based subarrays (V8 compiles those ~2x faster than
 * offset-indexed loops), anything else runs the strided loop.
 * @module
 */

import type { BinaryOp, UnaryOp, View } from "../backend.ts";
import type { TypedArray } from "../../dtype.ts";
import { arrayOf } from "./buffer.ts";
import { copyBf16, fillBf16 } from "./bf16.ts";
import { copyStrided, forEachRow, sizeOf } from "./strided.ts";
import { unaryDense, unaryScalar, unaryStrided } from "./unary_loops.ts";
import { mergeDims } from "../../_shape.ts";
import {
  binaryDense,
  binaryScalar,
  binaryScalarB,
  binaryStrided,
  swappedOp,
} from "./binary_loops.ts";

// Below this row length a subarray (~40 ns to create) costs more than the faster loop saves.
const DENSE_ROW_MIN = 32;

/** out = value everywhere in the (possibly strided) view. */
export function fill(out: View, value: number): void {
  if (sizeOf(out.shape) === 0) return;
  if (out.dtype === "bf16") return fillBf16(out, value);
  const o = arrayOf(out, "fill");
  const L = mergeDims(out.shape, [out.strides]);
  const r = L.shape.length - 1;
  const n = L.shape[r], s = L.strides[0][r];
  forEachRow(L.shape, L.strides, [out.offset], (p) => {
    if (s === 1) o.fill(value, p[0], p[0] + n);
    else for (let k = 0, i = p[0]; k < n; k++, i += s) o[i] = value;
  });
}

/**
 * out = op(x); `copy` also casts between dtypes (f32 -> i32 truncates toward zero; to bf16 rounds
 * to nearest even). bf16 supports only `copy`.
 */
export function unary(op: UnaryOp, x: View, out: View): void {
  if (sizeOf(out.shape) === 0) return;
  if (op === "copy" && (x.dtype === "bf16" || out.dtype === "bf16")) return copyBf16(x, out);
  const xa = arrayOf(x, op), oa = arrayOf(out, op);
  if (op === "copy") {
    copyStrided(out.shape, xa, x.offset, x.strides, oa, out.offset, out.strides);
    return;
  }
  const L = mergeDims(out.shape, [x.strides, out.strides]);
  const r = L.shape.length - 1;
  const n = L.shape[r], xs = L.strides[0][r], os = L.strides[1][r];
  if (xa instanceof Float32Array && oa instanceof Float32Array) {
    const dense = xs === 1 && os === 1 && (n >= DENSE_ROW_MIN || r === 0);
    forEachRow(L.shape, L.strides, [x.offset, out.offset], (p) => {
      if (dense) unaryDense(op, xa.subarray(p[0], p[0] + n), oa.subarray(p[1], p[1] + n));
      else unaryStrided(op, n, xa, p[0], xs, oa, p[1], os);
    });
    return;
  }
  const f = unaryScalar(op);
  forEachRow(L.shape, L.strides, [x.offset, out.offset], (p) => {
    for (let k = 0, xi = p[0], oi = p[1]; k < n; k++, xi += xs, oi += os) oa[oi] = f(xa[xi]);
  });
}

/**
 * out = a op b. a and b share a dtype; out is f32 for arithmetic on f32 and i32 for
 * comparisons. All three views have out.shape (broadcast inputs carry stride 0).
 */
export function binary(op: BinaryOp, a: View, b: View, out: View): void {
  if (sizeOf(out.shape) === 0) return;
  const aa = arrayOf(a, op), ba = arrayOf(b, op), oa = arrayOf(out, op);
  const L = mergeDims(out.shape, [a.strides, b.strides, out.strides]);
  const r = L.shape.length - 1;
  const n = L.shape[r], as = L.strides[0][r], bs = L.strides[1][r], os = L.strides[2][r];
  const offsets = [a.offset, b.offset, out.offset];
  if (!(aa instanceof Float32Array && ba instanceof Float32Array)) {
    const f = binaryScalar(op);
    forEachRow(L.shape, L.strides, offsets, (p) => {
      for (let k = 0, ai = p[0], bi = p[1], oi = p[2]; k < n; k++, ai += as, bi += bs, oi += os) {
        oa[oi] = f(aa[ai], ba[bi]);
      }
    });
    return;
  }
  const long = n >= DENSE_ROW_MIN || r === 0;
  const swapped = swappedOp(op);
  if (long && os === 1 && as === 1 && bs === 1) {
    forEachRow(L.shape, L.strides, offsets, (p) => {
      binaryDense(
        op,
        aa.subarray(p[0], p[0] + n),
        ba.subarray(p[1], p[1] + n),
        oa.subarray(p[2], p[2] + n),
      );
    });
  } else if (long && os === 1 && as === 1 && bs === 0) {
    forEachRow(L.shape, L.strides, offsets, (p) => {
      binaryScalarB(op, aa.subarray(p[0], p[0] + n), ba[p[1]], oa.subarray(p[2], p[2] + n));
    });
  } else if (long && os === 1 && as === 0 && bs === 1 && swapped !== null) {
    forEachRow(L.shape, L.strides, offsets, (p) => {
      binaryScalarB(swapped, ba.subarray(p[1], p[1] + n), aa[p[0]], oa.subarray(p[2], p[2] + n));
    });
  } else {
    forEachRow(L.shape, L.strides, offsets, (p) => {
      binaryStrided(op, n, aa, p[0], as, ba, p[1], bs, oa, p[2], os);
    });
  }
}

function whereRow(
  n: number,
  c: TypedArray,
  ci: number,
  cs: number,
  a: TypedArray,
  ai: number,
  as: number,
  b: TypedArray,
  bi: number,
  bs: number,
  o: TypedArray,
  oi: number,
  os: number,
): void {
  for (let k = 0; k < n; k++, ci += cs, ai += as, bi += bs, oi += os) {
    o[oi] = c[ci] !== 0 ? a[ai] : b[bi];
  }
}

/** out = cond != 0 ? a : b (cond of either dtype; a, b and out share a dtype). */
export function where(cond: View, a: View, b: View, out: View): void {
  if (sizeOf(out.shape) === 0) return;
  const ca = arrayOf(cond, "where"), aa = arrayOf(a, "where"), ba = arrayOf(b, "where");
  const oa = arrayOf(out, "where");
  const L = mergeDims(out.shape, [cond.strides, a.strides, b.strides, out.strides]);
  const r = L.shape.length - 1;
  const [cs, as, bs, os] = L.strides.map((s) => s[r]);
  const n = L.shape[r];
  forEachRow(L.shape, L.strides, [cond.offset, a.offset, b.offset, out.offset], (p) => {
    whereRow(n, ca, p[0], cs, aa, p[1], as, ba, p[2], bs, oa, p[3], os);
  });
}
