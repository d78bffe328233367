// A process killed while it writes a checkpoint leaves the previous one intact; the temporary
// file it leaves is removed by the next save.
import assert from "node:assert/strict";
import { join } from "node:path";
import { getRngState, loadCheckpoint, Module, parameter, saveCheckpoint, tensor } from "../mod.ts";

class Big extends Module {
  w = parameter(tensor(new Float32Array(16 << 20)));
}

async function temporaries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".tmp")) names.push(e.name);
  return names;
}

/** True while a save is in its first half: a temporary file holding under 32 of 64 MiB. */
async function halfWritten(dir: string): Promise<boolean> {
  for (const name of await temporaries(dir)) {
    const size = await Deno.stat(join(dir, name)).then((s) => s.size, () => -1);
    if (size > 0 && size < 32 << 20) return true;
  }
  return false;
}

Deno.test("a SIGKILL during a checkpoint save keeps the last one; the next save cleans up", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_kill_" });
  const path = join(dir, "ckpt.safetensors");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      new URL("./_checkpoint_writer.ts", import.meta.url).pathname,
      path,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    // Wait for one complete save, then for the next one's temporary file, and kill mid-write.
    const reader = child.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /^saved \d+/);
    const deadline = Date.now() + 30_000;
    while (!(await halfWritten(dir))) {
      assert.ok(Date.now() < deadline, "no save started within 30 s");
      await new Promise((r) => setTimeout(r, 1));
    }
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    const left = await temporaries(dir);
    assert.equal(left.length, 1, `the killed save left ${left}`);

    const model = new Big();
    const ck = await loadCheckpoint<{ step: number }>(path, model); // intact, checksums verified
    assert.ok(ck.step >= 1);
    assert.equal(model.w.toTypedArray()[12345], 0.5);
    await saveCheckpoint(path, { model, step: ck.step + 1, rng: getRngState(), config: {} });
    assert.deepEqual(await temporaries(dir), []);
    model.dispose();
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await Deno.remove(dir, { recursive: true });
  }
});
