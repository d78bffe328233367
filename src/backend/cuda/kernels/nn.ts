/**
 * Wrappers of the fused row kernels over the last dim, forward beside backward:
 * cuda/softmax.cu, cuda/layernorm.cu, cuda/crossentropy.cu. Data views (x, y, dy, dx, weight,
 * bias, logits, dlogits) share one dtype, f32 or bf16; statistics (mean, rstd, lse, losses,
 * dlosses) are f32; targets i32. Every view is contiguous (the op layer makes it so).
 * @module
 */

import type { View } from "../../backend.ts";
import type { KernelLauncher } from "../launcher.ts";
import { numel } from "../../../_shape.ts";
import {
  expectContiguous,
  expectDType,
  expectInt32,
  expectShape,
  nextPow2,
  rowBlock,
  rowsCols,
} from "./_layout.ts";
import { fillOperand } from "./elementwise.ts";

/** Checks the (N, C) data views; returns [N, C]. */
function dataRows(op: string, views: Record<string, View>): [number, number] {
  const entries = Object.entries(views);
  const [name0, v0] = entries[0];
  expectDType(op, name0, v0, ["f32", "bf16"]);
  for (const [name, v] of entries) {
    if (v.dtype !== v0.dtype) {
      throw new TypeError(`${op}: ${name} must have ${name0}'s dtype ${v0.dtype}, got ${v.dtype}`);
    }
    expectShape(op, name, v, v0.shape);
    expectContiguous(op, name, v);
  }
  const [N, C] = rowsCols(v0);
  expectInt32(op, "the last dim", C);
  return [N, C];
}

/** Checks an f32 (or `dtype`) contiguous vector of n elements. */
function vector(op: string, what: string, v: View, n: number, dtype = "f32"): void {
  if (v.dtype !== dtype) throw new TypeError(`${op}: ${what} must be ${dtype}, got ${v.dtype}`);
  if (numel(v.shape) !== n) {
    throw new RangeError(`${op}: ${what} must have ${n} elements, got shape [${v.shape}]`);
  }
  expectContiguous(op, what, v);
}

const ptrOrNull = (l: KernelLauncher, v: View | null) => ({ ptr: v ? l.address(v) : 0n });

/** y = softmax(x) (log_softmax when `log`) over the last dim. x, y: (N, C). */
export function softmaxForward(l: KernelLauncher, x: View, y: View, log: boolean): void {
  const [N, C] = dataRows("softmaxForward", { x, y });
  if (N === 0) return;
  const block = rowBlock(C);
  l.launch(`softmax_forward_${x.dtype}`, [Math.ceil(N / block[1]), 1, 1], block, 0, [
    { ptr: l.address(y) },
    { ptr: l.address(x) },
    { i64: BigInt(N) },
    { i32: C },
    { i32: log ? 1 : 0 },
  ]);
}

/** log: dx = dy - exp(y) * sum(dy); else dx = y * (dy - sum(dy * y)). y, dy, dx: (N, C). */
export function softmaxBackward(
  l: KernelLauncher,
  y: View,
  dy: View,
  dx: View,
  log: boolean,
): void {
  const [N, C] = dataRows("softmaxBackward", { y, dy, dx });
  if (N === 0) return;
  const block = rowBlock(C);
  l.launch(`softmax_backward_${y.dtype}`, [Math.ceil(N / block[1]), 1, 1], block, 0, [
    { ptr: l.address(dx) },
    { ptr: l.address(y) },
    { ptr: l.address(dy) },
    { i64: BigInt(N) },
    { i32: C },
    { i32: log ? 1 : 0 },
  ]);
}

/** y = (x - mean) * rstd * weight + bias over the last dim; saves mean, rstd (N) f32. */
export function layerNormForward(
  l: KernelLauncher,
  x: View,
  weight: View | null,
  bias: View | null,
  y: View,
  mean: View,
  rstd: View,
  eps: number,
): void {
  const op = "layerNormForward";
  const [N, C] = dataRows(op, { x, y });
  if (weight) vector(op, "weight", weight, C, x.dtype);
  if (bias) vector(op, "bias", bias, C, x.dtype);
  vector(op, "mean", mean, N);
  vector(op, "rstd", rstd, N);
  if (N === 0) return;
  const block = rowBlock(C);
  l.launch(`layernorm_forward_${x.dtype}`, [Math.ceil(N / block[1]), 1, 1], block, 0, [
    { ptr: l.address(y) },
    { ptr: l.address(mean) },
    { ptr: l.address(rstd) },
    { ptr: l.address(x) },
    ptrOrNull(l, weight),
    ptrOrNull(l, bias),
    { i64: BigInt(N) },
    { i32: C },
    { f32: eps },
  ]);
}

/** Most blocks of the layernorm backward: each adds a (2, C) partial row to reduce after. */
const LAYERNORM_BACKWARD_BLOCKS = 1024;
/** Static shared memory limit without opting in. */
const SHARED_LIMIT = 48 * 1024;

/**
 * dx = rstd * (g - mean(g) - norm * mean(g * norm)), g = dy * weight; dweight = sum_N dy * norm
 * and dbias = sum_N dy overwritten when given (deterministic: per-block partials, then a
 * fixed-order column sum).
 */
export function layerNormBackward(
  l: KernelLauncher,
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
  const [N, C] = dataRows(op, { x, dy, dx });
  if (weight) vector(op, "weight", weight, C, x.dtype);
  if (dweight) vector(op, "dweight", dweight, C, x.dtype);
  if (dbias) vector(op, "dbias", dbias, C, x.dtype);
  vector(op, "mean", mean, N);
  vector(op, "rstd", rstd, N);
  const params = dweight !== null || dbias !== null;
  if (N === 0 || C === 0) {
    // No rows: the parameter gradients are sums of nothing.
    for (const v of [dweight, dbias]) {
      if (v && C > 0) {
        fillOperand(l, { ptr: l.address(v), dtype: v.dtype, shape: [C], strides: [1] }, 0);
      }
    }
    return;
  }
  const blocks = Math.min(N, LAYERNORM_BACKWARD_BLOCKS);
  const partial = params ? l.scratch(blocks * 2 * C * 4) : 0n; // (blocks, 2, C) f32
  const accBytes = 2 * C * 4;
  const inShared = params && accBytes <= SHARED_LIMIT;
  const threads = Math.min(1024, Math.max(32, nextPow2(Math.ceil(C / 8))));
  l.launch(
    `layernorm_backward_${x.dtype}`,
    [blocks, 1, 1],
    [threads, 1, 1],
    inShared ? accBytes : 0,
    [
      { ptr: l.address(dx) },
      { ptr: partial },
      { ptr: l.address(dy) },
      { ptr: l.address(x) },
      ptrOrNull(l, weight),
      { ptr: l.address(mean) },
      { ptr: l.address(rstd) },
      { i64: BigInt(N) },
      { i32: C },
      { i32: inShared ? 1 : 0 },
    ],
  );
  if (!params) return;
  l.launch(`layernorm_backward_params_${x.dtype}`, [Math.ceil(C / 32), 1, 1], [32, 32, 1], 0, [
    ptrOrNull(l, dweight),
    ptrOrNull(l, dbias),
    { ptr: partial },
    { i32: blocks },
    { i32: C },
  ]);
}

function checkIgnoreIndex(op: string, ignoreIndex: number): void {
  expectInt32(op, "ignoreIndex", ignoreIndex);
}

/**
 * Per-row cross-entropy: losses (N) = logsumexp(row) - row[target] (0 where target ==
 * ignoreIndex), lse (N) = logsumexp of every row. logits (N, V); targets (N) i32.
 */
export function crossEntropyForward(
  l: KernelLauncher,
  logits: View,
  targets: View,
  losses: View,
  lse: View,
  ignoreIndex: number,
): void {
  const op = "crossEntropyForward";
  const [N, V] = dataRows(op, { logits });
  vector(op, "targets", targets, N, "i32");
  vector(op, "losses", losses, N);
  vector(op, "lse", lse, N);
  checkIgnoreIndex(op, ignoreIndex);
  if (N === 0) return;
  const block = rowBlock(V);
  l.launch(`crossentropy_forward_${logits.dtype}`, [Math.ceil(N / block[1]), 1, 1], block, 0, [
    { ptr: l.address(losses) },
    { ptr: l.address(lse) },
    { ptr: l.address(logits) },
    { ptr: l.address(targets) },
    { i64: BigInt(N) },
    { i32: V },
    { i32: ignoreIndex },
  ]);
}

/** dlogits (N, V) = (softmax(logits) - onehot(target)) * dlosses[row]; ignored rows are 0. */
export function crossEntropyBackward(
  l: KernelLauncher,
  logits: View,
  targets: View,
  lse: View,
  dlosses: View,
  dlogits: View,
  ignoreIndex: number,
): void {
  const op = "crossEntropyBackward";
  const [N, V] = dataRows(op, { logits, dlogits });
  vector(op, "targets", targets, N, "i32");
  vector(op, "lse", lse, N);
  vector(op, "dlosses", dlosses, N);
  checkIgnoreIndex(op, ignoreIndex);
  if (N === 0) return;
  // Elementwise per row: ~4 elements per thread, up to 1024 threads on vocab-sized rows.
  const x = Math.min(1024, Math.max(32, nextPow2(Math.ceil(V / 4))));
  const block: [number, number, number] = [x, Math.max(1, 256 / x), 1];
  const grid = Math.min(Math.ceil(N / block[1]), 2 ** 31 - 1);
  l.launch(`crossentropy_backward_${logits.dtype}`, [grid, 1, 1], block, 0, [
    { ptr: l.address(dlogits) },
    { ptr: l.address(logits) },
    { ptr: l.address(targets) },
    { ptr: l.address(lse) },
    { ptr: l.address(dlosses) },
    { i64: BigInt(N) },
    { i32: V },
    { i32: ignoreIndex },
  ]);
}
