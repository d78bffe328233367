/**
 * Reading BPE vocabularies from the three common file formats: tiktoken rank files, GPT-2's
 * `encoder.json` + `vocab.bpe`, and Hugging Face's `tokenizer.json` (byte-level BPE). A malformed
 * file fails with an Error naming the file and, where there is one, the line.
 * @module
 */

import type { BpeVocab } from "./vocab.ts";
import { binaryToBytes } from "./_bytes.ts";
import { type MergeList, vocabFromMerges } from "./_merges.ts";
import { checkIdCap, requireString, typeName } from "./_validate.ts";

/** Options for tiktoken rank files, which list mergeable tokens only. */
export interface TiktokenOptions {
  /** Special tokens to add, e.g. `{"<|endoftext|>": 50256}` for r50k_base. Default: none. */
  specialTokens?: Readonly<Record<string, number>>;
  /** The file's name in error messages. Default: "tiktoken ranks". */
  source?: string;
}

/**
 * Parses a tiktoken rank file: one `<base64 token bytes> <rank>` per line; ranks are ids. Ranks
 * and special-token ids must be below 2^21 (`Tokenizer.MAX_VOCAB_SIZE`); a larger one is a
 * RangeError.
 *
 * @example
 * ```ts
 * import { parseTiktokenRanks } from "@denograd/denograd";
 * const bytes = Array.from({ length: 256 }, (_, b) => `${btoa(String.fromCharCode(b))} ${b}`);
 * const vocab = parseTiktokenRanks([...bytes, `${btoa("ab")} 256`].join("\n"));
 * console.log(vocab.tokens.length); // 257
 * ```
 * @param text the file's contents
 * @param options special tokens to add and the file's name for messages
 * @returns the vocabulary
 */
export function parseTiktokenRanks(text: string, options: TiktokenOptions = {}): BpeVocab {
  requireString(text, "parseTiktokenRanks", "text");
  const source = options.source ?? "tiktoken ranks";
  const specialTokens = { ...options.specialTokens };
  for (const [name, id] of Object.entries(specialTokens)) {
    if (!Number.isInteger(id) || id < 0) {
      throw new RangeError(
        `${source}: special token ${JSON.stringify(name)} has id ${id}; expected an integer >= 0`,
      );
    }
    checkIdCap(id, `${source}: special token ${JSON.stringify(name)}`);
  }
  const entries: [number, string][] = [];
  const lines = text.split("\n");
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l].endsWith("\r") ? lines[l].slice(0, -1) : lines[l];
    if (line === "") continue;
    const fields = line.split(" ");
    const rank = Number(fields[1]);
    if (fields.length !== 2 || fields[0] === "" || !/^\d+$/.test(fields[1])) {
      throw new Error(
        `${source} line ${l + 1}: expected "<base64 token> <rank>", got ${
          JSON.stringify(line.slice(0, 80))
        }`,
      );
    }
    checkIdCap(rank, `${source} line ${l + 1}`);
    let binary: string;
    try {
      binary = atob(fields[0]);
    } catch {
      throw new Error(`${source} line ${l + 1}: ${JSON.stringify(fields[0])} is not base64`);
    }
    entries.push([rank, binary]);
  }
  entries.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < entries.length; i++) {
    if (entries[i][0] === entries[i - 1][0]) {
      throw new Error(`${source}: rank ${entries[i][0]} appears twice`);
    }
  }
  const dense = entries.every(([rank], i) => rank === i);
  return {
    tokens: entries.map(([, b]) => binaryToBytes(b)),
    ...(dense ? {} : { ids: entries.map(([rank]) => rank) }),
    specialTokens,
  };
}

/**
 * Reads a tiktoken rank file (e.g. `r50k_base.tiktoken`); see {@link parseTiktokenRanks}.
 * @param path the file
 * @param options special tokens to add
 * @returns the vocabulary
 */
export async function readTiktokenRanks(
  path: string | URL,
  options: TiktokenOptions = {},
): Promise<BpeVocab> {
  const text = await Deno.readTextFile(path);
  return parseTiktokenRanks(text, { ...options, source: options.source ?? String(path) });
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON: ${(e as Error).message}`);
  }
}

function vocabMap(value: unknown, source: string, what: string): Map<string, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${source}: ${what} must be an object mapping tokens to ids`);
  }
  const map = new Map<string, number>();
  for (const [token, id] of Object.entries(value)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new Error(`${source}: ${what} gives ${JSON.stringify(token)} the id ${id}`);
    }
    checkIdCap(id as number, `${source}: ${what} entry ${JSON.stringify(token)}`);
    map.set(token, id as number);
  }
  return map;
}

/** GPT-2's special tokens are written `<|name|>`; encoder.json has no other way to mark them. */
const SPECIAL_SHAPE = /^<\|[^\s|]+\|>$/;

/**
 * Parses GPT-2's original vocabulary files. `encoder.json` maps tokens (in GPT-2's printable byte
 * form) to ids; `vocab.bpe` lists merges in priority order after a `#version` line. Every entry of
 * encoder.json must be a single byte, the result of a merge of two such entries, or a special
 * token (`options.specialTokens`; by default the unreached entries written `<|name|>`, as GPT-2's
 * `<|endoftext|>`); anything else means a truncated or mismatched vocab.bpe and is an Error
 * naming it, how many entries it leaves unreachable, and the first.
 *
 * @example
 * ```ts
 * import { formatOpenAIVocab, parseOpenAIVocab, Tokenizer, trainBpe } from "@denograd/denograd";
 * const trained = trainBpe("low lower lowest low low", { vocabSize: 260 });
 * const { encoderJson, vocabBpe } = formatOpenAIVocab(trained);
 * console.log(new Tokenizer(parseOpenAIVocab(encoderJson, vocabBpe)).encode("low")); // [257]
 * try {
 *   parseOpenAIVocab(encoderJson, "#version: 0.2\n"); // no merges: "lo", "low", ... unreachable
 * } catch (e) {
 *   console.log((e as Error).message); // "vocab.bpe: its 0 merges leave 4 of the 260 regular ..."
 * }
 * ```
 * @param encoderJson the contents of encoder.json
 * @param vocabBpe the contents of vocab.bpe
 * @param options the two files' names for error messages, and which entries are special tokens
 * @returns the vocabulary
 */
export function parseOpenAIVocab(
  encoderJson: string,
  vocabBpe: string,
  options: {
    /** encoder.json's name in error messages. Default: "encoder.json". */
    encoder?: string;
    /** vocab.bpe's name in error messages. Default: "vocab.bpe". */
    merges?: string;
    /**
     * The entries of encoder.json that are special tokens, which no merge produces. Default: the
     * entries written `<|name|>` that no merge reaches, such as GPT-2's `<|endoftext|>`.
     */
    specialTokens?: readonly string[];
  } = {},
): BpeVocab {
  requireString(encoderJson, "parseOpenAIVocab", "encoderJson");
  requireString(vocabBpe, "parseOpenAIVocab", "vocabBpe");
  const encoderSource = options.encoder ?? "encoder.json";
  const mergesSource = options.merges ?? "vocab.bpe";
  const vocab = vocabMap(parseJson(encoderJson, encoderSource), encoderSource, "the file");
  const merges: MergeList["merges"][number][] = [];
  const lines = vocabBpe.split("\n");
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l].endsWith("\r") ? lines[l].slice(0, -1) : lines[l];
    if (line === "" || (l === 0 && line.startsWith("#version"))) continue;
    const fields = line.split(" ");
    if (fields.length !== 2 || fields[0] === "" || fields[1] === "") {
      throw new Error(
        `${mergesSource} line ${l + 1}: expected two tokens separated by one space, got ${
          JSON.stringify(line.slice(0, 80))
        }`,
      );
    }
    merges.push({ left: fields[0], right: fields[1], where: `${mergesSource} line ${l + 1}` });
  }
  const specials = new Map<string, number>();
  const declared = options.specialTokens;
  if (declared !== undefined && !Array.isArray(declared)) {
    throw new TypeError(
      `parseOpenAIVocab: options.specialTokens must be an array of strings, got ${
        typeName(declared)
      }`,
    );
  }
  for (const name of declared ?? []) {
    const id = vocab.get(name);
    if (id === undefined) {
      throw new Error(
        `${encoderSource} has no entry ${JSON.stringify(name)}, which options.specialTokens names`,
      );
    }
    specials.set(name, id);
  }
  return vocabFromMerges({
    vocab,
    merges,
    specials,
    specialIfUnreachable: declared === undefined ? (t) => SPECIAL_SHAPE.test(t) : undefined,
    vocabSource: encoderSource,
    mergesSource,
    declareHint:
      "(Special tokens other than <|name|> ones must be named in options.specialTokens.)",
  });
}

/**
 * Reads GPT-2's `encoder.json` + `vocab.bpe`; see {@link parseOpenAIVocab}.
 * @param encoderJsonPath path of encoder.json
 * @param vocabBpePath path of vocab.bpe
 * @param options which entries of encoder.json are special tokens (default: the `<|name|>` ones)
 * @returns the vocabulary
 */
export async function readOpenAIVocab(
  encoderJsonPath: string | URL,
  vocabBpePath: string | URL,
  options: { specialTokens?: readonly string[] } = {},
): Promise<BpeVocab> {
  const [encoder, merges] = await Promise.all([
    Deno.readTextFile(encoderJsonPath),
    Deno.readTextFile(vocabBpePath),
  ]);
  return parseOpenAIVocab(encoder, merges, {
    encoder: String(encoderJsonPath),
    merges: String(vocabBpePath),
    specialTokens: options.specialTokens,
  });
}

/**
 * Parses a Hugging Face `tokenizer.json` with a byte-level BPE model (`model.vocab` and
 * `model.merges`, merges as `"a b"` strings or `["a", "b"]` pairs); `added_tokens` become special
 * tokens. Pre-tokenization is always GPT-2's. Every entry of `model.vocab` must be a single byte,
 * the result of a merge of two such entries, or an added token; anything else means truncated or
 * mismatched merges and is an Error naming the file, how many entries they leave unreachable, and
 * the first. Ids must be below 2^21 (`Tokenizer.MAX_VOCAB_SIZE`).
 * @param text the file's contents
 * @param source the file's name for error messages
 * @returns the vocabulary
 */
export function parseHuggingFaceVocab(text: string, source = "tokenizer.json"): BpeVocab {
  requireString(text, "parseHuggingFaceVocab", "text");
  const json = parseJson(text, source) as Record<string, unknown> | null;
  const model = json?.model as Record<string, unknown> | undefined;
  if (typeof model !== "object" || model === null) throw new Error(`${source}: no "model" object`);
  if (model.type !== undefined && model.type !== "BPE") {
    throw new Error(`${source}: model.type is ${JSON.stringify(model.type)}; expected "BPE"`);
  }
  for (const key of ["continuing_subword_prefix", "end_of_word_suffix"]) {
    if (model[key]) {
      throw new Error(
        `${source}: model.${key} is set; only byte-level BPE (GPT-2 style) is supported`,
      );
    }
  }
  const vocab = vocabMap(model.vocab, source, "model.vocab");
  if (!Array.isArray(model.merges)) throw new Error(`${source}: model.merges is not an array`);
  const merges = model.merges.map((m: unknown, i: number) => {
    const pair = typeof m === "string" ? m.split(" ") : m;
    if (
      !Array.isArray(pair) || pair.length !== 2 || pair.some((p) => typeof p !== "string" || !p)
    ) {
      throw new Error(
        `${source}: model.merges[${i}] is ${JSON.stringify(m)}; expected "a b" or ["a", "b"]`,
      );
    }
    return {
      left: pair[0] as string,
      right: pair[1] as string,
      where: `${source} model.merges[${i}]`,
    };
  });
  const specials = new Map<string, number>();
  const added = json?.added_tokens ?? [];
  if (!Array.isArray(added)) throw new Error(`${source}: added_tokens is not an array`);
  for (const [i, t] of added.entries()) {
    if (typeof t?.content !== "string" || !Number.isInteger(t?.id) || t.id < 0) {
      throw new Error(
        `${source}: added_tokens[${i}] lacks a string "content" and an integer "id" >= 0`,
      );
    }
    checkIdCap(t.id, `${source}: added_tokens[${i}] (${JSON.stringify(t.content)})`);
    specials.set(t.content, t.id);
  }
  return vocabFromMerges({
    vocab,
    merges,
    specials,
    vocabSource: `${source} model.vocab`,
    mergesSource: source,
    declareHint: "(Special tokens must be listed in added_tokens.)",
  });
}

/**
 * Reads a Hugging Face `tokenizer.json`; see {@link parseHuggingFaceVocab}.
 * @param path the file
 * @returns the vocabulary
 */
export async function readHuggingFaceVocab(path: string | URL): Promise<BpeVocab> {
  return parseHuggingFaceVocab(await Deno.readTextFile(path), String(path));
}
