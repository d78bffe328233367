/**
 * Runs every CPU benchmark, prints the tables, and writes bench/results/cpu-<date>.json with the
 * machine description. Every number is a same-run ratio against a reference (OpenBLAS called
 * directly, plain TypedArray loops, PyTorch on the same machine, js-tiktoken and tiktoken).
 *
 *   deno task bench            # full run (a few minutes on 2 cores)
 *   deno task bench --quick    # smoke run
 * @module
 */

import { openblas } from "../ffi/openblas.ts";
import { quickFlag } from "./_common.ts";
import { formatMatmul, type MatmulResult, runMatmulBench } from "./matmul_bench.ts";
import {
  type ElementwiseResult,
  formatElementwise,
  runElementwiseBench,
} from "./elementwise_bench.ts";
import {
  formatTransformer,
  runTransformerBench,
  type TransformerResult,
} from "./transformer_bench.ts";
import { formatTokenizer, runTokenizerBench, type TokenizerResult } from "./tokenizer_bench.ts";
import { formatGpt2, type Gpt2Result, runGpt2Bench } from "./gpt2_bench.ts";
import { type FinetuneResult, formatFinetune, runFinetuneBench } from "./finetune_lora_dpo.ts";
import {
  type ClassifyInstructResult,
  formatClassifyInstruct,
  runClassifyInstructBench,
} from "./finetune_classify_instruct.ts";
import { formatMoE, type MoEBenchResult, runMoEBench } from "./moe_bench.ts";
import { formatOptim, type OptimResult, runOptimBench } from "./optim_bench.ts";
import { type AttentionResult, formatAttention, runAttentionBench } from "./attention_bench.ts";

/** Where and with what the numbers were taken. */
interface MachineInfo {
  cpu: string;
  cores: number;
  os: string;
  deno: string;
  v8: string;
  openblasConfig: string | null;
  openblasPath: string | null;
  openblasThreads: number | null;
  torch: string | null;
  torchThreads: number | null;
}

/** The JSON written to bench/results/. */
interface Report {
  date: string;
  quick: boolean;
  machine: MachineInfo;
  wallSeconds: number;
  matmul: MatmulResult[];
  elementwise: ElementwiseResult[];
  transformer: TransformerResult;
  tokenizer: TokenizerResult;
  gpt2: Gpt2Result;
  finetune: FinetuneResult;
  classifyInstruct: ClassifyInstructResult;
  moe: MoEBenchResult;
  optim: OptimResult;
  attention: AttentionResult;
}

/**
 * The "model name" line of /proc/cpuinfo, or "unknown". Deno reads /proc/cpuinfo only with
 * --allow-all, so `cat` (covered by --allow-run) reads it.
 */
function cpuModel(): string {
  try {
    const { stdout } = new Deno.Command("cat", { args: ["/proc/cpuinfo"] }).outputSync();
    const info = new TextDecoder().decode(stdout);
    const line = info.split("\n").find((l) => l.startsWith("model name"));
    return line ? line.split(":")[1].trim() : "unknown";
  } catch {
    return "unknown";
  }
}

function machineInfo(t: TransformerResult): MachineInfo {
  const blas = openblas();
  return {
    cpu: cpuModel(),
    cores: navigator.hardwareConcurrency,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    openblasConfig: blas?.config ?? null,
    openblasPath: blas?.path ?? null,
    openblasThreads: blas ? blas.symbols.openblas_get_num_threads() : null,
    torch: t.torchVersion,
    torchThreads: t.torchThreads,
  };
}

async function main(): Promise<void> {
  const quick = quickFlag();
  const opts = { quick };
  const t0 = performance.now();
  const section = (title: string): void => console.log(`\n== ${title} ==`);

  section("matmul: Tensor API vs cblas_sgemm on the same OpenBLAS");
  const matmul = runMatmulBench(opts);
  console.log(formatMatmul(matmul));

  section("memory-bound ops: Tensor API vs plain TypedArray loops");
  const elementwise = runElementwiseBench(opts);
  console.log(formatElementwise(elementwise));

  section("transformer training step: denograd vs PyTorch CPU");
  const transformer = await runTransformerBench(opts);
  console.log(formatTransformer(transformer));

  section("GPT-2 tokenizer vs js-tiktoken and tiktoken (WASM); BPE trainer on SOTU");
  const tokenizer = await runTokenizerBench(opts);
  console.log(formatTokenizer(tokenizer));

  section("GPT-2 124M: AdamW training step vs PyTorch CPU; generation with and without KV cache");
  const gpt2 = await runGpt2Bench(opts);
  console.log(formatGpt2(gpt2));

  section("GPT-2 124M fine-tuning: DPO and LoRA steps vs PyTorch CPU");
  const finetune = await runFinetuneBench(opts);
  console.log(formatFinetune(finetune));

  section("GPT-2 124M fine-tuning: classification and instruction steps vs PyTorch CPU");
  const classifyInstruct = await runClassifyInstructBench(opts);
  console.log(formatClassifyInstruct(classifyInstruct));

  section("mixture of experts (E8 top-2) vs dense MLP at equal active parameters, fwd+bwd");
  const moe = await runMoEBench(opts);
  console.log(formatMoE(moe));

  section("optimizer step on GPT-2 124M's parameters: SGD, Adam, AdamW, Muon vs torch.optim");
  const optim = await runOptimBench(opts);
  console.log(formatOptim(optim));

  section("attention: fused (tiled, online softmax) vs naive, causal, H=12 D=64, fwd and fwd+bwd");
  const attention = runAttentionBench(opts);
  console.log(formatAttention(attention));

  const machine = machineInfo(transformer);
  const wallSeconds = (performance.now() - t0) / 1000;
  section("machine");
  console.log(
    `${machine.cpu}, ${machine.cores} cores, Deno ${machine.deno}, torch ${machine.torch ?? "n/a"}`,
  );
  console.log(
    `OpenBLAS (${machine.openblasThreads} threads): ${machine.openblasConfig ?? "not found"}`,
  );

  const date = new Date().toISOString().slice(0, 10);
  const report: Report = {
    date,
    quick,
    machine,
    wallSeconds,
    matmul,
    elementwise,
    transformer,
    tokenizer,
    gpt2,
    finetune,
    classifyInstruct,
    moe,
    optim,
    attention,
  };
  const dir = new URL("./results/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  const file = new URL(`cpu-${date}${quick ? "-quick" : ""}.json`, dir);
  Deno.writeTextFileSync(file, JSON.stringify(report, null, 2) + "\n");
  console.log(`\nwrote ${file.pathname} (${wallSeconds.toFixed(0)} s)`);
}

if (import.meta.main) await main();
