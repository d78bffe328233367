// One GPT-2 124M training step on CUDA in bf16 mixed precision (autocast; f32 master weights and
// AdamW state), batch 16 x 1024 tokens, as src/train/pretrain.ts runs it: forward + backward,
// gradient clipping at 1, AdamW (lr 6e-4, betas 0.9/0.95, weight decay 0.1), reading back the loss
// and the gradient norm. Reports tokens/s and MFU; bench/gpu/gpt2_step_torch.py measures PyTorch
// eager and torch.compile on the same GPU and merges both into one JSON.
//
//   deno run --no-check --allow-all bench/gpu/gpt2_step.ts --out gpt2_ours.json [--steps 10]

import { parseArgs } from "node:util";
import { autocast } from "../../src/autocast.ts";
import { getBackend } from "../../src/backend/registry.ts";
import type { CudaBackend } from "../../src/backend/cuda/cuda_backend.ts";
import { memoryStats, tidy } from "../../src/memory.ts";
import { GPT2 } from "../../src/models/gpt2/model.ts";
import { gpt2Config } from "../../src/models/gpt2/config.ts";
import { AdamW } from "../../src/optim/adamw.ts";
import { clipGradNorm } from "../../src/optim/clip.ts";
import { manualSeed } from "../../src/random.ts";
import { randint } from "../../src/ops/creation.ts";
import { writeFileAtomic } from "../../src/io/atomic.ts";

/** The H200's dense bf16 tensor-core peak (NVIDIA datasheet: 1979 TFLOP/s with sparsity). */
export const H200_BF16_PEAK = 989e12;

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    steps: { type: "string", default: "10" },
    batch: { type: "string", default: "16" },
    precision: { type: "string", default: "bf16" },
  },
});
const steps = Number(values.steps), B = Number(values.batch), T = 1024;
const precision = values.precision === "f32" ? null : "bf16";

manualSeed(0);
const be = getBackend("cuda") as CudaBackend;
const config = gpt2Config("gpt2", { dropout: 0 });
const model = new GPT2(config, { device: "cuda" });
const params = model.parameters();
const optimizer = AdamW.forModel(model, { lr: 6e-4, betas: [0.9, 0.95], weightDecay: 0.1 });
// Random tokens: the step's cost does not depend on the data (the loss starts near ln 50257).
const input = randint(0, config.vocabSize, [B, T], { device: "cuda", dtype: "i32" });
const target = randint(0, config.vocabSize, [B, T], { device: "cuda", dtype: "i32" });

// FLOPs per token (issue 5's formula): 6N for the weights' forward and backward, where N counts
// the parameters but the position embeddings (nanoGPT's convention: wte is also the LM head),
// plus 6LCT for causal attention (half of 12LCT: the masked upper triangle is not needed).
const N = params.reduce((n, p) => n + p.size, 0) - config.contextLength * config.nEmbd;
const flopsPerToken = 6 * N + 6 * config.nLayer * config.nEmbd * T;

function step(): [number, number] {
  return tidy(() => {
    const loss = autocast(precision, () => model.loss(input, target));
    loss.backward();
    const norm = clipGradNorm(params, 1);
    optimizer.step();
    optimizer.zeroGrad();
    return [loss.item(), norm];
  });
}

const losses: number[] = [];
const t0 = performance.now();
losses.push(step()[0]); // warm-up: cuBLAS handles and heuristics, the allocator's first blocks
const firstStepMs = performance.now() - t0;
step();
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  const s = performance.now();
  losses.push(step()[0]);
  times.push(performance.now() - s);
}
const ms = times.reduce((a, b) => a + b, 0) / times.length;
const tokensPerSecond = (B * T) / (ms / 1000);
const report = {
  what: `denograd GPT-2 124M training step, ${
    precision ?? "f32"
  }, ${B} x ${T} tokens, AdamW, clip 1`,
  device: be.info,
  date: new Date().toISOString(),
  batch: B,
  context: T,
  precision: precision ?? "f32",
  params: N,
  flopsPerToken,
  firstStepMs,
  stepMs: ms,
  stepMsAll: times,
  tokensPerSecond,
  mfu: (tokensPerSecond * flopsPerToken) / H200_BF16_PEAK,
  losses,
  liveBytes: memoryStats().liveBytes,
  deviceMemory: be.memoryStats(),
};
console.log(
  `denograd: ${ms.toFixed(1)} ms/step, ${Math.round(tokensPerSecond)} tokens/s, MFU ` +
    `${(report.mfu * 100).toFixed(1)}%, losses ${losses.map((l) => l.toFixed(3)).join(" ")}`,
);
if (values.out) await writeFileAtomic(values.out, JSON.stringify(report, null, 2) + "\n");
