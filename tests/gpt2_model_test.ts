// GPT-2: logits, loss, gradients and one SGD step against a hand-written PyTorch GPT-2
// (tests/fixtures/make_gpt2_fixture.py), parameter names and counts, init, the KV cache, errors.
import assert from "node:assert/strict";
import {
  countParameters,
  GPT2,
  type GPT2Config,
  gpt2Config,
  manualSeed,
  memoryStats,
  type MLP,
  noGrad,
  type Tensor,
  tensor,
  tidy,
  validateConfig,
} from "../mod.ts";
import { assertTensorClose, type FixtureTensor, readFixture, toTensor } from "./_fixtures.ts";

interface GPT2Fixture {
  config: GPT2Config;
  layout: "hf";
  conv1d: string[];
  weights: Record<string, FixtureTensor>;
  idx: FixtureTensor;
  targets: FixtureTensor;
  logits: FixtureTensor;
  loss: number;
  grads: Record<string, FixtureTensor>;
  lr: number;
  loss_after_sgd: number;
  prompt: number[];
  greedy: number[];
}

const fx = readFixture<GPT2Fixture>("gpt2_tiny.json");
const TOL = { atol: 1e-4, rtol: 1e-4 };

/** A fixture tensor in denograd's layout: HF's Conv1D weights (in, out) become (out, in). */
function ours(name: string, t: FixtureTensor): Tensor {
  const hf = toTensor(t);
  if (!fx.conv1d.includes(name)) return hf;
  const out = hf.transpose(0, 1).contiguous();
  hf.dispose();
  return out;
}

/** The small-test model with the fixture's weights. */
function fixtureModel(): GPT2 {
  const model = new GPT2(fx.config);
  const state = Object.fromEntries(Object.entries(fx.weights).map(([n, t]) => [n, ours(n, t)]));
  model.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  return model;
}

Deno.test("the fixture's config is the small-test preset", () => {
  assert.deepEqual(gpt2Config("small-test"), fx.config);
});

Deno.test("parameter names are Hugging Face GPT-2's, in their order, without lm_head", () => {
  const model = new GPT2(gpt2Config("small-test"));
  assert.deepEqual(model.namedParameters().map(([n]) => n), Object.keys(fx.weights));
  assert.deepEqual(Object.keys(model.stateDict()), Object.keys(fx.weights));
  assert.equal(model.numParameters(), countParameters(model.config));
  model.dispose();
});

Deno.test("GPT2 logits equal PyTorch's (max abs diff <= 1e-4)", () => {
  const model = fixtureModel().eval();
  const logits = noGrad(() => model.forward(toTensor(fx.idx)));
  assertTensorClose("logits", logits, fx.logits, TOL);
  model.dispose();
});

Deno.test("GPT2 loss, every gradient and the loss after one SGD step equal PyTorch's", () => {
  const model = fixtureModel();
  const idx = toTensor(fx.idx), targets = toTensor(fx.targets);
  const loss = tidy(() => {
    const l = model.loss(idx, targets);
    l.backward();
    return l.item();
  });
  assert.ok(Math.abs(loss - fx.loss) <= 1e-4, `loss ${loss} vs ${fx.loss}`);
  for (const [name, p] of model.namedParameters()) {
    const g = tidy(() => fx.conv1d.includes(name) ? p.grad!.transpose(0, 1) : p.grad!.alias());
    assertTensorClose(`grad of ${name}`, g, fx.grads[name], TOL);
    g.dispose();
  }
  noGrad(() => {
    for (const p of model.parameters()) tidy(() => p.assign(p.sub(p.grad!.mul(fx.lr))));
  });
  model.zeroGrad();
  const after = tidy(() => noGrad(() => model.loss(idx, targets).item()));
  assert.ok(Math.abs(after - fx.loss_after_sgd) <= 1e-4, `${after} vs ${fx.loss_after_sgd}`);
  model.dispose();
});

Deno.test("a training step leaves memory flat", () => {
  const model = fixtureModel();
  const idx = toTensor(fx.idx), targets = toTensor(fx.targets);
  const step = () =>
    tidy(() => {
      model.loss(idx, targets).backward();
      noGrad(() => {
        for (const p of model.parameters()) tidy(() => p.assign(p.sub(p.grad!.mul(0.01))));
      });
      model.zeroGrad();
    });
  step();
  const before = memoryStats();
  for (let i = 0; i < 3; i++) step();
  const after = memoryStats();
  assert.equal(after.liveBytes, before.liveBytes);
  assert.equal(after.liveTensors, before.liveTensors);
  model.dispose();
});

Deno.test("forward with a KV cache, prefill then one token at a time, matches the full forward", () => {
  const model = fixtureModel().eval();
  const ids = (fx.idx.data as number[]).slice(0, 10);
  const full = noGrad(() => model.forward(tensor(Int32Array.from(ids), { shape: [1, 10] })))
    .toTypedArray();
  const cache = model.createCache(1);
  const parts: number[] = [];
  noGrad(() => {
    for (const [start, len] of [[0, 6], [6, 1], [7, 1], [8, 2]]) {
      const chunk = tensor(Int32Array.from(ids.slice(start, start + len)), { shape: [1, len] });
      parts.push(...model.forward(chunk, { cache }).toTypedArray());
    }
  });
  assert.equal(cache.length, 10);
  assert.equal(parts.length, full.length);
  const diff = parts.reduce((m, v, i) => Math.max(m, Math.abs(v - full[i])), 0);
  assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  const last = noGrad(() =>
    model.forward(tensor(Int32Array.from(ids), { shape: [1, 10] }), { lastOnly: true })
  );
  assert.deepEqual(last.shape, [1, 1, fx.config.vocabSize]);
  assert.deepEqual([...last.toTypedArray()], [...full.slice(-fx.config.vocabSize)]);
  cache.dispose();
  model.dispose();
});

Deno.test("forward rejects sequences past the context, bad ids and a cached forward with grad", () => {
  const model = new GPT2(gpt2Config("small-test"));
  const ctx = model.config.contextLength;
  const ids = (n: number) => tensor(new Int32Array(n), { shape: [1, n] });
  assert.throws(
    () => model.forward(ids(ctx + 1)),
    /GPT2.forward: sequence length 17 exceeds contextLength 16/,
  );
  assert.throws(() => model.forward(tensor([[1, 2]])), TypeError); // f32 ids
  assert.throws(() => model.forward(tensor([1, 2], { dtype: "i32" })), RangeError); // 1-D
  assert.throws(() => model.forward(tensor([[64]], { dtype: "i32" })), /64/); // out of vocab
  assert.throws(
    () => model.loss(ids(3), ids(4)),
    /targets \[1,4\] must have the inputs' shape \[1,3\]/,
  );
  const cache = model.createCache(1);
  assert.throws(() => model.forward(ids(2), { cache }), /inference-only; run it under noGrad/);
  noGrad(() => model.forward(ids(10), { cache }));
  assert.throws(
    () => noGrad(() => model.forward(ids(7), { cache })),
    /7 new tokens after 10 cached exceed the context of 16/,
  );
  assert.equal(cache.length, 10);
  assert.throws(
    () => noGrad(() => model.forward(tensor(new Int32Array(4), { shape: [2, 2] }), { cache })),
    /batch 1/,
  );
  cache.reset();
  assert.equal(cache.length, 0);
  cache.dispose();
  model.dispose();
});

Deno.test("the 124M preset has 124,439,808 parameters; the count formula matches built models", () => {
  assert.equal(countParameters(gpt2Config("gpt2")), 124_439_808);
  assert.equal(countParameters(gpt2Config("gpt2-medium")), 354_823_168);
  assert.equal(countParameters(gpt2Config("gpt2-large")), 774_030_080);
  assert.equal(countParameters(gpt2Config("gpt2-xl")), 1_557_611_200);
  for (const bias of [true, false]) {
    const config = { ...gpt2Config("tiny"), vocabSize: 1000, nLayer: 3, bias };
    const model = new GPT2(config);
    assert.equal(model.numParameters(), countParameters(config));
    model.dispose();
  }
});

Deno.test({
  name: "building the 124M model gives 124,439,808 parameters (set DENOGRAD_SLOW=1; ~15 s)",
  ignore: !Deno.env.get("DENOGRAD_SLOW"),
  fn() {
    const model = new GPT2(gpt2Config("gpt2"));
    assert.equal(model.numParameters(), 124_439_808);
    model.dispose();
  },
});

function std(t: Tensor): number {
  const v = Array.from(t.toTypedArray());
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  return Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
}

Deno.test("GPT-2 init: N(0, 0.02²), residual projections scaled by 1/√(2·nLayer), biases 0, LayerNorm 1/0", () => {
  manualSeed(1);
  const model = new GPT2({ ...gpt2Config("tiny"), vocabSize: 2000, nLayer: 8 });
  const close = (a: number, b: number) => Math.abs(a - b) < 0.05 * b;
  assert.ok(close(std(model.wte.weight), 0.02));
  assert.ok(close(std(model.wpe!.weight), 0.02));
  assert.ok(close(std(model.h[3].attn.c_attn.weight), 0.02));
  const mlp = (g: GPT2, i: number) => g.h[i].mlp as MLP; // dense blocks (no moe config)
  assert.ok(close(std(mlp(model, 3).c_fc.weight), 0.02));
  assert.ok(close(std(model.h[3].attn.c_proj.weight), 0.02 / 4));
  assert.ok(close(std(mlp(model, 3).c_proj.weight), 0.02 / 4));
  assert.ok(model.h[2].attn.c_attn.bias!.toTypedArray().every((v) => v === 0));
  assert.ok(model.h[2].ln_1.weight.toTypedArray().every((v) => v === 1));
  assert.ok(model.ln_f.bias!.toTypedArray().every((v) => v === 0));
  // The same seed gives the same model.
  manualSeed(1);
  const again = new GPT2({ ...gpt2Config("tiny"), vocabSize: 2000, nLayer: 8 });
  assert.deepEqual(
    mlp(again, 7).c_proj.weight.toTypedArray(),
    mlp(model, 7).c_proj.weight.toTypedArray(),
  );
  model.dispose();
  again.dispose();
});

Deno.test("the output head is wte.weight itself: its gradient has both uses", () => {
  const model = fixtureModel();
  const idx = toTensor(fx.idx), targets = toTensor(fx.targets);
  tidy(() => model.loss(idx, targets).backward());
  assert.deepEqual(model.wte.weight.grad!.shape, [fx.config.vocabSize, fx.config.nEmbd]);
  assert.ok(!("lm_head.weight" in model.stateDict()));
  model.dispose();
});

Deno.test("dropout is active in train mode and off in eval mode", () => {
  manualSeed(0);
  const model = new GPT2(gpt2Config("small-test", { dropout: 0.5 }));
  const idx = toTensor(fx.idx);
  const run = () => noGrad(() => model.forward(idx)).toTypedArray();
  assert.notDeepEqual(run(), run());
  model.eval();
  assert.deepEqual(run(), run());
  model.dispose();
});

Deno.test("gpt2Config returns presets, applies overrides and names the valid presets on error", () => {
  const c = gpt2Config("gpt2");
  assert.deepEqual(
    [c.vocabSize, c.contextLength, c.nEmbd, c.nLayer, c.nHead, c.bias],
    [50257, 1024, 768, 12, 12, true],
  );
  assert.equal(gpt2Config("gpt2", { dropout: 0 }).dropout, 0);
  c.nLayer = 1; // a fresh copy each time
  assert.equal(gpt2Config("gpt2").nLayer, 12);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => gpt2Config("gpt3" as any),
    /unknown config "gpt3"; expected one of "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny", "small-test"/,
  );
  assert.throws(() => gpt2Config("gpt2", { nHead: 7 }), /nHead 7 must divide nEmbd 768/);
  assert.throws(() => validateConfig({ ...c, nLayer: 0 }), /nLayer must be a positive integer/);
  assert.throws(() => validateConfig({ ...c, dropout: 1 }), /dropout must be in \[0, 1\)/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => validateConfig({ ...c, vocabSize: "5" as any }), TypeError);
  assert.throws(() => new GPT2({ ...c, nEmbd: 10 }), RangeError);
});
