import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Corpus,
  directoryCorpus,
  npmDatasetCorpus,
  openCorpus,
  prepareShards,
  readShard,
  textCorpus,
  textFileCorpus,
  type TokenEncoder,
} from "../mod.ts";
import { Progress } from "../src/_progress.ts";
import { wordBoundaryAtOrAfter } from "../src/data/prepare.ts";
import { main } from "../cli/prepare.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";

// A stand-in tokenizer: one token per UTF-8 byte; 256 is free for the end-of-text token.
const bytesTokenizer: TokenEncoder = {
  encodeOrdinary: (text) => Array.from(new TextEncoder().encode(text)),
};
const EOT = 256;

function expectedStream(docs: string[]): number[] {
  return docs.flatMap((d) => [EOT, ...new TextEncoder().encode(d)]);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_prepare_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

function concat(files: string[]): number[] {
  return files.flatMap((f) => [...readShard(f)]);
}

// A small tree: nested .txt files, a non-.txt file, unicode text.
async function writeTree(dir: string): Promise<string[]> {
  const docs: [string, string][] = [
    ["b.txt", "Second file, top level."],
    ["a/z.txt", "Nested deeper: naïve café ☕ text."],
    ["a.txt", "First file at the top."],
    ["c/d/e.txt", "The last one, two levels down."],
  ];
  for (const [path, text] of docs) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, path), text);
  }
  await Deno.writeTextFile(join(dir, "notes.md"), "not a .txt file");
  // Sorted by relative path: "a.txt" < "a/z.txt" ("." < "/") < "b.txt" < "c/d/e.txt".
  return [docs[2][1], docs[1][1], docs[0][1], docs[3][1]];
}

Deno.test("directoryCorpus reads every .txt file below a directory, sorted by path", async () => {
  await withTempDir(async (dir) => {
    const expected = await writeTree(join(dir, "tree"));
    const corpus = await directoryCorpus(join(dir, "tree"));
    assert.equal(corpus.name, "tree");
    assert.equal(corpus.documentCount, 4);
    assert.equal(
      corpus.totalBytes,
      expected.reduce((n, t) => n + new TextEncoder().encode(t).length, 0),
    );
    const docs: string[] = [];
    for await (const d of corpus.documents()) docs.push(d);
    assert.deepEqual(docs, expected);
  });
});

Deno.test("prepareShards on a directory: first documents as val, EOT before every document", async () => {
  await withTempDir(async (dir) => {
    const docs = await writeTree(join(dir, "tree"));
    const out = join(dir, "out");
    const summary = await prepareShards({
      source: join(dir, "tree"),
      outDir: out,
      tokenizer: bytesTokenizer,
      eotToken: EOT,
      valDocuments: 1,
      progress: false,
    });
    const stream = expectedStream(docs);
    const valLength = 1 + new TextEncoder().encode(docs[0]).length;
    assert.equal(summary.name, "tree");
    assert.equal(summary.documents, 4);
    assert.equal(summary.valDocuments, 1);
    assert.equal(summary.valTokens, valLength);
    assert.equal(summary.trainTokens, stream.length - valLength);
    assert.deepEqual(await names(out), ["tree_train_000001.bin", "tree_val_000000.bin"]);
    assert.deepEqual(concat(summary.valFiles), stream.slice(0, valLength));
    assert.deepEqual(concat(summary.trainFiles), stream.slice(valLength));
  });
});

Deno.test("prepareShards valFraction cuts the stream at a word boundary, inside a document", async () => {
  await withTempDir(async (dir) => {
    const docs = ["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"];
    const summary = await prepareShards({
      source: textCorpus(docs, "greek"),
      outDir: dir,
      tokenizer: bytesTokenizer,
      eotToken: EOT,
      valFraction: 0.3,
      progress: false,
    });
    const val = concat(summary.valFiles), train = concat(summary.trainFiles);
    assert.deepEqual([...val, ...train], expectedStream(docs)); // one EOT, nothing lost
    const valText = new TextDecoder().decode(new Uint8Array(val.slice(1)));
    // 30% of 66 bytes rounds up to byte 20, inside "delta": the cut moves on to the next space.
    assert.equal(valText, "alpha beta gamma delta");
    assert.equal(
      new TextDecoder().decode(new Uint8Array(train)),
      " epsilon zeta eta theta iota kappa lambda mu",
    );
    assert.equal(summary.valDocuments, 1);
  });
});

Deno.test("prepareShards valFraction over many documents takes about that fraction", async () => {
  await withTempDir(async (dir) => {
    const docs = Array.from(
      { length: 200 },
      (_, i) => `document ${i} says ${"word ".repeat(i % 17)}end`,
    );
    const summary = await prepareShards({
      source: textCorpus(docs),
      outDir: dir,
      name: "many",
      tokenizer: bytesTokenizer,
      eotToken: EOT,
      valFraction: 0.1,
      shardSize: 1000,
      progress: false,
    });
    const stream = expectedStream(docs);
    assert.equal(summary.valTokens + summary.trainTokens, stream.length);
    const textBytes = stream.length - docs.length;
    assert.ok(Math.abs(summary.valTokens - 0.1 * textBytes) < 40, `val ${summary.valTokens}`);
    assert.deepEqual([...concat(summary.valFiles), ...concat(summary.trainFiles)], stream);
    // Global shard numbering as in llm.c: val first, train continues the index (here val needs
    // two shards of 1000 tokens, so train starts at 2); every shard but each split's last is full.
    assert.deepEqual(summary.valFiles.map((f) => f.slice(dir.length + 1)), [
      "many_val_000000.bin",
      "many_val_000001.bin",
    ]);
    assert.match(summary.trainFiles[0], /many_train_000002\.bin$/);
    assert.equal(readShard(summary.valFiles[0]).length, 1000);
    assert.ok(summary.trainFiles.slice(0, -1).every((f) => readShard(f).length === 1000));
  });
});

Deno.test("prepareShards with no val split writes train shards from index 0", async () => {
  await withTempDir(async (dir) => {
    const summary = await prepareShards({
      source: textCorpus(["one", "two"], "x"),
      outDir: dir,
      tokenizer: bytesTokenizer,
      eotToken: EOT,
      valFraction: 0,
      progress: false,
    });
    assert.deepEqual(await names(dir), ["x_train_000000.bin"]);
    assert.equal(summary.valTokens, 0);
    assert.deepEqual(concat(summary.trainFiles), expectedStream(["one", "two"]));
  });
});

Deno.test("prepareShards tokenizes a huge document in pieces with the same result", async () => {
  await withTempDir(async (dir) => {
    const doc = "lorem ipsum dolor sit amet ".repeat(100_000); // 2.7M chars: three pieces
    let calls = 0;
    const counting: TokenEncoder = {
      encodeOrdinary: (t) => (calls++, bytesTokenizer.encodeOrdinary(t)),
    };
    const summary = await prepareShards({
      source: textCorpus([doc]),
      outDir: dir,
      tokenizer: counting,
      eotToken: EOT,
      valFraction: 0,
      progress: false,
    });
    assert.equal(calls, 3);
    assert.deepEqual(readShard(summary.trainFiles[0]), new Uint16Array(expectedStream([doc])));
  });
});

Deno.test("prepareShards leaves no files when the tokenizer fails midway", async () => {
  await withTempDir(async (dir) => {
    const docs = Array.from({ length: 50 }, (_, i) => `doc ${i}`);
    let n = 0;
    const flaky: TokenEncoder = {
      encodeOrdinary: (t) => {
        if (++n === 40) throw new Error("tokenizer failed");
        return bytesTokenizer.encodeOrdinary(t);
      },
    };
    await assert.rejects(
      prepareShards({
        source: textCorpus(docs),
        outDir: dir,
        tokenizer: flaky,
        eotToken: EOT,
        shardSize: 20,
        progress: false,
      }),
      /tokenizer failed/,
    );
    assert.deepEqual(await names(dir), []);
    // Token ids a uint16 shard cannot hold are refused the same way.
    await assert.rejects(
      prepareShards({
        source: textCorpus(docs),
        outDir: dir,
        tokenizer: { encodeOrdinary: () => [70000] },
        progress: false,
      }),
      /token 70000 at index 0 is outside uint16 range/,
    );
    assert.deepEqual(await names(dir), []);
  });
});

Deno.test("prepareShards validates its options", async () => {
  const source = textCorpus(["a b", "c d"]);
  const base = { source, outDir: "/tmp/never-written", tokenizer: bytesTokenizer, progress: false };
  await assert.rejects(prepareShards({ ...base, valFraction: 1 }), RangeError);
  await assert.rejects(prepareShards({ ...base, valFraction: -0.1 }), RangeError);
  await assert.rejects(
    prepareShards({ ...base, valDocuments: 2 }),
    /valDocuments must be an integer in \[0, 2\)/,
  );
  await assert.rejects(prepareShards({ ...base, valDocuments: 1, valFraction: 0.1 }), TypeError);
  await assert.rejects(prepareShards({ ...base, eotToken: 65536 }), RangeError);
  await assert.rejects(
    prepareShards({ ...base, source: "/no/such/corpus" }),
    /neither a file, a directory, nor a dataset/,
  );
});

Deno.test("wordBoundaryAtOrAfter cuts only at a space between two non-space characters", () => {
  const text = "ab  cd\n ef gh";
  assert.equal(wordBoundaryAtOrAfter(text, 0), 10);
  assert.equal(wordBoundaryAtOrAfter(text, 11), text.length);
  assert.equal(wordBoundaryAtOrAfter("one two", 0), 3);
});

Deno.test("textFileCorpus and openCorpus read a file as one document named by its stem", async () => {
  const path = new URL("../examples/data/the-verdict.txt", import.meta.url).pathname;
  for (const corpus of [await textFileCorpus(path), await openCorpus(path)]) {
    assert.equal(corpus.name, "the-verdict");
    assert.equal(corpus.documentCount, 1);
    assert.equal(corpus.totalBytes, 20479);
  }
});

async function firstDocuments(corpus: Corpus, n: number): Promise<string[]> {
  const out: string[] = [];
  for await (const d of corpus.documents()) {
    out.push(d);
    if (out.length === n) break;
  }
  return out;
}

Deno.test("npmDatasetCorpus('sotu') yields the 233 State of the Union addresses by year", async () => {
  const corpus = await npmDatasetCorpus("sotu");
  assert.equal(corpus.name, "sotu");
  assert.equal(corpus.documentCount, 233);
  assert.ok(
    corpus.totalBytes > 10_000_000 && corpus.totalBytes < 12_000_000,
    `${corpus.totalBytes}`,
  );
  const [first] = await firstDocuments(corpus, 1);
  assert.ok(first.startsWith("Fellow-Citizens of the Senate and House of Representatives:"));
});

Deno.test("npmDatasetCorpus('moby-dick') yields 139 sections, chapters with their headings", async () => {
  const corpus = await openCorpus("moby-dick");
  assert.equal(corpus.documentCount, 139);
  assert.ok(corpus.totalBytes > 1_100_000 && corpus.totalBytes < 1_300_000, `${corpus.totalBytes}`);
  const docs = await firstDocuments(corpus, 4);
  assert.ok(docs[0].startsWith("CONTENTS"));
  assert.ok(docs[1].startsWith("ETYMOLOGY."));
  assert.ok(docs[3].startsWith("CHAPTER 1. Loomings.\n\nCall me Ishmael."));
  await assert.rejects(
    npmDatasetCorpus("nope"),
    /unknown dataset "nope" \(known: sotu, moby-dick\)/,
  );
});

Deno.test("Progress prints plain lines at an interval when not on a terminal", () => {
  let clock = 0;
  const lines: string[] = [];
  const p = new Progress({
    label: "job",
    total: 4_000_000,
    unit: "bytes",
    tty: false,
    intervalMs: 1000,
    now: () => clock,
    write: (s) => lines.push(s),
  });
  clock = 500;
  p.update(1_000_000, "x");
  clock = 900;
  p.update(1_500_000); // within the interval of the last line: skipped
  clock = 2000;
  p.update(2_000_000, "y");
  clock = 4000;
  p.done(4_000_000);
  assert.deepEqual(lines, [
    "job   25.0%  [#####               ]  1.0 MB / 4.0 MB  2.0 MB/s  ETA 0:02  x\n",
    "job   50.0%  [##########          ]  2.0 MB / 4.0 MB  1.0 MB/s  ETA 0:02  y\n",
    "job  100.0%  [####################]  4.0 MB / 4.0 MB  1.0 MB/s  0:04 total\n",
  ]);
});

Deno.test("Progress redraws in place with \\r on a terminal and counts items without a total", () => {
  let clock = 0;
  const out: string[] = [];
  const p = new Progress({ unit: "docs", tty: true, now: () => clock, write: (s) => out.push(s) });
  clock = 2000;
  p.update(1234);
  p.done(1500);
  assert.deepEqual(out, ["\r1,234 docs  617 docs/s\x1b[K", "\r1,500 docs  750 docs/s\x1b[K\n"]);
});

Deno.test("the GPT-2 tokenizer pipeline gives The Verdict 5,145 tokens + 1 EOT", async () => {
  await withTempDir(async (dir) => {
    const tokenizer = await Tokenizer.gpt2();
    const path = new URL("../examples/data/the-verdict.txt", import.meta.url).pathname;
    const summary = await prepareShards({
      source: path,
      outDir: dir,
      tokenizer,
      valFraction: 0,
      progress: false,
    });
    const tokens = readShard(summary.trainFiles[0]);
    assert.equal(tokens.length, 5146);
    assert.equal(tokens[0], 50256);
    assert.equal(tokenizer.decode(tokens.subarray(1)), Deno.readTextFileSync(path));
    // A val cut inside the document keeps every token: cutting at a word boundary is lossless.
    const split = await prepareShards({
      source: path,
      outDir: join(dir, "s"),
      tokenizer,
      valFraction: 0.1,
      progress: false,
    });
    assert.equal(split.valTokens + split.trainTokens, 5146);
    assert.deepEqual([...concat(split.valFiles), ...concat(split.trainFiles)], [...tokens]);
  });
});

Deno.test("deno task prepare --help prints usage", async () => {
  const cli = new URL("../cli/prepare.ts", import.meta.url).pathname;
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", cli, "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0);
  const text = new TextDecoder().decode(stdout);
  assert.match(text, /Usage: deno task prepare --source <source>/);
  assert.match(text, /--shard-size <n>/);
});

Deno.test("the prepare CLI writes shards from a directory and reports them", async () => {
  await withTempDir(async (dir) => {
    await writeTree(join(dir, "tree"));
    const lines: string[] = [];
    const code = await main([
      "--source",
      join(dir, "tree"),
      "--out",
      join(dir, "out"),
      "--val-docs",
      "1",
      "-q",
    ], (s) => lines.push(s));
    assert.equal(code, 0);
    assert.match(
      lines[0],
      /^tree: 4 documents, \d+ bytes -> \d+ val tokens \(1 document\), \d+ train tokens/,
    );
    assert.deepEqual(await names(join(dir, "out")), [
      "tree_train_000001.bin",
      "tree_val_000000.bin",
    ]);
    assert.equal(readShard(join(dir, "out", "tree_val_000000.bin"))[0], 50256);
  });
});
