/**
 * The Backend contract: buffers plus a small, closed set of primitive kernels.
 * Every op in `src/ops` is composed from these; a new device implements only this.
 * @module
 */

import type { DType, StorageArray, TypedArray } from "../dtype.ts";

/** A device name: "cpu", "cuda" (= "cuda:0") or "cuda:N". */
export type Device = string;

/** Opaque device memory owned by a backend. */
export interface Buffer {
  /** Size in bytes. */
  readonly bytes: number;
}

/**
 * A strided window onto a buffer: element `(i0, i1, ...)` lives at
 * `offset + sum(ik * strides[k])` (in elements, not bytes). A stride of 0 broadcasts.
 */
export interface View {
  /** The memory viewed. */
  readonly buffer: Buffer;
  /** Element type. */
  readonly dtype: DType;
  /** Dims, outermost first. */
  readonly shape: readonly number[];
  /** Element step of each dim (0 broadcasts). */
  readonly strides: readonly number[];
  /** Element index of the first element. */
  readonly offset: number;
}

/** Elementwise unary kernels. `copy` copies (and casts, if dtypes differ) any strided view. */
export type UnaryOp =
  | "copy"
  | "neg"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "abs"
  | "tanh"
  | "sigmoid"
  | "relu"
  | "gelu"
  | "silu"
  | "sign";

/**
 * Elementwise binary kernels. Comparisons write 1 or 0.
 * `gelu_backward(x, dy)` = dy * gelu'(x) (tanh form); `relu_backward(x, dy)` = x > 0 ? dy : 0.
 */
export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "maximum"
  | "minimum"
  | "eq"
  | "ne"
  | "lt"
  | "le"
  | "gt"
  | "ge"
  | "gelu_backward"
  | "relu_backward";

/** Reductions. `argmax`/`argmin` write i32 indices into the reduced (flattened) axes. */
export type ReduceOp = "sum" | "max" | "min" | "argmax" | "argmin";

/** Options of a (batched) matrix multiply. */
export interface MatmulOptions {
  /** Use the transpose of the last two dims of `a`. */
  transA: boolean;
  /** Use the transpose of the last two dims of `b`. */
  transB: boolean;
  /** out = alpha * a @ b + beta * out. Default 1. */
  alpha?: number;
  /** Default 0 (out is overwritten). */
  beta?: number;
}

/**
 * Hyperparameters of one fused AdamW update ({@linkcode Backend.adamwStep}), exactly
 * torch.optim.AdamW's: `step` is the 1-based count of updates of this parameter, this one included.
 */
export interface AdamWStepOptions {
  /** Learning rate. */
  lr: number;
  /** Decay of the first moment (m). */
  beta1: number;
  /** Decay of the second moment (v). */
  beta2: number;
  /** Added to sqrt(v-hat) in the denominator. */
  eps: number;
  /** Decoupled weight decay: p -= lr * weightDecay * p before the Adam update. */
  weightDecay: number;
  /** Updates so far including this one (>= 1), for the bias corrections. */
  step: number;
}

/**
 * Options of the fused attention kernels ({@linkcode Backend.attentionForward},
 * {@linkcode Backend.attentionBackward}).
 */
export interface AttentionOptions {
  /** Mask keys after the query's position: key j is visible to query i iff j <= i + qOffset. */
  causal: boolean;
  /** Multiplies q·k (usually 1/sqrt(D)). */
  scale: number;
  /** Absolute position of query row 0 minus that of key 0 (KV cache decoding: S - T). */
  qOffset: number;
  /** Sliding window: 0 = unlimited, else key j is visible only iff j > i + qOffset - window. */
  window: number;
  /** Dropout probability on the attention weights; 0 = none. */
  dropout: number;
  /** Philox key, low 32 bits, of this call's dropout mask (see {@linkcode Backend.attentionForward}). */
  dropoutKey0: number;
  /** Philox key, high 32 bits. */
  dropoutKey1: number;
  /** First Philox counter block of this call's dropout mask. */
  dropoutBlock: number;
}

/** The operands of one {@linkcode Backend.attentionForward} call. */
export interface AttentionArgs {
  /** Queries (B, H, T, D), unit stride in D. */
  q: View;
  /** Keys (B, Hkv, S, D), unit stride in D; H % Hkv == 0. */
  k: View;
  /** Values (B, Hkv, S, D), unit stride in D. */
  v: View;
  /** ALiBi slopes (H) f32, or null. */
  alibiSlopes: View | null;
  /** Additive score bias f32 broadcastable to (B, H, T, S) through 0 strides, or null. */
  bias: View | null;
  /** Output (B, H, T, D), unit stride in D (an input of the backward call). */
  out: View;
  /** Log-sum-exp of each score row (B, H, T) f32 (an input of the backward call). */
  lse: View;
  /** Masking, scale and dropout. */
  options: AttentionOptions;
}

/** The operands of one {@linkcode Backend.attentionBackward} call: the forward's, plus these. */
export interface AttentionBackwardArgs extends AttentionArgs {
  /** Gradient of out (B, H, T, D). */
  dout: View;
  /** Gradient of q (B, H, T, D), overwritten; unit stride in D. */
  dq: View;
  /** Gradient of k (B, Hkv, S, D), overwritten; unit stride in D. */
  dk: View;
  /** Gradient of v (B, Hkv, S, D), overwritten; unit stride in D. */
  dv: View;
}

/** torch.optim.SGD hyperparameters for one fused update ({@linkcode Backend.sgdStep}). */
export interface SgdStepOptions {
  /** Learning rate. */
  lr: number;
  /** Momentum factor (0: plain SGD, no momentum buffer). */
  momentum: number;
  /** Dampening of the momentum: the new gradient enters the buffer scaled by 1 - dampening. */
  dampening: number;
  /** L2 penalty added to the gradient: g' = g + weightDecay * p. */
  weightDecay: number;
  /** Nesterov momentum: step along g' + momentum * buf instead of buf. */
  nesterov: boolean;
  /** The parameter's first update: the momentum buffer is set to g' (torch's rule). */
  firstStep: boolean;
}

/**
 * A device backend. All views passed in have been validated by the op layer: shapes agree,
 * dtypes are as documented, `out` views never alias inputs unless stated.
 *
 * Broadcasting is expressed in the input views' strides (stride 0); every input of an elementwise
 * kernel has exactly `out.shape`.
 */
export interface Backend {
  /** The device this backend runs on, e.g. "cpu". */
  readonly device: Device;

  // ---- buffers ----
  /** New memory; its contents are unspecified (every kernel writes all of its output). */
  alloc(bytes: number): Buffer;
  /** Gives memory back (the backend may cache it for reuse). */
  free(buffer: Buffer): void;
  /**
   * Copies host data (raw bits: bf16 as a Uint16Array) into the buffer from byte `byteOffset`
   * (default 0).
   */
  write(buffer: Buffer, src: StorageArray, byteOffset?: number): void;
  /**
   * Reads `count` elements of `dtype` starting at element `offset` into a new host array
   * (bf16 is widened to a Float32Array). On an asynchronous device this waits for queued work.
   */
  read(buffer: Buffer, dtype: DType, offset: number, count: number): TypedArray;
  /** Copies `bytes` bytes between buffers. */
  copy(
    src: Buffer,
    dst: Buffer,
    bytes: number,
    srcByteOffset?: number,
    dstByteOffset?: number,
  ): void;

  // ---- elementwise ----
  /** out = value everywhere in the (possibly strided) view. */
  fill(out: View, value: number): void;
  /** out = op(x) elementwise. */
  unary(op: UnaryOp, x: View, out: View): void;
  /** `out` may be exactly the view `a` (in-place update, e.g. gradient accumulation). */
  binary(op: BinaryOp, a: View, b: View, out: View): void;
  /** out = cond != 0 ? a : b. All three inputs already have out.shape. */
  where(cond: View, a: View, b: View, out: View): void;

  // ---- reductions ----
  /**
   * Reduces `x` over `axes` (sorted, unique). `out` has x's shape with the reduced axes set to 1
   * (keepdim layout), contiguous.
   */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void;

  // ---- matmul ----
  /**
   * Batched matmul. `a`, `b`, `out` are rank >= 2 with equal rank and equal batch shape (batch
   * broadcasting through stride-0 batch strides). With transA, a's view holds (…, K, M); with
   * transB, b's holds (…, N, K). Each matrix view has a unit stride in one of its last two dims.
   */
  matmul(a: View, b: View, out: View, options: MatmulOptions): void;
  /**
   * Optional fused `out = x @ weight^T + bias`: x (rows, K) and out (rows, N) with unit column
   * stride, weight (N, K) any BLAS layout, bias (N) contiguous; x, weight, bias, out one float
   * dtype. CUDA runs it as one cuBLASLt GEMM with a bias epilogue; without it, `linear` does a
   * matmul and a broadcast add.
   */
  linearBias?(x: View, weight: View, bias: View, out: View): void;

  // ---- indexing ----
  /** torch.gather: out[..i..] = x[..index[..i..] at axis..]. index (i32) has out.shape. */
  gather(x: View, axis: number, index: View, out: View): void;
  /** Reverse of gather: dst[..index[..i..] at axis..] += src[..i..]. index has src.shape. */
  scatterAdd(dst: View, axis: number, index: View, src: View): void;

  // ---- fused NN kernels, forward beside backward (all over the last dim, contiguous views) ----
  /** y = softmax(x) (or log_softmax when `log`) over the last dim. x, y: (N, C). */
  softmaxForward(x: View, y: View, log: boolean): void;
  /** dx from y and dy. log: dx = dy - exp(y) * sum(dy); else dx = y * (dy - sum(dy * y)). */
  softmaxBackward(y: View, dy: View, dx: View, log: boolean): void;
  /** y = (x - mean) * rstd * weight + bias. x, y: (N, C); weight, bias: (C); mean, rstd: (N). */
  layerNormForward(
    x: View,
    weight: View | null,
    bias: View | null,
    y: View,
    mean: View,
    rstd: View,
    eps: number,
  ): void;
  /** dx = …; dweight, dbias (C) are overwritten (not accumulated); null when not wanted. */
  layerNormBackward(
    dy: View,
    x: View,
    weight: View | null,
    mean: View,
    rstd: View,
    dx: View,
    dweight: View | null,
    dbias: View | null,
  ): void;
  /**
   * Per-row cross-entropy. logits: (N, V) f32; targets: (N) i32. losses (N) gets
   * logsumexp(row) - row[target], or 0 where target == ignoreIndex; lse (N) saves logsumexp.
   */
  crossEntropyForward(
    logits: View,
    targets: View,
    losses: View,
    lse: View,
    ignoreIndex: number,
  ): void;
  /** dlogits = (softmax(logits) - onehot(target)) * dlosses[row]; zero rows where ignored. */
  crossEntropyBackward(
    logits: View,
    targets: View,
    lse: View,
    dlosses: View,
    dlogits: View,
    ignoreIndex: number,
  ): void;
  /** out (N, C) = weight (V, C) rows picked by ids (N) i32. */
  embeddingForward(weight: View, ids: View, out: View): void;
  /** dweight (V, C) += dout (N, C) scattered to the rows in ids (N). */
  embeddingBackward(dout: View, ids: View, dweight: View): void;

  /**
   * Fused scaled-dot-product attention (FlashAttention style: the (T, S) score matrix need not
   * exist). q (B, H, T, D); k, v (B, Hkv, S, D) with H % Hkv == 0 (grouped-query: head h reads kv
   * head floor(h / (H / Hkv))); out (B, H, T, D); lse (B, H, T) f32. q, k, v, out have unit stride
   * in D and any strides in B, H, T/S (views into a fused qkv projection need no copy).
   *
   *   s(i, j) = scale * q_i·k_j - slope[h] * |i + qOffset - j| + bias[b, h, i, j]
   *   visible(i, j) = (!causal || j <= i + qOffset) && (window == 0 || j > i + qOffset - window)
   *   lse_i = log(sum over visible j of exp(s(i, j)));   p(i, j) = exp(s(i, j) - lse_i)
   *   out_i = sum_j keep(i, j) / (1 - dropout) * p(i, j) * v_j
   *
   * alibiSlopes (H) f32 or null; bias f32 broadcastable to (B, H, T, S) through 0 strides, or null.
   * A row with no visible key gets out = 0 and lse = -inf (never NaN). keep(i, j): element
   * e = ((b*H + h)*T + i)*S + j uses word (e % 4) of philox4x32(counter = dropoutBlock + floor(e/4)
   * as (low 32, high 32), key = (dropoutKey0, dropoutKey1)); u = (word >>> 8) * 2^-24; kept iff
   * u >= dropout — the mask `dropout()` draws on the contiguous (B, H, T, S) weights. dtypes: q, k,
   * v, out one float dtype (f32, or bf16 on CUDA); accumulation in f32.
   */
  attentionForward(args: AttentionArgs): void;
  /**
   * Gradients of {@linkcode Backend.attentionForward} (FlashAttention-2: p recomputed from lse,
   * D_i = rowsum(dout_i * out_i), ds = p * (dp - D_i) with dp = dropped(dout · v^T)):
   *
   *   dv_j = sum_i pdrop(i, j) * dout_i;   dq_i = scale * sum_j ds(i, j) * k_j;
   *   dk_j = scale * sum_i ds(i, j) * q_i
   *
   * dq (B, H, T, D), dk, dv (B, Hkv, S, D) are overwritten (dk/dv summed over the heads sharing a
   * kv head), with unit stride in D. No gradient flows to alibiSlopes or bias. Same options (and
   * dropout mask) as the forward call.
   */
  attentionBackward(args: AttentionBackwardArgs): void;

  // ---- optimizer ----
  /**
   * One fused AdamW update in place, a single pass over four f32 views of equal shape, all
   * contiguous (torch.optim.AdamW, amsgrad off):
   *
   *   p *= 1 - lr * weightDecay
   *   m  = beta1 * m + (1 - beta1) * g
   *   v  = beta2 * v + (1 - beta2) * g * g
   *   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
   */
  adamwStep(param: View, grad: View, m: View, v: View, options: AdamWStepOptions): void;

  /**
   * One fused SGD update in place (torch.optim.SGD), a single pass over f32 contiguous views of
   * equal shape; `momentumBuf` is null when momentum == 0:
   *
   *   g' = g + weightDecay * p
   *   if momentum != 0:
   *     buf = firstStep ? g' : momentum * buf + (1 - dampening) * g'
   *     d   = nesterov ? g' + momentum * buf : buf
   *   else d = g'
   *   p -= lr * d
   */
  sgdStep(param: View, grad: View, momentumBuf: View | null, options: SgdStepOptions): void;

  /**
   * One fused Adam update in place (torch.optim.Adam, amsgrad off): as
   * {@linkcode Backend.adamwStep} but with L2 weight decay folded into the gradient instead of
   * decoupled decay, a single pass over four f32 contiguous views of equal shape:
   *
   *   g' = g + weightDecay * p
   *   m  = beta1 * m + (1 - beta1) * g'
   *   v  = beta2 * v + (1 - beta2) * g' * g'
   *   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
   */
  adamStep(param: View, grad: View, m: View, v: View, options: AdamWStepOptions): void;

  /** Blocks until all queued work is done (a no-op on the CPU). */
  synchronize(): void;
}
