/**
 * Wrapper of cuda/reduce.cu: sum/max/min/argmax/argmin over sorted axes of any strided view into
 * a keepdim contiguous output. Picks how many lanes reduce each output (the "group"), and, when
 * a few outputs have long reductions, splits the reduced range over gridDim.y with a second,
 * fixed-order pass over the partials (deterministic).
 * @module
 */

import type { ReduceOp, View } from "../../backend.ts";
import type { DType } from "../../../dtype.ts";
import type { KernelLauncher } from "../launcher.ts";
import {
  expectContiguous,
  expectDType,
  expectShape,
  nextPow2,
  reduceLayoutArg,
} from "./_layout.ts";
import { contiguousStrides, mergeDims, numel } from "../../../_shape.ts";
import { fillOperand } from "./elementwise.ts";

/** Reduce op codes: the index is the `ReduceOp` enum value in cuda/reduce.cu. */
export const REDUCE_OPS: readonly ReduceOp[] = ["sum", "max", "min", "argmax", "argmin"];

/** Threads wanted in flight for one reduction (2048 per SM on ~128 SMs). */
const TARGET_THREADS = 1 << 18;
/** A split covers at least this many elements per lane (amortises the partials pass). */
const MIN_PER_LANE = 64;
/** Most splits; the partials pass reduces at most this many per output in one group. */
const MAX_SPLITS = 1024;

/** How one reduction is launched (exported for the tests). */
export interface ReducePlan {
  /** Lanes per output (blockDim.x), a power of two <= 1024. */
  group: number;
  /** Outputs per block (blockDim.y). */
  rows: number;
  /** Splits of the reduced range (gridDim.y). */
  splits: number;
  /** Reduced elements per split. */
  chunk: number;
}

/**
 * Lanes per output. Contiguous reductions (rows): enough lanes for ~4 elements each, so
 * neighbouring lanes read neighbouring elements. When the kept dim is the contiguous one
 * (column sums such as bias gradients): one lane per output, so a warp reads 32 neighbouring
 * columns of a row in one transaction, and the splits over gridDim.y supply the parallelism
 * (with fewer than 32 outputs, lanes per output as for rows: most lanes would idle otherwise).
 */
export function planReduce(
  nOut: number,
  nRed: number,
  redInnerStep: number,
  keptInnerStep: number,
): ReducePlan {
  const columns = redInnerStep !== 1 && keptInnerStep === 1 && nOut >= 32;
  const group = nRed <= 1 || columns ? 1 : Math.min(1024, nextPow2(Math.ceil(nRed / 4)));
  const rows = Math.max(1, 256 / group);
  let splits = 1;
  if (nOut * group < TARGET_THREADS && nRed > group * MIN_PER_LANE) {
    splits = Math.min(
      MAX_SPLITS,
      Math.ceil(TARGET_THREADS / (nOut * group)),
      Math.floor(nRed / (group * MIN_PER_LANE)),
    );
  }
  const chunk = Math.ceil(nRed / splits);
  return { group, rows, splits: Math.ceil(nRed / chunk), chunk };
}

/** Reduces x over sorted unique `axes` into `out` (x's shape with those axes 1, contiguous). */
export function reduce(
  l: KernelLauncher,
  op: ReduceOp,
  x: View,
  axes: readonly number[],
  out: View,
): void {
  const name = `reduce ${op}`;
  const code = REDUCE_OPS.indexOf(op);
  if (code < 0) throw new TypeError(`reduce: unknown op "${op}"`);
  expectDType(name, "x", x, ["f32", "bf16", "i32"]);
  const arg = op === "argmax" || op === "argmin";
  const outDType: DType = arg ? "i32" : x.dtype;
  if (out.dtype !== outDType) {
    throw new TypeError(`${name}: out must be ${outDType}, got ${out.dtype}`);
  }
  const rank = x.shape.length;
  axes.forEach((a, i) => {
    if (!Number.isInteger(a) || a < 0 || a >= rank || (i > 0 && a <= axes[i - 1])) {
      throw new RangeError(
        `${name}: axes must be sorted unique dims of rank ${rank}, got [${axes}]`,
      );
    }
  });
  const reduced = x.shape.map((_, d) => axes.includes(d));
  expectShape(name, "out", out, x.shape.map((n, d) => (reduced[d] ? 1 : n)));
  expectContiguous(name, "out", out);
  const nOut = numel(out.shape);
  if (nOut === 0) return;
  const keptDims = x.shape.flatMap((_, d) => (reduced[d] ? [] : [d]));
  const redDims = x.shape.flatMap((_, d) => (reduced[d] ? [d] : []));
  const nRed = numel(redDims.map((d) => x.shape[d]));
  const outPtr = l.address(out);
  if (nRed === 0) {
    if (op !== "sum") throw new RangeError(`${name}: cannot reduce an empty dimension`);
    fillOperand(l, {
      ptr: outPtr,
      dtype: out.dtype,
      shape: out.shape,
      strides: contiguousStrides(out.shape),
    }, 0);
    return;
  }
  const kept = mergeDims(keptDims.map((d) => x.shape[d]), [keptDims.map((d) => x.strides[d])]);
  const red = mergeDims(redDims.map((d) => x.shape[d]), [redDims.map((d) => x.strides[d])]);
  const innermost = (m: { strides: number[][] }) => m.strides[0][m.strides[0].length - 1];
  const plan = planReduce(nOut, nRed, innermost(red), innermost(kept));
  const accBytes = x.dtype === "i32" ? 8 : 4; // i64 accumulators for i32 sums
  const parts = plan.splits > 1 ? nOut * plan.splits : 0;
  const partV = parts > 0 ? l.scratch(parts * accBytes) : 0n;
  const partAt = parts > 0 ? l.scratch(parts * 8) : 0n;
  l.launch(
    `reduce_${x.dtype}`,
    [Math.ceil(nOut / plan.rows), plan.splits, 1],
    [
      plan.group,
      plan.rows,
      1,
    ],
    0,
    [
      { ptr: outPtr },
      { ptr: partV },
      { ptr: partAt },
      { ptr: l.address(x) },
      reduceLayoutArg(name, kept, red, x.shape),
      { i64: BigInt(nOut) },
      { i64: BigInt(nRed) },
      { i64: BigInt(plan.chunk) },
      { i32: code },
    ],
  );
  if (plan.splits === 1) return;
  const group = Math.min(1024, nextPow2(plan.splits));
  const rows = Math.max(1, 256 / group);
  l.launch(`reduce_partials_${x.dtype}`, [Math.ceil(nOut / rows), 1, 1], [group, rows, 1], 0, [
    { ptr: outPtr },
    { ptr: partV },
    { ptr: partAt },
    { i64: BigInt(nOut) },
    { i32: plan.splits },
    { i32: code },
  ]);
}
