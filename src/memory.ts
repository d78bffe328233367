/**
 * Explicit memory ownership. Device memory cannot wait for the garbage collector, so every tensor
 * owns a reference to its storage and gives it back on `dispose()`; `tidy(fn)` disposes everything
 * created inside but what `fn` returns; a FinalizationRegistry is only a backstop.
 * @module
 */

import type { Backend, Buffer } from "./backend/backend.ts";

/** Memory counters, see {@linkcode memoryStats}. */
export interface MemoryStats {
  /** Bytes held by live storages (shared views count once). */
  liveBytes: number;
  /** Storages (device buffers) alive. */
  liveBuffers: number;
  /** Tensor objects not yet disposed. */
  liveTensors: number;
  /** Highest liveBytes seen. */
  peakBytes: number;
}

const stats: MemoryStats = { liveBytes: 0, liveBuffers: 0, liveTensors: 0, peakBytes: 0 };

/** Reference-counted device memory shared by a tensor and its views. */
export class Storage {
  #refs = 1;
  /** The backend that owns the buffer. */
  readonly backend: Backend;
  /** The device buffer. */
  readonly buffer: Buffer;

  /** Wraps a freshly allocated buffer (refcount 1). */
  constructor(backend: Backend, buffer: Buffer) {
    this.backend = backend;
    this.buffer = buffer;
    stats.liveBytes += buffer.bytes;
    stats.liveBuffers++;
    if (stats.liveBytes > stats.peakBytes) stats.peakBytes = stats.liveBytes;
  }

  /** Whether the buffer has been freed. */
  get freed(): boolean {
    return this.#refs <= 0;
  }

  /** Whether more than one tensor holds this memory (then it must not be written in place). */
  get shared(): boolean {
    return this.#refs > 1;
  }

  /** Adds a reference (a new view of the same memory). */
  retain(): this {
    this.#refs++;
    return this;
  }

  /** Drops a reference; frees the buffer on the last one. */
  release(): void {
    if (this.#refs <= 0) return;
    if (--this.#refs === 0) {
      stats.liveBytes -= this.buffer.bytes;
      stats.liveBuffers--;
      this.backend.free(this.buffer);
    }
  }
}

/** What a tensor exposes to be tracked by tidy scopes. */
export interface Tracked {
  /** Gives the memory back. */
  dispose(): void;
  /** Whether the memory has been given back. */
  readonly disposed: boolean;
  /** Set by keep(): no tidy scope disposes it. */
  kept: boolean;
}

const backstop = new FinalizationRegistry<Storage>((storage) => {
  stats.liveTensors--;
  storage.release();
});

/** Registers a new tensor: counts it, adds it to the innermost tidy scope, arms the backstop. */
export function track(t: Tracked, storage: Storage): void {
  stats.liveTensors++;
  backstop.register(t, storage, t);
  const scope = scopes[scopes.length - 1];
  if (scope) scope.push(t);
}

/** Called by dispose(): the tensor gave its storage back itself. */
export function untrack(t: Tracked): void {
  stats.liveTensors--;
  backstop.unregister(t);
}

const scopes: Tracked[][] = [];

/**
 * Runs `fn` and disposes every tensor created inside it except those it returns (a tensor, or
 * tensors inside a returned array or plain object) and those marked with {@linkcode keep}.
 *
 * @param fn synchronous function
 * @returns what `fn` returned
 * @example
 * ```ts
 * import { randn, tidy, memoryStats } from "@denograd/denograd";
 * const before = memoryStats().liveBytes;
 * const s = tidy(() => randn([100]).exp().sum()); // temporaries freed
 * console.log(memoryStats().liveBytes - before); // 4: only `s` is alive
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope: Tracked[] = [];
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) {
    throw new TypeError("tidy: fn must be synchronous (it returned a Promise)");
  }
  const returned = new Set<unknown>();
  collect(result, returned, 0);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (t.disposed) continue;
    if (returned.has(t)) {
      if (parent) parent.push(t);
    } else if (!t.kept) t.dispose();
  }
  return result;
}

function collect(x: unknown, out: Set<unknown>, depth: number): void {
  if (x === null || typeof x !== "object" || depth > 4) return;
  if ("dispose" in x && "kept" in x) {
    out.add(x);
    return;
  }
  if (Array.isArray(x)) { for (const v of x) collect(v, out, depth + 1); }
  else if (Object.getPrototypeOf(x) === Object.prototype || x instanceof Map) {
    for (const v of x instanceof Map ? x.values() : Object.values(x)) collect(v, out, depth + 1);
  }
}

/**
 * Marks a tensor so no enclosing {@linkcode tidy} disposes it (parameters, caches).
 *
 * @returns the same tensor
 */
export function keep<T extends Tracked>(t: T): T {
  t.kept = true;
  return t;
}

/**
 * Current memory counters across all devices.
 *
 * @example
 * ```ts
 * import { memoryStats } from "@denograd/denograd";
 * console.log(memoryStats().liveBytes);
 * ```
 */
export function memoryStats(): MemoryStats {
  return { ...stats };
}
