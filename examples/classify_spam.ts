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
import {
  balanceClasses,
  configFromSafetensors,
  finetuneClassifier,
  GPT2,
  GPT2_CONFIG_NAMES,
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
import { CliError, defineCli, runMain, TRAINING_GUARD_FLAGS, UsageError } from "../cli/_args.ts";

const CLI = defineCli({
  name: "classify-spam",
  usage: "deno task classify-spam [options]",
  summary: "Spam or ham: classification fine-tuning of a GPT-2 on the SpamAssassin corpus.",
  flags: {
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
    trainable: {
      type: "string",
      value: "X",
      description: "all | head | N last blocks (+ final norm + head)",
      defaultText: "all, 1 with --weights",
    },
    "max-length": {
      type: "int",
      min: 1,
      default: 64,
      description: "tokens kept per message (the book uses up to 120 of an SMS)",
    },
    limit: {
      type: "int",
      min: 1,
      description: "use at most N messages per class",
      defaultText: "all 1,896",
    },
    epochs: {
      type: "number",
      above: 0,
      max: 1e6,
      default: 1,
      description: "passes over the training set",
    },
    steps: { type: "int", min: 1, description: "optimizer steps instead of epochs" },
    "batch-size": { type: "int", min: 1, default: 8, description: "messages per batch" },
    lr: {
      type: "number",
      above: 0,
      description: "learning rate",
      defaultText: "5e-5 with --weights, else 5e-4",
    },
    "eval-every": {
      type: "int",
      min: 0,
      default: 50,
      description: "steps between validation scores",
    },
    out: { type: "string", value: "DIR", default: "runs/spam", description: "output directory" },
    resume: { type: "boolean", description: "continue from DIR/model.safetensors" },
    ...TRAINING_GUARD_FLAGS,
    seed: {
      type: "int",
      min: 0,
      default: 123,
      description: "model init, balancing, split and shuffling",
    },
    device: { type: "device", description: "cpu, cuda or cuda:N" },
  },
});

/** "all", "head", or how many of the last blocks train. */
function parseTrainable(s: string): TrainableParts {
  if (s === "all" || s === "head") return s;
  if (/^\d+$/.test(s)) return Number(s);
  throw new UsageError(`--trainable must be all, head or a number of blocks, got "${s}"`);
}

await runMain(CLI, async (args) => {
  const { device, seed, "max-length": maxLength } = args;
  const trainable = parseTrainable(args.trainable ?? (args.weights ? "1" : "all"));

  // ---- data: balanced, split 70/10/20, tokenised and truncated ----
  const tokenizer = await Tokenizer.gpt2();
  let mails = balanceClasses(await loadSpamAssassin(), { seed });
  if (args.limit) {
    const limit = args.limit;
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
    gpt = new GPT2(gpt2Config(args.model, { dropout: 0 }), { device });
  }
  if (maxLength > gpt.config.contextLength) {
    throw new CliError(
      `--max-length ${maxLength} exceeds the context length ${gpt.config.contextLength}`,
    );
  }
  const model = new GPT2Classifier(gpt, { numClasses: 2, trainable });
  console.log(
    `model: ${
      args.weights ?? args.model
    }, ${model.numParameters().toLocaleString()} trainable of ` +
      `${
        model.numParameters({ includeFrozen: true }).toLocaleString()
      } parameters (${trainable}), ${device}`,
  );

  const result = await finetuneClassifier({
    model,
    train,
    val,
    test,
    batchSize: args["batch-size"],
    epochs: args.steps ? undefined : args.epochs,
    steps: args.steps,
    maxLr: args.lr ?? (args.weights ? 5e-5 : 5e-4),
    evalEvery: args["eval-every"],
    evalBatches: 5,
    seed,
    checkpointPath: `${args.out}/model.safetensors`,
    resume: args.resume,
    nonFinite: args["non-finite"],
    allowScheduleChange: args["allow-schedule-change"],
  });
  console.log(
    `${result.step} steps in ${result.seconds.toFixed(0)} s ` +
      `(${result.stepsPerSecond.toFixed(2)} steps/s); results in ${args.out}/`,
  );
});
