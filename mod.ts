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
export {
  bf16BitsToF32,
  type DType,
  dtypeBytes,
  f32ToBf16Bits,
  type StorageArray,
  type TypedArray,
} from "./src/dtype.ts";
export { to } from "./src/ops/transfer.ts";
export type {
  AdamWStepOptions,
  AttentionArgs,
  AttentionBackwardArgs,
  AttentionOptions,
  Backend,
  BinaryOp,
  Device,
  MatmulOptions,
  ReduceOp,
  SgdStepOptions,
  UnaryOp,
  View,
} from "./src/backend/backend.ts";
export type { Buffer } from "./src/backend/backend.ts";
export {
  cudaEmptyCache,
  cudaMemoryStats,
  defaultDevice,
  getBackend,
  setBackend,
} from "./src/backend/registry.ts";
export {
  type AllocatorStats,
  type Block as AllocatorBlock,
  CudaBackend,
  CudaBuffer,
  type CudaMemoryStats,
  type CudaStatus,
  cudaStatus,
  type DeviceInfo,
  type KernelArg,
  type KernelLauncher,
} from "./src/backend/cuda/mod.ts";
export { CudnnAttention, type CudnnAttentionDeps } from "./src/backend/cuda/cudnn_attention.ts";
export { CUDNN_SYMBOLS, type CudnnSymbols } from "./ffi/cudnn.ts";
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
export { autocast, type AutocastDType, autocastDType } from "./src/autocast.ts";
export { batchedLinear } from "./src/ops/batched_linear.ts";
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
export {
  getRngState,
  manualSeed,
  type PhiloxBlocks,
  reserveUniformBlocks,
  type RngState,
  setRngState,
} from "./src/random.ts";
export {
  type AttentionOpOptions,
  naiveAttention,
  scaledDotProductAttention,
} from "./src/ops/attention.ts";
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
export { END_OF_TEXT } from "./src/tokenizer/gpt2.ts";
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
export {
  type LoadStateDictOptions,
  Module,
  parameter,
  type ParameterListOptions,
} from "./src/nn/module.ts";

// ---- optimizers, schedules, clipping ----
export { AdamBase, type AdamFamilyOptions } from "./src/optim/_adam_base.ts";
export {
  Adam,
  type AdamOptions,
  AdamW,
  type AdamWOptions,
  type AnnealOptions,
  clipGradNorm,
  CombinedOptimizer,
  constantLr,
  cosineLr,
  type DecayShape,
  gradNorm,
  linearLr,
  type LrPhase,
  type LrSchedule,
  type ModelParameters,
  Muon,
  type MuonOptions,
  muonWithAdamW,
  type MuonWithAdamWOptions,
  NEWTON_SCHULZ_COEFFICIENTS,
  newtonSchulz,
  Optimizer,
  type ParamGroup,
  type ResolvedGroup,
  sequenceLr,
  SGD,
  type SGDOptions,
  type TrainOptimizer,
  warmupCosine,
  type WarmupCosineOptions,
  warmupLr,
  type WarmupOptions,
  warmupStableDecay,
  type WarmupStableDecayOptions,
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
  type ChartSeries,
  type CurvePoints,
  evaluateLoss,
  type LineChart,
  type LineChartsOptions,
  lineChartsSvg,
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

// ---- position schemes: RoPE (+ linear / NTK / YaRN scaling), ALiBi; attention settings ----
export {
  alibiSlopes,
  alibiSlopesTensor,
  applyRope,
  clearRopeCache,
  type RopeConfig,
  type RopeFrequencies,
  ropeFrequencies,
  type RopeScaling,
  validateRopeScaling,
} from "./src/nn/mod.ts";
export {
  assertGpt2Layout,
  type AttentionSettings,
  attentionSettings,
  type CreateCacheOptions,
  type PositionScheme,
} from "./src/models/gpt2/mod.ts";

// ---- mixture of experts ----
export {
  ExpertLinear,
  Experts,
  mergeMoEStats,
  MoE,
  type MoEConfig,
  type MoELayerStats,
  type MoEOptions,
  type MoERouting,
  type MoEStats,
} from "./src/nn/mod.ts";
export {
  countActiveParameters,
  type GPT2MoEConfig,
  moeLayerIndices,
  type MoELayers,
  type MoEShape,
} from "./src/models/gpt2/mod.ts";

export {
  countParameters,
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

// ---- LoRA: low-rank adapters on frozen linear layers ----
export {
  applyLoRA,
  type ApplyLoRAOptions,
  type LinearLike,
  type LinearShape,
  linearShapes,
  type LoRAConfig,
  loraLayers,
  LoRALinear,
  type LoRALinearOptions,
  loraParameterCount,
  type LoRAReport,
  mergeLoRA,
  selectLoRATargets,
  TIED_HEAD,
  unmergeLoRA,
} from "./src/nn/lora.ts";
export { gpt2LinearShapes } from "./src/models/gpt2/lora_shapes.ts";
export {
  ADAPTER_FORMAT,
  ADAPTER_VERSION,
  loadAdapter,
  saveAdapter,
} from "./src/train/lora_adapter.ts";

// ---- io: safetensors (streamed, tensor by tensor), atomic writes ----
export {
  AtomicFile,
  type AtomicFileOptions,
  MAX_HEADER_BYTES,
  openSafetensors,
  removeStaleTemporaries,
  type SafetensorsDType,
  SafetensorsError,
  SafetensorsFile,
  type SafetensorsTensorInfo,
  writeFileAtomic,
  writeSafetensors,
  type WriteSafetensorsOptions,
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
  type DownloadOptions,
  type DownloadResult,
} from "./src/io/download.ts";
export {
  downloadGpt2,
  type DownloadGpt2Options,
  GPT2_SOURCES,
  type Gpt2DownloadedFile,
  type Gpt2Name,
  type Gpt2Source,
  isGpt2Name,
  type PinnedFile,
} from "./src/models/gpt2/download.ts";

// ---- fine-tuning: classification and instruction data, the classifier, the trainers ----
export { Batches, type BatchesOptions } from "./src/data/batches.ts";
export {
  balanceClasses,
  type BalanceClassesOptions,
  type ClassificationBatch,
  type ClassificationExample,
  collateClassification,
  type CollateClassificationOptions,
  type LabeledText,
  loadSpamAssassin,
  type LoadSpamAssassinOptions,
  randomSplit,
  type RandomSplitOptions,
  SPAM_CLASSES,
  subjectAndBody,
  tokenizeLabeled,
  type TokenizeLabeledOptions,
} from "./src/data/classification.ts";
export {
  collateInstructions,
  type CollateInstructionsOptions,
  formatInstructionPrompt,
  formatInstructionResponse,
  type InstructionBatch,
  type InstructionExample,
  type InstructionRecord,
  splitInstructionData,
  tokenizeInstructions,
  validateInstructionRecords,
} from "./src/data/instruction.ts";
export {
  GPT2Classifier,
  type GPT2ClassifierOptions,
  type TrainableParts,
} from "./src/models/gpt2/classifier.ts";
export {
  type ClassificationScore,
  type ClassifyEvalRecord,
  type ClassifyOptions,
  type ClassifyResult,
  evaluateClassifier,
  type EvaluateClassifierOptions,
  finetuneClassifier,
  finetuneInstructions,
  type FinetuneOptions,
  type FinetuneRunResult,
  generateResponses,
  type GenerateResponsesOptions,
  type InstructEvalRecord,
  instructionLoss,
  type InstructionResponse,
  type InstructOptions,
  type InstructResult,
  type LoopOptions,
  type SequenceClassifier,
} from "./src/train/mod.ts";

// ---- DPO: preference data and the trainer ----
export {
  collatePreferences,
  type CollatePreferencesOptions,
  type PreferenceBatch,
  type PreferenceExample,
  type PreferenceRecord,
  tokenizePreferences,
  validatePreferenceRecords,
} from "./src/data/preference.ts";
export {
  dpoBatchLoss,
  type DPOEvalRecord,
  dpoLoss,
  type DPOLossResult,
  type DPOOptions,
  type DPOResult,
  type DPOStats,
  referenceCopy,
  sequenceLogProbs,
  trainDPO,
} from "./src/train/mod.ts";

// ---- training checkpoints: one safetensors file, atomic, validated before loading ----
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointInfo,
  type CheckpointState,
  loadCheckpoint,
  type LoadCheckpointOptions,
  type LoadedCheckpoint,
  saveCheckpoint,
} from "./src/train/checkpoint.ts";
export { NonFiniteError, type NonFinitePolicy } from "./src/train/step_guard.ts";
export {
  type LoadedModel,
  loadModel,
  type LoadModelOptions,
  readModelConfig,
} from "./src/train/load_model.ts";
