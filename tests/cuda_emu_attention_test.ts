// The fused attention kernels (cuda/attention_*.cu) run on the CPU through tests/cuda_emu behind
// the real wrappers and parameter packing, compared with two references: a naive attention written
// here in f64 (the (T, S) matrix materialised, the dropout mask drawn with src/random.ts's
// philox4x32) and the CPU backend's attentionForward/attentionBackward. Shapes are small but cross
// tile boundaries (64-row tiles; 32 for the scalar kernels at D > 64). bf16 at D = 64 (and its
// forward at 128) runs the tensor-core kernels through the emulator's mma.sync stand-in. Skipped
// where no C++20 compiler exists.

import assert from "node:assert/strict";
import type { AttentionOptions, View } from "../src/backend/backend.ts";
import type { DType } from "../src/dtype.ts";
import { fromBf16Array, toBf16Array } from "../src/dtype.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { manualSeed, philox4x32, setRngState } from "../src/random.ts";
import {
  type AttentionOpOptions,
  naiveAttention,
  scaledDotProductAttention,
} from "../src/ops/attention.ts";
import { randn } from "../src/ops/creation.ts";
import { memoryStats, tidy } from "../src/memory.ts";
import type { Tensor } from "../src/tensor.ts";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import { setBackend } from "../src/backend/registry.ts";
import { EmuDeviceApi } from "./cuda_emu/emu_device_api.ts";
import { fakeCublas, fakeCublasLt } from "./_fake_cublas.ts";
import * as k from "../src/backend/cuda/kernels/mod.ts";
import { emuArray, EmuDevice, emulatorUnavailable, emuView } from "./cuda_emu/emu.ts";

const unavailable = await emulatorUnavailable();
if (unavailable) console.warn(`cuda_emu_attention_test: skipped: ${unavailable}`);
const emu = unavailable ? null : await EmuDevice.open();
const cpu = new CpuBackend({ blas: false });

/** Deterministic pseudo-random values in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const out = new Float64Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + (hi - lo) * (s / 2 ** 32);
  }
  return out;
}

const contiguous = (shape: number[]) =>
  shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));

interface Case {
  name: string;
  dtype: DType;
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  causal?: boolean;
  qOffset?: number;
  window?: number;
  dropout?: number;
  alibi?: boolean;
  bias?: boolean;
  /** q, k, v as strided views into one fused (B, T, H + 2 Hkv, D) buffer (needs T == S). */
  fused?: boolean;
}

/** A data tensor: values (bf16-rounded for bf16) and its strides/offset inside its storage. */
interface Data {
  shape: number[];
  strides: number[];
  offset: number;
  storage: Float64Array;
}

/** Element (b, h, t, d) of a 4-D data tensor. */
const at = (x: Data, b: number, h: number, t: number, d: number) =>
  x.storage[x.offset + b * x.strides[0] + h * x.strides[1] + t * x.strides[2] + d * x.strides[3]];

function makeInputs(
  c: Case,
): {
  q: Data;
  k: Data;
  v: Data;
  dout: Data;
  slopes: Float64Array | null;
  bias: Float64Array | null;
} {
  const round = (a: Float64Array) =>
    c.dtype === "bf16"
      ? Float64Array.from(fromBf16Array(toBf16Array(a)))
      : Float64Array.from(Float32Array.from(a));
  const plain = (shape: number[], seed: number): Data => ({
    shape,
    strides: contiguous(shape),
    offset: 0,
    storage: round(rand(shape.reduce((a, b) => a * b, 1), seed)),
  });
  let q: Data, kk: Data, v: Data;
  if (c.fused) {
    // (B, T, H + 2 Hkv, D) storage, e.g. a fused qkv projection reshaped; each of q/k/v a view.
    const W = c.H + 2 * c.Hkv;
    const storage = round(rand(c.B * c.T * W * c.D, 11));
    const st = (heads: number) => [c.T * W * c.D, c.D, W * c.D, 1, heads];
    const view = (heads: number, first: number): Data => ({
      shape: [c.B, heads, c.T, c.D],
      strides: st(heads).slice(0, 4),
      offset: first * c.D,
      storage,
    });
    q = view(c.H, 0);
    kk = view(c.Hkv, c.H);
    v = view(c.Hkv, c.H + c.Hkv);
  } else {
    q = plain([c.B, c.H, c.T, c.D], 1);
    kk = plain([c.B, c.Hkv, c.S, c.D], 2);
    v = plain([c.B, c.Hkv, c.S, c.D], 3);
  }
  const dout = plain([c.B, c.H, c.T, c.D], 4);
  const slopes = c.alibi
    ? Float64Array.from(Float32Array.from({ length: c.H }, (_, h) => 2 ** (-(h + 1))))
    : null;
  // Bias (1, H, T, S) broadcast over B through a 0 stride.
  const bias = c.bias
    ? Float64Array.from(Float32Array.from(rand(c.H * c.T * c.S, 5, -2, 2)))
    : null;
  return { q, k: kk, v, dout, slopes, bias };
}

function options(c: Case): AttentionOptions {
  return {
    causal: c.causal ?? false,
    scale: 1 / Math.sqrt(c.D),
    qOffset: c.qOffset ?? 0,
    window: c.window ?? 0,
    dropout: c.dropout ?? 0,
    dropoutKey0: 1234567,
    dropoutKey1: 89,
    dropoutBlock: 2 ** 32 - 3, // the counter's high word changes inside the mask
  };
}

/** The naive reference in f64: forward and backward with the (T, S) matrix materialised. */
function naive(c: Case, inp: ReturnType<typeof makeInputs>, o: AttentionOptions) {
  const { B, H, Hkv, T, S, D } = c;
  const group = H / Hkv;
  const out = new Float64Array(B * H * T * D), lse = new Float64Array(B * H * T);
  const dq = new Float64Array(B * H * T * D);
  const dk = new Float64Array(B * Hkv * S * D), dv = new Float64Array(B * Hkv * S * D);
  const word = new Uint32Array(4);
  const keep = (b: number, h: number, i: number, j: number) => {
    if (o.dropout === 0) return 1;
    const e = ((b * H + h) * T + i) * S + j;
    const block = o.dropoutBlock + Math.floor(e / 4);
    philox4x32(block % 2 ** 32, Math.floor(block / 2 ** 32), o.dropoutKey0, o.dropoutKey1, word);
    return (word[e % 4] >>> 8) * 2 ** -24 >= o.dropout ? 1 / (1 - o.dropout) : 0;
  };
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const pos = i + o.qOffset;
        const s = new Float64Array(S).fill(-Infinity);
        for (let j = 0; j < S; j++) {
          if (o.causal && j > pos) continue;
          if (o.window > 0 && j <= pos - o.window) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += at(inp.q, b, h, i, d) * at(inp.k, b, hk, j, d);
          s[j] = o.scale * dot;
          if (inp.slopes) s[j] -= inp.slopes[h] * Math.abs(pos - j);
          if (inp.bias) s[j] += inp.bias[(h * T + i) * S + j];
        }
        const m = Math.max(...s);
        const row = (b * H + h) * T + i;
        if (m === -Infinity) {
          lse[row] = -Infinity;
          continue; // out row 0, no gradient
        }
        let sum = 0;
        for (let j = 0; j < S; j++) sum += Math.exp(s[j] - m);
        lse[row] = m + Math.log(sum);
        const p = s.map((x) => Math.exp(x - lse[row]));
        const z = p.map((_, j) => keep(b, h, i, j));
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < S; j++) acc += p[j] * z[j] * at(inp.v, b, hk, j, d);
          out[row * D + d] = acc;
        }
        // Backward: dp_j = z_j dout.v_j; ds_j = p_j (dp_j - sum_l p_l dp_l).
        const dp = new Float64Array(S);
        let delta = 0;
        for (let j = 0; j < S; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += at(inp.dout, b, h, i, d) * at(inp.v, b, hk, j, d);
          dp[j] = z[j] * dot;
          delta += p[j] * dp[j];
        }
        for (let j = 0; j < S; j++) {
          const ds = p[j] * (dp[j] - delta);
          const kvRow = (b * Hkv + hk) * S + j;
          for (let d = 0; d < D; d++) {
            dq[row * D + d] += o.scale * ds * at(inp.k, b, hk, j, d);
            dk[kvRow * D + d] += o.scale * ds * at(inp.q, b, h, i, d);
            dv[kvRow * D + d] += p[j] * z[j] * at(inp.dout, b, h, i, d);
          }
        }
      }
    }
  }
  return { out, lse, dq, dk, dv };
}

/** The same data on the CPU backend (as f32: it computes in f32 only) and in the emulator. */
function pair(dtype: DType, x: Data): [View, View] {
  const f32 = Float32Array.from(x.storage);
  const buffer = cpu.alloc(f32.byteLength + 8);
  cpu.write(buffer, f32, 0);
  const { shape, strides, offset } = x;
  const raw = dtype === "bf16" ? toBf16Array(x.storage) : f32;
  return [
    { buffer, dtype: "f32", shape, strides, offset },
    emuView(dtype, shape, raw, strides, offset),
  ];
}

/** A contiguous output pair holding garbage the kernels must overwrite. */
function output(dtype: DType, shape: number[]): [View, View] {
  const n = shape.reduce((a, b) => a * b, 1);
  return pair(dtype, {
    shape,
    strides: contiguous(shape),
    offset: 0,
    storage: new Float64Array(n).fill(-77),
  });
}

/** Contiguous values of an emulator view (bf16 widened). */
function emuValues(v: View, n: number): Float64Array {
  const a = emuArray(v).subarray(v.offset, v.offset + n);
  return Float64Array.from(v.dtype === "bf16" ? fromBf16Array(a as Uint16Array) : a);
}

function cpuValues(v: View, n: number): Float64Array {
  return Float64Array.from(cpu.read(v.buffer, "f32", v.offset, n) as Float32Array);
}

/** got == want within atol + rtol * |want| (NaN never allowed; -inf must match -inf). */
function close(
  what: string,
  got: Float64Array,
  want: ArrayLike<number>,
  rtol: number,
  atol: number,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i], w = want[i];
    assert.ok(!Number.isNaN(g), `${what}: element ${i} is NaN`);
    const ok = g === w || Math.abs(g - w) <= atol + rtol * Math.abs(w);
    assert.ok(ok, `${what}: element ${i}: CUDA kernel ${g}, reference ${w}`);
  }
}

function run(c: Case): void {
  const dev = emu!;
  const o = options(c);
  const inp = makeInputs(c);
  const ref = naive(c, inp, o);
  const { B, H, Hkv, T, S, D, dtype } = c;
  const [cq, eq] = pair(dtype, inp.q);
  const [ck, ek] = c.fused
    ? [{ ...cq, shape: inp.k.shape, strides: inp.k.strides, offset: inp.k.offset }, {
      ...eq,
      shape: inp.k.shape,
      strides: inp.k.strides,
      offset: inp.k.offset,
    }]
    : pair(dtype, inp.k);
  const [cv, ev] = c.fused
    ? [{ ...cq, shape: inp.v.shape, strides: inp.v.strides, offset: inp.v.offset }, {
      ...eq,
      shape: inp.v.shape,
      strides: inp.v.strides,
      offset: inp.v.offset,
    }]
    : pair(dtype, inp.v);
  const [cdo, edo] = pair(dtype, inp.dout);
  const vec = (
    x: Float64Array | null,
    shape: number[],
    strides: number[],
  ): [View | null, View | null] =>
    x ? pair("f32", { shape, strides, offset: 0, storage: x }) : [null, null];
  const [cs, es] = vec(inp.slopes, [H], [1]);
  const [cb, eb] = vec(inp.bias, [B, H, T, S], [0, T * S, S, 1]);
  const [cout, eout] = output(dtype, [B, H, T, D]);
  const [clse, elseE] = output("f32", [B, H, T]);
  cpu.attentionForward({
    q: cq,
    k: ck,
    v: cv,
    alibiSlopes: cs,
    bias: cb,
    out: cout,
    lse: clse,
    options: o,
  });
  k.attentionForward(dev, {
    q: eq,
    k: ek,
    v: ev,
    alibiSlopes: es,
    bias: eb,
    out: eout,
    lse: elseE,
    options: o,
  });
  dev.endCall();
  // f32: the kernels accumulate in f32 in another order than the references; bf16: outputs are
  // rounded to bf16 (2^-9 relative) from f32 accumulations of bf16 inputs.
  const [rtol, atol] = dtype === "f32" ? [2e-4, 2e-5] : [1.6e-2, 4e-3];
  const nOut = B * H * T * D, nKv = B * Hkv * S * D;
  const gotOut = emuValues(eout, nOut), gotLse = emuValues(elseE, B * H * T);
  close(`${c.name}: out vs naive`, gotOut, ref.out, rtol, atol);
  close(`${c.name}: lse vs naive`, gotLse, ref.lse, 2e-5, 2e-5);
  close(`${c.name}: out vs CPU backend`, gotOut, cpuValues(cout, nOut), rtol, atol);
  close(`${c.name}: lse vs CPU backend`, gotLse, cpuValues(clse, B * H * T), 2e-5, 2e-5);

  // Backward from the kernel's own out/lse (as autograd would).
  const [cdq, edq] = output(dtype, [B, H, T, D]);
  const [cdk, edk] = output(dtype, [B, Hkv, S, D]);
  const [cdv, edv] = output(dtype, [B, Hkv, S, D]);
  cpu.attentionBackward({
    q: cq,
    k: ck,
    v: cv,
    alibiSlopes: cs,
    bias: cb,
    out: cout,
    dout: cdo,
    lse: clse,
    dq: cdq,
    dk: cdk,
    dv: cdv,
    options: o,
  });
  k.attentionBackward(dev, {
    q: eq,
    k: ek,
    v: ev,
    alibiSlopes: es,
    bias: eb,
    out: eout,
    dout: edo,
    lse: elseE,
    dq: edq,
    dk: edk,
    dv: edv,
    options: o,
  });
  dev.endCall();
  const grads: [string, View, View, Float64Array, number][] = [
    ["dq", edq, cdq, ref.dq, nOut],
    ["dk", edk, cdk, ref.dk, nKv],
    ["dv", edv, cdv, ref.dv, nKv],
  ];
  for (const [name, e, cv2, want, n] of grads) {
    const got = emuValues(e, n);
    // Gradients sum more terms (over queries and GQA heads): a looser absolute floor.
    const gAtol = dtype === "f32" ? 1e-4 : 2e-2;
    close(`${c.name}: ${name} vs naive`, got, want, rtol, gAtol);
    close(`${c.name}: ${name} vs CPU backend`, got, cpuValues(cv2, n), rtol, gAtol);
  }
}

function test(c: Case): void {
  Deno.test({ name: `attention kernels: ${c.name}`, ignore: emu === null, fn: () => run(c) });
}

test({
  name: "f32 non-causal, odd T = S = 37, q/k/v strided views of a fused qkv buffer",
  dtype: "f32",
  B: 2,
  H: 2,
  Hkv: 2,
  T: 37,
  S: 37,
  D: 64,
  fused: true,
});
test({
  name: "f32 causal over two tiles (T = S = 70) with a broadcast bias",
  dtype: "f32",
  B: 1,
  H: 2,
  Hkv: 2,
  T: 70,
  S: 70,
  D: 64,
  causal: true,
  bias: true,
});
test({
  name: "f32 KV-cache decode: T = 5 < S = 77, qOffset 72, GQA 4:2, ALiBi",
  dtype: "f32",
  B: 1,
  H: 4,
  Hkv: 2,
  T: 5,
  S: 77,
  D: 64,
  causal: true,
  qOffset: 72,
  alibi: true,
});
test({
  name: "f32 sliding window 16, causal, T = S = 70 (whole tiles skipped)",
  dtype: "f32",
  B: 1,
  H: 1,
  Hkv: 1,
  T: 70,
  S: 70,
  D: 64,
  causal: true,
  window: 16,
});
test({
  name: "f32 dropout 0.25 with GQA 2:1: the CPU backend's Philox mask",
  dtype: "f32",
  B: 1,
  H: 2,
  Hkv: 1,
  T: 33,
  S: 41,
  D: 64,
  dropout: 0.25,
});
test({
  name: "f32 fully masked rows (qOffset -3, causal): out 0, lse -inf, no NaN",
  dtype: "f32",
  B: 1,
  H: 1,
  Hkv: 1,
  T: 9,
  S: 12,
  D: 64,
  causal: true,
  qOffset: -3,
});
test({
  name: "f32 head dim 128 (32-row tiles), T = S = 40, bias and ALiBi",
  dtype: "f32",
  B: 1,
  H: 2,
  Hkv: 1,
  T: 40,
  S: 40,
  D: 128,
  bias: true,
  alibi: true,
  causal: true,
});
test({
  name: "bf16 causal, T = S = 40, dropout 0.1",
  dtype: "bf16",
  B: 1,
  H: 2,
  Hkv: 2,
  T: 40,
  S: 40,
  D: 64,
  causal: true,
  dropout: 0.1,
});
test({
  name:
    "bf16 (tensor-core forward) over two tiles: T = 70, S = 77, qOffset 7, GQA 4:2, ALiBi, bias",
  dtype: "bf16",
  B: 1,
  H: 4,
  Hkv: 2,
  T: 70,
  S: 77,
  D: 64,
  causal: true,
  qOffset: 7,
  alibi: true,
  bias: true,
});
test({
  name: "bf16 head dim 128, non-causal window 20, fused qkv views",
  dtype: "bf16",
  B: 2,
  H: 2,
  Hkv: 1,
  T: 45,
  S: 45,
  D: 128,
  window: 20,
  fused: true,
});

test({
  name: "head dims off the kernels' 64/128: f32 D = 20, GQA, causal with qOffset (padded tiles)",
  dtype: "f32",
  B: 1,
  H: 4,
  Hkv: 2,
  T: 30,
  S: 50,
  D: 20,
  causal: true,
  qOffset: 20,
  alibi: true,
});
test({
  name: "head dims off the kernels' 64/128: bf16 D = 96, dropout 0.3 (scalar bf16 kernels)",
  dtype: "bf16",
  B: 1,
  H: 2,
  Hkv: 2,
  T: 40,
  S: 33,
  D: 96,
  dropout: 0.3,
});

// ---- end to end: the op on an emulated CUDA device vs naiveAttention on the CPU ----

const api = emu ? new EmuDeviceApi(emu) : null;
const backend = api
  ? new CudaBackend(api, { blasSymbols: { blas: fakeCublas(api), lt: fakeCublasLt(api) } })
  : null;
if (backend) setBackend("cuda:0", backend);

/** Output and leaf gradients of sum(attn(q, k, v) * upstream) with the given RNG state. */
function endToEnd(
  device: "cpu" | "cuda",
  attn: typeof scaledDotProductAttention,
  leaves: Tensor[],
  upstream: Tensor,
  opts: AttentionOpOptions,
  dtype: DType,
): { out: Float32Array; grads: Float32Array[] } {
  setRngState({ seed: 99, offset: 5 });
  for (const t of leaves) t.zeroGrad();
  return tidy(() => {
    const moved = leaves.map((t) => (dtype === "bf16" ? t.cast("bf16") : t).to(device));
    const out = attn(moved[0], moved[1], moved[2], opts);
    const loss = out.cast("f32").mul(upstream.to(device)).sum();
    loss.backward();
    const result = {
      out: out.to("cpu").cast("f32").toTypedArray() as Float32Array,
      grads: leaves.map((t) => t.grad!.toTypedArray() as Float32Array),
    };
    return result;
  });
}

Deno.test({
  name:
    "attention op on the emulated CudaBackend equals naiveAttention on the CPU (GQA, causal, dropout; f32, bf16)",
  ignore: backend === null,
  fn: () => {
    manualSeed(3);
    const leaves = [[2, 4, 45, 64], [2, 2, 45, 64], [2, 2, 45, 64]].map((s) =>
      randn(s, { requiresGrad: true })
    );
    const upstream = randn([2, 4, 45, 64]);
    const opts: AttentionOpOptions = { causal: true, dropout: 0.2, training: true };
    const before = memoryStats().liveTensors;
    const ref = endToEnd("cpu", naiveAttention, leaves, upstream, opts, "f32");
    for (const dtype of ["f32", "bf16"] as const) {
      const got = endToEnd("cuda", scaledDotProductAttention, leaves, upstream, opts, dtype);
      const [rtol, atol] = dtype === "f32" ? [2e-4, 1e-4] : [3e-2, 3e-2];
      close(`${dtype} out`, Float64Array.from(got.out), ref.out, rtol, atol);
      got.grads.forEach((g, i) =>
        close(`${dtype} grad ${"qkv"[i]}`, Float64Array.from(g), ref.grads[i], rtol, atol * 4)
      );
    }
    for (const t of leaves) t.grad?.dispose();
    for (const t of [...leaves, upstream]) t.dispose();
    assert.equal(memoryStats().liveTensors, before - 4, "tensors left alive");
  },
});
