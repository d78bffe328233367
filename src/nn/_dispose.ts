// Freeing a forward's intermediates by name, for forwards that keep some of them past the call
// (MoE stores its router loss for takeRouterLoss). Every other layer wraps its forward in tidy():
// a tidy scope no longer frees the temporaries ops save for backward (they belong to their graph
// node: src/autograd.ts), so a forward in tidy() can be differentiated after it.
import type { Tensor } from "../tensor.ts";

/** Disposes each of `temps` that is not `result` (dropout may hand back its input); returns result. */
export function disposeExcept(result: Tensor, ...temps: Tensor[]): Tensor {
  for (const t of temps) if (t !== result) t.dispose();
  return result;
}
