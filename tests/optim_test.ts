// Optimizers against torch.optim (tests/fixtures/make_optim_fixture.py), schedules, clipping.
import assert from "node:assert/strict";
import {
  AdamW,
  clipGradNorm,
  keep,
  manualSeed,
  memoryStats,
  Module,
  type Optimizer,
  parameter,
  randn,
  SGD,
  type Tensor,
  tensor,
  tidy,
  warmupCosine,
  zeros,
} from "../mod.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";

interface FixTensor {
  shape: number[];
  data: number[];
}
interface OptimCase {
  name: string;
  optimizer: "AdamW" | "SGD";
  // deno-lint-ignore no-explicit-any
  defaults: Record<string, any>;
  // deno-lint-ignore no-explicit-any
  groups: ({ params: number[] } & Record<string, any>)[];
  params: FixTensor[];
  steps: { lrs: number[]; grads: (FixTensor | null)[] }[];
  expected: FixTensor[][];
  state: Record<string, FixTensor>;
}
interface ClipCase {
  name: string;
  maxNorm: number;
  grads: FixTensor[];
  norm: number;
  clipped: FixTensor[];
}
const fixture = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/optim.json", import.meta.url)),
) as { optimizers: OptimCase[]; clip: ClipCase[] };

const make = (t: FixTensor, requiresGrad = false): Tensor =>
  tensor(Float32Array.from(t.data), { shape: t.shape, requiresGrad });

function assertClose(actual: Tensor, expected: FixTensor, what: string, atol = 2e-6, rtol = 2e-5) {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.toTypedArray();
  expected.data.forEach((e, i) => {
    const d = Math.abs(a[i] - e);
    assert.ok(d <= atol + rtol * Math.abs(e), `${what}[${i}]: ${a[i]} vs torch ${e} (diff ${d})`);
  });
}

for (const c of fixture.optimizers) {
  Deno.test(`${c.name} (equals torch.optim.${c.optimizer} step by step)`, () => {
    const params = c.params.map((p) => make(p, true));
    const groups = c.groups.map(({ params: idx, ...opts }) => ({
      params: idx.map((i) => params[i]),
      ...opts,
    }));
    const opt: Optimizer<{ lr: number }> = c.optimizer === "AdamW"
      ? new AdamW(groups, c.defaults)
      : new SGD(groups, c.defaults);
    c.steps.forEach((s, k) => {
      opt.paramGroups.forEach((g, gi) => g.lr = s.lrs[gi]);
      s.grads.forEach((g, i) => {
        params[i].zeroGrad();
        if (g) params[i].grad = keep(make(g));
      });
      opt.step();
      params.forEach((p, i) => assertClose(p, c.expected[k][i], `step ${k + 1} param ${i}`));
    });
    // State names follow the optimizer's parameter order (groups flattened).
    const order = c.groups.flatMap((g) => g.params);
    const state = opt.state();
    for (const [key, t] of Object.entries(c.state)) {
      const [i, slot] = key.split(".");
      assertClose(state[`${order.indexOf(Number(i))}.${slot}`], t, `state ${key}`);
    }
    const updates = order.map((i) => c.steps.filter((s) => s.grads[i] !== null).length);
    assert.deepEqual(Array.from(state.step.toTypedArray()), updates);
    for (const t of Object.values(state)) t.dispose();
    opt.dispose();
  });
}

for (const c of fixture.clip) {
  Deno.test(`${c.name} (equals torch.nn.utils.clip_grad_norm_)`, () => {
    const params = c.grads.map((g) => {
      const p = zeros(g.shape, { requiresGrad: true });
      p.grad = keep(make(g));
      return p;
    });
    const norm = clipGradNorm(params, c.maxNorm);
    assert.ok(Math.abs(norm - c.norm) < 1e-5 * c.norm, `norm ${norm} vs ${c.norm}`);
    params.forEach((p, i) => assertClose(p.grad!, c.clipped[i], `grad ${i}`));
  });
}

Deno.test("clipGradNorm skips parameters without gradients and returns 0 when none have one", () => {
  const a = zeros([2], { requiresGrad: true }), b = zeros([2], { requiresGrad: true });
  assert.equal(clipGradNorm([a, b], 1), 0);
  b.grad = keep(tensor([6, 8]));
  assert.ok(Math.abs(clipGradNorm([a, b], 5) - 10) < 1e-5);
  assert.deepEqual(Array.from(b.grad.toTypedArray(), (x) => Math.round(x * 1e4) / 1e4), [3, 4]);
  assert.throws(() => clipGradNorm([a], 0), /maxNorm must be a number > 0/);
});

Deno.test("clipGradNorm scales gradients that share memory only once", () => {
  const a = zeros([2], { requiresGrad: true }), b = zeros([2], { requiresGrad: true });
  a.add(b).mul(tensor([3, 4])).sum().backward(); // add's backward may hand both one tensor
  const norm = clipGradNorm([a, b], 1);
  assert.ok(Math.abs(norm - Math.sqrt(50)) < 1e-5);
  for (const p of [a, b]) {
    const [x, y] = p.grad!.toTypedArray();
    assert.ok(Math.abs(x - 3 / Math.sqrt(50)) < 1e-6 && Math.abs(y - 4 / Math.sqrt(50)) < 1e-6);
  }
});

Deno.test("AdamW.forModel decays matrices and embeddings, not biases or LayerNorm", () => {
  class Block extends Module {
    wte: Tensor = parameter(randn([10, 4]));
    lnWeight: Tensor = parameter(zeros([4]));
    fcWeight: Tensor = parameter(randn([8, 4]));
    fcBias: Tensor = parameter(zeros([8]));
    tied: Tensor = this.wte;
  }
  const opt = AdamW.forModel(new Block(), { lr: 6e-4, weightDecay: 0.1, betas: [0.9, 0.95] });
  assert.deepEqual(
    opt.paramGroups.map((g) => [g.weightDecay, g.params.map((p) => p.shape.join("x"))]),
    [[0.1, ["10x4", "8x4"]], [0, ["4", "8"]]],
  );
  assert.deepEqual(opt.paramGroups[1].betas, [0.9, 0.95]);
  assert.equal(opt.paramGroups[1].lr, 6e-4);
});

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

Deno.test("the CPU adamwStep kernel refuses views of different sizes", () => {
  const be = new CpuBackend();
  const v = (n: number) => ({
    buffer: be.alloc(4 * n),
    dtype: "f32" as const,
    shape: [n],
    strides: [1],
    offset: 0,
  });
  const o = { lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
  assert.throws(() => be.adamwStep(v(4), v(4), v(3), v(4), o), /m has 3 elements, param has 4/);
});

Deno.test("warmupCosine warms up linearly, then decays along a cosine to minLr and stays", () => {
  const lr = warmupCosine({ maxLr: 1e-3, minLr: 1e-4, warmup: 10, totalSteps: 110 });
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  close(lr(0), 1e-4);
  close(lr(4), 5e-4);
  close(lr(9), 1e-3);
  close(lr(10), 1e-3);
  close(lr(60), 5.5e-4); // half way: the mean of max and min
  close(lr(35), 1e-4 + 9e-4 * 0.5 * (1 + Math.cos(Math.PI / 4)));
  close(lr(110), 1e-4);
  close(lr(500), 1e-4);
  const noWarmup = warmupCosine({ maxLr: 2, totalSteps: 4 });
  assert.deepEqual([0, 2, 4].map(noWarmup), [2, 1.1, 0.2]); // minLr defaults to maxLr / 10
  assert.throws(() => warmupCosine({ maxLr: 1, minLr: 2, totalSteps: 5 }), /minLr must be in/);
  assert.throws(() => warmupCosine({ maxLr: 1, warmup: 6, totalSteps: 5 }), /totalSteps must be/);
  assert.throws(() => lr(-1), /step must be an integer >= 0/);
});
