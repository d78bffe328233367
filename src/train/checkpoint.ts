/**
 * Training checkpoints: one safetensors file holding the model's tensors (`model.<name>`), the
 * optimizer's state tensors (`optim.<name>`) and, as JSON strings in the metadata, the step, the
 * random generator's state, the config and any extra trainer state (data position, best loss).
 *
 * Saving is atomic (a temporary file, fsync, rename, fsync of the directory), so a crash mid-save
 * leaves the previous checkpoint intact; the temporaries a killed save left are removed by the
 * next one. A state holding NaN or Inf is refused, so a diverged run never overwrites a good
 * checkpoint. Every tensor's SHA-256 is stored, and loading checks everything (header, checksums,
 * metadata, every name, shape and dtype against the model, the optimizer state) before the model
 * or the optimizer is touched; values round-trip bit for bit.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import { noGrad } from "../autograd.ts";
import { removeStaleTemporaries } from "../io/atomic.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { writeSafetensors } from "../io/safetensors_write.ts";
import type { Module } from "../nn/module.ts";
import { tensor } from "../ops/creation.ts";
import { renameOp } from "../ops/_helpers.ts";
import type { RngState } from "../random.ts";
import { Tensor } from "../tensor.ts";
import type { TrainOptimizer } from "../optim/optimizer.ts";

/** The `format` metadata value that marks a denograd checkpoint. */
export const CHECKPOINT_FORMAT = "denograd-checkpoint";
/** The checkpoint layout version this module writes and reads. */
export const CHECKPOINT_VERSION = 1;

const MODEL = "model.";
const OPTIM = "optim.";

/** What {@linkcode saveCheckpoint} stores. */
export interface CheckpointState {
  /** The model; every tensor of `namedTensors()` (parameters and buffers) is saved. */
  model: Module;
  /** The optimizer's state tensors by name (e.g. `AdamW.state()`). */
  optimizerState?: Record<string, Tensor>;
  /** Optimizer steps taken so far. */
  step: number;
  /** The random generator's state: `getRngState()`. */
  rng: RngState;
  /** The run's configuration (model and training); anything JSON can hold. */
  config: unknown;
  /** Any other JSON state to resume with (data loader position, best validation loss, ...). */
  extra?: Record<string, unknown>;
}

/** What {@linkcode loadCheckpoint} returns besides filling the model. */
export interface LoadedCheckpoint<C = unknown> {
  /** Optimizer steps taken when it was saved. */
  step: number;
  /** The random generator's state; resume it with `setRngState`. */
  rng: RngState;
  /** The saved configuration. */
  config: C;
  /** The saved extra state ({} when none was given). */
  extra: Record<string, unknown>;
  /** The optimizer's state tensors, new tensors the caller owns (pass to `loadState`, then dispose). */
  optimizerState: Record<string, Tensor>;
}

/** What a checkpoint's metadata says, for {@linkcode LoadCheckpointOptions.check}. */
export interface CheckpointInfo<C = unknown> {
  /** Optimizer steps taken when it was saved. */
  step: number;
  /** The saved configuration. */
  config: C;
  /** The saved extra state. */
  extra: Record<string, unknown>;
}

/** Options of {@linkcode loadCheckpoint}. */
export interface LoadCheckpointOptions<C = unknown> {
  /** Where the optimizer state tensors are created; default "cpu". */
  device?: Device;
  /**
   * Restore the optimizer too: its state is checked with the model's tensors (a checkpoint
   * without optimizer state is then an error) and loaded before the model is filled; the
   * returned `optimizerState` is then empty.
   */
  optimizer?: Pick<TrainOptimizer, "checkState" | "loadState">;
  /**
   * Read the optimizer state (default true). False leaves it unread (to use the model only: the
   * state of AdamW is twice the model's size); `optimizerState` is then empty.
   */
  readOptimizerState?: boolean;
  /**
   * Called with the parsed metadata before any tensor is read; throw to refuse the checkpoint
   * (e.g. a different learning-rate schedule) with nothing changed.
   */
  check?: (info: CheckpointInfo<C>) => void;
}

function json(where: string, key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new TypeError(`${where}: ${key} is not JSON-serialisable: ${(e as Error).message}`);
  }
  if (text === undefined) throw new TypeError(`${where}: ${key} is not JSON-serialisable`);
  return text;
}

function isRngState(x: unknown): x is RngState {
  const r = x as RngState | null;
  return typeof r === "object" && r !== null && Number.isSafeInteger(r.seed) &&
    Number.isSafeInteger(r.offset) && r.offset >= 0;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Saves a training checkpoint to one safetensors file, atomically, tensor by tensor.
 *
 * @example
 * ```ts
 * import {
 *   getRngState,
 *   GPT2,
 *   gpt2Config,
 *   loadCheckpoint,
 *   manualSeed,
 *   saveCheckpoint,
 * } from "@denograd/denograd";
 * manualSeed(0);
 * const config = gpt2Config("small-test");
 * const model = new GPT2(config);
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveCheckpoint(path, { model, step: 100, rng: getRngState(), config, extra: { epoch: 1 } });
 * const resumed = new GPT2(config);
 * const ckpt = await loadCheckpoint(path, resumed); // resumed's weights now equal model's
 * console.log(ckpt.step, ckpt.extra); // 100 { epoch: 1 }
 * await Deno.remove(path);
 * ```
 * @param path where to write (an existing file is replaced only once the new one is complete)
 * @param state the model, optimizer state, step, RNG state, config and extra state
 * @returns when the file is in place
 */
export async function saveCheckpoint(path: string | URL, state: CheckpointState): Promise<void> {
  const where = "saveCheckpoint";
  const { model, optimizerState = {}, step, rng, config, extra = {} } = state;
  if (!model || typeof model.namedTensors !== "function") {
    throw new TypeError(`${where}: model must be a Module`);
  }
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new RangeError(`${where}: step must be a non-negative integer, got ${step}`);
  }
  if (!isRngState(rng)) {
    throw new TypeError(`${where}: rng must be getRngState()'s {seed, offset}, got ${rng}`);
  }
  if (!isPlainObject(extra)) throw new TypeError(`${where}: extra must be an object`);
  const metadata = {
    format: CHECKPOINT_FORMAT,
    version: String(CHECKPOINT_VERSION),
    step: String(step),
    rng: json(where, "rng", { seed: rng.seed, offset: rng.offset }),
    config: json(where, "config", config),
    extra: json(where, "extra", extra),
  };
  const entries: [string, Tensor][] = model.namedTensors().map(([n, t]) => [MODEL + n, t]);
  for (const [name, t] of Object.entries(optimizerState)) {
    if (!(t instanceof Tensor)) {
      throw new TypeError(`${where}: optimizer state "${name}" is not a Tensor`);
    }
    entries.push([OPTIM + name, t]);
  }
  await removeStaleTemporaries(path);
  try {
    await writeSafetensors(path, entries, metadata, { finite: true });
  } catch (e) {
    throw renameOp(e, "writeSafetensors", where);
  }
}

/**
 * Loads a checkpoint written by {@linkcode saveCheckpoint}: fills `model` in place and returns the
 * rest. Everything is validated first (the file's header; the metadata present and parseable;
 * every model tensor present with the same shape and dtype, no unknown names), with one error
 * listing every problem, so a bad checkpoint leaves the model untouched.
 *
 * @param path the checkpoint
 * @param model a model of the same architecture (e.g. built from the saved config)
 * @param options where to create the optimizer state tensors
 * @returns step, RNG state, config, extra state and the optimizer's state tensors
 * @throws {RangeError} listing every problem found, before the model is changed
 */
export async function loadCheckpoint<C = unknown>(
  path: string | URL,
  model: Module,
  options: LoadCheckpointOptions<C> = {},
): Promise<LoadedCheckpoint<C>> {
  using file = await openSafetensors(path);
  const where = `loadCheckpoint ${file.path}`;
  const meta = file.metadata;
  if (meta.format !== CHECKPOINT_FORMAT) {
    throw new TypeError(
      `${where}: not a denograd checkpoint (metadata format is ${JSON.stringify(meta.format)}, ` +
        `expected "${CHECKPOINT_FORMAT}")`,
    );
  }
  if (meta.version !== String(CHECKPOINT_VERSION)) {
    throw new RangeError(
      `${where}: checkpoint version ${meta.version}; this version of denograd reads ` +
        `version ${CHECKPOINT_VERSION}`,
    );
  }
  const problems: string[] = [];
  const parsed: Record<string, unknown> = {};
  for (const key of ["step", "rng", "config", "extra"]) {
    if (meta[key] === undefined) {
      problems.push(`metadata "${key}" is missing`);
      continue;
    }
    try {
      parsed[key] = JSON.parse(meta[key]);
    } catch (e) {
      problems.push(`metadata "${key}" is not valid JSON: ${(e as Error).message}`);
    }
  }
  const { step, rng, config, extra } = parsed;
  if ("step" in parsed && !(Number.isSafeInteger(step) && (step as number) >= 0)) {
    problems.push(`metadata "step" must be a non-negative integer, got ${meta.step}`);
  }
  if ("rng" in parsed && !isRngState(rng)) {
    problems.push(`metadata "rng" must be {seed, offset} integers, got ${meta.rng}`);
  }
  if ("extra" in parsed && !isPlainObject(extra)) {
    problems.push(`metadata "extra" must be a JSON object, got ${meta.extra}`);
  }

  const own = new Map(model.namedTensors());
  const optimNames: string[] = [];
  const seen = new Set<string>();
  for (const info of file.tensors) {
    if (info.name.startsWith(OPTIM)) {
      optimNames.push(info.name);
      continue;
    }
    const name = info.name.startsWith(MODEL) ? info.name.slice(MODEL.length) : null;
    const target = name === null ? undefined : own.get(name);
    if (!target) {
      problems.push(`unexpected "${info.name}"`);
      continue;
    }
    seen.add(name!);
    const dtype = target.dtype === "f32" ? "F32" : target.dtype === "bf16" ? "BF16" : "I32";
    const sameShape = info.shape.length === target.shape.length &&
      info.shape.every((d, i) => d === target.shape[i]);
    if (!sameShape || info.dtype !== dtype) {
      problems.push(
        `"${info.name}" is ${info.dtype} [${info.shape}], the model has ${dtype} [${target.shape}]`,
      );
    }
  }
  for (const name of own.keys()) if (!seen.has(name)) problems.push(`missing "${MODEL}${name}"`);
  if (options.optimizer && options.readOptimizerState === false) {
    throw new TypeError(`${where}: an optimizer to restore needs readOptimizerState`);
  }
  if (options.optimizer && optimNames.length === 0) {
    problems.push(
      "it holds no optimizer state (a weights-only file?): resuming training needs a " +
        "checkpoint written by a trainer",
    );
  }
  if (problems.length) {
    throw new RangeError(`${where}: ${problems.length} problem(s): ${problems.join("; ")}`);
  }
  options.check?.({
    step: step as number,
    config: config as C,
    extra: extra as Record<string, unknown>,
  });

  // Everything is read (and its checksum verified) before anything is changed: a corrupted or
  // unreadable tensor anywhere in the file leaves the model and the optimizer as they were.
  const optimizerState: Record<string, Tensor> = {};
  const disposeState = () => Object.values(optimizerState).forEach((t) => t.dispose());
  const values = new Map<string, Float32Array | Int32Array>();
  try {
    const wanted = options.readOptimizerState === false ? [] : optimNames;
    for (const name of wanted) {
      optimizerState[name.slice(OPTIM.length)] = await file.readTensor(name, {
        device: options.device,
      });
    }
    for (const name of own.keys()) values.set(name, await file.read(MODEL + name));
    const bad = options.optimizer?.checkState(optimizerState) ?? [];
    if (bad.length) {
      throw new RangeError(
        `${where}: the optimizer state does not fit the optimizer, ${bad.length} problem(s): ` +
          bad.join("; "),
      );
    }
  } catch (e) {
    disposeState();
    throw e;
  }
  if (options.optimizer) {
    try {
      options.optimizer.loadState(optimizerState); // checked above: it cannot fail halfway
    } finally {
      disposeState();
    }
  }
  noGrad(() => {
    for (const [name, target] of own) {
      const src = tensor(values.get(name)!, {
        shape: target.shape,
        dtype: target.dtype,
        device: target.device,
      });
      target.assign(src);
      src.dispose();
    }
  });
  return {
    step: step as number,
    rng: { seed: (rng as RngState).seed, offset: (rng as RngState).offset },
    config: config as C,
    extra: extra as Record<string, unknown>,
    optimizerState: options.optimizer ? {} : optimizerState,
  };
}
