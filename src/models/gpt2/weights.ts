/**
 * GPT-2 weights in Hugging Face's safetensors layout: import (the Hub's `model.safetensors` of
 * `openai-community/gpt2*`, or anything `save_pretrained` wrote) and export (readable by
 * `GPT2LMHeadModel.from_pretrained`).
 *
 * Names are the Hub's (`wte.weight`, `h.0.attn.c_attn.weight`, ..., `ln_f.bias`), with or without
 * a `transformer.` prefix. Hugging Face's Conv1D layers (`c_attn`, `c_proj`, `c_fc`) store their
 * weights (in, out); our Linear layers hold (out, in), so those are transposed on the way in and
 * out. The output head is tied to `wte`, so no `lm_head.weight` is written, and one that is read
 * must equal `wte.weight`.
 * @module
 */

import { noGrad } from "../../autograd.ts";
import { openSafetensors, type SafetensorsFile } from "../../io/safetensors.ts";
import { writeSafetensors } from "../../io/safetensors_write.ts";
import type { Module } from "../../nn/module.ts";
import { tensor } from "../../ops/creation.ts";
import type { Tensor } from "../../tensor.ts";
import { assertGpt2Layout, type GPT2Config, validateConfig } from "./config.ts";
import { END_OF_TEXT } from "../../tokenizer/gpt2.ts";

/** Names of GPT-2's parameters, without the `transformer.` prefix. */
const PARAMETER =
  /^(?:wte\.weight|wpe\.weight|ln_f\.(?:weight|bias)|h\.\d+\.(?:ln_1|ln_2|attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.(?:weight|bias))$/;
/** Weights that Hugging Face's Conv1D stores (in, out). */
const CONV1D = /^h\.\d+\.(?:attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;
/** Hugging Face's attention buffers (the causal mask and its fill value): not parameters. */
const HF_BUFFER = /^h\.\d+\.attn\.(?:bias|masked_bias)$/;
const PREFIX = "transformer.";
const INTEGER_DTYPES = new Set(["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"]);
/** GPT-2's head size in all four released sizes, used to infer nHead. */
const GPT2_HEAD_SIZE = 64;

const fmt = (shape: readonly number[]) => `[${shape.join(", ")}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** `rows x cols` row-major -> its transpose. */
function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  }
  return out;
}

/** File name -> name without the prefix; problems for names given both ways. */
function canonicalNames(file: SafetensorsFile, problems: string[]): Map<string, string> {
  const byName = new Map<string, string>();
  for (const name of file.names) {
    const bare = name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
    if (byName.has(bare)) problems.push(`"${bare}" appears twice (with and without "${PREFIX}")`);
    else byName.set(bare, name);
  }
  return byName;
}

/** The model's GPT-2 parameters by name (other tensors, e.g. LoRA adapters, are not ours). */
function gpt2Tensors(model: Module): Map<string, Tensor> {
  return new Map(model.namedTensors().filter(([name]) => PARAMETER.test(name)));
}

/** What {@linkcode loadGpt2Safetensors} did. */
export interface Gpt2LoadReport {
  /** Model tensors written, by name. */
  loaded: string[];
  /** File entries skipped as expected: attention buffers and a tied `lm_head.weight`. */
  ignored: string[];
}

/**
 * Loads Hugging Face GPT-2 weights from a safetensors file into `model` (a {@linkcode GPT2} or
 * any module with GPT-2's parameter names), in place.
 *
 * Everything is checked before the model is touched: the file's header, every name (missing,
 * unexpected) and every shape, with one error listing all problems; a `lm_head.weight` is
 * accepted only if it equals `wte.weight` (the head is tied). Then the tensors are read and
 * written one at a time, so peak memory is the model plus its largest tensor. F16/BF16 files are
 * converted to f32.
 *
 * @example
 * ```ts ignore
 * import { GPT2, gpt2Config, loadGpt2Safetensors } from "@denograd/denograd";
 * // after `deno task download gpt2`
 * const model = new GPT2(gpt2Config("gpt2"));
 * await loadGpt2Safetensors(model, "models/gpt2/model.safetensors");
 * ```
 * @param model the model to fill
 * @param path a safetensors file in Hugging Face's GPT-2 layout
 * @returns which tensors were loaded and which file entries were skipped
 * @throws {RangeError} listing every missing, unexpected or mis-shaped tensor (model unchanged)
 */
export async function loadGpt2Safetensors(
  model: Module,
  path: string | URL,
): Promise<Gpt2LoadReport> {
  checkGpt2Layout(model, "loadGpt2Safetensors");
  using file = await openSafetensors(path);
  const where = `loadGpt2Safetensors ${file.path}`;
  const problems: string[] = [];
  const inFile = canonicalNames(file, problems);
  const targets = gpt2Tensors(model);
  if (targets.size === 0) {
    throw new TypeError(`${where}: the model has no GPT-2 parameters (wte.weight, h.N.*, ...)`);
  }
  const ignored: string[] = [];
  let lmHead: string | undefined;
  for (const [name, fileName] of inFile) {
    const info = file.info(fileName)!;
    if (HF_BUFFER.test(name) && !targets.has(name)) {
      ignored.push(fileName);
      continue;
    }
    if (name === "lm_head.weight") {
      lmHead = fileName;
      continue;
    }
    const target = targets.get(name);
    if (!target) {
      problems.push(`unexpected "${fileName}" ${fmt(info.shape)}`);
      continue;
    }
    const want = CONV1D.test(name) ? [...target.shape].reverse() : target.shape;
    if (!sameShape(info.shape, want)) {
      const layout = CONV1D.test(name) ? ` (Conv1D (in, out) of our ${fmt(target.shape)})` : "";
      problems.push(`"${fileName}" has shape ${fmt(info.shape)}, expected ${fmt(want)}${layout}`);
    } else if (INTEGER_DTYPES.has(info.dtype) !== (target.dtype === "i32")) {
      problems.push(`"${fileName}" is ${info.dtype}, the model's tensor is ${target.dtype}`);
    }
  }
  for (const name of targets.keys()) if (!inFile.has(name)) problems.push(`missing "${name}"`);

  // A separate head is fine only if it is the token embedding again (tied, as GPT-2 has it).
  let wte: Float32Array | Int32Array | undefined;
  if (lmHead !== undefined && inFile.has("wte.weight")) {
    const head = file.info(lmHead)!, emb = file.info(inFile.get("wte.weight")!)!;
    if (!sameShape(head.shape, emb.shape)) {
      problems.push(`"${lmHead}" has shape ${fmt(head.shape)}, not wte's ${fmt(emb.shape)}`);
    } else if (problems.length === 0) {
      wte = await file.read(emb.name);
      const h = await file.read(lmHead);
      if (h.some((v, i) => !Object.is(v, wte![i]))) {
        problems.push(
          `"${lmHead}" differs from wte.weight; GPT2 ties its output head to wte and cannot ` +
            `hold a separate one`,
        );
      } else ignored.push(lmHead);
    }
  } else if (lmHead !== undefined) ignored.push(lmHead);
  if (problems.length) {
    throw new RangeError(`${where}: ${problems.length} problem(s): ${problems.join("; ")}`);
  }

  const loaded: string[] = [];
  for (const [name, target] of targets) {
    const fileName = inFile.get(name)!;
    let data = name === "wte.weight" && wte ? wte : await file.read(fileName);
    if (CONV1D.test(name) && data instanceof Float32Array) {
      const [outDim, inDim] = target.shape;
      data = transpose2d(data, inDim, outDim); // (in, out) -> (out, in)
    }
    noGrad(() => {
      const src = tensor(data, { shape: target.shape, device: target.device });
      target.assign(src);
      src.dispose();
    });
    loaded.push(name);
  }
  return { loaded, ignored };
}

/** Options of {@linkcode configFromSafetensors}. */
export interface ConfigFromSafetensorsOptions {
  /** Attention heads; default nEmbd / 64 (GPT-2's head size in all four released sizes). */
  nHead?: number;
  /** Dropout of the config; default 0.1 like the presets (eval() turns it off). */
  dropout?: number;
}

/**
 * Infers a {@linkcode GPT2Config} from a GPT-2 safetensors file's shapes: vocabSize and nEmbd
 * from `wte.weight`, contextLength from `wpe.weight`, nLayer from the `h.N` blocks, bias from
 * the presence of `h.0.attn.c_attn.bias`. Only the header is read. The head count is not in the
 * shapes: it defaults to nEmbd / 64, right for the four GPT-2 sizes; pass it otherwise.
 *
 * @example
 * ```ts ignore
 * import { configFromSafetensors, GPT2, loadGpt2Safetensors } from "@denograd/denograd";
 * const path = "models/gpt2-medium/model.safetensors";
 * const model = new GPT2(await configFromSafetensors(path)); // nLayer 24, nEmbd 1024, nHead 16
 * await loadGpt2Safetensors(model, path);
 * ```
 * @param path the file
 * @param options the head count and dropout, which shapes do not tell
 * @returns a validated config
 */
export async function configFromSafetensors(
  path: string | URL,
  options: ConfigFromSafetensorsOptions = {},
): Promise<GPT2Config> {
  using file = await openSafetensors(path);
  const where = `configFromSafetensors ${file.path}`;
  const problems: string[] = [];
  const names = canonicalNames(file, problems);
  const shape = (name: string) => {
    const fileName = names.get(name);
    return fileName === undefined ? undefined : file.info(fileName)!.shape;
  };
  const wte = shape("wte.weight"), wpe = shape("wpe.weight");
  if (!wte || wte.length !== 2) problems.push(`no 2-d "wte.weight"`);
  if (!wpe || wpe.length !== 2) problems.push(`no 2-d "wpe.weight"`);
  const layers = new Set<number>();
  for (const name of names.keys()) {
    const m = /^h\.(\d+)\./.exec(name);
    if (m) layers.add(Number(m[1]));
  }
  const nLayer = layers.size;
  for (let i = 0; i < nLayer; i++) if (!layers.has(i)) problems.push(`block h.${i} is missing`);
  if (problems.length) throw new RangeError(`${where}: ${problems.join("; ")}`);
  const [vocabSize, nEmbd] = wte!;
  if (wpe![1] !== nEmbd) {
    throw new RangeError(
      `${where}: wpe.weight ${fmt(wpe!)} and wte.weight ${fmt(wte!)} differ in width`,
    );
  }
  const nHead = options.nHead ?? nEmbd / GPT2_HEAD_SIZE;
  if (!Number.isInteger(nHead)) {
    throw new RangeError(
      `${where}: nEmbd ${nEmbd} is not a multiple of GPT-2's head size 64; pass { nHead }`,
    );
  }
  return validateConfig({
    vocabSize,
    contextLength: wpe![0],
    nEmbd,
    nLayer,
    nHead,
    dropout: options.dropout ?? 0.1,
    bias: names.has("h.0.attn.c_attn.bias"),
  });
}

/**
 * Saves a GPT-2 model's weights in Hugging Face's layout and names (the Hub file's: no
 * `transformer.` prefix, Conv1D weights (in, out), no `lm_head.weight` since it is tied), with
 * metadata `{"format": "pt"}`, so `GPT2LMHeadModel.from_pretrained` reads it next to a
 * `config.json` (see {@linkcode hfConfigFromGpt2}). Written tensor by tensor, atomically.
 *
 * @example
 * ```ts
 * import {
 *   GPT2,
 *   gpt2Config,
 *   loadGpt2Safetensors,
 *   manualSeed,
 *   saveGpt2Safetensors,
 * } from "@denograd/denograd";
 * manualSeed(0);
 * const model = new GPT2(gpt2Config("small-test"));
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveGpt2Safetensors(model, path);
 * const copy = new GPT2(gpt2Config("small-test"));
 * await loadGpt2Safetensors(copy, path); // copy now computes exactly what model does
 * await Deno.remove(path);
 * ```
 * @param model a GPT2 (only its GPT-2 parameters are written)
 * @param path where to write
 * @returns when the file is in place
 */
export async function saveGpt2Safetensors(model: Module, path: string | URL): Promise<void> {
  checkGpt2Layout(model, "saveGpt2Safetensors");
  const targets = gpt2Tensors(model);
  if (targets.size === 0) {
    throw new TypeError(`saveGpt2Safetensors: the model has no GPT-2 parameters`);
  }
  // A GPT-2 file cannot hold anything else (LoRA adapters, an untied head, ...): refuse rather
  // than silently save a different model.
  const extra = model.namedTensors().map(([name]) => name).filter((n) => !targets.has(n));
  if (extra.length > 0) {
    throw new RangeError(
      `saveGpt2Safetensors: the model has tensors a GPT-2 file cannot hold: ${
        extra.slice(0, 8).join(", ")
      }${extra.length > 8 ? `, ... (${extra.length} in all)` : ""}; merge LoRA adapters ` +
        `(mergeLoRA) and save adapters with saveAdapter, or use saveCheckpoint for the whole model`,
    );
  }
  const views: Tensor[] = [];
  try {
    const entries = noGrad(() =>
      Array.from(targets, ([name, t]): [string, Tensor] => {
        if (!CONV1D.test(name)) return [name, t];
        const v = t.transpose(0, 1); // (out, in) -> Conv1D's (in, out), a view
        views.push(v);
        return [name, v];
      })
    );
    await writeSafetensors(path, entries, { format: "pt" });
  } finally {
    for (const v of views) v.dispose();
  }
}

/**
 * Hugging Face's `config.json` for a GPT-2 config (what `from_pretrained` needs beside the
 * weights).
 *
 * @example
 * ```ts
 * import { gpt2Config, hfConfigFromGpt2 } from "@denograd/denograd";
 * console.log(hfConfigFromGpt2(gpt2Config("gpt2")).n_head); // 12
 * ```
 * @param config the model's config
 * @returns the JSON object to write as config.json
 */
export function hfConfigFromGpt2(config: GPT2Config): Record<string, unknown> {
  const c = validateConfig(config);
  assertGpt2Layout(c, "hfConfigFromGpt2");
  if (!c.bias) throw new RangeError("hfConfigFromGpt2: Hugging Face's GPT-2 always has biases");
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: c.vocabSize,
    n_positions: c.contextLength,
    n_ctx: c.contextLength,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: null,
    activation_function: "gelu_new",
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    bos_token_id: END_OF_TEXT,
    eos_token_id: END_OF_TEXT,
    tie_word_embeddings: true,
  };
}

/**
 * A {@linkcode GPT2Config} from Hugging Face's GPT-2 `config.json` (as `deno task download`
 * saves beside the weights).
 *
 * @example
 * ```ts
 * import { gpt2ConfigFromHf } from "@denograd/denograd";
 * const c = gpt2ConfigFromHf({ vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * console.log(c.nHead); // 12
 * ```
 * @param json the parsed config.json
 * @returns a validated config (dropout from `resid_pdrop`, default 0.1)
 */
export function gpt2ConfigFromHf(json: Record<string, unknown>): GPT2Config {
  const num = (key: string, fallback?: unknown) => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number") {
      throw new TypeError(`gpt2ConfigFromHf: config.json needs a number "${key}", got ${v}`);
    }
    return v;
  };
  if (json.n_inner !== undefined && json.n_inner !== null && json.n_inner !== 4 * num("n_embd")) {
    throw new RangeError(`gpt2ConfigFromHf: n_inner ${json.n_inner} is not 4 * n_embd`);
  }
  return validateConfig({
    vocabSize: num("vocab_size"),
    contextLength: num("n_positions", json.n_ctx),
    nEmbd: num("n_embd"),
    nLayer: num("n_layer"),
    nHead: num("n_head"),
    dropout: num("resid_pdrop", 0.1),
    bias: true,
  });
}

/** A model carrying a GPT-2 config (GPT2 itself) must have GPT-2's own attention layout. */
function checkGpt2Layout(model: Module, where: string): void {
  const config = (model as { config?: unknown }).config;
  if (typeof config === "object" && config !== null && "nHead" in config) {
    assertGpt2Layout(config as GPT2Config, where);
  }
}
