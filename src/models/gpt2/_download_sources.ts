/**
 * Where GPT-2's files live on Hugging Face, and what is known of them (pinned hashes and sizes).
 * Re-exported by `download.ts`.
 * @module
 */

/** The four GPT-2 checkpoints OpenAI released, by their Hugging Face names. */
export type Gpt2Name = "gpt2" | "gpt2-medium" | "gpt2-large" | "gpt2-xl";

/** One file of a pinned Hugging Face repository. */
export interface PinnedFile {
  /** File name in the repository. */
  name: string;
  /** Expected SHA-256, where it is known. */
  sha256?: string;
  /** Expected size in bytes, where it is known. */
  bytes?: number;
}

/** Where one GPT-2 checkpoint lives on Hugging Face. */
export interface Gpt2Source {
  /** Repository id, e.g. `openai-community/gpt2`. */
  repo: string;
  /** A commit hash where the hashes are pinned, else `main`. */
  revision: string;
  /** The files to fetch: model.safetensors and config.json. */
  files: PinnedFile[];
}

/**
 * The GPT-2 checkpoints and what is known of their files. `gpt2`'s hashes are pinned at a fixed
 * commit (the values are recorded independently by several public projects); the larger models'
 * hashes could not be confirmed, so they are downloaded from `main`, their computed hash printed,
 * and `--sha256` checks them.
 */
export const GPT2_SOURCES: Readonly<Record<Gpt2Name, Gpt2Source>> = {
  "gpt2": {
    repo: "openai-community/gpt2",
    revision: "607a30d783dfa663caf39e06633721c8d4cfcd7e",
    files: [
      {
        name: "model.safetensors",
        sha256: "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
        bytes: 548_105_171,
      },
      {
        name: "config.json",
        sha256: "0daed7749b4f02b8f76240d5444551d7b08712dab4d0adb8239c56ba823bb7b4",
        bytes: 665,
      },
    ],
  },
  "gpt2-medium": {
    repo: "openai-community/gpt2-medium",
    revision: "main",
    files: [{ name: "model.safetensors" }, { name: "config.json" }],
  },
  "gpt2-large": {
    repo: "openai-community/gpt2-large",
    revision: "main",
    files: [{ name: "model.safetensors" }, { name: "config.json" }],
  },
  "gpt2-xl": {
    repo: "openai-community/gpt2-xl",
    revision: "main",
    files: [{ name: "model.safetensors" }, { name: "config.json" }],
  },
};

/** Whether `name` is one of the GPT-2 checkpoints. */
export function isGpt2Name(name: string): name is Gpt2Name {
  return Object.hasOwn(GPT2_SOURCES, name);
}
