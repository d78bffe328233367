/**
 * The data-preparation pipeline: corpus -> tokens -> llm.c shards, as llm.c's fineweb and
 * tinyshakespeare scripts do it: every document is prefixed with the end-of-text token, the
 * validation split is the start of the token stream (llm.c makes its first shard the val split),
 * and the rest is written as train shards numbered after the val shards.
 *
 * Memory stays bounded: documents are read one at a time, long ones are tokenized in pieces of
 * about 1M characters, and tokens go straight to the shard writers.
 * @module
 */

import { Progress } from "../_progress.ts";
import { type Corpus, openCorpus, utf8Length } from "./corpus.ts";
import { DEFAULT_SHARD_SIZE, ShardWriter } from "./shards.ts";
import { END_OF_TEXT } from "../tokenizer/gpt2.ts";

/** Anything that turns text into token ids without special tokens (the GPT-2 tokenizer does). */
export interface TokenEncoder {
  /** Token ids of `text`; special-token strings in it are encoded as plain text. */
  encodeOrdinary(text: string): ArrayLike<number>;
}

/** Options of {@linkcode prepareShards}. */
export interface PrepareOptions {
  /** The corpus, or a spec for {@linkcode openCorpus}: "sotu", "moby-dick", a file, a directory. */
  source: Corpus | string;
  /** Output directory (created if missing). */
  outDir: string;
  /** File prefix; default: the corpus name. */
  name?: string;
  /** The tokenizer. */
  tokenizer: TokenEncoder;
  /** Document separator put before every document; default {@linkcode END_OF_TEXT}. */
  eotToken?: number;
  /**
   * Fraction of the corpus, by UTF-8 bytes, that becomes the val split: the start of the corpus up
   * to the first word boundary at or after that point, which may be inside a document (llm.c's
   * val shard also ends mid-document). Default 0.05; 0 writes no val split.
   */
  valFraction?: number;
  /** Instead of a fraction: the first this many whole documents are the val split. */
  valDocuments?: number;
  /** Tokens per shard file; default 100 000 000. */
  shardSize?: number;
  /** Show a progress bar on stderr; default true. */
  progress?: boolean;
}

/** What {@linkcode prepareShards} wrote. */
export interface PrepareSummary {
  /** The file prefix used. */
  name: string;
  /** Documents read. */
  documents: number;
  /** Documents that went (wholly or in part) to the val split. */
  valDocuments: number;
  /** UTF-8 bytes of text tokenized. */
  bytes: number;
  /** Tokens in the train split, EOT separators included. */
  trainTokens: number;
  /** Tokens in the val split, EOT separators included. */
  valTokens: number;
  /** Train shard paths, in order. */
  trainFiles: string[];
  /** Val shard paths, in order. */
  valFiles: string[];
  /** Wall-clock seconds taken. */
  seconds: number;
}

const PIECE_CHARS = 1 << 20;

// JS `\s` plus U+0085, which GPT-2's pre-tokenizer (tiktoken) also counts as white space.
function isSpace(c: string): boolean {
  return c === "\x85" || /\s/.test(c);
}

/**
 * The first index >= `from` that is a single space between two non-space characters, or
 * `text.length`. Cutting there does not change a GPT-2-style tokenization: its pre-tokenizer
 * pieces never cross such a space (the space starts the next piece, " word"), so tokenizing both
 * halves gives the same tokens as tokenizing the whole.
 */
export function wordBoundaryAtOrAfter(text: string, from: number): number {
  for (let i = Math.max(1, from); i < text.length - 1; i++) {
    if (text[i] === " " && !isSpace(text[i - 1]) && !isSpace(text[i + 1])) return i;
  }
  return text.length;
}

// The index of the first character at or past `bytes` UTF-8 bytes into `text` (a surrogate pair
// counts 2 + 2: its 4 bytes).
function charIndexAtByte(text: string, bytes: number): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    if (n >= bytes) return i;
    const c = text.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xe000 ? 2 : 3;
  }
  return text.length;
}

/**
 * Tokenizes a corpus into llm.c shard files: `<name>_val_000000.bin` (the val split, if any)
 * then `<name>_train_000001.bin`, ... If anything fails, the files written so far are removed.
 *
 * @example
 * ```ts
 * import { prepareShards, textCorpus } from "@denograd/denograd";
 * const bytes = { encodeOrdinary: (s: string) => Array.from(new TextEncoder().encode(s)) };
 * const outDir = await Deno.makeTempDir();
 * const summary = await prepareShards({
 *   source: textCorpus(["first document", "second document", "third document"]),
 *   outDir, name: "demo", tokenizer: bytes, eotToken: 256, valDocuments: 1, progress: false,
 * });
 * console.log(summary.valTokens, summary.trainTokens); // 15 31
 * await Deno.remove(outDir, { recursive: true });
 * ```
 */
export async function prepareShards(options: PrepareOptions): Promise<PrepareSummary> {
  const { outDir, tokenizer, valDocuments, shardSize = DEFAULT_SHARD_SIZE } = options;
  const eot = options.eotToken ?? END_OF_TEXT;
  const valFraction = options.valFraction ?? (valDocuments === undefined ? 0.05 : 0);
  if (valDocuments !== undefined && options.valFraction !== undefined) {
    throw new TypeError("prepareShards: give valFraction or valDocuments, not both");
  }
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`prepareShards: valFraction must be in [0, 1), got ${valFraction}`);
  }
  if (!Number.isInteger(eot) || eot < 0 || eot > 0xffff) {
    throw new RangeError(`prepareShards: eotToken must be an integer in [0, 65535], got ${eot}`);
  }
  const corpus = typeof options.source === "string"
    ? await openCorpus(options.source)
    : options.source;
  if (
    valDocuments !== undefined &&
    !(Number.isInteger(valDocuments) && valDocuments >= 0 && valDocuments < corpus.documentCount)
  ) {
    throw new RangeError(
      `prepareShards: valDocuments must be an integer in [0, ${corpus.documentCount}) ` +
        `(the corpus has ${corpus.documentCount} documents), got ${valDocuments}`,
    );
  }
  const name = options.name ?? corpus.name;
  const valBytes = Math.ceil(valFraction * corpus.totalBytes);
  const start = performance.now();
  const progress = options.progress === false
    ? null
    : new Progress({ label: `prepare ${name}`, total: corpus.totalBytes, unit: "bytes" });

  // Train is opened when val is done, so its first index follows val's.
  const out: { val: ShardWriter; train: ShardWriter | null } = {
    val: new ShardWriter({ dir: outDir, name, split: "val", shardSize }),
    train: null,
  };
  const { val } = out;
  let bytes = 0, documents = 0, valDocs = 0;
  const writer = () => out.train ?? val;
  const tokens = () => val.tokens + (out.train?.tokens ?? 0);
  const toTrain = async () => {
    await val.close();
    out.train = new ShardWriter({
      dir: outDir,
      name,
      split: "train",
      shardSize,
      firstIndex: val.nextIndex,
    });
  };
  // Encodes text in pieces cut at word boundaries, so a huge document never becomes one array.
  const emit = async (text: string) => {
    for (let p = 0; p < text.length;) {
      const end = text.length - p <= PIECE_CHARS
        ? text.length
        : wordBoundaryAtOrAfter(text, p + PIECE_CHARS);
      const piece = text.slice(p, end);
      await writer().write(tokenizer.encodeOrdinary(piece));
      bytes += utf8Length(piece);
      p = end;
      progress?.update(bytes, `${tokens().toLocaleString("en-US")} tokens`);
    }
  };

  try {
    if (valDocuments === 0 || (valDocuments === undefined && valBytes === 0)) await toTrain();
    for await (const doc of corpus.documents()) {
      documents++;
      await writer().write([eot]);
      if (out.train) {
        await emit(doc);
        continue;
      }
      valDocs++;
      const docBytes = utf8Length(doc);
      if (valDocuments !== undefined || bytes + docBytes < valBytes) {
        await emit(doc);
        if (valDocs === valDocuments) await toTrain();
      } else {
        const cut = wordBoundaryAtOrAfter(doc, charIndexAtByte(doc, valBytes - bytes));
        await emit(doc.slice(0, cut));
        await toTrain();
        await emit(doc.slice(cut)); // the rest of the document continues in train, no EOT
      }
    }
    if (!out.train) await toTrain();
    const train = out.train!;
    const trainFiles = await train.close();
    if (train.tokens === 0 && val.tokens > 0) {
      throw new Error(`prepareShards: the val split took the whole corpus; lower valFraction`);
    }
    progress?.done(bytes, `${tokens().toLocaleString("en-US")} tokens`);
    return {
      name,
      documents,
      valDocuments: valDocs,
      bytes,
      trainTokens: train.tokens,
      valTokens: val.tokens,
      trainFiles,
      valFiles: [...val.files],
      seconds: (performance.now() - start) / 1000,
    };
  } catch (e) {
    progress?.done(bytes, "failed"); // ends the progress line before the error is printed
    await val.abort();
    await out.train?.abort();
    throw e;
  }
}
