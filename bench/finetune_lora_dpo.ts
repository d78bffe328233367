/**
 * Fine-tuning steps of a GPT-2 124M-shaped model (random weights) on the CPU, denograd vs the
 * same steps in PyTorch (`finetune_lora_dpo_torch.py`, a subprocess driven over stdin), run
 * alternately in the same process tree:
 * - a DPO step: full-parameter DPO (the book's), β 0.1, 2 preference pairs = 4 sequences of
 *   T tokens, the responses being the second half; the policy's forward and backward, the frozen
 *   reference's forward under noGrad, AdamW on all 124M parameters;
 * - a LoRA step: rank-16 adapters (alpha 16) on every block's attention and MLP linears of the
 *   same model, now frozen; next-token loss on 4 x T tokens; AdamW on A and B only.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-run --allow-write bench/finetune_lora_dpo.ts [--quick]
 *
 * Writes bench/results/finetune-lora-dpo-<date>.json. `--quick` uses the `tiny` preset.
 * @module
 */

import {
  AdamW,
  applyLoRA,
  collatePreferences,
  dpoBatchLoss,
  GPT2,
  type GPT2Config,
  gpt2Config,
  manualSeed,
  randint,
  referenceCopy,
  tidy,
} from "../mod.ts";
import { type BenchOptions, num, quickFlag, table } from "./_common.ts";
import { interleaveSteps, startTorch, type StepComparison } from "./_torch.ts";

const TORCH_THREADS = 2;

/** One step kind's measurement. */
/** One step of each side, interleaved in one run. */
export type StepResult = StepComparison;

/** What the benchmark measured. */
export interface FinetuneResult {
  date: string;
  preset: string;
  params: number;
  seq: number;
  reps: number;
  dpoPairs: number;
  loraBatch: number;
  loraRank: number;
  loraTrainable: number;
  dpo: StepResult;
  lora: StepResult;
  torchVersion: string | null;
  torchThreads: number | null;
  machine: string;
  torchError?: string;
}

/** Runs the DPO comparison, then LoRA on the same (now frozen) model. */
export async function runFinetuneBench(opts: BenchOptions): Promise<FinetuneResult> {
  const preset = opts.quick ? "tiny" : "gpt2";
  const config: GPT2Config = { ...gpt2Config(preset), dropout: 0 };
  const seq = opts.quick ? 64 : 128, dpoPairs = 2, loraBatch = 4, rank = 16, alpha = 16;
  const beta = 0.1, warmup = 1, reps = opts.quick ? 2 : 3;
  const { vocabSize, contextLength, nEmbd, nLayer, nHead } = config;
  const { torch, torchError } = await startTorch(
    new URL("./finetune_lora_dpo_torch.py", import.meta.url),
    [
      vocabSize,
      contextLength,
      nEmbd,
      nLayer,
      nHead,
      loraBatch,
      dpoPairs,
      seq,
      rank,
      alpha,
      beta,
      TORCH_THREADS,
    ],
  );

  manualSeed(0);
  const model = new GPT2(config);
  const params = model.numParameters();

  // ---- DPO: 2 pairs, prompt = the first half, response = the second ----
  const reference = referenceCopy(model);
  const half = seq / 2;
  const ids = (n: number) => Int32Array.from(randint(0, vocabSize, [n]).toTypedArray());
  const pairs = Array.from({ length: dpoPairs }, () => ({
    prompt: ids(half + 1),
    chosen: ids(half),
    rejected: ids(half),
  }));
  const batch = collatePreferences(pairs); // (4, seq)
  const dpoOpt = AdamW.forModel(model, { lr: 5e-6, weightDecay: 0.01 });
  const dpoStep = () =>
    tidy(() => {
      const { loss } = dpoBatchLoss(model, reference, batch, beta);
      loss.backward();
      dpoOpt.step();
      dpoOpt.zeroGrad();
      return loss.item();
    });
  const dpo = await interleaveSteps(dpoStep, torch, "dpo", warmup, reps);
  dpoOpt.dispose();
  reference.dispose();
  batch.input.dispose();
  batch.target.dispose();

  // ---- LoRA on the same model, frozen ----
  const report = applyLoRA(model, {
    targets: ["attn.c_attn", "attn.c_proj", "mlp.*"],
    rank,
    alpha,
  });
  const loraOpt = AdamW.forModel(model, { lr: 5e-4, weightDecay: 0.01 });
  const idx = randint(0, vocabSize, [loraBatch, seq]);
  const targets = randint(0, vocabSize, [loraBatch, seq]);
  const loraStep = () =>
    tidy(() => {
      const loss = model.loss(idx, targets);
      loss.backward();
      loraOpt.step();
      loraOpt.zeroGrad();
      return loss.item();
    });
  const lora = await interleaveSteps(loraStep, torch, "lora", warmup, reps);
  loraOpt.dispose();
  idx.dispose();
  targets.dispose();
  model.dispose();

  const torchVersion = torch?.version ?? null, torchThreads = torch?.threads ?? null;
  if (torch) await torch.close();
  return {
    date: new Date().toISOString().slice(0, 10),
    preset,
    params,
    seq,
    reps,
    dpoPairs,
    loraBatch,
    loraRank: rank,
    loraTrainable: report.trainableParameters,
    dpo,
    lora,
    torchVersion,
    torchThreads,
    machine: `${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
    ...(torchError ? { torchError } : {}),
  };
}

/** The result as a plain-text table. */
export function formatFinetune(r: FinetuneResult): string {
  const row = (name: string, s: StepResult) => [
    name,
    num(s.denogradMs, 0),
    s.torchMs === null ? "n/a" : num(s.torchMs, 0),
    s.ratio === null ? "n/a" : num(s.ratio, 3),
    num(s.denogradStepsPerSec, 3),
    s.torchStepsPerSec === null ? "n/a" : num(s.torchStepsPerSec, 3),
  ];
  const size = `${r.preset} (${(r.params / 1e6).toFixed(1)}M)`;
  const t = table(
    [
      "fine-tuning step",
      "denograd ms",
      "torch ms",
      "torch/denograd",
      "denograd steps/s",
      "torch steps/s",
    ],
    [
      row(`DPO ${size}, ${r.dpoPairs} pairs x T${r.seq}, all params`, r.dpo),
      row(
        `LoRA r${r.loraRank} ${size}, B${r.loraBatch} x T${r.seq}, ${
          (r.loraTrainable / 1e6).toFixed(2)
        }M trainable`,
        r.lora,
      ),
    ],
  );
  const note = r.torchError ? `\nPyTorch skipped: ${r.torchError}` : "";
  return `${t}${note}`;
}

if (import.meta.main) {
  const quick = quickFlag();
  const result = await runFinetuneBench({ quick });
  console.log(formatFinetune(result));
  const dir = new URL("./results/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  const file = new URL(`finetune-lora-dpo-${result.date}${quick ? "-quick" : ""}.json`, dir);
  Deno.writeTextFileSync(file, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${file.pathname}`);
}
