/**
 * Index kernels: gather / scatterAdd (torch semantics, any strides) and the embedding lookup
 * with its backward. Every index is bounds-checked; scatter-style kernels check all indices
 * before writing, so a bad index leaves the destination untouched.
 * @module
 */

import type { View } from "../backend.ts";
import { arrayOf, f32Of, i32Of } from "./buffer.ts";
import { forEachRow, packed, sizeOf, withDenseOut } from "./strided.ts";
import { mergeDims } from "../../_shape.ts";

/** Rank-0 views act as shape [1] so `axis` 0 exists. */
function atLeast1d(v: View): View {
  return v.shape.length > 0 ? v : { ...v, shape: [1], strides: [1] };
}

/** Throws a RangeError naming `op` unless every index is in [0, limit). */
function checkIndices(op: string, index: View, axis: number, limit: number): void {
  const idx = i32Of(index, op);
  const L = mergeDims(index.shape, [index.strides]);
  const r = L.shape.length - 1;
  const n = L.shape[r], s = L.strides[0][r];
  forEachRow(L.shape, L.strides, [index.offset], (p) => {
    for (let j = 0, i = p[0]; j < n; j++, i += s) {
      if (!(idx[i] >= 0 && idx[i] < limit)) {
        throw new RangeError(
          `${op}: index ${idx[i]} is out of bounds for axis ${axis} with size ${limit}`,
        );
      }
    }
  });
}

/**
 * Walks index's shape with `target` (its axis stride zeroed: that coordinate comes from the
 * index values) and `other` (out for gather, src for scatterAdd) alongside.
 */
function indexLayout(index: View, axis: number, target: View, other: View) {
  const tStrides = target.strides.map((s, d) => (d === axis ? 0 : s));
  const L = mergeDims(index.shape, [index.strides, tStrides, other.strides]);
  const r = L.shape.length - 1;
  const [is, ts, os] = L.strides.map((s) => s[r]);
  return { L, n: L.shape[r], is, ts, os, offsets: [index.offset, target.offset, other.offset] };
}

/** torch.gather: out[..i..] = x[..index[..i..] at axis..]; index (i32) has out.shape. */
export function gather(x: View, axis: number, index: View, out: View): void {
  if (sizeOf(out.shape) === 0) return;
  const xv = atLeast1d(x), iv = atLeast1d(index), ov = atLeast1d(out);
  checkIndices("gather", iv, axis, xv.shape[axis]);
  const xa = arrayOf(xv, "gather"), ia = i32Of(iv, "gather"), oa = arrayOf(ov, "gather");
  const step = xv.strides[axis];
  const { L, n, is, ts, os, offsets } = indexLayout(iv, axis, xv, ov);
  forEachRow(L.shape, L.strides, offsets, (p) => {
    for (let j = 0, ii = p[0], xi = p[1], oi = p[2]; j < n; j++, ii += is, xi += ts, oi += os) {
      oa[oi] = xa[xi + ia[ii] * step];
    }
  });
}

/** dst[..index[..i..] at axis..] += src[..i..]; index has src.shape. */
export function scatterAdd(dst: View, axis: number, index: View, src: View): void {
  if (sizeOf(src.shape) === 0) return;
  const dv = atLeast1d(dst), iv = atLeast1d(index), sv = atLeast1d(src);
  checkIndices("scatterAdd", iv, axis, dv.shape[axis]); // before any write
  const da = arrayOf(dv, "scatterAdd"),
    ia = i32Of(iv, "scatterAdd"),
    sa = arrayOf(sv, "scatterAdd");
  const step = dv.strides[axis];
  const { L, n, is, ts, os, offsets } = indexLayout(iv, axis, dv, sv);
  forEachRow(L.shape, L.strides, offsets, (p) => {
    for (let j = 0, ii = p[0], di = p[1], si = p[2]; j < n; j++, ii += is, di += ts, si += os) {
      da[di + ia[ii] * step] += sa[si];
    }
  });
}

/** The ids as a dense i32 array, each checked against the vocab size. */
function checkedIds(ids: View, vocab: number, op: string): Int32Array {
  i32Of(ids, op);
  const id = packed(ids, op) as Int32Array;
  for (let n = 0; n < id.length; n++) {
    const v = id[n];
    if (!(v >= 0 && v < vocab)) {
      throw new RangeError(
        `${op}: id ${v} at position ${n} is out of range for vocab size ${vocab}`,
      );
    }
  }
  return id;
}

/** out (N, C) = weight (V, C) rows picked by ids (N) i32 (ids may have any shape, read flat). */
export function embeddingForward(weight: View, ids: View, out: View): void {
  const [V, C] = weight.shape;
  const id = checkedIds(ids, V, "embeddingForward");
  f32Of(out, "embeddingForward");
  const w = packed(weight, "embeddingForward") as Float32Array; // (V, C)
  withDenseOut(out, "embeddingForward", false, (o) => {
    for (let n = 0; n < id.length; n++) o.set(w.subarray(id[n] * C, id[n] * C + C), n * C);
  });
}

/** dweight (V, C) += dout (N, C) scattered to the rows in ids (N); repeated ids accumulate. */
export function embeddingBackward(dout: View, ids: View, dweight: View): void {
  const [V, C] = dweight.shape;
  const id = checkedIds(ids, V, "embeddingBackward");
  f32Of(dweight, "embeddingBackward");
  const d = packed(dout, "embeddingBackward") as Float32Array; // (N, C)
  withDenseOut(dweight, "embeddingBackward", true, (dw) => {
    for (let n = 0; n < id.length; n++) {
      const row = dw.subarray(id[n] * C, id[n] * C + C), g = d.subarray(n * C, n * C + C);
      for (let j = 0; j < C; j++) row[j] += g[j];
    }
  });
}
