// LoRA: wrapping by name, the zero-update start, merge/unmerge, gradients only into A and B,
// adapter files, and parameter counts checked against hand arithmetic.
import assert from "node:assert/strict";
import {
  applyLoRA,
  finetuneClassifier,
  finetuneInstructions,
  GPT2,
  GPT2Classifier,
  gpt2Config,
  gpt2LinearShapes,
  Linear,
  linearShapes,
  loadAdapter,
  loraLayers,
  LoRALinear,
  loraParameterCount,
  manualSeed,
  mergeLoRA,
  type Module,
  noGrad,
  pretrain,
  randn,
  saveAdapter,
  slidingWindows,
  type Tensor,
  tensor,
  unmergeLoRA,
  writeSafetensors,
} from "../mod.ts";

const ids = () => tensor([[1, 5, 9, 3, 7, 2], [4, 8, 6, 0, 11, 13]], { dtype: "i32" }); // (2, 6)
const targets = () => tensor([[5, 9, 3, 7, 2, 6], [8, 6, 0, 11, 13, -100]], { dtype: "i32" });

/** The sub-module at a dotted path (the block's MLP field is typed as MLP or MoE). */
function at(model: Module, path: string): Module | undefined {
  return new Map(model.namedModules()).get(path);
}

function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

/** Sets every B (zero at init) to small random values, so the update is not trivially zero. */
function randomizeB(model: GPT2): void {
  noGrad(() => {
    for (const [, layer] of loraLayers(model)) {
      const r = randn(layer.lora_B.shape), small = r.mul(0.05);
      layer.lora_B.assign(small);
      r.dispose();
      small.dispose();
    }
  });
}

const ALL = ["attn.c_attn", "attn.c_proj", "mlp.*", "lm_head"];

Deno.test("LoRALinear computes W·x + b + (alpha/r)·B·A·x (checked by hand on 2x3)", () => {
  const base = new Linear(3, 2);
  noGrad(() => {
    base.weight.assign(tensor([[1, 2, 3], [4, 5, 6]])); // (out 2, in 3)
    base.bias!.assign(tensor([0.5, -1]));
  });
  const lora = new LoRALinear(base, { rank: 1, alpha: 2 }); // scaling 2
  noGrad(() => {
    lora.lora_A.assign(tensor([[1, 0, -1]])); // (1, 3)
    lora.lora_B.assign(tensor([[2], [3]])); // (2, 1)
  });
  const x = tensor([[1, 1, 2]]); // (1, 3)
  // W·x + b = [1+2+6+0.5, 4+5+12-1] = [9.5, 20]; A·x = 1-2 = -1; 2·B·(-1) = [-4, -6]
  assert.deepEqual(flat(lora.forward(x)), [5.5, 14]);
  lora.merge(); // W + 2·B·A = [[5, 2, -1], [10, 5, 0]]
  assert.deepEqual(flat(lora.weight), [5, 2, -1, 10, 5, 0]);
  assert.deepEqual(flat(lora.forward(x)), [5.5, 14]);
  assert.throws(() => lora.merge(), /already merged/);
  lora.unmerge();
  assert.deepEqual(flat(lora.weight), [1, 2, 3, 4, 5, 6]);
});

Deno.test("LoRALinear freezes the base, starts B at zero and draws A uniform in ±1/√in", () => {
  manualSeed(3);
  const base = new Linear(64, 8);
  const lora = new LoRALinear(base, { rank: 4, alpha: 8, dropout: 0.1 });
  assert.equal(base.weight.requiresGrad, false);
  assert.equal(base.bias!.requiresGrad, false);
  assert.equal(lora.weight, base.weight); // reused, not copied
  assert.equal(lora.scaling, 2);
  assert.deepEqual(lora.namedParameters().map(([n]) => n), ["lora_A", "lora_B"]);
  assert.ok(flat(lora.lora_B).every((v) => v === 0));
  const a = flat(lora.lora_A), bound = 1 / 8;
  assert.ok(a.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...a.map(Math.abs)) > 0.9 * bound); // spread over the whole range
  assert.throws(
    () => new LoRALinear(base, { rank: 0 }),
    /LoRALinear: rank must be a positive integer, got 0/,
  );
  assert.throws(() => new LoRALinear(base, { rank: 2, dropout: 1 }), /dropout must be in \[0, 1\)/);
});

Deno.test("applyLoRA at init leaves a GPT-2's logits exactly as they were", () => {
  manualSeed(0);
  const model = new GPT2(gpt2Config("small-test"));
  const before = flat(model.forward(ids()));
  const report = applyLoRA(model, { targets: ALL, rank: 4, alpha: 8 });
  assert.deepEqual(report.names, [
    "h.0.attn.c_attn",
    "h.0.attn.c_proj",
    "h.0.mlp.c_fc",
    "h.0.mlp.c_proj",
    "h.1.attn.c_attn",
    "h.1.attn.c_proj",
    "h.1.mlp.c_fc",
    "h.1.mlp.c_proj",
    "lm_head",
  ]);
  assert.ok(at(model, "h.1.mlp.c_fc") instanceof LoRALinear);
  assert.ok(model.lm_head instanceof LoRALinear);
  assert.deepEqual(flat(model.forward(ids())), before);
});

Deno.test("applyLoRA: trainable count equals rank·(in+out) summed by hand; state names keep", () => {
  manualSeed(0);
  const model = new GPT2(gpt2Config("small-test")); // C = 16, V = 64, 2 layers
  const names = model.namedTensors().map(([n]) => n);
  const total = model.numParameters();
  const report = applyLoRA(model, { targets: ALL, rank: 4 });
  // per layer: c_attn 4·(16+48) = 256, attn.c_proj 4·(16+16) = 128, c_fc 4·(16+64) = 320,
  // mlp.c_proj 4·(64+16) = 320 -> 1024; two layers 2048; lm_head 4·(16+64) = 320 -> 2368
  assert.equal(report.trainableParameters, 2368);
  assert.equal(model.numParameters(), 2368);
  assert.equal(report.totalParameters, total + 2368);
  assert.equal(
    loraParameterCount(linearShapes(new GPT2(gpt2Config("small-test"))), { targets: ALL, rank: 4 }),
    2368,
  );
  assert.equal(
    loraParameterCount(gpt2LinearShapes(gpt2Config("small-test")), { targets: ALL, rank: 4 }),
    2368,
  );
  // the base tensors keep their names; the adapters are added after them
  const after = model.namedTensors().map(([n]) => n);
  assert.deepEqual(after.filter((n) => !n.includes("lora_")), names);
  assert.ok(after.includes("h.0.attn.c_attn.lora_A") && after.includes("lm_head.lora_B"));
});

Deno.test("a GPT-2 124M config with rank 16 on every linear layer: the count by hand", () => {
  const shapes = gpt2LinearShapes(gpt2Config("gpt2")); // C = 768, 12 layers, V = 50257
  // One block, rank 16, r·(in + out) per layer:
  //   attn.c_attn  768 -> 2304: 16·(768 + 2304) = 16·3072 = 49,152
  //   attn.c_proj  768 ->  768: 16·(768 + 768)  = 16·1536 = 24,576
  //   mlp.c_fc     768 -> 3072: 16·(768 + 3072) = 16·3840 = 61,440
  //   mlp.c_proj  3072 ->  768: 16·(3072 + 768) = 16·3840 = 61,440
  //   block total: 49,152 + 24,576 + 61,440 + 61,440 = 196,608
  // 12 blocks: 12·196,608 = 2,359,296
  // the (tied) head 768 -> 50257: 16·(768 + 50257) = 16·51,025 = 816,400
  const blocks = loraParameterCount(shapes, { targets: ["h.*.*.*"], rank: 16 });
  assert.equal(blocks, 2_359_296);
  assert.equal(loraParameterCount(shapes, { targets: ["*"], rank: 16 }), 2_359_296 + 816_400);
  // the same from a built model of that shape, with a small vocabulary and 2 layers instead of 12
  // (building all of 124M takes seconds): 2·196,608 + 16·(768 + 100) = 407,104
  manualSeed(0);
  const small = new GPT2({ ...gpt2Config("gpt2"), vocabSize: 100, nLayer: 2, contextLength: 8 });
  assert.equal(applyLoRA(small, { targets: ["*"], rank: 16 }).trainableParameters, 407_104);
});

Deno.test("applyLoRA: a pattern that matches nothing names it and lists the linear layers", () => {
  manualSeed(0);
  const model = new GPT2(gpt2Config("small-test"));
  assert.throws(
    () => applyLoRA(model, { targets: ["attn.c_attn", "mlp"], rank: 2 }),
    (e: Error) =>
      e instanceof RangeError &&
      /applyLoRA: target "mlp" matches no linear layer; the linear layers are: h\.0\.attn\.c_attn, h\.0\.attn\.c_proj, h\.0\.mlp\.c_fc/
        .test(e.message) &&
      e.message.endsWith("h.1.mlp.c_proj, lm_head"),
  );
  assert.ok(model.h[0].attn.c_attn instanceof Linear); // nothing was wrapped
  assert.ok(model.wte.weight.requiresGrad); // nor frozen
  assert.throws(
    () => applyLoRA(model, { targets: [], rank: 2 }),
    /targets must be a non-empty array/,
  );
  applyLoRA(model, { targets: ["c_attn"], rank: 2 });
  assert.throws(
    () => applyLoRA(model, { targets: ["c_attn"], rank: 2 }),
    /already wrapped: h\.0\.attn\.c_attn/,
  );
});

Deno.test("merged and unmerged LoRA give the same logits; the tied head refuses to merge", () => {
  manualSeed(1);
  const model = new GPT2(gpt2Config("small-test"));
  const w0 = flat(model.h[0].attn.c_attn.weight);
  applyLoRA(model, { targets: ["attn.*", "mlp.*"], rank: 4, alpha: 16 });
  randomizeB(model);
  const unmerged = flat(model.forward(ids()));
  assert.equal(mergeLoRA(model), 8);
  assert.ok(maxDiff(flat(model.h[0].attn.c_attn.weight), w0) > 1e-3); // the weight moved
  const merged = flat(model.forward(ids()));
  assert.ok(maxDiff(merged, unmerged) < 1e-5, `max diff ${maxDiff(merged, unmerged)}`);
  assert.equal(unmergeLoRA(model), 8);
  assert.ok(maxDiff(flat(model.h[0].attn.c_attn.weight), w0) < 1e-6);
  assert.ok(maxDiff(flat(model.forward(ids())), unmerged) < 1e-5);

  const tied = new GPT2(gpt2Config("small-test"));
  applyLoRA(tied, { targets: ["c_fc", "lm_head"], rank: 2 });
  assert.throws(
    () => mergeLoRA(tied),
    /mergeLoRA: "lm_head" \(tied to wte.weight\) cannot be merged/,
  );
  assert.ok(!(at(tied, "h.0.mlp.c_fc") as LoRALinear).merged); // checked before anything changed
});

Deno.test("only A and B receive gradients; base weights and embeddings get none", () => {
  manualSeed(2);
  const model = new GPT2(gpt2Config("small-test"));
  applyLoRA(model, { targets: ALL, rank: 2 });
  randomizeB(model); // so A's gradient (∝ Bᵀ) is not zero either
  model.loss(ids(), targets()).backward();
  for (const [name, t] of model.namedTensors()) {
    if (name.includes(".lora_")) {
      assert.ok(t.grad, `${name} has a gradient`);
      assert.ok(flat(t.grad).some((v) => v !== 0), `${name}'s gradient is not all zero`);
    } else assert.equal(t.grad, null, `${name} must get no gradient`);
  }
});

Deno.test("LoRA's gradient of B matches finite differences of the loss", () => {
  manualSeed(4);
  const model = new GPT2(gpt2Config("small-test"));
  const [layer] = applyLoRA(model, { targets: ["h.1.mlp.c_fc"], rank: 2, alpha: 4 }).layers;
  randomizeB(model);
  model.loss(ids(), targets()).backward();
  const g = flat(layer.lora_B.grad!);
  const b0 = flat(layer.lora_B);
  const lossAt = (i: number, h: number) =>
    noGrad(() => {
      const b = [...b0];
      b[i] += h;
      layer.lora_B.assign(tensor(Float32Array.from(b), { shape: layer.lora_B.shape }));
      return model.loss(ids(), targets()).item();
    });
  for (const i of [0, 7, 63, 127]) {
    const fd = (lossAt(i, 1e-2) - lossAt(i, -1e-2)) / 2e-2;
    assert.ok(Math.abs(fd - g[i]) < 2e-3 + 2e-2 * Math.abs(g[i]), `B[${i}]: fd ${fd} vs ${g[i]}`);
  }
});

Deno.test("adapters round-trip through a file and a mismatched config is refused", async () => {
  manualSeed(5);
  const config = gpt2Config("small-test");
  const model = new GPT2(config);
  const base = model.stateDict();
  applyLoRA(model, { targets: ["attn.c_attn", "mlp.c_fc", "lm_head"], rank: 4, alpha: 8 });
  randomizeB(model);
  const want = flat(model.forward(ids()));
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await saveAdapter(model, path);
    // a fresh model with the same base weights, wrapped from the file's own description
    const fresh = new GPT2(config);
    fresh.loadStateDict(Object.fromEntries(Object.entries(base)));
    const names = await loadAdapter(fresh, path);
    assert.equal(names.length, 5);
    assert.ok(fresh.lm_head instanceof LoRALinear && fresh.lm_head.rank === 4);
    assert.deepEqual(flat(fresh.forward(ids())), want);
    assert.equal(fresh.numParameters(), model.numParameters());

    // a model already wrapped with another rank: rejected, and left as it was
    const other = new GPT2(config);
    applyLoRA(other, { targets: ["attn.c_attn", "mlp.c_fc", "lm_head"], rank: 2, alpha: 8 });
    await assert.rejects(
      () => loadAdapter(other, path),
      /"h\.0\.attn\.c_attn" has rank 4, alpha 8 in the adapter, rank 2, alpha 8 in the model/,
    );
    assert.ok(flat((other.h[0].attn.c_attn as LoRALinear).lora_B).every((v) => v === 0));
    // wrapped on other layers
    const elsewhere = new GPT2(config);
    applyLoRA(elsewhere, { targets: ["attn.c_attn", "mlp.c_fc"], rank: 4, alpha: 8 });
    await assert.rejects(
      () => loadAdapter(elsewhere, path),
      /the model has no LoRA layer "lm_head"/,
    );
    // a model of another width
    const wider = new GPT2({ ...config, nEmbd: 32 });
    await assert.rejects(
      () => loadAdapter(wider, path),
      /"h\.0\.attn\.c_attn" is 16 -> 48 in the adapter, 32 -> 96 in the model/,
    );
    // not an adapter
    await writeSafetensors(path, { x: tensor([1]) });
    await assert.rejects(() => loadAdapter(new GPT2(config), path), /not a LoRA adapter/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("LoRA trains with the pretraining trainer: only A and B change", async () => {
  manualSeed(6);
  const model = new GPT2(gpt2Config("small-test"));
  applyLoRA(model, { targets: ["attn.c_attn", "mlp.*"], rank: 2, alpha: 4 });
  const frozen = model.namedTensors().filter(([n]) => !n.includes("lora_")).map(([n, t]) =>
    [n, flat(t)] as const
  );
  const bBefore = flat((at(model, "h.0.mlp.c_fc") as LoRALinear).lora_B);
  const data = Array.from({ length: 200 }, (_, i) => (i * 7) % 64);
  const result = await pretrain({
    model,
    train: slidingWindows(data, { maxLength: 8 }),
    batchSize: 4,
    steps: 5,
    maxLr: 1e-2,
    progress: false,
    log: () => {},
  });
  assert.equal(result.trainLosses.length, 5);
  for (const [n, before] of frozen) {
    assert.deepEqual(flat(model.stateDict()[n]), before, `${n} is frozen`);
  }
  assert.ok(maxDiff(flat((at(model, "h.0.mlp.c_fc") as LoRALinear).lora_B), bBefore) > 0);
});

Deno.test("LoRA with the classification trainer: the adapters and the new head train, the trunk not", async () => {
  manualSeed(8);
  const clf = new GPT2Classifier(new GPT2(gpt2Config("small-test")), { numClasses: 2 });
  const report = applyLoRA(clf, { targets: ["attn.c_attn", "mlp.c_fc"], rank: 2 });
  assert.deepEqual(report.names, [
    "transformer.h.0.attn.c_attn",
    "transformer.h.0.mlp.c_fc",
    "transformer.h.1.attn.c_attn",
    "transformer.h.1.mlp.c_fc",
  ]);
  clf.head.unfreeze(); // a fresh head must learn too
  // 4 layers: 2·(16+48) + 2·(16+64) = 288 each pair -> 2·288 = 576; head 16·2 + 2 = 34
  assert.equal(clf.numParameters(), 576 + 34);
  const trunk = clf.transformer.namedTensors().filter(([n]) => !n.includes("lora_"))
    .map(([n, t]) => [n, flat(t)] as const);
  const data = Array.from({ length: 16 }, (_, i) => ({
    ids: Int32Array.of(1 + (i % 5), 2 + (i % 3), i % 2 ? 40 : 20),
    label: i % 2,
  }));
  const result = await finetuneClassifier({
    model: clf,
    train: data,
    batchSize: 4,
    steps: 4,
    maxLr: 1e-2,
    padToken: 0,
    progress: false,
    log: () => {},
  });
  assert.equal(result.trainLosses.length, 4);
  for (const [n, before] of trunk) {
    assert.deepEqual(flat(clf.transformer.stateDict()[n]), before, `${n} is frozen`);
  }
  assert.ok(flat((clf.transformer.h[0].attn.c_attn as LoRALinear).lora_B).some((v) => v !== 0));
});

Deno.test("LoRA with the instruction trainer trains only the adapters", async () => {
  manualSeed(9);
  // the instruction collate pads with <|endoftext|> (50256): GPT-2's vocabulary, a narrow body
  const model = new GPT2({ ...gpt2Config("small-test"), vocabSize: 50257 });
  applyLoRA(model, { targets: ["attn.*", "lm_head"], rank: 2 });
  const before = flat(model.wte.weight);
  const examples = Array.from({ length: 8 }, (_, i) => ({
    ids: Int32Array.of(3, 4, 5 + i, 6, 7 + i, 8),
    promptLength: 3,
  }));
  const result = await finetuneInstructions({
    model,
    train: examples,
    batchSize: 4,
    steps: 3,
    maxLr: 1e-2,
    progress: false,
    log: () => {},
  });
  assert.ok(result.trainLosses.at(-1)! < result.trainLosses[0]);
  assert.deepEqual(flat(model.wte.weight), before); // the tied embedding stays frozen
  assert.ok(flat((model.lm_head as LoRALinear).lora_B).some((v) => v !== 0));
});

Deno.test("Module.setSubmodule replaces by dotted path and names a bad path", () => {
  manualSeed(10);
  const model = new GPT2(gpt2Config("small-test"));
  const fresh = new Linear(16, 48);
  const old = model.setSubmodule("h.1.attn.c_attn", fresh);
  assert.ok(old instanceof Linear && old !== fresh);
  assert.equal(at(model, "h.1.attn.c_attn"), fresh);
  assert.throws(
    () => model.setSubmodule("h.7.attn.c_attn", fresh),
    /setSubmodule: no sub-module at "h\.7\.attn\.c_attn"; the modules are: wte, wpe, drop, h\.0, h\.0\.ln_1/,
  );
  assert.throws(
    () => model.setSubmodule("h.0.attn.nope", fresh),
    /no sub-module at "h\.0\.attn\.nope"/,
  );
  assert.throws(() => model.setSubmodule("config", fresh), /"config" holds object, not a Module/);
  assert.throws(() => model.setSubmodule("h.length", fresh), /no sub-module at "h\.length"/);
});
