/**
 * Scalar math shared by the CPU kernels. V8's Math.exp/Math.tanh cost 15-25 ns each, which
 * dominates softmax, cross-entropy and GELU; `fastExp` is ~4x faster at ~1e-12 relative error.
 * @module
 */

const MAGIC_ROUND = 6755399441055744.0; // 1.5 * 2^52: (x + M) - M rounds x to an integer
const SCALE = 32 / Math.LN2;
// ln2/32 split so that k * LN2_32_HI is exact for |k| < 2^15 (Cody-Waite range reduction).
const LN2_32_HI = 0.693145751953125 / 32;
const LN2_32_LO = 1.4286068203094173e-6 / 32;
/** 2^(j/32), j = 0..31. */
const EXP2_FRAC = new Float64Array(32);
/** 2^m for m = -1100..1099 (index m + 1100). */
const EXP2_INT = new Float64Array(2200);
for (let j = 0; j < 32; j++) EXP2_FRAC[j] = Math.pow(2, j / 32);
for (let m = 0; m < 2200; m++) EXP2_INT[m] = Math.pow(2, m - 1100);

/**
 * e^x with ~1e-12 relative error: x = (32m + j) ln2/32 + r with |r| <= ln2/64, so
 * e^x = 2^m * 2^(j/32) * e^r and a degree-4 polynomial suffices for e^r.
 */
export function fastExp(x: number): number {
  // e^-104 is below the smallest f32 subnormal, so 0 is exact for f32 results (and covers the
  // -Infinity of masked attention scores cheaply); large x overflow to Infinity through Math.exp.
  if (x < -104) return 0;
  if (x > 700) return Math.exp(x);
  const k = (x * SCALE + MAGIC_ROUND) - MAGIC_ROUND;
  const r = (x - k * LN2_32_HI) - k * LN2_32_LO;
  const ki = k | 0;
  const p = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24))));
  return p * EXP2_FRAC[ki & 31] * EXP2_INT[(ki >> 5) + 1100];
}

/** tanh(x) via one fastExp; a Taylor series near 0 avoids the cancellation in 1 - e^-2|x|. */
export function fastTanh(x: number): number {
  const ax = x < 0 ? -x : x;
  if (ax < 0.01) {
    const x2 = x * x;
    return x * (1 + x2 * (-1 / 3 + x2 * (2 / 15 - x2 * (17 / 315))));
  }
  const e = fastExp(-2 * ax);
  const t = (1 - e) / (1 + e);
  return x < 0 ? -t : t;
}

/** 1 / (1 + e^-x). */
export function sigmoid(x: number): number {
  return 1 / (1 + fastExp(-x));
}

const GELU_A = Math.sqrt(2 / Math.PI);
const GELU_B = 0.044715;

/**
 * GELU, tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3).
 * Computed as the identical x * sigmoid(2u), which needs one exp and never cancels.
 */
export function gelu(x: number): number {
  const u = GELU_A * (x + GELU_B * x * x * x);
  return x / (1 + fastExp(-2 * u));
}

/** d gelu(x) / dx = s + x s (1 - s) 2u', with s = sigmoid(2u). */
export function geluGrad(x: number): number {
  const x2 = x * x;
  const s = 1 / (1 + fastExp(-2 * GELU_A * x * (1 + GELU_B * x2)));
  return s + x * s * (1 - s) * 2 * GELU_A * (1 + 3 * GELU_B * x2);
}
