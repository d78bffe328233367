/**
 * f32 binary loops, one specialised loop per op (the switch runs once per call, never per
 * element): dense, scalar-b and strided forms, plus a per-element scalar form for the rare
 * non-f32 inputs so they never make the hot f32 loops polymorphic. Comparisons write 1/0 into
 * an i32 output.
 * @module
 */

import type { BinaryOp } from "../backend.ts";
import { geluGrad } from "./math.ts";

/** f32 results, or i32 for comparisons. */
type Out = Float32Array | Int32Array;

/** o[i] = a[i] op b[i] for dense arrays of equal length (indices from 0: lets V8 drop checks). */
export function binaryDense(op: BinaryOp, a: Float32Array, b: Float32Array, o: Out): void {
  const n = o.length;
  switch (op) {
    case "add":
      for (let i = 0; i < n; i++) o[i] = a[i] + b[i];
      return;
    case "sub":
      for (let i = 0; i < n; i++) o[i] = a[i] - b[i];
      return;
    case "mul":
      for (let i = 0; i < n; i++) o[i] = a[i] * b[i];
      return;
    case "div":
      for (let i = 0; i < n; i++) o[i] = a[i] / b[i];
      return;
    case "pow":
      for (let i = 0; i < n; i++) o[i] = Math.pow(a[i], b[i]);
      return;
    case "maximum":
      for (let i = 0; i < n; i++) o[i] = Math.max(a[i], b[i]);
      return;
    case "minimum":
      for (let i = 0; i < n; i++) o[i] = Math.min(a[i], b[i]);
      return;
    case "eq":
      for (let i = 0; i < n; i++) o[i] = a[i] === b[i] ? 1 : 0;
      return;
    case "ne":
      for (let i = 0; i < n; i++) o[i] = a[i] !== b[i] ? 1 : 0;
      return;
    case "lt":
      for (let i = 0; i < n; i++) o[i] = a[i] < b[i] ? 1 : 0;
      return;
    case "le":
      for (let i = 0; i < n; i++) o[i] = a[i] <= b[i] ? 1 : 0;
      return;
    case "gt":
      for (let i = 0; i < n; i++) o[i] = a[i] > b[i] ? 1 : 0;
      return;
    case "ge":
      for (let i = 0; i < n; i++) o[i] = a[i] >= b[i] ? 1 : 0;
      return;
    case "gelu_backward":
      for (let i = 0; i < n; i++) o[i] = geluGrad(a[i]) * b[i];
      return;
    case "relu_backward":
      for (let i = 0; i < n; i++) o[i] = a[i] > 0 ? b[i] : 0;
      return;
  }
}

/** o[i] = a[i] op s: the scalar-broadcast case (x * 0.5, x - max, x / rms ...). */
export function binaryScalarB(op: BinaryOp, a: Float32Array, s: number, o: Out): void {
  const n = o.length;
  switch (op) {
    case "add":
      for (let i = 0; i < n; i++) o[i] = a[i] + s;
      return;
    case "sub":
      for (let i = 0; i < n; i++) o[i] = a[i] - s;
      return;
    case "mul":
      for (let i = 0; i < n; i++) o[i] = a[i] * s;
      return;
    case "div":
      for (let i = 0; i < n; i++) o[i] = a[i] / s;
      return;
    case "pow":
      if (s === 2) { for (let i = 0; i < n; i++) o[i] = a[i] * a[i]; }
      else for (let i = 0; i < n; i++) o[i] = Math.pow(a[i], s);
      return;
    case "maximum":
      for (let i = 0; i < n; i++) o[i] = Math.max(a[i], s);
      return;
    case "minimum":
      for (let i = 0; i < n; i++) o[i] = Math.min(a[i], s);
      return;
    case "eq":
      for (let i = 0; i < n; i++) o[i] = a[i] === s ? 1 : 0;
      return;
    case "ne":
      for (let i = 0; i < n; i++) o[i] = a[i] !== s ? 1 : 0;
      return;
    case "lt":
      for (let i = 0; i < n; i++) o[i] = a[i] < s ? 1 : 0;
      return;
    case "le":
      for (let i = 0; i < n; i++) o[i] = a[i] <= s ? 1 : 0;
      return;
    case "gt":
      for (let i = 0; i < n; i++) o[i] = a[i] > s ? 1 : 0;
      return;
    case "ge":
      for (let i = 0; i < n; i++) o[i] = a[i] >= s ? 1 : 0;
      return;
    case "gelu_backward":
      for (let i = 0; i < n; i++) o[i] = geluGrad(a[i]) * s;
      return;
    case "relu_backward":
      for (let i = 0; i < n; i++) o[i] = a[i] > 0 ? s : 0;
      return;
  }
}

/** o[oi + k*os] = a[ai + k*as] op b[bi + k*bs] for k < n. */
export function binaryStrided(
  op: BinaryOp,
  n: number,
  a: Float32Array,
  ai: number,
  as: number,
  b: Float32Array,
  bi: number,
  bs: number,
  o: Out,
  oi: number,
  os: number,
): void {
  switch (op) {
    case "add":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] + b[bi];
      return;
    case "sub":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] - b[bi];
      return;
    case "mul":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] * b[bi];
      return;
    case "div":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] / b[bi];
      return;
    case "pow":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = Math.pow(a[ai], b[bi]);
      return;
    case "maximum":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = Math.max(a[ai], b[bi]);
      return;
    case "minimum":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = Math.min(a[ai], b[bi]);
      return;
    case "eq":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] === b[bi] ? 1 : 0;
      return;
    case "ne":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] !== b[bi] ? 1 : 0;
      return;
    case "lt":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] < b[bi] ? 1 : 0;
      return;
    case "le":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] <= b[bi] ? 1 : 0;
      return;
    case "gt":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] > b[bi] ? 1 : 0;
      return;
    case "ge":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] >= b[bi] ? 1 : 0;
      return;
    case "gelu_backward":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = geluGrad(a[ai]) * b[bi];
      return;
    case "relu_backward":
      for (let k = 0; k < n; k++, ai += as, bi += bs, oi += os) o[oi] = a[ai] > 0 ? b[bi] : 0;
      return;
  }
}

/** The op as a plain function, for non-f32 inputs. */
export function binaryScalar(op: BinaryOp): (x: number, y: number) => number {
  switch (op) {
    case "add":
      return (x, y) => x + y;
    case "sub":
      return (x, y) => x - y;
    case "mul":
      return (x, y) => x * y;
    case "div":
      return (x, y) => x / y;
    case "pow":
      return (x, y) => Math.pow(x, y);
    case "maximum":
      return (x, y) => Math.max(x, y);
    case "minimum":
      return (x, y) => Math.min(x, y);
    case "eq":
      return (x, y) => x === y ? 1 : 0;
    case "ne":
      return (x, y) => x !== y ? 1 : 0;
    case "lt":
      return (x, y) => x < y ? 1 : 0;
    case "le":
      return (x, y) => x <= y ? 1 : 0;
    case "gt":
      return (x, y) => x > y ? 1 : 0;
    case "ge":
      return (x, y) => x >= y ? 1 : 0;
    case "gelu_backward":
      return (x, y) => geluGrad(x) * y;
    case "relu_backward":
      return (x, y) => x > 0 ? y : 0;
  }
}

/** The op with its operands swapped, when one exists (so `s - x` style calls reuse scalar-b). */
export function swappedOp(op: BinaryOp): BinaryOp | null {
  switch (op) {
    case "add":
    case "mul":
    case "maximum":
    case "minimum":
    case "eq":
    case "ne":
      return op;
    case "lt":
      return "gt";
    case "le":
      return "ge";
    case "gt":
      return "lt";
    case "ge":
      return "le";
    default:
      return null;
  }
}
