/**
 * Strided iteration shared by the CPU kernels: merge dims so loops run over as few, as long
 * rows as possible, then visit every innermost row with per-view start offsets.
 * @module
 */

import type { View } from "../backend.ts";
import type { TypedArray } from "../../dtype.ts";
import { typedArrayFor } from "../../dtype.ts";
import { arrayOf } from "./buffer.ts";
import { contiguousStrides, mergeDims } from "../../_shape.ts";

/** Number of elements of a shape (1 for rank 0). */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Calls `row(pos)` once per innermost row of `shape` (outer dims in row-major order), where
 * `pos[v]` is view v's element offset at the row's start. `pos` is reused: read, don't keep.
 */
export function forEachRow(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  offsets: readonly number[],
  row: (pos: number[]) => void,
): void {
  const outer = shape.length - 1;
  const nv = offsets.length;
  const pos = offsets.slice();
  if (outer <= 0) {
    row(pos);
    return;
  }
  const idx = new Array<number>(outer).fill(0);
  for (;;) {
    row(pos);
    let d = outer - 1;
    for (; d >= 0; d--) {
      for (let v = 0; v < nv; v++) pos[v] += strides[v][d];
      if (++idx[d] < shape[d]) break;
      for (let v = 0; v < nv; v++) pos[v] -= strides[v][d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

/** Whether the view is dense row-major (strides of size-1 dims don't matter). */
export function isContiguous(v: View): boolean {
  let acc = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== acc) return false;
    acc *= v.shape[d];
  }
  return true;
}

// f32 -> f32 gets its own loop so the hot transpose/cat copies stay monomorphic.
function copyRowF32(
  n: number,
  x: Float32Array,
  xi: number,
  xs: number,
  o: Float32Array,
  oi: number,
  os: number,
): void {
  for (let i = 0; i < n; i++, xi += xs, oi += os) o[oi] = x[xi];
}

function copyRowAny(
  n: number,
  x: TypedArray,
  xi: number,
  xs: number,
  o: TypedArray,
  oi: number,
  os: number,
): void {
  for (let i = 0; i < n; i++, xi += xs, oi += os) o[oi] = x[xi];
}

/**
 * out[...] = x[...] over `shape`, any strides; assigning through the destination's typed array
 * casts (f32 -> i32 truncates toward zero).
 */
export function copyStrided(
  shape: readonly number[],
  x: TypedArray,
  xOffset: number,
  xStrides: readonly number[],
  o: TypedArray,
  oOffset: number,
  oStrides: readonly number[],
): void {
  const size = sizeOf(shape);
  if (size === 0) return;
  const L = mergeDims(shape, [xStrides, oStrides]);
  const r = L.shape.length - 1;
  const n = L.shape[r], xs = L.strides[0][r], os = L.strides[1][r];
  if (xs === 1 && os === 1 && n >= 64) {
    // Dense rows: TypedArray.set is a memcpy (and casts when the dtypes differ).
    forEachRow(
      L.shape,
      L.strides,
      [xOffset, oOffset],
      (p) => o.set(x.subarray(p[0], p[0] + n), p[1]),
    );
  } else if (x instanceof Float32Array && o instanceof Float32Array) {
    forEachRow(
      L.shape,
      L.strides,
      [xOffset, oOffset],
      (p) => copyRowF32(n, x, p[0], xs, o, p[1], os),
    );
  } else {
    forEachRow(
      L.shape,
      L.strides,
      [xOffset, oOffset],
      (p) => copyRowAny(n, x, p[0], xs, o, p[1], os),
    );
  }
}

/** The view's elements in row-major order: a subarray if already dense, else a packed copy. */
export function packed(v: View, op: string): TypedArray {
  const a = arrayOf(v, op);
  const n = sizeOf(v.shape);
  if (isContiguous(v)) return a.subarray(v.offset, v.offset + n);
  const out = typedArrayFor(v.dtype, n);
  copyStrided(v.shape, a, v.offset, v.strides, out, 0, contiguousStrides(v.shape));
  return out;
}

/**
 * Runs `fn` on a dense array standing for `out`: the view itself when contiguous, otherwise a
 * temp (pre-filled with out's values when `load`) that is copied back afterwards.
 */
export function withDenseOut(
  out: View,
  op: string,
  load: boolean,
  fn: (o: TypedArray) => void,
): void {
  if (isContiguous(out)) {
    fn(arrayOf(out, op).subarray(out.offset, out.offset + sizeOf(out.shape)));
    return;
  }
  const tmp = load ? packed(out, op) : typedArrayFor(out.dtype, sizeOf(out.shape));
  fn(tmp);
  copyStrided(
    out.shape,
    tmp,
    0,
    contiguousStrides(out.shape),
    arrayOf(out, op),
    out.offset,
    out.strides,
  );
}
