/**
 * AdamW vs Muon + AdamW: the same small GPT-2 (the demo's: 4 layers x 64 wide), the same
 * initialisation, data order and schedule, pretrained on the bundled story once with AdamW for
 * everything and once with Muon for the blocks' hidden matrices (AdamW for embeddings, biases and
 * LayerNorms). Prints a table and writes one SVG: loss against step and against training time.
 *
 *   deno task muon-vs-adamw                 # ~4 minutes on two CPU cores
 *   deno task muon-vs-adamw --steps 400 --out runs/longer
 *
 * Writes <out>/muon_vs_adamw.svg and <out>/muon_vs_adamw.json (both runs' curves).
 */
import { join } from "node:path";
import {
  AdamW,
  type ChartSeries,
  countParameters,
  GPT2,
  gpt2Config,
  lineChartsSvg,
  manualSeed,
  muonWithAdamW,
  pretrain,
  slidingWindows,
  Tokenizer,
  type TrainOptimizer,
  trainValSplit,
  writeFileAtomic,
} from "../mod.ts";
import { defineCli, runMain } from "../cli/_args.ts";

const CLI = defineCli({
  name: "muon-vs-adamw",
  usage: "deno task muon-vs-adamw [options]",
  summary: "AdamW vs Muon + AdamW: the same small GPT-2, data and schedule, trained twice.",
  flags: {
    steps: { type: "int", min: 1, default: 200, description: "optimizer steps per run" },
    batch: { type: "int", min: 1, default: 2, description: "sequences per step" },
    context: { type: "int", min: 1, default: 128, description: "tokens per sequence" },
    "adamw-lr": {
      type: "number",
      above: 0,
      default: 5e-3,
      description: "AdamW's peak lr, in both runs",
    },
    "muon-lr": {
      type: "number",
      above: 0,
      default: 0.02,
      description: "Muon's peak lr for the hidden matrices",
    },
    seed: {
      type: "int",
      min: 0,
      default: 1337,
      description: "model init and data order, shared by both runs",
    },
    out: {
      type: "string",
      value: "DIR",
      default: "runs/muon_vs_adamw",
      description: "plot and curves",
    },
  },
});

await runMain(CLI, async (args) => {
  const { steps, batch: batchSize, context, seed } = args;
  const adamwLr = args["adamw-lr"], muonLr = args["muon-lr"];

  const config = gpt2Config("tiny", { nEmbd: 64, nLayer: 4, nHead: 4, contextLength: context });
  const tokenizer = await Tokenizer.gpt2();
  const ids = tokenizer.encode(
    await Deno.readTextFile(new URL("./data/the-verdict.txt", import.meta.url)),
  );
  const { train, val } = trainValSplit(ids, { valFraction: 0.1 });
  console.log(
    `GPT-2 ${config.nLayer} layers x ${config.nEmbd} wide (${
      (countParameters(config) / 1e6).toFixed(2)
    }M parameters), ${steps} steps of ${batchSize} x ${context} tokens per run`,
  );

  const adamwOptions = { lr: adamwLr, betas: [0.9, 0.95] as const, weightDecay: 0.1 };
  const runs: { name: string; make: (m: GPT2) => TrainOptimizer }[] = [
    { name: "AdamW", make: (m) => AdamW.forModel(m, adamwOptions) },
    {
      name: "Muon + AdamW",
      make: (m) => muonWithAdamW(m, { muon: { lr: muonLr, momentum: 0.95 }, adamw: adamwOptions }),
    },
  ];

  interface Curve {
    name: string;
    /** [step, train loss, seconds of training so far]. */
    train: [number, number, number][];
    /** [step, val loss, seconds]. */
    val: [number, number, number][];
    seconds: number;
    tokensPerSecond: number;
  }

  const curves: Curve[] = [];
  for (const run of runs) {
    manualSeed(seed);
    const model = new GPT2(config);
    const optimizer = run.make(model);
    const curve: Curve = { name: run.name, train: [], val: [], seconds: 0, tokensPerSecond: 0 };
    let seconds = 0; // training-step time only: evaluation is left out of the time axis
    console.log(`\n== ${run.name} ==`);
    const result = await pretrain({
      model,
      train: slidingWindows(train, { maxLength: context, stride: context >> 1 }),
      val: slidingWindows(val, { maxLength: context }),
      batchSize,
      steps,
      optimizer, // each group's lr is its peak: linear warmup, then a cosine to a tenth
      warmup: Math.min(20, Math.floor(steps / 10)),
      clip: 1,
      evalEvery: Math.max(1, Math.floor(steps / 8)),
      evalBatches: 10,
      seed,
      log: (line) => console.log(`  ${line}`),
      onStep: (r) => {
        seconds += r.ms / 1000;
        curve.train.push([r.step, r.loss, seconds]);
      },
    });
    for (const [step, loss] of result.valLosses) {
      curve.val.push([step, loss, curve.train[step - 1][2]]);
    }
    curve.seconds = seconds;
    curve.tokensPerSecond = result.tokensPerSecond;
    curves.push(curve);
    optimizer.dispose();
    model.dispose();
  }

  // ---- table ----
  const meanLast = (c: Curve, n: number) =>
    c.train.slice(-n).reduce((s, [, l]) => s + l, 0) / Math.min(n, c.train.length);
  const rows = curves.map((c) => [
    c.name,
    meanLast(c, 20).toFixed(3),
    (c.val.at(-1)?.[1] ?? NaN).toFixed(3),
    c.seconds.toFixed(1),
    (1000 * c.seconds / c.train.length).toFixed(0),
    Math.round(c.tokensPerSecond).toLocaleString("en-US"),
  ]);
  const head = ["optimizer", "train loss (last 20)", "val loss", "train s", "ms/step", "tokens/s"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
  console.log(`\n${line(head)}\n${widths.map((w) => "-".repeat(w)).join("  ")}`);
  for (const r of rows) console.log(line(r));

  // ---- plot: train loss (smoothed) and val loss, against step and against training time ----
  const colors = ["#1f77b4", "#d62728"];
  const ema = (points: [number, number][], beta = 0.9): [number, number][] => {
    let s = points[0]?.[1] ?? 0;
    return points.map(([x, y]) => [x, s = beta * s + (1 - beta) * y]);
  };
  const series = (axis: 0 | 2): ChartSeries[] =>
    curves.flatMap((c, i) => [
      {
        name: `${c.name} train (EMA 0.9)`,
        points: ema(c.train.map((p) => [p[axis], p[1]])),
        color: colors[i],
      },
      {
        name: `${c.name} val`,
        points: c.val.map((p) => [p[axis], p[1]]),
        color: colors[i],
        markers: true,
      },
    ]);
  const svg = lineChartsSvg([
    { title: "Loss vs step", series: series(0) },
    { title: "Loss vs training time", xLabel: "seconds (training steps only)", series: series(2) },
  ]);
  await Deno.mkdir(args.out, { recursive: true });
  await writeFileAtomic(join(args.out, "muon_vs_adamw.svg"), svg);
  await writeFileAtomic(join(args.out, "muon_vs_adamw.json"), JSON.stringify(curves) + "\n");
  console.log(`\nplot and curves in ${args.out}/`);
});
