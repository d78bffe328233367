/**
 * Generate text from a GPT-2: a checkpoint written by examples/pretrain.ts, or OpenAI's weights
 * downloaded with `deno task download gpt2`. Tokens are streamed to stdout as they are sampled.
 *
 *   deno run --allow-ffi --allow-read --allow-env examples/generate.ts --prompt "I had always"
 *   deno run --allow-ffi --allow-read --allow-env examples/generate.ts \
 *     --weights models/gpt2/model.safetensors --prompt "Hello, I'm a language model," \
 *     --max-tokens 60 --temperature 0.8 --top-k 50 --seed 42
 */
import { generate, type GPT2, loadModel, Tokenizer } from "../mod.ts";
import { CliError, defineCli, requireFile, runMain } from "../cli/_args.ts";

const DEFAULT_CHECKPOINT = "runs/verdict/model.safetensors";
const TRAIN_HINT = "train one with `deno task demo`, or pass --weights";
const DOWNLOAD_HINT = "download GPT-2 with `deno task download gpt2`";

const CLI = defineCli({
  name: "generate",
  usage: "deno task generate [options]",
  summary: "Generate text from a GPT-2 checkpoint or OpenAI's weights, streamed as it is sampled.",
  flags: {
    checkpoint: {
      type: "file",
      description: "a checkpoint from examples/pretrain.ts",
      defaultText: DEFAULT_CHECKPOINT,
      hint: TRAIN_HINT,
    },
    weights: {
      type: "file",
      description: "Hugging Face GPT-2 weights instead (e.g. models/gpt2/model.safetensors)",
      hint: DOWNLOAD_HINT,
    },
    prompt: { type: "string", default: "I had always thought", description: "what to continue" },
    "max-tokens": { type: "int", min: 0, default: 100, description: "tokens to generate" },
    temperature: { type: "number", min: 0, default: 0.8, description: "0 = greedy" },
    "top-k": {
      type: "int",
      min: 0,
      default: 40,
      description: "sample among the N most likely tokens; 0 = off",
    },
    "top-p": {
      type: "number",
      above: 0,
      max: 1,
      description: "nucleus sampling threshold in (0, 1]",
      defaultText: "off",
    },
    seed: { type: "int", min: 0, default: 0, description: "the same seed gives the same text" },
    device: { type: "device", description: "cpu, cuda or cuda:N" },
    heads: {
      type: "int",
      min: 1,
      description: "attention heads, for --weights whose width is not 64 per head",
    },
  },
});

await runMain(CLI, async (args) => {
  const device = args.device;
  const topK = args["top-k"];
  const options = {
    maxNewTokens: args["max-tokens"],
    temperature: args.temperature,
    topK: topK > 0 ? topK : undefined,
    topP: args["top-p"],
    seed: args.seed,
  };
  const checkpoint = args.checkpoint ?? DEFAULT_CHECKPOINT;
  if (!args.weights) await requireFile("--checkpoint", checkpoint, TRAIN_HINT);

  let model: GPT2;
  try {
    const loaded = await loadModel(args.weights ?? checkpoint, { device, nHead: args.heads });
    model = loaded.model;
    if (loaded.step !== null) console.error(`checkpoint ${checkpoint}: step ${loaded.step}`);
  } catch (e) {
    const path = args.weights ?? checkpoint;
    const hint = args.weights ? DOWNLOAD_HINT : TRAIN_HINT;
    throw new CliError(`cannot load ${path}: ${(e as Error).message} (${hint})`, { cause: e });
  }

  const tokenizer = await Tokenizer.gpt2();
  const prompt = tokenizer.encode(args.prompt);
  const decoder = tokenizer.decoder();
  const write = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));
  const t0 = performance.now();
  write(args.prompt);
  let n = 0;
  try {
    generate(model, prompt, {
      ...options,
      onToken: (id) => {
        n++;
        write(decoder.push(id));
      },
    });
  } catch (e) {
    write("\n");
    throw e;
  }
  write(decoder.flush() + "\n");
  const s = (performance.now() - t0) / 1000;
  console.error(`${n} tokens in ${s.toFixed(1)} s (${(n / s).toFixed(1)} tokens/s) on ${device}`);
});
