/**
 * A caching allocator over a {@linkcode DeviceApi}: `cuMemAlloc`/`cuMemFree` are slow and
 * synchronising, and a training step frees and allocates the same sizes every iteration, so freed
 * blocks are kept on free lists by size class and handed out again. All work runs on the device's
 * one stream, so a block freed after a kernel was queued can be reused by a later kernel at once.
 * @module
 */

import { type DeviceApi, DeviceOutOfMemoryError } from "./device.ts";

/** Sizes up to this are "small" and rounded to {@linkcode SMALL_GRANULE}. */
export const SMALL_LIMIT = 2 ** 20;
/** Rounding of small requests (also the alignment every block gets). */
export const SMALL_GRANULE = 512;
/** Rounding of large requests. */
export const LARGE_GRANULE = 2 * 2 ** 20;

/**
 * The size class of a request: small requests (<= 1 MiB) round up to a multiple of 512 B, large
 * ones to a multiple of 2 MiB; 0 bytes take one small granule (every block has an address).
 * Large blocks waste at most 2 MiB each; exact-class reuse suits training, whose sizes repeat.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= SMALL_LIMIT) return Math.max(1, Math.ceil(bytes / SMALL_GRANULE)) * SMALL_GRANULE;
  return Math.ceil(bytes / LARGE_GRANULE) * LARGE_GRANULE;
}

/** Counters of a {@linkcode CachingAllocator}. */
export interface AllocatorStats {
  /** Bytes in blocks handed out and not yet freed (size-class rounded). */
  allocatedBytes: number;
  /** Bytes held from the device: allocated plus cached. */
  reservedBytes: number;
  /** Bytes in freed blocks kept for reuse. */
  cachedBytes: number;
  /** Highest allocatedBytes seen. */
  peakAllocatedBytes: number;
  /** Highest reservedBytes seen. */
  peakReservedBytes: number;
  /** Blocks handed out and not yet freed. */
  liveBlocks: number;
  /** alloc() calls. */
  allocs: number;
  /** alloc() calls served from the cache. */
  cacheHits: number;
  /** Device allocations made (cache misses). */
  deviceAllocs: number;
  /** Device frees made (emptyCache, OOM recovery). */
  deviceFrees: number;
  /** Times an allocation failed, the cache was emptied, and it was retried. */
  oomRetries: number;
}

/** One block of device memory. */
export interface Block {
  /** Device address. */
  readonly ptr: bigint;
  /** Size class in bytes (>= the request). */
  readonly size: number;
}

/** Size-class free lists with statistics and out-of-memory recovery. */
export class CachingAllocator {
  readonly #device: DeviceApi;
  readonly #free = new Map<number, bigint[]>();
  readonly #live = new Map<bigint, number>();
  readonly #stats: AllocatorStats = {
    allocatedBytes: 0,
    reservedBytes: 0,
    cachedBytes: 0,
    peakAllocatedBytes: 0,
    peakReservedBytes: 0,
    liveBlocks: 0,
    allocs: 0,
    cacheHits: 0,
    deviceAllocs: 0,
    deviceFrees: 0,
    oomRetries: 0,
  };

  /** An empty allocator over `device`. */
  constructor(device: DeviceApi) {
    this.#device = device;
  }

  /**
   * A block of at least `bytes` bytes: a cached one of the same size class, or fresh memory.
   * When the device is out of memory the cache is released and the allocation retried once.
   * @throws RangeError naming the request, the device's free/total memory and what is in use;
   *   the allocator stays usable
   */
  alloc(bytes: number): Block {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`alloc: bytes must be a non-negative integer, got ${bytes}`);
    }
    const size = sizeClass(bytes);
    const s = this.#stats;
    s.allocs++;
    let ptr = this.#free.get(size)?.pop();
    if (ptr !== undefined) {
      s.cacheHits++;
      s.cachedBytes -= size;
    } else {
      ptr = this.#deviceAlloc(bytes, size);
      s.reservedBytes += size;
      s.peakReservedBytes = Math.max(s.peakReservedBytes, s.reservedBytes);
    }
    this.#live.set(ptr, size);
    s.liveBlocks++;
    s.allocatedBytes += size;
    s.peakAllocatedBytes = Math.max(s.peakAllocatedBytes, s.allocatedBytes);
    return { ptr, size };
  }

  #deviceAlloc(bytes: number, size: number): bigint {
    let ptr = this.#tryDeviceAlloc(size);
    if (ptr !== null) return ptr;
    // Out of memory: cached blocks of other sizes may be what is missing. Give them back, retry.
    this.#stats.oomRetries++;
    this.emptyCache();
    ptr = this.#tryDeviceAlloc(size);
    if (ptr !== null) return ptr;
    const { free, total } = this.#device.memInfo();
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    throw new RangeError(
      `cuda:${this.#device.info.ordinal}: out of memory allocating ${bytes} bytes ` +
        `(a ${mib(size)} block): the device has ${mib(free)} free of ${mib(total)}, ` +
        `${mib(this.#stats.allocatedBytes)} held by live tensors of this process ` +
        `(the cache was emptied and the allocation retried). Free tensors (dispose/tidy) or ` +
        `use smaller batches.`,
    );
  }

  /** Fresh device memory, or null when the device is out of memory. */
  #tryDeviceAlloc(size: number): bigint | null {
    try {
      const ptr = this.#device.alloc(size);
      this.#stats.deviceAllocs++;
      return ptr;
    } catch (err) {
      if (err instanceof DeviceOutOfMemoryError) return null;
      throw err;
    }
  }

  /** Returns a block to its size class's free list (the memory stays reserved). */
  free(block: Block): void {
    const size = this.#live.get(block.ptr);
    if (size === undefined) {
      throw new Error(`free: block 0x${block.ptr.toString(16)} is not allocated (double free?)`);
    }
    this.#live.delete(block.ptr);
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(block.ptr);
    const s = this.#stats;
    s.liveBlocks--;
    s.allocatedBytes -= size;
    s.cachedBytes += size;
  }

  /** Gives every cached block back to the device (after the queued work that may use them). */
  emptyCache(): void {
    if (this.#stats.cachedBytes === 0) return;
    this.#device.synchronize();
    for (const [size, list] of this.#free) {
      for (const ptr of list) {
        this.#device.free(ptr);
        this.#stats.deviceFrees++;
        this.#stats.reservedBytes -= size;
        this.#stats.cachedBytes -= size;
      }
    }
    this.#free.clear();
  }

  /** A snapshot of the counters. */
  stats(): AllocatorStats {
    return { ...this.#stats };
  }
}
