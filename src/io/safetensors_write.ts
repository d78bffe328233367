/**
 * Writing safetensors files: streamed tensor by tensor, atomically, with a SHA-256 per tensor.
 * @module
 */

import { firstNonFinite, toBf16Array } from "../dtype.ts";
import { Tensor } from "../tensor.ts";
import { AtomicFile } from "./atomic.ts";
import { CHECKSUM_KEY, checksumValue, tensorHash } from "./_checksums.ts";
import { ITEM_BYTES, LITTLE_ENDIAN, type SafetensorsDType, swapBytes } from "./safetensors.ts";

/** The safetensors dtype a tensor is written as. */
function fileDType(t: Tensor): SafetensorsDType {
  return t.dtype === "f32" ? "F32" : t.dtype === "bf16" ? "BF16" : "I32";
}

/** Options of {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /**
   * Store a SHA-256 of every tensor in the metadata (key `tensor_sha256`), checked by every read
   * of {@linkcode openSafetensors}; default true. Other readers ignore it.
   */
  checksums?: boolean;
  /**
   * Refuse NaN and infinite values (default false): the write stops at the first one, with a
   * RangeError naming the tensor and the element, and an existing file at the path is untouched.
   */
  finite?: boolean;
}

/**
 * Writes tensors to a safetensors file, one tensor at a time (only one tensor's bytes are in
 * host memory at once), into a temporary file in the same directory that is flushed and renamed
 * over `path` only when complete. On error the temporary file is removed and an existing file at
 * `path` is untouched. The header is padded with spaces to a multiple of 8 bytes, like the
 * reference implementation, so every tensor's data is 8-byte aligned in the file. Tensors are
 * written in the order given; f32 as F32, i32 as I32. Each tensor's SHA-256 goes into the
 * metadata (written last, over a placeholder of the same length), unless turned off.
 *
 * @example
 * ```ts
 * import { openSafetensors, tensor, writeSafetensors } from "@denograd/denograd";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, [["ids", tensor(new Int32Array([7, 8, 9]))]]);
 * using file = await openSafetensors(path);
 * console.log(await file.read("ids"), file.checksummed); // Int32Array [7, 8, 9] true
 * await Deno.remove(path);
 * ```
 * @param path where to write
 * @param entries `[name, tensor]` pairs or a name -> tensor record
 * @param metadata string values stored as `__metadata__`
 * @param options whether to store checksums
 * @returns when the file is in place
 */
export async function writeSafetensors(
  path: string | URL,
  entries: Iterable<[string, Tensor]> | Record<string, Tensor>,
  metadata?: Record<string, string>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const list: [string, Tensor][] = Symbol.iterator in entries
    ? Array.from(entries as Iterable<[string, Tensor]>)
    : Object.entries(entries);
  const checksums = options.checksums ?? true;
  const meta: Record<string, string> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`writeSafetensors: metadata["${k}"] must be a string, got ${typeof v}`);
      }
      if (k === CHECKSUM_KEY && checksums) {
        throw new TypeError(
          `writeSafetensors: metadata["${CHECKSUM_KEY}"] is reserved for the tensor checksums`,
        );
      }
      meta[k] = v;
    }
  }
  const tensors: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of list) {
    if (typeof name !== "string" || name === "__metadata__") {
      throw new TypeError(`writeSafetensors: invalid tensor name ${JSON.stringify(name)}`);
    }
    if (Object.hasOwn(tensors, name)) {
      throw new TypeError(`writeSafetensors: duplicate tensor name "${name}"`);
    }
    if (!(t instanceof Tensor)) throw new TypeError(`writeSafetensors: "${name}" is not a Tensor`);
    if (t.disposed) throw new TypeError(`writeSafetensors: "${name}" was disposed`);
    const bytes = t.size * ITEM_BYTES[fileDType(t)];
    tensors[name] = {
      dtype: fileDType(t),
      shape: [...t.shape],
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  const names = list.map(([name]) => name);
  /** The length field and header, with these digests (placeholders until the data is hashed). */
  const headerBytes = (digests?: string[]): Uint8Array => {
    const m = checksums ? { ...meta, [CHECKSUM_KEY]: checksumValue(names, digests) } : meta;
    const header = Object.keys(m).length || metadata !== undefined
      ? { __metadata__: m, ...tensors }
      : tensors;
    const json = new TextEncoder().encode(JSON.stringify(header));
    const padded = Math.ceil(json.length / 8) * 8;
    const out = new Uint8Array(8 + padded).fill(0x20, 8); // spaces
    const length = new DataView(out.buffer);
    length.setUint32(0, padded % 2 ** 32, true);
    length.setUint32(4, Math.floor(padded / 2 ** 32), true);
    out.set(json, 8);
    return out;
  };

  const placeholder = headerBytes();
  await using out = await AtomicFile.create(path);
  await out.write(placeholder);
  const digests: string[] = [];
  for (const [name, t] of list) {
    const values = t.toTypedArray();
    const bad = options.finite && values instanceof Float32Array ? firstNonFinite(values) : -1;
    if (bad >= 0) {
      throw new RangeError(
        `writeSafetensors: "${name}" holds ${values[bad]} at element ${bad} of ${values.length}: ` +
          "refusing to write a non-finite state (a file already at the path is kept)",
      );
    }
    // bf16 reads come back widened to f32; narrowing them again is exact.
    const data = t.dtype === "bf16" ? toBf16Array(values) : values;
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (!LITTLE_ENDIAN) {
      bytes = bytes.slice();
      swapBytes(bytes, data.BYTES_PER_ELEMENT);
    }
    if (checksums) {
      const hash = tensorHash();
      hash.update(bytes);
      digests.push(hash.hex());
    }
    await out.write(bytes);
  }
  if (checksums) {
    const final = headerBytes(digests);
    if (final.length !== placeholder.length) {
      throw new Error("writeSafetensors: header size changed");
    }
    await out.file.seek(0, Deno.SeekMode.Start);
    await out.write(final);
  }
  await out.commit();
}
