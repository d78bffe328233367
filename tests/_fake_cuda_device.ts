// A stand-in for a GPU: device memory is host ArrayBuffers at made-up 64-bit addresses, launches
// are recorded, not run. Lets the allocator and the CUDA backend be tested without a GPU.
import {
  type DeviceApi,
  type DeviceInfo,
  DeviceOutOfMemoryError,
} from "../src/backend/cuda/device.ts";
import type { KernelArg } from "../src/backend/cuda/launcher.ts";

/** One recorded kernel launch. */
export interface FakeLaunch {
  name: string;
  grid: readonly number[];
  block: readonly number[];
  sharedBytes: number;
  args: readonly KernelArg[];
}

export class FakeDevice implements DeviceApi {
  readonly info: DeviceInfo;
  readonly stream = 0x5eedn;
  readonly launches: FakeLaunch[] = [];
  /** Every call in order, e.g. "alloc 512", "free 0x...", "sync". */
  readonly log: string[] = [];
  readonly #blocks = new Map<bigint, Uint8Array>();
  #next = 0x7f0000000000n;
  #used = 0;
  disposed = false;

  constructor(ordinal = 0, capacityBytes = 64 * 2 ** 20) {
    this.info = {
      ordinal,
      name: "Fake GPU",
      computeCapability: [9, 0],
      totalBytes: capacityBytes,
    };
  }

  get usedBytes(): number {
    return this.#used;
  }

  alloc(bytes: number): bigint {
    if (this.#used + bytes > this.info.totalBytes) {
      this.log.push(`oom ${bytes}`);
      const free = this.info.totalBytes - this.#used;
      throw new DeviceOutOfMemoryError(bytes, `${free} bytes free of ${this.info.totalBytes}`);
    }
    const ptr = this.#next;
    this.#next += BigInt(Math.ceil(Math.max(bytes, 1) / 4096) * 4096); // gaps catch overruns
    this.#blocks.set(ptr, new Uint8Array(bytes).fill(0xcd)); // garbage, like real cuMemAlloc
    this.#used += bytes;
    this.log.push(`alloc ${bytes}`);
    return ptr;
  }

  free(ptr: bigint): void {
    const b = this.#blocks.get(ptr);
    if (!b) throw new Error(`fake cuMemFree: 0x${ptr.toString(16)} is not an allocation`);
    this.#blocks.delete(ptr);
    this.#used -= b.length;
    this.log.push(`free ${b.length}`);
  }

  /** The bytes [addr, addr + len) inside one allocation (throws when out of bounds). */
  bytes(addr: bigint, len: number): Uint8Array {
    for (const [base, mem] of this.#blocks) {
      if (addr >= base && addr + BigInt(len) <= base + BigInt(mem.length)) {
        const off = Number(addr - base);
        return mem.subarray(off, off + len);
      }
    }
    throw new RangeError(`fake device: [0x${addr.toString(16)}, +${len}) is not allocated memory`);
  }

  htod(dst: bigint, src: ArrayBufferView): void {
    this.bytes(dst, src.byteLength).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    this.log.push(`htod ${src.byteLength}`);
  }

  dtoh(dst: ArrayBufferView, src: bigint): void {
    this.log.push("sync");
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(this.bytes(src, dst.byteLength));
    this.log.push(`dtoh ${dst.byteLength}`);
  }

  dtod(dst: bigint, src: bigint, bytes: number): void {
    const from = this.bytes(src, bytes), to = this.bytes(dst, bytes);
    // Real cuMemcpy forbids overlap; refuse it so the backend's temporary path is exercised.
    const s = Number(src), d = Number(dst);
    if (s < d + bytes && d < s + bytes) throw new Error("fake cuMemcpyDtoD: ranges overlap");
    to.set(from);
    this.log.push(`dtod ${bytes}`);
  }

  memset8(dst: bigint, value: number, bytes: number): void {
    this.bytes(dst, bytes).fill(value);
  }

  memset32(dst: bigint, value: number, count: number): void {
    const b = this.bytes(dst, count * 4);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < count; i++) dv.setUint32(i * 4, value >>> 0, true);
  }

  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void {
    this.launches.push({ name, grid, block, sharedBytes, args });
    this.log.push(`launch ${name}`);
  }

  activate(): void {}

  synchronize(): void {
    this.log.push("sync");
  }

  memInfo(): { free: number; total: number } {
    return { free: this.info.totalBytes - this.#used, total: this.info.totalBytes };
  }

  dispose(): void {
    this.disposed = true;
  }
}
