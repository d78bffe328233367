/**
 * Shared timing helpers for the benchmarks. Absolute times on shared machines are noise, so every
 * benchmark times denograd and a reference in the same run, interleaved, and reports ratios.
 * @module
 */

/** Options every benchmark accepts. */
export interface BenchOptions {
  /** A fast smoke run: fewer repetitions, smaller time budgets. */
  quick: boolean;
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Milliseconds one call of `fn` takes (a single measurement). */
export function timeOnce(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** How many warmup calls and timed repetitions to run. */
export interface RepPlan {
  /** Untimed calls of each function before measuring (JIT, page faults, BLAS thread start). */
  warmup: number;
  /** Timed calls of each function. */
  reps: number;
}

/**
 * Picks a repetition count so that each function gets roughly `budgetMs` of timed calls,
 * clamped to [minReps, maxReps], from one probe call of the slowest function.
 */
export function planReps(
  fns: readonly (() => void)[],
  budgetMs: number,
  minReps: number,
  maxReps: number,
): number {
  const probe = Math.max(...fns.map(timeOnce), 1e-3);
  return Math.min(maxReps, Math.max(minReps, Math.round(budgetMs / probe)));
}

/**
 * Times each function `plan.reps` times, interleaved with a rotating order (A B C, B C A, C A B,
 * ...) so that drift in machine load and GC hit all of them alike, after `plan.warmup` untimed
 * calls each.
 * @returns the median milliseconds of each function, in the order given
 */
export function timeInterleaved(fns: readonly (() => void)[], plan: RepPlan): number[] {
  for (let w = 0; w < plan.warmup; w++) for (const fn of fns) fn();
  const samples: number[][] = fns.map(() => []);
  for (let r = 0; r < plan.reps; r++) {
    for (let j = 0; j < fns.length; j++) {
      const i = (r + j) % fns.length;
      samples[i].push(timeOnce(fns[i]));
    }
  }
  return samples.map(median);
}

/** Formats a number with `digits` decimals, right-aligned to `width`. */
export function num(x: number, digits: number, width = 0): string {
  return (Number.isFinite(x) ? x.toFixed(digits) : String(x)).padStart(width);
}

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: readonly string[]): string =>
    cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join("  ");
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

/** Whether `--quick` was passed on the command line. */
export function quickFlag(args: readonly string[] = Deno.args): boolean {
  return args.includes("--quick");
}
