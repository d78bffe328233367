// Hugging Face GPT-2 weights: import from the hand-written fixture (tests/fixtures/
// make_gpt2_fixture.py: the Hub's names and Conv1D (in, out) layout, causal-mask buffers
// included), export back to that layout, and every way a bad file is refused with the model
// unchanged.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  applyLoRA,
  configFromSafetensors,
  GPT2,
  gpt2Config,
  gpt2ConfigFromHf,
  hfConfigFromGpt2,
  loadGpt2Safetensors,
  manualSeed,
  noGrad,
  openSafetensors,
  SafetensorsError,
  saveGpt2Safetensors,
  type Tensor,
  tensor,
  writeSafetensors,
} from "../mod.ts";
import { assertTensorClose, type FixtureTensor, readFixture } from "./_fixtures.ts";

interface Gpt2Fixture {
  config: { vocabSize: number; nLayer: number; nHead: number; nEmbd: number };
  conv1d: string[];
  weights: Record<string, FixtureTensor>;
  idx: FixtureTensor;
  logits: FixtureTensor;
}

const FIXTURE = readFixture<Gpt2Fixture>("gpt2_tiny.json");
const FIXTURE_FILE = new URL("./fixtures/gpt2_tiny.safetensors", import.meta.url);
const CONV1D = new Set(FIXTURE.conv1d);

/** A fixture weight as f32 values in HF's layout. */
function hfValues(name: string): Float32Array {
  return Float32Array.from(FIXTURE.weights[name].data as number[]);
}

/** A fixture weight as a tensor in HF's layout. */
function hfTensor(name: string): Tensor {
  return tensor(hfValues(name), { shape: FIXTURE.weights[name].shape });
}

/** The same weight in our layout: Conv1D (in, out) transposed to (out, in). */
function ourValues(name: string): Float32Array {
  const v = hfValues(name);
  if (!CONV1D.has(name)) return v;
  const [rows, cols] = FIXTURE.weights[name].shape;
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return out;
}

function freshModel(seed = 1): GPT2 {
  manualSeed(seed);
  return new GPT2(gpt2Config("small-test"));
}

/** Every tensor's values, to check a refused load changed nothing. */
function snapshot(model: GPT2): Map<string, Float32Array | Int32Array> {
  return new Map(model.namedTensors().map(([n, t]) => [n, t.toTypedArray()]));
}

/** Writes the fixture's weights (HF layout) under `rename(name)`, plus `extra` entries. */
async function writeVariant(
  path: string,
  rename: (name: string) => string | null,
  extra: [string, Tensor][] = [],
): Promise<void> {
  const entries: [string, Tensor][] = [];
  for (const name of Object.keys(FIXTURE.weights)) {
    const to = rename(name);
    if (to !== null) entries.push([to, hfTensor(name)]);
  }
  entries.push(...extra);
  await writeSafetensors(path, entries, { format: "pt" });
  for (const [, t] of entries) t.dispose();
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_w_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadGpt2Safetensors imports the Hub layout exactly, Conv1D weights transposed", async () => {
  const model = freshModel();
  const report = await loadGpt2Safetensors(model, FIXTURE_FILE);
  assert.deepEqual(report.ignored, ["h.0.attn.bias", "h.1.attn.bias"]);
  assert.equal(report.loaded.length, Object.keys(FIXTURE.weights).length);
  for (const [name, t] of model.namedTensors()) {
    assert.deepEqual(t.toTypedArray(), ourValues(name), name);
  }
  model.dispose();
});

Deno.test("the imported model computes the reference logits", async () => {
  const model = freshModel();
  await loadGpt2Safetensors(model, FIXTURE_FILE);
  model.eval();
  const idx = tensor(Int32Array.from(FIXTURE.idx.data as number[]), { shape: FIXTURE.idx.shape });
  const logits = noGrad(() => model.forward(idx));
  assertTensorClose("logits", logits, FIXTURE.logits, { atol: 1e-4, rtol: 1e-4 });
  for (const t of [idx, logits]) t.dispose();
  model.dispose();
});

Deno.test("configFromSafetensors reads the config from the shapes", async () => {
  assert.deepEqual(await configFromSafetensors(FIXTURE_FILE, { nHead: 4, dropout: 0 }), {
    ...gpt2Config("small-test"),
  });
  await assert.rejects(configFromSafetensors(FIXTURE_FILE), /not a multiple of GPT-2's head size/);
  await withTempDir(async (dir) => {
    const path = join(dir, "gpt2ish.safetensors");
    const wte = tensor(new Float32Array(10 * 128), { shape: [10, 128] });
    const wpe = tensor(new Float32Array(4 * 128), { shape: [4, 128] });
    const ln = tensor(new Float32Array(128));
    const entries = (blocks: number[]): [string, Tensor][] => [
      ["transformer.wte.weight", wte],
      ["transformer.wpe.weight", wpe],
      ...blocks.map((i): [string, Tensor] => [`transformer.h.${i}.ln_1.weight`, ln]),
    ];
    await writeSafetensors(path, entries([0, 1]));
    const c = await configFromSafetensors(path);
    assert.deepEqual(
      [c.vocabSize, c.contextLength, c.nEmbd, c.nHead, c.nLayer, c.bias],
      [10, 4, 128, 2, 2, false],
    );
    await writeSafetensors(path, entries([0, 2]));
    await assert.rejects(configFromSafetensors(path), /block h\.1 is missing/);
    for (const t of [wte, wpe, ln]) t.dispose();
  });
});

Deno.test("a transformer. prefix, a tied lm_head.weight and masked_bias buffers are accepted", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "prefixed.safetensors");
    await writeVariant(path, (n) => `transformer.${n}`, [
      ["lm_head.weight", hfTensor("wte.weight")],
      ["transformer.h.0.attn.masked_bias", tensor(-1e4)],
    ]);
    const model = freshModel();
    const report = await loadGpt2Safetensors(model, path);
    assert.deepEqual(report.ignored.sort(), ["lm_head.weight", "transformer.h.0.attn.masked_bias"]);
    for (const [name, t] of model.namedTensors()) {
      assert.deepEqual(t.toTypedArray(), ourValues(name), name);
    }
    model.dispose();
  });
});

Deno.test("an untied lm_head.weight is refused and the model is unchanged", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "untied.safetensors");
    const head = hfValues("wte.weight").map((v) => v * 2);
    await writeVariant(path, (n) => n, [
      ["lm_head.weight", tensor(head, { shape: FIXTURE.weights["wte.weight"].shape })],
    ]);
    const model = freshModel();
    const before = snapshot(model);
    await assert.rejects(
      loadGpt2Safetensors(model, path),
      /"lm_head.weight" differs from wte.weight/,
    );
    assert.deepEqual(snapshot(model), before);
    model.dispose();
  });
});

Deno.test("missing, unexpected and mis-shaped tensors are all listed in one error, model unchanged", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.safetensors");
    const ours = tensor(ourValues("h.0.mlp.c_fc.weight"), { shape: [64, 16] }); // (out, in): wrong
    await writeVariant(
      path,
      (n) => n === "h.1.ln_2.bias" || n === "h.0.mlp.c_fc.weight" ? null : n,
      [["h.0.mlp.c_fc.weight", ours], ["h.2.ln_1.weight", tensor(new Float32Array(16))]],
    );
    const model = freshModel();
    const before = snapshot(model);
    await assert.rejects(loadGpt2Safetensors(model, path), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /3 problem\(s\)/);
      assert.match(e.message, /missing "h\.1\.ln_2\.bias"/);
      assert.match(e.message, /unexpected "h\.2\.ln_1\.weight" \[16\]/);
      assert.match(
        e.message,
        /"h\.0\.mlp\.c_fc\.weight" has shape \[64, 16\], expected \[16, 64\] \(Conv1D \(in, out\)/,
      );
      return true;
    });
    assert.deepEqual(snapshot(model), before);
    // A model of another size: every block tensor is mis-shaped.
    manualSeed(0);
    const wider = new GPT2({ ...gpt2Config("small-test"), nEmbd: 32 });
    await assert.rejects(
      loadGpt2Safetensors(wider, FIXTURE_FILE),
      /"wte.weight" has shape \[64, 16\], expected \[64, 32\]/,
    );
    wider.dispose();
    model.dispose();
  });
});

Deno.test("a truncated weights file fails before any tensor is touched", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "cut.safetensors");
    const bytes = await Deno.readFile(FIXTURE_FILE);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 100));
    const model = freshModel();
    const before = snapshot(model);
    await assert.rejects(loadGpt2Safetensors(model, path), SafetensorsError);
    assert.deepEqual(snapshot(model), before);
    model.dispose();
  });
});

Deno.test("saveGpt2Safetensors writes the Hub layout: same names, values and Conv1D shapes", async () => {
  await withTempDir(async (dir) => {
    const model = freshModel();
    await loadGpt2Safetensors(model, FIXTURE_FILE);
    const path = join(dir, "export.safetensors");
    await saveGpt2Safetensors(model, path);
    using file = await openSafetensors(path);
    assert.deepEqual(file.metadata, { format: "pt" });
    assert.deepEqual(file.names.sort(), Object.keys(FIXTURE.weights).sort());
    for (const name of Object.keys(FIXTURE.weights)) {
      assert.deepEqual(file.info(name)!.shape, FIXTURE.weights[name].shape, name);
      assert.deepEqual(await file.read(name), hfValues(name), name);
    }
    // And back: a fresh model loads it bit for bit.
    const copy = freshModel(2);
    await loadGpt2Safetensors(copy, path);
    assert.deepEqual(snapshot(copy), snapshot(model));
    copy.dispose();
    model.dispose();
  });
});

Deno.test("Hugging Face config.json converts both ways", () => {
  const c = gpt2Config("gpt2-medium");
  const json = hfConfigFromGpt2(c);
  assert.equal(json.n_head, 16);
  assert.equal(json.activation_function, "gelu_new");
  assert.deepEqual(gpt2ConfigFromHf(json), c);
  assert.throws(() => gpt2ConfigFromHf({ n_embd: 768 }), /needs a number "vocab_size"/);
});

Deno.test("saveGpt2Safetensors refuses models a GPT-2 file cannot hold (LoRA adapters, MoE)", async () => {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    manualSeed(0);
    const lora = new GPT2(gpt2Config("small-test"));
    applyLoRA(lora, { targets: ["attn.c_attn"], rank: 2 });
    await assert.rejects(
      () => saveGpt2Safetensors(lora, path),
      /cannot hold: h\.0\.attn\.c_attn\.lora_A.*mergeLoRA/,
    );
    const moe = new GPT2(gpt2Config("small-test", { moe: { experts: 2, layers: [0] } }));
    await assert.rejects(() => saveGpt2Safetensors(moe, path), /moe \(GPT-2 blocks/);
    assert.equal((await Deno.stat(path)).size, 0, "nothing was written");
    lora.dispose();
    moe.dispose();
  } finally {
    await Deno.remove(path);
  }
});
