/**
 * The main job: pretrain a small GPT-2 on a bundled public-domain story with GPT-2's tokenizer,
 * then sample from it.
 *
 *   deno task demo                                  # ~2 minutes on two CPU cores
 *   deno task demo --steps 600 --batch 4 --out runs/longer
 *   deno task demo --resume                         # continue from <out>/model.safetensors
 *   deno task demo --config gpt2 --context 256 --data my.txt --device cuda
 *
 * Writes <out>/model.safetensors (a checkpoint to resume from or to sample with
 * examples/generate.ts), <out>/metrics.jsonl (a line per step and evaluation) and <out>/loss.svg.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  countParameters,
  defaultDevice,
  generate,
  GPT2,
  GPT2_CONFIG_NAMES,
  type GPT2Config,
  gpt2Config,
  type GPT2ConfigName,
  manualSeed,
  openSafetensors,
  pretrain,
  slidingWindows,
  Tokenizer,
  trainValSplit,
} from "../mod.ts";

const HELP = `usage: deno task demo [options]

  --steps N         optimizer steps (default 250)
  --batch N         sequences per step (default 2)
  --context N       tokens per sequence (default 128)
  --config NAME     a GPT-2 preset: ${GPT2_CONFIG_NAMES.join(", ")}
                    (default: "tiny" narrowed to 64 wide, 4 layers: ~3.4M parameters)
  --lr X            peak learning rate (default 5e-3; 6e-4 suits the big presets)
  --device NAME     cpu or cuda (default: cuda when available)
  --data FILE       a UTF-8 text file (default: examples/data/the-verdict.txt)
  --out DIR         checkpoint, metrics and plot (default runs/verdict)
  --resume          continue from <out>/model.safetensors
  --seed N          model init and data order (default 1337)
  --prompt TEXT     the sample's prompt (default "I had always thought")
`;

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "250" },
    batch: { type: "string", default: "2" },
    context: { type: "string", default: "128" },
    config: { type: "string" },
    lr: { type: "string", default: "5e-3" },
    device: { type: "string" },
    data: { type: "string" },
    out: { type: "string", default: "runs/verdict" },
    resume: { type: "boolean", default: false },
    seed: { type: "string", default: "1337" },
    prompt: { type: "string", default: "I had always thought" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  Deno.exit(0);
}

function int(name: string, text: string, min = 1): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min) {
    console.error(`--${name} must be an integer >= ${min}, got "${text}"\n\n${HELP}`);
    Deno.exit(2);
  }
  return v;
}

const steps = int("steps", args.steps), batchSize = int("batch", args.batch);
const context = int("context", args.context), seed = int("seed", args.seed, 0);
const maxLr = Number(args.lr);
if (!(maxLr > 0)) {
  console.error(`--lr must be a number > 0, got "${args.lr}"`);
  Deno.exit(2);
}
const device = args.device ?? defaultDevice();
const checkpointPath = join(args.out, "model.safetensors");

// The model: from the checkpoint's config when resuming, else from the flags.
let config: GPT2Config;
if (args.resume) {
  try {
    using file = await openSafetensors(checkpointPath);
    config = JSON.parse(file.metadata.config);
  } catch (e) {
    console.error(`--resume: cannot read ${checkpointPath}: ${(e as Error).message}`);
    Deno.exit(1);
  }
} else if (args.config) {
  if (!(GPT2_CONFIG_NAMES as readonly string[]).includes(args.config)) {
    console.error(`--config must be one of ${GPT2_CONFIG_NAMES.join(", ")}`);
    Deno.exit(2);
  }
  config = gpt2Config(args.config as GPT2ConfigName, { contextLength: context, dropout: 0 });
} else {
  config = gpt2Config("tiny", { nEmbd: 64, nLayer: 4, nHead: 4, contextLength: context });
}
const T = Math.min(context, config.contextLength);

const tokenizer = await Tokenizer.gpt2();
const dataUrl = args.data ?? new URL("./data/the-verdict.txt", import.meta.url);
const ids = tokenizer.encode(await Deno.readTextFile(dataUrl));
const { train, val } = trainValSplit(ids, { valFraction: 0.1 });
if (train.length <= T) {
  console.error(`the text has ${ids.length} tokens: too few for --context ${T}`);
  Deno.exit(1);
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
