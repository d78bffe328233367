/**
 * Token shards in llm.c's format, so shards written here train in llm.c and the reverse: a header
 * of 256 little-endian int32 (`[0]` magic 20240520, `[1]` version 1, `[2]` token count, the rest
 * zero), then the tokens as little-endian uint16. Files are named like llm.c's
 * (`<name>_<split>_<index>.bin`, index zero-padded to 6 digits).
 *
 * The writer streams (bounded memory whatever the corpus size), rotates to a new file every
 * `shardSize` tokens, and writes each file under a temporary name that is renamed only once its
 * header holds the final count, so a crash never leaves a valid-looking partial shard. The readers
 * check magic, version and `file size == 1024 + 2 * count` before returning any token.
 * @module
 */

import { join } from "node:path";
import { AtomicFile } from "../io/atomic.ts";
import { readFull, readFullSync } from "../io/read_full.ts";

/** llm.c's magic number for GPT-2 token shards (header[0]). */
export const SHARD_MAGIC = 20240520;
/** The shard format version this module reads and writes (header[1]): uint16 tokens. */
export const SHARD_VERSION = 1;
/** Header size in bytes: 256 int32. */
export const SHARD_HEADER_BYTES = 1024;
/** Tokens per shard when not given: llm.c's fineweb default. */
export const DEFAULT_SHARD_SIZE = 100_000_000;

const MAX_SHARD_SIZE = 2 ** 31 - 1; // the count is an int32
const BUFFER_TOKENS = 1 << 20; // 2 MiB of tokens per write call
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A token shard that is not a valid llm.c shard; the message names the file and the problem. */
export class ShardFormatError extends Error {
  /** The offending file. */
  readonly path: string;

  /** Builds `token shard <path>: <problem>`. */
  constructor(path: string, problem: string) {
    super(`token shard ${path}: ${problem}`);
    this.name = "ShardFormatError";
    this.path = path;
  }
}

/**
 * The file name of one shard, as llm.c names them.
 *
 * @example
 * ```ts
 * import { shardFileName } from "@denograd/denograd";
 * shardFileName("sotu", "train", 1); // "sotu_train_000001.bin"
 * ```
 */
export function shardFileName(name: string, split: string, index: number): string {
  return `${name}_${split}_${String(index).padStart(6, "0")}.bin`;
}

// Host-order typed arrays are little-endian on every platform Deno ships for; swap otherwise.
function toLittleEndian(tokens: Uint16Array): Uint8Array {
  const bytes = new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < out.length; i += 2) [out[i], out[i + 1]] = [bytes[i + 1], bytes[i]];
  return out;
}

function fromLittleEndian(tokens: Uint16Array): void {
  if (LITTLE_ENDIAN) return;
  const v = new DataView(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  for (let i = 0; i < tokens.length; i++) tokens[i] = v.getUint16(2 * i, true);
}

/** Where and how a {@linkcode ShardWriter} writes. */
export interface ShardWriterOptions {
  /** Output directory; created if missing. */
  dir: string;
  /** Dataset name, the file prefix. */
  name: string;
  /** The split in the file name, e.g. "train" or "val". */
  split: string;
  /** Tokens per file before rotating to the next; default 100 000 000 (llm.c's). */
  shardSize?: number;
  /** Index of the first file; default 0. llm.c numbers shards globally: val 0, train from 1. */
  firstIndex?: number;
}

/**
 * Streams tokens into llm.c shard files. Finish with {@linkcode ShardWriter.close}; with
 * `await using`, leaving the scope without closing (an exception) aborts, removing every file this
 * writer wrote, so a failed run leaves no partial dataset behind. A writer given no tokens writes
 * no file.
 *
 * @example
 * ```ts
 * import { readShard, ShardWriter } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * await using writer = new ShardWriter({ dir, name: "demo", split: "train", shardSize: 3 });
 * await writer.write([50256, 40, 367, 1807]);
 * const files = await writer.close(); // demo_train_000000.bin (3 tokens), ..._000001.bin (1)
 * console.log(readShard(files[0])); // Uint16Array [50256, 40, 367]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ShardWriter implements AsyncDisposable {
  readonly #dir: string;
  readonly #name: string;
  readonly #split: string;
  readonly #shardSize: number;
  #index: number;
  #file: AtomicFile | null = null;
  #inFile = 0; // tokens already written to the open file
  readonly #buf = new Uint16Array(BUFFER_TOKENS);
  #bufLen = 0;
  readonly #files: string[] = [];
  #tokens = 0;
  #closed = false;

  /** Validates the options; no file is touched until tokens arrive. */
  constructor(options: ShardWriterOptions) {
    const { dir, name, split, shardSize = DEFAULT_SHARD_SIZE, firstIndex = 0 } = options;
    if (!Number.isInteger(shardSize) || shardSize < 1 || shardSize > MAX_SHARD_SIZE) {
      throw new RangeError(
        `ShardWriter: shardSize must be an integer in [1, ${MAX_SHARD_SIZE}], got ${shardSize}`,
      );
    }
    if (!Number.isInteger(firstIndex) || firstIndex < 0) {
      throw new RangeError(
        `ShardWriter: firstIndex must be a non-negative integer, got ${firstIndex}`,
      );
    }
    if (!name || !split || /[\\/]/.test(name + split)) {
      throw new TypeError(`ShardWriter: name and split must be non-empty file name parts`);
    }
    this.#dir = dir;
    this.#name = name;
    this.#split = split;
    this.#shardSize = shardSize;
    this.#index = firstIndex;
  }

  /** Tokens accepted so far. */
  get tokens(): number {
    return this.#tokens;
  }

  /** Paths of the shards completed so far, in order. */
  get files(): readonly string[] {
    return this.#files;
  }

  /** The index the next shard file will take (the first free index after close). */
  get nextIndex(): number {
    return this.#index;
  }

  /**
   * Appends tokens. Every token must be an integer in [0, 65535] (version 1 shards are uint16);
   * otherwise a RangeError is thrown and none of this chunk is written.
   */
  async write(tokens: ArrayLike<number>): Promise<void> {
    if (this.#closed) throw new Error(`ShardWriter: write after close (${this.#name})`);
    if (!(tokens instanceof Uint16Array)) {
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i];
        if (!(Number.isInteger(t) && t >= 0 && t <= 0xffff)) {
          throw new RangeError(
            `ShardWriter.write: token ${t} at index ${i} is outside uint16 range [0, 65535]`,
          );
        }
      }
    }
    for (let p = 0; p < tokens.length;) {
      // Fill the buffer, but never past the end of the current shard, so rotation is exact.
      const room = Math.min(
        BUFFER_TOKENS - this.#bufLen,
        this.#shardSize - this.#inFile - this.#bufLen,
      );
      const n = Math.min(room, tokens.length - p);
      for (let i = 0; i < n; i++) this.#buf[this.#bufLen + i] = tokens[p + i];
      this.#bufLen += n;
      this.#tokens += n;
      p += n;
      if (this.#bufLen === BUFFER_TOKENS) await this.#flush();
      if (this.#inFile + this.#bufLen === this.#shardSize) await this.#finishShard();
    }
  }

  /** Writes the last shard and returns the paths of every shard written, in order. */
  async close(): Promise<string[]> {
    if (this.#closed) return [...this.#files];
    await this.#finishShard();
    this.#closed = true;
    return [...this.#files];
  }

  /** Stops writing and removes the shard in progress and every shard this writer completed. */
  async abort(): Promise<void> {
    this.#closed = true;
    if (this.#file) {
      await this.#file.abort();
      this.#file = null;
    }
    for (const f of this.#files) await Deno.remove(f).catch(() => {});
    this.#files.length = 0;
  }

  /** `await using` support: aborts unless {@linkcode ShardWriter.close} was called. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed) await this.abort();
  }

  #path(): string {
    return join(this.#dir, shardFileName(this.#name, this.#split, this.#index));
  }

  #tempPath(): string {
    return `${this.#path()}.tmp`;
  }

  async #flush(): Promise<void> {
    if (this.#bufLen === 0) return;
    if (!this.#file) {
      await Deno.mkdir(this.#dir, { recursive: true });
      this.#file = await AtomicFile.create(this.#path(), { tempPath: this.#tempPath() });
      // A zero header until the count is known: a leftover temp file never passes as a shard.
      await this.#file.write(new Uint8Array(SHARD_HEADER_BYTES));
    }
    await this.#file.write(toLittleEndian(this.#buf.subarray(0, this.#bufLen)));
    this.#inFile += this.#bufLen;
    this.#bufLen = 0;
  }

  async #finishShard(): Promise<void> {
    await this.#flush();
    const file = this.#file;
    if (!file) return;
    const header = new DataView(new ArrayBuffer(SHARD_HEADER_BYTES));
    header.setInt32(0, SHARD_MAGIC, true);
    header.setInt32(4, SHARD_VERSION, true);
    header.setInt32(8, this.#inFile, true);
    await file.file.seek(0, Deno.SeekMode.Start);
    await file.write(new Uint8Array(header.buffer));
    this.#file = null;
    await file.commit(); // fsync, then rename: the data is on disk before the name appears
    this.#files.push(file.path);
    this.#index++;
    this.#inFile = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

/** What a valid shard's header says. */
export interface ShardInfo {
  /** The file. */
  path: string;
  /** Number of tokens in the file. */
  tokens: number;
}

// Checks a header against the file size; returns the token count.
function checkHeader(path: string, header: Uint8Array, fileBytes: number): number {
  if (fileBytes < SHARD_HEADER_BYTES) {
    throw new ShardFormatError(
      path,
      `truncated: ${fileBytes} bytes, shorter than the ${SHARD_HEADER_BYTES}-byte header`,
    );
  }
  const v = new DataView(header.buffer, header.byteOffset, SHARD_HEADER_BYTES);
  const magic = v.getInt32(0, true), version = v.getInt32(4, true), count = v.getInt32(8, true);
  if (magic !== SHARD_MAGIC) {
    throw new ShardFormatError(
      path,
      `bad magic ${magic} (expected ${SHARD_MAGIC}); not an llm.c token shard`,
    );
  }
  if (version !== SHARD_VERSION) {
    throw new ShardFormatError(
      path,
      `unsupported version ${version} (this reader supports version ${SHARD_VERSION}: uint16 tokens)`,
    );
  }
  const expected = SHARD_HEADER_BYTES + 2 * count;
  if (count < 0 || fileBytes !== expected) {
    const holds = (fileBytes - SHARD_HEADER_BYTES) / 2;
    const what = count >= 0 && fileBytes < expected ? "truncated" : "count mismatch";
    throw new ShardFormatError(
      path,
      `${what}: the header says ${count} tokens (${expected} bytes) but the file has ` +
        `${fileBytes} bytes (${holds} tokens)`,
    );
  }
  return count;
}

/**
 * Reads and validates a shard's header against its size, without reading the tokens.
 * Throws a {@linkcode ShardFormatError} naming the file and the problem.
 */
export async function readShardInfo(path: string): Promise<ShardInfo> {
  using file = await Deno.open(path, { read: true });
  const header = new Uint8Array(SHARD_HEADER_BYTES);
  await readFull(file, header);
  const { size } = await file.stat();
  return { path, tokens: checkHeader(path, header, size) };
}

/**
 * Reads one whole shard into memory (random access for trainers that sample windows). The header
 * and file size are validated before the tokens are read.
 *
 * @example
 * ```ts
 * import { readShard, ShardWriter } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * const writer = new ShardWriter({ dir, name: "demo", split: "val" });
 * await writer.write(new Uint16Array([50256, 15496, 995]));
 * const [path] = await writer.close();
 * console.log(readShard(path)); // Uint16Array(3) [50256, 15496, 995]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readShard(path: string): Uint16Array {
  using file = Deno.openSync(path, { read: true });
  const header = new Uint8Array(SHARD_HEADER_BYTES);
  readFullSync(file, header);
  const count = checkHeader(path, header, file.statSync().size);
  const tokens = new Uint16Array(count);
  const got = readFullSync(file, new Uint8Array(tokens.buffer));
  if (got !== 2 * count) {
    throw new ShardFormatError(path, `truncated while reading: got ${got} of ${2 * count} bytes`);
  }
  fromLittleEndian(tokens);
  return tokens;
}

/** Options of {@linkcode streamShards}. */
export interface StreamShardsOptions {
  /** Tokens per yielded chunk (the last chunk of each file may be shorter); default 1 048 576. */
  chunkTokens?: number;
}

/**
 * Yields the tokens of shard files in the given order, in chunks, with bounded memory. Every
 * file's header is validated before the first chunk is yielded, so a bad shard at the end of a
 * long list fails at the start of a run, not hours into it. Chunks never span two files.
 *
 * @example
 * ```ts
 * import { ShardWriter, streamShards } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * const writer = new ShardWriter({ dir, name: "demo", split: "train", shardSize: 2 });
 * await writer.write([1, 2, 3, 4, 5]);
 * const seen: number[] = [];
 * for await (const chunk of streamShards(await writer.close())) seen.push(...chunk);
 * console.log(seen); // [1, 2, 3, 4, 5]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* streamShards(
  paths: readonly string[],
  options: StreamShardsOptions = {},
): AsyncGenerator<Uint16Array, void, undefined> {
  const chunkTokens = options.chunkTokens ?? 1 << 20;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) {
    throw new RangeError(
      `streamShards: chunkTokens must be a positive integer, got ${chunkTokens}`,
    );
  }
  const infos = [];
  for (const path of paths) infos.push(await readShardInfo(path));
  for (const { path, tokens } of infos) {
    using file = await Deno.open(path, { read: true });
    await file.seek(SHARD_HEADER_BYTES, Deno.SeekMode.Start);
    for (let done = 0; done < tokens;) {
      const chunk = new Uint16Array(Math.min(chunkTokens, tokens - done));
      const got = await readFull(file, new Uint8Array(chunk.buffer));
      if (got !== chunk.byteLength) {
        throw new ShardFormatError(path, `truncated while reading at token ${done + got / 2}`);
      }
      fromLittleEndian(chunk);
      done += chunk.length;
      yield chunk;
    }
  }
}

/**
 * The shard files of one split in a directory, sorted by index.
 *
 * @example
 * ```ts
 * import { listShards, ShardWriter, streamShards } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * const writer = new ShardWriter({ dir, name: "demo", split: "train", firstIndex: 1, shardSize: 2 });
 * await writer.write([1, 2, 3]);
 * await writer.close();
 * const files = await listShards(dir, "demo", "train"); // [.../demo_train_000001.bin, ..._000002.bin]
 * for await (const chunk of streamShards(files)) console.log(chunk); // [1, 2] then [3]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listShards(dir: string, name: string, split: string): Promise<string[]> {
  const prefix = `${name}_${split}_`;
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rest = entry.name.startsWith(prefix) ? entry.name.slice(prefix.length) : "";
    if (entry.isFile && /^\d{6,}\.bin$/.test(rest)) found.push(entry.name);
  }
  // Indices are zero-padded, so sorting by (length, name) is numeric order even past 999 999.
  found.sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  return found.map((f) => join(dir, f));
}
