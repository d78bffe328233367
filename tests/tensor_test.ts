// Tensor basics the op fixtures do not cover: reading back, assign, printing, 0-d tensors.
import assert from "node:assert/strict";
import { arange, noGrad, ones, randn, tensor, zeros } from "../mod.ts";

Deno.test("toArray nests by shape and item reads a one-element tensor", () => {
  assert.deepEqual(arange(6).reshape([2, 3]).toArray(), [[0, 1, 2], [3, 4, 5]]);
  assert.equal(tensor(3.5).item(), 3.5);
  assert.deepEqual(tensor(3.5).shape, []);
  assert.equal(tensor([[7]]).item(), 7);
  assert.deepEqual(zeros([2, 0]).toArray(), [[], []]);
});

Deno.test("tensor() infers dtypes: nested arrays f32, integer typed arrays i32", () => {
  assert.equal(tensor([1, 2]).dtype, "f32");
  assert.equal(tensor(new Int32Array([1, 2])).dtype, "i32");
  assert.equal(tensor(new Uint16Array([1, 2])).dtype, "i32");
  assert.equal(tensor(new Float64Array([1.5])).dtype, "f32");
  assert.equal(arange(3).dtype, "i32");
  assert.equal(arange(0, 1, 0.5).dtype, "f32");
});

Deno.test("assign() overwrites in place, through views, and validates shape", () => {
  const w = ones([2, 3]);
  const view = w.transpose(0, 1);
  w.assign(arange(6).reshape([2, 3]));
  assert.deepEqual(view.toArray(), [[0, 3], [1, 4], [2, 5]]);
  view.assign(zeros([3, 2]));
  assert.deepEqual(w.toArray(), [[0, 0, 0], [0, 0, 0]]);
  assert.throws(() => w.assign(zeros([3, 2])), /assign: shape \[3,2\] does not match \[2,3\]/);
  const y = randn([2], { requiresGrad: true }).mul(2);
  assert.throws(
    () => noGrad(() => y.assign(zeros([2]))),
    /assign: cannot overwrite a tensor produced by a recorded op/,
  );
});

Deno.test("detach() shares storage but not the graph", () => {
  const x = randn([3], { requiresGrad: true });
  const d = x.detach();
  assert.equal(d.requiresGrad, false);
  assert.equal(d.storage, x.storage);
});

Deno.test("console.log shows dtype, shape, device and small values, never the storage", () => {
  const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  assert.equal(Deno.inspect(x), "Tensor(f32, [2,2], cpu, requiresGrad) [[1,2],[3,4]]");
  assert.equal(Deno.inspect(randn([100, 100])), "Tensor(f32, [100,100], cpu)");
});
