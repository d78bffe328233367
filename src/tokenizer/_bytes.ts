/**
 * Byte-level helpers shared by the tokenizer, the vocab file formats and the trainer.
 *
 * Token bytes travel as "binary strings" internally: one char per byte (codes 0-255). They are
 * cheap Map keys, `atob`/`btoa` speak them natively, and an ASCII piece of text is already one.
 * @module
 */

/**
 * GPT-2's reversible byte -> printable character map (encoder.json, vocab.bpe and Hugging Face's
 * ByteLevel all use it): printable Latin-1 bytes map to themselves, the other 68 bytes (controls,
 * space, 0x7F-0xA0, 0xAD) to U+0100 onwards in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const chars: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars[b] = String.fromCharCode(printable ? b : next++);
  }
  return chars;
})();

/** The inverse of {@link BYTE_TO_CHAR}. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(
  BYTE_TO_CHAR.map((c, b) => [c, b]),
);

/**
 * The 256 bytes in GPT-2's rank order: the printable ones first, then the rest, each group in byte
 * order (so " " is rank 220, as in r50k_base). The trainer gives single bytes these ids too.
 */
export const GPT2_BYTE_ORDER: readonly number[] = [...BYTE_TO_CHAR.keys()].sort((a, b) =>
  BYTE_TO_CHAR[a].charCodeAt(0) - BYTE_TO_CHAR[b].charCodeAt(0)
);

/** Bytes -> binary string (one char per byte). */
export function bytesToBinary(bytes: Uint8Array): string {
  if (bytes.length <= 8192) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

/** Binary string -> bytes. */
export function binaryToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A token's bytes in GPT-2's printable form (encoder.json keys, vocab.bpe and HF merges). */
export function binaryToPrintable(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) out += BYTE_TO_CHAR[s.charCodeAt(i)];
  return out;
}

/** GPT-2's printable form -> binary string, or undefined if a char is not in the byte map. */
export function printableToBinary(s: string): string | undefined {
  let out = "";
  for (const ch of s) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return undefined;
    out += String.fromCharCode(b);
  }
  return out;
}

const ENCODER = new TextEncoder();

/** UTF-8 bytes of a JS string as a binary string (lone surrogates become U+FFFD, as TextEncoder). */
export function utf8Binary(text: string): string {
  return bytesToBinary(ENCODER.encode(text));
}
