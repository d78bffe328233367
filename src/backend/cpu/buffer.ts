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
  /** The memory (rounded up to whole 4-byte elements); zero-filled at allocation. */
  readonly data: ArrayBuffer;
  /** f32 view over all of `data`. */
  readonly f32: Float32Array;
  /** i32 view over all of `data`. */
  readonly i32: Int32Array;
  /** Set by `free`; kernels refuse freed buffers instead of silently reading stale memory. */
  freed = false;

  /** Allocates `bytes` zeroed bytes. */
  constructor(bytes: number) {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`alloc: bytes must be a non-negative integer, got ${bytes}`);
    }
    this.bytes = bytes;
    this.data = new ArrayBuffer(Math.ceil(bytes / 4) * 4);
    this.f32 = new Float32Array(this.data);
    this.i32 = new Int32Array(this.data);
  }

  /** The typed array of `dtype` over the whole buffer. */
  array(dtype: DType): TypedArray {
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

/** The typed array of the view's dtype over the view's whole buffer (index with view offsets). */
export function arrayOf(v: View, op: string): TypedArray {
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
