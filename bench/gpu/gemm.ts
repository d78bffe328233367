// GEMM throughput of denograd's CUDA matmul (cuBLAS), f32 and bf16, on GPT-2 124M training shapes
// (B*T = 16 x 1024 rows) and 8192^3, timed with CUDA events on the backend's stream. Writes JSON
// for bench/gpu/gemm_torch.py, which times torch.matmul on the same shapes and adds the ratio.
//
//   deno run --no-check --allow-all bench/gpu/gemm.ts --out gemm_ours.json [--quick]

import { parseArgs } from "node:util";
import { getBackend } from "../../src/backend/registry.ts";
import type { CudaBackend } from "../../src/backend/cuda/cuda_backend.ts";
import { cudaDriver } from "../../ffi/cuda.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { randn } from "../../src/ops/creation.ts";
import { tidy } from "../../src/memory.ts";
import type { Tensor } from "../../src/tensor.ts";
import { writeFileAtomic } from "../../src/io/atomic.ts";
import { cublas } from "../../ffi/cublas.ts";
import { cublasLt } from "../../ffi/cublaslt.ts";

/** One GEMM shape: out (batch, m, n) = a (batch, m, k) @ b (batch, k, n). */
export interface GemmShape {
  name: string;
  batch: number;
  m: number;
  n: number;
  k: number;
}

/** GPT-2 124M at batch 16 x 1024 tokens (C = 768, 12 heads of 64), and the classic square. */
export const GEMM_SHAPES: readonly GemmShape[] = [
  { name: "qkv (x @ W_attn)", batch: 1, m: 16384, n: 2304, k: 768 },
  { name: "attn proj", batch: 1, m: 16384, n: 768, k: 768 },
  { name: "mlp fc", batch: 1, m: 16384, n: 3072, k: 768 },
  { name: "mlp proj", batch: 1, m: 16384, n: 768, k: 3072 },
  { name: "lm head", batch: 1, m: 16384, n: 50257, k: 768 },
  { name: "attn scores (q @ k^T)", batch: 192, m: 1024, n: 1024, k: 64 },
  { name: "attn values (p @ v)", batch: 192, m: 1024, n: 64, k: 1024 },
  { name: "square 8192", batch: 1, m: 8192, n: 8192, k: 8192 },
];

const { values } = parseArgs({
  options: { out: { type: "string" }, quick: { type: "boolean", default: false } },
});

const be = getBackend("cuda") as CudaBackend;
const cu = cudaDriver();
const [start, end] = [cu.eventCreate(), cu.eventCreate()];

/** Milliseconds per call of `fn`, by CUDA events around `iters` back-to-back calls. */
function time(fn: () => void, flops: number): { ms: number; iters: number } {
  for (let i = 0; i < 3; i++) fn(); // warm-up: cuBLAS heuristics, allocator
  // About 200 ms of work per measurement, between 5 and 200 calls.
  const iters = Math.max(5, Math.min(200, Math.round(200e-3 / (flops / 400e12))));
  be.synchronize();
  cu.eventRecord(start, be.stream);
  for (let i = 0; i < iters; i++) fn();
  cu.eventRecord(end, be.stream);
  cu.eventSynchronize(end);
  return { ms: cu.eventElapsedTime(start, end) / iters, iters };
}

const results: Record<string, unknown>[] = [];
const report = {
  what: "denograd CUDA matmul (cuBLAS GemmStridedBatchedEx, f32 compute; f32 exact, no TF32)",
  device: be.info,
  cublas: cublas().path,
  cublasLt: { path: cublasLt().path, version: Number(cublasLt().symbols.cublasLtGetVersion()) },
  date: new Date().toISOString(),
  results,
};
// Written after every shape, so a run cut short by its time limit still leaves its numbers.
const save = () =>
  values.out ? writeFileAtomic(values.out, JSON.stringify(report, null, 2) + "\n") : undefined;

for (const dtype of ["f32", "bf16"] as const) {
  for (const s of values.quick ? GEMM_SHAPES.slice(0, 2) : GEMM_SHAPES) {
    const flops = 2 * s.batch * s.m * s.n * s.k;
    const [a, b] = tidy(() => {
      const dims = (r: number, c: number) => (s.batch > 1 ? [s.batch, r, c] : [r, c]);
      const a0 = randn(dims(s.m, s.k), { device: "cuda" });
      const b0 = randn(dims(s.k, s.n), { device: "cuda" });
      return dtype === "f32" ? [a0, b0] : [a0.cast("bf16"), b0.cast("bf16")];
    }) as Tensor[];
    const { ms, iters } = time(() => matmul(a, b).dispose(), flops);
    const r = { ...s, dtype, ms, iters, tflops: flops / (ms * 1e-3) / 1e12 };
    results.push(r);
    console.log(
      `${dtype} ${s.name.padEnd(22)} ${s.batch}x${s.m}x${s.n}x${s.k}: ${ms.toFixed(3)} ms, ` +
        `${r.tflops.toFixed(1)} TFLOP/s`,
    );
    a.dispose();
    b.dispose();
    await save();
  }
}
cu.eventDestroy(start);
cu.eventDestroy(end);
