// Resuming a run, shared by the trainers: every part of the checkpoint (checksums, model,
// optimizer state, data position, learning-rate schedule) is checked before anything changes,
// and a schedule that differs from the saved run's is refused unless the caller allows it.
import type { Device } from "../backend/backend.ts";
import type { LoaderState } from "../data/loader.ts";
import { removeStaleTemporaries } from "../io/atomic.ts";
import type { Module } from "../nn/module.ts";
import type { TrainOptimizer } from "../optim/optimizer.ts";
import { setRngState } from "../random.ts";
import { loadCheckpoint } from "./checkpoint.ts";

/** A run's learning rate at a few steps: what a checkpoint remembers of its schedule. */
export interface ScheduleFingerprint {
  /** The run's total steps. */
  totalSteps: number;
  /** [0-based step, lr] at nine steps spread over the run. */
  lrs: [number, number][];
}

/** The fingerprint of the schedule `lrAt` (0-based step -> lr) over `totalSteps`. */
export function scheduleFingerprint(
  totalSteps: number,
  lrAt: (step: number) => number,
): ScheduleFingerprint {
  const steps = [
    ...new Set(Array.from({ length: 9 }, (_, k) => Math.round(k * (totalSteps - 1) / 8))),
  ];
  return { totalSteps, lrs: steps.map((s) => [s, lrAt(s)]) };
}

/**
 * How the run's schedule differs from the saved one, or null when they agree: the lr is compared
 * at the saved steps (so a constant rate may run longer), or, for checkpoints written before
 * fingerprints, the total steps.
 */
function scheduleChange(
  saved: unknown,
  savedTotal: unknown,
  totalSteps: number,
  lrAt: (step: number) => number,
): string | null {
  const lrs = (saved as ScheduleFingerprint | undefined)?.lrs;
  if (!Array.isArray(lrs)) {
    return savedTotal === totalSteps
      ? null
      : `the checkpoint's run has ${savedTotal} steps in its schedule, this one ${totalSteps}`;
  }
  for (const [step, lr] of lrs) {
    const now = lrAt(step);
    if (Math.abs(now - lr) > 1e-9 * Math.max(Math.abs(lr), 1e-30)) {
      const total = savedTotal === totalSteps
        ? ""
        : ` (${savedTotal} steps then, ${totalSteps} now)`;
      return `the learning rate at step ${step + 1} was ${lr.toExponential(3)} in the ` +
        `checkpoint's run and is ${now.toExponential(3)} in this one${total}`;
    }
  }
  return null;
}

/** What {@linkcode resumeRun} needs. */
export interface ResumeSpec {
  op: string;
  path: string;
  model: Module;
  optimizer: TrainOptimizer;
  device: Device;
  train: { state(): LoaderState; loadState(state: LoaderState): void };
  totalSteps: number;
  /** This run's lr at each 0-based step (pure: it must not touch the optimizer). */
  lrAt: (step: number) => number;
  /** Continue on a schedule that differs from the saved run's. */
  allowScheduleChange: boolean;
}

/**
 * Restores model, optimizer, data position and random generator from the checkpoint at `path`,
 * after removing temporaries a killed save left beside it. Nothing changes unless all of it fits.
 *
 * @returns the checkpoint's step and its extra state
 */
export async function resumeRun(
  r: ResumeSpec,
): Promise<{ step: number; extra: Record<string, unknown> }> {
  try {
    await Deno.stat(r.path);
  } catch {
    throw new Error(`${r.op}: resume: no checkpoint at ${r.path}`);
  }
  await removeStaleTemporaries(r.path);
  const before = r.train.state();
  try {
    const ck = await loadCheckpoint(r.path, r.model, {
      device: r.device,
      optimizer: r.optimizer,
      check: ({ extra }) => {
        const change = scheduleChange(extra.schedule, extra.totalSteps, r.totalSteps, r.lrAt);
        if (change && !r.allowScheduleChange) {
          throw new RangeError(
            `${r.op}: resume ${r.path}: ${change}, which would change the learning-rate ` +
              "schedule mid-run. Resume with the same steps and learning-rate options, or pass " +
              "allowScheduleChange: true (--allow-schedule-change in the examples) to continue " +
              "on the new schedule",
          );
        }
        r.train.loadState(extra.loader as LoaderState); // checks the position first
      },
    });
    setRngState(ck.rng);
    return { step: ck.step, extra: ck.extra };
  } catch (e) {
    r.train.loadState(before);
    throw e;
  }
}
