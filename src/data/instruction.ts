/**
 * Instruction data (the book's chapter 7): Alpaca-style records, their prompt format, the book's
 * 85/10/5 split, tokenisation, and the collate that pads with `<|endoftext|>`, shifts targets by
 * one, masks padding (and optionally the prompt) with -100 and truncates to the context length.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { tensor } from "../ops/creation.ts";
import type { Tensor } from "../tensor.ts";
import { END_OF_TEXT } from "../tokenizer/gpt2.ts";

/** GPT-2's `<|endoftext|>` id: the padding token and the end of every response. */

/** One instruction record: what to do, optional input, the expected response. */
export interface InstructionRecord {
  /** The task. */
  instruction: string;
  /** Extra input for the task; "" when there is none. */
  input: string;
  /** The expected response. */
  output: string;
}

/** A tokenised record. */
export interface InstructionExample {
  /** Token ids of the prompt followed by the response (without the end-of-text token). */
  ids: Int32Array;
  /** How many leading ids are the prompt (instruction and input, before "### Response:"). */
  promptLength: number;
}

/** A collated batch. */
export interface InstructionBatch {
  /** Token ids, (B, T) i32. */
  input: Tensor;
  /** Next-token targets, (B, T) i32; -100 where no loss is taken. */
  target: Tensor;
  /** Number of targets that are not -100 (what a mean loss divides by). */
  targetCount: number;
}

const PREAMBLE = "Below is an instruction that describes a task. " +
  "Write a response that appropriately completes the request.";

/**
 * The prompt of a record in the Alpaca format the book uses (`format_input`): the preamble, the
 * instruction, and the input section only when the input is not empty.
 *
 * @example
 * ```ts
 * import { formatInstructionPrompt } from "@denograd/denograd";
 * console.log(formatInstructionPrompt({ instruction: "Add.", input: "1 2", output: "3" }));
 * // Below is an instruction ... request.\n\n### Instruction:\nAdd.\n\n### Input:\n1 2
 * ```
 */
export function formatInstructionPrompt(record: InstructionRecord): string {
  const input = record.input ? `\n\n### Input:\n${record.input}` : "";
  return `${PREAMBLE}\n\n### Instruction:\n${record.instruction}${input}`;
}

/**
 * The response section that follows the prompt: `"\n\n### Response:\n" + output`. Pass `""` for
 * the header alone (what generation is prompted with).
 */
export function formatInstructionResponse(output: string): string {
  return `\n\n### Response:\n${output}`;
}

/**
 * Checks that `data` is an array of {instruction, input, output} string records (extra fields are
 * allowed and kept) and returns it typed.
 *
 * @param data e.g. `JSON.parse(await Deno.readTextFile("examples/data/instruction-data.json"))`
 * @returns the same array
 * @throws {TypeError} naming the first bad record by index and the field that is wrong
 * @example
 * ```ts
 * import { validateInstructionRecords } from "@denograd/denograd";
 * try {
 *   validateInstructionRecords([{ instruction: "Hi", input: "", output: 3 }]);
 * } catch (e) {
 *   console.log((e as Error).message); // validateInstructionRecords: record 0: "output" must be a string, got number
 * }
 * ```
 */
export function validateInstructionRecords(data: unknown): InstructionRecord[] {
  const op = "validateInstructionRecords";
  if (!Array.isArray(data)) {
    throw new TypeError(`${op}: expected an array of records, got ${typeof data}`);
  }
  data.forEach((record, i) => {
    if (record === null || typeof record !== "object" || Array.isArray(record)) {
      throw new TypeError(`${op}: record ${i} must be an object, got ${JSON.stringify(record)}`);
    }
    for (const field of ["instruction", "input", "output"]) {
      const value = (record as Record<string, unknown>)[field];
      if (value === undefined) throw new TypeError(`${op}: record ${i}: "${field}" is missing`);
      if (typeof value !== "string") {
        throw new TypeError(
          `${op}: record ${i}: "${field}" must be a string, got ${
            value === null ? "null" : typeof value
          }`,
        );
      }
    }
  });
  return data as InstructionRecord[];
}

/**
 * The book's split of the instruction data, in file order (no shuffle): the first 85% for
 * training, the next 10% for testing, the rest (5%) for validation; 1,100 records give 935 / 110 /
 * 55.
 *
 * @returns the three parts
 * @example
 * ```ts
 * import { splitInstructionData } from "@denograd/denograd";
 * const { train, val, test } = splitInstructionData([...Array(1100).keys()]);
 * console.log(train.length, val.length, test.length); // 935 55 110
 * ```
 */
export function splitInstructionData<T>(
  records: readonly T[],
): { train: T[]; val: T[]; test: T[] } {
  if (!Array.isArray(records)) {
    throw new TypeError("splitInstructionData: records must be an array");
  }
  const trainEnd = Math.floor(records.length * 0.85);
  const testEnd = trainEnd + Math.floor(records.length * 0.1);
  return {
    train: records.slice(0, trainEnd),
    test: records.slice(trainEnd, testEnd),
    val: records.slice(testEnd),
  };
}

/**
 * Tokenises records as prompt + response (the book's `InstructionDataset`), remembering the
 * prompt's length for prompt masking (the book's exercise 7.2).
 *
 * @param encoder e.g. `await Tokenizer.gpt2()`
 * @returns one example per record, in order
 * @example
 * ```ts
 * import { tokenizeInstructions } from "@denograd/denograd";
 * const bytes = { encode: (s: string) => [...new TextEncoder().encode(s)] };
 * const [ex] = tokenizeInstructions([{ instruction: "Hi", input: "", output: "Yo" }], bytes);
 * console.log(ex.promptLength, ex.ids.length); // 126 144
 * ```
 */
export function tokenizeInstructions(
  records: readonly InstructionRecord[],
  encoder: { encode(text: string): number[] },
): InstructionExample[] {
  validateInstructionRecords(records);
  if (!encoder || typeof encoder.encode !== "function") {
    throw new TypeError("tokenizeInstructions: encoder must have encode(text)");
  }
  return records.map((r) => {
    const prompt = formatInstructionPrompt(r);
    return {
      ids: Int32Array.from(encoder.encode(prompt + formatInstructionResponse(r.output))),
      promptLength: encoder.encode(prompt).length,
    };
  });
}

/** Options of {@linkcode collateInstructions}. */
export interface CollateInstructionsOptions {
  /** The padding and end-of-response id (default 50256, `<|endoftext|>`). */
  padToken?: number;
  /** Target value that the loss skips (default -100). */
  ignoreIndex?: number;
  /** Truncate inputs and targets to this many positions (e.g. the context length). */
  maxLength?: number;
  /** Also mask the targets inside the prompt, so only the response is learned (default false). */
  maskPrompt?: boolean;
  /** Device of the tensors (default "cpu"). */
  device?: Device;
}

/**
 * The book's `custom_collate_fn`: every sequence gets one `<|endoftext|>`, then padding to the
 * longest sequence + 1; inputs are all but the last position, targets all but the first. Targets
 * after the first end-of-text are `ignoreIndex`, so the model learns to stop but padding adds no
 * loss; with `maskPrompt`, targets that are prompt tokens (the first promptLength - 1) are too.
 * Finally both are cut to `maxLength` positions. (The book finds padding by comparing target ids
 * with the pad id; here it is found by position, which is the same unless a text itself contains
 * `<|endoftext|>`.)
 *
 * @returns input and target (B, T), T = min(longest, maxLength); the caller disposes them
 * @example
 * ```ts
 * import { collateInstructions } from "@denograd/denograd";
 * const b = collateInstructions([
 *   { ids: Int32Array.of(0, 1, 2, 3, 4), promptLength: 2 },
 *   { ids: Int32Array.of(5, 6), promptLength: 1 },
 * ], { padToken: 99 });
 * console.log(b.input.toArray()); // [[0, 1, 2, 3, 4], [5, 6, 99, 99, 99]]
 * console.log(b.target.toArray()); // [[1, 2, 3, 4, 99], [6, 99, -100, -100, -100]]
 * ```
 */
export function collateInstructions(
  examples: readonly InstructionExample[],
  options: CollateInstructionsOptions = {},
): InstructionBatch {
  const op = "collateInstructions";
  const {
    padToken = END_OF_TEXT,
    ignoreIndex = -100,
    maxLength,
    maskPrompt = false,
    device,
  } = options;
  if (!Array.isArray(examples) || examples.length === 0) {
    throw new RangeError(`${op}: expected a non-empty array of examples`);
  }
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 1)) {
    throw new RangeError(`${op}: maxLength must be an integer >= 1, got ${maxLength}`);
  }
  examples.forEach((e, i) => {
    if (!(e?.ids instanceof Int32Array) || e.ids.length === 0) {
      throw new TypeError(`${op}: example ${i} must have a non-empty Int32Array of ids`);
    }
    if (!Number.isInteger(e.promptLength) || e.promptLength < 0 || e.promptLength > e.ids.length) {
      throw new RangeError(
        `${op}: example ${i}: promptLength ${e.promptLength} is not in [0, ${e.ids.length}]`,
      );
    }
  });
  const padded = Math.max(...examples.map((e) => e.ids.length)) + 1; // + the end-of-text
  const T = Math.min(padded - 1, maxLength ?? Infinity);
  const B = examples.length;
  const input = new Int32Array(B * T), target = new Int32Array(B * T);
  let targetCount = 0;
  examples.forEach((e, b) => {
    const n = e.ids.length;
    // Position t of the padded row: the ids, then end-of-text at n, then padding.
    const at = (t: number) => (t < n ? e.ids[t] : padToken);
    const promptMasked = maskPrompt ? Math.max(0, e.promptLength - 1) : 0;
    for (let t = 0; t < T; t++) {
      input[b * T + t] = at(t);
      // Target t is position t + 1; keep it up to the end-of-text (t + 1 === n), not after.
      const keep = t + 1 <= n && t >= promptMasked;
      target[b * T + t] = keep ? at(t + 1) : ignoreIndex;
      if (keep) targetCount++;
    }
  });
  return {
    input: tensor(input, { shape: [B, T], device }),
    target: tensor(target, { shape: [B, T], device }),
    targetCount,
  };
}
