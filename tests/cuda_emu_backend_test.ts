// The whole CUDA backend end to end without a GPU: CudaBackend (allocator, scratch, copies, the
// kernel wrappers and their parameter packing, cuBLAS/cuBLASLt planning) over an emulated device
// whose kernels are the real cuda/*.cu compiled with g++ (tests/cuda_emu) and whose GEMMs are the
// host cuBLAS stand-ins of tests/_fake_cublas.ts. The fixture op suite (values and gradients) and
// a GPT-2 forward, loss, backward and AdamW step, f32 and under bf16 autocast, compared with the
// CPU backend. Skipped, saying why, without g++.
import assert from "node:assert/strict";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import { setBackend } from "../src/backend/registry.ts";
import { AdamW } from "../src/optim/adamw.ts";
import type { GPT2 } from "../src/models/gpt2/model.ts";
import { memoryStats, tidy } from "../src/memory.ts";
import { noGrad } from "../src/autograd.ts";
import { tensor } from "../src/ops/creation.ts";
import { autocast } from "../src/autocast.ts";
import { EmuDevice, emulatorUnavailable } from "./cuda_emu/emu.ts";
import { EmuDeviceApi } from "./cuda_emu/emu_device_api.ts";
import { fakeCublas, fakeCublasLt } from "./_fake_cublas.ts";
import type { CublasLtSymbols } from "../ffi/cublaslt.ts";
import type { View } from "../src/backend/backend.ts";
import { batch, mismatch, opSuiteFailures, twins } from "./_cuda_op_suite.ts";

const unavailable = await emulatorUnavailable();
if (unavailable) console.warn(`cuda_emu_backend_test: skipped: ${unavailable}`);
const api = unavailable ? null : new EmuDeviceApi(await EmuDevice.open());
const backend = api
  ? new CudaBackend(api, {
    blasSymbols: { blas: fakeCublas(api), lt: fakeCublasLt(api) },
    ltWorkspaceBytes: 2 ** 20,
  })
  : null;
if (backend) {
  setBackend("cuda:0", backend); // "cuda" tensors now live on the emulated device
  // cuBLAS and cuBLASLt's workspace (one block, held for the backend's life) are created by the
  // first matmul: make it now, so the tests' block counts see only their own.
  const x = tensor([[1, 2]], { device: "cuda" });
  const y = x.matmul(x.transpose(0, 1));
  assert.deepEqual(y.toArray(), [[5]]);
  for (const t of [x, y]) t.dispose();
}

function test(name: string, fn: (be: CudaBackend) => void): void {
  Deno.test({
    name: `cuda (emulated): ${name}${unavailable ? ` (skipped: ${unavailable})` : ""}`,
    ignore: backend === null,
    fn: () => fn(backend!),
  });
}

for (
  const file of ["ops_elementwise.json", "ops_reduce.json", "ops_nn.json", "ops_movement.json"]
) {
  test(`every case of ${file} matches the CPU backend, values and gradients`, (be) => {
    const before = { tensors: memoryStats().liveTensors, blocks: be.memoryStats().liveBlocks };
    const { failures, cases } = opSuiteFailures(file, "cuda");
    assert.equal(memoryStats().liveTensors, before.tensors, "tensors left alive");
    assert.equal(be.memoryStats().liveBlocks, before.blocks, "device blocks left allocated");
    assert.deepEqual(failures, [], `${failures.length} of ${cases} cases failed`);
  });
}

test("linearBias falls back to matmul + add where cuBLASLt has no algorithm", () => {
  // The same emulated device; a cuBLASLt whose heuristic refuses every GEMM.
  let asked = 0;
  const refusing = {
    ...fakeCublasLt(api!),
    cublasLtMatmulAlgoGetHeuristic: () => (asked++, 15), // CUBLAS_STATUS_NOT_SUPPORTED
  } as unknown as CublasLtSymbols;
  const be = new CudaBackend(api!, {
    blasSymbols: { blas: fakeCublas(api!), lt: refusing },
    ltWorkspaceBytes: 0,
  });
  const [rows, K, N] = [3, 4, 2];
  const put = (shape: number[], values: number[]): View => {
    const buffer = be.alloc(values.length * 4);
    be.write(buffer, Float32Array.from(values));
    const strides = shape.length === 2 ? [shape[1], 1] : [1];
    return { buffer, dtype: "f32", shape, strides, offset: 0 };
  };
  const xv = Array.from({ length: rows * K }, (_, i) => (i % 5) - 2);
  const wv = Array.from({ length: N * K }, (_, i) => (i % 3) - 1);
  const bv = [0.5, -1.5];
  const [x, w, b, out] = [
    put([rows, K], xv),
    put([N, K], wv),
    put([N], bv),
    put([rows, N], new Array(rows * N).fill(0)),
  ];
  for (let rep = 0; rep < 2; rep++) {
    be.linearBias(x, w, b, out);
    const got = be.read(out.buffer, "f32", 0, rows * N);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < N; j++) {
        let want = bv[j];
        for (let q = 0; q < K; q++) want += xv[i * K + q] * wv[j * K + q];
        assert.equal(got[i * N + j], want, `(${i}, ${j})`);
      }
    }
  }
  assert.equal(asked, 1, "cuBLASLt was asked once, then the refusal remembered");
  for (const v of [x, w, b, out]) be.free(v.buffer);
  assert.equal(be.memoryStats().liveBlocks, 0);
  be.dispose();
});

/** Logits, loss, gradients and parameters after one AdamW step (under bf16 autocast if asked). */
function oneStep(model: GPT2, bf16: boolean) {
  const run = <T>(fn: () => T): T => (bf16 ? autocast("bf16", fn) : fn());
  const [idx, targets] = batch(model.device);
  const logitsT = noGrad(() => run(() => model.forward(idx))); // (B, T, V)
  const logits = logitsT.toTypedArray();
  logitsT.dispose();
  const opt = AdamW.forModel(model, { lr: 1e-3, weightDecay: 0.1 });
  const loss = run(() => model.loss(idx, targets));
  const lossValue = loss.item();
  loss.backward();
  const grads = model.namedParameters().map(([n, p]) => [n, p.grad!.toTypedArray()] as const);
  opt.step();
  const params = model.namedParameters().map(([n, p]) => [n, p.toTypedArray()] as const);
  for (const t of [idx, targets, loss]) t.dispose();
  opt.dispose();
  return { logits, lossValue, grads, params };
}

test("GPT-2 small-test: logits, loss, gradients and one AdamW step equal the CPU's", (be) => {
  const [cpu, gpu] = twins();
  const launchesBefore = api!.launches;
  const [c, g] = [oneStep(cpu, false), oneStep(gpu, false)];
  const failures = [
    mismatch("logits", g.logits, c.logits, { atol: 1e-4, rtol: 1e-4 }),
    mismatch("loss", [g.lossValue], [c.lossValue], { atol: 1e-5, rtol: 1e-5 }),
    ...c.grads.map(([n, v], i) =>
      mismatch(`grad ${n}`, g.grads[i][1], v, { atol: 1e-5, rtol: 1e-3 })
    ),
    // Adam's first step moves each weight by about lr * sign(grad): a sign may flip only where a
    // gradient is ~0 on both devices.
    ...c.params.map(([n, v], i) =>
      mismatch(`param ${n}`, g.params[i][1], v, { atol: 2e-5, rtol: 1e-4 })
    ),
  ].filter((m) => m !== null);
  assert.deepEqual(failures, []);
  assert.ok(api!.launches - launchesBefore > 50, "the step ran as emulated kernels");
  cpu.dispose();
  gpu.dispose();
  assert.equal(be.memoryStats().liveBlocks, 1, "only cuBLASLt's workspace is left allocated");
});

test("GPT-2 small-test under bf16 autocast: loss and gradients near the f32 CPU's", () => {
  const [cpu, gpu] = twins();
  const [c, g] = [oneStep(cpu, false), oneStep(gpu, true)];
  // bf16 keeps 8 significant bits: activations and weights rounded at every matrix product.
  assert.ok(Math.abs(g.lossValue - c.lossValue) < 0.02, `loss ${g.lossValue} vs ${c.lossValue}`);
  const failures = [
    mismatch("logits", g.logits, c.logits, { atol: 0.05, rtol: 0.05 }),
    ...c.grads.map(([n, v], i) => {
      // Gradients reach the f32 master weights as f32; compare each tensor by its scale.
      const scale = Math.max(...Array.from(v, Math.abs), 1e-6);
      return mismatch(`grad ${n}`, g.grads[i][1], v, { atol: 0.1 * scale, rtol: 0.05 });
    }),
  ].filter((m) => m !== null);
  assert.deepEqual(failures, []);
  for (const [n, v] of g.params) {
    assert.ok(v instanceof Float32Array, `${n}: master weights stay f32`);
  }
  cpu.dispose();
  gpu.dispose();
});

test("repeated training steps hold the allocator flat", (be) => {
  const [, gpu] = twins();
  gpu.train();
  const opt = AdamW.forModel(gpu, { lr: 1e-3 });
  const [idx, targets] = batch("cuda");
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      const loss = gpu.loss(idx, targets);
      loss.backward();
      opt.step();
      return loss.item();
    });
  const first = step();
  step(); // optimizer state and the cache settle
  const before = { ...be.memoryStats(), live: memoryStats().liveBytes };
  let last = first;
  for (let i = 0; i < 5; i++) last = step();
  const after = { ...be.memoryStats(), live: memoryStats().liveBytes };
  assert.equal(after.live, before.live, "live tensor bytes");
  assert.equal(after.allocatedBytes, before.allocatedBytes, "allocator bytes in use");
  assert.equal(after.deviceAllocs, before.deviceAllocs, "no new device allocations");
  assert.ok(last < first, `the loss falls: ${first} -> ${last}`);
  for (const t of [idx, targets]) t.dispose();
  opt.dispose();
  gpu.dispose();
});
