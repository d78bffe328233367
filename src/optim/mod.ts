/**
 * Optimizers (AdamW with a fused backend kernel, SGD), learning-rate schedules and gradient
 * clipping.
 * @module
 */

export { AdamW, type AdamWOptions } from "./adamw.ts";
export { SGD, type SGDOptions } from "./sgd.ts";
export { Optimizer, type ParamGroup, type ResolvedGroup } from "./optimizer.ts";
export { type LrSchedule, warmupCosine, type WarmupCosineOptions } from "./schedule.ts";
export { clipGradNorm } from "./clip.ts";
