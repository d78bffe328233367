/**
 * Shared by the cuDNN tests: strided attention views with fake addresses, a CudnnAttention over
 * the recording fake (tests/_fake_cudnn.ts), and readers that turn the recorded descriptors back
 * into tensors and operations.
 * @module
 */
import assert from "node:assert/strict";
import {
  CUDNN_ATTR,
  CUDNN_BACKEND,
  CUDNN_DATA,
  CUDNN_POINTWISE,
  CUDNN_REDUCE_TENSOR,
  CUDNN_TYPE,
} from "../ffi/cudnn.ts";
import type { AttentionOptions, Buffer, View } from "../src/backend/backend.ts";
import { CudnnAttention } from "../src/backend/cuda/cudnn_attention.ts";
import { FakeCudnn, type FakeCudnnOptions } from "./_fake_cudnn.ts";

// ---- reading the recorded graph back ----

export interface TensorInfo {
  id: bigint;
  uid: number;
  dtype: number;
  dims: number[];
  strides: number[];
  virtual: boolean;
  byValue: boolean;
  reordering?: number;
}

export interface OpInfo {
  /** "matmul", "reshape", "max"/"sum" for reductions, or the pointwise mode's name. */
  label: string;
  axis?: number;
  compute?: number;
  x: TensorInfo;
  b?: TensorInfo;
  t?: TensorInfo;
  y: TensorInfo;
}

const PW_NAMES = new Map(Object.entries(CUDNN_POINTWISE).map(([k, v]) => [v, k]));

export function tensorInfo(f: FakeCudnn, id: bigint): TensorInfo {
  const d = f.get(id);
  assert.equal(d.type, CUDNN_BACKEND.TENSOR_DESCRIPTOR);
  assert.ok(d.finalized, "tensor descriptors are finalized before use");
  const v = (name: number) => f.attr(id, name).values;
  assert.equal(f.attr(id, CUDNN_ATTR.TENSOR_DATA_TYPE).type, CUDNN_TYPE.DATA_TYPE);
  assert.equal(f.attr(id, CUDNN_ATTR.TENSOR_IS_VIRTUAL).type, CUDNN_TYPE.BOOLEAN);
  assert.deepEqual(v(CUDNN_ATTR.TENSOR_BYTE_ALIGNMENT), [16]);
  const dims = v(CUDNN_ATTR.TENSOR_DIMENSIONS) as number[];
  assert.equal(f.attr(id, CUDNN_ATTR.TENSOR_DIMENSIONS).type, CUDNN_TYPE.INT64);
  assert.equal(f.attr(id, CUDNN_ATTR.TENSOR_STRIDES).count, dims.length);
  return {
    id,
    uid: v(CUDNN_ATTR.TENSOR_UNIQUE_ID)[0] as number,
    dtype: v(CUDNN_ATTR.TENSOR_DATA_TYPE)[0] as number,
    dims,
    strides: v(CUDNN_ATTR.TENSOR_STRIDES) as number[],
    virtual: v(CUDNN_ATTR.TENSOR_IS_VIRTUAL)[0] as boolean,
    byValue: (d.attrs.get(CUDNN_ATTR.TENSOR_IS_BY_VALUE)?.values[0] as boolean | undefined) ??
      false,
    reordering: d.attrs.get(CUDNN_ATTR.TENSOR_REORDERING_MODE)?.values[0] as number | undefined,
  };
}

export function one(f: FakeCudnn, id: bigint, name: number): bigint {
  const a = f.attr(id, name);
  assert.equal(a.type, CUDNN_TYPE.BACKEND_DESCRIPTOR);
  assert.equal(a.count, 1);
  return a.values[0] as bigint;
}

export function opInfo(f: FakeCudnn, op: bigint): OpInfo {
  const d = f.get(op);
  assert.ok(d.finalized);
  const opt = (name: number) => d.attrs.has(name) ? tensorInfo(f, one(f, op, name)) : undefined;
  switch (d.type) {
    case CUDNN_BACKEND.OPERATION_POINTWISE_DESCRIPTOR: {
      const pw = one(f, op, CUDNN_ATTR.OPERATION_POINTWISE_PW_DESCRIPTOR);
      assert.equal(f.attr(pw, CUDNN_ATTR.POINTWISE_MODE).type, CUDNN_TYPE.POINTWISE_MODE);
      const mode = f.attr(pw, CUDNN_ATTR.POINTWISE_MODE).values[0] as number;
      return {
        label: PW_NAMES.get(mode as never) ?? `pw${mode}`,
        axis: f.get(pw).attrs.get(CUDNN_ATTR.POINTWISE_AXIS)?.values[0] as number | undefined,
        compute: f.attr(pw, CUDNN_ATTR.POINTWISE_MATH_PREC).values[0] as number,
        x: opt(CUDNN_ATTR.OPERATION_POINTWISE_XDESC)!,
        b: opt(CUDNN_ATTR.OPERATION_POINTWISE_BDESC),
        t: opt(CUDNN_ATTR.OPERATION_POINTWISE_TDESC),
        y: opt(CUDNN_ATTR.OPERATION_POINTWISE_YDESC)!,
      };
    }
    case CUDNN_BACKEND.OPERATION_MATMUL_DESCRIPTOR: {
      const mm = one(f, op, CUDNN_ATTR.OPERATION_MATMUL_DESC);
      assert.deepEqual(f.attr(mm, CUDNN_ATTR.MATMUL_COMP_TYPE).values, [CUDNN_DATA.FLOAT]);
      return {
        label: "matmul",
        x: opt(CUDNN_ATTR.OPERATION_MATMUL_ADESC)!,
        b: opt(CUDNN_ATTR.OPERATION_MATMUL_BDESC)!,
        y: opt(CUDNN_ATTR.OPERATION_MATMUL_CDESC)!,
      };
    }
    case CUDNN_BACKEND.OPERATION_REDUCTION_DESCRIPTOR: {
      const rd = one(f, op, CUDNN_ATTR.OPERATION_REDUCTION_DESC);
      assert.equal(
        f.attr(rd, CUDNN_ATTR.REDUCTION_OPERATOR).type,
        CUDNN_TYPE.REDUCTION_OPERATOR_TYPE,
      );
      const which = f.attr(rd, CUDNN_ATTR.REDUCTION_OPERATOR).values[0];
      return {
        label: which === CUDNN_REDUCE_TENSOR.MAX
          ? "max"
          : which === CUDNN_REDUCE_TENSOR.ADD
          ? "sum"
          : `red${which}`,
        x: opt(CUDNN_ATTR.OPERATION_REDUCTION_XDESC)!,
        y: opt(CUDNN_ATTR.OPERATION_REDUCTION_YDESC)!,
      };
    }
    case CUDNN_BACKEND.OPERATION_RESHAPE_DESCRIPTOR:
      return {
        label: "reshape",
        x: opt(CUDNN_ATTR.OPERATION_RESHAPE_XDESC)!,
        y: opt(CUDNN_ATTR.OPERATION_RESHAPE_YDESC)!,
      };
  }
  throw new Error(`unexpected op descriptor type ${d.type}`);
}

/** The ops of the n-th operation graph built, in the order given to cuDNN. */
export function graphOps(f: FakeCudnn, n = -1): OpInfo[] {
  const graphs = f.ofType(CUDNN_BACKEND.OPERATIONGRAPH_DESCRIPTOR);
  const g = graphs.at(n)!;
  assert.ok(g.finalized);
  assert.deepEqual(f.attr(g.id, CUDNN_ATTR.OPERATIONGRAPH_HANDLE).values, [f.handle]);
  return (f.attr(g.id, CUDNN_ATTR.OPERATIONGRAPH_OPS).values as bigint[]).map((op) =>
    opInfo(f, op)
  );
}

/** Every op reads only graph inputs or tensors an earlier op wrote, and writes each tensor once. */
export function assertTopological(ops: OpInfo[]): void {
  const written = new Set<bigint>();
  for (const op of ops) {
    for (const t of [op.x, op.b, op.t]) {
      if (t && t.virtual) {
        assert.ok(
          written.has(t.id),
          `${op.label} reads virtual tensor ${t.uid} before it is written`,
        );
      }
    }
    assert.ok(!written.has(op.y.id), `${op.label} writes tensor ${op.y.uid} twice`);
    written.add(op.y.id);
  }
}

// ---- views of a fused qkv projection ----

export const BASE = 0x7f00_0000_0000n;
export const fakeBuffer = { bytes: 1 << 30 } as Buffer;

export function view(dtype: "bf16" | "f32", shape: number[], strides: number[], offset = 0): View {
  return { buffer: fakeBuffer, dtype, shape, strides, offset };
}

export function address(v: View): bigint {
  return BASE + BigInt(v.offset * (v.dtype === "bf16" ? 2 : 4));
}

export function contiguous(shape: number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** q, k, v as strided views into a (B, T, 3, H, D) qkv buffer, out and lse contiguous. */
export function qkvViews(B: number, H: number, T: number, D: number) {
  const row = 3 * H * D; // elements between consecutive tokens
  const strides = [T * row, D, row, 1]; // (B, H, T, D)
  return {
    q: view("bf16", [B, H, T, D], strides, 0),
    k: view("bf16", [B, H, T, D], strides, H * D),
    v: view("bf16", [B, H, T, D], strides, 2 * H * D),
    out: view("bf16", [B, H, T, D], contiguous([B, H, T, D]), 1 << 24),
    lse: view("f32", [B, H, T], contiguous([B, H, T]), 1 << 23),
  };
}

export function options(o: Partial<AttentionOptions> = {}): AttentionOptions {
  return {
    causal: true,
    scale: 0.125,
    qOffset: 0,
    window: 0,
    dropout: 0,
    dropoutKey0: 0,
    dropoutKey1: 0,
    dropoutBlock: 0,
    ...o,
  };
}

export interface Harness {
  fake: FakeCudnn;
  attn: CudnnAttention;
  scratch: bigint[];
  zeroed: [bigint, number][];
}

export function harness(fakeOptions: FakeCudnnOptions = {}): Harness {
  const fake = new FakeCudnn(fakeOptions);
  const scratch: bigint[] = [];
  const zeroed: [bigint, number][] = [];
  let next = 0x5000_0000n;
  const attn = new CudnnAttention({
    symbols: fake.symbols,
    stream: 0x77n,
    address,
    scratch: (bytes) => {
      const p = next;
      next += BigInt(Math.ceil(bytes / 256) * 256);
      scratch.push(p);
      return p;
    },
    zero: (ptr, bytes) => zeroed.push([ptr, bytes]),
  });
  return { fake, attn, scratch, zeroed };
}

export function readF32(ptr: bigint): number {
  return new Deno.UnsafePointerView(Deno.UnsafePointer.create(ptr)!).getFloat32();
}

export function readI32(ptr: bigint): number {
  return new Deno.UnsafePointerView(Deno.UnsafePointer.create(ptr)!).getInt32();
}
