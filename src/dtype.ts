/**
 * Element types. f32 is the reference dtype; i32 holds token ids, indices and masks; bf16
 * (bfloat16: the upper 16 bits of an f32) is the compact storage type of mixed precision, with all
 * arithmetic done in f32.
 * @module
 */

/** The element type of a tensor: 32-bit float, 32-bit signed integer, or bfloat16. */
export type DType = "f32" | "i32" | "bf16";

/**
 * The host array a tensor's values are read into: Float32Array for f32 and bf16 (bf16 values are
 * widened exactly), Int32Array for i32.
 */
export type TypedArray = Float32Array | Int32Array;

/** Raw storage bits as written to a buffer: TypedArray, or Uint16Array of bf16 bit patterns. */
export type StorageArray = TypedArray | Uint16Array;

/** Every dtype name, for messages and validation. */
export const DTYPES: readonly DType[] = ["f32", "i32", "bf16"];

/**
 * Bytes per element of a dtype.
 * @example
 * ```ts
 * import { dtypeBytes } from "@denograd/denograd";
 * console.log(dtypeBytes("bf16")); // 2
 * ```
 */
export function dtypeBytes(dtype: DType): number {
  return dtype === "bf16" ? 2 : 4;
}

/** Allocates a zeroed host array of `n` elements as {@linkcode TypedArray} holds `dtype`. */
export function typedArrayFor(dtype: DType, n: number): TypedArray {
  return dtype === "i32" ? new Int32Array(n) : new Float32Array(n);
}

/** Whether `x` is a valid dtype name. */
export function isDType(x: unknown): x is DType {
  return x === "f32" || x === "i32" || x === "bf16";
}

/** The index of the first NaN or infinite element of `values`, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

/** Whether the dtype holds floating-point values (f32 or bf16). */
export function isFloatDType(dtype: DType): boolean {
  return dtype !== "i32";
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * The bf16 bit pattern nearest to `x` (round-to-nearest-even, as torch and CUDA's
 * `__float2bfloat16` do); NaN stays a (quiet) NaN, overflow rounds to infinity.
 * @example
 * ```ts
 * import { f32ToBf16Bits } from "@denograd/denograd";
 * console.log(f32ToBf16Bits(1).toString(16)); // "3f80"
 * ```
 */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  // A NaN must not round into infinity: keep its sign and top payload bits, force the quiet bit.
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x0040;
  // Add 0x7FFF plus the lowest kept bit: ties go to the even result, as IEEE rounding does.
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/**
 * The f32 value of a bf16 bit pattern (exact: bf16 is a truncated f32).
 * @example
 * ```ts
 * import { bf16BitsToF32 } from "@denograd/denograd";
 * console.log(bf16BitsToF32(0x3fc0)); // 1.5
 * ```
 */
export function bf16BitsToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

/** Rounds every value of `src` to bf16 bit patterns (round-to-nearest-even). */
export function toBf16Array(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < out.length; i++) out[i] = f32ToBf16Bits(src[i]);
  return out;
}

/** Widens bf16 bit patterns to f32 values. */
export function fromBf16Array(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}
