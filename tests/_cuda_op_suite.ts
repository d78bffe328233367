// The fixture op suite on another device against the CPU backend: every case of
// tests/fixtures/ops_*.json (the calls of tests/ops_fixtures_test.ts) run on both, outputs and
// input gradients compared at the fixture's tolerance. Used by tests/cuda_gpu_test.ts on a GPU
// and tests/cuda_emu_backend_test.ts on the emulated device; also the GPT-2 twins both compare.
import { tidy } from "../src/memory.ts";
import type { Tensor } from "../src/tensor.ts";
import { GPT2 } from "../src/models/gpt2/model.ts";
import { gpt2Config } from "../src/models/gpt2/config.ts";
import { manualSeed } from "../src/random.ts";
import { randint } from "../src/ops/creation.ts";
import { OPS } from "./_fixture_ops.ts";
import {
  F32_TOL,
  type FixtureInput,
  type FixtureTensor,
  loadOpCases,
  type OpCase,
  type Tolerance,
  toTensor,
} from "./_fixtures.ts";

function close(a: number, e: number, tol: Tolerance): boolean {
  if (Number.isNaN(e)) return Number.isNaN(a);
  if (!Number.isFinite(e)) return a === e;
  return Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e);
}

/** The first mismatch between two value lists, or null when they agree within `tol`. */
export function mismatch(
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
): string | null {
  if (got.length !== want.length) return `${what}: ${got.length} values, expected ${want.length}`;
  let bad = 0, first = -1;
  for (let i = 0; i < want.length; i++) {
    if (!close(got[i], want[i], tol)) {
      if (first < 0) first = i;
      bad++;
    }
  }
  return first < 0 ? null : `${what}: ${bad}/${want.length} differ; first at ${first}: ` +
    `cuda ${got[first]}, cpu ${want[first]} (atol ${tol.atol}, rtol ${tol.rtol})`;
}

// ---- the op suite: every fixture case on CUDA and on the CPU, values and gradients ----

/** A fixture input built on `device`: the storage leaf and the (maybe strided) view of it. */
function inputOn(inp: FixtureInput, device: string): { leaf: Tensor; view: Tensor } {
  const shape = inp.layout === "contiguous" ? inp.shape : inp.storage_shape!;
  const host = toTensor(inp, { shape });
  const leaf = device === "cpu" ? host : host.to(device);
  if (leaf !== host) host.dispose();
  if (inp.grad) leaf.requiresGrad = true;
  switch (inp.layout) {
    case "contiguous":
      return { leaf, view: leaf };
    case "transposed":
      return { leaf, view: leaf.transpose(-1, -2) };
    case "permuted":
      return { leaf, view: leaf.permute(inp.perm!) };
    case "sliced": {
      const s = inp.slice!;
      const view = leaf.slice(s.dim, s.start ?? undefined, s.end ?? undefined, s.step ?? undefined);
      return { leaf, view };
    }
    case "expanded":
      return { leaf, view: leaf.expand(inp.shape) };
  }
}

/** Runs a case on `device`: its outputs and input gradients as host arrays. */
function runOn(c: OpCase, device: string): (ArrayLike<number> | null)[] {
  const built = c.inputs.map((i) => inputOn(i, device));
  const result = OPS[c.op](built.map((b) => b.view), c.args);
  const outs = Array.isArray(result) ? result : [result];
  const values: (ArrayLike<number> | null)[] = outs.map((o) => o.toTypedArray());
  const ups = c.upstreams ?? (c.upstream ? [c.upstream] : []);
  if (ups.length > 0) {
    tidy(() => {
      const up = (t: FixtureTensor) => {
        const h = toTensor(t);
        return device === "cpu" ? h : h.to(device);
      };
      // d/dx sum_i <out_i, up_i>: the same gradient as seeding each output with up_i.
      let loss = outs[0].mul(up(ups[0])).sum();
      for (let i = 1; i < outs.length; i++) loss = loss.add(outs[i].mul(up(ups[i])).sum());
      loss.backward();
    });
    for (const b of built) values.push(b.leaf.grad ? b.leaf.grad.toTypedArray() : null);
  }
  for (const o of outs) o.dispose();
  for (const b of built) {
    b.view.dispose();
    b.leaf.zeroGrad();
    b.leaf.dispose();
  }
  return values;
}

/**
 * Runs every case of a fixture file on the CPU and on `device`; returns what differs (values and
 * gradients, each case at its fixture tolerance) and how many cases ran.
 */
export function opSuiteFailures(
  file: string,
  device: string,
): { failures: string[]; cases: number } {
  const failures: string[] = [];
  const cases = loadOpCases(file);
  for (const c of cases) {
    try {
      const want = runOn(c, "cpu");
      const got = runOn(c, device);
      const tol = c.tol ?? F32_TOL;
      want.forEach((w, i) => {
        const what = `${c.name}: ${i < want.length - c.inputs.length ? "output" : "grad"} ${i}`;
        if ((w === null) !== (got[i] === null)) failures.push(`${what}: presence differs`);
        else if (w !== null) {
          const m = mismatch(what, got[i]!, w, tol);
          if (m) failures.push(m);
        }
      });
    } catch (err) {
      failures.push(`${c.name}: ${(err as Error).stack ?? err}`);
    }
  }
  return { failures, cases: cases.length };
}

// ---- GPT-2 on two devices: the same init and batch on the CPU and on `device` ----

export const CONFIG = gpt2Config("small-test");
export const B = 2, T = 8;

export function twins(): [GPT2, GPT2] {
  manualSeed(11);
  const cpu = new GPT2(CONFIG);
  manualSeed(11); // the seeded generator draws the same init on either device
  const gpu = new GPT2(CONFIG, { device: "cuda" });
  return [cpu, gpu];
}

export function batch(device: string): [Tensor, Tensor] {
  manualSeed(5);
  const idx = randint(0, CONFIG.vocabSize, [B, T]);
  const targets = randint(0, CONFIG.vocabSize, [B, T]);
  if (device === "cpu") return [idx, targets];
  const moved: [Tensor, Tensor] = [idx.to(device), targets.to(device)];
  idx.dispose();
  targets.dispose();
  return moved;
}
