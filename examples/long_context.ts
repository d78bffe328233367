/**
 * Context extension: train a small character-level GPT with rotary positions (RoPE) at context
 * 256 on examples/data/the-verdict.txt, then measure held-out perplexity at 256, 512 and 1024
 * with RoPE as trained ("none"), linear positional interpolation, NTK-aware scaling and YaRN
 * (each with factor = context / 256, no fine-tuning); train an ALiBi model the same way and
 * measure how it extrapolates. Prints a table.
 *
 *   deno task long-context                  # ~3 minutes on two CPU cores
 *   deno task long-context --steps 600
 *
 * Characters, not GPT-2's BPE: the text is 20k characters, so a 1024-position window needs a
 * small vocabulary to leave several held-out windows. "all" is the perplexity over every position
 * of each window, "beyond 256" only over positions >= 256, which no training sequence reached.
 */
import {
  AdamW,
  crossEntropy,
  GPT2,
  type GPT2Config,
  manualSeed,
  noGrad,
  type RopeScaling,
  tensor,
  tidy,
} from "../mod.ts";
import { defineCli, runMain } from "../cli/_args.ts";

const CLI = defineCli({
  name: "long-context",
  usage: "deno task long-context [options]",
  summary: "Context extension: RoPE scalings and ALiBi trained at 256, measured at 256 to 1024.",
  flags: {
    steps: { type: "int", min: 1, default: 200, description: "optimizer steps per model" },
    batch: { type: "int", min: 1, default: 4, description: "sequences per step" },
    lr: { type: "number", above: 0, default: 3e-3, description: "AdamW learning rate" },
    seed: { type: "int", min: 0, default: 1337, description: "init and batch order" },
  },
});

await runMain(CLI, async (args) => {
  const { steps, batch, lr, seed } = args;

  const TRAIN_CONTEXT = 256;
  const EVAL_CONTEXTS = [256, 512, 1024];

  // ---- data: characters, the last 25% held out ----
  const text = await Deno.readTextFile(new URL("./data/the-verdict.txt", import.meta.url));
  const chars = [...new Set(text)].sort();
  const ids = Int32Array.from(text, (c) => chars.indexOf(c));
  const split = Math.floor(ids.length * 0.75);
  const train = ids.subarray(0, split), held = ids.subarray(split);
  console.log(
    `${text.length} characters, vocabulary ${chars.length}; train ${train.length}, held out ${held.length}`,
  );

  const base: GPT2Config = {
    vocabSize: chars.length,
    contextLength: TRAIN_CONTEXT,
    nEmbd: 64,
    nLayer: 3,
    nHead: 4,
    dropout: 0,
    bias: true,
  };

  // ---- training ----
  function trainModel(config: GPT2Config, label: string): GPT2 {
    manualSeed(seed);
    const model = new GPT2(config);
    const opt = new AdamW(model.parameters(), { lr, weightDecay: 0.01 });
    let state = seed; // the batch order: a small LCG, the same for every model
    const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const t0 = performance.now();
    for (let step = 1; step <= steps; step++) {
      const x = new Int32Array(batch * TRAIN_CONTEXT), y = new Int32Array(batch * TRAIN_CONTEXT);
      for (let b = 0; b < batch; b++) {
        const at = Math.floor(next() * (train.length - TRAIN_CONTEXT - 1));
        x.set(train.subarray(at, at + TRAIN_CONTEXT), b * TRAIN_CONTEXT);
        y.set(train.subarray(at + 1, at + TRAIN_CONTEXT + 1), b * TRAIN_CONTEXT);
      }
      const loss = tidy(() => {
        const l = model.loss(
          tensor(x, { shape: [batch, TRAIN_CONTEXT] }),
          tensor(y, { shape: [batch, TRAIN_CONTEXT] }),
        );
        l.backward();
        opt.step();
        opt.zeroGrad();
        return l.item();
      });
      if (step === 1 || step % 50 === 0 || step === steps) {
        const s = ((performance.now() - t0) / 1000).toFixed(0);
        console.log(`  ${label} step ${step}/${steps}  loss ${loss.toFixed(3)}  (${s} s)`);
      }
    }
    return model;
  }

  // ---- evaluation: non-overlapping windows of the held-out text ----
  function perplexity(model: GPT2, context: number): { all: number; beyond: number } {
    let sum = 0, count = 0, sumBeyond = 0, countBeyond = 0;
    for (let at = 0; at + context + 1 <= held.length; at += context) {
      const losses = noGrad(() =>
        tidy(() => {
          const x = tensor(held.slice(at, at + context), { shape: [1, context] });
          const y = tensor(held.slice(at + 1, at + context + 1), { shape: [1, context] });
          const logits = model.forward(x); // (1, T, V)
          return crossEntropy(logits, y, { reduction: "none" }).toTypedArray() as Float32Array;
        })
      );
      losses.forEach((l, i) => {
        sum += l;
        count++;
        if (i >= TRAIN_CONTEXT) {
          sumBeyond += l;
          countBeyond++;
        }
      });
    }
    return {
      all: Math.exp(sum / count),
      beyond: countBeyond ? Math.exp(sumBeyond / countBeyond) : NaN,
    };
  }

  function withConfig(trained: GPT2, over: Partial<GPT2Config>): GPT2 {
    const model = new GPT2({ ...trained.config, ...over });
    model.loadStateDict(trained.stateDict());
    return model.eval();
  }

  const rows: [string, ...string[]][] = [];
  function report(label: string, evalAt: (context: number) => GPT2) {
    const cells: string[] = [];
    const beyond: string[] = [];
    for (const context of EVAL_CONTEXTS) {
      const model = evalAt(context);
      const p = perplexity(model, context);
      cells.push(p.all.toFixed(2));
      if (context > TRAIN_CONTEXT) beyond.push(p.beyond.toFixed(2));
      model.dispose();
    }
    rows.push([label, ...cells, ...beyond]);
    console.log(`  ${label}: ${[...cells, ...beyond].join("  ")}`);
  }

  const rope = trainModel({ ...base, position: "rope" }, "rope");
  const scalings: [string, (factor: number) => RopeScaling][] = [
    ["RoPE, none", () => ({ type: "none" })],
    ["RoPE, linear interpolation", (factor) => ({ type: "linear", factor })],
    ["RoPE, NTK-aware", (factor) => ({ type: "ntk", factor })],
    ["RoPE, YaRN", (factor) => ({ type: "yarn", factor, originalContext: TRAIN_CONTEXT })],
  ];
  for (const [label, scaling] of scalings) {
    report(label, (context) => withConfig(rope, { ropeScaling: scaling(context / TRAIN_CONTEXT) }));
  }
  rope.dispose();
  const alibi = trainModel({ ...base, position: "alibi" }, "alibi");
  report("ALiBi", () => withConfig(alibi, {}));
  alibi.dispose();

  // ---- the table ----
  const header = [
    "scheme (trained at 256)",
    ...EVAL_CONTEXTS.map((c) => `ppl @${c}`),
    ...EVAL_CONTEXTS.filter((c) => c > TRAIN_CONTEXT).map((c) => `@${c} beyond 256`),
  ];
  const table = [header, header.map(() => "---"), ...rows];
  console.log(
    `\nheld-out character perplexity (${steps} steps, batch ${batch}, factor = context / 256)\n`,
  );
  for (const r of table) console.log(`| ${r.join(" | ")} |`);
});
