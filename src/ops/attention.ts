/**
 * Scaled dot-product attention: the fused op (one backend kernel forward, one backward, the
 * (T, S) score matrix never stored) and the naive reference composed from matmul, masks, softmax
 * and dropout. Both take the same options and draw the same dropout mask from the same RNG state.
 * @module
 */

import type { AttentionOptions } from "../backend/backend.ts";
import { attach, isGradEnabled } from "../autograd.ts";
import { reserveUniformBlocks } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { broadcastView, checkSameDevice, checkTensor, empty } from "./_helpers.ts";
import { add, cast, mul } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { contiguous, expand, reshape, transpose } from "./movement.ts";
import { dropout as dropoutOp, softmax } from "./nn.ts";

/**
 * Options of {@linkcode scaledDotProductAttention} and {@linkcode naiveAttention}.
 *
 * @example
 * ```ts
 * import { scaledDotProductAttention, tensor, zeros } from "@denograd/denograd";
 * using q = zeros([1, 1, 2, 2]), k = zeros([1, 1, 2, 2]); // equal scores everywhere
 * using v = tensor([[[[1, 2], [3, 4]]]]); // (B, H, S, D)
 * using y = scaledDotProductAttention(q, k, v, { causal: true });
 * console.log(y.toArray()); // [[[[1, 2], [2, 3]]]]: query 0 sees key 0 only, query 1 both
 * ```
 */
export interface AttentionOpOptions {
  /** Hide keys after each query's position: key j is visible to query i iff j <= i + qOffset. */
  causal?: boolean;
  /** Multiplies q·k; default 1/sqrt(D). */
  scale?: number;
  /** Dropout probability on the attention weights (default 0); applied only when `training`. */
  dropout?: number;
  /** Whether dropout is active (default true, like {@linkcode dropoutOp dropout}). */
  training?: boolean;
  /** (H) f32 ALiBi slopes: score(i, j) -= slope[h] * |i + qOffset - j|. No gradient. */
  alibiSlopes?: Tensor;
  /** f32 additive score bias broadcastable to (B, H, T, S). No gradient. */
  bias?: Tensor;
  /**
   * Absolute position of query 0 minus that of key 0; default S - T (the queries are the last T
   * of the S positions, as when decoding with a KV cache; 0 when T == S).
   */
  qOffset?: number;
  /** Sliding window: 0 (default) = unlimited, else key j is visible iff j > i + qOffset - window. */
  window?: number;
}

/** Validated inputs shared by the fused and the naive path. */
interface Checked {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  options: AttentionOptions;
  alibiSlopes: Tensor | null;
  bias: Tensor | null;
}

function check(
  name: string,
  q: unknown,
  k: unknown,
  v: unknown,
  opts: AttentionOpOptions,
): Checked {
  checkTensor(name, q, "q");
  checkTensor(name, k, "k");
  checkTensor(name, v, "v");
  checkSameDevice(name, q, k, v);
  for (const [t, n] of [[q, "q"], [k, "k"], [v, "v"]] as const) {
    if (t.ndim !== 4) {
      throw new RangeError(
        `${name}: ${n} must have 4 dims (B, heads, len, D), got ${fmt(t.shape)}`,
      );
    }
    if (t.dtype !== q.dtype || (t.dtype !== "f32" && t.dtype !== "bf16")) {
      throw new TypeError(
        `${name}: q, k, v must share one float dtype (f32 or bf16), got ${q.dtype}, ${k.dtype}, ${v.dtype}`,
      );
    }
  }
  const [B, H, T, D] = q.shape;
  const [Bk, Hkv, S, Dk] = k.shape;
  if (k.shape.some((d, i) => d !== v.shape[i])) {
    throw new RangeError(
      `${name}: k and v must have one shape, got ${fmt(k.shape)} and ${fmt(v.shape)}`,
    );
  }
  if (Bk !== B || Dk !== D || Hkv === 0 || H % Hkv !== 0 || D === 0) {
    throw new RangeError(
      `${name}: expected q (B, H, T, D) and k, v (B, Hkv, S, D) with H a multiple of Hkv and ` +
        `D >= 1, got q ${fmt(q.shape)} and k ${fmt(k.shape)}`,
    );
  }
  const { causal = false, scale = 1 / Math.sqrt(D), dropout = 0, training = true } = opts;
  const { qOffset = S - T, window = 0 } = opts;
  if (typeof causal !== "boolean" || typeof training !== "boolean") {
    throw new TypeError(
      `${name}: causal and training must be booleans, got ${causal}, ${training}`,
    );
  }
  if (typeof scale !== "number" || !Number.isFinite(scale)) {
    throw new RangeError(`${name}: scale must be a finite number, got ${scale}`);
  }
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    throw new RangeError(`${name}: dropout must be a probability in [0, 1), got ${dropout}`);
  }
  if (!Number.isSafeInteger(qOffset)) {
    throw new RangeError(`${name}: qOffset must be an integer, got ${qOffset}`);
  }
  if (!Number.isSafeInteger(window) || window < 0) {
    throw new RangeError(`${name}: window must be a non-negative integer, got ${window}`);
  }
  const alibiSlopes = opts.alibiSlopes ?? null;
  if (alibiSlopes !== null) {
    checkTensor(name, alibiSlopes, "alibiSlopes");
    checkSameDevice(name, q, alibiSlopes);
    if (alibiSlopes.dtype !== "f32" || alibiSlopes.ndim !== 1 || alibiSlopes.shape[0] !== H) {
      throw new TypeError(
        `${name}: alibiSlopes must be f32 of shape [${H}], got ${alibiSlopes.dtype} ${
          fmt(alibiSlopes.shape)
        }`,
      );
    }
  }
  const bias = opts.bias ?? null;
  if (bias !== null) {
    checkTensor(name, bias, "bias");
    checkSameDevice(name, q, bias);
    if (bias.dtype !== "f32") throw new TypeError(`${name}: bias must be f32, got ${bias.dtype}`);
    const full = [B, H, T, S], lead = 4 - bias.ndim;
    if (lead < 0 || bias.shape.some((d, i) => d !== 1 && d !== full[lead + i])) {
      throw new RangeError(`${name}: bias ${fmt(bias.shape)} does not broadcast to ${fmt(full)}`);
    }
  }
  const p = training ? dropout : 0;
  const options: AttentionOptions = {
    causal,
    scale,
    qOffset,
    window,
    dropout: p,
    dropoutKey0: 0,
    dropoutKey1: 0,
    dropoutBlock: 0,
  };
  return { B, H, Hkv, T, S, D, options, alibiSlopes, bias };
}

/** A contiguous handle of `t` that the caller owns (a copy, or a new alias of `t`). */
function privateContiguous(t: Tensor): Tensor {
  const c = contiguous(t);
  return c === t ? t.alias() : c;
}

/** `t` itself when its last dim has unit stride, else a contiguous copy. */
function unitLastStride(t: Tensor): Tensor {
  return t.shape[t.ndim - 1] <= 1 || t.strides[t.ndim - 1] === 1 ? t : contiguous(t);
}

/**
 * Fused scaled-dot-product attention with backward: softmax(scale * q k^T + alibi + bias,
 * masked) (with dropout) times v, computed tile by tile with an online softmax so memory stays
 * O(T·D), not O(T·S). q (B, H, T, D); k, v (B, Hkv, S, D) with H a multiple of Hkv (grouped-query
 * attention: query head h reads kv head floor(h / (H / Hkv))). q, k, v may be strided views (e.g.
 * the split of a fused qkv projection) and are not copied when their last dim is contiguous.
 *
 * A query row with no visible key (possible with `qOffset < 0` or a window) outputs zeros.
 * Gradients flow to q, k and v; `bias` and `alibiSlopes` are constants (they must not require a
 * gradient; use {@linkcode naiveAttention} to learn them). Dropout draws exactly the mask that
 * `dropout(softmax(...), p)` in {@linkcode naiveAttention} draws from the same RNG state.
 *
 * @param q queries (B, H, T, D), f32 (or bf16 on CUDA; bf16 on the CPU computes in f32)
 * @param k keys (B, Hkv, S, D)
 * @param v values (B, Hkv, S, D)
 * @param opts causal, scale, dropout, training, alibiSlopes, bias, qOffset, window
 * @returns (B, H, T, D)
 * @example
 * ```ts
 * import { randn, scaledDotProductAttention } from "@denograd/denograd";
 * const q = randn([1, 4, 8, 16]), k = randn([1, 2, 8, 16]), v = randn([1, 2, 8, 16]);
 * const y = scaledDotProductAttention(q, k, v, { causal: true });
 * console.log(y.shape); // [1, 4, 8, 16]
 * ```
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOpOptions = {},
): Tensor {
  const name = "scaledDotProductAttention";
  const c = check(name, q, k, v, opts);
  if (q.dtype === "bf16" && q.device === "cpu") {
    // The CPU kernel is f32 only: compute in f32 like the CPU's other bf16 fused ops.
    const [qf, kf, vf] = [q, k, v].map((t) => cast(t, "f32"));
    const yf = scaledDotProductAttention(qf, kf, vf, opts);
    const y = cast(yf, "bf16");
    for (const t of [qf, kf, vf, yf]) t.dispose(); // the graph keeps what backward needs
    return y;
  }
  for (const [t, n] of [[c.bias, "bias"], [c.alibiSlopes, "alibiSlopes"]] as const) {
    if (t?.requiresGrad && isGradEnabled()) {
      throw new TypeError(
        `${name}: ${n} requires a gradient, but none flows to it; detach it or use naiveAttention`,
      );
    }
  }
  const { B, H, T, S, D, options } = c;
  if (options.dropout > 0) {
    // Reserve exactly the draws dropout() would take on the (B, H, T, S) weights.
    const run = reserveUniformBlocks(B * H * T * S);
    options.dropoutKey0 = run.key0;
    options.dropoutKey1 = run.key1;
    options.dropoutBlock = run.firstBlock;
  }
  const [qu, ku, vu] = [q, k, v].map(unitLastStride);
  // Private handles: the graph reads these even if the caller disposes the originals.
  const slopes = c.alibiSlopes ? privateContiguous(c.alibiSlopes) : null;
  const bias = c.bias ? c.bias.alias() : null;
  const slopesView = slopes ? slopes._view() : null;
  const biasView = bias ? broadcastView(bias, [B, H, T, S]) : null;
  const out = empty([B, H, T, D], q.dtype, q); // (B, H, T, D)
  const lse = empty([B, H, T], "f32", q); // (B, H, T)
  q.backend.attentionForward({
    q: qu._view(),
    k: ku._view(),
    v: vu._view(),
    alibiSlopes: slopesView,
    bias: biasView,
    out: out._view(),
    lse: lse._view(),
    options,
  });
  const outSaved = out.alias();
  const copies = [qu, ku, vu].filter((t, i) => t !== [q, k, v][i]);
  const temps = [...copies, outSaved, lse, ...(slopes ? [slopes] : []), ...(bias ? [bias] : [])];
  return attach(out, name, [q, k, v], (g) => {
    const gu = unitLastStride(g); // (B, H, T, D)
    const dq = empty(q.shape, q.dtype, g); // (B, H, T, D)
    const dk = empty(k.shape, k.dtype, g); // (B, Hkv, S, D)
    const dv = empty(v.shape, v.dtype, g); // (B, Hkv, S, D)
    g.backend.attentionBackward({
      q: qu._view(),
      k: ku._view(),
      v: vu._view(),
      alibiSlopes: slopesView,
      bias: biasView,
      out: outSaved._view(),
      dout: gu._view(),
      lse: lse._view(),
      dq: dq._view(),
      dk: dk._view(),
      dv: dv._view(),
      options,
    });
    if (gu !== g) gu.dispose();
    return [dq, dk, dv];
  }, temps);
}

/** A constant f32 (T, S) tensor on `like`'s device from a host function of (i, j). */
function grid(T: number, S: number, like: Tensor, f: (i: number, j: number) => number): Tensor {
  const host = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) host[i * S + j] = f(i, j);
  const t = empty([T, S], "f32", like);
  t.backend.write(t.storage.buffer, host);
  return t;
}

/** Repeats each kv head H / Hkv times along dim 1 (torch.repeat_interleave): (B, H, S, D). */
function repeatKv(t: Tensor, H: number): Tensor {
  const [B, Hkv, S, D] = t.shape;
  if (Hkv === H) return t;
  const t5 = reshape(t, [B, Hkv, 1, S, D]);
  const e = expand(t5, [B, Hkv, H / Hkv, S, D]);
  const r = reshape(e, [B, H, S, D]);
  t5.dispose();
  e.dispose();
  return r;
}

/**
 * The reference attention, composed from differentiable ops (matmul, add, softmax, dropout):
 * same arguments and results as {@linkcode scaledDotProductAttention}, but it stores the
 * (B, H, T, S) weights, so it costs O(T·S) memory. Gradients also flow to `bias` and
 * `alibiSlopes`. Rows with no visible key output zeros (rows that only a -Infinity `bias` hides
 * give NaN here, as in torch).
 *
 * @param q queries (B, H, T, D)
 * @param k keys (B, Hkv, S, D)
 * @param v values (B, Hkv, S, D)
 * @param opts as for {@linkcode scaledDotProductAttention}
 * @returns (B, H, T, D)
 * @example
 * ```ts
 * import { naiveAttention, randn } from "@denograd/denograd";
 * const q = randn([1, 2, 5, 8]), k = randn([1, 2, 5, 8]), v = randn([1, 2, 5, 8]);
 * console.log(naiveAttention(q, k, v, { causal: true }).shape); // [1, 2, 5, 8]
 * ```
 */
export function naiveAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOpOptions = {},
): Tensor {
  const c = check("naiveAttention", q, k, v, opts);
  const { H, T, S, options: o } = c;
  const temps: Tensor[] = [];
  const own = <X extends Tensor>(t: X): X => (temps.push(t), t);
  const kr = repeatKv(k, H), vr = repeatKv(v, H); // (B, H, S, D)
  if (kr !== k) temps.push(kr);
  if (vr !== v) temps.push(vr);
  const kt = own(transpose(kr, -2, -1)); // (B, H, D, S)
  let s = own(mul(own(matmul(q, kt)), o.scale)); // (B, H, T, S)
  if (c.alibiSlopes) {
    const dist = own(grid(T, S, q, (i, j) => -Math.abs(i + o.qOffset - j))); // (T, S)
    const slopes = own(reshape(c.alibiSlopes, [1, H, 1, 1]));
    s = own(add(s, own(mul(slopes, dist))));
  }
  if (c.bias) s = own(add(s, c.bias));
  const visible = (i: number, j: number): boolean =>
    (!o.causal || j <= i + o.qOffset) && (o.window === 0 || j > i + o.qOffset - o.window);
  const rowVisible = new Float32Array(T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < S && !rowVisible[i]; j++) rowVisible[i] = +visible(i, j);
  }
  // Hidden entries get -1e30 (exp underflows to exactly 0); a row with no visible key stays
  // unmasked (finite softmax) and is zeroed after, so neither values nor gradients see NaN.
  const maskAdd = own(grid(T, S, q, (i, j) => visible(i, j) || !rowVisible[i] ? 0 : -1e30));
  s = own(add(s, maskAdd));
  let p = own(softmax(s, -1)); // (B, H, T, S)
  if (rowVisible.some((r) => r === 0)) {
    const rows = own(grid(T, 1, q, (i) => rowVisible[i]));
    p = own(mul(p, rows));
  }
  const pd = dropoutOp(p, o.dropout, o.dropout > 0);
  if (pd !== p) temps.push(pd);
  const out = matmul(pd, vr); // (B, H, T, D)
  for (const t of temps) t.dispose(); // the graph keeps what backward needs
  return out;
}
