/**
 * The pretraining loop: next-token prediction with AdamW (or any optimizer: SGD, Adam, Muon +
 * AdamW), linear warmup + cosine decay (or any schedule), gradient
 * clipping and accumulation, periodic validation loss and text samples, checkpoints that resume
 * bit-identically, JSONL metrics, a loss-curve SVG and a progress bar.
 * @module
 */

import { dirname, join } from "node:path";
import { noGrad } from "../autograd.ts";
import { autocast } from "../autocast.ts";
import { memoryStats, tidy } from "../memory.ts";
import { stack } from "../ops/movement.ts";
import { getRngState } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { Progress } from "../_progress.ts";
import type { Dataset, Example } from "../data/dataset.ts";
import { type BatchSource, DataLoader, type LoaderState } from "../data/loader.ts";
import { generate } from "../models/gpt2/generate.ts";
import type { GPT2 } from "../models/gpt2/model.ts";
import { mergeMoEStats, type MoELayerStats } from "../nn/moe.ts";
import { AdamW } from "../optim/adamw.ts";
import type { TrainOptimizer } from "../optim/optimizer.ts";
import { type LrSchedule, warmupCosine } from "../optim/schedule.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { nonFiniteOption, type NonFinitePolicy, StepGuard } from "./step_guard.ts";
import { resumeRun, type ScheduleFingerprint, scheduleFingerprint } from "./_resume.ts";
import { MetricsLog, type MetricsRecord, type TrainRecord, truncateMetrics } from "./metrics.ts";
import { type CurvePoints, writeLossPlot } from "./plot.ts";

/** Turns text into token ids and back (a {@linkcode Tokenizer} fits). */
export interface TextCodec {
  /** Text to token ids. */
  encode(text: string): number[];
  /** Token ids to text. */
  decode(ids: readonly number[]): string;
}

/** Options of {@linkcode pretrain}. Only `model`, `train` and a length (steps or epochs) are needed. */
export interface PretrainOptions {
  /** The model to train, in place. */
  model: GPT2;
  /** Training data: a dataset of windows (batched here with `batchSize`) or a loader. */
  train: Dataset<Example> | BatchSource;
  /** Validation data; its first `evalBatches` batches are evaluated every time. */
  val?: Dataset<Example> | BatchSource;
  /** Sequences per micro-batch when `train`/`val` are datasets. */
  batchSize?: number;
  /** Optimizer steps in total (a resumed run continues up to this); or give `epochs`. */
  steps?: number;
  /** Passes over the training data, converted to steps; used when `steps` is not given. */
  epochs?: number;
  /** Micro-batches per optimizer step; each micro-loss is scaled by 1/gradAccum. Default 1. */
  gradAccum?: number;
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
  /** Evaluate every this many steps and after the last (default 0: only after the last). */
  evalEvery?: number;
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
  /** Save a checkpoint here (safetensors) every `checkpointEvery` steps and after the last. */
  checkpointPath?: string;
  /** Steps between checkpoints (default 0: only after the last). */
  checkpointEvery?: number;
  /** Continue from `checkpointPath` (model, optimizer, step, generator and data position). */
  resume?: boolean;
  /**
   * Resume even though this run's learning-rate schedule (steps, maxLr, minLr, warmup,
   * lrSchedule) differs from the checkpoint's run; default false: such a resume is refused.
   */
  allowScheduleChange?: boolean;
  /**
   * A step whose loss or gradient norm is NaN or infinite: "stop" (default) ends the run with a
   * {@linkcode NonFiniteError} naming the step, before that step updates anything or saves;
   * "skip" drops the step's update and goes on (counted as `skippedSteps` in the result and the
   * metrics). Non-finite weights always stop the run.
   */
  nonFinite?: NonFinitePolicy;
  /** JSONL metrics file (default `metrics.jsonl` beside the checkpoint, if there is one). */
  metricsPath?: string;
  /** Loss-curve SVG (default `loss.svg` beside the checkpoint, if there is one). */
  plotPath?: string;
  /** Show a progress bar on stderr (default true). */
  progress?: boolean;
  /** Seed of the training data's shuffling when `train` is a dataset (default 0). */
  seed?: number;
  /** Where eval and sample lines go (default console.log). */
  log?: (line: string) => void;
  /** Called after every optimizer step with its record. */
  onStep?: (record: TrainRecord) => void;
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

/** What a pretraining checkpoint keeps besides model, optimizer, step and generator. */
interface TrainerExtra {
  loader: LoaderState;
  tokens: number;
  totalSteps: number;
  schedule: ScheduleFingerprint;
  skippedSteps: number;
}

function isSource(x: unknown): x is BatchSource {
  return typeof x === "object" && x !== null && "next" in x && "loadState" in x;
}

function intOption(name: string, v: unknown, min: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (!Number.isInteger(v) || (v as number) < min) {
    throw new RangeError(`pretrain: ${name} must be an integer >= ${min}, got ${v}`);
  }
  return v as number;
}

function numOption(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`pretrain: ${name} must be a finite number >= 0, got ${v}`);
  }
  return v;
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
  const o = options ?? ({} as PretrainOptions);
  const { model, tokenizer } = o;
  if (!model || typeof model.loss !== "function" || typeof model.parameters !== "function") {
    throw new TypeError("pretrain: model must be a GPT2 (with loss() and parameters())");
  }
  if (!o.train) throw new TypeError("pretrain: train data is required");
  const needsBatch = !isSource(o.train) || (o.val !== undefined && !isSource(o.val));
  const batchSize = needsBatch ? intOption("batchSize", o.batchSize, 1) : 0;
  const seed = intOption("seed", o.seed, 0, 0);
  const train = isSource(o.train)
    ? o.train
    : new DataLoader(o.train, { batchSize, seed, device: model.device });
  const val = o.val === undefined ? undefined : isSource(o.val) ? o.val : new DataLoader(o.val, {
    batchSize: Math.min(batchSize, o.val.length),
    shuffle: false,
    dropLast: false,
    device: model.device,
  });
  const gradAccum = intOption("gradAccum", o.gradAccum, 1, 1);
  let totalSteps: number;
  if (o.steps !== undefined) totalSteps = intOption("steps", o.steps, 1);
  else if (o.epochs !== undefined) {
    if (typeof o.epochs !== "number" || !(o.epochs > 0)) {
      throw new RangeError(`pretrain: epochs must be a number > 0, got ${o.epochs}`);
    }
    totalSteps = Math.max(1, Math.ceil(o.epochs * train.batchesPerEpoch / gradAccum));
  } else throw new RangeError("pretrain: give steps or epochs");
  const maxLr = numOption("maxLr", o.maxLr, 6e-4);
  const minLr = numOption("minLr", o.minLr, maxLr / 10);
  const warmup = intOption("warmup", o.warmup, 0, 0);
  const clip = numOption("clip", o.clip, 1);
  const evalEvery = intOption("evalEvery", o.evalEvery, 0, 0);
  const evalBatches = intOption("evalBatches", o.evalBatches, 1, 20);
  const nonFinite = nonFiniteOption("pretrain", o.nonFinite);
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
  const sampleEvery = intOption("sampleEvery", o.sampleEvery, 0, 0);
  const sampleTokens = intOption("sampleTokens", o.sampleTokens, 1, 40);
  const checkpointEvery = intOption("checkpointEvery", o.checkpointEvery, 0, 0);
  if (sampleEvery > 0 && !tokenizer) {
    throw new TypeError("pretrain: sampleEvery needs a tokenizer");
  }
  if (o.resume && !o.checkpointPath) throw new TypeError("pretrain: resume needs checkpointPath");
  const lrAt = warmupCosine({ maxLr, minLr, warmup: Math.min(warmup, totalSteps), totalSteps });
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
  // A given optimizer's groups keep their own peaks; the default AdamW follows lrAt exactly.
  const factorAt = o.lrSchedule ??
    (given
      ? warmupCosine({ maxLr: 1, minLr: 0.1, warmup: Math.min(warmup, totalSteps), totalSteps })
      : null);
  const beside = (file: string) =>
    o.checkpointPath ? join(dirname(o.checkpointPath), file) : undefined;
  const metricsPath = o.metricsPath ?? beside("metrics.jsonl");
  const plotPath = o.plotPath ?? beside("loss.svg");
  const log = o.log ?? ((line: string) => console.log(line));

  const optimizer: TrainOptimizer = given ?? AdamW.forModel(model, {
    lr: maxLr,
    betas: o.betas ?? [0.9, 0.95],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.1,
  });
  const peakLr = optimizer.lrs()[0];
  /** The first group's lr at a 0-based step (pure: for the checkpoint's schedule check). */
  const lrOf = (step: number) => factorAt ? peakLr * factorAt(step) : lrAt(step);
  const applyLr = (step: number): number => {
    if (!factorAt) {
      const lr = lrAt(step);
      (optimizer as AdamW).setLr(lr);
      return lr;
    }
    optimizer.scaleLr(factorAt(step));
    return optimizer.lrs()[0];
  };
  const params = model.parameters();
  const paramNames = () => model.namedParameters().map(([n]) => n);

  // ---- resume ----
  let startStep = 0, tokensBefore = 0, skippedBefore = 0;
  let history: MetricsRecord[] = [];
  try {
    if (o.resume) {
      const { step, extra } = await resumeRun({
        op: "pretrain",
        path: o.checkpointPath!,
        model,
        optimizer,
        device: model.device,
        train,
        totalSteps,
        lrAt: lrOf,
        allowScheduleChange: o.allowScheduleChange === true,
      });
      const saved = extra as unknown as Partial<TrainerExtra>;
      startStep = step;
      tokensBefore = saved.tokens ?? 0;
      skippedBefore = saved.skippedSteps ?? 0;
      if (metricsPath) history = await truncateMetrics(metricsPath, startStep);
    } else if (metricsPath) {
      history = await truncateMetrics(metricsPath, 0); // a fresh run starts a fresh file
    }
    if (startStep >= totalSteps) {
      throw new RangeError(
        `pretrain: the checkpoint is at step ${startStep}; steps (${totalSteps}) must be larger to train on`,
      );
    }
  } catch (e) {
    if (!given) optimizer.dispose();
    throw e;
  }

  const metrics = metricsPath ? MetricsLog.open(metricsPath) : null;
  const trainCurve: [number, number][] = [], valCurve: [number, number][] = [];
  for (const r of history) {
    if (r.kind === "train") trainCurve.push([r.step, r.loss]);
    else if (r.kind === "val") valCurve.push([r.step, r.loss]);
  }
  const record = (r: MetricsRecord) => metrics?.write(r);
  const tty = Deno.stderr.isTerminal();
  const progress = o.progress === false ? null : new Progress({
    label: "train",
    total: (totalSteps - startStep) * gradAccum * train.tokensPerBatch,
    unit: "tokens",
  });
  const say = (line: string) => {
    if (progress && tty) Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
    log(line);
  };

  const result: PretrainResult = {
    step: startStep,
    startStep,
    trainLosses: [],
    valLosses: [],
    samples: [],
    tokens: 0,
    seconds: 0,
    tokensPerSecond: 0,
    liveBytes: [0, 0],
    skippedSteps: skippedBefore,
  };
  const evaluate = (step: number) => {
    if (!val) return;
    const loss = evaluateLoss(model, val, evalBatches, precision);
    valCurve.push([step, loss]);
    result.valLosses.push([step, loss]);
    record({ kind: "val", step, loss });
    say(`step ${step}: val loss ${loss.toFixed(4)}`);
  };
  const sample = (step: number) => {
    const prompt = o.samplePrompt ?? "The";
    const ids = generate(model, tokenizer!.encode(prompt), {
      maxNewTokens: sampleTokens,
      topK: 40,
      seed: 1337, // the same draws every time, and the global generator is left as it was
    });
    const text = prompt + tokenizer!.decode(ids);
    result.samples.push({ step, text });
    record({ kind: "sample", step, text });
    say(`step ${step}: sample: ${JSON.stringify(text)}`);
  };
  const save = async (step: number) => {
    if (!o.checkpointPath) return;
    const optimizerState = optimizer.state();
    try {
      const extra: TrainerExtra = {
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
        config: { ...model.config },
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

  const guard = new StepGuard({
    op: "pretrain",
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
      const lr = applyLr(step - 1);
      const start = performance.now();
      let tokens = 0;
      let moe: MoELayerStats[] = []; // expert utilisation of this step's micro-batches
      const outcome = tidy(() => {
        const micro: Tensor[] = [];
        for (let k = 0; k < gradAccum; k++) {
          const { input, target } = train.next();
          tokens += input.size;
          const l = autocast(mixed, () => model.loss(input, target)); // ()
          (gradAccum === 1 ? l : l.mul(1 / gradAccum)).backward();
          micro.push(l);
          const s = model.moeStats?.() ?? []; // (a duck-typed model may not have it)
          moe = k === 0 ? s : s.map((x, i) => ({ layer: x.layer, ...mergeMoEStats(moe[i], x) }));
        }
        return guard.finish(step, micro);
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
      // Mixture-of-experts models also log each MoE block's routing (tokens per expert, drops).
      const r: TrainRecord & { moe?: MoELayerStats[] } = {
        kind: "train",
        step,
        loss,
        lr,
        gradNorm: outcome.gradNorm,
        tokens: tokensBefore + result.tokens,
        ms: Math.round(ms * 100) / 100,
        tokensPerSecond: Math.round(tokens / (ms / 1000)),
        ...(moe.length ? { moe } : {}),
        ...(outcome.skipped ? { skipped: true } : {}),
        ...(result.skippedSteps ? { skippedSteps: result.skippedSteps } : {}),
      };
      if (!outcome.skipped) record(r); // a skipped step has no finite loss to log
      o.onStep?.(r);
      if (step === startStep + 1) result.liveBytes[0] = memoryStats().liveBytes;
      result.liveBytes[1] = memoryStats().liveBytes;
      progress?.update(
        result.tokens,
        `step ${step}/${totalSteps}  loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}`,
      );
      const last = step === totalSteps;
      if (evalEvery > 0 && step % evalEvery === 0 || last) {
        evaluate(step);
        await plot();
      }
      if (sampleEvery > 0 && (step % sampleEvery === 0 || last)) sample(step);
      if (checkpointEvery > 0 && step % checkpointEvery === 0 || last) await save(step);
    }
  } finally {
    metrics?.close();
    if (!given) optimizer.dispose();
  }
  progress?.done(
    result.tokens,
    `step ${result.step}/${totalSteps}  loss ${result.trainLosses.at(-1)?.toFixed(4)}`,
  );
  result.seconds = (performance.now() - t0) / 1000;
  result.tokensPerSecond = result.tokens / (trainMs / 1000);
  return result;
}
