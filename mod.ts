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
  AdamWStepOptions,
  Backend,
  BinaryOp,
  Device,
  MatmulOptions,
  ReduceOp,
  UnaryOp,
  View,
} from "./src/backend/backend.ts";
export type { Buffer } from "./src/backend/backend.ts";
export { defaultDevice, getBackend } from "./src/backend/registry.ts";
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

// ---- optimizers, schedules, clipping ----
export {
  AdamW,
  type AdamWOptions,
  clipGradNorm,
  type LrSchedule,
  Optimizer,
  type ParamGroup,
  type ResolvedGroup,
  SGD,
  type SGDOptions,
  warmupCosine,
  type WarmupCosineOptions,
} from "./src/optim/mod.ts";

// ---- datasets and batching for training ----
export {
  type Dataset,
  type Example,
  type SlidingWindowOptions,
  slidingWindows,
  TokenWindows,
  trainValSplit,
  type TrainValSplitOptions,
} from "./src/data/dataset.ts";
export {
  type Batch,
  type BatchSource,
  DataLoader,
  type DataLoaderOptions,
  type LoaderState,
  ShardLoader,
  type ShardLoaderOptions,
} from "./src/data/loader.ts";

// ---- training: the pretraining loop, metrics, plots ----
export {
  type CurvePoints,
  evaluateLoss,
  type LossCurveData,
  type LossCurveOptions,
  lossCurveSvg,
  MetricsLog,
  type MetricsRecord,
  niceTicks,
  pretrain,
  type PretrainOptions,
  type PretrainResult,
  readMetrics,
  type SampleRecord,
  type TextCodec,
  type TrainRecord,
  truncateMetrics,
  type ValRecord,
  writeLossPlot,
} from "./src/train/mod.ts";

// ---- nn layers and GPT-2 ----
export {
  type AttentionCache,
  Block,
  type BlockOptions,
  CausalSelfAttention,
  type CausalSelfAttentionOptions,
  Dropout,
  Embedding,
  type EmbeddingOptions,
  GELU,
  LayerNorm,
  type LayerNormOptions,
  Linear,
  type LinearOptions,
  MLP,
  type MLPOptions,
} from "./src/nn/mod.ts";
export {
  countParameters,
  END_OF_TEXT,
  generate,
  type GenerateOptions,
  GPT2,
  GPT2_CONFIG_NAMES,
  type GPT2Config,
  gpt2Config,
  type GPT2ConfigName,
  type GPT2ForwardOptions,
  type GPT2Options,
  KVCache,
  type KVCacheOptions,
  validateConfig,
} from "./src/models/gpt2/mod.ts";

// ---- io: safetensors (streamed, tensor by tensor), atomic writes ----
export {
  AtomicFile,
  type AtomicFileOptions,
  MAX_HEADER_BYTES,
  openSafetensors,
  type SafetensorsDType,
  SafetensorsError,
  SafetensorsFile,
  type SafetensorsTensorInfo,
  writeFileAtomic,
  writeSafetensors,
} from "./src/io/mod.ts";

// ---- GPT-2 weights in Hugging Face's layout ----
export {
  configFromSafetensors,
  type ConfigFromSafetensorsOptions,
  gpt2ConfigFromHf,
  type Gpt2LoadReport,
  hfConfigFromGpt2,
  loadGpt2Safetensors,
  saveGpt2Safetensors,
} from "./src/models/gpt2/weights.ts";

// ---- downloads: resumable, hash-checked; GPT-2 from Hugging Face ----
export {
  DownloadError,
  downloadFile,
  downloadGpt2,
  type DownloadGpt2Options,
  type DownloadOptions,
  type DownloadResult,
  GPT2_SOURCES,
  type Gpt2DownloadedFile,
  type Gpt2Name,
  type Gpt2Source,
  isGpt2Name,
  type PinnedFile,
} from "./src/models/gpt2/download.ts";

// ---- training checkpoints: one safetensors file, atomic, validated before loading ----
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointState,
  loadCheckpoint,
  type LoadCheckpointOptions,
  type LoadedCheckpoint,
  saveCheckpoint,
} from "./src/train/checkpoint.ts";
