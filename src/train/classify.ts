/**
 * Classification fine-tuning (the book's chapter 6): cross-entropy on the class logits of a
 * {@linkcode GPT2Classifier}, batches padded to their longest text (or a fixed length), loss and
 * accuracy on train and validation batches every `evalEvery` steps, and on the whole train,
 * validation and test sets at the end.
 * @module
 */

import { dirname, join } from "node:path";
import type { Device } from "../backend/backend.ts";
import { noGrad } from "../autograd.ts";
import { tidy } from "../memory.ts";
import type { Tensor } from "../tensor.ts";
import { Batches } from "../data/batches.ts";
import {
  type ClassificationBatch,
  type ClassificationExample,
  collateClassification,
} from "../data/classification.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { Module } from "../nn/module.ts";
import { type FinetuneOptions, type FinetuneRunResult, runFinetune } from "./finetune.ts";
import { intOption } from "./loop.ts";
import { readMetrics, type ValRecord } from "./metrics.ts";
import { lineChartsSvg } from "./plot.ts";

/** A sequence classifier the trainer can drive ({@linkcode GPT2Classifier} is one). */
export interface SequenceClassifier extends Module {
  /** Number of classes. */
  readonly numClasses: number;
  /** The device holding the parameters. */
  readonly device: Device;
  /** (B, T) right-padded ids and real lengths -> (B, numClasses) logits. */
  forward(idx: Tensor, lengths?: readonly number[]): Tensor;
  /** Mean cross-entropy of the class predictions. */
  loss(idx: Tensor, lengths: readonly number[] | undefined, labels: Tensor): Tensor;
}

/** Loss and accuracy on a set of examples. */
export interface ClassificationScore {
  /** Mean cross-entropy per example. */
  loss: number;
  /** Fraction of examples whose highest logit is their label. */
  accuracy: number;
  /** Examples scored. */
  examples: number;
}

/** A periodic evaluation record of {@linkcode finetuneClassifier} (a `val` line of the metrics). */
export interface ClassifyEvalRecord extends ValRecord {
  /** Validation accuracy on the evaluated batches. */
  accuracy: number;
  /** Training loss on the evaluated batches (eval mode). */
  trainLoss: number;
  /** Training accuracy on the evaluated batches. */
  trainAccuracy: number;
}

/** Options of {@linkcode finetuneClassifier}: the data, the model and {@linkcode FinetuneOptions}. */
export interface ClassifyOptions extends FinetuneOptions {
  /** The classifier, trained in place (only its parameters with requiresGrad). */
  model: SequenceClassifier;
  /** Training examples (tokenised, e.g. by `tokenizeLabeled`). */
  train: readonly ClassificationExample[];
  /** Validation examples: scored every `evalEvery` steps and at the end. */
  val?: readonly ClassificationExample[];
  /** Test examples: scored at the end. */
  test?: readonly ClassificationExample[];
  /** Pad each batch to its longest example (default) or to a fixed length. */
  padTo?: "longest" | number;
  /** The padding id (default 50256). */
  padToken?: number;
  /** Final scores as JSON (default `summary.json` beside the checkpoint, if there is one). */
  summaryPath?: string;
  /**
   * Train and validation accuracy at every evaluation as an SVG (default `accuracy.svg` beside the
   * checkpoint, if there is one); a resumed run plots the earlier evaluations too.
   */
  accuracyPlotPath?: string;
}

/** What {@linkcode finetuneClassifier} did. */
export interface ClassifyResult extends FinetuneRunResult {
  /** Scores on the complete sets after the last step. */
  final: { train: ClassificationScore; val?: ClassificationScore; test?: ClassificationScore };
}

/** Options of {@linkcode evaluateClassifier}. */
export interface EvaluateClassifierOptions {
  /** Examples per batch (default 8). */
  batchSize?: number;
  /** Score only the first this many batches (default: all). */
  batches?: number;
  /** Pad each batch to its longest example (default) or to a fixed length. */
  padTo?: "longest" | number;
  /** The padding id (default 50256). */
  padToken?: number;
}

/**
 * Loss and accuracy of `model` on `examples`, in order, without gradients and in eval mode (the
 * model's mode is restored). Each batch reads its logits back once; the loss and the argmax are
 * computed from them in double precision.
 *
 * @returns mean loss, accuracy and the number of examples scored
 * @example
 * ```ts
 * import { evaluateClassifier, GPT2, gpt2Config, GPT2Classifier, manualSeed } from "@denograd/denograd";
 * manualSeed(0);
 * const clf = new GPT2Classifier(new GPT2(gpt2Config("small-test")), { numClasses: 2 });
 * const data = [{ ids: Int32Array.of(1, 2), label: 0 }, { ids: Int32Array.of(3), label: 1 }];
 * console.log(evaluateClassifier(clf, data, { padToken: 0 }).examples); // 2
 * ```
 */
export function evaluateClassifier(
  model: SequenceClassifier,
  examples: readonly ClassificationExample[],
  options: EvaluateClassifierOptions = {},
): ClassificationScore {
  const op = "evaluateClassifier";
  const batchSize = intOption(op, "batchSize", options.batchSize, 1, 8);
  const loader = new Batches([...examples], (items) => items, { batchSize, shuffle: false });
  const batches = Math.min(
    intOption(op, "batches", options.batches, 1, loader.batchesPerEpoch),
    loader.batchesPerEpoch,
  );
  const wasTraining = model.training;
  model.eval();
  let lossSum = 0, correct = 0, count = 0;
  try {
    for (let i = 0; i < batches; i++) {
      const items = loader.nextItems();
      const logits = tidy(() =>
        noGrad(() => {
          const { input, lengths } = collateClassification(items, {
            padTo: options.padTo,
            padToken: options.padToken,
            device: model.device,
          });
          return model.forward(input, lengths).toTypedArray() as Float32Array; // (B, n)
        })
      );
      const n = model.numClasses;
      items.forEach((item, b) => {
        const row = logits.subarray(b * n, (b + 1) * n);
        let best = 0, max = -Infinity;
        row.forEach((v, c) => {
          if (v > max) [max, best] = [v, c];
        });
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        lossSum += max + Math.log(sum) - row[item.label];
        if (best === item.label) correct++;
        count++;
      });
    }
  } finally {
    model.train(wasTraining);
  }
  return { loss: lossSum / count, accuracy: correct / count, examples: count };
}

function checkExamples(op: string, name: string, xs: unknown, numClasses: number): void {
  if (!Array.isArray(xs) || xs.length === 0) {
    throw new TypeError(`${op}: ${name} must be a non-empty array of {ids, label} examples`);
  }
  xs.forEach((x: ClassificationExample, i) => {
    if (!(x?.ids instanceof Int32Array) || x.ids.length === 0) {
      throw new TypeError(`${op}: ${name}[${i}].ids must be a non-empty Int32Array`);
    }
    if (!Number.isInteger(x.label) || x.label < 0 || x.label >= numClasses) {
      throw new RangeError(
        `${op}: ${name}[${i}].label = ${x.label} is not a class in [0, ${numClasses})`,
      );
    }
  });
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/**
 * Fine-tunes a classifier. Trains the parameters that require gradients (the classifier's
 * `trainable` choice, or LoRA adapters), with AdamW, the learning-rate schedule, clipping and
 * accumulation of {@linkcode FinetuneOptions}; every `evalEvery` steps scores `evalBatches` batches
 * of train and validation; checkpoints resume bit-identically; at the end scores the complete
 * train, validation and test sets and writes them to `summaryPath`.
 *
 * @returns the loop's record and the final scores
 * @example
 * ```ts ignore
 * import { finetuneClassifier, GPT2, gpt2Config, GPT2Classifier } from "@denograd/denograd";
 * const clf = new GPT2Classifier(new GPT2(gpt2Config("tiny")), { numClasses: 2 });
 * const { final } = await finetuneClassifier({ model: clf, train, val, test, epochs: 5 });
 * console.log(final.test?.accuracy);
 * ```
 */
export async function finetuneClassifier(options: ClassifyOptions): Promise<ClassifyResult> {
  const op = "finetuneClassifier";
  const o = options ?? ({} as ClassifyOptions);
  const { model } = o;
  if (!model || typeof model.forward !== "function" || !Number.isInteger(model.numClasses)) {
    throw new TypeError(`${op}: model must be a classifier such as GPT2Classifier`);
  }
  checkExamples(op, "train", o.train, model.numClasses);
  if (o.val !== undefined) checkExamples(op, "val", o.val, model.numClasses);
  if (o.test !== undefined) checkExamples(op, "test", o.test, model.numClasses);
  const batchSize = intOption(op, "batchSize", o.batchSize, 1, 8);
  const evalBatches = intOption(op, "evalBatches", o.evalBatches, 1, 5);
  const seed = intOption(op, "seed", o.seed, 0, 0);
  const collate = { padTo: o.padTo, padToken: o.padToken, device: model.device };
  // Fail on a bad padTo now, not at the first batch.
  const probe = collateClassification([o.train[0]], collate);
  probe.input.dispose();
  probe.labels.dispose();
  const train = new Batches<ClassificationExample, ClassificationBatch>(
    [...o.train],
    (items) => collateClassification(items, collate),
    { batchSize, seed },
  );
  const score = (xs: readonly ClassificationExample[], batches?: number) =>
    evaluateClassifier(model, xs, { batchSize, batches, padTo: o.padTo, padToken: o.padToken });

  const run = await runFinetune({
    op,
    model,
    train,
    options: o,
    examplesPerStep: batchSize,
    checkpointConfig: {
      // A GPT2Classifier's trunk; other classifiers bring no configuration to store.
      model: (model as { transformer?: { config?: object } }).transformer?.config ?? null,
      settings: { numClasses: model.numClasses, batchSize, padTo: o.padTo ?? "longest" },
    },
    microLoss: (batch) => ({
      loss: model.loss(batch.input, batch.lengths, batch.labels),
      tokens: batch.lengths.reduce((a, b) => a + b, 0),
    }),
    evaluate: (step) => {
      const tr = score(o.train, evalBatches);
      const va = o.val ? score(o.val, evalBatches) : tr;
      const record: ClassifyEvalRecord = {
        kind: "val",
        step,
        loss: va.loss,
        accuracy: va.accuracy,
        trainLoss: tr.loss,
        trainAccuracy: tr.accuracy,
      };
      const line = `step ${step}: train loss ${tr.loss.toFixed(4)} acc ${pct(tr.accuracy)}` +
        (o.val ? ` | val loss ${va.loss.toFixed(4)} acc ${pct(va.accuracy)}` : "");
      return { record, line };
    },
  });

  const final: ClassifyResult["final"] = { train: score(o.train) };
  if (o.val) final.val = score(o.val);
  if (o.test) final.test = score(o.test);
  const log = o.log ?? ((line: string) => console.log(line));
  for (const [split, s] of Object.entries(final)) {
    log(`final ${split}: loss ${s.loss.toFixed(4)}  accuracy ${pct(s.accuracy)} (${s.examples})`);
  }
  const beside = (file: string) =>
    o.checkpointPath ? join(dirname(o.checkpointPath), file) : undefined;
  const accuracyPlotPath = o.accuracyPlotPath ?? beside("accuracy.svg");
  if (accuracyPlotPath) {
    // The metrics file holds the evaluations of earlier (resumed) runs as well.
    const metricsPath = o.metricsPath ?? beside("metrics.jsonl");
    const evals = metricsPath
      ? (await readMetrics(metricsPath)).filter((r) => r.kind === "val") as ClassifyEvalRecord[]
      : run.evals as ClassifyEvalRecord[];
    const svg = lineChartsSvg([{
      title: "Accuracy",
      yLabel: "accuracy",
      series: [
        { name: "train", points: evals.map((r) => [r.step, r.trainAccuracy]), markers: true },
        { name: "val", points: evals.map((r) => [r.step, r.accuracy]), markers: true },
      ],
    }]);
    await Deno.mkdir(dirname(accuracyPlotPath), { recursive: true });
    await writeFileAtomic(accuracyPlotPath, svg);
  }
  const summaryPath = o.summaryPath ?? beside("summary.json");
  if (summaryPath) {
    await Deno.mkdir(dirname(summaryPath), { recursive: true });
    await writeFileAtomic(
      summaryPath,
      JSON.stringify({ step: run.step, ...final }, null, 2) + "\n",
    );
  }
  return { ...run, final };
}
