/**
 * Downloading weights: a resumable, hash-checked file download, and GPT-2's files from Hugging
 * Face (`openai-community/<name>`).
 *
 * {@linkcode downloadFile} streams to `<dest>.part`, hashing as it goes (SHA-256 through
 * `node:crypto`, which hashes incrementally, unlike `crypto.subtle`). A dropped connection keeps
 * the partial file; the next attempt (automatic retries, or a later run) asks for the rest with
 * `Range: bytes=N-`. The file is renamed to `dest` only when complete and, if a hash was given,
 * only when the hash matches.
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { join } from "node:path";

/** A download that failed; the message says what happened and what was kept. */
export class DownloadError extends Error {
  /** The URL that was being downloaded. */
  readonly url: string;
  /** The HTTP status, when the server answered with an error status. */
  readonly status?: number;

  /** Builds `download <url>: <problem>`. */
  constructor(url: string, problem: string, status?: number) {
    super(`download ${url}: ${problem}`);
    this.name = "DownloadError";
    this.url = url;
    this.status = status;
  }
}

/** Options of {@linkcode downloadFile}. */
export interface DownloadOptions {
  /** Expected SHA-256 (hex). The file is renamed into place only if it matches. */
  sha256?: string;
  /** Called as bytes arrive: bytes on disk so far and the full size when the server says it. */
  onProgress?: (received: number, total: number | undefined) => void;
  /** The fetch function (default: the global fetch). */
  fetch?: typeof fetch;
  /** Attempts after a dropped connection, a short body or a 5xx/429 answer; default 3. */
  retries?: number;
  /** Wait before the first retry, doubled after each; default 1000 ms. */
  retryDelayMs?: number;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  /** Cancels the download; the partial file is kept for a later resume. */
  signal?: AbortSignal;
}

/** What {@linkcode downloadFile} did. */
export interface DownloadResult {
  /** The final path. */
  path: string;
  /** The file's size in bytes. */
  bytes: number;
  /** The file's SHA-256 (hex), computed over every byte. */
  sha256: string;
  /** Whether the hash was checked against an expected one. */
  verified: boolean;
  /** Bytes that were already on disk from an earlier, interrupted download. */
  resumedFrom: number;
  /** True when `dest` already existed with the expected hash and nothing was downloaded. */
  skipped: boolean;
}

const CHUNK = 1 << 20;

async function hashFile(path: string, hash: Hash): Promise<number> {
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(CHUNK);
  let total = 0;
  for (let n; (n = await file.read(buf)) !== null;) {
    hash.update(buf.subarray(0, n));
    total += n;
  }
  return total;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** `bytes <start>-<end>/<total>` or `bytes * /<total>` -> its numbers (NaN where absent). */
function parseContentRange(value: string | null): { start: number; total: number } {
  const m = /^bytes (?:(\d+)-\d+|\*)\/(\d+|\*)$/.exec(value?.trim() ?? "");
  return { start: m?.[1] ? Number(m[1]) : NaN, total: m && m[2] !== "*" ? Number(m[2]) : NaN };
}

class Retryable extends Error {}

/**
 * Downloads `url` to `dest`, resumably, verifying a SHA-256 when given.
 *
 * - Streams to `<dest>.part`; a dropped connection or short body keeps it, and the download goes
 *   on from where it stopped (`Range: bytes=N-`) up to `retries` times, or on the next call.
 * - A `206` answer is appended; a `200` answer to a range request (a server without range
 *   support) restarts from zero.
 * - The complete file is hashed (resumed bytes included) and renamed to `dest` only if the hash
 *   matches; on a mismatch the partial file is deleted and the error shows both hashes.
 * - If `dest` already exists and `sha256` is given and matches, nothing is downloaded.
 *
 * @example
 * ```ts ignore
 * import { downloadFile } from "@denograd/denograd";
 * const r = await downloadFile("https://example.com/weights.safetensors", "weights.safetensors", {
 *   sha256: "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
 *   onProgress: (got, total) => console.log(got, total),
 * });
 * console.log(r.sha256, r.verified);
 * ```
 * @param url what to download (redirects are followed)
 * @param dest the final path; its directory must exist
 * @param options expected hash, progress callback, retries, fetch
 * @returns the final size, hash and whether it was verified
 */
export async function downloadFile(
  url: string,
  dest: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const { onProgress, retries = 3, retryDelayMs = 1000, signal } = options;
  const doFetch = options.fetch ?? fetch;
  const expected = options.sha256?.trim().toLowerCase();
  if (expected !== undefined && !/^[0-9a-f]{64}$/.test(expected)) {
    throw new TypeError(`downloadFile: sha256 must be 64 hex digits, got "${options.sha256}"`);
  }
  if (!Number.isInteger(retries) || retries < 0) {
    throw new RangeError(`downloadFile: retries must be a non-negative integer, got ${retries}`);
  }

  if (expected && await exists(dest)) {
    const hash = createHash("sha256");
    const bytes = await hashFile(dest, hash);
    const sha256 = hash.digest("hex");
    if (sha256 === expected) {
      return { path: dest, bytes, sha256, verified: true, resumedFrom: 0, skipped: true };
    }
  }

  const part = `${dest}.part`;
  let hash = createHash("sha256");
  let received = (await exists(part)) ? await hashFile(part, hash) : 0;
  const resumedFrom = received;
  let total: number | undefined;
  using file = await Deno.open(part, { write: true, create: true });
  const restart = async () => {
    await file.truncate(0);
    hash = createHash("sha256");
    received = 0;
  };

  try {
    for (let attempt = 0;; attempt++) {
      try {
        const headers: Record<string, string> = {
          "accept-encoding": "identity",
          ...options.headers,
        };
        if (received > 0) headers.range = `bytes=${received}-`;
        let res: Response;
        try {
          res = await doFetch(url, { headers, signal });
        } catch (e) {
          // fetch rejects with a TypeError on network failures; anything else (a permission
          // error, an abort) is not worth retrying.
          if (!(e instanceof TypeError) || signal?.aborted) throw e;
          throw new Retryable(`request failed: ${e.message}`);
        }
        if (res.status === 416 && received > 0) {
          // Nothing left to send: either the part file is already complete, or it is longer than
          // the file on the server now.
          await res.body?.cancel();
          const { total: size } = parseContentRange(res.headers.get("content-range"));
          if (size === received) {
            total = size;
            break;
          }
          await restart();
          throw new Retryable(`the server refused the range (file size ${size}); restarting`);
        }
        if (!res.ok) {
          await res.body?.cancel();
          const problem = `HTTP ${res.status} ${res.statusText}`.trim();
          if (res.status >= 500 || res.status === 429) throw new Retryable(problem);
          throw new DownloadError(url, problem, res.status);
        }
        const length = Number(res.headers.get("content-length") ?? NaN);
        if (res.status === 206) {
          const range = parseContentRange(res.headers.get("content-range"));
          if (range.start !== received) {
            await res.body?.cancel();
            await restart();
            throw new Retryable(
              `asked for bytes from ${received}, the server sent from ${range.start}; restarting`,
            );
          }
          total = Number.isFinite(range.total) ? range.total : undefined;
        } else {
          if (received > 0) await restart(); // 200: the server ignored the range; start over
          total = Number.isFinite(length) ? length : undefined;
        }
        await file.seek(received, Deno.SeekMode.Start);
        onProgress?.(received, total);
        if (res.body) {
          try {
            for await (const chunk of res.body) {
              await writeAll(file, chunk);
              hash.update(chunk);
              received += chunk.length;
              onProgress?.(received, total);
            }
          } catch (e) {
            if (signal?.aborted) throw e;
            throw new Retryable(`connection lost: ${(e as Error).message}`);
          }
        }
        if (total !== undefined && received < total) {
          throw new Retryable(`truncated: the server sent ${received} of ${total} bytes`);
        }
        if (total !== undefined && received > total) {
          await restart();
          throw new DownloadError(url, `got ${received} bytes, more than the ${total} announced`);
        }
        break;
      } catch (e) {
        if (!(e instanceof Retryable)) throw e;
        if (attempt >= retries) {
          const kept = received > 0
            ? `; the ${received} bytes received are kept in ${part}, run again to resume`
            : "";
          throw new DownloadError(url, `${e.message} (after ${attempt + 1} attempt(s))${kept}`);
        }
        await new Promise((r) => setTimeout(r, retryDelayMs * 2 ** attempt));
      }
    }
  } catch (e) {
    if (received === 0) {
      // Nothing worth resuming: leave no empty .part file behind.
      file.close();
      await Deno.remove(part).catch(() => {});
    }
    throw e;
  }

  const sha256 = hash.digest("hex");
  if (expected && sha256 !== expected) {
    file.close();
    await Deno.remove(part).catch(() => {});
    throw new DownloadError(
      url,
      `SHA-256 mismatch: expected ${expected}, got ${sha256} (${received} bytes); ` +
        `the download was deleted`,
    );
  }
  await file.syncData();
  file.close();
  await Deno.rename(part, dest);
  return { path: dest, bytes: received, sha256, verified: !!expected, resumedFrom, skipped: false };
}

// ---------------------------------------------------------------------------------------------
// GPT-2 from Hugging Face

/** The four GPT-2 checkpoints OpenAI released, by their Hugging Face names. */
export type Gpt2Name = "gpt2" | "gpt2-medium" | "gpt2-large" | "gpt2-xl";

/** One file of a pinned Hugging Face repository. */
export interface PinnedFile {
  /** File name in the repository. */
  name: string;
  /** Expected SHA-256, where it is known. */
  sha256?: string;
  /** Expected size in bytes, where it is known. */
  bytes?: number;
}

/** Where one GPT-2 checkpoint lives on Hugging Face. */
export interface Gpt2Source {
  /** Repository id, e.g. `openai-community/gpt2`. */
  repo: string;
  /** A commit hash where the hashes are pinned, else `main`. */
  revision: string;
  /** The files to fetch: model.safetensors and config.json. */
  files: PinnedFile[];
}

/**
 * The GPT-2 checkpoints and what is known of their files. `gpt2`'s hashes are pinned at a fixed
 * commit (the values are recorded independently by several public projects); the larger models'
 * hashes could not be confirmed, so they are downloaded from `main`, their computed hash printed,
 * and `--sha256` checks them.
 */
export const GPT2_SOURCES: Readonly<Record<Gpt2Name, Gpt2Source>> = {
  "gpt2": {
    repo: "openai-community/gpt2",
    revision: "607a30d783dfa663caf39e06633721c8d4cfcd7e",
    files: [
      {
        name: "model.safetensors",
        sha256: "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
        bytes: 548_105_171,
      },
      {
        name: "config.json",
        sha256: "0daed7749b4f02b8f76240d5444551d7b08712dab4d0adb8239c56ba823bb7b4",
        bytes: 665,
      },
    ],
  },
  "gpt2-medium": {
    repo: "openai-community/gpt2-medium",
    revision: "main",
    files: [{ name: "model.safetensors" }, { name: "config.json" }],
  },
  "gpt2-large": {
    repo: "openai-community/gpt2-large",
    revision: "main",
    files: [{ name: "model.safetensors" }, { name: "config.json" }],
  },
  "gpt2-xl": {
    repo: "openai-community/gpt2-xl",
    revision: "main",
    files: [{ name: "model.safetensors" }, { name: "config.json" }],
  },
};

/** Whether `name` is one of the GPT-2 checkpoints. */
export function isGpt2Name(name: string): name is Gpt2Name {
  return Object.hasOwn(GPT2_SOURCES, name);
}

/** Options of {@linkcode downloadGpt2}. */
export interface DownloadGpt2Options {
  /** Parent directory; files go to `<out>/<name>/`. Default `models`. */
  out?: string;
  /** Hugging Face endpoint (a mirror); default `https://huggingface.co`. */
  endpoint?: string;
  /** Expected SHA-256 of model.safetensors, overriding (or supplying) the pinned one. */
  sha256?: string;
  /** Progress of each file: its name, bytes so far, and its size when known. */
  onProgress?: (file: string, received: number, total: number | undefined) => void;
  /** Passed on to {@linkcode downloadFile}. */
  fetch?: typeof fetch;
  /** Passed on to {@linkcode downloadFile}. */
  retries?: number;
  /** Passed on to {@linkcode downloadFile}. */
  retryDelayMs?: number;
  /** Cancels the download; partial files are kept for a later resume. */
  signal?: AbortSignal;
}

/** One file fetched by {@linkcode downloadGpt2}. */
export interface Gpt2DownloadedFile extends DownloadResult {
  /** Where it came from. */
  url: string;
}

/**
 * Downloads a GPT-2 checkpoint's `model.safetensors` and `config.json` into `<out>/<name>/`
 * (resumable, hash-checked where a hash is known). Load it with `loadGpt2Safetensors`.
 *
 * A file already present is checked against its known hash (and downloaded again if it differs);
 * without a known hash it is kept as it is, and its computed hash is reported.
 *
 * @example
 * ```ts ignore
 * import { downloadGpt2 } from "@denograd/denograd";
 * const files = await downloadGpt2("gpt2", { out: "models" }); // models/gpt2/model.safetensors
 * console.log(files.map((f) => `${f.path} ${f.sha256} verified=${f.verified}`));
 * ```
 * @param name which checkpoint
 * @param options output directory, endpoint, hash, progress
 * @returns what was downloaded (or found already present), model.safetensors first
 */
export async function downloadGpt2(
  name: Gpt2Name,
  options: DownloadGpt2Options = {},
): Promise<Gpt2DownloadedFile[]> {
  if (!isGpt2Name(name)) {
    throw new RangeError(
      `downloadGpt2: unknown model "${name}"; expected one of ${Object.keys(GPT2_SOURCES)}`,
    );
  }
  const source = GPT2_SOURCES[name];
  const endpoint = (options.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
  const dir = join(options.out ?? "models", name);
  await Deno.mkdir(dir, { recursive: true });
  const results: Gpt2DownloadedFile[] = [];
  for (const f of source.files) {
    const url = `${endpoint}/${source.repo}/resolve/${source.revision}/${f.name}`;
    const dest = join(dir, f.name);
    const sha256 = f.name === "model.safetensors" ? options.sha256 ?? f.sha256 : f.sha256;
    if (!sha256 && await exists(dest)) {
      // Nothing to check it against: keep it, and report its hash.
      const hash = createHash("sha256");
      const bytes = await hashFile(dest, hash);
      results.push({
        url,
        path: dest,
        bytes,
        sha256: hash.digest("hex"),
        verified: false,
        resumedFrom: 0,
        skipped: true,
      });
      continue;
    }
    const r = await downloadFile(url, dest, {
      sha256,
      fetch: options.fetch,
      retries: options.retries,
      retryDelayMs: options.retryDelayMs,
      signal: options.signal,
      onProgress: options.onProgress && ((got, total) => options.onProgress!(f.name, got, total)),
    });
    results.push({ url, ...r });
  }
  return results;
}
