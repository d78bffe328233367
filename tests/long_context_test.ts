// GPT-2 with RoPE / ALiBi / no positions, grouped-query attention and a sliding window: the KV
// cache reproduces full recomputation for every scheme, the fused and naive kernels agree, small
// models train, and bad configs fail clearly.
import assert from "node:assert/strict";
import {
  AdamW,
  countParameters,
  generate,
  GPT2,
  type GPT2Config,
  gpt2Config,
  hfConfigFromGpt2,
  manualSeed,
  memoryStats,
  noGrad,
  saveGpt2Safetensors,
  tensor,
  tidy,
} from "../mod.ts";

const base = (over: Partial<GPT2Config>): GPT2Config =>
  gpt2Config("small-test", { nEmbd: 32, nHead: 4, contextLength: 24, ...over });

/** Every scheme the KV cache must handle. */
const SCHEMES: [string, Partial<GPT2Config>][] = [
  ["learned (GPT-2)", {}],
  ["rope", { position: "rope" }],
  ["rope + linear interpolation", { position: "rope", ropeScaling: { type: "linear", factor: 4 } }],
  ["rope + NTK", { position: "rope", ropeScaling: { type: "ntk", factor: 4 } }],
  [
    "rope + YaRN",
    { position: "rope", ropeScaling: { type: "yarn", factor: 4, originalContext: 24 } },
  ],
  ["alibi", { position: "alibi" }],
  ["none", { position: "none" }],
  ["rope + GQA (2 kv heads)", { position: "rope", nKvHeads: 2 }],
  ["alibi + MQA (1 kv head)", { position: "alibi", nKvHeads: 1 }],
  ["learned + sliding window 5", { slidingWindow: 5 }],
  ["rope + GQA + sliding window 5", { position: "rope", nKvHeads: 2, slidingWindow: 5 }],
  ["alibi + sliding window 4", { position: "alibi", slidingWindow: 4 }],
];

const ids = (n: number, seed: number): number[] =>
  Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + ((i * i) % 5)) % 64);

/** Logits of the full sequence at once, and fed through a cache in pieces (prefill, then 1 or 2). */
function fullAndCached(
  model: GPT2,
  seq: number[],
  capacity?: number,
): [Float32Array, Float32Array] {
  return noGrad(() =>
    tidy(() => {
      const full = model.forward(tensor([seq], { dtype: "i32" })).toTypedArray() as Float32Array;
      const cache = model.createCache(1, { capacity });
      const parts: Float32Array[] = [];
      let at = 0;
      const sizes = [3, 1, 2, 1, 1];
      for (let step = 0; at < seq.length; step++) {
        const n = Math.min(sizes[step % sizes.length], seq.length - at);
        const idx = tensor([seq.slice(at, at + n)], { dtype: "i32" });
        parts.push(model.forward(idx, { cache }).toTypedArray() as Float32Array);
        at += n;
      }
      cache.dispose();
      const cached = new Float32Array(full.length);
      let off = 0;
      for (const p of parts) {
        cached.set(p, off);
        off += p.length;
      }
      return [full, cached];
    })
  );
}

for (const [name, over] of SCHEMES) {
  Deno.test(`KV-cache decoding equals full recomputation: ${name}`, () => {
    manualSeed(1);
    const config = base(over);
    const model = new GPT2(config).eval();
    const windowed = (config.slidingWindow ?? 0) > 0;
    const learned = (config.position ?? "learned") === "learned";
    // Beyond the training context where positions allow it; a small cache makes a sliding-window
    // model roll its cache several times.
    const length = learned ? config.contextLength : 40;
    const capacity = windowed && !learned ? config.slidingWindow! + 2 : learned ? undefined : 40;
    const [full, cached] = fullAndCached(model, ids(length, 3), capacity);
    let worst = 0;
    full.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - cached[i]))));
    assert.ok(worst < 2e-4, `max |full - cached| = ${worst}`);
    if (windowed) {
      // The window matters: the last position differs from a model that sees everything.
      const open = new GPT2({ ...config, slidingWindow: 0 }).eval();
      open.loadStateDict(model.stateDict());
      const [wide] = fullAndCached(open, ids(length, 3), learned ? undefined : 40);
      const v = config.vocabSize, last = full.length - v;
      let diff = 0;
      for (let i = 0; i < v; i++) diff = Math.max(diff, Math.abs(full[last + i] - wide[last + i]));
      assert.ok(diff > 1e-3, "the window changes the result");
      open.dispose();
    }
  });
}

Deno.test("generate() with a rolling sliding-window cache matches generation without a cache", () => {
  manualSeed(2);
  const model = new GPT2(base({ position: "rope", slidingWindow: 6, contextLength: 8 }));
  const prompt = ids(5, 1);
  // 30 tokens: far past the window and the context; the no-cache path recomputes the last
  // contextLength (8) tokens, which under a 6-token window sees exactly what the cache holds
  // but at shifted positions -- RoPE only sees distances, so greedy tokens agree.
  const cached = generate(model, prompt, { maxNewTokens: 30, temperature: 0, stopTokens: [] });
  const plain = generate(model, prompt, {
    maxNewTokens: 30,
    temperature: 0,
    stopTokens: [],
    useCache: false,
  });
  assert.deepEqual(cached, plain);
});

Deno.test("the fused and the naive attention kernels give the same logits and gradients", () => {
  for (const over of [{ position: "rope" as const, nKvHeads: 2 }, { position: "alibi" as const }]) {
    manualSeed(3);
    const fused = new GPT2(base(over));
    const naive = new GPT2(base(over), { attentionKernel: "naive" });
    naive.loadStateDict(fused.stateDict());
    const idx = tensor([ids(20, 5), ids(20, 6)], { dtype: "i32" });
    const tgt = tensor([ids(20, 6), ids(20, 7)], { dtype: "i32" });
    const lf = fused.loss(idx, tgt), ln = naive.loss(idx, tgt);
    assert.ok(Math.abs(lf.item() - ln.item()) < 1e-5);
    lf.backward();
    ln.backward();
    const gn = new Map(naive.namedParameters());
    for (const [name, p] of fused.namedParameters()) {
      const a = p.grad!.toTypedArray(), b = gn.get(name)!.grad!.toTypedArray();
      a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-5 + 1e-3 * Math.abs(b[i]), name));
    }
  }
});

for (
  const over of [
    { position: "rope" as const, nKvHeads: 2 },
    { position: "alibi" as const, slidingWindow: 8 },
  ]
) {
  Deno.test(`a tiny ${JSON.stringify(over)} model trains and holds memory flat`, () => {
    manualSeed(4);
    const model = new GPT2(base({ ...over, dropout: 0.1 }));
    const opt = new AdamW(model.parameters(), { lr: 3e-3 });
    const seq = ids(17, 9);
    const idx = tensor([seq.slice(0, 16)], { dtype: "i32" });
    const tgt = tensor([seq.slice(1)], { dtype: "i32" });
    const losses: number[] = [];
    let live = { bytes: 0, tensors: 0 };
    for (let step = 0; step < 40; step++) {
      losses.push(tidy(() => {
        const loss = model.loss(idx, tgt);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        return loss.item();
      }));
      const m = memoryStats();
      if (step === 5) live = { bytes: m.liveBytes, tensors: m.liveTensors };
      if (step > 5) {
        assert.deepEqual(
          { bytes: m.liveBytes, tensors: m.liveTensors },
          live,
          `step ${step} leaks`,
        );
      }
    }
    assert.ok(losses.at(-1)! < 0.3 * losses[0], `loss ${losses[0]} -> ${losses.at(-1)}`);
  });
}

Deno.test("configs: defaults keep GPT-2; counts follow the scheme; bad values fail clearly", () => {
  const gpt2 = new GPT2(base({}));
  assert.ok(gpt2.wpe !== null);
  assert.equal(gpt2.h[0].attn.c_attn.weight.shape[0], 3 * 32);
  for (const over of [{ position: "rope" as const, nKvHeads: 1 }, { position: "alibi" as const }]) {
    const m = new GPT2(base(over));
    assert.equal(m.wpe, null);
    assert.equal(countParameters(m.config), m.numParameters());
    assert.ok(!("wpe.weight" in m.stateDict()));
  }
  assert.equal(new GPT2(base({ nKvHeads: 2 })).h[0].attn.c_attn.weight.shape[0], 32 + 2 * 2 * 8);
  const bad: [Partial<GPT2Config>, RegExp][] = [
    [
      { position: "sinusoidal" as never },
      /position must be one of "learned", "rope", "alibi", "none", got sinusoidal/,
    ],
    [{ ropeTheta: 500 }, /ropeTheta and ropeScaling need position "rope", got position "learned"/],
    [{ position: "rope", ropeTheta: 0.5 }, /ropeTheta must be a finite number > 1, got 0.5/],
    [
      { position: "rope", ropeScaling: { type: "ntk", factor: 0 } },
      /factor must be a finite number >= 1/,
    ],
    [{ nKvHeads: 3 }, /nKvHeads must be a positive integer dividing nHead 4, got 3/],
    [{ slidingWindow: -1 }, /slidingWindow must be an integer >= 0/],
    [
      { position: "rope", nEmbd: 12, nHead: 4 },
      /RoPE needs an even head size, got nEmbd \/ nHead = 3/,
    ],
  ];
  for (const [over, re] of bad) assert.throws(() => base(over), re);
});

Deno.test("non-learned schemes run past contextLength; GPT-2 export rejects what it cannot hold", async () => {
  const rope = new GPT2(base({ position: "rope", nKvHeads: 2, slidingWindow: 4 }));
  const long = noGrad(() => rope.forward(tensor([ids(50, 1)], { dtype: "i32" })));
  assert.deepEqual(long.shape, [1, 50, 64]);
  assert.throws(
    () => hfConfigFromGpt2(rope.config),
    /hfConfigFromGpt2: the config cannot be represented as a Hugging Face GPT-2: position "rope" \(GPT-2 has "learned"\); nKvHeads 2 \(GPT-2 has one per head, 4\); slidingWindow 4/,
  );
  await assert.rejects(
    () => saveGpt2Safetensors(rope, "/tmp/never_written.safetensors"),
    /saveGpt2Safetensors: the config cannot be represented/,
  );
  assert.throws(
    () => new GPT2(base({})).forward(tensor([ids(25, 1)], { dtype: "i32" })),
    /sequence length 25 exceeds contextLength 24/,
  );
  // Caches: learned positions bound the capacity; an unwindowed cache does not roll.
  assert.throws(
    () => new GPT2(base({})).createCache(1, { capacity: 30 }),
    /capacity must be an integer in \[1, 24\] \(learned positions\), got 30/,
  );
  const plain = new GPT2(base({ position: "alibi" }));
  const cache = plain.createCache(1, { capacity: 10 });
  noGrad(() => plain.forward(tensor([ids(8, 1)], { dtype: "i32" }), { cache }));
  assert.throws(
    () => noGrad(() => plain.forward(tensor([ids(3, 1)], { dtype: "i32" }), { cache })),
    /3 new tokens after 8 cached exceed the context of 10/,
  );
  cache.dispose();
});

Deno.test("GPT2.dispose() frees an ALiBi model's cached slopes along with its parameters", () => {
  manualSeed(0);
  const before = memoryStats().liveTensors;
  const model = new GPT2(base({ position: "alibi" }));
  tidy(() => noGrad(() => model.forward(tensor([[1, 2, 3]], { dtype: "i32" }))).dispose());
  assert.ok(memoryStats().liveTensors > before);
  model.dispose();
  assert.equal(memoryStats().liveTensors, before, "nothing of the model is left alive");
});
