// DPO: the loss and its gradient against PyTorch, ln 2 at the start, a margin that grows with
// training, the preference data's validation and collate, and resuming.
import assert from "node:assert/strict";
import {
  applyLoRA,
  collatePreferences,
  dpoBatchLoss,
  dpoLoss,
  GPT2,
  gpt2Config,
  loraLayers,
  manualSeed,
  noGrad,
  NonFiniteError,
  type PreferenceExample,
  randn,
  readMetrics,
  referenceCopy,
  sequenceLogProbs,
  type Tensor,
  tensor,
  tokenizePreferences,
  trainDPO,
  validatePreferenceRecords,
} from "../mod.ts";
import { assertTensorClose, type FixtureTensor } from "./_fixtures.ts";

interface DPOCase {
  name: string;
  beta: number;
  batch: number;
  policyLogits: FixtureTensor;
  referenceLogits: FixtureTensor;
  target: FixtureTensor;
  policyLogps: FixtureTensor;
  referenceLogps: FixtureTensor;
  loss: number;
  grad: FixtureTensor;
  chosenRewards: FixtureTensor;
  rejectedRewards: FixtureTensor;
  margin: number;
  accuracy: number;
}

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/dpo.json", import.meta.url)),
) as { cases: DPOCase[] };

const fromFixture = (f: FixtureTensor, requiresGrad = false): Tensor =>
  tensor(
    f.dtype === "i32" ? Int32Array.from(f.data as number[]) : Float32Array.from(f.data as number[]),
    {
      shape: f.shape,
      dtype: f.dtype ?? "f32",
      requiresGrad,
    },
  );

const flat = (t: Tensor) => Array.from(t.toTypedArray());

for (const c of fixture.cases) {
  Deno.test(`dpoLoss and its gradient match PyTorch: ${c.name}`, () => {
    const logits = fromFixture(c.policyLogits, true); // (2B, T, V)
    const refLogits = fromFixture(c.referenceLogits);
    const target = fromFixture(c.target); // (2B, T)
    const logps = sequenceLogProbs(logits, target); // (2B)
    const refLogps = noGrad(() => sequenceLogProbs(refLogits, target));
    assertTensorClose("logps", logps, c.policyLogps, { atol: 1e-4, rtol: 1e-5 });
    assertTensorClose("refLogps", refLogps, c.referenceLogps, { atol: 1e-4, rtol: 1e-5 });
    const [pc, pr] = logps.split(c.batch, 0);
    const [rc, rr] = refLogps.split(c.batch, 0);
    const r = dpoLoss(pc, pr, rc, rr, c.beta);
    assert.ok(
      Math.abs(r.loss.item() - c.loss) < 1e-5 + 1e-5 * c.loss,
      `${r.loss.item()} vs ${c.loss}`,
    );
    assertTensorClose("r.chosenRewards", r.chosenRewards, c.chosenRewards, {
      atol: 1e-4,
      rtol: 1e-4,
    });
    assertTensorClose("r.rejectedRewards", r.rejectedRewards, c.rejectedRewards, {
      atol: 1e-4,
      rtol: 1e-4,
    });
    r.loss.backward();
    assertTensorClose("logits.grad", logits.grad!, c.grad, { atol: 1e-6, rtol: 1e-4 });
    const chosen = flat(r.chosenRewards), rejected = flat(r.rejectedRewards);
    const margin = chosen.reduce((s, v, i) => s + v - rejected[i], 0) / chosen.length;
    assert.ok(Math.abs(margin - c.margin) < 1e-4);
    const wins = chosen.filter((v, i) => v > rejected[i]).length;
    assert.equal(wins, Math.round(c.accuracy * chosen.length));
  });
}

Deno.test("dpoLoss checks its inputs", () => {
  const v = tensor([1, 2]);
  assert.throws(
    () => dpoLoss(v, v, v, tensor([1, 2, 3])),
    /dpoLoss: the four log-probabilities must be \(B\) vectors of one length, got \[2\], \[2\], \[2\], \[3\]/,
  );
  assert.throws(() => dpoLoss(v, v, v, v, 0), /dpoLoss: beta must be a finite number > 0, got 0/);
});

Deno.test("validatePreferenceRecords names the malformed record and field", () => {
  const good = { instruction: "Fix.", input: "teh", output: "the", chosen: "the", rejected: "teh" };
  assert.equal(validatePreferenceRecords([good]).length, 1);
  assert.throws(
    () => validatePreferenceRecords([good, good, { ...good, rejected: undefined }]),
    /validatePreferenceRecords: record 2: "rejected" is missing/,
  );
  assert.throws(
    () => validatePreferenceRecords([good, { ...good, chosen: 5 }]),
    /validatePreferenceRecords: record 1: "chosen" must be a string, got number/,
  );
  assert.throws(() => validatePreferenceRecords([null]), /record 0 must be an object, got null/);
  assert.throws(() => validatePreferenceRecords({}), /expected an array of records, got object/);
  const noOutput = { instruction: "Hi", input: "", chosen: "Hello", rejected: "Go away" };
  assert.equal(validatePreferenceRecords([noOutput]).length, 1); // output is optional
});

Deno.test("the preference data file validates and tokenises in the instruction format", async () => {
  const records = validatePreferenceRecords(JSON.parse(
    await Deno.readTextFile(
      new URL("../examples/data/instruction-data-with-preference.json", import.meta.url),
    ),
  ));
  assert.equal(records.length, 1100);
  const chars = { encode: (s: string) => [...s].map((ch) => ch.codePointAt(0)!) };
  const [ex] = tokenizePreferences(records.slice(0, 1), chars);
  const prompt = String.fromCodePoint(...ex.prompt);
  assert.ok(prompt.startsWith("Below is an instruction that describes a task."));
  assert.ok(prompt.endsWith(`### Input:\n${records[0].input}\n\n### Response:\n`));
  assert.equal(String.fromCodePoint(...ex.chosen), records[0].chosen);
  assert.equal(String.fromCodePoint(...ex.rejected), records[0].rejected);
});

Deno.test("collatePreferences: chosen rows first, targets only on response tokens, truncation", () => {
  const ex = (p: number[], c: number[], r: number[]): PreferenceExample => ({
    prompt: Int32Array.from(p),
    chosen: Int32Array.from(c),
    rejected: Int32Array.from(r),
  });
  const b = collatePreferences([ex([1, 2, 3], [4, 5], [6]), ex([7], [8, 9, 10], [11, 12])], {
    padToken: 0,
  });
  // sequences: 1 2 3 4 5 | 7 8 9 10 | 1 2 3 6 | 7 11 12; longest 5 -> T = 4
  assert.deepEqual(b.input.toArray(), [[1, 2, 3, 4], [7, 8, 9, 10], [1, 2, 3, 6], [7, 11, 12, 0]]);
  assert.deepEqual(b.target.toArray(), [
    [-100, -100, 4, 5],
    [8, 9, 10, -100],
    [-100, -100, 6, -100],
    [11, 12, -100, -100],
  ]);
  assert.equal(b.pairs, 2);
  assert.deepEqual(b.responseTokens, [2, 3, 1, 2]);
  const cut = collatePreferences([ex([1, 2, 3], [4, 5], [6])], { padToken: 0, maxLength: 3 });
  assert.deepEqual(cut.input.toArray(), [[1, 2, 3], [1, 2, 3]]);
  assert.deepEqual(cut.target.toArray(), [[-100, -100, 4], [-100, -100, 6]]);
  assert.throws(
    () =>
      collatePreferences([
        ex([1], [2], [3]),
        { prompt: Int32Array.of(1), chosen: [2] } as unknown as PreferenceExample,
      ]),
    /collatePreferences: example 1: "chosen" must be an Int32Array of ids/,
  );
});

/** Pairs over the 64-token test vocabulary: the chosen response repeats the prompt's last token. */
function toyPairs(n: number, seed: number): PreferenceExample[] {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) % 60;
  return Array.from({ length: n }, () => {
    const prompt = Int32Array.from({ length: 3 + (rand() % 3) }, rand);
    const last = prompt[prompt.length - 1];
    return {
      prompt,
      chosen: Int32Array.of(last, last, 62),
      rejected: Int32Array.of(rand(), rand(), 63),
    };
  });
}

Deno.test("at step 0 (policy == reference) the loss is ln 2 and the margin 0", () => {
  manualSeed(0);
  const model = new GPT2(gpt2Config("small-test"));
  const reference = referenceCopy(model);
  assert.equal(reference.numParameters(), 0); // frozen
  assert.equal(reference.training, false);
  const batch = collatePreferences(toyPairs(4, 1), { padToken: 0 });
  const r = dpoBatchLoss(model, reference, batch, 0.1);
  assert.ok(Math.abs(r.loss.item() - Math.LN2) < 1e-6, `loss ${r.loss.item()}`);
  assert.deepEqual(flat(r.chosenRewards), [0, 0, 0, 0]);
  assert.deepEqual(flat(r.rejectedRewards), [0, 0, 0, 0]);
  r.loss.backward(); // σ(0) = ½: the first step has a gradient
  assert.ok(flat(model.wte.weight.grad!).some((v) => v !== 0));
});

Deno.test("referenceCopy folds trained LoRA layers into a plain GPT-2 with the same function", () => {
  manualSeed(1);
  const model = new GPT2(gpt2Config("small-test"));
  applyLoRA(model, { targets: ["attn.*", "mlp.*"], rank: 2, alpha: 4 });
  noGrad(() => {
    for (const [, l] of loraLayers(model)) l.lora_B.assign(randn(l.lora_B.shape).mul(0.1));
  });
  const idx = tensor([[1, 2, 3, 4], [5, 6, 7, 8]], { dtype: "i32" });
  const reference = referenceCopy(model);
  assert.equal(loraLayers(reference).length, 0);
  const a = flat(model.forward(idx)), b = flat(reference.forward(idx));
  assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-5));
  const tied = new GPT2(gpt2Config("small-test"));
  const [head] = applyLoRA(tied, { targets: ["lm_head"], rank: 2 }).layers;
  referenceCopy(tied); // a head still at B = 0 folds to nothing
  noGrad(() => head.lora_B.assign(randn(head.lora_B.shape)));
  assert.throws(
    () => referenceCopy(tied),
    /the LoRA layer "lm_head" on the tied head is trained already/,
  );
});

Deno.test("a few DPO steps on a tiny model raise the chosen-vs-rejected margin; metrics per step", async () => {
  manualSeed(2);
  const model = new GPT2(gpt2Config("small-test"));
  const dir = await Deno.makeTempDir();
  try {
    const result = await trainDPO({
      model,
      train: toyPairs(32, 3),
      val: toyPairs(16, 4),
      batchSize: 8,
      steps: 12,
      maxLr: 3e-3,
      beta: 0.5,
      evalEvery: 12,
      evalBatches: 2,
      padToken: 0,
      metricsPath: `${dir}/metrics.jsonl`,
      progress: false,
      log: () => {},
    });
    assert.ok(Math.abs(result.trainLosses[0] - Math.LN2) < 1e-6); // the first step starts at ln 2
    assert.equal(result.stepStats[0].margin, 0);
    assert.equal(result.liveBytes[1], result.liveBytes[0]); // memory flat from step 1 to step 12
    assert.ok(result.trainLosses[11] < 0.4, `losses ${result.trainLosses}`);
    assert.ok(
      result.stepStats[11].margin > 0.5,
      `margins ${result.stepStats.map((s) => s.margin)}`,
    );
    const [ev] = result.evals as unknown as { margin: number; accuracy: number }[];
    assert.ok(ev.margin > 0.5 && ev.accuracy > 0.9, JSON.stringify(ev)); // held-out pairs too
    const lines = await readMetrics(`${dir}/metrics.jsonl`);
    const train = lines.filter((r) => r.kind === "train") as unknown as Record<string, number>[];
    assert.equal(train.length, 12);
    for (const key of ["chosenReward", "rejectedReward", "margin", "accuracy"]) {
      assert.ok(train.every((r) => Number.isFinite(r[key])), key);
    }
    const m = train[11];
    assert.ok(Math.abs(m.margin - (m.chosenReward - m.rejectedReward)) < 1e-5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainDPO resumes from a checkpoint with the same losses and the original reference", async () => {
  const dir = await Deno.makeTempDir();
  const run = async (steps: number, resume: boolean) => {
    manualSeed(7); // the model is built the same way each time: the reference is this model
    const model = new GPT2(gpt2Config("small-test"));
    return await trainDPO({
      model,
      train: toyPairs(24, 5),
      batchSize: 4,
      steps,
      maxLr: 2e-3,
      checkpointPath: `${dir}/ck.safetensors`,
      checkpointEvery: 2,
      padToken: 0,
      resume,
      progress: false,
      log: () => {},
    });
  };
  try {
    const straight = await run(4, false);
    await run(2, false);
    const resumed = await run(4, true);
    assert.equal(resumed.startStep, 2);
    assert.deepEqual(resumed.trainLosses, straight.trainLosses.slice(2));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainDPO rejects malformed examples by index", async () => {
  manualSeed(0);
  const model = new GPT2(gpt2Config("small-test"));
  const pairs = toyPairs(3, 1);
  await assert.rejects(
    () =>
      trainDPO({
        model,
        train: [...pairs, { prompt: [1] } as unknown as PreferenceExample],
        steps: 1,
      }),
    /trainDPO: train\[3\] must be \{prompt, chosen, rejected\} Int32Arrays/,
  );
  await assert.rejects(
    () => trainDPO({ model, train: pairs, steps: 1, beta: -1 }),
    /beta must be a finite number > 0, got -1/,
  );
});

Deno.test("trainDPO stops at a non-finite step without saving (the fine-tuning loop's guard)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    manualSeed(7);
    const err = await trainDPO({
      model: new GPT2(gpt2Config("small-test")),
      train: toyPairs(24, 5),
      batchSize: 4,
      steps: 6,
      maxLr: 1e12,
      checkpointPath: `${dir}/ck.safetensors`,
      padToken: 0,
      progress: false,
      log: () => {},
    }).catch((e) => e);
    assert.ok(err instanceof NonFiniteError, String(err));
    assert.match(err.message, /^trainDPO: step \d: loss /);
    await assert.rejects(Deno.stat(`${dir}/ck.safetensors`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
