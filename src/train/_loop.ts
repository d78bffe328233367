// The training loop shared by the fine-tuning trainers (classification, instruction tuning):
// AdamW on the parameters that require gradients (so frozen trunks and LoRA adapters just work),
// warmup + cosine, gradient clipping and accumulation, periodic evaluation, checkpoints that
// resume bit-identically, JSONL metrics, a loss-curve SVG and a progress bar. Each trainer brings
// its micro-batch loss and its evaluation; the loop owns everything else.

import { dirname, join } from "node:path";
import { noGrad } from "../autograd.ts";
import { memoryStats, tidy } from "../memory.ts";
import { stack } from "../ops/movement.ts";
import { getRngState } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { Progress } from "../_progress.ts";
import type { LoaderState } from "../data/loader.ts";
import type { Module } from "../nn/module.ts";
import { AdamW } from "../optim/adamw.ts";
import { warmupCosine } from "../optim/schedule.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { nonFiniteOption, type NonFinitePolicy, StepGuard } from "./step_guard.ts";
import { resumeRun, type ScheduleFingerprint, scheduleFingerprint } from "./_resume.ts";
import {
  MetricsLog,
  type MetricsRecord,
  type TrainRecord,
  truncateMetrics,
  type ValRecord,
} from "./metrics.ts";
import { type CurvePoints, writeLossPlot } from "./plot.ts";

/** Options every fine-tuning trainer takes. Only a length (steps or epochs) is needed. */
export interface FinetuneOptions {
  /** Examples per micro-batch (default 8, the book's). */
  batchSize?: number;
  /** Optimizer steps in total (a resumed run continues up to this); or give `epochs`. */
  steps?: number;
  /** Passes over the training data, converted to steps; used when `steps` is not given. */
  epochs?: number;
  /** Micro-batches per optimizer step; each micro-loss is scaled by 1/gradAccum. Default 1. */
  gradAccum?: number;
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
  /** Evaluate every this many steps and after the last (default 0: only after the last). */
  evalEvery?: number;
  /** Batches per periodic evaluation of each split (default 5, the book's eval_iter). */
  evalBatches?: number;
  /** Save a checkpoint here (safetensors) every `checkpointEvery` steps and after the last. */
  checkpointPath?: string;
  /** Steps between checkpoints (default 0: only after the last). */
  checkpointEvery?: number;
  /** Continue from `checkpointPath` (model, optimizer, step, generator and data position). */
  resume?: boolean;
  /**
   * Resume even though this run's learning-rate schedule (steps, maxLr, minLr, warmup) differs
   * from the checkpoint's run; default false: such a resume is refused.
   */
  allowScheduleChange?: boolean;
  /**
   * A step whose loss or gradient norm is NaN or infinite: "stop" (default) ends the run with a
   * `NonFiniteError` naming the step, before that step updates anything or saves; "skip" drops
   * the step's update and goes on (counted as `skippedSteps`). Non-finite weights always stop.
   */
  nonFinite?: NonFinitePolicy;
  /** JSONL metrics file (default `metrics.jsonl` beside the checkpoint, if there is one). */
  metricsPath?: string;
  /** Loss-curve SVG (default `loss.svg` beside the checkpoint, if there is one). */
  plotPath?: string;
  /** Show a progress bar on stderr (default true). */
  progress?: boolean;
  /** Seed of the training data's shuffling (default 0). */
  seed?: number;
  /** Where evaluation lines go (default console.log). */
  log?: (line: string) => void;
  /** Called after every optimizer step with its record. */
  onStep?: (record: TrainRecord) => void;
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

/** What the loop needs from a training-data loader ({@linkcode Batches} fits). */
export interface LoopSource<B> {
  readonly batchesPerEpoch: number;
  next(): B;
  state(): LoaderState;
  loadState(state: LoaderState): void;
}

/** A trainer's part of the loop. */
export interface LoopSpec<B> {
  /** The trainer's name, for messages. */
  op: string;
  /** The model; its parameters with requiresGrad are trained. */
  model: Module;
  /** Where the batches come from. */
  train: LoopSource<B>;
  /** The options as the user gave them. */
  options: FinetuneOptions;
  /** The run's configuration stored in checkpoints. */
  config: unknown;
  /** Examples per micro-batch: the progress bar then counts examples (else steps). */
  examplesPerStep?: number;
  /**
   * The scalar loss of one micro-batch (inside a tidy scope), how many tokens it read, and
   * optionally more scalars to log with the step (DPO's rewards): each is averaged over the
   * micro-batches and added to the step's train record under its key.
   */
  microLoss(batch: B): { loss: Tensor; tokens: number; stats?: Record<string, Tensor> };
  /** A periodic evaluation after `step` (no gradients, eval mode): the record and a log line. */
  evaluate(step: number): { record: ValRecord; line: string };
}

/** Throws unless `v` is an integer >= min; `fallback` when undefined. */
export function intOption(
  op: string,
  name: string,
  v: unknown,
  min: number,
  fallback?: number,
): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (!Number.isInteger(v) || (v as number) < min) {
    throw new RangeError(`${op}: ${name} must be an integer >= ${min}, got ${v}`);
  }
  return v as number;
}

function numOption(op: string, name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`${op}: ${name} must be a finite number >= 0, got ${v}`);
  }
  return v;
}

/** What a fine-tuning checkpoint keeps besides model, optimizer, step and generator. */
interface LoopExtra {
  loader: LoaderState;
  totalSteps: number;
  schedule: ScheduleFingerprint;
  skippedSteps: number;
}

/**
 * Runs the loop: resumes if asked, trains to the requested step, evaluates, checkpoints, logs and
 * plots. Every step runs inside a tidy scope and reads back two numbers (loss, gradient norm).
 */
export async function runFinetune<B>(spec: LoopSpec<B>): Promise<FinetuneRunResult> {
  const { op, model, train, options: o } = spec;
  const gradAccum = intOption(op, "gradAccum", o.gradAccum, 1, 1);
  let totalSteps: number;
  if (o.steps !== undefined) totalSteps = intOption(op, "steps", o.steps, 1);
  else if (o.epochs !== undefined) {
    if (typeof o.epochs !== "number" || !(o.epochs > 0)) {
      throw new RangeError(`${op}: epochs must be a number > 0, got ${o.epochs}`);
    }
    totalSteps = Math.max(1, Math.ceil(o.epochs * train.batchesPerEpoch / gradAccum));
  } else throw new RangeError(`${op}: give steps or epochs`);
  const maxLr = numOption(op, "maxLr", o.maxLr, 5e-5);
  const minLr = numOption(op, "minLr", o.minLr, maxLr);
  const warmup = intOption(op, "warmup", o.warmup, 0, 0);
  const clip = numOption(op, "clip", o.clip, 0);
  const evalEvery = intOption(op, "evalEvery", o.evalEvery, 0, 0);
  const checkpointEvery = intOption(op, "checkpointEvery", o.checkpointEvery, 0, 0);
  const nonFinite = nonFiniteOption(op, o.nonFinite);
  if (o.resume && !o.checkpointPath) throw new TypeError(`${op}: resume needs checkpointPath`);
  const params = model.parameters();
  if (params.length === 0) {
    throw new RangeError(`${op}: the model has no trainable parameters (all are frozen)`);
  }
  const lrAt = warmupCosine({ maxLr, minLr, warmup: Math.min(warmup, totalSteps), totalSteps });
  const beside = (file: string) =>
    o.checkpointPath ? join(dirname(o.checkpointPath), file) : undefined;
  const metricsPath = o.metricsPath ?? beside("metrics.jsonl");
  const plotPath = o.plotPath ?? beside("loss.svg");
  const log = o.log ?? ((line: string) => console.log(line));

  const optimizer = AdamW.forModel(model, {
    lr: maxLr,
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.1,
  });
  const device = params[0].device;
  const paramNames = () => {
    const names = new Map(model.namedParameters().map(([n, p]) => [p, n]));
    return params.map((p) => names.get(p) ?? "?");
  };

  // ---- resume ----
  let startStep = 0, skippedBefore = 0;
  let history: MetricsRecord[] = [];
  try {
    if (o.resume) {
      const { step, extra } = await resumeRun({
        op,
        path: o.checkpointPath!,
        model,
        optimizer,
        device,
        train,
        totalSteps,
        lrAt,
        allowScheduleChange: o.allowScheduleChange === true,
      });
      startStep = step;
      skippedBefore = (extra as Partial<LoopExtra>).skippedSteps ?? 0;
      if (metricsPath) history = await truncateMetrics(metricsPath, startStep);
    } else if (metricsPath) {
      history = await truncateMetrics(metricsPath, 0); // a fresh run starts a fresh file
    }
    if (startStep >= totalSteps) {
      throw new RangeError(
        `${op}: the checkpoint is at step ${startStep}; steps (${totalSteps}) must be larger to train on`,
      );
    }
  } catch (e) {
    optimizer.dispose();
    throw e;
  }

  const metrics = metricsPath ? MetricsLog.open(metricsPath) : null;
  const trainCurve: [number, number][] = [], valCurve: [number, number][] = [];
  for (const r of history) {
    if (r.kind === "train") trainCurve.push([r.step, r.loss]);
    else if (r.kind === "val") valCurve.push([r.step, r.loss]);
  }
  const perStep = spec.examplesPerStep ? spec.examplesPerStep * gradAccum : 1;
  const progress = o.progress === false ? null : new Progress({
    label: op,
    total: (totalSteps - startStep) * perStep,
    unit: spec.examplesPerStep ? "examples" : "steps",
  });
  const tty = Deno.stderr.isTerminal();
  const say = (line: string) => {
    if (progress && tty) Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
    log(line);
  };
  const result: FinetuneRunResult = {
    step: startStep,
    startStep,
    trainLosses: [],
    evals: [],
    seconds: 0,
    stepsPerSecond: 0,
    liveBytes: [0, 0],
    skippedSteps: skippedBefore,
  };
  const save = async (step: number) => {
    if (!o.checkpointPath) return;
    const optimizerState = optimizer.state();
    try {
      const extra: LoopExtra = {
        loader: train.state(),
        totalSteps,
        schedule: scheduleFingerprint(totalSteps, lrAt),
        skippedSteps: result.skippedSteps,
      };
      await saveCheckpoint(o.checkpointPath, {
        model,
        optimizerState,
        step,
        rng: getRngState(),
        config: spec.config,
        extra: { ...extra },
      });
    } finally {
      for (const t of Object.values(optimizerState)) t.dispose();
    }
  };

  const guard = new StepGuard({
    op: op,
    params,
    names: paramNames,
    clip,
    optimizer,
    policy: nonFinite,
  });
  const t0 = performance.now();
  let trainMs = 0;
  model.train();
  try {
    for (let step = startStep + 1; step <= totalSteps; step++) {
      const lr = lrAt(step - 1);
      optimizer.setLr(lr);
      const start = performance.now();
      let tokens = 0;
      const [outcome, stats] = tidy(() => {
        const micro: Tensor[] = [];
        const microStats = new Map<string, Tensor[]>();
        for (let k = 0; k < gradAccum; k++) {
          const { loss: l, tokens: n, stats: s = {} } = spec.microLoss(train.next()); // ()
          for (const [key, v] of Object.entries(s)) {
            microStats.set(key, [...microStats.get(key) ?? [], v]);
          }
          tokens += n;
          (gradAccum === 1 ? l : l.mul(1 / gradAccum)).backward();
          micro.push(l);
        }
        const outcome = guard.finish(step, micro);
        const stats = noGrad(() =>
          Object.fromEntries([...microStats].map(([key, vs]) => [key, stack(vs).mean().item()]))
        );
        return [outcome, stats] as const;
      });
      const ms = performance.now() - start;
      trainMs += ms;
      const { loss } = outcome;
      if (outcome.skipped) {
        result.skippedSteps++;
        say(
          `step ${step}: skipped (loss ${loss}, gradient norm ${outcome.gradNorm}); ` +
            `${result.skippedSteps} skipped so far`,
        );
      }
      result.trainLosses.push(loss);
      result.step = step;
      if (!outcome.skipped) trainCurve.push([step, loss]);
      const r: TrainRecord = {
        kind: "train",
        step,
        loss,
        lr,
        gradNorm: outcome.gradNorm,
        tokens,
        ms: Math.round(ms * 100) / 100,
        tokensPerSecond: Math.round(tokens / (ms / 1000)),
        ...stats,
        ...(outcome.skipped ? { skipped: true } : {}),
        ...(result.skippedSteps ? { skippedSteps: result.skippedSteps } : {}),
      };
      if (!outcome.skipped) metrics?.write(r); // a skipped step has no finite loss to log
      o.onStep?.(r);
      if (step === startStep + 1) result.liveBytes[0] = memoryStats().liveBytes;
      result.liveBytes[1] = memoryStats().liveBytes;
      progress?.update(
        (step - startStep) * perStep,
        `step ${step}/${totalSteps}  loss ${loss.toFixed(4)}`,
      );
      const last = step === totalSteps;
      if (evalEvery > 0 && step % evalEvery === 0 || last) {
        const wasTraining = model.training;
        model.eval();
        let evaluated;
        try {
          evaluated = noGrad(() => spec.evaluate(step));
        } finally {
          model.train(wasTraining);
        }
        result.evals.push(evaluated.record);
        valCurve.push([step, evaluated.record.loss]);
        metrics?.write(evaluated.record);
        say(evaluated.line);
        if (plotPath) {
          await writeLossPlot(plotPath, { train: trainCurve as CurvePoints, val: valCurve });
        }
      }
      if (checkpointEvery > 0 && step % checkpointEvery === 0 || last) await save(step);
    }
  } finally {
    metrics?.close();
    optimizer.dispose();
  }
  progress?.done((totalSteps - startStep) * perStep, `step ${result.step}/${totalSteps}`);
  result.seconds = (performance.now() - t0) / 1000;
  result.stepsPerSecond = result.trainLosses.length / (trainMs / 1000);
  return result;
}
