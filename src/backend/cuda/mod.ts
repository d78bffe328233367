/**
 * The CUDA backend: driver API, caching allocator, our kernels and cuBLAS, on one stream.
 * Select it by device name: `"cuda"` (= `"cuda:0"`) or `"cuda:N"`.
 * @module
 */

import { cudaDriver } from "../../../ffi/cuda.ts";
import { CudaBackend } from "./cuda_backend.ts";
import { CudaDevice } from "./device.ts";
import type { PtxModule } from "./device.ts";

/**
 * Whether this process could create a CUDA backend: the FFI is granted and libcuda opens. Asked
 * only when the permissions the probe needs are granted (so importing never prompts); when they
 * are not all granted but the FFI is, the answer is "maybe".
 */
function cudaMayWork(): boolean {
  const granted = (d: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(d).state === "granted";
  if (!granted({ name: "ffi" })) return false;
  if (!granted({ name: "read" }) || !granted({ name: "env", variable: "DENOGRAD_LIBCUDA" })) {
    return true;
  }
  try {
    cudaDriver();
    return true;
  } catch {
    return false; // the same error comes back from cudaDriver() when a backend is asked for
  }
}

// The kernels' PTX is 3.4 MB of source (about a third of importing the library): it is loaded
// only where a CUDA backend can exist, not on CPU-only machines.
const PTX_MODULES: readonly PtxModule[] | null = cudaMayWork()
  ? (await import("./_ptx.ts")).PTX_MODULES
  : null;

export {
  CudaBackend,
  type CudaBackendOptions,
  CudaBuffer,
  type CudaMemoryStats,
  LT_WORKSPACE_BYTES,
} from "./cuda_backend.ts";
export { type AllocatorStats, type Block, CachingAllocator, sizeClass } from "./allocator.ts";
export {
  CudaDevice,
  type DeviceApi,
  type DeviceInfo,
  DeviceOutOfMemoryError,
  type PtxModule,
} from "./device.ts";
export type { KernelArg, KernelLauncher } from "./launcher.ts";

/** Whether CUDA can be used here, and if not, why (the driver's or the loader's words). */
export type CudaStatus =
  | { readonly available: true; readonly deviceCount: number; readonly driverVersion: number }
  | { readonly available: false; readonly reason: string };

/**
 * Probes the CUDA driver without creating a backend: is libcuda loadable, does cuInit succeed,
 * how many devices are there.
 * @returns availability with the device count, or the reason it is unavailable
 * @example
 * ```ts
 * import { cudaStatus } from "@denograd/denograd";
 * const s = cudaStatus();
 * console.log(s.available ? `${s.deviceCount} GPU(s)` : `no CUDA: ${s.reason}`);
 * ```
 */
export function cudaStatus(): CudaStatus {
  try {
    const cu = cudaDriver();
    const deviceCount = cu.deviceCount();
    if (deviceCount === 0) return { available: false, reason: "the CUDA driver sees no device" };
    return { available: true, deviceCount, driverVersion: cu.driverVersion() };
  } catch (err) {
    return { available: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * A backend on GPU `ordinal` (the registry calls this for "cuda:N").
 * @throws Error when CUDA is unavailable (the message says why: no libcuda, with every path
 *   tried, or the driver's error); RangeError when there is no device `ordinal`
 */
export function createCudaBackend(ordinal: number): CudaBackend {
  const name = `cuda:${ordinal}`;
  let cu;
  try {
    cu = cudaDriver();
  } catch (err) {
    throw new Error(
      `device "${name}": the CUDA backend is not available: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const count = cu.deviceCount();
  if (ordinal >= count) {
    throw new RangeError(
      `device "${name}": there ${count === 1 ? "is 1 CUDA device" : `are ${count} CUDA devices`}` +
        (count > 0 ? ` (cuda:0 .. cuda:${count - 1})` : ""),
    );
  }
  if (!PTX_MODULES) {
    throw new Error(
      `device "${name}": the CUDA kernels were not loaded when denograd was imported, since ` +
        "--allow-ffi was not granted then; grant it at startup (deno run --allow-ffi ...)",
    );
  }
  return new CudaBackend(new CudaDevice(ordinal, PTX_MODULES, cu));
}
