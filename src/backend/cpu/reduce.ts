/**
 * Reductions (sum/max/min/argmax/argmin) over any set of axes of any strided view.
 *
 * x is walked once in row-major order together with two derived "views": the accumulator
 * (out's contiguous strides, 0 on reduced axes) and the position within the reduced axes
 * (their row-major strides, 0 on kept axes). After merging dims every innermost row is either
 * reduced (many x values into one accumulator: row sums, softmax-style) or kept (x rows added
 * elementwise into accumulator rows: column sums such as bias gradients). Sums accumulate in
 * f64. Row-major order visits each output's reduced positions in increasing order, so a strict
 * comparison keeps the first occurrence on ties, like torch.
 * @module
 */

import type { ReduceOp, View } from "../backend.ts";
import { arrayOf } from "./buffer.ts";
import { forEachRow, sizeOf, withDenseOut } from "./strided.ts";
import { contiguousStrides, mergeDims } from "../../_shape.ts";

/** Reduces `x` over sorted unique `axes` into `out` (x's shape with those axes set to 1). */
export function reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
  const outSize = sizeOf(out.shape);
  if (outSize === 0) return;
  const rank = x.shape.length;
  const reduced = new Array<boolean>(rank).fill(false);
  for (const a of axes) reduced[a] = true;
  const reducedShape = x.shape.map((n, d) => (reduced[d] ? n : 1));
  if (sizeOf(reducedShape) === 0) {
    if (op !== "sum") throw new RangeError(`reduce: ${op} of an empty dimension is undefined`);
    withDenseOut(out, "reduce", false, (o) => o.fill(0));
    return;
  }

  const keptShape = x.shape.map((n, d) => (reduced[d] ? 1 : n));
  const accStrides = contiguousStrides(keptShape).map((s, d) => (reduced[d] ? 0 : s));
  const posStrides = contiguousStrides(reducedShape).map((s, d) => (reduced[d] ? s : 0));
  const L = mergeDims(x.shape, [x.strides, accStrides, posStrides]);
  const arg = op === "argmax" || op === "argmin";
  const acc = new Float64Array(outSize).fill(
    op === "sum" ? 0 : op === "max" || op === "argmax" ? -Infinity : Infinity,
  );
  const pos = arg ? new Int32Array(outSize) : null;
  const xa = arrayOf(x, "reduce");

  if (xa instanceof Float32Array) reduceF32(op, L.shape, L.strides, x.offset, xa, acc, pos);
  else reduceAny(op, L.shape, L.strides, x.offset, xa, acc, pos);

  const res = pos ?? acc;
  withDenseOut(out, "reduce", false, (o) => {
    for (let i = 0; i < outSize; i++) o[i] = res[i];
  });
}

function reduceF32(
  op: ReduceOp,
  shape: number[],
  strides: number[][],
  offset: number,
  x: Float32Array,
  acc: Float64Array,
  pos: Int32Array | null,
): void {
  const r = shape.length - 1;
  const n = shape[r], xs = strides[0][r], as = strides[1][r], ps = strides[2][r];
  const isMax = op === "max" || op === "argmax";
  if (as === 0 && op === "sum") {
    forEachRow(shape, strides, [offset, 0, 0], (p) => acc[p[1]] += sumRow(x, p[0], xs, n));
  } else if (as === 0) {
    forEachRow(shape, strides, [offset, 0, 0], (p) => {
      let best = acc[p[1]], at = -1;
      if (isMax) {
        for (let k = 0, xi = p[0]; k < n; k++, xi += xs) {
          if (x[xi] > best) {
            best = x[xi];
            at = k;
          }
        }
      } else {
        for (let k = 0, xi = p[0]; k < n; k++, xi += xs) {
          if (x[xi] < best) {
            best = x[xi];
            at = k;
          }
        }
      }
      if (at >= 0) {
        acc[p[1]] = best;
        if (pos !== null) pos[p[1]] = p[2] + at * ps;
      }
    });
  } else if (op === "sum" && xs === 1 && as === 1 && n >= 32) {
    forEachRow(shape, strides, [offset, 0, 0], (p) => {
      const a = acc.subarray(p[1], p[1] + n), xr = x.subarray(p[0], p[0] + n);
      for (let i = 0; i < n; i++) a[i] += xr[i];
    });
  } else if (op === "sum") {
    forEachRow(shape, strides, [offset, 0, 0], (p) => {
      for (let k = 0, xi = p[0], ai = p[1]; k < n; k++, xi += xs, ai += as) acc[ai] += x[xi];
    });
  } else {
    forEachRow(shape, strides, [offset, 0, 0], (p) => {
      for (let k = 0, xi = p[0], ai = p[1]; k < n; k++, xi += xs, ai += as) {
        const v = x[xi];
        if (isMax ? v > acc[ai] : v < acc[ai]) {
          acc[ai] = v;
          if (pos !== null) pos[ai] = p[2];
        }
      }
    });
  }
}

/** Sum of n values; four partial sums break the add-latency chain on dense rows. */
function sumRow(x: Float32Array, xi: number, xs: number, n: number): number {
  if (xs !== 1) {
    let s = 0;
    for (let k = 0; k < n; k++, xi += xs) s += x[xi];
    return s;
  }
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const end4 = xi + (n & ~3), end = xi + n;
  for (; xi < end4; xi += 4) {
    s0 += x[xi];
    s1 += x[xi + 1];
    s2 += x[xi + 2];
    s3 += x[xi + 3];
  }
  for (; xi < end; xi++) s0 += x[xi];
  return (s0 + s1) + (s2 + s3);
}

/** i32 inputs: a plain per-element loop, kept apart so the f32 loops stay monomorphic. */
function reduceAny(
  op: ReduceOp,
  shape: number[],
  strides: number[][],
  offset: number,
  x: Int32Array,
  acc: Float64Array,
  pos: Int32Array | null,
): void {
  const r = shape.length - 1;
  const n = shape[r], xs = strides[0][r], as = strides[1][r], ps = strides[2][r];
  const isMax = op === "max" || op === "argmax";
  forEachRow(shape, strides, [offset, 0, 0], (p) => {
    for (let k = 0, xi = p[0], ai = p[1]; k < n; k++, xi += xs, ai += as) {
      const v = x[xi];
      if (op === "sum") acc[ai] += v;
      else if (isMax ? v > acc[ai] : v < acc[ai]) {
        acc[ai] = v;
        if (pos !== null) pos[ai] = p[2] + k * ps;
      }
    }
  });
}
