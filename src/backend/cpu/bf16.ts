/**
 * bf16 storage on the CPU backend: fill and copy/cast only. The CPU computes in f32 and i32; bf16
 * exists here so tensors can move between devices and tests can compare bf16 results with CUDA.
 * @module
 */

import type { View } from "../backend.ts";
import { bf16BitsToF32, f32ToBf16Bits } from "../../dtype.ts";
import { cpuBuffer } from "./buffer.ts";
import { forEachRow, sizeOf } from "./strided.ts";
import { mergeDims } from "../../_shape.ts";

type Load = (i: number) => number;
type Store = (i: number, value: number) => void;

function loader(v: View, op: string): Load {
  const b = cpuBuffer(v.buffer, op);
  if (v.dtype === "bf16") return (i) => bf16BitsToF32(b.u16[i]);
  const a = v.dtype === "f32" ? b.f32 : b.i32;
  return (i) => a[i];
}

function storer(v: View, op: string): Store {
  const b = cpuBuffer(v.buffer, op);
  if (v.dtype === "bf16") return (i, value) => b.u16[i] = f32ToBf16Bits(value);
  // Typed-array stores convert: to i32 truncates toward zero, like the f32 -> i32 cast.
  const a = v.dtype === "f32" ? b.f32 : b.i32;
  return (i, value) => a[i] = value;
}

/** out = x with dtype conversion, any strides, where x or out (or both) is bf16. */
export function copyBf16(x: View, out: View): void {
  if (sizeOf(out.shape) === 0) return;
  const L = mergeDims(out.shape, [x.strides, out.strides]);
  const r = L.shape.length - 1;
  const n = L.shape[r], xs = L.strides[0][r], os = L.strides[1][r];
  if (x.dtype === "bf16" && out.dtype === "bf16") {
    // Same type: move the bits, so NaN payloads and signed zeros survive exactly.
    const xa = cpuBuffer(x.buffer, "copy").u16, oa = cpuBuffer(out.buffer, "copy").u16;
    forEachRow(L.shape, L.strides, [x.offset, out.offset], (p) => {
      for (let k = 0, xi = p[0], oi = p[1]; k < n; k++, xi += xs, oi += os) oa[oi] = xa[xi];
    });
    return;
  }
  const load = loader(x, "copy"), store = storer(out, "copy");
  forEachRow(L.shape, L.strides, [x.offset, out.offset], (p) => {
    for (let k = 0, xi = p[0], oi = p[1]; k < n; k++, xi += xs, oi += os) store(oi, load(xi));
  });
}

/** out = value (rounded to bf16) everywhere in a bf16 view. */
export function fillBf16(out: View, value: number): void {
  if (sizeOf(out.shape) === 0) return;
  const o = cpuBuffer(out.buffer, "fill").u16, bits = f32ToBf16Bits(value);
  const L = mergeDims(out.shape, [out.strides]);
  const r = L.shape.length - 1;
  const n = L.shape[r], s = L.strides[0][r];
  forEachRow(L.shape, L.strides, [out.offset], (p) => {
    for (let k = 0, i = p[0]; k < n; k++, i += s) o[i] = bits;
  });
}
