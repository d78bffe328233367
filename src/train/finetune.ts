/**
 * The fine-tuning trainers' part of the loop (classification, instruction tuning, DPO): their
 * options and defaults (the book's: batch 8, AdamW 5e-5 with betas 0.9/0.999, a constant rate,
 * no clipping), AdamW over the parameters that require gradients (so frozen trunks and LoRA
 * adapters just work), and the run of {@linkcode runLoop}.
 * @module
 */

import type { Module } from "../nn/module.ts";
import { AdamW } from "../optim/adamw.ts";
import { warmupCosine } from "../optim/schedule.ts";
import type { ValRecord } from "./metrics.ts";
import {
  intOption,
  type LoopOptions,
  type LoopSource,
  type MicroLoss,
  numOption,
  runLoop,
  totalStepsOption,
} from "./loop.ts";

/** Options every fine-tuning trainer takes. Only a length (steps or epochs) is needed. */
export interface FinetuneOptions extends LoopOptions {
  /** Examples per micro-batch (default 8, the book's). */
  batchSize?: number;
  /** Peak learning rate (default 5e-5, the book's). */
  maxLr?: number;
  /** Final learning rate of the cosine (default maxLr: a constant rate, as in the book). */
  minLr?: number;
  /** Linear warmup steps (default 0). */
  warmup?: number;
  /** AdamW weight decay of matrices and embeddings (default 0.1); see `AdamW.forModel`. */
  weightDecay?: number;
  /** AdamW betas (default [0.9, 0.999], PyTorch's and the book's). */
  betas?: readonly [number, number];
  /** AdamW eps (default 1e-8). */
  eps?: number;
  /** Clip the global gradient norm to this (default 0: off, as in the book). */
  clip?: number;
  /** Batches per periodic evaluation of each split (default 5, the book's eval_iter). */
  evalBatches?: number;
  /** Seed of the training data's shuffling (default 0). */
  seed?: number;
}

/** The training-loop part of a fine-tuning trainer's result. */
export interface FinetuneRunResult {
  /** The step count reached (the total over resumed runs). */
  step: number;
  /** The step this run started from (0, or the checkpoint's). */
  startStep: number;
  /** Training loss of every step of this run (NaN or Infinity for a skipped step). */
  trainLosses: number[];
  /** Every evaluation of this run (validation loss plus the trainer's own numbers). */
  evals: ValRecord[];
  /** Wall time of this run in seconds. */
  seconds: number;
  /** Optimizer steps per second, counting only the time spent in training steps. */
  stepsPerSecond: number;
  /** Live bytes after the first and after the last step (flat when nothing leaks). */
  liveBytes: [number, number];
  /** Steps whose update was skipped for a non-finite loss or gradient (over resumed runs too). */
  skippedSteps: number;
}

/** A fine-tuning trainer's part of the loop. */
export interface FinetuneSpec<B> {
  /** The trainer's name, for messages. */
  op: string;
  /** The model; its parameters with requiresGrad are trained. */
  model: Module;
  /** Where the batches come from. */
  train: LoopSource<B>;
  /** The options as the user gave them. */
  options: FinetuneOptions;
  /** The checkpoint's `config` besides `trainer`: the model's configuration, the settings. */
  checkpointConfig: { model: unknown; settings?: Record<string, unknown> };
  /** Examples per micro-batch: the progress bar then counts examples (else steps). */
  examplesPerStep?: number;
  /** The loss of one micro-batch (inside a tidy scope), its tokens and scalars to log. */
  microLoss(batch: B): MicroLoss;
  /** A periodic evaluation after `step` (no gradients, eval mode): the record and a log line. */
  evaluate(step: number): { record: ValRecord; line: string };
}

/** Checks the fine-tuning options, builds AdamW and the schedule, and runs the loop. */
export async function runFinetune<B>(spec: FinetuneSpec<B>): Promise<FinetuneRunResult> {
  const { op, model, train, options: o } = spec;
  const gradAccum = intOption(op, "gradAccum", o.gradAccum, 1, 1);
  const totalSteps = totalStepsOption(op, o, train.batchesPerEpoch, gradAccum);
  const maxLr = numOption(op, "maxLr", o.maxLr, 5e-5);
  const minLr = numOption(op, "minLr", o.minLr, maxLr);
  if (minLr > maxLr) throw new RangeError(`${op}: minLr ${minLr} is above maxLr ${maxLr}`);
  const warmup = intOption(op, "warmup", o.warmup, 0, 0);
  const clip = numOption(op, "clip", o.clip, 0);
  const evalEvery = intOption(op, "evalEvery", o.evalEvery, 0, 0);
  const checkpointEvery = intOption(op, "checkpointEvery", o.checkpointEvery, 0, 0);
  const params = model.parameters();
  if (params.length === 0) {
    throw new RangeError(`${op}: the model has no trainable parameters (all are frozen)`);
  }
  const lrFactor = warmupCosine({
    maxLr: 1,
    minLr: maxLr > 0 ? minLr / maxLr : 1,
    warmup: Math.min(warmup, totalSteps),
    totalSteps,
  });
  const optimizer = AdamW.forModel(model, {
    lr: maxLr,
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.1,
  });
  try {
    const run = await runLoop({
      op,
      model,
      params,
      optimizer,
      lrFactor,
      train,
      totalSteps,
      gradAccum,
      clip,
      evalEvery,
      checkpointEvery,
      options: o,
      checkpointConfig: spec.checkpointConfig,
      progress: spec.examplesPerStep
        ? { label: op, unit: "examples", perStep: spec.examplesPerStep * gradAccum }
        : { label: op, unit: "steps", perStep: 1 },
      microLoss: (batch) => spec.microLoss(batch),
      evaluate: (step) => spec.evaluate(step),
    });
    return {
      step: run.step,
      startStep: run.startStep,
      trainLosses: run.trainLosses,
      evals: run.evals,
      seconds: run.seconds,
      stepsPerSecond: run.stepsPerSecond,
      liveBytes: run.liveBytes,
      skippedSteps: run.skippedSteps,
    };
  } finally {
    optimizer.dispose();
  }
}
