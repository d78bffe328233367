// generate(): greedy and sampled decoding, with and without the KV cache, against PyTorch's greedy
// tokens (tests/fixtures/gpt2_tiny.json), stop tokens, filtering, errors and memory.
import assert from "node:assert/strict";
import {
  generate,
  getRngState,
  GPT2,
  type GPT2Config,
  gpt2Config,
  manualSeed,
  memoryStats,
  noGrad,
  rand,
  tensor,
} from "../mod.ts";
import { pickToken } from "../src/models/gpt2/generate.ts";
import { type FixtureTensor, readFixture, toTensor } from "./_fixtures.ts";

const fx = readFixture<{
  config: GPT2Config;
  conv1d: string[];
  weights: Record<string, FixtureTensor>;
  prompt: number[];
  greedy: number[];
}>("gpt2_tiny.json");

function fixtureModel(): GPT2 {
  const model = new GPT2(fx.config);
  const state = Object.fromEntries(
    Object.entries(fx.weights).map(([name, t]) => {
      const hf = toTensor(t);
      return [name, fx.conv1d.includes(name) ? hf.transpose(0, 1) : hf];
    }),
  );
  model.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  return model;
}

const model = fixtureModel();

Deno.test("greedy generation equals PyTorch's tokens, with and without the cache", () => {
  for (const useCache of [true, false]) {
    const ids = generate(model, fx.prompt, {
      maxNewTokens: fx.greedy.length,
      temperature: 0,
      useCache,
    });
    assert.deepEqual(ids, fx.greedy, `useCache ${useCache}`);
  }
});

Deno.test("cached and uncached generation give the same tokens, past the context window too", () => {
  const ctx = model.config.contextLength;
  for (
    const opts of [{ temperature: 0 }, { seed: 7 }, { seed: 8, topK: 5, temperature: 0.8 }, {
      seed: 9,
      topP: 0.9,
    }]
  ) {
    const a = generate(model, [5, 6, 7], { maxNewTokens: 2 * ctx, ...opts, useCache: true });
    const b = generate(model, [5, 6, 7], { maxNewTokens: 2 * ctx, ...opts, useCache: false });
    assert.equal(a.length, 2 * ctx);
    assert.deepEqual(a, b, JSON.stringify(opts));
  }
});

Deno.test("greedy is deterministic, top-k = 1 equals greedy, and a seed repeats a sample", () => {
  const greedy = generate(model, [1], { maxNewTokens: 12, temperature: 0 });
  assert.deepEqual(generate(model, [1], { maxNewTokens: 12, temperature: 0 }), greedy);
  assert.deepEqual(generate(model, [1], { maxNewTokens: 12, topK: 1, seed: 3 }), greedy);
  const sample = generate(model, [1], { maxNewTokens: 12, seed: 3 });
  assert.deepEqual(generate(model, [1], { maxNewTokens: 12, seed: 3 }), sample);
  assert.notDeepEqual(generate(model, [1], { maxNewTokens: 12, seed: 4 }), sample);
});

Deno.test("a seed leaves the global generator where it was; without one, draws continue it", () => {
  manualSeed(99);
  const state = getRngState();
  generate(model, [1], { maxNewTokens: 4, seed: 1 });
  assert.deepEqual(getRngState(), state);
  const a = generate(model, [1], { maxNewTokens: 4 });
  assert.notDeepEqual(getRngState(), state);
  manualSeed(99);
  assert.deepEqual(generate(model, [1], { maxNewTokens: 4 }), a);
  rand([1]).dispose();
});

Deno.test("top-k and top-p keep sampling among the most likely tokens", () => {
  // With top-k = 3 every token is one of the three most likely after its context.
  const ids = generate(model, [3], { maxNewTokens: 20, seed: 5, topK: 3 });
  let context = [3];
  for (const id of ids) {
    const logits = Array.from(noGrad(() => {
      const idx = tensor(Int32Array.from(context.slice(-16)), {
        shape: [1, Math.min(context.length, 16)],
      });
      return model.forward(idx, { lastOnly: true }).toTypedArray();
    }));
    const top3 = logits.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 3).map(([, i]) =>
      i
    );
    assert.ok(top3.includes(id), `${id} not in the top 3 ${top3} after [${context}]`);
    context = [...context, id];
  }
  assert.ok(new Set(ids).size > 1, "sampling among 3 should not always pick the same token");
  // A tiny top-p keeps only the most likely token: greedy.
  assert.deepEqual(
    generate(model, [3], { maxNewTokens: 10, seed: 2, topP: 1e-6 }),
    generate(model, [3], { maxNewTokens: 10, temperature: 0 }),
  );
});

Deno.test("a stop token ends generation and is not returned; onToken streams each token", () => {
  const greedy = generate(model, fx.prompt, { maxNewTokens: 8, temperature: 0 });
  const stop = greedy[2];
  const streamed: number[] = [];
  const ids = generate(model, fx.prompt, {
    maxNewTokens: 8,
    temperature: 0,
    stopTokens: [stop],
    onToken: (id) => streamed.push(id),
  });
  assert.deepEqual(ids, greedy.slice(0, greedy.indexOf(stop)));
  assert.deepEqual(streamed, ids);
  assert.deepEqual(generate(model, [1], { maxNewTokens: 0 }), []);
});

Deno.test("generate rejects a prompt longer than the context and bad options", () => {
  const ctx = model.config.contextLength;
  assert.throws(
    () => generate(model, new Array(ctx + 1).fill(1), { maxNewTokens: 1 }),
    /the prompt has 17 tokens, more than the context length 16/,
  );
  assert.throws(() => generate(model, [], { maxNewTokens: 1 }), RangeError);
  assert.throws(() => generate(model, [64], { maxNewTokens: 1 }), /promptIds\[0\] = 64/);
  assert.throws(() => generate(model, [1], { maxNewTokens: -1 }), /maxNewTokens/);
  assert.throws(() => generate(model, [1], { maxNewTokens: 1, temperature: -1 }), /temperature/);
  assert.throws(() => generate(model, [1], { maxNewTokens: 1, topK: 0 }), /topK/);
  assert.throws(() => generate(model, [1], { maxNewTokens: 1, topP: 0 }), /topP/);
});

Deno.test("generate keeps the model's mode and leaves memory flat over repeated calls", () => {
  const m = new GPT2(gpt2Config("small-test", { dropout: 0.1 }));
  generate(m, [1, 2], { maxNewTokens: 20, seed: 1 });
  const before = memoryStats();
  for (let i = 0; i < 3; i++) {
    generate(m, [1, 2], { maxNewTokens: 20, seed: i, useCache: i % 2 === 0 });
  }
  const after = memoryStats();
  assert.equal(after.liveBytes, before.liveBytes);
  assert.equal(after.liveTensors, before.liveTensors);
  assert.equal(m.training, true);
  assert.equal(m.h[0].attn.attn_dropout.training, true);
  m.dispose();
});

Deno.test("pickToken's top-k keeps exactly the k largest logits, ties going to lower ids", () => {
  const logits = Float32Array.from([1, 5, 3, 5, 0, 3, 4]);
  const seen = new Set<number>();
  manualSeed(0);
  for (let i = 0; i < 400; i++) seen.add(pickToken(logits, 1000, 4));
  assert.deepEqual([...seen].sort(), [1, 2, 3, 6]);
  assert.equal(pickToken(logits, 0), 1); // greedy: the first of the tied maxima
});
