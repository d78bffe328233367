// What every optimizer shares: argument checks, state round trips (in memory and through a
// checkpoint), loadState's checks before writing, flat memory over steps, and pretrain with any
// optimizer.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Adam,
  AdamW,
  constantLr,
  GPT2,
  gpt2Config,
  keep,
  loadCheckpoint,
  manualSeed,
  memoryStats,
  Muon,
  muonWithAdamW,
  parameter,
  pretrain,
  type PretrainOptions,
  randn,
  saveCheckpoint,
  SGD,
  slidingWindows,
  type Tensor,
  tensor,
  tidy,
  type TrainOptimizer,
  warmupStableDecay,
  zeros,
} from "../mod.ts";
import { close } from "./_optim_helpers.ts";

// ---- argument checks ----

Deno.test("optimizers reject bad parameters and options, naming what is wrong", () => {
  const p = zeros([2], { requiresGrad: true });
  assert.throws(() => new AdamW([]), /AdamW: expected a non-empty array/);
  assert.throws(() => new AdamW([zeros([2])]), /params\[0\] must be an f32 leaf with requiresGrad/);
  assert.throws(() => new AdamW([p, p]), /params\[1\] appears more than once/);
  assert.throws(() => new AdamW([p], { lr: -1 }), /lr must be a finite number >= 0, got -1/);
  assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), /betas must be two numbers in \[0, 1\)/);
  assert.throws(
    () => new AdamW([{ params: [p], weightDecay: NaN }]),
    /weightDecay must be a finite number >= 0/,
  );
  assert.throws(
    () => new AdamW([{ params: [p] }, { params: [zeros([1], { requiresGrad: true })], eps: -1 }]),
    /eps must be a finite number >= 0 \(group 1\)/,
  );
  assert.throws(() => new SGD([p], { nesterov: true }), /nesterov needs momentum > 0/);
  assert.throws(() => new AdamW([p]).setLr(NaN), /setLr: lr must be a finite number/);
});

Deno.test("SGD and Adam reject bad options, naming them", () => {
  const p = parameter(zeros([2]));
  assert.throws(
    () => new SGD([p], { dampening: 1.5 }),
    /SGD: dampening must be in \[0, 1\], got 1.5/,
  );
  assert.throws(
    () => new SGD([p], { momentum: -0.9 }),
    /SGD: momentum must be a finite number >= 0, got -0.9/,
  );
  assert.throws(
    () => new SGD([p], { momentum: 0.9, dampening: 0.1, nesterov: true }),
    /nesterov needs momentum > 0 and dampening 0/,
  );
  assert.throws(
    () => new Adam([p], { betas: [1, 0.9] }),
    /Adam: betas must be two numbers in \[0, 1\)/,
  );
  assert.throws(
    () => new Adam([{ params: [p], eps: -1 }]),
    /Adam: eps must be a finite number >= 0, got -1/,
  );
  assert.throws(
    () => new Adam([p]).scaleLr(-1),
    /Adam.scaleLr: factor must be a finite number >= 0, got -1/,
  );
  p.grad = keep(zeros([3]));
  assert.throws(
    () => new SGD([p]).step(),
    /SGD.step: gradient \[3\] of parameter 0 differs from its shape \[2\]/,
  );
  assert.throws(() => new Adam([p]).step(), /Adam.step: gradient \[3\] of parameter 0 differs/);
});

// ---- state ----

Deno.test("optimizer state round-trips: a fresh optimizer continues exactly where one stopped", () => {
  manualSeed(3);
  const init = [randn([5, 3]), randn([3])];
  const grads = Array.from({ length: 6 }, () => [randn([5, 3]), randn([3])]);
  const run = (resumeAt: number | null): number[] => {
    const params = init.map((t) => keep(t.clone()));
    params.forEach((p) => p.requiresGrad = true);
    let opt = new AdamW(params, { lr: 0.01, weightDecay: 0.1 });
    grads.forEach((g, k) => {
      if (k === resumeAt) {
        const state = opt.state();
        opt.dispose();
        opt = new AdamW(params, { lr: 0.01, weightDecay: 0.1 });
        opt.loadState(state);
        for (const t of Object.values(state)) t.dispose();
      }
      params.forEach((p, i) => p.grad = keep(g[i].clone()));
      opt.step();
      opt.zeroGrad();
    });
    return [...params[0].toTypedArray(), ...params[1].toTypedArray()];
  };
  assert.deepEqual(run(3), run(null)); // bit-identical
});

Deno.test("loadState checks every entry before writing anything", () => {
  const p = zeros([2, 2], { requiresGrad: true });
  const opt = new AdamW([p]);
  p.grad = keep(tensor([[1, 2], [3, 4]]));
  opt.step();
  const good = opt.state();
  const fresh = new AdamW([p]);
  assert.throws(
    () => fresh.loadState({ ...good, "0.v": zeros([3]), "1.m": zeros([1]) }),
    /2 problem\(s\): "0.v" is f32 \[3\], expected f32 \[2,2\]; unexpected "1.m"/,
  );
  assert.throws(() => fresh.loadState({ "0.m": good["0.m"] }), /"step" must be an i32 tensor/);
  assert.throws(
    () => fresh.loadState({ step: tensor(new Int32Array([1, 1])) }),
    /"step" has 2 entries but the optimizer has 1 parameters/,
  );
  assert.deepEqual(Array.from(fresh.state().step.toTypedArray()), [0]); // untouched
  fresh.loadState(good);
  assert.deepEqual(Array.from(fresh.state().step.toTypedArray()), [1]);
});

// ---- checkpoints ----

const CONFIG = gpt2Config("small-test");
const FACTORIES: [string, (m: GPT2) => TrainOptimizer][] = [
  ["SGD", (m) => new SGD(m.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true })],
  ["Adam", (m) => new Adam(m.parameters(), { lr: 1e-2, weightDecay: 0.01 })],
  ["AdamW", (m) => AdamW.forModel(m, { lr: 1e-2, weightDecay: 0.1 })],
  ["Muon + AdamW", (m) => muonWithAdamW(m, { muon: { weightDecay: 0.01 }, adamw: { lr: 1e-2 } })],
];

for (const [name, makeOptimizer] of FACTORIES) {
  Deno.test(`${name} state round-trips through a checkpoint: resumed training is bit-identical`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "denograd_optim2_" });
    const path = join(dir, "ckpt.safetensors");
    const batch = (k: number) => ({
      idx: tensor([[k % 7, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, (k * 5) % 64]], { dtype: "i32" }),
      targets: tensor([[2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13]], { dtype: "i32" }),
    });
    const train = (model: GPT2, opt: TrainOptimizer, from: number, to: number) => {
      for (let k = from; k < to; k++) {
        tidy(() => {
          const { idx, targets } = batch(k);
          model.loss(idx, targets).backward();
          opt.scaleLr(1 - k / 10);
          opt.step();
          opt.zeroGrad();
        });
      }
    };
    const weights = (m: GPT2) => m.parameters().map((p) => Array.from(p.toTypedArray()));
    try {
      manualSeed(3);
      const straight = new GPT2(CONFIG);
      const o1 = makeOptimizer(straight);
      train(straight, o1, 0, 5);

      manualSeed(3);
      const first = new GPT2(CONFIG);
      const o2 = makeOptimizer(first);
      train(first, o2, 0, 3);
      const state = o2.state();
      await saveCheckpoint(path, {
        model: first,
        optimizerState: state,
        step: 3,
        rng: { seed: 0, offset: 0 },
        config: CONFIG,
      });
      for (const t of Object.values(state)) t.dispose();

      manualSeed(99);
      const resumed = new GPT2(CONFIG);
      const o3 = makeOptimizer(resumed);
      const ck = await loadCheckpoint(path, resumed);
      o3.loadState(ck.optimizerState);
      for (const t of Object.values(ck.optimizerState)) t.dispose();
      train(resumed, o3, 3, 5);
      assert.deepEqual(weights(resumed), weights(straight));
      // A state saved by one kind of optimizer does not load into another.
      const other = FACTORIES.find(([n]) => n !== name)![1](resumed);
      assert.ok(other.checkState(o3.state()).length > 0);
      for (const o of [o1, o2, o3, other]) o.dispose();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

// ---- memory ----

Deno.test("AdamW.step allocates nothing after the first step", () => {
  const params = [randn([64, 32]), randn([32])].map((t) => parameter(t));
  const opt = new AdamW(params);
  const grads = params.map((p) => keep(randn(p.shape)));
  const step = () => {
    params.forEach((p, i) => p.grad = keep(grads[i].clone()));
    opt.step();
    opt.zeroGrad();
  };
  step();
  const before = memoryStats().liveBytes;
  for (let i = 0; i < 20; i++) tidy(step);
  assert.equal(memoryStats().liveBytes, before);
});

Deno.test("Muon and SGD steps hold memory flat", () => {
  manualSeed(4);
  for (
    const make of [(ps: Tensor[]) => new Muon(ps), (ps: Tensor[]) => new SGD(ps, { momentum: 0.9 })]
  ) {
    const params = [parameter(randn([24, 8])), parameter(randn([8, 8]))];
    const opt = make(params);
    const grads = params.map((p) => keep(randn(p.shape)));
    const step = () => {
      params.forEach((p, i) => p.grad = keep(grads[i].clone()));
      opt.step();
      opt.zeroGrad();
    };
    step();
    const before = memoryStats().liveBytes;
    for (let i = 0; i < 5; i++) tidy(step);
    assert.equal(memoryStats().liveBytes, before);
  }
});

// ---- pretrain with any optimizer ----

Deno.test("pretrain takes Muon + AdamW with a WSD factor schedule, and resumes bit-identically", async () => {
  const text = Deno.readTextFileSync(new URL("../examples/data/the-verdict.txt", import.meta.url));
  const chars = [...new Set(text)].sort();
  const ids = Array.from(text.slice(0, 20000), (c) => chars.indexOf(c));
  const model = (seed: number) => {
    manualSeed(seed);
    return new GPT2(
      gpt2Config("small-test", { vocabSize: chars.length, contextLength: 16, nEmbd: 32 }),
    );
  };
  const dir = await Deno.makeTempDir({ prefix: "denograd_optim2_pretrain_" });
  try {
    const schedule = warmupStableDecay({ maxLr: 1, warmup: 2, decaySteps: 4, totalSteps: 10 });
    const run = async (seed: number, out: string, extra: Partial<PretrainOptions> = {}) => {
      const m = model(seed);
      const optimizer = muonWithAdamW(m, { muon: { lr: 0.02 }, adamw: { lr: 3e-3 } });
      const lrs: number[] = [];
      try {
        const r = await pretrain({
          model: m,
          train: slidingWindows(ids, { maxLength: 16 }),
          batchSize: 4,
          steps: 10,
          optimizer,
          lrSchedule: schedule,
          checkpointPath: join(dir, out, "model.safetensors"),
          checkpointEvery: 5,
          progress: false,
          log: () => {},
          onStep: (rec) => lrs.push(rec.lr),
          ...extra,
        });
        return { r, lrs, groups: optimizer.lrs() };
      } finally {
        optimizer.dispose();
        m.dispose();
      }
    };
    const straight = await run(1, "a");
    assert.ok(
      straight.r.trainLosses[9] < straight.r.trainLosses[0] - 0.3,
      `${straight.r.trainLosses}`,
    );
    // The logged lr is the first group's (Muon's 0.02) times the schedule; all groups scale alike.
    straight.lrs.forEach((lr, k) => close(lr, 0.02 * schedule(k), `lr of step ${k + 1}`));
    close(straight.groups[1], 3e-3 * schedule(9));
    await assert.rejects(
      run(1, "b", {
        onStep: (r) => {
          if (r.step === 7) throw new Error("crash");
        },
      }),
      /crash/,
    );
    const resumed = await run(42, "b", { resume: true });
    assert.equal(resumed.r.startStep, 5);
    assert.deepEqual(resumed.r.trainLosses, straight.r.trainLosses.slice(5));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain refuses an optimizer that misses parameters or comes with AdamW's options", async () => {
  manualSeed(0);
  const m = new GPT2(gpt2Config("small-test"));
  const train = slidingWindows(Array.from({ length: 200 }, (_, i) => i % 64), { maxLength: 8 });
  const base = { model: m, train, batchSize: 2, steps: 2, progress: false };
  const muonOnly = new Muon(m.h.flatMap((b) => [b.attn.c_attn.weight]));
  await assert.rejects(
    pretrain({ ...base, optimizer: muonOnly }),
    /pretrain: the optimizer does not update \d+ parameter\(s\) of the model: wte.weight, wpe.weight/,
  );
  await assert.rejects(
    pretrain({ ...base, optimizer: new SGD(m.parameters()), maxLr: 0.1, betas: [0.9, 0.9] }),
    /pretrain: maxLr, betas configure the default AdamW/,
  );
  await assert.rejects(
    pretrain({ ...base, lrSchedule: constantLr(1), warmup: 2 }),
    /lrSchedule replaces warmup and minLr/,
  );
  m.dispose();
});
