/**
 * `deno task prepare`: tokenizes a corpus with the GPT-2 tokenizer into llm.c token shards.
 *
 *     deno task prepare --source sotu --out data/ --val 0.05
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { NPM_DATASETS } from "./corpus.ts";
import { DEFAULT_SHARD_SIZE } from "./shards.ts";
import { prepareShards } from "./prepare.ts";

const HELP = `Tokenize a text corpus with GPT-2's tokenizer into llm.c token shards.

Usage: deno task prepare --source <source> [options]

  -s, --source <source>   ${NPM_DATASETS.join(" | ")} (npm datasets), a .txt file (one document),
                          or a directory (every *.txt below it, one document each, sorted)
  -o, --out <dir>         output directory (default: data)
  -n, --name <name>       file prefix (default: the dataset name or the file/directory name)
      --val <fraction>    start of the corpus (by bytes) kept for validation (default: 0.05)
      --val-docs <n>      instead of --val: the first n documents are the validation split
      --shard-size <n>    tokens per shard file (default: ${DEFAULT_SHARD_SIZE})
  -q, --quiet             no progress bar
  -h, --help              show this help

Writes <out>/<name>_val_000000.bin, then <out>/<name>_train_000001.bin, ... in llm.c's format
(256 int32 header: magic 20240520, version 1, token count; then uint16 tokens). Every document
starts with <|endoftext|> (50256).`;

function parseNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) {
    throw new TypeError(`--${flag}: not a number: "${value}"`);
  }
  return n;
}

/**
 * Runs the CLI with the given arguments; returns the exit code (0 ok, 1 failure, 2 usage error).
 * @param args command-line arguments, as in `Deno.args`
 * @param log where the help and the summary go (default: console.log)
 */
export async function main(
  args: string[],
  log: (text: string) => void = console.log,
): Promise<number> {
  let opts;
  let val: number | undefined, valDocs: number | undefined, shardSize: number | undefined;
  try {
    opts = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        source: { type: "string", short: "s" },
        out: { type: "string", short: "o", default: "data" },
        name: { type: "string", short: "n" },
        val: { type: "string" },
        "val-docs": { type: "string" },
        "shard-size": { type: "string" },
        quiet: { type: "boolean", short: "q", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
    val = parseNumber("val", opts.val);
    valDocs = parseNumber("val-docs", opts["val-docs"]);
    shardSize = parseNumber("shard-size", opts["shard-size"]);
  } catch (e) {
    console.error(`prepare: ${(e as Error).message}\nRun with --help for usage.`);
    return 2;
  }
  if (opts.help) {
    log(HELP);
    return 0;
  }
  if (!opts.source) {
    console.error("prepare: --source is required.\nRun with --help for usage.");
    return 2;
  }
  try {
    const tokenizer = await Tokenizer.gpt2();
    const summary = await prepareShards({
      source: opts.source,
      outDir: opts.out,
      name: opts.name,
      tokenizer,
      eotToken: tokenizer.specialTokenId("<|endoftext|>"),
      valFraction: val,
      valDocuments: valDocs,
      shardSize,
      progress: !opts.quiet,
    });
    const count = (n: number) => n.toLocaleString("en-US");
    log(
      `${summary.name}: ${count(summary.documents)} documents, ${count(summary.bytes)} bytes -> ` +
        `${count(summary.valTokens)} val tokens (${summary.valDocuments} ` +
        `document${summary.valDocuments === 1 ? "" : "s"}), ` +
        `${count(summary.trainTokens)} train tokens in ${summary.seconds.toFixed(1)} s`,
    );
    for (const f of [...summary.valFiles, ...summary.trainFiles]) log(`  ${f}`);
    return 0;
  } catch (e) {
    console.error(`prepare: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
