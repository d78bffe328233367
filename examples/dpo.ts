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
import { join } from "node:path";
import {
  applyLoRA,
  generateResponses,
  manualSeed,
  noGrad,
  splitInstructionData,
  tokenizePreferences,
  Tokenizer,
  trainDPO,
  validatePreferenceRecords,
} from "../mod.ts";
import { defineCli, runMain, TRAINING_GUARD_FLAGS } from "../cli/_args.ts";
import { initModel } from "./_init_model.ts";

const CLI = defineCli({
  name: "dpo",
  usage: "deno task dpo [options]",
  summary: "DPO on the book's preference data: prefer the polite responses over the rude ones.",
  flags: {
    steps: {
      type: "int",
      min: 1,
      description: "optimizer steps; or --epochs X",
      defaultText: "40",
    },
    epochs: {
      type: "number",
      above: 0,
      max: 1e6,
      description: "passes over the 935 training pairs",
    },
    batch: { type: "int", min: 1, default: 4, description: "preference pairs per step" },
    beta: { type: "number", above: 0, default: 0.1, description: "DPO's beta" },
    lr: {
      type: "number",
      above: 0,
      description: "peak learning rate",
      defaultText: "1e-4 for a fresh model, 5e-6 otherwise: the book's",
    },
    context: {
      type: "int",
      min: 1,
      default: 256,
      description: "tokens per sequence, prompt + response",
    },
    weights: {
      type: "file",
      description: "start from Hugging Face GPT-2 weights (deno task download gpt2)",
    },
    init: {
      type: "file",
      description: "start from a full-model checkpoint (e.g. instruction-tuned) or HF safetensors",
    },
    lora: {
      type: "int",
      min: 1,
      value: "R",
      description: "train rank-R LoRA adapters on attention and MLP instead of every weight",
    },
    "eval-every": {
      type: "int",
      min: 1,
      default: 20,
      description: "evaluate train and validation rewards every N steps",
    },
    device: { type: "device", description: "cpu, cuda or cuda:N" },
    out: {
      type: "string",
      value: "DIR",
      default: "runs/dpo",
      description: "checkpoint, metrics and plot",
    },
    resume: {
      type: "boolean",
      description: "continue from <out>/model.safetensors (give the same flags)",
    },
    ...TRAINING_GUARD_FLAGS,
    seed: { type: "int", min: 0, default: 123, description: "model init and data order" },
  },
});

await runMain(CLI, async (args) => {
  const { context, device, seed } = args;
  const fresh = !args.weights && !args.init;

  manualSeed(seed);
  const built = await initModel({
    weights: args.weights,
    init: args.init,
    fresh: { nEmbd: 64, nLayer: 4, nHead: 4 },
    contextLength: context,
    device,
  });
  const model = built.model;
  console.log(`model: ${built.from}, ${(model.numParameters() / 1e6).toFixed(1)}M parameters`);
  if (args.lora) {
    const report = applyLoRA(model, {
      targets: ["attn.c_attn", "attn.c_proj", "mlp.*"],
      rank: args.lora,
    });
    console.log(
      `LoRA rank ${args.lora} on ${report.names.length} layers: ${report.trainableParameters} ` +
        `trainable of ${report.totalParameters} parameters`,
    );
  }

  const tokenizer = await Tokenizer.gpt2();
  const records = validatePreferenceRecords(JSON.parse(
    await Deno.readTextFile(
      new URL("./data/instruction-data-with-preference.json", import.meta.url),
    ),
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
    beta: args.beta,
    batchSize: args.batch,
    steps: args.steps ?? (args.epochs ? undefined : 40),
    epochs: args.epochs,
    maxLr: args.lr ?? (fresh ? 1e-4 : 5e-6),
    maxLength,
    evalEvery: args["eval-every"],
    evalBatches: 3,
    seed,
    checkpointPath: join(args.out, "model.safetensors"),
    resume: args.resume,
    nonFinite: args["non-finite"],
    allowScheduleChange: args["allow-schedule-change"],
  });

  const first = result.stepStats[0], last = result.stepStats.at(-1)!;
  console.log(
    `${result.trainLosses.length} steps in ${result.seconds.toFixed(1)} s ` +
      `(${result.stepsPerSecond.toFixed(2)} steps/s); loss ${
        result.trainLosses[0].toFixed(4)
      } -> ` +
      `${result.trainLosses.at(-1)!.toFixed(4)}; margin ${first.margin.toFixed(4)} -> ${
        last.margin.toFixed(4)
      }`,
  );
  const response = noGrad(() =>
    generateResponses(model, [{ ...split.test[0], output: split.test[0].chosen }], tokenizer, {
      maxNewTokens: 40,
    })
  )[0];
  console.log(
    `\n${response.instruction}\n${response.input}\n-> ${JSON.stringify(response.model_response)}`,
  );
  console.log(`\nmetrics: ${join(args.out, "metrics.jsonl")}, plot: ${join(args.out, "loss.svg")}`);
});
