/**
 * A whole CUDA "device" on the CPU: memory is host memory (so device addresses are real host
 * addresses the emulated kernels can dereference), kernels run in the emulator (./emu.ts), and the
 * host cuBLAS/cuBLASLt stand-ins of tests/_fake_cublas.ts read and write the same memory. With it
 * the real CudaBackend (allocator, scratch, copies, kernel wrappers, parameter packing, cuBLAS
 * planning) runs end to end without a GPU.
 * @module
 */

import {
  checkLaunchDims,
  type DeviceApi,
  type DeviceInfo,
  DeviceOutOfMemoryError,
} from "../../src/backend/cuda/device.ts";
import type { KernelArg } from "../../src/backend/cuda/launcher.ts";
import { bf16BitsToF32, f32ToBf16Bits } from "../../src/dtype.ts";
import type { GemmMemory } from "../_fake_cublas.ts";
import type { EmuDevice } from "./emu.ts";

const R_16BF = 14; // cudaDataType_t CUDA_R_16BF
const ALIGN = 256; // cuMemAlloc's alignment

interface Allocation {
  readonly base: bigint;
  readonly bytes: number;
  /** Owns the memory (its backing store never moves); `base` lies inside it. */
  readonly keep: ArrayBuffer;
  readonly view: DataView;
  readonly u8: Uint8Array;
}

/** Device memory in host ArrayBuffers; kernels run in the emulator; `read`/`write` for cuBLAS. */
export class EmuDeviceApi implements DeviceApi, GemmMemory {
  readonly info: DeviceInfo;
  readonly stream = 0n;
  /** Kernel launches so far. */
  launches = 0;
  readonly #emu: EmuDevice;
  readonly #blocks = new Map<bigint, Allocation>();
  #last: Allocation | null = null;
  /** GEMM operand base address -> its allocation and byte offset (cleared on free). */
  readonly #bases = new Map<bigint, [Allocation, number]>();
  #used = 0;

  /** @param emu the loaded emulator; @param capacityBytes what `alloc` may hand out in total */
  constructor(emu: EmuDevice, capacityBytes = 256 * 2 ** 20) {
    this.#emu = emu;
    this.info = {
      ordinal: 0,
      name: "CUDA emulator",
      computeCapability: [9, 0],
      totalBytes: capacityBytes,
    };
  }

  alloc(bytes: number): bigint {
    if (this.#used + bytes > this.info.totalBytes) {
      const free = this.info.totalBytes - this.#used;
      throw new DeviceOutOfMemoryError(bytes, `${free} bytes free of ${this.info.totalBytes}`);
    }
    const keep = new ArrayBuffer(Math.max(bytes, 1) + ALIGN);
    const raw = Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(keep)));
    const base = (BigInt(raw) + BigInt(ALIGN - 1)) / BigInt(ALIGN) * BigInt(ALIGN);
    const start = Number(base - BigInt(raw));
    const u8 = new Uint8Array(keep, start, bytes);
    u8.fill(0xcd); // garbage, like fresh cuMemAlloc memory
    const a = { base, bytes, keep, view: new DataView(keep, start, bytes), u8 };
    this.#blocks.set(base, a);
    this.#used += bytes;
    return base;
  }

  free(ptr: bigint): void {
    const a = this.#blocks.get(ptr);
    if (!a) throw new Error(`emulated cuMemFree: 0x${ptr.toString(16)} is not an allocation`);
    this.#blocks.delete(ptr);
    if (this.#last === a) this.#last = null;
    this.#bases.clear();
    this.#used -= a.bytes;
  }

  /** The allocation holding [addr, addr + len), and addr's byte offset in it; throws if none. */
  #find(addr: bigint, len: number): [Allocation, number] {
    const hit = (a: Allocation | null) =>
      a !== null && addr >= a.base && addr + BigInt(len) <= a.base + BigInt(a.bytes);
    if (!hit(this.#last)) {
      this.#last = null;
      for (const a of this.#blocks.values()) {
        if (hit(a)) {
          this.#last = a;
          break;
        }
      }
      if (this.#last === null) {
        throw new RangeError(
          `emulated device: [0x${addr.toString(16)}, +${len}) is not inside one allocation`,
        );
      }
    }
    return [this.#last!, Number(addr - this.#last!.base)];
  }

  #bytes(addr: bigint, len: number): Uint8Array {
    const [a, off] = this.#find(addr, len);
    return a.u8.subarray(off, off + len);
  }

  htod(dst: bigint, src: ArrayBufferView): void {
    this.#bytes(dst, src.byteLength).set(
      new Uint8Array(src.buffer, src.byteOffset, src.byteLength),
    );
  }

  dtoh(dst: ArrayBufferView, src: bigint): void {
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(
      this.#bytes(src, dst.byteLength),
    );
  }

  dtod(dst: bigint, src: bigint, bytes: number): void {
    if (src < dst + BigInt(bytes) && dst < src + BigInt(bytes)) {
      throw new Error("emulated cuMemcpyDtoD: ranges overlap"); // as the driver requires
    }
    this.#bytes(dst, bytes).set(this.#bytes(src, bytes));
  }

  memset8(dst: bigint, value: number, bytes: number): void {
    this.#bytes(dst, bytes).fill(value);
  }

  memset32(dst: bigint, value: number, count: number): void {
    const [a, off] = this.#find(dst, count * 4);
    for (let i = 0; i < count; i++) a.view.setUint32(off + 4 * i, value >>> 0, true);
  }

  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void {
    checkLaunchDims(name, grid, block, sharedBytes);
    // A pointer outside every allocation would crash the process in the emulator: name it here.
    args.forEach((arg, i) => {
      if ("ptr" in arg && arg.ptr !== 0n) {
        try {
          this.#find(arg.ptr, 1);
        } catch (err) {
          throw new RangeError(`launch ${name}: argument ${i}: ${(err as Error).message}`);
        }
      }
    });
    this.#emu.launch(name, grid, block, sharedBytes, args);
    this.launches++;
  }

  activate(): void {}

  synchronize(): void {}

  memInfo(): { free: number; total: number } {
    return { free: this.info.totalBytes - this.#used, total: this.info.totalBytes };
  }

  dispose(): void {}

  /** The allocation and byte offset of element `i` (of `size` bytes) past `addr`. */
  #element(addr: bigint, size: number, i: number): [Allocation, number] {
    let base = this.#bases.get(addr);
    if (!base) this.#bases.set(addr, base = this.#find(addr, 0));
    const [a, off] = base;
    const at = off + i * size;
    if (at < 0 || at + size > a.bytes) {
      throw new RangeError(
        `emulated device: element ${i} past 0x${addr.toString(16)} is outside its allocation`,
      );
    }
    return [a, at];
  }

  read(addr: bigint, type: number, i: number): number {
    if (type === R_16BF) {
      const [a, at] = this.#element(addr, 2, i);
      return bf16BitsToF32(a.view.getUint16(at, true));
    }
    const [a, at] = this.#element(addr, 4, i);
    return a.view.getFloat32(at, true);
  }

  write(addr: bigint, type: number, i: number, value: number): void {
    if (type === R_16BF) {
      const [a, at] = this.#element(addr, 2, i);
      a.view.setUint16(at, f32ToBf16Bits(value), true);
      return;
    }
    const [a, at] = this.#element(addr, 4, i);
    a.view.setFloat32(at, value, true);
  }
}
