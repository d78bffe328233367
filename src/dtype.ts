/**
 * Element types. f32 is the reference dtype; i32 holds token ids, indices and masks.
 * @module
 */

/** The element type of a tensor: 32-bit float or 32-bit signed integer. */
export type DType = "f32" | "i32";

/** The typed array that backs a CPU buffer of each dtype. */
export type TypedArray = Float32Array | Int32Array;

/** Bytes per element of a dtype. */
export function dtypeBytes(_dtype: DType): number {
  return 4;
}

/** Allocates a zeroed typed array of `n` elements of `dtype`. */
export function typedArrayFor(dtype: DType, n: number): TypedArray {
  return dtype === "f32" ? new Float32Array(n) : new Int32Array(n);
}

/** Whether `x` is a valid dtype name. */
export function isDType(x: unknown): x is DType {
  return x === "f32" || x === "i32";
}
