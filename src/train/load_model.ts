/**
 * Loading a GPT-2 language model from a file, whichever kind it is: a denograd checkpoint of any
 * trainer (its `config.model` says how to build the model) or Hugging Face safetensors (the
 * shapes do, with the head count).
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { type GPT2Config, validateConfig } from "../models/gpt2/config.ts";
import { GPT2 } from "../models/gpt2/model.ts";
import {
  configFromSafetensors,
  type ConfigFromSafetensorsOptions,
  loadGpt2Safetensors,
} from "../models/gpt2/weights.ts";
import { CHECKPOINT_FORMAT, loadCheckpoint } from "./checkpoint.ts";

/** Options of {@linkcode loadModel} and {@linkcode readModelConfig}. */
export interface LoadModelOptions extends ConfigFromSafetensorsOptions {
  /** Where the model lives (default "cpu"). */
  device?: Device;
}

/** What {@linkcode loadModel} built. */
export interface LoadedModel {
  /** The model, weights loaded. */
  model: GPT2;
  /** "checkpoint" (denograd's, from a trainer) or "huggingface" (plain GPT-2 safetensors). */
  format: "checkpoint" | "huggingface";
  /** The trainer that wrote the checkpoint ("pretrain", "trainDPO", ...); null for HF files. */
  trainer: string | null;
  /** The checkpoint's step; null for HF files. */
  step: number | null;
}

/** The checkpoint's metadata, or null for a file that is not a denograd checkpoint. */
async function checkpointMeta(path: string | URL): Promise<Record<string, string> | null> {
  using file = await openSafetensors(path);
  return file.metadata.format === CHECKPOINT_FORMAT ? file.metadata : null;
}

/** The GPT-2 configuration a checkpoint's metadata stores, and its trainer. */
function savedConfig(
  path: string | URL,
  meta: Record<string, string>,
  dropout: number | undefined,
): { config: GPT2Config; trainer: string | null } {
  const where = `loadModel ${path}`;
  let saved: { trainer?: unknown; model?: unknown } | null;
  try {
    saved = JSON.parse(meta.config ?? "null");
  } catch (e) {
    throw new RangeError(`${where}: metadata "config" is not valid JSON: ${(e as Error).message}`);
  }
  const trainer = typeof saved?.trainer === "string" ? saved.trainer : null;
  // Checkpoints store {trainer, model, settings}; pretraining's before 2026-12 the config itself.
  const model = saved && ("model" in saved || "trainer" in saved) ? saved.model : saved;
  if (typeof model !== "object" || model === null) {
    throw new TypeError(
      `${where}: the checkpoint${trainer ? ` of ${trainer}` : ""} stores no GPT-2 ` +
        "configuration, so it does not hold a GPT-2 language model",
    );
  }
  const config = validateConfig({
    ...(model as GPT2Config),
    ...(dropout === undefined ? {} : { dropout }),
  });
  return { config, trainer };
}

/**
 * The GPT-2 configuration of a model file without loading its weights (to build a model that a
 * resumed run then fills).
 *
 * @param path a denograd checkpoint or Hugging Face GPT-2 safetensors
 * @param options the head count and dropout (HF files; dropout also overrides a checkpoint's)
 * @returns a validated configuration
 */
export async function readModelConfig(
  path: string | URL,
  options: LoadModelOptions = {},
): Promise<GPT2Config> {
  const meta = await checkpointMeta(path);
  return meta
    ? savedConfig(path, meta, options.dropout).config
    : await configFromSafetensors(path, options);
}

/**
 * Builds a GPT-2 from a model file and loads its weights: a denograd checkpoint written by any
 * trainer (the model only; its optimizer state is not needed to use or fine-tune it) or Hugging
 * Face GPT-2 safetensors (`deno task download gpt2`). Everything is checked before a model is
 * returned.
 *
 * @example
 * ```ts
 * import { getRngState, GPT2, gpt2Config, loadModel, saveCheckpoint } from "@denograd/denograd";
 * const trained = new GPT2(gpt2Config("small-test"));
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * const config = { trainer: "pretrain", model: trained.config };
 * await saveCheckpoint(path, { model: trained, step: 7, rng: getRngState(), config });
 * const { model, step, trainer } = await loadModel(path);
 * console.log(model.config.nLayer, step, trainer); // 2 7 "pretrain"
 * await Deno.remove(path);
 * ```
 * @param path the file
 * @param options the device; the head count and dropout where the file does not say
 * @returns the model and where it came from
 */
export async function loadModel(
  path: string | URL,
  options: LoadModelOptions = {},
): Promise<LoadedModel> {
  const device = options.device ?? "cpu";
  const meta = await checkpointMeta(path);
  if (!meta) {
    const model = new GPT2(await configFromSafetensors(path, options), { device });
    try {
      await loadGpt2Safetensors(model, path);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, format: "huggingface", trainer: null, step: null };
  }
  const { config, trainer } = savedConfig(path, meta, options.dropout);
  const model = new GPT2(config, { device });
  try {
    const { step } = await loadCheckpoint(path, model, { readOptimizerState: false });
    return { model, format: "checkpoint", trainer, step };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
