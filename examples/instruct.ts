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
import { parseArgs } from "node:util";
import {
  configFromSafetensors,
  defaultDevice,
  finetuneInstructions,
  GPT2,
  gpt2Config,
  loadGpt2Safetensors,
  manualSeed,
  splitInstructionData,
  tokenizeInstructions,
  Tokenizer,
  validateInstructionRecords,
} from "../mod.ts";

const HELP = `usage: examples/instruct.ts [options]

  --data FILE           instruction records (default examples/data/instruction-data.json)
  --weights FILE        start from GPT-2 weights (Hugging Face safetensors) instead of a random model
  --model NAME          config of the random model (default tiny: 4 layers, 128 wide)
  --epochs X            passes over the training set (default 1; the book: 2)
  --steps N             optimizer steps instead of epochs
  --batch-size N        records per batch (default 8)
  --lr X                learning rate (default 5e-5 with --weights, else 5e-4)
  --mask-prompt         learn the responses only (the book's exercise 7.2)
  --eval-every N        steps between train/val losses (default 20)
  --max-new-tokens N    tokens per test response (default 64; the book: 256)
  --test-limit N        answer only the first N test records (default all 110)
  --out DIR             output directory (default runs/instruct)
  --resume              continue from DIR/model.safetensors
  --seed N              model init and shuffling (default 123)
  --device NAME         cpu or cuda (default: cuda when available)
`;

const { values: args } = parseArgs({
  options: {
    data: { type: "string", default: "examples/data/instruction-data.json" },
    weights: { type: "string" },
    model: { type: "string", default: "tiny" },
    epochs: { type: "string", default: "1" },
    steps: { type: "string" },
    "batch-size": { type: "string", default: "8" },
    lr: { type: "string" },
    "mask-prompt": { type: "boolean", default: false },
    "eval-every": { type: "string", default: "20" },
    "max-new-tokens": { type: "string", default: "64" },
    "test-limit": { type: "string" },
    out: { type: "string", default: "runs/instruct" },
    resume: { type: "boolean", default: false },
    seed: { type: "string", default: "123" },
    device: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  Deno.exit(0);
}

const device = args.device ?? defaultDevice();
const seed = Number(args.seed);
const records = validateInstructionRecords(JSON.parse(await Deno.readTextFile(args.data)));
const split = splitInstructionData(records);
const test = args["test-limit"] ? split.test.slice(0, Number(args["test-limit"])) : split.test;
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
  model = new GPT2(gpt2Config(args.model as "tiny", { dropout: 0 }), { device });
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
  batchSize: Number(args["batch-size"]),
  epochs: args.steps ? undefined : Number(args.epochs),
  steps: args.steps ? Number(args.steps) : undefined,
  maxLr: Number(args.lr ?? (args.weights ? 5e-5 : 5e-4)),
  evalEvery: Number(args["eval-every"]),
  evalBatches: 5,
  maxNewTokens: Number(args["max-new-tokens"]),
  seed,
  checkpointPath: `${args.out}/model.safetensors`,
  resume: args.resume,
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
