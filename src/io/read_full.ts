/**
 * Whole reads and writes: `read` may return fewer bytes than asked and `write` may write fewer
 * than given, so both loop.
 * @module
 */

/** Reads into `into` until it is full or the file ends; returns the bytes read. */
export async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<number> {
  let off = 0;
  while (off < into.length) {
    const n = await file.read(into.subarray(off));
    if (n === null) break;
    off += n;
  }
  return off;
}

/** Synchronous {@linkcode readFull}. */
export function readFullSync(file: Deno.FsFile, into: Uint8Array): number {
  let off = 0;
  while (off < into.length) {
    const n = file.readSync(into.subarray(off));
    if (n === null) break;
    off += n;
  }
  return off;
}

/** Writes all of `bytes` at the file's position. */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
}
