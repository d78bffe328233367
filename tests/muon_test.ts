// Muon against a PyTorch Muon reference (tests/fixtures/make_optim2_fixture.py); Newton–Schulz
// against PyTorch and its singular-value band; muonWithAdamW's split and CombinedOptimizer; errors.
import assert from "node:assert/strict";
import {
  Adam,
  AdamW,
  CombinedOptimizer,
  GPT2,
  gpt2Config,
  keep,
  manualSeed,
  Muon,
  muonWithAdamW,
  NEWTON_SCHULZ_COEFFICIENTS,
  newtonSchulz,
  parameter,
  randn,
  SGD,
  type Tensor,
  tensor,
  type TrainOptimizer,
  zeros,
} from "../mod.ts";
import {
  assertClose,
  assertStepsMatchReference,
  make,
  OPTIM2_FIXTURE,
  singularValues,
  symmetricEigenvalues,
} from "./_optim_helpers.ts";

for (const c of OPTIM2_FIXTURE.optimizers.filter((c) => c.optimizer === "Muon")) {
  Deno.test(`${c.name} (equals the Muon reference)`, () => {
    // Newton–Schulz sums in a different order than torch's BLAS; its polynomial amplifies the
    // rounding a little, so Muon gets a looser (still f32-level) tolerance.
    assertStepsMatchReference(c, { atol: 2e-5, rtol: 1e-4, onlyReferenceState: true });
  });
}

// ---- Newton–Schulz ----

/** The scalar map Newton–Schulz applies to each singular value, `steps` times. */
function quintic(s: number, steps: number): number {
  const [a, b, c] = NEWTON_SCHULZ_COEFFICIENTS;
  for (let k = 0; k < steps; k++) s = a * s + b * s ** 3 + c * s ** 5;
  return s;
}

Deno.test("the Jacobi eigen-solver used to check Newton–Schulz is right on known matrices", () => {
  const close = (a: number[], b: number[]) =>
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < 1e-12, `${a} vs ${b}`));
  close(symmetricEigenvalues(Float64Array.from([2, 1, 1, 2]), 2).sort(), [1, 3]);
  // diag(1, 2, 5) rotated by an orthogonal matrix keeps its eigenvalues.
  const c = Math.cos(0.3), s = Math.sin(0.3);
  const q = [[c, -s, 0], [s, c, 0], [0, 0, 1]], d = [1, 2, 5];
  const m = new Float64Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      for (let k = 0; k < 3; k++) m[i * 3 + j] += q[i][k] * d[k] * q[j][k];
    }
  }
  close(symmetricEigenvalues(m, 3).sort((a, b) => a - b), [1, 2, 5]);
  close(singularValues(tensor([[3, 0], [0, -4], [0, 0]])), [4, 3]);
});

for (const c of OPTIM2_FIXTURE.newtonSchulz) {
  Deno.test(`newtonSchulz of ${c.name} equals the PyTorch reference`, () => {
    const out = newtonSchulz(make(c.input), c.steps);
    assertClose(out, c.output, "output", 5e-5, 1e-4);
    const ours = singularValues(out);
    ours.forEach((s, i) => {
      assert.ok(
        Math.abs(s - c.outputSingular[i]) < 2e-4,
        `singular ${i}: ${s} vs torch ${c.outputSingular[i]}`,
      );
    });
    // Each singular value goes through the scalar quintic on its own (the vectors are kept).
    const predicted = c.inputSingular.map((s) => quintic(s, c.steps)).sort((a, b) => b - a);
    ours.forEach((s, i) => assert.ok(Math.abs(s - predicted[i]) < 2e-4, `${s} vs ${predicted[i]}`));
  });
}

Deno.test("Newton–Schulz output is near-orthogonal: singular values in the quintic's band", () => {
  const { sMin, lo, hi, peak, crossing } = OPTIM2_FIXTURE.band;
  // The band torch/numpy found for the scalar map; the coefficients trade exactness for speed.
  assert.ok(lo > 0.68 && lo < 0.69 && hi > 1.13 && hi < 1.14 && peak > 1.2 && peak < 1.21);
  manualSeed(11);
  const eye = (n: number) =>
    tensor(Float32Array.from({ length: n * n }, (_, i) => i % (n + 1) === 0 ? 1 : 0), {
      shape: [n, n],
    });
  const cases: [string, Tensor][] = [
    ["wide 32x96", randn([32, 96])],
    ["tall 96x32", randn([96, 32])],
    ["tall 128x16", randn([128, 16]).mul(1e-3)],
    ["square 48x48 (well conditioned)", eye(48).mul(4).add(randn([48, 48]).mul(0.15))],
  ];
  for (const [name, g] of cases) {
    const sIn = singularValues(g.div(g.mul(g).sum().sqrt()));
    assert.ok(sIn.at(-1)! >= sMin, `${name}: precondition, smallest input ${sIn.at(-1)}`);
    const sOut = singularValues(newtonSchulz(g));
    assert.ok(
      sOut[0] <= hi + 1e-3 && sOut.at(-1)! >= lo - 1e-3,
      `${name}: [${sOut.at(-1)}, ${sOut[0]}]`,
    );
  }
  // A random square matrix has singular values near 0: those below `crossing` cannot reach the
  // band in 5 steps, every other one does, and none exceeds the peak.
  const g = randn([64, 64]);
  const sIn = singularValues(g.div(g.mul(g).sum().sqrt()));
  const sOut = singularValues(newtonSchulz(g));
  assert.ok(sOut[0] <= peak + 1e-3, `largest ${sOut[0]}`);
  const tiny = sIn.filter((s) => s < crossing).length;
  assert.ok(tiny > 0, "the test matrix should have a tiny singular value");
  assert.equal(sOut.filter((s) => s < lo - 1e-3).length, tiny);
});

Deno.test("newtonSchulz transposes tall matrices: NS(G) is NS(Gᵀ)ᵀ exactly", () => {
  manualSeed(5);
  const g = randn([20, 6]);
  const a = newtonSchulz(g).toTypedArray();
  const b = newtonSchulz(g.transpose(0, 1).contiguous()).transpose(0, 1).contiguous()
    .toTypedArray();
  assert.deepEqual(a, b);
  assert.throws(
    () => newtonSchulz(randn([2, 3, 4])),
    /newtonSchulz: expected a 2-D f32 matrix, got f32 \[2,3,4\]/,
  );
  assert.throws(() => newtonSchulz(randn([3, 4]), 0), /steps must be an integer >= 1, got 0/);
});

// ---- Muon + AdamW ----

Deno.test("muonWithAdamW gives Muon the blocks' matrices and AdamW embeddings, biases and norms", () => {
  manualSeed(0);
  const model = new GPT2(gpt2Config("small-test"));
  const opt = muonWithAdamW(model, { muon: { lr: 0.03 }, adamw: { lr: 2e-3, weightDecay: 0.1 } });
  const names = new Map(model.namedParameters().map(([n, p]) => [p, n]));
  const muon = opt.parts.muon as Muon, adamw = opt.parts.adamw as AdamW;
  assert.deepEqual(muon.params.map((p) => names.get(p)), [
    "h.0.attn.c_attn.weight",
    "h.0.attn.c_proj.weight",
    "h.0.mlp.c_fc.weight",
    "h.0.mlp.c_proj.weight",
    "h.1.attn.c_attn.weight",
    "h.1.attn.c_proj.weight",
    "h.1.mlp.c_fc.weight",
    "h.1.mlp.c_proj.weight",
  ]);
  assert.deepEqual(adamw.paramGroups[0].params.map((p) => names.get(p)), [
    "wte.weight",
    "wpe.weight",
  ]);
  assert.ok(adamw.paramGroups[1].params.every((p) => p.ndim === 1));
  assert.deepEqual(adamw.paramGroups.map((g) => g.weightDecay), [0.1, 0]);
  assert.equal(opt.params.length, model.parameters().length);
  assert.deepEqual(opt.lrs(), [0.03, 2e-3, 2e-3]);
  opt.scaleLr(0.5);
  assert.deepEqual(opt.lrs(), [0.015, 1e-3, 1e-3]);
  // A custom rule that hands Muon a vector is refused by Muon itself.
  assert.throws(
    () => muonWithAdamW(model, { isHidden: (n) => n === "ln_f.weight" }),
    /Muon: parameter 0 has shape \[16\]; Muon updates 2-D hidden weight matrices only/,
  );
  model.dispose();
});

Deno.test("a Muon + AdamW step equals each optimizer stepped on its own", () => {
  manualSeed(2);
  const w0 = randn([6, 4]), b0 = randn([6]), gw = randn([6, 4]), gb = randn([6]);
  const run = (combined: boolean) => {
    const w = parameter(w0.clone()), b = parameter(b0.clone());
    const muon = new Muon([w], { lr: 0.1, weightDecay: 0.01 });
    const adamw = new AdamW([b], { lr: 0.01 });
    const opts: TrainOptimizer[] = combined
      ? [new CombinedOptimizer({ muon, adamw })]
      : [muon, adamw];
    for (let k = 0; k < 3; k++) {
      w.grad = keep(gw.mul(k + 1));
      b.grad = keep(gb.mul(k + 1));
      for (const o of opts) o.step();
      for (const o of opts) o.zeroGrad();
    }
    return [...w.toTypedArray(), ...b.toTypedArray()];
  };
  assert.deepEqual(run(true), run(false));
});

Deno.test("CombinedOptimizer checks its parts and every part's share of a state before loading", () => {
  const w = parameter(zeros([3, 3])), b = parameter(zeros([3]));
  assert.throws(() => new CombinedOptimizer({}), /expected at least one named optimizer/);
  assert.throws(
    () => new CombinedOptimizer({ "a.b": new SGD([b]) }),
    /part names are letters, digits and _, got "a.b"/,
  );
  assert.throws(
    () => new CombinedOptimizer({ x: new SGD([b]), y: new Adam([w, b]) }),
    /parameter 1 of "y" is also in "x"/,
  );
  const opt = new CombinedOptimizer({ muon: new Muon([w]), adamw: new AdamW([b]) });
  w.grad = keep(randn([3, 3]));
  b.grad = keep(randn([3]));
  opt.step();
  const good = opt.state();
  const fresh = new CombinedOptimizer({ muon: new Muon([w]), adamw: new AdamW([b]) });
  const bad = { ...good, "adamw.0.v": zeros([2]), "sgd.0.m": zeros([1]) };
  delete (bad as Record<string, Tensor>)["muon.0.momentum"];
  assert.throws(
    () => fresh.loadState(bad),
    /3 problem\(s\): unexpected "sgd.0.m" \(no part "sgd"\); muon: missing "0.momentum"; adamw: "0.v" is f32 \[2\], expected f32 \[3\]/,
  );
  const untouched = fresh.state();
  assert.deepEqual(Object.keys(untouched), ["muon.step", "adamw.step"]);
  assert.deepEqual(Object.values(untouched).map((t) => Array.from(t.toTypedArray())), [[0], [0]]);
  fresh.loadState(good);
  const back = fresh.state();
  for (const [k, t] of Object.entries(good)) {
    assert.deepEqual(back[k].toTypedArray(), t.toTypedArray(), k);
  }
});

Deno.test("Muon rejects parameters that are not matrices and bad options, naming them", () => {
  const w = parameter(zeros([2, 2]));
  assert.throws(
    () => new Muon([w, parameter(zeros([4]))]),
    /Muon: parameter 1 has shape \[4\]; Muon updates 2-D hidden weight matrices only: give embeddings, the head, biases and norms to AdamW/,
  );
  assert.throws(() => new Muon([parameter(zeros([2, 2, 2]))]), /parameter 0 has shape \[2,2,2\]/);
  assert.throws(() => new Muon([w], { momentum: 1 }), /Muon: momentum must be in \[0, 1\), got 1/);
  assert.throws(
    () => new Muon([w], { nsSteps: 0 }),
    /Muon: nsSteps must be an integer >= 1, got 0/,
  );
  assert.throws(
    () => new Muon([w], { lr: -0.1 }),
    /Muon: lr must be a finite number >= 0, got -0.1/,
  );
  assert.throws(
    () => new Muon([{ params: [w], weightDecay: -1 }]),
    /weightDecay must be a finite number >= 0, got -1/,
  );
  assert.throws(
    () => new Muon([w], { nesterov: "yes" as never }),
    /Muon: nesterov must be a boolean, got yes/,
  );
  const opt = new Muon([w]);
  w.grad = keep(zeros([2, 3]));
  assert.throws(
    () => opt.step(),
    /Muon.step: gradient \[2,3\] of parameter 0 differs from its shape \[2,2\]/,
  );
});
