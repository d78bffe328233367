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
    this.data = data ?? new ArrayBuffer(Math.ceil(bytes / 4) * 4);
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
 */
export class BufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  /** Cached blocks with the sequence number of their caching, oldest first; stale entries (the
   * block was handed out, and maybe cached again, since) are skipped lazily. */
  #order: [ArrayBuffer, number][] = [];
  #head = 0;
  #seq = 0;
  readonly #cached = new Map<ArrayBuffer, number>();
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

  /** A buffer of `bytes`, recycled when a freed one of the same size is cached. */
  take(bytes: number): CpuBuffer {
    const size = Math.ceil(bytes / 4) * 4;
    const data = this.#free.get(size)?.pop();
    if (data) {
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
    if (size === 0 || size > this.limitBytes) return;
    while (this.#cachedBytes + size > this.limitBytes) this.#evictOldest();
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(data);
    this.#cached.set(data, ++this.#seq);
    this.#order.push([data, this.#seq]);
    this.#cachedBytes += size;
  }

  #evictOldest(): void {
    while (this.#head < this.#order.length) {
      const [data, seq] = this.#order[this.#head++];
      if (this.#cached.get(data) !== seq) continue; // handed out (and maybe cached again) since
      this.#cached.delete(data);
      const list = this.#free.get(data.byteLength)!;
      list.splice(list.indexOf(data), 1);
      this.#cachedBytes -= data.byteLength;
      break;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Drops every cached block. */
  clear(): void {
    this.#free.clear();
    this.#cached.clear();
    this.#order = [];
    this.#head = 0;
    this.#cachedBytes = 0;
  }
}
