/**
 * Rotary position embeddings (RoPE, Su et al. 2021) and their context-extension variants:
 * linear positional interpolation (Chen et al. 2023), NTK-aware base scaling (bloc97 2023) and
 * YaRN (Peng et al. 2023). Queries and keys are rotated pairwise by angles proportional to their
 * absolute position, so q·k depends only on the distance between them.
 *
 * Convention: GPT-NeoX's / Llama's "rotate_half" split (as Hugging Face's `apply_rotary_pos_emb`):
 * dimension i of the first half pairs with dimension i + D/2, with frequency invFreq[i]:
 * `out = x * cos + rotate_half(x) * sin`, `rotate_half([x1, x2]) = [-x2, x1]`.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { keep } from "../memory.ts";
import { tensor } from "../ops/creation.ts";
import { cast } from "../ops/elementwise.ts";
import { cat } from "../ops/movement.ts";
import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";

/** How RoPE's frequencies are changed to reach beyond the training context. */
export type RopeScaling =
  | { type: "none" }
  /** Positional interpolation: positions divided by `factor` (every frequency / factor). */
  | { type: "linear"; factor: number }
  /** NTK-aware: base theta * factor^(D/(D-2)); high frequencies kept, low ones interpolated. */
  | { type: "ntk"; factor: number }
  /**
   * YaRN: per-frequency blend of interpolation and extrapolation ("NTK-by-parts", ramp between
   * `betaFast` (default 32) and `betaSlow` (default 1) rotations over `originalContext`) and the
   * attention temperature mscale = 0.1 ln(factor) + 1 applied to cos and sin (so to q and k).
   */
  | {
    type: "yarn";
    factor: number;
    originalContext: number;
    betaFast?: number;
    betaSlow?: number;
  };

/** RoPE's settings: base `theta` (default 10000) and a scaling (default none). */
export interface RopeConfig {
  /** Base of the frequencies invFreq[i] = theta^(-2i/D). */
  theta?: number;
  /** Context extension. */
  scaling?: RopeScaling;
}

/** The frequencies of one RoPE setting and the factor cos/sin are multiplied by. */
export interface RopeFrequencies {
  /** (D/2) angular frequency of each pair, radians per position. */
  invFreq: Float64Array;
  /** YaRN's attention factor (1 for the others). */
  mscale: number;
}

/**
 * Checks a RoPE scaling, with errors naming `where`.
 *
 * @param scaling the scaling to check
 * @param where the caller, for the message
 * @throws {TypeError|RangeError} for an unknown type or a bad factor / context / beta
 * @example
 * ```ts
 * import { validateRopeScaling } from "@denograd/denograd";
 * validateRopeScaling({ type: "yarn", factor: 4, originalContext: 2048 }, "mine"); // fine
 * ```
 */
export function validateRopeScaling(scaling: RopeScaling, where: string): void {
  if (typeof scaling !== "object" || scaling === null) {
    throw new TypeError(`${where}: ropeScaling must be an object with a type, got ${scaling}`);
  }
  const type = (scaling as { type: unknown }).type;
  if (type === "none") return;
  if (type !== "linear" && type !== "ntk" && type !== "yarn") {
    throw new RangeError(
      `${where}: ropeScaling.type must be "none", "linear", "ntk" or "yarn", got ${type}`,
    );
  }
  const { factor } = scaling as { factor: unknown };
  if (typeof factor !== "number" || !(factor >= 1) || !Number.isFinite(factor)) {
    throw new RangeError(
      `${where}: ropeScaling.factor must be a finite number >= 1, got ${factor}`,
    );
  }
  if (scaling.type === "yarn") {
    const { originalContext, betaFast = 32, betaSlow = 1 } = scaling;
    if (!Number.isInteger(originalContext) || originalContext < 1) {
      throw new RangeError(
        `${where}: ropeScaling.originalContext must be a positive integer, got ${originalContext}`,
      );
    }
    if (!(betaFast > betaSlow && betaSlow > 0) || !Number.isFinite(betaFast)) {
      throw new RangeError(
        `${where}: ropeScaling needs betaFast > betaSlow > 0, got ${betaFast} and ${betaSlow}`,
      );
    }
  }
}

/**
 * RoPE's per-pair frequencies for head size `headDim`, following Hugging Face's
 * `modeling_rope_utils` (`_compute_default_rope_parameters`, linear scaling as dividing the
 * frequencies, `_compute_yarn_parameters`); NTK-aware is the static form of its dynamic variant.
 *
 * @param headDim D, even
 * @param config theta and scaling
 * @returns invFreq (D/2) and YaRN's mscale
 * @example
 * ```ts
 * import { ropeFrequencies } from "@denograd/denograd";
 * const { invFreq } = ropeFrequencies(4, { theta: 10000 });
 * console.log(invFreq[0], invFreq[1]); // 1 0.01
 * ```
 */
export function ropeFrequencies(headDim: number, config: RopeConfig = {}): RopeFrequencies {
  const { theta = 10000, scaling = { type: "none" } } = config;
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new RangeError(`ropeFrequencies: headDim must be an even integer >= 2, got ${headDim}`);
  }
  if (typeof theta !== "number" || !(theta > 1) || !Number.isFinite(theta)) {
    throw new RangeError(`ropeFrequencies: theta must be a finite number > 1, got ${theta}`);
  }
  validateRopeScaling(scaling, "ropeFrequencies");
  const d = headDim, half = d / 2;
  const base = scaling.type === "ntk" ? theta * scaling.factor ** (d / (d - 2)) : theta;
  const invFreq = Float64Array.from({ length: half }, (_, i) => base ** (-(2 * i) / d));
  if (scaling.type === "linear") {
    for (let i = 0; i < half; i++) invFreq[i] /= scaling.factor;
  }
  if (scaling.type !== "yarn") return { invFreq, mscale: 1 };

  // YaRN: pairs that turn more than betaFast times over the original context keep their
  // frequency (extrapolate), pairs that turn less than betaSlow times are interpolated (/ factor),
  // a linear ramp in between.
  const { factor, originalContext, betaFast = 32, betaSlow = 1 } = scaling;
  const correctionDim = (rotations: number) =>
    (d * Math.log(originalContext / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  const low = Math.max(Math.floor(correctionDim(betaFast)), 0);
  let high = Math.min(Math.ceil(correctionDim(betaSlow)), d - 1);
  if (low === high) high += 0.001; // avoid a zero-width ramp
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const extrapolation = 1 - ramp; // 1: keep the frequency, 0: interpolate it
    invFreq[i] = (invFreq[i] / factor) * (1 - extrapolation) + invFreq[i] * extrapolation;
  }
  return { invFreq, mscale: 0.1 * Math.log(factor) + 1 };
}

/** cos and sin tables, (L, D/2) each, f32, for positions [0, L). */
interface RopeTables {
  cos: Tensor;
  sin: Tensor;
  length: number;
}

const tableCache = new Map<string, RopeTables>();

/**
 * @internal cos and sin of positions [start, start + length), each (length, D/2), scaled by mscale; views
 * into tables cached per (device, head size, theta, scaling) that grow (doubling) on demand.
 * The views are the caller's to dispose; the tables live until {@linkcode clearRopeCache}.
 */
export function ropeTables(
  headDim: number,
  config: RopeConfig,
  start: number,
  length: number,
  device: Device,
): { cos: Tensor; sin: Tensor } {
  const key = JSON.stringify([device, headDim, config.theta ?? 10000, config.scaling ?? null]);
  let tables = tableCache.get(key);
  const need = start + length;
  if (!tables || tables.length < need) {
    const size = Math.max(need, 2 * (tables?.length ?? 0), 256);
    const { invFreq, mscale } = ropeFrequencies(headDim, config);
    const half = headDim / 2;
    const cos = new Float32Array(size * half), sin = new Float32Array(size * half);
    for (let p = 0; p < size; p++) {
      for (let i = 0; i < half; i++) {
        const angle = p * invFreq[i]; // in f64: exact enough for positions in the millions
        cos[p * half + i] = Math.cos(angle) * mscale;
        sin[p * half + i] = Math.sin(angle) * mscale;
      }
    }
    if (tables) {
      tables.cos.dispose();
      tables.sin.dispose();
    }
    tables = {
      cos: keep(tensor(cos, { shape: [size, half], device })),
      sin: keep(tensor(sin, { shape: [size, half], device })),
      length: size,
    };
    tableCache.set(key, tables);
  }
  return { cos: tables.cos.narrow(0, start, length), sin: tables.sin.narrow(0, start, length) };
}

/**
 * Frees every cached cos/sin table (they are rebuilt on the next use).
 *
 * @example
 * ```ts
 * import { clearRopeCache } from "@denograd/denograd";
 * clearRopeCache();
 * ```
 */
export function clearRopeCache(): void {
  for (const t of tableCache.values()) {
    t.cos.dispose();
    t.sin.dispose();
  }
  tableCache.clear();
}

/**
 * Rotates queries or keys at positions [start, start + T) (differentiable in x).
 *
 * @param x (B, H, T, D), any strides
 * @param start absolute position of row 0
 * @param config theta and scaling
 * @returns (B, H, T, D) rotated (times mscale for YaRN)
 * @example
 * ```ts
 * import { applyRope, tensor } from "@denograd/denograd";
 * const x = tensor([[[[1, 0, 0, 0]]]]); // (1, 1, 1, 4)
 * const r = applyRope(x, 1); // position 1: the first pair turns by 1 radian
 * console.log(r.toArray()); // ≈ [[[[cos 1, 0, sin 1, 0]]]]
 * ```
 */
export function applyRope(x: Tensor, start: number, config: RopeConfig = {}): Tensor {
  if (x.ndim !== 4 || x.shape[3] % 2 !== 0) {
    throw new RangeError(`applyRope: x must be (B, H, T, D) with D even, got ${fmt(x.shape)}`);
  }
  if (!Number.isInteger(start) || start < 0) {
    throw new RangeError(`applyRope: start must be a non-negative integer, got ${start}`);
  }
  const [, , t, d] = x.shape, half = d / 2;
  const { cos, sin } = ropeTables(d, config, start, t, x.device); // (T, D/2) each
  const x1 = x.narrow(3, 0, half), x2 = x.narrow(3, half, half); // (B, H, T, D/2) each
  const a = x1.mul(cos), b = x2.mul(sin), c = x2.mul(cos), e = x1.mul(sin);
  const out1 = a.sub(b); // x1 cos - x2 sin
  const out2 = c.add(e); // x2 cos + x1 sin
  const out = cat([out1, out2], 3); // (B, H, T, D), f32 (bf16 arithmetic computes in f32)
  for (const tmp of [cos, sin, x1, x2, a, b, c, e, out1, out2]) tmp.dispose();
  if (x.dtype === out.dtype) return out;
  const back = cast(out, x.dtype); // bf16 in, bf16 out: q, k and v keep one dtype
  out.dispose();
  return back;
}
