/**
 * Functional NN ops on fused backend kernels: softmax, logSoftmax, layerNorm, embedding,
 * crossEntropy, dropout. Each forward sits beside its backward.
 * @module
 */

import type { View } from "../backend/backend.ts";
import { attach } from "../autograd.ts";
import { uniformArray } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { fmt, normAxis, numel } from "../_shape.ts";
import { checkDType, checkSameDevice, checkTensor, empty } from "./_helpers.ts";
import { cast, div, mul, ne } from "./elementwise.ts";
import { contiguous, transpose } from "./movement.ts";
import { sum } from "./reduce.ts";

/** A contiguous tensor seen as a (rows, cols) matrix. */
function as2d(t: Tensor, cols: number): View {
  const v = t._view();
  const rows = cols === 0 ? 0 : t.size / cols;
  return { ...v, shape: [rows, cols], strides: [cols, 1] };
}

/**
 * Runs `fn` on an f32 copy of a bf16 input (differentiable: the gradient returns as bf16). Like
 * torch.autocast's f32 ops, softmax, layer norm and cross-entropy compute in f32 on bf16 data.
 */
function viaF32(x: Tensor, fn: (xf: Tensor) => Tensor): Tensor {
  const xf = cast(x, "f32");
  const y = fn(xf);
  xf.dispose(); // the graph keeps it while backward needs it
  return y;
}

/** A contiguous tensor seen as a flat vector. */
function as1d(t: Tensor): View {
  return { ...t._view(), shape: [t.size], strides: [1] };
}

function softmaxImpl(name: string, x: Tensor, dim: number, log: boolean): Tensor {
  checkTensor(name, x);
  if (x.dtype === "bf16") return viaF32(x, (xf) => softmaxImpl(name, xf, dim, log));
  checkDType(name, x, "f32");
  const d = x.ndim === 0 ? 0 : normAxis(name, dim, x.ndim, x.shape);
  if (x.ndim > 0 && d !== x.ndim - 1) {
    // The kernel works on the last dim; move `dim` there and back (views, plus one copy).
    const xt = transpose(x, d, -1);
    const yt = softmaxImpl(name, xt, -1, log);
    const y = transpose(yt, d, -1);
    xt.dispose();
    yt.dispose();
    return y;
  }
  const cols = x.ndim === 0 ? 1 : x.shape[x.ndim - 1];
  const xc = contiguous(x);
  const y = empty(x.shape, "f32", x);
  x.backend.softmaxForward(as2d(xc, cols), as2d(y, cols), log);
  if (xc !== x) xc.dispose();
  return attach(y, name, [x], (g) => {
    const gc = contiguous(g);
    const dx = empty(x.shape, "f32", g);
    g.backend.softmaxBackward(as2d(y, cols), as2d(gc, cols), as2d(dx, cols), log);
    if (gc !== g) gc.dispose();
    return [dx];
  });
}

/**
 * Softmax along `dim` (numerically stable).
 *
 * @param x the input tensor (f32, or bf16 computed in f32)
 * @param dim the dim that sums to 1 (default -1: the last)
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { softmax, tensor } from "@denograd/denograd";
 * console.log(softmax(tensor([0, Math.log(3)]), -1).toArray()); // [0.25, 0.75]
 * ```
 */
export function softmax(x: Tensor, dim = -1): Tensor {
  return softmaxImpl("softmax", x, dim, false);
}

/**
 * log(softmax(x)) along `dim`, computed without forming softmax.
 *
 * @param x the input tensor (f32, or bf16 computed in f32)
 * @param dim the dim to normalise over (default -1: the last)
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { logSoftmax, tensor } from "@denograd/denograd";
 * using x = tensor([0, Math.log(3)]);
 * using l = logSoftmax(x);
 * console.log(l.toArray()); // [-1.3862..., -0.2876...] (log 0.25, log 0.75)
 * ```
 */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return softmaxImpl("logSoftmax", x, dim, true);
}

/**
 * Layer normalisation over the trailing `normalizedShape` dims, with optional affine weight and
 * bias of that shape. Uses the biased variance, as PyTorch does.
 *
 * @param x the input tensor (f32, or bf16 computed in f32)
 * @param normalizedShape the trailing dims of x to normalise over
 * @param weight scale of shape `normalizedShape`, or null / omitted for none
 * @param bias shift of shape `normalizedShape`, or null / omitted for none
 * @param eps added to the variance before the square root (default 1e-5)
 * @returns a new f32 tensor of x's shape
 * @example
 * ```ts
 * import { layerNorm, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 2, 3], [10, 10, 40]]);
 * using w = tensor([1, 1, 2]), b = tensor([0, 0, 1]);
 * using y = layerNorm(x, [3], w, b);
 * console.log(y.toArray()); // [[-1.2247..., 0, 3.4494...], [-0.7071..., -0.7071..., 3.8284...]]
 * ```
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  checkTensor("layerNorm", x);
  if (x.dtype === "bf16") {
    return viaF32(x, (xf) => layerNorm(xf, normalizedShape, weight, bias, eps));
  }
  checkDType("layerNorm", x, "f32");
  const k = normalizedShape.length;
  if (k === 0 || k > x.ndim || normalizedShape.some((d, i) => d !== x.shape[x.ndim - k + i])) {
    throw new RangeError(
      `layerNorm: normalizedShape ${
        fmt(normalizedShape)
      } does not match the trailing dims of input ${fmt(x.shape)}`,
    );
  }
  for (const [p, name] of [[weight, "weight"], [bias, "bias"]] as const) {
    if (!p) continue;
    checkTensor("layerNorm", p, name);
    checkSameDevice("layerNorm", x, p);
    if (p.ndim !== k || p.shape.some((d, i) => d !== normalizedShape[i])) {
      throw new RangeError(
        `layerNorm: ${name} shape ${fmt(p.shape)} != normalizedShape ${fmt(normalizedShape)}`,
      );
    }
  }
  if (!(eps >= 0)) throw new RangeError(`layerNorm: eps must be >= 0, got ${eps}`);
  const cols = numel(normalizedShape);
  const rows = cols === 0 ? 0 : x.size / cols;
  const xc = contiguous(x);
  const wc = weight ? contiguous(weight) : null;
  const bc = bias ? contiguous(bias) : null;
  const y = empty(x.shape, "f32", x);
  const mean = empty([rows], "f32", x);
  const rstd = empty([rows], "f32", x);
  const be = x.backend;
  be.layerNormForward(
    as2d(xc, cols),
    wc && as1d(wc),
    bc && as1d(bc),
    as2d(y, cols),
    as1d(mean),
    as1d(rstd),
    eps,
  );
  const inputs = [x, weight, bias].filter((t): t is Tensor => !!t);
  const saved = [mean, rstd];
  if (xc !== x) saved.push(xc);
  for (const [c, p] of [[wc, weight], [bc, bias]] as const) if (c && c !== p) saved.push(c);
  return attach(y, "layerNorm", inputs, (g) => {
    const gc = contiguous(g);
    const dx = empty(x.shape, "f32", g);
    const dw = weight ? empty(normalizedShape, "f32", g) : null;
    const db = bias ? empty(normalizedShape, "f32", g) : null;
    be.layerNormBackward(
      as2d(gc, cols),
      as2d(xc, cols),
      wc && as1d(wc),
      as1d(mean),
      as1d(rstd),
      as2d(dx, cols),
      dw && as1d(dw),
      db && as1d(db),
    );
    if (gc !== g) gc.dispose();
    return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
  }, saved);
}

/**
 * Rows of `weight` (V, C) picked by integer `ids` of any shape: the result is (...ids.shape, C).
 *
 * @param ids i32 token ids in [0, V), any shape
 * @param weight the f32 table (V, C)
 * @returns a new f32 tensor (...ids.shape, C); the gradient scatter-adds into weight's rows
 * @example
 * ```ts
 * import { embedding, randn, tensor } from "@denograd/denograd";
 * const out = embedding(tensor([[1, 2]], { dtype: "i32" }), randn([10, 4]));
 * console.log(out.shape); // [1, 2, 4]
 * ```
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  checkTensor("embedding", ids, "ids");
  checkTensor("embedding", weight, "weight");
  checkDType("embedding", ids, "i32", "ids");
  checkDType("embedding", weight, "f32", "weight");
  checkSameDevice("embedding", ids, weight);
  if (weight.ndim !== 2) {
    throw new RangeError(`embedding: weight must be 2-D (V, C), got ${fmt(weight.shape)}`);
  }
  const [, c] = weight.shape;
  const idc = contiguous(ids);
  const wc = contiguous(weight);
  const out = empty([...ids.shape, c], "f32", weight);
  weight.backend.embeddingForward(wc._view(), as1d(idc), as2d(out, c));
  if (wc !== weight) wc.dispose();
  // The backward reads the ids; hold our own reference (the caller may dispose theirs).
  const idSaved = idc !== ids ? idc : ids.alias();
  return attach(out, "embedding", [weight], (g) => {
    const gc = contiguous(g);
    const dw = empty(weight.shape, "f32", g);
    g.backend.fill(dw._view(), 0);
    g.backend.embeddingBackward(as2d(gc, c), as1d(idSaved), dw._view());
    if (gc !== g) gc.dispose();
    return [dw];
  }, [idSaved]);
}

/**
 * Options of {@linkcode crossEntropy}.
 *
 * @example
 * ```ts
 * import { crossEntropy, tensor } from "@denograd/denograd";
 * using logits = tensor([[2, 0, 0], [0, 0, 0]]);
 * using targets = tensor([0, -100], { dtype: "i32" }); // the second target is ignored
 * using losses = crossEntropy(logits, targets, { reduction: "none" });
 * console.log(losses.toArray()); // [0.2395..., 0]
 * ```
 */
export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, no gradient, not counted). Default -100. */
  ignoreIndex?: number;
  /** "mean" over non-ignored targets (default), "sum", or "none" (per-target losses). */
  reduction?: "mean" | "sum" | "none";
}

/**
 * Cross-entropy of `logits` (..., C) against integer class `targets` (...), the class dim last
 * (for 2-D inputs this is PyTorch's `F.cross_entropy`). Fused: softmax, log and the gather run in
 * one kernel, and the backward is softmax - onehot.
 *
 * @param logits unnormalised scores (..., C), f32 (or bf16 computed in f32)
 * @param targets i32 class indices (...), logits' shape without its last dim
 * @param options ignoreIndex (default -100) and reduction ("mean", "sum" or "none")
 * @returns a 0-d f32 loss, or the per-target losses (...) for reduction "none"
 * @example
 * ```ts
 * import { crossEntropy, tensor } from "@denograd/denograd";
 * const loss = crossEntropy(tensor([[2, 0, 0]]), tensor([0], { dtype: "i32" }));
 * console.log(loss.item()); // ~0.2395
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyOptions = {},
): Tensor {
  const { ignoreIndex = -100, reduction = "mean" } = options;
  checkTensor("crossEntropy", logits, "logits");
  checkTensor("crossEntropy", targets, "targets");
  if (logits.dtype === "bf16") return viaF32(logits, (lf) => crossEntropy(lf, targets, options));
  checkDType("crossEntropy", logits, "f32", "logits");
  checkDType("crossEntropy", targets, "i32", "targets");
  checkSameDevice("crossEntropy", logits, targets);
  if (!Number.isInteger(ignoreIndex)) {
    throw new TypeError(`crossEntropy: ignoreIndex must be an integer`);
  }
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") {
    throw new TypeError(
      `crossEntropy: reduction must be "mean", "sum" or "none", got "${reduction}"`,
    );
  }
  const lead = logits.shape.slice(0, -1);
  if (
    logits.ndim < 1 || targets.ndim !== lead.length || targets.shape.some((d, i) => d !== lead[i])
  ) {
    throw new RangeError(
      `crossEntropy: targets ${fmt(targets.shape)} must match logits ${
        fmt(logits.shape)
      } without its last (class) dim`,
    );
  }
  const classes = logits.shape[logits.ndim - 1];
  const lc = contiguous(logits);
  const tc = targets.isContiguous ? targets.alias() : contiguous(targets);
  const losses = empty(lead, "f32", logits);
  const lse = empty(lead, "f32", logits);
  const be = logits.backend;
  be.crossEntropyForward(as2d(lc, classes), as1d(tc), as1d(losses), as1d(lse), ignoreIndex);
  const saved = [lse, tc, ...(lc !== logits ? [lc] : [])];
  const perTarget = attach(losses, "crossEntropy", [logits], (g) => {
    const gc = contiguous(g);
    const dlogits = empty(logits.shape, "f32", g);
    be.crossEntropyBackward(
      as2d(lc, classes),
      as1d(tc),
      as1d(lse),
      as1d(gc),
      as2d(dlogits, classes),
      ignoreIndex,
    );
    if (gc !== g) gc.dispose();
    return [dlogits];
  }, saved);
  if (reduction === "none") return perTarget;
  const total = sum(perTarget);
  perTarget.dispose();
  if (reduction === "sum") return total;
  const valid = ne(targets, ignoreIndex);
  const nValid = sum(valid);
  const count = cast(nValid, "f32");
  const out = div(total, count);
  for (const t of [total, valid, nValid, count]) t.dispose();
  return out;
}

/**
 * Inverted dropout: in training, zeroes each element with probability `p` and scales the rest by
 * 1/(1-p); outside training (or p = 0) returns `x` itself (so dispose the result only when it is
 * not `x`). Masks come from the seeded generator.
 *
 * @param x the input tensor
 * @param p the probability of zeroing each element, in [0, 1]
 * @param training apply dropout (default true); false returns `x`
 * @returns a new tensor of x's shape in training, else `x` itself
 * @example
 * ```ts
 * import { dropout, manualSeed, ones } from "@denograd/denograd";
 * manualSeed(0);
 * using x = ones([6]);
 * using y = dropout(x, 0.5); // kept entries are scaled by 1 / (1 - 0.5)
 * console.log(y.toArray()); // [0, 2, 2, 2, 2, 0]
 * console.log(dropout(x, 0.5, false) === x); // true: a no-op outside training
 * ```
 */
export function dropout(x: Tensor, p: number, training = true): Tensor {
  checkTensor("dropout", x);
  if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
    throw new RangeError(`dropout: p must be a probability in [0, 1], got ${p}`);
  }
  if (!training || p === 0) return x;
  const u = uniformArray(x.size);
  const scale = p === 1 ? 0 : 1 / (1 - p);
  for (let i = 0; i < u.length; i++) u[i] = u[i] >= p ? scale : 0;
  const mask = empty(x.shape, "f32", x);
  x.backend.write(mask.storage.buffer, u);
  const out = mul(x, mask);
  mask.dispose();
  return out;
}
