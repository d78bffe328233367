/**
 * Muon (Keller Jordan, 2024): SGD momentum whose update, for each 2-D weight matrix, is replaced
 * by its nearest semi-orthogonal matrix (Newton–Schulz), so every direction of the update moves
 * the same amount. For hidden matrices only; embeddings, the head, biases and norms go to AdamW
 * ({@linkcode muonWithAdamW}).
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { noGrad } from "../autograd.ts";
import { tidy } from "../memory.ts";
import { fmt } from "../_shape.ts";
import { newtonSchulz } from "./newton_schulz.ts";
import { Optimizer, type ParamGroup } from "./optimizer.ts";

/** Muon's hyperparameters (defaults from Keller Jordan's reference implementation). */
export interface MuonOptions {
  /** Learning rate; default 0.02. */
  lr: number;
  /** Momentum factor beta: buf = beta * buf + (1 - beta) * g; default 0.95. */
  momentum: number;
  /** Orthogonalise (1 - beta) * g + beta * buf instead of buf; default true. */
  nesterov: boolean;
  /** Decoupled weight decay (p *= 1 - lr * weightDecay before the update); default 0. */
  weightDecay: number;
  /** Newton–Schulz iterations; default 5. */
  nsSteps: number;
}

const DEFAULTS: MuonOptions = {
  lr: 0.02,
  momentum: 0.95,
  nesterov: true,
  weightDecay: 0,
  nsSteps: 5,
};

function checkOptions(o: MuonOptions, where: string): void {
  const bad = (what: string, v: unknown) => new RangeError(`Muon: ${what}${where}, got ${v}`);
  if (!(Number.isFinite(o.lr) && o.lr >= 0)) throw bad("lr must be a finite number >= 0", o.lr);
  if (!(o.momentum >= 0 && o.momentum < 1)) throw bad("momentum must be in [0, 1)", o.momentum);
  if (!(Number.isFinite(o.weightDecay) && o.weightDecay >= 0)) {
    throw bad("weightDecay must be a finite number >= 0", o.weightDecay);
  }
  if (!Number.isInteger(o.nsSteps) || o.nsSteps < 1) {
    throw bad("nsSteps must be an integer >= 1", o.nsSteps);
  }
  if (typeof o.nesterov !== "boolean") {
    throw new TypeError(`Muon: nesterov must be a boolean${where}, got ${o.nesterov}`);
  }
}

/**
 * Muon over 2-D parameters (or groups of them, each with its own options). Per parameter
 * (rows, cols) with gradient g:
 *
 *   buf = momentum * buf + (1 - momentum) * g
 *   u   = nesterov ? (1 - momentum) * g + momentum * buf : buf
 *   p   = p * (1 - lr * weightDecay) - lr * sqrt(max(1, rows / cols)) * newtonSchulz(u)
 *
 * The sqrt(max(1, rows/cols)) scale is Keller Jordan's (github.com/KellerJordan/Muon, as in
 * modded-nanogpt): weights are (out, in), and a semi-orthogonal (rows, cols) matrix has entries
 * of RMS 1/sqrt(max(rows, cols)), so the scale gives every update RMS 1/sqrt(cols), 1/sqrt(fan-in),
 * whether the matrix is tall or wide. Parameters without a
 * gradient are skipped (torch.optim's rule). State: `momentum` per parameter.
 *
 * @example
 * ```ts
 * import { Muon, randn } from "@denograd/denograd";
 * const w = randn([16, 8], { requiresGrad: true });
 * const target = randn([16, 8]);
 * const opt = new Muon([w], { lr: 0.05 });
 * const loss = () => w.sub(target).pow(2).mean();
 * const before = loss().item();
 * for (let i = 0; i < 50; i++) {
 *   loss().backward();
 *   opt.step();
 *   opt.zeroGrad();
 * }
 * console.log(before, loss().item()); // ~2, then far smaller
 * ```
 */
export class Muon extends Optimizer<MuonOptions> {
  /**
   * Validates the parameters (each a 2-D matrix) and options.
   *
   * @param params 2-D parameters, or groups `{ params, ...options }` with their own options
   * @param options defaults for every group
   * @throws {RangeError} for a parameter that is not 2-D, naming it and where it belongs
   */
  constructor(
    params: readonly Tensor[] | readonly ParamGroup<MuonOptions>[],
    options: Partial<MuonOptions> = {},
  ) {
    const defaults = { ...DEFAULTS, ...options };
    checkOptions(defaults, "");
    super("Muon", params, defaults, ["momentum"], checkOptions);
    this.params.forEach((p, i) => {
      if (p.ndim !== 2) {
        throw new RangeError(
          `Muon: parameter ${i} has shape ${fmt(p.shape)}; Muon updates 2-D hidden weight ` +
            `matrices only: give embeddings, the head, biases and norms to AdamW ` +
            `(muonWithAdamW does this split)`,
        );
      }
    });
  }

  /** One Muon update of every parameter that has a gradient. */
  step(): void {
    let index = 0;
    for (const group of this.paramGroups) {
      const { lr, momentum: beta, nesterov, weightDecay, nsSteps } = group;
      for (const p of group.params) {
        const i = index++;
        const g = p.grad;
        if (!g) continue;
        if (g.shape.length !== 2 || g.shape[0] !== p.shape[0] || g.shape[1] !== p.shape[1]) {
          throw new RangeError(
            `Muon.step: gradient ${fmt(g.shape)} of parameter ${i} differs from its shape ${
              fmt(p.shape)
            }`,
          );
        }
        const buf = this.slot(i, "momentum");
        this.steps[i]++;
        const [rows, cols] = p.shape;
        const scale = Math.sqrt(Math.max(1, rows / cols));
        noGrad(() =>
          tidy(() => {
            buf.assign(buf.mul(beta).add(g.mul(1 - beta))); // (rows, cols)
            const u = nesterov ? g.mul(1 - beta).add(buf.mul(beta)) : buf; // (rows, cols)
            const o = newtonSchulz(u, nsSteps); // (rows, cols)
            p.assign(p.mul(1 - lr * weightDecay).sub(o.mul(lr * scale)));
          })
        );
      }
    }
  }
}
