// Module: parameter discovery by field path, tied weights, state dicts, modes.
import assert from "node:assert/strict";
import { Module, ones, parameter, randn, type Tensor, zeros } from "../mod.ts";

class Leaf extends Module {
  weight: Tensor = parameter(randn([2, 3]));
  bias: Tensor = parameter(zeros([2]));
  mask: Tensor = ones([3]); // a buffer: in the state dict, not trained
}
class Tree extends Module {
  first = new Leaf();
  blocks = [new Leaf(), new Leaf()];
  tied: Tensor = this.first.weight;
}

Deno.test("namedParameters walks fields and arrays in order and lists tied tensors once", () => {
  const names = new Tree().namedParameters().map(([n]) => n);
  assert.deepEqual(names, [
    "first.weight",
    "first.bias",
    "blocks.0.weight",
    "blocks.0.bias",
    "blocks.1.weight",
    "blocks.1.bias",
  ]);
  assert.equal(new Tree().numParameters(), 3 * 8);
  assert.ok("first.mask" in new Tree().stateDict());
});

Deno.test("loadStateDict copies values in place and checks every name and shape first", () => {
  const a = new Tree(), b = new Tree();
  b.loadStateDict(a.stateDict());
  assert.deepEqual(b.blocks[1].weight.toArray(), a.blocks[1].weight.toArray());
  const before = b.first.bias.toArray();
  const bad = { ...a.stateDict(), "first.bias": zeros([3]), "extra.x": zeros([1]) };
  delete (bad as Record<string, Tensor>)["blocks.0.bias"];
  assert.throws(
    () => b.loadStateDict(bad),
    /loadStateDict: 3 problem\(s\): "first.bias" has shape \[3\], expected \[2\]; unexpected "extra.x"; missing "blocks.0.bias"/,
  );
  assert.deepEqual(b.first.bias.toArray(), before); // unchanged
  b.loadStateDict({ "first.bias": ones([2]) }, { strict: false });
  assert.deepEqual(b.first.bias.toArray(), [1, 1]);
});

Deno.test("train() and eval() set the mode on the whole tree", () => {
  const t = new Tree().eval();
  assert.equal(t.blocks[1].training, false);
  assert.equal(t.train().first.training, true);
});
