/**
 * The main job: pretrain a small GPT-2 on a bundled public-domain story with GPT-2's tokenizer,
 * then sample from it.
 *
 *   deno task demo                                  # ~1 minute on two CPU cores
 *   deno task demo --steps 600 --batch 4 --out runs/longer
 *   deno task demo --resume                         # continue from <out>/model.safetensors
 *   deno task demo --config gpt2 --context 256 --data my.txt --device cuda
 *
 * Writes <out>/model.safetensors (a checkpoint to resume from or to sample with
 * examples/generate.ts), <out>/metrics.jsonl (a line per step and evaluation) and <out>/loss.svg.
 */
import { join } from "node:path";
import {
  countParameters,
  generate,
  GPT2,
  GPT2_CONFIG_NAMES,
  type GPT2Config,
  gpt2Config,
  manualSeed,
  pretrain,
  readModelConfig,
  slidingWindows,
  Tokenizer,
  trainValSplit,
} from "../mod.ts";
import { CliError, defineCli, runMain, TRAINING_GUARD_FLAGS } from "../cli/_args.ts";

const CLI = defineCli({
  name: "pretrain",
  usage: "deno task demo [options]",
  summary: "Pretrain a small GPT-2 on a text file with GPT-2's tokenizer, then sample from it.",
  flags: {
    steps: { type: "int", min: 1, default: 250, description: "optimizer steps" },
    batch: { type: "int", min: 1, default: 2, description: "sequences per step" },
    context: { type: "int", min: 1, default: 128, description: "tokens per sequence" },
    config: {
      type: "choice",
      choices: GPT2_CONFIG_NAMES,
      description: "a GPT-2 preset",
      defaultText: '"tiny" narrowed to 64 wide, 4 layers: ~3.4M parameters',
    },
    lr: {
      type: "number",
      above: 0,
      default: 5e-3,
      description: "peak learning rate; 6e-4 suits the big presets",
    },
    device: { type: "device", description: "cpu, cuda or cuda:N" },
    data: {
      type: "file",
      description: "a UTF-8 text file",
      defaultText: "examples/data/the-verdict.txt",
    },
    out: {
      type: "string",
      value: "DIR",
      default: "runs/verdict",
      description: "checkpoint, metrics and plot",
    },
    resume: { type: "boolean", description: "continue from <out>/model.safetensors" },
    ...TRAINING_GUARD_FLAGS,
    seed: { type: "int", min: 0, default: 1337, description: "model init and data order" },
    prompt: { type: "string", default: "I had always thought", description: "the sample's prompt" },
  },
});

await runMain(CLI, async (args) => {
  const { steps, batch: batchSize, context, seed, lr: maxLr, device } = args;
  const checkpointPath = join(args.out, "model.safetensors");

  // The model: from the checkpoint's config when resuming, else from the flags.
  let config: GPT2Config;
  if (args.resume) {
    try {
      config = await readModelConfig(checkpointPath);
    } catch (e) {
      throw new CliError(`--resume: cannot read ${checkpointPath}: ${(e as Error).message}`);
    }
  } else if (args.config) {
    config = gpt2Config(args.config, { contextLength: context, dropout: 0 });
  } else {
    config = gpt2Config("tiny", { nEmbd: 64, nLayer: 4, nHead: 4, contextLength: context });
  }
  const T = Math.min(context, config.contextLength);

  const tokenizer = await Tokenizer.gpt2();
  const dataUrl = args.data ?? new URL("./data/the-verdict.txt", import.meta.url);
  const ids = tokenizer.encode(await Deno.readTextFile(dataUrl));
  const { train, val } = trainValSplit(ids, { valFraction: 0.1 });
  if (train.length <= T) {
    throw new CliError(`the text has ${ids.length} tokens: too few for --context ${T}`);
  }
  const hasVal = val.length > T; // a validation window needs T + 1 tokens

  manualSeed(seed);
  const model = new GPT2(config, { device });
  console.log(
    `device ${device}; ${
      ids.length.toLocaleString("en-US")
    } tokens (${train.length} train, ${val.length} val); ` +
      `GPT-2 ${config.nLayer} layers x ${config.nEmbd} wide, ${
        (countParameters(config) / 1e6).toFixed(2)
      }M parameters; ${steps} steps of ${batchSize} x ${T} tokens`,
  );

  const result = await pretrain({
    model,
    // Windows overlap by half: more distinct training sequences from a short text.
    train: slidingWindows(train, { maxLength: T, stride: Math.max(1, T >> 1) }),
    val: hasVal ? slidingWindows(val, { maxLength: T }) : undefined,
    batchSize,
    steps,
    maxLr,
    minLr: maxLr / 10,
    warmup: Math.min(20, Math.floor(steps / 10)),
    weightDecay: 0.1,
    clip: 1,
    evalEvery: 50,
    evalBatches: 10,
    sampleEvery: 100,
    samplePrompt: args.prompt,
    tokenizer,
    checkpointPath,
    checkpointEvery: 50,
    resume: args.resume,
    nonFinite: args["non-finite"],
    allowScheduleChange: args["allow-schedule-change"],
    seed,
  });

  const first = result.trainLosses[0], last = result.trainLosses.at(-1)!;
  const valLoss = result.valLosses.at(-1)?.[1];
  console.log(
    `\ntrained steps ${result.startStep + 1}-${result.step} in ${result.seconds.toFixed(0)} s ` +
      `(${Math.round(result.tokensPerSecond).toLocaleString("en-US")} tokens/s): ` +
      `train loss ${first.toFixed(3)} -> ${last.toFixed(3)}` +
      (valLoss === undefined ? "" : `, val loss ${valLoss.toFixed(3)}`),
  );
  console.log(`checkpoint, metrics and loss curve in ${args.out}/\n`);

  // A longer sample, streamed as it is generated.
  const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));
  const decoder = tokenizer.decoder();
  out(args.prompt);
  generate(model, tokenizer.encode(args.prompt), {
    maxNewTokens: 120,
    temperature: 0.8,
    topK: 40,
    seed,
    onToken: (id) => out(decoder.push(id)),
  });
  out(decoder.flush() + "\n");
});
