/**
 * A mixture-of-experts layer against the dense MLP with the same ACTIVE parameters, forward +
 * backward, in the same run; and both against PyTorch CPU running the same algorithm
 * (`moe_torch_reference.py`, a subprocess driven over stdin, interleaved with denograd).
 *
 * Shapes (GPT-2 small width): 2048 tokens (4 x 512) of C = 768. MoE: E = 8 experts, top-2 with
 * renormalised gates, expert width H = 1536 (= 2C, so two experts hold as many weights as one
 * 4C-wide MLP), capacity factor 1.25, load-balancing (0.01) and z (0.001) losses. Dense: GPT-2's
 * MLP, 768 -> 3072 -> 768. Both in training mode, gradients for the input and every weight.
 * The capacity factor makes the experts compute 1.25x the dense MLP's GEMM FLOPs (empty slots
 * included), so ~1.25 plus routing overhead is the ratio to expect.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-run --allow-write bench/moe_bench.ts [--quick]
 *
 * Writes bench/results/moe-<date>.json when run on its own.
 * @module
 */

import {
  manualSeed,
  memoryStats,
  MLP,
  MoE,
  randn,
  type Tensor,
  tidy,
  writeFileAtomic,
} from "../mod.ts";
import { type BenchOptions, median, num, quickFlag, table, timeOnce } from "./_common.ts";
import { settle, startTorch } from "./_torch.ts";

/** The benchmarked shapes. */
export const MOE_CONFIG = {
  tokens: 2048,
  width: 768,
  experts: 8,
  topK: 2,
  expertHidden: 1536,
  denseHidden: 3072,
  capacityFactor: 1.25,
} as const;
const TORCH_THREADS = 2;

/** One side's median step times. */
export interface MoESide {
  /** Median ms of one MoE forward + backward. */
  moeMs: number;
  /** Median ms of one dense MLP forward + backward. */
  denseMs: number;
  /** moeMs / denseMs. */
  ratio: number;
}

/** What the MoE benchmark measured. */
export interface MoEBenchResult {
  config: typeof MOE_CONFIG;
  /** Weights one token runs through: the router plus k experts, vs the MLP. */
  activeParams: { moe: number; dense: number };
  /** All weights: the router plus E experts, vs the MLP. */
  totalParams: { moe: number; dense: number };
  reps: number;
  denograd: MoESide;
  torch: MoESide | null;
  /** torch ms / denograd ms for each layer (above 1: denograd is faster). */
  torchOverDenograd: { moe: number; dense: number } | null;
  /** Routing of the last denograd step (random inputs, N(0, 0.02) router: near uniform). */
  routing: { capacity: number; tokensPerExpert: number[]; dropped: number };
  torchVersion: string | null;
  torchThreads: number | null;
  /** Live bytes after the last step minus after the first (0: nothing leaks). */
  leakedBytes: number;
  torchError?: string;
}

/**
 * Times the MoE layer and the dense MLP alternately on denograd and PyTorch.
 * @returns median step times, ratios and the routing of the last step
 */
export async function runMoEBench(opts: BenchOptions): Promise<MoEBenchResult> {
  const { tokens, width: c, experts, topK, expertHidden, denseHidden, capacityFactor } = MOE_CONFIG;
  manualSeed(0);
  const moe = new MoE(c, { experts, topK, hidden: expertHidden, capacityFactor, std: 0.02 });
  const dense = new MLP(c, { std: 0.02 }); // as the reference: N(0, 0.02) weights, zero biases
  const x = randn([tokens, c], { requiresGrad: true });
  const upstream = randn([tokens, c]);
  const step = (layer: "moe" | "dense") => () =>
    tidy(() => {
      const y = layer === "moe" ? moe.forward(x) : dense.forward(x);
      let loss: Tensor = y.mul(upstream).sum();
      const router = layer === "moe" ? moe.takeRouterLoss() : null;
      if (router) loss = loss.add(router);
      loss.backward();
    });
  const zeroGrads = () => {
    for (const p of [x, ...moe.parameters(), ...dense.parameters()]) p.zeroGrad();
  };

  const { torch, torchError } = await startTorch(
    new URL("./moe_torch_reference.py", import.meta.url),
    [tokens, c, experts, topK, expertHidden, denseHidden, capacityFactor, TORCH_THREADS],
  );
  const warmup = 1;
  const reps = opts.quick ? 2 : 7;
  const ours = { moe: [] as number[], dense: [] as number[] };
  const theirs = { moe: [] as number[], dense: [] as number[] };
  let liveAfterFirst = 0;
  for (let r = 0; r < warmup + reps; r++) {
    // Alternate which layer goes first, so drift in machine load hits both alike.
    const order = r % 2 ? (["dense", "moe"] as const) : (["moe", "dense"] as const);
    for (const layer of order) {
      const ms = timeOnce(step(layer));
      zeroGrads();
      if (r >= warmup) ours[layer].push(ms);
    }
    if (r === 0) liveAfterFirst = memoryStats().liveBytes;
    if (torch) {
      await settle();
      for (const layer of order) {
        const s = await torch.send(layer);
        if (r >= warmup) theirs[layer].push(Number(s.ms));
      }
      await settle();
    }
  }
  if (torch) await torch.close();
  const leakedBytes = memoryStats().liveBytes - liveAfterFirst;
  const stats = moe.stats!;

  const side = (t: { moe: number[]; dense: number[] }): MoESide => {
    const moeMs = median(t.moe), denseMs = median(t.dense);
    return { moeMs, denseMs, ratio: moeMs / denseMs };
  };
  const denograd = side(ours);
  const torchSide = theirs.moe.length ? side(theirs) : null;
  const expert = 2 * c * expertHidden + expertHidden + c;
  const result: MoEBenchResult = {
    config: MOE_CONFIG,
    activeParams: { moe: experts * c + topK * expert, dense: dense.numParameters() },
    totalParams: { moe: moe.numParameters(), dense: dense.numParameters() },
    reps,
    denograd,
    torch: torchSide,
    torchOverDenograd: torchSide
      ? { moe: torchSide.moeMs / denograd.moeMs, dense: torchSide.denseMs / denograd.denseMs }
      : null,
    routing: {
      capacity: stats.capacity,
      tokensPerExpert: stats.tokensPerExpert,
      dropped: stats.dropped,
    },
    torchVersion: torch?.version ?? null,
    torchThreads: torch?.threads ?? null,
    leakedBytes,
    ...(torchError ? { torchError } : {}),
  };
  for (const t of [x, upstream]) t.dispose();
  moe.dispose();
  dense.dispose();
  return result;
}

/** The result as a plain-text table. */
export function formatMoE(r: MoEBenchResult): string {
  const { tokens, width, experts, topK, expertHidden, denseHidden, capacityFactor } = r.config;
  const t = r.torch;
  const rows = [
    [
      `MoE E${experts} top-${topK} H${expertHidden} cf ${capacityFactor}`,
      num(r.activeParams.moe / 1e6, 2),
      num(r.denograd.moeMs, 1),
      t ? num(t.moeMs, 1) : "n/a",
      r.torchOverDenograd ? num(r.torchOverDenograd.moe, 3) : "n/a",
    ],
    [
      `dense MLP H${denseHidden}`,
      num(r.activeParams.dense / 1e6, 2),
      num(r.denograd.denseMs, 1),
      t ? num(t.denseMs, 1) : "n/a",
      r.torchOverDenograd ? num(r.torchOverDenograd.dense, 3) : "n/a",
    ],
  ];
  const out = table(
    [
      `fwd+bwd, ${tokens} tokens x C${width}`,
      "active M",
      "denograd ms",
      "torch ms",
      "torch/denograd",
    ],
    rows,
  );
  const ratios = `MoE / dense time: denograd ${num(r.denograd.ratio, 3)}, torch ${
    t ? num(t.ratio, 3) : "n/a"
  } (the experts do ${capacityFactor}x the dense GEMM work at this capacity factor)`;
  const routing = `routing: capacity ${r.routing.capacity}, tokens per expert [${
    r.routing.tokensPerExpert.join(", ")
  }], ${r.routing.dropped} choices dropped`;
  const leak = r.leakedBytes > 0 ? `\nWARNING: live memory grew ${r.leakedBytes} bytes` : "";
  const note = r.torchError ? `\nPyTorch skipped: ${r.torchError}` : "";
  return `${out}\n${ratios}\n${routing}${leak}${note}`;
}

if (import.meta.main) {
  const quick = quickFlag();
  const result = await runMoEBench({ quick });
  console.log(formatMoE(result));
  const date = new Date().toISOString().slice(0, 10);
  const machine = {
    cores: navigator.hardwareConcurrency,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    deno: Deno.version.deno,
    torch: result.torchVersion,
    note: "shared machine: absolute times are noise; compare the same-run ratios",
  };
  const dir = new URL("./results/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  const file = new URL(`moe-${date}${quick ? "-quick" : ""}.json`, dir);
  await writeFileAtomic(file, JSON.stringify({ date, quick, machine, ...result }, null, 2) + "\n");
  console.log(`wrote ${file.pathname}`);
}
