/**
 * A small terminal progress bar for long jobs (data preparation, training): position, total,
 * rate and ETA on one line. On a terminal it redraws in place with `\r`; when stderr is a file or
 * a pipe (CI logs, `nohup`) it prints a plain line every few seconds instead, because `\r` redraws
 * turn a log file into one enormous line.
 * @module
 */

/** How a {@linkcode Progress} bar counts and where it writes. */
export interface ProgressOptions {
  /** Printed first on the line, e.g. the job's name. */
  label?: string;
  /** The count at completion; without it the bar shows no percentage or ETA. */
  total?: number;
  /** "bytes" prints sizes (kB, MB, GB); any other word is printed after plain counts. */
  unit?: string;
  /** Redraw in place with `\r`; default: whether stderr is a terminal. */
  tty?: boolean;
  /** Minimum milliseconds between lines; default 100 on a terminal, 10 000 otherwise. */
  intervalMs?: number;
  /** Where text goes; default: stderr. */
  write?: (text: string) => void;
  /** The clock in milliseconds; default `performance.now`. Tests pass a fake one. */
  now?: () => number;
}

const BAR_WIDTH = 20;
const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += Deno.stderr.writeSync(bytes.subarray(off));
}

function formatBytes(n: number): string {
  if (n < 1e3) return `${Math.round(n)} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(ss).padStart(2, "0")}`;
}

/** A progress line: `label  42.0% [########            ] 4.2/10.0 MB  1.3 MB/s  ETA 0:04  note`. */
export class Progress {
  readonly #label: string;
  readonly #total: number | undefined;
  readonly #unit: string;
  readonly #tty: boolean;
  readonly #interval: number;
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #start: number;
  #last = -Infinity;
  #done = false;

  /** Starts the clock; nothing is printed until the first {@linkcode Progress.update}. */
  constructor(options: ProgressOptions = {}) {
    this.#label = options.label ?? "";
    this.#total = options.total;
    this.#unit = options.unit ?? "items";
    this.#tty = options.tty ?? Deno.stderr.isTerminal();
    this.#interval = options.intervalMs ?? (this.#tty ? 100 : 10_000);
    this.#write = options.write ?? writeStderr;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /** Reports the current count; prints at most once per interval. `note` is appended as is. */
  update(current: number, note = ""): void {
    if (this.#done) return;
    const t = this.#now();
    if (t - this.#last < this.#interval) return;
    this.#last = t;
    const line = this.format(current, note);
    this.#write(this.#tty ? `\r${line}\x1b[K` : `${line}\n`);
  }

  /** Prints the final line (always, ignoring the interval) and ends it with a newline. */
  done(current: number, note = ""): void {
    if (this.#done) return;
    this.#done = true;
    const line = this.format(current, note);
    this.#write(this.#tty ? `\r${line}\x1b[K\n` : `${line}\n`);
  }

  /** The text of one progress line (no `\r` or newline). */
  format(current: number, note = ""): string {
    const elapsed = (this.#now() - this.#start) / 1000;
    const rate = elapsed > 0 ? current / elapsed : 0;
    const bytes = this.#unit === "bytes";
    const amount = (n: number) => bytes ? formatBytes(n) : Math.round(n).toLocaleString("en-US");
    const parts = this.#label ? [this.#label] : [];
    const total = this.#total;
    if (total !== undefined && total > 0) {
      const frac = Math.min(1, Math.max(0, current / total));
      const filled = Math.round(frac * BAR_WIDTH);
      parts.push(
        `${(frac * 100).toFixed(1).padStart(5)}%`,
        `[${"#".repeat(filled)}${" ".repeat(BAR_WIDTH - filled)}]`,
        bytes ? `${amount(current)} / ${amount(total)}` : `${amount(current)}/${amount(total)}`,
      );
    } else {
      parts.push(amount(current));
    }
    if (!bytes) parts[parts.length - 1] += ` ${this.#unit}`;
    parts.push(`${amount(rate)}${bytes ? "" : ` ${this.#unit}`}/s`);
    if (total !== undefined && total > 0) {
      parts.push(
        current >= total
          ? `${formatDuration(elapsed)} total`
          : `ETA ${formatDuration(rate > 0 ? (total - current) / rate : Infinity)}`,
      );
    }
    if (note) parts.push(note);
    return parts.join("  ");
  }
}
