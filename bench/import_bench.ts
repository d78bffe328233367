/**
 * What `import "mod.ts"` costs at start-up on this machine, against the same import with the
 * CUDA kernels' PTX (3.4 MB of source) loaded as well: what every import cost before the PTX
 * was loaded only where a CUDA backend can exist. Fresh processes, interleaved, medians.
 *
 *   deno task bench:import      # writes bench/results/import-<date>.json
 * @module
 */

import { median } from "./_common.ts";

const REPS = 15;
const root = new URL("../", import.meta.url);
const mod = new URL("mod.ts", root).href;
const ptx = new URL("src/backend/cuda/_ptx.ts", root).href;

/** Milliseconds a fresh process spends importing `specifiers`, as it measures itself. */
async function importMs(specifiers: string[]): Promise<number> {
  const code = `const t0 = performance.now();\n` +
    specifiers.map((s) => `await import(${JSON.stringify(s)});`).join("\n") +
    `\nconsole.log(performance.now() - t0);`;
  const { code: status, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", "--ext=ts", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (status !== 0) throw new Error(new TextDecoder().decode(stderr));
  return Number(new TextDecoder().decode(stdout).trim());
}

await importMs([mod]); // warm the module cache once
const lazy: number[] = [], eager: number[] = [];
for (let i = 0; i < REPS; i++) {
  lazy.push(await importMs([mod]));
  eager.push(await importMs([mod, ptx]));
}
const report = {
  date: new Date().toISOString().slice(0, 10),
  what: "import mod.ts in a fresh process (--allow-all, no libcuda here), median of " + REPS,
  cudaAvailable: false,
  importMs: +median(lazy).toFixed(1),
  withPtxMs: +median(eager).toFixed(1),
  ratio: +(median(lazy) / median(eager)).toFixed(2),
};
console.log(
  `import mod.ts: ${report.importMs} ms; with the PTX loaded too (the old behaviour): ` +
    `${report.withPtxMs} ms; ratio ${report.ratio}`,
);
const out = `bench/results/import-${report.date}.json`;
await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
console.log(`wrote ${out}`);
