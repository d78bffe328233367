// Vocab files that load but could not encode (truncated or empty merges), GPT-2's own vocabulary
// through every loader, the cap on vocabulary size, and clear errors for arguments of the wrong type.
import assert from "node:assert/strict";
import { Tiktoken as JsTiktoken } from "js-tiktoken/lite";
import r50k from "js-tiktoken/ranks/r50k_base";
import {
  type BpeVocab,
  formatHuggingFaceVocab,
  formatOpenAIVocab,
  formatTiktokenRanks,
  parseHuggingFaceVocab,
  parseOpenAIVocab,
  parseTiktokenRanks,
  readHuggingFaceVocab,
  readOpenAIVocab,
  Tokenizer,
  trainBpe,
} from "../mod.ts";

const verdict = Deno.readTextFileSync(new URL("../examples/data/the-verdict.txt", import.meta.url));
const gpt2 = await Tokenizer.gpt2();
const jsTiktoken = new JsTiktoken(r50k);

// A small made-up vocabulary: 256 bytes, 1,156 merges (ids = ranks), then <|endoftext|>.
const small: BpeVocab = trainBpe(verdict, { vocabSize: 2000, specialTokens: ["<|endoftext|>"] });
const MERGES = small.tokens.length - 256;
const END = MERGES + 256; // <|endoftext|>'s id
const smallOpenAI = formatOpenAIVocab(small);
const mergeLines = smallOpenAI.vocabBpe.split("\n").slice(1, -1); // without #version and ""
const printable = Object.keys(JSON.parse(smallOpenAI.encoderJson)); // in id order

/** A regex matching a literal string. */
const literal = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));

/** Runs fn with a fresh temp dir, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_tokfiles_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a truncated vocab.bpe is rejected, naming the file, the count and the first token", async () => {
  assert.ok(MERGES > 1100, `only ${MERGES} merges`);
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/encoder.json`, smallOpenAI.encoderJson);
    await Deno.writeTextFile(
      `${dir}/vocab.bpe`,
      ["#version: 0.2", ...mergeLines.slice(0, 1000)].join("\n") + "\n",
    );
    const first = JSON.stringify(printable[256 + 1000]);
    await assert.rejects(readOpenAIVocab(`${dir}/encoder.json`, `${dir}/vocab.bpe`), {
      name: "Error",
      message: literal(
        `${dir}/vocab.bpe: its 1000 merges leave ${MERGES - 1000} of the ${MERGES + 256} ` +
          `regular tokens of ${dir}/encoder.json unreachable (neither a single byte nor a merge ` +
          `of reachable tokens; the first is ${first}, id 1256); is the file truncated?`,
      ),
    });
  });
  // One line short is as wrong as a thousand.
  const oneShort = ["#version: 0.2", ...mergeLines.slice(0, -1)].join("\n");
  assert.throws(
    () => parseOpenAIVocab(smallOpenAI.encoderJson, oneShort),
    literal(`leave 1 of the ${MERGES + 256} regular tokens`),
  );
});

Deno.test("an empty vocab.bpe is rejected instead of making every merged token special", () => {
  for (const empty of ["", "#version: 0.2\n"]) {
    assert.throws(() => parseOpenAIVocab(smallOpenAI.encoderJson, empty), {
      name: "Error",
      message: literal(
        `vocab.bpe: its 0 merges leave ${MERGES} of the ${MERGES + 256} regular tokens of ` +
          `encoder.json unreachable (neither a single byte nor a merge of reachable tokens; the ` +
          `first is ${JSON.stringify(printable[256])}, id 256)`,
      ),
    });
  }
});

Deno.test("a tokenizer.json with truncated or empty merges is rejected the same way", async () => {
  const json = JSON.parse(formatHuggingFaceVocab(small));
  const all: string[] = json.model.merges;
  await inTempDir(async (dir) => {
    for (const [kept, first] of [[1000, 1256], [0, 256]]) {
      json.model.merges = all.slice(0, kept);
      await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(json));
      await assert.rejects(readHuggingFaceVocab(`${dir}/tokenizer.json`), {
        name: "Error",
        message: literal(
          `${dir}/tokenizer.json: its ${kept} merges leave ${MERGES - kept} of the ` +
            `${MERGES + 256} regular tokens of ${dir}/tokenizer.json model.vocab unreachable ` +
            `(neither a single byte nor a merge of reachable tokens; the first is ` +
            `${JSON.stringify(printable[first])}, id ${first})`,
        ),
      });
    }
  });
});

Deno.test("a token is reachable through merges listed in any order", () => {
  // Reversed, every merge comes before the merges of its parts; each token is still built.
  const reversed = ["#version: 0.2", ...mergeLines.toReversed()].join("\n");
  const vocab = parseOpenAIVocab(smallOpenAI.encoderJson, reversed);
  assert.equal(vocab.tokens.length, small.tokens.length);
  const json = JSON.parse(formatHuggingFaceVocab(small));
  json.model.merges.reverse();
  assert.equal(parseHuggingFaceVocab(JSON.stringify(json)).tokens.length, small.tokens.length);
});

Deno.test("a merge whose part is unreachable does not make its result reachable", () => {
  // "Ġt" is kept out of reach (its own merge dropped); the merges using it still parse, but every
  // token built on it is unreachable, and so counted.
  const gt = mergeLines.indexOf("Ġ t");
  assert.ok(gt >= 0);
  const lines = mergeLines.filter((_, i) => i !== gt);
  const dependents = new Set<string>(["Ġt"]);
  for (const line of lines) { // merges come after those of their parts, so one pass finds all
    const [a, b] = line.split(" ");
    if (dependents.has(a) || dependents.has(b)) dependents.add(a + b);
  }
  assert.throws(
    () => parseOpenAIVocab(smallOpenAI.encoderJson, ["#version: 0.2", ...lines].join("\n")),
    literal(`its ${MERGES - 1} merges leave ${dependents.size} of the`),
  );
});

Deno.test("encoder.json's <|name|> entries are special; others must be declared", () => {
  const encoder = JSON.parse(smallOpenAI.encoderJson);
  const vocabBpe = smallOpenAI.vocabBpe;
  encoder["<|im_start|>"] = END + 1;
  const withChat = new Tokenizer(parseOpenAIVocab(JSON.stringify(encoder), vocabBpe));
  assert.deepEqual(withChat.vocab.specialTokens, { "<|endoftext|>": END, "<|im_start|>": END + 1 });
  encoder["[PAD]"] = END + 2;
  assert.throws(
    () => parseOpenAIVocab(JSON.stringify(encoder), vocabBpe),
    literal(`leave 1 of the ${MERGES + 257} regular tokens of encoder.json unreachable`),
  );
  assert.throws(() => parseOpenAIVocab(JSON.stringify(encoder), vocabBpe), /first is "\[PAD\]"/);
  const declared = parseOpenAIVocab(JSON.stringify(encoder), vocabBpe, {
    specialTokens: ["<|endoftext|>", "<|im_start|>", "[PAD]"],
  });
  assert.deepEqual(declared.specialTokens, {
    "<|endoftext|>": END,
    "<|im_start|>": END + 1,
    "[PAD]": END + 2,
  });
  // Declaring them replaces the <|name|> rule: an undeclared one is then an error too.
  assert.throws(
    () => parseOpenAIVocab(JSON.stringify(encoder), vocabBpe, { specialTokens: ["[PAD]"] }),
    literal(`leave 2 of the ${END + 2} regular tokens`),
  );
  assert.throws(
    () => parseOpenAIVocab(JSON.stringify(encoder), vocabBpe, { specialTokens: ["<|pad|>"] }),
    /encoder\.json has no entry "<\|pad\|>", which options\.specialTokens names/,
  );
});

Deno.test("GPT-2's vocabulary loads through every format, with js-tiktoken's ids", () => {
  const { encoderJson, vocabBpe } = formatOpenAIVocab(gpt2.vocab);
  const specials = { "<|endoftext|>": 50256 };
  const loaded: [string, BpeVocab][] = [
    ["js-tiktoken", gpt2.vocab],
    ["tiktoken", parseTiktokenRanks(formatTiktokenRanks(gpt2.vocab), { specialTokens: specials })],
    ["encoder.json + vocab.bpe", parseOpenAIVocab(encoderJson, vocabBpe)],
    ["tokenizer.json", parseHuggingFaceVocab(formatHuggingFaceVocab(gpt2.vocab))],
  ];
  const text = verdict.slice(0, 5000) + " naïve café 中文 🙂";
  for (const [name, vocab] of loaded) {
    assert.equal(vocab.tokens.length, 50256, name);
    assert.deepEqual(vocab.specialTokens, specials, name);
    const tok = new Tokenizer(vocab);
    assert.equal(tok.vocabSize, 50257, name);
    assert.deepEqual(tok.encode(text), jsTiktoken.encode(text), name);
    assert.deepEqual(tok.encode("<|endoftext|>", { allowedSpecial: "all" }), [50256], name);
  }
  // GPT-2's vocab.bpe one line short: the last merge's token, "Ġgazed", is out of reach.
  assert.throws(
    () => parseOpenAIVocab(encoderJson, vocabBpe.trimEnd().split("\n").slice(0, -1).join("\n")),
    /its 49999 merges leave 1 of the 50256 regular tokens .* the first is "Ġgazed", id 50255/,
  );
});

Deno.test("special-token and regular ids are capped at Tokenizer.MAX_VOCAB_SIZE", () => {
  const bytes = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
  const HUGE = 2 ** 24 - 1;
  assert.equal(Tokenizer.MAX_VOCAB_SIZE, 2 ** 21);
  assert.throws(() => new Tokenizer({ tokens: bytes, specialTokens: { "<|x|>": HUGE } }), {
    name: "RangeError",
    message: literal(
      `Tokenizer: special token "<|x|>" has invalid id ${HUGE}; ids are integers below 2^21 = ` +
        `2097152 (Tokenizer.MAX_VOCAB_SIZE)`,
    ),
  });
  const ids = [...Array(256).keys()].map((i) => (i === 255 ? 2 ** 21 : i));
  assert.throws(() => new Tokenizer({ tokens: bytes, ids }), {
    name: "RangeError",
    message: /token at rank 255 has invalid id 2097152/,
  });
  // The largest allowed id is fine (a 2^21-row vocabulary).
  const top = new Tokenizer({ tokens: bytes, specialTokens: { "<|x|>": 2 ** 21 - 1 } });
  assert.equal(top.vocabSize, 2 ** 21);

  // The loaders fail at load time, naming where the id came from.
  const tiktoken = formatTiktokenRanks(small);
  assert.throws(() => parseTiktokenRanks(tiktoken, { specialTokens: { "<|x|>": HUGE } }), {
    name: "RangeError",
    message: /tiktoken ranks: special token "<\|x\|>": id 16777215 is too large; ids must be below/,
  });
  assert.throws(
    () => parseTiktokenRanks(tiktoken, { specialTokens: { "<|x|>": -1 } }),
    /special token "<\|x\|>" has id -1; expected an integer >= 0/,
  );
  assert.throws(() => parseTiktokenRanks(tiktoken + `${btoa("zzq")} ${HUGE}\n`), {
    name: "RangeError",
    message: literal(`tiktoken ranks line ${small.tokens.length + 1}: id ${HUGE} is too large`),
  });
  const encoder = { ...JSON.parse(smallOpenAI.encoderJson), "<|endoftext|>": HUGE };
  assert.throws(() => parseOpenAIVocab(JSON.stringify(encoder), smallOpenAI.vocabBpe), {
    name: "RangeError",
    message: /encoder\.json: the file entry "<\|endoftext\|>": id 16777215 is too large/,
  });
  const hf = JSON.parse(formatHuggingFaceVocab(small));
  hf.added_tokens[0].id = HUGE;
  assert.throws(() => parseHuggingFaceVocab(JSON.stringify(hf)), {
    name: "RangeError",
    message: /tokenizer\.json: added_tokens\[0\] \("<\|endoftext\|>"\): id 16777215 is too large/,
  });
});

Deno.test("text arguments of the wrong type are a TypeError naming the function and the type", () => {
  const cases: [() => unknown, string][] = [
    [() => gpt2.encode(12345 as unknown as string), "encode: text must be a string, got number"],
    [
      () => gpt2.encodeOrdinary(null as unknown as string),
      "encodeOrdinary: text must be a string, got null",
    ],
    [
      () => gpt2.encode(["a"] as unknown as string),
      "encode: text must be a string, got array",
    ],
    [
      () => gpt2.specialTokenId(50256 as unknown as string),
      "specialTokenId: text must be a string, got number",
    ],
    [
      () => gpt2.encode("a", { allowedSpecial: ["<|endoftext|>"] as unknown as Set<string> }),
      'encode: allowedSpecial must be "all" or a Set of special tokens, got array',
    ],
    [
      () => gpt2.encode("a", { disallowedSpecial: "none" as unknown as "all" }),
      'encode: disallowedSpecial must be "all" or a Set of special tokens, got string',
    ],
    [
      () => trainBpe(5 as unknown as string, { vocabSize: 300 }),
      "trainBpe: corpus must be a string or an iterable of strings, got number",
    ],
    [
      () => trainBpe(["ok", 5] as unknown as string[], { vocabSize: 300 }),
      "trainBpe: corpus document 1 must be a string, got number",
    ],
    [
      () => trainBpe("ab", { vocabSize: 300, specialTokens: [7 as unknown as string] }),
      "trainBpe: options.specialTokens[0] must be a string, got number",
    ],
    [
      () => parseTiktokenRanks(new Uint8Array(4) as unknown as string),
      "parseTiktokenRanks: text must be a string, got Uint8Array",
    ],
    [
      () => parseOpenAIVocab({} as unknown as string, ""),
      "parseOpenAIVocab: encoderJson must be a string, got Object",
    ],
    [
      () => parseOpenAIVocab("{}", undefined as unknown as string),
      "parseOpenAIVocab: vocabBpe must be a string, got undefined",
    ],
    [
      () => parseHuggingFaceVocab(42 as unknown as string),
      "parseHuggingFaceVocab: text must be a string, got number",
    ],
    [
      () => new Tokenizer(undefined as unknown as BpeVocab),
      "Tokenizer: vocab must be a BpeVocab object, got undefined",
    ],
  ];
  for (const [fn, message] of cases) assert.throws(fn, { name: "TypeError", message });
});

Deno.test("decode rejects ids that are not an array of numbers instead of guessing", () => {
  // Before: decode(12345) returned "" and decode("15496") decoded the ids 1, 5, 4, 9, 6.
  const cases: [() => unknown, string][] = [
    [
      () => gpt2.decode(12345 as unknown as number[]),
      "decode: ids must be an array (or typed array) of token ids, got number",
    ],
    [
      () => gpt2.decode("15496" as unknown as number[]),
      "decode: ids must be an array (or typed array) of token ids, got string",
    ],
    [
      () => gpt2.decodeBytes(null as unknown as number[]),
      "decodeBytes: ids must be an array (or typed array) of token ids, got null",
    ],
    [
      () => gpt2.decode([15496, "995"] as unknown as number[]),
      "decode: at index 1: a token id must be a number, got string",
    ],
    [
      () => gpt2.decoder().push("5" as unknown as number),
      "decoder.push: a token id must be a number, got string",
    ],
  ];
  for (const [fn, message] of cases) assert.throws(fn, { name: "TypeError", message });
  // Numbers that are not ids stay a RangeError.
  assert.throws(() => gpt2.decode([NaN]), { name: "RangeError", message: /unknown token id NaN/ });
  assert.throws(() => gpt2.decodeBytes([2 ** 53]), /decodeBytes: at index 0: unknown token id/);
  assert.equal(gpt2.decode(new Int32Array([15496, 995])), "Hello world");
});
