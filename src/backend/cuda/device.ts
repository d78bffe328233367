/**
 * The device under the CUDA backend: raw memory, copies, kernel launches by name, and one stream.
 * {@linkcode DeviceApi} is what the backend and the allocator need; {@linkcode CudaDevice} is the
 * real one over the driver API, and tests stand a fake in its place (memory in host ArrayBuffers,
 * launches recorded), so everything above it is tested without a GPU.
 * @module
 */

import {
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
  CU_STREAM_NON_BLOCKING,
  CUDA_ERROR_OUT_OF_MEMORY,
  type CudaDriver,
  cudaDriver,
  CudaError,
} from "../../../ffi/cuda.ts";
import type { KernelArg } from "./launcher.ts";
import { packParams, paramPointers } from "./kernel_params.ts";

/** What a device is. */
export interface DeviceInfo {
  /** Device index, as in "cuda:N". */
  readonly ordinal: number;
  /** Marketing name, e.g. "NVIDIA H200". */
  readonly name: string;
  /** [major, minor], e.g. [9, 0]. */
  readonly computeCapability: readonly [number, number];
  /** Total memory in bytes. */
  readonly totalBytes: number;
}

/** One PTX module: a name for messages and the PTX text (see `_ptx.ts`). */
export interface PtxModule {
  /** The kernel family, e.g. "elementwise". */
  readonly name: string;
  /** PTX assembly text. */
  readonly ptx: string;
}

/** Thrown by {@linkcode DeviceApi.alloc} when the device has no memory left for the request. */
export class DeviceOutOfMemoryError extends Error {
  /** The bytes asked for. */
  readonly bytes: number;
  /** Builds the error for a request of `bytes`. */
  constructor(bytes: number, detail: string) {
    super(`out of device memory allocating ${bytes} bytes: ${detail}`);
    this.name = "DeviceOutOfMemoryError";
    this.bytes = bytes;
  }
}

/**
 * What the CUDA backend needs from a device. Every operation is queued on the device's one stream
 * in call order, except `dtoh`, which waits for all queued work and then copies.
 */
export interface DeviceApi {
  /** What device this is. */
  readonly info: DeviceInfo;
  /** The stream everything runs on (a CUstream; libraries such as cuBLAS are bound to it). */
  readonly stream: bigint;
  /** Raw device memory; throws {@linkcode DeviceOutOfMemoryError} when there is none left. */
  alloc(bytes: number): bigint;
  /** Gives memory from `alloc` back to the device. */
  free(ptr: bigint): void;
  /** Copies host bytes to device address `dst` (the host array may be reused at once). */
  htod(dst: bigint, src: ArrayBufferView): void;
  /** Waits for queued work, then copies device bytes at `src` into `dst`. */
  dtoh(dst: ArrayBufferView, src: bigint): void;
  /** Copies `bytes` between device addresses (the ranges must not overlap). */
  dtod(dst: bigint, src: bigint, bytes: number): void;
  /** Sets `bytes` bytes at `dst` to `value` (0..255). */
  memset8(dst: bigint, value: number, bytes: number): void;
  /** Sets `count` 32-bit words at `dst` (4-byte aligned) to the bits `value`. */
  memset32(dst: bigint, value: number, count: number): void;
  /** Queues kernel `name` (an `.entry` of one of the device's PTX modules). */
  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void;
  /** Makes this device's context current on the calling thread (before library calls). */
  activate(): void;
  /** Blocks until all queued work is done; asynchronous kernel faults surface here. */
  synchronize(): void;
  /** Free and total device memory in bytes. */
  memInfo(): { free: number; total: number };
  /** Releases the stream, modules and context (memory must have been freed). */
  dispose(): void;
}

/** Every `.entry` name in a PTX text. */
export function ptxEntries(ptx: string): string[] {
  return [...ptx.matchAll(/\.entry\s+([A-Za-z_$][\w$]*)\s*\(/g)].map((m) => m[1]);
}

/** Validates launch dimensions before the driver sees them (its error would not say which). */
export function checkLaunchDims(
  name: string,
  grid: readonly number[],
  block: readonly number[],
  sharedBytes: number,
): void {
  const dims = (what: string, d: readonly number[], max: readonly number[]) => {
    if (d.length !== 3 || d.some((v, i) => !Number.isInteger(v) || v < 1 || v > max[i])) {
      throw new RangeError(
        `launch ${name}: ${what} must be 3 integers in [1, [${max}]], got [${d}]`,
      );
    }
  };
  dims("grid", grid, [2 ** 31 - 1, 65535, 65535]);
  dims("block", block, [1024, 1024, 64]);
  if (block[0] * block[1] * block[2] > 1024) {
    throw new RangeError(`launch ${name}: block [${block}] has more than 1024 threads`);
  }
  if (!Number.isInteger(sharedBytes) || sharedBytes < 0) {
    throw new RangeError(`launch ${name}: sharedBytes must be a non-negative integer`);
  }
}

// Pageable uploads are staged by the driver; we keep each host copy alive until the stream passes
// it, and synchronize once this much is pending, so a long run of writes cannot pile up memory.
const MAX_PENDING_UPLOAD_BYTES = 64 * 2 ** 20;
// Dynamic shared memory above this needs an explicit opt-in per function.
const DEFAULT_SHARED_LIMIT = 48 * 1024;

let currentContext: bigint | null = null;

/** The real device: the primary context of GPU `ordinal`, one non-blocking stream, lazy modules. */
export class CudaDevice implements DeviceApi {
  readonly info: DeviceInfo;
  readonly stream: bigint;
  readonly #cu: CudaDriver;
  readonly #dev: number;
  readonly #ctx: bigint;
  readonly #modules: readonly PtxModule[];
  #entryModule: Map<string, number> | null = null;
  readonly #loaded = new Map<number, bigint>();
  readonly #functions = new Map<string, { fn: bigint; sharedOptIn: number }>();
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #disposed = false;
  #argBlock: Uint8Array | null = null;

  /**
   * Opens GPU `ordinal` of the driver.
   * @param ordinal device index
   * @param modules the PTX modules whose kernels `launch` can run
   * @param driver the driver (default: the process-wide one)
   */
  constructor(ordinal: number, modules: readonly PtxModule[], driver: CudaDriver = cudaDriver()) {
    const count = driver.deviceCount();
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= count) {
      throw new RangeError(
        `device "cuda:${ordinal}": ${count} CUDA device(s) present` +
          (count > 0 ? ` (cuda:0 .. cuda:${count - 1})` : ""),
      );
    }
    this.#cu = driver;
    this.#dev = driver.device(ordinal);
    this.#ctx = driver.primaryCtxRetain(this.#dev);
    this.activate();
    this.stream = driver.streamCreate(CU_STREAM_NON_BLOCKING);
    this.#modules = modules;
    this.info = {
      ordinal,
      name: driver.deviceName(this.#dev),
      computeCapability: driver.computeCapability(this.#dev),
      totalBytes: driver.totalMem(this.#dev),
    };
  }

  activate(): void {
    if (this.#disposed) throw new Error(`cuda:${this.info?.ordinal}: device was disposed`);
    if (currentContext === this.#ctx) return;
    this.#cu.ctxSetCurrent(this.#ctx);
    currentContext = this.#ctx;
  }

  alloc(bytes: number): bigint {
    this.activate();
    try {
      return this.#cu.memAlloc(bytes);
    } catch (err) {
      if (err instanceof CudaError && err.status === CUDA_ERROR_OUT_OF_MEMORY) {
        const { free, total } = this.memInfo();
        throw new DeviceOutOfMemoryError(bytes, `${free} bytes free of ${total}`);
      }
      throw err;
    }
  }

  free(ptr: bigint): void {
    this.activate();
    this.#cu.memFree(ptr);
  }

  htod(dst: bigint, src: ArrayBufferView): void {
    this.activate();
    const copy = new Uint8Array(src.byteLength);
    copy.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    this.#cu.memcpyHtoDAsync(dst, copy, this.stream);
    this.#pending.push(copy);
    this.#pendingBytes += copy.byteLength;
    if (this.#pendingBytes > MAX_PENDING_UPLOAD_BYTES) this.synchronize();
  }

  dtoh(dst: ArrayBufferView, src: bigint): void {
    this.activate();
    this.#cu.memcpyDtoHAsync(dst, src, this.stream);
    this.synchronize();
  }

  dtod(dst: bigint, src: bigint, bytes: number): void {
    this.activate();
    this.#cu.memcpyDtoDAsync(dst, src, bytes, this.stream);
  }

  memset8(dst: bigint, value: number, bytes: number): void {
    this.activate();
    this.#cu.memsetD8Async(dst, value, bytes, this.stream);
  }

  memset32(dst: bigint, value: number, count: number): void {
    this.activate();
    this.#cu.memsetD32Async(dst, value, count, this.stream);
  }

  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void {
    checkLaunchDims(name, grid, block, sharedBytes);
    this.activate();
    const f = this.#function(name);
    if (sharedBytes > DEFAULT_SHARED_LIMIT && sharedBytes > f.sharedOptIn) {
      this.#cu.funcSetAttribute(f.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes);
      f.sharedOptIn = sharedBytes;
    }
    const { data, layout } = packParams(args, name);
    // Held in a field so the garbage collector cannot free the block between taking its address
    // and the call (the driver copies the values during cuLaunchKernel).
    this.#argBlock = new Uint8Array(data);
    const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#argBlock));
    this.#cu.launchKernel(
      f.fn,
      grid,
      block,
      sharedBytes,
      this.stream,
      paramPointers(base, layout),
      name,
    );
  }

  #function(name: string): { fn: bigint; sharedOptIn: number } {
    let f = this.#functions.get(name);
    if (f) return f;
    if (!this.#entryModule) {
      this.#entryModule = new Map();
      this.#modules.forEach((m, i) => {
        for (const e of ptxEntries(m.ptx)) this.#entryModule!.set(e, i);
      });
    }
    const index = this.#entryModule.get(name);
    if (index === undefined) {
      throw new RangeError(
        `launch: no kernel named "${name}" in the PTX modules (${
          this.#modules.map((m) => m.name).join(", ")
        }); rebuild them with \`deno task kernels\``,
      );
    }
    let module = this.#loaded.get(index);
    if (module === undefined) {
      module = this.#cu.moduleLoadData(this.#modules[index].ptx, this.#modules[index].name);
      this.#loaded.set(index, module);
    }
    f = { fn: this.#cu.moduleGetFunction(module, name), sharedOptIn: DEFAULT_SHARED_LIMIT };
    this.#functions.set(name, f);
    return f;
  }

  synchronize(): void {
    this.activate();
    this.#cu.streamSynchronize(this.stream);
    this.#pending = [];
    this.#pendingBytes = 0;
  }

  memInfo(): { free: number; total: number } {
    this.activate();
    return this.#cu.memGetInfo();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.synchronize();
    for (const m of this.#loaded.values()) this.#cu.moduleUnload(m);
    this.#loaded.clear();
    this.#functions.clear();
    this.#cu.streamDestroy(this.stream);
    this.#cu.primaryCtxRelease(this.#dev);
    if (currentContext === this.#ctx) currentContext = null;
    this.#disposed = true;
  }
}
