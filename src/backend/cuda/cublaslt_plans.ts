/**
 * A cuBLASLt handle that plans each GEMM shape once: the matmul descriptor (with its bias or
 * GELU+bias epilogue), the matrix layouts (with strided batches) and the heuristic's algorithm
 * are cached per shape and operand alignment, so a training step pays for the heuristic once per
 * distinct GEMM. The symbol table, enums and status check are in ffi/cublaslt.ts.
 * @module
 */

import {
  checkCublasLt,
  cublasLt,
  type CublasLtSymbols,
  LT_ALGO_BYTES,
  LT_DESC,
  LT_HEURISTIC_RESULT_BYTES,
  LT_LAYOUT,
  LT_PREF,
} from "../../../ffi/cublaslt.ts";

/** The largest power of two (at most 256, cuBLASLt's default requirement) dividing `address`. */
export function pointerAlignment(address: bigint): number {
  let a = 1;
  while (a < 256 && address % BigInt(a * 2) === 0n) a *= 2;
  return a;
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
