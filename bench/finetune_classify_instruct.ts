/**
 * Fine-tuning steps of a GPT-2 124M-shaped model (random weights) on the CPU, denograd vs the same
 * steps in PyTorch (`finetune_classify_instruct_torch.py`, a subprocess driven over stdin), run
 * alternately in the same process tree:
 * - a classification step (the book's chapter 6): `GPT2Classifier` with the last block, the final
 *   LayerNorm and a 2-class head trainable, 8 right-padded texts of up to 120 tokens (the book's
 *   longest SMS), logits at each row's last real token, AdamW on the 7.1M trainable parameters;
 * - an instruction step (chapter 7): `collateInstructions` batch of 4 sequences of up to 128 tokens
 *   (end-of-text learned, padding masked), `instructionLoss`, AdamW on all 124M parameters.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-run --allow-write bench/finetune_classify_instruct.ts [--quick]
 *
 * Writes bench/results/finetune-classify-instruct-<date>.json. `--quick` uses the `tiny` preset.
 * @module
 */

import {
  AdamW,
  collateClassification,
  collateInstructions,
  GPT2,
  GPT2Classifier,
  type GPT2Config,
  gpt2Config,
  instructionLoss,
  manualSeed,
  tidy,
} from "../mod.ts";
import { type BenchOptions, num, quickFlag, table } from "./_common.ts";
import { interleaveSteps, startTorch, type StepComparison } from "./_torch.ts";

const TORCH_THREADS = 2;

/** One step kind's measurement. */
/** One step timed on both sides, with what it trained on. */
export interface StepMeasurement extends StepComparison {
  /** Trainable parameters of the step. */
  trainable: number;
  /** The real length of each row (the batch is padded to the longest). */
  lengths: number[];
}

/** What the benchmark measured. */
export interface ClassifyInstructResult {
  date: string;
  preset: string;
  params: number;
  reps: number;
  classify: StepMeasurement;
  instruct: StepMeasurement;
  torchVersion: string | null;
  torchThreads: number | null;
  machine: string;
  torchError?: string;
}

function cpuModel(): string {
  try {
    const { stdout } = new Deno.Command("cat", { args: ["/proc/cpuinfo"] }).outputSync();
    const line = new TextDecoder().decode(stdout).split("\n").find((l) =>
      l.startsWith("model name")
    );
    return `${
      line ? line.split(":")[1].trim() : "unknown"
    }, ${navigator.hardwareConcurrency} cores`;
  } catch {
    return "unknown";
  }
}

/** Deterministic pseudo-random token ids, (n) in [0, vocab). */
function ids(n: number, vocab: number, salt: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104729) % vocab);
}

/** Times both steps, interleaved with PyTorch. */
export async function runClassifyInstructBench(
  opts: BenchOptions,
): Promise<ClassifyInstructResult> {
  const preset = opts.quick ? "tiny" : "gpt2";
  const config: GPT2Config = { ...gpt2Config(preset), dropout: 0 };
  const { vocabSize, contextLength, nEmbd, nLayer, nHead } = config;
  const clsLengths = opts.quick ? [60, 48, 55, 32] : [120, 96, 110, 64, 120, 80, 100, 72];
  const insLengths = opts.quick ? [64, 50, 40, 32] : [128, 112, 96, 80];
  const warmup = 1, reps = opts.quick ? 2 : 3;

  const { torch, torchError } = await startTorch(
    new URL("./finetune_classify_instruct_torch.py", import.meta.url),
    [
      vocabSize,
      contextLength,
      nEmbd,
      nLayer,
      nHead,
      TORCH_THREADS,
      clsLengths.join(),
      insLengths.join(),
    ],
  );
  let classify: StepMeasurement, instruct: StepMeasurement;
  let params = 0;
  try {
    // ---- classification: last block + ln_f + head train ----
    manualSeed(0);
    const clf = new GPT2Classifier(new GPT2(config), { numClasses: 2 });
    params = clf.transformer.numParameters({ includeFrozen: true });
    const clfOpt = AdamW.forModel(clf, { lr: 5e-5, weightDecay: 0.1 });
    const clsBatch = collateClassification(
      clsLengths.map((n, i) => ({ ids: ids(n, vocabSize, i), label: i % 2 })),
    );
    const clsStep = () =>
      tidy(() => {
        const loss = clf.loss(clsBatch.input, clsBatch.lengths, clsBatch.labels);
        loss.backward();
        clfOpt.step();
        clfOpt.zeroGrad();
        return loss.item();
      });
    classify = {
      ...(await interleaveSteps(clsStep, torch, "classify", warmup, reps)),
      trainable: clf.numParameters(),
      lengths: clsLengths,
    };
    clfOpt.dispose();
    clf.dispose();
    clsBatch.input.dispose();
    clsBatch.labels.dispose();

    // ---- instruction tuning: every parameter trains ----
    manualSeed(0);
    const lm = new GPT2(config);
    const lmOpt = AdamW.forModel(lm, { lr: 5e-5, weightDecay: 0.1 });
    const insBatch = collateInstructions(
      insLengths.map((n, i) => ({ ids: ids(n, vocabSize - 1, i + 100), promptLength: 0 })),
    );
    const insStep = () =>
      tidy(() => {
        const loss = instructionLoss(lm, insBatch);
        loss.backward();
        lmOpt.step();
        lmOpt.zeroGrad();
        return loss.item();
      });
    instruct = {
      ...(await interleaveSteps(insStep, torch, "instruct", warmup, reps)),
      trainable: lm.numParameters(),
      lengths: insLengths,
    };
    lmOpt.dispose();
    lm.dispose();
    insBatch.input.dispose();
    insBatch.target.dispose();
  } finally {
    await torch?.close();
  }
  return {
    date: new Date().toISOString().slice(0, 10),
    preset,
    params,
    reps,
    classify,
    instruct,
    torchVersion: torch?.version ?? null,
    torchThreads: torch?.threads ?? null,
    machine: cpuModel(),
    ...(torchError ? { torchError } : {}),
  };
}

/** The result as a plain-text table. */
export function formatClassifyInstruct(r: ClassifyInstructResult): string {
  const row = (name: string, s: StepMeasurement) => [
    `${name}, ${(s.trainable / 1e6).toFixed(1)}M trainable, B${s.lengths.length} x T<=${
      Math.max(...s.lengths)
    }`,
    num(s.denogradMs, 0),
    s.torchMs === null ? "n/a" : num(s.torchMs, 0),
    s.ratio === null ? "n/a" : num(s.ratio, 3),
    num(s.denogradStepsPerSec, 3),
    s.torchStepsPerSec === null ? "n/a" : num(s.torchStepsPerSec, 3),
  ];
  const t = table(
    [
      `${r.preset} (${(r.params / 1e6).toFixed(1)}M) fine-tuning step`,
      "denograd ms",
      "torch ms",
      "torch/denograd",
      "denograd steps/s",
      "torch steps/s",
    ],
    [row("classify", r.classify), row("instruct", r.instruct)],
  );
  const note = r.torchError ? `\nPyTorch skipped: ${r.torchError}` : "";
  return `${t}\n${r.machine}; torch ${r.torchVersion ?? "n/a"} (${r.torchThreads} threads)${note}`;
}

if (import.meta.main) {
  const quick = quickFlag();
  const result = await runClassifyInstructBench({ quick });
  console.log(formatClassifyInstruct(result));
  const dir = new URL("./results/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  const file = new URL(
    `finetune-classify-instruct-${result.date}${quick ? "-quick" : ""}.json`,
    dir,
  );
  Deno.writeTextFileSync(file, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${file.pathname}`);
}
