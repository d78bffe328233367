/**
 * GPT-2's vocabulary (tiktoken's r50k_base), taken from the npm package js-tiktoken so that it is
 * available offline once the dependency is cached.
 * @module
 */

import type { BpeVocab } from "./vocab.ts";

/**
 * GPT-2's `<|endoftext|>` id (50256): its one special token, the document separator of its
 * corpora, the default stop token of generation and the default padding of the trainers.
 *
 * @example
 * ```ts
 * import { END_OF_TEXT, Tokenizer } from "@denograd/denograd";
 * const tok = await Tokenizer.gpt2();
 * console.log(tok.encode("<|endoftext|>", { allowedSpecial: "all" })[0] === END_OF_TEXT); // true
 * ```
 */
export const END_OF_TEXT = 50256;
import { GPT2_PATTERN } from "./_pretokenize.ts";

/** The ranks as js-tiktoken ships them. */
interface JsTiktokenRanks {
  pat_str: string;
  special_tokens: Record<string, number>;
  /** Lines of `<name> <first rank> <base64 token> <base64 token> ...`, ranks consecutive. */
  bpe_ranks: string;
}

/**
 * Parses js-tiktoken's compressed rank format into a vocabulary.
 * @param ranks the default export of `js-tiktoken/ranks/<name>`
 * @param source a name for error messages
 * @returns the vocabulary, specials included
 */
export function parseJsTiktokenRanks(ranks: JsTiktokenRanks, source: string): BpeVocab {
  const byRank: Uint8Array[] = [];
  const lines = ranks.bpe_ranks.split("\n");
  for (let l = 0; l < lines.length; l++) {
    if (lines[l] === "") continue;
    const fields = lines[l].split(" ");
    const first = Number(fields[1]);
    if (fields.length < 3 || !Number.isInteger(first) || first < 0) {
      throw new Error(`${source}: line ${l + 1} is not "<name> <rank> <base64 tokens...>"`);
    }
    for (let k = 2; k < fields.length; k++) {
      let binary: string;
      try {
        binary = atob(fields[k]);
      } catch {
        throw new Error(`${source}: line ${l + 1}: token ${k - 1} is not base64: "${fields[k]}"`);
      }
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      byRank[first + k - 2] = bytes;
    }
  }
  for (let r = 0; r < byRank.length; r++) {
    if (byRank[r] === undefined) throw new Error(`${source}: rank ${r} is missing`);
  }
  return { tokens: byRank, specialTokens: { ...ranks.special_tokens } };
}

/**
 * GPT-2's vocabulary: 50,256 ranked tokens plus `<|endoftext|>` = 50256.
 * @returns the vocabulary (parsed on every call; `Tokenizer.gpt2()` keeps one tokenizer)
 */
export async function gpt2Vocab(): Promise<BpeVocab> {
  // A full specifier, so the vocabulary also loads when this module is imported by path from a
  // script that does not use this project's deno.json import map.
  // deno-lint-ignore no-import-prefix
  const { default: ranks } = await import("npm:js-tiktoken@1.0.21/ranks/r50k_base");
  if (ranks.pat_str !== GPT2_PATTERN) {
    throw new Error(`js-tiktoken r50k_base: unexpected pattern ${ranks.pat_str}`);
  }
  return parseJsTiktokenRanks(ranks, "js-tiktoken r50k_base");
}
