/**
 * Preference data for DPO: Alpaca-style records with a preferred (`chosen`) and a dispreferred
 * (`rejected`) response, in the instruction data's prompt format; tokenisation; and the collate
 * that stacks prompt+chosen and prompt+rejected into one batch whose targets select the response
 * tokens only.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { tensor } from "../ops/creation.ts";
import type { Tensor } from "../tensor.ts";
import { formatInstructionPrompt, formatInstructionResponse } from "./instruction.ts";
import { END_OF_TEXT } from "../tokenizer/gpt2.ts";

/** GPT-2's `<|endoftext|>` id, the padding token. */

/** One preference record (the book's `instruction-data-with-preference.json`). */
export interface PreferenceRecord {
  /** The task. */
  instruction: string;
  /** Extra input for the task; "" when there is none. */
  input: string;
  /** The preferred response. */
  chosen: string;
  /** The dispreferred response. */
  rejected: string;
  /** The instruction data's reference response (not used by DPO; optional). */
  output?: string;
}

/** A tokenised preference record. */
export interface PreferenceExample {
  /** The prompt through the `### Response:` header. */
  prompt: Int32Array;
  /** The preferred response's ids. */
  chosen: Int32Array;
  /** The dispreferred response's ids. */
  rejected: Int32Array;
}

/** A collated batch of B preference pairs: 2B sequences, the chosen ones first. */
export interface PreferenceBatch {
  /** Token ids (2B, T) i32: rows 0..B-1 prompt+chosen, rows B..2B-1 prompt+rejected. */
  input: Tensor;
  /**
   * Next-token targets (2B, T) i32: the next id where it is a response token, `ignoreIndex`
   * (-100) elsewhere (prompt, padding): the mask that selects response tokens only.
   */
  target: Tensor;
  /** Pairs in the batch (B). */
  pairs: number;
  /** Targets that are response tokens, per row (2B). */
  responseTokens: number[];
}

/**
 * Checks that `data` is an array of preference records: `instruction`, `input`, `chosen` and
 * `rejected` strings (`output`, when present, a string too; other fields are kept).
 *
 * @param data e.g. `JSON.parse(await Deno.readTextFile("examples/data/instruction-data-with-preference.json"))`
 * @returns the same array, typed
 * @throws {TypeError} naming the first bad record by index and the field that is wrong
 * @example
 * ```ts
 * import { validatePreferenceRecords } from "@denograd/denograd";
 * try {
 *   validatePreferenceRecords([{ instruction: "Hi", input: "", chosen: "Hello!" }]);
 * } catch (e) {
 *   console.log((e as Error).message); // validatePreferenceRecords: record 0: "rejected" is missing
 * }
 * ```
 */
export function validatePreferenceRecords(data: unknown): PreferenceRecord[] {
  const op = "validatePreferenceRecords";
  if (!Array.isArray(data)) {
    throw new TypeError(`${op}: expected an array of records, got ${typeof data}`);
  }
  data.forEach((record, i) => {
    if (record === null || typeof record !== "object" || Array.isArray(record)) {
      throw new TypeError(`${op}: record ${i} must be an object, got ${JSON.stringify(record)}`);
    }
    const r = record as Record<string, unknown>;
    for (const field of ["instruction", "input", "chosen", "rejected", "output"]) {
      const value = r[field];
      if (value === undefined) {
        if (field === "output") continue;
        throw new TypeError(`${op}: record ${i}: "${field}" is missing`);
      }
      if (typeof value !== "string") {
        const got = value === null ? "null" : typeof value;
        throw new TypeError(`${op}: record ${i}: "${field}" must be a string, got ${got}`);
      }
    }
  });
  return data as PreferenceRecord[];
}

/**
 * Tokenises records: the prompt in the instruction data's Alpaca format through the
 * `### Response:` header, and each response on its own, so the boundary between prompt and
 * response is exact.
 *
 * @param encoder e.g. `await Tokenizer.gpt2()`
 * @returns one example per record, in order
 * @example
 * ```ts
 * import { tokenizePreferences } from "@denograd/denograd";
 * const bytes = { encode: (s: string) => [...new TextEncoder().encode(s)] };
 * const [ex] = tokenizePreferences([{ instruction: "Hi", input: "", chosen: "Hello", rejected: "Go" }], bytes);
 * console.log(ex.prompt.length, ex.chosen.length, ex.rejected.length); // 142 5 2
 * ```
 */
export function tokenizePreferences(
  records: readonly PreferenceRecord[],
  encoder: { encode(text: string): number[] },
): PreferenceExample[] {
  validatePreferenceRecords(records);
  if (!encoder || typeof encoder.encode !== "function") {
    throw new TypeError("tokenizePreferences: encoder must have encode(text)");
  }
  return records.map((r) => ({
    prompt: Int32Array.from(encoder.encode(
      formatInstructionPrompt({ ...r, output: "" }) +
        formatInstructionResponse(""),
    )),
    chosen: Int32Array.from(encoder.encode(r.chosen)),
    rejected: Int32Array.from(encoder.encode(r.rejected)),
  }));
}

/** Options of {@linkcode collatePreferences}. */
export interface CollatePreferencesOptions {
  /** The padding id (default 50256, `<|endoftext|>`). */
  padToken?: number;
  /** Target value that the loss skips (default -100). */
  ignoreIndex?: number;
  /** Truncate inputs and targets to this many positions (e.g. the context length). */
  maxLength?: number;
  /** Device of the tensors (default "cpu"). */
  device?: Device;
}

/**
 * Stacks prompt+chosen (rows 0..B-1) and prompt+rejected (rows B..2B-1) into one batch, padded
 * with `padToken` to the longest sequence: inputs are all but the last position, targets all but
 * the first, and a target is kept only where it is a response token (prompt and padding are
 * `ignoreIndex`). One forward pass then scores both responses of every pair. Sequences longer than
 * `maxLength` + 1 are cut at the end (a response cut entirely contributes nothing).
 *
 * @returns the batch; the caller disposes its tensors
 * @throws {RangeError} naming a malformed example by index
 * @example
 * ```ts
 * import { collatePreferences } from "@denograd/denograd";
 * const b = collatePreferences([
 *   { prompt: Int32Array.of(1, 2), chosen: Int32Array.of(3, 4), rejected: Int32Array.of(5) },
 * ], { padToken: 0 });
 * console.log(b.input.toArray()); // [[1, 2, 3], [1, 2, 5]]
 * console.log(b.target.toArray()); // [[-100, 3, 4], [-100, 5, -100]]
 * ```
 */
export function collatePreferences(
  examples: readonly PreferenceExample[],
  options: CollatePreferencesOptions = {},
): PreferenceBatch {
  const op = "collatePreferences";
  const { padToken = END_OF_TEXT, ignoreIndex = -100, maxLength, device } = options;
  if (!Array.isArray(examples) || examples.length === 0) {
    throw new RangeError(`${op}: expected a non-empty array of examples`);
  }
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 1)) {
    throw new RangeError(`${op}: maxLength must be an integer >= 1, got ${maxLength}`);
  }
  examples.forEach((e, i) => {
    for (const field of ["prompt", "chosen", "rejected"] as const) {
      if (!(e?.[field] instanceof Int32Array)) {
        throw new TypeError(`${op}: example ${i}: "${field}" must be an Int32Array of ids`);
      }
    }
    if (e.prompt.length === 0) throw new RangeError(`${op}: example ${i}: the prompt is empty`);
  });
  const B = examples.length;
  const rows = [
    ...examples.map((e) => [e.prompt, e.chosen]),
    ...examples.map((e) => [e.prompt, e.rejected]),
  ];
  const longest = Math.max(...rows.map(([p, r]) => p.length + r.length));
  const T = Math.max(1, Math.min(longest - 1, maxLength ?? Infinity));
  const input = new Int32Array(2 * B * T), target = new Int32Array(2 * B * T);
  const responseTokens = rows.map(([prompt, response], row) => {
    const n = prompt.length + response.length;
    const at = (t: number) =>
      t < prompt.length ? prompt[t] : t < n ? response[t - prompt.length] : padToken;
    let count = 0;
    for (let t = 0; t < T; t++) {
      input[row * T + t] = at(t);
      // Target t is token t + 1: a response token when prompt.length <= t + 1 < n.
      const keep = t + 1 >= prompt.length && t + 1 < n;
      target[row * T + t] = keep ? at(t + 1) : ignoreIndex;
      if (keep) count++;
    }
    return count;
  });
  return {
    input: tensor(input, { shape: [2 * B, T], device }),
    target: tensor(target, { shape: [2 * B, T], device }),
    pairs: B,
    responseTokens,
  };
}
