/**
 * A resumable, hash-checked file download that cannot hang.
 *
 * {@linkcode downloadFile} streams to `<dest>.part`, hashing as it goes (SHA-256 through
 * `node:crypto`, which hashes incrementally, unlike `crypto.subtle`). A dropped connection, or a
 * server that stops answering (`timeoutMs`, `idleTimeoutMs`), keeps the partial file; the next
 * attempt (automatic retries, or a later run) asks for the rest with `Range: bytes=N-`. The file
 * is renamed to `dest` only when complete, of the announced length, with the expected hash if one
 * was given, and accepted by the `validate` check if one was given.
 * @module
 */

import { createHash } from "node:crypto";
import {
  checkTimeout,
  describeContent,
  errorText,
  exists,
  hashFile,
  parseContentRange,
  seconds,
  sleep,
  within,
} from "./_download_io.ts";
import { writeAll } from "./read_full.ts";

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
  /**
   * Checks the complete download before it is renamed into place, and a file already at `dest`
   * before it is kept; throw to reject it (the message goes into the {@linkcode DownloadError}).
   * With a `validate` (or a `sha256`) a file at `dest` that passes is kept and nothing is
   * downloaded; one that fails is downloaded again and replaced once the new one passes.
   */
  validate?: (path: string) => void | Promise<void>;
  /** Called as bytes arrive: bytes on disk so far and the full size when the server says it. */
  onProgress?: (received: number, total: number | undefined) => void;
  /** The fetch function (default: the global fetch). */
  fetch?: typeof fetch;
  /** Attempts after a dropped connection, a timeout, a short body or a 5xx/429; default 3. */
  retries?: number;
  /** Wait before the first retry, doubled after each; default 1000 ms. */
  retryDelayMs?: number;
  /**
   * Longest wait for the server to accept the connection and send the response headers, per
   * attempt; default 30 000 ms. `Infinity` waits forever.
   */
  timeoutMs?: number;
  /**
   * Longest silence while the body arrives (not a limit on the whole download, which may take
   * an hour); default 30 000 ms. `Infinity` waits forever.
   */
  idleTimeoutMs?: number;
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
  /** True when `dest` already existed, passed the checks, and nothing was downloaded. */
  skipped: boolean;
  /** Why a file that was already at `dest` was downloaded again, when it was. */
  replaced?: string;
}

/** A failure worth another attempt (resuming where it stopped). */
class Retryable extends Error {}

/** The file at `dest` if it passes `validate` and the expected hash; else why not. */
async function checkPresent(
  dest: string,
  expected: string | undefined,
  validate: DownloadOptions["validate"],
): Promise<{ problem: string } | { bytes: number; sha256: string }> {
  try {
    await validate?.(dest);
  } catch (e) {
    return { problem: errorText(e) };
  }
  const hash = createHash("sha256");
  const bytes = await hashFile(dest, hash);
  const sha256 = hash.digest("hex");
  if (expected && sha256 !== expected) {
    return { problem: `its SHA-256 ${sha256} is not the expected ${expected}` };
  }
  return { bytes, sha256 };
}

/**
 * Downloads `url` to `dest`, resumably, verifying a SHA-256 and a format check when given.
 *
 * - Streams to `<dest>.part`; a dropped connection, a short body or a server that goes silent
 *   (`timeoutMs` for the connection and headers, `idleTimeoutMs` between pieces of the body,
 *   30 s each by default) keeps it, and the download goes on from where it stopped
 *   (`Range: bytes=N-`) up to `retries` times, or on the next call. The error names the cause
 *   (connection refused, the timeout, bytes received).
 * - A `206` answer is appended; a `200` answer to a range request (a server without range
 *   support) restarts from zero. The body must be as long as its `Content-Length`.
 * - The complete file is hashed (resumed bytes included) and renamed to `dest` only if the hash
 *   matches and `validate` accepts it; otherwise the partial file is deleted and the error says
 *   why (both hashes, or the check's message with what the server sent).
 * - If `dest` already exists and passes `sha256` and `validate` (at least one given), nothing
 *   is downloaded; if it fails them it is downloaded again (see `replaced`).
 * - Nothing is left behind that cannot be resumed: no empty `.part` file.
 *
 * @example
 * ```ts ignore
 * import { downloadFile, openSafetensors } from "@denograd/denograd";
 * const r = await downloadFile("https://example.com/weights.safetensors", "weights.safetensors", {
 *   sha256: "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
 *   validate: async (path) => (await openSafetensors(path)).close(),
 *   idleTimeoutMs: 60_000,
 *   onProgress: (got, total) => console.log(got, total),
 * });
 * console.log(r.sha256, r.verified);
 * ```
 * @param url what to download (redirects are followed)
 * @param dest the final path; its directory must exist
 * @param options expected hash, format check, timeouts, retries, progress callback, fetch
 * @returns the final size, hash and whether it was verified
 */
export async function downloadFile(
  url: string,
  dest: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const { onProgress, retries = 3, retryDelayMs = 1000, signal, validate } = options;
  const { timeoutMs = 30_000, idleTimeoutMs = 30_000 } = options;
  const doFetch = options.fetch ?? fetch;
  const expected = options.sha256?.trim().toLowerCase();
  if (expected !== undefined && !/^[0-9a-f]{64}$/.test(expected)) {
    throw new TypeError(`downloadFile: sha256 must be 64 hex digits, got "${options.sha256}"`);
  }
  if (!Number.isInteger(retries) || retries < 0) {
    throw new RangeError(`downloadFile: retries must be a non-negative integer, got ${retries}`);
  }
  checkTimeout("timeoutMs", timeoutMs);
  checkTimeout("idleTimeoutMs", idleTimeoutMs);

  let replaced: string | undefined;
  if ((expected || validate) && await exists(dest)) {
    const present = await checkPresent(dest, expected, validate);
    if (!("problem" in present)) {
      return { ...present, path: dest, verified: !!expected, resumedFrom: 0, skipped: true };
    }
    replaced = present.problem;
  }

  const part = `${dest}.part`;
  let hash = createHash("sha256");
  let received = (await exists(part)) ? await hashFile(part, hash) : 0;
  const resumedFrom = received;
  let total: number | undefined;
  let contentType: string | null = null;
  using file = await Deno.open(part, { write: true, create: true });
  const restart = async () => {
    await file.truncate(0);
    hash = createHash("sha256");
    received = 0;
  };
  const discard = async (problem: string) => {
    file.close();
    await Deno.remove(part).catch(() => {});
    return new DownloadError(url, `${problem}; the download was deleted`);
  };

  try {
    for (let attempt = 0;; attempt++) {
      // Aborted on a timeout, so that the request or the body read stops too.
      const attemptControl = new AbortController();
      try {
        const headers: Record<string, string> = {
          "accept-encoding": "identity",
          ...options.headers,
        };
        if (received > 0) headers.range = `bytes=${received}-`;
        const requestSignal = signal
          ? AbortSignal.any([signal, attemptControl.signal])
          : attemptControl.signal;
        let res: Response;
        try {
          res = await within(
            doFetch(url, { headers, signal: requestSignal }),
            timeoutMs,
            () => new Retryable(`timed out after ${seconds(timeoutMs)} waiting for the headers`),
            () => attemptControl.abort(),
          );
        } catch (e) {
          // fetch rejects with a TypeError on network failures; anything else (a permission
          // error, an abort) is not worth retrying.
          if (e instanceof Retryable) throw e;
          if (!(e instanceof TypeError) || signal?.aborted) throw e;
          throw new Retryable(`request failed: ${errorText(e)}`);
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
        contentType = res.headers.get("content-type");
        // A body the client decoded (gzip...) is not the length the header announced.
        const encoded = !/^(identity)?$/i.test(res.headers.get("content-encoding") ?? "");
        const length = encoded ? NaN : Number(res.headers.get("content-length") ?? NaN);
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
          if (received > 0 && length < received) {
            // Shorter than what is already here: not the file being resumed (an error page?).
            // Keep the partial download rather than trade it for this.
            await res.body?.cancel();
            throw new DownloadError(
              url,
              `asked for bytes from ${received}, the server sent a whole ${length}-byte answer` +
                `${contentType ? ` (${contentType})` : ""} instead; kept ${part}, delete it ` +
                `if the file on the server has really changed`,
            );
          }
          if (received > 0) await restart(); // 200: the server ignored the range; start over
          total = Number.isFinite(length) ? length : undefined;
        }
        await file.seek(received, Deno.SeekMode.Start);
        onProgress?.(received, total);
        const start = received;
        if (res.body) {
          const reader = res.body.getReader();
          try {
            for (;;) {
              const next = await within(
                reader.read(),
                idleTimeoutMs,
                () =>
                  new Retryable(`no data for ${seconds(idleTimeoutMs)} after ${received} bytes`),
                () => attemptControl.abort(),
              );
              if (next.done) break;
              await writeAll(file, next.value);
              hash.update(next.value);
              received += next.value.length;
              onProgress?.(received, total);
            }
          } catch (e) {
            if (e instanceof Retryable || signal?.aborted) throw e;
            throw new Retryable(`connection lost: ${errorText(e)}`);
          } finally {
            await reader.cancel().catch(() => {});
          }
        }
        const sent = received - start;
        if (Number.isFinite(length) && sent !== length) {
          if (sent < length) {
            throw new Retryable(
              `truncated: the server sent ${sent} of the ${length} bytes announced`,
            );
          }
          await restart();
          throw new DownloadError(url, `got ${sent} bytes, more than the ${length} announced`);
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
        await sleep(retryDelayMs * 2 ** attempt, signal);
      } finally {
        attemptControl.abort();
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
    throw await discard(
      `SHA-256 mismatch: expected ${expected}, got ${sha256} (${received} bytes)`,
    );
  }
  try {
    await validate?.(part);
  } catch (e) {
    const what = await describeContent(part, contentType);
    throw await discard(`${errorText(e)}${what}`);
  }
  await file.syncData();
  file.close();
  await Deno.rename(part, dest);
  return {
    path: dest,
    bytes: received,
    sha256,
    verified: !!expected,
    resumedFrom,
    skipped: false,
    ...(replaced !== undefined && { replaced }),
  };
}
