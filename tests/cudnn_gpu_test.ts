// cuDNN's fused attention on a real GPU against the CPU backend's attention (f32, on the same
// bf16-rounded inputs): forward values and log-sum-exp, backward gradients, causal, grouped-query,
// ALiBi, bottom-right causal, strided q/k/v views into a fused qkv buffer. Every test fails with
// cuDNN's own reason when it rejects a graph, so the first GPU run says what to fix. Without a GPU
// or without cuDNN every test is listed as ignored, saying why.
import assert from "node:assert/strict";
import type { AttentionOptions, Backend, View } from "../src/backend/backend.ts";
import { getBackend } from "../src/backend/registry.ts";
import { CudaBackend, type CudaBuffer, CudaDevice, cudaStatus } from "../src/backend/cuda/mod.ts";
import { PTX_MODULES } from "../src/backend/cuda/_ptx.ts";
import { CudnnAttention } from "../src/backend/cuda/cudnn_attention.ts";
import { cudnn } from "../ffi/cudnn.ts";
import { fromBf16Array, toBf16Array } from "../src/dtype.ts";

function unavailable(): string | null {
  const status = cudaStatus();
  if (!status.available) return `no CUDA driver: ${status.reason.split("\n")[0]}`;
  try {
    cudnn();
    return null;
  } catch (err) {
    return `no cuDNN: ${(err as Error).message.split("\n")[0]}`;
  }
}

const why = unavailable();

function gpuTest(name: string, fn: () => void): void {
  Deno.test({ name: `cudnn: ${name}${why ? ` (skipped: ${why})` : ""}`, ignore: why !== null, fn });
}

interface Gpu {
  dev: CudaDevice;
  be: CudaBackend;
  attn: CudnnAttention;
  held: CudaBuffer[];
}

let gpu: Gpu | null = null;

/** One device, one backend (our kernels) and a CudnnAttention whose scratch is plain allocations. */
function setup(): Gpu {
  if (gpu) return gpu;
  const dev = new CudaDevice(0, PTX_MODULES);
  const be = new CudaBackend(dev);
  const held: CudaBuffer[] = [];
  const attn = new CudnnAttention({
    stream: dev.stream,
    address: (v) => be.address(v),
    scratch: (bytes) => {
      const b = be.alloc(Math.max(bytes, 256)) as CudaBuffer;
      held.push(b);
      return b.ptr;
    },
    zero: (ptr, bytes) => dev.memset8(ptr, 0, bytes),
    activate: () => dev.activate(),
  });
  return gpu = { dev, be, attn, held };
}

function release(g: Gpu): void {
  g.be.synchronize();
  for (const b of g.held.splice(0)) g.be.free(b);
}

function normal(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float32Array.from(
    { length: n },
    () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()),
  );
}

function contiguous(shape: readonly number[]): number[] {
  return shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
}

/** The same values on the GPU (bf16) and the CPU (f32 of the bf16-rounded values). */
interface Pair {
  gpu: View;
  cpu: View;
}

function upload(
  be: Backend,
  cpu: Backend,
  values: Float32Array,
  shape: number[],
  strides: number[],
  offset: number,
  dtype: "bf16" | "f32",
): Pair {
  const rounded = dtype === "bf16" ? fromBf16Array(toBf16Array(values)) : values;
  const gb = be.alloc(values.length * (dtype === "bf16" ? 2 : 4));
  be.write(gb, dtype === "bf16" ? toBf16Array(values) : values);
  const cb = cpu.alloc(values.length * 4);
  cpu.write(cb, rounded);
  return {
    gpu: { buffer: gb, dtype, shape, strides, offset },
    cpu: { buffer: cb, dtype: "f32", shape, strides, offset },
  };
}

function zeros(be: Backend, cpu: Backend, shape: number[], dtype: "bf16" | "f32"): Pair {
  const n = shape.reduce((a, b) => a * b, 1);
  return upload(be, cpu, new Float32Array(n), shape, contiguous(shape), 0, dtype);
}

function read(be: Backend, v: View): Float32Array {
  const n = v.shape.reduce((a, b) => a * b, 1);
  // Contiguous outputs only: every view read here was created by zeros().
  return be.read(v.buffer, v.dtype, v.offset, n) as Float32Array;
}

/** max |a - b| / max |b|, the error relative to the reference's scale. */
function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 1e-6;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

function options(o: Partial<AttentionOptions>): AttentionOptions {
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

interface Case {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  alibi?: boolean;
  opts: Partial<AttentionOptions>;
  backward: boolean;
}

/** Runs one case on cuDNN and on the CPU backend and compares every output. */
function check(c: Case): void {
  const g = setup();
  const cpu = getBackend("cpu");
  const { B, H, Hkv, T, S, D } = c;
  const o = options({ scale: 1 / Math.sqrt(D), ...c.opts });
  // q from a fused (B, T, H + 2 Hkv, D) projection when T == S, else separate buffers.
  const q = upload(
    g.be,
    cpu,
    normal(B * H * T * D, 1),
    [B, H, T, D],
    contiguous([B, H, T, D]),
    0,
    "bf16",
  );
  const kvRow = 2 * Hkv * D;
  const kvStrides = [S * kvRow, D, kvRow, 1];
  const kv = normal(B * S * kvRow, 2);
  const k = upload(g.be, cpu, kv, [B, Hkv, S, D], kvStrides, 0, "bf16");
  const v = { gpu: { ...k.gpu, offset: Hkv * D }, cpu: { ...k.cpu, offset: Hkv * D } };
  const slopes = c.alibi
    ? upload(
      g.be,
      cpu,
      Float32Array.from({ length: H }, (_, h) => 2 ** (-8 * (h + 1) / H)),
      [H],
      [1],
      0,
      "f32",
    )
    : null;
  const out = zeros(g.be, cpu, [B, H, T, D], "bf16");
  const lse = zeros(g.be, cpu, [B, H, T], "f32");
  const fwd = g.attn.tryForward({
    q: q.gpu,
    k: k.gpu,
    v: v.gpu,
    alibiSlopes: slopes?.gpu ?? null,
    bias: null,
    out: out.gpu,
    lse: lse.gpu,
    options: o,
  });
  assert.ok(
    fwd,
    `cuDNN declined the forward: ${
      g.attn.reason(q.gpu, k.gpu, v.gpu, slopes?.gpu ?? null, null, out.gpu, lse.gpu, o)
    }`,
  );
  cpu.attentionForward({
    q: q.cpu,
    k: k.cpu,
    v: v.cpu,
    alibiSlopes: slopes?.cpu ?? null,
    bias: null,
    out: out.cpu,
    lse: lse.cpu,
    options: o,
  });
  const outErr = relErr(read(g.be, out.gpu), read(cpu, out.cpu));
  const lseErr = relErr(read(g.be, lse.gpu), read(cpu, lse.cpu));
  console.log(
    `  forward ${JSON.stringify(c)}: out rel err ${outErr.toExponential(2)}, lse ${
      lseErr.toExponential(2)
    }`,
  );
  assert.ok(outErr < 2e-2, `out: relative error ${outErr}`);
  assert.ok(lseErr < 2e-3, `lse: relative error ${lseErr}`);
  if (c.backward) {
    const dout = upload(
      g.be,
      cpu,
      normal(B * H * T * D, 3),
      [B, H, T, D],
      contiguous([B, H, T, D]),
      0,
      "bf16",
    );
    const dq = zeros(g.be, cpu, [B, H, T, D], "bf16");
    const dk = zeros(g.be, cpu, [B, Hkv, S, D], "bf16");
    const dv = zeros(g.be, cpu, [B, Hkv, S, D], "bf16");
    const bwd = g.attn.tryBackward({
      q: q.gpu,
      k: k.gpu,
      v: v.gpu,
      alibiSlopes: slopes?.gpu ?? null,
      bias: null,
      out: out.gpu,
      dout: dout.gpu,
      lse: lse.gpu,
      dq: dq.gpu,
      dk: dk.gpu,
      dv: dv.gpu,
      options: o,
    });
    assert.ok(
      bwd,
      `cuDNN declined the backward: ${
        g.attn.reason(q.gpu, k.gpu, v.gpu, slopes?.gpu ?? null, null, out.gpu, lse.gpu, o, true)
      }`,
    );
    cpu.attentionBackward({
      q: q.cpu,
      k: k.cpu,
      v: v.cpu,
      alibiSlopes: slopes?.cpu ?? null,
      bias: null,
      out: out.cpu,
      dout: dout.cpu,
      lse: lse.cpu,
      dq: dq.cpu,
      dk: dk.cpu,
      dv: dv.cpu,
      options: o,
    });
    for (const [name, x] of [["dq", dq], ["dk", dk], ["dv", dv]] as const) {
      const err = relErr(read(g.be, x.gpu), read(cpu, x.cpu));
      console.log(`  backward ${name}: rel err ${err.toExponential(2)}`);
      assert.ok(err < 3e-2, `${name}: relative error ${err}`);
    }
  }
  release(g);
}

gpuTest("library version is 9.x", () => {
  const version = setup().attn.version();
  console.log(`  cuDNN ${version} from ${cudnn().path}`);
  assert.ok(version >= 90000 && version < 100000, `cuDNN ${version}`);
});

gpuTest("causal forward and backward, strided k/v views (B=2 H=4 T=S=128 D=64)", () => {
  check({ B: 2, H: 4, Hkv: 4, T: 128, S: 128, D: 64, opts: { causal: true }, backward: true });
});

gpuTest("non-causal forward and backward, odd length (T=S=77 D=64)", () => {
  check({ B: 1, H: 2, Hkv: 2, T: 77, S: 77, D: 64, opts: { causal: false }, backward: true });
});

gpuTest("grouped-query causal forward and backward (H=8 Hkv=2 D=128)", () => {
  check({ B: 1, H: 8, Hkv: 2, T: 64, S: 64, D: 128, opts: { causal: true }, backward: true });
});

gpuTest("ALiBi with the causal mask, forward and backward", () => {
  check({
    B: 1,
    H: 4,
    Hkv: 4,
    T: 64,
    S: 64,
    D: 64,
    alibi: true,
    opts: { causal: true },
    backward: true,
  });
});

gpuTest("bottom-right causal (KV-cache shape T=64 S=192), forward and backward", () => {
  check({
    B: 1,
    H: 2,
    Hkv: 2,
    T: 64,
    S: 192,
    D: 64,
    opts: { causal: true, qOffset: 128 },
    backward: true,
  });
});

gpuTest("dropout is declined (the caller's kernel runs instead)", () => {
  const g = setup();
  const cpu = getBackend("cpu");
  const q = zeros(g.be, cpu, [1, 1, 8, 64], "bf16");
  const lse = zeros(g.be, cpu, [1, 1, 8], "f32");
  const o = options({ dropout: 0.1 });
  assert.equal(
    g.attn.tryForward({
      q: q.gpu,
      k: q.gpu,
      v: q.gpu,
      alibiSlopes: null,
      bias: null,
      out: q.gpu,
      lse: lse.gpu,
      options: o,
    }),
    false,
  );
  assert.match(g.attn.reason(q.gpu, q.gpu, q.gpu, null, null, q.gpu, lse.gpu, o)!, /dropout/);
});
