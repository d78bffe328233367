// The tape: accumulation, explicit gradients, detach, noGrad, graph freeing.
import assert from "node:assert/strict";
import { layerNorm, noGrad, ones, randn, tensor, tidy } from "../mod.ts";

Deno.test("backward() on a scalar fills leaf gradients", () => {
  const x = tensor([1, 2, 3], { requiresGrad: true });
  x.mul(x).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
});

Deno.test("backward(gradient) on a non-scalar uses the given upstream gradient", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  x.mul(3).backward(tensor([1, 10]));
  assert.deepEqual(x.grad!.toArray(), [3, 30]);
});

Deno.test("backward() without a gradient on a non-scalar throws", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  assert.throws(() => x.mul(2).backward(), RangeError);
});

Deno.test("gradients accumulate across backward calls until zeroGrad", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  x.sum().backward();
  x.mul(2).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [3, 3]);
  x.zeroGrad();
  assert.equal(x.grad, null);
});

Deno.test("a tensor used twice gets the sum of both paths", () => {
  const x = tensor([2], { requiresGrad: true });
  const y = x.mul(x).add(x); // dy/dx = 2x + 1
  y.sum().backward();
  assert.deepEqual(x.grad!.toArray(), [5]);
});

Deno.test("detach() stops the gradient", () => {
  const x = tensor([3], { requiresGrad: true });
  x.mul(x.detach()).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [3]);
});

Deno.test("noGrad() records nothing", () => {
  const x = ones([2], { requiresGrad: true });
  const y = noGrad(() => x.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.throws(() => y.sum().backward(), /does not require grad/);
});

Deno.test("the graph is freed after backward", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  const y = x.exp();
  const loss = y.sum();
  loss.backward();
  assert.equal(loss.isLeaf, true);
  assert.equal(y.isLeaf, true);
  assert.throws(() => loss.backward(), /graph of this tensor was freed by an earlier backward/);
});

Deno.test("intermediates disposed before backward stay usable by the graph", () => {
  const x = randn([4], { requiresGrad: true });
  const e = x.exp();
  const loss = e.mul(e).sum();
  e.dispose(); // the graph still needs e's values
  loss.backward();
  const expected = (x.toTypedArray() as Float32Array).map((v) => 2 * Math.exp(2 * v));
  const got = x.grad!.toTypedArray();
  expected.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 1e-4 * Math.abs(v)));
  assert.equal(e.disposed, true);
});

Deno.test("requiresGrad cannot be set on i32 tensors or non-leaves", () => {
  assert.throws(() => tensor([1], { dtype: "i32", requiresGrad: true }), TypeError);
  const y = tensor([1], { requiresGrad: true }).mul(2);
  assert.throws(() => (y.requiresGrad = false), TypeError);
});

Deno.test("gradients flow through a deep chain without stack overflow", () => {
  const x = tensor([1], { requiresGrad: true });
  let y = x;
  for (let i = 0; i < 20000; i++) y = y.add(0);
  y.sum().backward();
  assert.deepEqual(x.grad!.toArray(), [1]);
});

Deno.test("a forward inside tidy() can be differentiated after it", () => {
  const x = randn([3, 4], { requiresGrad: true });
  const y = tidy(() => layerNorm(x, [4]).mul(2).add(1).exp());
  y.sum().backward();
  assert.deepEqual(x.grad!.shape, [3, 4]);
  assert.ok(x.grad!.toTypedArray().every(Number.isFinite));
});
