// nn layers: shapes, parameter names, init, modes, causality and input checks.
import assert from "node:assert/strict";
import {
  Block,
  CausalSelfAttention,
  Dropout,
  Embedding,
  GELU,
  gelu,
  LayerNorm,
  layerNorm,
  Linear,
  linear,
  manualSeed,
  MLP,
  noGrad,
  ones,
  randn,
  tensor,
  zeros,
} from "../mod.ts";

const names = (m: { namedParameters(): [string, unknown][] }) =>
  m.namedParameters().map(([n]) => n);

Deno.test("Linear is x @ weight^T + bias with weight (out, in), PyTorch's default init", () => {
  manualSeed(0);
  const fc = new Linear(8, 3);
  assert.deepEqual(fc.weight.shape, [3, 8]);
  assert.deepEqual(fc.bias!.shape, [3]);
  assert.deepEqual(names(fc), ["weight", "bias"]);
  const bound = 1 / Math.sqrt(8);
  assert.ok(fc.weight.toTypedArray().every((v) => Math.abs(v) <= bound));
  const x = randn([2, 5, 8]);
  const y = fc.forward(x);
  assert.deepEqual(y.shape, [2, 5, 3]);
  assert.deepEqual(y.toArray(), linear(x, fc.weight, fc.bias).toArray());
  const noBias = new Linear(8, 3, { bias: false, std: 0.02 });
  assert.equal(noBias.bias, null);
  assert.deepEqual(names(noBias), ["weight"]);
  assert.equal(noBias.numParameters(), 24);
  assert.throws(() => fc.forward(randn([2, 7])), /linear: input features differ/);
  assert.throws(() => new Linear(0, 3), /Linear: inFeatures must be a positive integer, got 0/);
});

Deno.test("Linear with std draws N(0, std²) weights and a zero bias", () => {
  manualSeed(1);
  const fc = new Linear(200, 100, { std: 0.02 });
  const w = Array.from(fc.weight.toTypedArray());
  const sd = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(sd - 0.02) < 0.001, `std ${sd}`);
  assert.ok(fc.bias!.toTypedArray().every((v) => v === 0));
});

Deno.test("Embedding picks rows of weight (num, dim)", () => {
  const emb = new Embedding(10, 4);
  assert.deepEqual(emb.weight.shape, [10, 4]);
  const ids = tensor([[1, 9], [0, 1]], { dtype: "i32" });
  const out = emb.forward(ids);
  assert.deepEqual(out.shape, [2, 2, 4]);
  const w = emb.weight.toArray() as number[][];
  assert.deepEqual((out.toArray() as number[][][])[1][1], w[1]);
  assert.throws(() => emb.forward(tensor([10], { dtype: "i32" })));
});

Deno.test("LayerNorm starts at weight 1, bias 0 and normalises the last dim", () => {
  const ln = new LayerNorm(6, { eps: 1e-5 });
  assert.deepEqual(names(ln), ["weight", "bias"]);
  assert.deepEqual(ln.weight.toArray(), [1, 1, 1, 1, 1, 1]);
  assert.deepEqual(ln.bias!.toArray(), [0, 0, 0, 0, 0, 0]);
  const x = randn([3, 6]);
  assert.deepEqual(ln.forward(x).toArray(), layerNorm(x, [6], ones([6]), zeros([6])).toArray());
  assert.equal(new LayerNorm(6, { bias: false }).bias, null);
  assert.throws(() => ln.forward(randn([3, 5])), /layerNorm: normalizedShape \[6\]/);
});

Deno.test("Dropout drops in train mode and is the identity in eval mode", () => {
  const drop = new Dropout(0.5);
  const x = ones([1000]);
  manualSeed(3);
  const y = drop.forward(x).toTypedArray();
  const dropped = y.filter((v) => v === 0).length;
  assert.ok(dropped > 400 && dropped < 600, `${dropped} dropped`);
  assert.ok(y.every((v) => v === 0 || v === 2));
  drop.eval();
  assert.equal(drop.forward(x), x);
  assert.equal(new Dropout(0).forward(x), x);
  assert.throws(() => new Dropout(1.5), /Dropout: p must be a probability in \[0, 1\], got 1.5/);
  assert.equal(drop.numParameters(), 0);
});

Deno.test("GELU is the tanh approximation", () => {
  const x = tensor([-2, -0.5, 0, 1, 3]);
  assert.deepEqual(new GELU().forward(x).toArray(), gelu(x).toArray());
  const ref = (v: number) =>
    0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  (new GELU().forward(x).toArray() as number[]).forEach((v, i) =>
    assert.ok(Math.abs(v - ref([-2, -0.5, 0, 1, 3][i])) < 1e-6)
  );
});

Deno.test("CausalSelfAttention has c_attn (C -> 3C) and c_proj (C -> C) and keeps the shape", () => {
  const attn = new CausalSelfAttention(16, 4, { dropout: 0.1 });
  assert.deepEqual(names(attn), ["c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"]);
  assert.deepEqual(attn.c_attn.weight.shape, [48, 16]);
  assert.deepEqual(attn.c_proj.weight.shape, [16, 16]);
  assert.deepEqual(attn.forward(randn([2, 5, 16])).shape, [2, 5, 16]);
  assert.throws(() => new CausalSelfAttention(16, 5), /nHead 5 does not divide nEmbd 16/);
  assert.throws(() => attn.forward(randn([5, 16])), /input must be \(B, T, 16\), got \[5,16\]/);
});

Deno.test("attention is causal: outputs at earlier positions ignore later tokens", () => {
  const attn = new CausalSelfAttention(8, 2);
  const x = randn([1, 6, 8]);
  const changed = x.clone();
  noGrad(() => changed.narrow(1, 4, 2).assign(randn([1, 2, 8])));
  const a = attn.forward(x).narrow(1, 0, 4).toTypedArray();
  const b = attn.forward(changed).narrow(1, 0, 4).toTypedArray();
  assert.deepEqual(b, a);
  const later = attn.forward(changed).narrow(1, 4, 1).toTypedArray();
  assert.notDeepEqual(later, attn.forward(x).narrow(1, 4, 1).toTypedArray());
});

Deno.test("MLP expands to 4C with GELU and projects back", () => {
  const mlp = new MLP(8);
  assert.deepEqual(names(mlp), ["c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"]);
  assert.deepEqual(mlp.c_fc.weight.shape, [32, 8]);
  assert.deepEqual(mlp.c_proj.weight.shape, [8, 32]);
  const x = randn([2, 3, 8]);
  const y = mlp.forward(x);
  assert.deepEqual(y.shape, [2, 3, 8]);
  const ref = linear(
    gelu(linear(x, mlp.c_fc.weight, mlp.c_fc.bias)),
    mlp.c_proj.weight,
    mlp.c_proj.bias,
  );
  assert.deepEqual(y.toArray(), ref.toArray());
});

Deno.test("Block names its parts like Hugging Face GPT-2 and trains end to end", () => {
  const block = new Block(8, 2, { std: 0.02, projStd: 0.01 });
  assert.deepEqual(names(block), [
    "ln_1.weight",
    "ln_1.bias",
    "attn.c_attn.weight",
    "attn.c_attn.bias",
    "attn.c_proj.weight",
    "attn.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
  ]);
  const x = randn([2, 4, 8], { requiresGrad: true });
  const y = block.forward(x);
  assert.deepEqual(y.shape, [2, 4, 8]);
  y.sum().backward();
  for (const [name, p] of block.namedParameters()) assert.ok(p.grad, `${name} has a gradient`);
  assert.deepEqual(x.grad!.shape, [2, 4, 8]);
  assert.equal(
    new Block(8, 2, { bias: false }).numParameters(),
    4 * 8 + 8 * 24 + 8 * 8 + 8 * 32 * 2,
  );
});

Deno.test("train() and eval() reach the dropouts inside a Block", () => {
  const block = new Block(8, 2, { dropout: 0.5 });
  block.eval();
  assert.equal(block.attn.attn_dropout.training, false);
  assert.equal(block.mlp.dropout.training, false);
  const x = randn([1, 3, 8]);
  assert.deepEqual(block.forward(x).toArray(), block.forward(x).toArray());
  block.train();
  assert.equal(block.attn.resid_dropout.training, true);
});

Deno.test("CausalSelfAttention with a cache attends over the cached positions too", () => {
  const attn = new CausalSelfAttention(8, 2);
  const x = randn([1, 5, 8]);
  const full = noGrad(() => attn.forward(x)).toTypedArray();
  const keys = zeros([1, 2, 6, 4]), values = zeros([1, 2, 6, 4]);
  const first = noGrad(() => attn.forward(x.narrow(1, 0, 3), { keys, values, length: 0 }));
  const rest = noGrad(() => attn.forward(x.narrow(1, 3, 2), { keys, values, length: 3 }));
  const both = [...first.toTypedArray(), ...rest.toTypedArray()];
  both.forEach((v, i) => assert.ok(Math.abs(v - full[i]) < 1e-5, `element ${i}`));
  assert.throws(
    () => noGrad(() => attn.forward(x.narrow(1, 0, 2), { keys, values, length: 5 })),
    /2 new positions after 5 cached exceed the cache capacity 6/,
  );
  assert.throws(
    () => noGrad(() => attn.forward(x, { keys, values: zeros([1, 2, 6, 3]), length: 0 })),
    /cache buffers must be \(1, 2, capacity, 4\), got \[1,2,6,3\]/,
  );
  assert.throws(() => attn.forward(x, { keys, values, length: 0 }), /inference-only/);
});
