/**
 * Fused NN kernels over the last dim, forward beside backward: softmax / log-softmax,
 * layernorm and cross-entropy. Inputs are read densely (packed first if strided); outputs are
 * written densely (through a temp if strided). Row statistics accumulate in f64.
 * @module
 */

import type { View } from "../backend.ts";
import { f32Of, i32Of } from "./buffer.ts";
import { fastExp } from "./math.ts";
import { packed, sizeOf, withDenseOut } from "./strided.ts";

/** (rows, cols) of a view treated as (N, C) over its last dim. */
function rowsCols(v: View): [number, number] {
  const C = v.shape.length > 0 ? v.shape[v.shape.length - 1] : 1;
  return [C === 0 ? 0 : sizeOf(v.shape) / C, C];
}

/** A dense f32 copy-or-alias of the view. */
function dense(v: View, op: string): Float32Array {
  f32Of(v, op);
  return packed(v, op) as Float32Array;
}

/** Runs fn on a dense f32 array standing for `out`. */
function denseOut(out: View, op: string, fn: (o: Float32Array) => void, load = false): void {
  f32Of(out, op);
  withDenseOut(out, op, load, (o) => fn(o as Float32Array));
}

function rowMax(x: Float32Array): number {
  let m = -Infinity;
  for (let j = 0; j < x.length; j++) if (x[j] > m) m = x[j];
  return m;
}

/** log(sum(exp(x))) of one row, stable: shifted by the row max. */
function logSumExp(x: Float32Array): number {
  const m = rowMax(x);
  let s = 0;
  for (let j = 0; j < x.length; j++) s += fastExp(x[j] - m);
  return m + Math.log(s);
}

/** y = softmax(x) (or log_softmax when `log`) over the last dim. x, y: (N, C). */
export function softmaxForward(x: View, y: View, log: boolean): void {
  const [N, C] = rowsCols(x);
  const xd = dense(x, "softmaxForward");
  denseOut(y, "softmaxForward", (yd) => {
    for (let i = 0; i < N; i++) {
      const xr = xd.subarray(i * C, i * C + C), yr = yd.subarray(i * C, i * C + C);
      if (log) {
        const l = logSumExp(xr);
        for (let j = 0; j < C; j++) yr[j] = xr[j] - l;
      } else {
        const m = rowMax(xr);
        let s = 0;
        for (let j = 0; j < C; j++) s += yr[j] = fastExp(xr[j] - m);
        const inv = 1 / s;
        for (let j = 0; j < C; j++) yr[j] *= inv;
      }
    }
  });
}

/** log: dx = dy - exp(y) * sum(dy); else dx = y * (dy - sum(dy * y)). y, dy, dx: (N, C). */
export function softmaxBackward(y: View, dy: View, dx: View, log: boolean): void {
  const [N, C] = rowsCols(y);
  const yd = dense(y, "softmaxBackward"), gd = dense(dy, "softmaxBackward");
  denseOut(dx, "softmaxBackward", (xd) => {
    for (let i = 0; i < N; i++) {
      const yr = yd.subarray(i * C, i * C + C), gr = gd.subarray(i * C, i * C + C);
      const xr = xd.subarray(i * C, i * C + C);
      let s = 0;
      if (log) {
        for (let j = 0; j < C; j++) s += gr[j];
        for (let j = 0; j < C; j++) xr[j] = gr[j] - fastExp(yr[j]) * s;
      } else {
        for (let j = 0; j < C; j++) s += gr[j] * yr[j];
        for (let j = 0; j < C; j++) xr[j] = yr[j] * (gr[j] - s);
      }
    }
  });
}

/**
 * y = (x - mean) * rstd * weight + bias over the last dim, saving mean and rstd (N) for the
 * backward. Biased variance, two passes (no cancellation); rstd = 1 / sqrt(var + eps).
 */
export function layerNormForward(
  x: View,
  weight: View | null,
  bias: View | null,
  y: View,
  mean: View,
  rstd: View,
  eps: number,
): void {
  const op = "layerNormForward";
  const [N, C] = rowsCols(x);
  const xd = dense(x, op); // (N, C)
  const w = weight && dense(weight, op), b = bias && dense(bias, op); // (C)
  const mu = new Float32Array(N), rs = new Float32Array(N);
  denseOut(y, op, (yd) => {
    for (let i = 0; i < N; i++) {
      const xr = xd.subarray(i * C, i * C + C), yr = yd.subarray(i * C, i * C + C);
      let s = 0;
      for (let j = 0; j < C; j++) s += xr[j];
      const m = s / C;
      let v = 0;
      for (let j = 0; j < C; j++) v += (xr[j] - m) * (xr[j] - m);
      const r = 1 / Math.sqrt(v / C + eps);
      mu[i] = m;
      rs[i] = r;
      if (w && b) { for (let j = 0; j < C; j++) yr[j] = (xr[j] - m) * r * w[j] + b[j]; }
      else if (w) { for (let j = 0; j < C; j++) yr[j] = (xr[j] - m) * r * w[j]; }
      else if (b) { for (let j = 0; j < C; j++) yr[j] = (xr[j] - m) * r + b[j]; }
      else for (let j = 0; j < C; j++) yr[j] = (xr[j] - m) * r;
    }
  });
  denseOut(mean, op, (o) => o.set(mu));
  denseOut(rstd, op, (o) => o.set(rs));
}

/**
 * dx = rstd * (g - mean(g) - norm * mean(g * norm)) with norm = (x - mean) * rstd and
 * g = dy * weight; dweight = sum_N dy * norm and dbias = sum_N dy are overwritten when given.
 */
export function layerNormBackward(
  dy: View,
  x: View,
  weight: View | null,
  mean: View,
  rstd: View,
  dx: View,
  dweight: View | null,
  dbias: View | null,
): void {
  const op = "layerNormBackward";
  const [N, C] = rowsCols(x);
  const gd = dense(dy, op), xd = dense(x, op); // (N, C)
  const w = weight && dense(weight, op); // (C)
  const mu = dense(mean, op), rs = dense(rstd, op); // (N)
  const dw = new Float64Array(C), db = new Float64Array(C);
  const norm = new Float64Array(C), g = new Float64Array(C); // one row's scratch
  denseOut(dx, op, (xo) => {
    for (let i = 0; i < N; i++) {
      const xr = xd.subarray(i * C, i * C + C), gr = gd.subarray(i * C, i * C + C);
      const dr = xo.subarray(i * C, i * C + C);
      const m = mu[i], r = rs[i];
      let sg = 0, sgn = 0;
      for (let j = 0; j < C; j++) {
        const nj = (xr[j] - m) * r, gj = w ? gr[j] * w[j] : gr[j];
        norm[j] = nj;
        g[j] = gj;
        sg += gj;
        sgn += gj * nj;
        dw[j] += gr[j] * nj;
        db[j] += gr[j];
      }
      const mg = sg / C, mgn = sgn / C;
      for (let j = 0; j < C; j++) dr[j] = r * (g[j] - mg - norm[j] * mgn);
    }
  });
  if (dweight) denseOut(dweight, op, (o) => o.set(dw));
  if (dbias) denseOut(dbias, op, (o) => o.set(db));
}

/** Dense targets, each either ignoreIndex or in [0, V). */
function checkedTargets(targets: View, V: number, ignoreIndex: number, op: string): Int32Array {
  i32Of(targets, op);
  const t = packed(targets, op) as Int32Array;
  for (let i = 0; i < t.length; i++) {
    if (t[i] !== ignoreIndex && !(t[i] >= 0 && t[i] < V)) {
      throw new RangeError(
        `${op}: target ${
          t[i]
        } at row ${i} is outside [0, ${V}) and is not ignoreIndex (${ignoreIndex})`,
      );
    }
  }
  return t;
}

/**
 * Per-row cross-entropy of logits (N, V) against targets (N): losses (N) = lse - x[target]
 * (0 where target == ignoreIndex), lse (N) = logsumexp of every row (ignored rows too).
 */
export function crossEntropyForward(
  logits: View,
  targets: View,
  losses: View,
  lse: View,
  ignoreIndex: number,
): void {
  const op = "crossEntropyForward";
  const [N, V] = rowsCols(logits);
  const t = checkedTargets(targets, V, ignoreIndex, op);
  const xd = dense(logits, op); // (N, V)
  const l = new Float32Array(N), z = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    const xr = xd.subarray(i * V, i * V + V);
    const s = logSumExp(xr);
    z[i] = s;
    l[i] = t[i] === ignoreIndex ? 0 : s - xr[t[i]];
  }
  denseOut(losses, op, (o) => o.set(l));
  denseOut(lse, op, (o) => o.set(z));
}

/** dlogits (N, V) = (softmax(logits) - onehot(target)) * dlosses[row]; ignored rows are 0. */
export function crossEntropyBackward(
  logits: View,
  targets: View,
  lse: View,
  dlosses: View,
  dlogits: View,
  ignoreIndex: number,
): void {
  const op = "crossEntropyBackward";
  const [N, V] = rowsCols(logits);
  const t = checkedTargets(targets, V, ignoreIndex, op);
  const xd = dense(logits, op), z = dense(lse, op), dl = dense(dlosses, op);
  denseOut(dlogits, op, (gd) => {
    for (let i = 0; i < N; i++) {
      const xr = xd.subarray(i * V, i * V + V), gr = gd.subarray(i * V, i * V + V);
      if (t[i] === ignoreIndex) {
        gr.fill(0);
        continue;
      }
      const s = z[i], d = dl[i];
      for (let j = 0; j < V; j++) gr[j] = fastExp(xr[j] - s) * d;
      gr[t[i]] = (fastExp(xr[t[i]] - s) - 1) * d; // one rounding, not two
    }
  });
}
