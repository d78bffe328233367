/**
 * Every op against PyTorch: forward values and the gradient of every input, one test per case of
 * tests/fixtures/ops_*.json (written by tests/fixtures/make_fixtures.py).
 */

import assert from "node:assert/strict";
import { memoryStats, type Tensor, tensor, tidy } from "../mod.ts";
import { OPS } from "./_fixture_ops.ts";
import {
  assertTensorClose,
  buildInput,
  F32_TOL,
  type FixtureTensor,
  loadOpCases,
  type OpCase,
  type Tolerance,
  toTensor,
} from "./_fixtures.ts";

/** Seeds backward with the fixture's upstream gradient(s); frees what it creates. */
function backward(outs: Tensor[], ups: FixtureTensor[]): void {
  if (outs.length === 1) {
    const up = toTensor(ups[0]);
    outs[0].backward(up);
    up.dispose();
    return;
  }
  // Several outputs (split, chunk): d/dx sum_i <out_i, up_i> is what PyTorch's fixture holds.
  tidy(() => {
    let loss: Tensor = tensor(0);
    for (let i = 0; i < outs.length; i++) loss = loss.add(outs[i].mul(toTensor(ups[i])).sum());
    loss.backward();
  });
}

/**
 * Runs one case, then disposes every tensor it made (inputs, views, outputs, gradients) and checks
 * that nothing the library allocated internally is left alive: no tidy() here, so a forgotten
 * temporary in any forward or backward shows up as a leak.
 */
function runCase(c: OpCase): void {
  const fn = OPS[c.op];
  assert.ok(fn, `no denograd call for fixture op "${c.op}"`);
  const before = memoryStats();
  const built = c.inputs.map(buildInput);
  const result = fn(built.map((b) => b.view), c.args);
  const outs = Array.isArray(result) ? result : [result];
  const expected = c.outputs ?? [c.output!];
  const tol: Tolerance = c.tol ?? F32_TOL;
  assert.equal(outs.length, expected.length, `${c.name}: number of outputs`);
  outs.forEach((o, i) => {
    const what = expected.length > 1 ? `output ${i}` : "output";
    assertTensorClose(`${c.name}: ${what}`, o, expected[i], tol);
  });

  const ups = c.upstreams ?? (c.upstream ? [c.upstream] : []);
  if (ups.length > 0) {
    backward(outs, ups);
    c.grads!.forEach((g, i) => {
      if (g === null) return;
      assertTensorClose(`${c.name}: grad of input ${i}`, built[i].leaf.grad, g, tol);
    });
  }

  for (const t of outs) t.dispose();
  for (const b of built) {
    b.view.dispose();
    b.leaf.zeroGrad();
    b.leaf.dispose();
  }
  const after = memoryStats();
  assert.equal(after.liveTensors, before.liveTensors, `${c.name}: tensors left alive`);
  assert.equal(after.liveBytes, before.liveBytes, `${c.name}: bytes left alive`);
}

for (
  const file of ["ops_elementwise.json", "ops_reduce.json", "ops_nn.json", "ops_movement.json"]
) {
  for (const c of loadOpCases(file)) {
    Deno.test(`${c.name} (as in PyTorch)`, () => runCase(c));
  }
}
