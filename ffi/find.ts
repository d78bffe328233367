/**
 * Native library discovery: an env-var override, then the plain names the dynamic loader
 * resolves itself, then every candidate inside known install folders. A failure names the
 * library, every path tried (with the loader's reason) and the package that provides it.
 * @module
 */

/** What to look for and how to explain its absence. */
export interface LibrarySpec {
  /** Human name used in messages, e.g. "OpenBLAS". */
  name: string;
  /** Env var holding an explicit path (a file, or a folder to search for the candidates). */
  envVar: string;
  /** File names to try, best first, e.g. ["libopenblas.so.0", "libopenblas.so"]. */
  candidates: string[];
  /** Folders to try each candidate in, after the loader's own search. */
  dirs: string[];
  /** How to install it, e.g. "apt-get install libopenblas0-pthread". */
  provides: string;
}

/** An opened library: its bound functions and the path (or loader name) it was opened from. */
export interface OpenedLibrary<S extends Deno.ForeignLibraryInterface> {
  /** The bound functions (`Deno.dlopen(path, symbols).symbols`). */
  readonly symbols: Deno.DynamicLibrary<S>["symbols"];
  /** The path or plain name that opened successfully. */
  readonly path: string;
}

/** Folders where Linux distributions and source builds put shared libraries. */
export const SYSTEM_LIB_DIRS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/usr/local/lib",
  "/lib/x86_64-linux-gnu",
];

/** Reads an env var, treating a denied `--allow-env` like an unset variable. */
export function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The folders in `LD_LIBRARY_PATH` (empty if unset or unreadable). */
export function ldLibraryPathDirs(): string[] {
  return (envVar("LD_LIBRARY_PATH") ?? "").split(":").filter((d) => d !== "");
}

function listDir(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].filter((e) => e.isDirectory || e.isSymlink).map((e) => e.name)
      .sort();
  } catch {
    return []; // missing folder or no --allow-read: nothing to offer
  }
}

/**
 * Every `site-packages/nvidia/<pkg>/lib` folder (where pip puts cuBLAS, cuDNN, NCCL, ...)
 * under the active virtualenv/conda prefix, the user's ~/.local and the system prefixes.
 */
export function pythonNvidiaLibDirs(): string[] {
  const prefixes = [
    envVar("VIRTUAL_ENV"),
    envVar("CONDA_PREFIX"),
    "/opt/conda",
    "/usr/local",
    "/usr",
  ];
  const home = envVar("HOME");
  if (home) prefixes.push(`${home}/.local`);
  const out: string[] = [];
  for (const prefix of prefixes) {
    if (!prefix) continue;
    for (const py of listDir(`${prefix}/lib`).filter((n) => n.startsWith("python3"))) {
      for (const site of ["site-packages", "dist-packages"]) {
        const nvidia = `${prefix}/lib/${py}/${site}/nvidia`;
        for (const pkg of listDir(nvidia)) out.push(`${nvidia}/${pkg}/lib`);
      }
    }
  }
  return [...new Set(out)];
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** The loader's reason, shortened to its last clause ("No such file or directory", ...). */
function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return /No such file or directory/.test(msg) ? "not found" : msg.split("\n")[0];
}

/**
 * Finds `spec`'s library and opens it with `Deno.dlopen(path, symbols)`: the one way every
 * `ffi/*.ts` file opens its native library. Order: `spec.envVar` (a file, or a folder holding one
 * of the candidates; if set, nothing else is tried), then each candidate by plain name (the
 * loader's own search), then each candidate in each of `spec.dirs`.
 * @param spec where to look and what to tell the user on failure
 * @param symbols the `Deno.dlopen` symbol table
 * @returns the bound functions and the path they came from
 * @throws Error naming the library, every path tried (with the loader's reason), and the package
 *   that provides it; or that `--allow-ffi` is missing
 * @example
 * ```ts
 * const { symbols, path } = openLibrary({
 *   name: "zlib", envVar: "MY_ZLIB", candidates: ["libz.so.1"], dirs: [...SYSTEM_LIB_DIRS],
 *   provides: "apt-get install zlib1g",
 * }, { zlibVersion: { parameters: [], result: "pointer" } });
 * ```
 */
export function openLibrary<const S extends Deno.ForeignLibraryInterface>(
  spec: LibrarySpec,
  symbols: S,
): OpenedLibrary<S> {
  const tried: string[] = [];
  const attempt = (path: string): OpenedLibrary<S> | null => {
    try {
      return { symbols: Deno.dlopen(path, symbols).symbols, path };
    } catch (err) {
      // Without --allow-ffi every attempt fails the same way; say so instead of listing paths.
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw new Error(`${spec.name}: loading native libraries needs the --allow-ffi permission`);
      }
      tried.push(`  ${path}: ${reason(err)}`);
      return null;
    }
  };

  const override = envVar(spec.envVar);
  if (override !== undefined) {
    // An explicit override that fails is an error: silently using another copy would hide it.
    const paths = isDir(override) ? spec.candidates.map((c) => `${override}/${c}`) : [override];
    for (const p of paths) {
      const found = attempt(p);
      if (found) return found;
    }
    throw new Error(
      `${spec.name}: ${spec.envVar}=${override} could not be loaded. Tried:\n${
        tried.join("\n")
      }\n` +
        `Point ${spec.envVar} at an existing library, or unset it (install: ${spec.provides}).`,
    );
  }

  for (const c of spec.candidates) {
    const found = attempt(c); // the loader's own search: ld.so.cache, RUNPATH, LD_LIBRARY_PATH
    if (found) return found;
  }
  for (const dir of new Set(spec.dirs)) {
    for (const c of spec.candidates) {
      const found = attempt(`${dir}/${c}`);
      if (found) return found;
    }
  }
  throw new Error(
    `${spec.name}: no loadable library found. Tried:\n${tried.join("\n")}\n` +
      `Install it (${spec.provides}) or set ${spec.envVar} to the library's path.`,
  );
}
