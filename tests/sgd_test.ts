// SGD (momentum, dampening, Nesterov, weight decay) against torch.optim.SGD step by step, and its
// state without momentum.
import assert from "node:assert/strict";
import { keep, parameter, SGD, tensor } from "../mod.ts";
import { assertStepsMatchReference, OPTIM2_FIXTURE, OPTIM_FIXTURE } from "./_optim_helpers.ts";

for (const c of OPTIM_FIXTURE.optimizers.filter((c) => c.optimizer === "SGD")) {
  Deno.test(`${c.name} (equals torch.optim.${c.optimizer} step by step)`, () => {
    assertStepsMatchReference(c);
  });
}

for (const c of OPTIM2_FIXTURE.optimizers.filter((c) => c.optimizer === "SGD")) {
  Deno.test(`${c.name} (equals torch.optim)`, () => {
    assertStepsMatchReference(c, { onlyReferenceState: true });
  });
}

Deno.test("SGD without momentum keeps no state and its state round-trips", () => {
  const p = parameter(tensor([1, 2]));
  const opt = new SGD([p], { lr: 0.5 });
  p.grad = keep(tensor([1, 1]));
  opt.step();
  assert.deepEqual(Object.keys(opt.state()), ["step"]);
  const fresh = new SGD([p], { lr: 0.5 });
  fresh.loadState(opt.state());
  assert.deepEqual(Array.from(fresh.state().step.toTypedArray()), [1]);
  assert.deepEqual(Array.from(p.toTypedArray()), [0.5, 1.5]);
});
