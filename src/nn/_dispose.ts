// Freeing a forward's intermediates. Layers do not wrap their forward in tidy(): a tidy scope
// also sees the temporaries ops save for backward, and would free them before a backward() run
// outside the scope. Disposing only the tensors the forward itself names is always safe: one the
// graph still needs is freed when backward is done with it.
import type { Tensor } from "../tensor.ts";

/** Disposes each of `temps` that is not `result` (dropout may hand back its input); returns result. */
export function disposeExcept(result: Tensor, ...temps: Tensor[]): Tensor {
  for (const t of temps) if (t !== result) t.dispose();
  return result;
}
