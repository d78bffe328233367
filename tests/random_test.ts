// The counter-based generator: known answers, reproducibility, distributions.
import assert from "node:assert/strict";
import { getRngState, manualSeed, rand, randint, randn, setRngState } from "../mod.ts";
import { philox4x32 } from "../src/random.ts";

Deno.test("philox4x32-10 matches the Random123 known-answer vector", () => {
  const out = new Uint32Array(4);
  philox4x32(0, 0, 0, 0, out);
  assert.deepEqual([...out], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
});

Deno.test("manualSeed makes draws reproducible", () => {
  manualSeed(42);
  const a = randn([17]).toArray();
  manualSeed(42);
  assert.deepEqual(randn([17]).toArray(), a);
  manualSeed(43);
  assert.notDeepEqual(randn([17]).toArray(), a);
});

Deno.test("getRngState/setRngState resume the same stream", () => {
  manualSeed(5);
  rand([3]);
  const s = getRngState();
  const a = rand([8]).toArray();
  setRngState(s);
  assert.deepEqual(rand([8]).toArray(), a);
});

Deno.test("rand, randn and randint have the expected moments and ranges", () => {
  manualSeed(0);
  const u = Array.from(rand([100000]).toTypedArray());
  const mean = u.reduce((a, b) => a + b, 0) / u.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01 && Math.min(...u) >= 0 && Math.max(...u) < 1);
  const n = Array.from(randn([100000]).toTypedArray());
  const m = n.reduce((a, b) => a + b, 0) / n.length;
  const v = n.reduce((a, b) => a + (b - m) ** 2, 0) / n.length;
  assert.ok(Math.abs(m) < 0.02 && Math.abs(v - 1) < 0.02, `mean ${m} var ${v}`);
  const r = randint(-3, 4, [10000]).toTypedArray();
  assert.ok(Math.min(...r) === -3 && Math.max(...r) === 3);
});

Deno.test("manualSeed rejects a bad seed", () => {
  assert.throws(() => manualSeed(-1), RangeError);
  assert.throws(() => manualSeed(1.5), RangeError);
});
