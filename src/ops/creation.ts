/**
 * Creating tensors: from data, constants, ranges, and seeded random draws.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { getBackend } from "../backend/registry.ts";
import { type DType, isDType, type StorageArray, toBf16Array } from "../dtype.ts";
import { normalArray, randintArray, uniformArray } from "../random.ts";
import { type NestedArray, Tensor } from "../tensor.ts";
import { checkShape, fmt, numel } from "../_shape.ts";

/**
 * Where and how a new tensor is made.
 *
 * @example
 * ```ts
 * import { zeros } from "@denograd/denograd";
 * using w = zeros([2, 2], { dtype: "f32", device: "cpu", requiresGrad: true });
 * console.log(w.dtype, w.device, w.requiresGrad); // f32 cpu true
 * ```
 */
export interface TensorOptions {
  /** "f32" (default), "i32" or "bf16" (values rounded to nearest even). */
  dtype?: DType;
  /** Device name, default "cpu". */
  device?: Device;
  /** Track gradients for this (f32) leaf. */
  requiresGrad?: boolean;
}

/**
 * Options of {@linkcode tensor}: a typed array may be given with an explicit shape.
 *
 * @example
 * ```ts
 * import { tensor } from "@denograd/denograd";
 * using x = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
 * console.log(x.toArray()); // [[1, 2, 3], [4, 5, 6]]
 * ```
 */
export interface FromDataOptions extends TensorOptions {
  /** Shape for flat data (default: [data.length]). */
  shape?: readonly number[];
}

function make(
  shape: readonly number[],
  dtype: DType,
  opts: TensorOptions,
  host?: StorageArray,
): Tensor {
  if (!isDType(dtype)) {
    throw new TypeError(`unknown dtype "${dtype}": expected "f32", "i32" or "bf16"`);
  }
  const backend = getBackend(opts.device ?? "cpu");
  const t = Tensor.empty(shape, dtype, backend);
  // bf16 is stored as bit patterns: numbers given as f32/i32 arrays are rounded here.
  const bits = dtype === "bf16" && host && !(host instanceof Uint16Array)
    ? toBf16Array(host)
    : host;
  if (bits && bits.length) backend.write(t.storage.buffer, bits);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

const I32_MIN = -(2 ** 31), I32_LIMIT = 2 ** 31;

/** Throws unless `v` converts to i32 without overflow (fractions truncate, as in PyTorch). */
function checkI32(op: string, v: number, where: string): void {
  if (!(v >= I32_MIN && v < I32_LIMIT)) {
    throw new RangeError(
      `${op}: ${v}${where} cannot be converted to i32 without overflow ` +
        `(i32 holds ${I32_MIN}..${I32_LIMIT - 1})`,
    );
  }
}

function hostArray(op: string, dtype: DType, data: ArrayLike<number>): StorageArray {
  if (dtype === "bf16") return toBf16Array(data);
  if (dtype === "f32") return Float32Array.from(data);
  if (data instanceof Int32Array) return Int32Array.from(data);
  for (let i = 0; i < data.length; i++) checkI32(op, data[i], ` at index ${i}`);
  return Int32Array.from(data);
}

/**
 * A tensor from nested arrays of numbers or a typed array (copied).
 * Nested arrays default to f32; Int32Array (and other integer arrays) to i32.
 *
 * @param data a number, nested arrays of numbers, or a typed array (read with `opts.shape`)
 * @param opts dtype, device, requiresGrad, and for flat typed arrays a shape
 * @returns a new tensor holding a copy of `data`
 * @example
 * ```ts
 * import { tensor } from "@denograd/denograd";
 * const a = tensor([[1, 2, 3], [4, 5, 6]]);               // f32 [2, 3]
 * const ids = tensor(new Int32Array([5, 7]), { shape: [1, 2] }); // i32 [1, 2]
 * console.log(a.dtype, a.shape, ids.dtype, ids.toArray()); // f32 [2, 3] i32 [[5, 7]]
 * ```
 */
export function tensor(data: NestedArray | ArrayLike<number>, opts: FromDataOptions = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const arr = data as unknown as ArrayLike<number>;
    const isInt = !(data instanceof Float32Array || data instanceof Float64Array);
    const dtype = opts.dtype ?? (isInt ? "i32" : "f32");
    const shape = opts.shape ?? [arr.length];
    checkShape("tensor", shape);
    if (numel(shape) !== arr.length) {
      throw new RangeError(
        `tensor: shape ${fmt(shape)} needs ${numel(shape)} elements, data has ${arr.length}`,
      );
    }
    return make(shape, dtype, opts, hostArray("tensor", dtype, arr));
  }
  if (typeof data === "number") {
    return make([], opts.dtype ?? "f32", opts, hostArray("tensor", opts.dtype ?? "f32", [data]));
  }
  if (!Array.isArray(data)) {
    throw new TypeError(
      `tensor: data must be a number, nested arrays or a typed array, got ${typeof data}`,
    );
  }
  const shape: number[] = [];
  for (let level: unknown = data; Array.isArray(level); level = level[0]) shape.push(level.length);
  const flat: number[] = [];
  const walk = (x: unknown, dim: number, path: string) => {
    if (dim === shape.length) {
      if (typeof x !== "number") {
        throw new TypeError(`tensor: element at ${path} is ${typeof x}, not a number`);
      }
      flat.push(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim]) {
      throw new RangeError(
        `tensor: ragged nested array at ${path || "top"}: expected length ${shape[dim]}`,
      );
    }
    for (let i = 0; i < x.length; i++) walk(x[i], dim + 1, `${path}[${i}]`);
  };
  walk(data, 0, "");
  if (opts.shape) {
    throw new TypeError(
      "tensor: options.shape is only for flat typed arrays; reshape() nested data instead",
    );
  }
  const dtype = opts.dtype ?? "f32";
  return make(shape, dtype, opts, hostArray("tensor", dtype, flat));
}

/**
 * Alias of {@linkcode tensor}.
 *
 * @param data a number, nested arrays of numbers, or a typed array
 * @param opts dtype, device, requiresGrad, and for flat typed arrays a shape
 * @returns a new tensor holding a copy of `data`
 * @example
 * ```ts
 * import { fromArray } from "@denograd/denograd";
 * using x = fromArray(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] });
 * console.log(x.toArray()); // [[1, 2], [3, 4]]
 * ```
 */
export const fromArray: (data: NestedArray | ArrayLike<number>, opts?: FromDataOptions) => Tensor =
  tensor;

/**
 * A tensor of `shape` filled with `value`.
 *
 * @param shape dimensions of the result
 * @param value the fill value (an integer in i32's range for i32)
 * @param opts dtype (default f32), device, requiresGrad
 * @returns a new tensor of `shape` with every element `value`
 * @example
 * ```ts
 * import { full } from "@denograd/denograd";
 * console.log(full([2], 7).toArray()); // [7, 7]
 * ```
 */
export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  checkShape("full", shape);
  if (typeof value !== "number") {
    throw new TypeError(`full: value must be a number, got ${typeof value}`);
  }
  if (opts.dtype === "i32") checkI32("full", value, "");
  const t = make(shape, opts.dtype ?? "f32", { ...opts, requiresGrad: false });
  if (value !== 0) t.backend.fill(t._view(), value);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

/**
 * Zeros of `shape`.
 *
 * @param shape dimensions of the result
 * @param opts dtype (default f32), device, requiresGrad
 * @returns a new tensor of zeros
 * @example
 * ```ts
 * import { zeros } from "@denograd/denograd";
 * using z = zeros([2, 3], { dtype: "i32" });
 * console.log(z.dtype, z.toArray()); // i32 [[0, 0, 0], [0, 0, 0]]
 * ```
 */
export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  checkShape("zeros", shape);
  const t = make(shape, opts.dtype ?? "f32", { ...opts, requiresGrad: false });
  t.backend.fill(t._view(), 0);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

/**
 * Ones of `shape`.
 *
 * @param shape dimensions of the result
 * @param opts dtype (default f32), device, requiresGrad
 * @returns a new tensor of ones
 * @example
 * ```ts
 * import { ones } from "@denograd/denograd";
 * using o = ones([2, 2]);
 * console.log(o.toArray()); // [[1, 1], [1, 1]]
 * ```
 */
export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/**
 * Zeros with `x`'s shape, dtype and device.
 *
 * @param x the tensor whose shape, dtype and device are copied
 * @param opts overrides of dtype, device, requiresGrad
 * @returns a new tensor of zeros shaped like `x`
 * @example
 * ```ts
 * import { tensor, zerosLike } from "@denograd/denograd";
 * using x = tensor([[1, 2], [3, 4]]);
 * using z = zerosLike(x);
 * console.log(z.dtype, z.toArray()); // f32 [[0, 0], [0, 0]]
 * ```
 */
export function zerosLike(x: Tensor, opts: TensorOptions = {}): Tensor {
  return zeros(x.shape, { dtype: x.dtype, device: x.device, ...opts });
}

/**
 * Ones with `x`'s shape, dtype and device.
 *
 * @param x the tensor whose shape, dtype and device are copied
 * @param opts overrides of dtype, device, requiresGrad
 * @returns a new tensor of ones shaped like `x`
 * @example
 * ```ts
 * import { onesLike, tensor } from "@denograd/denograd";
 * using ids = tensor([4, 5, 6], { dtype: "i32" });
 * using o = onesLike(ids);
 * console.log(o.dtype, o.toArray()); // i32 [1, 1, 1]
 * ```
 */
export function onesLike(x: Tensor, opts: TensorOptions = {}): Tensor {
  return full(x.shape, 1, { dtype: x.dtype, device: x.device, ...opts });
}

/**
 * Values from `start` (inclusive) to `end` (exclusive) by `step`; `arange(n)` is 0..n-1.
 * Integer arguments give i32 unless a dtype is given.
 *
 * @param start the first value, or the end when `end` is omitted (then start is 0)
 * @param end the bound, not included
 * @param step the spacing, non-zero (negative counts down)
 * @param opts dtype (default i32 for integer arguments, else f32), device, requiresGrad
 * @returns a 1-D tensor of ceil((end - start) / step) values
 * @example
 * ```ts
 * import { arange } from "@denograd/denograd";
 * console.log(arange(1, 2, 0.25).toArray()); // [1, 1.25, 1.5, 1.75]
 * ```
 */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  for (const v of [start, end, step]) {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TypeError(`arange: arguments must be finite numbers`);
    }
  }
  if (step === 0) throw new RangeError("arange: step must be non-zero");
  const n = Math.max(Math.ceil((end - start) / step), 0);
  const dtype = opts.dtype ?? ([start, end, step].every(Number.isInteger) ? "i32" : "f32");
  if (dtype === "i32" && n > 0) {
    checkI32("arange", start, " (start)");
    checkI32("arange", start + (n - 1) * step, " (the last value)");
  }
  const host = dtype === "i32" ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) host[i] = start + i * step;
  return make([n], dtype, opts, host);
}

/**
 * Uniform random f32 in [0, 1) from the seeded generator.
 *
 * @param shape dimensions of the result
 * @param opts device, requiresGrad (the dtype is always f32)
 * @returns a new f32 tensor of uniform draws
 * @example
 * ```ts
 * import { manualSeed, rand } from "@denograd/denograd";
 * manualSeed(0);
 * using u = rand([3]);
 * console.log(u.toArray()); // [0.3990..., 0.8805..., 0.7357...]
 * ```
 */
export function rand(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  checkShape("rand", shape);
  return make(shape, "f32", opts, uniformArray(numel(shape)));
}

/**
 * Standard normal random f32 from the seeded generator.
 *
 * @param shape dimensions of the result
 * @param opts device, requiresGrad (the dtype is always f32)
 * @returns a new f32 tensor of draws from N(0, 1)
 * @example
 * ```ts
 * import { manualSeed, randn } from "@denograd/denograd";
 * manualSeed(0);
 * using z = randn([2, 2]);
 * console.log(z.toArray()); // [[0.9911..., -0.9246...], [-0.6176..., -0.4820...]]
 * ```
 */
export function randn(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  checkShape("randn", shape);
  return make(shape, "f32", opts, normalArray(numel(shape)));
}

/**
 * Uniform random integers in [low, high) (i32) from the seeded generator.
 *
 * @param low the smallest value drawn (an integer)
 * @param high the bound, not drawn (an integer > low)
 * @param shape dimensions of the result
 * @param opts dtype (default i32), device; integer tensors cannot require gradients
 * @returns a new tensor of integer draws
 * @example
 * ```ts
 * import { manualSeed, randint } from "@denograd/denograd";
 * manualSeed(0);
 * using r = randint(0, 10, [5]);
 * console.log(r.toArray()); // [3, 8, 7, 6, 9]
 * ```
 */
export function randint(
  low: number,
  high: number,
  shape: readonly number[],
  opts: TensorOptions = {},
): Tensor {
  checkShape("randint", shape);
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new RangeError(`randint: need integers low < high, got ${low}, ${high}`);
  }
  if (opts.requiresGrad) throw new TypeError("randint: integer tensors cannot require gradients");
  return make(shape, opts.dtype ?? "i32", opts, randintArray(numel(shape), low, high));
}
