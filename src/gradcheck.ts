/**
 * Finite-difference gradient checking: compares backward() with central differences.
 * @module
 */

import type { Tensor } from "./tensor.ts";
import { noGrad } from "./autograd.ts";
import { tidy } from "./memory.ts";
import { tensor } from "./ops/creation.ts";
import { fmt } from "./_shape.ts";

/** Tolerances and step of {@linkcode gradcheck}. */
export interface GradcheckOptions {
  /** Finite-difference step. Default 1e-2 (f32 needs a large step). */
  eps?: number;
  /** Absolute tolerance. Default 1e-3. */
  atol?: number;
  /** Relative tolerance. Default 1e-2. */
  rtol?: number;
}

/**
 * Checks the gradients `fn` computes by backward() against central finite differences, for every
 * input with `requiresGrad`. The output is projected to a scalar with fixed pseudo-random weights,
 * so every output element's gradient is checked. Throws an Error naming the input, the element and
 * both values on the first mismatch.
 *
 * @param fn a deterministic function of the inputs
 * @param inputs leaf f32 tensors (those without requiresGrad are held constant)
 * @returns true when all gradients match
 * @example
 * ```ts
 * import { gradcheck, randn } from "@denograd/denograd";
 * const x = randn([3, 4], { requiresGrad: true });
 * gradcheck((x) => x.tanh().sum(1), [x]); // true
 * ```
 */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  options: GradcheckOptions = {},
): boolean {
  const { eps = 1e-2, atol = 1e-3, rtol = 1e-2 } = options;
  const hosts = inputs.map((t) => Float64Array.from(t.toTypedArray()));
  const build = (i: number, data: Float64Array, grad: boolean) =>
    tensor(Float32Array.from(data), {
      shape: inputs[i].shape,
      dtype: inputs[i].dtype,
      requiresGrad: grad,
    });

  // Fixed weights from a tiny LCG, so the global RNG is left alone.
  let weights: Float64Array | null = null;
  const project = (out: Tensor): number => {
    const v = out.toTypedArray();
    if (!weights) {
      weights = new Float64Array(v.length);
      let s = 12345;
      for (let i = 0; i < v.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        weights[i] = 0.5 + s / 4294967296;
      }
    }
    let acc = 0;
    for (let i = 0; i < v.length; i++) acc += v[i] * weights[i];
    return acc;
  };

  // Analytic gradients.
  const analytic = tidy(() => {
    const leaves = inputs.map((t, i) => build(i, hosts[i], t.requiresGrad));
    const out = fn(...leaves);
    project(out);
    const w = tensor(Float32Array.from(weights!), { shape: out.shape });
    out.mul(w).sum().backward();
    return leaves.map((l) => (l.grad ? Float64Array.from(l.grad.toTypedArray()) : null));
  });

  // Numeric gradients, element by element.
  for (let i = 0; i < inputs.length; i++) {
    const a = analytic[i];
    if (!inputs[i].requiresGrad || !a) continue;
    for (let j = 0; j < hosts[i].length; j++) {
      const f = (delta: number) =>
        tidy(() =>
          noGrad(() => {
            const data = hosts[i].slice();
            data[j] += delta;
            const args = inputs.map((
              _,
              k,
            ) => (k === i ? build(k, data, false) : build(k, hosts[k], false)));
            return project(fn(...args));
          })
        );
      const numeric = (f(eps) - f(-eps)) / (2 * eps);
      if (!(Math.abs(a[j] - numeric) <= atol + rtol * Math.abs(numeric))) {
        throw new Error(
          `gradcheck: input ${i} (shape ${fmt(inputs[i].shape)}) element ${j}: ` +
            `backward gives ${a[j]}, finite differences give ${numeric}`,
        );
      }
    }
  }
  return true;
}
