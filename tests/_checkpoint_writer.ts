// Saves checkpoints of a 64 MiB model to Deno.args[0] in a loop, printing "saved <step>" after
// each: tests/checkpoint_kill_test.ts kills it in the middle of a save.
import { getRngState, Module, parameter, saveCheckpoint, tensor } from "../mod.ts";

class Big extends Module {
  w = parameter(tensor(new Float32Array(16 << 20).fill(0.5)));
}
const model = new Big();
for (let step = 1; step <= 1000; step++) {
  await saveCheckpoint(Deno.args[0], { model, step, rng: getRngState(), config: { step } });
  console.log(`saved ${step}`);
}
