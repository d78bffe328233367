/**
 * Loads the PyTorch reference fixtures written by tests/fixtures/make_fixtures.py (its docstring
 * documents the format) and compares tensors against them with a tolerance.
 * @module
 */

import assert from "node:assert/strict";
// From src/, not mod.ts: the GPU test suite imports this file and must not reach the tokenizer's
// npm package (too big to carry to the GPU machine, see bench/gpu/prepare.sh).
import type { Tensor } from "../src/tensor.ts";
import { tensor } from "../src/ops/creation.ts";

/** A fixture value: non-finite floats are spelled "inf", "-inf", "nan". */
export type FixtureNumber = number | "inf" | "-inf" | "nan";

/** A tensor as stored in a fixture file: shape, dtype and flat row-major data. */
export interface FixtureTensor {
  shape: number[];
  dtype: "f32" | "i32";
  data: FixtureNumber[];
}

/** How a fixture input is built from its storage (see make_fixtures.py). */
export interface FixtureInput extends FixtureTensor {
  grad: boolean;
  layout: "contiguous" | "transposed" | "permuted" | "sliced" | "expanded";
  storage_shape?: number[];
  perm?: number[];
  slice?: { dim: number; start: number | null; end: number | null; step: number | null };
}

/** Absolute and relative tolerance: |a - e| <= atol + rtol * |e|. */
export interface Tolerance {
  atol: number;
  rtol: number;
}

/** One op case. */
export interface OpCase {
  name: string;
  op: string;
  // deno-lint-ignore no-explicit-any
  args: Record<string, any>;
  inputs: FixtureInput[];
  output?: FixtureTensor;
  outputs?: FixtureTensor[];
  upstream?: FixtureTensor;
  upstreams?: FixtureTensor[];
  grads?: (FixtureTensor | null)[];
  tol?: Tolerance;
}

/** The default tolerance for f32 results. */
export const F32_TOL: Tolerance = { atol: 1e-5, rtol: 1e-4 };

const FIXTURES = new URL("./fixtures/", import.meta.url);

/** Reads and parses a JSON file in tests/fixtures/. */
export function readFixture<T>(file: string): T {
  return JSON.parse(Deno.readTextFileSync(new URL(file, FIXTURES))) as T;
}

/** Reads the op cases of one ops_*.json file. */
export function loadOpCases(file: string): OpCase[] {
  return readFixture<{ version: number; cases: OpCase[] }>(file).cases;
}

/** Decodes one fixture number (including the non-finite spellings). */
export function num(v: FixtureNumber): number {
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  if (v === "nan") return NaN;
  return v;
}

/** Builds a denograd tensor from a fixture tensor (data taken at `shape`). */
export function toTensor(
  t: FixtureTensor,
  opts: { shape?: number[]; requiresGrad?: boolean } = {},
): Tensor {
  const shape = opts.shape ?? t.shape;
  const data = t.dtype === "f32"
    ? Float32Array.from(t.data, num)
    : Int32Array.from(t.data, (v) => num(v));
  return tensor(data, { shape, dtype: t.dtype, requiresGrad: opts.requiresGrad ?? false });
}

/**
 * Builds a fixture input: returns the storage leaf (whose `.grad` the fixture's grads describe)
 * and the possibly non-contiguous view handed to the op.
 */
export function buildInput(inp: FixtureInput): { leaf: Tensor; view: Tensor } {
  const storageShape = inp.layout === "contiguous" ? inp.shape : inp.storage_shape!;
  const leaf = toTensor(inp, { shape: storageShape, requiresGrad: inp.grad });
  switch (inp.layout) {
    case "contiguous":
      return { leaf, view: leaf };
    case "transposed":
      return { leaf, view: leaf.transpose(-1, -2) };
    case "permuted":
      return { leaf, view: leaf.permute(inp.perm!) };
    case "sliced": {
      const s = inp.slice!;
      return {
        leaf,
        view: leaf.slice(s.dim, s.start ?? undefined, s.end ?? undefined, s.step ?? undefined),
      };
    }
    case "expanded":
      return { leaf, view: leaf.expand(inp.shape) };
  }
}

function closeEnough(a: number, e: number, tol: Tolerance): boolean {
  if (Number.isNaN(e)) return Number.isNaN(a);
  if (!Number.isFinite(e)) return a === e;
  return Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e);
}

/**
 * Asserts that `actual` matches the fixture tensor `expected` in shape, dtype and values.
 * The message names `what` and the first mismatching flat index.
 */
export function assertTensorClose(
  what: string,
  actual: Tensor | null | undefined,
  expected: FixtureTensor,
  tol: Tolerance = F32_TOL,
): void {
  assert.ok(actual, `${what}: expected a tensor of shape [${expected.shape}], got ${actual}`);
  assert.deepEqual(
    [...actual.shape],
    expected.shape,
    `${what}: shape [${actual.shape}] != expected [${expected.shape}]`,
  );
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assertValuesClose(what, actual.toTypedArray(), expected.data.map(num), tol);
}

/** Asserts two flat value lists agree within `tol`, naming the first mismatching index. */
export function assertValuesClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance = F32_TOL,
): void {
  assert.equal(actual.length, expected.length, `${what}: element count`);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    if (!closeEnough(actual[i], expected[i], tol)) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (first >= 0) {
    assert.fail(
      `${what}: ${bad}/${expected.length} values differ; first at flat index ${first}: ` +
        `got ${actual[first]}, expected ${expected[first]} ` +
        `(atol ${tol.atol}, rtol ${tol.rtol})`,
    );
  }
}
