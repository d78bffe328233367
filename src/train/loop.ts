/**
 * The one training loop every trainer configures (pretraining, classification, instruction
 * tuning, DPO): micro-batches with gradient accumulation, the learning-rate factor of each step,
 * the step guard (gradient norm, clipping, the NaN check, the update), records, progress, and the
 * evaluation, sample, plot and checkpoint cadence, with a strict, bit-identical resume. A trainer
 * brings its micro-batch loss, its evaluation and the optimizer; the loop owns everything else.
 * @module
 */

import { dirname, join } from "node:path";
import { noGrad } from "../autograd.ts";
import type { LoaderState } from "../data/loader.ts";
import { memoryStats, tidy } from "../memory.ts";
import type { Module } from "../nn/module.ts";
import type { TrainOptimizer } from "../optim/optimizer.ts";
import { stack } from "../ops/movement.ts";
import { getRngState } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { Progress } from "../_progress.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import {
  MetricsLog,
  type MetricsRecord,
  type TrainRecord,
  truncateMetrics,
  type ValRecord,
} from "./metrics.ts";
import { type CurvePoints, writeLossPlot } from "./plot.ts";
import { resumeRun, type ScheduleFingerprint, scheduleFingerprint } from "./_resume.ts";
import { nonFiniteOption, type NonFinitePolicy, StepGuard } from "./step_guard.ts";

/** The options every trainer takes for its loop. */
export interface LoopOptions {
  /** Optimizer steps in total (a resumed run continues up to this); or give `epochs`. */
  steps?: number;
  /** Passes over the training data, converted to steps; used when `steps` is not given. */
  epochs?: number;
  /** Micro-batches per optimizer step; each micro-loss is scaled by 1/gradAccum. Default 1. */
  gradAccum?: number;
  /** Evaluate every this many steps and after the last (default 0: only after the last). */
  evalEvery?: number;
  /** Save a checkpoint here (safetensors) every `checkpointEvery` steps and after the last. */
  checkpointPath?: string;
  /** Steps between checkpoints (default 0: only after the last). */
  checkpointEvery?: number;
  /** Continue from `checkpointPath` (model, optimizer, step, generator and data position). */
  resume?: boolean;
  /**
   * Resume even though this run's learning-rate schedule (steps, rates, warmup) differs from
   * the checkpoint's run; default false: such a resume is refused.
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
  /** Where evaluation and sample lines go (default console.log). */
  log?: (line: string) => void;
  /** Called after every optimizer step with its record. */
  onStep?: (record: TrainRecord) => void;
}

/** Throws unless `v` is an integer >= min; `fallback` when undefined (and one is given). */
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

/** Throws unless `v` is a finite number >= 0; `fallback` when undefined. */
export function numOption(op: string, name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`${op}: ${name} must be a finite number >= 0, got ${v}`);
  }
  return v;
}

/** The run's length: `steps`, or `epochs` over `batchesPerEpoch` micro-batches. */
export function totalStepsOption(
  op: string,
  o: { steps?: number; epochs?: number },
  batchesPerEpoch: number,
  gradAccum: number,
): number {
  if (o.steps !== undefined) return intOption(op, "steps", o.steps, 1);
  if (o.epochs === undefined) throw new RangeError(`${op}: give steps or epochs`);
  if (typeof o.epochs !== "number" || !(o.epochs > 0)) {
    throw new RangeError(`${op}: epochs must be a number > 0, got ${o.epochs}`);
  }
  return Math.max(1, Math.ceil(o.epochs * batchesPerEpoch / gradAccum));
}

/** What the loop needs from a training-data loader (`DataLoader`, `ShardLoader`, `Batches`). */
export interface LoopSource<B> {
  readonly batchesPerEpoch: number;
  next(): B;
  state(): LoaderState;
  loadState(state: LoaderState): void;
}

/** One micro-batch's part of a step. */
export interface MicroLoss {
  /** The scalar loss (inside the step's tidy scope). */
  loss: Tensor;
  /** Tokens it read. */
  tokens: number;
  /** More scalars to log with the step (DPO's rewards), averaged over the micro-batches. */
  stats?: Record<string, Tensor>;
}

/** A trainer's part of the loop. */
export interface LoopSpec<B> {
  /** The trainer's name, for messages and the checkpoint's `config.trainer`. */
  op: string;
  /** The model; `params` of it are trained. */
  model: Module;
  /** The trained parameters (the optimizer's). */
  params: readonly Tensor[];
  /** The optimizer; the loop never disposes it. */
  optimizer: TrainOptimizer;
  /**
   * The factor of each 0-based step that multiplies every group's peak lr (`optimizer.scaleLr`):
   * the one learning-rate mechanism.
   */
  lrFactor: (step: number) => number;
  /** Where the batches come from. */
  train: LoopSource<B>;
  /** Optimizer steps in total (a resumed run continues up to this). */
  totalSteps: number;
  /** Micro-batches per step. */
  gradAccum: number;
  /** Clip the global gradient norm to this (0: off). */
  clip: number;
  /** Steps between evaluations (0: only after the last). */
  evalEvery: number;
  /** Steps between checkpoints (0: only after the last). */
  checkpointEvery: number;
  /** Steps between samples (0: none). */
  sampleEvery?: number;
  /** The options as the user gave them (paths, resume, guards, log, progress, onStep). */
  options: LoopOptions;
  /**
   * What the checkpoint's `config` holds besides `trainer` (the op): `model`, the model's
   * configuration (what `loadModel` rebuilds it from), and the trainer's own `settings`.
   */
  checkpointConfig: { model: unknown; settings?: Record<string, unknown> };
  /** The progress bar counts tokens, examples (`examplesPerStep` per step) or steps. */
  progress: { label: string; unit: "tokens" | "examples" | "steps"; perStep: number };
  /** The loss of micro-batch `k` of the step (inside the step's tidy scope). */
  microLoss(batch: B, k: number): MicroLoss;
  /** Fields to add to the step's record once its micro-batches ran (MoE routing). */
  recordExtras?(): Record<string, unknown>;
  /** An evaluation after `step` (no gradients, eval mode): its record and a line; or none. */
  evaluate(step: number): { record: ValRecord; line: string } | null;
  /** A sample after `step`: its line (logged and recorded as a sample). */
  sample?(step: number): { text: string; line: string };
}

/** What the loop did in this run. */
export interface LoopResult {
  /** The step count reached (the total over resumed runs). */
  step: number;
  /** The step this run started from (0, or the checkpoint's). */
  startStep: number;
  /** Training loss of every step of this run (NaN or Infinity for a skipped step). */
  trainLosses: number[];
  /** Every evaluation of this run. */
  evals: ValRecord[];
  /** Samples generated in this run. */
  samples: { step: number; text: string }[];
  /** Tokens trained on in this run. */
  tokens: number;
  /** Wall time of this run in seconds. */
  seconds: number;
  /** Tokens per second, counting only the time spent in training steps. */
  tokensPerSecond: number;
  /** Optimizer steps per second, counting only the time spent in training steps. */
  stepsPerSecond: number;
  /** Live bytes after the first and after the last step (flat when nothing leaks). */
  liveBytes: [number, number];
  /** Steps whose update was skipped for a non-finite loss or gradient (over resumed runs too). */
  skippedSteps: number;
}

/** What a checkpoint keeps besides model, optimizer, step and generator. */
interface LoopExtra {
  loader: LoaderState;
  tokens: number;
  totalSteps: number;
  schedule: ScheduleFingerprint;
  skippedSteps: number;
}

/**
 * Runs the loop: resumes if asked, trains to `totalSteps`, evaluates, samples, checkpoints, logs
 * and plots. Every step runs inside a tidy scope and reads back two numbers (loss, gradient norm).
 */
export async function runLoop<B>(spec: LoopSpec<B>): Promise<LoopResult> {
  const { op, model, params, optimizer, train, totalSteps, gradAccum, options: o } = spec;
  const nonFinite = nonFiniteOption(op, o.nonFinite);
  if (o.resume && !o.checkpointPath) throw new TypeError(`${op}: resume needs checkpointPath`);
  const beside = (file: string) =>
    o.checkpointPath ? join(dirname(o.checkpointPath), file) : undefined;
  const metricsPath = o.metricsPath ?? beside("metrics.jsonl");
  const plotPath = o.plotPath ?? beside("loss.svg");
  const log = o.log ?? ((line: string) => console.log(line));
  const peakLr = optimizer.lrs()[0];
  /** The first group's lr at a 0-based step (pure: for the checkpoint's schedule check). */
  const lrOf = (step: number) => peakLr * spec.lrFactor(step);

  // ---- resume ----
  let startStep = 0, tokensBefore = 0, skippedBefore = 0;
  let history: MetricsRecord[] = [];
  if (o.resume) {
    const { step, extra } = await resumeRun({
      op,
      path: o.checkpointPath!,
      model,
      optimizer,
      device: params[0]?.device ?? "cpu",
      train,
      totalSteps,
      lrAt: lrOf,
      allowScheduleChange: o.allowScheduleChange === true,
    });
    const saved = extra as Partial<LoopExtra>;
    startStep = step;
    tokensBefore = saved.tokens ?? 0;
    skippedBefore = saved.skippedSteps ?? 0;
    if (metricsPath) history = await truncateMetrics(metricsPath, startStep);
  } else if (metricsPath) {
    history = await truncateMetrics(metricsPath, 0); // a fresh run starts a fresh file
  }
  if (startStep >= totalSteps) {
    throw new RangeError(
      `${op}: the checkpoint is at step ${startStep}; steps (${totalSteps}) must be larger to train on`,
    );
  }

  const metrics = metricsPath ? MetricsLog.open(metricsPath) : null;
  const trainCurve: [number, number][] = [], valCurve: [number, number][] = [];
  for (const r of history) {
    if (r.kind === "train") trainCurve.push([r.step, r.loss]);
    else if (r.kind === "val") valCurve.push([r.step, r.loss]);
  }
  const bar = spec.progress;
  const progress = o.progress === false ? null : new Progress({
    label: bar.label,
    total: (totalSteps - startStep) * bar.perStep,
    unit: bar.unit,
  });
  const tty = Deno.stderr.isTerminal();
  const say = (line: string) => {
    if (progress && tty) Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
    log(line);
  };
  const result: LoopResult = {
    step: startStep,
    startStep,
    trainLosses: [],
    evals: [],
    samples: [],
    tokens: 0,
    seconds: 0,
    tokensPerSecond: 0,
    stepsPerSecond: 0,
    liveBytes: [0, 0],
    skippedSteps: skippedBefore,
  };
  const done = (step: number) =>
    bar.unit === "tokens" ? result.tokens : (step - startStep) * bar.perStep;

  const evaluate = (step: number) => {
    const wasTraining = model.training;
    model.eval();
    let evaluated;
    try {
      evaluated = noGrad(() => spec.evaluate(step));
    } finally {
      model.train(wasTraining);
    }
    if (!evaluated) return;
    result.evals.push(evaluated.record);
    valCurve.push([step, evaluated.record.loss]);
    metrics?.write(evaluated.record);
    say(evaluated.line);
  };
  const sample = (step: number) => {
    const { text, line } = spec.sample!(step);
    result.samples.push({ step, text });
    metrics?.write({ kind: "sample", step, text });
    say(line);
  };
  const save = async (step: number) => {
    if (!o.checkpointPath) return;
    const optimizerState = optimizer.state();
    try {
      const extra: LoopExtra = {
        loader: train.state(),
        tokens: tokensBefore + result.tokens,
        totalSteps,
        schedule: scheduleFingerprint(totalSteps, lrOf),
        skippedSteps: result.skippedSteps,
      };
      await saveCheckpoint(o.checkpointPath, {
        model,
        optimizerState,
        step,
        rng: getRngState(),
        config: { trainer: op, ...spec.checkpointConfig },
        extra: { ...extra },
      });
    } finally {
      for (const t of Object.values(optimizerState)) t.dispose();
    }
  };
  const plot = async () => {
    if (plotPath) {
      await writeLossPlot(plotPath, { train: trainCurve as CurvePoints, val: valCurve });
    }
  };

  const names = new Map(model.namedParameters().map(([n, p]) => [p, n]));
  const guard = new StepGuard({
    op,
    params,
    names: () => params.map((p) => names.get(p) ?? "?"),
    clip: spec.clip,
    optimizer,
    policy: nonFinite,
  });
  const sampleEvery = spec.sampleEvery ?? 0;
  const t0 = performance.now();
  let trainMs = 0;
  model.train();
  try {
    for (let step = startStep + 1; step <= totalSteps; step++) {
      optimizer.scaleLr(spec.lrFactor(step - 1));
      const lr = optimizer.lrs()[0];
      const start = performance.now();
      let tokens = 0;
      const [outcome, stats, extras] = tidy(() => {
        const micro: Tensor[] = [];
        const microStats = new Map<string, Tensor[]>();
        for (let k = 0; k < gradAccum; k++) {
          const { loss: l, tokens: n, stats: s = {} } = spec.microLoss(train.next(), k); // ()
          for (const [key, v] of Object.entries(s)) {
            microStats.set(key, [...microStats.get(key) ?? [], v]);
          }
          tokens += n;
          (gradAccum === 1 ? l : l.mul(1 / gradAccum)).backward();
          micro.push(l);
        }
        const extras = spec.recordExtras?.() ?? {};
        const outcome = guard.finish(step, micro);
        const stats = noGrad(() =>
          Object.fromEntries([...microStats].map(([key, vs]) => [key, stack(vs).mean().item()]))
        );
        return [outcome, stats, extras] as const;
      });
      const ms = performance.now() - start;
      trainMs += ms;
      result.tokens += tokens;
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
        tokens: tokensBefore + result.tokens,
        ms: Math.round(ms * 100) / 100,
        tokensPerSecond: Math.round(tokens / (ms / 1000)),
        ...stats,
        ...extras,
        ...(outcome.skipped ? { skipped: true } : {}),
        ...(result.skippedSteps ? { skippedSteps: result.skippedSteps } : {}),
      };
      if (!outcome.skipped) metrics?.write(r); // a skipped step has no finite loss to log
      o.onStep?.(r);
      if (step === startStep + 1) result.liveBytes[0] = memoryStats().liveBytes;
      result.liveBytes[1] = memoryStats().liveBytes;
      progress?.update(
        done(step),
        `step ${step}/${totalSteps}  loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}`,
      );
      const last = step === totalSteps;
      if (spec.evalEvery > 0 && step % spec.evalEvery === 0 || last) {
        evaluate(step);
        await plot();
      }
      if (sampleEvery > 0 && (step % sampleEvery === 0 || last)) sample(step);
      if (spec.checkpointEvery > 0 && step % spec.checkpointEvery === 0 || last) await save(step);
    }
  } finally {
    metrics?.close();
  }
  progress?.done(
    done(result.step),
    `step ${result.step}/${totalSteps}  loss ${result.trainLosses.at(-1)?.toFixed(4)}`,
  );
  result.seconds = (performance.now() - t0) / 1000;
  result.tokensPerSecond = result.tokens / (trainMs / 1000);
  result.stepsPerSecond = result.trainLosses.length / (trainMs / 1000);
  return result;
}
