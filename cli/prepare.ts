/**
 * `deno task prepare`: tokenizes a corpus with the GPT-2 tokenizer into llm.c token shards.
 *
 *     deno task prepare --source sotu --out data/ --val 0.05
 *
 * @module
 */

import { CliError, defineCli, runCli, UsageError } from "./_args.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { NPM_DATASETS } from "../src/data/corpus.ts";
import { DEFAULT_SHARD_SIZE } from "../src/data/shards.ts";
import { prepareShards } from "../src/data/prepare.ts";

const CLI = defineCli({
  name: "prepare",
  usage: "deno task prepare --source <source> [options]",
  summary: "Tokenize a text corpus with GPT-2's tokenizer into llm.c token shards.",
  flags: {
    source: {
      type: "string",
      short: "s",
      value: "<source>",
      required: true,
      description: `${NPM_DATASETS.join(" | ")} (npm datasets), a .txt file (one document),\n` +
        "or a directory (every *.txt below it, one document each, sorted)",
    },
    out: {
      type: "string",
      short: "o",
      value: "<dir>",
      default: "data",
      description: "output directory",
    },
    name: {
      type: "string",
      short: "n",
      value: "<name>",
      description: "file prefix",
      defaultText: "the dataset name or the file/directory name",
    },
    val: {
      type: "number",
      min: 0,
      below: 1,
      value: "<fraction>",
      description: "start of the corpus (by bytes) kept for validation",
      defaultText: "0.05",
    },
    "val-docs": {
      type: "int",
      min: 0,
      value: "<n>",
      description: "instead of --val: the first n documents are the validation split",
    },
    "shard-size": {
      type: "int",
      min: 1,
      max: 2 ** 31 - 1, // the token count in the header is an int32
      value: "<n>",
      default: DEFAULT_SHARD_SIZE,
      description: "tokens per shard file",
    },
    quiet: { type: "boolean", short: "q", description: "no progress bar" },
  },
  epilog:
    `Writes <out>/<name>_val_000000.bin, then <out>/<name>_train_000001.bin, ... in llm.c's format
(256 int32 header: magic 20240520, version 1, token count; then uint16 tokens). Every document
starts with <|endoftext|> (50256).`,
});

/**
 * Runs the CLI with the given arguments; returns the exit code (0 ok, 1 failure, 2 usage error).
 * @param args command-line arguments, as in `Deno.args`
 * @param log where the help and the summary go (default: console.log)
 */
export function main(
  args: string[],
  log: (text: string) => void = console.log,
): Promise<number> {
  return runCli(CLI, args, async (opts) => {
    if (opts.val !== undefined && opts["val-docs"] !== undefined) {
      throw new UsageError("give --val or --val-docs, not both");
    }
    await checkSource(opts.source);
    const tokenizer = await Tokenizer.gpt2();
    const summary = await prepareShards({
      source: opts.source,
      outDir: opts.out,
      name: opts.name,
      tokenizer,
      eotToken: tokenizer.specialTokenId("<|endoftext|>"),
      valFraction: opts.val,
      valDocuments: opts["val-docs"],
      shardSize: opts["shard-size"],
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
  }, { out: log });
}

/** A dataset name, or a file or directory that exists: checked before the tokenizer loads. */
async function checkSource(source: string): Promise<void> {
  if ((NPM_DATASETS as readonly string[]).includes(source)) return;
  try {
    await Deno.stat(source);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new CliError(
      `--source ${source}: no such file or directory, and not a dataset (${
        NPM_DATASETS.join(", ")
      })`,
    );
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
