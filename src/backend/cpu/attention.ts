/**
 * Fused attention on the CPU, FlashAttention-2 style: for each (batch, head) and block of query
 * rows, stream over blocks of keys keeping a running row max, row sum and output accumulator
 * (online softmax), so the (T, S) score matrix never exists; only one (BR, BC) tile does. The
 * forward saves lse = logsumexp of each score row; the backward recomputes each tile's
 * probabilities from it (p = exp(s - lse)) and forms dq, dk, dv with D_i = rowsum(dout_i * out_i).
 * The tile products run through sgemm (OpenBLAS, or the TypeScript fallback).
 * @module
 */

import type { AttentionArgs, AttentionBackwardArgs, AttentionOptions, View } from "../backend.ts";
import { philox4x32 } from "../../random.ts";
import { f32Of } from "./buffer.ts";
import type { Sgemm } from "./matmul.ts";

/** Query rows per tile. */
const BR = 64;
/** Keys per tile. */
const BC = 64;
const U24 = 5.9604644775390625e-8; // 2^-24

// exp for the kernel's arguments (score minus row max or lse: at most a rounding error above 0):
// exp(x) = 2^(k/32) * exp(r) with k = round(32 x / ln 2), |r| <= ln 2 / 64, the power from a
// table and exp(r) from a cubic (relative error < 1e-9, far below f32's 6e-8). Math.exp costs
// several times more and was most of the kernel's time.
const EXP_K_MIN = -4800; // 2^(-150): exp underflows f32 below x = -103.3
const EXP_K_MAX = 64; // x up to 2 ln 2; larger arguments take Math.exp
const EXP_TABLE = Float64Array.from(
  { length: EXP_K_MAX - EXP_K_MIN + 1 },
  (_, i) => 2 ** ((i + EXP_K_MIN) / 32),
);
const EXP_SCALE = 32 / Math.LN2;
const LN2_32_HI = 0.021660849390173098; // ln 2 / 32 with 20 low bits zero: k * hi is exact
const LN2_32_LO = Math.LN2 / 32 - LN2_32_HI;

/** e^x, to f32 accuracy; 0 for x below -103.3 (and for -Infinity). */
function fastExp(x: number): number {
  if (x < -103.3) return 0;
  const k = Math.floor(x * EXP_SCALE + 0.5);
  if (k > EXP_K_MAX) return Math.exp(x);
  const r = x - k * LN2_32_HI - k * LN2_32_LO;
  return EXP_TABLE[k - EXP_K_MIN] * (1 + r * (1 + r * (0.5 + r * (1 / 6))));
}

/** A (rows, D) matrix of a view with unit stride in D: its array, first element and row step. */
interface Rows {
  a: Float32Array;
  base: number;
  ld: number;
}

/** Everything a tile needs, resolved once per call. */
class Problem {
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
  readonly T: number;
  readonly S: number;
  readonly D: number;
  readonly group: number;
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly slopes: Float32Array | null;
  readonly bias: Float32Array | null;
  /** Scores of the current tile (BR, BC); in the backward also dp and ds. */
  readonly s = new Float32Array(BR * BC);
  /** Dropout multipliers of the current tile: 0 or 1 / (1 - p). */
  readonly z = new Float32Array(BR * BC);
  readonly #word = new Uint32Array(4);
  /** Packed copies of (rows, D) blocks whose view rows overlap (row stride < D), one per slot. */
  readonly #packs: Float32Array[];

  constructor(
    readonly qv: View,
    readonly kv: View,
    readonly vv: View,
    readonly slopesView: View | null,
    readonly biasView: View | null,
    readonly o: AttentionOptions,
    readonly sgemm: Sgemm,
  ) {
    [this.B, this.H, this.T, this.D] = qv.shape;
    [, this.Hkv, this.S] = kv.shape;
    this.group = this.H / this.Hkv;
    this.q = viewArray(qv, "q");
    this.k = viewArray(kv, "k");
    this.v = viewArray(vv, "v");
    this.slopes = slopesView ? viewArray(slopesView, "alibiSlopes") : null;
    this.bias = biasView ? viewArray(biasView, "bias") : null;
    this.#packs = [0, 1, 2, 3].map(() => new Float32Array(Math.max(BR, BC) * this.D));
  }

  /**
   * Rows [r0, r0 + n) of matrix (b, h) of a (B, heads, len, D) view as a BLAS operand; `slot`
   * (0..3: q, k, v, dout) picks the buffer a block with overlapping rows is packed into.
   */
  rows(
    view: View,
    a: Float32Array,
    b: number,
    h: number,
    r0: number,
    n: number,
    slot: number,
  ): Rows {
    const [sb, sh, sr] = view.strides;
    const base = view.offset + b * sb + h * sh + r0 * sr;
    if (sr >= this.D || n === 1) return { a, base, ld: n === 1 ? this.D : sr };
    // Overlapping rows (e.g. an expanded view): BLAS needs ld >= D, so copy the block.
    const p = this.#packs[slot];
    for (let r = 0; r < n; r++) {
      for (let d = 0; d < this.D; d++) p[r * this.D + d] = a[base + r * sr + d];
    }
    return { a: p, base: 0, ld: this.D };
  }

  /**
   * Whether tile (queries [i0, i1), keys [j0, j1)) is entirely hidden (0), partly visible (1) or
   * entirely visible (2) under the causal and window masks.
   */
  tileState(i0: number, i1: number, j0: number, j1: number): 0 | 1 | 2 {
    const { causal, qOffset, window } = this.o;
    let full = true;
    if (causal) {
      if (j0 > i1 - 1 + qOffset) return 0;
      full = j1 - 1 <= i0 + qOffset;
    }
    if (window > 0) {
      if (j1 - 1 <= i0 + qOffset - window) return 0;
      full = full && j0 > i1 - 1 + qOffset - window;
    }
    return full ? 2 : 1;
  }

  /**
   * this.s (rows, cols; row step BC) = scale * q k^T + alibi + bias for queries [i0, i0 + rows)
   * of head (b, h) and keys [j0, j0 + cols); hidden entries are -Infinity.
   */
  scores(
    b: number,
    h: number,
    i0: number,
    rows: number,
    j0: number,
    cols: number,
    state: 1 | 2,
  ): void {
    const { s, D, o } = this;
    const kvh = Math.floor(h / this.group);
    const qr = this.rows(this.qv, this.q, b, h, i0, rows, 0);
    const kr = this.rows(this.kv, this.k, b, kvh, j0, cols, 1);
    gemm(this.sgemm, false, true, [rows, cols, D], o.scale, qr, kr, 0, tile(s));
    const slope = this.slopes
      ? this.slopes[this.slopesView!.offset + h * this.slopesView!.strides[0]]
      : 0;
    const bias = this.bias, bv = this.biasView;
    const [bsb, bsh, bsi, bsj] = bv ? bv.strides : [0, 0, 0, 0];
    const biasBase = bv ? bv.offset + b * bsb + h * bsh : 0;
    for (let r = 0; r < rows; r++) {
      const i = i0 + r, pos = i + o.qOffset, row = r * BC;
      if (slope !== 0) {
        for (let c = 0; c < cols; c++) s[row + c] -= slope * Math.abs(pos - (j0 + c));
      }
      if (bias) {
        const rb = biasBase + i * bsi + j0 * bsj;
        for (let c = 0; c < cols; c++) s[row + c] += bias[rb + c * bsj];
      }
      if (state === 1) {
        for (let c = 0; c < cols; c++) {
          const j = j0 + c;
          if ((o.causal && j > pos) || (o.window > 0 && j <= pos - o.window)) {
            s[row + c] = -Infinity;
          }
        }
      }
    }
  }

  /** this.z (rows, cols) = the dropout multipliers of the tile, drawn as the contract says. */
  dropoutTile(b: number, h: number, i0: number, rows: number, j0: number, cols: number): void {
    const { z, o, T, S } = this;
    const w = this.#word, inv = 1 / (1 - o.dropout);
    for (let r = 0; r < rows; r++) {
      // Element e of the contiguous (B, H, T, S) weights uses word e % 4 of block floor(e / 4).
      const e0 = ((b * this.H + h) * T + i0 + r) * S + j0;
      let block = -1;
      for (let c = 0; c < cols; c++) {
        const e = e0 + c, blk = Math.floor(e / 4);
        if (blk !== block) {
          block = blk;
          const ctr = o.dropoutBlock + blk;
          philox4x32(
            ctr % 0x100000000,
            Math.floor(ctr / 0x100000000),
            o.dropoutKey0,
            o.dropoutKey1,
            w,
          );
        }
        z[r * BC + c] = (w[e % 4] >>> 8) * U24 >= o.dropout ? inv : 0;
      }
    }
  }
}

/** The f32 array behind a view, after checking the view stays inside it (BLAS reads raw memory). */
function viewArray(v: View, what: string): Float32Array {
  const a = f32Of(v, `attention (${what})`);
  let last = v.offset;
  for (let d = 0; d < v.shape.length; d++) {
    if (v.shape[d] === 0) return a;
    if (v.strides[d] < 0) throw new RangeError(`attention: ${what} has a negative stride`);
    last += (v.shape[d] - 1) * v.strides[d];
  }
  if (v.offset < 0 || last >= a.length) {
    throw new RangeError(`attention: ${what} view reaches outside its buffer`);
  }
  return a;
}

/** A scratch tile (row step BC) as a BLAS operand. */
function tile(a: Float32Array): Rows {
  return { a, base: 0, ld: BC };
}

/** C (M, N; row step ldc, from cBase) = alpha * op(A) op(B) + beta * C through sgemm. */
function gemm(
  sgemm: Sgemm,
  tA: boolean,
  tB: boolean,
  [M, N, K]: [number, number, number],
  alpha: number,
  A: Rows,
  B: Rows,
  beta: number,
  C: Rows,
): void {
  const { a, base, ld } = C;
  sgemm(
    tA,
    tB,
    M,
    N,
    K,
    alpha,
    A.a.subarray(A.base),
    A.ld,
    B.a.subarray(B.base),
    B.ld,
    beta,
    a.subarray(base),
    ld,
  );
}

/** Fused attention forward; see Backend.attentionForward. */
export function attentionForward(args: AttentionArgs, sgemm: Sgemm): void {
  const { q, k, v, alibiSlopes, bias, out, lse, options: o } = args;
  const P = new Problem(q, k, v, alibiSlopes, bias, o, sgemm);
  const { B, H, T, S, D, s, z } = P;
  const outA = viewArray(out, "out"), lseA = viewArray(lse, "lse");
  const dropout = o.dropout > 0;
  const acc = new Float32Array(BR * D); // (BR, D) unnormalised output of the query block
  const m = new Float64Array(BR), l = new Float64Array(BR); // running row max and row sum
  const [ob, oh, ot] = out.strides, [lb, lh, lt] = lse.strides;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / P.group);
      for (let i0 = 0; i0 < T; i0 += BR) {
        const rows = Math.min(BR, T - i0);
        acc.fill(0);
        m.fill(-Infinity);
        l.fill(0);
        for (let j0 = 0; j0 < S; j0 += BC) {
          const cols = Math.min(BC, S - j0);
          const state = P.tileState(i0, i0 + rows, j0, j0 + cols);
          if (state === 0) continue;
          P.scores(b, h, i0, rows, j0, cols, state);
          if (dropout) P.dropoutTile(b, h, i0, rows, j0, cols);
          for (let r = 0; r < rows; r++) {
            const row = r * BC, end = row + cols;
            let mx = m[r];
            for (let x = row; x < end; x++) if (s[x] > mx) mx = s[x];
            if (mx === -Infinity) { // nothing visible in this row yet
              s.fill(0, row, end);
              continue;
            }
            const alpha = fastExp(m[r] - mx); // rescales what was summed under the old max
            let sum = 0;
            for (let x = row; x < end; x++) {
              const p = fastExp(s[x] - mx);
              sum += p;
              s[x] = p;
            }
            // The row sum is taken before dropout: dropout scales the weights, not the softmax.
            if (dropout) { for (let x = row; x < end; x++) s[x] *= z[x]; }
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
            if (alpha !== 1) { for (let x = r * D; x < (r + 1) * D; x++) acc[x] *= alpha; }
          }
          const vr = P.rows(v, P.v, b, kvh, j0, cols, 2);
          gemm(sgemm, false, false, [rows, D, cols], 1, tile(s), vr, 1, { a: acc, base: 0, ld: D });
        }
        for (let r = 0; r < rows; r++) {
          const i = i0 + r, ro = out.offset + b * ob + h * oh + i * ot;
          const inv = l[r] > 0 ? 1 / l[r] : 0; // a row with no visible key outputs 0
          for (let d = 0; d < D; d++) outA[ro + d] = acc[r * D + d] * inv;
          lseA[lse.offset + b * lb + h * lh + i * lt] = l[r] > 0
            ? m[r] + Math.log(l[r])
            : -Infinity;
        }
      }
    }
  }
}

/** Fused attention backward; see Backend.attentionBackward. dq, dk, dv are overwritten. */
export function attentionBackward(args: AttentionBackwardArgs, sgemm: Sgemm): void {
  const { q, k, v, alibiSlopes, bias, out, dout, lse, dq, dk, dv, options: o } = args;
  const P = new Problem(q, k, v, alibiSlopes, bias, o, sgemm);
  const { B, Hkv, T, S, D, s, z } = P;
  const outA = viewArray(out, "out"), doA = viewArray(dout, "dout"), lseA = viewArray(lse, "lse");
  const dqA = viewArray(dq, "dq"), dkA = viewArray(dk, "dk"), dvA = viewArray(dv, "dv");
  const dropout = o.dropout > 0;
  const dqAcc = new Float32Array(T * D); // (T, D) of one head
  const dkAcc = new Float32Array(S * D), dvAcc = new Float32Array(S * D); // (S, D) of a kv head
  const pd = new Float32Array(BR * BC); // the tile's dropped probabilities, then dp
  const rowD = new Float64Array(T); // D_i = rowsum(dout_i * out_i)
  const rowLse = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let kvh = 0; kvh < Hkv; kvh++) {
      dkAcc.fill(0);
      dvAcc.fill(0);
      for (let h = kvh * P.group; h < (kvh + 1) * P.group; h++) {
        dqAcc.fill(0);
        for (let i = 0; i < T; i++) {
          const oo = out.offset + b * out.strides[0] + h * out.strides[1] + i * out.strides[2];
          const go = dout.offset + b * dout.strides[0] + h * dout.strides[1] + i * dout.strides[2];
          let acc = 0;
          for (let d = 0; d < D; d++) acc += outA[oo + d] * doA[go + d];
          rowD[i] = acc;
          rowLse[i] =
            lseA[lse.offset + b * lse.strides[0] + h * lse.strides[1] + i * lse.strides[2]];
        }
        for (let j0 = 0; j0 < S; j0 += BC) {
          const cols = Math.min(BC, S - j0);
          const dkRows = { a: dkAcc, base: j0 * D, ld: D },
            dvRows = { a: dvAcc, base: j0 * D, ld: D };
          for (let i0 = 0; i0 < T; i0 += BR) {
            const rows = Math.min(BR, T - i0);
            const state = P.tileState(i0, i0 + rows, j0, j0 + cols);
            if (state === 0) continue;
            P.scores(b, h, i0, rows, j0, cols, state);
            if (dropout) P.dropoutTile(b, h, i0, rows, j0, cols);
            for (let r = 0; r < rows; r++) { // s <- p = exp(s - lse); pd = p * z
              const row = r * BC, end = row + cols, ls = rowLse[i0 + r];
              if (ls === -Infinity) { // no visible key: no probability, no gradient
                s.fill(0, row, end);
                pd.fill(0, row, end);
                continue;
              }
              for (let x = row; x < end; x++) s[x] = fastExp(s[x] - ls);
              if (dropout) { for (let x = row; x < end; x++) pd[x] = s[x] * z[x]; }
              else pd.set(s.subarray(row, end), row);
            }
            const dor = P.rows(dout, doA, b, h, i0, rows, 3);
            gemm(sgemm, true, false, [cols, D, rows], 1, tile(pd), dor, 1, dvRows); // dv += pd^T dout
            const vr = P.rows(v, P.v, b, kvh, j0, cols, 2);
            gemm(sgemm, false, true, [rows, cols, D], 1, dor, vr, 0, tile(pd)); // pd <- dout v^T
            for (let r = 0; r < rows; r++) { // s <- ds = p * (dp - D_i), dp = z * dout v^T
              const row = r * BC, end = row + cols, di = rowD[i0 + r];
              if (dropout) { for (let x = row; x < end; x++) s[x] *= pd[x] * z[x] - di; }
              else for (let x = row; x < end; x++) s[x] *= pd[x] - di;
            }
            const kr = P.rows(k, P.k, b, kvh, j0, cols, 1);
            const dqRows = { a: dqAcc, base: i0 * D, ld: D };
            gemm(sgemm, false, false, [rows, D, cols], o.scale, tile(s), kr, 1, dqRows); // dq += ds k
            const qr = P.rows(q, P.q, b, h, i0, rows, 0);
            gemm(sgemm, true, false, [cols, D, rows], o.scale, tile(s), qr, 1, dkRows); // dk += ds^T q
          }
        }
        writeRows(dq, dqA, b, h, T, D, dqAcc);
      }
      writeRows(dk, dkA, b, kvh, S, D, dkAcc);
      writeRows(dv, dvA, b, kvh, S, D, dvAcc);
    }
  }
}

/** Copies a contiguous (n, D) block into matrix (b, h) of a (B, heads, n, D) view. */
function writeRows(
  view: View,
  a: Float32Array,
  b: number,
  h: number,
  n: number,
  D: number,
  src: Float32Array,
): void {
  const [sb, sh, sr] = view.strides;
  const base = view.offset + b * sb + h * sh;
  for (let r = 0; r < n; r++) a.set(src.subarray(r * D, r * D + D), base + r * sr);
}
