// Maps device names to backend instances, created on first use.
import type { Backend, Device } from "./backend.ts";
import { CpuBackend } from "./cpu/mod.ts";
import { createCudaBackend, CudaBackend, type CudaMemoryStats } from "./cuda/mod.ts";

const backends = new Map<Device, Backend>();

/** The canonical name of a device: "cuda" is "cuda:0". */
export function canonicalDevice(device: Device): Device {
  return device === "cuda" ? "cuda:0" : device;
}

/**
 * The backend for a device name: "cpu", "cuda" (= "cuda:0") or "cuda:N".
 * @throws RangeError for unknown names and absent GPUs; Error when CUDA is unavailable (saying why)
 */
export function getBackend(device: Device = "cpu"): Backend {
  if (typeof device !== "string") {
    throw new TypeError(
      `device must be a string like "cpu" or "cuda:0", got ${typeof device}`,
    );
  }
  const name = canonicalDevice(device);
  let b = backends.get(name);
  if (b) return b;
  const cuda = /^cuda:(\d+)$/.exec(name);
  if (name === "cpu") b = new CpuBackend();
  else if (cuda) b = createCudaBackend(Number(cuda[1]));
  else {throw new RangeError(
      `unknown device "${device}": expected "cpu", "cuda" or "cuda:N"`,
    );}
  backends.set(name, b);
  return b;
}

/**
 * Installs `backend` as the backend of device `device` (tests, custom devices). Tensors already
 * on the replaced backend keep theirs.
 * @param device the device name the backend answers to (its `device` field must match)
 * @param backend the backend instance
 */
export function setBackend(device: Device, backend: Backend): void {
  const name = canonicalDevice(device);
  if (backend.device !== name) {
    throw new RangeError(
      `setBackend: backend.device is "${backend.device}", not "${name}"`,
    );
  }
  backends.set(name, backend);
}

/**
 * The device to use when the user names none: "cuda" when a CUDA backend can be created here,
 * else "cpu".
 *
 * @example
 * ```ts
 * import { defaultDevice, zeros } from "@denograd/denograd";
 * const x = zeros([2, 2], { device: defaultDevice() });
 * ```
 */
export function defaultDevice(): Device {
  try {
    getBackend("cuda");
    return "cuda";
  } catch {
    return "cpu";
  }
}

/**
 * The caching allocator's counters on a CUDA device (bytes in use, cached, peaks, counts) and the
 * driver's free/total memory.
 * @param device "cuda" or "cuda:N"
 * @example
 * ```ts ignore
 * import { cudaMemoryStats } from "@denograd/denograd";
 * console.log(cudaMemoryStats("cuda").allocatedBytes);
 * ```
 */
export function cudaMemoryStats(device: Device = "cuda"): CudaMemoryStats {
  const b = getBackend(device);
  if (!(b instanceof CudaBackend)) {
    throw new TypeError(`cudaMemoryStats: "${device}" is not a CUDA device`);
  }
  return b.memoryStats();
}

/**
 * Gives a CUDA device's cached (freed) memory back to the driver, e.g. before another process
 * or library needs it.
 * @param device "cuda" or "cuda:N"
 */
export function cudaEmptyCache(device: Device = "cuda"): void {
  const b = getBackend(device);
  if (!(b instanceof CudaBackend)) {
    throw new TypeError(`cudaEmptyCache: "${device}" is not a CUDA device`);
  }
  b.emptyCache();
}
