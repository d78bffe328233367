/**
 * Instruction fine-tuning on the book's 1,100 Alpaca-style records (examples/data/
 * instruction-data.json; the book's chapter 7): train 85% (935), test 10% (110), validation 5%
 * (55), in file order. Sequences are prompt + response + <|endoftext|>, padded per batch; the
 * padding (and with --mask-prompt the prompt) adds no loss. After training, greedy responses to the
 * test records go to DIR/responses.json, in the book's format.
 *
 * By default a small GPT trained from scratch — it shows the pipeline, not good answers:
 *
 *   deno task instruct
 *
 * As in the book, from OpenAI's weights (`deno task download gpt2` or gpt2-medium):
 *
 *   deno task instruct --weights models/gpt2/model.safetensors --epochs 2 --max-new-tokens 256
 *
 * Writes runs/instruct/: model.safetensors (checkpoint; --resume continues it), metrics.jsonl,
 * loss.svg, responses.json.
 */
import {
  configFromSafetensors,
  finetuneInstructions,
  GPT2,
  GPT2_CONFIG_NAMES,
  gpt2Config,
  loadGpt2Safetensors,
  manualSeed,
  splitInstructionData,
  tokenizeInstructions,
  Tokenizer,
  validateInstructionRecords,
} from "../mod.ts";
import { CliError, defineCli, runMain, TRAINING_GUARD_FLAGS } from "../cli/_args.ts";

const CLI = defineCli({
  name: "instruct",
  usage: "deno task instruct [options]",
  summary: "Instruction fine-tuning of a GPT-2 on the book's 1,100 Alpaca-style records.",
  flags: {
    data: {
      type: "file",
      default: "examples/data/instruction-data.json",
      description: "instruction records",
    },
    weights: {
      type: "file",
      description: "start from GPT-2 weights (Hugging Face safetensors) instead of a random model",
      hint: "download GPT-2 with `deno task download gpt2`",
    },
    model: {
      type: "choice",
      choices: GPT2_CONFIG_NAMES,
      default: "tiny",
      description: "config of the random model (tiny: 4 layers, 128 wide)",
    },
    epochs: {
      type: "number",
      above: 0,
      max: 1e6,
      default: 1,
      description: "passes over the training set (the book: 2)",
    },
    steps: { type: "int", min: 1, description: "optimizer steps instead of epochs" },
    "batch-size": { type: "int", min: 1, default: 8, description: "records per batch" },
    lr: {
      type: "number",
      above: 0,
      description: "learning rate",
      defaultText: "5e-5 with --weights, else 5e-4",
    },
    "mask-prompt": {
      type: "boolean",
      description: "learn the responses only (the book's exercise 7.2)",
    },
    "eval-every": {
      type: "int",
      min: 0,
      default: 20,
      description: "steps between train/val losses",
    },
    "max-new-tokens": {
      type: "int",
      min: 0,
      default: 64,
      description: "tokens per test response (the book: 256)",
    },
    "test-limit": {
      type: "int",
      min: 0,
      description: "answer only the first N test records",
      defaultText: "all 110",
    },
    out: {
      type: "string",
      value: "DIR",
      default: "runs/instruct",
      description: "output directory",
    },
    resume: { type: "boolean", description: "continue from DIR/model.safetensors" },
    ...TRAINING_GUARD_FLAGS,
    seed: { type: "int", min: 0, default: 123, description: "model init and shuffling" },
    device: { type: "device", description: "cpu, cuda or cuda:N" },
  },
});

await runMain(CLI, async (args) => {
  const { device, seed } = args;
  let records;
  try {
    records = validateInstructionRecords(JSON.parse(await Deno.readTextFile(args.data)));
  } catch (e) {
    throw new CliError(`--data ${args.data}: ${(e as Error).message}`, { cause: e });
  }
  const split = splitInstructionData(records);
  const limit = args["test-limit"];
  const test = limit === undefined ? split.test : split.test.slice(0, limit);
  const tokenizer = await Tokenizer.gpt2();
  console.log(
    `${args.data}: ${records.length} records, train ${split.train.length} / val ${split.val.length} / test ${split.test.length}`,
  );

  manualSeed(seed);
  let model: GPT2;
  if (args.weights) {
    model = new GPT2(await configFromSafetensors(args.weights, { dropout: 0 }), { device });
    await loadGpt2Safetensors(model, args.weights);
  } else {
    model = new GPT2(gpt2Config(args.model, { dropout: 0 }), { device });
  }
  console.log(
    `model: ${
      args.weights ?? args.model
    }, ${model.numParameters().toLocaleString()} trainable parameters, ${device}`,
  );

  const result = await finetuneInstructions({
    model,
    train: tokenizeInstructions(split.train, tokenizer),
    val: tokenizeInstructions(split.val, tokenizer),
    test,
    tokenizer,
    maskPrompt: args["mask-prompt"],
    batchSize: args["batch-size"],
    epochs: args.steps ? undefined : args.epochs,
    steps: args.steps,
    maxLr: args.lr ?? (args.weights ? 5e-5 : 5e-4),
    evalEvery: args["eval-every"],
    evalBatches: 5,
    maxNewTokens: args["max-new-tokens"],
    seed,
    checkpointPath: `${args.out}/model.safetensors`,
    resume: args.resume,
    nonFinite: args["non-finite"],
    allowScheduleChange: args["allow-schedule-change"],
  });
  const first = result.responses[0];
  if (first) {
    console.log(`\n${first.instruction}\n${first.input}\n  expected: ${first.output}`);
    console.log(`  model:    ${first.model_response}`);
  }
  console.log(
    `${result.step} steps in ${result.seconds.toFixed(0)} s ` +
      `(${result.stepsPerSecond.toFixed(2)} steps/s); results in ${args.out}/`,
  );
});
