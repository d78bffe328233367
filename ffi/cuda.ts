/**
 * The CUDA driver API (`libcuda.so.1`, installed with the NVIDIA driver) through `Deno.dlopen`:
 * the symbol table, and a thin wrapper whose every call goes through {@linkcode CudaDriver.check},
 * which turns a non-zero `CUresult` into a {@linkcode CudaError} naming the call, the status and
 * the driver's own description. Like tinygrad's ops_cuda.py: no policy here, only the calls.
 *
 * Handles (CUcontext, CUmodule, CUfunction, CUstream, CUevent) and device pointers (CUdeviceptr)
 * are passed as 64-bit integers (`bigint`); out-parameters are small typed arrays.
 * @module
 */

import { ldLibraryPathDirs, openLibrary, SYSTEM_LIB_DIRS } from "./find.ts";

/** `CU_STREAM_NON_BLOCKING`: the stream does not synchronize with the legacy NULL stream. */
export const CU_STREAM_NON_BLOCKING = 0x1;
/** `CU_EVENT_DEFAULT`. */
export const CU_EVENT_DEFAULT = 0x0;
/** `CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT`. */
export const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
/** `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR`. */
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
/** `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR`. */
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
/** `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`. */
export const CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
/** `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`: needed before launching with > 48 KiB. */
export const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
/** `CU_JIT_ERROR_LOG_BUFFER` (cuModuleLoadDataEx option). */
export const CU_JIT_ERROR_LOG_BUFFER = 5;
/** `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES` (cuModuleLoadDataEx option). */
export const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
/** `CUDA_ERROR_OUT_OF_MEMORY`. */
export const CUDA_ERROR_OUT_OF_MEMORY = 2;
/** `CUDA_ERROR_NO_DEVICE`. */
export const CUDA_ERROR_NO_DEVICE = 100;
/** `CUDA_ERROR_NOT_FOUND` (e.g. cuModuleGetFunction with an unknown name). */
export const CUDA_ERROR_NOT_FOUND = 500;

// Every argument type, named once, so the table below reads like the C prototypes.
const RES = "i32"; // CUresult
const HANDLE = "usize"; // CUcontext, CUmodule, CUfunction, CUstream, CUevent (opaque pointers)
const DPTR = "u64"; // CUdeviceptr (unsigned long long)
const SIZE = "usize"; // size_t
const INT = "i32"; // int, CUdevice, enums
const UINT = "u32"; // unsigned int
const OUT = "buffer"; // a pointer to host memory (out-parameters, host copies)

/**
 * The `Deno.dlopen` symbol table. Names are the symbols the driver exports: where cuda.h
 * `#define`s an API to a versioned name (`#define cuMemAlloc cuMemAlloc_v2`), that name is used.
 */
export const CUDA_SYMBOLS = {
  cuGetErrorName: { parameters: [RES, OUT], result: RES },
  cuGetErrorString: { parameters: [RES, OUT], result: RES },
  cuInit: { parameters: [UINT], result: RES },
  cuDriverGetVersion: { parameters: [OUT], result: RES },
  cuDeviceGetCount: { parameters: [OUT], result: RES },
  cuDeviceGet: { parameters: [OUT, INT], result: RES },
  cuDeviceGetName: { parameters: [OUT, INT, INT], result: RES },
  cuDeviceGetAttribute: { parameters: [OUT, INT, INT], result: RES },
  cuDeviceTotalMem_v2: { parameters: [OUT, INT], result: RES },
  cuDevicePrimaryCtxRetain: { parameters: [OUT, INT], result: RES },
  cuDevicePrimaryCtxRelease_v2: { parameters: [INT], result: RES },
  cuCtxSetCurrent: { parameters: [HANDLE], result: RES },
  cuCtxSynchronize: { parameters: [], result: RES },
  cuMemAlloc_v2: { parameters: [OUT, SIZE], result: RES },
  cuMemFree_v2: { parameters: [DPTR], result: RES },
  cuMemGetInfo_v2: { parameters: [OUT, OUT], result: RES },
  cuMemcpyHtoD_v2: { parameters: [DPTR, OUT, SIZE], result: RES },
  cuMemcpyDtoH_v2: { parameters: [OUT, DPTR, SIZE], result: RES },
  cuMemcpyDtoD_v2: { parameters: [DPTR, DPTR, SIZE], result: RES },
  cuMemcpyHtoDAsync_v2: { parameters: [DPTR, OUT, SIZE, HANDLE], result: RES },
  cuMemcpyDtoHAsync_v2: { parameters: [OUT, DPTR, SIZE, HANDLE], result: RES },
  cuMemcpyDtoDAsync_v2: { parameters: [DPTR, DPTR, SIZE, HANDLE], result: RES },
  cuMemsetD8_v2: { parameters: [DPTR, "u8", SIZE], result: RES },
  cuMemsetD32_v2: { parameters: [DPTR, UINT, SIZE], result: RES },
  cuMemsetD8Async: { parameters: [DPTR, "u8", SIZE, HANDLE], result: RES },
  cuMemsetD32Async: { parameters: [DPTR, UINT, SIZE, HANDLE], result: RES },
  cuModuleLoadData: { parameters: [OUT, OUT], result: RES },
  cuModuleLoadDataEx: { parameters: [OUT, OUT, UINT, OUT, OUT], result: RES },
  cuModuleGetFunction: { parameters: [OUT, HANDLE, OUT], result: RES },
  cuModuleUnload: { parameters: [HANDLE], result: RES },
  cuFuncSetAttribute: { parameters: [HANDLE, INT, INT], result: RES },
  // f, grid x/y/z, block x/y/z, sharedMemBytes, stream, kernelParams (void**), extra (void**)
  cuLaunchKernel: {
    parameters: [HANDLE, UINT, UINT, UINT, UINT, UINT, UINT, UINT, HANDLE, OUT, "pointer"],
    result: RES,
  },
  cuStreamCreate: { parameters: [OUT, UINT], result: RES },
  cuStreamSynchronize: { parameters: [HANDLE], result: RES },
  cuStreamDestroy_v2: { parameters: [HANDLE], result: RES },
  cuEventCreate: { parameters: [OUT, UINT], result: RES },
  cuEventRecord: { parameters: [HANDLE, HANDLE], result: RES },
  cuEventSynchronize: { parameters: [HANDLE], result: RES },
  cuEventDestroy_v2: { parameters: [HANDLE], result: RES },
  // CUDA 12.8 added cuEventElapsedTime_v2 (cuda.h 13 #defines the API to it); older drivers
  // export only the first version. Both are optional so either driver opens.
  cuEventElapsedTime_v2: { parameters: [OUT, HANDLE, HANDLE], result: RES, optional: true },
  cuEventElapsedTime: { parameters: [OUT, HANDLE, HANDLE], result: RES, optional: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound driver functions. */
export type CudaSymbols = Deno.DynamicLibrary<typeof CUDA_SYMBOLS>["symbols"];

/** A failed driver call: which call, the CUresult, its name and the driver's description. */
export class CudaError extends Error {
  /** The CUresult, e.g. 2 for CUDA_ERROR_OUT_OF_MEMORY. */
  readonly status: number;
  /** The call that failed, e.g. "cuMemAlloc(1048576 bytes)". */
  readonly call: string;
  /** The status name, e.g. "CUDA_ERROR_OUT_OF_MEMORY". */
  readonly statusName: string;

  /** Builds the message `<call> failed: <NAME> (<status>): <description>`. */
  constructor(status: number, call: string, statusName: string, description: string) {
    super(`${call} failed: ${statusName} (${status}): ${description}`);
    this.name = "CudaError";
    this.status = status;
    this.call = call;
    this.statusName = statusName;
  }
}

/** Folders where distributions, containers and WSL put the driver's libcuda.so.1. */
export function driverLibDirs(): string[] {
  return [
    ...ldLibraryPathDirs(),
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/local/nvidia/lib64", // NVIDIA container toolkit
    "/usr/lib/wsl/lib", // WSL2
    "/run/opengl-driver/lib", // NixOS
    ...SYSTEM_LIB_DIRS,
    // Not /usr/local/cuda/lib64/stubs: the stub loads but every call fails with
    // CUDA_ERROR_STUB_LIBRARY, which would hide the real problem (no driver).
  ];
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** A NUL-terminated UTF-8 copy of `s`, as C `const char*` arguments need. */
export function toCString(s: string): Uint8Array {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/**
 * The driver API, one method per call. Every method checks the status; none keeps state but the
 * library handle.
 */
export class CudaDriver {
  /** The bound functions (for calls this wrapper does not cover). */
  readonly symbols: CudaSymbols;
  /** The path (or loader name) the library was opened from. */
  readonly path: string;
  // Out-parameter scratch, reused: every call is synchronous and single-threaded.
  readonly #u64 = new BigUint64Array(2);
  readonly #i32 = new Int32Array(1);
  readonly #f32 = new Float32Array(1);

  /** Wraps an opened library (see {@linkcode cudaDriver}). */
  constructor(symbols: CudaSymbols, path: string) {
    this.symbols = symbols;
    this.path = path;
  }

  /** Throws a {@linkcode CudaError} for a non-zero status; `what` names the call. */
  check(status: number, what: string): void {
    if (status === 0) return;
    const name = this.#errorText(this.symbols.cuGetErrorName, status) ?? "CUDA_ERROR_UNKNOWN";
    const text = this.#errorText(this.symbols.cuGetErrorString, status) ?? "unrecognized status";
    throw new CudaError(status, what, name, text);
  }

  #errorText(fn: (status: number, out: BigUint64Array) => number, status: number): string | null {
    const out = new BigUint64Array(1);
    if (fn(status, out) !== 0 || out[0] === 0n) return null;
    const ptr = Deno.UnsafePointer.create(out[0]);
    return ptr === null ? null : Deno.UnsafePointerView.getCString(ptr);
  }

  /** cuInit(0): must precede every other call (repeat calls are cheap no-ops). */
  init(): void {
    this.check(this.symbols.cuInit(0), "cuInit");
  }

  /** The driver's CUDA version, e.g. 13000 for 13.0. */
  driverVersion(): number {
    this.check(this.symbols.cuDriverGetVersion(this.#i32), "cuDriverGetVersion");
    return this.#i32[0];
  }

  /** How many CUDA devices the driver sees. */
  deviceCount(): number {
    this.check(this.symbols.cuDeviceGetCount(this.#i32), "cuDeviceGetCount");
    return this.#i32[0];
  }

  /** The CUdevice handle of device `ordinal`. */
  device(ordinal: number): number {
    this.check(this.symbols.cuDeviceGet(this.#i32, ordinal), `cuDeviceGet(${ordinal})`);
    return this.#i32[0];
  }

  /** The device's marketing name, e.g. "NVIDIA H200". */
  deviceName(dev: number): string {
    const buf = new Uint8Array(256);
    this.check(this.symbols.cuDeviceGetName(buf, buf.length, dev), "cuDeviceGetName");
    return cString(buf);
  }

  /** An integer device attribute (CU_DEVICE_ATTRIBUTE_*). */
  deviceAttribute(dev: number, attribute: number): number {
    this.check(
      this.symbols.cuDeviceGetAttribute(this.#i32, attribute, dev),
      `cuDeviceGetAttribute(${attribute})`,
    );
    return this.#i32[0];
  }

  /** Compute capability as [major, minor], e.g. [9, 0] for Hopper. */
  computeCapability(dev: number): [number, number] {
    return [
      this.deviceAttribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
      this.deviceAttribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
    ];
  }

  /** Total device memory in bytes. */
  totalMem(dev: number): number {
    this.check(this.symbols.cuDeviceTotalMem_v2(this.#u64, dev), "cuDeviceTotalMem");
    return Number(this.#u64[0]);
  }

  /** Retains the device's primary context (the one the CUDA runtime, cuBLAS and cuDNN use). */
  primaryCtxRetain(dev: number): bigint {
    this.check(this.symbols.cuDevicePrimaryCtxRetain(this.#u64, dev), "cuDevicePrimaryCtxRetain");
    return this.#u64[0];
  }

  /** Releases a retain of the primary context. */
  primaryCtxRelease(dev: number): void {
    this.check(this.symbols.cuDevicePrimaryCtxRelease_v2(dev), "cuDevicePrimaryCtxRelease");
  }

  /** Binds `ctx` to the calling thread. */
  ctxSetCurrent(ctx: bigint): void {
    this.check(this.symbols.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  }

  /** Waits for all work in the current context. */
  ctxSynchronize(): void {
    this.check(this.symbols.cuCtxSynchronize(), "cuCtxSynchronize");
  }

  /** Device memory of `bytes` (> 0). */
  memAlloc(bytes: number): bigint {
    this.check(this.symbols.cuMemAlloc_v2(this.#u64, BigInt(bytes)), `cuMemAlloc(${bytes} bytes)`);
    return this.#u64[0];
  }

  /** Frees device memory from memAlloc. */
  memFree(ptr: bigint): void {
    this.check(this.symbols.cuMemFree_v2(ptr), "cuMemFree");
  }

  /** Free and total device memory in bytes, as the driver sees them. */
  memGetInfo(): { free: number; total: number } {
    const free = new BigUint64Array(1), total = new BigUint64Array(1);
    this.check(this.symbols.cuMemGetInfo_v2(free, total), "cuMemGetInfo");
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  /** Synchronous host -> device copy of `src`'s bytes. */
  memcpyHtoD(dst: bigint, src: ArrayBufferView): void {
    this.check(
      this.symbols.cuMemcpyHtoD_v2(dst, bytesOf(src), BigInt(src.byteLength)),
      `cuMemcpyHtoD(${src.byteLength} bytes)`,
    );
  }

  /** Synchronous device -> host copy filling `dst`. */
  memcpyDtoH(dst: ArrayBufferView, src: bigint): void {
    this.check(
      this.symbols.cuMemcpyDtoH_v2(bytesOf(dst), src, BigInt(dst.byteLength)),
      `cuMemcpyDtoH(${dst.byteLength} bytes)`,
    );
  }

  /** Host -> device copy queued on `stream` (see the CUDA docs on pageable memory). */
  memcpyHtoDAsync(dst: bigint, src: ArrayBufferView, stream: bigint): void {
    this.check(
      this.symbols.cuMemcpyHtoDAsync_v2(dst, bytesOf(src), BigInt(src.byteLength), stream),
      `cuMemcpyHtoDAsync(${src.byteLength} bytes)`,
    );
  }

  /** Device -> host copy on `stream`; into pageable memory it returns once the copy is done. */
  memcpyDtoHAsync(dst: ArrayBufferView, src: bigint, stream: bigint): void {
    this.check(
      this.symbols.cuMemcpyDtoHAsync_v2(bytesOf(dst), src, BigInt(dst.byteLength), stream),
      `cuMemcpyDtoHAsync(${dst.byteLength} bytes)`,
    );
  }

  /** Device -> device copy of `bytes` queued on `stream`. */
  memcpyDtoDAsync(dst: bigint, src: bigint, bytes: number, stream: bigint): void {
    this.check(
      this.symbols.cuMemcpyDtoDAsync_v2(dst, src, BigInt(bytes), stream),
      `cuMemcpyDtoDAsync(${bytes} bytes)`,
    );
  }

  /** Sets `count` bytes to `value` on `stream`. */
  memsetD8Async(dst: bigint, value: number, count: number, stream: bigint): void {
    this.check(
      this.symbols.cuMemsetD8Async(dst, value, BigInt(count), stream),
      `cuMemsetD8Async(${count} bytes)`,
    );
  }

  /** Sets `count` 32-bit words to `value` (the raw bits) on `stream`; dst 4-byte aligned. */
  memsetD32Async(dst: bigint, value: number, count: number, stream: bigint): void {
    this.check(
      this.symbols.cuMemsetD32Async(dst, value >>> 0, BigInt(count), stream),
      `cuMemsetD32Async(${count} words)`,
    );
  }

  /**
   * Loads a module from PTX text (JIT-compiled for this GPU). A failure includes the JIT's
   * error log, which names the offending PTX line.
   */
  moduleLoadData(ptx: string, what = "module"): bigint {
    const log = new Uint8Array(16384);
    const options = new Int32Array([CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES]);
    // optionValues are void*: the log buffer's address, and the size itself cast to a pointer.
    const values = new BigUint64Array([
      Deno.UnsafePointer.value(Deno.UnsafePointer.of(log)),
      BigInt(log.length),
    ]);
    const status = this.symbols.cuModuleLoadDataEx(
      this.#u64,
      toCString(ptx),
      options.length,
      options,
      values,
    );
    if (status !== 0) {
      const jit = cString(log).trim();
      try {
        this.check(status, `cuModuleLoadData(${what})`);
      } catch (err) {
        if (jit && err instanceof Error) err.message += `\nJIT log:\n${jit}`;
        throw err;
      }
    }
    return this.#u64[0];
  }

  /** The kernel `name` (an `.entry` of the module). */
  moduleGetFunction(module: bigint, name: string): bigint {
    this.check(
      this.symbols.cuModuleGetFunction(this.#u64, module, toCString(name)),
      `cuModuleGetFunction("${name}")`,
    );
    return this.#u64[0];
  }

  /** Unloads a module. */
  moduleUnload(module: bigint): void {
    this.check(this.symbols.cuModuleUnload(module), "cuModuleUnload");
  }

  /** Sets an integer function attribute (CU_FUNC_ATTRIBUTE_*). */
  funcSetAttribute(fn: bigint, attribute: number, value: number): void {
    this.check(
      this.symbols.cuFuncSetAttribute(fn, attribute, value),
      `cuFuncSetAttribute(${attribute}, ${value})`,
    );
  }

  /**
   * Queues a kernel. `params` holds the address of each argument's bytes (the `kernelParams`
   * array); the bytes must stay alive until this returns (the driver copies them at launch).
   */
  launchKernel(
    fn: bigint,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    stream: bigint,
    params: BigUint64Array,
    what = "kernel",
  ): void {
    this.check(
      this.symbols.cuLaunchKernel(
        fn,
        grid[0],
        grid[1],
        grid[2],
        block[0],
        block[1],
        block[2],
        sharedBytes,
        stream,
        params,
        null,
      ),
      `cuLaunchKernel(${what}, grid [${grid}], block [${block}], shared ${sharedBytes} B)`,
    );
  }

  /** A new stream (flags: CU_STREAM_NON_BLOCKING or 0). */
  streamCreate(flags: number): bigint {
    this.check(this.symbols.cuStreamCreate(this.#u64, flags), "cuStreamCreate");
    return this.#u64[0];
  }

  /** Waits until all work queued on `stream` is done; reports asynchronous kernel faults. */
  streamSynchronize(stream: bigint): void {
    this.check(this.symbols.cuStreamSynchronize(stream), "cuStreamSynchronize");
  }

  /** Destroys a stream (its queued work still completes). */
  streamDestroy(stream: bigint): void {
    this.check(this.symbols.cuStreamDestroy_v2(stream), "cuStreamDestroy");
  }

  /** A new timing event. */
  eventCreate(flags = CU_EVENT_DEFAULT): bigint {
    this.check(this.symbols.cuEventCreate(this.#u64, flags), "cuEventCreate");
    return this.#u64[0];
  }

  /** Records `event` at the current end of `stream`. */
  eventRecord(event: bigint, stream: bigint): void {
    this.check(this.symbols.cuEventRecord(event, stream), "cuEventRecord");
  }

  /** Waits until `event` has happened. */
  eventSynchronize(event: bigint): void {
    this.check(this.symbols.cuEventSynchronize(event), "cuEventSynchronize");
  }

  /** Milliseconds between two recorded (and completed) events. */
  eventElapsedTime(start: bigint, end: bigint): number {
    const fn = this.symbols.cuEventElapsedTime_v2 ?? this.symbols.cuEventElapsedTime;
    if (fn === null) throw new Error(`${this.path} exports no cuEventElapsedTime`);
    this.check(fn(this.#f32, start, end), "cuEventElapsedTime");
    return this.#f32[0];
  }

  /** Destroys an event. */
  eventDestroy(event: bigint): void {
    this.check(this.symbols.cuEventDestroy_v2(event), "cuEventDestroy");
  }
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

let cached: CudaDriver | Error | undefined;

/**
 * The process-wide CUDA driver, opened and initialised (`cuInit`) on first use.
 * `DENOGRAD_LIBCUDA=/path/to/libcuda.so.1` picks a specific library.
 * @returns the driver
 * @throws Error when libcuda cannot be found (naming every path tried and that the NVIDIA driver
 *   provides it) or cuInit fails (e.g. CUDA_ERROR_NO_DEVICE); the same error on every later call
 * @example
 * ```ts ignore
 * const cu = cudaDriver();
 * console.log(cu.deviceCount(), cu.deviceName(cu.device(0)));
 * ```
 */
export function cudaDriver(): CudaDriver {
  if (cached === undefined) {
    try {
      const { symbols, path } = openLibrary({
        name: "CUDA driver (libcuda)",
        envVar: "DENOGRAD_LIBCUDA",
        candidates: ["libcuda.so.1", "libcuda.so"],
        dirs: driverLibDirs(),
        provides: "the NVIDIA GPU driver, e.g. apt-get install nvidia-driver-<version> or " +
          "libnvidia-compute-<version>; containers need the NVIDIA container toolkit",
      }, CUDA_SYMBOLS);
      const driver = new CudaDriver(symbols, path);
      driver.init();
      cached = driver;
    } catch (err) {
      cached = err instanceof Error ? err : new Error(String(err));
    }
  }
  if (cached instanceof Error) throw cached;
  return cached;
}
