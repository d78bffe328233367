/**
 * The tape: every differentiable op attaches a {@linkcode GradNode} to its output right where it
 * computes the forward (micrograd style); `backward()` walks the graph in reverse topological
 * order, accumulates leaf gradients into `.grad`, and frees the graph as it goes.
 * @module
 */

import type { Tensor } from "./tensor.ts";

/** How an op's output turns an upstream gradient into gradients of its inputs. */
export interface GradNode {
  /** The op's name, for error messages. */
  readonly op: string;
  /** Inputs that need gradients (null where an input does not). */
  readonly inputs: readonly (Tensor | null)[];
  /** Gradients of `inputs` (same order; null where not needed) from the output's gradient. */
  readonly backward: (grad: Tensor) => (Tensor | null)[];
  /** Temporaries the op saved for backward; disposed when the graph is freed. */
  readonly saved: Tensor[];
  /** Every input the backward may read; each holds a graph reference until the node is freed. */
  readonly refs: readonly Tensor[];
}

let gradEnabled = true;

/** Whether ops currently record the graph. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording the graph (inference, optimizer updates).
 *
 * @returns what `fn` returned
 * @example
 * ```ts
 * import { noGrad, ones } from "@denograd/denograd";
 * const w = ones([2], { requiresGrad: true });
 * const y = noGrad(() => w.mul(2));
 * console.log(y.requiresGrad); // false
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Records `out = op(inputs)` on the tape when gradients are enabled and some input requires them.
 * `backward` runs later under noGrad; `saved` are temporaries owned by the node.
 */
export function attach(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: (grad: Tensor) => (Tensor | null)[],
  saved: Tensor[] = [],
): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) {
    for (const s of saved) s.dispose();
    return out;
  }
  // Inputs stay alive (even if disposed meanwhile) until this node is freed, and the node's own
  // temporaries belong to it, not to an enclosing tidy(): releaseNode() disposes them.
  for (const t of inputs) t._retainGraph();
  for (const t of saved) t.kept = true;
  out._setNode({
    op,
    inputs: inputs.map((t) => t.requiresGrad ? t : null),
    backward,
    saved,
    refs: inputs,
  });
  return out;
}

/** Frees a node: disposes its temporaries and drops its graph references on the inputs. */
export function releaseNode(node: GradNode): void {
  for (const s of node.saved) s.dispose();
  for (const t of node.refs) t._releaseGraph();
}

/** Reverse-mode sweep from `root` seeded with `seed` (which the caller owns). */
export function runBackward(root: Tensor, seed: Tensor): void {
  // Topological order by iterative DFS (deep graphs must not overflow the stack).
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const node = top[0]._node;
    const inputs = node ? node.inputs : [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(top[0]);
    }
  }

  // The sweep holds a reference on every tensor it visits, so an input whose consumers are all
  // processed is not released before its own backward has run.
  for (const t of order) t._retainGraph();
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  noGradRun(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      grads.delete(t);
      const node = t._node;
      if (!g || !node) {
        // A leaf takes ownership of its gradient; the caller's seed is never handed over.
        if (g && t.requiresGrad) t._accumulateGrad(g === seed ? g.alias() : g);
        else if (g && g !== seed) g.dispose();
        freeNode(t);
        continue;
      }
      const inputGrads = node.backward(g);
      const owned = new Set<Tensor>();
      for (let j = 0; j < node.inputs.length; j++) {
        const input = node.inputs[j];
        let ig = inputGrads[j];
        if (!ig) continue;
        // Each gradient gets its own handle so disposing one never frees another.
        if (ig === g || owned.has(ig)) ig = ig.alias();
        owned.add(ig);
        if (!input) {
          ig.dispose();
          continue;
        }
        if (
          ig.shape.length !== input.shape.length || ig.shape.some((d, k) => d !== input.shape[k])
        ) {
          throw new Error(
            `backward of ${node.op}: gradient shape [${ig.shape}] does not match input [${input.shape}]`,
          );
        }
        if (ig.dtype !== input.dtype && input.dtype !== "i32") {
          // An op that computed a bf16 input in f32 (mixed operands, bf16 storage) returns an f32
          // gradient: each tensor gets its gradient in its own dtype, as in torch.
          const cast = ig.cast(input.dtype);
          owned.delete(ig);
          ig.dispose();
          ig = cast;
          owned.add(ig);
        }
        const prev = grads.get(input);
        if (prev) {
          grads.set(input, accumulate(prev, ig));
          ig.dispose();
        } else grads.set(input, ig);
      }
      if (g !== seed) g.dispose();
      freeNode(t);
    }
  });
}

/**
 * prev + g. When `prev` is the only handle on its memory it is updated in place, so a tensor used
 * by many ops (a residual stream, the pieces of a split) does not allocate once per use.
 */
export function accumulate(prev: Tensor, g: Tensor): Tensor {
  if (!prev.storage.shared && prev.isContiguous) {
    const v = prev._view();
    prev.backend.binary("add", v, g._view(), v);
    return prev;
  }
  const sum = prev.add(g);
  prev.dispose();
  return sum;
}

function freeNode(t: Tensor): void {
  const node = t._node;
  t._setNode(null);
  if (node) releaseNode(node);
  t._releaseGraph();
}

function noGradRun(fn: () => void): void {
  noGrad(fn);
}
