// clipGradNorm against torch.nn.utils.clip_grad_norm_ (tests/fixtures/make_optim_fixture.py),
// parameters without gradients, and gradients that share memory.
import assert from "node:assert/strict";
import { clipGradNorm, keep, tensor, zeros } from "../mod.ts";
import { assertClose, make, OPTIM_FIXTURE } from "./_optim_helpers.ts";

for (const c of OPTIM_FIXTURE.clip) {
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
