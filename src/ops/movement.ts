/**
 * Movement ops: views that share storage (reshape, transpose, slice, expand, ...) and copies that
 * gather data (contiguous, cat, indexSelect, gather). Backward of a view is the inverse view.
 * @module
 */

import type { View } from "../backend/backend.ts";
import { attach } from "../autograd.ts";
import type { Tensor } from "../tensor.ts";
import { fmt, inferShape, normAxis, numel, viewStrides } from "../_shape.ts";
import { checkDType, checkSameDevice, checkTensor, empty, renameOp, sumTo } from "./_helpers.ts";

/** A graph-recorded view of `x` with new geometry; `back` maps the view's gradient to x's. */
function viewOf(
  op: string,
  x: Tensor,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
  back: (g: Tensor) => Tensor,
): Tensor {
  const out = x.alias(shape, strides, offset);
  return attach(out, op, [x], (g) => [back(g)]);
}

function copyInto(src: Tensor, dst: View): void {
  src.backend.unary("copy", src._view(), dst);
}

/**
 * A contiguous copy of `x` (differentiable).
 *
 * @param x the input tensor
 * @returns a new contiguous tensor with its own storage
 * @example
 * ```ts
 * import { clone, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 2], [3, 4]]);
 * using t = x.transpose(0, 1); // a strided view
 * using c = clone(t);
 * console.log(t.isContiguous, c.isContiguous, c.toArray()); // false true [[1, 3], [2, 4]]
 * ```
 */
export function clone(x: Tensor): Tensor {
  checkTensor("clone", x);
  const out = empty(x.shape, x.dtype, x);
  copyInto(x, out._view());
  return attach(out, "clone", [x], (g) => [g]);
}

/**
 * `x` itself when already contiguous (like PyTorch), else a contiguous copy. Check
 * `result !== x` before disposing the result, or you dispose `x`.
 *
 * @param x the input tensor
 * @returns `x`, or a new contiguous copy of it
 * @example
 * ```ts
 * import { contiguous, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 2], [3, 4]]);
 * console.log(contiguous(x) === x); // true: already contiguous
 * using t = x.transpose(0, 1);
 * const c = contiguous(t);
 * console.log(c === t, c.toArray()); // false [[1, 3], [2, 4]]
 * if (c !== t) c.dispose();
 * ```
 */
export function contiguous(x: Tensor): Tensor {
  checkTensor("contiguous", x);
  return x.isContiguous ? x : clone(x);
}

/**
 * Views `x` with a new shape (one dim may be -1), copying only if the strides demand it.
 *
 * @param x the input tensor
 * @param shape the new shape, with as many elements as x (one entry may be -1: inferred)
 * @returns a view of x, or a copy when x's strides do not allow one
 * @example
 * ```ts
 * import { arange } from "@denograd/denograd";
 * console.log(arange(6).reshape([2, -1]).shape); // [2, 3]
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor("reshape", x);
  const target = inferShape("reshape", shape, x.size, x.shape);
  const strides = viewStrides(x.shape, x.strides, target);
  if (strides) return viewOf("reshape", x, target, strides, x.offset, (g) => reshape(g, x.shape));
  const c = clone(x);
  const out = reshape(c, target);
  c.dispose();
  return out;
}

/**
 * Like {@linkcode reshape} but never copies: throws when the strides do not allow a view.
 *
 * @param x the input tensor
 * @param shape the new shape, with as many elements as x (one entry may be -1: inferred)
 * @returns a view of x sharing its storage
 * @throws {RangeError} when x's strides cannot be viewed as `shape` (use reshape)
 * @example
 * ```ts
 * import { arange, view } from "@denograd/denograd";
 * using x = arange(6);
 * using v = view(x, [3, 2]);
 * console.log(v.toArray()); // [[0, 1], [2, 3], [4, 5]]
 * ```
 */
export function view(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor("view", x);
  const target = inferShape("view", shape, x.size, x.shape);
  const strides = viewStrides(x.shape, x.strides, target);
  if (!strides) {
    throw new RangeError(
      `view: shape ${fmt(target)} is incompatible with the strides of input ${
        fmt(x.shape)
      }; use reshape()`,
    );
  }
  return viewOf("view", x, target, strides, x.offset, (g) => reshape(g, x.shape));
}

/**
 * Collapses dims `start..end` (inclusive) into one.
 *
 * @param x the input tensor
 * @param start the first dim to collapse (negative counts from the end)
 * @param end the last dim to collapse, inclusive (default -1: the last)
 * @returns x reshaped (a view when the strides allow one)
 * @example
 * ```ts
 * import { flatten, zeros } from "@denograd/denograd";
 * using x = zeros([2, 3, 4]);
 * using f = flatten(x, 1);
 * console.log(f.shape); // [2, 12]
 * ```
 */
export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  checkTensor("flatten", x);
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normAxis("flatten", start, x.ndim, x.shape);
  const e = normAxis("flatten", end, x.ndim, x.shape);
  if (s > e) throw new RangeError(`flatten: start dim ${start} is after end dim ${end}`);
  const shape = [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

/**
 * Reorders dims: `out.shape[i] = x.shape[dims[i]]` (a view).
 *
 * @param x the input tensor
 * @param dims a permutation of x's dims (negative counts from the end)
 * @returns a view of x with its dims reordered
 * @example
 * ```ts
 * import { permute, zeros } from "@denograd/denograd";
 * using x = zeros([2, 3, 4]);
 * using p = permute(x, [2, 0, 1]);
 * console.log(p.shape); // [4, 2, 3]
 * ```
 */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor("permute", x);
  if (!Array.isArray(dims) || dims.length !== x.ndim) {
    throw new RangeError(
      `permute: expected ${x.ndim} dims for input ${fmt(x.shape)}, got ${JSON.stringify(dims)}`,
    );
  }
  const axes = dims.map((d) => normAxis("permute", d, x.ndim, x.shape));
  if (new Set(axes).size !== axes.length) {
    throw new RangeError(`permute: dims ${JSON.stringify(dims)} repeat an axis`);
  }
  const inverse = new Array<number>(axes.length);
  axes.forEach((a, i) => inverse[a] = i);
  return viewOf(
    "permute",
    x,
    axes.map((a) => x.shape[a]),
    axes.map((a) => x.strides[a]),
    x.offset,
    (g) => permute(g, inverse),
  );
}

/**
 * Swaps two dims (a view).
 *
 * @param x the input tensor
 * @param dim0 one dim (negative counts from the end)
 * @param dim1 the other dim
 * @returns a view of x with `dim0` and `dim1` swapped
 * @example
 * ```ts
 * import { tensor, transpose } from "@denograd/denograd";
 * using x = tensor([[1, 2, 3], [4, 5, 6]]);
 * using t = transpose(x, 0, 1);
 * console.log(t.toArray()); // [[1, 4], [2, 5], [3, 6]]
 * ```
 */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  checkTensor("transpose", x);
  if (x.ndim === 0) return viewOf("transpose", x, [], [], x.offset, (g) => g);
  const a = normAxis("transpose", dim0, x.ndim, x.shape);
  const b = normAxis("transpose", dim1, x.ndim, x.shape);
  const dims = [...x.shape.keys()];
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

/**
 * Python-style slice `start:end:step` of one dim (negative indices count from the end); a view.
 *
 * @param x the input tensor
 * @param dim the dim to slice
 * @param start the first index (default 0; clamped to the dim)
 * @param end the bound, not included (default: the dim's size; clamped)
 * @param step a positive stride (default 1)
 * @returns a view of x
 * @example
 * ```ts
 * import { arange } from "@denograd/denograd";
 * console.log(arange(10).slice(0, 1, 8, 3).toArray()); // [1, 4, 7]
 * ```
 */
export function slice(x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor {
  checkTensor("slice", x);
  const d = normAxis("slice", dim, x.ndim, x.shape);
  const n = x.shape[d];
  if (!Number.isInteger(step) || step < 1) {
    throw new RangeError(`slice: step must be a positive integer, got ${step}`);
  }
  for (const v of [start, end ?? 0]) {
    if (!Number.isInteger(v)) throw new TypeError(`slice: indices must be integers, got ${v}`);
  }
  const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clamp(start);
  const e = Math.max(clamp(end ?? n), s);
  const len = Math.ceil((e - s) / step);
  const shape = [...x.shape];
  shape[d] = len;
  const strides = [...x.strides];
  strides[d] = x.strides[d] * step;
  const offset = x.offset + s * x.strides[d];
  return viewOf("slice", x, shape, strides, offset, (g) => {
    const dx = empty(x.shape, "f32", g);
    g.backend.fill(dx._view(), 0);
    const dst = dx._view();
    copyInto(g, {
      ...dst,
      shape,
      strides: dst.strides.map((st, i) => i === d ? st * step : st),
      offset: s * dst.strides[d],
    });
    return dx;
  });
}

/**
 * `length` entries of `dim` starting at `start` (a view).
 *
 * @param x the input tensor
 * @param dim the dim to narrow
 * @param start the first index (negative counts from the end)
 * @param length how many entries to keep; start + length must fit in the dim
 * @returns a view of x
 * @example
 * ```ts
 * import { arange, narrow } from "@denograd/denograd";
 * using x = arange(10);
 * using n = narrow(x, 0, 2, 3);
 * console.log(n.toArray()); // [2, 3, 4]
 * ```
 */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  checkTensor("narrow", x);
  const d = normAxis("narrow", dim, x.ndim, x.shape);
  const n = x.shape[d];
  const s = start < 0 ? start + n : start;
  if (!Number.isInteger(s) || !Number.isInteger(length) || s < 0 || length < 0 || s + length > n) {
    throw new RangeError(
      `narrow: start ${start} and length ${length} are out of range for dim ${dim} of size ${n} (input ${
        fmt(x.shape)
      })`,
    );
  }
  return slice(x, d, s, s + length);
}

/**
 * Splits `dim` into pieces of size `sizeOrSizes` (the last may be smaller) or of the listed sizes.
 *
 * @param x the input tensor
 * @param sizeOrSizes the size of every piece, or a list of sizes that sum to the dim
 * @param dim the dim to split (default 0)
 * @returns views of x, in order
 * @example
 * ```ts
 * import { arange, split } from "@denograd/denograd";
 * using x = arange(5);
 * const parts = split(x, 2);
 * console.log(parts.map((p) => p.toArray())); // [[0, 1], [2, 3], [4]]
 * for (const p of parts) p.dispose();
 * ```
 */
export function split(x: Tensor, sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
  checkTensor("split", x);
  const d = normAxis("split", dim, x.ndim, x.shape);
  const n = x.shape[d];
  let sizes: number[];
  if (typeof sizeOrSizes === "number") {
    if (!Number.isInteger(sizeOrSizes) || sizeOrSizes < 1) {
      throw new RangeError(`split: size must be a positive integer, got ${sizeOrSizes}`);
    }
    sizes = [];
    for (let i = 0; i < n; i += sizeOrSizes) sizes.push(Math.min(sizeOrSizes, n - i));
    if (n === 0) sizes = [0];
  } else {
    sizes = [...sizeOrSizes];
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== n || sizes.some((s) => !Number.isInteger(s) || s < 0)) {
      throw new RangeError(
        `split: sizes ${JSON.stringify(sizes)} do not sum to dim ${dim} of size ${n} (input ${
          fmt(x.shape)
        })`,
      );
    }
  }
  let at = 0;
  return sizes.map((s) => {
    const piece = slice(x, d, at, at + s);
    at += s;
    return piece;
  });
}

/**
 * Splits `dim` into `chunks` pieces of size ceil(n / chunks) (fewer if n is small).
 *
 * @param x the input tensor
 * @param chunks how many pieces to aim for (a positive integer)
 * @param dim the dim to split (default 0)
 * @returns views of x, in order
 * @example
 * ```ts
 * import { arange, chunk } from "@denograd/denograd";
 * using x = arange(6);
 * const parts = chunk(x, 4); // pieces of ceil(6 / 4) = 2: only 3 of them
 * console.log(parts.map((p) => p.toArray())); // [[0, 1], [2, 3], [4, 5]]
 * for (const p of parts) p.dispose();
 * ```
 */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  checkTensor("chunk", x);
  if (!Number.isInteger(chunks) || chunks < 1) {
    throw new RangeError(`chunk: chunks must be a positive integer, got ${chunks}`);
  }
  const d = normAxis("chunk", dim, x.ndim, x.shape);
  return split(x, Math.max(Math.ceil(x.shape[d] / chunks), 1), d);
}

/**
 * Broadcasts size-1 dims to `shape` (-1 keeps a dim; new leading dims allowed); a view.
 *
 * @param x the input tensor
 * @param shape the target shape: each size-1 dim of x may grow, -1 keeps x's size
 * @returns a view of x with stride 0 along the expanded dims (no copy)
 * @example
 * ```ts
 * import { expand, tensor } from "@denograd/denograd";
 * using x = tensor([[1], [2]]);
 * using e = expand(x, [2, 3]);
 * console.log(e.toArray()); // [[1, 1, 1], [2, 2, 2]]
 * ```
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor("expand", x);
  const lead = shape.length - x.ndim;
  if (lead < 0) {
    throw new RangeError(`expand: cannot expand ${fmt(x.shape)} to fewer dims ${fmt(shape)}`);
  }
  const target = shape.map((s, i) => (s === -1 && i >= lead ? x.shape[i - lead] : s));
  const strides = target.map((s, i) => {
    if (!Number.isInteger(s) || s < 0) {
      throw new RangeError(`expand: invalid size ${shape[i]} in ${fmt(shape)}`);
    }
    if (i < lead) return 0;
    const src = x.shape[i - lead];
    if (src === s) return x.strides[i - lead];
    if (src === 1) return 0;
    throw new RangeError(`expand: cannot expand ${fmt(x.shape)} to ${fmt(shape)}`);
  });
  return viewOf("expand", x, target, strides, x.offset, (g) => sumTo(g, x.shape));
}

/**
 * Removes size-1 dims: all of them, or only `dim` (a no-op if that dim is not 1).
 *
 * @param x the input tensor
 * @param dim the one dim to remove (negative counts from the end); all size-1 dims if omitted
 * @returns a view of x
 * @example
 * ```ts
 * import { squeeze, zeros } from "@denograd/denograd";
 * using x = zeros([1, 3, 1]);
 * using all = squeeze(x);
 * using last = squeeze(x, -1);
 * console.log(all.shape, last.shape); // [3] [1, 3]
 * ```
 */
export function squeeze(x: Tensor, dim?: number): Tensor {
  checkTensor("squeeze", x);
  const keep = dim === undefined ? x.shape.map((s) => s !== 1) : (() => {
    const d = normAxis("squeeze", dim, x.ndim, x.shape);
    return x.shape.map((s, i) => i !== d || s !== 1);
  })();
  return viewOf(
    "squeeze",
    x,
    x.shape.filter((_, i) => keep[i]),
    x.strides.filter((_, i) => keep[i]),
    x.offset,
    (g) => reshape(g, x.shape),
  );
}

/**
 * Inserts a size-1 dim at `dim` (negative counts from the end of the result).
 *
 * @param x the input tensor
 * @param dim where the new dim goes in the result
 * @returns a view of x with one more dim
 * @example
 * ```ts
 * import { tensor, unsqueeze } from "@denograd/denograd";
 * using x = tensor([1, 2, 3]);
 * using row = unsqueeze(x, 0);
 * using col = unsqueeze(x, -1);
 * console.log(row.shape, col.shape); // [1, 3] [3, 1]
 * ```
 */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  checkTensor("unsqueeze", x);
  const d = normAxis("unsqueeze", dim, x.ndim + 1, x.shape);
  const shape = [...x.shape];
  const strides = [...x.strides];
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.ndim ? x.strides[d] * x.shape[d] : 1);
  return viewOf("unsqueeze", x, shape, strides, x.offset, (g) => reshape(g, x.shape));
}

/**
 * Concatenates tensors along an existing dim.
 *
 * @param tensors one or more tensors of one dtype and device, equal outside `dim`
 * @param dim the dim to join along (default 0)
 * @returns a new tensor; gradients flow back to every input
 * @example
 * ```ts
 * import { cat, ones, zeros } from "@denograd/denograd";
 * console.log(cat([ones([1, 2]), zeros([2, 2])], 0).shape); // [3, 2]
 * ```
 */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) {
    throw new RangeError("cat: expected a non-empty array of tensors");
  }
  tensors.forEach((t, i) => checkTensor("cat", t, `tensors[${i}]`));
  checkSameDevice("cat", ...tensors);
  const first = tensors[0];
  if (first.ndim === 0) {
    throw new RangeError("cat: zero-dimensional tensors cannot be concatenated");
  }
  const d = normAxis("cat", dim, first.ndim, first.shape);
  for (const t of tensors) {
    if (t.dtype !== first.dtype) {
      throw new TypeError(`cat: dtypes differ: ${first.dtype} and ${t.dtype}`);
    }
    if (t.ndim !== first.ndim || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new RangeError(
        `cat: shapes ${fmt(first.shape)} and ${fmt(t.shape)} differ outside dim ${dim}`,
      );
    }
  }
  const shape = [...first.shape];
  shape[d] = tensors.reduce((a, t) => a + t.shape[d], 0);
  const out = empty(shape, first.dtype, first);
  const dst = out._view();
  let at = 0;
  for (const t of tensors) {
    copyInto(t, { ...dst, shape: t.shape, offset: at * dst.strides[d] });
    at += t.shape[d];
  }
  return attach(out, "cat", tensors, (g) => split(g, tensors.map((t) => t.shape[d]), d));
}

/**
 * Stacks equal-shaped tensors along a new dim.
 *
 * @param tensors one or more tensors of one shape, dtype and device
 * @param dim where the new dim goes in the result (default 0)
 * @returns a new tensor with one more dim, of size tensors.length
 * @example
 * ```ts
 * import { stack, tensor } from "@denograd/denograd";
 * using a = tensor([1, 2]);
 * using b = tensor([3, 4]);
 * using s = stack([a, b], 1);
 * console.log(s.toArray()); // [[1, 3], [2, 4]]
 * ```
 */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) {
    throw new RangeError("stack: expected a non-empty array of tensors");
  }
  tensors.forEach((t, i) => checkTensor("stack", t, `tensors[${i}]`));
  for (const t of tensors) {
    if (t.ndim !== tensors[0].ndim || t.shape.some((s, i) => s !== tensors[0].shape[i])) {
      throw new RangeError(`stack: shapes ${fmt(tensors[0].shape)} and ${fmt(t.shape)} differ`);
    }
  }
  const d = normAxis("stack", dim, tensors[0].ndim + 1, tensors[0].shape);
  const parts = tensors.map((t) => unsqueeze(t, d));
  const out = cat(parts, d);
  for (const p of parts) p.dispose();
  return out;
}

/**
 * Entries of `dim` picked by a 1-D i32 `index`.
 *
 * @param x the input tensor
 * @param dim the dim to pick along
 * @param index a 1-D i32 tensor of indices into `dim` (repeats allowed)
 * @returns a new tensor like x with `dim` of size index.shape[0]; the gradient scatter-adds back
 * @example
 * ```ts
 * import { indexSelect, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 2], [3, 4], [5, 6]]);
 * using rows = tensor([2, 0], { dtype: "i32" });
 * using picked = indexSelect(x, 0, rows);
 * console.log(picked.toArray()); // [[5, 6], [1, 2]]
 * ```
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  checkTensor("indexSelect", x);
  checkTensor("indexSelect", index, "index");
  checkDType("indexSelect", index, "i32", "index");
  checkSameDevice("indexSelect", x, index);
  if (index.ndim !== 1) {
    throw new RangeError(`indexSelect: index must be 1-D, got ${fmt(index.shape)}`);
  }
  const d = normAxis("indexSelect", dim, Math.max(x.ndim, 1), x.shape);
  const shape = x.ndim === 0 ? [index.shape[0]] : [...x.shape];
  shape[d] = index.shape[0];
  // The index viewed with out's shape: stride 0 everywhere but along dim.
  const iv = index._view();
  const idx: View = { ...iv, shape, strides: shape.map((_, i) => (i === d ? iv.strides[0] : 0)) };
  const src = x.ndim === 0 ? { ...x._view(), shape: [1], strides: [1] } : x._view();
  const out = empty(shape, x.dtype, x);
  try {
    x.backend.gather(src, d, idx, out._view());
  } catch (e) {
    out.dispose();
    throw renameOp(e, "gather", "indexSelect");
  }
  const indexSaved = index.alias();
  return attach(out, "indexSelect", [x], (g) => {
    const dx = empty(x.shape, "f32", g);
    g.backend.fill(dx._view(), 0);
    const saved = { ...idx, buffer: indexSaved.storage.buffer };
    g.backend.scatterAdd(
      x.ndim === 0 ? { ...dx._view(), shape: [1], strides: [1] } : dx._view(),
      d,
      saved,
      g._view(),
    );
    return [dx];
  }, [indexSaved]);
}

/**
 * torch.gather: `out[i][j] = x[index[i][j]][j]` for dim 0, and so on.
 *
 * @param x the input tensor
 * @param dim the dim that `index` indexes
 * @param index an i32 tensor with x's number of dims (no larger than x outside `dim`)
 * @returns a new tensor of index's shape; the gradient scatter-adds back
 * @example
 * ```ts
 * import { gather, tensor } from "@denograd/denograd";
 * using x = tensor([[1, 2, 3], [4, 5, 6]]);
 * using index = tensor([[2, 0], [1, 1]], { dtype: "i32" });
 * using g = gather(x, 1, index);
 * console.log(g.toArray()); // [[3, 1], [5, 5]]
 * ```
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  checkTensor("gather", x);
  checkTensor("gather", index, "index");
  checkDType("gather", index, "i32", "index");
  checkSameDevice("gather", x, index);
  const d = normAxis("gather", dim, x.ndim, x.shape);
  if (index.ndim !== x.ndim || index.shape.some((s, i) => i !== d && s > x.shape[i])) {
    throw new RangeError(
      `gather: index ${fmt(index.shape)} does not fit input ${fmt(x.shape)} outside dim ${dim}`,
    );
  }
  const out = empty(index.shape, x.dtype, x);
  x.backend.gather(x._view(), d, index._view(), out._view());
  const indexSaved = index.alias();
  return attach(out, "gather", [x], (g) => {
    const dx = empty(x.shape, "f32", g);
    g.backend.fill(dx._view(), 0);
    g.backend.scatterAdd(dx._view(), d, indexSaved._view(), g._view());
    return [dx];
  }, [indexSaved]);
}
