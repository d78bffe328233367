/**
 * Learning-rate schedules: functions from the (0-based) step to the learning rate.
 * @module
 */

/** Options of {@linkcode warmupCosine}. */
export interface WarmupCosineOptions {
  /** Peak learning rate, reached at the end of warmup. */
  maxLr: number;
  /** Final learning rate, reached at `totalSteps` and kept after it; default maxLr / 10. */
  minLr?: number;
  /** Steps of linear warmup; default 0. */
  warmup?: number;
  /** The step at which the cosine reaches minLr (usually the run's length). */
  totalSteps: number;
}

/** A learning-rate schedule: the learning rate for a 0-based step. */
export type LrSchedule = (step: number) => number;

/**
 * Linear warmup then cosine decay to minLr (llm.c's and nanoGPT's schedule): for step < warmup,
 * `maxLr * (step + 1) / warmup`; then `minLr + (maxLr - minLr) * (1 + cos(pi * r)) / 2` with
 * `r = (step - warmup) / (totalSteps - warmup)` clamped to [0, 1].
 *
 * @example
 * ```ts
 * import { warmupCosine } from "@denograd/denograd";
 * const lr = warmupCosine({ maxLr: 1e-3, minLr: 1e-4, warmup: 10, totalSteps: 100 });
 * console.log(lr(0), lr(9), lr(55), lr(100)); // 1e-4, 1e-3, 5.5e-4, 1e-4
 * ```
 */
export function warmupCosine(options: WarmupCosineOptions): LrSchedule {
  const { maxLr, minLr = maxLr / 10, warmup = 0, totalSteps } = options ?? {};
  const finite = (x: number) => typeof x === "number" && Number.isFinite(x);
  if (!finite(maxLr) || maxLr < 0) {
    throw new RangeError(`warmupCosine: maxLr must be a finite number >= 0, got ${maxLr}`);
  }
  if (!finite(minLr) || minLr < 0 || minLr > maxLr) {
    throw new RangeError(`warmupCosine: minLr must be in [0, maxLr=${maxLr}], got ${minLr}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`warmupCosine: warmup must be an integer >= 0, got ${warmup}`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < warmup) {
    throw new RangeError(
      `warmupCosine: totalSteps must be an integer >= warmup (${warmup}), got ${totalSteps}`,
    );
  }
  return (step: number): number => {
    if (!Number.isInteger(step) || step < 0) {
      throw new RangeError(`warmupCosine: step must be an integer >= 0, got ${step}`);
    }
    if (step < warmup) return maxLr * (step + 1) / warmup;
    const span = totalSteps - warmup;
    const r = span === 0 ? 1 : Math.min(1, (step - warmup) / span);
    return minLr + (maxLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * r));
  };
}
