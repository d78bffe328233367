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
  type CurvePoints,
  type LossCurveData,
  type LossCurveOptions,
  lossCurveSvg,
  niceTicks,
  writeLossPlot,
} from "./plot.ts";
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointState,
  loadCheckpoint,
  type LoadCheckpointOptions,
  type LoadedCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
