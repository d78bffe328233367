/**
 * The PyTorch side of a benchmark: a reference script in a subprocess, driven one command per
 * line over stdin and answering one JSON object per line, so denograd and PyTorch run
 * interleaved in the same run.
 * @module
 */

import { median, timeOnce } from "./_common.ts";

/** Reads newline-delimited JSON objects from a child's stdout. */
class JsonLines {
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  async next(): Promise<Record<string, unknown>> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        if (line.trim()) return JSON.parse(line);
        continue;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("the PyTorch reference exited early");
      this.#buf += value;
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/** A reference script running in Python: `ready()`, then `send(command)` per measurement. */
export class TorchProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: JsonLines;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #enc = new TextEncoder();
  /** What the script said on start (torch version, threads, ...). */
  hello: Record<string, unknown> = {};

  /** Starts `script` with `args` under $DENOGRAD_PYTHON or Debian's python3. */
  constructor(script: URL, args: readonly (string | number)[]) {
    this.#child = new Deno.Command(pythonPath(), {
      args: [script.pathname, ...args.map(String)],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#lines = new JsonLines(this.#child.stdout);
    this.#stdin = this.#child.stdin.getWriter();
  }

  /** torch.__version__ as reported on start. */
  get version(): string {
    return String(this.hello.torch ?? "");
  }

  /** torch's thread count as reported on start. */
  get threads(): number {
    return Number(this.hello.threads ?? 0);
  }

  /** Waits for the ready line (torch imported, model built). */
  async ready(): Promise<void> {
    try {
      this.hello = await this.#lines.next();
    } catch (err) {
      const stderr = await new Response(this.#child.stderr).text();
      throw new Error(
        `${(err as Error).message}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
      );
    }
  }

  /** Sends one command and returns the script's JSON answer. */
  async send(command: string): Promise<Record<string, unknown>> {
    await this.#stdin.write(this.#enc.encode(command + "\n"));
    const r = await this.#lines.next();
    if ("error" in r) throw new Error(`PyTorch reference: ${r.error}`);
    return r;
  }

  /** One timed step inside Python (pipe latency excluded). */
  async step(): Promise<{ ms: number; loss: number }> {
    const r = await this.send("step");
    if (typeof r.ms !== "number") throw new Error(`PyTorch reference: ${JSON.stringify(r)}`);
    return { ms: r.ms, loss: Number(r.loss) };
  }

  /** Ends the script and waits for it. */
  async close(): Promise<void> {
    await this.#stdin.write(this.#enc.encode("quit\n")).catch(() => {});
    await this.#stdin.close().catch(() => {});
    await this.#lines.cancel().catch(() => {});
    await this.#child.stderr.cancel().catch(() => {});
    await this.#child.status;
  }
}

/** The Python to run: $DENOGRAD_PYTHON, else Debian's /usr/bin/python3, else python3 on PATH. */
export function pythonPath(): string {
  const env = Deno.env.get("DENOGRAD_PYTHON");
  if (env) return env;
  try {
    Deno.statSync("/usr/bin/python3");
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
}

/** Lets OpenBLAS / OpenMP worker threads of the side that just ran stop spinning. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 150));
}

/**
 * Starts a reference script and waits until it is ready; when Python or torch is missing, returns
 * the reason instead of throwing, so the benchmark reports "n/a" for the PyTorch side.
 */
export async function startTorch(
  script: URL,
  args: readonly (string | number)[],
): Promise<{ torch: TorchProcess | null; torchError?: string }> {
  let torch: TorchProcess | null = null;
  try {
    torch = new TorchProcess(script, args);
    await torch.ready();
    return { torch };
  } catch (err) {
    if (torch) await torch.close().catch(() => {});
    return { torch: null, torchError: (err as Error).message };
  }
}

/** One training step timed in denograd and in PyTorch, interleaved in the same run. */
export interface StepComparison {
  /** Median milliseconds of one optimizer step in denograd. */
  denogradMs: number;
  torchMs: number | null;
  /** torchMs / denogradMs: above 1 means denograd is faster. */
  ratio: number | null;
  denogradStepsPerSec: number;
  torchStepsPerSec: number | null;
  /** The last step's loss on each side (same recipe, different random weights and data). */
  denogradLoss: number;
  torchLoss: number | null;
}

/**
 * Runs `step` (returning its loss) and PyTorch's `command` (answering `{ms, loss}`) alternately,
 * `warmup` untimed rounds then `reps` timed ones, letting the machine settle around each PyTorch
 * call; medians of the timed rounds. Without `torch` only denograd is timed.
 */
export async function interleaveSteps(
  step: () => number,
  torch: TorchProcess | null,
  command: string,
  warmup: number,
  reps: number,
): Promise<StepComparison> {
  const ours: number[] = [], theirs: number[] = [];
  let denogradLoss = NaN, torchLoss: number | null = null;
  for (let r = 0; r < warmup + reps; r++) {
    const ms = timeOnce(() => denogradLoss = step());
    if (r >= warmup) ours.push(ms);
    if (torch) {
      await settle();
      const s = await torch.send(command);
      torchLoss = Number(s.loss);
      if (r >= warmup) theirs.push(Number(s.ms));
      await settle();
    }
  }
  const denogradMs = median(ours), torchMs = theirs.length ? median(theirs) : null;
  return {
    denogradMs,
    torchMs,
    ratio: torchMs === null ? null : torchMs / denogradMs,
    denogradStepsPerSec: 1000 / denogradMs,
    torchStepsPerSec: torchMs === null ? null : 1000 / torchMs,
    denogradLoss,
    torchLoss,
  };
}
