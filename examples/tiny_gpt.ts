/**
 * The main job: train a tiny character-level GPT on a bundled public-domain story, then sample.
 *
 *   deno task demo [--steps 600] [--device cpu]
 *
 * Everything is written against denograd's functional API: embeddings, pre-LayerNorm blocks with
 * causal multi-head attention and a GELU MLP, tied output head, AdamW with warmup and cosine decay.
 */
import { parseArgs } from "node:util";
import {
  arange,
  crossEntropy,
  embedding,
  getBackend,
  keep,
  layerNorm,
  linear,
  manualSeed,
  matmul,
  noGrad,
  ones,
  rand,
  randint,
  randn,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../mod.ts";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "600" },
    device: { type: "string" },
    seed: { type: "string", default: "1337" },
    sample: { type: "string", default: "400" },
  },
});

function pickDevice(): string {
  if (args.device) return args.device;
  try {
    getBackend("cuda");
    return "cuda";
  } catch {
    return "cpu";
  }
}

const device = pickDevice();
manualSeed(Number(args.seed));
const text = await Deno.readTextFile(new URL("./data/the-verdict.txt", import.meta.url));
const chars = [...new Set(text)].sort();
const stoi = new Map(chars.map((c, i) => [c, i]));
const data = Int32Array.from(text, (c) => stoi.get(c)!);
const split = Math.floor(data.length * 0.9);

// Model size: small enough to train in about a minute on two CPU cores.
const V = chars.length, T = 64, C = 96, H = 4, L = 2, B = 16;
const hs = C / H;

interface Block {
  ln1w: Tensor;
  ln1b: Tensor;
  qkvW: Tensor;
  qkvB: Tensor;
  projW: Tensor;
  projB: Tensor;
  ln2w: Tensor;
  ln2b: Tensor;
  fcW: Tensor;
  fcB: Tensor;
  outW: Tensor;
  outB: Tensor;
}
const param = (t: Tensor): Tensor => {
  t.requiresGrad = true;
  return keep(t);
};
const normal = (shape: number[], std: number) =>
  param(noGrad(() => randn(shape, { device }).mul(std)));
const wte = normal([V, C], 0.02), wpe = normal([T, C], 0.01);
const blocks: Block[] = Array.from({ length: L }, () => ({
  ln1w: param(ones([C], { device })),
  ln1b: param(zeros([C], { device })),
  qkvW: normal([3 * C, C], 0.02),
  qkvB: param(zeros([3 * C], { device })),
  projW: normal([C, C], 0.02 / Math.sqrt(2 * L)),
  projB: param(zeros([C], { device })),
  ln2w: param(ones([C], { device })),
  ln2b: param(zeros([C], { device })),
  fcW: normal([4 * C, C], 0.02),
  fcB: param(zeros([4 * C], { device })),
  outW: normal([C, 4 * C], 0.02 / Math.sqrt(2 * L)),
  outB: param(zeros([C], { device })),
}));
const lnfW = param(ones([C], { device })), lnfB = param(zeros([C], { device }));
const params: Tensor[] = [wte, wpe, ...blocks.flatMap((b) => Object.values(b)), lnfW, lnfB];
const causal = keep(ones([T, T], { device }).triu(1)); // 1 above the diagonal = masked

function attention(x: Tensor, b: Block, t: number): Tensor {
  const [bs] = x.shape;
  const qkv = linear(layerNorm(x, [C], b.ln1w, b.ln1b), b.qkvW, b.qkvB); // (B, T, 3C)
  const [q, k, v] = qkv.split(C, 2).map((z) => z.reshape([bs, t, H, hs]).transpose(1, 2)); // (B, H, T, hs)
  const mask = causal.narrow(0, 0, t).narrow(1, 0, t);
  const att = matmul(q, k.transpose(-2, -1)).mul(1 / Math.sqrt(hs)).maskedFill(mask, -Infinity)
    .softmax(-1);
  const y = matmul(att, v).transpose(1, 2).reshape([bs, t, C]); // (B, T, C)
  return linear(y, b.projW, b.projB);
}

function forward(idx: Tensor): Tensor {
  const t = idx.shape[1];
  let x = embedding(idx, wte).add(embedding(arange(t, undefined, 1, { device }), wpe)); // (B, T, C)
  for (const b of blocks) {
    x = x.add(attention(x, b, t));
    const h = linear(layerNorm(x, [C], b.ln2w, b.ln2b), b.fcW, b.fcB).gelu(); // (B, T, 4C)
    x = x.add(linear(h, b.outW, b.outB));
  }
  return linear(layerNorm(x, [C], lnfW, lnfB), wte); // (B, T, V), head tied to wte
}

function batch(from: number, to: number): [Tensor, Tensor] {
  const starts = randint(from, to - T - 1, [B]).toTypedArray();
  const x = new Int32Array(B * T), y = new Int32Array(B * T);
  starts.forEach((s, i) => {
    x.set(data.subarray(s, s + T), i * T);
    y.set(data.subarray(s + 1, s + T + 1), i * T);
  });
  return [tensor(x, { shape: [B, T], device }), tensor(y, { shape: [B * T], device })];
}

const lossOf = (x: Tensor, y: Tensor) => crossEntropy(forward(x).reshape([B * T, V]), y);

// AdamW, written out: decoupled weight decay on matrices only.
const m = params.map((p) => keep(zeros(p.shape, { device })));
const v = params.map((p) => keep(zeros(p.shape, { device })));
const steps = Number(args.steps), warmup = Math.min(50, steps / 10), maxLr = 3e-3, minLr = 3e-4;
const lrAt = (s: number) =>
  s < warmup
    ? maxLr * (s + 1) / warmup
    : minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * (s - warmup) / (steps - warmup)));

function adamw(step: number, lr: number): void {
  const [b1, b2, eps] = [0.9, 0.95, 1e-8];
  noGrad(() =>
    params.forEach((p, i) =>
      tidy(() => {
        const g = p.grad!;
        const mi = m[i].mul(b1).add(g.mul(1 - b1));
        const vi = v[i].mul(b2).add(g.mul(g).mul(1 - b2));
        const update = mi.div(1 - b1 ** step).div(vi.div(1 - b2 ** step).sqrt().add(eps));
        const decay = p.ndim === 2 ? p.mul(0.1) : zeros([1], { device });
        const next = p.sub(update.add(decay).mul(lr));
        // Write the new values into the same tensor objects the model holds.
        p.assign(next);
        m[i].assign(mi);
        v[i].assign(vi);
        p.zeroGrad();
      })
    )
  );
}

console.log(
  `device ${device}; ${chars.length} symbols; ${params.reduce((n, p) => n + p.size, 0)} parameters`,
);
const t0 = performance.now();
for (let step = 1; step <= steps; step++) {
  const loss = tidy(() => {
    const [x, y] = batch(0, split);
    const l = lossOf(x, y);
    l.backward();
    return l.item();
  });
  adamw(step, lrAt(step - 1));
  if (step % 100 === 0 || step === 1) {
    const val = tidy(() => noGrad(() => lossOf(...batch(split, data.length)).item()));
    const sec = (performance.now() - t0) / 1000;
    console.log(
      `step ${step}/${steps}  train ${loss.toFixed(3)}  val ${val.toFixed(3)}  ${
        (step * B * T / sec).toFixed(0)
      } tok/s`,
    );
  }
}

// Sample with temperature from the trained model.
const context = Array.from("I had always thought ", (c) => stoi.get(c) ?? 0);
let out = "";
for (let i = 0; i < Number(args.sample); i++) {
  const next = tidy(() =>
    noGrad(() => {
      const ctx = context.slice(-T);
      const logits = forward(tensor(Int32Array.from(ctx), { shape: [1, ctx.length], device }));
      const probs = logits.narrow(1, ctx.length - 1, 1).mul(1 / 0.8).softmax(-1).toTypedArray();
      let r = rand([1]).item(), j = 0;
      while (j < probs.length - 1 && (r -= probs[j]) > 0) j++;
      return j;
    })
  );
  context.push(next);
  out += chars[next];
}
console.log(`\nI had always thought ${out}`);
