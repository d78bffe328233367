/**
 * CPU buffers: an ArrayBuffer with one Float32Array and one Int32Array over it, made once so
 * kernels never allocate views per call.
 * @module
 */

import type { Buffer, View } from "../backend.ts";
import type { DType, TypedArray } from "../../dtype.ts";

/** Host memory owned by the CPU backend. */
export class CpuBuffer implements Buffer {
  /** Size in bytes as requested. */
  readonly bytes: number;
  /** The memory (rounded up to whole 4-byte elements). */
  readonly data: ArrayBuffer;
  /** f32 view over all of `data`. */
  readonly f32: Float32Array;
  /** i32 view over all of `data`. */
  readonly i32: Int32Array;
  /** bf16 bit patterns over all of `data` (storage only: the CPU computes in f32). */
  readonly u16: Uint16Array;
  /** Set by `free`; kernels refuse freed buffers instead of silently reading stale memory. */
  freed = false;

  /** Wraps `data` (a recycled block), or allocates `bytes` zeroed bytes. */
  constructor(bytes: number, data?: ArrayBuffer) {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`alloc: bytes must be a non-negative integer, got ${bytes}`);
    }
    this.bytes = bytes;
    this.data = data ?? allocate(bytes);
    this.f32 = new Float32Array(this.data);
    this.i32 = new Int32Array(this.data);
    this.u16 = new Uint16Array(this.data);
  }

  /** The typed array of `dtype` over the whole buffer (f32 or i32: bf16 is storage only). */
  array(dtype: DType): TypedArray {
    if (dtype === "bf16") throw bf16ComputeError("kernel");
    return dtype === "f32" ? this.f32 : this.i32;
  }
}

/** Fresh zeroed memory for `bytes` (whole 4-byte elements); a clear error when there is none. */
function allocate(bytes: number): ArrayBuffer {
  try {
    return new ArrayBuffer(Math.ceil(bytes / 4) * 4);
  } catch (e) {
    const gib = (bytes / 2 ** 30).toFixed(2);
    throw new RangeError(
      `cpu: out of memory: cannot allocate ${gib} GiB (${bytes} bytes) for a tensor ` +
        `(${(e as Error).message})`,
    );
  }
}

/** Checks that `b` is a live CPU buffer. */
export function cpuBuffer(b: Buffer, op: string): CpuBuffer {
  if (!(b instanceof CpuBuffer)) {
    throw new TypeError(`${op}: expected a CPU buffer, got ${b?.constructor?.name ?? typeof b}`);
  }
  if (b.freed) throw new TypeError(`${op}: buffer used after free`);
  return b;
}

/** Why a CPU kernel refuses bf16: the CPU backend stores bf16 but computes in f32. */
export function bf16ComputeError(op: string): TypeError {
  return new TypeError(
    `${op}: the CPU backend stores bf16 but computes only in f32 and i32; cast to "f32" first`,
  );
}

/** The typed array of the view's dtype over the view's whole buffer (index with view offsets). */
export function arrayOf(v: View, op: string): TypedArray {
  if (v.dtype === "bf16") throw bf16ComputeError(op);
  return cpuBuffer(v.buffer, op).array(v.dtype);
}

/** Like `arrayOf`, for views the op layer guarantees are f32. */
export function f32Of(v: View, op: string): Float32Array {
  if (v.dtype !== "f32") throw new TypeError(`${op}: expected an f32 view, got ${v.dtype}`);
  return cpuBuffer(v.buffer, op).f32;
}

/** Like `arrayOf`, for views that must be i32 (indices, targets, ids). */
export function i32Of(v: View, op: string): Int32Array {
  if (v.dtype !== "i32") throw new TypeError(`${op}: expected an i32 view, got ${v.dtype}`);
  return cpuBuffer(v.buffer, op).i32;
}

/**
 * Recycles freed ArrayBuffers by exact size. A training step allocates the same shapes every
 * iteration; reusing their memory at once avoids fresh zeroed pages and waiting for V8's GC.
 * Beyond `limitBytes` the blocks freed longest ago are dropped first (so a run whose shapes keep
 * changing, like generation without a KV cache, cannot fill memory with unusable sizes).
 *
 * The pool's own bookkeeping is bounded by the blocks it holds: a Map in caching order (oldest
 * first) and one free list per size, nothing per `give` that outlives the block.
 */
export class BufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  /** Every cached block, in the order it was cached (a Set iterates in insertion order). */
  readonly #cached = new Set<ArrayBuffer>();
  #cachedBytes = 0;
  /** Upper bound on cached bytes. */
  readonly limitBytes: number;
  /** Fill handed-out memory with NaN (tests: catches kernels that read before writing). */
  readonly poison: boolean;

  /** A pool holding at most `limitBytes` of idle memory. */
  constructor(limitBytes: number, poison = false) {
    this.limitBytes = limitBytes;
    this.poison = poison;
  }

  /** Bytes currently cached (idle, ready for reuse). */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  /** Blocks currently cached. */
  get cachedBlocks(): number {
    return this.#cached.size;
  }

  /** A buffer of `bytes`, recycled when a freed one of the same size is cached. */
  take(bytes: number): CpuBuffer {
    const size = Math.ceil(bytes / 4) * 4;
    const list = this.#free.get(size);
    const data = list?.pop();
    if (data) {
      if (list!.length === 0) this.#free.delete(size);
      this.#cached.delete(data);
      this.#cachedBytes -= size;
    }
    const b = new CpuBuffer(bytes, data);
    if (this.poison) b.f32.fill(NaN);
    return b;
  }

  /** Returns a freed buffer's memory to the cache, evicting the oldest blocks over the limit. */
  give(buffer: CpuBuffer): void {
    const data = buffer.data, size = data.byteLength;
    if (size === 0 || size > this.limitBytes || this.#cached.has(data)) return;
    while (this.#cachedBytes + size > this.limitBytes) this.#evictOldest();
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(data);
    this.#cached.add(data);
    this.#cachedBytes += size;
  }

  #evictOldest(): void {
    const data = this.#cached.values().next().value!;
    this.#cached.delete(data);
    const size = data.byteLength, list = this.#free.get(size)!;
    // The oldest block of a size sits at the front of its list (lists grow at the back).
    list.splice(list.indexOf(data), 1);
    if (list.length === 0) this.#free.delete(size);
    this.#cachedBytes -= size;
  }

  /** Drops every cached block. */
  clear(): void {
    this.#free.clear();
    this.#cached.clear();
    this.#cachedBytes = 0;
  }
}
