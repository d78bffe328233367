/**
 * Dense vs mixture of experts at equal ACTIVE parameters: the demo's small GPT-2 (4 layers, 64
 * wide, GPT-2's tokenizer) pretrained twice on the same text with the same batches, once with
 * GPT-2's MLP (64 -> 256 -> 64) in every block and once with 8 experts of half that width
 * (64 -> 128 -> 64), top-2, in every block: per token both run the same number of weights (the
 * MoE adds a 64 x 8 router), but the MoE holds four times the feed-forward weights.
 *
 *   deno task moe-vs-dense                 # ~3-4 minutes on two idle CPU cores
 *   deno task moe-vs-dense --steps 400 --experts 4 --top-k 1
 *
 * Prints both runs' losses and throughput and the experts' utilisation; writes
 * <out>/{dense,moe}/metrics.jsonl (MoE lines carry per-block routing stats) and
 * <out>/moe_vs_dense.svg (loss against step for both models; per MoE block, the busiest expert's
 * load and the share of choices dropped against step).
 */
import { join } from "node:path";
import {
  type ChartSeries,
  countActiveParameters,
  countParameters,
  defaultDevice,
  GPT2,
  type GPT2Config,
  gpt2Config,
  lineChartsSvg,
  manualSeed,
  type MoELayerStats,
  pretrain,
  type PretrainResult,
  slidingWindows,
  Tokenizer,
  type TrainRecord,
  trainValSplit,
  writeFileAtomic,
} from "../mod.ts";
import { defineCli, runMain, UsageError } from "../cli/_args.ts";

const CLI = defineCli({
  name: "moe-vs-dense",
  usage: "deno task moe-vs-dense [options]",
  summary: "Dense vs mixture of experts at equal active parameters, pretrained on the same text.",
  flags: {
    steps: { type: "int", min: 1, default: 200, description: "optimizer steps per model" },
    batch: { type: "int", min: 1, default: 2, description: "sequences per step" },
    context: { type: "int", min: 2, default: 128, description: "tokens per sequence" },
    experts: { type: "int", min: 1, default: 8, description: "experts per MoE block" },
    "top-k": {
      type: "int",
      min: 1,
      default: 2,
      description:
        "experts per token; the expert width is 4C / k, so the active parameters match the dense model's",
    },
    capacity: {
      type: "number",
      above: 0,
      default: 1.25,
      description: "capacity factor in training",
    },
    lr: { type: "number", above: 0, default: 5e-3, description: "peak learning rate" },
    seed: { type: "int", min: 0, default: 1337, description: "init and data order" },
    out: {
      type: "string",
      value: "DIR",
      default: "runs/moe_vs_dense",
      description: "metrics and plot",
    },
  },
});

await runMain(CLI, async (args) => {
  const { steps, batch: batchSize, context, seed, experts, capacity: capacityFactor, lr: maxLr } =
    args;
  const topK = args["top-k"];
  if (topK > experts) throw new UsageError(`--top-k ${topK} exceeds --experts ${experts}`);

  const dense = gpt2Config("tiny", { nEmbd: 64, nLayer: 4, nHead: 4, contextLength: context });
  const c = dense.nEmbd;
  if ((4 * c) % topK !== 0) {
    throw new UsageError(
      `--top-k must divide 4C = ${4 * c} so the experts can match the dense width`,
    );
  }
  const moe: GPT2Config = {
    ...dense,
    moe: { experts, topK, hidden: (4 * c) / topK, capacityFactor, layers: "all" },
  };

  const device = defaultDevice();
  const tokenizer = await Tokenizer.gpt2();
  const ids = tokenizer.encode(
    await Deno.readTextFile(new URL("./data/the-verdict.txt", import.meta.url)),
  );
  const { train, val } = trainValSplit(ids, { valFraction: 0.1 });
  const M = (n: number) => `${(n / 1e6).toFixed(3)}M`;

  /** One run's curves and routing. */
  interface Run {
    name: string;
    config: GPT2Config;
    result: PretrainResult;
    /** [step, cross-entropy]: the logged loss minus the MoE's weighted router losses. */
    trainCe: [number, number][];
    /** The routing stats of every step (MoE only). */
    moe: MoELayerStats[][];
  }

  async function run(name: string, config: GPT2Config): Promise<Run> {
    manualSeed(seed);
    const model = new GPT2(config, { device });
    console.log(
      `\n== ${name}: ${M(countParameters(config))} parameters, ${
        M(countActiveParameters(config))
      } active per token ==`,
    );
    const trainCe: [number, number][] = [];
    const routing: MoELayerStats[][] = [];
    const { auxLossWeight = 0.01, zLossWeight = 0.001 } = config.moe ?? {};
    const result = await pretrain({
      model,
      train: slidingWindows(train, { maxLength: context, stride: context >> 1 }),
      val: slidingWindows(val, { maxLength: context }),
      batchSize,
      steps,
      maxLr,
      minLr: maxLr / 10,
      warmup: Math.min(20, Math.floor(steps / 10)),
      evalEvery: 50,
      evalBatches: 10,
      metricsPath: join(args.out, name, "metrics.jsonl"),
      seed,
      log: (line) => console.log(line),
      onStep: (r) => {
        // MoE models' records also carry each MoE block's routing stats.
        const layers = (r as TrainRecord & { moe?: MoELayerStats[] }).moe ?? [];
        const router = layers.reduce(
          (a, s) => a + auxLossWeight * s.auxLoss + zLossWeight * s.zLoss,
          0,
        );
        trainCe.push([r.step, r.loss - router]);
        if (layers.length) routing.push(layers);
      },
    });
    model.dispose();
    return { name, config, result, trainCe, moe: routing };
  }

  const runs = [await run("dense", dense), await run("moe", moe)];

  console.log("\n== summary ==");
  for (const r of runs) {
    const ce = r.trainCe,
      last10 = ce.slice(-10).reduce((a, p) => a + p[1], 0) / Math.min(10, ce.length);
    console.log(
      `${r.name.padEnd(5)}  ${M(countParameters(r.config))} params (${
        M(countActiveParameters(r.config))
      } active)  train CE ${ce[0][1].toFixed(3)} -> ${last10.toFixed(3)} (mean of last 10)  ` +
        `val ${r.result.valLosses.at(-1)![1].toFixed(3)}  ${
          Math.round(r.result.tokensPerSecond)
        } tokens/s  ${r.result.seconds.toFixed(0)} s`,
    );
  }

  // Expert utilisation: each block's share of the choices per expert over the whole run, and drops.
  const moeRun = runs[1];
  const blocks = moeRun.moe[0].map((s) => s.layer);
  console.log(`\nexpert utilisation over the run (share of choices processed, %, per block):`);
  for (const [i, layer] of blocks.entries()) {
    const processed = new Array<number>(experts).fill(0),
      routed = new Array<number>(experts).fill(0);
    let dropped = 0, droppedTokens = 0, tokens = 0;
    for (const step of moeRun.moe) {
      const s = step[i];
      s.tokensPerExpert.forEach((v, e) => processed[e] += v);
      s.routed.forEach((v, e) => routed[e] += v);
      dropped += s.dropped;
      droppedTokens += s.droppedTokens;
      tokens += s.tokens;
    }
    const total = routed.reduce((a, b) => a + b, 0);
    const shares = processed.map((v) => ((100 * v) / total).toFixed(1).padStart(5));
    console.log(
      `  block ${layer}: [${shares.join(" ")}]  dropped ${
        (100 * dropped / total).toFixed(1)
      }% of ` +
        `choices, ${(100 * droppedTokens / tokens).toFixed(2)}% of tokens entirely`,
    );
  }
  const lastAux = moeRun.moe.at(-1)!.map((s) => s.auxLoss.toFixed(3)).join(", ");
  console.log(`load-balancing loss at the last step per block: ${lastAux} (1 = balanced)`);

  // One SVG: loss against step for both models; per MoE block, how unevenly the choices spread
  // (busiest expert's load over the mean, 1 = balanced) and what share was dropped, each as a
  // running mean over 10 steps (single steps are too noisy to read).
  const smooth = (ys: number[]): [number, number][] =>
    ys.map((_, i) => {
      const w = ys.slice(Math.max(0, i - 9), i + 1);
      return [i + 1, w.reduce((a, b) => a + b, 0) / w.length];
    });
  const perBlock = (f: (s: MoELayerStats) => number): ChartSeries[] =>
    blocks.map((layer, i) => ({
      name: `block ${layer}`,
      points: smooth(moeRun.moe.map((st) => f(st[i]))),
    }));
  const svg = lineChartsSvg([
    {
      title: `dense vs MoE (${experts} experts, top-${topK}) at equal active parameters`,
      series: runs.flatMap((r) => [
        { name: `${r.name} train CE`, points: r.trainCe },
        { name: `${r.name} val`, points: r.result.valLosses, markers: true },
      ]),
    },
    {
      title: "MoE load: busiest expert's choices / mean",
      yLabel: "max / mean routed",
      series: perBlock((s) => (Math.max(...s.routed) * experts) / (s.tokens * topK)),
    },
    {
      title: `MoE choices dropped at capacity factor ${capacityFactor}`,
      yLabel: "% dropped",
      series: perBlock((s) => (100 * s.dropped) / (s.tokens * topK)),
    },
  ], { panelWidth: 560 });
  const plotPath = join(args.out, "moe_vs_dense.svg");
  await writeFileAtomic(plotPath, svg);
  console.log(`\nmetrics in ${args.out}/{dense,moe}/metrics.jsonl, plot in ${plotPath}`);
});
