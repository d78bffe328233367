/**
 * Elementwise ops with NumPy broadcasting: arithmetic, activations, comparisons, where, masks.
 * Each op's backward sits in the same function as its forward.
 * @module
 */

import type { BinaryOp, UnaryOp } from "../backend/backend.ts";
import { type DType, isDType } from "../dtype.ts";
import { attach, noGrad } from "../autograd.ts";
import { type Operand, Tensor } from "../tensor.ts";
import { broadcastShapes } from "../_shape.ts";
import { broadcastView, checkSameDevice, checkTensor, empty, scalar, sumTo } from "./_helpers.ts";

// ---- plumbing ----

function runUnary(op: UnaryOp, x: Tensor, dtype: DType = x.dtype): Tensor {
  const out = empty(x.shape, dtype, x);
  x.backend.unary(op, x._view(), out._view());
  return out;
}

function runBinary(op: BinaryOp, a: Tensor, b: Tensor, name: string, dtype?: DType): Tensor {
  const shape = broadcastShapes(name, a.shape, b.shape);
  const out = empty(shape, dtype ?? a.dtype, a);
  a.backend.binary(op, broadcastView(a, shape), broadcastView(b, shape), out._view());
  return out;
}

/** Converts a number operand to a 0-d tensor and promotes both sides to a common dtype. */
function operands(
  op: string,
  a: Tensor,
  b: Operand,
  floatOnly = false,
): [Tensor, Tensor, Tensor[]] {
  checkTensor(op, a);
  const temps: Tensor[] = [];
  let bt: Tensor;
  if (typeof b === "number") {
    const dtype = a.dtype === "i32" && Number.isInteger(b) && !floatOnly ? "i32" : "f32";
    bt = scalar(b, dtype, a);
    temps.push(bt);
  } else {
    checkTensor(op, b, "other");
    checkSameDevice(op, a, b);
    bt = b;
  }
  // bf16 is a storage type: arithmetic on it runs (and returns) f32, like any mixed pair.
  const dtype: DType = !floatOnly && a.dtype === "i32" && bt.dtype === "i32" ? "i32" : "f32";
  let at = a;
  if (at.dtype !== dtype) temps.push(at = cast(at, dtype));
  if (bt.dtype !== dtype) temps.push(bt = cast(bt, dtype));
  return [at, bt, temps];
}

function binary(
  name: string,
  op: BinaryOp,
  a: Tensor,
  b: Operand,
  backward: (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor | null, Tensor | null],
  floatOnly = false,
): Tensor {
  const [at, bt, temps] = operands(name, a, b, floatOnly);
  const out = runBinary(op, at, bt, name);
  const inputs = typeof b === "number" ? [a] : [a, b];
  // Casting temporaries are owned by the node; the original inputs get the gradients.
  return attach(out, name, inputs, (g) => {
    const [ga, gb] = backward(g, at, bt, out);
    const gaS = ga ? sumTo(ga, a.shape) : null;
    const gbS = gb && typeof b !== "number" ? sumTo(gb, b.shape) : null;
    const returned = new Set([g, gaS, gbS]);
    for (const t of [ga, gb]) if (t && !returned.has(t)) t.dispose();
    return typeof b === "number" ? [gaS] : [gaS, gbS];
  }, temps);
}

function unary(
  name: string,
  op: UnaryOp,
  x: Tensor,
  backward: (g: Tensor, x: Tensor, out: Tensor) => Tensor,
  floatOnly = true,
): Tensor {
  checkTensor(name, x);
  // bf16 is a storage type: it computes in f32, as i32 does for float-only ops.
  const xf = x.dtype === "bf16" || (floatOnly && x.dtype !== "f32")
    ? noGrad(() => cast(x, "f32"))
    : x;
  const out = runUnary(op, xf);
  if (xf === x) return attach(out, name, [x], (g) => [backward(g, x, out)]);
  // The backward reads the f32 values (gelu_backward needs x and g of one dtype): keep them.
  return attach(out, name, [x], (g) => [backward(g, xf, out)], [xf]);
}

/**
 * Converts `x` to `dtype` (f32 -> i32 truncates toward zero; to bf16 rounds to nearest even).
 * Returns a new tensor. Between f32 and bf16 the gradient flows back, cast to the input's dtype.
 *
 * @param x the input tensor
 * @param dtype the target dtype: "f32", "i32" or "bf16"
 * @returns a new tensor of x's shape in `dtype`
 * @example
 * ```ts
 * import { tensor } from "@denograd/denograd";
 * console.log(tensor([1.7, -1.7]).cast("i32").toArray()); // [1, -1]
 * console.log(tensor([1.00390625]).cast("bf16").toArray()); // [1] (a tie: rounds to even)
 * ```
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor("cast", x);
  if (!isDType(dtype)) {
    throw new TypeError(`cast: unknown dtype "${dtype}": expected "f32", "i32" or "bf16"`);
  }
  const out = runUnary("copy", x, dtype);
  if (dtype === "i32") return out;
  return attach(out, "cast", [x], (g) => [g.dtype === x.dtype ? g : cast(g, x.dtype)]);
}

// ---- arithmetic ----

/**
 * `a + b` with broadcasting; `b` may be a number.
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns a new tensor of the broadcast shape (i32 when both are i32, else f32)
 * @example
 * ```ts
 * import { add, tensor } from "@denograd/denograd";
 * console.log(add(tensor([[1], [2]]), tensor([10, 20])).toArray()); // [[11, 21], [12, 22]]
 * ```
 */
export function add(a: Tensor, b: Operand): Tensor {
  return binary("add", "add", a, b, (g) => [g, g]);
}

/**
 * `a - b` with broadcasting; `b` may be a number.
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns a new tensor of the broadcast shape (i32 when both are i32, else f32)
 * @example
 * ```ts
 * import { sub, tensor } from "@denograd/denograd";
 * using a = tensor([[5, 7], [9, 11]]);
 * using b = tensor([1, 2]);
 * using d = sub(a, b);
 * console.log(d.toArray()); // [[4, 5], [8, 9]]
 * ```
 */
export function sub(a: Tensor, b: Operand): Tensor {
  return binary("sub", "sub", a, b, (g) => [g, neg(g)]);
}

/**
 * `a * b` with broadcasting; `b` may be a number.
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns a new tensor of the broadcast shape (i32 when both are i32, else f32)
 * @example
 * ```ts
 * import { mul, tensor } from "@denograd/denograd";
 * using a = tensor([1, 2, 3]);
 * using b = tensor([[1], [10]]);
 * using p = mul(a, b);
 * console.log(p.toArray()); // [[1, 2, 3], [10, 20, 30]]
 * ```
 */
export function mul(a: Tensor, b: Operand): Tensor {
  return binary("mul", "mul", a, b, (g, a, b) => [mul(g, b), mul(g, a)]);
}

/**
 * `a / b` (true division, always f32) with broadcasting; `b` may be a number.
 *
 * @param a the dividend
 * @param b the divisor: a tensor or a number
 * @returns a new f32 tensor of the broadcast shape
 * @example
 * ```ts
 * import { div, tensor } from "@denograd/denograd";
 * using a = tensor([1, 2, 3], { dtype: "i32" });
 * using q = div(a, 4);
 * console.log(q.dtype, q.toArray()); // f32 [0.25, 0.5, 0.75]
 * ```
 */
export function div(a: Tensor, b: Operand): Tensor {
  return binary("div", "div", a, b, (g, _a, b, out) => {
    const ga = div(g, b);
    const t = mul(ga, out);
    const gb = neg(t);
    t.dispose();
    return [ga, gb];
  }, true);
}

/**
 * `a ** b` (f32) with broadcasting. The gradient w.r.t. `b` uses log(a), so it is NaN where
 * a <= 0.
 *
 * @param a the base
 * @param b the exponent: a tensor or a number
 * @returns a new f32 tensor of the broadcast shape
 * @example
 * ```ts
 * import { pow, tensor } from "@denograd/denograd";
 * using x = tensor([1, 2, 3], { requiresGrad: true });
 * using y = pow(x, 2);
 * using s = y.sum();
 * s.backward();
 * console.log(y.toArray(), x.grad!.toArray()); // [1, 4, 9] [2, 4, 6]
 * ```
 */
export function pow(a: Tensor, b: Operand): Tensor {
  return binary("pow", "pow", a, b, (g, a, b, out) => {
    // d/da = b * a^(b-1) = b * out / a is unsafe at a = 0, so use a^(b-1) directly.
    const bm1 = sub(b, 1);
    const p = runBinary("pow", a, bm1, "pow");
    const t = mul(p, b);
    const ga = mul(g, t);
    const la = log(a);
    const t2 = mul(out, la);
    const gb = typeof b === "number" ? null : mul(g, t2);
    for (const x of [bm1, p, t, la, t2]) x.dispose();
    return [ga, gb];
  }, true);
}

/**
 * Elementwise maximum with broadcasting; at ties the gradient is split evenly, as in PyTorch.
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns a new tensor of the broadcast shape
 * @example
 * ```ts
 * import { maximum, tensor } from "@denograd/denograd";
 * using x = tensor([1, 3, 5], { requiresGrad: true });
 * using m = maximum(x, 3);
 * using s = m.sum();
 * s.backward();
 * console.log(m.toArray(), x.grad!.toArray()); // [3, 3, 5] [0, 0.5, 1]
 * ```
 */
export function maximum(a: Tensor, b: Operand): Tensor {
  return binary("maximum", "maximum", a, b, (g, a, b) => tieSplit(g, a, b, "gt"));
}

/**
 * Elementwise minimum with broadcasting; at ties the gradient is split evenly.
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns a new tensor of the broadcast shape
 * @example
 * ```ts
 * import { minimum, tensor } from "@denograd/denograd";
 * using a = tensor([1, 5, 3]);
 * using b = tensor([4, 2, 3]);
 * using m = minimum(a, b);
 * console.log(m.toArray()); // [1, 2, 3]
 * ```
 */
export function minimum(a: Tensor, b: Operand): Tensor {
  return binary("minimum", "minimum", a, b, (g, a, b) => tieSplit(g, a, b, "lt"));
}

function tieSplit(g: Tensor, a: Tensor, b: Tensor, win: "gt" | "lt"): [Tensor, Tensor] {
  // weight of a: 1 where a wins, 0.5 at ties, 0 where b wins.
  const wins = runBinary(win, a, b, "grad", "f32");
  const ties = runBinary("eq", a, b, "grad", "f32");
  const half = mul(ties, 0.5);
  const wa = add(wins, half);
  const ga = mul(g, wa);
  const gb = sub(g, ga);
  for (const x of [wins, ties, half, wa]) x.dispose();
  return [ga, gb];
}

// ---- unary math ----

/**
 * `-x`, elementwise (keeps i32 as i32).
 *
 * @param x the input tensor
 * @returns a new tensor of x's shape (i32 stays i32, other dtypes give f32)
 * @example
 * ```ts
 * import { neg, tensor } from "@denograd/denograd";
 * using x = tensor([1, -2]);
 * using y = neg(x);
 * console.log(y.toArray()); // [-1, 2]
 * ```
 */
export function neg(x: Tensor): Tensor {
  return unary("neg", "neg", x, (g) => neg(g), false);
}

/**
 * e^x, elementwise (f32).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { exp, tensor } from "@denograd/denograd";
 * using x = tensor([0, 1, 2]);
 * using y = exp(x);
 * console.log(y.toArray()); // [1, 2.718..., 7.389...]
 * ```
 */
export function exp(x: Tensor): Tensor {
  return unary("exp", "exp", x, (g, _x, out) => mul(g, out));
}

/**
 * Natural logarithm, elementwise (f32; -Infinity at 0, NaN below).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { log, tensor } from "@denograd/denograd";
 * using x = tensor([1, 10, 100]);
 * using y = log(x);
 * console.log(y.toArray()); // [0, 2.302..., 4.605...]
 * ```
 */
export function log(x: Tensor): Tensor {
  return unary("log", "log", x, (g, x) => div(g, x));
}

/**
 * Square root, elementwise (f32).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { sqrt, tensor } from "@denograd/denograd";
 * using x = tensor([4, 9, 2]);
 * using y = sqrt(x);
 * console.log(y.toArray()); // [2, 3, 1.414...]
 * ```
 */
export function sqrt(x: Tensor): Tensor {
  return unary("sqrt", "sqrt", x, (g, _x, out) => {
    const t = mul(out, 2);
    const r = div(g, t);
    t.dispose();
    return r;
  });
}

/**
 * 1/sqrt(x), elementwise (f32).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { rsqrt, tensor } from "@denograd/denograd";
 * using x = tensor([4, 16, 0.25]);
 * using y = rsqrt(x);
 * console.log(y.toArray()); // [0.5, 0.25, 2]
 * ```
 */
export function rsqrt(x: Tensor): Tensor {
  return unary("rsqrt", "rsqrt", x, (g, _x, out) => {
    const t = pow(out, 3);
    const t2 = mul(t, -0.5);
    const r = mul(g, t2);
    t.dispose();
    t2.dispose();
    return r;
  });
}

/**
 * |x|; its gradient at 0 is 0.
 *
 * @param x the input tensor
 * @returns a new tensor of x's shape (i32 stays i32, other dtypes give f32)
 * @example
 * ```ts
 * import { abs, tensor } from "@denograd/denograd";
 * using x = tensor([-1.5, 0, 2]);
 * using y = abs(x);
 * console.log(y.toArray()); // [1.5, 0, 2]
 * ```
 */
export function abs(x: Tensor): Tensor {
  return unary("abs", "abs", x, (g, x) => {
    const s = runUnary("sign", x);
    const r = mul(g, s);
    s.dispose();
    return r;
  }, false);
}

/**
 * Hyperbolic tangent, elementwise (f32).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { tanh, tensor } from "@denograd/denograd";
 * using x = tensor([-1, 0, 1]);
 * using y = tanh(x);
 * console.log(y.toArray()); // [-0.7615..., 0, 0.7615...]
 * ```
 */
export function tanh(x: Tensor): Tensor {
  return unary("tanh", "tanh", x, (g, _x, out) => {
    const sq = mul(out, out);
    const d = oneMinus(sq);
    const r = mul(g, d);
    sq.dispose();
    d.dispose();
    return r;
  });
}

/**
 * Logistic sigmoid 1/(1+e^-x), elementwise (f32).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { sigmoid, tensor } from "@denograd/denograd";
 * using x = tensor([-2, 0, 2]);
 * using y = sigmoid(x);
 * console.log(y.toArray()); // [0.1192..., 0.5, 0.8807...]
 * ```
 */
export function sigmoid(x: Tensor): Tensor {
  return unary("sigmoid", "sigmoid", x, (g, _x, out) => {
    const om = oneMinus(out);
    const d = mul(out, om);
    const r = mul(g, d);
    om.dispose();
    d.dispose();
    return r;
  });
}

/**
 * max(x, 0), elementwise.
 *
 * @param x the input tensor
 * @returns a new tensor of x's shape (i32 stays i32, other dtypes give f32)
 * @example
 * ```ts
 * import { relu, tensor } from "@denograd/denograd";
 * using x = tensor([-1, 0, 2]);
 * using y = relu(x);
 * console.log(y.toArray()); // [0, 0, 2]
 * ```
 */
export function relu(x: Tensor): Tensor {
  return unary("relu", "relu", x, (g, x) => runBinary("relu_backward", x, g, "relu"), false);
}

/**
 * GELU with the tanh approximation, as GPT-2 uses (f32).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { gelu, tensor } from "@denograd/denograd";
 * using x = tensor([-1, 0, 1]);
 * using y = gelu(x);
 * console.log(y.toArray()); // [-0.1588..., 0, 0.8411...]
 * ```
 */
export function gelu(x: Tensor): Tensor {
  return unary("gelu", "gelu", x, (g, x) => runBinary("gelu_backward", x, g, "gelu"));
}

/**
 * SiLU (swish): x * sigmoid(x), elementwise (f32).
 *
 * @param x the input tensor
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { silu, tensor } from "@denograd/denograd";
 * using x = tensor([-1, 0, 1]);
 * using y = silu(x);
 * console.log(y.toArray()); // [-0.2689..., 0, 0.7310...]
 * ```
 */
export function silu(x: Tensor): Tensor {
  return unary("silu", "silu", x, (g, x) => {
    const s = runUnary("sigmoid", x);
    const oms = oneMinus(s);
    const xo = mul(x, oms);
    const f = add(xo, 1);
    const d = mul(s, f);
    const r = mul(g, d);
    for (const t of [s, oms, xo, f, d]) t.dispose();
    return r;
  });
}

/** 1 - x, for backward rules (no graph). */
function oneMinus(x: Tensor): Tensor {
  const one = scalar(1, "f32", x);
  const r = runBinary("sub", one, x, "sub");
  one.dispose();
  return r;
}

// ---- comparisons (i32 0/1, no gradient) ----

function compare(name: string, op: BinaryOp, a: Tensor, b: Operand): Tensor {
  const [at, bt, temps] = operands(name, a, b);
  const out = runBinary(op, at, bt, name, "i32");
  for (const t of temps) t.dispose();
  return out;
}

/**
 * `a == b` as i32 0/1, with broadcasting (no gradient).
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns an i32 tensor of the broadcast shape, 1 where `a == b` holds, else 0
 * @example
 * ```ts
 * import { eq, tensor } from "@denograd/denograd";
 * using x = tensor([1, 2, 3]);
 * using m = eq(x, 2);
 * console.log(m.dtype, m.toArray()); // i32 [0, 1, 0]
 * ```
 */
export function eq(a: Tensor, b: Operand): Tensor {
  return compare("eq", "eq", a, b);
}
/**
 * `a != b` as i32 0/1, with broadcasting (no gradient).
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns an i32 tensor of the broadcast shape, 1 where `a != b` holds, else 0
 * @example
 * ```ts
 * import { ne, tensor } from "@denograd/denograd";
 * using x = tensor([1, 2, 3]);
 * using m = ne(x, 2);
 * console.log(m.dtype, m.toArray()); // i32 [1, 0, 1]
 * ```
 */
export function ne(a: Tensor, b: Operand): Tensor {
  return compare("ne", "ne", a, b);
}
/**
 * `a < b` as i32 0/1, with broadcasting (no gradient).
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns an i32 tensor of the broadcast shape, 1 where `a < b` holds, else 0
 * @example
 * ```ts
 * import { lt, tensor } from "@denograd/denograd";
 * using x = tensor([1, 2, 3]);
 * using m = lt(x, 2);
 * console.log(m.dtype, m.toArray()); // i32 [1, 0, 0]
 * ```
 */
export function lt(a: Tensor, b: Operand): Tensor {
  return compare("lt", "lt", a, b);
}
/**
 * `a <= b` as i32 0/1, with broadcasting (no gradient).
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns an i32 tensor of the broadcast shape, 1 where `a <= b` holds, else 0
 * @example
 * ```ts
 * import { le, tensor } from "@denograd/denograd";
 * using x = tensor([1, 2, 3]);
 * using m = le(x, 2);
 * console.log(m.dtype, m.toArray()); // i32 [1, 1, 0]
 * ```
 */
export function le(a: Tensor, b: Operand): Tensor {
  return compare("le", "le", a, b);
}
/**
 * `a > b` as i32 0/1, with broadcasting (no gradient).
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns an i32 tensor of the broadcast shape, 1 where `a > b` holds, else 0
 * @example
 * ```ts
 * import { gt, tensor } from "@denograd/denograd";
 * using x = tensor([1, 2, 3]);
 * using m = gt(x, 2);
 * console.log(m.dtype, m.toArray()); // i32 [0, 0, 1]
 * ```
 */
export function gt(a: Tensor, b: Operand): Tensor {
  return compare("gt", "gt", a, b);
}
/**
 * `a >= b` as i32 0/1, with broadcasting (no gradient).
 *
 * @param a the left operand
 * @param b the right operand: a tensor or a number
 * @returns an i32 tensor of the broadcast shape, 1 where `a >= b` holds, else 0
 * @example
 * ```ts
 * import { ge, tensor } from "@denograd/denograd";
 * using x = tensor([1, 2, 3]);
 * using m = ge(x, 2);
 * console.log(m.dtype, m.toArray()); // i32 [0, 1, 1]
 * ```
 */
export function ge(a: Tensor, b: Operand): Tensor {
  return compare("ge", "ge", a, b);
}

// ---- selection ----

/**
 * `a` where `cond` is non-zero, else `b`; all three broadcast together.
 *
 * @param cond the condition (any dtype; non-zero selects `a`)
 * @param a the value where `cond` holds: a tensor or a number
 * @param b the value elsewhere: a tensor or a number
 * @returns a new tensor of the broadcast shape; gradients flow to `a` and `b`
 * @example
 * ```ts
 * import { tensor, where } from "@denograd/denograd";
 * const x = tensor([-1, 2]);
 * console.log(where(x.gt(0), x, 0).toArray()); // [0, 2]
 * ```
 */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  checkTensor("where", cond, "cond");
  let at: Tensor, bt: Tensor, temps: Tensor[];
  if (a instanceof Tensor) [at, bt, temps] = operands("where", a, b);
  else if (b instanceof Tensor) [bt, at, temps] = operands("where", b, a);
  else {
    // Two numbers: i32 if both are integers, like PyTorch's type promotion.
    const dtype: DType = Number.isInteger(a) && Number.isInteger(b) ? "i32" : "f32";
    temps = [at = scalar(a, dtype, cond), bt = scalar(b, dtype, cond)];
  }
  checkSameDevice("where", cond, at, bt);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, at.shape), bt.shape);
  const out = empty(shape, at.dtype, cond);
  cond.backend.where(
    broadcastView(cond, shape),
    broadcastView(at, shape),
    broadcastView(bt, shape),
    out._view(),
  );
  const inputs = [a, b].filter((t): t is Tensor => t instanceof Tensor);
  const condSaved = cond.alias(); // the backward reads cond even if the caller disposes it
  return attach(out, "where", inputs, (g) => {
    const zero = scalar(0, "f32", g);
    const grads: Tensor[] = [];
    for (const [t, isA] of [[a, true], [b, false]] as [Operand, boolean][]) {
      if (!(t instanceof Tensor)) continue;
      const full = where(condSaved, isA ? g : zero, isA ? zero : g);
      grads.push(sumTo(full, t.shape));
      if (grads[grads.length - 1] !== full) full.dispose();
    }
    zero.dispose();
    return grads;
  }, [...temps, condSaved]);
}

/**
 * `value` where `mask` is non-zero, else `x` (mask broadcasts to x).
 *
 * @param x the input tensor
 * @param mask non-zero where `value` goes; broadcastable to x's shape
 * @param value the fill value, e.g. -Infinity to hide attention scores
 * @returns a new tensor of x's shape
 * @example
 * ```ts
 * import { ones } from "@denograd/denograd";
 * const scores = ones([3, 3]);
 * const causal = scores.maskedFill(ones([3, 3]).triu(1), -Infinity);
 * console.log(causal.toArray()); // [[1, -Infinity, -Infinity], [1, 1, -Infinity], [1, 1, 1]]
 * ```
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkTensor("maskedFill", x);
  checkTensor("maskedFill", mask, "mask");
  if (typeof value !== "number") throw new TypeError("maskedFill: value must be a number");
  const shape = broadcastShapes("maskedFill", x.shape, mask.shape);
  if (shape.length !== x.ndim || shape.some((d, i) => d !== x.shape[i])) {
    throw new RangeError(
      `maskedFill: mask of shape [${mask.shape}] does not broadcast to input [${x.shape}]`,
    );
  }
  return where(mask, value, x);
}

function triangle(name: string, x: Tensor, k: number, lower: boolean): Tensor {
  checkTensor(name, x);
  if (x.ndim < 2) throw new RangeError(`${name}: input must have >= 2 dims, got [${x.shape}]`);
  if (!Number.isInteger(k)) throw new TypeError(`${name}: diagonal must be an integer, got ${k}`);
  const [r, c] = x.shape.slice(-2);
  // keep[i][j] = j - i <= k (tril) or j - i >= k (triu), built on the device from two iotas.
  const rows = iota([r, 1], x);
  const cols = iota([1, c], x);
  const diff = sub(cols, rows);
  const keep = lower ? le(diff, k) : ge(diff, k);
  const out = where(keep, x, 0);
  for (const t of [rows, cols, diff, keep]) t.dispose();
  return out;
}

/** 0, 1, 2, ... laid out in `shape` (a row or a column). */
function iota(shape: number[], like: Tensor): Tensor {
  const n = shape[0] * shape[1];
  const t = empty(shape, "i32", like);
  const host = new Int32Array(n);
  for (let i = 0; i < n; i++) host[i] = i;
  t.backend.write(t.storage.buffer, host);
  return t;
}

/**
 * Lower triangle of the last two dims: zeros where col - row > k.
 *
 * @param x the input tensor, at least 2-D
 * @param k the diagonal: 0 is the main one, positive is above it, negative below
 * @returns a new tensor of x's shape
 * @example
 * ```ts
 * import { ones, tril } from "@denograd/denograd";
 * using x = ones([3, 3]);
 * using l = tril(x);
 * console.log(l.toArray()); // [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
 * ```
 */
export function tril(x: Tensor, k = 0): Tensor {
  return triangle("tril", x, k, true);
}

/**
 * Upper triangle of the last two dims: zeros where col - row < k.
 *
 * @param x the input tensor, at least 2-D
 * @param k the diagonal: 0 is the main one, positive is above it, negative below
 * @returns a new tensor of x's shape
 * @example
 * ```ts
 * import { ones, triu } from "@denograd/denograd";
 * using x = ones([3, 3]);
 * using u = triu(x, 1); // the causal mask: 1 above the diagonal
 * console.log(u.toArray()); // [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
 * ```
 */
export function triu(x: Tensor, k = 0): Tensor {
  return triangle("triu", x, k, false);
}
