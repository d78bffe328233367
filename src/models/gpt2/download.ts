/**
 * GPT-2's files from Hugging Face (`openai-community/<name>`), through the resumable, checked
 * {@linkcode downloadFile}.
 * @module
 */

import { join } from "node:path";
import { downloadFile, type DownloadResult } from "../../io/download.ts";
import {
  checkJsonObject,
  checkSafetensors,
  makeDirs,
  removeEmptyDirs,
} from "../../io/_download_io.ts";
import { GPT2_SOURCES, type Gpt2Name, isGpt2Name } from "./_download_sources.ts";

export {
  GPT2_SOURCES,
  type Gpt2Name,
  type Gpt2Source,
  isGpt2Name,
  type PinnedFile,
} from "./_download_sources.ts";

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
  /** Longest wait for a connection and the response headers; default 30 000 ms. */
  timeoutMs?: number;
  /** Longest silence while a body arrives; default 30 000 ms. */
  idleTimeoutMs?: number;
  /** Cancels the download; partial files are kept for a later resume. */
  signal?: AbortSignal;
}

/** One file fetched by {@linkcode downloadGpt2}. */
export interface Gpt2DownloadedFile extends DownloadResult {
  /** Where it came from. */
  url: string;
}

/** The check each GPT-2 file must pass, wherever its hash is pinned or not. */
function checkerFor(file: string): (path: string) => Promise<void> {
  return file.endsWith(".safetensors") ? checkSafetensors : checkJsonObject;
}

/**
 * Downloads a GPT-2 checkpoint's `model.safetensors` and `config.json` into `<out>/<name>/`
 * (resumable, hash-checked where a hash is known). Load it with `loadGpt2Safetensors`.
 *
 * Every file is checked before it is renamed into place: its SHA-256 where one is known, and its
 * format always (model.safetensors: a valid safetensors header that matches the file size;
 * config.json: a JSON object), so an HTML error page served as `200` is rejected. A file already
 * present is kept only if it passes the same checks; otherwise it is downloaded again and the
 * result's `replaced` says why. On failure, the directories this call created are removed again
 * if they are empty.
 *
 * @example
 * ```ts ignore
 * import { downloadGpt2 } from "@denograd/denograd";
 * const files = await downloadGpt2("gpt2", { out: "models" }); // models/gpt2/model.safetensors
 * console.log(files.map((f) => `${f.path} ${f.sha256} verified=${f.verified}`));
 * ```
 * @param name which checkpoint
 * @param options output directory, endpoint, hash, timeouts, progress
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
  const created = await makeDirs(dir);
  const results: Gpt2DownloadedFile[] = [];
  try {
    for (const f of source.files) {
      const url = `${endpoint}/${source.repo}/resolve/${source.revision}/${f.name}`;
      const r = await downloadFile(url, join(dir, f.name), {
        sha256: f.name === "model.safetensors" ? options.sha256 ?? f.sha256 : f.sha256,
        validate: checkerFor(f.name),
        fetch: options.fetch,
        retries: options.retries,
        retryDelayMs: options.retryDelayMs,
        timeoutMs: options.timeoutMs,
        idleTimeoutMs: options.idleTimeoutMs,
        signal: options.signal,
        onProgress: options.onProgress && ((got, total) => options.onProgress!(f.name, got, total)),
      });
      results.push({ url, ...r });
    }
  } catch (e) {
    await removeEmptyDirs(created);
    throw e;
  }
  return results;
}
