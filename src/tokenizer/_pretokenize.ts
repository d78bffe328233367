/**
 * GPT-2's pre-tokenizer as a hand-written scanner. It splits text exactly as tiktoken's r50k_base
 * regex does:
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * with tiktoken's (Rust) meaning of `\s`: Unicode White_Space. That differs from a JS regex `\s`
 * (which adds U+FEFF and lacks U+0085), so a JS RegExp would not be exact. A scanner is also about
 * twice as fast as V8 matching the Unicode-property regex, and knows for free whether a piece is
 * ASCII (then the piece itself is its byte string).
 * @module
 */

/** The pre-tokenization pattern, as tiktoken and js-tiktoken spell it. */
export const GPT2_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;
const OTHER = 4;

// Class of every code point, filled lazily (0 = not yet known). 1.1 MB, zero pages cost nothing.
const CLASS = new Uint8Array(0x110000);
const LETTER_RE = /^\p{L}$/u;
const NUMBER_RE = /^\p{N}$/u;

/** Unicode White_Space, which is what `\s` means to tiktoken's regex engine. */
function isWhiteSpace(cp: number): boolean {
  return (cp >= 0x09 && cp <= 0x0d) || cp === 0x20 || cp === 0x85 || cp === 0xa0 ||
    cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 ||
    cp === 0x202f || cp === 0x205f || cp === 0x3000;
}

function classify(cp: number): number {
  if (isWhiteSpace(cp)) return SPACE;
  const ch = String.fromCodePoint(cp); // a lone surrogate stays one: neither letter nor number
  if (LETTER_RE.test(ch)) return LETTER;
  if (NUMBER_RE.test(ch)) return NUMBER;
  return OTHER;
}

for (let cp = 0; cp < 128; cp++) CLASS[cp] = classify(cp);

function classOf(cp: number): number {
  const c = CLASS[cp];
  return c !== 0 ? c : (CLASS[cp] = classify(cp));
}

/** The code point at i (a surrogate pair combined; a lone surrogate as itself). */
function codePointAt(text: string, i: number, end: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  }
  return c;
}

/**
 * The piece starting at `start` in text[..end): returns `pieceEnd * 2 + (nonAscii ? 1 : 0)`
 * (one Smi instead of an object, because this runs once per word). `end` acts as the end of the
 * text, as it does for the text between two special tokens in tiktoken.
 */
export function nextPiece(text: string, start: number, end: number): number {
  let c = text.charCodeAt(start);
  if (c === 39 && start + 1 < end) { // contractions: 's 't 'm 'd 're 've 'll, lowercase only
    const d = text.charCodeAt(start + 1);
    if (d === 115 || d === 116 || d === 109 || d === 100) return (start + 2) * 2;
    if (start + 2 < end) {
      const e = text.charCodeAt(start + 2);
      if ((e === 101 && (d === 114 || d === 118)) || (d === 108 && e === 108)) {
        return (start + 3) * 2;
      }
    }
  }
  let i = start;
  let cp = c < 0x80 ? c : codePointAt(text, i, end);
  let cls = classOf(cp);
  if (c === 32 && start + 1 < end) { // " ?" joins one space to a following letter/number/other run
    const next = codePointAt(text, start + 1, end);
    const nextCls = classOf(next);
    if (nextCls !== SPACE) {
      i = start + 1;
      cp = next;
      cls = nextCls;
    }
  }
  let nonAscii = 0;
  if (cls !== SPACE) {
    // A maximal run of one class (letters, numbers, or everything else).
    while (i < end) {
      c = text.charCodeAt(i);
      if (c < 0x80) {
        if (CLASS[c] !== cls) break;
        i++;
      } else {
        cp = codePointAt(text, i, end);
        if (classOf(cp) !== cls) break;
        nonAscii = 1;
        i += cp > 0xffff ? 2 : 1;
      }
    }
    return i * 2 + nonAscii;
  }
  // Whitespace (all of it is in the BMP): \s+(?!\S) takes the run but leaves its last char for the
  // next piece when a non-space follows; a single space char before a non-space is \s+ alone.
  while (i < end) {
    c = text.charCodeAt(i);
    if (c < 0x80 ? CLASS[c] !== SPACE : !isWhiteSpace(c)) break;
    if (c >= 0x80) nonAscii = 1;
    i++;
  }
  if (i < end && i - start >= 2) {
    i--;
    if (nonAscii && text.charCodeAt(i) >= 0x80) nonAscii = hasNonAscii(text, start, i) ? 1 : 0;
  }
  return i * 2 + nonAscii;
}

function hasNonAscii(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) >= 0x80) return true;
  return false;
}

/** Splits text into GPT-2 pieces (for the trainer and for tests; encode scans inline). */
export function pretokenize(text: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length;) {
    const j = nextPiece(text, i, text.length) >> 1;
    pieces.push(text.slice(i, j));
    i = j;
  }
  return pieces;
}
