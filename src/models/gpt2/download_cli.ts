/**
 * `deno task download gpt2|gpt2-medium|gpt2-large|gpt2-xl [--out models] [--sha256 HEX]
 * [--timeout SECONDS]`: fetches a GPT-2 checkpoint's model.safetensors and config.json from
 * Hugging Face with a progress bar; resumable (run it again after an interruption), hash-checked
 * where a hash is known, and format-checked always.
 * @module
 */

import { parseArgs } from "node:util";
import { Progress } from "../../_progress.ts";
import { downloadGpt2, GPT2_SOURCES, isGpt2Name } from "./download.ts";

const USAGE = `usage: deno task download <model> [--out DIR] [--sha256 HEX] [--endpoint URL]
                             [--timeout SECONDS]

  <model>            ${Object.keys(GPT2_SOURCES).join(" | ")}
  --out DIR          parent directory; files go to DIR/<model>/ (default: models)
  --sha256 HEX       expected SHA-256 of model.safetensors (gpt2's is built in)
  --endpoint URL     a Hugging Face mirror (default: $HF_ENDPOINT or https://huggingface.co)
  --timeout SECONDS  longest wait for the server to answer, and longest silence while a file
                     arrives, before retrying (default: 30)

An interrupted download resumes where it stopped when run again. Files already present are
kept only if they pass the checks (hash where known, safetensors header or JSON); others are
downloaded again.`;

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
        timeout: { type: "string" },
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
  const timeoutS = values.timeout === undefined ? 30 : Number(values.timeout);
  if (values.timeout?.trim() === "" || !(timeoutS > 0)) {
    console.error(
      `--timeout must be a positive number of seconds, got "${values.timeout}"\n\n${USAGE}`,
    );
    return 2;
  }
  const endpoint = values.endpoint ?? Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co";
  const bars = new Map<string, Progress>();
  try {
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
    return 0;
  } catch (e) {
    console.error(`\n${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
