/**
 * The command-line parser every example and CLI shares (internal: not exported from mod.ts).
 *
 * A program declares its flags once ({@linkcode defineCli}): type, default, bounds, description.
 * {@linkcode runMain} then parses `Deno.args`, prints the usage for `--help`/`-h` (exit 0),
 * prints the usage and one error line for a bad flag (exit 2), checks that the files named by
 * `file` flags exist and that the `device` flag's device is usable, runs the program, and prints
 * any error it throws as one line `<name>: error: <message>` (exit 1). No stack traces, unless
 * `DENOGRAD_DEBUG=1`.
 *
 * ```ts ignore
 * const CLI = defineCli({
 *   name: "pretrain",
 *   usage: "deno task demo [options]",
 *   summary: "Pretrain a small GPT-2.",
 *   flags: {
 *     steps: { type: "int", default: 250, min: 1, description: "optimizer steps" },
 *     data: { type: "file", description: "a UTF-8 text file" },
 *     device: { type: "device", description: "cpu, cuda or cuda:N" },
 *   },
 * });
 * await runMain(CLI, async (args) => {
 *   args.steps; // number
 *   args.data; // string | undefined (checked to exist when given)
 *   args.device; // "cpu", "cuda", ... (default: cuda when available)
 * });
 * ```
 * @module
 */

import { parseArgs } from "node:util";
import type { Device } from "../src/backend/backend.ts";
import { defaultDevice, getBackend } from "../src/backend/registry.ts";

interface FlagCommon {
  /** One line for the help; `\n` starts a continuation line. */
  description: string;
  /** The value's placeholder in the help, e.g. "N", "FILE", "<dir>" (default by type). */
  value?: string;
  /** A one-letter alias, e.g. "s" for `-s`. */
  short?: string;
  /** What the help shows as the default when `default` cannot say it ("cuda when available"). */
  defaultText?: string;
}

/** An integer flag; the value is a safe integer within [min, max]. */
export interface IntFlag extends FlagCommon {
  type: "int";
  default?: number;
  required?: boolean;
  /** Smallest value allowed (inclusive). */
  min?: number;
  /** Largest value allowed (inclusive; default and at most `Number.MAX_SAFE_INTEGER`). */
  max?: number;
}

/** A finite number flag; `above`/`below` are exclusive bounds, `min`/`max` inclusive ones. */
export interface NumberFlag extends FlagCommon {
  type: "number";
  default?: number;
  required?: boolean;
  min?: number;
  max?: number;
  above?: number;
  below?: number;
}

/** Free text. */
export interface StringFlag extends FlagCommon {
  type: "string";
  default?: string;
  required?: boolean;
}

/** A path to an existing file, checked before the program starts (exit 1 when absent). */
export interface FileFlag extends FlagCommon {
  type: "file";
  default?: string;
  required?: boolean;
  /** Added to the not-found error, e.g. "download it with `deno task download gpt2`". */
  hint?: string;
}

/** One of a fixed set of words. */
export interface ChoiceFlag extends FlagCommon {
  type: "choice";
  choices: readonly string[];
  default?: string;
  required?: boolean;
}

/** A switch: present is true, absent false. */
export interface BooleanFlag extends FlagCommon {
  type: "boolean";
}

/** "cpu", "cuda" or "cuda:N"; default: cuda when available. Checked usable before the program. */
export interface DeviceFlag extends FlagCommon {
  type: "device";
}

/** Any flag. */
export type Flag =
  | IntFlag
  | NumberFlag
  | StringFlag
  | FileFlag
  | ChoiceFlag
  | BooleanFlag
  | DeviceFlag;

/** A positional argument; every one declared is required. */
export interface Positional {
  /** Its name in the help (`<name>`) and in the parsed values. */
  name: string;
  description: string;
  choices?: readonly string[];
}

/** What a program takes. */
export interface CliSpec {
  /** The program's short name, the prefix of its error lines ("pretrain: error: ..."). */
  name: string;
  /** One line saying what it does; the help's first line. */
  summary: string;
  /** The usage line after "Usage: " (default: "<name> [options]" with the positionals). */
  usage?: string;
  /** The flags by long name (without "--"); `help` and `-h` are added. */
  flags: Readonly<Record<string, Flag>>;
  positionals?: readonly Positional[];
  /** Text printed after the flags in the help. */
  epilog?: string;
}

type ValueOf<F> = F extends { type: "int" | "number" } ? number
  : F extends { type: "boolean" } ? boolean
  : F extends { type: "choice"; choices: readonly (infer C)[] } ? C
  : F extends { type: "device" } ? Device
  : string;
type Always<F> = F extends { type: "boolean" | "device" } ? true
  : F extends { default: unknown } ? true
  : F extends { required: true } ? true
  : false;
type FlagValues<F> = {
  -readonly [K in keyof F]: Always<F[K]> extends true ? ValueOf<F[K]> : ValueOf<F[K]> | undefined;
};
type PositionalValues<S> = S extends { positionals: readonly (infer P)[] } ? {
    -readonly [X in P as X extends { name: infer N extends string } ? N : never]: X extends
      { choices: readonly (infer C)[] } ? C : string;
  }
  : unknown;

/** The parsed values of a spec: one property per flag (by long name) and per positional. */
export type CliValues<S extends CliSpec> = FlagValues<S["flags"]> & PositionalValues<S>;

/** The flags of every example that trains and resumes: the two safety valves of the loop. */
export const TRAINING_GUARD_FLAGS = {
  "non-finite": {
    type: "choice",
    choices: ["stop", "skip"],
    default: "stop",
    description: "a step whose loss or gradient is NaN/Inf: stop the run, or skip its update",
  },
  "allow-schedule-change": {
    type: "boolean",
    description: "with --resume: continue although --steps or --lr changes the lr schedule",
  },
} as const satisfies Record<string, Flag>;

/** A bad command line (unknown flag, bad value, ...): the usage is printed, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A user mistake found while running (a missing file, ...): one line, exit code 1. */
export class CliError extends Error {
  override name = "CliError";
}

const SAFE = Number.MAX_SAFE_INTEGER;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const DEVICE = /^(cpu|cuda(:\d+)?)$/;

/**
 * Returns the spec as given, with literal types kept (so choices type their values), after
 * checking it: unique short aliases, `help`/`-h` left free, choice defaults among the choices.
 * @throws TypeError for a malformed spec (a programming error, not a user's)
 */
export function defineCli<const S extends CliSpec>(spec: S): S {
  const shorts = new Set(["h"]);
  for (const [name, f] of Object.entries(spec.flags)) {
    if (name === "help") throw new TypeError(`defineCli: "help" is built in`);
    if (f.short !== undefined) {
      if (f.short.length !== 1 || shorts.has(f.short)) {
        throw new TypeError(`defineCli: --${name}: short alias "${f.short}" is taken or too long`);
      }
      shorts.add(f.short);
    }
    if (f.type === "choice" && f.default !== undefined && !f.choices.includes(f.default)) {
      throw new TypeError(`defineCli: --${name}: default "${f.default}" is not a choice`);
    }
  }
  return spec;
}

/**
 * Parses a command line against a spec, without printing or exiting.
 * @param spec the program's flags
 * @param args the arguments, e.g. `Deno.args`
 * @returns `{ help: true }` when `--help`/`-h` is given, else the typed values
 * @throws UsageError naming the first problem: an unknown flag, a positional argument, a missing
 *   value or required flag, a value that is not a (safe, finite) number or out of bounds, ...
 */
export function parseFlags<S extends CliSpec>(
  spec: S,
  args: readonly string[],
): { help: true } | { help: false; values: CliValues<S> } {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, f] of Object.entries(spec.flags)) {
    options[name] = { type: f.type === "boolean" ? "boolean" : "string" };
    if (f.short !== undefined) options[name].short = f.short;
  }
  // Not strict: every token comes back, and the errors below say more than node's.
  const { tokens } = parseArgs({
    args: [...args],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (tokens.some((t) => t.kind === "option" && t.name === "help")) return { help: true };

  const given = new Map<string, string | boolean>();
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === "positional") positionals.push(t.value);
    if (t.kind !== "option") continue;
    const flag = Object.hasOwn(spec.flags, t.name) ? spec.flags[t.name] : undefined;
    if (flag === undefined) {
      throw new UsageError(`unknown flag ${t.rawName}${suggest(spec, t.name)}`);
    }
    if (flag.type === "boolean") {
      if (t.value !== undefined) throw new UsageError(`--${t.name} takes no value`);
      given.set(t.name, true);
      continue;
    }
    // "--data --steps 5": the value was forgotten (negative numbers are values)
    const value = t.value, next = t.inlineValue ? undefined : value;
    if (value === undefined || (next !== undefined && /^-(-|(?!inf|nan)[a-z])/i.test(next))) {
      const flagName = next?.replace(/^-+/, "").split("=")[0] ?? "";
      const known = next === undefined || Object.hasOwn(spec.flags, flagName) ||
        /^(help|h)$/.test(flagName);
      throw new UsageError(
        `--${t.name} needs a value (${placeholder(flag)})` +
          (known ? "" : `; for one starting with "-", write --${t.name}=${next}`),
      );
    }
    given.set(t.name, value);
  }

  const declared = spec.positionals ?? [];
  if (positionals.length > declared.length) {
    const extra = positionals[declared.length];
    throw new UsageError(
      declared.length === 0
        ? `unexpected argument "${extra}" (${spec.name} takes no positional arguments, only flags)`
        : `unexpected argument "${extra}" (${spec.name} takes ${
          declared.map((p) => `<${p.name}>`).join(" ")
        })`,
    );
  }
  const values: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(spec.flags)) {
    const text = given.get(name);
    if (f.type === "boolean") values[name] = text === true;
    else if (typeof text === "string") values[name] = convert(name, f, text);
    else if (f.type === "device") values[name] = defaultDevice();
    else if ("required" in f && f.required) throw new UsageError(`--${name} is required`);
    else values[name] = f.default;
  }

  for (const [i, p] of declared.entries()) {
    const v = positionals[i];
    if (v === undefined) throw new UsageError(`missing <${p.name}>`);
    if (p.choices && !p.choices.includes(v)) {
      throw new UsageError(`<${p.name}> must be one of ${p.choices.join(", ")}, got "${v}"`);
    }
    values[p.name] = v;
  }
  return { help: false, values: values as CliValues<S> };
}

function convert(name: string, f: Exclude<Flag, BooleanFlag>, text: string): unknown {
  switch (f.type) {
    case "int": {
      const v = DECIMAL.test(text) ? Number(text) : NaN;
      const max = Math.min(f.max ?? SAFE, SAFE);
      if (!Number.isInteger(v) || v > max || (f.min !== undefined && v < f.min)) {
        const b = bounds(f.min, undefined, v > max ? max : f.max, undefined);
        throw new UsageError(`--${name} must be an integer${b}, got "${text}"`);
      }
      return v;
    }
    case "number": {
      const v = DECIMAL.test(text) ? Number(text) : NaN;
      const ok = Number.isFinite(v) && !(f.min !== undefined && v < f.min) &&
        !(f.max !== undefined && v > f.max) && !(f.above !== undefined && v <= f.above) &&
        !(f.below !== undefined && v >= f.below);
      if (!ok) {
        const b = bounds(f.min, f.above, f.max, f.below);
        throw new UsageError(`--${name} must be a finite number${b}, got "${text}"`);
      }
      return v;
    }
    case "choice":
      if (!f.choices.includes(text)) {
        throw new UsageError(`--${name} must be one of ${f.choices.join(", ")}, got "${text}"`);
      }
      return text;
    case "device":
      if (!DEVICE.test(text)) {
        throw new UsageError(`--${name} must be cpu, cuda or cuda:N, got "${text}"`);
      }
      return text;
    default:
      return text;
  }
}

function bounds(min?: number, above?: number, max?: number, below?: number): string {
  const lo = above !== undefined ? `> ${above}` : min !== undefined ? `>= ${min}` : "";
  const hi = below !== undefined ? `< ${below}` : max !== undefined ? `<= ${max}` : "";
  return [lo, hi].filter((s) => s !== "").map((s) => ` ${s}`).join(" and");
}

/** " (did you mean --batch?)" for a near miss (edit distance <= 2, or a prefix), else "". */
function suggest(spec: CliSpec, name: string): string {
  const near = Object.keys(spec.flags).find((f) =>
    (name.length > 1 && f.startsWith(name)) || distance(f, name) <= Math.min(2, name.length >> 1)
  );
  return near ? ` (did you mean --${near}?)` : "";
}

function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

function placeholder(f: Flag): string {
  if (f.value) return f.value;
  const byType = { int: "N", number: "X", string: "TEXT", file: "FILE", choice: "NAME" } as const;
  return f.type === "boolean" ? "" : f.type === "device" ? "NAME" : byType[f.type];
}

function formatDefault(v: unknown): string {
  if (typeof v === "number") {
    return !Number.isInteger(v) && Math.abs(v) < 0.01 ? v.toExponential() : String(v);
  }
  return typeof v === "string" && /\s/.test(v) ? JSON.stringify(v) : String(v);
}

/** The help text of a spec: summary, usage line, arguments, flags with defaults, epilog. */
export function usage(spec: CliSpec): string {
  const positionals = spec.positionals ?? [];
  const line = spec.usage ??
    [spec.name, ...positionals.map((p) => `<${p.name}>`), "[options]"].join(" ");
  const hasShort = Object.values(spec.flags).some((f) => f.short !== undefined);
  const rows: [string, string][] = positionals.map((p) => [
    `<${p.name}>`,
    p.description + (p.choices ? `: ${p.choices.join(" | ")}` : ""),
  ]);
  for (const [name, f] of Object.entries(spec.flags)) {
    const alias = f.short ? `-${f.short}, ` : hasShort ? "    " : "";
    const value = placeholder(f);
    let text = f.description;
    if (f.type === "choice") text += `: ${f.choices.join(" | ")}`;
    const dflt = f.defaultText ??
      (f.type === "device"
        ? "cuda when available"
        : "default" in f && f.default !== undefined
        ? formatDefault(f.default)
        : undefined);
    if (dflt !== undefined) text += ` (default: ${dflt})`;
    rows.push([`${alias}--${name}${value ? ` ${value}` : ""}`, text]);
  }
  rows.push(["-h, --help", "show this help"]);
  const width = Math.min(32, Math.max(...rows.map(([l]) => l.length)) + 2);
  const pad = " ".repeat(width + 2);
  const body = rows.flatMap(([left, text]) => {
    const lines = wrap(text, 100 - pad.length);
    // a flag too long for the column gets its description on the lines below
    if (left.length + 2 > width) return [`  ${left}`, ...lines.map((l) => pad + l)];
    return [`  ${left.padEnd(width)}${lines[0]}`, ...lines.slice(1).map((l) => pad + l)];
  }).join("\n");
  return `${spec.summary}\n\nUsage: ${line}\n\n${body}` + (spec.epilog ? `\n\n${spec.epilog}` : "");
}

/** Splits at explicit newlines and wraps the rest at `width` columns. */
function wrap(text: string, width: number): string[] {
  return text.split("\n").flatMap((para) => {
    const out: string[] = [];
    let line = "";
    for (const word of para.split(" ")) {
      if (line && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    return [...out, line];
  });
}

/**
 * Checks that `path` is an existing file.
 * @param flag the flag that named it, e.g. "--data"
 * @param path the path
 * @param hint added to the error, e.g. "train one with `deno task demo`"
 * @throws CliError "--data file not found: my.txt" (or "... is a directory, not a file")
 */
export async function requireFile(flag: string, path: string, hint?: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new CliError(`${flag} file not found: ${path}${hint ? ` (${hint})` : ""}`);
  }
  if (info.isDirectory) throw new CliError(`${flag} is a directory, not a file: ${path}`);
}

/**
 * Checks that a device can be used here (creating its backend).
 * @throws CliError "--device cuda: the CUDA backend is not available: ..." saying why not
 */
export function requireDevice(flag: string, device: Device): void {
  try {
    getBackend(device);
  } catch (e) {
    const why = (e as Error).message.replace(/^device "[^"]*": /, "");
    throw new CliError(`${flag} ${device}: ${why}`, { cause: e });
  }
}

async function checkInputs(spec: CliSpec, values: Record<string, unknown>): Promise<void> {
  for (const [name, f] of Object.entries(spec.flags)) {
    const v = values[name];
    if (f.type === "file" && typeof v === "string") await requireFile(`--${name}`, v, f.hint);
    if (f.type === "device" && typeof v === "string") requireDevice(`--${name}`, v);
  }
}

/** Where {@linkcode runCli} writes: the help to `out`, errors to `err` (default: console). */
export interface CliIO {
  out?: (text: string) => void;
  err?: (text: string) => void;
}

/**
 * Parses `args`, checks files and device, runs `main` with the values, and reports errors;
 * never exits (see {@linkcode runMain} for that).
 * @returns the exit code: 0 done or help, 1 an error from `main` or the checks (printed as one
 *   line), 2 a usage error (printed after the usage; `main` may throw UsageError too)
 */
export async function runCli<S extends CliSpec>(
  spec: S,
  args: readonly string[],
  main: (values: CliValues<S>) => void | Promise<void>,
  io: CliIO = {},
): Promise<number> {
  const out = io.out ?? console.log, err = io.err ?? console.error;
  try {
    const parsed = parseFlags(spec, args);
    if (parsed.help) {
      out(usage(spec));
      return 0;
    }
    await checkInputs(spec, parsed.values);
    await main(parsed.values);
    return 0;
  } catch (e) {
    if (debug()) err(details(e));
    if (e instanceof UsageError) {
      err(`${usage(spec)}\n\n${spec.name}: error: ${e.message}`);
      return 2;
    }
    const line = oneLine(e); // the library's errors may already name the program
    const own = `${spec.name}: `;
    err(`${own}error: ${line.startsWith(own) ? line.slice(own.length) : line}`);
    return 1;
  }
}

/**
 * {@linkcode runCli} on `Deno.args`, exiting with its code unless it is 0.
 * @param spec the program's flags
 * @param main the program, given the parsed values
 */
export async function runMain<S extends CliSpec>(
  spec: S,
  main: (values: CliValues<S>) => void | Promise<void>,
): Promise<void> {
  const code = await runCli(spec, Deno.args, main);
  if (code !== 0) Deno.exit(code);
}

/** An error's message on one line: the first line, without a trailing "Tried:"-style lead-in. */
export function oneLine(e: unknown): string {
  const message = e instanceof Error ? e.message || e.name : String(e);
  const [first, ...rest] = message.trim().split("\n");
  if (rest.length === 0) return first;
  return `${first.replace(/[.:]?\s*\S+:$/, "")} (DENOGRAD_DEBUG=1 shows the full message)`;
}

function details(e: unknown): string {
  let text = e instanceof Error ? e.stack ?? e.message : String(e);
  for (let c = (e as Error)?.cause; c !== undefined; c = (c as Error)?.cause) {
    text += `\ncaused by: ${c instanceof Error ? c.stack ?? c.message : String(c)}`;
  }
  return text;
}

/** DENOGRAD_DEBUG=1, read only when --allow-env grants it (never a permission prompt). */
function debug(): boolean {
  const env = { name: "env", variable: "DENOGRAD_DEBUG" } as const;
  return Deno.permissions.querySync(env).state === "granted" &&
    Deno.env.get("DENOGRAD_DEBUG") === "1";
}
