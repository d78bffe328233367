/**
 * `deno task kernels`: compiles every `cuda/*.cu` with nvcc to PTX for compute_80 (the driver
 * JIT-compiles it for newer GPUs) and writes `src/backend/cuda/_ptx.ts`, so users need no nvcc.
 *
 * `deno task kernels:check` fails when the committed `_ptx.ts` is stale: it always compares
 * {@linkcode kernelSourceHash} of the current sources with the recorded one, and when nvcc is
 * present (of the recorded version) it also recompiles and compares the PTX text.
 * @module
 */

import { fileURLToPath } from "node:url";
import { basename, dirname, join, relative } from "node:path";
import { writeFileAtomic } from "../src/io/atomic.ts";

/** The nvcc flags every module is built with. No --use_fast_math: expf/logf/tanhf must stay
 * within a few ulps of the CPU reference (fast math swaps them for ~2^-21-accurate versions).
 * No -lineinfo: its debug strings carry internal names hashed from the source's absolute path, so
 * the PTX would differ between checkouts (add it locally when profiling with ncu). */
export const NVCC_FLAGS: readonly string[] = [
  "-arch=compute_80",
  "-ptx",
  "-std=c++17",
  "--Werror",
  "all-warnings",
];

const CUDA_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_DIR = dirname(CUDA_DIR);
const OUT_FILE = join(REPO_DIR, "src/backend/cuda/_ptx.ts");

/** Kernel sources (`.cu` modules and shared `.cuh` headers), sorted by name. */
export async function kernelSources(): Promise<{ name: string; text: string }[]> {
  const out: { name: string; text: string }[] = [];
  for await (const e of Deno.readDir(CUDA_DIR)) {
    if (e.isFile && (e.name.endsWith(".cu") || e.name.endsWith(".cuh"))) {
      out.push({ name: e.name, text: await Deno.readTextFile(join(CUDA_DIR, e.name)) });
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * sha256 (hex) of everything the PTX depends on: the nvcc version line, the flags and every
 * source file's name and text.
 */
export async function kernelSourceHash(
  sources: readonly { name: string; text: string }[],
  nvccVersion: string,
): Promise<string> {
  const parts = [nvccVersion, NVCC_FLAGS.join(" ")];
  for (const s of sources) parts.push(s.name, s.text);
  const bytes = new TextEncoder().encode(parts.join("\0"));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** nvcc's "release X, VX.Y.Z" line, or null when nvcc is not installed. */
export async function nvccVersion(): Promise<string | null> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("nvcc", { args: ["--version"] }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.includes("release"));
  if (!out.success || !line) throw new Error(`nvcc --version failed:\n${text}`);
  return line.trim();
}

/**
 * Makes any `.file` paths (from -lineinfo, when added for profiling) machine-independent (repo files relative to the repo,
 * toolkit headers as `cuda-toolkit/include/...`), so the PTX is byte-identical wherever built.
 */
function normalizePaths(ptx: string): string {
  return ptx.replace(/^(\s*\.file\s+\d+\s+)"([^"]*)"/gm, (_m, head: string, path: string) => {
    if (path.startsWith(REPO_DIR + "/")) return `${head}"${relative(REPO_DIR, path)}"`;
    const at = path.lastIndexOf("/include/");
    return `${head}"${at >= 0 ? "cuda-toolkit" + path.slice(at) : basename(path)}"`;
  });
}

/** Compiles one module to PTX text (warnings are errors). */
async function compile(file: string, tmp: string): Promise<string> {
  const out = join(tmp, basename(file, ".cu") + ".ptx");
  const res = await new Deno.Command("nvcc", {
    args: [...NVCC_FLAGS, join(CUDA_DIR, file), "-o", out],
    stderr: "piped",
    stdout: "piped",
  }).output();
  const log = new TextDecoder().decode(res.stderr) + new TextDecoder().decode(res.stdout);
  if (!res.success || log.trim() !== "") {
    throw new Error(`nvcc ${file} ${res.success ? "warned" : "failed"}:\n${log}`);
  }
  return normalizePaths(await Deno.readTextFile(out));
}

/** Every module compiled: [{ name: "elementwise", ptx }, ...] in source order. */
export async function compileAll(
  sources: readonly { name: string }[],
): Promise<{ name: string; ptx: string }[]> {
  const tmp = await Deno.makeTempDir({ prefix: "denograd-ptx-" });
  try {
    const modules = sources.filter((s) => s.name.endsWith(".cu"));
    return await Promise.all(
      modules.map(async (s) => ({
        name: basename(s.name, ".cu"),
        ptx: await compile(s.name, tmp),
      })),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

function render(modules: { name: string; ptx: string }[], hash: string, version: string): string {
  const body = modules.map((m) =>
    `  { name: ${JSON.stringify(m.name)}, ptx: ${JSON.stringify(m.ptx)} },`
  );
  return [
    "// Generated by `deno task kernels` (cuda/build.ts) from cuda/*.cu: do not edit.",
    "/**",
    " * The kernels' PTX (compute_80), one module per cuda/*.cu file.",
    " * @module",
    " */",
    "",
    "/** sha256 of the nvcc version, flags and kernel sources this PTX was built from. */",
    `export const KERNEL_SOURCE_HASH: string = ${JSON.stringify(hash)};`,
    "/** The nvcc that built it. */",
    `export const NVCC_VERSION: string = ${JSON.stringify(version)};`,
    "/** One PTX module per cuda/*.cu file, loaded by the device with cuModuleLoadData. */",
    "export const PTX_MODULES: readonly { name: string; ptx: string }[] = [",
    ...body,
    "];",
    "",
  ].join("\n");
}

async function build(): Promise<void> {
  const version = await nvccVersion();
  if (version === null) throw new Error("kernels: nvcc not found on PATH (CUDA toolkit needed)");
  const sources = await kernelSources();
  const modules = await compileAll(sources);
  const hash = await kernelSourceHash(sources, version);
  await writeFileAtomic(OUT_FILE, render(modules, hash, version));
  const bytes = modules.reduce((n, m) => n + m.ptx.length, 0);
  console.log(`kernels: ${modules.length} modules, ${bytes} bytes of PTX -> ${OUT_FILE}`);
}

async function check(): Promise<void> {
  const committed = await import("../src/backend/cuda/_ptx.ts");
  const sources = await kernelSources();
  const hash = await kernelSourceHash(sources, committed.NVCC_VERSION);
  if (hash !== committed.KERNEL_SOURCE_HASH) {
    throw new Error(
      "kernels:check: src/backend/cuda/_ptx.ts is stale (cuda/ sources or flags changed); " +
        "run `deno task kernels` and commit the result",
    );
  }
  const version = await nvccVersion();
  if (version === null) {
    console.log("kernels:check: source hash matches; nvcc not found, so the PTX was not rebuilt");
    return;
  }
  if (version !== committed.NVCC_VERSION) {
    console.log(
      `kernels:check: source hash matches; PTX built with "${committed.NVCC_VERSION}", ` +
        `this nvcc is "${version}", so the PTX text is not compared`,
    );
    return;
  }
  const fresh = await compileAll(sources);
  const old = new Map(committed.PTX_MODULES.map((m) => [m.name, m.ptx]));
  const differing = fresh.filter((m) => old.get(m.name) !== m.ptx).map((m) => m.name);
  if (differing.length > 0 || fresh.length !== old.size) {
    throw new Error(
      `kernels:check: recompiled PTX differs from src/backend/cuda/_ptx.ts ` +
        `(${differing.join(", ") || "module list"}); run \`deno task kernels\``,
    );
  }
  console.log(`kernels:check: source hash and all ${fresh.length} recompiled PTX modules match`);
}

if (import.meta.main) {
  try {
    if (Deno.args[0] === "--check") await check();
    else await build();
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(1);
  }
}
