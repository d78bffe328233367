/**
 * Fused (tiled, online-softmax) attention against the naive composed path on the CPU, in the same
 * run: forward and forward+backward time and peak memory, causal self-attention with B = 1,
 * H = 12, D = 64 (GPT-2 small's heads) for T = 256 ... 4096. Peak memory is the most tensor
 * storage the backend held during the call beyond its inputs (a counting wrapper around the CPU
 * backend's alloc/free); the fused kernel's own scratch (O(BR·BC + T·D) floats per call) is a few
 * MB at most and not counted. A second table times the fused forward with its tile products on
 * OpenBLAS against the TypeScript sgemm fallback, which is why the kernel calls sgemm per tile.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-run --allow-write bench/attention_bench.ts [--quick]
 *
 * Writes bench/results/attention-<date>.json when run on its own.
 * @module
 */

import {
  type Backend,
  getBackend,
  manualSeed,
  naiveAttention,
  randn,
  scaledDotProductAttention,
  setBackend,
  type Tensor,
  writeFileAtomic,
} from "../mod.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { type BenchOptions, median, num, quickFlag, table, timeOnce } from "./_common.ts";

/** The benchmarked shapes (causal self-attention). */
export const ATTENTION_CONFIG = { B: 1, H: 12, D: 64, lengths: [256, 512, 1024, 2048, 4096] };

/**
 * Whether the naive path's fwd+bwd fits in the memory available now: about six (B, H, T, T) f32
 * tensors are alive at once in its backward, plus headroom.
 */
function naiveFits(B: number, H: number, T: number): boolean {
  return 8 * B * H * T * T * 4 < Deno.systemMemoryInfo().available;
}

/** One sequence length's measurements (milliseconds: medians; bytes: peak beyond the inputs). */
export interface AttentionRow {
  T: number;
  fusedFwdMs: number;
  naiveFwdMs: number | null;
  fusedFwdBwdMs: number;
  naiveFwdBwdMs: number | null;
  fusedFwdPeakBytes: number;
  naiveFwdPeakBytes: number | null;
  fusedFwdBwdPeakBytes: number;
  naiveFwdBwdPeakBytes: number | null;
  reps: number;
  /** Why the naive path was skipped, when it was. */
  naiveSkipped?: string;
}

/** The fused forward with its tile products on OpenBLAS vs the TypeScript sgemm. */
export interface TileGemmRow {
  T: number;
  blasMs: number;
  typescriptMs: number;
}

/** What the attention benchmark measured. */
export interface AttentionResult {
  config: typeof ATTENTION_CONFIG;
  rows: AttentionRow[];
  tileGemm: TileGemmRow[];
}

/** Counts the bytes the wrapped backend has handed out and not taken back, and their peak. */
class AllocCounter {
  live = 0;
  peak = 0;
  /** A backend that forwards everything to `inner`, counting alloc and free. */
  wrap(inner: Backend): Backend {
    const sizes = new WeakMap<object, number>();
    return new Proxy(inner, {
      get: (target, prop) => {
        if (prop === "alloc") {
          return (bytes: number) => {
            const b = target.alloc(bytes);
            sizes.set(b, bytes);
            this.live += bytes;
            this.peak = Math.max(this.peak, this.live);
            return b;
          };
        }
        if (prop === "free") {
          return (b: object) => {
            this.live -= sizes.get(b) ?? 0;
            sizes.delete(b);
            target.free(b as never);
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
  /** Peak bytes beyond what was live when `fn` started. */
  measure(fn: () => void): number {
    const base = this.live;
    this.peak = base;
    fn();
    return this.peak - base;
  }
}

type Attention = (q: Tensor, k: Tensor, v: Tensor, o: { causal: boolean }) => Tensor;

function forward(attn: Attention, q: Tensor, k: Tensor, v: Tensor): () => void {
  return () => attn(q, k, v, { causal: true }).dispose();
}

function forwardBackward(attn: Attention, q: Tensor, k: Tensor, v: Tensor): () => void {
  return () => {
    const out = attn(q, k, v, { causal: true });
    const loss = out.sum();
    loss.backward();
    for (const t of [out, loss]) t.dispose();
    for (const t of [q, k, v]) t.zeroGrad();
  };
}

/** Median ms of `reps` calls of each function, interleaved (the caller has warmed them up). */
function times(fns: (() => void)[], reps: number): number[] {
  const samples: number[][] = fns.map(() => []);
  for (let r = 0; r < reps; r++) fns.forEach((fn, i) => samples[i].push(timeOnce(fn)));
  return samples.map(median);
}

/** Runs the benchmark (on a counting wrapper of the CPU backend, restored afterwards). */
export function runAttentionBench(opts: BenchOptions): AttentionResult {
  const { B, H, D } = ATTENTION_CONFIG;
  const lengths = opts.quick ? [256, 512] : ATTENTION_CONFIG.lengths;
  const original = getBackend("cpu");
  const counter = new AllocCounter();
  setBackend("cpu", counter.wrap(original));
  manualSeed(0);
  const rows: AttentionRow[] = [];
  const tileGemm: TileGemmRow[] = [];
  try {
    for (const T of lengths) {
      const [q, k, v] = [0, 1, 2].map(() => randn([B, H, T, D], { requiresGrad: true }));
      const reps = T <= 512 ? 5 : T <= 1024 ? 3 : 1;
      const withNaive = naiveFits(B, H, T);
      const fused = [forward, forwardBackward].map((f) => f(scaledDotProductAttention, q, k, v));
      const naive = withNaive
        ? [forward, forwardBackward].map((f) => f(naiveAttention, q, k, v))
        : [];
      // The memory measurement doubles as the warmup call.
      const peaks = [...fused, ...naive].map((fn) => counter.measure(fn));
      const ms = times([...fused, ...naive], reps);
      rows.push({
        T,
        fusedFwdMs: ms[0],
        fusedFwdBwdMs: ms[1],
        naiveFwdMs: withNaive ? ms[2] : null,
        naiveFwdBwdMs: withNaive ? ms[3] : null,
        fusedFwdPeakBytes: peaks[0],
        fusedFwdBwdPeakBytes: peaks[1],
        naiveFwdPeakBytes: withNaive ? peaks[2] : null,
        naiveFwdBwdPeakBytes: withNaive ? peaks[3] : null,
        reps,
        ...(withNaive ? {} : { naiveSkipped: "its (B, H, T, T) tensors exceed available memory" }),
      });
      for (const t of [q, k, v]) t.dispose();
    }
    // Tile products: OpenBLAS vs the TypeScript sgemm (same kernel, backend without BLAS).
    const noBlas = new CpuBackend({ blas: false });
    for (const T of opts.quick ? [256] : [512, 1024]) {
      const row: TileGemmRow = { T, blasMs: 0, typescriptMs: 0 };
      for (const [backend, key] of [[original, "blasMs"], [noBlas, "typescriptMs"]] as const) {
        setBackend("cpu", backend);
        const [q, k, v] = [0, 1, 2].map(() => randn([B, H, T, D]));
        const fn = forward(scaledDotProductAttention, q, k, v);
        fn();
        [row[key]] = times([fn], 3);
        for (const t of [q, k, v]) t.dispose();
      }
      tileGemm.push(row);
    }
  } finally {
    setBackend("cpu", original);
  }
  return { config: ATTENTION_CONFIG, rows, tileGemm };
}

const mb = (bytes: number | null): string => bytes === null ? "-" : num(bytes / 2 ** 20, 1);
const ms = (x: number | null): string => x === null ? "-" : num(x, 1);
const ratio = (a: number | null, b: number): string => a === null ? "-" : `${num(a / b, 1)}x`;

/** The result as two plain-text tables. */
export function formatAttention(r: AttentionResult): string {
  const { B, H, D } = r.config;
  const main = table(
    [
      `causal B=${B} H=${H} D=${D}`,
      "fwd fused ms",
      "fwd naive ms",
      "speedup",
      "fwd+bwd fused ms",
      "fwd+bwd naive ms",
      "speedup",
      "peak fused MB",
      "peak naive MB",
    ],
    r.rows.map((x) => [
      `T=${x.T}`,
      ms(x.fusedFwdMs),
      ms(x.naiveFwdMs),
      ratio(x.naiveFwdMs, x.fusedFwdMs),
      ms(x.fusedFwdBwdMs),
      ms(x.naiveFwdBwdMs),
      ratio(x.naiveFwdBwdMs, x.fusedFwdBwdMs),
      mb(x.fusedFwdBwdPeakBytes),
      mb(x.naiveFwdBwdPeakBytes),
    ]),
  );
  const gemm = table(
    ["fused fwd tile products", "OpenBLAS ms", "TypeScript ms", "BLAS speedup"],
    r.tileGemm.map((x) => [
      `T=${x.T}`,
      ms(x.blasMs),
      ms(x.typescriptMs),
      ratio(x.typescriptMs, x.blasMs),
    ]),
  );
  return `${main}\n(peak: fwd+bwd tensor memory beyond q, k, v)\n\n${gemm}`;
}

if (import.meta.main) {
  const quick = quickFlag();
  const t0 = performance.now();
  const result = runAttentionBench({ quick });
  console.log(formatAttention(result));
  const date = new Date().toISOString().slice(0, 10);
  const machine = {
    cores: navigator.hardwareConcurrency,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    deno: Deno.version.deno,
    note: "shared machine: absolute times are noise; compare the same-run ratios",
  };
  const wallSeconds = (performance.now() - t0) / 1000;
  const dir = new URL("./results/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  const file = new URL(`attention-${date}${quick ? "-quick" : ""}.json`, dir);
  const json = JSON.stringify({ date, quick, machine, wallSeconds, ...result }, null, 2);
  await writeFileAtomic(file, json + "\n");
  console.log(`wrote ${file.pathname} (${wallSeconds.toFixed(0)} s)`);
}
