/**
 * LoRA adapter files: only the adapter of a model (each LoRA layer's A and B, with its rank,
 * alpha, dropout and sizes), saved and loaded apart from the base model's weights.
 * @module
 */

import { noGrad } from "../autograd.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { writeSafetensors } from "../io/safetensors_write.ts";
import { tensor } from "../ops/creation.ts";
import type { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";
import type { Linear } from "../nn/linear.ts";
import {
  linearShapes,
  loraLayers,
  LoRALinear,
  modulesByName,
  TIED_HEAD,
  tiedHead,
} from "../nn/lora.ts";
import { Module } from "../nn/module.ts";

/** The `format` metadata value of a LoRA adapter file. */
export const ADAPTER_FORMAT = "denograd-lora";
/** The adapter layout version this module writes and reads. */
export const ADAPTER_VERSION = 1;

interface AdapterLayerMeta {
  rank: number;
  alpha: number;
  dropout: number;
  inFeatures: number;
  outFeatures: number;
}

/**
 * Saves only the adapter of `model`: each LoRA layer's `<path>.lora_A` and `<path>.lora_B`, with
 * every layer's rank, alpha, dropout and sizes as JSON in the metadata. Written atomically.
 *
 * @param model a model with LoRA layers
 * @param path the safetensors file
 * @returns when the file is in place
 * @example
 * ```ts
 * import { applyLoRA, GPT2, gpt2Config, loadAdapter, manualSeed, saveAdapter } from "@denograd/denograd";
 * manualSeed(0);
 * const model = new GPT2(gpt2Config("small-test"));
 * applyLoRA(model, { targets: ["c_attn"], rank: 2 });
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveAdapter(model, path);
 * const other = new GPT2(gpt2Config("small-test"));
 * console.log(await loadAdapter(other, path)); // ["h.0.attn.c_attn", "h.1.attn.c_attn"]: wrapped and filled
 * await Deno.remove(path);
 * ```
 */
export async function saveAdapter(model: Module, path: string | URL): Promise<void> {
  if (!(model instanceof Module)) throw new TypeError("saveAdapter: model must be a Module");
  const layers = loraLayers(model);
  if (layers.length === 0) throw new RangeError("saveAdapter: the model has no LoRA layers");
  const meta: Record<string, AdapterLayerMeta> = {};
  const entries: [string, Tensor][] = [];
  for (const [name, l] of layers) {
    meta[name] = {
      rank: l.rank,
      alpha: l.alpha,
      dropout: l.dropoutP,
      inFeatures: l.inFeatures,
      outFeatures: l.outFeatures,
    };
    entries.push([`${name}.lora_A`, l.lora_A], [`${name}.lora_B`, l.lora_B]);
  }
  await writeSafetensors(path, entries, {
    format: ADAPTER_FORMAT,
    version: String(ADAPTER_VERSION),
    layers: JSON.stringify(meta),
  });
}

/**
 * Loads an adapter written by {@linkcode saveAdapter} into `model`. A model without LoRA layers
 * is first wrapped exactly as the adapter describes (every layer it names); a model with LoRA
 * layers must have the same ones with the same rank, alpha and sizes. Everything is validated
 * before the model changes; one error lists every problem.
 *
 * @param model the base model (or one already wrapped the same way)
 * @param path the adapter file
 * @returns the paths of the layers filled
 * @throws {RangeError} on a mismatch (layers, rank, alpha, sizes, tensor shapes)
 * @example
 * ```ts
 * import { applyLoRA, GPT2, gpt2Config, loadAdapter, saveAdapter } from "@denograd/denograd";
 * const model = new GPT2(gpt2Config("small-test"));
 * applyLoRA(model, { targets: ["c_fc"], rank: 4 });
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveAdapter(model, path);
 * const other = new GPT2(gpt2Config("small-test"));
 * applyLoRA(other, { targets: ["c_fc"], rank: 2 });
 * await loadAdapter(other, path).catch((e) => console.log(e.message)); // ... has rank 4, alpha 4 in the adapter, rank 2, alpha 2 in the model ...
 * await Deno.remove(path);
 * ```
 */
export async function loadAdapter(model: Module, path: string | URL): Promise<string[]> {
  if (!(model instanceof Module)) throw new TypeError("loadAdapter: model must be a Module");
  using file = await openSafetensors(path);
  const where = `loadAdapter ${file.path}`;
  if (file.metadata.format !== ADAPTER_FORMAT) {
    throw new TypeError(
      `${where}: not a LoRA adapter (metadata format ${JSON.stringify(file.metadata.format)}, ` +
        `expected "${ADAPTER_FORMAT}")`,
    );
  }
  if (file.metadata.version !== String(ADAPTER_VERSION)) {
    throw new RangeError(
      `${where}: adapter version ${file.metadata.version}, expected ${ADAPTER_VERSION}`,
    );
  }
  let meta: Record<string, AdapterLayerMeta>;
  try {
    meta = JSON.parse(file.metadata.layers ?? "");
  } catch {
    throw new RangeError(`${where}: metadata "layers" is missing or not JSON`);
  }
  const problems: string[] = [];
  const names = Object.keys(meta);
  const have = new Map(loraLayers(model));
  const fresh = have.size === 0;
  const shapes = new Map(linearShapes(model).map((s) => [s.name, s]));
  for (const name of names) {
    const m = meta[name];
    const target = fresh ? shapes.get(name) : have.get(name);
    if (!target) {
      problems.push(`the model has no ${fresh ? "linear" : "LoRA"} layer "${name}"`);
      continue;
    }
    if (target.inFeatures !== m.inFeatures || target.outFeatures !== m.outFeatures) {
      problems.push(
        `"${name}" is ${m.inFeatures} -> ${m.outFeatures} in the adapter, ` +
          `${target.inFeatures} -> ${target.outFeatures} in the model`,
      );
    }
    if (!fresh) {
      const l = target as LoRALinear;
      if (l.rank !== m.rank || l.alpha !== m.alpha) {
        problems.push(
          `"${name}" has rank ${m.rank}, alpha ${m.alpha} in the adapter, rank ${l.rank}, ` +
            `alpha ${l.alpha} in the model`,
        );
      }
    }
    const want: Record<string, number[]> = {
      [`${name}.lora_A`]: [m.rank, m.inFeatures],
      [`${name}.lora_B`]: [m.outFeatures, m.rank],
    };
    for (const [t, shape] of Object.entries(want)) {
      const info = file.info(t);
      if (!info) problems.push(`missing "${t}"`);
      else if (info.dtype !== "F32" || fmt(info.shape) !== fmt(shape)) {
        problems.push(`"${t}" is ${info.dtype} ${fmt(info.shape)}, expected F32 ${fmt(shape)}`);
      }
    }
  }
  if (!fresh) {
    for (const name of have.keys()) {
      if (!(name in meta)) problems.push(`the model's LoRA layer "${name}" is not in the adapter`);
    }
  }
  const expected = new Set(names.flatMap((n) => [`${n}.lora_A`, `${n}.lora_B`]));
  for (const t of file.names) if (!expected.has(t)) problems.push(`unexpected "${t}"`);
  if (problems.length) {
    throw new RangeError(`${where}: ${problems.length} problem(s): ${problems.join("; ")}`);
  }

  if (fresh) {
    // Wrap layer by layer with each one's own config, as the adapter was made.
    model.freeze();
    for (const name of names) {
      const { rank, alpha, dropout } = meta[name];
      const tied = name === TIED_HEAD ? tiedHead(model) : null;
      if (tied) {
        tied.lm_head = new LoRALinear({ weight: tied.wte.weight, bias: null }, {
          rank,
          alpha,
          dropout,
          tiedTo: "wte.weight",
        });
      } else {
        const base = modulesByName(model).get(name) as Linear;
        model.setSubmodule(name, new LoRALinear(base, { rank, alpha, dropout }));
      }
    }
  }
  const layers = new Map(loraLayers(model));
  for (const name of names) {
    const l = layers.get(name)!;
    if (l.merged) l.unmerge();
    for (const [field, t] of [["lora_A", l.lora_A], ["lora_B", l.lora_B]] as const) {
      const data = await file.read(`${name}.${field}`);
      noGrad(() => {
        const src = tensor(data, { shape: t.shape, device: t.device });
        t.assign(src);
        src.dispose();
      });
    }
  }
  return names;
}
