// Per-tensor SHA-256 digests in a safetensors header's metadata, so a flipped bit in a saved file
// is an error on load instead of a silent resume. The digests are written after the data (they
// are known only then) by rewriting the header in place: a placeholder of the same length is
// written first, so the header's size never changes.
import { createHash } from "node:crypto";

/** The `__metadata__` key holding `{tensorName: sha256Hex}` as JSON. */
export const CHECKSUM_KEY = "tensor_sha256";

const PLACEHOLDER = "0".repeat(64);
const HEX64 = /^[0-9a-f]{64}$/;

/** The metadata value for `digests` (hex strings; placeholders before the data is written). */
export function checksumValue(names: readonly string[], digests?: readonly string[]): string {
  return JSON.stringify(Object.fromEntries(names.map((n, i) => [n, digests?.[i] ?? PLACEHOLDER])));
}

/** An incremental SHA-256 of one tensor's bytes. */
export function tensorHash(): { update(bytes: Uint8Array): void; hex(): string } {
  const h = createHash("sha256");
  return {
    update: (bytes) => void h.update(bytes),
    hex: () => h.digest("hex"),
  };
}

/** SHA-256 of `bytes` as lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The digests stored in `metadata`, or null when the file has none (files from other writers).
 * Returns a problem instead when the value is malformed or misses one of `names`.
 */
export function parseChecksums(
  metadata: Record<string, string>,
  names: readonly string[],
): Map<string, string> | null | { problem: string } {
  const text = metadata[CHECKSUM_KEY];
  if (text === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: `__metadata__["${CHECKSUM_KEY}"] is not valid JSON` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { problem: `__metadata__["${CHECKSUM_KEY}"] must be an object of hex digests` };
  }
  const map = new Map<string, string>();
  for (const [name, digest] of Object.entries(value)) {
    if (typeof digest !== "string" || !HEX64.test(digest)) {
      return { problem: `__metadata__["${CHECKSUM_KEY}"]["${name}"] is not a SHA-256 hex digest` };
    }
    map.set(name, digest);
  }
  const missing = names.filter((n) => !map.has(n));
  if (missing.length) {
    return { problem: `no checksum for ${missing.length} tensor(s), first "${missing[0]}"` };
  }
  return map;
}
