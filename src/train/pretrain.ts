/**
 * Pretraining: next-token prediction with AdamW (or any optimizer: SGD, Adam, Muon + AdamW),
 * linear warmup + cosine decay (or any schedule), periodic validation loss and text samples, on
 * the one training loop ({@linkcode runLoop}: accumulation, clipping, the NaN guard, checkpoints
 * that resume bit-identically, JSONL metrics, a loss-curve SVG and a progress bar).
 * @module
 */

import { noGrad } from "../autograd.ts";
import { autocast } from "../autocast.ts";
import { tidy } from "../memory.ts";
import { stack } from "../ops/movement.ts";
import type { Tensor } from "../tensor.ts";
import type { Dataset, Example } from "../data/dataset.ts";
import { type BatchSource, DataLoader } from "../data/loader.ts";
import { generate } from "../models/gpt2/generate.ts";
import type { GPT2 } from "../models/gpt2/model.ts";
import { mergeMoEStats, type MoELayerStats } from "../nn/moe.ts";
import { AdamW } from "../optim/adamw.ts";
import type { TrainOptimizer } from "../optim/optimizer.ts";
import { type LrSchedule, warmupCosine } from "../optim/schedule.ts";
import { intOption, type LoopOptions, numOption, runLoop, totalStepsOption } from "./loop.ts";

/** Turns text into token ids and back (a {@linkcode Tokenizer} fits). */
export interface TextCodec {
  /** Text to token ids. */
  encode(text: string): number[];
  /** Token ids to text. */
  decode(ids: readonly number[]): string;
}

/** Options of {@linkcode pretrain}. Only `model`, `train` and a length (steps or epochs) are needed. */
export interface PretrainOptions extends LoopOptions {
  /** The model to train, in place. */
  model: GPT2;
  /** Training data: a dataset of windows (batched here with `batchSize`) or a loader. */
  train: Dataset<Example> | BatchSource;
  /** Validation data; its first `evalBatches` batches are evaluated every time. */
  val?: Dataset<Example> | BatchSource;
  /** Sequences per micro-batch when `train`/`val` are datasets. */
  batchSize?: number;
  /** Peak learning rate (default 6e-4). */
  maxLr?: number;
  /** Final learning rate of the cosine (default maxLr / 10). */
  minLr?: number;
  /** Linear warmup steps (default 0). */
  warmup?: number;
  /** AdamW weight decay of matrices and embeddings (default 0.1); see `AdamW.forModel`. */
  weightDecay?: number;
  /** AdamW betas (default [0.9, 0.95]). */
  betas?: readonly [number, number];
  /** AdamW eps (default 1e-8). */
  eps?: number;
  /**
   * The optimizer, over every parameter of `model` (e.g. `muonWithAdamW(model)`, `new SGD(...)`);
   * default: `AdamW.forModel(model)` with `maxLr`, `weightDecay`, `betas` and `eps`, which must
   * not be given with it (nor `minLr`). Each group's lr as built is its peak, scaled every step by
   * `lrSchedule` (default: `warmup` linear steps, then a cosine to a tenth). The caller keeps
   * ownership (dispose it when done); its state goes into and comes back from checkpoints.
   */
  optimizer?: TrainOptimizer;
  /**
   * The learning-rate factor of each 0-based step, multiplying every group's peak lr
   * (`optimizer.scaleLr`), e.g. `warmupStableDecay({ maxLr: 1, ... })`; replaces `warmup` and
   * `minLr`. The logged lr is the first group's.
   */
  lrSchedule?: LrSchedule;
  /** Clip the global gradient norm to this (default 1; 0 turns clipping off). */
  clip?: number;
  /** Validation batches per evaluation (default 20, at most one epoch of `val`). */
  evalBatches?: number;
  /** Print a sample every this many steps (default 0: none; needs `tokenizer`). */
  sampleEvery?: number;
  /** The prompt of the samples (default "The"). */
  samplePrompt?: string;
  /** Tokens per sample (default 40). */
  sampleTokens?: number;
  /** Encodes prompts and decodes samples. */
  tokenizer?: TextCodec;
  /** Seed of the training data's shuffling when `train` is a dataset (default 0). */
  seed?: number;
  /**
   * "bf16": mixed precision — forward passes run under `autocast("bf16")` (bf16 matrix products,
   * f32 master weights, f32 softmax/layer norm/loss); needs a CUDA model. Default "f32".
   */
  precision?: "f32" | "bf16";
}

/** What {@linkcode pretrain} did in this run. */
export interface PretrainResult {
  /** The step count reached (the total over resumed runs). */
  step: number;
  /** The step this run started from (0, or the checkpoint's). */
  startStep: number;
  /** Training loss of every step of this run (NaN or Infinity for a skipped step). */
  trainLosses: number[];
  /** [step, loss] of every evaluation of this run. */
  valLosses: [number, number][];
  /** Samples generated in this run. */
  samples: { step: number; text: string }[];
  /** Tokens trained on in this run. */
  tokens: number;
  /** Wall time of this run. */
  seconds: number;
  /** tokens / seconds, counting only the time spent in training steps. */
  tokensPerSecond: number;
  /** Live bytes after the first and after the last step (flat when nothing leaks). */
  liveBytes: [number, number];
  /** Steps whose update was skipped for a non-finite loss or gradient (over resumed runs too). */
  skippedSteps: number;
}

function isSource(x: unknown): x is BatchSource {
  return typeof x === "object" && x !== null && "next" in x && "loadState" in x;
}

/** A given optimizer must cover the model and not come with the default AdamW's options. */
function checkOptimizer(opt: TrainOptimizer, model: GPT2, o: PretrainOptions): void {
  const fns = ["step", "zeroGrad", "scaleLr", "lrs", "state", "loadState"] as const;
  if (typeof opt !== "object" || opt === null || !fns.every((f) => typeof opt[f] === "function")) {
    throw new TypeError(`pretrain: optimizer must have ${fns.join(", ")} (an Optimizer)`);
  }
  const clash = (["maxLr", "minLr", "weightDecay", "betas", "eps"] as const)
    .filter((k) => o[k] !== undefined);
  if (clash.length) {
    throw new TypeError(
      `pretrain: ${clash.join(", ")} configure the default AdamW; with an optimizer, set each ` +
        `group's lr when building it and shape the run with lrSchedule`,
    );
  }
  const covered = new Set(opt.params);
  const missing = model.namedParameters().filter(([, p]) => !covered.has(p)).map(([n]) => n);
  if (missing.length) {
    throw new RangeError(
      `pretrain: the optimizer does not update ${missing.length} parameter(s) of the model: ` +
        missing.slice(0, 5).join(", ") + (missing.length > 5 ? ", ..." : ""),
    );
  }
}

/**
 * Mean loss of `model` over the first `batches` batches of `source` (from its start), without
 * gradients and in eval mode; the source is left at its start and the model's mode restored.
 */
export function evaluateLoss(
  model: GPT2,
  source: BatchSource,
  batches: number,
  precision: "f32" | "bf16" = "f32",
): number {
  const n = Math.min(batches, source.batchesPerEpoch);
  const wasTraining = model.training;
  model.eval();
  source.loadState({ epoch: 0, batch: 0 });
  try {
    return noGrad(() =>
      tidy(() => {
        const losses: Tensor[] = [];
        for (let i = 0; i < n; i++) {
          const { input, target } = source.next();
          losses.push(
            autocast(precision === "bf16" ? "bf16" : null, () => model.loss(input, target)),
          );
        }
        return (losses.length === 1 ? losses[0] : stack(losses).mean()).item(); // one sync
      })
    );
  } finally {
    source.loadState({ epoch: 0, batch: 0 });
    model.train(wasTraining);
  }
}

/**
 * Pretrains `model` on next-token prediction. Every step runs inside a tidy scope, so memory stays
 * flat; each step reads back two numbers (loss and gradient norm). A resumed run continues with
 * exactly the losses an uninterrupted run would have had: the checkpoint holds the model, the
 * optimizer's state, the step, the global random generator and the data loader's position.
 *
 * @returns losses, samples and throughput of this run
 * @example
 * ```ts ignore
 * import { GPT2, gpt2Config, pretrain, slidingWindows, Tokenizer } from "@denograd/denograd";
 * const tok = await Tokenizer.gpt2();
 * const ids = tok.encode(await Deno.readTextFile("examples/data/the-verdict.txt"));
 * const model = new GPT2(gpt2Config("tiny"));
 * await pretrain({
 *   model,
 *   train: slidingWindows(ids, { maxLength: 128 }),
 *   batchSize: 8,
 *   steps: 100,
 *   checkpointPath: "runs/verdict/model.safetensors",
 * });
 * ```
 */
export async function pretrain(options: PretrainOptions): Promise<PretrainResult> {
  const op = "pretrain";
  const o = options ?? ({} as PretrainOptions);
  const { model, tokenizer } = o;
  if (!model || typeof model.loss !== "function" || typeof model.parameters !== "function") {
    throw new TypeError("pretrain: model must be a GPT2 (with loss() and parameters())");
  }
  if (!o.train) throw new TypeError("pretrain: train data is required");
  const needsBatch = !isSource(o.train) || (o.val !== undefined && !isSource(o.val));
  const batchSize = needsBatch ? intOption(op, "batchSize", o.batchSize, 1) : 0;
  const seed = intOption(op, "seed", o.seed, 0, 0);
  const train = isSource(o.train)
    ? o.train
    : new DataLoader(o.train, { batchSize, seed, device: model.device });
  const val = o.val === undefined ? undefined : isSource(o.val) ? o.val : new DataLoader(o.val, {
    batchSize: Math.min(batchSize, o.val.length),
    shuffle: false,
    dropLast: false,
    device: model.device,
  });
  const gradAccum = intOption(op, "gradAccum", o.gradAccum, 1, 1);
  const totalSteps = totalStepsOption(op, o, train.batchesPerEpoch, gradAccum);
  const maxLr = numOption(op, "maxLr", o.maxLr, 6e-4);
  const minLr = numOption(op, "minLr", o.minLr, maxLr / 10);
  if (minLr > maxLr) throw new RangeError(`${op}: minLr ${minLr} is above maxLr ${maxLr}`);
  const warmup = intOption(op, "warmup", o.warmup, 0, 0);
  const clip = numOption(op, "clip", o.clip, 1);
  const evalEvery = intOption(op, "evalEvery", o.evalEvery, 0, 0);
  const evalBatches = intOption(op, "evalBatches", o.evalBatches, 1, 20);
  const precision = o.precision ?? "f32";
  if (precision !== "f32" && precision !== "bf16") {
    throw new RangeError(
      `pretrain: precision must be "f32" or "bf16", got ${JSON.stringify(precision)}`,
    );
  }
  if (precision === "bf16" && model.device === "cpu") {
    // autocast is a no-op on the CPU; training "in bf16" there would silently be f32.
    throw new RangeError('pretrain: precision "bf16" needs a CUDA model; the CPU computes in f32');
  }
  const mixed = precision === "bf16" ? "bf16" : null;
  const sampleEvery = intOption(op, "sampleEvery", o.sampleEvery, 0, 0);
  const sampleTokens = intOption(op, "sampleTokens", o.sampleTokens, 1, 40);
  const checkpointEvery = intOption(op, "checkpointEvery", o.checkpointEvery, 0, 0);
  if (sampleEvery > 0 && !tokenizer) {
    throw new TypeError("pretrain: sampleEvery needs a tokenizer");
  }
  const given = o.optimizer;
  if (given !== undefined) checkOptimizer(given, model, o);
  if (o.lrSchedule !== undefined) {
    if (typeof o.lrSchedule !== "function") {
      throw new TypeError("pretrain: lrSchedule must be a function of the step");
    }
    if (o.warmup !== undefined || o.minLr !== undefined) {
      throw new TypeError("pretrain: lrSchedule replaces warmup and minLr; give one or the other");
    }
  }
  // Every group's lr is its peak times this factor: a given optimizer's groups keep their own
  // peaks, the default AdamW's peak is maxLr; without lrSchedule, warmup then a cosine.
  const lrFactor = o.lrSchedule ?? warmupCosine({
    maxLr: 1,
    minLr: given ? 0.1 : maxLr > 0 ? minLr / maxLr : 1,
    warmup: Math.min(warmup, totalSteps),
    totalSteps,
  });
  const optimizer: TrainOptimizer = given ?? AdamW.forModel(model, {
    lr: maxLr,
    betas: o.betas ?? [0.9, 0.95],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.1,
  });

  let moe: MoELayerStats[] = []; // expert utilisation of the step's micro-batches so far
  try {
    const run = await runLoop({
      op,
      model,
      params: model.parameters(),
      optimizer,
      lrFactor,
      train,
      totalSteps,
      gradAccum,
      clip,
      evalEvery,
      checkpointEvery,
      sampleEvery,
      options: o,
      checkpointConfig: { model: { ...model.config } },
      progress: { label: "train", unit: "tokens", perStep: gradAccum * train.tokensPerBatch },
      microLoss: ({ input, target }, k) => {
        const loss = autocast(mixed, () => model.loss(input, target)); // ()
        const s = model.moeStats?.() ?? []; // (a duck-typed model may not have it)
        moe = k === 0 ? s : s.map((x, i) => ({ layer: x.layer, ...mergeMoEStats(moe[i], x) }));
        return { loss, tokens: input.size };
      },
      // Mixture-of-experts models also log each MoE block's routing (tokens per expert, drops).
      recordExtras: () => (moe.length ? { moe } : {}),
      evaluate: (step) => {
        if (!val) return null;
        const loss = evaluateLoss(model, val, evalBatches, precision);
        return {
          record: { kind: "val", step, loss },
          line: `step ${step}: val loss ${loss.toFixed(4)}`,
        };
      },
      sample: (step) => {
        const prompt = o.samplePrompt ?? "The";
        const ids = generate(model, tokenizer!.encode(prompt), {
          maxNewTokens: sampleTokens,
          topK: 40,
          seed: 1337, // the same draws every time, and the global generator is left as it was
        });
        const text = prompt + tokenizer!.decode(ids);
        return { text, line: `step ${step}: sample: ${JSON.stringify(text)}` };
      },
    });
    return {
      step: run.step,
      startStep: run.startStep,
      trainLosses: run.trainLosses,
      valLosses: run.evals.map((r) => [r.step, r.loss]),
      samples: run.samples,
      tokens: run.tokens,
      seconds: run.seconds,
      tokensPerSecond: run.tokensPerSecond,
      liveBytes: run.liveBytes,
      skippedSteps: run.skippedSteps,
    };
  } finally {
    if (!given) optimizer.dispose();
  }
}
