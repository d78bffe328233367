// Explicit memory: dispose, using, tidy, keep and live-byte accounting.
import assert from "node:assert/strict";
import {
  crossEntropy,
  keep,
  linear,
  manualSeed,
  memoryStats,
  randint,
  randn,
  tidy,
} from "../mod.ts";

Deno.test("dispose() frees storage and is idempotent", () => {
  const before = memoryStats().liveBytes;
  const t = randn([1000]);
  assert.equal(memoryStats().liveBytes - before, 4000);
  t.dispose();
  t.dispose();
  assert.equal(memoryStats().liveBytes, before);
  assert.throws(() => t.toArray(), /disposed/);
});

Deno.test("views share storage: memory is freed with the last view", () => {
  const before = memoryStats().liveBytes;
  const t = randn([10, 10]);
  const v = t.transpose(0, 1);
  t.dispose();
  assert.equal(memoryStats().liveBytes - before, 400);
  v.dispose();
  assert.equal(memoryStats().liveBytes, before);
});

Deno.test("using disposes at the end of the block", () => {
  const before = memoryStats().liveBytes;
  {
    using _t = randn([100]);
    assert.equal(memoryStats().liveBytes - before, 400);
  }
  assert.equal(memoryStats().liveBytes, before);
});

Deno.test("tidy() keeps only what it returns and what is kept", () => {
  const before = memoryStats();
  let kept = null;
  const out = tidy(() => {
    kept = keep(randn([3]));
    return { a: randn([5]).exp(), b: [randn([2])] };
  });
  const after = memoryStats();
  assert.equal(after.liveBytes - before.liveBytes, (3 + 5 + 2) * 4);
  out.a.dispose();
  out.b[0].dispose();
  kept!.dispose();
  assert.equal(memoryStats().liveBytes, before.liveBytes);
});

Deno.test("live bytes return to the start after tidy around forward+backward, 100 times", () => {
  manualSeed(3);
  const w1 = keep(randn([32, 16], { requiresGrad: true }));
  const w2 = keep(randn([4, 32], { requiresGrad: true }));
  const x = keep(randn([8, 16]));
  const y = keep(randint(0, 4, [8]));
  const step = () =>
    tidy(() => {
      const loss = crossEntropy(linear(linear(x, w1).gelu().softmax(-1).mul(2), w2), y);
      loss.backward();
      w1.zeroGrad();
      w2.zeroGrad();
    });
  step();
  const start = memoryStats();
  for (let i = 0; i < 100; i++) step();
  const end = memoryStats();
  assert.equal(end.liveBytes, start.liveBytes);
  assert.equal(end.liveTensors, start.liveTensors);
  assert.equal(end.liveBuffers, start.liveBuffers);
});

Deno.test("the FinalizationRegistry backstop frees tensors that were never disposed", async () => {
  const script = `
    import { memoryStats, randn } from "${new URL("../mod.ts", import.meta.url)}";
    const before = memoryStats().liveBytes;
    (() => { for (let i = 0; i < 50; i++) randn([1000]).exp(); })(); // 100 tensors dropped
    const leaked = memoryStats().liveBytes - before;
    for (let i = 0; i < 20 && memoryStats().liveBytes > before; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    console.log(leaked, memoryStats().liveBytes - before);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const [leaked, after] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  assert.equal(leaked, 100 * 4000);
  assert.equal(after, 0);
});
