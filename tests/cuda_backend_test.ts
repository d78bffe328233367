// The CUDA backend's host side, checked without a GPU: the driver symbol table against cuda.h,
// kernel parameter packing, the caching allocator and the backend over a fake device, moving
// tensors between devices, bf16 conversion, and the error when libcuda is missing.
import assert from "node:assert/strict";
import { CUDA_SYMBOLS, CudaDriver, CudaError, type CudaSymbols } from "../ffi/cuda.ts";
import { layoutParams, packParams, paramPointers } from "../src/backend/cuda/kernel_params.ts";
import {
  checkLaunchDims,
  CudaDevice,
  DeviceOutOfMemoryError,
  ptxEntries,
} from "../src/backend/cuda/device.ts";
import { CachingAllocator, sizeClass } from "../src/backend/cuda/allocator.ts";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { bf16BitsToF32, f32ToBf16Bits, fromBf16Array, toBf16Array } from "../src/dtype.ts";
import { add, cast } from "../src/ops/elementwise.ts";
import { tensor } from "../src/ops/creation.ts";
import { Tensor } from "../src/tensor.ts";
import { FakeDevice } from "./_fake_cuda_device.ts";

// ---- the driver symbol table ----

const CUDA_H = "/usr/local/cuda/include/cuda.h";
let header: string | null = null;
try {
  header = Deno.readTextFileSync(CUDA_H);
} catch {
  header = null;
}

/** The name cuda.h's `#define api versioned_name` maps an API to (the first, unconditional one). */
function exportedName(h: string, api: string): string {
  const m = new RegExp(`#define\\s+${api}\\s+(?:__CUDA_API_PT(?:DS|SZ)\\()?(\\w+)`).exec(h);
  return m ? m[1] : api;
}

/** Parameter C types of the first prototype of `api` in cuda.h. */
function prototypeParams(h: string, api: string): string[] {
  const m = new RegExp(`CUresult CUDAAPI ${api}\\(([^)]*)\\);`).exec(h);
  assert.ok(m, `cuda.h declares ${api}`);
  const text = m[1].replace(/\s+/g, " ").trim();
  return text === "void" || text === "" ? [] : text.split(",").map((p) => p.trim());
}

/** The Deno FFI type our table must use for a C parameter. */
function ffiTypeOf(param: string): string[] {
  if (param.includes("*")) return ["buffer", "pointer"];
  const type = param.replace(/\s+\w+$/, ""); // drop the parameter name
  if (type === "CUdeviceptr") return ["u64"];
  if (type === "size_t") return ["usize"];
  if (type === "unsigned int") return ["u32"];
  if (type === "unsigned char") return ["u8"];
  if (["CUcontext", "CUmodule", "CUfunction", "CUstream", "CUevent"].includes(type)) {
    return ["usize"];
  }
  if (["int", "CUdevice", "CUresult"].includes(type) || /^CU\w+_(attribute|option)$/.test(type)) {
    return ["i32"];
  }
  throw new Error(`no FFI mapping for C type "${type}"`);
}

Deno.test({
  name: `the CUDA symbol table uses the driver's exported names and cuda.h's parameter types${
    header === null ? ` (skipped: ${CUDA_H} not found)` : ""
  }`,
  ignore: header === null,
  fn() {
    const h = header!;
    for (const [name, def] of Object.entries(CUDA_SYMBOLS)) {
      // cuEventElapsedTime (v1) is the optional fallback for drivers older than 12.8.
      const api = name === "cuEventElapsedTime" ? name : name.replace(/_v\d+$/, "");
      if (name !== "cuEventElapsedTime") {
        assert.equal(name, exportedName(h, api), `${api} is exported as ${exportedName(h, api)}`);
      }
      const params = prototypeParams(h, api);
      assert.equal(def.parameters.length, params.length, `${name}: parameter count`);
      params.forEach((p, i) => {
        const want = ffiTypeOf(p);
        assert.ok(
          want.includes(def.parameters[i]),
          `${name} parameter ${i} "${p}": expected ${want.join(" or ")}, got ${def.parameters[i]}`,
        );
      });
      assert.equal(def.result, "i32", `${name} returns CUresult`);
    }
    // The versioned names the brief lists, spelled out so a rename cannot slip through.
    for (
      const n of [
        "cuMemAlloc_v2",
        "cuMemFree_v2",
        "cuMemcpyHtoD_v2",
        "cuMemcpyDtoH_v2",
        "cuMemcpyHtoDAsync_v2",
        "cuMemsetD8_v2",
        "cuStreamDestroy_v2",
        "cuEventDestroy_v2",
        "cuMemGetInfo_v2",
        "cuDeviceTotalMem_v2",
        "cuDevicePrimaryCtxRelease_v2",
        "cuModuleGetFunction",
        "cuLaunchKernel",
      ]
    ) assert.ok(n in CUDA_SYMBOLS, n);
  },
});

// ---- kernel parameters ----

Deno.test("kernel parameters are packed at their PTX alignment, little-endian", () => {
  const struct = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
  const args = [
    { i32: 1 },
    { ptr: 0x1122334455667788n },
    { f32: 1.5 },
    { bytes: struct, align: 16 },
    { i32: -1 },
    { i64: -2n },
  ];
  const layout = layoutParams(args);
  // i32@0, ptr aligned up to 8, f32@16, struct aligned up to 32 (12 bytes), i32@44, i64 up to 48.
  assert.deepEqual(layout.offsets, [0, 8, 16, 32, 44, 48]);
  assert.deepEqual(layout.sizes, [4, 8, 4, 12, 4, 8]);
  assert.equal(layout.bytes, 56);
  const { data } = packParams(args);
  const b = [...new Uint8Array(data)];
  assert.deepEqual(b.slice(0, 4), [1, 0, 0, 0]);
  assert.deepEqual(b.slice(8, 16), [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
  assert.deepEqual(b.slice(16, 20), [0x00, 0x00, 0xc0, 0x3f]); // 1.5f = 0x3fc00000
  assert.deepEqual(b.slice(32, 44), [...struct]);
  assert.deepEqual(b.slice(44, 48), [0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(b.slice(48, 56), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(
    [...paramPointers(0x1000n, layout)],
    [0x1000n, 0x1008n, 0x1010n, 0x1020n, 0x102cn, 0x1030n],
  );
});

Deno.test("kernel parameters out of range or malformed are refused before launch", () => {
  assert.throws(() => packParams([{ i32: 2 ** 32 }], "k"), /k: argument 0 must be a 32-bit/);
  assert.throws(() => packParams([{ i32: 1.5 }], "k"), RangeError);
  assert.throws(() => packParams([{ ptr: -1n }], "k"), /64-bit device address/);
  assert.throws(() => packParams([{ f32: 0 }, { bytes: new Uint8Array(4), align: 3 }]), /power/);
  assert.throws(() => packParams([{ bytes: new Uint8Array(0), align: 4 }]), TypeError);
  // u32 values above 2^31 are fine: the bits are what the kernel reads.
  const { data } = packParams([{ i32: 0xffffffff }]);
  assert.equal(new DataView(data).getUint32(0, true), 0xffffffff);
});

Deno.test("launch dimensions are checked against CUDA's limits", () => {
  checkLaunchDims("k", [2 ** 31 - 1, 1, 1], [1024, 1, 1], 0);
  assert.throws(() => checkLaunchDims("k", [0, 1, 1], [32, 1, 1], 0), /launch k: grid/);
  assert.throws(() => checkLaunchDims("k", [1, 1, 1], [64, 32, 1], 0), /more than 1024 threads/);
  assert.throws(() => checkLaunchDims("k", [1, 1, 1], [32, 1, 65], 0), /block/);
  assert.throws(() => checkLaunchDims("k", [1, 1], [32, 1, 1] as never, 0), /grid/);
  assert.throws(() => checkLaunchDims("k", [1, 1, 1], [32, 1, 1], -1), /sharedBytes/);
});

Deno.test("ptxEntries lists the kernels of a PTX module", () => {
  const ptx =
    `.version 8.0\n.target sm_80\n.visible .entry add_f32(\n .param .u64 a\n)\n{ ret; }\n` +
    `.visible .entry softmax_forward_bf16 (\n.param .u32 n\n)\n{ ret; }\n.func helper()\n{ ret; }`;
  assert.deepEqual(ptxEntries(ptx), ["add_f32", "softmax_forward_bf16"]);
});

// ---- the caching allocator ----

Deno.test("sizeClass rounds small requests to 512 B and large ones to 2 MiB", () => {
  const MiB = 2 ** 20;
  assert.deepEqual(
    [0, 1, 512, 513, 1000, MiB, MiB + 1, 3 * MiB, 4 * MiB].map(sizeClass),
    [512, 512, 512, 1024, 1024, MiB, 2 * MiB, 4 * MiB, 4 * MiB],
  );
});

Deno.test("the allocator reuses freed blocks of the same size class and counts it", () => {
  const dev = new FakeDevice();
  const a = new CachingAllocator(dev);
  const b1 = a.alloc(1000);
  a.free(b1);
  const b2 = a.alloc(900); // same 1024 B class: the cached block comes back
  assert.equal(b2.ptr, b1.ptr);
  const b3 = a.alloc(2000); // another class: fresh memory
  assert.notEqual(b3.ptr, b1.ptr);
  let s = a.stats();
  assert.equal(s.allocs, 3);
  assert.equal(s.cacheHits, 1);
  assert.equal(s.deviceAllocs, 2);
  assert.equal(s.allocatedBytes, 1024 + 2048);
  assert.equal(s.reservedBytes, 1024 + 2048);
  assert.equal(s.liveBlocks, 2);
  a.free(b2);
  a.free(b3);
  s = a.stats();
  assert.equal(s.allocatedBytes, 0);
  assert.equal(s.cachedBytes, 3072);
  assert.equal(s.peakAllocatedBytes, 3072);
  assert.equal(dev.usedBytes, 3072, "freed blocks stay reserved");
  assert.throws(() => a.free(b2), /not allocated \(double free\?\)/);
});

Deno.test("emptyCache waits for queued work, then gives cached blocks back", () => {
  const dev = new FakeDevice();
  const a = new CachingAllocator(dev);
  const live = a.alloc(4096);
  a.free(a.alloc(512));
  a.free(a.alloc(3 * 2 ** 20));
  dev.log.length = 0;
  a.emptyCache();
  assert.deepEqual(dev.log, ["sync", "free 512", `free ${4 * 2 ** 20}`]);
  const s = a.stats();
  assert.equal(s.cachedBytes, 0);
  assert.equal(s.reservedBytes, 4096);
  assert.equal(s.deviceFrees, 2);
  assert.equal(dev.usedBytes, 4096);
  a.free(live);
});

Deno.test("out of memory: the cache is emptied and the allocation retried, then a clear error", () => {
  const MiB = 2 ** 20;
  const dev = new FakeDevice(0, 8 * MiB);
  const a = new CachingAllocator(dev);
  a.free(a.alloc(4 * MiB)); // cached, still reserved
  const big = a.alloc(6 * MiB); // 4 + 6 > 8: only fits once the cache is released
  assert.equal(a.stats().oomRetries, 1);
  assert.equal(a.stats().cachedBytes, 0);
  assert.throws(
    () => a.alloc(16 * MiB),
    (err: Error) => {
      assert.ok(err instanceof RangeError);
      assert.match(err.message, /cuda:0: out of memory allocating 16777216 bytes/);
      assert.match(err.message, /2\.0 MiB free of 8\.0 MiB/);
      assert.match(err.message, /6\.0 MiB held by live tensors/);
      return true;
    },
  );
  // Still usable: small allocations succeed and the counters are consistent.
  const small = a.alloc(1024);
  assert.equal(a.stats().allocatedBytes, 6 * MiB + 1024);
  a.free(small);
  a.free(big);
  assert.equal(a.stats().allocatedBytes, 0);
});

// ---- the backend over the fake device ----

function fakeBackend(ordinal = 0): [CudaBackend, FakeDevice] {
  const dev = new FakeDevice(ordinal);
  return [new CudaBackend(dev), dev];
}

Deno.test("CudaBackend writes and reads f32, i32 and bf16 at offsets", () => {
  const [be] = fakeBackend();
  const buf = be.alloc(40);
  be.write(buf, new Float32Array([1.5, -2, 3.25]), 4);
  assert.deepEqual([...be.read(buf, "f32", 1, 3)], [1.5, -2, 3.25]);
  be.write(buf, new Int32Array([-7, 2 ** 31 - 1]), 16);
  assert.deepEqual([...be.read(buf, "i32", 4, 2)], [-7, 2 ** 31 - 1]);
  be.write(buf, new Uint16Array([0x3f80, 0xc020, 0x7f80]), 24); // 1, -2.5, inf as bf16 bits
  const bf = be.read(buf, "bf16", 12, 3);
  assert.ok(bf instanceof Float32Array);
  assert.deepEqual([...bf], [1, -2.5, Infinity]);
  assert.throws(() => be.read(buf, "f32", 8, 3), /outside the buffer's 10/);
  assert.throws(() => be.write(buf, new Float32Array(11)), /outside the buffer's 40/);
});

Deno.test("CudaBackend copies between buffers, and within one through a temporary", () => {
  const [be, dev] = fakeBackend();
  const a = be.alloc(16), b = be.alloc(16);
  be.write(a, new Float32Array([1, 2, 3, 4]));
  be.copy(a, b, 8, 8, 0);
  assert.deepEqual([...be.read(b, "f32", 0, 2)], [3, 4]);
  const before = be.memoryStats();
  be.copy(a, a, 12, 0, 4); // overlapping: [1, 2, 3, 4] -> [1, 1, 2, 3]
  assert.deepEqual([...be.read(a, "f32", 0, 4)], [1, 1, 2, 3]);
  const after = be.memoryStats();
  assert.equal(after.allocatedBytes, before.allocatedBytes, "the temporary was given back");
  assert.equal(dev.log.filter((l) => l === "dtod 12").length, 2);
});

Deno.test("CudaBackend refuses buffers of other devices and freed buffers", () => {
  const [be0] = fakeBackend(0);
  const [be1] = fakeBackend(1);
  const cpu = getBackend("cpu");
  const b1 = be1.alloc(8);
  assert.throws(() => be0.read(b1, "f32", 0, 1), /read: buffer belongs to cuda:1, not cuda:0/);
  assert.throws(
    () => be0.write(cpu.alloc(4), new Float32Array(1)),
    /write: expected a buffer of cuda:0, got CpuBuffer/,
  );
  be1.free(b1);
  assert.throws(() => be1.read(b1, "f32", 0, 1), /used after free/);
  assert.throws(() => be0.scratch(16), /only valid inside a backend call/);
});

Deno.test("memory of freed tensors is reused by the next allocations of the same size", () => {
  const [be, dev] = fakeBackend();
  for (let i = 0; i < 5; i++) be.free(be.alloc(4000));
  const s = be.memoryStats();
  assert.equal(s.deviceAllocs, 1);
  assert.equal(s.cacheHits, 4);
  assert.equal(s.deviceTotalBytes, dev.info.totalBytes);
  be.emptyCache();
  assert.equal(dev.usedBytes, 0);
});

// ---- tensors across devices (the fake GPU is registered as cuda:7) ----

const [fake7] = fakeBackend(7);
setBackend("cuda:7", fake7);

Deno.test("tensors on a CUDA device round-trip their values, bf16 included", () => {
  const x = tensor([[1, 2], [3, 4]], { device: "cuda:7" });
  assert.equal(x.device, "cuda:7");
  assert.deepEqual(x.toArray(), [[1, 2], [3, 4]]);
  const h = tensor([1.00390625, -3.3], { device: "cuda:7", dtype: "bf16" });
  assert.equal(h.storage.buffer.bytes, 4, "bf16 takes 2 bytes per element");
  assert.deepEqual(h.toArray(), [1, -3.296875]);
  for (const t of [x, h]) t.dispose();
});

Deno.test("to() moves values between devices and gradients flow back to the source", () => {
  const x = tensor([1, 2, 3], { device: "cuda:7", requiresGrad: true });
  const y = x.to("cpu");
  assert.equal(y.device, "cpu");
  assert.deepEqual(y.toArray(), [1, 2, 3]);
  const loss = y.mul(tensor([3, 4, 5])).sum();
  loss.backward();
  assert.equal(x.grad!.device, "cuda:7");
  assert.deepEqual(x.grad!.toArray(), [3, 4, 5]);
  // Non-contiguous sources are gathered first; bf16 keeps its exact values.
  const m = tensor([[1, 2, 3], [4, 5, 6]]).transpose(0, 1).to("cuda:7");
  assert.deepEqual(m.toArray(), [[1, 4], [2, 5], [3, 6]]);
  const h = tensor([0.1, 1e-3], { dtype: "bf16" }).to("cuda:7").to("cpu");
  assert.deepEqual(h.toArray(), [0.10009765625, 0.00099945068359375]);
  // Same device: a new tensor sharing memory, so disposing one leaves the other readable.
  const a = tensor([5, 6]);
  const b = a.to("cpu");
  assert.notEqual(a, b);
  a.dispose();
  assert.deepEqual(b.toArray(), [5, 6]);
  for (const t of [x, y, loss, m, h, b]) t.dispose();
});

Deno.test("ops mixing devices throw a TypeError naming both devices", () => {
  const g = tensor([1, 2], { device: "cuda:7" });
  const c = tensor([1, 2]);
  assert.throws(() => add(g, c), (err: Error) => {
    assert.ok(err instanceof TypeError);
    assert.match(err.message, /add: tensors are on different devices: cuda:7 \[2\] and cpu \[2\]/);
    return true;
  });
  assert.throws(() => g.to("tpu"), /unknown device "tpu"/);
  g.dispose();
  c.dispose();
});

// ---- bf16 ----

Deno.test("f32 -> bf16 rounds to nearest even, against hand-worked bit patterns", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-2.5, 0xc020],
    [1.00390625, 0x3f80], // 0x3f808000: exactly halfway, the even neighbour 0x3f80 wins
    [1.01171875, 0x3f82], // 0x3f818000: halfway, rounds up to the even 0x3f82
    [1.0078125 + 2 ** -20, 0x3f81], // just above 0x3f81: truncates
    [65504, 0x4780], // 0x477fe000: above half, rounds up to 65536
    [3.4028234663852886e38, 0x7f80], // f32 max rounds up to infinity
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [-0, 0x8000],
    [1e-45, 0x0000], // the smallest subnormal rounds to +0
    [NaN, 0x7fc0],
  ];
  for (const [x, bits] of cases) {
    assert.equal(f32ToBf16Bits(x).toString(16), bits.toString(16), `bf16(${x})`);
  }
  assert.equal(bf16BitsToF32(0x3fc0), 1.5);
  assert.equal(bf16BitsToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16BitsToF32(0x7fc1)));
  assert.deepEqual([...toBf16Array([1, 2, 3])], [0x3f80, 0x4000, 0x4040]);
  assert.deepEqual([...fromBf16Array(new Uint16Array([0x4040, 0xbf80]))], [3, -1]);
});

Deno.test("cast() to and from bf16 on the CPU, with the gradient cast back", () => {
  const x = tensor([1.00390625, 1.01171875, -2.5, 300.5], { requiresGrad: true });
  const h = cast(x, "bf16");
  assert.equal(h.dtype, "bf16");
  assert.deepEqual(h.toArray(), [1, 1.015625, -2.5, 300]);
  assert.deepEqual(cast(h, "i32").toArray(), [1, 1, -2, 300]);
  assert.deepEqual(cast(tensor([7, -9], { dtype: "i32" }), "bf16").toArray(), [7, -9]);
  const loss = cast(h, "f32").mul(tensor([1, 2, 3, 4])).sum();
  loss.backward();
  assert.equal(x.grad!.dtype, "f32");
  assert.deepEqual(x.grad!.toArray(), [1, 2, 3, 4]);
  // Strided bf16 copies keep the bits.
  const t = h.reshape([2, 2]).transpose(0, 1).contiguous();
  assert.deepEqual(t.toArray(), [[1, -2.5], [1.015625, 300]]);
  for (const v of [x, h, loss, t]) v.dispose();
});

Deno.test("bf16 tensors: the CPU stores them but refuses to compute on them", () => {
  const h = tensor([1, 2, 3], { dtype: "bf16" });
  assert.throws(() => h.sum(), (err: Error) => {
    assert.ok(err instanceof TypeError);
    assert.match(err.message, /stores bf16 but computes only in f32 and i32/);
    return true;
  });
  // Elementwise math promotes bf16 to f32 (the op layer casts), so it works and returns f32.
  const y = h.mul(2);
  assert.equal(y.dtype, "f32");
  assert.deepEqual(y.toArray(), [2, 4, 6]);
  const z = tensor([0, 0], { dtype: "bf16" });
  z.backend.fill(z._view(), 0.1);
  assert.deepEqual(z.toArray(), [0.10009765625, 0.10009765625]);
  for (const t of [h, y, z]) t.dispose();
  assert.ok(Tensor.empty([3], "bf16", getBackend("cpu")).storage.buffer.bytes === 6);
});

// ---- device selection without a driver ----

async function backendError(env: Record<string, string>, device: string): Promise<string> {
  const code = `import { getBackend, defaultDevice } from "${
    new URL("../src/backend/registry.ts", import.meta.url).href
  }";
    try { getBackend(${JSON.stringify(device)}); console.log("OK"); }
    catch (e) { console.log(e.constructor.name + ": " + e.message); }
    console.log("default=" + defaultDevice());`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

let hasDriver = false;
try {
  Deno.dlopen("libcuda.so.1", {}).close();
  hasDriver = true;
} catch {
  hasDriver = false;
}

Deno.test({
  name: `"cuda" without a driver: the error names every path tried and the NVIDIA driver${
    hasDriver ? " (skipped: this machine has libcuda)" : ""
  }`,
  ignore: hasDriver,
  async fn() {
    const text = await backendError({ DENOGRAD_LIBCUDA: "" }, "cuda");
    assert.match(
      text,
      /^Error: device "cuda:0": the CUDA backend is not available: CUDA driver \(libcuda\)/,
    );
    assert.match(text, /libcuda\.so\.1: not found/);
    assert.match(text, /\/usr\/lib\/x86_64-linux-gnu\/libcuda\.so\.1/);
    assert.match(text, /NVIDIA GPU driver/);
    assert.match(text, /DENOGRAD_LIBCUDA/);
    assert.match(text, /default=cpu/);
  },
});

Deno.test("an explicit DENOGRAD_LIBCUDA that does not load is an error naming it", async () => {
  const text = await backendError({ DENOGRAD_LIBCUDA: "/nonexistent/libcuda.so.1" }, "cuda:1");
  assert.match(text, /device "cuda:1": the CUDA backend is not available/);
  assert.match(text, /DENOGRAD_LIBCUDA=\/nonexistent\/libcuda\.so\.1 could not be loaded/);
});

Deno.test("bf16 tensors are written to safetensors as BF16 and read back exactly", async () => {
  const { openSafetensors } = await import("../src/io/safetensors.ts");
  const { writeSafetensors } = await import("../src/io/safetensors_write.ts");
  const path = await Deno.makeTempFile({ dir: "/tmp", suffix: ".safetensors" });
  const h = tensor([1.00390625, -2.5, 300.5], { dtype: "bf16" });
  try {
    await writeSafetensors(path, { h });
    const f = await openSafetensors(path);
    assert.equal(f.tensors[0].dtype, "BF16");
    assert.deepEqual([...await f.read("h")], [1, -2.5, 300]);
    f.close();
  } finally {
    h.dispose();
    await Deno.remove(path);
  }
});

Deno.test("unary ops on bf16 compute in f32; the gradient reaches the f32 source as bf16's", () => {
  const values = [-1.3, 0.2, 2.7];
  const x = tensor(values, { requiresGrad: true });
  const y = cast(x, "bf16").gelu(); // (3) f32: computed from the bf16-rounded values
  assert.equal(y.dtype, "f32");
  const loss = y.sum();
  loss.backward();
  // The same computation written in f32 on the rounded values.
  const r = tensor(fromBf16Array(toBf16Array(values)), { requiresGrad: true });
  const ry = r.gelu();
  const rl = ry.sum();
  rl.backward();
  assert.deepEqual(y.toArray(), ry.toArray());
  // The bf16 tensor's gradient is bf16 (as torch's autograd casts a gradient to its tensor's
  // dtype); the cast's backward widens it back to f32 exactly.
  const rounded = Array.from(fromBf16Array(toBf16Array(r.grad!.toTypedArray())));
  assert.deepEqual(x.grad!.toArray(), rounded);
  assert.notDeepEqual(rounded, r.grad!.toArray(), "the rounding is visible in these values");
  for (const t of [x, y, loss, r, ry, rl]) t.dispose();
});

Deno.test("fill of a dense view is a memset; a strided one launches the fill kernel", () => {
  const [be, dev] = fakeBackend();
  const buf = be.alloc(24);
  const view = (dtype: "f32" | "i32", shape: number[], strides: number[]) => ({
    buffer: buf,
    dtype,
    shape,
    strides,
    offset: 0,
  });
  be.fill(view("f32", [2, 3], [3, 1]), 1.5);
  assert.deepEqual([...be.read(buf, "f32", 0, 6)], [1.5, 1.5, 1.5, 1.5, 1.5, 1.5]);
  be.fill(view("i32", [3], [1]), -2.7); // truncates toward zero, like the CPU backend
  assert.deepEqual([...be.read(buf, "i32", 0, 4)], [-2, -2, -2, 0x3fc00000]);
  be.fill(view("f32", [6], [1]), 0);
  assert.deepEqual([...be.read(buf, "f32", 0, 6)], [0, 0, 0, 0, 0, 0]);
  be.fill(view("f32", [2, 3], [3, 1]), -0); // -0 has a sign bit: not a byte memset
  assert.ok(Object.is(be.read(buf, "f32", 5, 1)[0], -0));
  assert.equal(dev.launches.length, 0);
  be.fill(view("f32", [3, 2], [1, 3]), 7); // transposed: the kernel's job
  assert.equal(dev.launches.length, 1);
});

Deno.test("every kernel method launches kernels that exist in the PTX, and gives scratch back", async () => {
  const { PTX_MODULES } = await import("../src/backend/cuda/_ptx.ts");
  const entries = new Set(PTX_MODULES.flatMap((m) => ptxEntries(m.ptx)));
  const [be, dev] = fakeBackend();
  let madeBytes = 0; // size-class bytes of the views made below (the rest must be scratch)
  const v = (dtype: "f32" | "i32" | "bf16", shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = Math.max(n, 1) * (dtype === "bf16" ? 2 : 4);
    madeBytes += sizeClass(bytes);
    const buffer = be.alloc(bytes);
    const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
    return { buffer, dtype, shape, strides, offset: 0 };
  };
  const [N, C] = [4, 8];
  const x = v("f32", [N, C]), y = v("f32", [N, C]), w = v("f32", [C]), b = v("f32", [C]);
  const rows = () => v("f32", [N]);
  const ids = v("i32", [N]);
  const calls: [string, () => void][] = [
    ["unary", () => be.unary("gelu", x, y)],
    ["unary cast", () => be.unary("copy", x, v("bf16", [N, C]))],
    ["binary", () => be.binary("add", x, { ...w, shape: [N, C], strides: [0, 1] }, y)],
    ["where", () => be.where(v("i32", [N, C]), x, y, v("f32", [N, C]))],
    ["reduce", () => be.reduce("sum", x, [1], v("f32", [N, 1]))],
    ["reduce argmax", () => be.reduce("argmax", x, [0], v("i32", [1, C]))],
    ["gather", () => be.gather(x, 1, v("i32", [N, 2]), v("f32", [N, 2]))],
    ["scatterAdd", () => be.scatterAdd(x, 1, v("i32", [N, 2]), v("f32", [N, 2]))],
    ["softmaxForward", () => be.softmaxForward(x, y, true)],
    ["softmaxBackward", () => be.softmaxBackward(y, x, v("f32", [N, C]), false)],
    ["layerNormForward", () => be.layerNormForward(x, w, b, y, rows(), rows(), 1e-5)],
    [
      "layerNormBackward",
      () => be.layerNormBackward(y, x, w, rows(), rows(), v("f32", [N, C]), v("f32", [C]), null),
    ],
    ["crossEntropyForward", () => be.crossEntropyForward(x, ids, rows(), rows(), -100)],
    [
      "crossEntropyBackward",
      () => be.crossEntropyBackward(x, ids, rows(), rows(), v("f32", [N, C]), -100),
    ],
    ["embeddingForward", () => be.embeddingForward(v("f32", [10, C]), ids, y)],
    ["embeddingBackward", () => be.embeddingBackward(y, ids, v("f32", [10, C]))],
  ];
  const opt = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 1 };
  calls.push(["adamwStep", () => be.adamwStep(w, b, v("f32", [C]), v("f32", [C]), opt)]);
  calls.push(["adamStep", () => be.adamStep(w, b, v("f32", [C]), v("f32", [C]), opt)]);
  const sgd = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: true };
  calls.push([
    "sgdStep",
    () => be.sgdStep(w, b, v("f32", [C]), { ...sgd, firstStep: false }),
  ]);
  for (const [what, call] of calls) {
    const before = be.memoryStats().allocatedBytes - madeBytes;
    const launched = dev.launches.length;
    call();
    assert.ok(dev.launches.length > launched, `${what} launched a kernel`);
    for (const l of dev.launches.slice(launched)) {
      assert.ok(entries.has(l.name), `${what}: "${l.name}" is a kernel of the PTX`);
    }
    // Only the views made for the call are still allocated: its scratch went back.
    assert.equal(be.memoryStats().allocatedBytes - madeBytes, before, `${what}: scratch freed`);
  }
});

// ---- the real CudaDevice over a scripted driver (JS functions in place of libcuda) ----

/** Writes a NUL-terminated string into memory we own and returns its address (kept alive). */
const cStrings: Uint8Array[] = [];
function cString(s: string): bigint {
  const bytes = new TextEncoder().encode(s + "\0");
  cStrings.push(bytes);
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes));
}

interface Recorded {
  ptx: string[];
  launches: { fn: bigint; dims: number[]; shared: number; stream: bigint; args: Uint8Array[] }[];
  attributes: [bigint, number, number][];
}

/** A driver whose calls are JS functions: enough of libcuda for CudaDevice. */
function scriptedDriver(sizes: number[], options: { oom?: boolean; badPtx?: boolean } = {}) {
  const rec: Recorded = { ptx: [], launches: [], attributes: [] };
  const names: Record<number, [string, string]> = {
    2: ["CUDA_ERROR_OUT_OF_MEMORY", "out of memory"],
    218: ["CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"],
    500: ["CUDA_ERROR_NOT_FOUND", "named symbol not found"],
  };
  const read = (p: bigint, n: number) =>
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(p)!, n)).slice();
  const symbols = {
    cuGetErrorName: (s: number, out: BigUint64Array) => (out[0] = cString(names[s][0]), 0),
    cuGetErrorString: (s: number, out: BigUint64Array) => (out[0] = cString(names[s][1]), 0),
    cuDeviceGetCount: (out: Int32Array) => (out[0] = 1, 0),
    cuDeviceGet: (out: Int32Array, ordinal: number) => (out[0] = ordinal, 0),
    cuDeviceGetName: (buf: Uint8Array) => (buf.set(new TextEncoder().encode("Scripted\0")), 0),
    cuDeviceGetAttribute: (out: Int32Array, attr: number) => (out[0] = attr === 75 ? 9 : 0, 0),
    cuDeviceTotalMem_v2: (out: BigUint64Array) => (out[0] = 1n << 30n, 0),
    cuDevicePrimaryCtxRetain: (out: BigUint64Array) => (out[0] = 0xc0n, 0),
    cuCtxSetCurrent: () => 0,
    cuStreamCreate: (out: BigUint64Array, flags: number) => (out[0] = 0x5700n + BigInt(flags), 0),
    cuMemAlloc_v2: (out: BigUint64Array) => options.oom ? 2 : (out[0] = 0xd000n, 0),
    cuMemGetInfo_v2: (free: BigUint64Array, total: BigUint64Array) => {
      free[0] = 1024n;
      total[0] = 1n << 30n;
      return 0;
    },
    cuModuleLoadDataEx: (
      out: BigUint64Array,
      image: Uint8Array,
      _n: number,
      _opts: Int32Array,
      values: BigUint64Array,
    ) => {
      rec.ptx.push(new TextDecoder().decode(image.subarray(0, image.indexOf(0))));
      if (options.badPtx) {
        const log = new TextEncoder().encode("ptxas error: line 3: unknown directive\0");
        new Uint8Array(
          Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(values[0])!, log.length),
        ).set(log);
        return 218;
      }
      out[0] = 0x300n;
      return 0;
    },
    cuModuleGetFunction: (out: BigUint64Array, _m: bigint, name: Uint8Array) => {
      const n = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
      if (n !== "axpy") return 500;
      out[0] = 0xf00n;
      return 0;
    },
    cuFuncSetAttribute: (fn: bigint, attr: number, value: number) => {
      rec.attributes.push([fn, attr, value]);
      return 0;
    },
    cuLaunchKernel: (
      fn: bigint,
      gx: number,
      gy: number,
      gz: number,
      bx: number,
      by: number,
      bz: number,
      shared: number,
      stream: bigint,
      params: BigUint64Array,
    ) => {
      // Read each argument through the pointer the driver would dereference.
      const args = sizes.map((size, i) => read(params[i], size));
      rec.launches.push({ fn, dims: [gx, gy, gz, bx, by, bz], shared, stream, args });
      return 0;
    },
  };
  return { driver: new CudaDriver(symbols as unknown as CudaSymbols, "scripted"), rec };
}

const AXPY_PTX = ".version 8.0\n.target sm_80\n.visible .entry axpy(\n.param .u32 n\n)\n{ ret; }";

Deno.test("CudaDevice launches pass pointers to each argument's bytes, and load modules once", () => {
  const { driver, rec } = scriptedDriver([4, 8, 4, 12]);
  const dev = new CudaDevice(0, [{ name: "axpy_family", ptx: AXPY_PTX }], driver);
  assert.deepEqual(dev.info, {
    ordinal: 0,
    name: "Scripted",
    computeCapability: [9, 0],
    totalBytes: 2 ** 30,
  });
  assert.equal(dev.stream, 0x5701n, "a non-blocking stream (flags 1)");
  const struct = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
  const args = [{ i32: 7 }, { ptr: 0xdead_beef_0000n }, { f32: -0.5 }, { bytes: struct, align: 4 }];
  dev.launch("axpy", [3, 2, 1], [128, 1, 1], 0, args);
  dev.launch("axpy", [1, 1, 1], [32, 1, 1], 64 * 1024, args);
  assert.equal(rec.ptx.length, 1, "the module is loaded on first use only");
  assert.equal(rec.ptx[0], AXPY_PTX);
  const [l0, l1] = rec.launches;
  assert.equal(l0.fn, 0xf00n);
  assert.equal(l0.stream, 0x5701n);
  assert.deepEqual(l0.dims, [3, 2, 1, 128, 1, 1]);
  assert.deepEqual([...l0.args[0]], [7, 0, 0, 0]);
  assert.equal(new DataView(l0.args[1].buffer).getBigUint64(0, true), 0xdead_beef_0000n);
  assert.equal(new DataView(l0.args[2].buffer).getFloat32(0, true), -0.5);
  assert.deepEqual([...l0.args[3]], [...struct]);
  // Over 48 KiB of dynamic shared memory needs the opt-in attribute first (once).
  assert.deepEqual(rec.attributes, [[0xf00n, 8, 64 * 1024]]);
  assert.equal(l1.shared, 64 * 1024);
  assert.throws(() => dev.launch("nope", [1, 1, 1], [1, 1, 1], 0, []), /no kernel named "nope"/);
});

Deno.test("CudaDevice: driver failures become errors naming the call, status and JIT log", () => {
  const { driver } = scriptedDriver([], { oom: true, badPtx: true });
  const dev = new CudaDevice(0, [{ name: "broken", ptx: AXPY_PTX }], driver);
  assert.throws(() => dev.alloc(4096), (err: Error) => {
    assert.ok(err instanceof DeviceOutOfMemoryError);
    assert.match(err.message, /allocating 4096 bytes: 1024 bytes free of 1073741824/);
    return true;
  });
  assert.throws(() => dev.launch("axpy", [1, 1, 1], [1, 1, 1], 0, []), (err: Error) => {
    assert.ok(err instanceof CudaError);
    assert.equal(err.status, 218);
    assert.match(
      err.message,
      /^cuModuleLoadData\(broken\) failed: CUDA_ERROR_INVALID_PTX \(218\): a PTX JIT compilation failed/,
    );
    assert.match(err.message, /JIT log:\nptxas error: line 3: unknown directive/);
    return true;
  });
  assert.throws(() => new CudaDevice(1, [], driver), /device "cuda:1": 1 CUDA device\(s\) present/);
});
