/**
 * Seeded counter-based random numbers (Philox4x32-10, the generator cuRAND and PyTorch's CUDA
 * backend use). Element `i` of a draw depends only on (seed, offset, i), so any device can produce
 * the same numbers in parallel, and the state is two integers that fit in a checkpoint.
 * @module
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

// High 32 bits of the 64-bit product of two uint32 (exact, via 16-bit limbs; keeping every
// intermediate a small integer is what keeps V8 fast here).
function mulhi(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const lh = al * bh, hl = ah * bl;
  const mid = ((al * bl) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 block: writes 4 random uint32 for counter (c0, c1, 0, 0) and key (k0, k1). */
export function philox4x32(c0: number, c1: number, k0: number, k1: number, out: Uint32Array): void {
  let x0 = c0 >>> 0, x1 = c1 >>> 0, x2 = 0, x3 = 0;
  let key0 = k0 >>> 0, key1 = k1 >>> 0;
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, x0), lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi(M1, x2), lo1 = Math.imul(M1, x2) >>> 0;
    const y0 = (hi1 ^ x1 ^ key0) >>> 0;
    const y2 = (hi0 ^ x3 ^ key1) >>> 0;
    x0 = y0;
    x1 = lo1;
    x2 = y2;
    x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

/** The generator state: a seed and how many 4-word blocks have been consumed. */
export interface RngState {
  /** The seed given to manualSeed. */
  seed: number;
  /** Counter blocks consumed since seeding. */
  offset: number;
}

const state: RngState = { seed: 0, offset: 0 };

/**
 * Seeds the global generator; draws after it are reproducible on every device.
 *
 * @param seed a non-negative integer below 2^53
 * @example
 * ```ts
 * import { manualSeed, rand } from "@denograd/denograd";
 * manualSeed(123);
 * const a = rand([3]).toArray();
 * manualSeed(123);
 * console.log(rand([3]).toArray(), a); // equal
 * ```
 */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`manualSeed: seed must be a non-negative safe integer, got ${seed}`);
  }
  state.seed = seed;
  state.offset = 0;
}

/** A copy of the global generator state (for checkpoints). */
export function getRngState(): RngState {
  return { ...state };
}

/** Restores a state returned by {@linkcode getRngState}. */
export function setRngState(s: RngState): void {
  if (!Number.isSafeInteger(s?.seed) || !Number.isSafeInteger(s?.offset) || s.offset < 0) {
    throw new TypeError(`setRngState: expected {seed, offset} integers, got ${JSON.stringify(s)}`);
  }
  state.seed = s.seed;
  state.offset = s.offset;
}

/** Reserves `blocks` counter blocks and returns [key0, key1, firstBlock]. */
function reserve(blocks: number): [number, number, number] {
  const first = state.offset;
  state.offset += blocks;
  return [state.seed % 0x100000000, Math.floor(state.seed / 0x100000000), first];
}

/** `n` raw uint32 draws (4 per counter block), consuming ceil(n / 4) blocks. */
function drawU32(n: number): Uint32Array {
  const blocks = Math.ceil(n / 4);
  const [k0, k1, first] = reserve(blocks);
  const out = new Uint32Array(blocks * 4);
  const w = new Uint32Array(4);
  for (let b = 0; b < blocks; b++) {
    const c = first + b;
    philox4x32(c % 0x100000000, Math.floor(c / 0x100000000), k0, k1, w);
    out.set(w, b * 4);
  }
  return out;
}

/** A reserved run of Philox counter blocks: the key and the first counter block. */
export interface PhiloxBlocks {
  /** Philox key, low 32 bits (the seed's low word). */
  key0: number;
  /** Philox key, high 32 bits. */
  key1: number;
  /** First counter block of the run. */
  firstBlock: number;
}

/**
 * Reserves the counter blocks that `uniformArray(n)` would consume (ceil(n / 4)), advancing the
 * global generator identically, without drawing: a kernel that generates the same numbers itself
 * (fused attention's dropout mask) takes the returned key and first block. Uniform `e` of the run
 * is word (e % 4) of philox4x32(firstBlock + floor(e / 4), key) as (word >>> 8) * 2^-24.
 *
 * @param n how many uniforms the run stands for
 * @returns the Philox key and first counter block
 * @example
 * ```ts
 * import { manualSeed, reserveUniformBlocks } from "@denograd/denograd";
 * manualSeed(7);
 * const run = reserveUniformBlocks(10); // blocks 0..2
 * console.log(run.firstBlock, reserveUniformBlocks(1).firstBlock); // 0 3
 * ```
 */
export function reserveUniformBlocks(n: number): PhiloxBlocks {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`reserveUniformBlocks: n must be a non-negative integer, got ${n}`);
  }
  const [key0, key1, firstBlock] = reserve(Math.ceil(n / 4));
  return { key0, key1, firstBlock };
}

/** n uniform floats in [0, 1) with 24 random bits each. */
export function uniformArray(n: number): Float32Array {
  const u = drawU32(n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (u[i] >>> 8) * 5.9604644775390625e-8;
  return out;
}

/** n standard normal floats (Box-Muller on pairs of uniforms). */
export function normalArray(n: number): Float32Array {
  const w = drawU32(n + (n & 1));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    // (w + 0.5) / 2^24 is never 0, so log() stays finite.
    const u1 = ((w[i] >>> 8) + 0.5) * 5.9604644775390625e-8;
    const u2 = ((w[i + 1] >>> 8) + 0.5) * 5.9604644775390625e-8;
    const r = Math.sqrt(-2 * Math.log(u1));
    const t = 2 * Math.PI * u2;
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** n integers uniform in [low, high). */
export function randintArray(n: number, low: number, high: number): Int32Array {
  const u = drawU32(n);
  const out = new Int32Array(n);
  const range = high - low;
  for (let i = 0; i < n; i++) out[i] = low + Math.floor((u[i] / 4294967296) * range);
  return out;
}
