/**
 * Packs kernel arguments for `cuLaunchKernel`: the driver takes `kernelParams`, an array holding
 * one pointer per kernel parameter, each pointing at that argument's bytes. We lay every argument
 * out in one buffer, each at its natural alignment (as the PTX `.param` space does), and point at
 * the slots.
 * @module
 */

import type { KernelArg } from "./launcher.ts";

/** Where each argument sits in the packed block. */
export interface ParamLayout {
  /** Byte offset of each argument, in order. */
  readonly offsets: readonly number[];
  /** Byte size of each argument. */
  readonly sizes: readonly number[];
  /** Total bytes (a multiple of 8). */
  readonly bytes: number;
}

/** Size and alignment of one argument in the `.param` space. */
export function argSizeAlign(arg: KernelArg, index: number): [size: number, align: number] {
  if ("ptr" in arg || "i64" in arg) return [8, 8];
  if ("i32" in arg || "f32" in arg) return [4, 4];
  if ("bytes" in arg) {
    const a = arg.align;
    if (!(Number.isInteger(a) && a >= 1 && a <= 256 && (a & (a - 1)) === 0)) {
      throw new RangeError(
        `kernel argument ${index}: struct alignment must be a power of two in [1, 256], got ${a}`,
      );
    }
    if (!(arg.bytes instanceof Uint8Array) || arg.bytes.length === 0) {
      throw new TypeError(`kernel argument ${index}: struct bytes must be a non-empty Uint8Array`);
    }
    return [arg.bytes.length, a];
  }
  throw new TypeError(`kernel argument ${index}: unknown kind ${JSON.stringify(arg)}`);
}

/** Offsets of `args` packed in order, each aligned to its own alignment. */
export function layoutParams(args: readonly KernelArg[]): ParamLayout {
  const offsets: number[] = [], sizes: number[] = [];
  let at = 0;
  args.forEach((arg, i) => {
    const [size, align] = argSizeAlign(arg, i);
    at = Math.ceil(at / align) * align;
    offsets.push(at);
    sizes.push(size);
    at += size;
  });
  return { offsets, sizes, bytes: Math.ceil(at / 8) * 8 };
}

/**
 * Writes every argument's value into one block (little-endian, as on every CUDA host) at the
 * offsets of {@linkcode layoutParams}. Integers are range-checked: a wrong-sized value would be
 * silently truncated otherwise.
 */
export function packParams(
  args: readonly KernelArg[],
  kernel = "kernel",
): { data: ArrayBuffer; layout: ParamLayout } {
  const layout = layoutParams(args);
  // A plain ArrayBuffer: its memory never moves, so the addresses handed to the driver hold.
  const data = new ArrayBuffer(Math.max(layout.bytes, 8));
  const dv = new DataView(data);
  const bytes = new Uint8Array(data);
  args.forEach((arg, i) => {
    const at = layout.offsets[i];
    const bad = (what: string, v: unknown) =>
      new RangeError(`${kernel}: argument ${i} must be ${what}, got ${v}`);
    if ("ptr" in arg) {
      if (typeof arg.ptr !== "bigint" || arg.ptr < 0n || arg.ptr >= 1n << 64n) {
        throw bad("a 64-bit device address (bigint)", arg.ptr);
      }
      dv.setBigUint64(at, arg.ptr, true);
    } else if ("i64" in arg) {
      if (typeof arg.i64 !== "bigint" || arg.i64 < -(1n << 63n) || arg.i64 >= 1n << 64n) {
        throw bad("a 64-bit integer (bigint)", arg.i64);
      }
      dv.setBigUint64(at, BigInt.asUintN(64, arg.i64), true);
    } else if ("i32" in arg) {
      // Accept the whole u32 and s32 ranges: the bits are the same.
      if (!Number.isInteger(arg.i32) || arg.i32 < -(2 ** 31) || arg.i32 >= 2 ** 32) {
        throw bad("a 32-bit integer", arg.i32);
      }
      dv.setUint32(at, arg.i32 >>> 0, true);
    } else if ("f32" in arg) {
      if (typeof arg.f32 !== "number") throw bad("a number", arg.f32);
      dv.setFloat32(at, arg.f32, true);
    } else {
      bytes.set(arg.bytes, at);
    }
  });
  return { data, layout };
}

/** The `kernelParams` array: the address of each argument's slot in `data` (base + offset). */
export function paramPointers(base: bigint, layout: ParamLayout): BigUint64Array {
  const out = new BigUint64Array(Math.max(layout.offsets.length, 1));
  layout.offsets.forEach((off, i) => out[i] = base + BigInt(off));
  return out;
}
