/**
 * Instruction fine-tuning with LoRA: freeze a GPT-2, train rank-r adapters on its attention and
 * MLP layers with the instruction trainer on examples/data/instruction-data.json, and save only
 * the adapter (a small safetensors file) next to the run's checkpoint.
 *
 *   deno task lora                                       # a small fresh model, a few minutes on 2 cores
 *   deno task lora --weights models/gpt2/model.safetensors --rank 16 --epochs 2 --device cuda
 *   deno task lora --targets "attn.c_attn,lm_head" --rank 8
 *
 * Load the adapter later with `loadAdapter(model, "<out>/adapter.safetensors")` on the same base
 * weights; `mergeLoRA(model)` then folds it into the weights for inference at base-model speed.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  applyLoRA,
  defaultDevice,
  finetuneInstructions,
  manualSeed,
  saveAdapter,
  splitInstructionData,
  tokenizeInstructions,
  Tokenizer,
  validateInstructionRecords,
} from "../mod.ts";
import { initModel } from "./_init_model.ts";

const HELP = `usage: deno task lora [options]

  --rank N          LoRA rank (default 16)
  --alpha X         LoRA alpha; the update is scaled by alpha/rank (default 16)
  --dropout X       dropout on the LoRA input (default 0)
  --targets LIST    comma-separated layer patterns (default "attn.c_attn,attn.c_proj,mlp.*")
  --steps N         optimizer steps (default 30); or --epochs X
  --epochs X        passes over the 935 training records
  --batch N         records per step (default 4)
  --lr X            peak learning rate (default 3e-3 for a fresh model, 5e-4 otherwise)
  --context N       tokens per sequence (default 256)
  --weights FILE    start from Hugging Face GPT-2 weights (deno task download gpt2)
  --init FILE       start from a full-model checkpoint or HF safetensors
  --device NAME     cpu or cuda (default: cuda when available)
  --out DIR         checkpoint, adapter, metrics, plot and responses (default runs/lora-instruct)
  --seed N          adapter init and data order (default 123)
`;

const { values: args } = parseArgs({
  options: {
    rank: { type: "string", default: "16" },
    alpha: { type: "string", default: "16" },
    dropout: { type: "string", default: "0" },
    targets: { type: "string", default: "attn.c_attn,attn.c_proj,mlp.*" },
    steps: { type: "string" },
    epochs: { type: "string" },
    batch: { type: "string", default: "4" },
    lr: { type: "string" },
    context: { type: "string", default: "256" },
    weights: { type: "string" },
    init: { type: "string" },
    device: { type: "string" },
    out: { type: "string", default: "runs/lora-instruct" },
    seed: { type: "string", default: "123" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  Deno.exit(0);
}

function num(name: string, text: string, integer: boolean, min = Number.MIN_VALUE): number {
  const v = Number(text);
  if (!(v >= min) || (integer && !Number.isInteger(v))) {
    const what = integer ? "an integer" : "a number";
    const bound = min === Number.MIN_VALUE ? "> 0" : `>= ${min}`;
    console.error(`--${name} must be ${what} ${bound}, got "${text}"\n\n${HELP}`);
    Deno.exit(2);
  }
  return v;
}

const context = num("context", args.context, true);
const seed = Number(args.seed);
if (!Number.isInteger(seed) || seed < 0) {
  console.error(`--seed must be an integer >= 0, got "${args.seed}"`);
  Deno.exit(2);
}
const device = args.device ?? defaultDevice();
const fresh = !args.weights && !args.init;

manualSeed(seed);
let model;
try {
  const built = await initModel({
    weights: args.weights,
    init: args.init,
    fresh: { nEmbd: 64, nLayer: 4, nHead: 4 },
    contextLength: context,
    device,
  });
  model = built.model;
  console.log(`model: ${built.from}`);
} catch (e) {
  console.error(`cannot load the model: ${(e as Error).message}`);
  Deno.exit(1);
}
let report;
try {
  report = applyLoRA(model, {
    targets: args.targets.split(",").map((t) => t.trim()),
    rank: num("rank", args.rank, true),
    alpha: num("alpha", args.alpha, false),
    dropout: num("dropout", args.dropout, false, 0),
  });
} catch (e) {
  console.error((e as Error).message);
  Deno.exit(2);
}
const pct = (100 * report.trainableParameters / report.totalParameters).toFixed(2);
console.log(
  `LoRA rank ${args.rank} on ${report.names.length} layers: ${report.trainableParameters} ` +
    `trainable of ${report.totalParameters} parameters (${pct}%)`,
);

const tokenizer = await Tokenizer.gpt2();
const records = validateInstructionRecords(JSON.parse(
  await Deno.readTextFile(new URL("./data/instruction-data.json", import.meta.url)),
));
const split = splitInstructionData(records);
const checkpointPath = join(args.out, "model.safetensors");
const result = await finetuneInstructions({
  model,
  train: tokenizeInstructions(split.train, tokenizer),
  val: tokenizeInstructions(split.val, tokenizer),
  test: split.test.slice(0, 3),
  tokenizer,
  maxNewTokens: 40,
  batchSize: num("batch", args.batch, true),
  steps: args.steps ? num("steps", args.steps, true) : args.epochs ? undefined : 30,
  epochs: args.epochs ? num("epochs", args.epochs, false) : undefined,
  maxLr: args.lr ? num("lr", args.lr, false) : fresh ? 3e-3 : 5e-4,
  maxLength: Math.min(context, model.config.contextLength),
  evalEvery: 15,
  seed,
  checkpointPath,
});
const adapterPath = join(args.out, "adapter.safetensors");
await saveAdapter(model, adapterPath);
const [adapter, full] = await Promise.all([Deno.stat(adapterPath), Deno.stat(checkpointPath)]);
console.log(
  `${result.trainLosses.length} steps in ${result.seconds.toFixed(1)} s ` +
    `(${result.stepsPerSecond.toFixed(2)} steps/s); loss ${result.trainLosses[0].toFixed(4)} -> ` +
    `${result.trainLosses.at(-1)!.toFixed(4)}`,
);
console.log(
  `adapter: ${adapterPath} (${(adapter.size / 1e6).toFixed(2)} MB; the checkpoint with the ` +
    `optimizer state is ${(full.size / 1e6).toFixed(1)} MB)`,
);
for (const r of result.responses) {
  console.log(`\n${r.instruction}\n-> ${JSON.stringify(r.model_response)}`);
}
