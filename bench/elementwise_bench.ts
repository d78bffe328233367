/**
 * Memory-bound ops over 4M floats, a (4096, 1024) f32 tensor: add, gelu, softmax over rows of 1024,
 * layerNorm over rows of 1024 with affine weight and bias. Each is timed through the Tensor API and
 * as a plain TypedArray loop doing the same math, in the same run, interleaved.
 *
 * The headline reference allocates its output on every call, as the out-of-place op must; a second
 * run of the same loop into a preallocated, paged-in output shows the floor. The reference loops
 * are what a user would write by hand: `Math.exp` / `Math.tanh`, two-pass mean and variance.
 * GB/s counts the compulsory traffic only: inputs read once, output written once (layerNorm also
 * reads its weight and bias; the mean/rstd it saves for backward are not counted).
 *
 *   deno run --allow-ffi --allow-read --allow-env bench/elementwise_bench.ts [--quick]
 * @module
 */

import { add, gelu, layerNorm, manualSeed, randn, softmax, type Tensor } from "../mod.ts";
import { type BenchOptions, num, planReps, quickFlag, table, timeInterleaved } from "./_common.ts";

const ROWS = 4096;
const COLS = 1024;
const N = ROWS * COLS; // 2^22

/** One measured op. */
export interface ElementwiseResult {
  op: string;
  shape: readonly number[];
  reps: number;
  /** Bytes read + written per call. */
  bytes: number;
  denogradMs: number;
  /** The plain loop, allocating its output per call (the same work as the out-of-place op). */
  referenceMs: number;
  /** The plain loop writing into a preallocated, already paged-in output (the floor). */
  preallocMs: number;
  denogradGBps: number;
  referenceGBps: number;
  preallocGBps: number;
  /** denogradGBps / referenceGBps. */
  ratio: number;
  /** denogradGBps / preallocGBps. */
  ratioVsPrealloc: number;
}

// ---- the reference loops (plain TypedArrays) ----

function refAdd(a: Float32Array, b: Float32Array, o: Float32Array): void {
  for (let i = 0; i < o.length; i++) o[i] = a[i] + b[i];
}

const GELU_A = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation, written the textbook way. */
function refGelu(x: Float32Array, o: Float32Array): void {
  for (let i = 0; i < o.length; i++) {
    const v = x[i];
    o[i] = 0.5 * v * (1 + Math.tanh(GELU_A * (v + 0.044715 * v * v * v)));
  }
}

/** Row-wise softmax: max, exp-and-sum, scale. */
function refSoftmax(x: Float32Array, cols: number, o: Float32Array): void {
  for (let base = 0; base < x.length; base += cols) {
    let mx = -Infinity;
    for (let j = 0; j < cols; j++) if (x[base + j] > mx) mx = x[base + j];
    let s = 0;
    for (let j = 0; j < cols; j++) {
      const e = Math.exp(x[base + j] - mx);
      o[base + j] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let j = 0; j < cols; j++) o[base + j] *= inv;
  }
}

/** Row-wise layer norm with affine weight and bias (biased variance, two passes). */
function refLayerNorm(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  eps: number,
  o: Float32Array,
): void {
  const cols = w.length;
  for (let base = 0; base < x.length; base += cols) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[base + j];
    const mean = s / cols;
    let v = 0;
    for (let j = 0; j < cols; j++) {
      const d = x[base + j] - mean;
      v += d * d;
    }
    const rstd = 1 / Math.sqrt(v / cols + eps);
    for (let j = 0; j < cols; j++) o[base + j] = (x[base + j] - mean) * rstd * w[j] + b[j];
  }
}

// ---- the benchmark ----

/** An op to measure: the Tensor API call, the reference writing into `out`, its traffic. */
interface Case {
  op: string;
  bytes: number;
  viaTensor: () => void;
  reference: (out: Float32Array) => void;
}

/**
 * Runs add, gelu, softmax and layerNorm on (4096, 1024).
 * @returns one result per op
 */
export function runElementwiseBench(opts: BenchOptions): ElementwiseResult[] {
  manualSeed(0);
  const a: Tensor = randn([ROWS, COLS]);
  const b: Tensor = randn([ROWS, COLS]);
  const w: Tensor = randn([COLS]);
  const bias: Tensor = randn([COLS]);
  // The reference reads the very same values.
  const ha = a.toTypedArray() as Float32Array;
  const hb = b.toTypedArray() as Float32Array;
  const hw = w.toTypedArray() as Float32Array;
  const hbias = bias.toTypedArray() as Float32Array;
  const pre = new Float32Array(N);
  // Keeps the reference outputs observable so no work is optimised away.
  let sink = 0;

  const cases: Case[] = [
    {
      op: "add",
      bytes: 3 * N * 4,
      viaTensor: () => add(a, b).dispose(),
      reference: (o) => refAdd(ha, hb, o),
    },
    {
      op: "gelu (tanh)",
      bytes: 2 * N * 4,
      viaTensor: () => gelu(a).dispose(),
      reference: (o) => refGelu(ha, o),
    },
    {
      op: "softmax (dim -1)",
      bytes: 2 * N * 4,
      viaTensor: () => softmax(a, -1).dispose(),
      reference: (o) => refSoftmax(ha, COLS, o),
    },
    {
      op: "layerNorm (affine)",
      bytes: 2 * N * 4 + 2 * COLS * 4,
      viaTensor: () => layerNorm(a, [COLS], w, bias).dispose(),
      reference: (o) => refLayerNorm(ha, hw, hbias, 1e-5, o),
    },
  ];

  const results = cases.map((c): ElementwiseResult => {
    const allocating = (): void => {
      const o = new Float32Array(N);
      c.reference(o);
      sink += o[N - 1];
    };
    const preallocated = (): void => {
      c.reference(pre);
      sink += pre[N - 1];
    };
    const fns = [c.viaTensor, allocating, preallocated];
    const reps = planReps(fns, opts.quick ? 100 : 1200, opts.quick ? 3 : 15, opts.quick ? 10 : 51);
    const [denogradMs, referenceMs, preallocMs] = timeInterleaved(fns, {
      warmup: opts.quick ? 2 : 3,
      reps,
    });
    const gbps = (ms: number): number => c.bytes / (ms * 1e6);
    return {
      op: c.op,
      shape: [ROWS, COLS],
      reps,
      bytes: c.bytes,
      denogradMs,
      referenceMs,
      preallocMs,
      denogradGBps: gbps(denogradMs),
      referenceGBps: gbps(referenceMs),
      preallocGBps: gbps(preallocMs),
      ratio: referenceMs / denogradMs,
      ratioVsPrealloc: preallocMs / denogradMs,
    };
  });
  for (const t of [a, b, w, bias]) t.dispose();
  if (Number.isNaN(sink)) console.warn("elementwise_bench: reference produced NaN");
  return results;
}

/** The results as a plain-text table. */
export function formatElementwise(results: readonly ElementwiseResult[]): string {
  return table(
    [
      "op on (4096,1024) f32",
      "reps",
      "denograd GB/s",
      "loop GB/s",
      "ratio",
      "prealloc loop GB/s",
      "ratio vs prealloc",
    ],
    results.map((r) => [
      r.op,
      String(r.reps),
      num(r.denogradGBps, 2),
      num(r.referenceGBps, 2),
      num(r.ratio, 3),
      num(r.preallocGBps, 2),
      num(r.ratioVsPrealloc, 3),
    ]),
  );
}

if (import.meta.main) {
  console.log(formatElementwise(runElementwiseBench({ quick: quickFlag() })));
}
