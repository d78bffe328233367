/**
 * cuBLASLt through `Deno.dlopen`: the symbol table (matmul descriptors, matrix layouts,
 * heuristic algorithm choice, `cublasLtMatmul`), the attribute and epilogue enums it takes, and
 * {@linkcode checkCublasLt}. The handle that caches a plan per GEMM shape lives in
 * src/backend/cuda/cublaslt_plans.ts.
 *
 * Enum values are copied from the cuBLAS 13 header `cublasLt.h` and the cuBLASLt documentation
 * (https://docs.nvidia.com/cuda/cublas/#using-the-cublaslt-api), and asserted again in
 * tests/cublas_test.ts.
 * @module
 */

import { CUBLAS_PROVIDES, cublasStatusText, cudaLibraryDirs } from "./cublas.ts";
import { type OpenedLibrary, openLibrary } from "./find.ts";

/** `cublasLtMatmulDescAttributes_t` (cublasLt.h). */
export const LT_DESC = {
  /** int32 `cublasComputeType_t`. */
  COMPUTE_TYPE: 0,
  /** int32 `cudaDataType_t` of alpha and beta. */
  SCALE_TYPE: 1,
  /** int32 `cublasOperation_t` of A. */
  TRANSA: 3,
  /** int32 `cublasOperation_t` of B. */
  TRANSB: 4,
  /** uint32 `cublasLtEpilogue_t`. */
  EPILOGUE: 7,
  /** const void* bias vector (device), one value per row of D. */
  BIAS_POINTER: 8,
  /** int64 elements between the bias vectors of consecutive batch entries. */
  BIAS_BATCH_STRIDE: 10,
  /** int32 `cudaDataType_t` of the bias vector (default: D's type). */
  BIAS_DATA_TYPE: 26,
} as const;

/** `cublasLtEpilogue_t` (cublasLt.h): DEFAULT = 1, BIAS = 4, GELU = 32, GELU_BIAS = 36 (GELU | BIAS). */
export const LT_EPILOGUE = { DEFAULT: 1, BIAS: 4, GELU: 32, GELU_BIAS: 36 } as const;

/** `cublasLtMatrixLayoutAttribute_t` (cublasLt.h). */
export const LT_LAYOUT = {
  /** int32 `cublasLtOrder_t` (CUBLASLT_ORDER_COL = 0 is the default). */
  ORDER: 1,
  /** int32 number of matrices. */
  BATCH_COUNT: 5,
  /** int64 elements between consecutive matrices. */
  STRIDED_BATCH_OFFSET: 6,
} as const;

/**
 * `cublasLtMatmulPreferenceAttributes_t` (cublasLt.h): MAX_WORKSPACE_BYTES = 1 (uint64);
 * MIN_ALIGNMENT_{A,B,C,D}_BYTES = 5..8 (uint32, default 256: the heuristic may otherwise pick an
 * algorithm that needs 256-byte aligned operands, which views at an offset are not).
 */
export const LT_PREF = {
  MAX_WORKSPACE_BYTES: 1,
  MIN_ALIGNMENT_A_BYTES: 5,
  MIN_ALIGNMENT_B_BYTES: 6,
  MIN_ALIGNMENT_C_BYTES: 7,
  MIN_ALIGNMENT_D_BYTES: 8,
} as const;

/** sizeof(cublasLtMatmulHeuristicResult_t): algo (8 x uint64), size_t workspaceSize,
 * cublasStatus_t state, float wavesCount, int reserved[4] = 64 + 8 + 4 + 4 + 16. */
export const LT_HEURISTIC_RESULT_BYTES = 96;
/** sizeof(cublasLtMatmulAlgo_t) = 8 x uint64. */
export const LT_ALGO_BYTES = 64;

/** The `Deno.dlopen` symbol table. Descriptors and device pointers are passed as `bigint`. */
export const CUBLASLT_SYMBOLS = {
  /** cublasStatus_t cublasLtCreate(cublasLtHandle_t* lightHandle) */
  cublasLtCreate: { parameters: ["buffer"], result: "i32" },
  /** cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) */
  cublasLtDestroy: { parameters: ["usize"], result: "i32" },
  /** size_t cublasLtGetVersion(void) */
  cublasLtGetVersion: { parameters: [], result: "usize" },
  /** const char* cublasLtGetStatusName(cublasStatus_t status) */
  cublasLtGetStatusName: { parameters: ["i32"], result: "pointer" },
  /** const char* cublasLtGetStatusString(cublasStatus_t status) */
  cublasLtGetStatusString: { parameters: ["i32"], result: "pointer" },
  /** cublasLtMatmulDescCreate(cublasLtMatmulDesc_t*, cublasComputeType_t, cudaDataType_t scaleType) */
  cublasLtMatmulDescCreate: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  /** cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t) */
  cublasLtMatmulDescDestroy: { parameters: ["usize"], result: "i32" },
  /** cublasLtMatmulDescSetAttribute(desc, cublasLtMatmulDescAttributes_t, const void* buf, size_t) */
  cublasLtMatmulDescSetAttribute: {
    parameters: ["usize", "i32", "buffer", "usize"],
    result: "i32",
  },
  /** cublasLtMatrixLayoutCreate(layout*, cudaDataType, uint64_t rows, uint64_t cols, int64_t ld) */
  cublasLtMatrixLayoutCreate: { parameters: ["buffer", "i32", "u64", "u64", "i64"], result: "i32" },
  /** cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t) */
  cublasLtMatrixLayoutDestroy: { parameters: ["usize"], result: "i32" },
  /** cublasLtMatrixLayoutSetAttribute(layout, cublasLtMatrixLayoutAttribute_t, buf, size_t) */
  cublasLtMatrixLayoutSetAttribute: {
    parameters: ["usize", "i32", "buffer", "usize"],
    result: "i32",
  },
  /** cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t*) */
  cublasLtMatmulPreferenceCreate: { parameters: ["buffer"], result: "i32" },
  /** cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t) */
  cublasLtMatmulPreferenceDestroy: { parameters: ["usize"], result: "i32" },
  /** cublasLtMatmulPreferenceSetAttribute(pref, cublasLtMatmulPreferenceAttributes_t, buf, size_t) */
  cublasLtMatmulPreferenceSetAttribute: {
    parameters: ["usize", "i32", "buffer", "usize"],
    result: "i32",
  },
  /**
   * cublasLtMatmulAlgoGetHeuristic(handle, desc, Adesc, Bdesc, Cdesc, Ddesc, preference,
   *   int requestedAlgoCount, cublasLtMatmulHeuristicResult_t results[], int* returnAlgoCount)
   */
  cublasLtMatmulAlgoGetHeuristic: {
    parameters: [
      "usize",
      "usize",
      "usize",
      "usize",
      "usize",
      "usize",
      "usize",
      "i32",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  /**
   * cublasLtMatmul(handle, desc, const void* alpha, const void* A, Adesc, const void* B, Bdesc,
   *   const void* beta, const void* C, Cdesc, void* D, Ddesc, const cublasLtMatmulAlgo_t* algo,
   *   void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream)
   */
  cublasLtMatmul: {
    parameters: [
      "usize", // handle
      "usize", // computeDesc
      "buffer", // alpha (host float)
      "usize", // A
      "usize", // Adesc
      "usize", // B
      "usize", // Bdesc
      "buffer", // beta (host float)
      "usize", // C
      "usize", // Cdesc
      "usize", // D
      "usize", // Ddesc
      "buffer", // algo
      "usize", // workspace
      "usize", // workspaceSizeInBytes
      "usize", // stream
    ],
    result: "i32",
  },
} as const;

/** The bound cuBLASLt functions. */
export type CublasLtSymbols = Deno.DynamicLibrary<typeof CUBLASLT_SYMBOLS>["symbols"];

/** An opened cuBLASLt: the bound symbols and where they came from. */
export type CublasLt = OpenedLibrary<typeof CUBLASLT_SYMBOLS>;

let cached: CublasLt | undefined;

/**
 * The process-wide cuBLASLt, opened on first use; `DENOGRAD_CUBLASLT` (a file or a folder)
 * overrides the search.
 * @returns the bound library and its path
 * @throws Error listing every path tried and what provides it
 * @example
 * ```ts ignore
 * console.log(cublasLt().path); // needs a machine with cuBLAS
 * ```
 */
export function cublasLt(): CublasLt {
  return cached ??= loadCublasLt();
}

/**
 * Opens cuBLASLt afresh (no cache): what {@linkcode cublasLt} does once.
 * @returns the bound library and its path
 */
export function loadCublasLt(): CublasLt {
  return openLibrary({
    name: "cuBLASLt",
    envVar: "DENOGRAD_CUBLASLT",
    candidates: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
    dirs: cudaLibraryDirs(),
    provides: CUBLAS_PROVIDES,
  }, CUBLASLT_SYMBOLS);
}

/** Throws unless `status` is CUBLAS_STATUS_SUCCESS, naming the call and the status. */
export function checkCublasLt(status: number, call: string, s?: CublasLtSymbols): void {
  if (status === 0) return;
  const named = s ? Deno.UnsafePointerView.getCString(s.cublasLtGetStatusName(status)!) : null;
  throw new Error(
    `cuBLASLt: ${call} failed: ${named ? `${named} (${status})` : cublasStatusText(status)}`,
  );
}
