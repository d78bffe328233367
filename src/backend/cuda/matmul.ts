/**
 * Batched matmul on the GPU through cuBLAS (and cuBLASLt for `linear` with a fused bias or
 * GELU+bias epilogue). Views are row-major and strided; cuBLAS is column-major. A row-major
 * (r x c) matrix with row stride ld is, read column-major, its transpose (c x r) with leading
 * dimension ld, so C = A B is computed as C^T = B^T A^T: the operands swap places and each one's
 * transpose flag says whether its memory already holds the matrix cuBLAS needs. Transposed views,
 * padded rows and stride-0 (broadcast) batches therefore cost no copies.
 *
 * What cuBLAS cannot express throws {@linkcode CublasLayoutError} before anything is queued:
 * a matrix with no unit stride in its last two dims (or overlapping rows), an empty inner
 * dimension (K = 0), or sizes beyond 32-bit ints. {@linkcode cublasLayoutNeeds} says which
 * operands the caller must copy to contiguous memory first.
 * @module
 */

import type { MatmulOptions, View } from "../backend.ts";
import type { DType } from "../../dtype.ts";
import { mergeDims, numel } from "../../_shape.ts";
import {
  CUBLAS_COMPUTE,
  CUBLAS_MATH,
  CUBLAS_OP,
  type CublasSymbols,
  CUDA_R,
} from "../../../ffi/cublas.ts";
import { type CublasLtSymbols, LT_EPILOGUE } from "../../../ffi/cublaslt.ts";
import { CublasHandle, type GemmStridedBatchedArgs } from "./cublas_handle.ts";
import { CublasLtHandle, type LtMatmulArgs } from "./cublaslt_plans.ts";

/** Thrown when a view's matrices have no layout cuBLAS can read; copy that operand first. */
export class CublasLayoutError extends RangeError {
  /** Which operand: "a", "b" or "out" (or "k" for an empty inner dimension). */
  readonly operand: "a" | "b" | "out" | "k";
  /** @param operand the offending operand; @param message what is wrong with it */
  constructor(operand: "a" | "b" | "out" | "k", message: string) {
    super(message);
    this.name = "CublasLayoutError";
    this.operand = operand;
  }
}

/** How a logical (rows x cols) matrix with strides (rs, cs) sits in memory for cuBLAS. */
export interface MatrixStorage {
  /** True: rows are contiguous (cs = 1), so column-major memory holds the transpose. */
  rowMajor: boolean;
  /** The leading dimension cuBLAS gets: rs when rowMajor, else cs. */
  ld: number;
}

const MAX_I32 = 2 ** 31 - 1;

/**
 * The storage of a logical matrix, or null when cuBLAS cannot read it (no unit stride, rows or
 * columns overlapping, broadcast inside the matrix, or negative strides). Strides of size-1 dims
 * are meaningless, so those shapes have their own rules; the leading dimension always satisfies
 * cuBLAS's `ld >= max(1, rows of the stored column-major matrix)`.
 */
export function matrixStorage(
  rows: number,
  cols: number,
  rs: number,
  cs: number,
): MatrixStorage | null {
  if (rows === 1 && cols === 1) return { rowMajor: true, ld: 1 };
  if (rows === 1) {
    if (cs === 1) return { rowMajor: true, ld: cols };
    return cs >= 1 ? { rowMajor: false, ld: cs } : null;
  }
  if (cols === 1) {
    if (rs === 1) return { rowMajor: false, ld: rows };
    return rs >= 1 ? { rowMajor: true, ld: rs } : null;
  }
  if (cs === 1 && rs >= cols) return { rowMajor: true, ld: rs };
  if (rs === 1 && cs >= rows) return { rowMajor: false, ld: cs };
  return null;
}

/** The (rows, cols, rowStride, colStride) of op(view) over its last two dims. */
function logical(v: View, trans: boolean): [number, number, number, number] {
  const r = v.shape.length;
  const [rows, cols] = [v.shape[r - 2], v.shape[r - 1]];
  const [rs, cs] = [v.strides[r - 2], v.strides[r - 1]];
  return trans ? [cols, rows, cs, rs] : [rows, cols, rs, cs];
}

/**
 * Which operands cuBLAS cannot read as they are and the caller must copy to contiguous memory
 * (for `out`: compute into a contiguous temporary, holding out's values when beta != 0, then copy
 * back). All false means {@linkcode CublasMatmul.matmul} accepts the views.
 */
export function cublasLayoutNeeds(
  a: View,
  b: View,
  out: View,
  options: MatmulOptions,
): { a: boolean; b: boolean; out: boolean } {
  const ok = (v: View, t: boolean) => {
    const [r, c, rs, cs] = logical(v, t);
    return matrixStorage(r, c, rs, cs) !== null;
  };
  const outBatch = out.strides.slice(0, -2);
  const outShape = out.shape.slice(0, -2);
  // Two batch entries writing the same matrix would race.
  const outOverlaps = outBatch.some((s, d) => s === 0 && outShape[d] > 1);
  return {
    a: !ok(a, options.transA),
    b: !ok(b, options.transB),
    out: !ok(out, false) || outOverlaps,
  };
}

/** The `cudaDataType_t` of a view's dtype; throws for dtypes cuBLAS GEMMs here do not take. */
function cudaType(dtype: DType, operand: string): number {
  if (dtype === "f32") return CUDA_R.F32;
  if (dtype === "bf16") return CUDA_R.BF16;
  throw new TypeError(`matmul (cuBLAS): ${operand} must be f32 or bf16, got ${dtype}`);
}

/** Checks the dtype combination: a and b alike; bf16 inputs may write f32 or bf16, f32 only f32. */
function checkDTypes(a: View, b: View, out: View): void {
  cudaType(a.dtype, "a");
  cudaType(b.dtype, "b");
  cudaType(out.dtype, "out");
  if (a.dtype !== b.dtype || (a.dtype === "f32" && out.dtype !== "f32")) {
    throw new TypeError(
      `matmul (cuBLAS): unsupported dtypes a=${a.dtype} b=${b.dtype} out=${out.dtype}: a and b ` +
        `must match, and f32 inputs need an f32 out (bf16 inputs may write f32 or bf16)`,
    );
  }
}

function bytesOf(dtype: DType): number {
  return dtype === "bf16" ? 2 : 4;
}

function checkInt(name: string, value: number): void {
  if (value > MAX_I32) {
    throw new CublasLayoutError(
      "out",
      `matmul (cuBLAS): ${name} = ${value} exceeds cuBLAS's 32-bit int arguments`,
    );
  }
}

/**
 * The cuBLAS calls computing `out = alpha * op(a) @ op(b) + beta * out` (see
 * {@linkcode Backend.matmul} for the view contract): usually one strided-batched GEMM; batch dims
 * that do not collapse into one evenly spaced run become one call per outer index.
 *
 * @param address the device address of element `view.offset` of a view's buffer
 * @param tf32 allow TF32 tensor cores for f32 inputs (CUBLAS_COMPUTE_32F_FAST_TF32)
 * @throws CublasLayoutError when a view is not expressible (see {@linkcode cublasLayoutNeeds})
 */
export function planMatmul(
  a: View,
  b: View,
  out: View,
  options: MatmulOptions,
  address: (v: View) => bigint,
  tf32 = false,
): GemmStridedBatchedArgs[] {
  checkDTypes(a, b, out);
  const r = out.shape.length;
  if (a.shape.length !== r || b.shape.length !== r || r < 2) {
    throw new RangeError(
      `matmul (cuBLAS): a, b and out need equal rank >= 2, got ${a.shape.length}, ` +
        `${b.shape.length}, ${r}`,
    );
  }
  const [M, K, ars, acs] = logical(a, options.transA);
  const [K2, N, brs, bcs] = logical(b, options.transB);
  if (K !== K2 || out.shape[r - 2] !== M || out.shape[r - 1] !== N) {
    throw new RangeError(
      `matmul (cuBLAS): shapes differ: op(a) ${M}x${K}, op(b) ${K2}x${N}, out ` +
        `${out.shape[r - 2]}x${out.shape[r - 1]}`,
    );
  }
  const batchShape = out.shape.slice(0, r - 2);
  if (M === 0 || N === 0 || batchShape.some((d) => d === 0)) return [];
  if (K === 0) {
    throw new CublasLayoutError(
      "k",
      "matmul (cuBLAS): the inner dimension is 0; the result is beta * out, which the caller " +
        "must compute (fill with 0 when beta is 0) instead of calling cuBLAS",
    );
  }
  const needs = cublasLayoutNeeds(a, b, out, options);
  for (const op of ["a", "b", "out"] as const) {
    if (needs[op]) {
      const v = { a, b, out }[op];
      throw new CublasLayoutError(
        op,
        `matmul (cuBLAS): ${op} (shape [${v.shape}], strides [${v.strides}]) has no BLAS ` +
          `layout: copy it to contiguous memory first`,
      );
    }
  }
  const sa = matrixStorage(M, K, ars, acs)!;
  const sb = matrixStorage(K, N, brs, bcs)!;
  const so = matrixStorage(M, N, out.strides[r - 2], out.strides[r - 1])!;
  const computeType = a.dtype === "f32" && tf32 ? CUBLAS_COMPUTE.F32_FAST_TF32 : CUBLAS_COMPUTE.F32;
  const aType = cudaType(a.dtype, "a"), cType = cudaType(out.dtype, "out");
  const alpha = options.alpha ?? 1, beta = options.beta ?? 0;
  const [ia, ib, ic] = [bytesOf(a.dtype), bytesOf(b.dtype), bytesOf(out.dtype)];
  const [A0, B0, C0] = [address(a), address(b), address(out)];

  // One GEMM over column-major operands; `swap` computes C^T = op(b)^T op(a)^T (row-major out).
  const swap = so.rowMajor;
  const gemm = (
    rowsOfA: number, // M, or the folded batch * M
    lda: number,
    ldc: number,
    offA: number,
    offB: number,
    offC: number,
    batch: number,
    strides: [number, number, number],
  ): GemmStridedBatchedArgs => {
    // Each operand's op: N when its column-major memory already is the matrix cuBLAS multiplies.
    const common = {
      k: K,
      alpha,
      beta,
      c: C0 + BigInt(offC * ic),
      cType,
      ldc,
      strideC: strides[2],
      batchCount: batch,
      computeType,
    };
    if (swap) {
      // cuBLAS A := op(b)^T (N x K), stored as b; cuBLAS B := op(a)^T (K x M), stored as a.
      return {
        ...common,
        transa: sb.rowMajor ? CUBLAS_OP.N : CUBLAS_OP.T,
        transb: sa.rowMajor ? CUBLAS_OP.N : CUBLAS_OP.T,
        m: N,
        n: rowsOfA,
        a: B0 + BigInt(offB * ib),
        aType,
        lda: sb.ld,
        strideA: strides[1],
        b: A0 + BigInt(offA * ia),
        bType: aType,
        ldb: lda,
        strideB: strides[0],
      };
    }
    // out stored column-major: C = op(a) op(b) directly.
    return {
      ...common,
      transa: sa.rowMajor ? CUBLAS_OP.T : CUBLAS_OP.N,
      transb: sb.rowMajor ? CUBLAS_OP.T : CUBLAS_OP.N,
      m: rowsOfA,
      n: N,
      a: A0 + BigInt(offA * ia),
      aType,
      lda,
      strideA: strides[0],
      b: B0 + BigInt(offB * ib),
      bType: aType,
      ldb: sb.ld,
      strideB: strides[1],
    };
  };

  const aB = a.strides.slice(0, r - 2), bB = b.strides.slice(0, r - 2);
  const cB = out.strides.slice(0, r - 2);
  for (
    const [n, v] of [["M", M], ["N", N], ["K", K], ["lda", sa.ld], ["ldb", sb.ld], [
      "ldc",
      so.ld,
    ]] as const
  ) {
    checkInt(n, v);
  }

  // x @ W with a shared W: fold the batch into the rows of one GEMM (row-major a and out).
  if (
    swap && sa.rowMajor && batchShape.length > 0 &&
    bB.every((s, d) => s === 0 || batchShape[d] === 1)
  ) {
    const f = mergeDims([...batchShape, M], [[...aB, sa.ld], [...cB, so.ld]], true);
    const rows = batchShape.reduce((p, d) => p * d, M);
    if (f.shape.length === 1 && f.strides[0][0] >= K && f.strides[1][0] >= N && rows <= MAX_I32) {
      return [gemm(rows, f.strides[0][0], f.strides[1][0], 0, 0, 0, 1, [0, 0, 0])];
    }
  }

  // cuBLAS accepts a batch stride of 0 for A and B (one matrix reused by every batch entry).
  const L = mergeDims(batchShape, [aB, bB, cB], true);
  if (L.shape.length === 0) return [gemm(M, sa.ld, so.ld, 0, 0, 0, 1, [0, 0, 0])];
  const inner = L.shape.length - 1;
  const count = L.shape[inner];
  checkInt("batch", count);
  const innerStrides = L.strides.map((s) => s[inner]) as [number, number, number];
  const calls: GemmStridedBatchedArgs[] = [];
  // Odometer over the outer batch dims (row-major order), one strided-batched call each.
  const outer = L.shape.slice(0, inner);
  const idx = outer.map(() => 0);
  const total = numel(outer);
  for (let i = 0; i < total; i++) {
    let oa = 0, ob = 0, oc = 0;
    for (let d = 0; d < outer.length; d++) {
      oa += idx[d] * L.strides[0][d];
      ob += idx[d] * L.strides[1][d];
      oc += idx[d] * L.strides[2][d];
    }
    calls.push(gemm(M, sa.ld, so.ld, oa, ob, oc, count, innerStrides));
    for (let d = outer.length - 1; d >= 0 && ++idx[d] === outer[d]; d--) idx[d] = 0;
  }
  return calls;
}

/** Options of a {@linkcode CublasMatmul}. */
export interface CublasMatmulOptions {
  /** Let f32 GEMMs use TF32 tensor cores (about 10 mantissa bits). Default false: exact f32. */
  tf32?: boolean;
  /** Device scratch for cuBLASLt's algorithms (PyTorch uses 1-32 MiB); none by default. */
  ltWorkspace?: { ptr: bigint; bytes: number };
  /**
   * The libraries' bound functions (default: opened on first use). Tests pass host
   * implementations to run the exact calls, argument by argument, on the CPU.
   */
  symbols?: { blas?: CublasSymbols; lt?: CublasLtSymbols };
}

/** Options of {@linkcode CublasMatmul.linear}. */
export interface LinearEpilogueOptions {
  /** Apply GELU (tanh form, cuBLASLt's) after the bias. Default false. */
  gelu?: boolean;
}

/**
 * The CUDA backend's matmul: views in, cuBLAS calls queued on the backend's one stream.
 * cuBLAS and cuBLASLt handles are created on first use (in the current CUDA context).
 *
 * @example
 * ```ts ignore
 * const blas = new CublasMatmul(stream, (v) => device.address(v)); // inside the CUDA backend
 * blas.matmul(a, b, out, { transA: false, transB: true });
 * ```
 */
export class CublasMatmul {
  readonly #stream: bigint;
  readonly #address: (v: View) => bigint;
  readonly #options: CublasMatmulOptions;
  #blas: CublasHandle | null = null;
  #lt: CublasLtHandle | null = null;

  /**
   * @param stream the `CUstream` every GEMM is queued on
   * @param address the device address of element `view.offset` of a view's buffer
   * @param options TF32, cuBLASLt workspace
   */
  constructor(stream: bigint, address: (v: View) => bigint, options: CublasMatmulOptions = {}) {
    this.#stream = stream;
    this.#address = address;
    this.#options = options;
  }

  /**
   * out = alpha * op(a) @ op(b) + beta * out (Backend.matmul's contract), f32 or bf16 inputs with
   * f32 accumulation.
   * @throws CublasLayoutError for views cuBLAS cannot express: check {@linkcode cublasLayoutNeeds}
   * first and copy those operands to contiguous memory; TypeError for unsupported dtypes.
   */
  matmul(a: View, b: View, out: View, options: MatmulOptions): void {
    const calls = planMatmul(a, b, out, options, this.#address, this.#options.tf32 ?? false);
    if (calls.length === 0) return;
    const handle = this.#handle();
    for (const g of calls) handle.gemmStridedBatched(g);
  }

  /**
   * out (rows, N) = x (rows, K) @ weight (N, K)^T + bias (N), then GELU when asked: one cuBLASLt
   * GEMM with a BIAS or GELU_BIAS epilogue. x and out row-major (unit column stride), weight any
   * BLAS layout, bias contiguous and of out's dtype; x and weight f32 or bf16 alike.
   */
  linear(x: View, weight: View, bias: View, out: View, options: LinearEpilogueOptions = {}): void {
    const args = planLinear(
      x,
      weight,
      bias,
      out,
      this.#address,
      options,
      this.#options.tf32 ?? false,
    );
    if (args === null) return;
    this.#ltHandle().matmul(args);
  }

  /** Destroys the handles; safe to call twice. */
  dispose(): void {
    this.#blas?.dispose();
    this.#lt?.dispose();
    this.#blas = this.#lt = null;
  }

  #handle(): CublasHandle {
    if (this.#blas) return this.#blas;
    const h = new CublasHandle(this.#stream, this.#options.symbols?.blas);
    // Explicit, so a process-wide default cannot slip TF32 into "exact" f32 GEMMs.
    h.setMathMode(this.#options.tf32 ? CUBLAS_MATH.TF32_TENSOR_OP : CUBLAS_MATH.DEFAULT);
    return this.#blas = h;
  }

  #ltHandle(): CublasLtHandle {
    const w = this.#options.ltWorkspace;
    return this.#lt ??= new CublasLtHandle(
      this.#stream,
      w?.ptr ?? 0n,
      w?.bytes ?? 0,
      this.#options.symbols?.lt,
    );
  }
}

/**
 * The cuBLASLt call of {@linkcode CublasMatmul.linear}: D^T (N x rows) = W (N x K) x^T (K x rows)
 * + bias broadcast along D's columns (bias has one value per row of D, i.e. per output feature).
 * Returns null when there is nothing to compute.
 */
export function planLinear(
  x: View,
  weight: View,
  bias: View,
  out: View,
  address: (v: View) => bigint,
  options: LinearEpilogueOptions = {},
  tf32 = false,
): LtMatmulArgs | null {
  checkDTypes(x, weight, out);
  if (bias.dtype !== out.dtype) {
    throw new TypeError(`linear (cuBLASLt): bias must be ${out.dtype} like out, got ${bias.dtype}`);
  }
  if (
    x.shape.length !== 2 || weight.shape.length !== 2 || out.shape.length !== 2 ||
    bias.shape.length !== 1
  ) {
    throw new RangeError(
      `linear (cuBLASLt): x, weight, out must be 2-D and bias 1-D, got [${x.shape}], ` +
        `[${weight.shape}], [${out.shape}], [${bias.shape}]`,
    );
  }
  const [rows, K] = x.shape, [N, K2] = weight.shape;
  if (K !== K2 || out.shape[0] !== rows || out.shape[1] !== N || bias.shape[0] !== N) {
    throw new RangeError(
      `linear (cuBLASLt): shapes differ: x [${x.shape}], weight [${weight.shape}], bias ` +
        `[${bias.shape}], out [${out.shape}]`,
    );
  }
  if (rows === 0 || N === 0) return null;
  if (K === 0) throw new CublasLayoutError("k", "linear (cuBLASLt): in_features is 0");
  const sx = matrixStorage(rows, K, x.strides[0], x.strides[1]);
  const so = matrixStorage(rows, N, out.strides[0], out.strides[1]);
  // op(weight) here is weight^T (K x N).
  const sw = matrixStorage(K, N, weight.strides[1], weight.strides[0]);
  if (!sx?.rowMajor) {
    throw new CublasLayoutError("a", "linear (cuBLASLt): x must have unit column stride");
  }
  if (!so?.rowMajor) {
    throw new CublasLayoutError("out", "linear (cuBLASLt): out must have unit column stride");
  }
  if (!sw) throw new CublasLayoutError("b", "linear (cuBLASLt): weight has no BLAS layout");
  if (N > 1 && bias.strides[0] !== 1) {
    throw new CublasLayoutError("b", "linear (cuBLASLt): bias must be contiguous");
  }
  for (
    const [n, v] of [["rows", rows], ["N", N], ["K", K], [
      "ld",
      Math.max(sx.ld, so.ld, sw.ld),
    ]] as const
  ) {
    checkInt(n, v);
  }
  const abType = cudaType(x.dtype, "x");
  return {
    // Same mapping as planMatmul's swap: cuBLAS A := op(b)^T = weight, B := x^T.
    transa: sw.rowMajor ? CUBLAS_OP.N : CUBLAS_OP.T,
    transb: CUBLAS_OP.N,
    m: N,
    n: rows,
    k: K,
    alpha: 1,
    beta: 0,
    a: address(weight),
    lda: sw.ld,
    b: address(x),
    ldb: sx.ld,
    c: address(out),
    ldc: so.ld,
    abType,
    cType: cudaType(out.dtype, "out"),
    computeType: x.dtype === "f32" && tf32 ? CUBLAS_COMPUTE.F32_FAST_TF32 : CUBLAS_COMPUTE.F32,
    epilogue: options.gelu ? LT_EPILOGUE.GELU_BIAS : LT_EPILOGUE.BIAS,
    bias: address(bias),
  };
}
