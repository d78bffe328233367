// dropout: random by design, so checked by its statistics, its scaling and its seed.
import assert from "node:assert/strict";
import { dropout, gradcheck, manualSeed, ones, randn } from "../mod.ts";

Deno.test("dropout zeroes about p of the elements and scales the rest by 1/(1-p)", () => {
  manualSeed(11);
  const y = dropout(ones([100000]), 0.3).toTypedArray();
  const zeros = y.filter((v) => v === 0).length;
  assert.ok(Math.abs(zeros / y.length - 0.3) < 0.01, `dropped ${zeros}`);
  assert.ok(y.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6));
});

Deno.test("dropout draws the same mask after the same seed", () => {
  manualSeed(3);
  const a = dropout(ones([64]), 0.5).toArray();
  manualSeed(3);
  assert.deepEqual(dropout(ones([64]), 0.5).toArray(), a);
});

Deno.test("dropout is the identity outside training and for p = 0; p = 1 drops everything", () => {
  const x = randn([5]);
  assert.equal(dropout(x, 0.5, false), x);
  assert.equal(dropout(x, 0), x);
  assert.ok(dropout(x, 1).toTypedArray().every((v) => v === 0)); // -0 for negative inputs, as in PyTorch
});

Deno.test("dropout's gradient is the same mask and scale (gradcheck with a fixed seed)", () => {
  const x = randn([4, 6], { requiresGrad: true });
  assert.equal(
    gradcheck((x) => {
      manualSeed(99); // the same mask on every call
      return dropout(x, 0.4);
    }, [x]),
    true,
  );
});

Deno.test("dropout rejects a probability outside [0, 1]", () => {
  assert.throws(
    () => dropout(ones([2]), 1.5),
    /dropout: p must be a probability in \[0, 1\], got 1.5/,
  );
  assert.throws(() => dropout(ones([2]), -0.1), RangeError);
});
