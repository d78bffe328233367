/**
 * Wrappers of cuda/indexing.cu (gather, scatterAdd) and cuda/embedding.cu. Additions into a
 * bf16 destination go through an f32 copy in scratch (bf16 atomics would round every addition):
 * widen, add with f32 atomics, round once on the way back.
 *
 * Kernels cannot throw: an out-of-range index writes NaN (INT_MIN for i32) in gather/embedding
 * outputs and is skipped by scatterAdd/embeddingBackward (the CPU backend throws a RangeError).
 * @module
 */

import type { View } from "../../backend.ts";
import type { KernelLauncher } from "../launcher.ts";
import {
  expectContiguous,
  expectDType,
  expectInt32,
  expectShape,
  layoutArg,
  type Operand,
  operand,
  strideGrid,
} from "./_layout.ts";
import { contiguousStrides, numel } from "../../../_shape.ts";
import { unaryOperands } from "./elementwise.ts";

/** Rank-0 views act as shape [1] so axis 0 exists (as on the CPU). */
function atLeast1d(v: View): View {
  return v.shape.length > 0 ? v : { ...v, shape: [1], strides: [1] };
}

function checkAxis(op: string, axis: number, rank: number): void {
  if (!Number.isInteger(axis) || axis < 0 || axis >= rank) {
    throw new RangeError(`${op}: axis must be in [0, ${rank}), got ${axis}`);
  }
}

/**
 * Runs `add(target)` on an f32 stand-in for `dst`: dst itself when f32 (or i32), else an f32
 * scratch copy (contiguous) that is rounded back into dst afterwards.
 */
function accumulateInF32(l: KernelLauncher, dst: Operand, add: (target: Operand) => void): void {
  if (dst.dtype !== "bf16") return add(dst);
  const n = numel(dst.shape);
  const wide: Operand = {
    ptr: l.scratch(n * 4),
    dtype: "f32",
    shape: dst.shape,
    strides: contiguousStrides(dst.shape),
  };
  unaryOperands(l, "copy", dst, wide);
  add(wide);
  unaryOperands(l, "copy", wide, dst);
}

/** torch.gather: out[..i..] = x[..index[..i..] at axis..]; index (i32) has out.shape. */
export function gather(l: KernelLauncher, x: View, axis: number, index: View, out: View): void {
  const xv = atLeast1d(x), iv = atLeast1d(index), ov = atLeast1d(out);
  expectDType("gather", "x", xv, ["f32", "bf16", "i32"]);
  expectDType("gather", "index", iv, ["i32"]);
  if (ov.dtype !== xv.dtype) {
    throw new TypeError(`gather: out must have x's dtype ${xv.dtype}, got ${ov.dtype}`);
  }
  checkAxis("gather", axis, xv.shape.length);
  expectShape("gather", "index", iv, ov.shape);
  if (ov.shape.length !== xv.shape.length) {
    throw new RangeError(`gather: out must have x's rank ${xv.shape.length}, got [${ov.shape}]`);
  }
  expectInt32("gather", "the indexed dim's size", xv.shape[axis]);
  const n = numel(ov.shape);
  if (n === 0) return;
  const xStrides = xv.strides.map((s, d) => (d === axis ? 0 : s));
  l.launch(`gather_${xv.dtype}`, strideGrid(n), [256, 1, 1], 0, [
    { ptr: l.address(ov) },
    { ptr: l.address(xv) },
    { ptr: l.address(iv) },
    layoutArg("gather", ov.shape, [ov.strides, iv.strides, xStrides]),
    { i64: BigInt(n) },
    { i64: BigInt(xv.strides[axis]) },
    { i32: xv.shape[axis] },
  ]);
}

/** dst[..index[..i..] at axis..] += src[..i..]; index (i32) has src.shape. */
export function scatterAdd(
  l: KernelLauncher,
  dst: View,
  axis: number,
  index: View,
  src: View,
): void {
  const dv = atLeast1d(dst), iv = atLeast1d(index), sv = atLeast1d(src);
  expectDType("scatterAdd", "src", sv, ["f32", "bf16", "i32"]);
  expectDType("scatterAdd", "index", iv, ["i32"]);
  const float = sv.dtype !== "i32";
  if (float ? dv.dtype === "i32" : dv.dtype !== "i32") {
    throw new TypeError(
      `scatterAdd: dst must be ${
        float ? "f32 or bf16" : "i32"
      } for ${sv.dtype} src, got ${dv.dtype}`,
    );
  }
  checkAxis("scatterAdd", axis, dv.shape.length);
  expectShape("scatterAdd", "index", iv, sv.shape);
  if (sv.shape.length !== dv.shape.length) {
    throw new RangeError(
      `scatterAdd: src must have dst's rank ${dv.shape.length}, got [${sv.shape}]`,
    );
  }
  expectInt32("scatterAdd", "the indexed dim's size", dv.shape[axis]);
  const n = numel(sv.shape);
  if (n === 0 || numel(dv.shape) === 0) return;
  const srcPtr = l.address(sv), indexPtr = l.address(iv);
  accumulateInF32(l, operand(l.address(dv), dv), (t) => {
    l.launch(`scatter_add_${sv.dtype}`, strideGrid(n), [256, 1, 1], 0, [
      { ptr: t.ptr },
      { ptr: srcPtr },
      { ptr: indexPtr },
      layoutArg("scatterAdd", sv.shape, [
        sv.strides,
        iv.strides,
        t.strides.map((s, d) => (d === axis ? 0 : s)),
      ]),
      { i64: BigInt(n) },
      { i64: BigInt(t.strides[axis]) },
      { i32: dv.shape[axis] },
    ]);
  });
}

/** Threads per token row of the embedding kernels. */
function embeddingBlock(C: number): [number, number, number] {
  return [Math.min(256, Math.max(32, Math.ceil(C / 32) * 32)), 1, 1];
}

/** Validates the embedding operands; returns [N, C, V]. */
function embeddingDims(
  op: string,
  table: View,
  ids: View,
  rows: View,
  rowsName: string,
  tableName: string,
): [number, number, number] {
  expectDType(op, rowsName, rows, ["f32", "bf16"]);
  expectDType(op, tableName, table, ["f32", "bf16"]);
  expectDType(op, "ids", ids, ["i32"]);
  if (table.shape.length !== 2) {
    throw new RangeError(`${op}: ${tableName} must be (V, C), got [${table.shape}]`);
  }
  const [V, C] = table.shape;
  const N = numel(ids.shape);
  expectShape(op, rowsName, rows, [N, C]);
  for (const [what, v] of [[tableName, table], ["ids", ids], [rowsName, rows]] as const) {
    expectContiguous(op, what, v);
  }
  expectInt32(op, "C", C);
  expectInt32(op, "V", V);
  return [N, C, V];
}

/** out (N, C) = weight (V, C) rows picked by ids (N) i32. */
export function embeddingForward(l: KernelLauncher, weight: View, ids: View, out: View): void {
  const [N, C, V] = embeddingDims("embeddingForward", weight, ids, out, "out", "weight");
  if (out.dtype !== weight.dtype) {
    throw new TypeError(
      `embeddingForward: out must have weight's dtype ${weight.dtype}, got ${out.dtype}`,
    );
  }
  if (N === 0 || C === 0) return;
  l.launch(
    `embedding_forward_${weight.dtype}`,
    [Math.min(N, 2 ** 31 - 1), 1, 1],
    embeddingBlock(C),
    0,
    [
      { ptr: l.address(out) },
      { ptr: l.address(weight) },
      { ptr: l.address(ids) },
      { i64: BigInt(N) },
      { i32: C },
      { i32: V },
    ],
  );
}

/** dweight (V, C) += dout (N, C) scattered to the rows in ids (N); repeated ids accumulate. */
export function embeddingBackward(l: KernelLauncher, dout: View, ids: View, dweight: View): void {
  const [N, C, V] = embeddingDims("embeddingBackward", dweight, ids, dout, "dout", "dweight");
  if (N === 0 || C === 0) return;
  const doutPtr = l.address(dout), idsPtr = l.address(ids);
  accumulateInF32(l, operand(l.address(dweight), dweight), (t) => {
    l.launch(
      `embedding_backward_${dout.dtype}`,
      [Math.min(N, 2 ** 31 - 1), 1, 1],
      embeddingBlock(C),
      0,
      [
        { ptr: t.ptr },
        { ptr: doutPtr },
        { ptr: idsPtr },
        { i64: BigInt(N) },
        { i32: C },
        { i32: V },
      ],
    );
  });
}
