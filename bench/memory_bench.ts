/**
 * Memory over a long run: GPT-2 124M pretrained for 200 steps (AdamW, clip 1, 1 x 64 tokens),
 * with the JS heap after a full GC, the process RSS and the live tensor bytes sampled every 20
 * steps. Flat means nothing is kept per step; the reference is the run's own first samples.
 *
 *   deno task bench:memory              # 200 steps, writes bench/results/memory-<date>.json
 *   deno task bench:memory --steps 40   # shorter
 * @module
 */

import { parseArgs } from "node:util";
import { GPT2, gpt2Config, manualSeed, memoryStats, pretrain, slidingWindows } from "../mod.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc (deno task bench:memory does)");
const { values } = parseArgs({
  args: Deno.args,
  options: { steps: { type: "string", default: "200" }, out: { type: "string" } },
});
const steps = Number(values.steps), every = Math.max(1, Math.round(steps / 10));

const MiB = 2 ** 20;
interface Sample {
  step: number;
  heapMiB: number;
  rssMiB: number;
  liveTensorMiB: number;
}
const samples: Sample[] = [];
const sample = (step: number) => {
  gc();
  gc();
  const m = Deno.memoryUsage();
  const s = {
    step,
    heapMiB: +(m.heapUsed / MiB).toFixed(2),
    rssMiB: +(m.rss / MiB).toFixed(1),
    liveTensorMiB: +(memoryStats().liveBytes / MiB).toFixed(2),
  };
  samples.push(s);
  console.log(JSON.stringify(s));
};

manualSeed(0);
const model = new GPT2(gpt2Config("gpt2", { dropout: 0 }));
const ids = Array.from({ length: 64 * 1024 }, (_, i) => (i * 7919 + (i >> 5)) % 50257);
const t0 = performance.now();
await pretrain({
  model,
  train: slidingWindows(ids, { maxLength: 64, stride: 64 }),
  batchSize: 1,
  steps,
  maxLr: 6e-4,
  warmup: 10,
  clip: 1,
  progress: false,
  onStep: (r) => {
    if (r.step === 1 || r.step % every === 0) sample(r.step);
  },
});
const seconds = (performance.now() - t0) / 1000;

// Growth from the first sample after warm-up (the second) to the last.
const [warm, last] = [samples[1], samples.at(-1)!];
const report = {
  date: new Date().toISOString().slice(0, 10),
  what: `GPT-2 124M, ${steps} pretraining steps of 1 x 64 tokens, AdamW + clip, CPU`,
  deno: Deno.version.deno,
  cores: navigator.hardwareConcurrency,
  seconds: Math.round(seconds),
  heapGrowthMiB: +(last.heapMiB - warm.heapMiB).toFixed(2),
  rssGrowthMiB: +(last.rssMiB - warm.rssMiB).toFixed(1),
  liveTensorGrowthMiB: +(last.liveTensorMiB - warm.liveTensorMiB).toFixed(2),
  samples,
};
console.log(
  `heap ${warm.heapMiB} -> ${last.heapMiB} MiB, RSS ${warm.rssMiB} -> ${last.rssMiB} MiB, ` +
    `live tensors ${warm.liveTensorMiB} -> ${last.liveTensorMiB} MiB (steps ${warm.step}-${last.step})`,
);
const out = values.out ?? `bench/results/memory-${report.date}.json`;
await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
console.log(`wrote ${out}`);
