// Training checkpoints: bit-exact round trips (model, AdamW state, RNG, config, extra), training
// resumed from a checkpoint matching training that never stopped, and every way a bad
// checkpoint is refused with the model untouched.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  AdamW,
  getRngState,
  GPT2,
  type GPT2Config,
  gpt2Config,
  loadCheckpoint,
  manualSeed,
  Module,
  parameter,
  SafetensorsError,
  saveCheckpoint,
  setRngState,
  type Tensor,
  tensor,
  writeFileAtomic,
  writeSafetensors,
} from "../mod.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_ckpt_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** Every tensor's bits (Uint32 view), so -0, NaN payloads and subnormals must match exactly. */
function bits(model: Module): Map<string, Uint32Array> {
  return new Map(
    model.namedTensors().map(([n, t]) => {
      const a = t.toTypedArray();
      return [n, new Uint32Array(a.buffer, a.byteOffset, a.length).slice()];
    }),
  );
}

const CONFIG: GPT2Config = { ...gpt2Config("small-test"), dropout: 0.1 };
const IDX = () => tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], { dtype: "i32" });
const TARGETS = () => tensor([[2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13]], { dtype: "i32" });

/** One AdamW step on a fixed batch (dropout draws from the global generator). */
function trainStep(model: GPT2, opt: AdamW): number {
  const idx = IDX(), targets = TARGETS();
  const loss = model.loss(idx, targets);
  loss.backward();
  opt.step();
  opt.zeroGrad();
  const value = loss.item();
  for (const t of [idx, targets, loss]) t.dispose();
  return value;
}

Deno.test("a checkpoint round-trips model, optimizer state, RNG, config and extra bit for bit", async () => {
  await withTempDir(async (dir) => {
    manualSeed(7);
    const model = new GPT2(CONFIG);
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    trainStep(model, opt);
    trainStep(model, opt);
    // Values a lossy path would change: -0, subnormals, the largest floats. (NaN and Infinity
    // are refused: see "a non-finite state is never saved".)
    model.ln_f.bias!.assign(
      tensor([-0, 1e-45, 3.4028234e38, -3.4028234e38, 1e-40, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
    );
    const path = join(dir, "ckpt.safetensors");
    const rng = getRngState();
    const optState = opt.state();
    const extra = { epoch: 3, loader: { shard: 2, position: 12345 }, best: 1.25 };
    await saveCheckpoint(path, {
      model,
      optimizerState: optState,
      step: 2,
      rng,
      config: CONFIG,
      extra,
    });

    manualSeed(99);
    const resumed = new GPT2(CONFIG);
    const ckpt = await loadCheckpoint<GPT2Config>(path, resumed);
    assert.deepEqual(bits(resumed), bits(model));
    assert.equal(ckpt.step, 2);
    assert.deepEqual(ckpt.rng, rng);
    assert.deepEqual(ckpt.config, CONFIG);
    assert.deepEqual(ckpt.extra, extra);
    assert.deepEqual(Object.keys(ckpt.optimizerState).sort(), Object.keys(optState).sort());
    for (const [name, t] of Object.entries(optState)) {
      const got = ckpt.optimizerState[name];
      assert.deepEqual(got.shape, t.shape, name);
      assert.equal(got.dtype, t.dtype, name);
      assert.deepEqual(got.toTypedArray(), t.toTypedArray(), name);
    }
    for (const t of [...Object.values(optState), ...Object.values(ckpt.optimizerState)]) {
      t.dispose();
    }
    opt.dispose();
    model.dispose();
    resumed.dispose();
  });
});

Deno.test("training resumed from a checkpoint continues exactly as if it never stopped", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ckpt.safetensors");
    manualSeed(1);
    const model = new GPT2(CONFIG);
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    trainStep(model, opt);
    const state = opt.state();
    await saveCheckpoint(path, {
      model,
      optimizerState: state,
      step: 1,
      rng: getRngState(),
      config: CONFIG,
    });
    Object.values(state).forEach((t) => t.dispose());
    const straight = [trainStep(model, opt), trainStep(model, opt)];

    manualSeed(12345); // a different generator state and init: the checkpoint must restore both
    const model2 = new GPT2(CONFIG);
    const opt2 = new AdamW(model2.parameters(), { lr: 1e-2 });
    const ckpt = await loadCheckpoint(path, model2);
    opt2.loadState(ckpt.optimizerState);
    Object.values(ckpt.optimizerState).forEach((t) => t.dispose());
    setRngState(ckpt.rng);
    const resumed = [trainStep(model2, opt2), trainStep(model2, opt2)];
    assert.deepEqual(resumed, straight);
    assert.deepEqual(bits(model2), bits(model));
    for (const x of [opt, opt2, model, model2]) x.dispose();
  });
});

class Tiny extends Module {
  w: Tensor;
  ids: Tensor; // an i32 buffer
  constructor(n = 3) {
    super();
    this.w = parameter(tensor(new Float32Array(n).fill(1.5)));
    this.ids = tensor(new Int32Array([1, 2]));
  }
}

async function saveTiny(path: string, extra?: Record<string, unknown>): Promise<void> {
  manualSeed(0);
  const m = new Tiny();
  const optimizerState = { "0.m": tensor([0.5, 0.25, 0.125]) };
  await saveCheckpoint(path, {
    model: m,
    optimizerState,
    step: 5,
    rng: getRngState(),
    config: { n: 3 },
    extra,
  });
  optimizerState["0.m"].dispose();
  m.dispose();
}

/** Asserts that loading `path` into a fresh Tiny fails with `message` and leaves it unchanged. */
async function assertRefused(path: string, message: RegExp, model: Module = new Tiny()) {
  const before = bits(model);
  await assert.rejects(loadCheckpoint(path, model), (e: Error) => message.test(e.message));
  assert.deepEqual(bits(model), before);
  model.dispose();
}

Deno.test("loadCheckpoint checks names, shapes and dtypes against the model before loading", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "tiny.safetensors");
    await saveTiny(path);
    await assertRefused(path, /"model\.w" is F32 \[3\], the model has F32 \[4\]/, new Tiny(4));
    class Other extends Module {
      w = parameter(tensor([0, 0, 0]));
      extraParam = parameter(tensor([1]));
    }
    await assertRefused(
      path,
      /2 problem\(s\): unexpected "model\.ids"; missing "model\.extraParam"/,
      new Other(),
    );
    class WrongDtype extends Module {
      w = parameter(tensor([0, 0, 0]));
      ids = tensor([0, 0]); // f32 where the checkpoint has I32
    }
    await assertRefused(
      path,
      /"model\.ids" is I32 \[2\], the model has F32 \[2\]/,
      new WrongDtype(),
    );
  });
});

Deno.test("loadCheckpoint refuses missing or unparseable metadata and files that are not checkpoints", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.safetensors");
    const w = tensor([1, 1, 1]), ids = tensor(new Int32Array([1, 2]));
    const tensors = { "model.w": w, "model.ids": ids };
    const base = {
      format: "denograd-checkpoint",
      version: "1",
      step: "5",
      rng: '{"seed":0,"offset":0}',
      config: "{}",
      extra: "{}",
    };
    await writeSafetensors(path, tensors, { format: "pt" });
    await assertRefused(path, /not a denograd checkpoint \(metadata format is "pt"/);
    await writeSafetensors(path, tensors, { ...base, version: "2" });
    await assertRefused(path, /checkpoint version 2/);
    const { rng: _, ...noRng } = base;
    await writeSafetensors(path, tensors, { ...noRng, config: "{oops" });
    await assertRefused(
      path,
      /2 problem\(s\): metadata "rng" is missing; metadata "config" is not valid JSON/,
    );
    await writeSafetensors(path, tensors, {
      ...base,
      step: "-1",
      rng: '{"seed":"x"}',
      extra: "[]",
    });
    await assertRefused(
      path,
      /3 problem\(s\).*"step" must be a non-negative integer.*"rng".*"extra" must be a JSON object/,
    );
    await writeSafetensors(path, { ...tensors, "lm_head.weight": w }, base);
    await assertRefused(path, /unexpected "lm_head\.weight"/);
    w.dispose();
    ids.dispose();
  });
});

Deno.test("a truncated checkpoint fails before the model is touched", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "tiny.safetensors");
    await saveTiny(path);
    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 4));
    const model = new Tiny();
    const before = bits(model);
    await assert.rejects(loadCheckpoint(path, model), SafetensorsError);
    assert.deepEqual(bits(model), before);
    model.dispose();
  });
});

Deno.test("saveCheckpoint is atomic: a failed save keeps the previous checkpoint", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ckpt.safetensors");
    await writeFileAtomic(path, "previous checkpoint");
    const model = new Tiny();
    model.ids.toTypedArray = () => {
      throw new Error("device lost");
    };
    await assert.rejects(
      saveCheckpoint(path, { model, step: 1, rng: getRngState(), config: {} }),
      /device lost/,
    );
    assert.equal(await Deno.readTextFile(path), "previous checkpoint");
    assert.deepEqual(await listDir(dir), ["ckpt.safetensors"]);
    model.dispose();
  });
});

Deno.test("saveCheckpoint validates its input before writing", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ckpt.safetensors");
    const model = new Tiny();
    const rng = getRngState();
    await assert.rejects(
      saveCheckpoint(path, { model, step: -1, rng, config: {} }),
      /step must be/,
    );
    await assert.rejects(
      saveCheckpoint(path, { model, step: 0, rng: { seed: 1 } as never, config: {} }),
      /rng must be/,
    );
    await assert.rejects(
      saveCheckpoint(path, { model, step: 0, rng, config: { big: 1n } }),
      /config is not JSON-serialisable/,
    );
    await assert.rejects(
      saveCheckpoint(path, { model, step: 0, rng, config: {}, optimizerState: { m: 3 as never } }),
      /optimizer state "m" is not a Tensor/,
    );
    assert.deepEqual(await listDir(dir), []);
    model.dispose();
  });
});

Deno.test("a non-finite state is never saved: the previous checkpoint is kept", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ckpt.safetensors");
    await saveTiny(path);
    const before = await Deno.readFile(path);
    const model = new Tiny();
    model.w.assign(tensor([1, NaN, 3]));
    await assert.rejects(
      saveCheckpoint(path, { model, step: 6, rng: getRngState(), config: {} }),
      {
        name: "RangeError",
        message: 'saveCheckpoint: "model.w" holds NaN at element 1 of 3: refusing to write a ' +
          "non-finite state (a file already at the path is kept)",
      },
    );
    const m = tensor([0, Infinity, 0]);
    await assert.rejects(
      saveCheckpoint(path, {
        model: new Tiny(),
        optimizerState: { "0.m": m },
        step: 6,
        rng: getRngState(),
        config: {},
      }),
      /"optim\.0\.m" holds Infinity at element 1/,
    );
    m.dispose();
    assert.deepEqual(await Deno.readFile(path), before);
    assert.deepEqual(await listDir(dir), ["ckpt.safetensors"]);
    model.dispose();
  });
});

Deno.test("a flipped bit in a checkpoint is an error before anything is loaded", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "tiny.safetensors");
    await saveTiny(path);
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    // The data section holds model.w (12 bytes), model.ids (8), optim.0.m (12): flip a bit of
    // the last model tensor, so a loader assigning as it reads would have changed model.w.
    bytes[8 + n + 12] ^= 0x01;
    await Deno.writeFile(path, bytes);
    await assertRefused(path, /"model\.ids" is corrupted: its bytes hash to sha256 /);
  });
});

Deno.test("the temporaries of a killed save are removed by the next save, nothing else", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ckpt.safetensors");
    const stale = ["ckpt.safetensors.0123abcd.tmp", "ckpt.safetensors.ffffffff.tmp"];
    const others = ["ckpt.safetensors.notes.tmp", "other.safetensors.0123abcd.tmp", "x.tmp"];
    for (const name of [...stale, ...others]) await Deno.writeTextFile(join(dir, name), "half");
    await saveTiny(path);
    assert.deepEqual(await listDir(dir), ["ckpt.safetensors", ...others].sort());
  });
});

Deno.test("restoring an optimizer: missing or mismatched state is refused with the model untouched", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "tiny.safetensors");
    const weightsOnly = join(dir, "weights.safetensors");
    await saveTiny(path);
    const m = new Tiny();
    await saveCheckpoint(weightsOnly, { model: m, step: 5, rng: getRngState(), config: {} });
    m.dispose();

    const model = new Tiny(), before = bits(model);
    model.w.assign(tensor([7, 7, 7]));
    const changed = bits(model);
    const opt = new AdamW([model.w], { lr: 0.1 });
    await assert.rejects(
      loadCheckpoint(weightsOnly, model, { optimizer: opt }),
      /it holds no optimizer state \(a weights-only file\?\)/,
    );
    // saveTiny's state has "0.m" but no "step" and no "0.v": AdamW's own check says so.
    await assert.rejects(
      loadCheckpoint(path, model, { optimizer: opt }),
      /the optimizer state does not fit the optimizer, \d problem\(s\): "step" must be/,
    );
    await assert.rejects(
      loadCheckpoint(path, model, {
        check: ({ step }) => {
          throw new RangeError(`refused at step ${step}`);
        },
      }),
      /refused at step 5/,
    );
    assert.deepEqual(bits(model), changed);
    assert.notDeepEqual(bits(model), before);
    opt.dispose();
    model.dispose();
  });
});

Deno.test("readOptimizerState: false loads the model and leaves the optimizer state unread", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "tiny.safetensors");
    await saveTiny(path);
    const model = new Tiny();
    model.w.assign(tensor([0, 0, 0]));
    const ck = await loadCheckpoint(path, model, { readOptimizerState: false });
    assert.deepEqual(ck.optimizerState, {});
    assert.deepEqual([...model.w.toTypedArray()], [1.5, 1.5, 1.5]);
    const opt = new AdamW([model.w], { lr: 0.1 });
    await assert.rejects(
      loadCheckpoint(path, model, { optimizer: opt, readOptimizerState: false }),
      /an optimizer to restore needs readOptimizerState/,
    );
    opt.dispose();
    model.dispose();
  });
});
