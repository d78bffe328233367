/**
 * Batched matmul on strided views through one sgemm per batch (OpenBLAS, or the TypeScript
 * fallback with the same semantics). Strides become BLAS leading dimensions and transpose
 * flags, so transposed views cost nothing; only views no BLAS layout can express are packed.
 * @module
 */

import type { MatmulOptions, View } from "../backend.ts";
import { CblasNoTrans, CblasRowMajor, CblasTrans, type OpenBlas } from "../../../ffi/openblas.ts";
import { f32Of } from "./buffer.ts";
import { forEachRow, packed, sizeOf, withDenseOut } from "./strided.ts";
import { type Sgemm, sgemmFallback } from "./matmul_fallback.ts";

export type { Sgemm };
import { contiguousStrides, mergeDims } from "../../_shape.ts";

/** An sgemm over OpenBLAS, or the TypeScript fallback when `blas` is null. */
export function makeSgemm(blas: OpenBlas | null): Sgemm {
  if (blas === null) return sgemmFallback;
  const f = blas.symbols.cblas_sgemm;
  return (tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) =>
    f(
      CblasRowMajor,
      tA ? CblasTrans : CblasNoTrans,
      tB ? CblasTrans : CblasNoTrans,
      M,
      N,
      K,
      alpha,
      A,
      lda,
      B,
      ldb,
      beta,
      C,
      ldc,
    );
}

/**
 * How a (rows, cols) view with strides (sr, sc) sits in memory as a row-major BLAS matrix:
 * the view itself (trans false) or the transpose of one (trans true), with its leading
 * dimension; null when neither holds (no unit stride, or rows overlap/broadcast).
 */
function storage(
  rows: number,
  cols: number,
  sr: number,
  sc: number,
): { trans: boolean; ld: number } | null {
  // Strides of size-1 dims are arbitrary, so those shapes get their own rules.
  if (rows === 1 && cols === 1) return { trans: false, ld: 1 };
  if (rows === 1) {
    return sc === 1 ? { trans: false, ld: cols } : sc >= 1 ? { trans: true, ld: sc } : null;
  }
  if (cols === 1) return sr >= 1 ? { trans: false, ld: sr } : null;
  if (sc === 1 && sr >= cols) return { trans: false, ld: sr };
  if (sr === 1 && sc >= rows) return { trans: true, ld: sc };
  return null;
}

/** Native code must never see a view reaching outside its buffer: that corrupts the heap. */
function checkInBuffer(v: View, arr: Float32Array): void {
  let last = v.offset;
  for (let d = 0; d < v.shape.length; d++) last += (v.shape[d] - 1) * v.strides[d];
  if (v.offset < 0 || last >= arr.length) {
    throw new RangeError(
      `matmul: view (shape [${v.shape}], strides [${v.strides}], offset ${v.offset}) ` +
        `reaches element ${last} of a buffer of ${arr.length}`,
    );
  }
}

/** A matrix operand: the array, and the view's offset/strides into it. */
interface Operand {
  arr: Float32Array;
  offset: number;
  strides: readonly number[];
}

/** The operand, packed densely when no BLAS layout can express its matrices. */
function operand(v: View, rows: number, cols: number): Operand {
  const r = v.shape.length;
  if (storage(rows, cols, v.strides[r - 2], v.strides[r - 1]) !== null) {
    return { arr: f32Of(v, "matmul"), offset: v.offset, strides: v.strides };
  }
  return {
    arr: packed(v, "matmul") as Float32Array,
    offset: 0,
    strides: contiguousStrides(v.shape),
  };
}

/** out = alpha * op(a) @ op(b) + beta * out over the batch dims; see Backend.matmul. */
export function matmul(a: View, b: View, out: View, options: MatmulOptions, gemm: Sgemm): void {
  const r = out.shape.length;
  const M = out.shape[r - 2], N = out.shape[r - 1];
  const K = options.transA ? a.shape[r - 2] : a.shape[r - 1];
  const alpha = options.alpha ?? 1, beta = options.beta ?? 0;
  const batchShape = out.shape.slice(0, r - 2);
  if (sizeOf(out.shape) === 0) return;
  for (const v of [a, b, out]) checkInBuffer(v, f32Of(v, "matmul"));
  if (K === 0) {
    // Empty sum: out = beta * out. (BLAS implementations disagree on K = 0 corner cases.)
    withDenseOut(out, "matmul", true, (o) => {
      for (let i = 0; i < o.length; i++) o[i] = beta === 0 ? 0 : beta * o[i];
    });
    return;
  }
  const A = operand(a, a.shape[r - 2], a.shape[r - 1]);
  const B = operand(b, b.shape[r - 2], b.shape[r - 1]);
  const sa = storage(a.shape[r - 2], a.shape[r - 1], A.strides[r - 2], A.strides[r - 1])!;
  const sb = storage(b.shape[r - 2], b.shape[r - 1], B.strides[r - 2], B.strides[r - 1])!;
  const tA = options.transA !== sa.trans, tB = options.transB !== sb.trans;

  const so = storage(M, N, out.strides[r - 2], out.strides[r - 1]);
  if (so === null) {
    // out has no BLAS layout: compute into a dense temp (holding out's values when beta != 0).
    withDenseOut(out, "matmul", beta !== 0, (o) => {
      batched(A, B, o as Float32Array, contiguousStrides(out.shape), 0, { trans: false, ld: N });
    });
    return;
  }
  batched(A, B, f32Of(out, "matmul"), out.strides, out.offset, so);

  function batched(
    A: Operand,
    B: Operand,
    C: Float32Array,
    cStrides: readonly number[],
    cOffset: number,
    sc: { trans: boolean; ld: number },
  ): void {
    const aB = A.strides.slice(0, r - 2), bB = B.strides.slice(0, r - 2);
    const cB = cStrides.slice(0, r - 2);
    const call = (ao: number, bo: number, co: number, rows: number, lda: number, ldc: number) => {
      const As = A.arr.subarray(ao), Bs = B.arr.subarray(bo), Cs = C.subarray(co);
      // C stored transposed: C^T = op(B)^T @ op(A)^T, computed by swapping the operands.
      if (sc.trans) gemm(!tB, !tA, N, rows, K, alpha, Bs, sb.ld, As, lda, beta, Cs, ldc);
      else gemm(tA, tB, rows, N, K, alpha, As, lda, Bs, sb.ld, beta, Cs, ldc);
    };
    // Shared b and a, out whose batch rows are evenly spaced (x @ W on (B, T, C)): one call.
    if (
      !tA && !sc.trans && batchShape.length > 0 &&
      bB.every((s, d) => s === 0 || batchShape[d] === 1)
    ) {
      const fa = mergeDims([...batchShape, M], [[...aB, sa.ld], [...cB, sc.ld]]);
      const rows = sizeOf(batchShape) * M;
      if (fa.shape.length === 1 && fa.strides[0][0] >= K && fa.strides[1][0] >= N) {
        call(A.offset, B.offset, cOffset, rows, fa.strides[0][0], fa.strides[1][0]);
        return;
      }
    }
    const L = mergeDims(batchShape, [aB, bB, cB]);
    const inner = L.shape.length - 1;
    const n = L.shape[inner];
    const [as, bs, cs] = L.strides.map((s) => s[inner]);
    forEachRow(L.shape, L.strides, [A.offset, B.offset, cOffset], (p) => {
      for (let k = 0; k < n; k++) {
        call(p[0] + k * as, p[1] + k * bs, p[2] + k * cs, M, sa.ld, sc.ld);
      }
    });
  }
}
