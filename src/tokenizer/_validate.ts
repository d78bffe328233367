/**
 * Input checks shared by the tokenizer, the vocab file readers and the trainer.
 * @module
 */

/**
 * Token ids (regular and special) must be integers below this, so a vocabulary, and the
 * embedding table sized by it, has at most 2^21 = 2,097,152 rows: twice the largest vocabularies in
 * use, and the bound the trainer and the merge loop's heap keys already have. One stray id such as
 * 2^24 - 1 would otherwise make a 16.7M-entry vocabulary.
 */
export const MAX_VOCAB_SIZE = 1 << 21;

/** A value's type for messages: "number", "null", "array", "Uint8Array", ... */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

/**
 * Throws a TypeError unless value is a string.
 * @param value what was passed
 * @param where the function, for the message (e.g. "encode")
 * @param what the argument's name
 */
export function requireString(
  value: unknown,
  where: string,
  what: string,
): asserts value is string {
  if (typeof value !== "string") {
    throw new TypeError(`${where}: ${what} must be a string, got ${typeName(value)}`);
  }
}

/**
 * Throws a RangeError if id is past the vocabulary size cap ({@link MAX_VOCAB_SIZE}).
 * @param id an integer id, already checked to be >= 0
 * @param where who gives it, for the message (e.g. `tokenizer.json: added_tokens[3]`)
 */
export function checkIdCap(id: number, where: string): void {
  if (id >= MAX_VOCAB_SIZE) {
    throw new RangeError(
      `${where}: id ${id} is too large; ids must be below 2^21 = ${MAX_VOCAB_SIZE}, the largest ` +
        `vocabulary supported (the vocabulary has one entry per id up to the largest)`,
    );
  }
}
