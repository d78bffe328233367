// The fine-tuning examples' model loading: a fresh small GPT-2, OpenAI's weights (--weights), or a
// full-model checkpoint from another run (--init), e.g. an instruction-tuned model for DPO.
import {
  configFromSafetensors,
  type Device,
  GPT2,
  type GPT2Config,
  gpt2Config,
  loadCheckpoint,
  loadGpt2Safetensors,
  openSafetensors,
  validateConfig,
} from "../mod.ts";

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

/** Builds the model and says where it came from. */
export async function initModel(o: InitOptions): Promise<{ model: GPT2; from: string }> {
  if (o.weights) {
    const model = new GPT2(await configFromSafetensors(o.weights), { device: o.device });
    await loadGpt2Safetensors(model, o.weights);
    return { model, from: o.weights };
  }
  if (o.init) {
    let meta: Record<string, string>;
    {
      using file = await openSafetensors(o.init);
      meta = file.metadata;
    }
    if (meta.format !== "denograd-checkpoint") {
      return initModel({ ...o, weights: o.init, init: undefined });
    }
    // pretrain stores the GPT-2 config itself; the fine-tuning trainers store {model: config, ...}
    const saved = JSON.parse(meta.config ?? "null");
    const config = validateConfig(saved?.model ?? saved);
    const model = new GPT2(config, { device: o.device });
    const { step, optimizerState } = await loadCheckpoint(o.init, model);
    for (const t of Object.values(optimizerState)) t.dispose(); // a new run, a new optimizer
    return { model, from: `${o.init} (step ${step})` };
  }
  const config = gpt2Config("tiny", { ...o.fresh, contextLength: o.contextLength });
  return { model: new GPT2(config, { device: o.device }), from: "a fresh model" };
}
