// The pretraining loop: it learns, resumes bit-identically, keeps memory flat, writes metrics and a
// plot, and rejects bad options. A character-level vocabulary keeps the model tiny and the test fast.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  GPT2,
  gpt2Config,
  lossCurveSvg,
  manualSeed,
  MetricsLog,
  type MLP,
  niceTicks,
  pretrain,
  type PretrainOptions,
  readMetrics,
  ShardLoader,
  ShardWriter,
  slidingWindows,
  type TextCodec,
  trainValSplit,
} from "../mod.ts";

const text = Deno.readTextFileSync(new URL("../examples/data/the-verdict.txt", import.meta.url));
const chars = [...new Set(text)].sort();
const codec: TextCodec = {
  encode: (s) => Array.from(s, (c) => Math.max(0, chars.indexOf(c))),
  decode: (ids) => ids.map((i) => chars[i]).join(""),
};
const { train, val } = trainValSplit(codec.encode(text));

function tinyModel(seed: number, dropout = 0): GPT2 {
  manualSeed(seed);
  return new GPT2(
    gpt2Config("small-test", {
      vocabSize: chars.length,
      contextLength: 32,
      nEmbd: 32,
      nHead: 4,
      nLayer: 2,
      dropout,
    }),
  );
}

const data = (T = 32) => ({
  train: slidingWindows(train, { maxLength: T, stride: T / 2 }),
  val: slidingWindows(val, { maxLength: T }),
});

Deno.test("pretrain on the-verdict.txt drives the training loss well below its start", async () => {
  const result = await pretrain({
    model: tinyModel(0),
    ...data(),
    batchSize: 8,
    steps: 600,
    maxLr: 1e-2,
    warmup: 20,
    evalEvery: 200,
    evalBatches: 4,
    progress: false,
    log: () => {},
  });
  const first = result.trainLosses[0], last10 = result.trainLosses.slice(-10);
  const end = last10.reduce((a, b) => a + b, 0) / last10.length;
  assert.ok(Math.abs(first - Math.log(chars.length)) < 0.3, `starts near ln(V): ${first}`);
  assert.ok(end < 0.7 * first, `train loss ${first.toFixed(3)} -> ${end.toFixed(3)}`);
  assert.equal(result.valLosses.length, 3);
  assert.ok(result.valLosses[2][1] < result.valLosses[0][1]);
  assert.equal(result.liveBytes[1], result.liveBytes[0], "live memory is flat across steps");
  assert.equal(result.tokens, 600 * 8 * 32);
});

Deno.test("a run resumed from a checkpoint continues with bit-identical losses", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const common = (out: string): Omit<PretrainOptions, "model"> => ({
      ...data(16),
      batchSize: 4,
      steps: 12,
      gradAccum: 2, // loss scaled by 1/2 per micro-batch
      maxLr: 5e-3,
      warmup: 3,
      evalEvery: 3,
      evalBatches: 2,
      sampleEvery: 4, // sampling must not disturb the generator that drives dropout
      sampleTokens: 8,
      tokenizer: codec,
      checkpointPath: join(dir, out, "model.safetensors"),
      checkpointEvery: 6,
      progress: false,
      log: () => {},
    });
    const straight = await pretrain({ model: tinyModel(1, 0.1), ...common("a") });

    // Crash right after step 7: the last checkpoint is step 6's.
    await assert.rejects(
      pretrain({
        model: tinyModel(1, 0.1),
        ...common("b"),
        onStep: (r) => {
          if (r.step === 7) throw new Error("simulated crash");
        },
      }),
      /simulated crash/,
    );
    // A fresh model (different init) and fresh datasets, as in a new process.
    const resumed = await pretrain({ model: tinyModel(99, 0.1), ...common("b"), resume: true });
    assert.equal(resumed.startStep, 6);
    assert.deepEqual(resumed.trainLosses, straight.trainLosses.slice(6));
    assert.deepEqual(resumed.valLosses, straight.valLosses.slice(2));
    assert.deepEqual(resumed.samples, straight.samples.slice(1));

    // The metrics file holds every step once: the crashed run's step 7 was dropped on resume.
    const steps = (await readMetrics(join(dir, "b", "metrics.jsonl")))
      .filter((r) => r.kind === "train").map((r) => r.step);
    assert.deepEqual(steps, Array.from({ length: 12 }, (_, i) => i + 1));
    const svg = await Deno.readTextFile(join(dir, "b", "loss.svg"));
    assert.match(svg, /^<svg[^>]*>[\s\S]*<polyline[\s\S]*val loss[\s\S]*<\/svg>\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gradient accumulation over two micro-batches equals one batch twice the size", async () => {
  const run = async (batchSize: number, gradAccum: number) => {
    const model = tinyModel(5);
    const r = await pretrain({
      model,
      ...data(),
      batchSize,
      gradAccum,
      steps: 2,
      progress: false,
      log: () => {},
    });
    const mlp = model.h[0].mlp as MLP; // a dense block
    return { losses: r.trainLosses, w: mlp.c_fc.weight.toTypedArray() };
  };
  const one = await run(8, 1), two = await run(4, 2);
  one.losses.forEach((l, i) => assert.ok(Math.abs(l - two.losses[i]) < 1e-5));
  let worst = 0;
  one.w.forEach((v, i) => worst = Math.max(worst, Math.abs(v - two.w[i])));
  assert.ok(worst < 1e-5, `weights differ by ${worst}`);
});

Deno.test("pretrain trains from llm.c token shards for a number of epochs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (split: string, ids: Int32Array) => {
      const w = new ShardWriter({ dir, name: "verdict", split });
      await w.write(ids);
      return await w.close();
    };
    const opts = { batchSize: 4, seqLen: 32 };
    const trainShards = await ShardLoader.open(await write("train", train), {
      ...opts,
      shuffle: true,
      seed: 3,
    });
    const valShards = await ShardLoader.open(await write("val", val), opts);
    const result = await pretrain({
      model: tinyModel(2),
      train: trainShards,
      val: valShards,
      epochs: 1,
      gradAccum: 2,
      maxLr: 1e-2,
      progress: false,
      log: () => {},
    });
    assert.equal(result.step, Math.ceil(trainShards.batchesPerEpoch / 2));
    assert.equal(result.tokens, result.step * 2 * 4 * 32);
    assert.ok(result.trainLosses.at(-1)! < result.trainLosses[0] - 0.5);
    assert.equal(result.valLosses.length, 1);
    assert.deepEqual(valShards.state(), { epoch: 0, batch: 0 }); // evaluation rewinds val
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain rejects bad options and empty data before training", async () => {
  const model = tinyModel(0);
  const base = { model, ...data(), batchSize: 4, steps: 1, progress: false, log: () => {} };
  await assert.rejects(pretrain({ ...base, steps: undefined }), /give steps or epochs/);
  await assert.rejects(pretrain({ ...base, steps: 0 }), /steps must be an integer >= 1, got 0/);
  await assert.rejects(pretrain({ ...base, gradAccum: 1.5 }), /gradAccum must be an integer/);
  await assert.rejects(pretrain({ ...base, maxLr: -1 }), /maxLr must be a finite number >= 0/);
  await assert.rejects(pretrain({ ...base, batchSize: undefined }), /batchSize must be an integer/);
  await assert.rejects(pretrain({ ...base, sampleEvery: 1 }), /sampleEvery needs a tokenizer/);
  await assert.rejects(pretrain({ ...base, resume: true }), /resume needs checkpointPath/);
  await assert.rejects(
    pretrain({ ...base, resume: true, checkpointPath: "/nonexistent/x.safetensors" }),
    /resume: no checkpoint at \/nonexistent\/x.safetensors/,
  );
  const empty = { length: 0, get: () => ({ input: new Int32Array(), target: new Int32Array() }) };
  await assert.rejects(pretrain({ ...base, train: empty }), /DataLoader: the dataset is empty/);
  await assert.rejects(
    pretrain({ ...base, model: {} as GPT2 }),
    /model must be a GPT2/,
  );
});

Deno.test("lossCurveSvg draws axes, round ticks, both curves and a legend", () => {
  const train = Array.from({ length: 50 }, (_, i) => [i + 1, 10 - i / 10] as [number, number]);
  const svg = lossCurveSvg({ train, val: [[25, 8.2], [50, 6.1]] }, { title: "a < b & c" });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
  assert.equal((svg.match(/<circle/g) ?? []).length, 3); // two val points + the legend marker
  assert.match(svg, />step<\/text>/);
  assert.match(svg, />loss<\/text>/);
  assert.match(svg, /a &#60; b &#38; c/);
  assert.deepEqual(niceTicks(0, 50), [0, 10, 20, 30, 40, 50]);
  assert.deepEqual(niceTicks(4.9, 10.1), [5, 6, 7, 8, 9, 10]);
  assert.match(lossCurveSvg({ train: [] }), /no data yet/);
  assert.doesNotMatch(lossCurveSvg({ train: [[1, NaN], [2, 3]] }), /NaN/);
});

Deno.test("metrics files survive a torn last line and keep records in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "m.jsonl");
    const log = MetricsLog.open(path);
    log.write({ kind: "val", step: 1, loss: 2 });
    log.close();
    await Deno.writeTextFile(path, '{"kind":"val","st', { append: true }); // killed mid-write
    assert.deepEqual(await readMetrics(path), [{ kind: "val", step: 1, loss: 2 }]);
    assert.deepEqual(await readMetrics(join(dir, "missing.jsonl")), []);
    await Deno.writeTextFile(path, 'oops\n{"kind":"val","step":1,"loss":2}\n');
    await assert.rejects(readMetrics(path), /line 1 is not JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
