/**
 * GPT-2 end to end on the CPU:
 * - one AdamW training step of GPT-2 124M on a batch of 4 x 256 tokens, denograd vs the same
 *   model and step in PyTorch (`gpt2_torch_reference.py`, a subprocess driven over stdin), run
 *   alternately in the same process tree; peak memory of both;
 * - generation tokens/s with and without the KV cache (same tokens either way).
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-run bench/gpt2_bench.ts [--quick]
 *
 * `--quick` uses the `tiny` preset instead of 124M.
 * @module
 */

import {
  AdamW,
  generate,
  GPT2,
  type GPT2Config,
  gpt2Config,
  manualSeed,
  memoryStats,
  randint,
  tidy,
} from "../mod.ts";
import { type BenchOptions, median, num, quickFlag, table, timeOnce } from "./_common.ts";
import { settle, startTorch } from "./_torch.ts";

const TORCH_THREADS = 2;

/** What the GPT-2 benchmark measured. */
export interface Gpt2Result {
  preset: string;
  params: number;
  batch: number;
  seq: number;
  reps: number;
  /** Median ms of one training step (forward, backward, AdamW) in denograd. */
  denogradMs: number;
  torchMs: number | null;
  /** torchMs / denogradMs: above 1 means denograd is faster. */
  ratio: number | null;
  denogradTokensPerSec: number;
  torchTokensPerSec: number | null;
  /** Peak resident set of this process (sampled after each step) and peak live tensor bytes. */
  denogradPeakRssMB: number;
  denogradPeakTensorMB: number;
  torchPeakRssMB: number | null;
  denogradLoss: number;
  torchLoss: number | null;
  torchVersion: string | null;
  /** Generation of `genTokens` tokens after a `promptTokens` prompt, greedy. */
  genTokens: number;
  promptTokens: number;
  cachedTokensPerSec: number;
  uncachedTokensPerSec: number;
  /** cached / uncached tokens per second. */
  cacheSpeedup: number;
  torchError?: string;
}

/** Runs the training-step comparison, then the generation measurement. */
export async function runGpt2Bench(opts: BenchOptions): Promise<Gpt2Result> {
  const preset = opts.quick ? "tiny" : "gpt2";
  const config: GPT2Config = { ...gpt2Config(preset), dropout: 0 };
  const [batch, seq] = opts.quick ? [2, 64] : [4, 256];
  const warmup = 1, reps = opts.quick ? 2 : 3;

  manualSeed(0);
  const model = new GPT2(config);
  const params = model.numParameters();
  const optimizer = AdamW.forModel(model, { lr: 4e-4, weightDecay: 0.1 });
  const idx = randint(0, config.vocabSize, [batch, seq]);
  const targets = randint(0, config.vocabSize, [batch, seq]);
  let denogradLoss = NaN, peakRss = 0;
  const step = () => {
    denogradLoss = tidy(() => {
      const loss = model.loss(idx, targets);
      loss.backward();
      return loss.item();
    });
    optimizer.step();
    optimizer.zeroGrad();
  };

  const { vocabSize, contextLength, nEmbd, nLayer, nHead } = config;
  const { torch, torchError } = await startTorch(
    new URL("./gpt2_torch_reference.py", import.meta.url),
    [vocabSize, contextLength, nEmbd, nLayer, nHead, batch, seq, TORCH_THREADS],
  );

  const ours: number[] = [], theirs: number[] = [];
  let torchLoss: number | null = null;
  for (let r = 0; r < warmup + reps; r++) {
    const ms = timeOnce(step);
    peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
    if (r >= warmup) ours.push(ms);
    if (torch) {
      await settle();
      const s = await torch.step();
      torchLoss = s.loss;
      if (r >= warmup) theirs.push(s.ms);
      await settle();
    }
  }
  const torchPeakRssMB = torch ? Number((await torch.send("mem")).maxRssMB) : null;
  const torchVersion = torch?.version ?? null;
  if (torch) await torch.close();
  for (const t of [idx, targets]) t.dispose();

  // Generation: the same greedy tokens with and without the cache.
  const promptTokens = 16, genTokens = opts.quick ? 16 : 48;
  const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919) % config.vocabSize);
  const gen = (useCache: boolean) => () => {
    generate(model, prompt, { maxNewTokens: genTokens, temperature: 0, stopTokens: [], useCache });
  };
  gen(true)();
  const cachedMs = timeOnce(gen(true));
  const uncachedMs = timeOnce(gen(false));
  const peakTensorMB = memoryStats().peakBytes / 2 ** 20;
  model.dispose();

  const denogradMs = median(ours);
  const torchMs = theirs.length ? median(theirs) : null;
  const tokens = batch * seq;
  return {
    preset,
    params,
    batch,
    seq,
    reps,
    denogradMs,
    torchMs,
    ratio: torchMs === null ? null : torchMs / denogradMs,
    denogradTokensPerSec: tokens / (denogradMs / 1000),
    torchTokensPerSec: torchMs === null ? null : tokens / (torchMs / 1000),
    denogradPeakRssMB: peakRss / 2 ** 20,
    denogradPeakTensorMB: peakTensorMB,
    torchPeakRssMB,
    denogradLoss,
    torchLoss,
    torchVersion,
    genTokens,
    promptTokens,
    cachedTokensPerSec: genTokens / (cachedMs / 1000),
    uncachedTokensPerSec: genTokens / (uncachedMs / 1000),
    cacheSpeedup: uncachedMs / cachedMs,
    ...(torchError ? { torchError } : {}),
  };
}

/** The result as plain-text tables. */
export function formatGpt2(r: Gpt2Result): string {
  const step = table(
    [
      "GPT-2 training step (fwd+bwd+AdamW)",
      "denograd ms",
      "torch ms",
      "torch/denograd",
      "denograd tok/s",
      "torch tok/s",
    ],
    [[
      `${r.preset} (${(r.params / 1e6).toFixed(1)}M), B${r.batch} x T${r.seq}`,
      num(r.denogradMs, 0),
      r.torchMs === null ? "n/a" : num(r.torchMs, 0),
      r.ratio === null ? "n/a" : num(r.ratio, 3),
      num(r.denogradTokensPerSec, 1),
      r.torchTokensPerSec === null ? "n/a" : num(r.torchTokensPerSec, 1),
    ]],
  );
  const mem =
    `peak memory: denograd RSS ${num(r.denogradPeakRssMB, 0)} MB (tensors ${
      num(r.denogradPeakTensorMB, 0)
    } MB), torch RSS ${r.torchPeakRssMB === null ? "n/a" : num(r.torchPeakRssMB, 0)} MB; ` +
    `loss denograd ${num(r.denogradLoss, 4)}, torch ${
      r.torchLoss === null ? "n/a" : num(r.torchLoss, 4)
    }`;
  const gen = table(
    ["generation (greedy)", "with KV cache tok/s", "without tok/s", "speedup"],
    [[
      `${r.genTokens} tokens after ${r.promptTokens}`,
      num(r.cachedTokensPerSec, 2),
      num(r.uncachedTokensPerSec, 2),
      num(r.cacheSpeedup, 2),
    ]],
  );
  const note = r.torchError ? `\nPyTorch skipped: ${r.torchError}` : "";
  return `${step}\n${mem}\n\n${gen}${note}`;
}

if (import.meta.main) {
  console.log(formatGpt2(await runGpt2Bench({ quick: quickFlag() })));
}
