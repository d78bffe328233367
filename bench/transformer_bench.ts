/**
 * One training step (forward + backward) of a 2-block, 768-wide GPT-2-style transformer, built
 * from the denograd functional API, against the same computation in PyTorch CPU
 * (`bench/torch_reference.py`, launched as a subprocess and driven step by step over stdin so the
 * two are interleaved in one run).
 *
 * Shapes: B=4, T=128, C=768, 12 heads of 64, 2 blocks, vocab 1024. Input: random activations
 * (B, T, C), no embedding. Each block: LayerNorm, fused qkv linear 768->2304, causal attention
 * (matmul, scale, maskedFill with a triu mask, softmax, matmul), proj linear, residual, LayerNorm,
 * MLP 768->3072, GELU (tanh), 3072->768, residual. Then a final LayerNorm, an untied output
 * projection 768->1024 (no bias) and a mean cross-entropy against random targets.
 * Parameters are leaf tensors (GPT-2 init: N(0, 0.02) weights, zero biases, unit LN weights).
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-run bench/transformer_bench.ts [--quick]
 * @module
 */

import {
  crossEntropy,
  gelu,
  keep,
  layerNorm,
  linear,
  manualSeed,
  maskedFill,
  matmul,
  memoryStats,
  ones,
  randint,
  randn,
  softmax,
  split,
  type Tensor,
  tidy,
  zeros,
} from "../mod.ts";
import { type BenchOptions, median, num, quickFlag, table, timeOnce } from "./_common.ts";
import { settle, startTorch } from "./_torch.ts";

/** The benchmarked model's shape. */
export const CONFIG = {
  batch: 4,
  seq: 128,
  width: 768,
  heads: 12,
  layers: 2,
  vocab: 1024,
} as const;
/** Intra-op threads PyTorch may use (the machine's OpenBLAS uses its own setting). */
const TORCH_THREADS = 2;

/** The measured step times. */
export interface TransformerResult {
  config: typeof CONFIG;
  reps: number;
  /** Median ms of one denograd forward + backward. */
  denogradMs: number;
  /** Median ms of one PyTorch forward + backward; null if PyTorch could not be run. */
  torchMs: number | null;
  /** torchMs / denogradMs (goal >= 1.0); null without PyTorch. */
  ratio: number | null;
  /** Loss of the last step on each side (both ~ln(vocab) at this init: a sanity check). */
  denogradLoss: number;
  torchLoss: number | null;
  torchVersion: string | null;
  torchThreads: number | null;
  /**
   * Growth of live bytes from after the first step to after the last (> 0: a leak; < 0: the GC
   * backstop freed tensors that were never disposed).
   */
  leakedBytes: number;
  /** Why PyTorch was skipped, if it was. */
  torchError?: string;
}

/** Parameters of one transformer block. */
interface BlockParams {
  ln1w: Tensor;
  ln1b: Tensor;
  wqkv: Tensor; // (3C, C)
  bqkv: Tensor;
  wproj: Tensor; // (C, C)
  bproj: Tensor;
  ln2w: Tensor;
  ln2b: Tensor;
  wfc: Tensor; // (4C, C)
  bfc: Tensor;
  wfc2: Tensor; // (C, 4C)
  bfc2: Tensor;
}

/** A leaf parameter that tidy never frees. */
function param(t: Tensor): Tensor {
  t.requiresGrad = true;
  return keep(t);
}

/** N(0, 0.02) weight of `shape`. */
function weight(shape: number[]): Tensor {
  const r = randn(shape);
  const w = r.mul(0.02);
  r.dispose();
  return param(w);
}

/** The model: parameters, a fixed input, targets and the causal mask (exported for profiling). */
export class Model {
  readonly blocks: BlockParams[] = [];
  readonly lnfw: Tensor;
  readonly lnfb: Tensor;
  readonly wout: Tensor; // (V, C)
  readonly x0: Tensor; // (B, T, C)
  readonly targets: Tensor; // (B, T) i32
  readonly mask: Tensor; // (T, T) i32, 1 above the diagonal
  readonly params: Tensor[];

  constructor() {
    const { width: c, vocab, batch: b, seq: t } = CONFIG;
    for (let l = 0; l < CONFIG.layers; l++) {
      this.blocks.push({
        ln1w: param(ones([c])),
        ln1b: param(zeros([c])),
        wqkv: weight([3 * c, c]),
        bqkv: param(zeros([3 * c])),
        wproj: weight([c, c]),
        bproj: param(zeros([c])),
        ln2w: param(ones([c])),
        ln2b: param(zeros([c])),
        wfc: weight([4 * c, c]),
        bfc: param(zeros([4 * c])),
        wfc2: weight([c, 4 * c]),
        bfc2: param(zeros([c])),
      });
    }
    this.lnfw = param(ones([c]));
    this.lnfb = param(zeros([c]));
    this.wout = weight([vocab, c]);
    this.params = [
      ...this.blocks.flatMap((p) => Object.values(p)),
      this.lnfw,
      this.lnfb,
      this.wout,
    ];
    this.x0 = keep(randn([b, t, c]));
    this.targets = keep(randint(0, vocab, [b, t]));
    const all = ones([t, t], { dtype: "i32" });
    this.mask = keep(all.triu(1));
    all.dispose();
  }

  /** Causal self-attention + MLP, pre-LN, with residuals. x: (B, T, C). */
  block(x: Tensor, p: BlockParams): Tensor {
    const { batch: b, seq: t, width: c, heads: h } = CONFIG;
    const d = c / h;
    const hx = layerNorm(x, [c], p.ln1w, p.ln1b); // (B, T, C)
    const qkv = linear(hx, p.wqkv, p.bqkv); // (B, T, 3C)
    const [q, k, v] = split(qkv, c, 2).map((z) => z.reshape([b, t, h, d]).transpose(1, 2)); // (B, H, T, D)
    const att = matmul(q, k.transpose(-2, -1)).mul(1 / Math.sqrt(d)); // (B, H, T, T)
    const probs = softmax(maskedFill(att, this.mask, -Infinity), -1);
    const y = matmul(probs, v).transpose(1, 2).reshape([b, t, c]); // (B, T, C)
    const x1 = x.add(linear(y, p.wproj, p.bproj));
    const hx2 = layerNorm(x1, [c], p.ln2w, p.ln2b);
    const m = gelu(linear(hx2, p.wfc, p.bfc)); // (B, T, 4C)
    return x1.add(linear(m, p.wfc2, p.bfc2));
  }

  /** Forward + backward; leaves gradients in `.grad` and returns the loss. */
  step(): number {
    return tidy(() => {
      let x = this.x0;
      for (const p of this.blocks) x = this.block(x, p);
      const hf = layerNorm(x, [CONFIG.width], this.lnfw, this.lnfb);
      const logits = linear(hf, this.wout); // (B, T, V)
      const loss = crossEntropy(logits, this.targets);
      loss.backward();
      return loss.item();
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  dispose(): void {
    for (const t of [...this.params, this.x0, this.targets, this.mask]) t.dispose();
  }
}

/**
 * Times denograd and PyTorch steps alternately (warmup first, untimed).
 * @returns median step times and their ratio
 */
export async function runTransformerBench(opts: BenchOptions): Promise<TransformerResult> {
  manualSeed(0);
  const warmup = opts.quick ? 1 : 2;
  const reps = opts.quick ? 2 : 9;
  const model = new Model();

  const { batch, seq, width, heads, layers, vocab } = CONFIG;
  const { torch, torchError } = await startTorch(
    new URL("./torch_reference.py", import.meta.url),
    [batch, seq, width, heads, layers, vocab, TORCH_THREADS],
  );

  const ours: number[] = [], theirs: number[] = [];
  let denogradLoss = NaN, torchLoss: number | null = null;
  let liveAfterFirst = 0;
  for (let r = 0; r < warmup + reps; r++) {
    let loss = NaN;
    const ms = timeOnce(() => {
      loss = model.step();
    });
    model.zeroGrad();
    if (r === 0) liveAfterFirst = memoryStats().liveBytes;
    denogradLoss = loss;
    if (r >= warmup) ours.push(ms);
    if (torch) {
      await settle();
      const s = await torch.step();
      torchLoss = s.loss;
      if (r >= warmup) theirs.push(s.ms);
      await settle();
    }
  }
  if (torch) await torch.close();
  const leakedBytes = memoryStats().liveBytes - liveAfterFirst;
  model.dispose();

  const denogradMs = median(ours);
  const torchMs = theirs.length ? median(theirs) : null;
  return {
    config: CONFIG,
    reps,
    denogradMs,
    torchMs,
    ratio: torchMs === null ? null : torchMs / denogradMs,
    denogradLoss,
    torchLoss,
    torchVersion: torch?.version ?? null,
    torchThreads: torch?.threads ?? null,
    leakedBytes,
    ...(torchError ? { torchError } : {}),
  };
}

/** The result as a plain-text table. */
export function formatTransformer(r: TransformerResult): string {
  const { batch, seq, width, heads, layers, vocab } = r.config;
  const label = `GPT-2 style fwd+bwd (B${batch} T${seq} C${width} H${heads} L${layers} V${vocab})`;
  const out = table(
    ["transformer step", "reps", "denograd ms", "torch ms", "torch/denograd"],
    [[
      label,
      String(r.reps),
      num(r.denogradMs, 1),
      r.torchMs === null ? "n/a" : num(r.torchMs, 1),
      r.ratio === null ? "n/a" : num(r.ratio, 3),
    ]],
  );
  const losses = `loss: denograd ${num(r.denogradLoss, 4)}, torch ${
    r.torchLoss === null ? "n/a" : num(r.torchLoss, 4)
  } (both ~ln ${vocab} = ${num(Math.log(vocab), 4)})`;
  const leak = r.leakedBytes > 0
    ? `\nWARNING: live memory grew ${r.leakedBytes} bytes over the run (a leak)`
    : r.leakedBytes < 0
    ? `\nnote: the GC backstop freed ${-r.leakedBytes} bytes of tensors that were never disposed`
    : "";
  const note = r.torchError ? `\nPyTorch skipped: ${r.torchError}` : "";
  return `${out}\n${losses}${leak}${note}`;
}

if (import.meta.main) {
  console.log(formatTransformer(await runTransformerBench({ quick: quickFlag() })));
}
