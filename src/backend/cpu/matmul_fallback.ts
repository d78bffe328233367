/**
 * A TypeScript sgemm with cblas_sgemm's row-major semantics, used when OpenBLAS is missing.
 * Both operands are packed densely first so the inner loop runs over 0-based rows; rows of C
 * are computed in blocks so each row of B is reused by the whole block while it is in cache.
 * @module
 */

/** cblas_sgemm's row-major contract; A, B, C start at each matrix's first element. */
export type Sgemm = (
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  lda: number,
  B: Float32Array,
  ldb: number,
  beta: number,
  C: Float32Array,
  ldc: number,
) => void;

/** Rows of C computed together (each B row is loaded once per block instead of once per row). */
const ROW_BLOCK = 16;

/** op(X) (rows x cols) as a dense row-major array; X is stored with leading dimension ld. */
function packMatrix(
  x: Float32Array,
  ld: number,
  trans: boolean,
  rows: number,
  cols: number,
): Float32Array {
  if (!trans && (ld === cols || rows === 1)) return x.subarray(0, rows * cols);
  const out = new Float32Array(rows * cols);
  if (!trans) {
    for (let i = 0; i < rows; i++) out.set(x.subarray(i * ld, i * ld + cols), i * cols);
  } else {
    // X is stored (cols, rows): walk it row by row (sequential reads), scatter into columns.
    for (let j = 0; j < cols; j++) {
      const src = x.subarray(j * ld, j * ld + rows);
      for (let i = 0, o = j; i < rows; i++, o += cols) out[o] = src[i];
    }
  }
  return out;
}

/**
 * C = alpha * op(A) @ op(B) + beta * C with row-major storage, exactly like cblas_sgemm:
 * op(A) is M x K, op(B) is K x N, C is M x N with leading dimension ldc. beta = 0 overwrites C
 * without reading it. Accumulates in f64.
 */
export const sgemmFallback: Sgemm = (
  transA,
  transB,
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
) => {
  if (M === 0 || N === 0) return;
  const a = packMatrix(A, lda, transA, M, K); // (M, K)
  const b = packMatrix(B, ldb, transB, K, N); // (K, N)
  const bRows = Array.from({ length: K }, (_, k) => b.subarray(k * N, (k + 1) * N));
  const acc = new Float64Array(ROW_BLOCK * N); // (ROW_BLOCK, N)
  const accRows = Array.from({ length: ROW_BLOCK }, (_, i) => acc.subarray(i * N, (i + 1) * N));
  for (let i0 = 0; i0 < M; i0 += ROW_BLOCK) {
    const i1 = Math.min(M, i0 + ROW_BLOCK);
    acc.fill(0);
    let k = 0;
    // Four B rows per pass: a quarter of the loads and stores of the accumulator row.
    for (; k + 4 <= K; k += 4) {
      const b0 = bRows[k], b1 = bRows[k + 1], b2 = bRows[k + 2], b3 = bRows[k + 3];
      for (let i = i0; i < i1; i++) {
        const r = accRows[i - i0], ai = i * K + k;
        const a0 = a[ai], a1 = a[ai + 1], a2 = a[ai + 2], a3 = a[ai + 3];
        const n = r.length;
        for (let j = 0; j < n; j++) r[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
      }
    }
    for (; k < K; k++) {
      const b0 = bRows[k];
      for (let i = i0; i < i1; i++) {
        const r = accRows[i - i0], a0 = a[i * K + k];
        const n = r.length;
        for (let j = 0; j < n; j++) r[j] += a0 * b0[j];
      }
    }
    for (let i = i0; i < i1; i++) {
      const r = accRows[i - i0], c = C.subarray(i * ldc, i * ldc + N);
      if (beta === 0) { for (let j = 0; j < N; j++) c[j] = alpha * r[j]; }
      else for (let j = 0; j < N; j++) c[j] = alpha * r[j] + beta * c[j];
    }
  }
};
