/**
 * DPO on the book's preference data (examples/data/instruction-data-with-preference.json): teach
 * a GPT-2 to prefer the polite `chosen` responses over the rude `rejected` ones, against a frozen
 * copy of itself. Logs per step the chosen and rejected rewards, their margin and the reward
 * accuracy (metrics.jsonl), evaluates on the validation split, and checkpoints.
 *
 *   deno task dpo                                       # a small fresh model, a few minutes on 2 cores
 *   deno task dpo --init runs/instruct/model.safetensors --steps 200   # the usual start: an
 *                                                       # instruction-tuned model (a full checkpoint)
 *   deno task dpo --weights models/gpt2/model.safetensors --lora 16 --device cuda
 *   deno task dpo --resume                              # same flags, continue from <out>
 *
 * DPO normally starts from an instruction-tuned model (the book's chapter 7 model, `--init`): the
 * reference is that model, and DPO only shifts its preferences. From a fresh model the margins
 * still grow, but the responses are noise.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  applyLoRA,
  defaultDevice,
  generateResponses,
  manualSeed,
  noGrad,
  splitInstructionData,
  tokenizePreferences,
  Tokenizer,
  trainDPO,
  validatePreferenceRecords,
} from "../mod.ts";
import { initModel } from "./_init_model.ts";

const HELP = `usage: deno task dpo [options]

  --steps N         optimizer steps (default 40); or --epochs X
  --epochs X        passes over the 935 training pairs
  --batch N         preference pairs per step (default 4)
  --beta X          DPO's beta (default 0.1)
  --lr X            peak learning rate (default 1e-4 for a fresh model, 5e-6 otherwise: the book's)
  --context N       tokens per sequence, prompt + response (default 256)
  --weights FILE    start from Hugging Face GPT-2 weights (deno task download gpt2)
  --init FILE       start from a full-model checkpoint (e.g. instruction-tuned) or HF safetensors
  --lora R          train rank-R LoRA adapters on attention and MLP instead of every weight
  --eval-every N    evaluate train and validation rewards every N steps (default 20)
  --device NAME     cpu or cuda (default: cuda when available)
  --out DIR         checkpoint, metrics and plot (default runs/dpo)
  --resume          continue from <out>/model.safetensors (give the same flags)
  --seed N          model init and data order (default 123)
`;

const { values: args } = parseArgs({
  options: {
    steps: { type: "string" },
    epochs: { type: "string" },
    batch: { type: "string", default: "4" },
    beta: { type: "string", default: "0.1" },
    lr: { type: "string" },
    context: { type: "string", default: "256" },
    weights: { type: "string" },
    init: { type: "string" },
    lora: { type: "string" },
    "eval-every": { type: "string", default: "20" },
    device: { type: "string" },
    out: { type: "string", default: "runs/dpo" },
    resume: { type: "boolean", default: false },
    seed: { type: "string", default: "123" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  Deno.exit(0);
}

function num(name: string, text: string, integer: boolean): number {
  const v = Number(text);
  if (!(v > 0) || (integer && !Number.isInteger(v))) {
    console.error(
      `--${name} must be a ${
        integer ? "positive integer" : "number > 0"
      }, got "${text}"\n\n${HELP}`,
    );
    Deno.exit(2);
  }
  return v;
}

const fresh = !args.weights && !args.init;
const context = num("context", args.context, true);
const device = args.device ?? defaultDevice();
const seed = Number(args.seed);
if (!Number.isInteger(seed) || seed < 0) {
  console.error(`--seed must be an integer >= 0, got "${args.seed}"`);
  Deno.exit(2);
}

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
  console.log(`model: ${built.from}, ${(model.numParameters() / 1e6).toFixed(1)}M parameters`);
} catch (e) {
  console.error(`cannot load the model: ${(e as Error).message}`);
  Deno.exit(1);
}
if (args.lora) {
  const report = applyLoRA(model, {
    targets: ["attn.c_attn", "attn.c_proj", "mlp.*"],
    rank: num("lora", args.lora, true),
  });
  console.log(
    `LoRA rank ${args.lora} on ${report.names.length} layers: ${report.trainableParameters} ` +
      `trainable of ${report.totalParameters} parameters`,
  );
}

const tokenizer = await Tokenizer.gpt2();
const records = validatePreferenceRecords(JSON.parse(
  await Deno.readTextFile(new URL("./data/instruction-data-with-preference.json", import.meta.url)),
));
const split = splitInstructionData(records); // the book's 85/10/5: 935 train, 110 test, 55 val
const train = tokenizePreferences(split.train, tokenizer);
const val = tokenizePreferences(split.val, tokenizer);
console.log(`pairs: ${train.length} train, ${val.length} validation`);

const maxLength = Math.min(context, model.config.contextLength);
const result = await trainDPO({
  model,
  train,
  val,
  beta: num("beta", args.beta, false),
  batchSize: num("batch", args.batch, true),
  steps: args.steps ? num("steps", args.steps, true) : args.epochs ? undefined : 40,
  epochs: args.epochs ? num("epochs", args.epochs, false) : undefined,
  maxLr: args.lr ? num("lr", args.lr, false) : fresh ? 1e-4 : 5e-6,
  maxLength,
  evalEvery: num("eval-every", args["eval-every"], true),
  evalBatches: 3,
  seed,
  checkpointPath: join(args.out, "model.safetensors"),
  resume: args.resume,
});

const first = result.stepStats[0], last = result.stepStats.at(-1)!;
console.log(
  `${result.trainLosses.length} steps in ${result.seconds.toFixed(1)} s ` +
    `(${result.stepsPerSecond.toFixed(2)} steps/s); loss ${result.trainLosses[0].toFixed(4)} -> ` +
    `${result.trainLosses.at(-1)!.toFixed(4)}; margin ${first.margin.toFixed(4)} -> ${
      last.margin.toFixed(4)
    }`,
);
const response =
  noGrad(() =>
    generateResponses(model, [{ ...split.test[0], output: split.test[0].chosen }], tokenizer, {
      maxNewTokens: 40,
    })
  )[0];
console.log(
  `\n${response.instruction}\n${response.input}\n-> ${JSON.stringify(response.model_response)}`,
);
console.log(`\nmetrics: ${join(args.out, "metrics.jsonl")}, plot: ${join(args.out, "loss.svg")}`);
