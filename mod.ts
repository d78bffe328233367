/**
 * denograd: tensors, reverse-mode autograd and a CPU backend (TypeScript + OpenBLAS) for Deno.
 *
 * @example
 * ```ts
 * import { crossEntropy, linear, manualSeed, randn, tensor } from "@denograd/denograd";
 * manualSeed(0);
 * const w = randn([3, 4], { requiresGrad: true });
 * const x = randn([2, 4]);
 * const loss = crossEntropy(linear(x, w), tensor([0, 2], { dtype: "i32" }));
 * loss.backward();
 * console.log(loss.item(), w.grad!.shape); // ~1.1, [3, 4]
 * ```
 * @module
 */

export { type NestedArray, type Operand, Tensor } from "./src/tensor.ts";
export type { DType, TypedArray } from "./src/dtype.ts";
export type {
  Backend,
  BinaryOp,
  Device,
  MatmulOptions,
  ReduceOp,
  UnaryOp,
  View,
} from "./src/backend/backend.ts";
export type { Buffer } from "./src/backend/backend.ts";
export { getBackend } from "./src/backend/registry.ts";
export {
  arange,
  fromArray,
  type FromDataOptions,
  full,
  ones,
  onesLike,
  rand,
  randint,
  randn,
  tensor,
  type TensorOptions,
  zeros,
  zerosLike,
} from "./src/ops/creation.ts";
export {
  abs,
  add,
  cast,
  div,
  eq,
  exp,
  ge,
  gelu,
  gt,
  le,
  log,
  lt,
  maskedFill,
  maximum,
  minimum,
  mul,
  ne,
  neg,
  pow,
  relu,
  rsqrt,
  sigmoid,
  silu,
  sqrt,
  sub,
  tanh,
  tril,
  triu,
  where,
} from "./src/ops/elementwise.ts";
export {
  cat,
  chunk,
  clone,
  contiguous,
  expand,
  flatten,
  gather,
  indexSelect,
  narrow,
  permute,
  reshape,
  slice,
  split,
  squeeze,
  stack,
  transpose,
  unsqueeze,
  view,
} from "./src/ops/movement.ts";
export {
  argmax,
  argmin,
  type Dims,
  logsumexp,
  max,
  mean,
  min,
  sum,
  variance,
  type VarOptions,
} from "./src/ops/reduce.ts";
export { linear, matmul } from "./src/ops/matmul.ts";
export {
  crossEntropy,
  type CrossEntropyOptions,
  dropout,
  embedding,
  layerNorm,
  logSoftmax,
  softmax,
} from "./src/ops/nn.ts";
export { isGradEnabled, noGrad } from "./src/autograd.ts";
export { gradcheck, type GradcheckOptions } from "./src/gradcheck.ts";
export { keep, type MemoryStats, memoryStats, tidy, type Tracked } from "./src/memory.ts";
export { getRngState, manualSeed, type RngState, setRngState } from "./src/random.ts";
export {
  DEFAULT_SHARD_SIZE,
  listShards,
  readShard,
  readShardInfo,
  SHARD_HEADER_BYTES,
  SHARD_MAGIC,
  SHARD_VERSION,
  shardFileName,
  ShardFormatError,
  type ShardInfo,
  ShardWriter,
  type ShardWriterOptions,
  streamShards,
  type StreamShardsOptions,
} from "./src/data/shards.ts";
export {
  type Corpus,
  directoryCorpus,
  NPM_DATASETS,
  npmDatasetCorpus,
  openCorpus,
  textCorpus,
  textFileCorpus,
} from "./src/data/corpus.ts";
export {
  GPT2_EOT,
  type PrepareOptions,
  prepareShards,
  type PrepareSummary,
  type TokenEncoder,
} from "./src/data/prepare.ts";

// ---- tokenizer: byte-level BPE, GPT-2 compatible ----
export {
  type BpeVocab,
  type EncodeOptions,
  type StreamDecoder,
  Tokenizer,
} from "./src/tokenizer/tokenizer.ts";
export {
  parseHuggingFaceVocab,
  parseOpenAIVocab,
  parseTiktokenRanks,
  readHuggingFaceVocab,
  readOpenAIVocab,
  readTiktokenRanks,
  type TiktokenOptions,
} from "./src/tokenizer/formats.ts";
export {
  formatHuggingFaceVocab,
  formatOpenAIVocab,
  formatTiktokenRanks,
  writeHuggingFaceVocab,
  writeOpenAIVocab,
  writeTiktokenRanks,
} from "./src/tokenizer/save.ts";
export { trainBpe, type TrainBpeOptions } from "./src/tokenizer/train.ts";
export { type LoadStateDictOptions, Module, parameter } from "./src/nn/module.ts";
