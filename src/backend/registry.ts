// Maps device names to backend instances, created on first use.
import type { Backend, Device } from "./backend.ts";
import { CpuBackend } from "./cpu/mod.ts";

const backends = new Map<Device, Backend>();

/** The backend for a device name ("cpu"); throws a RangeError for unknown devices. */
export function getBackend(device: Device = "cpu"): Backend {
  const name = device === "cuda" ? "cuda:0" : device;
  let b = backends.get(name);
  if (b) return b;
  if (name === "cpu") b = new CpuBackend();
  else if (/^cuda:\d+$/.test(name)) {
    throw new RangeError(`device "${device}": the CUDA backend is not available in this build`);
  } else throw new RangeError(`unknown device "${device}": expected "cpu" or "cuda[:N]"`);
  backends.set(name, b);
  return b;
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
