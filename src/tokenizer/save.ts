/**
 * Writing BPE vocabularies: tiktoken rank files, GPT-2's encoder.json + vocab.bpe and Hugging
 * Face's tokenizer.json. Files are written atomically (a temp file, then rename), so a crash never
 * leaves a half-written vocabulary behind.
 * @module
 */

import { writeFileAtomic } from "../io/atomic.ts";
import type { BpeVocab } from "./vocab.ts";
import { bytesToBinary } from "./_bytes.ts";
import { mergesFromVocab } from "./_merges.ts";

/**
 * A tiktoken rank file: `<base64 token> <rank>` per line, in rank order. Special tokens are not
 * part of the format; pass them again when reading it back.
 *
 * @example
 * ```ts
 * import { formatTiktokenRanks, parseTiktokenRanks, Tokenizer } from "@denograd/denograd";
 * const gpt2 = await Tokenizer.gpt2();
 * const text = formatTiktokenRanks(gpt2.vocab);
 * console.log(text.split("\n")[220]); // "IA== 220" (the space byte)
 * const again = new Tokenizer(parseTiktokenRanks(text, { specialTokens: { "<|endoftext|>": 50256 } }));
 * console.log(again.encode("Hello world")); // [15496, 995]
 * ```
 * @param vocab the vocabulary; its ids must increase with rank, as ranks are ids in this format
 * @returns the file's contents
 */
export function formatTiktokenRanks(vocab: BpeVocab): string {
  const ids = vocab.ids;
  const lines: string[] = new Array(vocab.tokens.length);
  for (let rank = 0; rank < vocab.tokens.length; rank++) {
    const id = ids?.[rank] ?? rank;
    if (ids && rank > 0 && id <= ids[rank - 1]) {
      throw new Error(
        `formatTiktokenRanks: ids must increase with rank (ranks are ids in tiktoken files); ` +
          `rank ${rank} has id ${id} after ${ids[rank - 1]}`,
      );
    }
    lines[rank] = `${btoa(bytesToBinary(vocab.tokens[rank]))} ${id}`;
  }
  return lines.join("\n") + "\n";
}

/**
 * GPT-2's `encoder.json` (token in printable byte form -> id, special tokens included) and
 * `vocab.bpe` (`#version: 0.2`, then one merge per line in rank order).
 * @param vocab the vocabulary; every multi-byte token must be the merge of two lower-ranked ones
 * @returns the two files' contents
 */
export function formatOpenAIVocab(vocab: BpeVocab): { encoderJson: string; vocabBpe: string } {
  const { vocab: map, merges } = mergesFromVocab(vocab);
  return {
    encoderJson: jsonObject(map, ""),
    vocabBpe: ["#version: 0.2", ...merges.map(([a, b]) => `${a} ${b}`)].join("\n") + "\n",
  };
}

/**
 * A Hugging Face `tokenizer.json` in GPT-2's layout: ByteLevel pre-tokenizer, post-processor and
 * decoder, a BPE model with `vocab` and `merges` (as `"a b"` strings, which every version of
 * `tokenizers` reads), special tokens as `added_tokens`.
 * @param vocab the vocabulary; every multi-byte token must be the merge of two lower-ranked ones
 * @returns the file's contents
 */
export function formatHuggingFaceVocab(vocab: BpeVocab): string {
  const { vocab: map, merges } = mergesFromVocab(vocab);
  const byteLevel = {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  };
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: Object.entries(vocab.specialTokens ?? {}).map(([content, id]) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab: VOCAB_SLOT,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  // The vocab is spliced in by hand to keep id order: JSON.stringify puts integer-like keys
  // ("0", "1", ...) first whatever order they were inserted in.
  return JSON.stringify(json, null, 2).replace(`"${VOCAB_SLOT}"`, () => jsonObject(map, "    ")) +
    "\n";
}

const VOCAB_SLOT = "@@vocab@@";

/** A JSON object from entries, in their order; `indent` non-empty pretty-prints one per line. */
function jsonObject(entries: Iterable<[string, number]>, indent: string): string {
  const items = Array.from(entries, ([k, v]) => `${JSON.stringify(k)}:${indent ? " " : ""}${v}`);
  if (!indent) return `{${items.join(",")}}`;
  return `{\n${indent}  ${items.join(`,\n${indent}  `)}\n${indent}}`;
}

/**
 * Saves a tiktoken rank file atomically; see {@link formatTiktokenRanks}.
 * @param path where to write
 * @param vocab the vocabulary
 */
export async function writeTiktokenRanks(path: string | URL, vocab: BpeVocab): Promise<void> {
  await writeFileAtomic(path, formatTiktokenRanks(vocab));
}

/**
 * Saves GPT-2's `encoder.json` and `vocab.bpe` atomically; see {@link formatOpenAIVocab}.
 * @param encoderJsonPath where to write encoder.json
 * @param vocabBpePath where to write vocab.bpe
 * @param vocab the vocabulary
 */
export async function writeOpenAIVocab(
  encoderJsonPath: string | URL,
  vocabBpePath: string | URL,
  vocab: BpeVocab,
): Promise<void> {
  const { encoderJson, vocabBpe } = formatOpenAIVocab(vocab);
  await writeFileAtomic(encoderJsonPath, encoderJson);
  await writeFileAtomic(vocabBpePath, vocabBpe);
}

/**
 * Saves a Hugging Face `tokenizer.json` atomically; see {@link formatHuggingFaceVocab}.
 * @param path where to write
 * @param vocab the vocabulary
 */
export async function writeHuggingFaceVocab(path: string | URL, vocab: BpeVocab): Promise<void> {
  await writeFileAtomic(path, formatHuggingFaceVocab(vocab));
}
