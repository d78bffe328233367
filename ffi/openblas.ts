/**
 * OpenBLAS through `Deno.dlopen`: the few symbols the CPU backend needs, opened lazily once.
 * @module
 */

import {
  envVar,
  ldLibraryPathDirs,
  type OpenedLibrary,
  openLibrary,
  SYSTEM_LIB_DIRS,
} from "./find.ts";

/** `CBLAS_ORDER` value for row-major storage. */
export const CblasRowMajor = 101;
/** `CBLAS_TRANSPOSE` value: use the matrix as stored. */
export const CblasNoTrans = 111;
/** `CBLAS_TRANSPOSE` value: use the transpose of the stored matrix. */
export const CblasTrans = 112;

/** The `Deno.dlopen` symbol table (LP64 OpenBLAS: every integer argument is a 32-bit int). */
export const OPENBLAS_SYMBOLS = {
  /** C = alpha * op(A) @ op(B) + beta * C. */
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "buffer", // A
      "i32", // lda
      "buffer", // B
      "i32", // ldb
      "f32", // beta
      "buffer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_get_num_threads: { parameters: [], result: "i32" },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  /** Build description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen MAX_THREADS=64". */
  openblas_get_config: { parameters: [], result: "pointer" },
} as const;

/** An opened OpenBLAS: bound symbols, where they came from, and its build description. */
export interface OpenBlas extends OpenedLibrary<typeof OPENBLAS_SYMBOLS> {
  /** `openblas_get_config()` as a string. */
  readonly config: string;
}

/** Where Debian/Ubuntu, Fedora and source builds put libopenblas. */
function openblasDirs(): string[] {
  return [
    "/usr/lib/x86_64-linux-gnu/openblas-pthread",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread",
    ...SYSTEM_LIB_DIRS,
    "/opt/OpenBLAS/lib",
    ...ldLibraryPathDirs(),
  ];
}

let cached: OpenBlas | null | undefined;

/**
 * The process-wide OpenBLAS, opened on first use; null (after one warning on stderr) when it
 * cannot be found or when `DENOGRAD_NO_BLAS=1` asks for the pure TypeScript fallback.
 * `DENOGRAD_OPENBLAS=/path/to/libopenblas.so.0` picks a specific library.
 * @returns the bound library, or null
 * @example
 * ```ts
 * const blas = openblas();
 * console.log(blas ? blas.config : "no BLAS");
 * ```
 */
export function openblas(): OpenBlas | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (envVar("DENOGRAD_NO_BLAS") === "1") return cached;
  try {
    const { symbols, path } = openLibrary({
      name: "OpenBLAS",
      envVar: "DENOGRAD_OPENBLAS",
      candidates: ["libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"],
      dirs: openblasDirs(),
      provides: "apt-get install libopenblas0-pthread",
    }, OPENBLAS_SYMBOLS);
    const ptr = symbols.openblas_get_config();
    const config = ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
    cached = { symbols, path, config };
  } catch (err) {
    // find.ts's message already says what to install or which permission is missing.
    console.warn(
      `denograd: matmul falls back to slow TypeScript loops: ${(err as Error).message}`,
    );
  }
  return cached;
}
