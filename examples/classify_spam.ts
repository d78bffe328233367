/**
 * Spam or ham: classification fine-tuning on the SpamAssassin public corpus (the book's chapter 6,
 * with mail instead of SMS). The classes are balanced (1,896 of each), split 70/10/20 with a seed,
 * each message (Subject + body) truncated to --max-length tokens, and a 2-class head reads the last
 * real token.
 *
 * By default a small GPT trained from scratch (every parameter trains), a few minutes on 2 cores:
 *
 *   deno task classify-spam
 *
 * As in the book, from OpenAI's GPT-2 124M (`deno task download gpt2`), training the last block,
 * the final LayerNorm and the head:
 *
 *   deno task classify-spam --weights models/gpt2/model.safetensors --trainable 1 --epochs 5
 *
 * Writes runs/spam/: model.safetensors (checkpoint; --resume continues it), metrics.jsonl,
 * loss.svg, accuracy.svg and summary.json (loss and accuracy on train/val/test).
 */
import { parseArgs } from "node:util";
import {
  balanceClasses,
  configFromSafetensors,
  defaultDevice,
  finetuneClassifier,
  GPT2,
  GPT2Classifier,
  gpt2Config,
  loadGpt2Safetensors,
  loadSpamAssassin,
  manualSeed,
  randomSplit,
  SPAM_CLASSES,
  tokenizeLabeled,
  Tokenizer,
  type TrainableParts,
} from "../mod.ts";

const HELP = `usage: examples/classify_spam.ts [options]

  --weights FILE      start from GPT-2 weights (Hugging Face safetensors) instead of a random model
  --model NAME        config of the random model (default tiny: 4 layers, 128 wide)
  --trainable X       all | head | N last blocks (+ final norm + head); default all, 1 with --weights
  --max-length N      tokens kept per message (default 64; the book uses up to 120 of an SMS)
  --limit N           use at most N messages per class (default all 1,896)
  --epochs X          passes over the training set (default 1)
  --steps N           optimizer steps instead of epochs
  --batch-size N      messages per batch (default 8)
  --lr X              learning rate (default 5e-5 with --weights, else 5e-4)
  --eval-every N      steps between validation scores (default 50)
  --out DIR           output directory (default runs/spam)
  --resume            continue from DIR/model.safetensors
  --seed N            model init, balancing, split and shuffling (default 123)
  --device NAME       cpu or cuda (default: cuda when available)
`;

const { values: args } = parseArgs({
  options: {
    weights: { type: "string" },
    model: { type: "string", default: "tiny" },
    trainable: { type: "string" },
    "max-length": { type: "string", default: "64" },
    limit: { type: "string" },
    epochs: { type: "string", default: "1" },
    steps: { type: "string" },
    "batch-size": { type: "string", default: "8" },
    lr: { type: "string" },
    "eval-every": { type: "string", default: "50" },
    out: { type: "string", default: "runs/spam" },
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
const maxLength = Number(args["max-length"]);
const parseTrainable = (s: string): TrainableParts => s === "all" || s === "head" ? s : Number(s);
const trainable = parseTrainable(args.trainable ?? (args.weights ? "1" : "all"));

// ---- data: balanced, split 70/10/20, tokenised and truncated ----
const tokenizer = await Tokenizer.gpt2();
let mails = balanceClasses(await loadSpamAssassin(), { seed });
if (args.limit) {
  const limit = Number(args.limit);
  const seen = [0, 0];
  mails = mails.filter((m) => seen[m.label]++ < limit);
}
const split = randomSplit(mails, { train: 0.7, val: 0.1, seed });
const [train, val, test] = [split.train, split.val, split.test].map((part) =>
  tokenizeLabeled(part, tokenizer, { maxLength })
);
console.log(
  `SpamAssassin: ${mails.length} messages (${SPAM_CLASSES.join("/")} balanced), ` +
    `train ${train.length} / val ${val.length} / test ${test.length}, ${maxLength} tokens max`,
);

// ---- model: a GPT-2 trunk with a 2-class head ----
manualSeed(seed);
let gpt: GPT2;
if (args.weights) {
  gpt = new GPT2(await configFromSafetensors(args.weights, { dropout: 0 }), { device });
  await loadGpt2Safetensors(gpt, args.weights);
} else {
  gpt = new GPT2(gpt2Config(args.model as "tiny", { dropout: 0 }), { device });
}
if (maxLength > gpt.config.contextLength) {
  console.error(`--max-length ${maxLength} exceeds the context length ${gpt.config.contextLength}`);
  Deno.exit(1);
}
const model = new GPT2Classifier(gpt, { numClasses: 2, trainable });
console.log(
  `model: ${args.weights ?? args.model}, ${model.numParameters().toLocaleString()} trainable of ` +
    `${
      model.numParameters({ includeFrozen: true }).toLocaleString()
    } parameters (${trainable}), ${device}`,
);

const result = await finetuneClassifier({
  model,
  train,
  val,
  test,
  batchSize: Number(args["batch-size"]),
  epochs: args.steps ? undefined : Number(args.epochs),
  steps: args.steps ? Number(args.steps) : undefined,
  maxLr: Number(args.lr ?? (args.weights ? 5e-5 : 5e-4)),
  evalEvery: Number(args["eval-every"]),
  evalBatches: 5,
  seed,
  checkpointPath: `${args.out}/model.safetensors`,
  resume: args.resume,
});
console.log(
  `${result.step} steps in ${result.seconds.toFixed(0)} s ` +
    `(${result.stepsPerSecond.toFixed(2)} steps/s); results in ${args.out}/`,
);
