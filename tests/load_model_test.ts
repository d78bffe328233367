// One checkpoint metadata shape for every trainer ({trainer, model, settings}), and loadModel:
// any trainer's checkpoint or Hugging Face safetensors back to a GPT-2 with the same weights.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  finetuneClassifier,
  getRngState,
  GPT2,
  GPT2Classifier,
  gpt2Config,
  loadModel,
  manualSeed,
  openSafetensors,
  pretrain,
  readModelConfig,
  saveCheckpoint,
  saveGpt2Safetensors,
  slidingWindows,
} from "../mod.ts";

const config = () => gpt2Config("small-test", { vocabSize: 32, contextLength: 16, nLayer: 1 });
const ids = Array.from({ length: 512 }, (_, i) => (i * 5 + (i >> 3)) % 32);

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_load_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const weights = (m: GPT2) => m.namedTensors().map(([n, t]) => [n, [...t.toTypedArray()]]);

async function storedConfig(path: string): Promise<Record<string, unknown>> {
  using file = await openSafetensors(path);
  return JSON.parse(file.metadata.config);
}

Deno.test("a pretraining checkpoint stores {trainer, model} and loadModel rebuilds the model", async () => {
  await withDir(async (dir) => {
    manualSeed(0);
    const model = new GPT2(config());
    const path = join(dir, "model.safetensors");
    await pretrain({
      model,
      train: slidingWindows(ids, { maxLength: 16, stride: 8 }),
      batchSize: 2,
      steps: 3,
      checkpointPath: path,
      progress: false,
      log: () => {},
    });
    const stored = await storedConfig(path);
    assert.equal(stored.trainer, "pretrain");
    assert.deepEqual(stored.model, { ...model.config });
    assert.deepEqual(await readModelConfig(path), model.config);
    const loaded = await loadModel(path);
    assert.equal(loaded.format, "checkpoint");
    assert.equal(loaded.trainer, "pretrain");
    assert.equal(loaded.step, 3);
    assert.deepEqual(weights(loaded.model), weights(model));
  });
});

Deno.test("loadModel reads Hugging Face safetensors and older checkpoints (the config itself)", async () => {
  await withDir(async (dir) => {
    manualSeed(1);
    const model = new GPT2(config());
    const hf = join(dir, "hf.safetensors"), old = join(dir, "old.safetensors");
    await saveGpt2Safetensors(model, hf);
    const fromHub = await loadModel(hf, { nHead: model.config.nHead, dropout: 0 });
    assert.equal(fromHub.format, "huggingface");
    assert.equal(fromHub.step, null);
    assert.deepEqual(weights(fromHub.model), weights(model));
    await saveCheckpoint(old, { model, step: 2, rng: getRngState(), config: { ...model.config } });
    assert.deepEqual(weights((await loadModel(old)).model), weights(model));
  });
});

Deno.test("a classifier's checkpoint stores its trunk and settings; loadModel says it is no GPT-2 LM", async () => {
  await withDir(async (dir) => {
    manualSeed(2);
    const clf = new GPT2Classifier(new GPT2(config()), { numClasses: 2 });
    const path = join(dir, "clf.safetensors");
    await finetuneClassifier({
      model: clf,
      train: Array.from(
        { length: 8 },
        (_, i) => ({ ids: new Int32Array([1 + i, 2, 3]), label: i % 2 }),
      ),
      batchSize: 4,
      steps: 1,
      padToken: 0,
      checkpointPath: path,
      progress: false,
      log: () => {},
    });
    const stored = await storedConfig(path);
    assert.equal(stored.trainer, "finetuneClassifier");
    assert.deepEqual(stored.model, { ...clf.transformer.config });
    assert.deepEqual(stored.settings, { numClasses: 2, batchSize: 4, padTo: "longest" });
    // The trunk's config is there, but the tensors are a classifier's: a clear refusal.
    await assert.rejects(loadModel(path), /unexpected "model\.head\.weight"/);
    const bare = join(dir, "bare.safetensors");
    await saveCheckpoint(bare, {
      model: clf,
      step: 1,
      rng: getRngState(),
      config: { trainer: "x" },
    });
    await assert.rejects(loadModel(bare), /the checkpoint of x stores no GPT-2 configuration/);
  });
});
