/**
 * The CUDA backend: buffers from a caching allocator, every kernel queued on one non-blocking
 * stream, host reads the only sync points. Kernel methods delegate to the wrappers in
 * `kernels/` (which launch our PTX through this backend as their {@linkcode KernelLauncher}),
 * matmul to cuBLAS.
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
import {
  type DType,
  dtypeBytes,
  fromBf16Array,
  type StorageArray,
  toBf16Array,
  type TypedArray,
} from "../../dtype.ts";
import type { KernelArg, KernelLauncher } from "./launcher.ts";
import type { DeviceApi, DeviceInfo } from "./device.ts";
import { type AllocatorStats, type Block, CachingAllocator } from "./allocator.ts";
import { CublasLayoutError, cublasLayoutNeeds, CublasMatmul } from "./matmul.ts";
import type { CublasSymbols } from "../../../ffi/cublas.ts";
import type { CublasLtSymbols } from "../../../ffi/cublaslt.ts";
import { CublasLtUnsupportedError } from "./cublaslt_plans.ts";
import type { CudnnSymbols } from "../../../ffi/cudnn.ts";
import { CudnnAttention, cudnnAttentionRequested } from "./cudnn_attention.ts";
import * as k from "./kernels/mod.ts";
import { contiguousStrides, isContiguous, numel } from "../../_shape.ts";

/** Device memory owned by a {@linkcode CudaBackend}. */
export class CudaBuffer implements Buffer {
  /** Size in bytes as requested. */
  readonly bytes: number;
  /** The allocator block (its address and size class). */
  readonly block: Block;
  /** The backend that owns it (buffers of another device are refused). */
  readonly owner: CudaBackend;
  /** Set by `free`. */
  freed = false;

  /** Wraps an allocator block. */
  constructor(bytes: number, block: Block, owner: CudaBackend) {
    this.bytes = bytes;
    this.block = block;
    this.owner = owner;
  }

  /** Device address of the first byte. */
  get ptr(): bigint {
    return this.block.ptr;
  }
}

/** Memory counters of one CUDA device. */
export interface CudaMemoryStats extends AllocatorStats {
  /** Device memory free, as the driver reports it (all processes). */
  deviceFreeBytes: number;
  /** Device memory in total. */
  deviceTotalBytes: number;
}

function checkRange(op: string, what: string, start: number, len: number, size: number): void {
  if (!(Number.isSafeInteger(start) && start >= 0 && len >= 0 && start + len <= size)) {
    throw new RangeError(
      `${op}: ${what} [${start}, ${start + len}) is outside the buffer's ${size}`,
    );
  }
}

const COMPARISONS: ReadonlySet<BinaryOp> = new Set(["eq", "ne", "lt", "le", "gt", "ge"]);

/** cuBLASLt's workspace, held for the backend's life (PyTorch gives Hopper 32 MiB too). */
export const LT_WORKSPACE_BYTES = 32 * 2 ** 20;

/** Options of a {@linkcode CudaBackend}. */
export interface CudaBackendOptions {
  /**
   * The cuBLAS / cuBLASLt functions (default: the libraries, opened on first matmul). Tests pass
   * host implementations to run the backend's GEMMs on machines without a GPU.
   */
  blasSymbols?: { blas?: CublasSymbols; lt?: CublasLtSymbols };
  /** Bytes of cuBLASLt workspace (default {@linkcode LT_WORKSPACE_BYTES}; 0 for none). */
  ltWorkspaceBytes?: number;
  /**
   * Fused attention implementation: "flash" (our kernels, the default) or "cudnn" (cuDNN's fused
   * flash attention where it supports the call, our kernels otherwise). Default: "cudnn" if the
   * env var DENOGRAD_ATTENTION is "cudnn", else "flash".
   */
  attention?: "flash" | "cudnn";
  /** The cuDNN functions (default: the library, opened on first cuDNN attention call). */
  cudnnSymbols?: CudnnSymbols;
}

/**
 * Runs every kernel on one NVIDIA GPU. Create it through the device name ("cuda", "cuda:1"):
 * `getBackend("cuda:0")`, or `tensor(data, { device: "cuda" })`.
 *
 * @example
 * ```ts ignore
 * import { tensor } from "@denograd/denograd";
 * const x = tensor([1, 2, 3], { device: "cuda" });
 * console.log(x.exp().toArray()); // computed on the GPU, read back here
 * ```
 */
export class CudaBackend implements Backend, KernelLauncher {
  /** "cuda:N". */
  readonly device: Device;
  /** The GPU. */
  readonly info: DeviceInfo;
  readonly #api: DeviceApi;
  readonly #allocator: CachingAllocator;
  readonly #options: CudaBackendOptions;
  #blas: CublasMatmul | null = null;
  /** cuDNN attention: undefined until first asked, null when not selected. */
  #cudnn: CudnnAttention | null | undefined = undefined;
  #ltWorkspace: Block | null = null;
  #scratch: Block[] = [];
  #depth = 0;

  /**
   * A backend over `api` (the real CudaDevice, or a test double).
   * @param options the BLAS functions to use and cuBLASLt's workspace size
   */
  constructor(api: DeviceApi, options: CudaBackendOptions = {}) {
    this.#api = api;
    this.info = api.info;
    this.device = `cuda:${api.info.ordinal}`;
    const ws = options.ltWorkspaceBytes;
    if (ws !== undefined && !(Number.isSafeInteger(ws) && ws >= 0)) {
      throw new RangeError(
        `CudaBackend: ltWorkspaceBytes must be a non-negative integer, got ${ws}`,
      );
    }
    const attention = options.attention;
    if (attention !== undefined && attention !== "flash" && attention !== "cudnn") {
      throw new TypeError(`CudaBackend: attention must be "flash" or "cudnn", got ${attention}`);
    }
    this.#allocator = new CachingAllocator(api);
    this.#options = options;
  }

  /** The CUstream every kernel and copy of this backend is queued on. */
  get stream(): bigint {
    return this.#api.stream;
  }

  // ---- buffers ----

  /** Device memory of `bytes` (contents unspecified), from the caching allocator. */
  alloc(bytes: number): CudaBuffer {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`alloc: bytes must be a non-negative integer, got ${bytes}`);
    }
    return new CudaBuffer(bytes, this.#allocator.alloc(bytes), this);
  }

  /** Returns the buffer's block to the cache; using the buffer afterwards throws. */
  free(buffer: Buffer): void {
    const b = this.#buffer(buffer, "free");
    b.freed = true;
    this.#allocator.free(b.block);
  }

  /** Queues a copy of host data (raw bits; bf16 as Uint16Array) to the buffer from `byteOffset`. */
  write(buffer: Buffer, src: StorageArray, byteOffset = 0): void {
    const b = this.#buffer(buffer, "write");
    checkRange("write", "bytes", byteOffset, src.byteLength, b.bytes);
    if (src.byteLength > 0) this.#api.htod(b.ptr + BigInt(byteOffset), src);
  }

  /** Waits for queued work and reads `count` elements (bf16 widened to Float32Array). */
  read(buffer: Buffer, dtype: DType, offset: number, count: number): TypedArray {
    const b = this.#buffer(buffer, "read");
    const size = dtypeBytes(dtype);
    checkRange("read", "elements", offset, count, Math.floor(b.bytes / size));
    const src = b.ptr + BigInt(offset * size);
    if (dtype === "bf16") {
      const bits = new Uint16Array(count);
      if (count > 0) this.#api.dtoh(bits, src);
      return fromBf16Array(bits);
    }
    const out = dtype === "f32" ? new Float32Array(count) : new Int32Array(count);
    if (count > 0) this.#api.dtoh(out, src);
    return out;
  }

  /** Queues a copy of `bytes` bytes between buffers of this device (overlap allowed). */
  copy(src: Buffer, dst: Buffer, bytes: number, srcByteOffset = 0, dstByteOffset = 0): void {
    const s = this.#buffer(src, "copy"), d = this.#buffer(dst, "copy");
    checkRange("copy", "source bytes", srcByteOffset, bytes, s.bytes);
    checkRange("copy", "destination bytes", dstByteOffset, bytes, d.bytes);
    if (bytes === 0) return;
    const from = s.ptr + BigInt(srcByteOffset), to = d.ptr + BigInt(dstByteOffset);
    if (from === to) return;
    const overlap = s === d &&
      srcByteOffset < dstByteOffset + bytes && dstByteOffset < srcByteOffset + bytes;
    if (!overlap) return this.#api.dtod(to, from, bytes);
    // cuMemcpy does not allow overlapping ranges: go through a temporary.
    this.#call(() => {
      const tmp = this.scratch(bytes);
      this.#api.dtod(tmp, from, bytes);
      this.#api.dtod(to, tmp, bytes);
    });
  }

  // ---- KernelLauncher ----

  /** Device address of element `view.offset` of the view's buffer. */
  address(view: View): bigint {
    const b = this.#buffer(view.buffer, "kernel");
    return b.ptr + BigInt(view.offset * dtypeBytes(view.dtype));
  }

  /** Queues kernel `name` on this backend's stream. */
  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void {
    this.#api.launch(name, grid, block, sharedBytes, args);
  }

  /** Temporary device memory, given back (stream-ordered) when the current backend call returns. */
  scratch(bytes: number): bigint {
    if (this.#depth === 0) throw new Error("scratch: only valid inside a backend call");
    const block = this.#allocator.alloc(bytes);
    this.#scratch.push(block);
    return block.ptr;
  }

  /** Runs one backend call; scratch taken during it goes back to the cache afterwards. */
  #call<T>(fn: () => T): T {
    this.#depth++;
    try {
      return fn();
    } finally {
      if (--this.#depth === 0 && this.#scratch.length) {
        // Later work on the same stream runs after the kernels that used it: reuse is safe.
        for (const b of this.#scratch) this.#allocator.free(b);
        this.#scratch = [];
      }
    }
  }

  #buffer(buffer: Buffer, op: string): CudaBuffer {
    if (!(buffer instanceof CudaBuffer)) {
      throw new TypeError(
        `${op}: expected a buffer of ${this.device}, got ${
          buffer?.constructor?.name ?? typeof buffer
        }`,
      );
    }
    if (buffer.owner !== this) {
      throw new TypeError(`${op}: buffer belongs to ${buffer.owner.device}, not ${this.device}`);
    }
    if (buffer.freed) throw new TypeError(`${op}: buffer used after free`);
    return buffer;
  }

  // ---- kernels (the wrappers validate dtypes; we own scratch and the stream) ----

  /**
   * out = value everywhere in the view: a memset when the view is dense and the value is 0 or the
   * dtype 4 bytes wide, else the fill kernel.
   */
  fill(out: View, value: number): void {
    const n = numel(out.shape);
    if (n === 0) return;
    const dense = isContiguous(out.shape, out.strides);
    if (dense && Object.is(value, 0)) {
      return this.#api.memset8(this.address(out), 0, n * dtypeBytes(out.dtype));
    }
    if (dense && out.dtype !== "bf16") {
      // The word's bits, converted as a typed-array store converts (i32 truncates toward zero).
      const word = out.dtype === "f32" ? new Float32Array([value]) : new Int32Array([value]);
      return this.#api.memset32(this.address(out), new Uint32Array(word.buffer)[0], n);
    }
    this.#call(() => k.fill(this, out, value));
  }

  /** out = op(x); `copy` casts between f32, bf16 and i32. */
  unary(op: UnaryOp, x: View, out: View): void {
    this.#call(() => k.unary(this, op, x, out));
  }

  /**
   * out = a op b (broadcast through stride-0 views). Comparisons produce i32 0/1; into an f32 or
   * bf16 out (as the CPU backend allows) they go through i32 scratch and a cast.
   */
  binary(op: BinaryOp, a: View, b: View, out: View): void {
    this.#call(() => {
      if (!COMPARISONS.has(op) || out.dtype === "i32") return k.binary(this, op, a, b, out);
      const mask = this.#emptyScratch({ ...out, dtype: "i32" });
      k.binary(this, op, a, b, mask);
      k.unary(this, "copy", mask, out);
    });
  }

  /** out = cond != 0 ? a : b. */
  where(cond: View, a: View, b: View, out: View): void {
    this.#call(() => k.where(this, cond, a, b, out));
  }

  /** Reduces x over sorted axes into a keepdim-layout out. */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
    this.#call(() => k.reduce(this, op, x, axes, out));
  }

  /**
   * Batched matmul through cuBLAS. Operands whose matrices cuBLAS cannot address (no unit stride)
   * are first copied to contiguous scratch; an `out` like that is computed in scratch and copied
   * back.
   */
  matmul(a: View, b: View, out: View, options: MatmulOptions): void {
    this.#call(() => {
      if (numel(out.shape) === 0) return;
      const r = a.shape.length;
      if (a.shape[options.transA ? r - 2 : r - 1] === 0) {
        // An empty inner dimension: out = beta * out, which cuBLAS is not asked to compute.
        const beta = options.beta ?? 0;
        if (beta === 0) return k.fill(this, out, 0);
        return k.binary(this, "mul", out, this.#scalarScratch(beta, out), out);
      }
      const blas = this.#matmulLibrary();
      const needs = cublasLayoutNeeds(a, b, out, options);
      const av = needs.a ? this.#contiguousScratch(a) : a;
      const bv = needs.b ? this.#contiguousScratch(b) : b;
      if (!needs.out) return blas.matmul(av, bv, out, options);
      const beta = options.beta ?? 0;
      const ov = beta !== 0 ? this.#contiguousScratch(out) : this.#emptyScratch(out);
      blas.matmul(av, bv, ov, options);
      k.unary(this, "copy", ov, out);
    });
  }

  /**
   * out (rows, N) = x (rows, K) @ weight (N, K)^T + bias (N): one cuBLASLt GEMM with a bias
   * epilogue; views cuBLASLt cannot take (see {@linkcode CublasLayoutError}) and GEMMs it has no
   * algorithm for go through {@linkcode matmul} and a broadcast add instead.
   */
  linearBias(x: View, weight: View, bias: View, out: View): void {
    this.#call(() => {
      const blas = this.#matmulLibrary();
      try {
        return blas.linear(x, weight, bias, out);
      } catch (err) {
        if (!(err instanceof CublasLayoutError || err instanceof CublasLtUnsupportedError)) {
          throw err;
        }
      }
      const r = weight.shape.length;
      const wT: View = {
        ...weight,
        shape: [weight.shape[r - 1], weight.shape[r - 2]],
        strides: [weight.strides[r - 1], weight.strides[r - 2]],
      };
      this.matmul(x, wT, out, { transA: false, transB: false });
      const rows = out.shape[0], n = out.shape[1];
      const bv: View = { ...bias, shape: [rows, n], strides: [0, bias.strides[0]] };
      k.binary(this, "add", out, bv, out);
    });
  }

  /**
   * The cuDNN attention path when selected ({@linkcode CudaBackendOptions.attention}), else null;
   * its `reason(...)` tells whether a call runs on cuDNN (null) or falls back, and why.
   */
  cudnnAttention(): CudnnAttention | null {
    return this.#cudnnAttention();
  }

  /** The cuDNN attention path when selected (created on first use), else null. */
  #cudnnAttention(): CudnnAttention | null {
    if (this.#cudnn !== undefined) return this.#cudnn;
    const selected =
      (this.#options.attention ?? (cudnnAttentionRequested() ? "cudnn" : "flash")) === "cudnn";
    return this.#cudnn = !selected ? null : new CudnnAttention({
      symbols: this.#options.cudnnSymbols,
      stream: this.#api.stream,
      address: (v) => this.address(v),
      scratch: (bytes) => this.scratch(bytes),
      zero: (ptr, bytes) => this.#api.memset8(ptr, 0, bytes),
      activate: () => this.#api.activate(),
    });
  }

  /**
   * Runs attentionForward through cuDNN when it is selected and supports the call (inside a
   * backend call, for scratch); false when our kernel must run instead.
   */
  #tryCudnnAttentionForward(args: AttentionArgs): boolean {
    const cudnn = this.#cudnnAttention();
    if (!cudnn) return false;
    return this.#call(() => cudnn.tryForward(args));
  }

  /** As {@linkcode #tryCudnnAttentionForward}, for attentionBackward. */
  #tryCudnnAttentionBackward(args: AttentionBackwardArgs): boolean {
    const cudnn = this.#cudnnAttention();
    if (!cudnn) return false;
    return this.#call(() => cudnn.tryBackward(args));
  }

  /** cuBLAS (created on first use, with cuBLASLt's workspace), the device's context current. */
  #matmulLibrary(): CublasMatmul {
    this.#api.activate();
    if (this.#blas) return this.#blas;
    const bytes = this.#options.ltWorkspaceBytes ?? LT_WORKSPACE_BYTES;
    // cuMemAlloc memory is 256-byte aligned, as cuBLASLt wants its workspace.
    this.#ltWorkspace ??= bytes > 0 ? this.#allocator.alloc(bytes) : null;
    return this.#blas = new CublasMatmul(this.#api.stream, (v) => this.address(v), {
      ltWorkspace: this.#ltWorkspace ? { ptr: this.#ltWorkspace.ptr, bytes } : undefined,
      symbols: this.#options.blasSymbols,
    });
  }

  /** `value` in scratch, seen through stride-0 strides as a view of `like`'s shape and dtype. */
  #scalarScratch(value: number, like: View): View {
    const size = dtypeBytes(like.dtype);
    const buffer = new CudaBuffer(size, { ptr: this.scratch(size), size: 0 }, this);
    const host = like.dtype === "bf16"
      ? toBf16Array([value])
      : like.dtype === "f32"
      ? new Float32Array([value])
      : new Int32Array([value]);
    this.#api.htod(buffer.ptr, host);
    return {
      buffer,
      dtype: like.dtype,
      shape: like.shape,
      strides: like.shape.map(() => 0),
      offset: 0,
    };
  }

  #emptyScratch(like: View): View {
    const n = numel(like.shape);
    const ptr = this.scratch(Math.max(n, 1) * dtypeBytes(like.dtype));
    const buffer = new CudaBuffer(n * dtypeBytes(like.dtype), { ptr, size: 0 }, this);
    return {
      buffer,
      dtype: like.dtype,
      shape: like.shape,
      strides: contiguousStrides(like.shape),
      offset: 0,
    };
  }

  #contiguousScratch(v: View): View {
    const out = this.#emptyScratch(v);
    k.unary(this, "copy", v, out);
    return out;
  }

  /** torch.gather along `axis`. */
  gather(x: View, axis: number, index: View, out: View): void {
    this.#call(() => k.gather(this, x, axis, index, out));
  }

  /** dst[index along axis] += src. */
  scatterAdd(dst: View, axis: number, index: View, src: View): void {
    this.#call(() => k.scatterAdd(this, dst, axis, index, src));
  }

  /** Softmax or log-softmax over the last dim. */
  softmaxForward(x: View, y: View, log: boolean): void {
    this.#call(() => k.softmaxForward(this, x, y, log));
  }

  /** Gradient of softmaxForward. */
  softmaxBackward(y: View, dy: View, dx: View, log: boolean): void {
    this.#call(() => k.softmaxBackward(this, y, dy, dx, log));
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
    this.#call(() => k.layerNormForward(this, x, weight, bias, y, mean, rstd, eps));
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
    this.#call(() => k.layerNormBackward(this, dy, x, weight, mean, rstd, dx, dweight, dbias));
  }

  /** Per-row cross-entropy and logsumexp. */
  crossEntropyForward(
    logits: View,
    targets: View,
    losses: View,
    lse: View,
    ignoreIndex: number,
  ): void {
    this.#call(() => k.crossEntropyForward(this, logits, targets, losses, lse, ignoreIndex));
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
    this.#call(() =>
      k.crossEntropyBackward(this, logits, targets, lse, dlosses, dlogits, ignoreIndex)
    );
  }

  /** Rows of weight picked by ids. */
  embeddingForward(weight: View, ids: View, out: View): void {
    this.#call(() => k.embeddingForward(this, weight, ids, out));
  }

  /** Scatter-adds dout rows into dweight. */
  embeddingBackward(dout: View, ids: View, dweight: View): void {
    this.#call(() => k.embeddingBackward(this, dout, ids, dweight));
  }

  /**
   * Fused attention: cuDNN's when selected and it supports the call, else our FlashAttention-2
   * kernels (cuda/attention_*.cu: f32/bf16, head dims 64 and 128).
   */
  attentionForward(args: AttentionArgs): void {
    if (this.#tryCudnnAttentionForward(args)) return;
    this.#call(() => k.attentionForward(this, args));
  }

  /** Gradients of attentionForward (same path choice); dq, dk, dv are overwritten. */
  attentionBackward(args: AttentionBackwardArgs): void {
    if (this.#tryCudnnAttentionBackward(args)) return;
    this.#call(() => k.attentionBackward(this, args));
  }

  /** One fused AdamW update in place. */
  adamwStep(param: View, grad: View, m: View, v: View, options: AdamWStepOptions): void {
    this.#call(() => k.adamwStep(this, param, grad, m, v, options));
  }

  /** One fused Adam (L2 weight decay) update in place. */
  adamStep(param: View, grad: View, m: View, v: View, options: AdamWStepOptions): void {
    this.#call(() => k.adamStep(this, param, grad, m, v, options));
  }

  /** One fused SGD update in place. */
  sgdStep(param: View, grad: View, momentumBuf: View | null, options: SgdStepOptions): void {
    this.#call(() => k.sgdStep(this, param, grad, momentumBuf, options));
  }

  /** Blocks until all queued work is done; a kernel fault surfaces here as a CudaError. */
  synchronize(): void {
    this.#api.synchronize();
  }

  // ---- memory ----

  /** Allocator counters plus the driver's free/total memory. */
  memoryStats(): CudaMemoryStats {
    const { free, total } = this.#api.memInfo();
    return { ...this.#allocator.stats(), deviceFreeBytes: free, deviceTotalBytes: total };
  }

  /** Gives cached (freed) blocks back to the driver. */
  emptyCache(): void {
    this.#allocator.emptyCache();
  }

  /** Releases cuBLAS, the cache, the stream and the context; live buffers must be freed first. */
  dispose(): void {
    if (this.#cudnn) {
      this.#api.activate();
      this.#cudnn.dispose();
      this.#cudnn = null;
    }
    if (this.#blas) {
      this.#api.activate();
      this.#blas.dispose();
      this.#blas = null;
    }
    if (this.#ltWorkspace) {
      // Handed back to the cache, which frees it after the queued work that may still use it.
      this.#allocator.free(this.#ltWorkspace);
      this.#ltWorkspace = null;
    }
    this.#allocator.emptyCache();
    this.#api.dispose();
  }
}
