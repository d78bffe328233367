/**
 * Newton–Schulz orthogonalisation: the matrix "zeroth power" U V^T of G = U S V^T, approximated
 * with a few matrix products instead of an SVD. Composed from matmul and elementwise ops, so it
 * runs on every backend.
 * @module
 */

import { noGrad } from "../autograd.ts";
import { tidy } from "../memory.ts";
import { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";

/**
 * Keller Jordan's quintic coefficients (a, b, c) for Muon: each iteration maps every singular
 * value s to a·s + b·s³ + c·s⁵, chosen to push small values up fast rather than converge exactly.
 * After 5 iterations every singular value of the (norm-1) input above ~0.002 lands in about
 * [0.68, 1.21] (above 0.01: [0.68, 1.14]); see tests/muon_test.ts.
 */
export const NEWTON_SCHULZ_COEFFICIENTS: readonly [number, number, number] = [
  3.4445,
  -4.775,
  2.0315,
];

/**
 * Approximately orthogonalises a matrix with the quintic Newton–Schulz iteration Muon uses:
 * X = G / (‖G‖_F + 1e-7) (so every singular value is at most 1), transposed when tall so the
 * Gram matrix X·Xᵀ is the small one, then `steps` times
 * `A = X·Xᵀ; B = b·A + c·A·A; X = a·X + B·X`. The singular vectors are kept; the singular
 * values end up near 1 (not exactly: see {@linkcode NEWTON_SCHULZ_COEFFICIENTS}). f32
 * throughout (Keller Jordan's reference runs it in bf16).
 *
 * @param g (rows, cols) f32
 * @param steps iterations (default 5)
 * @returns a new (rows, cols) tensor, contiguous, outside autograd
 * @example
 * ```ts
 * import { newtonSchulz, randn } from "@denograd/denograd";
 * const o = newtonSchulz(randn([8, 32])); // (8, 32): singular values all in about [0.68, 1.14]
 * const gram = o.matmul(o.transpose(0, 1)); // (8, 8): eigenvalues in about [0.46, 1.3]
 * console.log(o.shape, gram.shape); // [8, 32] [8, 8]
 * ```
 */
export function newtonSchulz(g: Tensor, steps = 5): Tensor {
  if (!(g instanceof Tensor)) throw new TypeError("newtonSchulz: g must be a Tensor");
  if (g.ndim !== 2 || g.dtype !== "f32") {
    throw new RangeError(`newtonSchulz: expected a 2-D f32 matrix, got ${g.dtype} ${fmt(g.shape)}`);
  }
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`newtonSchulz: steps must be an integer >= 1, got ${steps}`);
  }
  const [a, b, c] = NEWTON_SCHULZ_COEFFICIENTS;
  const tall = g.shape[0] > g.shape[1];
  return noGrad(() =>
    tidy(() => {
      const wide = tall ? g.transpose(0, 1) : g; // (r, c), r <= c
      const norm = wide.mul(wide).sum().sqrt().add(1e-7); // ()
      let x = wide.div(norm); // (r, c), spectral norm <= 1
      for (let k = 0; k < steps; k++) {
        const prev = x;
        x = tidy(() => {
          const gram = prev.matmul(prev.transpose(0, 1)); // (r, r)
          const poly = gram.mul(b).add(gram.matmul(gram).mul(c)); // (r, r)
          return prev.mul(a).add(poly.matmul(prev)); // (r, c)
        });
        prev.dispose();
      }
      return tall ? x.transpose(0, 1).contiguous() : x; // (rows, cols)
    })
  );
}
