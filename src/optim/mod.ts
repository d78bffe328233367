/**
 * Optimizers (SGD, Adam and AdamW on fused backend kernels; Muon with Newton–Schulz, alone or
 * combined with AdamW), composable learning-rate schedules and gradient clipping.
 * @module
 */

export { AdamW, type AdamWOptions } from "./adamw.ts";
export { Adam, type AdamOptions } from "./adam.ts";
export { SGD, type SGDOptions } from "./sgd.ts";
export { Muon, type MuonOptions } from "./muon.ts";
export { NEWTON_SCHULZ_COEFFICIENTS, newtonSchulz } from "./newton_schulz.ts";
export { CombinedOptimizer, muonWithAdamW, type MuonWithAdamWOptions } from "./combined.ts";
export {
  type ModelParameters,
  Optimizer,
  type ParamGroup,
  type ResolvedGroup,
  type TrainOptimizer,
} from "./optimizer.ts";
export {
  type AnnealOptions,
  constantLr,
  cosineLr,
  type DecayShape,
  linearLr,
  type LrPhase,
  type LrSchedule,
  sequenceLr,
  warmupCosine,
  type WarmupCosineOptions,
  warmupLr,
  type WarmupOptions,
  warmupStableDecay,
  type WarmupStableDecayOptions,
} from "./schedule.ts";
export { clipGradNorm, gradNorm } from "./clip.ts";
