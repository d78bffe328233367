/**
 * `deno task download gpt2|gpt2-medium|gpt2-large|gpt2-xl [--out models] [--sha256 HEX]`:
 * fetches a GPT-2 checkpoint's model.safetensors and config.json from Hugging Face with a
 * progress bar; resumable (run it again after an interruption) and hash-checked.
 * @module
 */

import { parseArgs } from "node:util";
import { Progress } from "../../_progress.ts";
import { downloadGpt2, GPT2_SOURCES, isGpt2Name } from "./download.ts";

const USAGE = `usage: deno task download <model> [--out DIR] [--sha256 HEX] [--endpoint URL]

  <model>         ${Object.keys(GPT2_SOURCES).join(" | ")}
  --out DIR       parent directory; files go to DIR/<model>/ (default: models)
  --sha256 HEX    expected SHA-256 of model.safetensors (gpt2's is built in)
  --endpoint URL  a Hugging Face mirror (default: $HF_ENDPOINT or https://huggingface.co)

An interrupted download resumes where it stopped when run again.`;

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: "string", default: "models" },
        sha256: { type: "string" },
        endpoint: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const name = positionals[0];
  if (positionals.length !== 1 || !isGpt2Name(name)) {
    console.error(`${name ? `unknown model "${name}"` : "which model?"}\n\n${USAGE}`);
    return 2;
  }
  const endpoint = values.endpoint ?? Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co";
  const bars = new Map<string, Progress>();
  try {
    const files = await downloadGpt2(name, {
      out: values.out,
      endpoint,
      sha256: values.sha256,
      onProgress(file, received, total) {
        let bar = bars.get(file);
        if (!bar) bars.set(file, bar = new Progress({ label: file, total, unit: "bytes" }));
        bar.update(received);
      },
    });
    for (const f of files) {
      bars.get(f.path.split(/[\\/]/).pop()!)?.done(f.bytes);
      const how = f.skipped ? "already present" : f.resumedFrom ? "resumed" : "downloaded";
      const check = f.verified ? "SHA-256 verified" : "SHA-256 not verified (no known hash)";
      console.log(`${f.path}  ${f.bytes} bytes  ${how}\n  sha256 ${f.sha256}  ${check}`);
    }
    if (files.some((f) => !f.verified)) {
      console.log(
        `  compare the hash with the file page on Hugging Face, or pass --sha256 to check it`,
      );
    }
    return 0;
  } catch (e) {
    console.error(`\n${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
