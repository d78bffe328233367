// The discrete half of mixture-of-experts routing, on the host: top-k expert choice per token,
// capacity slots, dropped-token accounting, and the router losses' values for the stats. None of
// it is differentiable (indices and counts), so it runs on a copy of the router logits; the
// differentiable half (softmax, gates, losses) stays on the device in moe.ts.

/** Where every token goes: the layout of the (E, capacity) dispatch buffer and its inverse. */
export interface RoutingPlan {
  /** Tokens routed (N). */
  tokens: number;
  /** Experts (E). */
  experts: number;
  /** Choices per token (k). */
  topK: number;
  /** Slots per expert. */
  capacity: number;
  /** (N, k) the experts each token chose, best first. */
  expertOf: Int32Array;
  /** (N, k) the flat slot e * capacity + s each choice got in the dispatch buffer; -1 if dropped. */
  slotOf: Int32Array;
  /** (E * capacity) the token in each slot; -1 for an empty slot. */
  tokenOfSlot: Int32Array;
  /** (E) choices that picked each expert, before capacity. */
  routed: number[];
  /** (E) choices each expert processes (routed, capped at capacity). */
  processed: number[];
  /** Choices dropped because their expert was full. */
  dropped: number;
  /** Tokens all of whose choices were dropped (they pass through on the residual only). */
  droppedTokens: number;
}

/**
 * Slots per expert: ceil(k * tokens * factor / E), at least 1 and at most `tokens` (no expert can
 * get more); for factor Infinity (drop nothing), just enough for the busiest expert.
 */
export function expertCapacity(
  tokens: number,
  experts: number,
  topK: number,
  factor: number,
  routed: readonly number[],
): number {
  if (factor === Infinity) return Math.max(1, ...routed);
  return Math.min(tokens, Math.max(1, Math.ceil((topK * tokens * factor) / experts)));
}

/**
 * Plans the routing of N tokens from their router logits (N, E), row-major, with
 * {@linkcode expertCapacity} slots per expert.
 *
 * Choice: the k largest logits of each row (the k largest probabilities, softmax being monotonic),
 * best first; on equal logits the lower expert index wins.
 *
 * Capacity (GShard's priority): every token's first choice is placed before any token's second
 * choice, and so on; within one rank, earlier tokens (in flattened (B, T) order) win. A choice
 * that finds its expert full is dropped: that expert contributes nothing to the token.
 */
export function planRouting(
  logits: Float32Array,
  tokens: number,
  experts: number,
  topK: number,
  capacityFactor: number,
): RoutingPlan {
  const expertOf = new Int32Array(tokens * topK);
  const row = new Int32Array(experts);
  for (let n = 0; n < tokens; n++) {
    const base = n * experts;
    for (let e = 0; e < experts; e++) row[e] = e;
    // Partial selection sort: k is tiny (1 or 2 in practice).
    for (let j = 0; j < topK; j++) {
      let best = j;
      for (let i = j + 1; i < experts; i++) {
        const a = logits[base + row[i]], b = logits[base + row[best]];
        if (a > b || (a === b && row[i] < row[best])) best = i;
      }
      [row[j], row[best]] = [row[best], row[j]];
      expertOf[n * topK + j] = row[j];
    }
  }
  const routed = new Array<number>(experts).fill(0);
  for (const e of expertOf) routed[e]++;
  const capacity = expertCapacity(tokens, experts, topK, capacityFactor, routed);
  const slotOf = new Int32Array(tokens * topK).fill(-1);
  const tokenOfSlot = new Int32Array(experts * capacity).fill(-1);
  const processed = new Array<number>(experts).fill(0);
  for (let j = 0; j < topK; j++) {
    for (let n = 0; n < tokens; n++) {
      const e = expertOf[n * topK + j];
      if (processed[e] < capacity) {
        const slot = e * capacity + processed[e]++;
        slotOf[n * topK + j] = slot;
        tokenOfSlot[slot] = n;
      }
    }
  }
  let droppedTokens = 0;
  for (let n = 0; n < tokens; n++) {
    let kept = false;
    for (let j = 0; j < topK; j++) kept ||= slotOf[n * topK + j] >= 0;
    if (!kept) droppedTokens++;
  }
  const dropped = tokens * topK - processed.reduce((a, b) => a + b, 0);
  return {
    tokens,
    experts,
    topK,
    capacity,
    expertOf,
    slotOf,
    tokenOfSlot,
    routed,
    processed,
    dropped,
    droppedTokens,
  };
}

/**
 * The router losses' values from the logits, in f64 (for the stats; the differentiable versions
 * are built on the device): the load-balancing loss E * sum_e f_e * P_e, with f_e the fraction of
 * choices routed to e (before capacity) and P_e the mean router probability of e, and the z-loss
 * mean_n logsumexp(logits_n)^2.
 */
export function routerLossValues(
  logits: Float32Array,
  plan: RoutingPlan,
): { auxLoss: number; zLoss: number } {
  const { tokens: n, experts: e, topK: k } = plan;
  const meanProb = new Float64Array(e);
  let z = 0;
  for (let t = 0; t < n; t++) {
    let max = -Infinity;
    for (let i = 0; i < e; i++) max = Math.max(max, logits[t * e + i]);
    let sum = 0;
    for (let i = 0; i < e; i++) sum += Math.exp(logits[t * e + i] - max);
    for (let i = 0; i < e; i++) meanProb[i] += Math.exp(logits[t * e + i] - max) / sum / n;
    const lse = max + Math.log(sum);
    z += (lse * lse) / n;
  }
  let aux = 0;
  for (let i = 0; i < e; i++) aux += (plan.routed[i] / (n * k)) * meanProb[i];
  return { auxLoss: e * aux, zLoss: z };
}
