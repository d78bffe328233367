// Training runs that go wrong: a NaN/Inf loss stops the run (or its update is skipped) and never
// reaches a checkpoint; a resume with another schedule, or from a checkpoint without optimizer
// state, is refused before anything changes.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  getRngState,
  GPT2,
  gpt2Config,
  manualSeed,
  NonFiniteError,
  pretrain,
  type PretrainOptions,
  readMetrics,
  saveCheckpoint,
  slidingWindows,
} from "../mod.ts";

const VOCAB = 32;
const ids = Array.from({ length: 2048 }, (_, i) => (i * 7 + (i >> 2)) % VOCAB);

function tinyModel(seed = 0): GPT2 {
  manualSeed(seed);
  return new GPT2(
    gpt2Config("small-test", { vocabSize: VOCAB, contextLength: 16, nEmbd: 16, nLayer: 1 }),
  );
}

const base = (dir: string): Omit<PretrainOptions, "model"> => ({
  train: slidingWindows(ids, { maxLength: 16, stride: 8 }),
  batchSize: 4,
  steps: 8,
  maxLr: 1e-3,
  checkpointPath: join(dir, "model.safetensors"),
  checkpointEvery: 2,
  progress: false,
  log: () => {},
});

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_guard_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Makes the loss of the given 1-based steps NaN (the model's output is poisoned on them). */
function poisonSteps(model: GPT2, steps: number[]): void {
  const loss = model.loss.bind(model);
  let call = 0;
  model.loss = (idx, targets) => {
    const l = loss(idx, targets);
    return steps.includes(++call) ? l.mul(NaN) : l;
  };
}

Deno.test("a NaN loss stops pretraining at that step, and the last good checkpoint stays", async () => {
  await withDir(async (dir) => {
    const model = tinyModel();
    poisonSteps(model, [5]);
    const err = await pretrain({ model, ...base(dir) }).catch((e) => e);
    assert.ok(err instanceof NonFiniteError, String(err));
    assert.equal(err.step, 5);
    assert.ok(Number.isNaN(err.loss));
    assert.match(err.message, /^pretrain: step 5: loss NaN, gradient norm NaN: the run stops/);
    assert.match(err.message, /nonFinite: "skip"/);
    // The checkpoint is step 4's; the metrics stop at step 4; the weights are still finite.
    const records = await readMetrics(join(dir, "metrics.jsonl"));
    assert.deepEqual(records.filter((r) => r.kind === "train").map((r) => r.step), [1, 2, 3, 4]);
    const resumed = tinyModel(9);
    const result = await pretrain({ model: resumed, ...base(dir), resume: true });
    assert.equal(result.startStep, 4);
    assert.ok(result.trainLosses.every(Number.isFinite));
  });
});

Deno.test("with an enormous learning rate the run stops at the first non-finite step", async () => {
  await withDir(async (dir) => {
    const err = await pretrain({ model: tinyModel(), ...base(dir), maxLr: 1e9, clip: 0 })
      .catch((e) => e);
    assert.ok(err instanceof NonFiniteError, String(err));
    assert.equal(err.step, 2); // step 1's update blew the weights up; step 2's loss is NaN
    // Skipping cannot rescue such a run: ten bad steps in a row stop it too, without a save.
    const skipping = await pretrain({
      model: tinyModel(),
      ...base(dir),
      steps: 40,
      checkpointEvery: 0,
      maxLr: 1e9,
      clip: 0,
      nonFinite: "skip",
    }).catch((e) => e);
    assert.ok(skipping instanceof NonFiniteError, String(skipping));
    assert.equal(skipping.step, 11);
    assert.match(skipping.message, /10 steps in a row were not finite, so skipping does not help/);
    await assert.rejects(Deno.stat(join(dir, "model.safetensors")), Deno.errors.NotFound);
  });
});

Deno.test('nonFinite: "skip" drops the bad steps\' updates, counts them and trains on', async () => {
  await withDir(async (dir) => {
    const model = tinyModel();
    poisonSteps(model, [3, 6]);
    const seen: number[] = [];
    const result = await pretrain({
      model,
      ...base(dir),
      nonFinite: "skip",
      onStep: (r) => r.skipped && seen.push(r.step),
    });
    assert.deepEqual(seen, [3, 6]);
    assert.equal(result.skippedSteps, 2);
    assert.equal(result.step, 8);
    const train = (await readMetrics(join(dir, "metrics.jsonl"))).filter((r) => r.kind === "train");
    assert.deepEqual(train.map((r) => r.step), [1, 2, 4, 5, 7, 8]);
    assert.deepEqual(train.map((r) => r.skippedSteps ?? 0), [0, 0, 1, 1, 2, 2]);
    // The count survives a resume.
    const more = await pretrain({
      model: tinyModel(1),
      ...base(dir),
      steps: 10,
      resume: true,
      allowScheduleChange: true,
    });
    assert.equal(more.startStep, 8);
    assert.equal(more.skippedSteps, 2);
  });
});

Deno.test("a skipped step leaves the weights exactly as they were", async () => {
  const a = tinyModel(), b = tinyModel();
  poisonSteps(b, [1]);
  const opts = {
    train: slidingWindows(ids, { maxLength: 16, stride: 8 }),
    batchSize: 4,
    steps: 1,
    progress: false,
    log: () => {},
  };
  await pretrain({ model: b, ...opts, nonFinite: "skip" });
  for (const [[name, p], [, q]] of a.namedParameters().map((x, i) => [x, b.namedParameters()[i]])) {
    assert.deepEqual(q.toTypedArray(), p.toTypedArray(), name);
  }
});

Deno.test("resuming with another schedule is refused unless allowed; nothing changes", async () => {
  await withDir(async (dir) => {
    await pretrain({ model: tinyModel(), ...base(dir), steps: 4 });
    const model = tinyModel(5);
    const before = model.namedParameters().map(([, p]) => p.toTypedArray());
    await assert.rejects(
      pretrain({ model, ...base(dir), steps: 8, resume: true }),
      /pretrain: resume .*: the learning rate at step \d+ was .* in the checkpoint's run and is .* in this one \(4 steps then, 8 now\), which would change the learning-rate schedule mid-run.*allowScheduleChange: true/,
    );
    await assert.rejects(
      pretrain({ model, ...base(dir), steps: 4, maxLr: 2e-3, resume: true }),
      /the learning rate at step 1 was 1\.000e-3 .* is 2\.000e-3/,
    );
    assert.deepEqual(model.namedParameters().map(([, p]) => p.toTypedArray()), before);
    const result = await pretrain({
      model,
      ...base(dir),
      steps: 8,
      resume: true,
      allowScheduleChange: true,
    });
    assert.equal(result.startStep, 4);
    assert.equal(result.step, 8);
  });
});

Deno.test("resuming from a weights-only checkpoint is refused before the model changes", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    const m = tinyModel(1);
    await saveCheckpoint(path, { model: m, step: 2, rng: getRngState(), config: {} });
    const model = tinyModel(5);
    const before = model.namedParameters().map(([, p]) => p.toTypedArray());
    await assert.rejects(
      pretrain({ model, ...base(dir), resume: true }),
      /it holds no optimizer state/,
    );
    assert.deepEqual(model.namedParameters().map(([, p]) => p.toTypedArray()), before);
  });
});

Deno.test("resume removes the temporaries of a save that was killed", async () => {
  await withDir(async (dir) => {
    await pretrain({ model: tinyModel(), ...base(dir), steps: 2 });
    const stale = join(dir, "model.safetensors.deadbeef.tmp");
    await Deno.writeTextFile(stale, "half a checkpoint");
    await pretrain({ model: tinyModel(), ...base(dir), steps: 2, resume: true }).catch(() => {});
    await assert.rejects(Deno.stat(stale), Deno.errors.NotFound);
  });
});

Deno.test("nonFinite must be stop or skip", async () => {
  await assert.rejects(
    pretrain({ model: tinyModel(), ...base("/tmp"), nonFinite: "ignore" as never }),
    /nonFinite must be "stop" or "skip", got "ignore"/,
  );
});
