/**
 * cuDNN 9 through `Deno.dlopen`: the handle calls and the backend ("graph") API that builds
 * operation graphs from descriptors (`cudnnBackendCreateDescriptor` / `SetAttribute` /
 * `Finalize` / `Execute`). Handles, descriptors, streams and device pointers cross the boundary
 * as `bigint` ("usize"); attribute values as host buffers.
 *
 * Every enum value below is copied from cuDNN 9's `cudnn_graph.h` (the header that declares the
 * backend API; 9.6.0 was read) and asserted again in tests/cudnn_test.ts. Enums the header
 * declares without explicit values (descriptor types, attribute types) are numbered from 0 in
 * declaration order, as C does.
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

// ---- enums (cudnn_graph.h) ----

/** `cudnnDataType_t`: FLOAT 0, HALF 2, INT32 4, BFLOAT16 9, INT64 10, BOOLEAN 11. */
export const CUDNN_DATA = {
  FLOAT: 0,
  HALF: 2,
  INT32: 4,
  BFLOAT16: 9,
  INT64: 10,
  BOOLEAN: 11,
} as const;

/** `cudnnBackendDescriptorType_t` (declaration order from CUDNN_BACKEND_POINTWISE_DESCRIPTOR = 0). */
export const CUDNN_BACKEND = {
  POINTWISE_DESCRIPTOR: 0,
  ENGINE_DESCRIPTOR: 2,
  ENGINECFG_DESCRIPTOR: 3,
  ENGINEHEUR_DESCRIPTOR: 4,
  EXECUTION_PLAN_DESCRIPTOR: 5,
  OPERATION_POINTWISE_DESCRIPTOR: 13,
  OPERATIONGRAPH_DESCRIPTOR: 15,
  VARIANT_PACK_DESCRIPTOR: 16,
  TENSOR_DESCRIPTOR: 17,
  MATMUL_DESCRIPTOR: 18,
  OPERATION_MATMUL_DESCRIPTOR: 19,
  REDUCTION_DESCRIPTOR: 21,
  OPERATION_REDUCTION_DESCRIPTOR: 22,
  OPERATION_RESHAPE_DESCRIPTOR: 30,
} as const;

/** `cudnnBackendAttributeType_t` (declaration order from CUDNN_TYPE_HANDLE = 0). */
export const CUDNN_TYPE = {
  HANDLE: 0,
  DATA_TYPE: 1,
  BOOLEAN: 2,
  INT64: 3,
  FLOAT: 4,
  DOUBLE: 5,
  VOID_PTR: 6,
  HEUR_MODE: 8,
  POINTWISE_MODE: 14,
  BACKEND_DESCRIPTOR: 15,
  REDUCTION_OPERATOR_TYPE: 18,
  TENSOR_REORDERING_MODE: 20,
  INT32: 23,
} as const;

/** `cudnnBackendAttributeName_t`: the attributes this library sets or reads. */
export const CUDNN_ATTR = {
  POINTWISE_MODE: 0,
  POINTWISE_MATH_PREC: 1,
  POINTWISE_AXIS: 9,
  ENGINEHEUR_MODE: 200,
  ENGINEHEUR_OPERATION_GRAPH: 201,
  ENGINEHEUR_RESULTS: 202,
  EXECUTION_PLAN_HANDLE: 400,
  EXECUTION_PLAN_ENGINE_CONFIG: 401,
  EXECUTION_PLAN_WORKSPACE_SIZE: 402,
  OPERATION_POINTWISE_PW_DESCRIPTOR: 750,
  OPERATION_POINTWISE_XDESC: 751,
  OPERATION_POINTWISE_BDESC: 752,
  OPERATION_POINTWISE_YDESC: 753,
  OPERATION_POINTWISE_TDESC: 758,
  OPERATIONGRAPH_HANDLE: 800,
  OPERATIONGRAPH_OPS: 801,
  TENSOR_BYTE_ALIGNMENT: 900,
  TENSOR_DATA_TYPE: 901,
  TENSOR_DIMENSIONS: 902,
  TENSOR_STRIDES: 903,
  TENSOR_UNIQUE_ID: 906,
  TENSOR_IS_VIRTUAL: 907,
  TENSOR_IS_BY_VALUE: 908,
  TENSOR_REORDERING_MODE: 909,
  VARIANT_PACK_UNIQUE_IDS: 1000,
  VARIANT_PACK_DATA_POINTERS: 1001,
  VARIANT_PACK_WORKSPACE: 1003,
  MATMUL_COMP_TYPE: 1500,
  OPERATION_MATMUL_ADESC: 1520,
  OPERATION_MATMUL_BDESC: 1521,
  OPERATION_MATMUL_CDESC: 1522,
  OPERATION_MATMUL_DESC: 1523,
  REDUCTION_OPERATOR: 1600,
  REDUCTION_COMP_TYPE: 1601,
  OPERATION_REDUCTION_XDESC: 1610,
  OPERATION_REDUCTION_YDESC: 1611,
  OPERATION_REDUCTION_DESC: 1612,
  OPERATION_RESHAPE_XDESC: 2200,
  OPERATION_RESHAPE_YDESC: 2201,
} as const;

/** `cudnnPointwiseMode_t`: the modes the attention graphs use. */
export const CUDNN_POINTWISE = {
  ADD: 0,
  MUL: 1,
  DIV: 6,
  SUB: 9,
  EXP: 13,
  LOG: 15,
  IDENTITY: 21,
  CMP_GE: 303,
  GEN_INDEX: 501,
  BINARY_SELECT: 601,
} as const;

/** `cudnnReduceTensorOp_t` (the reduction operator's value type): ADD 0, MAX 3. */
export const CUDNN_REDUCE_TENSOR = { ADD: 0, MAX: 3 } as const;

/** `cudnnBackendHeurMode_t`: INSTANT 0, B 1, FALLBACK 2, A 3. */
export const CUDNN_HEUR_MODE = { INSTANT: 0, B: 1, FALLBACK: 2, A: 3 } as const;

/** `cudnnBackendTensorReordering_t`: NONE 0, INT8x32 1, F16x16 2. */
export const CUDNN_TENSOR_REORDERING = { NONE: 0, INT8x32: 1, F16x16: 2 } as const;

/** `cudnnStatus_t` names, for messages when the library cannot describe a status itself. */
export const CUDNN_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: "CUDNN_STATUS_SUCCESS",
  1001: "CUDNN_STATUS_NOT_INITIALIZED",
  1002: "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH",
  1008: "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED",
  2000: "CUDNN_STATUS_BAD_PARAM",
  2002: "CUDNN_STATUS_BAD_PARAM_NULL_POINTER",
  2003: "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER",
  2004: "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED",
  2005: "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND",
  2006: "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT",
  2007: "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH",
  2008: "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH",
  2009: "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES",
  2010: "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE",
  2012: "CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE",
  3000: "CUDNN_STATUS_NOT_SUPPORTED",
  3001: "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN",
  3002: "CUDNN_STATUS_NOT_SUPPORTED_SHAPE",
  3003: "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE",
  3004: "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT",
  3007: "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH",
  3010: "CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT",
  4000: "CUDNN_STATUS_INTERNAL_ERROR",
  4001: "CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED",
  4004: "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED",
  5000: "CUDNN_STATUS_EXECUTION_FAILED",
  5001: "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER",
  5003: "CUDNN_STATUS_EXECUTION_FAILED_CUDART",
};

/** `CUDNN_STATUS_CATEGORY(code)`: NOT_SUPPORTED* statuses are 3000..3999. */
export function isCudnnNotSupported(status: number): boolean {
  return Math.floor(status / 1000) * 1000 === 3000;
}

// ---- symbols ----

/** The `Deno.dlopen` symbol table (prototypes from cudnn_graph.h). */
export const CUDNN_SYMBOLS = {
  /** size_t cudnnGetVersion(void) */
  cudnnGetVersion: { parameters: [], result: "usize" },
  /** const char* cudnnGetErrorString(cudnnStatus_t status) */
  cudnnGetErrorString: { parameters: ["i32"], result: "pointer" },
  /** void cudnnGetLastErrorString(char* message, size_t max_size) */
  cudnnGetLastErrorString: { parameters: ["buffer", "usize"], result: "void" },
  /** cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) */
  cudnnCreate: { parameters: ["buffer"], result: "i32" },
  /** cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) */
  cudnnDestroy: { parameters: ["usize"], result: "i32" },
  /** cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) */
  cudnnSetStream: { parameters: ["usize", "usize"], result: "i32" },
  /** cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t, cudnnBackendDescriptor_t*) */
  cudnnBackendCreateDescriptor: { parameters: ["i32", "buffer"], result: "i32" },
  /** cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t descriptor) */
  cudnnBackendDestroyDescriptor: { parameters: ["usize"], result: "i32" },
  /** cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t descriptor) */
  cudnnBackendFinalize: { parameters: ["usize"], result: "i32" },
  /**
   * cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t descriptor,
   *   cudnnBackendAttributeName_t attributeName, cudnnBackendAttributeType_t attributeType,
   *   int64_t elementCount, const void* arrayOfElements)
   */
  cudnnBackendSetAttribute: { parameters: ["usize", "i32", "i32", "i64", "buffer"], result: "i32" },
  /**
   * cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const descriptor,
   *   cudnnBackendAttributeName_t attributeName, cudnnBackendAttributeType_t attributeType,
   *   int64_t requestedElementCount, int64_t* elementCount, void* arrayOfElements)
   */
  cudnnBackendGetAttribute: {
    parameters: ["usize", "i32", "i32", "i64", "buffer", "buffer"],
    result: "i32",
  },
  /**
   * cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t executionPlan,
   *   cudnnBackendDescriptor_t variantPack)
   */
  cudnnBackendExecute: { parameters: ["usize", "usize", "usize"], result: "i32" },
} as const;

/** The bound cuDNN functions (or a test double with the same signatures). */
export type CudnnSymbols = Deno.DynamicLibrary<typeof CUDNN_SYMBOLS>["symbols"];

/** How cuDNN is installed, for the missing-library message. */
export const CUDNN_PROVIDES = "`pip install nvidia-cudnn-cu12` (or nvidia-cudnn-cu13), or the " +
  "cuDNN 9 tarball/packages (libcudnn9-cuda-12); if the sub-libraries (libcudnn_graph.so.9, " +
  "libcudnn_engines_*.so.9) fail to load, add their folder to LD_LIBRARY_PATH";

/** Folders where cuDNN lives: the CUDA toolkit, the system, `LD_LIBRARY_PATH`, pip wheels. */
export function cudnnLibraryDirs(): string[] {
  return [
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    ...ldLibraryPathDirs(),
    ...SYSTEM_LIB_DIRS,
    ...pythonNvidiaLibDirs(), // site-packages/nvidia/cudnn/lib
  ];
}

/** An opened cuDNN: the bound symbols and where they came from. */
export type Cudnn = OpenedLibrary<typeof CUDNN_SYMBOLS>;

let cached: Cudnn | undefined;

/**
 * The process-wide cuDNN, opened on first use. `DENOGRAD_CUDNN` (a file, or a folder holding it)
 * overrides the search.
 * @returns the bound library
 * @throws Error listing every path tried and what provides cuDNN
 * @example
 * ```ts ignore
 * const { path, symbols } = cudnn(); // needs a machine with cuDNN 9
 * console.log(path, Number(symbols.cudnnGetVersion()));
 * ```
 */
export function cudnn(): Cudnn {
  return cached ??= loadCudnn();
}

/**
 * Opens cuDNN afresh (no cache): what {@linkcode cudnn} does once.
 * @returns the bound library
 * @throws Error listing every path tried and what provides cuDNN
 */
export function loadCudnn(): Cudnn {
  return openLibrary({
    name: "cuDNN",
    envVar: "DENOGRAD_CUDNN",
    // libcudnn.so.9 is the shim that loads the sub-libraries; libcudnn_graph.so.9 holds the
    // backend API itself and serves when only it is on the path.
    candidates: ["libcudnn.so.9", "libcudnn.so", "libcudnn_graph.so.9"],
    dirs: cudnnLibraryDirs(),
    provides: CUDNN_PROVIDES,
  }, CUDNN_SYMBOLS);
}

/** The `DENOGRAD_CUDNN` override, if set. */
export function cudnnOverride(): string | undefined {
  return envVar("DENOGRAD_CUDNN");
}

function cString(ptr: Deno.PointerValue): string | null {
  return ptr === null ? null : Deno.UnsafePointerView.getCString(ptr);
}

/**
 * "NAME (code): description [last error]" for a `cudnnStatus_t`, asking the library when one is
 * given (cudnnGetErrorString, cudnnGetLastErrorString) and using the header's names otherwise.
 * @param status the status
 * @param symbols the library, to describe the status
 * @returns the message text
 */
export function cudnnStatusText(status: number, symbols?: CudnnSymbols): string {
  const name = CUDNN_STATUS_NAMES[status] ?? "unknown cuDNN status";
  const described = symbols ? cString(symbols.cudnnGetErrorString(status)) : null;
  let text = described && described !== name
    ? `${name} (${status}): ${described}`
    : `${name} (${status})`;
  if (symbols) {
    const buf = new Uint8Array(1024);
    symbols.cudnnGetLastErrorString(buf, BigInt(buf.length));
    const end = buf.indexOf(0);
    const last = new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end)).trim();
    if (last) text += ` [${last}]`;
  }
  return text;
}

/** A cuDNN call failed; `status` is its `cudnnStatus_t`. */
export class CudnnError extends Error {
  /** The failing call's status. */
  readonly status: number;
  /**
   * @param message what failed
   * @param status the `cudnnStatus_t`
   */
  constructor(message: string, status: number) {
    super(message);
    this.name = "CudnnError";
    this.status = status;
  }
}

/**
 * Throws a {@linkcode CudnnError} unless `status` is CUDNN_STATUS_SUCCESS.
 * @param status what the cuDNN call returned
 * @param call the call, for the message, e.g. "cudnnCreate"
 * @param symbols the library, to describe the status
 * @example
 * ```ts
 * import { checkCudnn } from "./cudnn.ts";
 * checkCudnn(0, "cudnnCreate"); // success: no-op
 * ```
 */
export function checkCudnn(status: number, call: string, symbols?: CudnnSymbols): void {
  if (status !== 0) {
    throw new CudnnError(`cuDNN: ${call} failed: ${cudnnStatusText(status, symbols)}`, status);
  }
}
