/**
 * Wrappers of the fused attention kernels (cuda/attention_*.cu), forward beside backward: they
 * validate the views, pack the kernels' by-value `AttnArgs` struct and pick the launch geometry.
 * q, k, v, out, dout, dq, dk, dv share one dtype (f32 or bf16) and have unit stride in D and any
 * strides in B, H and T/S; lse (B, H, T) is contiguous f32; ALiBi slopes (H) f32; the bias f32,
 * broadcast to (B, H, T, S) through size-1 dims or 0 strides. Head dims 1 to 128; bf16 at D = 64
 * (and the forward at 128) runs on tensor cores ({@linkcode attentionKernel}).
 * @module
 */

import type {
  AttentionArgs,
  AttentionBackwardArgs,
  AttentionOptions,
  View,
} from "../../backend.ts";
import type { KernelArg, KernelLauncher } from "../launcher.ts";
import { expectContiguous, expectDType, expectInt32, expectShape } from "./_layout.ts";

/** Threads per CTA (`ATTN_THREADS` in cuda/attention.cuh). */
export const ATTENTION_THREADS = 128;
/** Largest head dim; the scalar kernels exist padded to 64 and 128 (any D up to that runs). */
export const ATTENTION_MAX_HEAD_DIM = 128;
/** Query (or key) rows per CTA of the tensor-core kernels (`MMA_ROWS`). */
export const MMA_TILE_ROWS = 64;
/** Bytes of `AttnArgs` (cuda/attention.cuh). */
export const ATTN_ARGS_BYTES = 384;
/** Order of the views in `AttnArgs.stride` (`enum AttnView`). */
const VIEW_SLOTS = ["q", "k", "v", "out", "dout", "dq", "dk", "dv"] as const;
type Slot = (typeof VIEW_SLOTS)[number];
/** Most blocks along grid y and z (H and B). */
const GRID_YZ = 65535;

/** Rows per tile of the scalar kernels padded to head dim DP (a row per DP/32 lanes). */
export function attentionTileRows(DP: number): number {
  return ATTENTION_THREADS / (DP / 32);
}

/**
 * The kernel of one pass and its rows per CTA: the tensor-core (mma.sync) kernel for bf16 forward
 * at D = 64 and 128 and bf16 backward at D = 64 (at 128 its shared tiles would pass the 48 KiB
 * static limit); otherwise the scalar kernel padded to 64 or 128.
 */
export function attentionKernel(
  pass: "forward" | "backward_dkdv" | "backward_dq",
  dtype: string,
  D: number,
): { name: string; rows: number } {
  const mma = dtype === "bf16" && (D === 64 || (D === 128 && pass === "forward"));
  if (mma) return { name: `attention_${pass}_mma_bf16_d${D}`, rows: MMA_TILE_ROWS };
  const DP = D <= 64 ? 64 : 128;
  return { name: `attention_${pass}_${dtype}_d${DP}`, rows: attentionTileRows(DP) };
}

interface Dims {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
}

/** Checks q, k, v (and the other data views) and returns the dims. */
function dims(op: string, q: View, k: View, v: View, data: Partial<Record<Slot, View>>): Dims {
  expectDType(op, "q", q, ["f32", "bf16"]);
  for (const [name, view] of Object.entries({ q, k, v, ...data })) {
    if (view.dtype !== q.dtype) {
      throw new TypeError(`${op}: ${name} must have q's dtype ${q.dtype}, got ${view.dtype}`);
    }
    if (view.shape.length !== 4) {
      throw new RangeError(`${op}: ${name} must be 4-D, got shape [${view.shape}]`);
    }
    if (view.shape[3] > 1 && view.strides[3] !== 1) {
      throw new TypeError(
        `${op}: ${name} must have unit stride in D, got strides [${view.strides}]`,
      );
    }
  }
  const [B, H, T, D] = q.shape;
  const [, Hkv, S] = k.shape;
  expectShape(op, "k", k, [B, Hkv, S, D]);
  expectShape(op, "v", v, [B, Hkv, S, D]);
  for (const name of ["out", "dout", "dq"] as const) {
    if (data[name]) expectShape(op, name, data[name]!, [B, H, T, D]);
  }
  for (const name of ["dk", "dv"] as const) {
    if (data[name]) expectShape(op, name, data[name]!, [B, Hkv, S, D]);
  }
  if (D < 1 || D > ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(
      `${op}: the CUDA kernels support head dims 1 to ${ATTENTION_MAX_HEAD_DIM}, got ${D}`,
    );
  }
  if (Hkv === 0 ? H !== 0 : H % Hkv !== 0) {
    throw new RangeError(`${op}: q's ${H} heads must be a multiple of k's ${Hkv} heads`);
  }
  for (const [what, n] of [["T", T], ["S", S]] as const) expectInt32(op, what, n);
  if (B > GRID_YZ || H > GRID_YZ) {
    throw new RangeError(`${op}: B and H must be at most ${GRID_YZ}, got B=${B} H=${H}`);
  }
  return { B, H, Hkv, T, S, D };
}

function checkOptions(op: string, o: AttentionOptions): void {
  if (!Number.isFinite(o.scale)) {
    throw new RangeError(`${op}: scale must be finite, got ${o.scale}`);
  }
  expectInt32(op, "qOffset", o.qOffset);
  expectInt32(op, "window", o.window);
  if (o.window < 0) throw new RangeError(`${op}: window must be >= 0, got ${o.window}`);
  if (!(o.dropout >= 0 && o.dropout < 1)) {
    throw new RangeError(`${op}: dropout must be in [0, 1), got ${o.dropout}`);
  }
  const keys: [string, number][] = [["dropoutKey0", o.dropoutKey0], ["dropoutKey1", o.dropoutKey1]];
  for (const [what, key] of keys) {
    if (!Number.isInteger(key) || key < 0 || key >= 2 ** 32) {
      throw new RangeError(`${op}: ${what} must be a uint32, got ${key}`);
    }
  }
  if (!Number.isSafeInteger(o.dropoutBlock) || o.dropoutBlock < 0) {
    throw new RangeError(
      `${op}: dropoutBlock must be a non-negative integer, got ${o.dropoutBlock}`,
    );
  }
}

function checkStats(op: string, what: string, v: View, d: Dims): void {
  expectDType(op, what, v, ["f32"]);
  expectShape(op, what, v, [d.B, d.H, d.T]);
  expectContiguous(op, what, v);
}

function checkSlopes(op: string, slopes: View | null, H: number): void {
  if (!slopes) return;
  expectDType(op, "alibiSlopes", slopes, ["f32"]);
  expectShape(op, "alibiSlopes", slopes, [H]);
  expectContiguous(op, "alibiSlopes", slopes);
}

/** Element strides of the bias over (B, H, T, S): 0 where it broadcasts. */
function biasStrides(op: string, bias: View, d: Dims): number[] {
  expectDType(op, "bias", bias, ["f32"]);
  const target = [d.B, d.H, d.T, d.S];
  if (bias.shape.length !== 4 || bias.shape.some((n, i) => n !== target[i] && n !== 1)) {
    throw new RangeError(
      `${op}: bias must broadcast to [${target}] (4-D, each dim equal or 1), got [${bias.shape}]`,
    );
  }
  return bias.shape.map((n, i) => (n === 1 ? 0 : bias.strides[i]));
}

/** The `AttnArgs` struct: pointers, (b, h, t) strides of each view, bias strides, scalars. */
function packArgs(
  l: KernelLauncher,
  d: Dims,
  views: Partial<Record<Slot, View>>,
  ptrs: { lse: bigint; slopes: bigint; bias: bigint; delta: bigint },
  bias: number[],
  o: AttentionOptions,
): KernelArg {
  const bytes = new Uint8Array(ATTN_ARGS_BYTES);
  const dv = new DataView(bytes.buffer);
  const addr = (s: Slot) => (views[s] ? l.address(views[s]!) : 0n);
  const pointers = [
    addr("q"),
    addr("k"),
    addr("v"),
    addr("out"),
    ptrs.lse,
    ptrs.slopes,
    ptrs.bias,
    addr("dout"),
    addr("dq"),
    addr("dk"),
    addr("dv"),
    ptrs.delta,
  ];
  pointers.forEach((p, i) => dv.setBigUint64(8 * i, p, true));
  VIEW_SLOTS.forEach((s, i) => {
    const st = views[s]?.strides ?? [0, 0, 0];
    for (let x = 0; x < 3; x++) dv.setBigInt64(96 + 24 * i + 8 * x, BigInt(st[x]), true);
  });
  bias.forEach((s, i) => dv.setBigInt64(288 + 8 * i, BigInt(s), true));
  dv.setBigUint64(320, BigInt(o.dropoutBlock), true);
  [d.B, d.H, d.Hkv, d.T, d.S, d.D, o.causal ? 1 : 0, o.qOffset, o.window].forEach((n, i) =>
    dv.setInt32(328 + 4 * i, n, true)
  );
  dv.setFloat32(364, o.scale, true);
  dv.setFloat32(368, o.dropout > 0 ? 1 / (1 - o.dropout) : 1, true);
  // keep iff (word >>> 8) * 2^-24 >= dropout, i.e. (word >>> 8) >= ceil(dropout * 2^24) (exact).
  dv.setUint32(372, Math.ceil(o.dropout * 2 ** 24), true);
  dv.setUint32(376, o.dropoutKey0, true);
  dv.setUint32(380, o.dropoutKey1, true);
  return { bytes, align: 8 };
}

const address = (l: KernelLauncher, v: View | null) => (v ? l.address(v) : 0n);

/**
 * out = softmax(scale * q k^T + alibi + bias, masked) (dropped) v and lse per row; see
 * {@linkcode Backend.attentionForward}. q (B, H, T, D); k, v (B, Hkv, S, D); out (B, H, T, D);
 * lse (B, H, T) f32.
 */
export function attentionForward(l: KernelLauncher, a: AttentionArgs): void {
  const { q, k, v, alibiSlopes, bias, out, lse, options } = a;
  const op = "attentionForward";
  const d = dims(op, q, k, v, { out });
  checkStats(op, "lse", lse, d);
  checkSlopes(op, alibiSlopes, d.H);
  const biasStride = bias ? biasStrides(op, bias, d) : [0, 0, 0, 0];
  checkOptions(op, options);
  if (d.B === 0 || d.H === 0 || d.T === 0) return;
  const args = packArgs(
    l,
    d,
    { q, k, v, out },
    {
      lse: l.address(lse),
      slopes: address(l, alibiSlopes),
      bias: address(l, bias),
      delta: 0n,
    },
    biasStride,
    options,
  );
  const { name, rows } = attentionKernel("forward", q.dtype, d.D);
  l.launch(
    name,
    [Math.ceil(d.T / rows), d.H, d.B],
    [ATTENTION_THREADS, 1, 1],
    0,
    [args],
  );
}

/**
 * dq, dk, dv (overwritten; dk/dv summed over each kv head's query heads) of
 * {@linkcode attentionForward}; see {@linkcode Backend.attentionBackward}. Three launches: delta =
 * rowsum(dout * out) into f32 scratch, dk/dv per key tile, dq per query tile (no atomics).
 */
export function attentionBackward(l: KernelLauncher, a: AttentionBackwardArgs): void {
  const { q, k, v, alibiSlopes, bias, out, dout, lse, dq, dk, dv, options } = a;
  const op = "attentionBackward";
  const d = dims(op, q, k, v, { out, dout, dq, dk, dv });
  checkStats(op, "lse", lse, d);
  checkSlopes(op, alibiSlopes, d.H);
  const biasStride = bias ? biasStrides(op, bias, d) : [0, 0, 0, 0];
  checkOptions(op, options);
  if (d.B === 0 || d.Hkv === 0) return;
  const queryRows = d.B * d.H * d.T;
  const delta = queryRows > 0 ? l.scratch(queryRows * 4) : 0n; // (B, H, T) f32
  const args = packArgs(
    l,
    d,
    { q, k, v, out, dout, dq, dk, dv },
    {
      lse: l.address(lse),
      slopes: address(l, alibiSlopes),
      bias: address(l, bias),
      delta,
    },
    biasStride,
    options,
  );
  const dkdv = attentionKernel("backward_dkdv", q.dtype, d.D);
  const dqk = attentionKernel("backward_dq", q.dtype, d.D);
  const block: [number, number, number] = [ATTENTION_THREADS, 1, 1];
  const dt = q.dtype;
  if (queryRows > 0) {
    const grid = Math.min(Math.ceil(queryRows / 256), 32768);
    l.launch(`attention_backward_delta_${dt}`, [grid, 1, 1], [256, 1, 1], 0, [args]);
  }
  if (d.S > 0) {
    l.launch(
      dkdv.name,
      [Math.ceil(d.S / dkdv.rows), d.Hkv, d.B],
      block,
      0,
      [args],
    );
  }
  if (d.T > 0) {
    l.launch(
      dqk.name,
      [Math.ceil(d.T / dqk.rows), d.H, d.B],
      block,
      0,
      [args],
    );
  }
}
