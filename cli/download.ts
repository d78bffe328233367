/**
 * `deno task download gpt2|gpt2-medium|gpt2-large|gpt2-xl [--out models] [--sha256 HEX]
 * [--timeout SECONDS]`: fetches a GPT-2 checkpoint's model.safetensors and config.json from
 * Hugging Face with a progress bar; resumable (run it again after an interruption), hash-checked
 * where a hash is known, and format-checked always.
 * @module
 */

import { Progress } from "../src/_progress.ts";
import { defineCli, runCli } from "./_args.ts";
import { downloadGpt2, GPT2_SOURCES, type Gpt2Name } from "../src/models/gpt2/download.ts";

const CLI = defineCli({
  name: "download",
  usage: "deno task download <model> [options]",
  summary: "Fetch a GPT-2 checkpoint's model.safetensors and config.json from Hugging Face.",
  positionals: [{
    name: "model",
    description: "which GPT-2",
    choices: Object.keys(GPT2_SOURCES) as Gpt2Name[],
  }],
  flags: {
    out: {
      type: "string",
      value: "DIR",
      default: "models",
      description: "parent directory; files go to DIR/<model>/",
    },
    sha256: {
      type: "string",
      value: "HEX",
      description: "expected SHA-256 of model.safetensors (gpt2's is built in)",
    },
    endpoint: {
      type: "string",
      value: "URL",
      description: "a Hugging Face mirror",
      defaultText: "$HF_ENDPOINT or https://huggingface.co",
    },
    timeout: {
      type: "number",
      value: "SECONDS",
      above: 0,
      default: 30,
      description: "longest wait for the server to answer, and longest silence while a file\n" +
        "arrives, before retrying",
    },
  },
  epilog: "An interrupted download resumes where it stopped when run again. Files already " +
    "present are\nkept only if they pass the checks (hash where known, safetensors header or " +
    "JSON); others are\ndownloaded again.",
});

/** Runs the CLI with `args`; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(CLI, args, async (values) => {
    const name = values.model;
    const timeoutS = values.timeout;
    const endpoint = values.endpoint ?? Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co";
    const bars = new Map<string, Progress>();
    const files = await downloadGpt2(name, {
      out: values.out,
      endpoint,
      sha256: values.sha256,
      timeoutMs: timeoutS * 1000,
      idleTimeoutMs: timeoutS * 1000,
      onProgress(file, received, total) {
        let bar = bars.get(file);
        if (!bar) bars.set(file, bar = new Progress({ label: file, total, unit: "bytes" }));
        bar.update(received);
      },
    });
    for (const f of files) {
      bars.get(f.path.split(/[\\/]/).pop()!)?.done(f.bytes);
      const how = f.skipped
        ? "already present and valid"
        : `${f.resumedFrom ? "resumed" : "downloaded"}` +
          (f.replaced ? ` again: the file that was there was invalid (${f.replaced})` : "");
      const check = f.verified ? "SHA-256 verified" : "SHA-256 not verified (no known hash)";
      console.log(`${f.path}  ${f.bytes} bytes  ${how}\n  sha256 ${f.sha256}  ${check}`);
    }
    if (files.some((f) => !f.verified)) {
      console.log(
        `  compare the hash with the file page on Hugging Face, or pass --sha256 to check it`,
      );
    }
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
