/**
 * Conversions between the two ways BPE vocabularies are written down: tokens ranked by bytes
 * (tiktoken, our {@link BpeVocab}) and a vocab map plus an ordered merge list (GPT-2's
 * encoder.json + vocab.bpe, Hugging Face's tokenizer.json), both in GPT-2's printable byte form.
 * @module
 */

import type { BpeVocab } from "./tokenizer.ts";
import { binaryToBytes, binaryToPrintable, bytesToBinary, printableToBinary } from "./_bytes.ts";
import { PairRanks } from "./_bpe.ts";

/** A merge-list vocabulary as read from a file, with line numbers for error messages. */
export interface MergeList {
  /** Printable token -> id. */
  vocab: ReadonlyMap<string, number>;
  /** [left, right] printable tokens in priority order, with where each came from. */
  merges: readonly { left: string; right: string; where: string }[];
  /** Special token text -> id, declared by the file (HF added_tokens); may overlap `vocab`. */
  specials: ReadonlyMap<string, number>;
  /**
   * What to do with vocab entries that are neither a byte nor a merge result: "special" (GPT-2's
   * encoder.json, whose only such entry is <|endoftext|>) or "error".
   */
  unreachable: "special" | "error";
  /** The vocab's name for messages. */
  vocabSource: string;
}

/** Builds a rank-ordered vocabulary from a merge list (ranks: bytes by id, then merge order). */
export function vocabFromMerges(list: MergeList): BpeVocab {
  const { vocab, merges, specials, vocabSource } = list;
  const binaryOf = new Map<string, string>();
  const singles: [number, string][] = [];
  for (const [token, id] of vocab) {
    if (specials.has(token)) continue;
    const binary = printableToBinary(token);
    if (binary === undefined) {
      if (list.unreachable === "special") continue; // cannot be bytes, so it must be a special
      throw new Error(
        `${vocabSource}: vocab entry ${JSON.stringify(token)} (id ${id}) is not in GPT-2's ` +
          `byte-level alphabet; only byte-level BPE vocabularies are supported`,
      );
    }
    binaryOf.set(token, binary);
    if (binary.length === 1) singles.push([id, binary]);
  }
  singles.sort((a, b) => a[0] - b[0]);
  const tokens: string[] = singles.map(([, b]) => b);
  const ids: number[] = singles.map(([id]) => id);
  const seen = new Set<string>(tokens);
  if (seen.size !== 256) {
    const missing = [...Array(256).keys()].find((b) => !seen.has(String.fromCharCode(b)))!;
    throw new Error(`${vocabSource}: no token for the single byte 0x${missing.toString(16)}`);
  }
  for (const { left, right, where } of merges) {
    for (const part of [left, right]) {
      if (!binaryOf.has(part)) {
        throw new Error(`${where}: ${JSON.stringify(part)} is not in the vocab`);
      }
    }
    const merged = left + right;
    const binary = binaryOf.get(merged);
    if (binary === undefined) {
      throw new Error(
        `${where}: the merge result ${JSON.stringify(merged)} is not in the vocab`,
      );
    }
    if (seen.has(binary)) continue; // the same bytes by another split: the first merge ranks it
    seen.add(binary);
    tokens.push(binary);
    ids.push(vocab.get(merged)!);
  }
  const specialTokens: Record<string, number> = Object.fromEntries(specials);
  for (const [token, id] of vocab) {
    const binary = binaryOf.get(token);
    if (specials.has(token) || (binary !== undefined && seen.has(binary))) continue;
    if (list.unreachable === "error") {
      throw new Error(
        `${vocabSource}: vocab entry ${JSON.stringify(token)} (id ${id}) is neither a byte, nor ` +
          `the result of a merge, nor an added token`,
      );
    }
    specialTokens[token] = id;
  }
  const identity = ids.every((id, rank) => id === rank);
  return {
    tokens: tokens.map(binaryToBytes),
    ...(identity ? {} : { ids }),
    specialTokens,
  };
}

/** The merge list of a vocabulary, for writing GPT-2 / Hugging Face files. */
export interface WrittenMerges {
  /** Printable token -> id, mergeable tokens then special tokens. */
  vocab: Map<string, number>;
  /** [left, right] printable tokens in rank order. */
  merges: [string, string][];
}

/**
 * Recovers each multi-byte token's merge: BPE over its own bytes with only lower ranks must end in
 * exactly two parts. Throws if a token cannot be reached that way (it would never be produced).
 */
export function mergesFromVocab(vocab: BpeVocab): WrittenMerges {
  const binary = vocab.tokens.map(bytesToBinary);
  const pairs = new PairRanks(binary, new Map(binary.map((b, r) => [b, r])));
  const idOf = (rank: number): number => vocab.ids?.[rank] ?? rank;
  const out = new Map<string, number>();
  const merges: [string, string][] = [];
  let parts = new Int32Array(64);
  for (let r = 0; r < binary.length; r++) {
    const t = binary[r];
    out.set(binaryToPrintable(t), idOf(r));
    if (t.length === 1) continue;
    if (parts.length < t.length) parts = new Int32Array(t.length * 2);
    for (let k = 0; k < t.length; k++) parts[k] = pairs.byteRank[t.charCodeAt(k)];
    if (pairs.merge(parts, t.length, r) !== 2) {
      throw new Error(
        `token ${idOf(r)} (${JSON.stringify(binaryToPrintable(t))}) is not the merge of two ` +
          `lower-ranked tokens, so it cannot be written as a merge list`,
      );
    }
    merges.push([binaryToPrintable(binary[parts[0]]), binaryToPrintable(binary[parts[1]])]);
  }
  for (const [text, id] of Object.entries(vocab.specialTokens ?? {})) out.set(text, id);
  return { vocab: out, merges };
}
