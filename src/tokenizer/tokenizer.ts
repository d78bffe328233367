/**
 * A byte-level BPE tokenizer that encodes exactly as GPT-2 (tiktoken's r50k_base) does.
 * @module
 */

import { bytesToBinary, utf8Binary } from "./_bytes.ts";
import { NO_MERGE, PairRanks } from "./_bpe.ts";
import { nextPiece } from "./_pretokenize.ts";
import { gpt2Vocab } from "./gpt2.ts";
import type { BpeVocab } from "./vocab.ts";

export type { BpeVocab };
import { MAX_VOCAB_SIZE, requireString, typeName } from "./_validate.ts";

/** How {@link Tokenizer.encode} treats special-token text in its input (tiktoken's semantics). */
export interface EncodeOptions {
  /** Special tokens whose text encodes to their id. Default: none. */
  allowedSpecial?: ReadonlySet<string> | "all";
  /**
   * Special tokens whose text makes encode throw. Default `"all"`: every special token that is not
   * allowed. Special tokens in neither set encode as plain text.
   */
  disallowedSpecial?: ReadonlySet<string> | "all";
}

/** An incremental decoder: text comes out only once its UTF-8 bytes are complete. */
export interface StreamDecoder {
  /** Adds one token; returns the text completed by it (possibly ""). */
  push(id: number): string;
  /** Ends the stream; returns what is left (an incomplete character becomes U+FFFD). */
  flush(): string;
}

// Bounds the word cache; huge corpora would otherwise keep every distinct word alive.
const CACHE_LIMIT = 1 << 17;
const CACHE_MAX_PIECE = 256;

let gpt2Promise: Promise<Tokenizer> | undefined;

/**
 * Byte-level BPE with GPT-2's pre-tokenization: encode, decode, stream-decode, special tokens.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "@denograd/denograd";
 * const tok = await Tokenizer.gpt2();
 * const ids = tok.encode("Hello world<|endoftext|>", { allowedSpecial: "all" });
 * console.log(ids); // [15496, 995, 50256]
 * console.log(tok.decode(ids)); // "Hello world<|endoftext|>"
 * ```
 */
export class Tokenizer {
  /**
   * Every id, special ones included, must be below this (2^21 = 2,097,152): the vocabulary has
   * one entry per id up to the largest, and so has the embedding table sized by it.
   */
  static readonly MAX_VOCAB_SIZE: number = MAX_VOCAB_SIZE;

  /** The vocabulary this tokenizer was built from (pass it to a writer to save it). */
  readonly vocab: BpeVocab;
  /** One more than the largest id: the embedding table's row count (50257 for GPT-2). */
  readonly vocabSize: number;
  /** Special token text -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;

  readonly #rankOf = new Map<string, number>();
  readonly #idOfRank: Int32Array;
  readonly #pairs: PairRanks;
  // All token bytes back to back: decoding copies a few bytes per token from one array.
  readonly #flat: Uint8Array;
  readonly #start: Int32Array; // id -> offset in #flat, -1 for an unused id
  readonly #end: Int32Array;
  readonly #cache = new Map<string, number | number[]>();
  #parts = new Int32Array(256);

  /**
   * Builds a tokenizer from a vocabulary (see {@link BpeVocab}); throws a RangeError naming the
   * problem if the vocabulary is inconsistent.
   * @param vocab token bytes in rank order, optional ids, special tokens
   */
  constructor(vocab: BpeVocab) {
    if (typeof vocab !== "object" || vocab === null) {
      throw new TypeError(`Tokenizer: vocab must be a BpeVocab object, got ${typeName(vocab)}`);
    }
    this.vocab = vocab;
    const { tokens, ids } = vocab;
    if (!Array.isArray(tokens) || tokens.length < 256) {
      throw new RangeError(`Tokenizer: vocab.tokens must list at least the 256 single bytes`);
    }
    if (tokens.length >= 1 << 21) {
      throw new RangeError(`Tokenizer: ${tokens.length} tokens; at most 2^21 are supported`);
    }
    if (ids !== undefined && ids.length !== tokens.length) {
      throw new RangeError(
        `Tokenizer: vocab.ids has ${ids.length} entries but vocab.tokens has ${tokens.length}`,
      );
    }
    const byId: (Uint8Array | undefined)[] = [];
    const claim = (id: number, bytes: Uint8Array, what: string): void => {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB_SIZE) {
        throw new RangeError(
          `Tokenizer: ${what} has invalid id ${id}; ids are integers below 2^21 = ` +
            `${MAX_VOCAB_SIZE} (Tokenizer.MAX_VOCAB_SIZE), the largest vocabulary supported`,
        );
      }
      if (byId[id] !== undefined) {
        throw new RangeError(`Tokenizer: id ${id} is used twice (again by ${what})`);
      }
      byId[id] = bytes;
    };
    this.#idOfRank = new Int32Array(tokens.length);
    const binary: string[] = new Array(tokens.length);
    for (let rank = 0; rank < tokens.length; rank++) {
      const bytes = tokens[rank];
      if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
        throw new RangeError(`Tokenizer: token at rank ${rank} is not a non-empty Uint8Array`);
      }
      const b = binary[rank] = bytesToBinary(bytes);
      if (this.#rankOf.has(b)) {
        throw new RangeError(
          `Tokenizer: tokens at ranks ${this.#rankOf.get(b)} and ${rank} have the same bytes`,
        );
      }
      this.#rankOf.set(b, rank);
      const id = ids === undefined ? rank : ids[rank];
      claim(id, bytes, `token at rank ${rank}`);
      this.#idOfRank[rank] = id;
    }
    this.#pairs = new PairRanks(binary, this.#rankOf);
    const missing = this.#pairs.byteRank.indexOf(-1);
    if (missing >= 0) {
      throw new RangeError(`Tokenizer: vocab lacks the single byte 0x${missing.toString(16)}`);
    }
    const specials = new Map<string, number>();
    const encoder = new TextEncoder();
    for (const [text, id] of Object.entries(vocab.specialTokens ?? {})) {
      if (text.length === 0) throw new RangeError(`Tokenizer: a special token is empty`);
      claim(id, encoder.encode(text), `special token "${text}"`);
      specials.set(text, id);
    }
    this.specialTokens = specials;
    this.vocabSize = byId.length;
    this.#start = new Int32Array(this.vocabSize).fill(-1);
    this.#end = new Int32Array(this.vocabSize);
    this.#flat = new Uint8Array(byId.reduce((n, b) => n + (b?.length ?? 0), 0));
    for (let id = 0, at = 0; id < this.vocabSize; id++) {
      const b = byId[id];
      if (b === undefined) continue;
      this.#flat.set(b, at);
      this.#start[id] = at;
      this.#end[id] = at += b.length;
    }
  }

  /**
   * GPT-2's tokenizer (r50k_base: 50,256 merges-ranked tokens plus `<|endoftext|>` = 50256). The
   * ranks come from the npm package js-tiktoken, so this works offline once dependencies are
   * cached. Later calls return the same instance.
   * @returns the shared GPT-2 tokenizer
   */
  static gpt2(): Promise<Tokenizer> {
    gpt2Promise ??= gpt2Vocab().then((v) => new Tokenizer(v));
    return gpt2Promise;
  }

  /**
   * The id of a special token.
   * @param text the special token's text, e.g. `"<|endoftext|>"`
   * @returns its id; throws a RangeError if this tokenizer has no such special token
   */
  specialTokenId(text: string): number {
    requireString(text, "specialTokenId", "text");
    const id = this.specialTokens.get(text);
    if (id === undefined) {
      throw new RangeError(
        `specialTokenId: "${text}" is not a special token (have: ${
          [...this.specialTokens.keys()].join(", ") || "none"
        })`,
      );
    }
    return id;
  }

  /**
   * Encodes text to token ids. Special-token text follows tiktoken: by default its presence
   * throws an Error naming it; `allowedSpecial` ones become their ids; tokens listed in neither
   * option encode as ordinary text.
   * @param text the text to encode (anything else is a TypeError)
   * @param options which special tokens are allowed / disallowed
   * @returns the token ids
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    requireString(text, "encode", "text");
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`encode: options must be an object, got ${typeName(options)}`);
    }
    const allowed = this.#specialSet(options.allowedSpecial, "allowedSpecial") ?? new Set();
    const disallowedOption = options.disallowedSpecial ?? "all";
    const disallowed = this.#specialSet(disallowedOption, "disallowedSpecial")!;
    let found = -1;
    let foundText = "";
    for (const s of disallowed) {
      if (disallowedOption === "all" && allowed.has(s)) continue;
      const at = text.indexOf(s);
      if (at >= 0 && (found < 0 || at < found)) [found, foundText] = [at, s];
    }
    if (found >= 0) {
      throw new Error(
        `encode: the text contains the special token "${foundText}" (at index ${found}), which ` +
          `is not allowed; pass { allowedSpecial: new Set(["${foundText}"]) } to encode it as ` +
          `id ${this.specialTokens.get(foundText)}, or { disallowedSpecial: new Set() } to ` +
          `encode it as plain text`,
      );
    }
    const out: number[] = [];
    if (allowed.size === 0) {
      this.#encodeRange(text, 0, text.length, out);
      return out;
    }
    // Next occurrence of each allowed special token, searched again only once passed.
    const specials = [...allowed];
    const nextAt = specials.map(() => -2);
    for (let start = 0;;) {
      let at = -1;
      let which = -1;
      for (let k = 0; k < specials.length; k++) {
        if (nextAt[k] !== -1 && nextAt[k] < start) nextAt[k] = text.indexOf(specials[k], start);
        const p = nextAt[k];
        if (
          p >= 0 && (at < 0 || p < at || (p === at && specials[k].length > specials[which].length))
        ) {
          at = p;
          which = k;
        }
      }
      this.#encodeRange(text, start, at < 0 ? text.length : at, out);
      if (at < 0) return out;
      out.push(this.specialTokens.get(specials[which])!);
      start = at + specials[which].length;
    }
  }

  /**
   * Encodes text with no special-token handling: `<|endoftext|>` is just text here.
   * @param text the text to encode (anything else is a TypeError)
   * @returns the token ids
   */
  encodeOrdinary(text: string): number[] {
    requireString(text, "encodeOrdinary", "text");
    const out: number[] = [];
    this.#encodeRange(text, 0, text.length, out);
    return out;
  }

  #specialSet(
    option: ReadonlySet<string> | "all" | undefined,
    name: string,
  ): ReadonlySet<string> | undefined {
    if (option === undefined) return undefined;
    if (option === "all") return new Set(this.specialTokens.keys());
    if (
      typeof option !== "object" || option === null || typeof option.has !== "function" ||
      !(Symbol.iterator in option)
    ) {
      throw new TypeError(
        `encode: ${name} must be "all" or a Set of special tokens, got ${typeName(option)}`,
      );
    }
    for (const s of option) {
      if (!this.specialTokens.has(s)) {
        throw new RangeError(
          `encode: ${name} has "${s}", which is not a special token of this tokenizer`,
        );
      }
    }
    return option;
  }

  /** Encodes text[start..end) as if it were the whole text, appending ids to out. */
  #encodeRange(text: string, start: number, end: number, out: number[]): void {
    const cache = this.#cache;
    for (let i = start; i < end;) {
      const found = nextPiece(text, i, end);
      const j = found >> 1;
      const piece = text.slice(i, j);
      const hit = cache.get(piece);
      if (hit === undefined) this.#encodePiece(piece, (found & 1) === 1, out);
      else if (typeof hit === "number") out.push(hit);
      else for (let k = 0; k < hit.length; k++) out.push(hit[k]);
      i = j;
    }
  }

  #encodePiece(piece: string, nonAscii: boolean, out: number[]): void {
    const bytes = nonAscii ? utf8Binary(piece) : piece; // an ASCII piece is its own byte string
    const cacheable = piece.length <= CACHE_MAX_PIECE;
    if (cacheable && this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    const whole = this.#rankOf.get(bytes);
    if (whole !== undefined) {
      const id = this.#idOfRank[whole];
      if (cacheable) this.#cache.set(piece, id);
      out.push(id);
      return;
    }
    const n = bytes.length;
    if (this.#parts.length < n) this.#parts = new Int32Array(n * 2);
    const parts = this.#parts;
    const byteRank = this.#pairs.byteRank;
    for (let k = 0; k < n; k++) parts[k] = byteRank[bytes.charCodeAt(k)];
    const m = this.#pairs.merge(parts, n, NO_MERGE);
    const ids: number[] = new Array(m);
    for (let k = 0; k < m; k++) ids[k] = this.#idOfRank[parts[k]];
    if (cacheable) this.#cache.set(piece, ids);
    for (let k = 0; k < m; k++) out.push(ids[k]);
  }

  #unknown(id: unknown, where: string): RangeError | TypeError {
    if (typeof id !== "number") {
      return new TypeError(`${where}: a token id must be a number, got ${typeName(id)}`);
    }
    return new RangeError(`${where}: unknown token id ${id} (vocab size ${this.vocabSize})`);
  }

  /**
   * The bytes of a sequence of tokens.
   * @param ids token ids (any array-like of numbers, e.g. an Int32Array)
   * @returns the concatenated token bytes; throws a RangeError naming an unknown id, a TypeError
   *   if ids is not an array-like of numbers
   */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return this.#decodeBytes(ids, "decodeBytes");
  }

  #decodeBytes(ids: ArrayLike<number>, where: string): Uint8Array {
    if (typeof ids !== "object" || ids === null || !Number.isSafeInteger(ids.length)) {
      throw new TypeError(
        `${where}: ids must be an array (or typed array) of token ids, got ${typeName(ids)}`,
      );
    }
    const start = this.#start, end = this.#end, flat = this.#flat;
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      // `start[id]` is undefined for ids out of range or not integers, -1 for unused ones; a
      // numeric string would index it too, hence the typeof.
      if (typeof id !== "number" || !(start[id] >= 0)) {
        throw this.#unknown(id, `${where}: at index ${i}`);
      }
      total += end[id] - start[id];
    }
    const out = new Uint8Array(total);
    for (let i = 0, at = 0; i < ids.length; i++) {
      for (let k = start[ids[i]], e = end[ids[i]]; k < e; k++) out[at++] = flat[k];
    }
    return out;
  }

  /**
   * Decodes token ids to text; bytes that are not valid UTF-8 become U+FFFD, as with TextDecoder.
   * @param ids token ids (any array-like of numbers)
   * @returns the text; throws a RangeError naming an unknown id, a TypeError if ids is not an
   *   array-like of numbers
   */
  decode(ids: ArrayLike<number>): string {
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(this.#decodeBytes(ids, "decode"));
  }

  /**
   * A streaming decoder for generation: push ids one at a time; a multi-byte character split
   * across tokens comes out whole, once its last byte arrives.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@denograd/denograd";
   * const tok = await Tokenizer.gpt2();
   * const d = tok.decoder();
   * const parts = tok.encode("naïve 🙂").map((id) => d.push(id));
   * console.log(parts.join("") + d.flush()); // "naïve 🙂"
   * ```
   * @returns a fresh decoder
   */
  decoder(): StreamDecoder {
    const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
    return {
      push: (id: number): string => {
        if (typeof id !== "number" || !(this.#start[id] >= 0)) {
          throw this.#unknown(id, "decoder.push");
        }
        const bytes = this.#flat.subarray(this.#start[id], this.#end[id]);
        return utf8.decode(bytes, { stream: true });
      },
      flush: (): string => utf8.decode(),
    };
  }
}
