/**
 * A GPT-2 with its language-model head replaced by an n-class linear head (the book's chapter 6):
 * the head reads the final hidden state of each sequence's last real token, the one position that
 * has attended to the whole text. Which parts train is chosen at construction.
 * @module
 */

import type { Device } from "../../backend/backend.ts";
import { tensor } from "../../ops/creation.ts";
import { crossEntropy } from "../../ops/nn.ts";
import { Tensor } from "../../tensor.ts";
import { fmt } from "../../_shape.ts";
import { Linear } from "../../nn/linear.ts";
import { Module } from "../../nn/module.ts";
import type { GPT2 } from "./model.ts";

/**
 * What trains: `"all"` (every parameter), `"head"` (the new head only: a linear probe), or a
 * number n (the last n transformer blocks, the final LayerNorm and the head; the book's choice is
 * 1, the default).
 */
export type TrainableParts = "all" | "head" | number;

/** Options of {@linkcode GPT2Classifier}. */
export interface GPT2ClassifierOptions {
  /** Number of classes (>= 2). */
  numClasses: number;
  /** Which parameters train (default 1: last block + final LayerNorm + head). */
  trainable?: TrainableParts;
}

/**
 * A sequence classifier on a GPT-2 trunk. The trunk is used (and owned) as given — random, loaded
 * with `loadGpt2Safetensors`, or pretrained here — and its tied language-model head is simply not
 * used. State-dict names are the trunk's prefixed with `transformer.`, then `head.weight` and
 * `head.bias`.
 *
 * @example
 * ```ts
 * import { GPT2, gpt2Config, GPT2Classifier, manualSeed, tensor } from "@denograd/denograd";
 * manualSeed(0);
 * const clf = new GPT2Classifier(new GPT2(gpt2Config("small-test")), { numClasses: 2 });
 * const idx = tensor([[5, 6, 7], [8, 9, 0]], { dtype: "i32" }); // (B, T), row 1 padded
 * console.log(clf.forward(idx, [3, 2]).shape); // [2, 2]
 * console.log(clf.numParameters()); // 3346 = last block 3,280 + ln_f 32 + head 34
 * ```
 */
export class GPT2Classifier extends Module {
  /** The GPT-2 trunk. */
  transformer: GPT2;
  /** The classification head, (numClasses, nEmbd) weight and (numClasses) bias. */
  head: Linear;
  /** Number of classes. */
  readonly numClasses: number;

  /**
   * Attaches a fresh head (PyTorch's default Linear init, from the seeded generator) and freezes
   * what `trainable` leaves out.
   *
   * @param transformer the trunk (this classifier takes it over: it is frozen in part, disposed with it)
   * @throws {RangeError} for fewer than 2 classes or a bad `trainable`
   */
  constructor(transformer: GPT2, options: GPT2ClassifierOptions) {
    super();
    const op = "GPT2Classifier";
    if (!transformer || typeof transformer.hiddenStates !== "function") {
      throw new TypeError(`${op}: transformer must be a GPT2`);
    }
    const { numClasses, trainable = 1 } = options ?? {};
    if (!Number.isInteger(numClasses) || numClasses < 2) {
      throw new RangeError(`${op}: numClasses must be an integer >= 2, got ${numClasses}`);
    }
    const nLayer = transformer.config.nLayer;
    if (
      trainable !== "all" && trainable !== "head" &&
      !(Number.isInteger(trainable) && trainable >= 0 && trainable <= nLayer)
    ) {
      throw new RangeError(
        `${op}: trainable must be "all", "head" or a block count in [0, ${nLayer}], got ${trainable}`,
      );
    }
    this.transformer = transformer;
    this.numClasses = numClasses;
    this.head = new Linear(transformer.config.nEmbd, numClasses, { device: transformer.device });
    this.setTrainable(trainable);
  }

  /** The device holding the parameters. */
  get device(): Device {
    return this.transformer.device;
  }

  /**
   * Chooses again what trains (see {@linkcode TrainableParts}); the head always does.
   *
   * @returns this classifier
   */
  setTrainable(trainable: TrainableParts): this {
    const gpt = this.transformer;
    this.head.unfreeze();
    if (trainable === "all") {
      gpt.unfreeze();
      return this;
    }
    gpt.freeze();
    if (trainable === "head") return this;
    const n = gpt.h.length;
    for (let i = n - trainable; i < n; i++) gpt.h[i].unfreeze();
    gpt.ln_f.unfreeze();
    return this;
  }

  /**
   * Class logits of each sequence, read at its last real token.
   *
   * @param idx (B, T) i32 token ids, padded on the right
   * @param lengths real tokens of each row, 1 <= lengths[b] <= T (default: T for every row)
   * @returns (B, numClasses) logits
   * @throws {RangeError} when lengths do not fit idx
   */
  forward(idx: Tensor, lengths?: readonly number[]): Tensor {
    const op = "GPT2Classifier.forward";
    if (!(idx instanceof Tensor) || idx.ndim !== 2) {
      throw new RangeError(
        `${op}: idx must be a (B, T) Tensor, got ${idx?.shape ? fmt(idx.shape) : idx}`,
      );
    }
    const [B, T] = idx.shape;
    if (lengths !== undefined) {
      if (!Array.isArray(lengths) || lengths.length !== B) {
        throw new RangeError(`${op}: lengths must be an array of ${B} lengths, got ${lengths}`);
      }
      const bad = lengths.findIndex((n) => !Number.isInteger(n) || n < 1 || n > T);
      if (bad >= 0) {
        throw new RangeError(`${op}: lengths[${bad}] = ${lengths[bad]} is not in [1, ${T}]`);
      }
    }
    // Row b's last real token sits at flat position b*T + length - 1 of the (B*T, C) states.
    const rows = Int32Array.from({ length: B }, (_, b) => b * T + (lengths ? lengths[b] : T) - 1);
    const hidden = this.transformer.hiddenStates(idx); // (B, T, C)
    const flat = hidden.reshape([B * T, hidden.shape[2]]); // (B*T, C)
    const index = tensor(rows, { shape: [B], device: this.device }); // (B)
    const last = flat.indexSelect(0, index); // (B, C)
    const logits = this.head.forward(last); // (B, numClasses)
    for (const t of [hidden, flat, index, last]) t.dispose();
    return logits;
  }

  /**
   * Mean cross-entropy of the class predictions.
   *
   * @param idx (B, T) i32 token ids, padded on the right
   * @param lengths real tokens of each row
   * @param labels (B) i32 class indices
   * @returns a scalar
   */
  loss(idx: Tensor, lengths: readonly number[] | undefined, labels: Tensor): Tensor {
    const logits = this.forward(idx, lengths); // (B, numClasses)
    const loss = crossEntropy(logits, labels);
    logits.dispose();
    return loss;
  }
}
