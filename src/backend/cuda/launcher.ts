/**
 * What a CUDA kernel wrapper needs from the device: view addresses, a way to queue a kernel on
 * the backend's one stream, and call-scoped scratch memory. The CUDA backend implements it; tests
 * implement it with a fake device that records launches.
 * @module
 */

import type { View } from "../backend.ts";

/** One kernel parameter, matching the kernel's PTX `.param` declaration. */
export type KernelArg =
  /** `.param .u64` (a device pointer). */
  | { readonly ptr: bigint }
  /** `.param .u32` / `.s32`. */
  | { readonly i32: number }
  /** `.param .u64` / `.s64` scalar. */
  | { readonly i64: bigint }
  /** `.param .f32`. */
  | { readonly f32: number }
  /** `.param .align A .b8 name[N]` (a struct passed by value). */
  | { readonly bytes: Uint8Array; readonly align: number };

/** What kernel wrappers need from a device. */
export interface KernelLauncher {
  /** Device address of element `view.offset` of the view's buffer (base + offset * itemsize). */
  address(view: View): bigint;
  /** Queues the kernel `name` (an `.entry` of the PTX in _ptx.ts) on the backend's one stream. */
  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void;
  /**
   * Temporary device memory for the current backend call; released (stream-ordered, so safe)
   * when that call returns. Contents unspecified.
   */
  scratch(bytes: number): bigint;
}
