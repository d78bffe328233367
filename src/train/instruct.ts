/**
 * Instruction fine-tuning (the book's chapter 7): next-token cross-entropy on Alpaca-formatted
 * prompt + response sequences (padding, and optionally the prompt, masked out), train and
 * validation loss every `evalEvery` steps, and greedy responses to the test records written to
 * JSON at the end.
 * @module
 */

import { dirname, join } from "node:path";
import { noGrad } from "../autograd.ts";
import { tidy } from "../memory.ts";
import { crossEntropy } from "../ops/nn.ts";
import type { Tensor } from "../tensor.ts";
import { Progress } from "../_progress.ts";
import { Batches } from "../data/batches.ts";
import {
  collateInstructions,
  formatInstructionPrompt,
  formatInstructionResponse,
  type InstructionBatch,
  type InstructionExample,
  type InstructionRecord,
  validateInstructionRecords,
} from "../data/instruction.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { generate } from "../models/gpt2/generate.ts";
import { END_OF_TEXT } from "../tokenizer/gpt2.ts";
import type { GPT2 } from "../models/gpt2/model.ts";
import { type FinetuneOptions, type FinetuneRunResult, runFinetune } from "./finetune.ts";
import { intOption } from "./loop.ts";
import type { ValRecord } from "./metrics.ts";
import type { TextCodec } from "./pretrain.ts";

/** A periodic evaluation record of {@linkcode finetuneInstructions} (a `val` line of the metrics). */
export interface InstructEvalRecord extends ValRecord {
  /** Training loss on the evaluated batches (eval mode). */
  trainLoss: number;
}

/** A test record with the model's answer (the book's `instruction-data-with-response.json`). */
export interface InstructionResponse extends InstructionRecord {
  /** The generated response, trimmed. */
  model_response: string;
}

/** Options of {@linkcode finetuneInstructions}: the data, the model and {@linkcode FinetuneOptions}. */
export interface InstructOptions extends FinetuneOptions {
  /** The language model, trained in place (only its parameters with requiresGrad). */
  model: GPT2;
  /** Training examples (from `tokenizeInstructions`). */
  train: readonly InstructionExample[];
  /** Validation examples, evaluated every `evalEvery` steps and after the last. */
  val?: readonly InstructionExample[];
  /** Learn only the responses: mask the prompt's targets (default false, as in the book). */
  maskPrompt?: boolean;
  /** Truncate sequences to this many tokens (default the model's context length). */
  maxLength?: number;
  /** Test records answered after training (needs `tokenizer`). */
  test?: readonly InstructionRecord[];
  /** Encodes the test prompts and decodes the responses. */
  tokenizer?: TextCodec;
  /** Where the responses go (default `responses.json` beside the checkpoint, if there is one). */
  responsesPath?: string;
  /** Most tokens per response (default 256, the book's). */
  maxNewTokens?: number;
  /** The end-of-text id: pads the batches and ends every response (default 50256). */
  padToken?: number;
}

/** What {@linkcode finetuneInstructions} did. */
export interface InstructResult extends FinetuneRunResult {
  /** The test records with the model's responses ([] without `test`). */
  responses: InstructionResponse[];
}

/**
 * Mean next-token loss of a collated batch over its unmasked targets (`GPT2.loss`, so a
 * mixture-of-experts model adds its router losses); 0 (not NaN) when a batch has none, which
 * truncation with prompt masking can produce.
 */
export function instructionLoss(model: GPT2, batch: InstructionBatch): Tensor {
  if (batch.targetCount > 0) return model.loss(batch.input, batch.target);
  const logits = model.forward(batch.input); // (B, T, V)
  const zero = crossEntropy(logits, batch.target, { reduction: "sum" }); // (): every target ignored
  logits.dispose();
  return zero;
}

/** Options of {@linkcode generateResponses}. */
export interface GenerateResponsesOptions {
  /** Most tokens per response (default 256). */
  maxNewTokens?: number;
  /** Generation stops at this id (default 50256, `<|endoftext|>`). */
  stopToken?: number;
  /** Called after each record with its response (for progress). */
  onResponse?: (response: InstructionResponse, index: number) => void;
}

/**
 * Answers each record greedily: the prompt is the Alpaca prompt followed by the `### Response:`
 * header, generation (with the KV cache) stops at `<|endoftext|>` or `maxNewTokens`. A prompt
 * longer than the context keeps its last `contextLength` tokens.
 *
 * @returns the records with a `model_response` field
 * @example
 * ```ts
 * import { generateResponses, GPT2, gpt2Config, manualSeed } from "@denograd/denograd";
 * manualSeed(0);
 * const model = new GPT2(gpt2Config("small-test"));
 * const bytes = { // a toy codec for the 64-token test vocabulary
 *   encode: (s: string) => [...new TextEncoder().encode(s)].map((b) => b % 64),
 *   decode: (ids: readonly number[]) => String.fromCharCode(...ids.map((i) => 65 + (i % 26))),
 * };
 * const [r] = generateResponses(model, [{ instruction: "Hi", input: "", output: "" }], bytes, {
 *   maxNewTokens: 3,
 * });
 * console.log(r.model_response.length); // 3
 * ```
 */
export function generateResponses(
  model: GPT2,
  records: readonly InstructionRecord[],
  tokenizer: TextCodec,
  options: GenerateResponsesOptions = {},
): InstructionResponse[] {
  const op = "generateResponses";
  validateInstructionRecords(records);
  if (
    !tokenizer || typeof tokenizer.encode !== "function" || typeof tokenizer.decode !== "function"
  ) {
    throw new TypeError(`${op}: tokenizer must have encode(text) and decode(ids)`);
  }
  const maxNewTokens = intOption(op, "maxNewTokens", options.maxNewTokens, 1, 256);
  const stopToken = intOption(op, "stopToken", options.stopToken, 0, END_OF_TEXT);
  const context = model.config.contextLength;
  return records.map((record, i) => {
    const prompt = formatInstructionPrompt(record) + formatInstructionResponse("");
    const ids = tokenizer.encode(prompt).slice(-context);
    const out = generate(model, ids, { maxNewTokens, temperature: 0, stopTokens: [stopToken] });
    const response = { ...record, model_response: tokenizer.decode(out).trim() };
    options.onResponse?.(response, i);
    return response;
  });
}

function checkExamples(op: string, name: string, xs: unknown): void {
  if (!Array.isArray(xs) || xs.length === 0) {
    throw new TypeError(`${op}: ${name} must be a non-empty array of examples`);
  }
  xs.forEach((x: InstructionExample, i) => {
    if (
      !(x?.ids instanceof Int32Array) || x.ids.length === 0 || !Number.isInteger(x.promptLength)
    ) {
      throw new TypeError(
        `${op}: ${name}[${i}] must be {ids: Int32Array, promptLength} (see tokenizeInstructions)`,
      );
    }
  });
}

/**
 * Instruction-tunes a GPT-2. Trains the parameters that require gradients (all of them, or LoRA
 * adapters) with the options of {@linkcode FinetuneOptions}; every `evalEvery` steps evaluates the
 * loss on `evalBatches` batches of train and validation; checkpoints resume bit-identically; after
 * the last step answers the `test` records and writes them to `responsesPath` atomically.
 *
 * @returns the loop's record and the responses
 * @example
 * ```ts ignore
 * import { finetuneInstructions, splitInstructionData, tokenizeInstructions } from "@denograd/denograd";
 * const records = validateInstructionRecords(JSON.parse(await Deno.readTextFile("examples/data/instruction-data.json")));
 * const { train, val, test } = splitInstructionData(records);
 * await finetuneInstructions({
 *   model, tokenizer, test, epochs: 2,
 *   train: tokenizeInstructions(train, tokenizer),
 *   val: tokenizeInstructions(val, tokenizer),
 *   checkpointPath: "runs/instruct/model.safetensors",
 * });
 * ```
 */
export async function finetuneInstructions(options: InstructOptions): Promise<InstructResult> {
  const op = "finetuneInstructions";
  const o = options ?? ({} as InstructOptions);
  const { model } = o;
  if (!model || typeof model.forward !== "function" || !model.config) {
    throw new TypeError(`${op}: model must be a GPT2`);
  }
  checkExamples(op, "train", o.train);
  if (o.val !== undefined) checkExamples(op, "val", o.val);
  if (o.test !== undefined) {
    validateInstructionRecords(o.test);
    if (!o.tokenizer) throw new TypeError(`${op}: test needs a tokenizer to generate responses`);
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
  const collate = (items: InstructionExample[]) =>
    collateInstructions(items, {
      maxLength,
      maskPrompt: o.maskPrompt,
      padToken,
      device: model.device,
    });
  const train = new Batches([...o.train], collate, { batchSize, seed });
  // Periodic evaluations read the first batches in a fixed order: comparable across steps.
  const lossOn = (xs: readonly InstructionExample[]) => {
    const loader = new Batches([...xs], collate, { batchSize, shuffle: false });
    const n = Math.min(evalBatches, loader.batchesPerEpoch);
    let total = 0;
    for (let i = 0; i < n; i++) total += tidy(() => instructionLoss(model, loader.next()).item());
    return total / n;
  };

  const run = await runFinetune({
    op,
    model,
    train,
    options: o,
    examplesPerStep: batchSize,
    checkpointConfig: {
      model: { ...model.config },
      settings: { batchSize, maxLength, maskPrompt: !!o.maskPrompt },
    },
    microLoss: (batch) => ({ loss: instructionLoss(model, batch), tokens: batch.input.size }),
    evaluate: (step) => {
      const trainLoss = lossOn(o.train);
      const valLoss = o.val ? lossOn(o.val) : trainLoss;
      const record: InstructEvalRecord = { kind: "val", step, loss: valLoss, trainLoss };
      const line = `step ${step}: train loss ${trainLoss.toFixed(4)}` +
        (o.val ? ` | val loss ${valLoss.toFixed(4)}` : "");
      return { record, line };
    },
  });

  let responses: InstructionResponse[] = [];
  if (o.test && o.test.length > 0) {
    const log = o.log ?? ((line: string) => console.log(line));
    const bar = o.progress === false
      ? null
      : new Progress({ label: "responses", total: o.test.length, unit: "records" });
    responses = noGrad(() =>
      generateResponses(model, o.test!, o.tokenizer!, {
        maxNewTokens: o.maxNewTokens,
        stopToken: padToken,
        onResponse: (_, i) => bar?.update(i + 1),
      })
    );
    bar?.done(responses.length);
    const path = o.responsesPath ??
      (o.checkpointPath ? join(dirname(o.checkpointPath), "responses.json") : undefined);
    if (path) {
      await Deno.mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, JSON.stringify(responses, null, 2) + "\n");
      log(`wrote ${responses.length} responses to ${path}`);
    }
  }
  return { ...run, responses };
}
