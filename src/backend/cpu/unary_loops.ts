/**
 * f32 unary loops, one specialised loop per op (the switch runs once per call, never per
 * element), plus a per-element scalar form for the rare non-f32 inputs. Kept apart from the
 * f32 loops so i32 calls never make the hot f32 loops polymorphic.
 * @module
 */

import type { UnaryOp } from "../backend.ts";
import { fastExp, fastTanh, gelu, sigmoid } from "./math.ts";

/** o[i] = op(x[i]) for dense arrays of equal length (indices from 0: lets V8 drop checks). */
export function unaryDense(op: UnaryOp, x: Float32Array, o: Float32Array): void {
  const n = o.length;
  switch (op) {
    case "copy":
      o.set(x);
      return;
    case "neg":
      for (let i = 0; i < n; i++) o[i] = -x[i];
      return;
    case "exp":
      for (let i = 0; i < n; i++) o[i] = fastExp(x[i]);
      return;
    case "log":
      for (let i = 0; i < n; i++) o[i] = Math.log(x[i]);
      return;
    case "sqrt":
      for (let i = 0; i < n; i++) o[i] = Math.sqrt(x[i]);
      return;
    case "rsqrt":
      for (let i = 0; i < n; i++) o[i] = 1 / Math.sqrt(x[i]);
      return;
    case "abs":
      for (let i = 0; i < n; i++) o[i] = Math.abs(x[i]);
      return;
    case "tanh":
      for (let i = 0; i < n; i++) o[i] = fastTanh(x[i]);
      return;
    case "sigmoid":
      for (let i = 0; i < n; i++) o[i] = sigmoid(x[i]);
      return;
    case "relu":
      for (let i = 0; i < n; i++) o[i] = x[i] < 0 ? 0 : x[i]; // NaN passes through, like torch
      return;
    case "gelu":
      for (let i = 0; i < n; i++) o[i] = gelu(x[i]);
      return;
    case "silu":
      for (let i = 0; i < n; i++) o[i] = x[i] * sigmoid(x[i]);
      return;
    case "sign":
      for (let i = 0; i < n; i++) o[i] = Math.sign(x[i]);
      return;
  }
}

/** o[oi + k*os] = op(x[xi + k*xs]) for k < n. */
export function unaryStrided(
  op: UnaryOp,
  n: number,
  x: Float32Array,
  xi: number,
  xs: number,
  o: Float32Array,
  oi: number,
  os: number,
): void {
  if (xs === 0) {
    // A broadcast input: one value for the whole row.
    const v = unaryScalar(op)(x[xi]);
    for (let k = 0; k < n; k++, oi += os) o[oi] = v;
    return;
  }
  switch (op) {
    case "copy":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = x[xi];
      return;
    case "neg":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = -x[xi];
      return;
    case "exp":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = fastExp(x[xi]);
      return;
    case "log":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = Math.log(x[xi]);
      return;
    case "sqrt":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = Math.sqrt(x[xi]);
      return;
    case "rsqrt":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = 1 / Math.sqrt(x[xi]);
      return;
    case "abs":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = Math.abs(x[xi]);
      return;
    case "tanh":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = fastTanh(x[xi]);
      return;
    case "sigmoid":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = sigmoid(x[xi]);
      return;
    case "relu":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = x[xi] < 0 ? 0 : x[xi];
      return;
    case "gelu":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = gelu(x[xi]);
      return;
    case "silu":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = x[xi] * sigmoid(x[xi]);
      return;
    case "sign":
      for (let k = 0; k < n; k++, xi += xs, oi += os) o[oi] = Math.sign(x[xi]);
      return;
  }
}

/** The op as a plain function, for non-f32 inputs and one-off values. */
export function unaryScalar(op: UnaryOp): (x: number) => number {
  switch (op) {
    case "copy":
      return (x) => x;
    case "neg":
      return (x) => -x;
    case "exp":
      return fastExp;
    case "log":
      return Math.log;
    case "sqrt":
      return Math.sqrt;
    case "rsqrt":
      return (x) => 1 / Math.sqrt(x);
    case "abs":
      return Math.abs;
    case "tanh":
      return fastTanh;
    case "sigmoid":
      return sigmoid;
    case "relu":
      return (x) => x < 0 ? 0 : x;
    case "gelu":
      return gelu;
    case "silu":
      return (x) => x * sigmoid(x);
    case "sign":
      return Math.sign;
  }
}
