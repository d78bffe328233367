// cuBLAS/cuBLASLt bindings and the row-major -> column-major GEMM mapping, checked on the CPU:
// the FFI tables against the C prototypes, the enum values against the headers, and every GEMM the
// CUDA matmul would queue executed by a host cuBLAS (tests/_fake_cublas.ts) and compared with the
// CPU backend's matmul over many shapes, strides, transposes and batch layouts.

import assert from "node:assert/strict";
import type { BinaryOp, MatmulOptions, View } from "../src/backend/backend.ts";
import { CpuBackend, type CpuBuffer } from "../src/backend/cpu/mod.ts";
import { bf16BitsToF32, type DType, f32ToBf16Bits } from "../src/dtype.ts";
import {
  checkCublas,
  CUBLAS_COMPUTE,
  CUBLAS_GEMM_DEFAULT,
  CUBLAS_MATH,
  CUBLAS_OP,
  CUBLAS_STATUS_NAMES,
  CUBLAS_SYMBOLS,
  CUDA_R,
  loadCublas,
} from "../ffi/cublas.ts";
import {
  CUBLASLT_SYMBOLS,
  type CublasLtSymbols,
  loadCublasLt,
  LT_ALGO_BYTES,
  LT_DESC,
  LT_EPILOGUE,
  LT_HEURISTIC_RESULT_BYTES,
  LT_LAYOUT,
  LT_PREF,
} from "../ffi/cublaslt.ts";
import { CublasLtUnsupportedError, pointerAlignment } from "../src/backend/cuda/cublaslt_plans.ts";
import {
  CublasLayoutError,
  cublasLayoutNeeds,
  CublasMatmul,
  matrixStorage,
} from "../src/backend/cuda/matmul.ts";
import {
  fakeCublas,
  fakeCublasLt,
  FakeMemory,
  geluTanh,
  type RecordedGemm,
} from "./_fake_cublas.ts";
import { autocast, autocastDType } from "../src/autocast.ts";
import { memoryStats, tidy } from "../src/memory.ts";
import { linear, matmul } from "../src/ops/matmul.ts";
import { softmax } from "../src/ops/nn.ts";
import { transpose } from "../src/ops/movement.ts";
import { randn } from "../src/ops/creation.ts";
import { Tensor } from "../src/tensor.ts";
import { GPT2 } from "../src/models/gpt2/model.ts";
import { gpt2Config } from "../src/models/gpt2/config.ts";
import { pretrain } from "../src/train/pretrain.ts";
import type { BatchSource } from "../src/data/loader.ts";

// ---- FFI tables ----

// C parameter types as the headers spell them, and the Deno FFI type each must bind to. Host
// scalars (alpha, beta) and out-parameters are buffers; handles, descriptors, streams and device
// pointers are passed as integers (bigint).
const C_TO_FFI: Record<string, string> = {
  "int": "i32",
  "enum": "i32",
  "uint32": "u32",
  "long long": "i64",
  "int64_t": "i64",
  "uint64_t": "u64",
  "size_t": "usize",
  "handle": "usize",
  "device void*": "usize",
  "host void*": "buffer",
  "out*": "buffer",
};

// Transcribed from cublas_api.h / cublasLt.h (CUDA 13); "enum" is any C enum (an int).
const PROTOTYPES: Record<string, [string[], string]> = {
  cublasCreate_v2: [["out*"], "enum"],
  cublasDestroy_v2: [["handle"], "enum"],
  cublasGetVersion_v2: [["handle", "out*"], "enum"],
  cublasSetStream_v2: [["handle", "handle"], "enum"],
  cublasSetMathMode: [["handle", "enum"], "enum"],
  cublasGetStatusName: [["enum"], "const char*"],
  cublasGetStatusString: [["enum"], "const char*"],
  cublasGemmStridedBatchedEx: [[
    "handle",
    "enum",
    "enum",
    "int",
    "int",
    "int",
    "host void*",
    "device void*",
    "enum",
    "int",
    "long long",
    "device void*",
    "enum",
    "int",
    "long long",
    "host void*",
    "device void*",
    "enum",
    "int",
    "long long",
    "int",
    "enum",
    "enum",
  ], "enum"],
  cublasLtCreate: [["out*"], "enum"],
  cublasLtDestroy: [["handle"], "enum"],
  cublasLtGetVersion: [[], "size_t"],
  cublasLtGetStatusName: [["enum"], "const char*"],
  cublasLtGetStatusString: [["enum"], "const char*"],
  cublasLtMatmulDescCreate: [["out*", "enum", "enum"], "enum"],
  cublasLtMatmulDescDestroy: [["handle"], "enum"],
  cublasLtMatmulDescSetAttribute: [["handle", "enum", "host void*", "size_t"], "enum"],
  cublasLtMatrixLayoutCreate: [["out*", "enum", "uint64_t", "uint64_t", "int64_t"], "enum"],
  cublasLtMatrixLayoutDestroy: [["handle"], "enum"],
  cublasLtMatrixLayoutSetAttribute: [["handle", "enum", "host void*", "size_t"], "enum"],
  cublasLtMatmulPreferenceCreate: [["out*"], "enum"],
  cublasLtMatmulPreferenceDestroy: [["handle"], "enum"],
  cublasLtMatmulPreferenceSetAttribute: [["handle", "enum", "host void*", "size_t"], "enum"],
  cublasLtMatmulAlgoGetHeuristic: [[
    "handle",
    "handle",
    "handle",
    "handle",
    "handle",
    "handle",
    "handle",
    "int",
    "out*",
    "out*",
  ], "enum"],
  cublasLtMatmul: [[
    "handle",
    "handle",
    "host void*",
    "device void*",
    "handle",
    "device void*",
    "handle",
    "host void*",
    "device void*",
    "handle",
    "device void*",
    "handle",
    "host void*",
    "device void*",
    "size_t",
    "handle",
  ], "enum"],
};

Deno.test("cuBLAS and cuBLASLt symbol tables match the C prototypes", () => {
  const tables = { ...CUBLAS_SYMBOLS, ...CUBLASLT_SYMBOLS } as Record<
    string,
    { parameters: readonly string[]; result: string }
  >;
  assert.deepEqual(Object.keys(tables).sort(), Object.keys(PROTOTYPES).sort());
  for (const [name, [params, result]] of Object.entries(PROTOTYPES)) {
    assert.deepEqual(tables[name].parameters, params.map((p) => C_TO_FFI[p]), name);
    assert.equal(
      tables[name].result,
      result === "const char*" ? "pointer" : C_TO_FFI[result],
      name,
    );
  }
});

Deno.test("the enum values are the ones the CUDA 13 headers define", () => {
  // cublas_api.h: typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2, ...}
  assert.deepEqual(CUBLAS_OP, { N: 0, T: 1 });
  // library_types.h (this machine's /usr/local/cuda-13.0/include): CUDA_R_32F = 0, CUDA_R_16BF = 14
  assert.deepEqual(CUDA_R, { F32: 0, BF16: 14 });
  // cublas_api.h: CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77
  assert.deepEqual(CUBLAS_COMPUTE, { F32: 68, F32_FAST_TF32: 77 });
  // cublas_api.h: CUBLAS_GEMM_DEFAULT = -1
  assert.equal(CUBLAS_GEMM_DEFAULT, -1);
  // cublas_api.h: CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2, CUBLAS_TF32_TENSOR_OP_MATH = 3
  assert.deepEqual(CUBLAS_MATH, { DEFAULT: 0, PEDANTIC: 2, TF32_TENSOR_OP: 3 });
  // cublas_api.h: SUCCESS 0, NOT_INITIALIZED 1, ALLOC_FAILED 3, INVALID_VALUE 7, ARCH_MISMATCH 8,
  // MAPPING_ERROR 11, EXECUTION_FAILED 13, INTERNAL_ERROR 14, NOT_SUPPORTED 15, LICENSE_ERROR 16
  assert.equal(CUBLAS_STATUS_NAMES[7], "CUBLAS_STATUS_INVALID_VALUE");
  assert.equal(CUBLAS_STATUS_NAMES[15], "CUBLAS_STATUS_NOT_SUPPORTED");
  assert.equal(CUBLAS_STATUS_NAMES[13], "CUBLAS_STATUS_EXECUTION_FAILED");
  // cublasLt.h cublasLtMatmulDescAttributes_t: COMPUTE_TYPE 0, SCALE_TYPE 1, TRANSA 3, TRANSB 4,
  // EPILOGUE 7, BIAS_POINTER 8, BIAS_BATCH_STRIDE 10, BIAS_DATA_TYPE 26
  assert.deepEqual(LT_DESC, {
    COMPUTE_TYPE: 0,
    SCALE_TYPE: 1,
    TRANSA: 3,
    TRANSB: 4,
    EPILOGUE: 7,
    BIAS_POINTER: 8,
    BIAS_BATCH_STRIDE: 10,
    BIAS_DATA_TYPE: 26,
  });
  // cublasLtEpilogue_t: DEFAULT 1, BIAS 4, GELU 32, GELU_BIAS = GELU | BIAS = 36
  assert.deepEqual(LT_EPILOGUE, { DEFAULT: 1, BIAS: 4, GELU: 32, GELU_BIAS: 32 | 4 });
  // cublasLtMatrixLayoutAttribute_t: ORDER 1, BATCH_COUNT 5, STRIDED_BATCH_OFFSET 6
  assert.deepEqual(LT_LAYOUT, { ORDER: 1, BATCH_COUNT: 5, STRIDED_BATCH_OFFSET: 6 });
  // cublasLtMatmulPreferenceAttributes_t: MAX_WORKSPACE_BYTES 1
  assert.deepEqual(LT_PREF, {
    MAX_WORKSPACE_BYTES: 1,
    MIN_ALIGNMENT_A_BYTES: 5,
    MIN_ALIGNMENT_B_BYTES: 6,
    MIN_ALIGNMENT_C_BYTES: 7,
    MIN_ALIGNMENT_D_BYTES: 8,
  });
  // cublasLtMatmulAlgo_t { uint64_t data[8]; }; the heuristic result adds size_t, status, float, int[4]
  assert.equal(LT_ALGO_BYTES, 8 * 8);
  assert.equal(LT_HEURISTIC_RESULT_BYTES, 64 + 8 + 4 + 4 + 4 * 4);
});

Deno.test("checkCublas names the call and the status", () => {
  checkCublas(0, "cublasCreate_v2");
  assert.throws(
    () => checkCublas(7, "cublasGemmStridedBatchedEx"),
    /cuBLAS: cublasGemmStridedBatchedEx failed: CUBLAS_STATUS_INVALID_VALUE \(7\)/,
  );
});

function withEnv(name: string, value: string, fn: () => void): void {
  const prev = Deno.env.get(name);
  Deno.env.set(name, value);
  try {
    fn();
  } finally {
    if (prev === undefined) Deno.env.delete(name);
    else Deno.env.set(name, prev);
  }
}

Deno.test("a missing cuBLAS is an error naming every path tried and what provides it", () => {
  withEnv("DENOGRAD_CUBLAS", "/nonexistent/libcublas.so.13", () => {
    assert.throws(() => loadCublas(), (e: Error) => {
      assert.match(e.message, /cuBLAS: DENOGRAD_CUBLAS=\/nonexistent\/libcublas\.so\.13/);
      assert.match(e.message, /\/nonexistent\/libcublas\.so\.13: not found/);
      assert.match(e.message, /pip install nvidia-cublas/);
      return true;
    });
  });
  withEnv("DENOGRAD_CUBLASLT", "/nonexistent", () => {
    assert.throws(
      () => loadCublasLt(),
      /cuBLASLt: DENOGRAD_CUBLASLT=\/nonexistent could not be loaded/,
    );
  });
  let found: string | null = null;
  try {
    found = loadCublas().path;
  } catch (e) {
    const msg = (e as Error).message;
    assert.match(msg, /cuBLAS: no loadable library found/);
    for (
      const p of ["libcublas.so.13", "libcublas.so.12", "/usr/local/cuda/lib64/libcublas.so.13"]
    ) {
      assert.ok(msg.includes(p), `tried ${p}`);
    }
    assert.match(msg, /CUDA toolkit/);
    assert.match(msg, /pip install nvidia-cublas-cu12/);
    assert.match(msg, /DENOGRAD_CUBLAS/);
  }
  if (found !== null) console.log(`cuBLAS is installed here: ${found}`);
});

// ---- the GEMM mapping ----

Deno.test("matrixStorage picks cuBLAS layouts and refuses the inexpressible", () => {
  assert.deepEqual(matrixStorage(3, 4, 4, 1), { rowMajor: true, ld: 4 }); // contiguous
  assert.deepEqual(matrixStorage(3, 4, 7, 1), { rowMajor: true, ld: 7 }); // padded rows
  assert.deepEqual(matrixStorage(3, 4, 1, 3), { rowMajor: false, ld: 3 }); // a transposed view
  assert.deepEqual(matrixStorage(1, 4, 99, 1), { rowMajor: true, ld: 4 }); // one row: rs unused
  assert.deepEqual(matrixStorage(4, 1, 1, 99), { rowMajor: false, ld: 4 }); // one column
  assert.equal(matrixStorage(3, 4, 8, 2), null); // no unit stride
  assert.equal(matrixStorage(3, 4, 2, 1), null); // rows overlap (ld < cols)
  assert.equal(matrixStorage(3, 4, 0, 1), null); // broadcast rows
});

/** Deterministic numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

type Layout = "row" | "col" | "bad";
type BatchMode = "dense" | "reversed" | "broadcast";

/** A view of shape [...batch, rows, cols] with the requested layout over a fresh random buffer. */
function makeView(
  cpu: CpuBackend,
  dtype: DType,
  batch: number[],
  rows: number,
  cols: number,
  layout: Layout,
  mode: BatchMode,
  rand: () => number,
): View {
  const pad = rand() > 0 ? 2 : 0;
  const [rs, cs] = layout === "row"
    ? [cols + pad, 1]
    : layout === "col"
    ? [1, rows + pad]
    : [2 * cols + 1, 2];
  const span = (rows - 1) * rs + (cols - 1) * cs + 1;
  const gap = rand() > 0 ? 3 : 0;
  const bs = new Array<number>(batch.length).fill(0);
  const order = batch.map((_, d) => d);
  if (mode === "dense") order.reverse(); // innermost batch dim gets the smallest stride
  let step = span + gap;
  for (const d of order) {
    bs[d] = step;
    step *= batch[d];
  }
  if (mode === "broadcast") bs.forEach((_, d) => (bs[d] = d % 2 === 0 ? 0 : bs[d]));
  const offset = Math.floor((rand() + 1) * 2);
  let last = offset + span - 1;
  batch.forEach((n, d) => (last += (n - 1) * bs[d]));
  const count = last + 1;
  const buf = cpu.alloc(count * 4) as CpuBuffer;
  for (let i = 0; i < count; i++) {
    const v = Math.round(rand() * 64) / 64; // exact in bf16 as well
    if (dtype === "bf16") buf.u16[i] = f32ToBf16Bits(v);
    else buf.f32[i] = v;
  }
  return { buffer: buf, dtype, shape: [...batch, rows, cols], strides: [...bs, rs, cs], offset };
}

/** An f32 view with the same layout and (widened) values, for the CPU reference. */
function widened(cpu: CpuBackend, v: View): View {
  const src = v.buffer as CpuBuffer;
  const n = v.dtype === "bf16" ? src.u16.length : src.f32.length;
  const buf = cpu.alloc(n * 4) as CpuBuffer;
  for (let i = 0; i < n; i++) {
    buf.f32[i] = v.dtype === "bf16" ? bf16BitsToF32(src.u16[i]) : src.f32[i];
  }
  return { ...v, buffer: buf, dtype: "f32" };
}

interface Case {
  batch: number[];
  M: number;
  N: number;
  K: number;
  options: MatmulOptions;
  layouts: [Layout, Layout, Layout];
  modes: [BatchMode, BatchMode, BatchMode];
  dtypes: [DType, DType];
}

/** Runs one case through CublasMatmul on the fake cuBLAS; compares with the CPU backend. */
function runCase(c: Case, seed: number, log: RecordedGemm[]): "ran" | "refused" {
  const cpu = new CpuBackend();
  const rand = rng(seed);
  const { M, N, K, options } = c;
  const [ab, outType] = c.dtypes;
  const a = options.transA
    ? makeView(cpu, ab, c.batch, K, M, c.layouts[0], c.modes[0], rand)
    : makeView(cpu, ab, c.batch, M, K, c.layouts[0], c.modes[0], rand);
  const b = options.transB
    ? makeView(cpu, ab, c.batch, N, K, c.layouts[1], c.modes[1], rand)
    : makeView(cpu, ab, c.batch, K, N, c.layouts[1], c.modes[1], rand);
  const out = makeView(cpu, outType, c.batch, M, N, c.layouts[2], c.modes[2], rand);

  const mem = new FakeMemory();
  const blas = new CublasMatmul(0x5eedn, mem.address, { symbols: { blas: fakeCublas(mem, log) } });
  const needs = cublasLayoutNeeds(a, b, out, options);
  const bad = (i: number, rows: number, cols: number) =>
    (c.layouts[i] === "bad" && rows > 1 && cols > 1) ||
    (i === 2 && c.modes[2] === "broadcast" && c.batch.some((n, d) => d % 2 === 0 && n > 1));
  const expected = {
    a: bad(0, a.shape.at(-2)!, a.shape.at(-1)!),
    b: bad(1, b.shape.at(-2)!, b.shape.at(-1)!),
    out: bad(2, M, N),
  };
  assert.deepEqual(needs, expected, JSON.stringify(c));
  if (needs.a || needs.b || needs.out) {
    assert.throws(() => blas.matmul(a, b, out, options), CublasLayoutError);
    return "refused";
  }

  // CPU reference on f32 copies with the same layouts (bf16 values widen exactly).
  const [ra, rb, rout] = [widened(cpu, a), widened(cpu, b), widened(cpu, out)];
  cpu.matmul(ra, rb, rout, options);
  blas.matmul(a, b, out, options);
  blas.dispose();

  // The whole buffer: elements outside the view (padding, gaps) must be untouched.
  const got = out.buffer as CpuBuffer, want = rout.buffer as CpuBuffer;
  const n = outType === "bf16" ? got.u16.length : got.f32.length;
  for (let i = 0; i < n; i++) {
    const g = outType === "bf16" ? bf16BitsToF32(got.u16[i]) : got.f32[i];
    const w = want.f32[i];
    const tol = outType === "bf16" ? Math.abs(w) * 2 ** -8 + 1e-6 : 1e-5;
    assert.ok(Math.abs(g - w) <= tol, `${JSON.stringify(c)}: element ${i}: got ${g}, want ${w}`);
  }
  return "ran";
}

Deno.test("CublasMatmul's cuBLAS calls compute the CPU backend's matmul for every layout", () => {
  const rand = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor((rand() + 1) / 2 * xs.length)];
  let ran = 0, refused = 0;
  const log: RecordedGemm[] = [];
  for (let i = 0; i < 1000; i++) {
    const rank = pick([0, 0, 1, 2]);
    const batch = Array.from({ length: rank }, () => pick([1, 2, 3]));
    const dims = () => pick([1, 2, 3, 5]);
    const layouts = Array.from(
      { length: 3 },
      () => pick(["row", "row", "col", "bad"] as Layout[]),
    ) as [
      Layout,
      Layout,
      Layout,
    ];
    const modes = Array.from(
      { length: 3 },
      () => pick(["dense", "dense", "reversed", "broadcast"] as BatchMode[]),
    ) as [
      BatchMode,
      BatchMode,
      BatchMode,
    ];
    const dtypes = pick([["f32", "f32"], ["bf16", "bf16"], ["bf16", "f32"]] as [DType, DType][]);
    const options: MatmulOptions = {
      transA: rand() > 0,
      transB: rand() > 0,
      ...(rand() > 0.3 ? { alpha: 0.5, beta: -1.25 } : {}),
    };
    const c: Case = { batch, M: dims(), N: dims(), K: dims(), options, layouts, modes, dtypes };
    if (runCase(c, i, log) === "ran") ran++;
    else refused++;
  }
  assert.ok(ran > 500 && refused > 100, `ran ${ran}, refused ${refused}`);
  // The cases exercised both operand orders, both ops and real strided batches.
  assert.ok(log.some((g) => g.transa === 0) && log.some((g) => g.transa === 1));
  assert.ok(log.some((g) => g.transb === 0) && log.some((g) => g.transb === 1));
  assert.ok(log.some((g) => g.batch > 1));
});

Deno.test("x @ W with a shared W folds the batch into one GEMM's rows", () => {
  const log: RecordedGemm[] = [];
  const c: Case = {
    batch: [2, 3],
    M: 4,
    N: 5,
    K: 6,
    options: { transA: false, transB: false },
    layouts: ["row", "row", "row"],
    modes: ["dense", "broadcast", "dense"],
    dtypes: ["f32", "f32"],
  };
  // Make every batch dim of b broadcast and a/out gap-free so the rows coalesce.
  const cpu = new CpuBackend();
  const rand = rng(3);
  const a = makeView(cpu, "f32", [], 24, 6, "row", "dense", rand);
  const b = makeView(cpu, "f32", [], 6, 5, "row", "dense", rand);
  const out = cpu.alloc(24 * 5 * 4) as CpuBuffer;
  const A: View = {
    ...a,
    shape: [2, 3, 4, 6],
    strides: [12 * a.strides[0], 4 * a.strides[0], a.strides[0], 1],
  };
  const B: View = { ...b, shape: [2, 3, 6, 5], strides: [0, 0, b.strides[0], 1] };
  const O: View = {
    buffer: out,
    dtype: "f32",
    shape: [2, 3, 4, 5],
    strides: [60, 20, 5, 1],
    offset: 0,
  };
  const mem = new FakeMemory();
  const blas = new CublasMatmul(1n, mem.address, { symbols: { blas: fakeCublas(mem, log) } });
  blas.matmul(A, B, O, c.options);
  assert.equal(log.length, 1);
  assert.deepEqual([log[0].m, log[0].n, log[0].k, log[0].batch], [5, 24, 6, 1]);
  const ref = cpu.alloc(24 * 5 * 4) as CpuBuffer;
  cpu.matmul(A, B, { ...O, buffer: ref }, c.options);
  for (let i = 0; i < 120; i++) assert.ok(Math.abs(out.f32[i] - ref.f32[i]) < 1e-5);
});

Deno.test("CublasMatmul validates dtypes and refuses K = 0", () => {
  const cpu = new CpuBackend();
  const mem = new FakeMemory();
  const blas = new CublasMatmul(1n, mem.address, { symbols: { blas: fakeCublas(mem) } });
  const v = (dtype: DType, shape: number[]): View => ({
    buffer: cpu.alloc(64),
    dtype,
    shape,
    strides: [shape[1], 1],
    offset: 0,
  });
  const o = { transA: false, transB: false };
  assert.throws(
    () => blas.matmul(v("f32", [2, 2]), v("f32", [2, 2]), v("bf16", [2, 2]), o),
    /f32 inputs need an f32 out/,
  );
  assert.throws(
    () => blas.matmul(v("i32", [2, 2]), v("i32", [2, 2]), v("f32", [2, 2]), o),
    /a must be f32 or bf16, got i32/,
  );
  assert.throws(
    () => blas.matmul(v("f32", [2, 0]), v("f32", [0, 2]), v("f32", [2, 2]), o),
    CublasLayoutError,
  );
  blas.matmul(v("f32", [0, 3]), v("f32", [3, 2]), v("f32", [0, 2]), o); // nothing to do
});

Deno.test("CublasMatmul.linear's cuBLASLt call adds the bias (and GELU) like x @ W^T + b", () => {
  const rand = rng(11);
  for (
    const [dtype, gelu] of [["f32", false], ["f32", true], ["bf16", false], ["bf16", true]] as const
  ) {
    const cpu = new CpuBackend();
    const [rows, K, N] = [7, 5, 3];
    const x = makeView(cpu, dtype, [], rows, K, "row", "dense", rand);
    const w = makeView(cpu, dtype, [], N, K, "row", "dense", rand);
    const bias = makeView(cpu, dtype, [], 1, N, "row", "dense", rand);
    const biasVec: View = { ...bias, shape: [N], strides: [1] };
    const out = makeView(cpu, dtype, [], rows, N, "row", "dense", rand);
    const mem = new FakeMemory();
    const blas = new CublasMatmul(1n, mem.address, { symbols: { lt: fakeCublasLt(mem) } });
    blas.linear(x, w, biasVec, out, { gelu });
    blas.linear(x, w, biasVec, out, { gelu }); // second call reuses the cached plan
    blas.dispose();
    // Reference: CPU matmul of the widened operands with W transposed by strides.
    const [rx, rw, rout] = [widened(cpu, x), widened(cpu, w), widened(cpu, out)];
    const wT: View = { ...rw, shape: [K, N], strides: [rw.strides[1], rw.strides[0]] };
    cpu.matmul(rx, wT, rout, { transA: false, transB: false });
    const got = out.buffer as CpuBuffer, want = (rout.buffer as CpuBuffer).f32;
    const bb = widened(cpu, bias).buffer as CpuBuffer;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < N; j++) {
        const at = out.offset + i * out.strides[0] + j;
        let w0 = want[at] + bb.f32[bias.offset + j];
        if (gelu) w0 = geluTanh(w0);
        const g = dtype === "bf16" ? bf16BitsToF32(got.u16[at]) : got.f32[at];
        const tol = dtype === "bf16" ? Math.abs(w0) * 2 ** -8 + 1e-6 : 1e-5;
        assert.ok(Math.abs(g - w0) <= tol, `${dtype} gelu=${gelu} (${i},${j}): ${g} vs ${w0}`);
      }
    }
  }
});

Deno.test("cuBLASLt is told each operand's alignment, so views at an offset get an algorithm", () => {
  assert.deepEqual([0n, 4n, 6n, 512n, 0x7f0000000104n].map(pointerAlignment), [256, 4, 2, 256, 4]);
  const cpu = new CpuBackend();
  const [rows, K, N] = [3, 4, 2];
  const vals = (n: number) => Array.from({ length: n }, (_, i) => ((i * 7) % 5) - 2);
  // Every operand one element past a 256-byte boundary: 4-byte aligned.
  const at = (shape: number[], values: number[]): View => {
    const buf = cpu.alloc((values.length + 1) * 4) as CpuBuffer;
    buf.f32.set(values, 1);
    const strides = shape.length === 2 ? [shape[1], 1] : [1];
    return { buffer: buf, dtype: "f32", shape, strides, offset: 1 };
  };
  const [xv, wv, bv] = [vals(rows * K), vals(N * K).map((v) => v + 1), [0.5, -1]];
  const x = at([rows, K], xv), w = at([N, K], wv), bias = at([N], bv);
  const out = at([rows, N], new Array(rows * N).fill(0));
  const mem = new FakeMemory();
  const blas = new CublasMatmul(1n, mem.address, { symbols: { lt: fakeCublasLt(mem) } });
  blas.linear(x, w, bias, out);
  blas.dispose();
  const got = (out.buffer as CpuBuffer).f32.slice(1);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < N; j++) {
      let want = bv[j];
      for (let q = 0; q < K; q++) want += xv[i * K + q] * wv[j * K + q];
      assert.equal(got[i * N + j], want, `(${i},${j})`);
    }
  }
});

Deno.test("a GEMM cuBLASLt has no algorithm for is a CublasLtUnsupportedError, asked once", () => {
  const cpu = new CpuBackend();
  const f32 = (shape: number[], values: number[]): View => {
    const buf = cpu.alloc(values.length * 4) as CpuBuffer;
    buf.f32.set(values);
    return {
      buffer: buf,
      dtype: "f32",
      shape,
      strides: shape.length === 2 ? [shape[1], 1] : [1],
      offset: 0,
    };
  };
  const mem = new FakeMemory();
  const lt = fakeCublasLt(mem);
  let asked = 0;
  const refusing = {
    ...lt,
    cublasLtMatmulAlgoGetHeuristic: () => (asked++, 15), // CUBLAS_STATUS_NOT_SUPPORTED
  } as unknown as CublasLtSymbols;
  const blas = new CublasMatmul(1n, mem.address, { symbols: { lt: refusing } });
  const [x, w, b, out] = [
    f32([1, 2], [1, 2]),
    f32([1, 2], [3, 4]),
    f32([1], [5]),
    f32([1, 1], [0]),
  ];
  for (let i = 0; i < 2; i++) {
    assert.throws(() => blas.linear(x, w, b, out), (err: Error) => {
      assert.ok(err instanceof CublasLtUnsupportedError, String(err));
      assert.match(err.message, /no algorithm for m=1 n=1 k=2 epilogue=4/);
      return true;
    });
  }
  assert.equal(asked, 1, "the refusal is remembered");
  blas.dispose();
});

// ---- autocast ----

/**
 * The CPU backend plus bf16 matmul/fill/linearBias, computed in f32 on widened copies and rounded
 * to bf16 (what cuBLAS does with f32 accumulation): enough of a bf16-capable device to run
 * autocast's casts, forward and backward on the CPU.
 */
class EmulatedBf16Backend extends CpuBackend {
  override readonly device = "emulated-bf16:0";
  fused = 0;

  override matmul(a: View, b: View, out: View, o: MatmulOptions): void {
    if (a.dtype === "f32" && out.dtype === "f32") return super.matmul(a, b, out, o);
    const rout = widened(this, out);
    super.matmul(widened(this, a), widened(this, b), rout, o);
    this.#narrow(rout, out);
  }

  override binary(op: BinaryOp, a: View, b: View, out: View): void {
    if (a.dtype !== "bf16" && b.dtype !== "bf16" && out.dtype !== "bf16") {
      return super.binary(op, a, b, out);
    }
    const rout = widened(this, out);
    super.binary(op, widened(this, a), widened(this, b), rout);
    this.#narrow(rout, out);
  }

  override fill(out: View, value: number): void {
    if (out.dtype !== "bf16") return super.fill(out, value);
    const bits = (out.buffer as CpuBuffer).u16;
    bits.fill(f32ToBf16Bits(value), out.offset, out.offset + out.shape.reduce((p, d) => p * d, 1));
  }

  linearBias(x: View, weight: View, bias: View, out: View): void {
    this.fused++;
    const rout = widened(this, out);
    const rw = widened(this, weight);
    const wT: View = {
      ...rw,
      shape: [rw.shape[1], rw.shape[0]],
      strides: [rw.strides[1], rw.strides[0]],
    };
    super.matmul(widened(this, x), wT, rout, { transA: false, transB: false });
    const rb = widened(this, bias);
    super.binary("add", rout, { ...rb, shape: rout.shape, strides: [0, rb.strides[0]] }, rout);
    this.#narrow(rout, out);
  }

  /** Rounds an f32 copy back into a bf16 (or f32) view's buffer. */
  #narrow(src: View, dst: View): void {
    const s = (src.buffer as CpuBuffer).f32, d = dst.buffer as CpuBuffer;
    if (dst.dtype === "f32") d.f32.set(s.subarray(0, d.f32.length));
    else for (let i = 0; i < d.u16.length; i++) d.u16[i] = f32ToBf16Bits(s[i]);
  }
}

function onBackend(be: CpuBackend, data: number[], shape: number[], requiresGrad = false): Tensor {
  const t = Tensor.empty(shape, "f32", be);
  be.write(t._view().buffer, new Float32Array(data));
  t.requiresGrad = requiresGrad;
  return t;
}

const bf16 = (x: number) => bf16BitsToF32(f32ToBf16Bits(x));

Deno.test("autocast casts linear and matmul to bf16 and returns f32 gradients to the masters", () => {
  for (const fusedBias of [false, true]) {
    const be = new EmulatedBf16Backend();
    if (!fusedBias) (be as { linearBias?: unknown }).linearBias = undefined;
    const K = 64, N = 2;
    // 1 + 2^-10 rounds to 1 in bf16: the result tells whether the weight was cast.
    const w = onBackend(be, new Array(N * K).fill(1 + 2 ** -10), [N, K], true);
    const bias = onBackend(be, [0.5, -0.25], [N], true);
    const x = onBackend(be, new Array(3 * K).fill(1), [3, K]);
    const before = memoryStats().liveBytes;
    tidy(() => {
      const y = autocast("bf16", () => linear(x, w, bias)); // (3, N)
      assert.equal(y.dtype, "bf16");
      assert.deepEqual(y.toArray(), [[64.5, 63.75], [64.5, 63.75], [64.5, 63.75]]);
      const z = autocast("bf16", () => matmul(x, transpose(w, 0, 1))); // (3, N)
      assert.equal(z.dtype, "bf16");
      assert.equal((z.toArray() as number[][])[0][0], 64);
      // Outside autocast the same product is exact f32.
      assert.equal((matmul(x, transpose(w, 0, 1)).toArray() as number[][])[0][0], 64.0625);
      // Softmax and the loss run in f32 on bf16 input.
      const p = softmax(y);
      assert.equal(p.dtype, "f32");
      y.cast("f32").sum().backward(onBackend(be, [1], []));
    });
    assert.equal(be.fused, fusedBias ? 1 : 0);
    assert.equal(w.dtype, "f32");
    assert.equal(w.grad!.dtype, "f32");
    assert.equal(bias.grad!.dtype, "f32");
    // d(sum y)/dW[n, k] = sum over rows of x = 3; d/dbias = 3 rows.
    assert.deepEqual(w.grad!.toArray(), new Array(N).fill(new Array(K).fill(3)));
    assert.deepEqual(bias.grad!.toArray(), [3, 3]);
    w.zeroGrad();
    bias.zeroGrad();
    assert.equal(memoryStats().liveBytes, before, "the casts and temporaries were freed");
    for (const t of [w, bias, x]) t.dispose();
  }
});

Deno.test("autocast's bf16 gradients match a bf16-rounded reference", () => {
  const be = new EmulatedBf16Backend();
  const rand = rng(5);
  const [R, K, N] = [4, 6, 3];
  const xs = Array.from({ length: R * K }, () => rand());
  const ws = Array.from({ length: N * K }, () => rand());
  const x = onBackend(be, xs, [R, K], true);
  const w = onBackend(be, ws, [N, K], true);
  const gs = Array.from({ length: R * N }, () => rand());
  const g = onBackend(be, gs, [R, N]);
  autocast("bf16", () => linear(x, w)).backward(g.cast("bf16"));
  // dx = bf16(bf16(g) @ bf16(W)), dW = bf16(bf16(g)^T @ bf16(x)): f32 sums of bf16 values.
  const dx = x.grad!.toArray() as number[][], dw = w.grad!.toArray() as number[][];
  for (let i = 0; i < R; i++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += bf16(gs[i * N + n]) * bf16(ws[n * K + k]);
      assert.ok(Math.abs(dx[i][k] - bf16(s)) <= Math.abs(s) * 2 ** -8 + 1e-7, `dx ${i},${k}`);
    }
  }
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let i = 0; i < R; i++) s += bf16(gs[i * N + n]) * bf16(xs[i * K + k]);
      assert.ok(Math.abs(dw[n][k] - bf16(s)) <= Math.abs(s) * 2 ** -8 + 1e-7, `dw ${n},${k}`);
    }
  }
});

Deno.test("autocast is a no-op on the CPU and nests", () => {
  const w = randn([5, 4], { requiresGrad: true });
  const b = randn([5], { requiresGrad: true });
  const x = randn([3, 4]);
  const plain = linear(x, w, b);
  const cast = autocast("bf16", () => linear(x, w, b));
  assert.equal(cast.dtype, "f32");
  assert.deepEqual(cast.toArray(), plain.toArray());
  assert.equal(autocast("bf16", () => matmul(x, transpose(w, 0, 1))).dtype, "f32");
  assert.equal(autocastDType(), null);
  autocast("bf16", () => {
    assert.equal(autocastDType(), "bf16");
    autocast(null, () => assert.equal(autocastDType(), null));
    assert.equal(autocastDType(), "bf16");
  });
  assert.throws(() => autocast("f16" as "bf16", () => 0), /autocast: dtype must be "bf16" or null/);
  for (const t of [w, b, x, plain, cast]) t.dispose();
});

Deno.test("pretrain refuses bf16 precision on the CPU", async () => {
  const model = new GPT2(gpt2Config("tiny"));
  const source = {
    next: () => {
      throw new Error("not reached");
    },
    loadState: () => {},
    state: () => ({ epoch: 0, batch: 0 }),
    batchesPerEpoch: 1,
    tokensPerBatch: 8,
  } as unknown as BatchSource;
  await assert.rejects(
    pretrain({ model, train: source, steps: 1, precision: "bf16", progress: false }),
    /pretrain: precision "bf16" needs a CUDA model/,
  );
  model.dispose?.();
});

Deno.test("TF32 is opt-in and applies to f32 GEMMs only", () => {
  const cpu = new CpuBackend();
  const rand = rng(9);
  for (const tf32 of [false, true]) {
    for (const dtype of ["f32", "bf16"] as const) {
      const log: RecordedGemm[] = [];
      const mem = new FakeMemory();
      const blas = new CublasMatmul(1n, mem.address, {
        tf32,
        symbols: { blas: fakeCublas(mem, log) },
      });
      const a = makeView(cpu, dtype, [], 3, 4, "row", "dense", rand);
      const b = makeView(cpu, dtype, [], 4, 2, "row", "dense", rand);
      const out = makeView(cpu, "f32", [], 3, 2, "row", "dense", rand);
      blas.matmul(a, b, out, { transA: false, transB: false });
      // cublasComputeType_t: CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77.
      assert.equal(log[0].computeType, tf32 && dtype === "f32" ? 77 : 68, `${tf32} ${dtype}`);
    }
  }
});
