/**
 * The vocabulary type every part of the tokenizer shares (its own file, so the loaders and the
 * tokenizer do not import each other).
 * @module
 */

/**
 * A byte-level BPE vocabulary: what a `Tokenizer` is built from, what the file loaders
 * return, what the trainer learns and what the writers save.
 */
export interface BpeVocab {
  /**
   * Every mergeable token's bytes in rank order: the index is the rank, and a lower rank merges
   * first. All 256 single bytes must be present (anywhere; their ranks never compete).
   */
  readonly tokens: readonly Uint8Array[];
  /**
   * The id of the token at each rank; omitted when ids equal ranks (GPT-2, tiktoken files). Ids,
   * special ones included, are integers below `Tokenizer.MAX_VOCAB_SIZE` (2^21).
   */
  readonly ids?: readonly number[];
  /** Special tokens (never produced by merges) and their ids, e.g. `{"<|endoftext|>": 50256}`. */
  readonly specialTokens?: Readonly<Record<string, number>>;
}
