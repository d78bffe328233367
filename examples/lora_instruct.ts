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
import { join } from "node:path";
import {
  applyLoRA,
  finetuneInstructions,
  manualSeed,
  saveAdapter,
  splitInstructionData,
  tokenizeInstructions,
  Tokenizer,
  validateInstructionRecords,
} from "../mod.ts";
import { defineCli, runMain, UsageError } from "../cli/_args.ts";
import { initModel } from "./_init_model.ts";

const CLI = defineCli({
  name: "lora",
  usage: "deno task lora [options]",
  summary: "Instruction fine-tuning with LoRA adapters on a frozen GPT-2; saves only the adapter.",
  flags: {
    rank: { type: "int", min: 1, default: 16, description: "LoRA rank" },
    alpha: {
      type: "number",
      above: 0,
      default: 16,
      description: "LoRA alpha; the update is scaled by alpha/rank",
    },
    dropout: {
      type: "number",
      min: 0,
      below: 1,
      default: 0,
      description: "dropout on the LoRA input",
    },
    targets: {
      type: "string",
      value: "LIST",
      default: "attn.c_attn,attn.c_proj,mlp.*",
      description: "comma-separated layer patterns",
    },
    steps: {
      type: "int",
      min: 1,
      description: "optimizer steps; or --epochs X",
      defaultText: "30",
    },
    epochs: {
      type: "number",
      above: 0,
      max: 1e6,
      description: "passes over the 935 training records",
    },
    batch: { type: "int", min: 1, default: 4, description: "records per step" },
    lr: {
      type: "number",
      above: 0,
      description: "peak learning rate",
      defaultText: "3e-3 for a fresh model, 5e-4 otherwise",
    },
    context: { type: "int", min: 1, default: 256, description: "tokens per sequence" },
    weights: {
      type: "file",
      description: "start from Hugging Face GPT-2 weights (deno task download gpt2)",
    },
    init: { type: "file", description: "start from a full-model checkpoint or HF safetensors" },
    device: { type: "device", description: "cpu, cuda or cuda:N" },
    out: {
      type: "string",
      value: "DIR",
      default: "runs/lora-instruct",
      description: "checkpoint, adapter, metrics, plot and responses",
    },
    seed: { type: "int", min: 0, default: 123, description: "adapter init and data order" },
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
  console.log(`model: ${built.from}`);
  let report;
  try {
    report = applyLoRA(model, {
      targets: args.targets.split(",").map((t) => t.trim()),
      rank: args.rank,
      alpha: args.alpha,
      dropout: args.dropout,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
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
    batchSize: args.batch,
    steps: args.steps ?? (args.epochs ? undefined : 30),
    epochs: args.epochs,
    maxLr: args.lr ?? (fresh ? 3e-3 : 5e-4),
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
      `(${result.stepsPerSecond.toFixed(2)} steps/s); loss ${
        result.trainLosses[0].toFixed(4)
      } -> ` +
      `${result.trainLosses.at(-1)!.toFixed(4)}`,
  );
  console.log(
    `adapter: ${adapterPath} (${(adapter.size / 1e6).toFixed(2)} MB; the checkpoint with the ` +
      `optimizer state is ${(full.size / 1e6).toFixed(1)} MB)`,
  );
  for (const r of result.responses) {
    console.log(`\n${r.instruction}\n-> ${JSON.stringify(r.model_response)}`);
  }
});
