// Fused attention (scaledDotProductAttention): values and gradients against the naive composed
// reference under every option, against PyTorch (tests/fixtures/make_attention_fixture.py) and
// against finite differences; dropout against the same seed; memory; input errors.
import assert from "node:assert/strict";
import {
  type AttentionOpOptions,
  getBackend,
  getRngState,
  gradcheck,
  manualSeed,
  memoryStats,
  naiveAttention,
  randn,
  reserveUniformBlocks,
  scaledDotProductAttention,
  setBackend,
  setRngState,
  type Tensor,
  tensor,
  zeros,
} from "../mod.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { assertTensorClose, type FixtureTensor, readFixture, toTensor } from "./_fixtures.ts";

const TOL = { atol: 2e-5, rtol: 1e-4 };

function assertClose(what: string, a: ArrayLike<number>, e: ArrayLike<number>, tol = TOL): void {
  assert.equal(a.length, e.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const ok = Math.abs(a[i] - e[i]) <= tol.atol + tol.rtol * Math.abs(e[i]);
    assert.ok(ok, `${what}[${i}]: ${a[i]} != ${e[i]}`);
  }
}

type Attention = (q: Tensor, k: Tensor, v: Tensor, o?: AttentionOpOptions) => Tensor;

/** Output and the gradients of sum(out * upstream) w.r.t. the leaves, from one attention call. */
function run(
  attn: Attention,
  leaves: Tensor[],
  toQkv: (leaves: Tensor[]) => Tensor[],
  upstream: Tensor,
  opts: AttentionOpOptions,
): { out: Float32Array; grads: Float32Array[] } {
  for (const t of leaves) t.zeroGrad();
  const [q, k, v] = toQkv(leaves);
  const out = attn(q, k, v, opts);
  const loss = out.mul(upstream).sum();
  loss.backward();
  const result = {
    out: out.toTypedArray() as Float32Array,
    grads: leaves.map((t) => t.grad!.toTypedArray() as Float32Array),
  };
  for (const t of [q, k, v, out, loss]) if (!leaves.includes(t)) t.dispose();
  return result;
}

/** Asserts fused == naive in values and gradients, from the same RNG state (same dropout mask). */
function assertMatchesNaive(
  shapes: { B: number; H: number; Hkv: number; T: number; S: number; D: number },
  opts: AttentionOpOptions,
  toQkv: (leaves: Tensor[]) => Tensor[] = (l) => l,
  leaves?: Tensor[],
): { out: Float32Array; grads: Float32Array[] } {
  const { B, H, Hkv, T, S, D } = shapes;
  leaves ??= [[B, H, T, D], [B, Hkv, S, D], [B, Hkv, S, D]].map((s) =>
    randn(s, { requiresGrad: true })
  );
  const upstream = randn([B, H, T, D]);
  const state = getRngState();
  const naive = run(naiveAttention, leaves, toQkv, upstream, opts);
  const afterNaive = getRngState();
  setRngState(state);
  const fused = run(scaledDotProductAttention, leaves, toQkv, upstream, opts);
  assert.deepEqual(getRngState(), afterNaive, "both paths advance the generator alike");
  assertClose("out", fused.out, naive.out);
  fused.grads.forEach((g, i) => assertClose(`grad ${i}`, g, naive.grads[i]));
  for (const a of [fused.out, ...fused.grads]) assert.ok(a.every(Number.isFinite), "all finite");
  return fused;
}

manualSeed(2024);
const one = { B: 1, H: 2, Hkv: 2, D: 8 };

for (
  const [name, shapes, opts] of [
    ["causal, T = S = 5", { ...one, T: 5, S: 5 }, { causal: true }],
    ["non-causal, odd T = S = 67 (not a multiple of the tile)", { ...one, T: 67, S: 67 }, {}],
    ["causal, T = S = 130, two batches, D = 16", { ...one, B: 2, T: 130, S: 130, D: 16 }, {
      causal: true,
    }],
    ["causal KV-cache shape: T = 3 queries after S = 131 keys (qOffset = S - T)", {
      ...one,
      T: 3,
      S: 131,
    }, { causal: true }],
    ["non-causal T = 70 != S = 9", { ...one, T: 70, S: 9 }, { scale: 0.7 }],
    ["causal with explicit qOffset 40 (T = 70, S = 100)", { ...one, T: 70, S: 100 }, {
      causal: true,
      qOffset: 40,
    }],
    ["grouped-query, Hkv = 1 (multi-query)", { ...one, H: 4, Hkv: 1, T: 66, S: 66 }, {
      causal: true,
    }],
    ["grouped-query, Hkv = H / 2", { ...one, H: 4, Hkv: 2, T: 66, S: 66 }, { causal: true }],
    ["sliding window 17, causal, T = S = 150", { ...one, T: 150, S: 150 }, {
      causal: true,
      window: 17,
    }],
    ["sliding window without causal mask", { ...one, T: 40, S: 40 }, { window: 5 }],
  ] as const
) {
  Deno.test(`scaledDotProductAttention equals the naive path: ${name}`, () => {
    assertMatchesNaive(shapes, opts);
  });
}

Deno.test("scaledDotProductAttention equals the naive path with ALiBi slopes (causal, GQA)", () => {
  const alibiSlopes = tensor([0.5, 0.25, 0.125, 0.0625]);
  assertMatchesNaive({ ...one, H: 4, Hkv: 2, T: 70, S: 70 }, { causal: true, alibiSlopes });
  assertMatchesNaive({ ...one, H: 4, Hkv: 4, T: 4, S: 69 }, { causal: true, alibiSlopes });
});

Deno.test("scaledDotProductAttention equals the naive path with a broadcast additive bias", () => {
  const { B, H, T, S } = { B: 2, H: 2, T: 66, S: 67 };
  assertMatchesNaive({ ...one, B, T, S }, { bias: randn([1, H, T, S]) }); // per head
  assertMatchesNaive({ ...one, B, T, S }, { bias: randn([B, 1, 1, S]), causal: true }); // per key
  assertMatchesNaive({ ...one, B, T, S }, { bias: randn([T, S]) }); // shared
});

Deno.test("scaledDotProductAttention draws the naive path's dropout mask from the same seed", () => {
  manualSeed(99);
  const a = assertMatchesNaive({ ...one, B: 2, T: 67, S: 67 }, { causal: true, dropout: 0.3 });
  // Different seeds give a different mask (the comparison above is not vacuous).
  manualSeed(100);
  const b = assertMatchesNaive({ ...one, B: 2, T: 67, S: 67 }, { causal: true, dropout: 0.3 });
  assert.notDeepEqual(a.out, b.out);
  // training: false turns dropout off and draws nothing.
  const [q, k, v] = [0, 1, 2].map(() => randn([1, 2, 9, 8]));
  const state = getRngState();
  const y = scaledDotProductAttention(q, k, v, { dropout: 0.5, training: false });
  assert.deepEqual(getRngState(), state);
  assertClose("eval", y.toTypedArray(), naiveAttention(q, k, v).toTypedArray());
});

Deno.test("reserveUniformBlocks advances the generator exactly like drawing n uniforms", () => {
  manualSeed(5);
  const run = reserveUniformBlocks(10);
  assert.deepEqual(run, { key0: 5, key1: 0, firstBlock: 0 });
  assert.equal(getRngState().offset, 3);
  assert.throws(() => reserveUniformBlocks(-1), RangeError);
});

Deno.test("strided q, k, v views split from a fused qkv projection need no copy and match", () => {
  const [B, T, H, D] = [2, 67, 4, 8];
  const C = H * D;
  const qkv = randn([B, T, 3 * C], { requiresGrad: true });
  // (B, T, 3C) -> three (B, H, T, D) views with unit stride in D and row stride 3C.
  const toQkv = ([x]: Tensor[]) =>
    x.split(C, 2).map((t) => t.reshape([B, T, H, D]).transpose(1, 2));
  const [q] = toQkv([qkv]);
  assert.deepEqual([q.strides[2], q.strides[3]], [3 * C, 1]);
  assertMatchesNaive({ B, H, Hkv: H, T, S: T, D }, { causal: true }, toQkv, [qkv]);
});

Deno.test("k, v broadcast along positions (row stride 0) match the naive path", () => {
  // (1, 2, 1, 8) expanded to (1, 2, 70, 8): the kernel packs such rows for BLAS.
  const toQkv = ([q, k, v]: Tensor[]) => [q, k.expand([1, 2, 70, 8]), v.expand([1, 2, 70, 8])];
  const leaves = [[1, 2, 67, 8], [1, 2, 1, 8], [1, 2, 1, 8]].map((s) =>
    randn(s, { requiresGrad: true })
  );
  assertMatchesNaive(
    { ...one, T: 67, S: 70 },
    { causal: true, alibiSlopes: tensor([0.5, 0.1]) },
    toQkv,
    leaves,
  );
});

Deno.test("the fused kernel gives the same result with the TypeScript sgemm (no OpenBLAS)", () => {
  const original = getBackend("cpu");
  setBackend("cpu", new CpuBackend({ blas: false }));
  try {
    assertMatchesNaive({ ...one, H: 4, Hkv: 2, T: 70, S: 70 }, { causal: true, dropout: 0.2 });
  } finally {
    setBackend("cpu", original);
  }
});

Deno.test("empty sequences give empty outputs and gradients", () => {
  const q = randn([1, 2, 0, 8], { requiresGrad: true });
  const k = randn([1, 2, 5, 8], { requiresGrad: true }), v = randn([1, 2, 5, 8]);
  const y = scaledDotProductAttention(q, k, v, { causal: true });
  assert.deepEqual(y.shape, [1, 2, 0, 8]);
  y.sum().backward();
  assert.ok(k.grad!.toTypedArray().every((x) => x === 0));
  const none = scaledDotProductAttention(
    randn([1, 2, 3, 8]),
    randn([1, 2, 0, 8]),
    randn([1, 2, 0, 8]),
  );
  assert.ok(none.toTypedArray().every((x) => x === 0), "no keys: zeros");
});

Deno.test("rows with no visible key output zeros with finite gradients, others match naive", () => {
  // qOffset = -2: queries 0 and 1 come before every key; a window of 3 keeps the rest banded.
  const { out, grads } = assertMatchesNaive({ ...one, T: 6, S: 6 }, {
    causal: true,
    qOffset: -2,
    window: 3,
  });
  const D = one.D;
  for (const h of [0, 1]) {
    for (const i of [0, 1]) {
      const row = out.subarray((h * 6 + i) * D, (h * 6 + i + 1) * D);
      assert.ok(row.every((x) => x === 0), `row ${i} of head ${h} is zero`);
      const dq = grads[0].subarray((h * 6 + i) * D, (h * 6 + i + 1) * D);
      assert.ok(dq.every((x) => x === 0), `dq of row ${i} is zero`);
    }
  }
  // A bias of -Infinity hides a whole row too (naive gives NaN there, as torch does).
  const bias = zeros([1, 1, 3, 4]).add(tensor([[0], [-Infinity], [0]]).reshape([1, 1, 3, 1]));
  const y = scaledDotProductAttention(
    randn([1, 1, 3, 4]),
    randn([1, 1, 4, 4]),
    randn([1, 1, 4, 4]),
    {
      bias,
    },
  ).toTypedArray();
  assert.deepEqual([...y.subarray(4, 8)], [0, 0, 0, 0]);
  assert.ok(y.every(Number.isFinite));
});

Deno.test("scaledDotProductAttention's gradients pass gradcheck (causal, GQA, ALiBi, bias)", () => {
  const alibiSlopes = tensor([0.3, 0.1]);
  const bias = randn([1, 1, 5, 6]);
  const inputs = [[1, 2, 5, 3], [1, 1, 6, 3], [1, 1, 6, 3]].map((s) =>
    randn(s, { requiresGrad: true })
  );
  assert.equal(
    gradcheck(
      (q, k, v) => scaledDotProductAttention(q, k, v, { causal: true, alibiSlopes, bias }),
      inputs,
    ),
    true,
  );
});

interface FixtureCase {
  name: string;
  causal: boolean;
  scale: number;
  q: FixtureTensor;
  k: FixtureTensor;
  v: FixtureTensor;
  upstream: FixtureTensor;
  out: FixtureTensor;
  grads: { q: FixtureTensor; k: FixtureTensor; v: FixtureTensor };
}

for (const c of readFixture<{ cases: FixtureCase[] }>("attention.json").cases) {
  Deno.test(`scaledDotProductAttention matches PyTorch: ${c.name}`, () => {
    const [q, k, v] = [c.q, c.k, c.v].map((t) => toTensor(t, { requiresGrad: true }));
    const out = scaledDotProductAttention(q, k, v, { causal: c.causal, scale: c.scale });
    assertTensorClose("out", out, c.out);
    out.mul(toTensor(c.upstream)).sum().backward();
    assertTensorClose("dq", q.grad, c.grads.q);
    assertTensorClose("dk", k.grad, c.grads.k);
    assertTensorClose("dv", v.grad, c.grads.v);
  });
}

Deno.test("bf16 inputs on the CPU compute in f32 and return bf16", () => {
  const [q, k, v] = [[1, 2, 9, 8], [1, 2, 9, 8], [1, 2, 9, 8]].map((s) => randn(s).cast("bf16"));
  const y = scaledDotProductAttention(q, k, v, { causal: true });
  assert.equal(y.dtype, "bf16");
  const ref = naiveAttention(q.cast("f32"), k.cast("f32"), v.cast("f32"), { causal: true });
  assertClose("bf16 out", y.toTypedArray(), ref.toTypedArray(), { atol: 2e-2, rtol: 2e-2 });
});

Deno.test("a training step through scaledDotProductAttention holds memory flat", () => {
  const leaves = [[2, 4, 70, 8], [2, 2, 70, 8], [2, 2, 70, 8]].map((s) =>
    randn(s, { requiresGrad: true })
  );
  const bias = randn([1, 1, 70, 70]);
  const step = () => {
    const out = scaledDotProductAttention(leaves[0], leaves[1], leaves[2], {
      causal: true,
      dropout: 0.1,
      bias,
    });
    const loss = out.sum();
    loss.backward();
    out.dispose();
    loss.dispose();
    for (const t of leaves) t.zeroGrad();
  };
  step();
  const before = memoryStats();
  for (let i = 0; i < 3; i++) step();
  const after = memoryStats();
  assert.equal(after.liveBytes, before.liveBytes);
  assert.equal(after.liveTensors, before.liveTensors);
});

Deno.test("scaledDotProductAttention rejects bad input, naming itself and what it got", () => {
  const q = randn([1, 4, 5, 8]), k = randn([1, 2, 6, 8]), v = randn([1, 2, 6, 8]);
  const sdpa = scaledDotProductAttention;
  const cases: [() => unknown, ErrorConstructor, RegExp][] = [
    [() => sdpa(q.reshape([4, 5, 8]), k, v), RangeError, /q must have 4 dims.*\[4,5,8\]/],
    [() => sdpa(q, randn([1, 3, 6, 8]), randn([1, 3, 6, 8])), RangeError, /multiple of Hkv/],
    [() => sdpa(q, k, randn([1, 2, 7, 8])), RangeError, /k and v must have one shape/],
    [() => sdpa(q, randn([1, 2, 6, 4]), randn([1, 2, 6, 4])), RangeError, /\[1,2,6,4\]/],
    [() => sdpa(q.cast("i32"), k, v), TypeError, /float dtype.*i32/],
    [() => sdpa(q, k, v, { dropout: 1 }), RangeError, /dropout.*\[0, 1\), got 1/],
    [() => sdpa(q, k, v, { window: -1 }), RangeError, /window.*got -1/],
    [() => sdpa(q, k, v, { qOffset: 0.5 }), RangeError, /qOffset.*got 0.5/],
    [() => sdpa(q, k, v, { scale: NaN }), RangeError, /scale/],
    [() => sdpa(q, k, v, { alibiSlopes: tensor([1, 2]) }), TypeError, /alibiSlopes.*\[4\]/],
    [() => sdpa(q, k, v, { bias: randn([3, 6]) }), RangeError, /bias \[3,6\]/],
    [
      () => sdpa(q, k, v, { bias: randn([5, 6], { requiresGrad: true }) }),
      TypeError,
      /bias requires a gradient/,
    ],
    [() => sdpa(q, k, "v" as unknown as Tensor), TypeError, /v must be a Tensor/],
  ];
  for (const [fn, type, msg] of cases) {
    assert.throws(fn, (e: Error) => {
      assert.ok(e instanceof type, `${e.name}: ${e.message}`);
      assert.match(e.message, /^scaledDotProductAttention: /);
      assert.match(e.message, msg);
      return true;
    });
  }
});
