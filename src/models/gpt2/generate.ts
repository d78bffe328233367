/**
 * Autoregressive sampling from a GPT-2: temperature, top-k and top-p (nucleus) filtering, stop
 * tokens, a streaming callback, and the KV cache so each new token costs one position.
 * @module
 */

import { noGrad } from "../../autograd.ts";
import { tidy } from "../../memory.ts";
import { tensor } from "../../ops/creation.ts";
import { getRngState, manualSeed, setRngState, uniformArray } from "../../random.ts";
import type { GPT2 } from "./model.ts";
import type { KVCache } from "./kv_cache.ts";
import { END_OF_TEXT } from "../../tokenizer/gpt2.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  /** Most tokens to generate. */
  maxNewTokens: number;
  /** Divides the logits before sampling (default 1); 0 picks the most likely token (greedy). */
  temperature?: number;
  /** Sample only among the k most likely tokens. */
  topK?: number;
  /** Sample only from the smallest set of most likely tokens whose probability reaches p. */
  topP?: number;
  /**
   * Seed for this call's draws: the same seed gives the same tokens, and the global generator's
   * state is restored afterwards. Without it, draws continue the global generator.
   */
  seed?: number;
  /** Generation ends when one of these is sampled; it is not returned (default [50256]). */
  stopTokens?: readonly number[];
  /** Reuse keys and values of earlier positions (default true); the tokens are the same. */
  useCache?: boolean;
  /** Called with each new token as soon as it is chosen (for streaming). */
  onToken?: (id: number) => void;
}

/**
 * Continues `promptIds` one token at a time. Runs under noGrad with the model in eval mode (its
 * previous mode is restored), every step inside a tidy scope, so memory stays flat. Once the
 * sequence outgrows the context window, only its last `contextLength` tokens are fed (without the
 * cache from then on, since every position shifts) — except for a sliding-window model without
 * learned positions, whose bounded cache rolls on at no extra cost.
 *
 * @param model the language model
 * @param promptIds at least one and at most `contextLength` token ids
 * @returns the new token ids (without the prompt and without the stop token)
 * @throws {RangeError} for an empty or too long prompt, ids outside the vocabulary, bad options
 * @example
 * ```ts
 * import { generate, GPT2, gpt2Config, manualSeed } from "@denograd/denograd";
 * manualSeed(0);
 * const model = new GPT2(gpt2Config("small-test"));
 * const ids = generate(model, [1, 2, 3], { maxNewTokens: 5, topK: 10, seed: 42 });
 * console.log(ids.length); // 5
 * ```
 */
export function generate(
  model: GPT2,
  promptIds: readonly number[],
  options: GenerateOptions,
): number[] {
  const {
    maxNewTokens,
    temperature = 1,
    topK,
    topP,
    seed,
    stopTokens = [END_OF_TEXT],
    useCache = true,
    onToken,
  } = options;
  const { contextLength, vocabSize } = model.config;
  checkOptions(options);
  if (!Array.isArray(promptIds) || promptIds.length === 0) {
    throw new RangeError("generate: promptIds must hold at least one token id");
  }
  if (promptIds.length > contextLength) {
    throw new RangeError(
      `generate: the prompt has ${promptIds.length} tokens, more than the context length ${contextLength}`,
    );
  }
  const bad = promptIds.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0) {
    throw new RangeError(
      `generate: promptIds[${bad}] = ${promptIds[bad]} is not a token id in [0, ${vocabSize})`,
    );
  }

  const stops = new Set(stopTokens);
  const tokens = [...promptIds];
  const generated: number[] = [];
  const wasTraining = model.training;
  const savedRng = seed === undefined ? null : getRngState();
  if (seed !== undefined) manualSeed(seed);
  let cache: KVCache | null = useCache ? model.createCache(1) : null;
  const rolls = model.wpe === null && cache !== null && cache.window > 0 &&
    cache.window <= cache.capacity;
  model.eval();
  try {
    for (let step = 0; step < maxNewTokens; step++) {
      if (cache && tokens.length > cache.capacity && !rolls) {
        // The window slides from here on; cached keys sit at positions that no longer exist.
        // (A sliding-window attention without a position table rolls its cache instead.)
        cache.dispose();
        cache = null;
      }
      // With the cache only the tokens it has not seen yet; without it the last window.
      const feed = cache ? tokens.slice(cache.length) : tokens.slice(-contextLength);
      const logits = tidy(() =>
        noGrad(() => {
          const idx = tensor(Int32Array.from(feed), {
            shape: [1, feed.length],
            device: model.device,
          }); // (1, T)
          const out = model.forward(idx, { cache: cache ?? undefined, lastOnly: true }); // (1, 1, V)
          return out.toTypedArray() as Float32Array;
        })
      );
      const next = pickToken(logits, temperature, topK, topP);
      if (stops.has(next)) break;
      tokens.push(next);
      generated.push(next);
      onToken?.(next);
    }
  } finally {
    cache?.dispose();
    model.train(wasTraining);
    if (savedRng) setRngState(savedRng);
  }
  return generated;
}

function checkOptions(o: GenerateOptions): void {
  if (typeof o !== "object" || o === null) {
    throw new TypeError("generate: options with maxNewTokens are required");
  }
  const { maxNewTokens, temperature = 1, topK, topP, stopTokens } = o;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`generate: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
  }
  if (typeof temperature !== "number" || !(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`generate: temperature must be a finite number >= 0, got ${temperature}`);
  }
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1)) {
    throw new RangeError(`generate: topK must be a positive integer, got ${topK}`);
  }
  if (topP !== undefined && (typeof topP !== "number" || !(topP > 0 && topP <= 1))) {
    throw new RangeError(`generate: topP must be in (0, 1], got ${topP}`);
  }
  if (stopTokens !== undefined && !Array.isArray(stopTokens)) {
    throw new TypeError("generate: stopTokens must be an array of token ids");
  }
  if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) {
    throw new RangeError(`generate: seed must be a non-negative integer, got ${o.seed}`);
  }
}

/**
 * @internal Chooses the next token from one row of logits: argmax when temperature is 0, else a draw from
 * softmax(logits / temperature) restricted to the top-k, then to the top-p nucleus.
 */
export function pickToken(
  logits: Float32Array,
  temperature: number,
  topK?: number,
  topP?: number,
): number {
  const v = logits.length;
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < v; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  // Candidates: the top-k, or every id; sorted from most to least likely only when a filter
  // needs the order (ties by id, so the order is deterministic).
  const byLogit = (a: number, b: number) => logits[b] - logits[a] || a - b;
  let order: number[];
  if (topK !== undefined && topK < v) order = topKIds(logits, topK).sort(byLogit);
  else {
    order = Array.from({ length: v }, (_, i) => i);
    if (topP !== undefined && topP < 1) order.sort(byLogit);
  }
  let max = -Infinity;
  for (const i of order) if (logits[i] > max) max = logits[i];
  let probs = order.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = probs.reduce((s, p) => s + p, 0);
  if (topP !== undefined && topP < 1) {
    // Keep the most likely tokens until their probability reaches topP (at least one).
    let cum = 0, keep = 0;
    while (keep < probs.length && cum < topP * total) cum += probs[keep++];
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    total = cum;
  }
  let r = uniformArray(1)[0] * total;
  for (let j = 0; j < order.length; j++) {
    r -= probs[j];
    if (r < 0) return order[j];
  }
  return order[order.length - 1];
}

/** Ids of the k largest logits (ties broken toward lower ids), in no particular order. */
function topKIds(logits: Float32Array, k: number): number[] {
  // The k-th largest value by quickselect on a copy, then every id above it and enough ties.
  const vals = Float32Array.from(logits);
  let lo = 0, hi = vals.length - 1;
  const target = k - 1; // index of the k-th largest once sorted descending
  while (lo < hi) {
    const pivot = vals[(lo + hi) >>> 1];
    let i = lo, j = hi;
    while (i <= j) {
      while (vals[i] > pivot) i++;
      while (vals[j] < pivot) j--;
      if (i <= j) {
        const t = vals[i];
        vals[i++] = vals[j];
        vals[j--] = t;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  const kth = vals[target];
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] > kth) ids.push(i);
  for (let i = 0; i < logits.length && ids.length < k; i++) if (logits[i] === kth) ids.push(i);
  return ids;
}
