/**
 * Reductions over any set of dims, with keepdim: sum, mean, max, min, argmax, argmin, var,
 * logsumexp.
 * @module
 */

import type { ReduceOp } from "../backend/backend.ts";
import { attach, noGrad } from "../autograd.ts";
import type { Tensor } from "../tensor.ts";
import { contiguousStrides, normAxes, normAxis } from "../_shape.ts";
import { checkTensor, empty } from "./_helpers.ts";
import { cast, div, eq, exp, log, mul, sub } from "./elementwise.ts";
import { contiguous, expand } from "./movement.ts";

/**
 * Dims to reduce: one, several, or all (undefined).
 *
 * @example
 * ```ts
 * import { sum, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 2], [3, 4]]);
 * using one = sum(x, -1);
 * using both = sum(x, [0, 1]);
 * console.log(one.toArray(), both.item()); // [3, 7] 10
 * ```
 */
export type Dims = number | readonly number[] | undefined;

/** Runs a backend reduction; returns the keepdim-shaped result and the reduced axes. */
function reduceRaw(op: ReduceOp, name: string, x: Tensor, dims: Dims): [Tensor, number[]] {
  checkTensor(name, x);
  const axes = normAxes(name, dims, x.shape);
  for (const a of axes) {
    if (x.shape[a] === 0 && op !== "sum") {
      throw new RangeError(`${name}: cannot reduce over dim ${a} of size 0 (input [${x.shape}])`);
    }
  }
  const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = empty(keepShape, op === "argmax" || op === "argmin" ? "i32" : x.dtype, x);
  x.backend.reduce(op, x._view(), axes, out._view());
  return [out, axes];
}

/** Drops the reduced axes of a keepdim result unless `keepdim`. */
function finish(out: Tensor, axes: number[], keepdim: boolean): Tensor {
  if (keepdim) return out;
  const shape = out.shape.filter((_, i) => !axes.includes(i));
  const r = out.alias(shape, contiguousStrides(shape), out.offset);
  out.dispose();
  return r;
}

/** The keepdim shape of x reduced over axes. */
function keptShape(x: Tensor, axes: number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Gradient `g` (of the reduced output) viewed in keepdim layout and broadcast to x's shape. */
function spread(g: Tensor, x: Tensor, axes: number[]): Tensor {
  const kshape = keptShape(x, axes);
  const gc = contiguous(g);
  const gk = gc.alias(kshape, contiguousStrides(kshape), gc.offset);
  if (gc !== g) gc.dispose();
  const out = expand(gk, x.shape);
  gk.dispose();
  return out;
}

/**
 * Sum over `dim` (all dims if omitted).
 *
 * @param x the input tensor
 * @param dim the dim or dims to reduce (negative counts from the end); all if omitted
 * @param keepdim keep the reduced dims as size 1
 * @returns a new tensor of the sums, in x's dtype
 * @example
 * ```ts
 * import { tensor } from "@denograd/denograd";
 * console.log(tensor([[1, 2], [3, 4]]).sum(0).toArray()); // [4, 6]
 * ```
 */
export function sum(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const [out, axes] = reduceRaw("sum", "sum", x, dim);
  const r = finish(out, axes, keepdim);
  return attach(r, "sum", [x], (g) => [spread(g, x, axes)]);
}

/**
 * Mean over `dim` (all dims if omitted); integer inputs give f32.
 *
 * @param x the input tensor
 * @param dim the dim or dims to reduce (negative counts from the end); all if omitted
 * @param keepdim keep the reduced dims as size 1
 * @returns a new f32 tensor of the means
 * @example
 * ```ts
 * import { mean, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 2], [3, 4]]);
 * using rows = mean(x, 1);
 * using all = mean(x);
 * console.log(rows.toArray(), all.item()); // [1.5, 3.5] 2.5
 * ```
 */
export function mean(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  checkTensor("mean", x);
  const xf = x.dtype === "f32" ? x : cast(x, "f32");
  const axes = normAxes("mean", dim, x.shape);
  const count = axes.reduce((n, a) => n * x.shape[a], 1);
  const s = sum(xf, axes, keepdim);
  const out = div(s, count);
  s.dispose();
  if (xf !== x) xf.dispose();
  return out;
}

function extreme(op: "max" | "min", x: Tensor, dim: Dims, keepdim: boolean): Tensor {
  const [out, axes] = reduceRaw(op, op, x, dim);
  // Saved keepdim copy: the backward marks where x equals the extreme.
  const kept = out.alias();
  const r = finish(out, axes, keepdim);
  return attach(r, op, [x], (g) => {
    const hit = eq(x, kept);
    const mask = cast(hit, "f32");
    const count = noGrad(() => sum(mask, axes, true));
    const share = div(mask, count);
    const gs = spread(g, x, axes);
    const dx = mul(gs, share);
    for (const t of [hit, mask, count, share, gs]) t.dispose();
    return [dx];
  }, [kept]);
}

/**
 * Maximum over `dim` (PyTorch's amax: at ties the gradient is split evenly).
 *
 * @param x the input tensor
 * @param dim the dim or dims to reduce (negative counts from the end); all if omitted
 * @param keepdim keep the reduced dims as size 1
 * @returns a new tensor of the maxima, in x's dtype
 * @example
 * ```ts
 * import { max, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 5], [7, 2]]);
 * using m = max(x, 1);
 * console.log(m.toArray()); // [5, 7]
 * ```
 */
export function max(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return extreme("max", x, dim, keepdim);
}

/**
 * Minimum over `dim` (PyTorch's amin).
 *
 * @param x the input tensor
 * @param dim the dim or dims to reduce (negative counts from the end); all if omitted
 * @param keepdim keep the reduced dims as size 1
 * @returns a new tensor of the minima, in x's dtype
 * @example
 * ```ts
 * import { min, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 5], [7, 2]]);
 * using m = min(x, 0, true);
 * console.log(m.toArray()); // [[1, 2]]
 * ```
 */
export function min(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return extreme("min", x, dim, keepdim);
}

function argExtreme(
  op: "argmax" | "argmin",
  x: Tensor,
  dim: number | undefined,
  keepdim: boolean,
): Tensor {
  checkTensor(op, x);
  if (dim === undefined) {
    const flat = x.reshape([x.size]);
    const [out, axes] = reduceRaw(op, op, flat, 0);
    flat.dispose();
    return finish(out, axes, false);
  }
  const d = normAxis(op, dim, Math.max(x.ndim, 1), x.shape);
  const [out, axes] = reduceRaw(op, op, x, x.ndim === 0 ? undefined : d);
  return finish(out, axes, keepdim);
}

/**
 * Index of the maximum along `dim` (of the flattened input if omitted), as i32. First on ties.
 *
 * @param x the input tensor
 * @param dim the dim to search (negative counts from the end); the flattened input if omitted
 * @param keepdim keep the reduced dim as size 1 (only with `dim`)
 * @returns a new i32 tensor of indices
 * @example
 * ```ts
 * import { argmax, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 5], [7, 2]]);
 * using perRow = argmax(x, 1);
 * using flat = argmax(x);
 * console.log(perRow.toArray(), flat.item()); // [1, 0] 2
 * ```
 */
export function argmax(x: Tensor, dim?: number, keepdim = false): Tensor {
  return argExtreme("argmax", x, dim, keepdim);
}

/**
 * Index of the minimum along `dim` (of the flattened input if omitted), as i32. First on ties.
 *
 * @param x the input tensor
 * @param dim the dim to search (negative counts from the end); the flattened input if omitted
 * @param keepdim keep the reduced dim as size 1 (only with `dim`)
 * @returns a new i32 tensor of indices
 * @example
 * ```ts
 * import { argmin, tensor } from "@denograd/denograd";
 * using x = tensor([[3, 1, 2], [0, 4, 0]]);
 * using i = argmin(x, 1);
 * console.log(i.toArray()); // [1, 0]
 * ```
 */
export function argmin(x: Tensor, dim?: number, keepdim = false): Tensor {
  return argExtreme("argmin", x, dim, keepdim);
}

/**
 * Options of {@linkcode variance}.
 *
 * @example
 * ```ts
 * import { tensor, variance } from "@denograd/denograd";
 * using x = tensor([[1, 3], [2, 6]]);
 * using v = variance(x, 1, { correction: 0, keepdim: true });
 * console.log(v.toArray()); // [[1], [4]]
 * ```
 */
export interface VarOptions {
  /** Subtracted from the count in the denominator: 1 (default) is Bessel's unbiased estimate. */
  correction?: number;
  /** Keep reduced dims as size 1. */
  keepdim?: boolean;
}

/**
 * Variance over `dim` (all dims if omitted): sum((x - mean)^2) / (n - correction).
 *
 * @param x the input tensor
 * @param dim the dim or dims to reduce (negative counts from the end); all if omitted
 * @param options correction (default 1, Bessel's) and keepdim
 * @returns a new f32 tensor of the variances
 * @example
 * ```ts
 * import { tensor, variance } from "@denograd/denograd";
 * using x = tensor([1, 2, 3, 4]);
 * using unbiased = variance(x);
 * using biased = variance(x, 0, { correction: 0 });
 * console.log(unbiased.item(), biased.item()); // 1.666... 1.25
 * ```
 */
export function variance(x: Tensor, dim?: Dims, options: VarOptions = {}): Tensor {
  checkTensor("var", x);
  const { correction = 1, keepdim = false } = options;
  const axes = normAxes("var", dim, x.shape);
  const n = axes.reduce((p, a) => p * x.shape[a], 1);
  const m = mean(x, axes, true);
  const d = sub(x, m);
  const sq = mul(d, d);
  const s = sum(sq, axes, keepdim);
  const out = div(s, Math.max(n - correction, 0));
  for (const t of [m, d, sq, s]) t.dispose();
  return out;
}

/**
 * log(sum(exp(x))) over `dim`, stable: the max is subtracted first.
 *
 * @param x the input tensor
 * @param dim the dim or dims to reduce (negative counts from the end)
 * @param keepdim keep the reduced dims as size 1
 * @returns a new f32 tensor
 * @example
 * ```ts
 * import { logsumexp, tensor } from "@denograd/denograd";
 * using x = tensor([[0, 0], [1000, 1000]]); // exp(1000) overflows f32; the result does not
 * using l = logsumexp(x, 1);
 * console.log(l.toArray()); // [0.6931..., 1000.6931...]
 * ```
 */
export function logsumexp(x: Tensor, dim: Dims, keepdim = false): Tensor {
  checkTensor("logsumexp", x);
  const axes = normAxes("logsumexp", dim, x.shape);
  const m = noGrad(() => {
    const raw = max(x, axes, true);
    // A row of -inf would give inf - inf; shift by 0 there instead.
    const isInf = raw.eq(-Infinity);
    const finite = raw.maskedFill(isInf, 0);
    raw.dispose();
    isInf.dispose();
    return finite;
  });
  const shifted = sub(x, m);
  const e = exp(shifted);
  const s = sum(e, axes, true);
  const l = log(s);
  const out = l.add(m);
  for (const t of [shifted, e, s, l, m]) t.dispose();
  if (keepdim) return out;
  const r = out.reshape(out.shape.filter((_, i) => !axes.includes(i)));
  out.dispose();
  return r;
}
