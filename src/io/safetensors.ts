/**
 * safetensors files (Hugging Face's weight format), read and written tensor by tensor.
 *
 * Layout: an 8-byte little-endian u64 `N`, then `N` bytes of JSON (padded with spaces to a
 * multiple of 8), then the tensor bytes back to back. The JSON maps each name to
 * `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the first tensor byte) and
 * may hold `__metadata__`, a string-to-string map.
 *
 * {@linkcode openSafetensors} validates the whole header against the file size before any tensor
 * is read, then reads one tensor at a time with a positioned read, so a 6 GB checkpoint never has
 * to fit in memory at once. {@linkcode writeSafetensors} streams tensor by tensor into a temporary
 * file that is renamed into place only when complete.
 * @module
 */

import { fileURLToPath } from "node:url";
import { tensor, type TensorOptions } from "../ops/creation.ts";
import type { Tensor } from "../tensor.ts";
import { readFull } from "./read_full.ts";
import { numel } from "../_shape.ts";
import { CHECKSUM_KEY, parseChecksums, sha256Hex } from "./_checksums.ts";

/** Element types of the safetensors format that this reader understands. */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "I16"
  | "U16"
  | "I32"
  | "U32"
  | "I64"
  | "U64"
  | "F8_E4M3"
  | "F8_E5M2"
  | "F16"
  | "BF16"
  | "F32"
  | "F64";

/** Bytes per element of each dtype (shared with the writer). */
export const ITEM_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** The reference implementation refuses headers over 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Most JSON values (counted by the commas and brackets outside strings) a header may hold: a
 * real model's header has a few thousand tensors of about 8 values each. Parsing builds ~400
 * bytes of objects per value, so a 100 MB header of tiny entries would otherwise cost ~1 GB.
 */
export const MAX_HEADER_VALUES = 1 << 20;

/** Whether this host stores numbers little-endian, as the format does. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A safetensors file that is malformed or truncated; the message names the file and problem. */
export class SafetensorsError extends Error {
  /** The offending file. */
  readonly path: string;
  /** What is wrong with it (the message without the path). */
  readonly problem: string;

  /** Builds `safetensors <path>: <problem>`. */
  constructor(path: string, problem: string) {
    super(`safetensors ${path}: ${problem}`);
    this.name = "SafetensorsError";
    this.path = path;
    this.problem = problem;
  }
}

/** One tensor's entry in a safetensors header. */
export interface SafetensorsTensorInfo {
  /** The tensor's name. */
  name: string;
  /** Its element type in the file. */
  dtype: SafetensorsDType;
  /** Its dimensions, outermost first. */
  shape: number[];
  /** First byte, relative to the start of the data section ({@linkcode SafetensorsFile.dataOffset}). */
  begin: number;
  /** One past the last byte, relative to the start of the data section. */
  end: number;
}

function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

/** Reverses the bytes of every `size`-byte element in place (big-endian hosts only). */
export function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/**
 * Counts the JSON values of `bytes` without parsing: commas and opening brackets outside strings
 * (a lower bound of the values, exact up to one). Stops counting past `limit`.
 */
function countJsonValues(bytes: Uint8Array, limit: number): number {
  const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, BRACE = 0x7b, BRACKET = 0x5b;
  let count = 0, inString = false;
  for (let i = 0; i < bytes.length && count <= limit; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === BACKSLASH) i++; // the escaped byte cannot end the string
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === COMMA || b === BRACE || b === BRACKET) count++;
  }
  return count;
}

/** Checks a parsed header; returns the metadata and the entries sorted by offset. */
function parseHeader(
  path: string,
  json: unknown,
  dataBytes: number,
): { metadata: Record<string, string>; tensors: SafetensorsTensorInfo[] } {
  const fail = (problem: string) => new SafetensorsError(path, problem);
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw fail(`the header must be a JSON object, got ${Array.isArray(json) ? "an array" : json}`);
  }
  const problems: string[] = [];
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        problems.push(`__metadata__ must be an object of strings`);
        continue;
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v === "string") metadata[k] = v;
        else problems.push(`__metadata__["${k}"] must be a string, got ${typeof v}`);
      }
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof entry !== "object" || entry === null) {
      problems.push(`"${name}": expected {dtype, shape, data_offsets}`);
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string" || !Object.hasOwn(ITEM_BYTES, dtype)) {
      problems.push(`"${name}": unsupported dtype ${JSON.stringify(dtype)}`);
      continue;
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      problems.push(`"${name}": shape must be an array of non-negative integers`);
      continue;
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) ||
      offsets[0] > offsets[1]
    ) {
      problems.push(`"${name}": data_offsets must be [begin, end] with 0 <= begin <= end`);
      continue;
    }
    const [begin, end] = offsets as number[];
    const bytes = numel(shape) * ITEM_BYTES[dtype as SafetensorsDType];
    if (end - begin !== bytes) {
      problems.push(
        `"${name}": ${dtype} [${shape}] needs ${bytes} bytes but data_offsets [${begin}, ${end}] ` +
          `span ${end - begin}`,
      );
      continue;
    }
    tensors.push({ name, dtype: dtype as SafetensorsDType, shape: shape as number[], begin, end });
  }
  // Tensors must tile the data section exactly: no gaps, no overlaps, nothing past the end.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const t of tensors) {
    if (t.end > dataBytes) {
      problems.push(
        `"${t.name}": data_offsets [${t.begin}, ${t.end}] run past the end of the data ` +
          `(${dataBytes} bytes): the file is truncated or the header is wrong`,
      );
    } else if (t.begin < at) {
      problems.push(`"${t.name}": data_offsets [${t.begin}, ${t.end}] overlap the previous tensor`);
    } else if (t.begin > at) {
      problems.push(`"${t.name}": a gap of ${t.begin - at} bytes before data_offsets ${t.begin}`);
    }
    at = Math.max(at, t.end);
  }
  if (problems.length === 0 && at !== dataBytes) {
    problems.push(`the tensors cover ${at} bytes but the data section has ${dataBytes}`);
  }
  if (problems.length) {
    const shown = problems.slice(0, 10).join("; ");
    const more = problems.length > 10 ? `; and ${problems.length - 10} more` : "";
    throw fail(`invalid header, ${problems.length} problem(s): ${shown}${more}`);
  }
  return { metadata, tensors };
}

/**
 * An open safetensors file whose header has been validated. Read tensors one at a time with
 * {@linkcode SafetensorsFile.read}; close it when done (or `using`).
 */
export class SafetensorsFile implements Disposable {
  /** The file. */
  readonly path: string;
  /** The `__metadata__` map (empty when absent), without the tensor checksums. */
  readonly metadata: Record<string, string>;
  /** Every tensor entry, in file order. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** Absolute file offset of the data section (8 + header length). */
  readonly dataOffset: number;
  readonly #file: Deno.FsFile;
  readonly #byName: Map<string, SafetensorsTensorInfo>;
  readonly #checksums: Map<string, string> | null;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** @internal use {@linkcode openSafetensors} */
  constructor(
    path: string,
    file: Deno.FsFile,
    dataOffset: number,
    header: { metadata: Record<string, string>; tensors: SafetensorsTensorInfo[] },
    checksums: Map<string, string> | null = null,
  ) {
    this.path = path;
    this.#checksums = checksums;
    this.#file = file;
    this.dataOffset = dataOffset;
    this.metadata = header.metadata;
    this.tensors = header.tensors;
    this.#byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** The names of every tensor, in file order. */
  get names(): string[] {
    return this.tensors.map((t) => t.name);
  }

  /** Whether a tensor of this name is in the file. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /**
   * Whether the file stores a SHA-256 per tensor (denograd writes them): every read is then
   * checked against it, so a corrupted tensor is an error, not silently wrong values.
   */
  get checksummed(): boolean {
    return this.#checksums !== null;
  }

  /** The header entry of `name`, or undefined. */
  info(name: string): SafetensorsTensorInfo | undefined {
    return this.#byName.get(name);
  }

  /**
   * Reads one tensor's raw bytes (little-endian, as stored) with a positioned read.
   * @param name the tensor's name
   * @returns a new buffer of exactly that tensor's bytes
   */
  readBytes(name: string): Promise<Uint8Array> {
    const info = this.#byName.get(name);
    if (!info) {
      return Promise.reject(new RangeError(`safetensors ${this.path}: no tensor named "${name}"`));
    }
    if (this.#closed) {
      return Promise.reject(new Error(`safetensors ${this.path}: read after close`));
    }
    // One seek + read at a time: concurrent reads would move each other's file position.
    const run = this.#queue.then(async () => {
      const bytes = new Uint8Array(info.end - info.begin);
      await this.#file.seek(this.dataOffset + info.begin, Deno.SeekMode.Start);
      const got = await readFull(this.#file, bytes);
      if (got !== bytes.length) {
        throw new SafetensorsError(
          this.path,
          `truncated while reading "${name}": got ${got} of ${bytes.length} bytes`,
        );
      }
      const stored = this.#checksums?.get(name);
      if (stored !== undefined) {
        const actual = sha256Hex(bytes);
        if (actual !== stored) {
          throw new SafetensorsError(
            this.path,
            `"${name}" is corrupted: its bytes hash to sha256 ${actual.slice(0, 16)}..., the ` +
              `header stores ${stored.slice(0, 16)}... (a damaged disk or copy; restore the file)`,
          );
        }
      }
      return bytes;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Reads one tensor and converts it to denograd's dtypes: F32 as is; F16, BF16, F8 and F64 to
   * f32; integer and BOOL types to i32 (values outside the int32 range are an error).
   * @param name the tensor's name
   * @returns the elements in row-major order
   */
  async read(name: string): Promise<Float32Array | Int32Array> {
    const bytes = await this.readBytes(name);
    const info = this.#byName.get(name)!;
    return decode(this.path, info, bytes);
  }

  /**
   * Reads one tensor into a new {@linkcode Tensor} of its shape (see {@linkcode read} for dtypes).
   * @param name the tensor's name
   * @param options the device (default "cpu"), requiresGrad
   * @returns a new tensor the caller owns
   */
  async readTensor(name: string, options: TensorOptions = {}): Promise<Tensor> {
    const data = await this.read(name);
    const { shape } = this.#byName.get(name)!;
    return tensor(data, { ...options, shape, dtype: data instanceof Float32Array ? "f32" : "i32" });
  }

  /** Closes the file; reads after this fail. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  /** `using` support: closes the file. */
  [Symbol.dispose](): void {
    this.close();
  }
}

let halfTable: Float32Array | null = null;

/** f16 bits -> f32 value, for all 65 536 bit patterns (built on first use). */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24; // subnormal
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return (halfTable = table);
}

/** OCP float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN. */
function e4m3ToFloat(b: number): number {
  const sign = b & 0x80 ? -1 : 1, exp = (b >> 3) & 0xf, frac = b & 7;
  if (exp === 15 && frac === 7) return NaN;
  if (exp === 0) return sign * frac * 2 ** -9;
  return sign * (1 + frac / 8) * 2 ** (exp - 7);
}

function decode(
  path: string,
  info: SafetensorsTensorInfo,
  bytes: Uint8Array,
): Float32Array | Int32Array {
  const size = ITEM_BYTES[info.dtype];
  if (!LITTLE_ENDIAN) swapBytes(bytes, size);
  const n = bytes.length / size;
  const buf = bytes.buffer as ArrayBuffer; // a fresh buffer of exactly this tensor, offset 0
  switch (info.dtype) {
    case "F32":
      return new Float32Array(buf);
    case "I32":
      return new Int32Array(buf);
    case "F64":
      return Float32Array.from(new Float64Array(buf));
    case "F16":
    case "F8_E5M2": {
      const table = halfToFloatTable();
      const out = new Float32Array(n);
      if (info.dtype === "F16") {
        const h = new Uint16Array(buf);
        for (let i = 0; i < n; i++) out[i] = table[h[i]];
      } else {
        for (let i = 0; i < n; i++) out[i] = table[bytes[i] << 8]; // e5m2 is f16's top byte
      }
      return out;
    }
    case "F8_E4M3": {
      const table = Float32Array.from({ length: 256 }, (_, b) => e4m3ToFloat(b));
      return Float32Array.from(bytes, (b) => table[b]);
    }
    case "BF16": {
      const h = new Uint16Array(buf);
      const out = new Uint32Array(n); // bf16 is the top half of an f32
      for (let i = 0; i < n; i++) out[i] = h[i] << 16;
      return new Float32Array(out.buffer);
    }
    case "BOOL":
    case "U8":
      return Int32Array.from(bytes);
    case "I8":
      return Int32Array.from(new Int8Array(buf));
    case "I16":
      return Int32Array.from(new Int16Array(buf));
    case "U16":
      return Int32Array.from(new Uint16Array(buf));
    case "U32":
    case "I64":
    case "U64": {
      const out = new Int32Array(n);
      const words = new Int32Array(buf); // (lo, hi) pairs for 64-bit types
      for (let i = 0; i < n; i++) {
        const lo = size === 4 ? words[i] : words[2 * i];
        // In int32 range: u32 below 2^31; i64 whose high word is the low word's sign; u64 both.
        const hi = size === 4 ? 0 : words[2 * i + 1];
        const ok = info.dtype === "I64" ? hi === lo >> 31 : hi === 0 && lo >= 0;
        if (!ok) {
          const v = size === 4 ? String(lo >>> 0) : String(
            info.dtype === "I64"
              ? new BigInt64Array(buf, 8 * i, 1)[0]
              : new BigUint64Array(buf, 8 * i, 1)[0],
          );
          throw new SafetensorsError(
            path,
            `"${info.name}": ${info.dtype} value ${v} at index ${i} is outside the int32 range`,
          );
        }
        out[i] = lo;
      }
      return out;
    }
  }
}

/**
 * Opens a safetensors file and validates its header before any tensor is read: the length field,
 * the JSON, every entry's dtype, shape and offsets (in range, contiguous, not overlapping, sized
 * for dtype x shape) and that the data section is exactly the rest of the file. Problems throw a
 * {@linkcode SafetensorsError} naming the file and every problem found.
 *
 * @example
 * ```ts
 * import { openSafetensors, tensor, writeSafetensors } from "@denograd/denograd";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, { w: tensor([[1, 2], [3, 4]]) }, { note: "hi" });
 * using file = await openSafetensors(path);
 * console.log(file.metadata, file.tensors[0]); // { note: "hi" } { name: "w", dtype: "F32", shape: [2, 2], ... }
 * console.log(await file.read("w")); // Float32Array [1, 2, 3, 4]
 * await Deno.remove(path);
 * ```
 * @param path the file
 * @returns the open file; close it when done
 */
export async function openSafetensors(path: string | URL): Promise<SafetensorsFile> {
  const p = path instanceof URL ? fileURLToPath(path) : path;
  const file = await Deno.open(p, { read: true });
  try {
    const { size } = await file.stat();
    if (size < 8) {
      throw new SafetensorsError(
        p,
        `truncated: ${size} bytes, shorter than the 8-byte length field`,
      );
    }
    const lenBytes = new Uint8Array(8);
    await readFull(file, lenBytes);
    const view = new DataView(lenBytes.buffer);
    const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32; // exact below 2^53
    if (headerLen > size - 8) {
      throw new SafetensorsError(
        p,
        `header length ${headerLen} is larger than the ${size - 8} bytes after the length field ` +
          `(truncated file, or not a safetensors file)`,
      );
    }
    if (headerLen > MAX_HEADER_BYTES) {
      throw new SafetensorsError(p, `header length ${headerLen} is over the 100 MB limit`);
    }
    const headerBytes = new Uint8Array(headerLen);
    if (await readFull(file, headerBytes) !== headerLen) {
      throw new SafetensorsError(p, `truncated while reading the ${headerLen}-byte header`);
    }
    const values = countJsonValues(headerBytes, MAX_HEADER_VALUES);
    if (values > MAX_HEADER_VALUES) {
      throw new SafetensorsError(
        p,
        `the ${headerLen}-byte header holds over ${MAX_HEADER_VALUES} JSON values (a model's ` +
          `header has a few thousand tensors of ~8 values each): refusing to parse it`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
    } catch (e) {
      throw new SafetensorsError(p, `the header is not valid UTF-8 JSON: ${(e as Error).message}`);
    }
    const header = parseHeader(p, json, size - 8 - headerLen);
    const checksums = parseChecksums(header.metadata, header.tensors.map((t) => t.name));
    if (checksums !== null && !(checksums instanceof Map)) {
      throw new SafetensorsError(p, `invalid header: ${checksums.problem}`);
    }
    delete header.metadata[CHECKSUM_KEY]; // the reads check it; callers see their own metadata
    return new SafetensorsFile(p, file, 8 + headerLen, header, checksums);
  } catch (e) {
    file.close();
    throw e;
  }
}
