// Adam and AdamW against torch.optim step by step, and AdamW.forModel's weight-decay groups.
import assert from "node:assert/strict";
import {
  AdamW,
  GPT2,
  gpt2Config,
  manualSeed,
  Module,
  type Muon,
  muonWithAdamW,
  parameter,
  randn,
  type Tensor,
  zeros,
} from "../mod.ts";
import { assertStepsMatchReference, OPTIM2_FIXTURE, OPTIM_FIXTURE } from "./_optim_helpers.ts";

for (const c of OPTIM_FIXTURE.optimizers.filter((c) => c.optimizer === "AdamW")) {
  Deno.test(`${c.name} (equals torch.optim.${c.optimizer} step by step)`, () => {
    assertStepsMatchReference(c);
  });
}

for (
  const c of OPTIM2_FIXTURE.optimizers.filter((c) =>
    c.optimizer === "Adam" || c.optimizer === "AdamW"
  )
) {
  Deno.test(`${c.name} (equals torch.optim)`, () => {
    assertStepsMatchReference(c, { onlyReferenceState: true });
  });
}

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

Deno.test("AdamW.forModel and muonWithAdamW never decay or orthogonalise a bias, even a stacked 2-D one", () => {
  manualSeed(0);
  const model = new GPT2(
    gpt2Config("small-test", { nLayer: 2, moe: { experts: 2, topK: 1, layers: [1] } }),
  );
  const named = new Map(model.namedParameters().map(([n, p]) => [p, n]));
  const expertBias = model.namedParameters().find(([n]) => n === "h.1.mlp.experts.c_fc.bias");
  assert.ok(expertBias && expertBias[1].ndim === 2, "the MoE block stacks expert biases (E, out)");

  const adamw = AdamW.forModel(model, { weightDecay: 0.1 });
  for (const g of adamw.paramGroups) {
    for (const p of g.params) {
      const name = named.get(p)!;
      const expected = name.endsWith(".bias") || p.ndim < 2 ? 0 : 0.1;
      assert.equal(g.weightDecay, expected, name);
    }
  }
  const combined = muonWithAdamW(model);
  const muonParams = new Set(
    (combined.parts.muon as Muon).paramGroups.flatMap((g) => [...g.params]),
  );
  assert.ok(!muonParams.has(expertBias[1]), "the stacked expert bias is not a Muon matrix");
  assert.ok(muonParams.has(model.namedParameters().find(([n]) => n === "h.0.mlp.c_fc.weight")![1]));
  for (const p of muonParams) assert.ok(!named.get(p)!.endsWith(".bias"));
});
