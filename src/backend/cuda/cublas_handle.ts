/**
 * A cuBLAS handle bound to one stream, and the strided-batched GEMM it queues there
 * (`cublasGemmStridedBatchedEx`, f32 or bf16 operands with f32 compute). The symbol table and
 * the status check are in ffi/cublas.ts.
 * @module
 */

import {
  checkCublas,
  cublas,
  CUBLAS_GEMM_DEFAULT,
  CUBLAS_OP,
  type CublasSymbols,
} from "../../../ffi/cublas.ts";

/** One `cublasGemmStridedBatchedEx` call, column-major, as cuBLAS documents its arguments. */
export interface GemmStridedBatchedArgs {
  /** op(A): CUBLAS_OP.N or CUBLAS_OP.T. */
  transa: number;
  /** op(B). */
  transb: number;
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Columns of op(A), rows of op(B). */
  k: number;
  /** C = alpha * op(A) op(B) + beta * C. */
  alpha: number;
  /** Device address of A. */
  a: bigint;
  /** `cudaDataType_t` of A (CUDA_R.F32 or CUDA_R.BF16). */
  aType: number;
  /** Leading dimension of A (elements). */
  lda: number;
  /** Elements between consecutive A matrices of the batch (0 reuses one). */
  strideA: number;
  /** Device address of B. */
  b: bigint;
  /** `cudaDataType_t` of B. */
  bType: number;
  /** Leading dimension of B. */
  ldb: number;
  /** Elements between consecutive B matrices. */
  strideB: number;
  /** See alpha. */
  beta: number;
  /** Device address of C. */
  c: bigint;
  /** `cudaDataType_t` of C. */
  cType: number;
  /** Leading dimension of C. */
  ldc: number;
  /** Elements between consecutive C matrices. */
  strideC: number;
  /** Matrices in the batch. */
  batchCount: number;
  /** `cublasComputeType_t`. */
  computeType: number;
}

/** A cuBLAS handle bound to one stream. */
export class CublasHandle {
  readonly #s: CublasSymbols;
  #handle: bigint;
  readonly #scalars = new Float32Array(2);

  /**
   * Creates the handle (in the calling thread's current CUDA context) and binds it to `stream`.
   * @param stream the `CUstream`/`cudaStream_t` all GEMMs are queued on
   * @param symbols the library (default: {@linkcode cublas}())
   */
  constructor(stream: bigint, symbols: CublasSymbols = cublas().symbols) {
    this.#s = symbols;
    const out = new BigUint64Array(1);
    checkCublas(symbols.cublasCreate_v2(out), "cublasCreate_v2", symbols);
    this.#handle = out[0];
    checkCublas(symbols.cublasSetStream_v2(this.#handle, stream), "cublasSetStream_v2", symbols);
  }

  /** cuBLAS's version number, e.g. 130400 for 13.4.0. */
  version(): number {
    const v = new Int32Array(1);
    checkCublas(this.#s.cublasGetVersion_v2(this.#live(), v), "cublasGetVersion_v2", this.#s);
    return v[0];
  }

  /** Sets the handle's `cublasMath_t` (CUBLAS_MATH). */
  setMathMode(mode: number): void {
    checkCublas(this.#s.cublasSetMathMode(this.#live(), mode), "cublasSetMathMode", this.#s);
  }

  /** Queues one strided-batched GEMM on the handle's stream. */
  gemmStridedBatched(g: GemmStridedBatchedArgs): void {
    const sc = this.#scalars;
    sc[0] = g.alpha;
    sc[1] = g.beta;
    const status = this.#s.cublasGemmStridedBatchedEx(
      this.#live(),
      g.transa,
      g.transb,
      g.m,
      g.n,
      g.k,
      sc.subarray(0, 1),
      g.a,
      g.aType,
      g.lda,
      BigInt(g.strideA),
      g.b,
      g.bType,
      g.ldb,
      BigInt(g.strideB),
      sc.subarray(1, 2),
      g.c,
      g.cType,
      g.ldc,
      BigInt(g.strideC),
      g.batchCount,
      g.computeType,
      CUBLAS_GEMM_DEFAULT,
    );
    checkCublas(status, `cublasGemmStridedBatchedEx(${describeGemm(g)})`, this.#s);
  }

  /** Destroys the handle; safe to call twice. */
  dispose(): void {
    if (this.#handle === 0n) return;
    const h = this.#handle;
    this.#handle = 0n;
    checkCublas(this.#s.cublasDestroy_v2(h), "cublasDestroy_v2", this.#s);
  }

  #live(): bigint {
    if (this.#handle === 0n) throw new Error("cuBLAS: the handle was disposed");
    return this.#handle;
  }
}

/** The GEMM's shape arguments, for error messages. */
export function describeGemm(g: GemmStridedBatchedArgs): string {
  const op = (t: number) => (t === CUBLAS_OP.T ? "T" : "N");
  return `${op(g.transa)}${op(g.transb)} m=${g.m} n=${g.n} k=${g.k} lda=${g.lda} ldb=${g.ldb} ` +
    `ldc=${g.ldc} strides=${g.strideA}/${g.strideB}/${g.strideC} batch=${g.batchCount} ` +
    `types=${g.aType}/${g.bType}/${g.cType} compute=${g.computeType}`;
}
