// Host stand-ins for cuBLAS and cuBLASLt: they take the exact positional arguments the real
// libraries get and compute what the cuBLAS documentation says those arguments mean, column-major,
// on CPU buffers. "Device addresses" are fake: each CPU buffer gets a 4 GiB-aligned base, so an
// address decodes back to (buffer, byte). Used by tests/cublas_test.ts.

import type { Buffer, View } from "../src/backend/backend.ts";
import type { CpuBuffer } from "../src/backend/cpu/mod.ts";
import { bf16BitsToF32, f32ToBf16Bits } from "../src/dtype.ts";
import type { CublasSymbols } from "../ffi/cublas.ts";
import type { CublasLtSymbols } from "../ffi/cublaslt.ts";

// The numbers below are the documented enum values, written out independently of ffi/*.ts.
const OP_N = 0, OP_T = 1; // cublasOperation_t
const R_32F = 0, R_16BF = 14; // cudaDataType_t
const COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77; // cublasComputeType_t
const INVALID_VALUE = 7, NOT_SUPPORTED = 15; // cublasStatus_t

/** What the fake libraries need from "device memory": element reads and writes at an address. */
export interface GemmMemory {
  /** Reads element `i` (in `type` units: CUDA_R_32F or CUDA_R_16BF) past `addr`. */
  read(addr: bigint, type: number, i: number): number;
  /** Writes element `i` past `addr`, rounding to bf16 (nearest even) for bf16. */
  write(addr: bigint, type: number, i: number, value: number): void;
}

/** Fake device memory over CPU buffers. */
export class FakeMemory implements GemmMemory {
  readonly #bases = new Map<Buffer, bigint>();
  readonly #buffers: CpuBuffer[] = [];

  /** The fake address of element `v.offset` of the view's buffer. */
  address = (v: View): bigint => {
    let base = this.#bases.get(v.buffer);
    if (base === undefined) {
      this.#buffers.push(v.buffer as CpuBuffer);
      base = BigInt(this.#buffers.length) << 32n;
      this.#bases.set(v.buffer, base);
    }
    return base + BigInt(v.offset * (v.dtype === "bf16" ? 2 : 4));
  };

  /** Reads element `i` (in `type` units) past `addr`. */
  read(addr: bigint, type: number, i: number): number {
    const [buf, byte] = this.#at(addr, type, i);
    return type === R_16BF ? bf16BitsToF32(buf.u16[byte / 2]) : buf.f32[byte / 4];
  }

  /** Writes element `i` past `addr`, rounding to bf16 (nearest even) for bf16. */
  write(addr: bigint, type: number, i: number, value: number): void {
    const [buf, byte] = this.#at(addr, type, i);
    if (type === R_16BF) buf.u16[byte / 2] = f32ToBf16Bits(value);
    else buf.f32[byte / 4] = value;
  }

  #at(addr: bigint, type: number, i: number): [CpuBuffer, number] {
    if (type !== R_32F && type !== R_16BF) throw new Error(`fake cuBLAS: data type ${type}`);
    const size = type === R_16BF ? 2 : 4;
    const buf = this.#buffers[Number(addr >> 32n) - 1];
    const byte = Number(addr & 0xffffffffn) + i * size;
    if (!buf || byte % size !== 0 || byte < 0 || byte + size > buf.data.byteLength) {
      throw new Error(`fake cuBLAS: address ${addr.toString(16)} + ${i} is outside every buffer`);
    }
    return [buf, byte];
  }
}

/** A column-major GEMM exactly as cuBLAS documents it; returns a cublasStatus_t. */
function columnMajorGemm(
  mem: GemmMemory,
  transa: number,
  transb: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: bigint,
  aType: number,
  lda: number,
  strideA: number,
  b: bigint,
  bType: number,
  ldb: number,
  strideB: number,
  beta: number,
  c: bigint,
  cType: number,
  ldc: number,
  strideC: number,
  batch: number,
  epilogue: (i: number, v: number) => number = (_i, v) => v,
): number {
  // cuBLAS's own argument checks (cublas<t>gemm: "if m, n, k < 0 or lda < max(1, ...)").
  if ([transa, transb].some((t) => t !== OP_N && t !== OP_T)) return INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0 || batch < 0) return INVALID_VALUE;
  if (lda < Math.max(1, transa === OP_N ? m : k)) return INVALID_VALUE;
  if (ldb < Math.max(1, transb === OP_N ? k : n)) return INVALID_VALUE;
  if (ldc < Math.max(1, m)) return INVALID_VALUE;
  if (aType !== bType || (aType === R_32F && cType !== R_32F)) return NOT_SUPPORTED;
  for (let p = 0; p < batch; p++) {
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < m; i++) {
        let acc = 0;
        for (let l = 0; l < k; l++) {
          const av = mem.read(
            a,
            aType,
            p * strideA + (transa === OP_N ? i + l * lda : l + i * lda),
          );
          const bv = mem.read(
            b,
            bType,
            p * strideB + (transb === OP_N ? l + j * ldb : j + l * ldb),
          );
          acc = Math.fround(acc + Math.fround(av * bv));
        }
        const at = p * strideC + i + j * ldc;
        // beta = 0 means C is not read (it may hold NaN), as BLAS specifies.
        const v = alpha * acc + (beta === 0 ? 0 : beta * mem.read(c, cType, at));
        mem.write(c, cType, at, epilogue(i, v));
      }
    }
  }
  return 0;
}

/** Every strided-batched GEMM the fake cuBLAS ran, as its named arguments. */
export interface RecordedGemm {
  transa: number;
  transb: number;
  m: number;
  n: number;
  k: number;
  lda: number;
  ldb: number;
  ldc: number;
  batch: number;
  computeType: number;
}

/** cuBLAS's symbol table implemented on the host. */
export function fakeCublas(mem: GemmMemory, log: RecordedGemm[] = []): CublasSymbols {
  const handle = 0xb1a5n;
  const fake = {
    cublasCreate_v2: (out: BigUint64Array) => ((out[0] = handle), 0),
    cublasDestroy_v2: (h: bigint) => (h === handle ? 0 : INVALID_VALUE),
    cublasGetVersion_v2: (_h: bigint, v: Int32Array) => ((v[0] = 130400), 0),
    cublasSetStream_v2: (h: bigint, _s: bigint) => (h === handle ? 0 : INVALID_VALUE),
    // cublasMath_t: DEFAULT 0, TF32_TENSOR_OP 3 are the modes CublasMatmul may set.
    cublasSetMathMode: (h: bigint, mode: number) =>
      h === handle && (mode === 0 || mode === 3) ? 0 : INVALID_VALUE,
    cublasGetStatusName: () => null,
    cublasGetStatusString: () => null,
    cublasGemmStridedBatchedEx: (
      h: bigint,
      transa: number,
      transb: number,
      m: number,
      n: number,
      k: number,
      alpha: Float32Array,
      a: bigint,
      aType: number,
      lda: number,
      strideA: bigint,
      b: bigint,
      bType: number,
      ldb: number,
      strideB: bigint,
      beta: Float32Array,
      c: bigint,
      cType: number,
      ldc: number,
      strideC: bigint,
      batch: number,
      computeType: number,
      algo: number,
    ) => {
      if (h !== handle || algo !== -1) return INVALID_VALUE;
      if (computeType !== COMPUTE_32F && computeType !== COMPUTE_32F_FAST_TF32) {
        return NOT_SUPPORTED;
      }
      if (computeType === COMPUTE_32F_FAST_TF32 && aType !== R_32F) return NOT_SUPPORTED;
      log.push({ transa, transb, m, n, k, lda, ldb, ldc, batch, computeType });
      return columnMajorGemm(
        mem,
        transa,
        transb,
        m,
        n,
        k,
        alpha[0],
        a,
        aType,
        lda,
        Number(strideA),
        b,
        bType,
        ldb,
        Number(strideB),
        beta[0],
        c,
        cType,
        ldc,
        Number(strideC),
        batch,
      );
    },
  };
  return fake as unknown as CublasSymbols;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
/** GELU, tanh form (what CUBLASLT_EPILOGUE_GELU computes, and GPT-2's). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

interface Layout {
  type: number;
  rows: number;
  cols: number;
  ld: number;
  batch: number;
  stride: number;
}

/** The four min-alignment preferences (A, B, C, D) packed as log2 bytes, one byte each. */
function alignmentCode(p: Record<number, number>): number {
  return [5, 6, 7, 8].reduce((acc, attr, i) => acc | (Math.log2(p[attr]) << (8 * i)), 0) >>> 0;
}

/**
 * cuBLASLt's symbol table on the host: descriptors hold their attributes, the heuristic returns
 * one algorithm, and cublasLtMatmul computes D = epilogue(alpha op(A) op(B) + beta C + bias).
 */
export function fakeCublasLt(mem: GemmMemory): CublasLtSymbols {
  const objects = new Map<bigint, Record<string, number | bigint> | Layout>();
  let next = 0x100n;
  const create = (o: Record<string, number | bigint> | Layout, out: BigUint64Array) => {
    out[0] = ++next;
    objects.set(out[0], o);
    return 0;
  };
  // Expected value sizes per attribute (cublasLt.h comments); a wrong size is INVALID_VALUE.
  const descSizes: Record<number, number> = { 0: 4, 1: 4, 3: 4, 4: 4, 7: 4, 8: 8, 10: 8, 26: 4 };
  const value = (buf: ArrayBufferView, size: number) =>
    size === 8
      ? new BigUint64Array(buf.buffer, buf.byteOffset, 1)[0]
      : new Int32Array(buf.buffer, buf.byteOffset, 1)[0];
  const fake = {
    cublasLtCreate: (out: BigUint64Array) => ((out[0] = 0x17n), 0),
    cublasLtDestroy: () => 0,
    cublasLtGetVersion: () => 130400n,
    cublasLtGetStatusName: () => null,
    cublasLtGetStatusString: () => null,
    cublasLtMatmulDescCreate: (out: BigUint64Array, compute: number, scale: number) =>
      create({ 0: compute, 1: scale, 3: OP_N, 4: OP_N, 7: 1, 8: 0n, 26: -1 }, out),
    cublasLtMatmulDescDestroy: (d: bigint) => (objects.delete(d) ? 0 : INVALID_VALUE),
    cublasLtMatmulDescSetAttribute: (
      d: bigint,
      attr: number,
      buf: ArrayBufferView,
      size: bigint,
    ) => {
      const o = objects.get(d) as Record<number, number | bigint> | undefined;
      if (!o || descSizes[attr] !== Number(size) || buf.byteLength !== Number(size)) {
        return INVALID_VALUE;
      }
      o[attr] = value(buf, Number(size));
      return 0;
    },
    cublasLtMatrixLayoutCreate: (
      out: BigUint64Array,
      type: number,
      rows: bigint,
      cols: bigint,
      ld: bigint,
    ) =>
      create(
        { type, rows: Number(rows), cols: Number(cols), ld: Number(ld), batch: 1, stride: 0 },
        out,
      ),
    cublasLtMatrixLayoutDestroy: (l: bigint) => (objects.delete(l) ? 0 : INVALID_VALUE),
    cublasLtMatrixLayoutSetAttribute: (
      l: bigint,
      attr: number,
      buf: ArrayBufferView,
      size: bigint,
    ) => {
      const o = objects.get(l) as Layout | undefined;
      if (!o) return INVALID_VALUE;
      if (attr === 5 && size === 4n) o.batch = Number(value(buf, 4));
      else if (attr === 6 && size === 8n) o.stride = Number(value(buf, 8));
      else return INVALID_VALUE;
      return 0;
    },
    // Preferences: 1 = max workspace (uint64), 5..8 = min alignment of A, B, C, D (uint32,
    // default 256 as documented).
    cublasLtMatmulPreferenceCreate: (out: BigUint64Array) =>
      create({ 5: 256, 6: 256, 7: 256, 8: 256 }, out),
    cublasLtMatmulPreferenceDestroy: (p: bigint) => (objects.delete(p) ? 0 : INVALID_VALUE),
    cublasLtMatmulPreferenceSetAttribute: (
      p: bigint,
      attr: number,
      buf: ArrayBufferView,
      size: bigint,
    ) => {
      const o = objects.get(p) as Record<number, number | bigint> | undefined;
      if (!o) return INVALID_VALUE;
      if (attr === 1 && size === 8n) o[attr] = value(buf, 8);
      else if (attr >= 5 && attr <= 8 && size === 4n) o[attr] = value(buf, 4);
      else return INVALID_VALUE;
      return 0;
    },
    cublasLtMatmulAlgoGetHeuristic: (
      _h: bigint,
      ..._rest: [bigint, bigint, bigint, bigint, bigint, bigint, number, Uint8Array, Int32Array]
    ) => {
      const [, , , , , pref, requested, results, count] = _rest;
      const p = objects.get(pref) as Record<number, number> | undefined;
      if (!p || requested < 1 || results.byteLength < 96 * requested) return INVALID_VALUE;
      results.fill(0x5a, 0, 64); // an opaque algo
      // Like a real tiled algorithm, it needs its operands as aligned as the preference promised:
      // the algo remembers the promise, cublasLtMatmul checks the pointers against it.
      new DataView(results.buffer, results.byteOffset).setUint32(0, alignmentCode(p), true);
      count[0] = 1;
      return 0;
    },
    cublasLtMatmul: (
      _h: bigint,
      d: bigint,
      alpha: Float32Array,
      a: bigint,
      la: bigint,
      b: bigint,
      lb: bigint,
      beta: Float32Array,
      c: bigint,
      lc: bigint,
      dOut: bigint,
      ld: bigint,
      algo: Uint8Array,
    ) => {
      const o = objects.get(d) as Record<number, number | bigint>;
      const [A, B, C, D] = [la, lb, lc, ld].map((l) => objects.get(l) as Layout);
      if (!o || !A || !B || !C || !D || c !== dOut || algo[4] !== 0x5a) return INVALID_VALUE;
      const promised = new DataView(algo.buffer, algo.byteOffset).getUint32(0, true);
      const need = [a, b, c, dOut].map((_, i) => 2 ** ((promised >> (8 * i)) & 0xff));
      // A misaligned operand is what a real algorithm would fault on or refuse.
      if ([a, b, c, dOut].some((ptr, i) => (ptr & 0xffffffffn) % BigInt(need[i]) !== 0n)) {
        return NOT_SUPPORTED;
      }
      const [transa, transb] = [o[3] as number, o[4] as number];
      const m = C.rows, n = C.cols;
      const k = transa === OP_N ? A.cols : A.rows;
      // Layout shapes must agree with the ops, as cuBLASLt checks.
      if ((transa === OP_N ? A.rows : A.cols) !== m) return INVALID_VALUE;
      if ((transb === OP_N ? B.rows : B.cols) !== k || (transb === OP_N ? B.cols : B.rows) !== n) {
        return INVALID_VALUE;
      }
      const epi = o[7] as number, bias = o[8] as bigint;
      const biasType = o[26] === -1 ? C.type : (o[26] as number);
      if ((epi & 4) !== 0 && bias === 0n) return INVALID_VALUE;
      return columnMajorGemm(
        mem,
        transa,
        transb,
        m,
        n,
        k,
        alpha[0],
        a,
        A.type,
        A.ld,
        A.stride,
        b,
        B.type,
        B.ld,
        B.stride,
        beta[0],
        c,
        C.type,
        C.ld,
        C.stride,
        C.batch,
        (i, v) => {
          let y = (epi & 4) !== 0 ? v + mem.read(bias, biasType, i) : v;
          if ((epi & 32) !== 0) y = geluTanh(y);
          return y;
        },
      );
    },
  };
  return fake as unknown as CublasLtSymbols;
}
