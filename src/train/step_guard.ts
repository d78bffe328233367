// The end of every training step, shared by the trainers: measure the gradient norm (clipping
// if asked), check the loss and the norm are finite, then update, or stop, or skip the update.
// The check comes before the update, so a non-finite step never reaches the weights.
import { noGrad } from "../autograd.ts";
import { firstNonFinite } from "../dtype.ts";
import { stack } from "../ops/movement.ts";
import { clipGradNorm, gradNorm } from "../optim/clip.ts";
import type { TrainOptimizer } from "../optim/optimizer.ts";
import type { Tensor } from "../tensor.ts";

/** What a trainer does when a step's loss or gradient norm is NaN or infinite. */
export type NonFinitePolicy = "stop" | "skip";

/**
 * A training run stopped because a step's loss or gradient norm was not finite (or the weights
 * themselves no longer are). Nothing was updated by that step and no checkpoint was written from
 * it: the last checkpoint on disk is the last good state.
 */
export class NonFiniteError extends Error {
  /** The 1-based optimizer step that was refused. */
  readonly step: number;
  /** Its loss. */
  readonly loss: number;
  /** Its global gradient norm. */
  readonly gradNorm: number;

  /** Builds `<op>: step <step>: <problem>`. */
  constructor(op: string, step: number, loss: number, norm: number, problem: string) {
    super(`${op}: step ${step}: ${problem}`);
    this.name = "NonFiniteError";
    this.step = step;
    this.loss = loss;
    this.gradNorm = norm;
  }
}

/** Checks the option; "stop" when not given. */
export function nonFiniteOption(op: string, v: unknown): NonFinitePolicy {
  if (v === undefined) return "stop";
  if (v !== "stop" && v !== "skip") {
    throw new RangeError(`${op}: nonFinite must be "stop" or "skip", got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The first parameter holding NaN or Infinity, by index, or -1 (reads every parameter back). */
function firstNonFiniteParam(params: readonly Tensor[]): number {
  return params.findIndex((p) => firstNonFinite(p.toTypedArray()) >= 0);
}

/** What {@linkcode StepGuard.finish} did. */
export interface StepOutcome {
  /** Mean loss of the step's micro-batches. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** True when the update was skipped (policy "skip"). */
  skipped: boolean;
}

/** Skipped steps in a row after which skipping stops the run: the run is not recovering. */
export const MAX_SKIPS_IN_A_ROW = 10;

/**
 * Ends every step of a run whose backward passes are done (call {@linkcode StepGuard.finish}
 * inside the step's tidy scope): the gradient norm (clipped to `clip` when > 0), a finiteness
 * check of loss and norm, then `optimizer.step()` — or, for a non-finite step, a
 * {@linkcode NonFiniteError} ("stop") or no update ("skip"). Skipping stops too once the weights
 * are non-finite or {@linkcode MAX_SKIPS_IN_A_ROW} steps in a row were skipped. Gradients are
 * zeroed in every case.
 */
export class StepGuard {
  #inARow = 0;

  /** A guard for one run. */
  constructor(
    readonly o: {
      op: string;
      params: readonly Tensor[];
      names: () => readonly string[];
      clip: number;
      optimizer: TrainOptimizer;
      policy: NonFinitePolicy;
    },
  ) {}

  /** Checks and applies (or refuses) the update of 1-based `step`, given its micro-losses. */
  finish(step: number, micro: readonly Tensor[]): StepOutcome {
    const { op, params, optimizer } = this.o;
    const norm = this.o.clip > 0 ? clipGradNorm(params, this.o.clip) : gradNorm(params);
    const mean = micro.length === 1 ? micro[0] : noGrad(() => stack(micro).mean()); // ()
    const loss = mean.item();
    if (Number.isFinite(loss) && Number.isFinite(norm)) {
      optimizer.step();
      optimizer.zeroGrad();
      this.#inARow = 0;
      return { loss, gradNorm: norm, skipped: false };
    }
    optimizer.zeroGrad();
    const stop = (problem: string) => new NonFiniteError(op, step, loss, norm, problem);
    const what = `loss ${loss}, gradient norm ${norm}`;
    const bad = firstNonFiniteParam(params);
    if (bad >= 0) {
      const name = this.o.names()[bad] ?? `parameter ${bad}`;
      throw stop(
        `${what}: the weights themselves hold NaN or Inf (${name}), so an earlier update ` +
          "diverged; the run stops without saving. Resume from the last checkpoint with a " +
          "lower learning rate (or more warmup, or clipping)",
      );
    }
    if (this.o.policy === "stop") {
      throw stop(
        `${what}: the run stops here without updating or saving (the last checkpoint is the ` +
          'last good state). Lower the learning rate, or pass nonFinite: "skip" ' +
          "(--non-finite skip in the examples) to skip such steps",
      );
    }
    if (++this.#inARow >= MAX_SKIPS_IN_A_ROW) {
      throw stop(
        `${what}: ${this.#inARow} steps in a row were not finite, so skipping does not help: ` +
          "the run stops without saving. Resume from the last checkpoint with a lower " +
          "learning rate",
      );
    }
    return { loss, gradNorm: norm, skipped: true };
  }
}
