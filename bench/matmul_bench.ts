/**
 * Matmul through the Tensor API (`matmul` / `linear`, output allocation included, as a user sees
 * it) against `cblas_sgemm` called directly on the same OpenBLAS with preallocated arrays. The
 * headline ratio is against that; a second, diagnostic reference calls sgemm into a freshly
 * allocated output each time, which isolates the cost of paging in new memory from the library's
 * own overhead.
 *
 *   deno run --allow-ffi --allow-read --allow-env bench/matmul_bench.ts [--quick]
 * @module
 */

import { linear, manualSeed, matmul, randn, type Tensor } from "../mod.ts";
import { CblasNoTrans, CblasRowMajor, CblasTrans, openblas } from "../ffi/openblas.ts";
import { type BenchOptions, num, planReps, quickFlag, table, timeInterleaved } from "./_common.ts";

/** One GEMM shape: C (m, n) = A (m, k) @ B (k, n). */
interface MatmulCase {
  /** Row label. */
  name: string;
  m: number;
  n: number;
  k: number;
  /** "matmul": a (m,k) @ b (k,n); "linear": x (m,k) @ W^T with W stored (n,k) (a strided view). */
  kind: "matmul" | "linear";
}

/** One measured shape. */
export interface MatmulResult {
  name: string;
  m: number;
  n: number;
  k: number;
  kind: "matmul" | "linear";
  reps: number;
  /** Median milliseconds of the Tensor API call (allocate output, GEMM, dispose). */
  denogradMs: number;
  /** Median milliseconds of `cblas_sgemm` on preallocated arrays. */
  blasMs: number;
  /** Median milliseconds of `cblas_sgemm` into a freshly allocated output (diagnostic). */
  blasAllocMs: number;
  denogradGflops: number;
  blasGflops: number;
  blasAllocGflops: number;
  /** denogradGflops / blasGflops (target >= 0.95). */
  ratio: number;
  /** denogradGflops / blasAllocGflops: the library's own overhead, allocation cost excluded. */
  ratioVsAlloc: number;
}

const CASES: readonly MatmulCase[] = [
  { name: "matmul 512x512 @ 512x512", m: 512, n: 512, k: 512, kind: "matmul" },
  { name: "matmul 1024x1024 @ 1024x1024", m: 1024, n: 1024, k: 1024, kind: "matmul" },
  { name: "matmul 2048x2048 @ 2048x2048", m: 2048, n: 2048, k: 2048, kind: "matmul" },
  { name: "linear (1024,768) W(2304,768)^T", m: 1024, n: 2304, k: 768, kind: "linear" },
  { name: "linear (1024,768) W(3072,768)^T", m: 1024, n: 3072, k: 768, kind: "linear" },
  { name: "matmul (1024,3072) @ (3072,768)", m: 1024, n: 768, k: 3072, kind: "matmul" },
];

/** Float32Array of standard-normal-ish values (the reference needs no exact values). */
function hostRandom(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Measures one shape: Tensor API vs direct sgemm, interleaved. */
function runCase(c: MatmulCase, opts: BenchOptions): MatmulResult {
  const blas = openblas();
  if (!blas) throw new Error("matmul_bench: OpenBLAS not found; the reference needs it");
  const sgemm = blas.symbols.cblas_sgemm;
  const { m, n, k, kind } = c;

  // denograd operands: a (m, k); b (k, n) or the weight W (n, k) that linear transposes as a view.
  const a: Tensor = randn([m, k]);
  const b: Tensor = kind === "linear" ? randn([n, k]) : randn([k, n]);
  const viaTensor = (): void => {
    const y = kind === "linear" ? linear(a, b) : matmul(a, b);
    y.dispose();
  };

  // Reference: the same GEMM with the same transpose flag, on preallocated host arrays.
  const ha = hostRandom(m * k), hb = hostRandom(k * n), hc = new Float32Array(m * n);
  const transB = kind === "linear" ? CblasTrans : CblasNoTrans;
  const ldb = kind === "linear" ? k : n;
  const viaBlas = (): void => {
    sgemm(CblasRowMajor, CblasNoTrans, transB, m, n, k, 1, ha, k, hb, ldb, 0, hc, n);
  };
  // Diagnostic: the same call writing into fresh (not yet paged-in) memory, as a new tensor does.
  const viaBlasAlloc = (): void => {
    const out = new Float32Array(m * n);
    sgemm(CblasRowMajor, CblasNoTrans, transB, m, n, k, 1, ha, k, hb, ldb, 0, out, n);
  };

  const fns = [viaTensor, viaBlas, viaBlasAlloc];
  const reps = planReps(fns, opts.quick ? 150 : 1500, opts.quick ? 3 : 9, opts.quick ? 10 : 51);
  const [denogradMs, blasMs, blasAllocMs] = timeInterleaved(fns, {
    warmup: opts.quick ? 1 : 2,
    reps,
  });
  a.dispose();
  b.dispose();

  const flop = 2 * m * n * k;
  const denogradGflops = flop / (denogradMs * 1e6);
  const blasGflops = flop / (blasMs * 1e6);
  const blasAllocGflops = flop / (blasAllocMs * 1e6);
  return {
    ...c,
    reps,
    denogradMs,
    blasMs,
    blasAllocMs,
    denogradGflops,
    blasGflops,
    blasAllocGflops,
    ratio: denogradGflops / blasGflops,
    ratioVsAlloc: denogradGflops / blasAllocGflops,
  };
}

/**
 * Runs every matmul shape.
 * @returns one result per shape
 */
export function runMatmulBench(opts: BenchOptions): MatmulResult[] {
  manualSeed(0);
  return CASES.map((c) => runCase(c, opts));
}

/** The results as a plain-text table. */
export function formatMatmul(results: readonly MatmulResult[]): string {
  return table(
    [
      "matmul (f32)",
      "reps",
      "denograd GFLOP/s",
      "sgemm GFLOP/s",
      "ratio",
      "sgemm+alloc GFLOP/s",
      "ratio vs +alloc",
    ],
    results.map((r) => [
      r.name,
      String(r.reps),
      num(r.denogradGflops, 1),
      num(r.blasGflops, 1),
      num(r.ratio, 3),
      num(r.blasAllocGflops, 1),
      num(r.ratioVsAlloc, 3),
    ]),
  );
}

if (import.meta.main) {
  console.log(formatMatmul(runMatmulBench({ quick: quickFlag() })));
}
