// Shape arithmetic shared by the op layer: strides, broadcasting, axis normalisation.

/** Formats a shape as `[2,3]` for error messages. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** Whether a view with these strides is row-major contiguous (size-1 dims may have any stride). */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** Checks a shape is a list of non-negative integers. */
export function checkShape(op: string, shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: shape must be an array, got ${shape}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`${op}: invalid shape ${fmt(shape)}: dims must be integers >= 0`);
    }
  }
  // 8 bytes per element must still be an exact byte count (2^53), or sizes silently round.
  const n = numel(shape);
  if (n > MAX_ELEMENTS) {
    throw new RangeError(
      `${op}: shape ${fmt(shape)} has ${n.toPrecision(3)} elements, more than the ` +
        `${MAX_ELEMENTS.toPrecision(3)} any tensor can hold`,
    );
  }
}

/** The most elements a tensor may have: its byte size stays an exact integer. */
const MAX_ELEMENTS = Math.floor(Number.MAX_SAFE_INTEGER / 8);

/** Normalises a possibly negative axis for a tensor of rank `ndim`. */
export function normAxis(
  op: string,
  axis: number,
  ndim: number,
  shape?: readonly number[],
): number {
  if (!Number.isInteger(axis)) throw new TypeError(`${op}: dim must be an integer, got ${axis}`);
  const a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= Math.max(ndim, 1) || (ndim === 0 && a !== 0)) {
    const where = shape ? ` of a tensor of shape ${fmt(shape)}` : "";
    throw new RangeError(`${op}: dim ${axis} is out of range for ${ndim} dims${where}`);
  }
  return a;
}

/** Normalises, sorts and de-duplicates reduction axes; undefined means all axes. */
export function normAxes(
  op: string,
  dims: number | readonly number[] | undefined,
  shape: readonly number[],
): number[] {
  const ndim = shape.length;
  if (dims === undefined) return [...Array(ndim).keys()];
  const list = typeof dims === "number" ? [dims] : [...dims];
  if (ndim === 0) {
    for (const d of list) normAxis(op, d, 0, shape);
    return [];
  }
  const axes = list.map((d) => normAxis(op, d, ndim, shape));
  const sorted = [...new Set(axes)].sort((a, b) => a - b);
  if (sorted.length !== axes.length) {
    throw new RangeError(`${op}: dim ${JSON.stringify(list)} repeats an axis`);
  }
  return sorted;
}

/** Broadcast two shapes (numpy rules) or throw naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that view (shape, strides) as broadcast to `target` (stride 0 on expanded dims). */
export function broadcastStrides(
  shape: readonly number[],
  strides: readonly number[],
  target: readonly number[],
): number[] {
  const lead = target.length - shape.length;
  const out = new Array<number>(target.length).fill(0);
  for (let i = 0; i < shape.length; i++) {
    out[lead + i] = shape[i] === 1 && target[lead + i] !== 1 ? 0 : strides[i];
  }
  return out;
}

/** Resolves a shape with at most one -1 against a total element count. */
export function inferShape(
  op: string,
  shape: readonly number[],
  total: number,
  from: readonly number[],
): number[] {
  const out = [...shape];
  let unknown = -1;
  let known = 1;
  for (let i = 0; i < out.length; i++) {
    if (out[i] === -1) {
      if (unknown >= 0) throw new RangeError(`${op}: only one dim may be -1, got ${fmt(shape)}`);
      unknown = i;
    } else if (!Number.isInteger(out[i]) || out[i] < 0) {
      throw new RangeError(`${op}: invalid shape ${fmt(shape)}`);
    } else known *= out[i];
  }
  if (unknown >= 0) {
    if (known === 0 || total % known !== 0) {
      throw new RangeError(`${op}: cannot view ${fmt(from)} (${total} elements) as ${fmt(shape)}`);
    }
    out[unknown] = total / known;
  }
  if (numel(out) !== total) {
    throw new RangeError(`${op}: cannot view ${fmt(from)} (${total} elements) as ${fmt(shape)}`);
  }
  return out;
}

/**
 * Strides for viewing a strided tensor under a new shape without copying, or null when the
 * memory layout does not allow it (then a copy is needed), following PyTorch's rule.
 */
export function viewStrides(
  shape: readonly number[],
  strides: readonly number[],
  newShape: readonly number[],
): number[] | null {
  if (isContiguous(shape, strides)) return contiguousStrides(newShape);
  // Group old dims into contiguous chunks and map new dims onto them.
  const newStrides = new Array<number>(newShape.length);
  let viewD = newShape.length - 1;
  let chunkBase = strides[strides.length - 1];
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorNumel *= shape[d];
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorNumel * chunkBase)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] === 1)) {
        newStrides[viewD] = viewNumel * chunkBase;
        viewNumel *= newShape[viewD];
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (d > 0) {
        chunkBase = strides[d - 1];
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  if (viewD !== -1) return null;
  return newStrides;
}

/** A shape and, per view, its element strides over that shape (the result of {@linkcode mergeDims}). */
export interface MergedDims {
  shape: number[];
  strides: number[][];
}

/**
 * Merges adjacent dims that every view walks as one (stride[d-1] == stride[d] * shape[d]) and
 * drops size-1 dims, so loops run over as few, as long rows as possible. `strides` holds one
 * stride array per view, each over `shape`. Dims are never reordered, so iteration order stays
 * row-major (argmax ties and kernel linear indices rely on it). The result has rank >= 1 (a single
 * element becomes shape [1], every stride 1) unless `allowRank0`, which leaves it rank 0.
 */
export function mergeDims(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  allowRank0 = false,
): MergedDims {
  const nv = strides.length;
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d];
    if (n === 1) continue;
    const last = outShape.length - 1;
    let merge = last >= 0;
    for (let v = 0; v < nv && merge; v++) merge = outStrides[v][last] === strides[v][d] * n;
    if (merge) {
      outShape[last] *= n;
      for (let v = 0; v < nv; v++) outStrides[v][last] = strides[v][d];
    } else {
      outShape.push(n);
      for (let v = 0; v < nv; v++) outStrides[v].push(strides[v][d]);
    }
  }
  if (outShape.length === 0 && !allowRank0) {
    outShape.push(1);
    for (let v = 0; v < nv; v++) outStrides[v].push(1);
  }
  return { shape: outShape, strides: outStrides };
}
