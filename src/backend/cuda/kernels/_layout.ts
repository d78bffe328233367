/**
 * Shared by the kernel wrappers: the byte layout of the strided-view structs the kernels take by
 * value (`Layout<K>` and `ReduceLayout` in cuda/common.cuh, cuda/reduce.cu; dims merged first by
 * `mergeDims` in _shape.ts), launch geometry, and input checks.
 * @module
 */

import type { View } from "../../backend.ts";
import type { DType } from "../../../dtype.ts";
import type { KernelArg } from "../launcher.ts";
import { type MergedDims, mergeDims, numel } from "../../../_shape.ts";

/** Highest rank a kernel layout holds after merging dims (`MAX_RANK` in cuda/common.cuh). */
export const MAX_RANK = 8;
/** Threads per block of the elementwise kernels. */
export const BLOCK = 256;
/** Cap on the blocks of a grid-stride launch: ~30 waves of 256-thread blocks on an H100. */
export const MAX_GRID = 32768;

/** A device operand: an address, its dtype, and the shape and element strides walked there. */
export interface Operand {
  readonly ptr: bigint;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
}

function tooManyDims(op: string, shape: readonly number[]): RangeError {
  return new RangeError(
    `${op}: the view [${shape}] needs more than ${MAX_RANK} dims after merging; ` +
      `make it contiguous first`,
  );
}

/** Writes `values` innermost first as int64 at `at` (the kernels' dim order). */
function putDims(dv: DataView, at: number, values: readonly number[]): void {
  const r = values.length;
  for (let d = 0; d < r; d++) dv.setBigInt64(at + 8 * d, BigInt(values[r - 1 - d]), true);
}

/**
 * `Layout<K>` for K views walked together over `shape` (K = strides.length): size[MAX_RANK],
 * step[K][MAX_RANK] (int64, innermost dim first), rank (int32), 4 pad bytes; 8-byte aligned.
 */
export function layoutArg(
  op: string,
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): KernelArg {
  const m = mergeDims(shape, strides);
  if (m.shape.length > MAX_RANK) throw tooManyDims(op, shape);
  const K = strides.length;
  const bytes = new Uint8Array(8 * MAX_RANK * (K + 1) + 8);
  const dv = new DataView(bytes.buffer);
  putDims(dv, 0, m.shape);
  for (let k = 0; k < K; k++) putDims(dv, 8 * MAX_RANK * (k + 1), m.strides[k]);
  dv.setInt32(8 * MAX_RANK * (K + 1), m.shape.length, true);
  return { bytes, align: 8 };
}

/**
 * `ReduceLayout` (cuda/reduce.cu): kept_size, kept_step, red_size, red_step (int64[MAX_RANK]
 * each, innermost first), kept_rank, red_rank (int32). Each group of dims is merged on its own:
 * the output index is row-major over the kept dims, the arg position row-major over the reduced.
 */
export function reduceLayoutArg(
  op: string,
  kept: MergedDims,
  red: MergedDims,
  xShape: readonly number[],
): KernelArg {
  if (kept.shape.length > MAX_RANK || red.shape.length > MAX_RANK) throw tooManyDims(op, xShape);
  const bytes = new Uint8Array(4 * 8 * MAX_RANK + 8);
  const dv = new DataView(bytes.buffer);
  putDims(dv, 0, kept.shape);
  putDims(dv, 8 * MAX_RANK, kept.strides[0]);
  putDims(dv, 16 * MAX_RANK, red.shape);
  putDims(dv, 24 * MAX_RANK, red.strides[0]);
  dv.setInt32(32 * MAX_RANK, kept.shape.length, true);
  dv.setInt32(32 * MAX_RANK + 4, red.shape.length, true);
  return { bytes, align: 8 };
}

/** Grid of a grid-stride loop over n elements in BLOCK-thread blocks. */
export function strideGrid(n: number): [number, number, number] {
  return [Math.max(1, Math.min(Math.ceil(n / BLOCK), MAX_GRID)), 1, 1];
}

/** Smallest power of two >= n (n >= 1). */
export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * Threads per row of a row kernel: a warp for short rows, growing so each thread handles ~8
 * elements, up to 1024 (GPT-2's 50257-wide logits). Rows per block fill 256 threads.
 */
export function rowBlock(C: number): [number, number, number] {
  const x = Math.min(1024, Math.max(32, nextPow2(Math.ceil(C / 8))));
  return [x, Math.max(1, 256 / x), 1];
}

/** The operand for a view at its device address. */
export function operand(address: bigint, v: View): Operand {
  return { ptr: address, dtype: v.dtype, shape: v.shape, strides: v.strides };
}

/** Throws a TypeError unless `v.dtype` is one of `allowed`. */
export function expectDType(op: string, what: string, v: View, allowed: readonly DType[]): void {
  if (!allowed.includes(v.dtype)) {
    throw new TypeError(`${op}: ${what} must be ${allowed.join(" or ")}, got ${v.dtype}`);
  }
}

/** Throws a TypeError unless every view has the dtype of the first. */
export function expectSameDType(op: string, views: Record<string, View>): void {
  const entries = Object.entries(views);
  const [name0, v0] = entries[0];
  for (const [name, v] of entries.slice(1)) {
    if (v.dtype !== v0.dtype) {
      throw new TypeError(`${op}: ${name} must have ${name0}'s dtype ${v0.dtype}, got ${v.dtype}`);
    }
  }
}

/** Throws a RangeError unless the two shapes are equal. */
export function expectShape(op: string, what: string, v: View, shape: readonly number[]): void {
  if (v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
    throw new RangeError(`${op}: ${what} must have shape [${shape}], got [${v.shape}]`);
  }
}

/** Throws a TypeError unless the view is dense row-major (the fused kernels index rows). */
export function expectContiguous(op: string, what: string, v: View): void {
  let acc = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== acc) {
      throw new TypeError(
        `${op}: ${what} must be contiguous, got shape [${v.shape}] strides [${v.strides}]`,
      );
    }
    acc *= v.shape[d];
  }
}

/** Throws a RangeError unless n fits a kernel's int32 parameter. */
export function expectInt32(op: string, what: string, n: number): void {
  if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) {
    throw new RangeError(`${op}: ${what} must be a 32-bit integer, got ${n}`);
  }
}

/** (rows, cols) of a view read as (N, C) over its last dim. */
export function rowsCols(v: View): [number, number] {
  const C = v.shape.length > 0 ? v.shape[v.shape.length - 1] : 1;
  return [C === 0 ? 0 : numel(v.shape) / C, C];
}
