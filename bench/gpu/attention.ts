// Fused attention throughput on CUDA: denograd's FlashAttention-2-style kernels (cuda/attention_*.cu)
// or, with --path cudnn, the cuDNN fused path (src/backend/cuda/cudnn_attention.ts), forward and
// forward + backward, bf16, B = 8, H = 12, D = 64, T = S = 1024..8192, causal and not. Calls the
// backend's attentionForward/attentionBackward directly (no autograd), timed with CUDA events on
// the backend's stream. Writes JSON for bench/gpu/attention_torch.py, which times PyTorch's
// scaled_dot_product_attention (flash backend) on the same shapes and adds the ratios.
//
// FLOPs (the convention FlashAttention's papers and PyTorch's benchmarks use): forward
// 4 * B * H * T * S * D (two GEMMs), halved when causal; backward 2.5x the forward (five GEMMs,
// the recomputation of q k^T counted once), so forward + backward is 3.5x the forward.
//
//   deno run --no-check --allow-all bench/gpu/attention.ts --out attn_flash.json [--path cudnn] [--quick]

import { parseArgs } from "node:util";
import type { AttentionOptions, View } from "../../src/backend/backend.ts";
import { getBackend } from "../../src/backend/registry.ts";
import type { CudaBackend } from "../../src/backend/cuda/cuda_backend.ts";
import { cudaDriver } from "../../ffi/cuda.ts";
import { randn, zeros } from "../../src/ops/creation.ts";
import {
  type AttentionOpOptions,
  naiveAttention,
  scaledDotProductAttention,
} from "../../src/ops/attention.ts";
import { tidy } from "../../src/memory.ts";
import type { Tensor } from "../../src/tensor.ts";
import { manualSeed } from "../../src/random.ts";
import { writeFileAtomic } from "../../src/io/atomic.ts";

/** The shapes: GPT-2-small-like heads at long context. */
export const ATTENTION_BENCH = { B: 8, H: 12, D: 64, T: [1024, 2048, 4096, 8192] } as const;

/** Forward FLOPs of one call (two GEMMs; causal halves them). */
export function attentionFlops(
  B: number,
  H: number,
  T: number,
  D: number,
  causal: boolean,
): number {
  return 4 * B * H * T * T * D * (causal ? 0.5 : 1);
}

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    path: { type: "string", default: "flash" },
    quick: { type: "boolean", default: false },
  },
});
if (values.path !== "flash" && values.path !== "cudnn") {
  throw new TypeError(`attention bench: --path must be flash or cudnn, got ${values.path}`);
}
// The backend picks its attention path on the first attention call from this variable.
if (values.path === "cudnn") Deno.env.set("DENOGRAD_ATTENTION", "cudnn");
else Deno.env.delete("DENOGRAD_ATTENTION");

manualSeed(0);
const be = getBackend("cuda") as CudaBackend;
const cu = cudaDriver();
const [start, end] = [cu.eventCreate(), cu.eventCreate()];

/**
 * Milliseconds per call: one warm-up, then ~150 ms of back-to-back calls (1 to 50). On the cuDNN
 * path a failure is recorded (ms NaN, `error`) instead of ending the run.
 */
function time(fn: () => void): { ms: number; iters: number; error?: string } {
  try {
    return timeOnce(fn);
  } catch (err) {
    if (values.path !== "cudnn") throw err;
    return { ms: NaN, iters: 0, error: err instanceof Error ? err.message : String(err) };
  }
}

function timeOnce(fn: () => void): { ms: number; iters: number } {
  const once = (n: number) => {
    be.synchronize();
    cu.eventRecord(start, be.stream);
    for (let i = 0; i < n; i++) fn();
    cu.eventRecord(end, be.stream);
    cu.eventSynchronize(end);
    return cu.eventElapsedTime(start, end) / n;
  };
  const first = once(1); // warm-up: module load, cuDNN plans, allocator
  const iters = Math.max(1, Math.min(50, Math.round(150 / Math.max(first, 1e-3))));
  return { ms: once(iters), iters };
}

/** Why cuDNN declines these calls (null: it runs them); static checks if it never got asked. */
function cudnnReason(v: Record<string, View>, options: AttentionOptions, backward: boolean) {
  const attn = be.cudnnAttention();
  if (!attn) return "the cuDNN path is not selected";
  const { q, k, v: vv, out, lse } = v;
  return attn.reason(q, k, vv, null, null, out, lse, options, backward);
}

/**
 * The kernels' first run on a real GPU is here: before timing, the op on this device against
 * naiveAttention on the CPU (values and q/k/v gradients) on small shapes that cross tiles, with
 * GQA, causal masks with a query offset, ALiBi and dropout. Max abs errors go into the JSON.
 */
function correctness(): Record<string, unknown>[] {
  const cases: { dtype: "f32" | "bf16"; shape: number[][]; opts: AttentionOpOptions }[] = [
    { dtype: "f32", shape: [[2, 4, 130, 64], [2, 2, 130, 64]], opts: { causal: true } },
    { dtype: "bf16", shape: [[2, 4, 130, 64], [2, 2, 130, 64]], opts: { causal: true } },
    {
      dtype: "bf16",
      shape: [[1, 2, 37, 128], [1, 1, 200, 128]],
      opts: { causal: true, dropout: 0.1 },
    },
    { dtype: "f32", shape: [[1, 2, 70, 64], [1, 2, 70, 64]], opts: { window: 16, dropout: 0.2 } },
  ];
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const row = tidy(() => {
      const [qs, kvs] = c.shape;
      const slopes = zeros([qs[1]]).add(0.25);
      const leaves = [qs, kvs, kvs].map((s) => randn(s, { requiresGrad: true }));
      const upstream = randn(qs);
      const run = (device: "cpu" | "cuda") => {
        manualSeed(5); // the same dropout mask on both sides
        for (const t of leaves) t.zeroGrad();
        // bf16: the CPU reference computes in f32 on the bf16-rounded inputs.
        const [q, k, v] = leaves.map((t) => {
          if (c.dtype === "f32") return t.to(device);
          const r = t.cast("bf16");
          return device === "cpu" ? r.cast("f32") : r.to(device);
        });
        const attn = device === "cpu" ? naiveAttention : scaledDotProductAttention;
        const out = attn(q, k, v, { ...c.opts, alibiSlopes: slopes.to(device) });
        out.cast("f32").mul(upstream.to(device)).sum().backward();
        return [out.to("cpu").cast("f32"), ...leaves.map((t) => t.grad!.clone())];
      };
      const want = run("cpu"), got = run("cuda");
      const err = (i: number) => got[i].sub(want[i]).abs().max().item();
      // f32 agrees to rounding; bf16 outputs and gradients are rounded to 8 bits (values ~1-4).
      const limit = c.dtype === "f32" ? 1e-4 : 0.1;
      return {
        ok: [0, 1, 2, 3].every((i) => err(i) <= limit),
        dtype: c.dtype,
        q: qs,
        kv: kvs,
        ...c.opts,
        out_max_abs_err: err(0),
        dq_max_abs_err: err(1),
        dk_max_abs_err: err(2),
        dv_max_abs_err: err(3),
      };
    });
    console.log(`check ${JSON.stringify(row)}`);
    rows.push(row);
  }
  return rows;
}

const results: Record<string, unknown>[] = [];
const report = {
  what: `denograd fused attention, ${
    values.path === "flash" ? "our FlashAttention-2-style kernels" : "the cuDNN path"
  }, bf16, backend calls timed with CUDA events`,
  path: values.path,
  device: be.info,
  date: new Date().toISOString(),
  // Against naiveAttention on the CPU (the flash path only: cuDNN refuses dropout and bias).
  check: values.path === "flash" ? correctness() : null,
  results,
};
// Written after every shape, so a run cut short by its time limit still leaves its numbers.
const save = () =>
  values.out ? writeFileAtomic(values.out, JSON.stringify(report, null, 2) + "\n") : undefined;

const { B, H, D } = ATTENTION_BENCH;
for (const T of values.quick ? ATTENTION_BENCH.T.slice(0, 2) : ATTENTION_BENCH.T) {
  for (const causal of [false, true]) {
    const options: AttentionOptions = {
      causal,
      scale: 1 / Math.sqrt(D),
      qOffset: 0,
      window: 0,
      dropout: 0,
      dropoutKey0: 0,
      dropoutKey1: 0,
      dropoutBlock: 0,
    };
    const data = tidy(() => {
      const bf = (t: Tensor) => t.cast("bf16");
      const shape = [B, H, T, D];
      return {
        q: bf(randn(shape, { device: "cuda" })),
        k: bf(randn(shape, { device: "cuda" })),
        v: bf(randn(shape, { device: "cuda" })),
        dout: bf(randn(shape, { device: "cuda" })),
        out: bf(zeros(shape, { device: "cuda" })),
        dq: bf(zeros(shape, { device: "cuda" })),
        dk: bf(zeros(shape, { device: "cuda" })),
        dv: bf(zeros(shape, { device: "cuda" })),
        lse: zeros([B, H, T], { device: "cuda" }),
      };
    });
    const v: Record<string, View> = {};
    for (const [name, t] of Object.entries(data)) v[name] = t._view();
    const forward = () =>
      be.attentionForward({
        q: v.q,
        k: v.k,
        v: v.v,
        alibiSlopes: null,
        bias: null,
        out: v.out,
        lse: v.lse,
        options,
      });
    const backward = () =>
      be.attentionBackward({
        q: v.q,
        k: v.k,
        v: v.v,
        alibiSlopes: null,
        bias: null,
        out: v.out,
        dout: v.dout,
        lse: v.lse,
        dq: v.dq,
        dk: v.dk,
        dv: v.dv,
        options,
      });
    const flops = attentionFlops(B, H, T, D, causal);
    const fwd = time(forward);
    const both = time(() => (forward(), backward()));
    const row = {
      B,
      H,
      T,
      S: T,
      D,
      causal,
      dtype: "bf16",
      fwd_ms: fwd.ms,
      fwd_tflops: flops / (fwd.ms * 1e-3) / 1e12,
      fwd_bwd_ms: both.ms,
      fwd_bwd_tflops: 3.5 * flops / (both.ms * 1e-3) / 1e12,
      iters: [fwd.iters, both.iters],
      // cuDNN: why the calls fell back to our kernels (null = cuDNN ran them), asked after the
      // runs so graphs cuDNN's heuristics rejected are reported too; and any cuDNN error.
      ...(values.path === "cudnn"
        ? {
          cudnn_forward_unsupported: cudnnReason(v, options, false),
          cudnn_backward_unsupported: cudnnReason(v, options, true),
          error: fwd.error ?? both.error ?? null,
        }
        : {}),
    };
    results.push(row);
    console.log(
      `${values.path} T=${T} ${causal ? "causal " : "full   "}: fwd ${fwd.ms.toFixed(3)} ms ` +
        `(${row.fwd_tflops.toFixed(1)} TFLOP/s), fwd+bwd ${both.ms.toFixed(3)} ms ` +
        `(${row.fwd_bwd_tflops.toFixed(1)} TFLOP/s)`,
    );
    for (const t of Object.values(data)) t.dispose();
    await save();
  }
}
cu.eventDestroy(start);
cu.eventDestroy(end);
