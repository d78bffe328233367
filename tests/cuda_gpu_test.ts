// The CUDA backend on a real GPU, against the CPU backend: every op of the fixture suite with its
// gradients, bf16 kernels, a GPT-2 forward and AdamW step, flat memory over 50 training steps,
// out-of-memory and bad launches. Without a GPU every test is listed as ignored, saying why.
import assert from "node:assert/strict";
// Imported from src/, not mod.ts: mod.ts reaches the tokenizer's npm package, too big to carry
// to the GPU machine (bench/gpu/prepare.sh).
import { AdamW } from "../src/optim/adamw.ts";
import { memoryStats, tidy } from "../src/memory.ts";
import { noGrad } from "../src/autograd.ts";
import { tensor } from "../src/ops/creation.ts";
import type { AdamWStepOptions, Backend, View } from "../src/backend/backend.ts";
import { getBackend } from "../src/backend/registry.ts";
import { type CudaBackend, cudaStatus } from "../src/backend/cuda/mod.ts";
import { PTX_MODULES } from "../src/backend/cuda/_ptx.ts";
import { ptxEntries } from "../src/backend/cuda/device.ts";
import { type DType, fromBf16Array, toBf16Array } from "../src/dtype.ts";
import type { Tolerance } from "./_fixtures.ts";
import { batch, mismatch, opSuiteFailures, twins } from "./_cuda_op_suite.ts";

const status = cudaStatus();
const why = status.available
  ? ""
  : ` (skipped: no CUDA driver: ${status.reason.split("\n")[0].replace(/\s*Tried:$/, "")})`;

/** A test that runs only where a GPU is present; elsewhere it is listed as ignored, with why. */
function gpuTest(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name: `cuda: ${name}${why}`, ignore: !status.available, fn });
}

function cuda(): CudaBackend {
  return getBackend("cuda") as CudaBackend;
}

// ---- the op suite: every fixture case on CUDA and on the CPU, values and gradients ----

for (
  const file of ["ops_elementwise.json", "ops_reduce.json", "ops_nn.json", "ops_movement.json"]
) {
  gpuTest(`every case of ${file} matches the CPU backend, values and gradients`, () => {
    const before = memoryStats().liveTensors;
    const { failures, cases } = opSuiteFailures(file, "cuda");
    assert.equal(memoryStats().liveTensors, before, "tensors left alive");
    assert.deepEqual(failures, [], `${failures.length} of ${cases} cases failed`);
  });
}

// ---- bf16 kernels, called at the backend level against the CPU on the same rounded values ----

function put(be: Backend, values: ArrayLike<number>, shape: number[], dtype: DType): View {
  const n = shape.reduce((a, b) => a * b, 1);
  const buffer = be.alloc(Math.max(n, 1) * (dtype === "bf16" ? 2 : 4));
  const host = dtype === "bf16"
    ? toBf16Array(values)
    : dtype === "f32"
    ? Float32Array.from(values)
    : Int32Array.from(values);
  be.write(buffer, host);
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return { buffer, dtype, shape, strides, offset: 0 };
}

function get(be: Backend, v: View): Float32Array | Int32Array {
  const n = v.shape.reduce((a, b) => a * b, 1);
  return be.read(v.buffer, v.dtype, v.offset, n);
}

/** Host values rounded to bf16 (what a bf16 tensor of them holds). */
function bf(values: ArrayLike<number>): Float32Array {
  return fromBf16Array(toBf16Array(values));
}

function normal(n: number, seed: number): number[] {
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Array.from(
    { length: n },
    () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()),
  );
}

const BF16_TOL: Tolerance = { atol: 2e-2, rtol: 2e-2 };

gpuTest("bf16 kernels agree with the CPU's f32 kernels on bf16-rounded inputs", () => {
  const g = cuda(), c = getBackend("cpu");
  const N = 6, C = 40;
  const x = bf(normal(N * C, 1)), w = bf(normal(C, 2)), b = bf(normal(C, 3));
  const failures: string[] = [];
  const check = (what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = BF16_TOL) => {
    const m = mismatch(what, got, want, tol);
    if (m) failures.push(m);
  };

  // f32 -> bf16 on the device rounds exactly as the host does (ties to even included).
  const ties = [1.00390625, 1.01171875, -3.3, 65504, 1e-30, ...normal(64, 4)];
  const src = put(g, ties, [ties.length], "f32"), dst = put(g, ties, [ties.length], "bf16");
  g.unary("copy", src, dst);
  check("cast f32 -> bf16", get(g, dst), bf(ties), { atol: 0, rtol: 0 });

  for (const op of ["add", "mul"] as const) {
    const [ga, gb, go] = [
      put(g, x, [N, C], "bf16"),
      put(g, x.map((v) => v * 0.5 + 1), [N, C], "bf16"),
      put(g, x, [N, C], "bf16"),
    ];
    const [ca, cb, co] = [
      put(c, x, [N, C], "f32"),
      put(c, bf(x.map((v) => v * 0.5 + 1)), [N, C], "f32"),
      put(c, x, [N, C], "f32"),
    ];
    g.binary(op, ga, gb, go);
    c.binary(op, ca, cb, co);
    // One f32 op then one rounding: within half a bf16 ulp (2^-8 relative).
    check(`binary ${op}`, get(g, go), bf(get(c, co)), { atol: 1e-6, rtol: 2 ** -8 });
  }
  for (const op of ["exp", "gelu", "tanh"] as const) {
    const [gx, gy] = [put(g, x, [N, C], "bf16"), put(g, x, [N, C], "bf16")];
    const [cx, cy] = [put(c, x, [N, C], "f32"), put(c, x, [N, C], "f32")];
    g.unary(op, gx, gy);
    c.unary(op, cx, cy);
    check(`unary ${op}`, get(g, gy), get(c, cy));
  }
  {
    const [gx, gy] = [put(g, x, [N, C], "bf16"), put(g, x, [N, C], "bf16")];
    const [cx, cy] = [put(c, x, [N, C], "f32"), put(c, x, [N, C], "f32")];
    g.softmaxForward(gx, gy, false);
    c.softmaxForward(cx, cy, false);
    check("softmaxForward", get(g, gy), get(c, cy));
  }
  {
    const gv = [put(g, x, [N, C], "bf16"), put(g, w, [C], "bf16"), put(g, b, [C], "bf16")];
    const cv = [put(c, x, [N, C], "f32"), put(c, w, [C], "f32"), put(c, b, [C], "f32")];
    const gy = put(g, x, [N, C], "bf16"), cy = put(c, x, [N, C], "f32");
    const [gm, gr, cm, cr] = [
      put(g, new Array(N).fill(0), [N], "f32"),
      put(g, new Array(N).fill(0), [N], "f32"),
      put(c, new Array(N).fill(0), [N], "f32"),
      put(c, new Array(N).fill(0), [N], "f32"),
    ];
    g.layerNormForward(gv[0], gv[1], gv[2], gy, gm, gr, 1e-5);
    c.layerNormForward(cv[0], cv[1], cv[2], cy, cm, cr, 1e-5);
    check("layerNormForward y", get(g, gy), get(c, cy), { atol: 5e-2, rtol: 2e-2 });
    check("layerNormForward mean", get(g, gm), get(c, cm), { atol: 1e-5, rtol: 1e-4 });
    check("layerNormForward rstd", get(g, gr), get(c, cr), { atol: 1e-5, rtol: 1e-4 });
  }
  {
    const targets = [0, 5, 39, -100, 7, 12];
    const gl = put(g, x, [N, C], "bf16"), cl = put(c, x, [N, C], "f32");
    const gt = put(g, targets, [N], "i32"), ct = put(c, targets, [N], "i32");
    const z = new Array(N).fill(0);
    const [gloss, glse, closs, clse] = [
      put(g, z, [N], "f32"),
      put(g, z, [N], "f32"),
      put(c, z, [N], "f32"),
      put(c, z, [N], "f32"),
    ];
    g.crossEntropyForward(gl, gt, gloss, glse, -100);
    c.crossEntropyForward(cl, ct, closs, clse, -100);
    check("crossEntropyForward losses", get(g, gloss), get(c, closs), { atol: 1e-4, rtol: 1e-4 });
  }
  {
    const M = 5, K = 40, Nn = 7;
    const a = bf(normal(M * K, 5)), bb = bf(normal(K * Nn, 6));
    const ga = put(g, a, [M, K], "bf16"), gb = put(g, bb, [K, Nn], "bf16");
    const ca = put(c, a, [M, K], "f32"), cb = put(c, bb, [K, Nn], "f32");
    const go = put(g, new Array(M * Nn).fill(0), [M, Nn], "f32");
    const co = put(c, new Array(M * Nn).fill(0), [M, Nn], "f32");
    g.matmul(ga, gb, go, { transA: false, transB: false });
    c.matmul(ca, cb, co, { transA: false, transB: false });
    // Exact products of bf16 values accumulated in f32: only the summation order differs.
    check("matmul bf16 -> f32", get(g, go), get(c, co), { atol: 1e-4, rtol: 1e-4 });
  }
  {
    const n = 100, p = normal(n, 7), gr = bf(normal(n, 8));
    const opts: AdamWStepOptions = {
      lr: 1e-2,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.1,
      step: 3,
    };
    const m0 = normal(n, 9).map((v) => v * 0.1), v0 = normal(n, 10).map((v) => v * v * 0.01);
    const gv = [
      put(g, p, [n], "f32"),
      put(g, gr, [n], "bf16"),
      put(g, m0, [n], "f32"),
      put(g, v0, [n], "f32"),
    ];
    const cv = [
      put(c, p, [n], "f32"),
      put(c, gr, [n], "f32"),
      put(c, m0, [n], "f32"),
      put(c, v0, [n], "f32"),
    ];
    g.adamwStep(gv[0], gv[1], gv[2], gv[3], opts);
    c.adamwStep(cv[0], cv[1], cv[2], cv[3], opts);
    ["param", "grad", "m", "v"].forEach((what, i) => {
      if (i !== 1) {
        check(`adamwStep (bf16 grad) ${what}`, get(g, gv[i]), get(c, cv[i]), {
          atol: 1e-6,
          rtol: 1e-5,
        });
      }
    });
  }
  assert.deepEqual(failures, []);
});

// ---- GPT-2 ----

gpuTest("GPT-2 small-test: logits, loss, and one AdamW step equal the CPU's", () => {
  const [cpu, gpu] = twins();
  const results = [cpu, gpu].map((model) => {
    const [idx, targets] = batch(model.device);
    const logitsT = noGrad(() => model.forward(idx)); // (B, T, V)
    const logits = logitsT.toTypedArray();
    logitsT.dispose();
    const opt = AdamW.forModel(model, { lr: 1e-3, weightDecay: 0.1 });
    const loss = model.loss(idx, targets);
    const lossValue = loss.item();
    loss.backward();
    const grads = model.namedParameters().map(([n, p]) => [n, p.grad!.toTypedArray()] as const);
    opt.step();
    const params = model.namedParameters().map(([n, p]) => [n, p.toTypedArray()] as const);
    for (const t of [idx, targets, loss]) t.dispose();
    opt.dispose();
    return { logits, lossValue, grads, params };
  });
  const [c, g] = results;
  const failures: string[] = [];
  const push = (m: string | null) => m && failures.push(m);
  push(mismatch("logits", g.logits, c.logits, { atol: 1e-4, rtol: 1e-4 }));
  assert.ok(Math.abs(g.lossValue - c.lossValue) < 1e-4, `loss ${g.lossValue} vs ${c.lossValue}`);
  c.grads.forEach(([n, v], i) =>
    push(mismatch(`grad ${n}`, g.grads[i][1], v, { atol: 1e-5, rtol: 1e-3 }))
  );
  // Adam's first step moves each weight by about lr * sign(grad): equal grads give equal steps;
  // the tolerance allows a sign flip only where a gradient is ~0 on both devices.
  c.params.forEach(([n, v], i) =>
    push(mismatch(`param ${n}`, g.params[i][1], v, { atol: 2e-5, rtol: 1e-4 }))
  );
  assert.deepEqual(failures, []);
  cpu.dispose();
  gpu.dispose();
});

gpuTest("50 training steps hold device memory flat", () => {
  const [, gpu] = twins();
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
  for (let i = 0; i < 3; i++) step(); // optimizer state and the cache settle
  const be = cuda();
  const before = { ...be.memoryStats(), live: memoryStats().liveBytes };
  const losses: number[] = [];
  for (let i = 0; i < 50; i++) losses.push(step());
  const after = { ...be.memoryStats(), live: memoryStats().liveBytes };
  assert.equal(after.live, before.live, "live tensor bytes");
  assert.equal(after.allocatedBytes, before.allocatedBytes, "allocator bytes in use");
  assert.equal(after.reservedBytes, before.reservedBytes, "bytes reserved from the driver");
  assert.equal(after.deviceAllocs, before.deviceAllocs, "no new cuMemAlloc in steady state");
  assert.ok(losses[49] < losses[0], `the loss falls: ${losses[0]} -> ${losses[49]}`);
  idx.dispose();
  targets.dispose();
  opt.dispose();
  gpu.dispose();
});

// ---- errors ----

gpuTest("out of memory is a clear RangeError, and the allocator works afterwards", () => {
  const be = cuda();
  const total = be.memoryStats().deviceTotalBytes;
  assert.throws(() => be.alloc(total * 4), (err: Error) => {
    assert.ok(err instanceof RangeError, String(err));
    assert.match(err.message, /cuda:0: out of memory allocating \d+ bytes/);
    assert.match(err.message, /MiB free of/);
    return true;
  });
  assert.ok(be.memoryStats().oomRetries >= 1);
  const x = tensor([1, 2, 3], { device: "cuda" });
  assert.deepEqual(x.mul(2).toArray(), [2, 4, 6]);
  x.dispose();
});

gpuTest("a bad launch names the kernel; a driver failure names the call and status", () => {
  const be = cuda();
  assert.throws(
    () => be.launch("no_such_kernel", [1, 1, 1], [1, 1, 1], 0, []),
    /launch: no kernel named "no_such_kernel"/,
  );
  const real = ptxEntries(PTX_MODULES[0].ptx)[0];
  assert.throws(() => be.launch(real, [1, 1, 1], [2048, 1, 1], 0, []), /more than 1024 threads/);
  // 4 MiB of shared memory is more than any GPU has: the driver refuses the opt-in.
  assert.throws(
    () => be.launch(real, [1, 1, 1], [32, 1, 1], 4 * 2 ** 20, []),
    /cuFuncSetAttribute\(8, 4194304\) failed: CUDA_ERROR_INVALID_VALUE \(1\)/,
  );
  // The device is still healthy.
  const x = tensor([1, 2], { device: "cuda" });
  assert.deepEqual(x.add(1).toArray(), [2, 3]);
  x.dispose();
});

gpuTest("device facts are reported", () => {
  const be = cuda();
  const s = be.memoryStats();
  console.log(
    `${be.device}: ${be.info.name}, sm_${be.info.computeCapability.join("")}, ` +
      `${(be.info.totalBytes / 2 ** 30).toFixed(1)} GiB, ${
        (s.deviceFreeBytes / 2 ** 30).toFixed(1)
      } GiB free`,
  );
  assert.ok(be.info.computeCapability[0] >= 7);
  assert.ok(be.info.totalBytes > 0);
});
