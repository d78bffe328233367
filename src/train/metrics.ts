/**
 * Training metrics as JSON Lines: one object per line, appended and flushed as it happens, so a
 * crashed or still-running job can be read (and plotted) at any time.
 * @module
 */

import { dirname } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";

/** One optimizer step. */
export interface TrainRecord {
  /** Record kind. */
  kind: "train";
  /** 1-based optimizer step. */
  step: number;
  /** Mean training loss over the step's micro-batches. */
  loss: number;
  /** Learning rate used by the step. */
  lr: number;
  /** Global gradient norm before clipping (null in files written before it was always kept). */
  gradNorm: number | null;
  /** Tokens trained on so far (all steps, including before a resume). */
  tokens: number;
  /** Wall time of the step in milliseconds. */
  ms: number;
  /** Throughput of the step. */
  tokensPerSecond: number;
  /**
   * True for a step whose update was skipped (`nonFinite: "skip"`): passed to `onStep`, never
   * written to the metrics file (its loss is not finite).
   */
  skipped?: boolean;
  /** Steps skipped so far, over resumed runs too (present once one was). */
  skippedSteps?: number;
}

/** A validation loss. */
export interface ValRecord {
  /** Record kind. */
  kind: "val";
  /** The optimizer step after which it was measured. */
  step: number;
  /** Mean loss over the evaluated batches. */
  loss: number;
}

/** A text sample generated during training. */
export interface SampleRecord {
  /** Record kind. */
  kind: "sample";
  /** The optimizer step after which it was generated. */
  step: number;
  /** Prompt plus continuation. */
  text: string;
}

/** Any line of a metrics file. */
export type MetricsRecord = TrainRecord | ValRecord | SampleRecord;

/**
 * Reads a metrics file; a missing file reads as no records. A torn last line (the process died
 * mid-write) is skipped; any other bad line throws a SyntaxError naming the line.
 *
 * @example
 * ```ts
 * import { MetricsLog, readMetrics } from "@denograd/denograd";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * const log = MetricsLog.open(path);
 * log.write({ kind: "val", step: 10, loss: 4.2 });
 * log.close();
 * console.log(await readMetrics(path)); // [{ kind: "val", step: 10, loss: 4.2 }]
 * await Deno.remove(path);
 * ```
 */
export async function readMetrics(path: string): Promise<MetricsRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const lines = text.split("\n");
  const out: MetricsRecord[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      if (i === lines.length - 1) return; // an unfinished last line
      throw new SyntaxError(`readMetrics: ${path} line ${i + 1} is not JSON: ${line.slice(0, 80)}`);
    }
  });
  return out;
}

/**
 * Keeps only the records of steps <= `step` (what a run resumed from that step's checkpoint
 * should inherit), rewriting the file atomically.
 *
 * @returns the records kept
 */
export async function truncateMetrics(path: string, step: number): Promise<MetricsRecord[]> {
  const kept = (await readMetrics(path)).filter((r) => r.step <= step);
  const text = kept.map((r) => JSON.stringify(r) + "\n").join("");
  await Deno.mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, text);
  return kept;
}

/** An append-only JSONL writer; every record is written through to the file at once. */
export class MetricsLog {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Opens `path` for appending (creating it and its directory). */
  static open(path: string): MetricsLog {
    Deno.mkdirSync(dirname(path), { recursive: true });
    return new MetricsLog(Deno.openSync(path, { append: true, create: true }));
  }

  /** Appends one record as a line. */
  write(record: MetricsRecord): void {
    const bytes = this.#encoder.encode(JSON.stringify(record) + "\n");
    for (let off = 0; off < bytes.length;) off += this.#file.writeSync(bytes.subarray(off));
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }
}
