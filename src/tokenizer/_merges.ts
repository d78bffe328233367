/**
 * Conversions between the two ways BPE vocabularies are written down: tokens ranked by bytes
 * (tiktoken, our {@link BpeVocab}) and a vocab map plus an ordered merge list (GPT-2's
 * encoder.json + vocab.bpe, Hugging Face's tokenizer.json), both in GPT-2's printable byte form.
 * @module
 */

import type { BpeVocab } from "./vocab.ts";
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
   * Which undeclared vocab entries are special tokens when no merge reaches them (GPT-2's
   * encoder.json declares none; its one special, `<|endoftext|>`, is only known by its shape).
   * Every other unreachable entry is an error.
   */
  specialIfUnreachable?: (token: string) => boolean;
  /** The vocab's name for messages, e.g. "encoder.json" or "tokenizer.json model.vocab". */
  vocabSource: string;
  /** The merges' file name for messages, e.g. "vocab.bpe" or "tokenizer.json". */
  mergesSource: string;
  /** How this format declares special tokens, for the unreachable-token message. */
  declareHint: string;
}

/**
 * Builds a rank-ordered vocabulary from a merge list (ranks: bytes by id, then merge order).
 *
 * A vocab entry is reachable if it is a single byte or the result of a merge whose two parts are
 * reachable, whatever order the merges come in. An entry that is neither reachable nor special
 * could never be produced by encoding: a truncated or empty merges file leaves thousands of them,
 * so any is an error naming the merges file, how many there are, and the first.
 */
export function vocabFromMerges(list: MergeList): BpeVocab {
  const { vocab, merges, specials, vocabSource } = list;
  const specialTokens: Record<string, number> = Object.fromEntries(specials);
  const isImplicitSpecial = list.specialIfUnreachable ?? (() => false);
  const binaryOf = new Map<string, string>();
  const singles: [number, string][] = [];
  for (const [token, id] of vocab) {
    if (specials.has(token)) continue;
    const binary = printableToBinary(token);
    if (binary === undefined) {
      if (isImplicitSpecial(token)) { // cannot be bytes, so it is special or an error
        specialTokens[token] = id;
        continue;
      }
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
  const reachable = reachableTokens(list, binaryOf, new Set(tokens));
  for (const { left, right } of merges) {
    const binary = binaryOf.get(left + right)!;
    if (seen.has(binary)) continue; // the same bytes by another split: the first merge ranks it
    seen.add(binary);
    tokens.push(binary);
    ids.push(vocab.get(left + right)!);
  }
  const unreachable: [string, number][] = [];
  let regular = 0;
  for (const [token, id] of vocab) {
    const binary = binaryOf.get(token);
    if (binary === undefined) continue; // a special token
    const reached = reachable.has(binary);
    if (!reached && isImplicitSpecial(token)) {
      specialTokens[token] = id;
      continue;
    }
    regular++;
    if (!reached) unreachable.push([token, id]);
  }
  if (unreachable.length > 0) {
    const [token, id] = unreachable.reduce((a, b) => (b[1] < a[1] ? b : a));
    throw new Error(
      `${list.mergesSource}: its ${merges.length} merges leave ${unreachable.length} of the ` +
        `${regular} regular tokens of ${vocabSource} unreachable (neither a single byte nor a ` +
        `merge of reachable tokens; the first is ${JSON.stringify(token)}, id ${id}); is the ` +
        `file truncated? ${list.declareHint}`,
    );
  }
  const identity = ids.every((id, rank) => id === rank);
  return {
    tokens: tokens.map(binaryToBytes),
    ...(identity ? {} : { ids }),
    specialTokens,
  };
}

/**
 * The binary strings of the reachable tokens: the single bytes, then the results of merges with
 * both parts reachable, to a fixed point (a merge may come before the merges of its parts).
 * Checks that every merge's parts and result are in the vocab.
 */
function reachableTokens(
  list: MergeList,
  binaryOf: ReadonlyMap<string, string>,
  reachable: Set<string>,
): Set<string> {
  const merges = list.merges;
  const result: string[] = new Array(merges.length);
  const missing = new Uint8Array(merges.length); // parts of each merge not yet reachable
  const waiting = new Map<string, number[]>(); // unreachable part -> merges waiting for it
  const stack: string[] = [];
  for (let i = 0; i < merges.length; i++) {
    const { left, right, where } = merges[i];
    for (const part of [left, right]) {
      const binary = binaryOf.get(part);
      if (binary === undefined) {
        throw new Error(`${where}: ${JSON.stringify(part)} is not in the vocab`);
      }
      if (reachable.has(binary)) continue;
      missing[i]++;
      const list = waiting.get(binary);
      if (list === undefined) waiting.set(binary, [i]);
      else list.push(i);
    }
    const merged = binaryOf.get(left + right);
    if (merged === undefined) {
      throw new Error(
        `${where}: the merge result ${JSON.stringify(left + right)} is not in the vocab`,
      );
    }
    result[i] = merged;
    if (missing[i] > 0) continue;
    stack.push(merged);
    while (stack.length > 0) { // reach it, then whatever waited for it
      const b = stack.pop()!;
      if (reachable.has(b)) continue;
      reachable.add(b);
      for (const j of waiting.get(b) ?? []) if (--missing[j] === 0) stack.push(result[j]);
      waiting.delete(b);
    }
  }
  return reachable;
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
