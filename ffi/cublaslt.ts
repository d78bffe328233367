/**
 * cuBLASLt through `Deno.dlopen`: matmul descriptors with bias and GELU+bias epilogues, matrix
 * layouts (with strided batches), heuristic algorithm choice and `cublasLtMatmul`. Descriptors,
 * layouts and the chosen algorithm are cached per GEMM shape, so a training step pays for the
 * heuristic once per distinct shape.
 *
 * Enum values are copied from the cuBLAS 13 header `cublasLt.h` and the cuBLASLt documentation
 * (https://docs.nvidia.com/cuda/cublas/#using-the-cublaslt-api), and asserted again in
 * tests/cublas_test.ts.
 * @module
 */

import { CUBLAS_PROVIDES, cublasStatusText, cudaLibraryDirs } from "./cublas.ts";
import { findLibrary } from "./find.ts";

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

/** The largest power of two (at most 256, cuBLASLt's default requirement) dividing `address`. */
export function pointerAlignment(address: bigint): number {
  let a = 1;
  while (a < 256 && address % BigInt(a * 2) === 0n) a *= 2;
  return a;
}

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

let cached: { symbols: CublasLtSymbols; path: string } | undefined;

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
export function cublasLt(): { symbols: CublasLtSymbols; path: string } {
  return cached ??= loadCublasLt();
}

/**
 * Opens cuBLASLt afresh (no cache): what {@linkcode cublasLt} does once.
 * @returns the bound library and its path
 */
export function loadCublasLt(): { symbols: CublasLtSymbols; path: string } {
  const { lib, path } = findLibrary({
    name: "cuBLASLt",
    envVar: "DENOGRAD_CUBLASLT",
    candidates: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
    dirs: cudaLibraryDirs(),
    provides: CUBLAS_PROVIDES,
  }, CUBLASLT_SYMBOLS);
  return { symbols: lib.symbols, path };
}

/** Throws unless `status` is CUBLAS_STATUS_SUCCESS, naming the call and the status. */
export function checkCublasLt(status: number, call: string, s?: CublasLtSymbols): void {
  if (status === 0) return;
  const named = s ? Deno.UnsafePointerView.getCString(s.cublasLtGetStatusName(status)!) : null;
  throw new Error(
    `cuBLASLt: ${call} failed: ${named ? `${named} (${status})` : cublasStatusText(status)}`,
  );
}

/**
 * cuBLASLt has no algorithm for a GEMM (its heuristic returned none, or NOT_SUPPORTED, e.g. for an
 * epilogue with these types or alignments): the caller can compute it another way.
 */
export class CublasLtUnsupportedError extends Error {
  /** @param message what was asked for */
  constructor(message: string) {
    super(message);
    this.name = "CublasLtUnsupportedError";
  }
}

/** One `cublasLtMatmul` (D = C in place): column-major, as cuBLASLt documents its operands. */
export interface LtMatmulArgs {
  /** op(A): CUBLAS_OP.N or .T. */
  transa: number;
  /** op(B). */
  transb: number;
  /** Rows of D. */
  m: number;
  /** Columns of D. */
  n: number;
  /** Inner dimension. */
  k: number;
  /** D = alpha * op(A) op(B) + beta * C, then the epilogue. */
  alpha: number;
  /** See alpha. */
  beta: number;
  /** Device address of A. */
  a: bigint;
  /** Leading dimension of A. */
  lda: number;
  /** Device address of B. */
  b: bigint;
  /** Leading dimension of B. */
  ldb: number;
  /** Device address of C, which D overwrites. */
  c: bigint;
  /** Leading dimension of C and D. */
  ldc: number;
  /** `cudaDataType_t` of A and B. */
  abType: number;
  /** `cudaDataType_t` of C and D. */
  cType: number;
  /** `cublasComputeType_t`. */
  computeType: number;
  /** `cublasLtEpilogue_t`. */
  epilogue: number;
  /** Device address of the bias (m values of `cType`), 0n for none. */
  bias: bigint;
  /** Matrices in a strided batch (default 1). */
  batchCount?: number;
  /** Elements between consecutive A, B and C/D matrices of the batch (0 reuses one). */
  batchStrides?: readonly [number, number, number];
}

interface Plan {
  desc: bigint;
  layouts: [bigint, bigint, bigint];
  algo: Uint8Array;
}

/** A cuBLASLt handle with a per-shape cache of descriptors and heuristic algorithms. */
export class CublasLtHandle {
  readonly #s: CublasLtSymbols;
  readonly #stream: bigint;
  readonly #workspace: bigint;
  readonly #workspaceBytes: number;
  #handle: bigint;
  readonly #plans = new Map<string, Plan>();
  /** Keys the heuristic found no algorithm for (asked once). */
  readonly #unsupported = new Set<string>();
  readonly #scalars = new Float32Array(2);

  /**
   * @param stream the stream every matmul is queued on
   * @param workspace device scratch the algorithms may use (0n and 0 bytes for none)
   * @param workspaceBytes its size
   * @param symbols the library (default: {@linkcode cublasLt}())
   */
  constructor(
    stream: bigint,
    workspace = 0n,
    workspaceBytes = 0,
    symbols: CublasLtSymbols = cublasLt().symbols,
  ) {
    this.#s = symbols;
    this.#stream = stream;
    this.#workspace = workspace;
    this.#workspaceBytes = workspaceBytes;
    const out = new BigUint64Array(1);
    checkCublasLt(symbols.cublasLtCreate(out), "cublasLtCreate", symbols);
    this.#handle = out[0];
  }

  /** Queues D = epilogue(alpha * op(A) op(B) + beta * C [+ bias]) on the stream. */
  matmul(g: LtMatmulArgs): void {
    if (this.#handle === 0n) throw new Error("cuBLASLt: the handle was disposed");
    const plan = this.#plan(g);
    const s = this.#s;
    const bias = new BigUint64Array([g.bias]);
    checkCublasLt(
      s.cublasLtMatmulDescSetAttribute(plan.desc, LT_DESC.BIAS_POINTER, bias, 8n),
      "cublasLtMatmulDescSetAttribute(BIAS_POINTER)",
      s,
    );
    this.#scalars[0] = g.alpha;
    this.#scalars[1] = g.beta;
    const [la, lb, lc] = plan.layouts;
    checkCublasLt(
      s.cublasLtMatmul(
        this.#handle,
        plan.desc,
        this.#scalars.subarray(0, 1),
        g.a,
        la,
        g.b,
        lb,
        this.#scalars.subarray(1, 2),
        g.c,
        lc,
        g.c,
        lc,
        plan.algo,
        this.#workspace,
        BigInt(this.#workspaceBytes),
        this.#stream,
      ),
      "cublasLtMatmul",
      s,
    );
  }

  /** Destroys every cached descriptor and the handle; safe to call twice. */
  dispose(): void {
    if (this.#handle === 0n) return;
    const s = this.#s;
    for (const p of this.#plans.values()) {
      for (const l of p.layouts) s.cublasLtMatrixLayoutDestroy(l);
      s.cublasLtMatmulDescDestroy(p.desc);
    }
    this.#plans.clear();
    const h = this.#handle;
    this.#handle = 0n;
    checkCublasLt(s.cublasLtDestroy(h), "cublasLtDestroy", s);
  }

  #plan(g: LtMatmulArgs): Plan {
    // The algorithm is chosen for the operands' alignments (a view at an offset is less aligned
    // than cuMemAlloc's 256 bytes), so they are part of the key; the bias's 16-byte alignment too.
    const align = [g.a, g.b, g.c].map(pointerAlignment);
    const key = [
      g.transa,
      g.transb,
      g.m,
      g.n,
      g.k,
      g.lda,
      g.ldb,
      g.ldc,
      g.abType,
      g.cType,
      g.computeType,
      g.epilogue,
      g.batchCount ?? 1,
      g.batchStrides?.join("/"),
      g.bias % 16n === 0n,
      ...align,
    ].join(",");
    let plan = this.#plans.get(key);
    if (plan) return plan;
    const unsupported = () =>
      new CublasLtUnsupportedError(
        `cuBLASLt: no algorithm for m=${g.m} n=${g.n} k=${g.k} epilogue=${g.epilogue} ` +
          `types=${g.abType}/${g.cType} alignments=${align.join("/")} with ` +
          `${this.#workspaceBytes} bytes of workspace`,
      );
    if (this.#unsupported.has(key)) throw unsupported();
    const s = this.#s;
    const out = new BigUint64Array(1);
    const i32 = (v: number) => new Int32Array([v]);
    checkCublasLt(
      s.cublasLtMatmulDescCreate(out, g.computeType, 0 /* CUDA_R_32F scale */),
      "cublasLtMatmulDescCreate",
      s,
    );
    const desc = out[0];
    const setDesc = (attr: number, name: string, buf: Int32Array | Uint32Array | BigUint64Array) =>
      checkCublasLt(
        s.cublasLtMatmulDescSetAttribute(desc, attr, buf, BigInt(buf.byteLength)),
        `cublasLtMatmulDescSetAttribute(${name})`,
        s,
      );
    setDesc(LT_DESC.TRANSA, "TRANSA", i32(g.transa));
    setDesc(LT_DESC.TRANSB, "TRANSB", i32(g.transb));
    setDesc(LT_DESC.EPILOGUE, "EPILOGUE", new Uint32Array([g.epilogue]));
    if (g.bias !== 0n) {
      setDesc(LT_DESC.BIAS_POINTER, "BIAS_POINTER", new BigUint64Array([g.bias]));
      setDesc(LT_DESC.BIAS_DATA_TYPE, "BIAS_DATA_TYPE", i32(g.cType));
    }
    // Column-major layouts of the stored matrices: op(A) is m x k, so A is m x k or k x m.
    const layout = (type: number, rows: number, cols: number, ld: number, name: string) => {
      checkCublasLt(
        s.cublasLtMatrixLayoutCreate(out, type, BigInt(rows), BigInt(cols), BigInt(ld)),
        `cublasLtMatrixLayoutCreate(${name})`,
        s,
      );
      return out[0];
    };
    const la = g.transa === 0
      ? layout(g.abType, g.m, g.k, g.lda, "A")
      : layout(g.abType, g.k, g.m, g.lda, "A");
    const lb = g.transb === 0
      ? layout(g.abType, g.k, g.n, g.ldb, "B")
      : layout(g.abType, g.n, g.k, g.ldb, "B");
    const lc = layout(g.cType, g.m, g.n, g.ldc, "C");
    const batch = g.batchCount ?? 1;
    if (batch > 1) {
      const strides = g.batchStrides ?? [0, 0, 0];
      [la, lb, lc].forEach((l, i) => {
        for (
          const [attr, buf] of [
            [LT_LAYOUT.BATCH_COUNT, new Int32Array([batch])],
            [LT_LAYOUT.STRIDED_BATCH_OFFSET, new BigInt64Array([BigInt(strides[i])])],
          ] as const
        ) {
          checkCublasLt(
            s.cublasLtMatrixLayoutSetAttribute(l, attr, buf, BigInt(buf.byteLength)),
            `cublasLtMatrixLayoutSetAttribute(${
              attr === 5 ? "BATCH_COUNT" : "STRIDED_BATCH_OFFSET"
            })`,
            s,
          );
        }
      });
    }

    const prefOut = new BigUint64Array(1);
    checkCublasLt(s.cublasLtMatmulPreferenceCreate(prefOut), "cublasLtMatmulPreferenceCreate", s);
    const pref = prefOut[0];
    try {
      checkCublasLt(
        s.cublasLtMatmulPreferenceSetAttribute(
          pref,
          LT_PREF.MAX_WORKSPACE_BYTES,
          new BigUint64Array([BigInt(this.#workspaceBytes)]),
          8n,
        ),
        "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)",
        s,
      );
      const alignments = [
        ["A", LT_PREF.MIN_ALIGNMENT_A_BYTES, align[0]],
        ["B", LT_PREF.MIN_ALIGNMENT_B_BYTES, align[1]],
        ["C", LT_PREF.MIN_ALIGNMENT_C_BYTES, align[2]],
        ["D", LT_PREF.MIN_ALIGNMENT_D_BYTES, align[2]], // D is C (in place)
      ] as const;
      for (const [name, attr, bytes] of alignments) {
        checkCublasLt(
          s.cublasLtMatmulPreferenceSetAttribute(pref, attr, new Uint32Array([bytes]), 4n),
          `cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_${name}_BYTES)`,
          s,
        );
      }
      const results = new Uint8Array(LT_HEURISTIC_RESULT_BYTES);
      const count = new Int32Array(1);
      const status = s.cublasLtMatmulAlgoGetHeuristic(
        this.#handle,
        desc,
        la,
        lb,
        lc,
        lc,
        pref,
        1,
        results,
        count,
      );
      // CUBLAS_STATUS_NOT_SUPPORTED (15), or success with no result: nothing fits this GEMM.
      if (status === 15 || (status === 0 && count[0] < 1)) {
        this.#unsupported.add(key);
        throw unsupported();
      }
      checkCublasLt(status, "cublasLtMatmulAlgoGetHeuristic", s);
      plan = { desc, layouts: [la, lb, lc], algo: results.slice(0, LT_ALGO_BYTES) };
    } catch (err) {
      for (const l of [la, lb, lc]) s.cublasLtMatrixLayoutDestroy(l);
      s.cublasLtMatmulDescDestroy(desc);
      throw err;
    } finally {
      s.cublasLtMatmulPreferenceDestroy(pref);
    }
    this.#plans.set(key, plan);
    return plan;
  }
}
