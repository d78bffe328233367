/**
 * Filling a buffer from a file: `read` may return fewer bytes than asked, so loop until the
 * buffer is full or the file ends.
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
