/**
 * Direct Preference Optimization (Rafailov et al., 2023): trains a policy to prefer the chosen
 * response over the rejected one, relative to a frozen reference model, with no reward model:
 * `loss = -log σ(β·((log π(y_c|x) - log π_ref(y_c|x)) - (log π(y_r|x) - log π_ref(y_r|x))))`,
 * sequence log-probabilities summed over the response tokens. Logs what the paper and TRL report:
 * the implicit rewards β·(log π - log π_ref) of both responses, their margin and how often the
 * chosen one wins (reward accuracy).
 * @module
 */

import { noGrad } from "../autograd.ts";
import { tidy } from "../memory.ts";
import { zerosLike } from "../ops/creation.ts";
import { gt } from "../ops/elementwise.ts";
import { stack } from "../ops/movement.ts";
import { crossEntropy } from "../ops/nn.ts";
import { getRngState, setRngState } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import { Batches } from "../data/batches.ts";
import {
  collatePreferences,
  type PreferenceBatch,
  type PreferenceExample,
} from "../data/preference.ts";
import { END_OF_TEXT } from "../tokenizer/gpt2.ts";
import { GPT2 } from "../models/gpt2/model.ts";
import { loraLayers } from "../nn/lora.ts";
import { type FinetuneOptions, type FinetuneRunResult, runFinetune } from "./finetune.ts";
import { intOption } from "./loop.ts";
import type { ValRecord } from "./metrics.ts";

/**
 * Log-probability of each row's response: the sum over positions whose target is not
 * `ignoreIndex` of log softmax(logits)[target].
 *
 * @param logits (N, T, V)
 * @param target (N, T) i32, -100 outside the response
 * @returns (N)
 * @example
 * ```ts
 * import { sequenceLogProbs, tensor } from "@denograd/denograd";
 * const logits = tensor([[[0, 0], [0, 0], [0, 0]]]); // (1, 3, 2): every token has p = 1/2
 * const target = tensor([[-100, 1, 0]], { dtype: "i32" });
 * console.log(sequenceLogProbs(logits, target).toArray()); // [2 ln ½] ≈ [-1.3863]
 * ```
 */
export function sequenceLogProbs(logits: Tensor, target: Tensor): Tensor {
  if (logits?.ndim !== 3 || target?.ndim !== 2) {
    throw new RangeError(
      `sequenceLogProbs: logits must be (N, T, V) and target (N, T), got ${
        fmt(logits?.shape ?? [])
      } and ${fmt(target?.shape ?? [])}`,
    );
  }
  const nll = crossEntropy(logits, target, { reduction: "none" }); // (N, T), 0 where ignored
  const total = nll.sum(-1); // (N)
  const logp = total.neg(); // (N)
  nll.dispose();
  total.dispose();
  return logp;
}

/** What {@linkcode dpoLoss} returns. */
export interface DPOLossResult {
  /** Mean DPO loss over the pairs, a scalar with the policy's gradient. */
  loss: Tensor;
  /** β·(log π(y_c) - log π_ref(y_c)) per pair (B), no gradient. */
  chosenRewards: Tensor;
  /** β·(log π(y_r) - log π_ref(y_r)) per pair (B), no gradient. */
  rejectedRewards: Tensor;
}

/**
 * The DPO loss of B pairs from the sequence log-probabilities of policy and reference:
 * mean over pairs of -log σ(z), z = β·((π_c - ref_c) - (π_r - ref_r)), computed as
 * log(e⁰ + e⁻ᶻ) (a log-sum-exp), which neither overflows for large |z| nor loses the gradient
 * at z = 0 (σ(0) = ½: the first step, where policy and reference agree, still learns).
 *
 * @param policyChosen (B) log π(y_c|x), with gradient
 * @param policyRejected (B) log π(y_r|x), with gradient
 * @param referenceChosen (B) log π_ref(y_c|x)
 * @param referenceRejected (B) log π_ref(y_r|x)
 * @param beta the strength of the pull toward the reference (the paper's β; default 0.1)
 * @returns the loss and the implicit rewards
 * @example
 * ```ts
 * import { dpoLoss, tensor } from "@denograd/denograd";
 * const lp = tensor([-3, -4]);
 * const { loss } = dpoLoss(lp, lp, lp, lp); // policy == reference
 * console.log(loss.item()); // ln 2 ≈ 0.6931
 * ```
 */
export function dpoLoss(
  policyChosen: Tensor,
  policyRejected: Tensor,
  referenceChosen: Tensor,
  referenceRejected: Tensor,
  beta = 0.1,
): DPOLossResult {
  const all = [policyChosen, policyRejected, referenceChosen, referenceRejected];
  const B = policyChosen?.shape?.[0];
  if (all.some((t) => t?.ndim !== 1 || t.shape[0] !== B)) {
    throw new RangeError(
      `dpoLoss: the four log-probabilities must be (B) vectors of one length, got ${
        all.map((t) => fmt(t?.shape ?? [])).join(", ")
      }`,
    );
  }
  if (typeof beta !== "number" || !Number.isFinite(beta) || beta <= 0) {
    throw new RangeError(`dpoLoss: beta must be a finite number > 0, got ${beta}`);
  }
  const loss = tidy(() => {
    const chosen = policyChosen.sub(referenceChosen.detach()); // (B)
    const rejected = policyRejected.sub(referenceRejected.detach()); // (B)
    const z = chosen.sub(rejected).mul(beta); // (B)
    const negZ = z.neg();
    const perPair = stack([zerosLike(negZ), negZ]).logsumexp(0); // (B) -log σ(z) = softplus(-z)
    return perPair.mean();
  });
  const [chosenRewards, rejectedRewards] = noGrad(() =>
    tidy(() => [
      policyChosen.sub(referenceChosen).mul(beta),
      policyRejected.sub(referenceRejected).mul(beta),
    ])
  );
  return { loss, chosenRewards, rejectedRewards };
}

/** Means over the pairs of a batch, what the DPO logs report. */
export interface DPOStats {
  /** Mean reward of the chosen responses. */
  chosenReward: number;
  /** Mean reward of the rejected responses. */
  rejectedReward: number;
  /** Mean of chosen - rejected reward. */
  margin: number;
  /** Share of pairs whose chosen reward is strictly larger. */
  accuracy: number;
}

/** The four statistics as scalar tensors (no gradient, no sync). */
function statTensors(r: DPOLossResult): Record<keyof DPOStats, Tensor> {
  return noGrad(() =>
    tidy(() => {
      const diff = r.chosenRewards.sub(r.rejectedRewards); // (B)
      return {
        chosenReward: r.chosenRewards.mean(),
        rejectedReward: r.rejectedRewards.mean(),
        margin: diff.mean(),
        accuracy: gt(r.chosenRewards, r.rejectedRewards).cast("f32").mean(),
      };
    })
  );
}

/**
 * Runs policy and reference on a collated batch and returns the DPO loss and rewards. The
 * reference runs under noGrad; its logits are freed at once.
 *
 * @param policy the model being trained
 * @param reference the frozen reference model
 * @param batch from {@linkcode collatePreferences}
 * @param beta see {@linkcode dpoLoss}
 * @returns the loss (with the policy's gradient) and the rewards
 * @example
 * ```ts
 * import { collatePreferences, dpoBatchLoss, GPT2, gpt2Config, referenceCopy } from "@denograd/denograd";
 * const policy = new GPT2(gpt2Config("small-test"));
 * const reference = referenceCopy(policy);
 * const pair = { prompt: Int32Array.of(1, 2), chosen: Int32Array.of(3, 4), rejected: Int32Array.of(5) };
 * const { loss } = dpoBatchLoss(policy, reference, collatePreferences([pair], { padToken: 0 }));
 * console.log(loss.item()); // ln 2 ≈ 0.6931: the policy is still the reference
 * loss.backward(); // gradients in policy.parameters()
 * ```
 */
export function dpoBatchLoss(
  policy: GPT2,
  reference: GPT2,
  batch: PreferenceBatch,
  beta = 0.1,
): DPOLossResult {
  const B = batch.pairs;
  const [refChosen, refRejected] = noGrad(() =>
    tidy(() => {
      const logits = reference.forward(batch.input); // (2B, T, V)
      return sequenceLogProbs(logits, batch.target).split(B, 0).map((t) => t.contiguous()); // (B), (B)
    })
  );
  const logits = policy.forward(batch.input); // (2B, T, V)
  const logps = sequenceLogProbs(logits, batch.target); // (2B)
  logits.dispose();
  const [chosen, rejected] = logps.split(B, 0); // (B), (B)
  const result = dpoLoss(chosen, rejected, refChosen, refRejected, beta);
  for (const t of [logps, chosen, rejected, refChosen, refRejected]) t.dispose();
  return result;
}

/**
 * A frozen copy of `policy` to serve as DPO's reference: a new GPT2 of the same config in eval
 * mode with no trainable parameters, holding the policy's current function. LoRA layers are
 * folded in (W + (alpha/r)·B·A); a LoRA head on the tied embedding cannot be folded into a plain
 * GPT-2, so it must still be at its zero start. The global random generator is left as it was.
 *
 * @param policy the model at the start of DPO
 * @returns a new model the caller disposes
 * @throws {RangeError} for a trained LoRA head on the tied embedding
 * @example
 * ```ts
 * import { GPT2, gpt2Config, referenceCopy } from "@denograd/denograd";
 * const policy = new GPT2(gpt2Config("small-test"));
 * const reference = referenceCopy(policy);
 * console.log(reference.numParameters(), reference.training); // 0 false
 * ```
 */
export function referenceCopy(policy: GPT2): GPT2 {
  if (!(policy instanceof GPT2)) throw new TypeError("referenceCopy: policy must be a GPT2");
  const layers = loraLayers(policy);
  for (const [name, l] of layers) {
    if (l.tiedTo !== null && l.lora_B.toTypedArray().some((v) => v !== 0)) {
      throw new RangeError(
        `referenceCopy: the LoRA layer "${name}" on the tied head is trained already; pass the ` +
          `reference model explicitly`,
      );
    }
  }
  const rng = getRngState();
  const reference = new GPT2(policy.config, { device: policy.device });
  setRngState(rng); // building the copy draws an init nobody keeps
  const own = new Map(policy.namedTensors());
  const folded = new Map<string, Tensor>();
  for (const [name, l] of layers) {
    if (l.tiedTo === null && !l.merged) {
      const delta = l.delta();
      folded.set(`${name}.weight`, noGrad(() => l.weight.add(delta)));
      delta.dispose();
    }
  }
  try {
    const state = Object.fromEntries(
      reference.namedTensors().map(([n]) => [n, folded.get(n) ?? own.get(n)!]),
    );
    reference.loadStateDict(state);
  } finally {
    for (const t of folded.values()) t.dispose();
  }
  return reference.freeze().eval();
}

/** A periodic evaluation of {@linkcode trainDPO}: a `val` line of the metrics. */
export interface DPOEvalRecord extends ValRecord, DPOStats {
  /** DPO loss on the evaluated training batches. */
  trainLoss: number;
  /** Reward margin on the evaluated training batches. */
  trainMargin: number;
  /** Reward accuracy on the evaluated training batches. */
  trainAccuracy: number;
}

/** Options of {@linkcode trainDPO}: the data, the models, β and {@linkcode FinetuneOptions}. */
export interface DPOOptions extends FinetuneOptions {
  /** The policy, trained in place (its parameters with requiresGrad: all, or LoRA adapters). */
  model: GPT2;
  /**
   * The frozen reference; default {@linkcode referenceCopy}(model) taken before anything else,
   * so a resumed run (whose model is filled from the checkpoint afterwards) still compares
   * against the model as it was built, not as it was saved.
   */
  reference?: GPT2;
  /** Training pairs (from `tokenizePreferences`). */
  train: readonly PreferenceExample[];
  /** Validation pairs, evaluated every `evalEvery` steps and after the last. */
  val?: readonly PreferenceExample[];
  /** DPO's β (default 0.1, the paper's and the book's). */
  beta?: number;
  /** Truncate sequences to this many tokens (default the model's context length). */
  maxLength?: number;
  /** The padding id (default 50256, `<|endoftext|>`; padded targets are masked anyway). */
  padToken?: number;
}

/** What {@linkcode trainDPO} did. */
export interface DPOResult extends FinetuneRunResult {
  /** Rewards, margin and accuracy of every step of this run (means over its pairs). */
  stepStats: DPOStats[];
}

function checkPairs(op: string, name: string, xs: unknown): void {
  if (!Array.isArray(xs) || xs.length === 0) {
    throw new TypeError(`${op}: ${name} must be a non-empty array of preference examples`);
  }
  xs.forEach((x: PreferenceExample, i) => {
    if (
      !(x?.prompt instanceof Int32Array) || !(x.chosen instanceof Int32Array) ||
      !(x.rejected instanceof Int32Array)
    ) {
      throw new TypeError(
        `${op}: ${name}[${i}] must be {prompt, chosen, rejected} Int32Arrays (see tokenizePreferences)`,
      );
    }
  });
}

/**
 * DPO-trains a GPT-2 on preference pairs. Every step scores both responses of each pair with
 * the policy and the frozen reference (one forward each over the 2B sequences), takes the DPO
 * loss, and logs the step's mean chosen and rejected rewards, margin and accuracy into the train
 * record of the JSONL metrics; every `evalEvery` steps the same numbers on `evalBatches` batches
 * of train and validation. Progress bar, loss-curve SVG, checkpoints and resume as in the other
 * trainers. Defaults follow the book's chapter 7 DPO run: β 0.1, lr 5e-6, weight decay 0.01.
 *
 * @returns the loop's record and the per-step statistics
 * @example
 * ```ts ignore
 * import { tokenizePreferences, trainDPO, validatePreferenceRecords } from "@denograd/denograd";
 * const records = validatePreferenceRecords(JSON.parse(
 *   await Deno.readTextFile("examples/data/instruction-data-with-preference.json"),
 * ));
 * await trainDPO({ model, train: tokenizePreferences(records, tokenizer), epochs: 1 });
 * ```
 */
export async function trainDPO(options: DPOOptions): Promise<DPOResult> {
  const op = "trainDPO";
  const o = options ?? ({} as DPOOptions);
  const { model } = o;
  if (!(model instanceof GPT2)) throw new TypeError(`${op}: model must be a GPT2`);
  if (o.reference !== undefined && !(o.reference instanceof GPT2)) {
    throw new TypeError(`${op}: reference must be a GPT2`);
  }
  checkPairs(op, "train", o.train);
  if (o.val !== undefined) checkPairs(op, "val", o.val);
  const beta = o.beta ?? 0.1;
  if (typeof beta !== "number" || !Number.isFinite(beta) || beta <= 0) {
    throw new RangeError(`${op}: beta must be a finite number > 0, got ${beta}`);
  }
  const batchSize = intOption(op, "batchSize", o.batchSize, 1, 8);
  const evalBatches = intOption(op, "evalBatches", o.evalBatches, 1, 5);
  const seed = intOption(op, "seed", o.seed, 0, 0);
  const context = model.config.contextLength;
  const maxLength = intOption(op, "maxLength", o.maxLength, 1, context);
  if (maxLength > context) {
    throw new RangeError(`${op}: maxLength ${maxLength} exceeds the context length ${context}`);
  }
  const padToken = intOption(op, "padToken", o.padToken, 0, END_OF_TEXT);
  if (padToken >= model.config.vocabSize) {
    throw new RangeError(
      `${op}: padToken ${padToken} is not below the vocabulary size ${model.config.vocabSize}`,
    );
  }
  const ownsReference = o.reference === undefined;
  const reference = o.reference ?? referenceCopy(model);
  reference.eval();
  const collate = (items: PreferenceExample[]) =>
    collatePreferences(items, { maxLength, padToken, device: model.device });
  const train = new Batches([...o.train], collate, { batchSize, seed });
  const batchLoss = (batch: PreferenceBatch) => {
    try {
      return dpoBatchLoss(model, reference, batch, beta);
    } finally {
      batch.input.dispose();
      batch.target.dispose();
    }
  };
  // Evaluations read the first batches in a fixed order, so they are comparable across steps.
  const evaluateOn = (xs: readonly PreferenceExample[]) => {
    const loader = new Batches([...xs], collate, { batchSize, shuffle: false });
    const n = Math.min(evalBatches, loader.batchesPerEpoch);
    const sums = { loss: 0, chosenReward: 0, rejectedReward: 0, margin: 0, accuracy: 0 };
    for (let i = 0; i < n; i++) {
      tidy(() => {
        const r = batchLoss(loader.next());
        const s = statTensors(r);
        sums.loss += r.loss.item();
        for (const k of Object.keys(s) as (keyof DPOStats)[]) sums[k] += s[k].item();
      });
    }
    for (const k of Object.keys(sums) as (keyof typeof sums)[]) sums[k] /= n;
    return sums;
  };

  const stepStats: DPOStats[] = [];
  try {
    const run = await runFinetune({
      op,
      model,
      train,
      options: {
        maxLr: 5e-6,
        weightDecay: 0.01,
        ...o,
        onStep: (r) => {
          const s = r as unknown as DPOStats;
          stepStats.push({
            chosenReward: s.chosenReward,
            rejectedReward: s.rejectedReward,
            margin: s.margin,
            accuracy: s.accuracy,
          });
          o.onStep?.(r);
        },
      },
      checkpointConfig: { model: { ...model.config }, settings: { batchSize, maxLength, beta } },
      microLoss: (batch) => {
        const tokens = batch.input.size;
        const r = batchLoss(batch);
        return { loss: r.loss, tokens, stats: statTensors(r) };
      },
      evaluate: (step) => {
        const t = evaluateOn(o.train);
        const v = o.val ? evaluateOn(o.val) : t;
        const record: DPOEvalRecord = {
          kind: "val",
          step,
          loss: v.loss,
          chosenReward: v.chosenReward,
          rejectedReward: v.rejectedReward,
          margin: v.margin,
          accuracy: v.accuracy,
          trainLoss: t.loss,
          trainMargin: t.margin,
          trainAccuracy: t.accuracy,
        };
        const split = o.val ? "val" : "train";
        const line = `step ${step}: train loss ${t.loss.toFixed(4)} margin ${t.margin.toFixed(4)}` +
          (o.val ? ` | ${split} loss ${v.loss.toFixed(4)} margin ${v.margin.toFixed(4)}` : "") +
          ` | rewards chosen ${v.chosenReward.toFixed(4)} rejected ${
            v.rejectedReward.toFixed(4)
          } accuracy ${(100 * v.accuracy).toFixed(1)}%`;
        return { record, line };
      },
    });
    return { ...run, stepStats };
  } finally {
    if (ownsReference) reference.dispose();
  }
}
