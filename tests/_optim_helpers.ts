// Shared by the optimizer tests: the PyTorch fixtures (tests/fixtures/make_optim_fixture.py and
// make_optim2_fixture.py), a step-by-step check of an optimizer against them, tolerant comparisons,
// and a Jacobi eigen-solver for the singular values of Newton–Schulz outputs.
import assert from "node:assert/strict";
import { Adam, AdamW, keep, Muon, type Optimizer, SGD, type Tensor, tensor } from "../mod.ts";
import { readFixture } from "./_fixtures.ts";

/** A tensor as the optimizer fixtures store it. */
export interface FixTensor {
  shape: number[];
  data: number[];
}
/** One optimizer run: parameters, per-step group lrs and gradients, and the reference's results. */
export interface OptimCase {
  name: string;
  optimizer: "SGD" | "Adam" | "AdamW" | "Muon";
  // deno-lint-ignore no-explicit-any
  defaults: Record<string, any>;
  // deno-lint-ignore no-explicit-any
  groups: ({ params: number[] } & Record<string, any>)[];
  params: FixTensor[];
  steps: { lrs: number[]; grads: (FixTensor | null)[] }[];
  expected: FixTensor[][];
  state: Record<string, FixTensor>;
}
/** One torch.nn.utils.clip_grad_norm_ call. */
export interface ClipCase {
  name: string;
  maxNorm: number;
  grads: FixTensor[];
  norm: number;
  clipped: FixTensor[];
}
/** One Newton–Schulz run with the singular values before and after. */
export interface NsCase {
  name: string;
  steps: number;
  input: FixTensor;
  output: FixTensor;
  inputSingular: number[];
  outputSingular: number[];
}
/** The band the scalar Newton–Schulz quintic maps singular values above `sMin` into. */
export interface Band {
  sMin: number;
  lo: number;
  hi: number;
  peak: number;
  crossing: number;
}

/** tests/fixtures/optim.json: AdamW and SGD against torch.optim, and gradient clipping. */
export const OPTIM_FIXTURE = readFixture<{ optimizers: OptimCase[]; clip: ClipCase[] }>(
  "optim.json",
);
/** tests/fixtures/optim2.json: SGD, Adam, AdamW, Muon and Newton–Schulz. */
export const OPTIM2_FIXTURE = readFixture<
  { optimizers: OptimCase[]; newtonSchulz: NsCase[]; band: Band }
>("optim2.json");

/** A fixture tensor as an f32 tensor. */
export const make = (t: FixTensor, requiresGrad = false): Tensor =>
  tensor(Float32Array.from(t.data), { shape: t.shape, requiresGrad });

/** Asserts `actual` has the fixture's shape and values within `atol + rtol * |expected|`. */
export function assertClose(
  actual: Tensor,
  expected: FixTensor,
  what: string,
  atol = 2e-6,
  rtol = 2e-5,
): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.toTypedArray();
  expected.data.forEach((e, i) => {
    const d = Math.abs(a[i] - e);
    assert.ok(d <= atol + rtol * Math.abs(e), `${what}[${i}]: ${a[i]} vs torch ${e} (diff ${d})`);
  });
}

/** Asserts two numbers agree to 1e-12 (learning rates computed two ways). */
export const close = (a: number, b: number, what = ""): void =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what} ${a} vs ${b}`);

// deno-lint-ignore no-explicit-any
const CLASSES: Record<OptimCase["optimizer"], new (groups: any, defaults: any) => Optimizer<any>> =
  { SGD, Adam, AdamW, Muon };

/**
 * Runs the fixture's optimizer step by step (setting each group's lr, then the gradients, `null`
 * for none) and checks the parameters after every step, then the final state and step counts.
 * `onlyReferenceState` also checks the optimizer keeps no state slot the reference lacks.
 */
export function assertStepsMatchReference(
  c: OptimCase,
  { atol = 2e-6, rtol = 2e-5, onlyReferenceState = false } = {},
): void {
  const params = c.params.map((p) => make(p, true));
  const groups = c.groups.map(({ params: idx, ...opts }) => ({
    params: idx.map((i) => params[i]),
    ...opts,
  }));
  const opt = new CLASSES[c.optimizer](groups, c.defaults);
  c.steps.forEach((s, k) => {
    opt.paramGroups.forEach((g, gi) => g.lr = s.lrs[gi]);
    s.grads.forEach((g, i) => {
      params[i].zeroGrad();
      if (g) params[i].grad = keep(make(g));
    });
    opt.step();
    params.forEach((p, i) =>
      assertClose(p, c.expected[k][i], `step ${k + 1} param ${i}`, atol, rtol)
    );
  });
  // State names follow the optimizer's parameter order (groups flattened).
  const order = c.groups.flatMap((g) => g.params);
  const state = opt.state();
  for (const [key, t] of Object.entries(c.state)) {
    const [i, slot] = key.split(".");
    assertClose(state[`${order.indexOf(Number(i))}.${slot}`], t, `state ${key}`, atol, rtol);
  }
  if (onlyReferenceState) {
    const slotKeys = Object.keys(state).filter((k) => k !== "step");
    assert.equal(slotKeys.length, Object.keys(c.state).length, "no state beyond torch's");
  }
  const updates = order.map((i) => c.steps.filter((s) => s.grads[i] !== null).length);
  assert.deepEqual(Array.from(state.step.toTypedArray()), updates);
  for (const t of Object.values(state)) t.dispose();
  opt.dispose();
}

/** Eigenvalues of a symmetric n x n matrix (row-major, f64) by cyclic Jacobi rotations. */
export function symmetricEigenvalues(m: Float64Array, n: number): number[] {
  const a = m.slice();
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0, diag = 0;
    for (let p = 0; p < n; p++) {
      diag += a[p * n + p] ** 2;
      for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    }
    if (off <= 1e-30 * diag) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) { // columns p, q
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) { // rows p, q
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => a[i * n + i]);
}

/** Singular values (descending) of a (rows, cols) matrix: square roots of its small Gram's eigenvalues. */
export function singularValues(x: Tensor): number[] {
  const [rows, cols] = x.shape;
  const d = x.toTypedArray();
  const wide = rows <= cols, r = wide ? rows : cols, c = wide ? cols : rows;
  const at = (i: number, k: number) => wide ? d[i * cols + k] : d[k * cols + i];
  const gram = new Float64Array(r * r); // (r, r) = X Xᵀ of the wide orientation
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += at(i, k) * at(j, k);
      gram[i * r + j] = gram[j * r + i] = s;
    }
  }
  return symmetricEigenvalues(gram, r).map((l) => Math.sqrt(Math.max(l, 0))).sort((a, b) => b - a);
}
