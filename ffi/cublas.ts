/**
 * cuBLAS through `Deno.dlopen`: the symbol table (handle calls and strided-batched GEMM,
 * `cublasGemmStridedBatchedEx`), the enums it takes, and {@linkcode checkCublas}. The handle
 * bound to one stream lives in src/backend/cuda/cublas_handle.ts. Handles, streams and device
 * pointers cross the boundary as `bigint` ("usize"); host scalars (alpha, beta) as buffers.
 *
 * Every enum value below is copied from the cuBLAS 13 headers (`cublas_api.h`, and CUDA's
 * `library_types.h` for `cudaDataType_t`) and the cuBLAS documentation
 * (https://docs.nvidia.com/cuda/cublas/), and asserted again in tests/cublas_test.ts.
 * @module
 */

import {
  envVar,
  ldLibraryPathDirs,
  type OpenedLibrary,
  openLibrary,
  pythonNvidiaLibDirs,
  SYSTEM_LIB_DIRS,
} from "./find.ts";

// ---- enums ----

/** `cublasOperation_t` (cublas_api.h): CUBLAS_OP_N = 0, CUBLAS_OP_T = 1. */
export const CUBLAS_OP = { N: 0, T: 1 } as const;

/** `cudaDataType_t` (library_types.h): CUDA_R_32F = 0, CUDA_R_16BF = 14. */
export const CUDA_R = { F32: 0, BF16: 14 } as const;

/**
 * `cublasComputeType_t` (cublas_api.h): CUBLAS_COMPUTE_32F = 68 (f32 arithmetic, exact),
 * CUBLAS_COMPUTE_32F_FAST_TF32 = 77 (f32 inputs rounded to TF32 for tensor cores).
 */
export const CUBLAS_COMPUTE = { F32: 68, F32_FAST_TF32: 77 } as const;

/** `cublasGemmAlgo_t` (cublas_api.h): CUBLAS_GEMM_DEFAULT = -1 (cuBLAS's heuristic). */
export const CUBLAS_GEMM_DEFAULT = -1;

/**
 * `cublasMath_t` (cublas_api.h): CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2,
 * CUBLAS_TF32_TENSOR_OP_MATH = 3.
 */
export const CUBLAS_MATH = { DEFAULT: 0, PEDANTIC: 2, TF32_TENSOR_OP: 3 } as const;

/** `cublasStatus_t` names (cublas_api.h), for messages when the library cannot name a status. */
export const CUBLAS_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: "CUBLAS_STATUS_SUCCESS",
  1: "CUBLAS_STATUS_NOT_INITIALIZED",
  3: "CUBLAS_STATUS_ALLOC_FAILED",
  7: "CUBLAS_STATUS_INVALID_VALUE",
  8: "CUBLAS_STATUS_ARCH_MISMATCH",
  11: "CUBLAS_STATUS_MAPPING_ERROR",
  13: "CUBLAS_STATUS_EXECUTION_FAILED",
  14: "CUBLAS_STATUS_INTERNAL_ERROR",
  15: "CUBLAS_STATUS_NOT_SUPPORTED",
  16: "CUBLAS_STATUS_LICENSE_ERROR",
};

// ---- symbols ----

/**
 * The `Deno.dlopen` symbol table. Exported names carry cuBLAS's `_v2` suffix where the header
 * `#define`s the plain name to it (cublasCreate -> cublasCreate_v2, ...).
 */
export const CUBLAS_SYMBOLS = {
  /** cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) */
  cublasCreate_v2: { parameters: ["buffer"], result: "i32" },
  /** cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) */
  cublasDestroy_v2: { parameters: ["usize"], result: "i32" },
  /** cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version) */
  cublasGetVersion_v2: { parameters: ["usize", "buffer"], result: "i32" },
  /** cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) */
  cublasSetStream_v2: { parameters: ["usize", "usize"], result: "i32" },
  /** cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) */
  cublasSetMathMode: { parameters: ["usize", "i32"], result: "i32" },
  /** const char* cublasGetStatusName(cublasStatus_t status) */
  cublasGetStatusName: { parameters: ["i32"], result: "pointer" },
  /** const char* cublasGetStatusString(cublasStatus_t status) */
  cublasGetStatusString: { parameters: ["i32"], result: "pointer" },
  /**
   * cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
   *   cublasOperation_t transb, int m, int n, int k, const void* alpha,
   *   const void* A, cudaDataType Atype, int lda, long long int strideA,
   *   const void* B, cudaDataType Btype, int ldb, long long int strideB, const void* beta,
   *   void* C, cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
   *   cublasComputeType_t computeType, cublasGemmAlgo_t algo)
   */
  cublasGemmStridedBatchedEx: {
    parameters: [
      "usize", // handle
      "i32", // transa
      "i32", // transb
      "i32", // m
      "i32", // n
      "i32", // k
      "buffer", // alpha (host float)
      "usize", // A
      "i32", // Atype
      "i32", // lda
      "i64", // strideA
      "usize", // B
      "i32", // Btype
      "i32", // ldb
      "i64", // strideB
      "buffer", // beta (host float)
      "usize", // C
      "i32", // Ctype
      "i32", // ldc
      "i64", // strideC
      "i32", // batchCount
      "i32", // computeType
      "i32", // algo
    ],
    result: "i32",
  },
} as const;

/** The bound cuBLAS functions. */
export type CublasSymbols = Deno.DynamicLibrary<typeof CUBLAS_SYMBOLS>["symbols"];

/**
 * Folders where cuBLAS lives: the CUDA toolkit, the system, `LD_LIBRARY_PATH`, and pip's NVIDIA
 * wheels (`site-packages/nvidia/cublas/lib` for CUDA 12, `site-packages/nvidia/cu13/lib` for 13).
 */
export function cudaLibraryDirs(): string[] {
  return [
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/local/cuda/targets/sbsa-linux/lib",
    ...ldLibraryPathDirs(),
    ...SYSTEM_LIB_DIRS,
    ...pythonNvidiaLibDirs(),
  ];
}

/** How cuBLAS is installed, for the missing-library message. */
export const CUBLAS_PROVIDES =
  "the CUDA toolkit (/usr/local/cuda/lib64), or `pip install nvidia-cublas` (CUDA 13) / " +
  "`pip install nvidia-cublas-cu12` (CUDA 12)";

/** An opened cuBLAS: the bound symbols and where they came from. */
export type Cublas = OpenedLibrary<typeof CUBLAS_SYMBOLS>;

let cached: Cublas | undefined;

/**
 * The process-wide cuBLAS, opened on first use. `DENOGRAD_CUBLAS` (a file, or a folder holding
 * it) overrides the search.
 * @returns the bound library
 * @throws Error listing every path tried and what provides cuBLAS
 * @example
 * ```ts ignore
 * const { path } = cublas(); // needs a machine with cuBLAS
 * console.log(path);
 * ```
 */
export function cublas(): Cublas {
  return cached ??= loadCublas();
}

/**
 * Opens cuBLAS afresh (no cache): what {@linkcode cublas} does once.
 * @returns the bound library
 * @throws Error listing every path tried and what provides cuBLAS
 */
export function loadCublas(): Cublas {
  return openLibrary({
    name: "cuBLAS",
    envVar: "DENOGRAD_CUBLAS",
    candidates: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
    dirs: cudaLibraryDirs(),
    provides: CUBLAS_PROVIDES,
  }, CUBLAS_SYMBOLS);
}

/** Whether `DENOGRAD_CUBLAS` is set (tests use it to report which library they exercised). */
export function cublasOverride(): string | undefined {
  return envVar("DENOGRAD_CUBLAS");
}

function cString(ptr: Deno.PointerValue): string | null {
  return ptr === null ? null : Deno.UnsafePointerView.getCString(ptr);
}

/**
 * "NAME (code): description" for a `cublasStatus_t`, asking the library when one is given and
 * falling back to the header's names otherwise.
 */
export function cublasStatusText(status: number, symbols?: CublasSymbols): string {
  const name = (symbols && cString(symbols.cublasGetStatusName(status))) ??
    CUBLAS_STATUS_NAMES[status] ?? "unknown cuBLAS status";
  const text = symbols ? cString(symbols.cublasGetStatusString(status)) : null;
  return text && text !== name ? `${name} (${status}): ${text}` : `${name} (${status})`;
}

/**
 * Throws unless `status` is CUBLAS_STATUS_SUCCESS.
 * @param status what the cuBLAS call returned
 * @param call the call, for the message, e.g. "cublasCreate_v2"
 * @param symbols the library, to name the status
 * @example
 * ```ts
 * import { checkCublas } from "./cublas.ts";
 * checkCublas(0, "cublasCreate_v2"); // success: no-op
 * ```
 */
export function checkCublas(status: number, call: string, symbols?: CublasSymbols): void {
  if (status !== 0) throw new Error(`cuBLAS: ${call} failed: ${cublasStatusText(status, symbols)}`);
}
