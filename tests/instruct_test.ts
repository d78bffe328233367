// Instruction fine-tuning: the Alpaca prompt is the book's to the character, the collate pads,
// masks and truncates exactly as worked out by hand (and as the book prints), the split of the
// real data is 935/55/110, bad records are named by index, the loss ignores masked targets, and
// the trainer learns, writes responses and resumes bit-identically.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  collateInstructions,
  crossEntropy,
  finetuneInstructions,
  formatInstructionPrompt,
  formatInstructionResponse,
  GPT2,
  type GPT2Config,
  instructionLoss,
  type InstructionRecord,
  type InstructOptions,
  manualSeed,
  readMetrics,
  splitInstructionData,
  type TextCodec,
  tidy,
  tokenizeInstructions,
  Tokenizer,
  validateInstructionRecords,
} from "../mod.ts";

const records = validateInstructionRecords(
  JSON.parse(
    Deno.readTextFileSync(new URL("../examples/data/instruction-data.json", import.meta.url)),
  ),
);

Deno.test("the prompt is the book's Alpaca template, with the input section only when non-empty", () => {
  assert.equal(
    formatInstructionPrompt({ instruction: "Rewrite it.", input: "He go home.", output: "x" }),
    "Below is an instruction that describes a task. Write a response that appropriately " +
      "completes the request.\n\n### Instruction:\nRewrite it.\n\n### Input:\nHe go home.",
  );
  assert.equal(
    formatInstructionPrompt({ instruction: "Name a color.", input: "", output: "Red." }),
    "Below is an instruction that describes a task. Write a response that appropriately " +
      "completes the request.\n\n### Instruction:\nName a color.",
  );
  assert.equal(formatInstructionResponse("Red."), "\n\n### Response:\nRed.");
});

Deno.test("collateInstructions reproduces the book's printed batch", () => {
  // Chapter 7: inputs_1 = [0, 1, 2, 3, 4], inputs_2 = [5, 6], inputs_3 = [7, 8, 9].
  const ex = (...ids: number[]) => ({ ids: Int32Array.from(ids), promptLength: 0 });
  const b = collateInstructions([ex(0, 1, 2, 3, 4), ex(5, 6), ex(7, 8, 9)]);
  const P = 50256;
  assert.deepEqual(b.input.toArray(), [[0, 1, 2, 3, 4], [5, 6, P, P, P], [7, 8, 9, P, P]]);
  assert.deepEqual(b.target.toArray(), [
    [1, 2, 3, 4, P],
    [6, P, -100, -100, -100],
    [8, 9, P, -100, -100],
  ]);
  assert.equal(b.targetCount, 5 + 2 + 3);
  b.input.dispose();
  b.target.dispose();
});

Deno.test("collateInstructions masks the prompt, truncates, and takes its pad and ignore ids", () => {
  const items = [
    { ids: Int32Array.of(11, 12, 13, 14, 15), promptLength: 3 },
    { ids: Int32Array.of(21, 22), promptLength: 1 },
  ];
  const masked = collateInstructions(items, { maskPrompt: true, padToken: 0, ignoreIndex: -1 });
  assert.deepEqual(masked.input.toArray(), [[11, 12, 13, 14, 15], [21, 22, 0, 0, 0]]);
  // Targets 0 and 1 of row 0 are prompt tokens 12, 13 (promptLength - 1 = 2 masked); row 0's
  // first target 22 is a response token (promptLength 1 masks nothing).
  assert.deepEqual(masked.target.toArray(), [[-1, -1, 14, 15, 0], [22, 0, -1, -1, -1]]);
  assert.equal(masked.targetCount, 3 + 2);

  const cut = collateInstructions(items, { maxLength: 3, padToken: 0 });
  assert.deepEqual(cut.input.toArray(), [[11, 12, 13], [21, 22, 0]]);
  assert.deepEqual(cut.target.toArray(), [[12, 13, 14], [22, 0, -100]]);
  assert.equal(cut.targetCount, 5);

  // Prompt masking plus truncation can leave a row with no target at all.
  const none = collateInstructions([items[0]], { maxLength: 2, maskPrompt: true, padToken: 0 });
  assert.deepEqual(none.target.toArray(), [[-100, -100]]);
  assert.equal(none.targetCount, 0);

  // Padding is found by position: an end-of-text inside a text stays a target.
  const inner = collateInstructions([{ ids: Int32Array.of(1, 50256, 2), promptLength: 0 }]);
  assert.deepEqual(inner.target.toArray(), [[50256, 2, 50256]]);
  for (const b of [masked, cut, none, inner]) {
    b.input.dispose();
    b.target.dispose();
  }
  assert.throws(
    () => collateInstructions([{ ids: Int32Array.of(1), promptLength: 2 }]),
    /example 0: promptLength 2 is not in \[0, 1\]/,
  );
  assert.throws(
    () => collateInstructions(items, { maxLength: 0 }),
    /maxLength must be an integer >= 1/,
  );
});

Deno.test("the book's split of the 1,100 records is 935 train, 55 validation, 110 test, in file order", () => {
  const { train, val, test } = splitInstructionData(records);
  assert.deepEqual([train.length, val.length, test.length], [935, 55, 110]);
  assert.equal(train[0], records[0]);
  assert.equal(test[0], records[935]);
  assert.equal(val[0], records[1045]);
  assert.equal(val.at(-1), records[1099]);
});

Deno.test("validateInstructionRecords names the bad record and field", () => {
  const good = { instruction: "a", input: "", output: "b" };
  assert.throws(
    () => validateInstructionRecords([good, good, good, { instruction: "a", output: "b" }]),
    { name: "TypeError", message: 'validateInstructionRecords: record 3: "input" is missing' },
  );
  assert.throws(
    () => validateInstructionRecords([good, { ...good, instruction: 7 }]),
    /record 1: "instruction" must be a string, got number/,
  );
  assert.throws(
    () => validateInstructionRecords([good, { ...good, output: null }]),
    /record 1: "output" must be a string, got null/,
  );
  assert.throws(() => validateInstructionRecords([good, "text"]), /record 1 must be an object/);
  assert.throws(() => validateInstructionRecords({ records: [] }), /expected an array of records/);
  assert.throws(
    () =>
      tokenizeInstructions([good, { ...good, input: 1 } as unknown as InstructionRecord], codec),
    /record 1: "input" must be a string/,
  );
});

Deno.test("tokenizeInstructions with GPT-2's tokenizer: the prompt's ids are a prefix of the record's", async () => {
  const tok = await Tokenizer.gpt2();
  const [ex] = tokenizeInstructions([records[0]], tok);
  const prompt = formatInstructionPrompt(records[0]);
  const full = prompt + formatInstructionResponse(records[0].output);
  assert.deepEqual([...ex.ids], tok.encode(full));
  assert.equal(ex.promptLength, tok.encode(prompt).length);
  assert.deepEqual([...ex.ids.subarray(0, ex.promptLength)], tok.encode(prompt));
});

// A word-level codec over the records used below: small vocabulary, tiny model, fast test.
const few = records.slice(0, 24);
const pieces = (s: string) => s.match(/\s+|\w+|[^\w\s]/g) ?? [];
const vocab = [
  ...new Set(
    few.flatMap((r) => pieces(formatInstructionPrompt(r) + formatInstructionResponse(r.output))),
  ),
];
const PAD = 511;
const codec: TextCodec = {
  encode: (s) => pieces(s).map((p) => vocab.indexOf(p)),
  decode: (ids) => ids.map((i) => vocab[i] ?? "?").join(""),
};
const config: GPT2Config = {
  vocabSize: 512,
  contextLength: 128,
  nEmbd: 32,
  nLayer: 2,
  nHead: 4,
  dropout: 0.1, // resume must reproduce the dropout masks too
  bias: true,
};

function model(seed: number): GPT2 {
  manualSeed(seed);
  return new GPT2(config);
}

Deno.test("instructionLoss is the mean over unmasked targets, and 0 with zero gradients when none is left", () => {
  const m = model(1).eval();
  const ex = tokenizeInstructions(few.slice(0, 3), codec);
  tidy(() => {
    const batch = collateInstructions(ex, { padToken: PAD, maskPrompt: true });
    const ours = instructionLoss(m, batch).item();
    // Per-position losses, averaged here over the targets that are not -100.
    const perTarget = crossEntropy(m.forward(batch.input), batch.target, { reduction: "none" })
      .toTypedArray();
    const targets = batch.target.toTypedArray();
    let sum = 0, n = 0;
    targets.forEach((t, i) => {
      if (t !== -100) [sum, n] = [sum + perTarget[i], n + 1];
    });
    assert.equal(n, batch.targetCount);
    const reference = sum / n;
    assert.ok(Math.abs(ours - reference) < 1e-5 * reference, `${ours} vs ${reference}`);

    const empty = collateInstructions([ex[0]], { padToken: PAD, maskPrompt: true, maxLength: 4 });
    const zero = instructionLoss(m, empty);
    assert.equal(zero.item(), 0);
    zero.backward();
    assert.ok(m.parameters().every((p) => p.grad!.toTypedArray().every((g) => g === 0)));
    m.zeroGrad();
  });
  m.dispose();
});

Deno.test("finetuneInstructions learns, writes responses, and resumes bit-identically", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const train = tokenizeInstructions(few.slice(0, 20), codec);
    const val = tokenizeInstructions(few.slice(20, 24), codec);
    const test = few.slice(20, 22);
    const common = (out: string): Omit<InstructOptions, "model"> => ({
      train,
      val,
      test,
      tokenizer: codec,
      padToken: PAD,
      maskPrompt: true,
      batchSize: 4,
      steps: 10,
      gradAccum: 2,
      maxLr: 3e-3,
      warmup: 2,
      minLr: 3e-4,
      clip: 1,
      evalEvery: 3,
      evalBatches: 1,
      maxNewTokens: 6,
      checkpointPath: join(dir, out, "model.safetensors"),
      checkpointEvery: 4,
      progress: false,
      log: () => {},
    });
    const m1 = model(2);
    const straight = await finetuneInstructions({ model: m1, ...common("a") });
    assert.ok(straight.trainLosses[9] < straight.trainLosses[0] - 0.5, `${straight.trainLosses}`);
    assert.equal(straight.liveBytes[1], straight.liveBytes[0]);
    assert.deepEqual(straight.evals.map((r) => r.step), [3, 6, 9, 10]);
    const written = JSON.parse(await Deno.readTextFile(join(dir, "a", "responses.json")));
    assert.deepEqual(written, straight.responses);
    assert.equal(written.length, 2);
    assert.deepEqual(Object.keys(written[0]), ["instruction", "input", "output", "model_response"]);
    assert.equal(written[1].instruction, few[21].instruction);
    assert.ok(codec.encode(written[0].model_response).length <= 6);

    // Crash after step 6: the last checkpoint is step 4's.
    const m2 = model(2);
    await assert.rejects(
      finetuneInstructions({
        model: m2,
        ...common("b"),
        onStep: (r) => {
          if (r.step === 6) throw new Error("simulated crash");
        },
      }),
      /simulated crash/,
    );
    manualSeed(12345); // the generator moved on, as in a new process
    const m3 = model(99);
    const resumed = await finetuneInstructions({ model: m3, ...common("b"), resume: true });
    assert.equal(resumed.startStep, 4);
    assert.deepEqual(resumed.trainLosses, straight.trainLosses.slice(4));
    assert.deepEqual(resumed.evals, straight.evals.slice(1));
    assert.deepEqual(resumed.responses, straight.responses);
    const w1 = m1.stateDict(), w3 = m3.stateDict();
    for (const name of Object.keys(w1)) {
      assert.deepEqual(w3[name].toTypedArray(), w1[name].toTypedArray(), name);
    }
    const steps = (await readMetrics(join(dir, "b", "metrics.jsonl")))
      .filter((r) => r.kind === "train").map((r) => r.step);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const m of [m1, m2, m3]) m.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finetuneInstructions rejects bad options before training", async () => {
  const m = model(3);
  const train = tokenizeInstructions(few.slice(0, 4), codec);
  await assert.rejects(
    finetuneInstructions({ model: m, train, steps: 1, maxLength: 200, progress: false }),
    /maxLength 200 exceeds the context length 128/,
  );
  await assert.rejects(
    finetuneInstructions({ model: m, train, steps: 1, test: few.slice(0, 1), progress: false }),
    /test needs a tokenizer/,
  );
  await assert.rejects(
    finetuneInstructions({ model: m, train: [], steps: 1, progress: false }),
    /train must be a non-empty array/,
  );
  m.dispose();
});
