// The first thing check.sh runs on a GPU machine: the shortest path from "libcuda loads" to "our
// kernels and cuBLAS agree with the CPU", one step at a time, each step printed as it passes, so a
// failure names the first layer that broke (driver, module load, a kernel, cuBLAS) before the test
// suite buries it in many failures.
//
//   deno run --no-check --allow-all bench/gpu/smoke.ts

import { cudaStatus } from "../../src/backend/cuda/mod.ts";
import { getBackend } from "../../src/backend/registry.ts";
import type { CudaBackend } from "../../src/backend/cuda/cuda_backend.ts";
import { cublas } from "../../ffi/cublas.ts";
import { cublasLt } from "../../ffi/cublaslt.ts";
import { randn } from "../../src/ops/creation.ts";
import { add, gelu } from "../../src/ops/elementwise.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { softmax } from "../../src/ops/nn.ts";
import { scaledDotProductAttention } from "../../src/ops/attention.ts";
import { manualSeed } from "../../src/random.ts";
import type { Tensor } from "../../src/tensor.ts";

let failed = 0;

/** Runs one step, printing `ok` and its detail or the error; later steps still run. */
function step(name: string, fn: () => string): void {
  const t0 = performance.now();
  try {
    const detail = fn();
    console.log(`ok   ${name} (${(performance.now() - t0).toFixed(0)} ms): ${detail}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err instanceof Error ? err.stack ?? err.message : err}`);
  }
}

/** Largest |a - b| between a CUDA result and the same op on the CPU. */
function maxDiff(gpu: Tensor, cpu: Tensor): number {
  const a = gpu.toTypedArray(), b = cpu.toTypedArray();
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Runs `op` on CPU inputs and on their CUDA copies; throws when they differ by more than tol. */
function agree(op: (...xs: Tensor[]) => Tensor, inputs: Tensor[], tol: number): string {
  const cpu = op(...inputs);
  const gpu = op(...inputs.map((x) => x.to("cuda")));
  const d = maxDiff(gpu, cpu);
  if (!(d <= tol)) throw new Error(`CUDA and CPU differ by ${d} (tolerance ${tol})`);
  return `max |cuda - cpu| = ${d.toExponential(2)}`;
}

const status = cudaStatus();
console.log(`cudaStatus: ${JSON.stringify(status)}`);
if (!status.available) Deno.exit(1);

step("backend", () => {
  const b = getBackend("cuda") as CudaBackend;
  const i = b.info;
  return `${i.name}, sm_${i.computeCapability.join("")}, ${
    (i.totalBytes / 2 ** 30).toFixed(1)
  } GiB`;
});
step("cuBLAS / cuBLASLt load", () => `${cublas().path}; ${cublasLt().path}`);
manualSeed(0);
step("write + read back", () => {
  const x = randn([1000]);
  const d = maxDiff(x.to("cuda"), x);
  if (d !== 0) throw new Error(`round trip changed values by ${d}`);
  return "exact";
});
step("elementwise kernel (add, PTX module load + launch)", () => {
  return agree(add, [randn([257, 33]), randn([257, 33])], 0);
});
step("gelu kernel", () => agree(gelu, [randn([4096])], 1e-6));
step("softmax kernel", () => agree((x) => softmax(x, -1), [randn([64, 1000])], 1e-6));
step("matmul (cuBLAS, f32)", () => agree(matmul, [randn([128, 96]), randn([96, 80])], 1e-4));
step("fused attention (our kernel, f32)", () => {
  const [q, k, v] = [randn([2, 4, 37, 64]), randn([2, 4, 37, 64]), randn([2, 4, 37, 64])];
  return agree((a, b, c) => scaledDotProductAttention(a, b, c, { causal: true }), [q, k, v], 1e-4);
});
step("synchronize + memory stats", () => {
  const b = getBackend("cuda") as CudaBackend;
  b.synchronize();
  return JSON.stringify(b.memoryStats());
});
console.log(failed === 0 ? "smoke: all steps passed" : `smoke: ${failed} step(s) failed`);
Deno.exit(failed === 0 ? 0 : 1);
