/**
 * Generate text from a GPT-2: a checkpoint written by examples/pretrain.ts, or OpenAI's weights
 * downloaded with `deno task download gpt2`. Tokens are streamed to stdout as they are sampled.
 *
 *   deno run --allow-ffi --allow-read --allow-env examples/generate.ts --prompt "I had always"
 *   deno run --allow-ffi --allow-read --allow-env examples/generate.ts \
 *     --weights models/gpt2/model.safetensors --prompt "Hello, I'm a language model," \
 *     --max-tokens 60 --temperature 0.8 --top-k 50 --seed 42
 */
import { parseArgs } from "node:util";
import {
  configFromSafetensors,
  defaultDevice,
  generate,
  GPT2,
  type GPT2Config,
  loadCheckpoint,
  loadGpt2Safetensors,
  openSafetensors,
  Tokenizer,
  validateConfig,
} from "../mod.ts";

const HELP = `usage: examples/generate.ts [options]

  --checkpoint FILE   a checkpoint from examples/pretrain.ts (default runs/verdict/model.safetensors)
  --weights FILE      Hugging Face GPT-2 weights instead (e.g. models/gpt2/model.safetensors)
  --prompt TEXT       what to continue (default "I had always thought")
  --max-tokens N      tokens to generate (default 100)
  --temperature X     0 = greedy (default 0.8)
  --top-k N           sample among the N most likely tokens (default 40; 0 = off)
  --top-p X           nucleus sampling threshold in (0, 1] (default off)
  --seed N            the same seed gives the same text (default 0)
  --device NAME       cpu or cuda (default: cuda when available)
  --heads N           attention heads, for --weights whose width is not 64 per head
`;

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: "string", default: "runs/verdict/model.safetensors" },
    weights: { type: "string" },
    prompt: { type: "string", default: "I had always thought" },
    "max-tokens": { type: "string", default: "100" },
    temperature: { type: "string", default: "0.8" },
    "top-k": { type: "string", default: "40" },
    "top-p": { type: "string" },
    seed: { type: "string", default: "0" },
    device: { type: "string" },
    heads: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  Deno.exit(0);
}

const device = args.device ?? defaultDevice();
const topK = Number(args["top-k"]);
const options = {
  maxNewTokens: Number(args["max-tokens"]),
  temperature: Number(args.temperature),
  topK: topK > 0 ? topK : undefined,
  topP: args["top-p"] === undefined ? undefined : Number(args["top-p"]),
  seed: Number(args.seed),
};

let model: GPT2;
try {
  if (args.weights) {
    const nHead = args.heads === undefined ? undefined : Number(args.heads);
    const config = await configFromSafetensors(args.weights, { nHead });
    model = new GPT2(config, { device });
    await loadGpt2Safetensors(model, args.weights);
  } else {
    let config: GPT2Config;
    {
      using file = await openSafetensors(args.checkpoint);
      config = validateConfig(JSON.parse(file.metadata.config ?? "null"));
    }
    model = new GPT2(config, { device });
    const { step, optimizerState } = await loadCheckpoint(args.checkpoint, model);
    for (const t of Object.values(optimizerState)) t.dispose(); // not needed to sample
    console.error(`checkpoint ${args.checkpoint}: step ${step}`);
  }
} catch (e) {
  const path = args.weights ?? args.checkpoint;
  const hint = args.weights
    ? "download GPT-2 with `deno task download gpt2`"
    : "train one with `deno task demo`, or pass --weights";
  console.error(`cannot load ${path}: ${(e as Error).message}\n(${hint})`);
  Deno.exit(1);
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
  console.error(`\n${(e as Error).message}`);
  Deno.exit(1);
}
write(decoder.flush() + "\n");
const s = (performance.now() - t0) / 1000;
console.error(`${n} tokens in ${s.toFixed(1)} s (${(n / s).toFixed(1)} tokens/s) on ${device}`);
