// The fine-tuning examples' model loading: a fresh small GPT-2, OpenAI's weights (--weights), or a
// full-model checkpoint from another run (--init), e.g. an instruction-tuned model for DPO.
import { type Device, GPT2, type GPT2Config, gpt2Config, loadModel } from "../mod.ts";
import { CliError, UsageError } from "../cli/_args.ts";

/** Where the starting weights come from. */
export interface InitOptions {
  /** Hugging Face GPT-2 safetensors (`deno task download gpt2`). */
  weights?: string;
  /** A denograd checkpoint of a whole GPT-2 (pretrain, instruction tuning), or HF safetensors. */
  init?: string;
  /** Overrides of the "tiny" preset for a fresh model, when neither is given. */
  fresh: Partial<GPT2Config>;
  /** Shortest context the run needs (fresh models get it; loaded ones must have it). */
  contextLength: number;
  /** Where the model lives. */
  device: Device;
}

/**
 * Builds the model and says where it came from.
 * @throws UsageError when both `weights` and `init` are given (which one would win is a guess);
 *   CliError naming the flag and file when the file cannot be loaded
 */
export async function initModel(o: InitOptions): Promise<{ model: GPT2; from: string }> {
  if (o.weights && o.init) throw new UsageError("give --weights or --init, not both");
  const [flag, path] = o.weights ? ["--weights", o.weights] : ["--init", o.init];
  if (path === undefined) {
    const config = gpt2Config("tiny", { ...o.fresh, contextLength: o.contextLength });
    return { model: new GPT2(config, { device: o.device }), from: "a fresh model" };
  }
  try {
    const { model, format, step } = await loadModel(path, { device: o.device });
    return { model, from: format === "checkpoint" ? `${path} (step ${step})` : path };
  } catch (e) {
    throw new CliError(`cannot load ${flag} ${path}: ${(e as Error).message}`, { cause: e });
  }
}
