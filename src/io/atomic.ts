/**
 * Atomic file writes: the bytes go to a temporary file in the target's directory, are flushed to
 * disk, and only then renamed over the target. A crash or an error midway leaves the old file (or
 * no file) in place, never a half-written one.
 * @module
 */

import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeAll } from "./read_full.ts";

/** Options of {@linkcode AtomicFile.create}. */
export interface AtomicFileOptions {
  /**
   * The temporary path; it must be in the target's directory (a rename across file systems is
   * not atomic). Default: `<path>.<random>.tmp`, so concurrent writers never share a temp file.
   */
  tempPath?: string;
}

const TEMP_SUFFIX = ".tmp";

/**
 * Flushes a directory's entries, so a rename in it survives a power loss (the data was flushed
 * before). Systems that cannot open a directory for syncing skip it.
 */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(dir, { read: true });
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    /* not supported for directories here */
  } finally {
    handle.close();
  }
}

/**
 * Removes the temporary files that writers of `path` left behind when they were killed midway
 * (`<path>.<8 hex>.tmp`, the default {@linkcode AtomicFile} names). Call it before writing `path`
 * again, not while another process may be writing it.
 *
 * @example
 * ```ts
 * import { removeStaleTemporaries } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/ckpt.safetensors.0123abcd.tmp`, "half a checkpoint");
 * console.log(await removeStaleTemporaries(`${dir}/ckpt.safetensors`)); // ["ckpt.safetensors.0123abcd.tmp"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @param path the target whose stale temporaries to remove
 * @returns the names removed
 */
export async function removeStaleTemporaries(path: string | URL): Promise<string[]> {
  const target = toPath(path);
  const dir = dirname(target), base = basename(target);
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed; // no directory: nothing was left there
  }
  for (const e of entries) {
    const stem = e.name.slice(base.length + 1, -TEMP_SUFFIX.length);
    const isTemp = e.isFile && e.name.startsWith(`${base}.`) && e.name.endsWith(TEMP_SUFFIX) &&
      /^[0-9a-f]{8}$/.test(stem);
    if (!isTemp) continue;
    await Deno.remove(join(dir, e.name));
    removed.push(e.name);
  }
  return removed;
}

function toPath(path: string | URL): string {
  return path instanceof URL ? fileURLToPath(path) : path;
}

/**
 * A file being written under a temporary name. Write through {@linkcode AtomicFile.file} (or
 * {@linkcode AtomicFile.write}), then {@linkcode AtomicFile.commit} flushes it to disk and renames
 * it into place; {@linkcode AtomicFile.abort} (or leaving an `await using` scope without commit)
 * removes the temporary file and leaves the target untouched.
 *
 * @example
 * ```ts
 * import { AtomicFile } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * {
 *   await using out = await AtomicFile.create(`${dir}/hello.txt`);
 *   await out.write(new TextEncoder().encode("hello"));
 *   await out.commit(); // without this line, hello.txt would never appear
 * }
 * console.log(await Deno.readTextFile(`${dir}/hello.txt`)); // "hello"
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class AtomicFile implements AsyncDisposable {
  /** The final path. */
  readonly path: string;
  /** Where the bytes are written until commit. */
  readonly tempPath: string;
  /** The open temporary file (positioned writes with `seek` are fine). */
  readonly file: Deno.FsFile;
  #state: "open" | "committed" | "aborted" = "open";

  private constructor(path: string, tempPath: string, file: Deno.FsFile) {
    this.path = path;
    this.tempPath = tempPath;
    this.file = file;
  }

  /**
   * Opens a new temporary file for `path` (the directory must exist).
   *
   * @param path the final path
   * @param options where the temporary file goes
   * @returns the open file, not yet visible under `path`
   */
  static async create(path: string | URL, options: AtomicFileOptions = {}): Promise<AtomicFile> {
    const target = toPath(path);
    const temp = options.tempPath ?? `${target}.${crypto.randomUUID().slice(0, 8)}${TEMP_SUFFIX}`;
    const file = await Deno.open(temp, { write: true, create: true, truncate: true });
    return new AtomicFile(target, temp, file);
  }

  /** Whether commit or abort has run. */
  get closed(): boolean {
    return this.#state !== "open";
  }

  /**
   * Appends all of `bytes` at the current position (a single `file.write` may write fewer).
   * @param bytes what to write
   */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.#state !== "open") throw new Error(`AtomicFile: write after close (${this.path})`);
    await writeAll(this.file, bytes);
  }

  /** Flushes the data to disk, closes the file and renames it to the final path. */
  async commit(): Promise<void> {
    if (this.#state !== "open") throw new Error(`AtomicFile: commit after close (${this.path})`);
    try {
      // The data must be on disk before the rename makes it visible, or a crash could leave an
      // empty or partial file under the final name.
      await this.file.syncData();
      this.file.close();
      this.#state = "committed";
      await Deno.rename(this.tempPath, this.path);
      await syncDirectory(dirname(this.path));
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  /** Closes and removes the temporary file; the target is untouched. Safe to call twice. */
  async abort(): Promise<void> {
    if (this.#state === "open") {
      try {
        this.file.close();
      } catch { /* already closed */ }
    }
    if (this.#state === "aborted") return;
    this.#state = "aborted";
    await Deno.remove(this.tempPath).catch(() => {});
  }

  /** `await using` support: aborts unless {@linkcode AtomicFile.commit} was called. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === "open") await this.abort();
  }
}

/**
 * Writes `data` to `path` atomically: a temporary file in the same directory, fsync, rename.
 * On error the temporary file is removed and an existing file at `path` is untouched.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/config.json`, JSON.stringify({ nLayer: 12 }));
 * console.log(await Deno.readTextFile(`${dir}/config.json`)); // {"nLayer":12}
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @param path where to write
 * @param data the whole contents (text is written as UTF-8)
 * @returns when the file is in place
 */
export async function writeFileAtomic(
  path: string | URL,
  data: string | Uint8Array,
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  await using out = await AtomicFile.create(path);
  await out.write(bytes);
  await out.commit();
}
