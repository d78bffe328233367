/**
 * Learning-rate schedules: pure functions from the (0-based) step to a learning rate, or to a
 * factor of each group's initial learning rate (`optimizer.scaleLr`). The building blocks
 * (constant, linear, cosine, warmup) compose with {@linkcode sequenceLr}; warmup-stable-decay
 * and warmup-cosine are such compositions.
 * @module
 */

/** A learning-rate schedule: the learning rate (or factor) for a 0-based step. */
export type LrSchedule = (step: number) => number;

/** The shape of an anneal from one value to another: a straight line, a half cosine, or 1 - √r. */
export type DecayShape = "linear" | "cosine" | "sqrt";

/** Options of {@linkcode linearLr} and {@linkcode cosineLr}. */
export interface AnnealOptions {
  /** The value at step 0. */
  from: number;
  /** The value at step `steps` and after. */
  to: number;
  /** Steps from `from` to `to`. */
  steps: number;
}

function checkValue(fn: string, name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`${fn}: ${name} must be a finite number >= 0, got ${v}`);
  }
}

function checkCount(fn: string, name: string, v: unknown): void {
  if (!Number.isInteger(v) || (v as number) < 0) {
    throw new RangeError(`${fn}: ${name} must be an integer >= 0, got ${v}`);
  }
}

/** Wraps `f` so a bad step is a RangeError naming `fn`. */
function schedule(fn: string, f: (step: number) => number): LrSchedule {
  return (step: number): number => {
    if (!Number.isInteger(step) || step < 0) {
      throw new RangeError(`${fn}: step must be an integer >= 0, got ${step}`);
    }
    return f(step);
  };
}

/** from -> to over `steps` along `shape`, then `to`. */
function anneal(fn: string, o: AnnealOptions, shape: DecayShape): LrSchedule {
  const { from, to, steps } = o ?? {};
  checkValue(fn, "from", from);
  checkValue(fn, "to", to);
  checkCount(fn, "steps", steps);
  const curve: Record<DecayShape, (r: number) => number> = {
    linear: (r) => 1 - r,
    cosine: (r) => 0.5 * (1 + Math.cos(Math.PI * r)),
    sqrt: (r) => 1 - Math.sqrt(r),
  };
  const weight = curve[shape];
  return schedule(fn, (step) => {
    const r = steps === 0 ? 1 : Math.min(1, step / steps);
    return to + (from - to) * weight(r);
  });
}

/**
 * The same learning rate at every step.
 *
 * @example
 * ```ts
 * import { constantLr } from "@denograd/denograd";
 * console.log(constantLr(3e-4)(1000)); // 0.0003
 * ```
 */
export function constantLr(lr: number): LrSchedule {
  checkValue("constantLr", "lr", lr);
  return schedule("constantLr", () => lr);
}

/**
 * A straight line from `from` (step 0) to `to` (step `steps`), then `to`.
 *
 * @example
 * ```ts
 * import { linearLr } from "@denograd/denograd";
 * const lr = linearLr({ from: 1, to: 0, steps: 4 });
 * console.log([0, 1, 2, 4, 9].map(lr)); // [1, 0.75, 0.5, 0, 0]
 * ```
 */
export function linearLr(options: AnnealOptions): LrSchedule {
  return anneal("linearLr", options, "linear");
}

/**
 * Half a cosine from `from` (step 0) to `to` (step `steps`), then `to` (SGDR without restarts):
 * `to + (from - to) * (1 + cos(pi * step / steps)) / 2`.
 *
 * @example
 * ```ts
 * import { cosineLr } from "@denograd/denograd";
 * const lr = cosineLr({ from: 1, to: 0.1, steps: 10 });
 * console.log(lr(0), lr(5), lr(10)); // 1, 0.55, 0.1
 * ```
 */
export function cosineLr(options: AnnealOptions): LrSchedule {
  return anneal("cosineLr", options, "cosine");
}

/** Options of {@linkcode warmupLr}. */
export interface WarmupOptions {
  /** The learning rate reached at the end of warmup. */
  lr: number;
  /** Warmup steps. */
  steps: number;
}

/**
 * Linear warmup as llm.c and nanoGPT do it: `lr * (step + 1) / steps` for step < steps (so the
 * first step already moves), then `lr`.
 *
 * @example
 * ```ts
 * import { warmupLr } from "@denograd/denograd";
 * const lr = warmupLr({ lr: 1, steps: 4 });
 * console.log([0, 1, 3, 4].map(lr)); // [0.25, 0.5, 1, 1]
 * ```
 */
export function warmupLr(options: WarmupOptions): LrSchedule {
  const { lr, steps } = options ?? {};
  checkValue("warmupLr", "lr", lr);
  checkCount("warmupLr", "steps", steps);
  return schedule("warmupLr", (step) => step < steps ? lr * (step + 1) / steps : lr);
}

/** One phase of {@linkcode sequenceLr}. */
export interface LrPhase {
  /** The phase's schedule; it sees steps counted from the phase's start. */
  schedule: LrSchedule;
  /** The phase's length; the last phase may leave it out (it runs on forever). */
  steps?: number;
}

/**
 * Phases one after another: each phase's schedule sees the step counted from its own start; the
 * last phase runs on after its `steps`.
 *
 * @example
 * ```ts
 * import { cosineLr, sequenceLr, warmupLr } from "@denograd/denograd";
 * const lr = sequenceLr([
 *   { schedule: warmupLr({ lr: 1e-3, steps: 10 }), steps: 10 },
 *   { schedule: cosineLr({ from: 1e-3, to: 1e-4, steps: 90 }) },
 * ]);
 * console.log(lr(4), lr(10), lr(100)); // 5e-4, 1e-3, 1e-4
 * ```
 */
export function sequenceLr(phases: readonly LrPhase[]): LrSchedule {
  if (!Array.isArray(phases) || phases.length === 0) {
    throw new TypeError("sequenceLr: expected a non-empty array of phases");
  }
  const starts: number[] = [];
  let start = 0;
  phases.forEach((p, i) => {
    if (!p || typeof p.schedule !== "function") {
      throw new TypeError(`sequenceLr: phase ${i} has no schedule function`);
    }
    const last = i === phases.length - 1;
    if (!(last && p.steps === undefined)) checkCount("sequenceLr", `phases[${i}].steps`, p.steps);
    starts.push(start);
    start += p.steps ?? 0;
  });
  return schedule("sequenceLr", (step) => {
    let i = phases.length - 1;
    while (i > 0 && step < starts[i]) i--;
    return phases[i].schedule(step - starts[i]);
  });
}

/** Options of {@linkcode warmupStableDecay}. */
export interface WarmupStableDecayOptions {
  /** The learning rate of the stable phase. */
  maxLr: number;
  /** The learning rate at the end of the decay and after; default 0. */
  minLr?: number;
  /** Steps of linear warmup; default 0. */
  warmup?: number;
  /** Steps of the final decay, which ends at `totalSteps`. */
  decaySteps: number;
  /** The run's length. */
  totalSteps: number;
  /** Shape of the decay; default "linear" ("sqrt": 1 - √r, Hägele et al. 2024). */
  decayShape?: DecayShape;
}

/**
 * Warmup-stable-decay (WSD, as in MiniCPM and Hägele et al. 2024): linear warmup to maxLr,
 * maxLr until `totalSteps - decaySteps`, then a decay to minLr at `totalSteps`, kept after. A
 * run can be extended by continuing the stable phase and decaying from any point.
 *
 * @example
 * ```ts
 * import { warmupStableDecay } from "@denograd/denograd";
 * const lr = warmupStableDecay({ maxLr: 1, warmup: 2, decaySteps: 4, totalSteps: 10 });
 * console.log([0, 1, 2, 5, 6, 7, 8, 10].map(lr)); // [0.5, 1, 1, 1, 1, 0.75, 0.5, 0]
 * ```
 */
export function warmupStableDecay(options: WarmupStableDecayOptions): LrSchedule {
  const fn = "warmupStableDecay";
  const { maxLr, minLr = 0, warmup = 0, decaySteps, totalSteps, decayShape = "linear" } = options ??
    {};
  checkValue(fn, "maxLr", maxLr);
  if (!(typeof minLr === "number" && minLr >= 0 && minLr <= maxLr)) {
    throw new RangeError(`${fn}: minLr must be in [0, maxLr=${maxLr}], got ${minLr}`);
  }
  checkCount(fn, "warmup", warmup);
  checkCount(fn, "decaySteps", decaySteps);
  if (!Number.isInteger(totalSteps) || totalSteps < warmup + decaySteps) {
    throw new RangeError(
      `${fn}: totalSteps must be an integer >= warmup + decaySteps (${
        warmup + decaySteps
      }), got ${totalSteps}`,
    );
  }
  if (!["linear", "cosine", "sqrt"].includes(decayShape)) {
    throw new RangeError(
      `${fn}: decayShape must be "linear", "cosine" or "sqrt", got ${decayShape}`,
    );
  }
  const inner = sequenceLr([
    { schedule: warmupLr({ lr: maxLr, steps: warmup }), steps: warmup },
    { schedule: constantLr(maxLr), steps: totalSteps - warmup - decaySteps },
    { schedule: anneal(fn, { from: maxLr, to: minLr, steps: decaySteps }, decayShape) },
  ]);
  return schedule(fn, inner);
}

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

/**
 * Linear warmup then cosine decay to minLr (llm.c's and nanoGPT's schedule): for step < warmup,
 * `maxLr * (step + 1) / warmup`; then `minLr + (maxLr - minLr) * (1 + cos(pi * r)) / 2` with
 * `r = (step - warmup) / (totalSteps - warmup)` clamped to [0, 1]. The same as
 * `sequenceLr([warmupLr, cosineLr])`.
 *
 * @example
 * ```ts
 * import { warmupCosine } from "@denograd/denograd";
 * const lr = warmupCosine({ maxLr: 1e-3, minLr: 1e-4, warmup: 10, totalSteps: 100 });
 * console.log(lr(0), lr(9), lr(55), lr(100)); // 1e-4, 1e-3, 5.5e-4, 1e-4
 * ```
 */
export function warmupCosine(options: WarmupCosineOptions): LrSchedule {
  const fn = "warmupCosine";
  const { maxLr, minLr = maxLr / 10, warmup = 0, totalSteps } = options ?? {};
  checkValue(fn, "maxLr", maxLr);
  if (!(typeof minLr === "number" && minLr >= 0 && minLr <= maxLr)) {
    throw new RangeError(`${fn}: minLr must be in [0, maxLr=${maxLr}], got ${minLr}`);
  }
  checkCount(fn, "warmup", warmup);
  if (!Number.isInteger(totalSteps) || totalSteps < warmup) {
    throw new RangeError(
      `${fn}: totalSteps must be an integer >= warmup (${warmup}), got ${totalSteps}`,
    );
  }
  const inner = sequenceLr([
    { schedule: warmupLr({ lr: maxLr, steps: warmup }), steps: warmup },
    { schedule: anneal(fn, { from: maxLr, to: minLr, steps: totalSteps - warmup }, "cosine") },
  ]);
  return schedule(fn, inner);
}
