// Shared plumbing of the op layer: validation, output allocation, broadcast views, sumTo.
import type { View } from "../backend/backend.ts";
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor.ts";
import { broadcastStrides, contiguousStrides, fmt } from "../_shape.ts";

/** Throws unless `x` is a live Tensor. */
export function checkTensor(op: string, x: unknown, name = "input"): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    throw new TypeError(`${op}: ${name} must be a Tensor, got ${x === null ? "null" : typeof x}`);
  }
  if (x.disposed) throw new Error(`${op}: ${name} of shape ${fmt(x.shape)} was disposed`);
}

/** Throws unless all tensors live on one device. */
export function checkSameDevice(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.device !== ts[0].device) {
      throw new TypeError(
        `${op}: tensors are on different devices: ${ts[0].device} ${fmt(ts[0].shape)} and ` +
          `${t.device} ${fmt(t.shape)}`,
      );
    }
  }
}

/** Throws unless `x` has dtype `dtype`. */
export function checkDType(op: string, x: Tensor, dtype: DType, name = "input"): void {
  if (x.dtype !== dtype) {
    throw new TypeError(`${op}: ${name} must be ${dtype}, got ${x.dtype} of shape ${fmt(x.shape)}`);
  }
}

/**
 * A backend kernel's error as the op the user called would say it: `gather: index 5 ...` from
 * the kernel behind indexSelect becomes `indexSelect: index 5 ...` (same error class).
 */
export function renameOp(e: unknown, kernel: string, op: string): unknown {
  if (!(e instanceof Error) || !e.message.startsWith(`${kernel}: `)) return e;
  const renamed = new (e.constructor as ErrorConstructor)(op + e.message.slice(kernel.length));
  renamed.stack = e.stack;
  return renamed;
}

/** A new contiguous tensor on the same device as `like`. */
export function empty(shape: readonly number[], dtype: DType, like: Tensor): Tensor {
  return Tensor.empty(shape, dtype, like.backend);
}

/** A 0-d tensor holding `value`, on `like`'s device. */
export function scalar(value: number, dtype: DType, like: Tensor): Tensor {
  const t = empty([], dtype, like);
  t.backend.fill(t._view(), value);
  return t;
}

/** `t`'s backend view broadcast to `shape` (stride 0 on expanded dims). */
export function broadcastView(t: Tensor, shape: readonly number[]): View {
  const v = t._view();
  return { ...v, shape, strides: broadcastStrides(t.shape, t.strides, shape) };
}

/** Sums a broadcast gradient back down to `shape` (the inverse of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const out = empty(g.shape.map((d, i) => axes.includes(i) ? 1 : d), g.dtype, g);
  g.backend.reduce("sum", g._view(), axes, out._view());
  const r = out.alias(shape, contiguousStrides(shape), 0);
  out.dispose();
  return r;
}
