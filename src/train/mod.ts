/**
 * Training: the pretraining loop, checkpoints, JSONL metrics and loss-curve plots.
 * @module
 */

export {
  evaluateLoss,
  pretrain,
  type PretrainOptions,
  type PretrainResult,
  type TextCodec,
} from "./pretrain.ts";
export {
  MetricsLog,
  type MetricsRecord,
  readMetrics,
  type SampleRecord,
  type TrainRecord,
  truncateMetrics,
  type ValRecord,
} from "./metrics.ts";
export {
  type ChartSeries,
  type CurvePoints,
  type LineChart,
  type LineChartsOptions,
  lineChartsSvg,
  type LossCurveData,
  type LossCurveOptions,
  lossCurveSvg,
  niceTicks,
  writeLossPlot,
} from "./plot.ts";
export { NonFiniteError, type NonFinitePolicy } from "./step_guard.ts";
export {
  type LoadedModel,
  loadModel,
  type LoadModelOptions,
  readModelConfig,
} from "./load_model.ts";
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointInfo,
  type CheckpointState,
  loadCheckpoint,
  type LoadCheckpointOptions,
  type LoadedCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
export type { FinetuneOptions, FinetuneRunResult } from "./finetune.ts";
export type { LoopOptions } from "./loop.ts";
export {
  type ClassificationScore,
  type ClassifyEvalRecord,
  type ClassifyOptions,
  type ClassifyResult,
  evaluateClassifier,
  type EvaluateClassifierOptions,
  finetuneClassifier,
  type SequenceClassifier,
} from "./classify.ts";
export {
  finetuneInstructions,
  generateResponses,
  type GenerateResponsesOptions,
  type InstructEvalRecord,
  instructionLoss,
  type InstructionResponse,
  type InstructOptions,
  type InstructResult,
} from "./instruct.ts";
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
} from "./dpo.ts";
export { ADAPTER_FORMAT, ADAPTER_VERSION, loadAdapter, saveAdapter } from "./lora_adapter.ts";
