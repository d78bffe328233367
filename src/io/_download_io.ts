/**
 * Internals of the downloader: file helpers, timeouts, error text and the checks a downloaded
 * file must pass before it is renamed into place.
 * @module
 */

import type { Hash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { openSafetensors, SafetensorsError } from "./safetensors.ts";
import { readFull } from "./read_full.ts";

const CHUNK = 1 << 20;

/** Feeds every byte of `path` to `hash`; returns the file's size. */
export async function hashFile(path: string, hash: Hash): Promise<number> {
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(CHUNK);
  let total = 0;
  for (let n; (n = await file.read(buf)) !== null;) {
    hash.update(buf.subarray(0, n));
    total += n;
  }
  return total;
}

/** Whether `path` is an existing file. */
export async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** `bytes <start>-<end>/<total>` or `bytes * /<total>` -> its numbers (NaN where absent). */
export function parseContentRange(value: string | null): { start: number; total: number } {
  const m = /^bytes (?:(\d+)-\d+|\*)\/(\d+|\*)$/.exec(value?.trim() ?? "");
  return { start: m?.[1] ? Number(m[1]) : NaN, total: m && m[2] !== "*" ? Number(m[2]) : NaN };
}

/** `30000` -> `"30 s"`, `200` -> `"0.2 s"`. */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/**
 * One line naming what went wrong, down the `cause` chain: `fetch failed` alone hides the reason
 * (connection refused, DNS, TLS), which Deno and Node put in `cause`. Repeated parts, the generic
 * wrapper and the URL Deno repeats inside its message are left out.
 */
export function errorText(e: unknown): string {
  const parts: string[] = [];
  let c: unknown = e;
  for (let depth = 0; c !== undefined && c !== null && depth < 8; depth++) {
    let text = c instanceof Error ? c.message : String(c);
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && !text.includes(code)) text = `${text} (${code})`;
    text = text.replace(/^error sending request for url \([^)]*\):\s*/, "").trim();
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
    c = c instanceof Error ? c.cause : undefined;
  }
  if (parts.length > 1 && /^fetch failed$/i.test(parts[0])) parts.shift();
  return parts.join(": ").replace(/\s+/g, " ") || "unknown error";
}

/**
 * `promise`, or the error `onTimeout()` returns if it does not settle within `ms` (Infinity: no
 * limit). After that, `cancel()` stops the work still pending (an abort, which makes `promise`
 * reject too, but only after the timeout has won).
 */
export function within<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  cancel: () => void,
): Promise<T> {
  if (!Number.isFinite(ms)) return promise;
  promise.catch(() => {}); // if the timer wins, a later rejection is not unhandled
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(onTimeout());
      cancel();
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((done, fail) => {
    if (signal?.aborted) return fail(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      fail(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      done();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Checks a timeout option: a positive number of milliseconds, or Infinity for none. */
export function checkTimeout(name: string, ms: number): void {
  if (typeof ms !== "number" || !(ms > 0)) {
    throw new RangeError(`downloadFile: ${name} must be a positive number of ms, got ${ms}`);
  }
}

/**
 * Creates `dir` and its missing parents; returns the directories it created, outermost first,
 * so that a failed download can remove them again ({@linkcode removeEmptyDirs}).
 */
export async function makeDirs(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let d = resolve(dir); d !== dirname(d); d = dirname(d)) {
    try {
      await Deno.stat(d);
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      missing.unshift(d);
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  return missing;
}

/** Removes those of `dirs` (outermost first) that are empty, innermost first. */
export async function removeEmptyDirs(dirs: readonly string[]): Promise<void> {
  for (const d of [...dirs].reverse()) {
    // A non-recursive remove fails on a directory that is not empty, which is then kept.
    await Deno.remove(d).catch(() => {});
  }
}

/**
 * A hint for a rejected file: the content type the server declared and, when the file starts
 * with printable text (an HTML error page, a JSON error), its first characters.
 */
export async function describeContent(path: string, contentType: string | null): Promise<string> {
  const head = new Uint8Array(60);
  let n = 0;
  try {
    using file = await Deno.open(path, { read: true });
    n = await readFull(file, head);
  } catch {
    // The file is gone or unreadable: the content type alone must do.
  }
  const bytes = head.subarray(0, n);
  const text = n > 0 && bytes.every((b) => (b >= 0x20 && b < 0x7f) || (b >= 0x09 && b <= 0x0d))
    ? new TextDecoder().decode(bytes).replace(/\s+/g, " ").trim()
    : "";
  const parts = [
    contentType ? `the server sent ${contentType}` : "",
    text ? `starting with ${JSON.stringify(text + (n === head.length ? "..." : ""))}` : "",
  ].filter(Boolean);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/** Throws unless `path` is a safetensors file whose header is valid for its size. */
export async function checkSafetensors(path: string): Promise<void> {
  try {
    (await openSafetensors(path)).close();
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    throw new Error(`not a valid safetensors file: ${e.problem}`);
  }
}

/** Throws unless `path` holds one JSON object (as `config.json` does). */
export async function checkJsonObject(path: string): Promise<void> {
  const { size } = await Deno.stat(path);
  if (size > 16 << 20) throw new Error(`not a JSON config: ${size} bytes is too large for one`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path)));
  } catch (e) {
    throw new Error(`not valid JSON: ${errorText(e)}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`not a JSON object: got ${Array.isArray(json) ? "an array" : typeof json}`);
  }
}
