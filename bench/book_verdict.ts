/**
 * Reproduces the book's pretraining run ("Build a Large Language Model (From Scratch)", ch. 5):
 * GPT-2 124M with context 256, AdamW lr 4e-4 (constant), weight decay 0.1, batch 2, 10 epochs on
 * the-verdict.txt with a 90/10 split, evaluating every 5 steps. The book reports initial
 * train/val loss about 10.99/10.98 and, after 10 epochs, train about 0.57 and val about 6.4.
 *
 * Writes bench/results/book-verdict-<date>.jsonl (metrics), .svg (loss curve) and .json (summary).
 * Differences from the book's model: the output head is tied to the token embedding (GPT-2's
 * layout; the book's is separate, 163M parameters), the qkv projection has a bias, and biases and
 * LayerNorm weights are not decayed (nanoGPT's convention).
 *
 *   deno run --allow-ffi --allow-read --allow-write --allow-env bench/book_verdict.ts [--epochs N]
 * @module
 */

import { parseArgs } from "node:util";
import {
  GPT2,
  gpt2Config,
  manualSeed,
  pretrain,
  slidingWindows,
  Tokenizer,
  trainValSplit,
} from "../mod.ts";

const { values } = parseArgs({ options: { epochs: { type: "string", default: "10" } } });
const epochs = Number(values.epochs);

manualSeed(123);
const tokenizer = await Tokenizer.gpt2();
const text = await Deno.readTextFile(new URL("../examples/data/the-verdict.txt", import.meta.url));
const ids = tokenizer.encode(text);
const { train, val } = trainValSplit(ids, { valFraction: 0.1 });
const contextLength = 256;
const trainSet = slidingWindows(train, { maxLength: contextLength, stride: contextLength });
const valSet = slidingWindows(val, { maxLength: contextLength, stride: contextLength });

const model = new GPT2({ ...gpt2Config("gpt2"), contextLength, dropout: 0.1 });
const date = new Date().toISOString().slice(0, 10);
const out = new URL(`./results/book-verdict-${date}`, import.meta.url).pathname;
const t0 = performance.now();
const result = await pretrain({
  model,
  train: trainSet,
  val: valSet,
  batchSize: 2,
  epochs,
  maxLr: 4e-4,
  minLr: 4e-4, // the book keeps the rate constant
  warmup: 0,
  weightDecay: 0.1,
  betas: [0.9, 0.999], // torch.optim.AdamW's defaults, as the book uses
  clip: 0,
  evalEvery: 5,
  evalBatches: 5,
  sampleEvery: 0,
  tokenizer,
  metricsPath: `${out}.jsonl`,
  plotPath: `${out}.svg`,
  seed: 123,
});
const summary = {
  date,
  epochs,
  params: model.numParameters(),
  trainTokens: train.length,
  valTokens: val.length,
  steps: result.step,
  firstTrainLoss: result.trainLosses[0],
  lastTrainLoss: result.trainLosses[result.trainLosses.length - 1],
  firstValLoss: result.valLosses[0]?.[1] ?? null,
  lastValLoss: result.valLosses[result.valLosses.length - 1]?.[1] ?? null,
  valLosses: result.valLosses,
  tokensPerSecond: result.tokensPerSecond,
  seconds: (performance.now() - t0) / 1000,
  book: { initial: [10.99, 10.98], after10Epochs: { train: 0.57, val: 6.4 } },
};
await Deno.writeTextFile(`${out}.json`, JSON.stringify(summary, null, 2) + "\n");
console.log(JSON.stringify(summary, null, 2));
