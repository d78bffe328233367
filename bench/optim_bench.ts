/**
 * Optimizer step time on GPT-2 124M's parameter set (124.4M values in 148 tensors) on the CPU:
 * SGD with momentum, Adam, AdamW and Muon + AdamW in denograd vs torch.optim (for-loop and
 * `foreach` implementations; Muon against the PyTorch reference the tests check), run
 * alternately in the same run (`optim_torch_reference.py`, a subprocess driven over stdin).
 * Only `optimizer.step()` is timed; the gradients are fixed random tensors.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-run --allow-write bench/optim_bench.ts [--quick]
 *
 * Writes bench/results/optim-<date>.json. `--quick` uses the `tiny` preset's shapes.
 * @module
 */

import {
  Adam,
  AdamW,
  GPT2,
  gpt2Config,
  keep,
  manualSeed,
  muonWithAdamW,
  randn,
  SGD,
  type TrainOptimizer,
} from "../mod.ts";
import { type BenchOptions, median, num, quickFlag, table, timeOnce } from "./_common.ts";
import { settle, startTorch, type TorchProcess } from "./_torch.ts";

const TORCH_THREADS = 2;

/** One optimizer's measurement. */
export interface OptimRow {
  optimizer: string;
  /** Median ms of one denograd step. */
  denogradMs: number;
  /** Median ms of torch.optim's for-loop implementation (foreach=False). */
  torchMs: number | null;
  /** Median ms with foreach=True (for Muon + AdamW: the AdamW part's). */
  torchForeachMs: number | null;
  /** torchMs / denogradMs: above 1 means denograd is faster. */
  ratio: number | null;
  /** torchForeachMs / denogradMs. */
  ratioForeach: number | null;
  reps: number;
}

/** What the optimizer benchmark measured. */
export interface OptimResult {
  preset: string;
  params: number;
  tensors: number;
  rows: OptimRow[];
  torchVersion: string | null;
  torchThreads: number | null;
  torchError?: string;
}

interface Kind {
  name: string;
  /** The reference script's name for it. */
  torch: string;
  make: (model: GPT2) => TrainOptimizer;
  /** The for-loop torch variant; Muon's reference has only one, with AdamW's foreach toggled. */
  loopVariant: boolean;
  warmup: number;
  reps: (quick: boolean) => number;
}

const KINDS: Kind[] = [
  {
    name: "SGD (momentum 0.9)",
    torch: "sgd",
    make: (m) => new SGD(m.parameters(), { lr: 0.01, momentum: 0.9 }),
    loopVariant: true,
    warmup: 1,
    reps: (q) => q ? 2 : 3,
  },
  {
    name: "Adam",
    torch: "adam",
    make: (m) => new Adam(m.parameters(), { lr: 1e-3 }),
    loopVariant: true,
    warmup: 1,
    reps: (q) => q ? 2 : 3,
  },
  {
    name: "AdamW (wd 0.1 on matrices)",
    torch: "adamw",
    make: (m) => AdamW.forModel(m, { lr: 6e-4, betas: [0.9, 0.95], weightDecay: 0.1 }),
    loopVariant: true,
    warmup: 1,
    reps: (q) => q ? 2 : 3,
  },
  {
    name: "Muon (blocks) + AdamW (rest)",
    torch: "muon",
    make: (m) =>
      muonWithAdamW(m, {
        muon: { lr: 0.02, momentum: 0.95 },
        adamw: { lr: 6e-4, betas: [0.9, 0.95], weightDecay: 0.1 },
      }),
    loopVariant: false,
    // Newton–Schulz costs ~1.5 TFLOP per step at 124M (seconds of BLAS): no warmup step, and
    // only AdamW's foreach variant on the torch side.
    warmup: 0,
    reps: () => 2,
  },
];

/** One timed torch step of the variant set up last. */
async function torchStep(torch: TorchProcess, variant: "loop" | "foreach"): Promise<number> {
  await settle();
  const { ms } = await torch.send(`step ${variant}`);
  await settle();
  return Number(ms);
}

/** Times every optimizer on both sides, alternating step by step. */
export async function runOptimBench(opts: BenchOptions): Promise<OptimResult> {
  const preset = opts.quick ? "tiny" : "gpt2";
  const config = { ...gpt2Config(preset), dropout: 0 };
  manualSeed(0);
  const model = new GPT2(config);
  const params = model.parameters();
  for (const p of params) p.grad = keep(randn(p.shape).mul(1e-3));

  const { vocabSize, contextLength, nEmbd, nLayer } = config;
  const { torch, torchError } = await startTorch(
    new URL("./optim_torch_reference.py", import.meta.url),
    [vocabSize, contextLength, nEmbd, nLayer, TORCH_THREADS],
  );

  const rows: OptimRow[] = [];
  try {
    for (const kind of KINDS) {
      const reps = kind.reps(opts.quick);
      const optimizer = kind.make(model);
      const ours: number[] = [], loop: number[] = [], foreach: number[] = [];
      if (torch) await torch.send(`setup ${kind.torch}`);
      for (let r = 0; r < kind.warmup + reps; r++) {
        const timed = r >= kind.warmup;
        const ms = timeOnce(() => optimizer.step());
        if (timed) ours.push(ms);
        if (!torch) continue;
        if (kind.loopVariant) {
          const t = await torchStep(torch, "loop");
          if (timed) loop.push(t);
        }
        const t = await torchStep(torch, "foreach");
        if (timed) foreach.push(t);
      }
      optimizer.dispose();
      const denogradMs = median(ours);
      console.error(`  ${kind.name}: denograd ${num(denogradMs, 1)} ms (${reps} reps)`);
      const torchLoop = loop.length ? median(loop) : null;
      const torchForeach = foreach.length ? median(foreach) : null;
      rows.push({
        optimizer: kind.name,
        denogradMs,
        torchMs: torchLoop,
        torchForeachMs: torchForeach,
        ratio: torchLoop === null ? null : torchLoop / denogradMs,
        ratioForeach: torchForeach === null ? null : torchForeach / denogradMs,
        reps,
      });
    }
  } finally {
    if (torch) await torch.close();
  }
  const result: OptimResult = {
    preset,
    params: model.numParameters(),
    tensors: params.length,
    rows,
    torchVersion: torch?.version ?? null,
    torchThreads: torch?.threads ?? null,
    ...(torchError ? { torchError } : {}),
  };
  model.dispose();
  return result;
}

/** The result as a plain-text table. */
export function formatOptim(r: OptimResult): string {
  const head = [
    `${r.preset} (${(r.params / 1e6).toFixed(1)}M in ${r.tensors} tensors)`,
    "denograd ms",
    "torch loop ms",
    "torch foreach ms",
    "loop/denograd",
    "foreach/denograd",
  ];
  const cell = (x: number | null, d: number) => x === null ? "n/a" : num(x, d);
  const body = r.rows.map((row) => [
    row.optimizer,
    num(row.denogradMs, 1),
    cell(row.torchMs, 1),
    cell(row.torchForeachMs, 1),
    cell(row.ratio, 2),
    cell(row.ratioForeach, 2),
  ]);
  const note = r.torchError
    ? `\nPyTorch skipped: ${r.torchError}`
    : `\ntorch ${r.torchVersion} with ${r.torchThreads} threads; Muon's torch side is the ` +
      `fixture's reference (no foreach), with AdamW's foreach toggled`;
  return table(head, body) + note;
}

if (import.meta.main) {
  const quick = quickFlag();
  const t0 = performance.now();
  const result = await runOptimBench({ quick });
  console.log(formatOptim(result));
  const date = new Date().toISOString().slice(0, 10);
  const dir = new URL("./results/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  const file = new URL(`optim-${date}${quick ? "-quick" : ""}.json`, dir);
  const report = {
    date,
    quick,
    machine: { cores: navigator.hardwareConcurrency, deno: Deno.version.deno },
    wallSeconds: (performance.now() - t0) / 1000,
    ...result,
  };
  Deno.writeTextFileSync(file, JSON.stringify(report, null, 2) + "\n");
  console.log(`wrote ${file.pathname} (${report.wallSeconds.toFixed(0)} s)`);
}
