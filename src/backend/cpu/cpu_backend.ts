/**
 * The CPU backend: host ArrayBuffers and TypeScript kernels, with matmul through OpenBLAS when
 * it is installed. It is the reference every other backend is tested against.
 * @module
 */

import type {
  AdamWStepOptions,
  AttentionArgs,
  AttentionBackwardArgs,
  Backend,
  BinaryOp,
  Buffer,
  Device,
  MatmulOptions,
  ReduceOp,
  SgdStepOptions,
  UnaryOp,
  View,
} from "../backend.ts";
import { type DType, fromBf16Array, type StorageArray, type TypedArray } from "../../dtype.ts";
import { openblas } from "../../../ffi/openblas.ts";
import { BufferPool, type CpuBuffer, cpuBuffer } from "./buffer.ts";
import { envVar } from "../../../ffi/find.ts";
import { binary, fill, unary, where } from "./elementwise.ts";
import { reduce } from "./reduce.ts";
import { makeSgemm, matmul, type Sgemm } from "./matmul.ts";
import { embeddingBackward, embeddingForward, gather, scatterAdd } from "./indexing.ts";
import { attentionBackward, attentionForward } from "./attention.ts";
import {
  crossEntropyBackward,
  crossEntropyForward,
  layerNormBackward,
  layerNormForward,
  softmaxBackward,
  softmaxForward,
} from "./nn.ts";
import { adamStep, adamwStep, sgdStep } from "./optim.ts";

/** Options of a CPU backend. */
export interface CpuBackendOptions {
  /**
   * Use OpenBLAS for matmul when it can be found (default true). false forces the TypeScript
   * fallback, e.g. to test it; `DENOGRAD_NO_BLAS=1` does the same process-wide.
   */
  blas?: boolean;
  /** Most idle memory kept for reuse, in bytes (default 4 GiB; 0 disables the cache). */
  cacheLimitBytes?: number;
}

function checkRange(op: string, what: string, start: number, len: number, size: number): void {
  if (!(Number.isInteger(start) && start >= 0 && len >= 0 && start + len <= size)) {
    throw new RangeError(
      `${op}: ${what} [${start}, ${start + len}) is outside the buffer's ${size}`,
    );
  }
}

/**
 * Runs every kernel on the host.
 * @example
 * ```ts
 * const cpu = new CpuBackend();
 * const buf = cpu.alloc(8);
 * cpu.write(buf, new Float32Array([1, 2]));
 * const v = { buffer: buf, dtype: "f32" as const, shape: [2], strides: [1], offset: 0 };
 * cpu.unary("exp", v, v);
 * console.log(cpu.read(buf, "f32", 0, 2)); // Float32Array [ 2.718..., 7.389... ]
 * ```
 */
export class CpuBackend implements Backend {
  /** Always "cpu". */
  readonly device: Device = "cpu";
  /** Whether matmul runs on OpenBLAS (false: the TypeScript fallback). */
  readonly usesBlas: boolean;
  readonly #sgemm: Sgemm;
  readonly #pool: BufferPool;

  /** Opens OpenBLAS lazily once per process (see ffi/openblas.ts); options.blas false skips it. */
  constructor(options: CpuBackendOptions = {}) {
    const blas = options.blas === false ? null : openblas();
    this.usesBlas = blas !== null;
    this.#sgemm = makeSgemm(blas);
    // DENOGRAD_POISON=1 fills new memory with NaN, so a kernel that reads before it writes shows.
    this.#pool = new BufferPool(
      options.cacheLimitBytes ?? 4 * 2 ** 30,
      envVar("DENOGRAD_POISON") === "1",
    );
  }

  /** Host memory with unspecified contents (recycled from freed buffers of the same size). */
  alloc(bytes: number): CpuBuffer {
    return this.#pool.take(bytes);
  }

  /** Marks the buffer dead (kernels refuse it from now on) and recycles its memory. */
  free(buffer: Buffer): void {
    const b = cpuBuffer(buffer, "free");
    b.freed = true;
    this.#pool.give(b);
  }

  /** Bytes of freed memory cached for reuse. */
  get cachedBytes(): number {
    return this.#pool.cachedBytes;
  }

  /** Releases all cached memory to the garbage collector. */
  emptyCache(): void {
    this.#pool.clear();
  }

  /** Copies host data (raw bits; bf16 as a Uint16Array) into the buffer from byte `byteOffset`. */
  write(buffer: Buffer, src: StorageArray, byteOffset = 0): void {
    const b = cpuBuffer(buffer, "write");
    checkRange("write", "bytes", byteOffset, src.byteLength, b.data.byteLength);
    new Uint8Array(b.data, byteOffset, src.byteLength)
      .set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
  }

  /** A new host array of `count` elements of `dtype` from element `offset` (bf16 widened). */
  read(buffer: Buffer, dtype: DType, offset: number, count: number): TypedArray {
    if (dtype === "bf16") {
      const bits = cpuBuffer(buffer, "read").u16;
      checkRange("read", "elements", offset, count, bits.length);
      return fromBf16Array(bits.subarray(offset, offset + count));
    }
    const a = cpuBuffer(buffer, "read").array(dtype);
    checkRange("read", "elements", offset, count, a.length);
    return a.slice(offset, offset + count);
  }

  /** Copies `bytes` bytes between (possibly the same, possibly overlapping) buffers. */
  copy(src: Buffer, dst: Buffer, bytes: number, srcByteOffset = 0, dstByteOffset = 0): void {
    const s = cpuBuffer(src, "copy"), d = cpuBuffer(dst, "copy");
    checkRange("copy", "source bytes", srcByteOffset, bytes, s.data.byteLength);
    checkRange("copy", "destination bytes", dstByteOffset, bytes, d.data.byteLength);
    // TypedArray.set copies as if through a temporary when both views share memory.
    new Uint8Array(d.data, dstByteOffset, bytes).set(new Uint8Array(s.data, srcByteOffset, bytes));
  }

  /** out = value everywhere in the view. */
  fill(out: View, value: number): void {
    fill(out, value);
  }

  /** out = op(x); `copy` casts between dtypes. */
  unary(op: UnaryOp, x: View, out: View): void {
    unary(op, x, out);
  }

  /** out = a op b with broadcasting through stride-0 views. */
  binary(op: BinaryOp, a: View, b: View, out: View): void {
    binary(op, a, b, out);
  }

  /** out = cond != 0 ? a : b. */
  where(cond: View, a: View, b: View, out: View): void {
    where(cond, a, b, out);
  }

  /** Reduces x over sorted axes into a keepdim-layout out. */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
    reduce(op, x, axes, out);
  }

  /** Batched out = alpha * op(a) @ op(b) + beta * out. */
  matmul(a: View, b: View, out: View, options: MatmulOptions): void {
    matmul(a, b, out, options, this.#sgemm);
  }

  /** torch.gather along `axis`. */
  gather(x: View, axis: number, index: View, out: View): void {
    gather(x, axis, index, out);
  }

  /** dst[index along axis] += src. */
  scatterAdd(dst: View, axis: number, index: View, src: View): void {
    scatterAdd(dst, axis, index, src);
  }

  /** Softmax or log-softmax over the last dim. */
  softmaxForward(x: View, y: View, log: boolean): void {
    softmaxForward(x, y, log);
  }

  /** Gradient of softmaxForward. */
  softmaxBackward(y: View, dy: View, dx: View, log: boolean): void {
    softmaxBackward(y, dy, dx, log);
  }

  /** LayerNorm over the last dim, saving mean and rstd. */
  layerNormForward(
    x: View,
    weight: View | null,
    bias: View | null,
    y: View,
    mean: View,
    rstd: View,
    eps: number,
  ): void {
    layerNormForward(x, weight, bias, y, mean, rstd, eps);
  }

  /** Gradient of layerNormForward; dweight/dbias are overwritten. */
  layerNormBackward(
    dy: View,
    x: View,
    weight: View | null,
    mean: View,
    rstd: View,
    dx: View,
    dweight: View | null,
    dbias: View | null,
  ): void {
    layerNormBackward(dy, x, weight, mean, rstd, dx, dweight, dbias);
  }

  /** Per-row cross-entropy and logsumexp. */
  crossEntropyForward(
    logits: View,
    targets: View,
    losses: View,
    lse: View,
    ignoreIndex: number,
  ): void {
    crossEntropyForward(logits, targets, losses, lse, ignoreIndex);
  }

  /** Gradient of crossEntropyForward. */
  crossEntropyBackward(
    logits: View,
    targets: View,
    lse: View,
    dlosses: View,
    dlogits: View,
    ignoreIndex: number,
  ): void {
    crossEntropyBackward(logits, targets, lse, dlosses, dlogits, ignoreIndex);
  }

  /** Rows of weight picked by ids. */
  embeddingForward(weight: View, ids: View, out: View): void {
    embeddingForward(weight, ids, out);
  }

  /** Scatter-adds dout rows into dweight. */
  embeddingBackward(dout: View, ids: View, dweight: View): void {
    embeddingBackward(dout, ids, dweight);
  }

  /** Fused tiled attention with an online softmax (see the Backend interface). */
  attentionForward(args: AttentionArgs): void {
    attentionForward(args, this.#sgemm);
  }

  /** Gradient of attentionForward, recomputing each tile's probabilities from lse. */
  attentionBackward(args: AttentionBackwardArgs): void {
    attentionBackward(args, this.#sgemm);
  }

  /** One fused AdamW update of param, m and v in place (see the Backend interface). */
  adamwStep(param: View, grad: View, m: View, v: View, options: AdamWStepOptions): void {
    adamwStep(param, grad, m, v, options);
  }

  /** One fused Adam (L2 weight decay) update of param, m and v in place. */
  adamStep(param: View, grad: View, m: View, v: View, options: AdamWStepOptions): void {
    adamStep(param, grad, m, v, options);
  }

  /** One fused SGD update of param and its momentum buffer in place. */
  sgdStep(param: View, grad: View, momentumBuf: View | null, options: SgdStepOptions): void {
    sgdStep(param, grad, momentumBuf, options);
  }

  /** A no-op: CPU kernels finish before they return. */
  synchronize(): void {}
}
