/**
 * Wrappers of cuda/elementwise.cu: fill, unary (incl. copy/cast), binary, comparisons, where.
 * Every kernel takes one `Layout<K>` over the output shape (dims merged first) and the element
 * count; broadcasting is a stride of 0 in an input view.
 * @module
 */

import type { BinaryOp, UnaryOp, View } from "../../backend.ts";
import type { DType } from "../../../dtype.ts";
import type { KernelLauncher } from "../launcher.ts";
import {
  expectDType,
  expectShape,
  layoutArg,
  type Operand,
  operand,
  strideGrid,
} from "./_layout.ts";
import { numel } from "../../../_shape.ts";

/** Unary op codes: the index is the `UnaryOp` enum value in cuda/elementwise.cu. */
export const UNARY_OPS: readonly UnaryOp[] = [
  "copy",
  "neg",
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "abs",
  "tanh",
  "sigmoid",
  "relu",
  "gelu",
  "silu",
  "sign",
];

/** Binary op codes: the index is the `BinaryOp` enum value in cuda/elementwise.cu. */
export const BINARY_OPS: readonly BinaryOp[] = [
  "add",
  "sub",
  "mul",
  "div",
  "pow",
  "maximum",
  "minimum",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
  "gelu_backward",
  "relu_backward",
];

const COMPARISONS: ReadonlySet<BinaryOp> = new Set(["eq", "ne", "lt", "le", "gt", "ge"]);
const DTYPES: readonly DType[] = ["f32", "bf16", "i32"];

/** The `b32`/`b16` suffix of kernels that move a dtype's bits without looking at them. */
function bits(dtype: DType): string {
  return dtype === "bf16" ? "b16" : "b32";
}

function opCode<T>(op: string, list: readonly T[], value: T): number {
  const code = list.indexOf(value);
  if (code < 0) throw new TypeError(`${op}: unknown op "${value}"`);
  return code;
}

/** out = value in every element of the (strided) view. */
export function fill(l: KernelLauncher, out: View, value: number): void {
  expectDType("fill", "out", out, DTYPES);
  if (typeof value !== "number") throw new TypeError(`fill: value must be a number, got ${value}`);
  const n = numel(out.shape);
  if (n === 0) return;
  fillOperand(l, operand(l.address(out), out), value);
}

/** fill on a raw operand (also used on scratch memory). */
export function fillOperand(l: KernelLauncher, out: Operand, value: number): void {
  const n = numel(out.shape);
  // i32: `value | 0` is ToInt32, what the CPU's Int32Array.fill stores.
  const v = out.dtype === "i32" ? { i32: value | 0 } : { f32: value };
  l.launch(`fill_${out.dtype}`, strideGrid(n), [256, 1, 1], 0, [
    { ptr: out.ptr },
    layoutArg("fill", out.shape, [out.strides]),
    { i64: BigInt(n) },
    v,
  ]);
}

/** out = op(x) elementwise; `copy` casts between any two of f32, bf16 and i32. */
export function unary(l: KernelLauncher, op: UnaryOp, x: View, out: View): void {
  expectDType(`unary ${op}`, "x", x, DTYPES);
  expectDType(`unary ${op}`, "out", out, DTYPES);
  expectShape(`unary ${op}`, "x", x, out.shape);
  if (numel(out.shape) === 0) return;
  unaryOperands(l, op, operand(l.address(x), x), operand(l.address(out), out));
}

/** unary on raw operands of equal shape (also used on scratch memory). */
export function unaryOperands(l: KernelLauncher, op: UnaryOp, x: Operand, out: Operand): void {
  const n = numel(out.shape);
  const layout = layoutArg(`unary ${op}`, out.shape, [out.strides, x.strides]);
  const args = [{ ptr: out.ptr }, { ptr: x.ptr }, layout, { i64: BigInt(n) }];
  if (op === "copy" && x.dtype === out.dtype) {
    l.launch(`copy_${bits(x.dtype)}`, strideGrid(n), [256, 1, 1], 0, args);
    return;
  }
  const code = opCode("unary", UNARY_OPS, op);
  l.launch(`unary_${x.dtype}_${out.dtype}`, strideGrid(n), [256, 1, 1], 0, [...args, {
    i32: code,
  }]);
}

/**
 * out = a op b with a and b of one dtype; out has that dtype, or i32 for comparisons.
 * `out` may be exactly the view `a` (in-place accumulation).
 */
export function binary(l: KernelLauncher, op: BinaryOp, a: View, b: View, out: View): void {
  const name = `binary ${op}`;
  expectDType(name, "a", a, DTYPES);
  if (b.dtype !== a.dtype) {
    throw new TypeError(`${name}: a and b must share a dtype, got ${a.dtype} and ${b.dtype}`);
  }
  const code = opCode("binary", BINARY_OPS, op);
  const compare = COMPARISONS.has(op);
  const outDType: DType = compare ? "i32" : a.dtype;
  if (out.dtype !== outDType) {
    throw new TypeError(`${name}: out must be ${outDType}, got ${out.dtype}`);
  }
  expectShape(name, "a", a, out.shape);
  expectShape(name, "b", b, out.shape);
  const n = numel(out.shape);
  if (n === 0) return;
  l.launch(`${compare ? "compare" : "binary"}_${a.dtype}`, strideGrid(n), [256, 1, 1], 0, [
    { ptr: l.address(out) },
    { ptr: l.address(a) },
    { ptr: l.address(b) },
    layoutArg(name, out.shape, [out.strides, a.strides, b.strides]),
    { i64: BigInt(n) },
    { i32: code },
  ]);
}

/** out = cond != 0 ? a : b; cond of any dtype, a, b and out of one dtype. */
export function where(l: KernelLauncher, cond: View, a: View, b: View, out: View): void {
  expectDType("where", "cond", cond, DTYPES);
  expectDType("where", "out", out, DTYPES);
  if (a.dtype !== out.dtype || b.dtype !== out.dtype) {
    throw new TypeError(
      `where: a, b and out must share a dtype, got ${a.dtype}, ${b.dtype} and ${out.dtype}`,
    );
  }
  for (const [what, v] of [["cond", cond], ["a", a], ["b", b]] as const) {
    expectShape("where", what, v, out.shape);
  }
  const n = numel(out.shape);
  if (n === 0) return;
  l.launch(`where_${cond.dtype}_${bits(out.dtype)}`, strideGrid(n), [256, 1, 1], 0, [
    { ptr: l.address(out) },
    { ptr: l.address(cond) },
    { ptr: l.address(a) },
    { ptr: l.address(b) },
    layoutArg("where", out.shape, [out.strides, cond.strides, a.strides, b.strides]),
    { i64: BigInt(n) },
  ]);
}
