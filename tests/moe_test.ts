// Mixture of experts: one expert equals the dense MLP; routing, gates, capacity slots, the router
// losses, outputs and every gradient equal a PyTorch reference (tests/fixtures/make_moe_fixture.py);
// gradcheck; capacity overflow with a hand-built router; GPT-2 with MoE blocks (parameter counts,
// router losses in the loss, KV-cache generation, checkpoints, training with flat memory); errors.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  batchedLinear,
  cat,
  countActiveParameters,
  countParameters,
  ExpertLinear,
  generate,
  getRngState,
  GPT2,
  type GPT2Config,
  gpt2Config,
  gradcheck,
  linear,
  loadCheckpoint,
  manualSeed,
  MLP,
  MoE,
  type MoEConfig,
  moeLayerIndices,
  noGrad,
  pretrain,
  randn,
  readMetrics,
  saveCheckpoint,
  slidingWindows,
  type Tensor,
  tensor,
  tidy,
  validateConfig,
} from "../mod.ts";
import { planRouting } from "../src/nn/_moe_routing.ts";
import {
  assertTensorClose,
  assertValuesClose,
  type FixtureTensor,
  readFixture,
  toTensor,
} from "./_fixtures.ts";

interface MoECase {
  name: string;
  config: Required<MoEConfig>;
  nEmbd: number;
  weights: Record<string, FixtureTensor>;
  x: FixtureTensor;
  upstream: FixtureTensor;
  capacity: number;
  experts: FixtureTensor;
  gates: FixtureTensor;
  slots: FixtureTensor;
  routed: number[];
  tokensPerExpert: number[];
  dropped: number;
  droppedTokens: number;
  y: FixtureTensor;
  auxLoss: number;
  zLoss: number;
  routerLoss: number;
  objective: number;
  grads: Record<string, FixtureTensor>;
}

const cases = readFixture<{ cases: MoECase[] }>("moe.json").cases;
const TOL = { atol: 1e-4, rtol: 1e-4 };

/** Copies `src` into the parameter `dst` (same number of elements, any shape). */
function setParam(dst: Tensor, src: Tensor): void {
  noGrad(() => {
    const v = src.reshape(dst.shape);
    dst.assign(v);
    v.dispose();
  });
}

function fixtureMoE(c: MoECase): MoE {
  const moe = new MoE(c.nEmbd, c.config);
  const state = Object.fromEntries(
    Object.entries(c.weights).map(([name, t]) => [name, toTensor(t)]),
  );
  moe.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  return moe;
}

Deno.test("batchedLinear equals a separate linear per group, values and gradients", () => {
  manualSeed(1);
  const x = randn([3, 5, 4], { requiresGrad: true });
  const w = randn([3, 6, 4], { requiresGrad: true });
  const b = randn([3, 6], { requiresGrad: true });
  const up = randn([3, 5, 6]);
  const y = batchedLinear(x, w, b);
  y.mul(up).sum().backward();
  for (let g = 0; g < 3; g++) {
    const [xg, wg, bg] = [x, w, b].map((t) => t.detach().narrow(0, g, 1).squeeze(0));
    const ref = linear(xg, wg, bg);
    assertValuesClose(`group ${g}`, y.narrow(0, g, 1).toTypedArray(), ref.toTypedArray(), TOL);
  }
  // Gradients by finite differences, bias and no bias.
  manualSeed(2);
  const args = [[2, 3, 4], [2, 5, 4], [2, 5]].map((s) => randn(s, { requiresGrad: true }));
  assert.ok(gradcheck((a, b, c) => batchedLinear(a, b, c), args));
  assert.ok(gradcheck((a, b) => batchedLinear(a, b, null), args.slice(0, 2)));
});

Deno.test("MoE with one expert and k=1 equals the dense MLP, values and gradients", () => {
  manualSeed(3);
  const moe = new MoE(8, { experts: 1, topK: 1, capacityFactor: 1, zLossWeight: 0 });
  const mlp = new MLP(8);
  setParam(moe.experts.c_fc.weight, mlp.c_fc.weight);
  setParam(moe.experts.c_fc.bias!, mlp.c_fc.bias!);
  setParam(moe.experts.c_proj.weight, mlp.c_proj.weight);
  setParam(moe.experts.c_proj.bias!, mlp.c_proj.bias!);
  const x1 = randn([2, 5, 8], { requiresGrad: true });
  const x2 = x1.detach();
  x2.requiresGrad = true;
  const up = randn([2, 5, 8]);
  const a = moe.forward(x1), b = mlp.forward(x2);
  assertValuesClose("output", a.toTypedArray(), b.toTypedArray(), { atol: 1e-6, rtol: 1e-6 });
  // The aux loss of a single expert is exactly 1 and has no gradient.
  assert.ok(Math.abs(moe.stats!.auxLoss - 1) < 1e-12);
  a.mul(up).sum().add(moe.takeRouterLoss()!).backward();
  b.mul(up).sum().backward();
  const pairs: [string, Tensor, Tensor][] = [
    ["x", x1.grad!, x2.grad!],
    ["c_fc.weight", moe.experts.c_fc.weight.grad!, mlp.c_fc.weight.grad!],
    ["c_fc.bias", moe.experts.c_fc.bias!.grad!, mlp.c_fc.bias!.grad!],
    ["c_proj.weight", moe.experts.c_proj.weight.grad!, mlp.c_proj.weight.grad!],
    ["c_proj.bias", moe.experts.c_proj.bias!.grad!, mlp.c_proj.bias!.grad!],
  ];
  for (const [name, g1, g2] of pairs) {
    assertValuesClose(name, g1.toTypedArray(), g2.toTypedArray(), { atol: 1e-5, rtol: 1e-5 });
  }
  assert.ok(moe.router.weight.grad!.toTypedArray().every((v) => Math.abs(v) < 1e-6));
  assert.deepEqual(moe.stats!.tokensPerExpert, [10]);
  moe.dispose();
  mlp.dispose();
});

for (const c of cases) {
  Deno.test(`MoE equals PyTorch: ${c.name}`, () => {
    const moe = fixtureMoE(c);
    const x = toTensor(c.x, { requiresGrad: true });
    // Routing: which experts, which slots (exact), the gate weights.
    const r = moe.route(x);
    assert.equal(r.capacity, c.capacity);
    assert.deepEqual([...r.experts], c.experts.data, "chosen experts");
    assert.deepEqual([...r.slots], c.slots.data, "capacity slots (-1 = dropped)");
    assertValuesClose("gates", r.gates, c.gates.data as number[], TOL);
    // The forward: output, stats, router losses; then every gradient.
    const y = moe.forward(x);
    assertTensorClose("y", y, c.y, TOL);
    const s = moe.stats!;
    assert.equal(s.tokens, c.x.shape[0] * c.x.shape[1]);
    assert.equal(s.capacity, c.capacity);
    assert.deepEqual(s.routed, c.routed);
    assert.deepEqual(s.tokensPerExpert, c.tokensPerExpert);
    assert.equal(s.dropped, c.dropped);
    assert.equal(s.droppedTokens, c.droppedTokens);
    assertValuesClose("aux, z", [s.auxLoss, s.zLoss], [c.auxLoss, c.zLoss], {
      atol: 0,
      rtol: 1e-5,
    });
    const router = moe.takeRouterLoss()!;
    assertValuesClose("router loss", [router.item()], [c.routerLoss], TOL);
    assert.equal(moe.takeRouterLoss(), null, "the router loss is handed over once");
    const objective = y.mul(toTensor(c.upstream)).sum().add(router);
    assertValuesClose("objective", [objective.item()], [c.objective], TOL);
    objective.backward();
    assertTensorClose("d x", x.grad, c.grads.x, TOL);
    const params = new Map(moe.namedParameters());
    for (const [name, g] of Object.entries(c.grads)) {
      if (name !== "x") assertTensorClose(`d ${name}`, params.get(name)!.grad, g, TOL);
    }
    moe.dispose();
  });
}

Deno.test("MoE gradients match finite differences (top-2, drops, both router losses)", () => {
  manualSeed(11);
  const config = {
    experts: 3,
    topK: 2,
    hidden: 5,
    capacityFactor: 0.6,
    auxLossWeight: 0.5,
    zLossWeight: 0.1,
  };
  const moe = new MoE(4, { ...config, std: 0.7 });
  const x = randn([6, 4], { requiresGrad: true });
  // Routing is discrete: finite differences are valid only if no perturbation flips a choice.
  const logits = noGrad(() => linear(x, moe.router.weight)).toTypedArray();
  let margin = Infinity;
  for (let n = 0; n < 6; n++) {
    const row = [...logits.slice(n * 3, n * 3 + 3)].sort((a, b) => b - a);
    margin = Math.min(margin, row[0] - row[1], row[1] - row[2]);
  }
  assert.ok(margin > 0.15, `seed gives a routing margin of ${margin}; pick another`);
  assert.ok(moe.route(x).slots.includes(-1), "the case must drop some choices");
  const own = moe.parameters();
  const inputs = [x, ...own.map((p) => p.detach())];
  for (const t of inputs) t.requiresGrad = true;
  const ok = gradcheck(
    (xi, wr, fcw, fcb, pw, pb) => {
      moe.router.weight = wr;
      moe.experts.c_fc.weight = fcw;
      moe.experts.c_fc.bias = fcb;
      moe.experts.c_proj.weight = pw;
      moe.experts.c_proj.bias = pb;
      const y = moe.forward(xi).flatten(); // (N * C)
      const r = moe.takeRouterLoss()!.reshape([1]); // the weighted aux + z loss
      return cat([y, r]);
    },
    inputs,
    { eps: 1e-2, atol: 2e-3, rtol: 2e-2 },
  );
  assert.ok(ok);
  for (const t of [...own, ...inputs]) t.dispose();
});

Deno.test("capacity overflow drops exactly the later tokens (hand-built router)", () => {
  // C = 2, E = 2, k = 1. The router copies the input: logits = x, so the token picks expert 0
  // when x[0] > x[1]. Five tokens want expert 0, one wants expert 1; capacity factor 1 gives
  // ceil(6 / 2) = 3 slots, so tokens 0, 1, 3 fit expert 0 and tokens 4, 5 are dropped.
  const moe = new MoE(2, {
    experts: 2,
    topK: 1,
    hidden: 4,
    capacityFactor: 1,
    auxLossWeight: 0,
    zLossWeight: 0,
  });
  setParam(moe.router.weight, tensor([[1, 0], [0, 1]]));
  const x = tensor([[2, 0], [1, -1], [0, 3], [3, 1], [1, 0], [4, 2]], { requiresGrad: true });
  const y = moe.forward(x);
  const s = moe.stats!;
  assert.equal(s.capacity, 3);
  assert.deepEqual(s.routed, [5, 1]);
  assert.deepEqual(s.tokensPerExpert, [3, 1]);
  assert.equal(s.dropped, 2);
  assert.equal(s.droppedTokens, 2);
  assert.deepEqual([...moe.route(x).slots], [0, 1, 3, 2, -1, -1]);
  // Kept tokens get gate * expert(x) (the expert run as a plain MLP); dropped ones get 0.
  const out = y.toArray() as number[][];
  const p = (a: number, b: number) => Math.exp(a) / (Math.exp(a) + Math.exp(b));
  const rows = [[2, 0], [1, -1], [0, 3], [3, 1]];
  const expert = [0, 0, 1, 0];
  const fc = moe.experts.c_fc, proj = moe.experts.c_proj;
  rows.forEach(([a, b], i) => {
    const e = expert[i];
    const ref = noGrad(() => {
      const pick = (t: Tensor) => t.narrow(0, e, 1).squeeze(0);
      const h = linear(tensor([[a, b]]), pick(fc.weight), pick(fc.bias!)).gelu();
      return linear(h, pick(proj.weight), pick(proj.bias!)).mul(e === 0 ? p(a, b) : p(b, a));
    });
    assertValuesClose(`token ${i}`, out[i], (ref.toArray() as number[][])[0], TOL);
  });
  assert.ok([...out[4], ...out[5]].every((v) => v === 0), "dropped tokens' outputs are 0");
  // A dropped token gets no gradient through the layer (the router losses are off).
  y.sum().backward();
  const gx = x.grad!.toArray() as number[][];
  assert.ok([...gx[4], ...gx[5]].every((v) => v === 0), "dropped tokens' gradients are 0");
  assert.ok(gx[0].some((v) => v !== 0));
  moe.dispose();
});

Deno.test("planRouting gives first choices priority over second choices (GShard)", () => {
  // 3 tokens, 3 experts, k = 2, capacity factor 1: ceil(2 * 3 * 1 / 3) = 2 slots per expert. First choices: 0, 0, 1; second choices: 1, 2, 0.
  // Expert 0 is filled by the first choices of tokens 0 and 1, so token 2's second choice
  // (expert 0) is dropped; expert 1 takes token 2 (a first choice) before token 0 (a second).
  const logits = Float32Array.from([3, 2, 0, 3, 0, 2, 2, 3, 0]);
  const plan = planRouting(logits, 3, 3, 2, 1);
  assert.deepEqual([...plan.expertOf], [0, 1, 0, 2, 1, 0]);
  assert.deepEqual([...plan.slotOf], [0, 3, 1, 4, 2, -1]);
  assert.deepEqual([...plan.tokenOfSlot], [0, 1, 2, 0, 1, -1]);
  assert.deepEqual(plan.routed, [3, 2, 1]);
  assert.deepEqual(plan.processed, [2, 2, 1]);
  assert.equal(plan.dropped, 1);
  assert.equal(plan.droppedTokens, 0);
  // Equal logits: the lower expert index wins.
  assert.deepEqual([...planRouting(Float32Array.from([1, 1, 1]), 1, 3, 2, 1).expertOf], [0, 1]);
});

const moeConfig = (moe: GPT2Config["moe"]): GPT2Config =>
  gpt2Config("small-test", { nLayer: 3, moe });

Deno.test("GPT2 with MoE blocks: layer choice, names, total and active parameter counts", () => {
  assert.deepEqual(moeLayerIndices(moeConfig({ experts: 4 })), [0, 1, 2]);
  assert.deepEqual(moeLayerIndices(moeConfig({ experts: 4, layers: "every-other" })), [1]);
  assert.deepEqual(moeLayerIndices(moeConfig({ experts: 4, layers: [2, 0] })), [0, 2]);
  assert.deepEqual(moeLayerIndices(gpt2Config("small-test")), []);
  manualSeed(0);
  const config = moeConfig({ experts: 4, topK: 2, hidden: 24, layers: [1] });
  const model = new GPT2(config);
  const names = model.namedParameters().map(([n]) => n);
  assert.ok(names.includes("h.0.mlp.c_fc.weight"));
  for (const n of ["router.weight", "experts.c_fc.weight", "experts.c_proj.bias"]) {
    assert.ok(names.includes(`h.1.mlp.${n}`), n);
  }
  assert.ok(!names.includes("h.1.mlp.c_fc.weight"));
  assert.equal(model.numParameters(), countParameters(config));
  // By hand: one MoE block (C = 16, H = 24, E = 4, k = 2, biases) replaces one dense MLP.
  const c = 16, h = 24;
  const dense = countParameters(gpt2Config("small-test", { nLayer: 3 }));
  const mlp = 8 * c * c + 5 * c, expert = 2 * c * h + h + c, router = 4 * c;
  assert.equal(countParameters(config), dense - mlp + router + 4 * expert);
  assert.equal(countActiveParameters(config), dense - mlp + router + 2 * expert);
  assert.equal(countActiveParameters(gpt2Config("gpt2")), countParameters(gpt2Config("gpt2")));
  model.dispose();
});

Deno.test("GPT2.loss adds the weighted router losses in training mode only", () => {
  manualSeed(5);
  // No drops in either mode, so the cross-entropy is the same and the difference is the router's.
  const model = new GPT2(
    moeConfig({
      experts: 4,
      topK: 2,
      capacityFactor: Infinity,
      auxLossWeight: 0.5,
      zLossWeight: 0.2,
    }),
  );
  const idx = tensor([[1, 2, 3, 4], [5, 6, 7, 8]], { dtype: "i32" });
  const targets = tensor([[2, 3, 4, 5], [6, 7, 8, 9]], { dtype: "i32" });
  const evalLoss = noGrad(() => model.eval().loss(idx, targets).item());
  const trainLoss = tidy(() => model.train().loss(idx, targets).item());
  const stats = model.moeStats();
  assert.equal(stats.length, 3);
  const router = stats.reduce((a, s) => a + 0.5 * s.auxLoss + 0.2 * s.zLoss, 0);
  assert.ok(router > 0.5);
  assert.ok(Math.abs(trainLoss - (evalLoss + router)) < 1e-4, `${trainLoss} vs ${evalLoss}`);
  model.dispose();
});

Deno.test("GPT2 with MoE generates the same tokens with and without the KV cache", () => {
  manualSeed(6);
  const model = new GPT2(moeConfig({ experts: 4, topK: 2, layers: "every-other" })).eval();
  const a = generate(model, [1, 2, 3], { maxNewTokens: 8, temperature: 0, useCache: true });
  const b = generate(model, [1, 2, 3], { maxNewTokens: 8, temperature: 0, useCache: false });
  assert.deepEqual(a, b);
  assert.equal(model.moeStats()[0].dropped, 0, "eval mode drops nothing");
  model.dispose();
});

Deno.test("a checkpoint of a GPT2 with MoE restores the same logits", async () => {
  manualSeed(7);
  const config = moeConfig({ experts: 3, topK: 1, layers: [0, 2] });
  const model = new GPT2(config).eval();
  const idx = tensor([[3, 1, 4, 1, 5]], { dtype: "i32" });
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await saveCheckpoint(path, { model, step: 1, rng: getRngState(), config });
  manualSeed(8);
  const restored = new GPT2(config).eval();
  const { config: saved } = await loadCheckpoint<GPT2Config>(path, restored);
  assert.deepEqual(saved, config);
  const [la, lb] = noGrad(() => [model.forward(idx), restored.forward(idx)]);
  assertValuesClose("logits", la.toTypedArray(), lb.toTypedArray(), { atol: 0, rtol: 0 });
  await Deno.remove(path);
  model.dispose();
  restored.dispose();
});

Deno.test("a tiny GPT2 with MoE trains: loss falls, memory stays flat, metrics log the experts", async () => {
  const text = Deno.readTextFileSync(
    new URL("../examples/data/the-verdict.txt", import.meta.url),
  ).slice(0, 4000);
  const chars = [...new Set(text)].sort();
  const ids = Array.from(text, (ch) => chars.indexOf(ch));
  manualSeed(0);
  const model = new GPT2(
    gpt2Config("small-test", {
      vocabSize: chars.length,
      contextLength: 32,
      nEmbd: 32,
      nLayer: 2,
      moe: { experts: 4, topK: 2, capacityFactor: 1.25, layers: "every-other" },
    }),
  );
  const dir = await Deno.makeTempDir();
  const metricsPath = join(dir, "metrics.jsonl");
  const result = await pretrain({
    model,
    train: slidingWindows(ids, { maxLength: 32, stride: 16 }),
    batchSize: 4,
    gradAccum: 2,
    steps: 40,
    maxLr: 1e-2,
    warmup: 5,
    metricsPath,
    progress: false,
    log: () => {},
  });
  const first = result.trainLosses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = result.trainLosses.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(last < first - 0.5, `loss ${first} -> ${last}`);
  assert.equal(result.liveBytes[1], result.liveBytes[0], "live bytes grew during training");
  const records = (await readMetrics(metricsPath)).filter((r) => r.kind === "train");
  assert.equal(records.length, 40);
  for (const r of records) {
    const moe = (r as unknown as { moe: { layer: number; tokens: number; routed: number[] }[] })
      .moe;
    assert.equal(moe.length, 1);
    assert.equal(moe[0].layer, 1);
    assert.equal(moe[0].tokens, 2 * 4 * 32, "both micro-batches are counted");
    assert.equal(moe[0].routed.reduce((a, b) => a + b), 2 * 2 * 4 * 32);
  }
  await Deno.remove(dir, { recursive: true });
  model.dispose();
});

Deno.test("bad MoE configs fail with errors that name the field", () => {
  const bad: [GPT2Config["moe"], RegExp][] = [
    [{ experts: 0 }, /moe\.experts must be a positive integer, got 0/],
    [{ experts: 4, topK: 5 }, /moe\.topK must be an integer in \[1, experts = 4\], got 5/],
    [{ experts: 4, capacityFactor: 0 }, /moe\.capacityFactor must be a number > 0/],
    [{ experts: 4, auxLossWeight: -1 }, /moe\.auxLossWeight must be a finite number >= 0/],
    [{ experts: 4, hidden: 2.5 }, /moe\.hidden must be a positive integer/],
    [{ experts: 4, layers: [3] }, /moe\.layers entries must be block indices in \[0, 3\), got 3/],
    [{ experts: 4, layers: [1, 1] }, /moe\.layers repeats a block/],
    [{ experts: 4, layers: [] }, /moe\.layers must be "all", "every-other" or a non-empty/],
  ];
  for (const [moe, message] of bad) {
    assert.throws(() => validateConfig(moeConfig(moe)), message, JSON.stringify(moe));
  }
  assert.throws(
    () => gpt2Config("small-test", { nLayer: 1, moe: { experts: 2, layers: "every-other" } }),
    /"every-other" selects no block of a 1-layer model/,
  );
  assert.throws(
    () => validateConfig(moeConfig({ experts: 4, normalizeGates: 1 as unknown as boolean })),
    TypeError,
  );
  assert.throws(() => new MoE(8, { experts: 2, topK: 0 }), /MoE: options\.topK must be/);
  const moe = new MoE(8, { experts: 2 });
  assert.throws(
    () => moe.forward(randn([2, 4])),
    /MoE\.forward: x must be a non-empty f32 \(\.\.\., 8\)/,
  );
  assert.throws(() => new ExpertLinear(0, 2, 2), /ExpertLinear: experts must be a positive/);
  assert.throws(
    () => batchedLinear(randn([2, 3, 4]), randn([3, 5, 4])),
    /batchedLinear: x \[2,3,4\] \(G, M, K\) does not fit weight \[3,5,4\]/,
  );
  moe.dispose();
});
