// The JS heap stays flat (after a full GC) over 4,000 training steps of a tiny GPT and over 1,000
// generate() calls: nothing the library keeps per step or per token may outlive it. The probes
// run in subprocesses with --expose-gc (tests/_heap_probe.ts).
import assert from "node:assert/strict";

interface Probe {
  samples: [number, number][];
  rss: [number, number];
}

async function probe(mode: string, count: number, every: number): Promise<Probe> {
  const script = new URL("./_heap_probe.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read",
      "--allow-env",
      "--v8-flags=--expose-gc",
      script,
      mode,
      String(count),
      String(every),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `heap probe ${mode} failed: ${err}`);
  return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
}

const MiB = 2 ** 20;

/** Heap growth from the first sample after warm-up (the second) to the last. */
function growth(p: Probe): number {
  return p.samples.at(-1)![1] - p.samples[1][1];
}

const describe = (p: Probe) =>
  p.samples.map(([i, b]) => `${i}: ${(b / MiB).toFixed(2)} MiB`).join(", ");

Deno.test("the heap stays flat within 2 MiB over 4,000 pretraining steps", async () => {
  const p = await probe("train", 4000, 400);
  assert.equal(p.samples.at(-1)![0], 4000);
  assert.ok(growth(p) < 2 * MiB, `heap grew ${(growth(p) / MiB).toFixed(2)} MiB: ${describe(p)}`);
});

Deno.test("the heap stays flat within 2 MiB over 1,000 generate() calls with the KV cache", async () => {
  const p = await probe("generate", 1000, 100);
  assert.equal(p.samples.at(-1)![0], 1000);
  assert.ok(growth(p) < 2 * MiB, `heap grew ${(growth(p) / MiB).toFixed(2)} MiB: ${describe(p)}`);
});
