/**
 * The cuDNN fused flash-attention operation graphs, transcribed from the structure that
 * cudnn-frontend's `sdpa` / `sdpa_backward` nodes lower to for the cuDNN 9 backend API (the
 * "fused flash attention fprop/bprop" pattern), built on descriptors through
 * {@linkcode CudnnGraph}. {@linkcode CudnnAttention} (cudnn_attention.ts) plans and runs them.
 *
 * Forward (bf16 Q, K, V, O; f32 stats; virtual tensors f32 unless noted):
 *   S = Q @ K^T -> S * scale -> [ALiBi: S + (col - row) * slope] -> [causal: select(S, lowest,
 *   row (+ qOffset) >= col)] -> M = max_j S, E = exp(S - M), L = sum_j E, Stats = M + log L,
 *   P = E / L (bf16) -> O = P @ V.
 * Backward (as cudnn-frontend does for cuDNN >= 9): Dsum = rowsum(dO * O); P = exp(masked S -
 *   Stats); dV = P^T @ dO; dS = (dO @ V^T - Dsum) * P * scale; dK = dS^T @ Q; dQ = dS @ K through
 *   an f32 accumulator (non-virtual, zeroed, F16x16 reordering) copied to dQ by an IDENTITY op.
 *   With grouped-query heads dK/dV are computed per query head and summed by a reduction.
 * @module
 */

import {
  CUDNN_DATA,
  CUDNN_POINTWISE as PW,
  CUDNN_REDUCE_TENSOR,
  CUDNN_TENSOR_REORDERING,
} from "../../../ffi/cudnn.ts";
import type { CudnnGraph, GraphTensor } from "./cudnn_graph.ts";

/** Unique ids of the graphs' non-virtual tensors (the variant pack's keys). */
export const SDPA_UID = {
  Q: 1,
  K: 2,
  V: 3,
  O: 4,
  STATS: 5,
  SCALE: 6,
  NEG_INF: 7,
  SLOPES: 8,
  Q_OFFSET: 9,
  DO: 10,
  DQ: 11,
  DK: 12,
  DV: 13,
  ONE: 14,
  DQ_ACCUM: 15,
} as const;

/** cudnn-frontend's masked-score value: `std::numeric_limits<float>::lowest()`. */
export const MASK_VALUE = -3.4028234663852886e38;

type Strides4 = readonly [number, number, number, number];

/** Sizes and strides of one attention call, as the graphs see them. */
export interface SdpaLayout {
  /** Batch, query heads, kv heads, query length, key length, head size. */
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  /** (B, H, T, D) strides of q, out (and dout, dq in backward). */
  q: Strides4;
  o: Strides4;
  /** (B, Hkv, S, D) strides of k, v (and dk, dv). */
  k: Strides4;
  v: Strides4;
  /** (B, H, T) strides of lse. */
  lse: readonly [number, number, number];
  /** Stride of the (H) ALiBi slopes, or null without ALiBi. */
  slopes: number | null;
  /** Backward only: strides of dout, dq, dk, dv. */
  dO?: Strides4;
  dQ?: Strides4;
  dK?: Strides4;
  dV?: Strides4;
}

/** The mask options a graph is built for. */
export interface SdpaMask {
  /** Top-left causal (key j visible iff j <= i + qOffset). */
  causal: boolean;
  /** 0, or S - T (bottom-right); only used when causal. */
  qOffset: number;
}

const BF16 = CUDNN_DATA.BFLOAT16;
const F32 = CUDNN_DATA.FLOAT;

function transposed(s: Strides4): Strides4 {
  return [s[0], s[1], s[3], s[2]];
}

/**
 * Adds scale, ALiBi and the causal mask to the raw scores `s` (B, H, T, S) and returns the
 * masked scores, as cudnn-frontend's score modifiers do.
 */
function scoreModifiers(
  g: CudnnGraph,
  s: GraphTensor,
  L: SdpaLayout,
  m: SdpaMask,
  scaleT: GraphTensor,
): GraphTensor {
  const { B, H, T, S } = L;
  const dims = [B, H, T, S];
  let out = g.virtual("S*scale", dims);
  g.pointwise(PW.MUL, s, out, { b: scaleT });
  if (L.slopes !== null) {
    const slopes = g.tensor({
      name: "alibi_slopes",
      uid: SDPA_UID.SLOPES,
      dtype: F32,
      dims: [1, H, 1, 1],
      strides: [H * L.slopes, L.slopes, 1, 1],
    });
    const row = g.virtual("alibi_row", dims, CUDNN_DATA.INT32);
    g.pointwise(PW.GEN_INDEX, out, row, { axis: 2, compute: CUDNN_DATA.INT32 });
    const col = g.virtual("alibi_col", dims, CUDNN_DATA.INT32);
    g.pointwise(PW.GEN_INDEX, out, col, { axis: 3, compute: CUDNN_DATA.INT32 });
    const diff = g.virtual("col-row", dims, CUDNN_DATA.INT32);
    g.pointwise(PW.SUB, col, diff, { b: row, compute: CUDNN_DATA.INT32 });
    const bias = g.virtual("alibi_bias", dims);
    g.pointwise(PW.MUL, diff, bias, { b: slopes });
    const added = g.virtual("S+alibi", dims);
    g.pointwise(PW.ADD, out, added, { b: bias });
    out = added;
  }
  if (m.causal) {
    let row = g.virtual("causal_row", dims, CUDNN_DATA.INT32);
    g.pointwise(PW.GEN_INDEX, out, row, { axis: 2, compute: CUDNN_DATA.INT32 });
    if (m.qOffset !== 0) {
      // Bottom-right alignment: query i sits at absolute position i + qOffset.
      const offset = g.scalar("q_offset", SDPA_UID.Q_OFFSET, CUDNN_DATA.INT32, m.qOffset);
      const shifted = g.virtual("causal_row+offset", dims, CUDNN_DATA.INT32);
      g.pointwise(PW.ADD, row, shifted, { b: offset, compute: CUDNN_DATA.INT32 });
      row = shifted;
    }
    const col = g.virtual("causal_col", dims, CUDNN_DATA.INT32);
    g.pointwise(PW.GEN_INDEX, out, col, { axis: 3, compute: CUDNN_DATA.INT32 });
    const visible = g.virtual("row>=col", dims, CUDNN_DATA.BOOLEAN);
    g.pointwise(PW.CMP_GE, row, visible, { b: col, compute: CUDNN_DATA.BOOLEAN });
    const negInf = g.scalar("mask_value", SDPA_UID.NEG_INF, F32, MASK_VALUE);
    const masked = g.virtual("S_masked", dims);
    // BINARY_SELECT: y = t ? x : b.
    g.pointwise(PW.BINARY_SELECT, out, masked, { b: negInf, t: visible });
    out = masked;
  }
  return out;
}

/**
 * Adds the SDPA forward graph (training: Stats output) for `L` to `g`.
 * @param scale the initial value of the by-value scale (changed per call with setScalar)
 */
export function buildSdpaForward(g: CudnnGraph, L: SdpaLayout, m: SdpaMask, scale: number): void {
  const { B, H, Hkv, T, S, D } = L;
  const q = g.tensor({ name: "Q", uid: SDPA_UID.Q, dtype: BF16, dims: [B, H, T, D], strides: L.q });
  // K enters as K^T: (B, Hkv, D, S) with the last two strides swapped (no copy).
  const kT = g.tensor({
    name: "K^T",
    uid: SDPA_UID.K,
    dtype: BF16,
    dims: [B, Hkv, D, S],
    strides: transposed(L.k),
  });
  const v = g.tensor({
    name: "V",
    uid: SDPA_UID.V,
    dtype: BF16,
    dims: [B, Hkv, S, D],
    strides: L.v,
  });
  const o = g.tensor({ name: "O", uid: SDPA_UID.O, dtype: BF16, dims: [B, H, T, D], strides: L.o });
  const stats = g.tensor({
    name: "Stats",
    uid: SDPA_UID.STATS,
    dtype: F32,
    dims: [B, H, T, 1],
    strides: [L.lse[0], L.lse[1], L.lse[2], 1],
  });
  const dims = [B, H, T, S], rowDims = [B, H, T, 1];
  const scaleT = g.scalar("attn_scale", SDPA_UID.SCALE, F32, scale);
  const s = g.virtual("S=QK^T", dims);
  g.matmul(q, kT, s);
  const masked = scoreModifiers(g, s, L, m, scaleT);
  // Softmax with stats, as cudnn-frontend's composite softmax node.
  const max = g.virtual("rowmax", rowDims);
  g.reduction(CUDNN_REDUCE_TENSOR.MAX, masked, max);
  const centered = g.virtual("S-max", dims);
  g.pointwise(PW.SUB, masked, centered, { b: max });
  const e = g.virtual("exp(S-max)", dims);
  g.pointwise(PW.EXP, centered, e);
  const sum = g.virtual("rowsum", rowDims);
  g.reduction(CUDNN_REDUCE_TENSOR.ADD, e, sum);
  const logSum = g.virtual("log(rowsum)", rowDims);
  g.pointwise(PW.LOG, sum, logSum);
  g.pointwise(PW.ADD, max, stats, { b: logSum });
  // bmm2 takes P in the I/O type (a cuDNN requirement cudnn-frontend encodes).
  const p = g.virtual("P", dims, BF16);
  g.pointwise(PW.DIV, e, p, { b: sum });
  g.matmul(p, v, o);
}

/** dst = (ST^T in (B, H, S, T)) @ rhs (B, H, T, D), summed over head groups when H > Hkv. */
function headSummedMatmul(
  g: CudnnGraph,
  lhsT: GraphTensor,
  rhs: GraphTensor,
  dst: GraphTensor,
  L: SdpaLayout,
  name: string,
): void {
  if (L.H === L.Hkv) return g.matmul(lhsT, rhs, dst);
  const perHead = g.virtual(`${name}_per_head`, [L.B, L.H, L.S, L.D], BF16);
  g.matmul(lhsT, rhs, perHead);
  g.reduction(CUDNN_REDUCE_TENSOR.ADD, perHead, dst);
}

/** Adds the SDPA backward graph for `L` (which must carry dO, dQ, dK, dV strides) to `g`. */
export function buildSdpaBackward(g: CudnnGraph, L: SdpaLayout, m: SdpaMask, scale: number): void {
  const { B, H, Hkv, T, S, D } = L;
  if (!L.dO || !L.dQ || !L.dK || !L.dV) {
    throw new TypeError("buildSdpaBackward: layout lacks gradient strides");
  }
  const q = g.tensor({ name: "Q", uid: SDPA_UID.Q, dtype: BF16, dims: [B, H, T, D], strides: L.q });
  const kT = g.tensor({
    name: "K^T",
    uid: SDPA_UID.K,
    dtype: BF16,
    dims: [B, Hkv, D, S],
    strides: transposed(L.k),
  });
  const vT = g.tensor({
    name: "V^T",
    uid: SDPA_UID.V,
    dtype: BF16,
    dims: [B, Hkv, D, S],
    strides: transposed(L.v),
  });
  const o = g.tensor({ name: "O", uid: SDPA_UID.O, dtype: BF16, dims: [B, H, T, D], strides: L.o });
  const dO = g.tensor({
    name: "dO",
    uid: SDPA_UID.DO,
    dtype: BF16,
    dims: [B, H, T, D],
    strides: L.dO,
  });
  const stats = g.tensor({
    name: "Stats",
    uid: SDPA_UID.STATS,
    dtype: F32,
    dims: [B, H, T, 1],
    strides: [L.lse[0], L.lse[1], L.lse[2], 1],
  });
  const dQ = g.tensor({
    name: "dQ",
    uid: SDPA_UID.DQ,
    dtype: BF16,
    dims: [B, H, T, D],
    strides: L.dQ,
  });
  const dK = g.tensor({
    name: "dK",
    uid: SDPA_UID.DK,
    dtype: BF16,
    dims: [B, Hkv, S, D],
    strides: L.dK,
  });
  const dV = g.tensor({
    name: "dV",
    uid: SDPA_UID.DV,
    dtype: BF16,
    dims: [B, Hkv, S, D],
    strides: L.dV,
  });
  const scaleT = g.scalar("attn_scale", SDPA_UID.SCALE, F32, scale);
  const one = g.scalar("one", SDPA_UID.ONE, F32, 1);
  const dims = [B, H, T, S], rowDims = [B, H, T, 1];

  // Dsum = rowsum(dO * O) (times the dropout keep probability, 1 here).
  const dOO = g.virtual("dO*O", [B, H, T, D]);
  g.pointwise(PW.MUL, dO, dOO, { b: o });
  const rowDot = g.virtual("rowsum(dO*O)", rowDims);
  g.reduction(CUDNN_REDUCE_TENSOR.ADD, dOO, rowDot);
  const dSum = g.virtual("Dsum", rowDims);
  g.pointwise(PW.MUL, rowDot, dSum, { b: one });

  // P = exp(masked scores - Stats), recomputed from Q, K and the saved log-sum-exp.
  const s = g.virtual("S=QK^T", dims);
  g.matmul(q, kT, s);
  const masked = scoreModifiers(g, s, L, m, scaleT);
  const centered = g.virtual("S-Stats", dims);
  g.pointwise(PW.SUB, masked, centered, { b: stats });
  const p = g.virtual("P", dims);
  g.pointwise(PW.EXP, centered, p);

  // dV = P^T @ dO.
  const pT = g.tensor({
    name: "P^T",
    dtype: BF16,
    dims: [B, H, S, T],
    strides: [H * T * S, T * S, 1, S],
    virtual: true,
  });
  g.reshape(p, pT);
  headSummedMatmul(g, pT, dO, dV, L, "dV");

  // dS = (dO @ V^T - Dsum) * P * scale.
  const dP = g.virtual("dP=dO V^T", dims);
  g.matmul(dO, vT, dP);
  const dPkept = g.virtual("dP*mask", dims);
  g.pointwise(PW.MUL, dP, dPkept, { b: one });
  const dPc = g.virtual("dP-Dsum", dims);
  g.pointwise(PW.SUB, dPkept, dPc, { b: dSum });
  const dSraw = g.virtual("(dP-Dsum)*P", dims);
  g.pointwise(PW.MUL, dPc, dSraw, { b: p });
  const dS = g.virtual("dS", dims);
  g.pointwise(PW.MUL, dSraw, dS, { b: scaleT });

  // dK = dS^T @ Q.
  const dST = g.tensor({
    name: "dS^T",
    dtype: BF16,
    dims: [B, H, S, T],
    strides: [H * T * S, T * S, 1, S],
    virtual: true,
  });
  g.reshape(dS, dST);
  headSummedMatmul(g, dST, q, dK, L, "dK");

  // dQ = dS @ K, accumulated in f32 and copied out.
  const k = g.tensor({ name: "K", dtype: BF16, dims: [B, Hkv, S, D], strides: L.k, virtual: true });
  g.reshape(kT, k);
  const dQacc = g.tensor({
    name: "dQ_accum",
    uid: SDPA_UID.DQ_ACCUM,
    dtype: F32,
    dims: [B, H, T, D],
    reordering: CUDNN_TENSOR_REORDERING.F16x16,
  });
  g.matmul(dS, k, dQacc);
  g.pointwise(PW.IDENTITY, dQacc, dQ);
}
