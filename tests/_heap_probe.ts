// Measures the JS heap after a full GC while a tiny GPT trains (`train N`) or generates
// (`generate N`), and prints one JSON line: {samples: [[i, heapBytes], ...], rss: [first, last]}.
// Run with --v8-flags=--expose-gc (tests/memory_flat_test.ts starts it as a subprocess).
import { generate, GPT2, gpt2Config, manualSeed, pretrain, slidingWindows } from "../mod.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const [mode, countArg, everyArg] = Deno.args;
const count = Number(countArg), every = Number(everyArg ?? Math.ceil(count / 10));
const samples: [number, number][] = [];
const rss: number[] = [];
const sample = (i: number) => {
  gc();
  gc(); // a second pass also collects what the first one's finalizers released
  const m = Deno.memoryUsage();
  samples.push([i, m.heapUsed]);
  rss.push(m.rss);
};

manualSeed(0);
const model = new GPT2(
  gpt2Config("small-test", { vocabSize: 64, contextLength: 32, nEmbd: 32, nHead: 4, nLayer: 2 }),
);
if (mode === "train") {
  const ids = Array.from({ length: 4096 }, (_, i) => (i * 7 + (i >> 3)) % 64);
  await pretrain({
    model,
    train: slidingWindows(ids, { maxLength: 32, stride: 16 }),
    batchSize: 4,
    steps: count,
    maxLr: 1e-3,
    progress: false,
    onStep: (r) => {
      if (r.step === 1 || r.step % every === 0) sample(r.step);
    },
  });
} else if (mode === "generate") {
  for (let i = 1; i <= count; i++) {
    generate(model, [1, 2, 3], { maxNewTokens: 16, seed: i, stopTokens: [] });
    if (i === 1 || i % every === 0) sample(i);
  }
} else throw new Error(`unknown mode ${mode}`);
console.log(JSON.stringify({ samples, rss: [rss[0], rss.at(-1)] }));
