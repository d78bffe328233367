// The CUDA kernel wrappers against the committed PTX, without a GPU: every launch a wrapper makes
// names an `.entry` of src/backend/cuda/_ptx.ts with exactly the declared parameter list, within
// CUDA's launch limits; the strided-view structs decode (by the kernels' own indexing rules,
// re-implemented here) to the views' element offsets; the PTX is fresh for the sources.

import assert from "node:assert/strict";
import type { Buffer, View } from "../src/backend/backend.ts";
import type { DType } from "../src/dtype.ts";
import type { KernelArg, KernelLauncher } from "../src/backend/cuda/launcher.ts";
import * as k from "../src/backend/cuda/kernels/mod.ts";
import { BINARY_OPS, UNARY_OPS } from "../src/backend/cuda/kernels/elementwise.ts";
import { planReduce, REDUCE_OPS } from "../src/backend/cuda/kernels/reduce.ts";
import { layoutArg, MAX_RANK } from "../src/backend/cuda/kernels/_layout.ts";
import { mergeDims } from "../src/_shape.ts";
import { KERNEL_SOURCE_HASH, NVCC_VERSION, PTX_MODULES } from "../src/backend/cuda/_ptx.ts";
import { kernelSourceHash, kernelSources } from "../cuda/build.ts";

// ---- the PTX side ----

interface Param {
  /** PTX type: .u64, .u32, .f32, .b8 ... */
  type: string;
  /** Bytes. */
  size: number;
  align: number;
  /** Whether it is a `.b8 name[N]` array (a struct by value). */
  array: boolean;
}

const TYPE_SIZES: Record<string, number> = {
  ".u64": 8,
  ".s64": 8,
  ".b64": 8,
  ".u32": 4,
  ".s32": 4,
  ".b32": 4,
  ".f32": 4,
  ".f64": 8,
};

/** Every `.entry` of a PTX text with its parameter list. */
function parseEntries(ptx: string): Map<string, Param[]> {
  const out = new Map<string, Param[]>();
  for (const m of ptx.matchAll(/\.entry\s+(\w+)\s*\(([^)]*)\)/g)) {
    const params = m[2].split(",").map((s) => s.trim()).filter((s) => s !== "").map((decl) => {
      const align = /\.align\s+(\d+)/.exec(decl);
      const arr = /\.b8\s+\w+\[(\d+)\]/.exec(decl);
      if (arr) {
        return { type: ".b8", size: Number(arr[1]), align: Number(align?.[1] ?? 1), array: true };
      }
      const type = Object.keys(TYPE_SIZES).find((t) => decl.includes(`.param ${t} `));
      assert.ok(type, `unparsed PTX parameter: ${decl}`);
      return { type, size: TYPE_SIZES[type], align: TYPE_SIZES[type], array: false };
    });
    out.set(m[1], params);
  }
  return out;
}

const ENTRIES = new Map<string, Param[]>();
for (const mod of PTX_MODULES) {
  for (const [name, params] of parseEntries(mod.ptx)) {
    assert.ok(!ENTRIES.has(name), `kernel ${name} is defined in two modules`);
    ENTRIES.set(name, params);
  }
}

// ---- a launcher that records instead of launching ----

interface Launch {
  name: string;
  grid: readonly [number, number, number];
  block: readonly [number, number, number];
  shared: number;
  args: readonly KernelArg[];
}

const ITEM: Record<DType, number> = { f32: 4, i32: 4, bf16: 2 };

class RecordingLauncher implements KernelLauncher {
  readonly launches: Launch[] = [];
  readonly #bases = new Map<Buffer, bigint>();
  #next = 0x7f0000000000n;
  address(view: View): bigint {
    let base = this.#bases.get(view.buffer);
    if (base === undefined) {
      base = this.#next;
      this.#next += 1n << 32n;
      this.#bases.set(view.buffer, base);
    }
    return base + BigInt(view.offset * ITEM[view.dtype]);
  }
  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void {
    this.launches.push({ name, grid, block, shared: sharedBytes, args });
  }
  scratch(bytes: number): bigint {
    assert.ok(Number.isSafeInteger(bytes) && bytes > 0, `scratch(${bytes})`);
    const p = this.#next;
    this.#next += 1n << 32n;
    return p;
  }
}

/** Asserts that one launch matches its PTX entry and CUDA's launch limits. */
function checkLaunch(L: Launch): void {
  const params = ENTRIES.get(L.name);
  assert.ok(params, `${L.name}: no such .entry in the PTX`);
  assert.equal(L.args.length, params.length, `${L.name}: argument count`);
  L.args.forEach((arg, i) => {
    const p = params[i];
    const where = `${L.name} argument ${i} (${p.type}${p.array ? `[${p.size}]` : ""})`;
    if ("bytes" in arg) {
      assert.ok(p.array, `${where}: got a struct`);
      assert.equal(arg.bytes.length, p.size, `${where}: struct size`);
      assert.equal(arg.align, p.align, `${where}: struct alignment`);
    } else if ("ptr" in arg || "i64" in arg) {
      assert.ok([".u64", ".s64", ".b64"].includes(p.type), `${where}: got a 64-bit value`);
      const v = "ptr" in arg ? arg.ptr : arg.i64;
      assert.equal(typeof v, "bigint", `${where}: not a bigint`);
    } else if ("i32" in arg) {
      assert.ok([".u32", ".s32", ".b32"].includes(p.type), `${where}: got an i32`);
      assert.ok(Number.isInteger(arg.i32) && Math.abs(arg.i32) < 2 ** 32, `${where}: ${arg.i32}`);
    } else {
      assert.equal(p.type, ".f32", `${where}: got an f32`);
      assert.equal(typeof arg.f32, "number");
    }
  });
  const [gx, gy, gz] = L.grid, [bx, by, bz] = L.block;
  for (const v of [...L.grid, ...L.block]) {
    assert.ok(Number.isInteger(v) && v >= 1, `${L.name}: ${v}`);
  }
  assert.ok(gx <= 2 ** 31 - 1 && gy <= 65535 && gz <= 65535, `${L.name}: grid ${L.grid}`);
  assert.ok(
    bx <= 1024 && by <= 1024 && bz <= 64 && bx * by * bz <= 1024,
    `${L.name}: block ${L.block}`,
  );
  assert.ok(
    L.shared >= 0 && L.shared <= 48 * 1024,
    `${L.name}: ${L.shared} bytes of shared memory`,
  );
}

// ---- views on fake buffers ----

function view(dtype: DType, shape: number[], strides?: number[], offset = 0): View {
  const s = strides ?? shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return { buffer: { bytes: 1 << 30 }, dtype, shape, strides: s, offset };
}
const DTYPES: DType[] = ["f32", "bf16", "i32"];
const FLOATS: DType[] = ["f32", "bf16"];

/** Every wrapper through its dtype/op/stride variants; returns the recorded launches. */
function driveAll(): Launch[] {
  const l = new RecordingLauncher();
  for (const dt of DTYPES) {
    k.fill(l, view(dt, [4, 5]), 1.5);
    k.fill(l, view(dt, [4, 5], [1, 4], 3), -2);
    for (const dt2 of DTYPES) {
      for (const op of UNARY_OPS) k.unary(l, op, view(dt, [3, 4], [1, 3]), view(dt2, [3, 4]));
    }
    for (const op of BINARY_OPS) {
      const out = ["eq", "ne", "lt", "le", "gt", "ge"].includes(op) ? "i32" : dt;
      k.binary(l, op, view(dt, [2, 3, 4]), view(dt, [2, 3, 4], [0, 1, 0]), view(out, [2, 3, 4]));
    }
    for (const cond of DTYPES) {
      k.where(l, view(cond, [5, 6]), view(dt, [5, 6], [0, 1]), view(dt, [5, 6]), view(dt, [5, 6]));
    }
    for (const op of REDUCE_OPS) {
      const out = op.startsWith("arg") ? "i32" : dt;
      k.reduce(l, op, view(dt, [2, 3, 4]), [1], view(out, [2, 1, 4]));
      k.reduce(l, op, view(dt, [4, 1_000_000]), [1], view(out, [4, 1])); // few long rows: split
      k.reduce(l, op, view(dt, [100_000, 64]), [0], view(out, [1, 64])); // columns: split
      k.reduce(l, op, view(dt, [4, 6], [1, 4]), [0, 1], view(out, [1, 1]));
    }
    k.reduce(l, "sum", view(dt, [3, 0]), [1], view(dt, [3, 1])); // sum of nothing: fill 0
    k.gather(l, view(dt, [4, 7]), 1, view("i32", [4, 3]), view(dt, [4, 3]));
    k.gather(l, view(dt, []), 0, view("i32", []), view(dt, []));
  }
  for (const src of DTYPES) {
    for (const dst of src === "i32" ? ["i32" as const] : FLOATS) {
      k.scatterAdd(l, view(dst, [6, 5], [1, 6]), 0, view("i32", [3, 5]), view(src, [3, 5]));
    }
  }
  for (const dt of FLOATS) {
    for (const C of [10, 768, 50257]) {
      for (const log of [false, true]) {
        k.softmaxForward(l, view(dt, [7, C]), view(dt, [7, C]), log);
        k.softmaxBackward(l, view(dt, [7, C]), view(dt, [7, C]), view(dt, [7, C]), log);
      }
      k.crossEntropyForward(
        l,
        view(dt, [9, C]),
        view("i32", [9]),
        view("f32", [9]),
        view("f32", [9]),
        -100,
      );
      k.crossEntropyBackward(
        l,
        view(dt, [9, C]),
        view("i32", [9]),
        view("f32", [9]),
        view("f32", [9]),
        view(dt, [9, C]),
        -100,
      );
    }
    for (const [N, C] of [[5, 64], [4096, 1600], [3, 8000]]) {
      const w = view(dt, [C]), stats = () => view("f32", [N]);
      k.layerNormForward(l, view(dt, [N, C]), w, w, view(dt, [N, C]), stats(), stats(), 1e-5);
      k.layerNormForward(l, view(dt, [N, C]), null, null, view(dt, [N, C]), stats(), stats(), 1e-5);
      const x = () => view(dt, [N, C]);
      k.layerNormBackward(l, x(), x(), w, stats(), stats(), x(), view(dt, [C]), view(dt, [C]));
      k.layerNormBackward(l, x(), x(), null, stats(), stats(), x(), null, null);
    }
    k.layerNormBackward(
      l,
      view(dt, [0, 8]),
      view(dt, [0, 8]),
      null,
      view("f32", [0]),
      view("f32", [0]),
      view(dt, [0, 8]),
      view(dt, [8]),
      null,
    );
    k.embeddingForward(l, view(dt, [50, 16]), view("i32", [2, 3]), view(dt, [6, 16]));
    for (const dw of FLOATS) {
      k.embeddingBackward(l, view(dt, [6, 16]), view("i32", [6]), view(dw, [50, 16]));
    }
    const p = () => view("f32", [10, 3]);
    const adam = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 1 };
    k.adamwStep(l, p(), view(dt, [10, 3]), p(), p(), adam);
    k.adamStep(l, p(), view(dt, [10, 3]), p(), p(), adam);
    const sgd = {
      lr: 0.1,
      momentum: 0,
      dampening: 0,
      weightDecay: 0,
      nesterov: false,
      firstStep: true,
    };
    k.sgdStep(l, p(), view(dt, [10, 3]), null, sgd);
    k.sgdStep(l, p(), view(dt, [10, 3]), p(), { ...sgd, momentum: 0.9, nesterov: true });
  }
  driveAttention(l);
  return l.launches;
}

const ATTN_OPTIONS = {
  causal: true,
  scale: 0.125,
  qOffset: 3,
  window: 0,
  dropout: 0.1,
  dropoutKey0: 7,
  dropoutKey1: 0,
  dropoutBlock: 40,
};

/** The attention wrappers: both dtypes and head dims, GQA, strided q/k/v, ALiBi and a bias. */
function driveAttention(l: KernelLauncher): void {
  for (const dt of FLOATS) {
    for (const D of [20, 64, 100, 128]) { // padded scalar kernels (64, 128) and mma (64, 128)
      // q/k/v as views of one fused (B, T, 3H, D) projection: strides (T*3H*D, D, 3H*D, 1).
      const [B, H, T] = [2, 4, 100];
      const st = [T * 3 * H * D, D, 3 * H * D, 1];
      const q = view(dt, [B, H, T, D], st), kk = view(dt, [B, H, T, D], st, H * D);
      const v = view(dt, [B, H, T, D], st, 2 * H * D), lse = view("f32", [B, H, T]);
      const slopes = view("f32", [H]), bias = view("f32", [1, H, T, T]);
      const o = () => view(dt, [B, H, T, D]);
      k.attentionForward(l, {
        q,
        k: kk,
        v,
        alibiSlopes: slopes,
        bias,
        out: o(),
        lse,
        options: ATTN_OPTIONS,
      });
      k.attentionBackward(l, {
        q,
        k: kk,
        v,
        alibiSlopes: slopes,
        bias,
        out: o(),
        dout: o(),
        lse,
        dq: o(),
        dk: o(),
        dv: o(),
        options: ATTN_OPTIONS,
      });
      const gk = view(dt, [B, 2, 7, D]), lse1 = view("f32", [B, H, 1]); // GQA decode step
      const q1 = view(dt, [B, H, 1, D]);
      k.attentionForward(l, {
        q: q1,
        k: gk,
        v: gk,
        alibiSlopes: null,
        bias: null,
        out: q1,
        lse: lse1,
        options: { ...ATTN_OPTIONS, qOffset: 6 },
      });
    }
  }
}

Deno.test("every wrapper launch matches its PTX .entry parameter list and CUDA's limits", () => {
  const launches = driveAll();
  assert.ok(launches.length > 300, `only ${launches.length} launches`);
  for (const L of launches) checkLaunch(L);
});

Deno.test("the launch check catches a wrong argument list or geometry", () => {
  const ok: Launch = {
    name: "fill_f32",
    grid: [1, 1, 1],
    block: [256, 1, 1],
    shared: 0,
    args: [{ ptr: 1n }, layoutArg("fill", [3], [[1]]), { i64: 3n }, { f32: 0 }],
  };
  checkLaunch(ok);
  const bad: Partial<Launch>[] = [
    { name: "fill_f64" },
    { args: ok.args.slice(0, 3) },
    { args: [ok.args[0], layoutArg("fill", [3], [[1], [1]]), ok.args[2], ok.args[3]] },
    { args: [ok.args[0], ok.args[1], { i32: 3 }, ok.args[3]] },
    { args: [ok.args[0], ok.args[1], ok.args[2], { i32: 0 }] },
    { block: [2048, 1, 1] },
    { grid: [1, 70000, 1] },
    { shared: 64 * 1024 },
  ];
  for (const b of bad) {
    assert.throws(
      () => checkLaunch({ ...ok, ...b }),
      JSON.stringify(b, (_, v) => typeof v === "bigint" ? `${v}` : v),
    );
  }
});

Deno.test("every kernel in the PTX is launched by some wrapper variant", () => {
  const used = new Set(driveAll().map((L) => L.name));
  const unused = [...ENTRIES.keys()].filter((name) => !used.has(name));
  assert.deepEqual(unused, []);
});

Deno.test("the committed PTX is fresh: its hash matches the cuda/ sources", async () => {
  const hash = await kernelSourceHash(await kernelSources(), NVCC_VERSION);
  assert.equal(hash, KERNEL_SOURCE_HASH, "cuda/ changed: run `deno task kernels`");
  assert.deepEqual(
    PTX_MODULES.map((m) => m.name),
    [
      "attention_mma",
      "attention_scalar",
      "crossentropy",
      "elementwise",
      "embedding",
      "indexing",
      "layernorm",
      "optim",
      "reduce",
      "softmax",
    ],
  );
});

Deno.test("no kernel uses local memory (by-value structs stay in the parameter space)", () => {
  for (const m of PTX_MODULES) {
    assert.ok(!/\.local\s/.test(m.ptx), `${m.name}: PTX declares .local memory`);
    assert.ok(m.ptx.includes(".target sm_80"), `${m.name}: not compute_80 PTX`);
  }
});

Deno.test("op codes in the wrappers equal the enums in the .cu sources", async () => {
  const enumOf = async (file: string, name: string, prefix: string) => {
    const src = await Deno.readTextFile(new URL(`../cuda/${file}`, import.meta.url));
    const body = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(src);
    assert.ok(body, `enum ${name} in ${file}`);
    return body[1].split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) =>
      s.slice(prefix.length).toLowerCase()
    );
  };
  assert.deepEqual(await enumOf("elementwise.cu", "UnaryOp", "U_"), UNARY_OPS);
  assert.deepEqual(await enumOf("elementwise.cu", "BinaryOp", "B_"), BINARY_OPS);
  assert.deepEqual(await enumOf("reduce.cu", "ReduceOp", "R_"), REDUCE_OPS);
});

// ---- the structs, decoded the way the kernels read them ----

/** `locate()` of cuda/common.cuh on a decoded Layout<K>: element offsets of linear index i. */
function locate(bytes: Uint8Array, K: number, i: number): number[] {
  const dv = new DataView(bytes.buffer);
  const size = (d: number) => Number(dv.getBigInt64(8 * d, true));
  const step = (k: number, d: number) =>
    Number(dv.getBigInt64(8 * MAX_RANK * (k + 1) + 8 * d, true));
  const rank = dv.getInt32(8 * MAX_RANK * (K + 1), true);
  const off = new Array<number>(K).fill(0);
  for (let d = 0; d < rank; d++) {
    const r = i % size(d);
    i = Math.floor(i / size(d));
    for (let kk = 0; kk < K; kk++) off[kk] += r * step(kk, d);
  }
  return off;
}

/** Element offsets of row-major linear index i of a view (plain definition). */
function directOffset(shape: number[], strides: number[], i: number): number {
  let off = 0;
  for (let d = shape.length - 1; d >= 0; d--) {
    off += (i % shape[d]) * strides[d];
    i = Math.floor(i / shape[d]);
  }
  return off;
}

Deno.test("Layout<K> packs strided views so the kernels' indexing visits every element", () => {
  const shape = [2, 3, 1, 4];
  const views = [
    [12, 4, 4, 1], // contiguous
    [1, 2, 99, 6], // permuted
    [0, 4, 0, 1], // broadcast over dim 0
    [24, 8, 8, 2], // every other element
  ];
  const arg = layoutArg("test", shape, views);
  assert.ok("bytes" in arg);
  assert.equal(arg.bytes.length, 8 * MAX_RANK * 5 + 8);
  assert.equal(arg.align, 8);
  for (let i = 0; i < 24; i++) {
    assert.deepEqual(
      locate(arg.bytes, 4, i),
      views.map((s) => directOffset(shape, s, i)),
      `i=${i}`,
    );
  }
  // Contiguous views merge into the rank-1 fast path: size [n], step 1.
  const flat = layoutArg("test", [2, 3, 4], [[12, 4, 1], [12, 4, 1]]);
  assert.ok("bytes" in flat);
  const dv = new DataView(flat.bytes.buffer);
  assert.equal(dv.getBigInt64(0, true), 24n);
  assert.equal(dv.getBigInt64(8 * MAX_RANK, true), 1n);
  assert.equal(dv.getInt32(8 * MAX_RANK * 3, true), 1);
});

Deno.test("mergeDims keeps row-major order; over 8 unmergeable dims are refused", () => {
  assert.deepEqual(mergeDims([2, 1, 3], [[3, 7, 1]]), { shape: [6], strides: [[1]] });
  assert.deepEqual(mergeDims([2, 3], [[1, 2]]), { shape: [2, 3], strides: [[1, 2]] });
  assert.deepEqual(mergeDims([], [[]]), { shape: [1], strides: [[1]] });
  assert.throws(
    () =>
      layoutArg("unary", [2, 2, 2, 2, 2, 2, 2, 2, 2], [[1, 3, 9, 27, 81, 243, 729, 2187, 6561]]),
    /unary: .*more than 8 dims/,
  );
});

Deno.test("reduce: the layout and plan cover each output's reduced positions in row-major order", () => {
  // x (2, 3, 4) transposed from (4, 3, 2): strides (1, 2, 6). Reduce axes [0, 2].
  const x = view("f32", [2, 3, 4], [1, 2, 6]);
  const l = new RecordingLauncher();
  k.reduce(l, "argmax", x, [0, 2], view("i32", [1, 3, 1]));
  assert.equal(l.launches.length, 1);
  const [L] = l.launches;
  const layout = L.args[4];
  assert.ok("bytes" in layout);
  const dv = new DataView(layout.bytes.buffer);
  const get = (field: number, d: number) =>
    Number(dv.getBigInt64(8 * (MAX_RANK * field + d), true));
  const keptRank = dv.getInt32(32 * MAX_RANK, true), redRank = dv.getInt32(32 * MAX_RANK + 4, true);
  const offsetOf = (field: number, rank: number, i: number) => {
    let off = 0;
    for (let d = 0; d < rank; d++) {
      off += (i % get(field, d)) * get(field + 1, d);
      i = Math.floor(i / get(field, d));
    }
    return off;
  };
  for (let o = 0; o < 3; o++) {
    for (let r = 0; r < 8; r++) {
      // Position r in the reduced axes (a, c) row-major is a = r / 4, c = r % 4.
      const a = Math.floor(r / 4), c = r % 4;
      assert.equal(offsetOf(0, keptRank, o) + offsetOf(2, redRank, r), a * 1 + o * 2 + c * 6);
    }
  }
  assert.equal(L.args[5] && "i64" in L.args[5] ? L.args[5].i64 : null, 3n); // n_out
  assert.equal(L.args[6] && "i64" in L.args[6] ? L.args[6].i64 : null, 8n); // n_red
});

Deno.test("planReduce: splits tile the reduced range and blocks are whole warps", () => {
  for (
    const [nOut, nRed, redStep, keptStep] of [
      [1, 10_000_000, 1, 1],
      [3, 100_000, 3, 1],
      [768, 65536, 768, 1],
      [1_000_000, 768, 1, 768],
      [7, 1, 1, 1],
      [1, 5, 1, 1],
    ]
  ) {
    const p = planReduce(nOut, nRed, redStep, keptStep);
    const what = `planReduce(${nOut}, ${nRed})`;
    assert.ok(p.splits >= 1 && p.splits <= 1024, what);
    assert.ok(
      p.chunk * p.splits >= nRed && (p.splits - 1) * p.chunk < nRed,
      `${what}: ${p.chunk}x${p.splits}`,
    );
    assert.equal((p.group * p.rows) % 32, 0, what);
    assert.ok(p.group <= 1024 && (p.group & (p.group - 1)) === 0, what);
  }
  // Column sums (bias gradients): one lane per column, coalesced; the rows split over gridDim.y.
  assert.deepEqual(planReduce(768, 16384, 768, 1), { group: 1, rows: 256, splits: 256, chunk: 64 });
  const l = new RecordingLauncher();
  k.reduce(l, "sum", view("f32", [10_000_000]), [0], view("f32", [1]));
  assert.deepEqual(l.launches.map((L) => L.name), ["reduce_f32", "reduce_partials_f32"]);
  assert.ok(l.launches[0].grid[1] > 1, "a long single reduction is split over gridDim.y");
});

Deno.test("bf16 accumulation goes through an f32 scratch copy", () => {
  const l = new RecordingLauncher();
  k.embeddingBackward(l, view("bf16", [6, 16]), view("i32", [6]), view("bf16", [50, 16]));
  assert.deepEqual(l.launches.map((L) => L.name), [
    "unary_bf16_f32",
    "embedding_backward_bf16",
    "unary_f32_bf16",
  ]);
  const scratch = l.launches[1].args[0];
  assert.ok("ptr" in scratch);
  assert.deepEqual(l.launches[0].args[0], scratch); // widened into the scratch...
  assert.deepEqual(l.launches[2].args[1], scratch); // ...and rounded back from it
});

Deno.test("scalar arguments: fill stores ToInt32 for i32, optimizers get f64-derived factors", () => {
  const l = new RecordingLauncher();
  k.fill(l, view("i32", [3]), 2 ** 32 + 5.9);
  k.fill(l, view("f32", [3]), 0.1);
  assert.deepEqual(l.launches[0].args[3], { i32: 5 });
  assert.deepEqual(l.launches[1].args[3], { f32: 0.1 });
  const p = () => view("f32", [4]);
  const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 1 };
  k.adamwStep(l, p(), p(), p(), p(), o);
  k.adamStep(l, p(), p(), p(), p(), o);
  const f32s = (L: Launch) => L.args.flatMap((a) => ("f32" in a ? [a.f32] : []));
  const [aw, a] = [f32s(l.launches[2]), f32s(l.launches[3])];
  // beta1, beta2, 1-beta1, 1-beta2, lr/(1-beta1^1) = 0.01, sqrt(1-beta2^1), eps, decay, l2
  assert.ok(Math.abs(aw[4] - 0.01) < 1e-12);
  assert.ok(Math.abs(aw[5] - Math.sqrt(0.001)) < 1e-12);
  assert.deepEqual([aw[7], aw[8]], [1 - 1e-3 * 0.1, 0]); // AdamW: decoupled decay, no L2
  assert.deepEqual([a[7], a[8]], [1, 0.1]); // Adam: L2 folded into the gradient
});

Deno.test("wrappers reject what their kernels do not support, naming the method", () => {
  const l = new RecordingLauncher();
  assert.throws(
    () => k.binary(l, "add", view("f32", [2]), view("i32", [2]), view("f32", [2])),
    (e) => e instanceof TypeError && /binary add: a and b must share a dtype/.test(e.message),
  );
  assert.throws(
    () => k.binary(l, "lt", view("f32", [2]), view("f32", [2]), view("f32", [2])),
    (e) => e instanceof TypeError && /out must be i32/.test(e.message),
  );
  assert.throws(
    () => k.softmaxForward(l, view("f32", [3, 4], [1, 3]), view("f32", [3, 4]), false),
    (e) => e instanceof TypeError && /softmaxForward: x must be contiguous/.test(e.message),
  );
  assert.throws(
    () => k.softmaxForward(l, view("i32", [3, 4]), view("i32", [3, 4]), false),
    (e) =>
      e instanceof TypeError && /softmaxForward: x must be f32 or bf16, got i32/.test(e.message),
  );
  assert.throws(
    () => k.reduce(l, "sum", view("f32", [2, 3]), [1, 0], view("f32", [1, 1])),
    (e) => e instanceof RangeError && /sorted unique/.test(e.message),
  );
  assert.throws(
    () => k.reduce(l, "max", view("f32", [2, 0]), [1], view("f32", [2, 1])),
    (e) => e instanceof RangeError && /empty dimension/.test(e.message),
  );
  const sgd = {
    lr: 0.1,
    momentum: 0.9,
    dampening: 0,
    weightDecay: 0,
    nesterov: false,
    firstStep: true,
  };
  assert.throws(
    () => k.sgdStep(l, view("f32", [2]), view("f32", [2]), null, sgd),
    (e) => e instanceof TypeError && /sgdStep: momentumBuf is required/.test(e.message),
  );
  assert.throws(
    () =>
      k.adamwStep(l, view("bf16", [2]), view("f32", [2]), view("f32", [2]), view("f32", [2]), {
        lr: 1,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weightDecay: 0,
        step: 1,
      }),
    (e) => e instanceof TypeError && /adamwStep: param must be f32, got bf16/.test(e.message),
  );
  const q = view("f32", [1, 2, 5, 64]), lse = view("f32", [1, 2, 5]);
  const attn = (over: Partial<Record<"q" | "k" | "bias", View>>, options = ATTN_OPTIONS) =>
    k.attentionForward(l, {
      q: over.q ?? q,
      k: over.k ?? over.q ?? q,
      v: over.q ?? q,
      alibiSlopes: null,
      bias: over.bias ?? null,
      out: over.q ?? q,
      lse,
      options,
    });
  const rejects: [() => void, ErrorConstructor, RegExp][] = [
    [() => attn({ q: view("f32", [1, 2, 5, 130]) }), RangeError, /head dims 1 to 128, got 130/],
    [() => attn({ k: view("bf16", [1, 2, 5, 64]) }), TypeError, /k must have q's dtype f32/],
    [() => attn({ k: view("f32", [1, 3, 5, 64]) }), RangeError, /v must have shape \[1,3,5,64\]/],
    [
      () => attn({ k: view("f32", [1, 2, 5, 64], [640, 320, 1, 5]) }),
      TypeError,
      /k must have unit stride in D/,
    ],
    [() => attn({ bias: view("f32", [1, 2, 4, 5]) }), RangeError, /bias must broadcast/],
    [() => attn({}, { ...ATTN_OPTIONS, dropout: 1 }), RangeError, /dropout must be in \[0, 1\)/],
    [() => attn({}, { ...ATTN_OPTIONS, window: -1 }), RangeError, /window must be >= 0/],
  ];
  for (const [fn, type, message] of rejects) {
    assert.throws(fn, (e) =>
      e instanceof type && /attentionForward: /.test(String(e)) &&
      message.test(String(e)));
  }
  assert.throws(
    () =>
      k.attentionForward(l, {
        q,
        k: view("f32", [1, 3, 5, 64]),
        v: view("f32", [1, 3, 5, 64]),
        alibiSlopes: null,
        bias: null,
        out: q,
        lse,
        options: ATTN_OPTIONS,
      }),
    (e) => e instanceof RangeError && /2 heads must be a multiple of k's 3 heads/.test(e.message),
  );
  assert.equal(l.launches.length, 0, "nothing is launched for rejected input");
});
