// Learning-rate schedules against hand-worked values: constantLr, linearLr, cosineLr, warmupLr,
// sequenceLr, warmupCosine and warmupStableDecay, and their errors.
import assert from "node:assert/strict";
import {
  constantLr,
  cosineLr,
  linearLr,
  sequenceLr,
  warmupCosine,
  warmupLr,
  warmupStableDecay,
} from "../mod.ts";
import { close } from "./_optim_helpers.ts";

Deno.test("constantLr, linearLr, cosineLr and warmupLr give the hand-worked values", () => {
  assert.deepEqual([0, 5, 1e6].map(constantLr(0.1)), [0.1, 0.1, 0.1]);
  const lin = linearLr({ from: 1e-3, to: 1e-4, steps: 9 });
  [[0, 1e-3], [3, 7e-4], [9, 1e-4], [20, 1e-4]].forEach(([s, v]) =>
    close(lin(s), v, `linear(${s})`)
  );
  assert.deepEqual([0, 1, 2].map(linearLr({ from: 0, to: 2, steps: 2 })), [0, 1, 2]); // warm-up shaped too
  const cos = cosineLr({ from: 1, to: 0, steps: 4 });
  [[0, 1], [1, (1 + Math.SQRT1_2) / 2], [2, 0.5], [3, (1 - Math.SQRT1_2) / 2], [4, 0], [7, 0]]
    .forEach(([s, v]) => close(cos(s), v, `cosine(${s})`));
  assert.equal(cosineLr({ from: 1, to: 0.5, steps: 0 })(0), 0.5);
  const warm = warmupLr({ lr: 6e-4, steps: 3 });
  [[0, 2e-4], [1, 4e-4], [2, 6e-4], [3, 6e-4], [100, 6e-4]].forEach(([s, v]) =>
    close(warm(s), v, `warmup(${s})`)
  );
  assert.equal(warmupLr({ lr: 1, steps: 0 })(0), 1);
});

Deno.test("warmupCosine warms up linearly, then decays along a cosine to minLr and stays", () => {
  const lr = warmupCosine({ maxLr: 1e-3, minLr: 1e-4, warmup: 10, totalSteps: 110 });
  close(lr(0), 1e-4);
  close(lr(4), 5e-4);
  close(lr(9), 1e-3);
  close(lr(10), 1e-3);
  close(lr(60), 5.5e-4); // half way: the mean of max and min
  close(lr(35), 1e-4 + 9e-4 * 0.5 * (1 + Math.cos(Math.PI / 4)));
  close(lr(110), 1e-4);
  close(lr(500), 1e-4);
  const noWarmup = warmupCosine({ maxLr: 2, totalSteps: 4 });
  assert.deepEqual([0, 2, 4].map(noWarmup), [2, 1.1, 0.2]); // minLr defaults to maxLr / 10
  assert.throws(() => warmupCosine({ maxLr: 1, minLr: 2, totalSteps: 5 }), /minLr must be in/);
  assert.throws(() => warmupCosine({ maxLr: 1, warmup: 6, totalSteps: 5 }), /totalSteps must be/);
  assert.throws(() => lr(-1), /step must be an integer >= 0/);
});

Deno.test("sequenceLr runs phases on local steps, and warmupCosine is warmup then cosine", () => {
  const lr = sequenceLr([
    { schedule: warmupLr({ lr: 1, steps: 2 }), steps: 2 },
    { schedule: constantLr(1), steps: 3 },
    { schedule: linearLr({ from: 1, to: 0.2, steps: 4 }) },
  ]);
  assert.deepEqual([0, 1, 2, 4, 5, 6, 7, 9, 50].map((s) => Number(lr(s).toFixed(12))), [
    0.5,
    1,
    1,
    1,
    1,
    0.8,
    0.6,
    0.2,
    0.2,
  ]);
  const composed = sequenceLr([
    { schedule: warmupLr({ lr: 1e-3, steps: 10 }), steps: 10 },
    { schedule: cosineLr({ from: 1e-3, to: 1e-4, steps: 100 }) },
  ]);
  const wc = warmupCosine({ maxLr: 1e-3, minLr: 1e-4, warmup: 10, totalSteps: 110 });
  for (const s of [0, 5, 9, 10, 11, 60, 109, 110, 200]) {
    assert.equal(wc(s), composed(s), `step ${s}`);
  }
  close(wc(60), 5.5e-4);
  assert.throws(() => sequenceLr([]), /sequenceLr: expected a non-empty array of phases/);
  assert.throws(
    () => sequenceLr([{ schedule: constantLr(1) }, { schedule: constantLr(2) }]),
    /sequenceLr: phases\[0\].steps must be an integer >= 0, got undefined/,
  );
  assert.throws(() => sequenceLr([{ schedule: 3 as never }]), /phase 0 has no schedule function/);
});

Deno.test("warmupStableDecay warms up, holds, then decays (linear, cosine, 1-sqrt) to minLr", () => {
  const base = { maxLr: 1, minLr: 0.1, warmup: 2, decaySteps: 4, totalSteps: 12 };
  const linear = warmupStableDecay(base);
  // warmup: steps 0-1; stable: 2-7; decay: 8-12 (minLr at totalSteps) and after.
  const expected = [0.5, 1, 1, 1, 1, 1, 1, 1, 1, 0.775, 0.55, 0.325, 0.1, 0.1, 0.1];
  expected.forEach((v, s) => close(linear(s), v, `linear(${s})`));
  const cosine = warmupStableDecay({ ...base, decayShape: "cosine" });
  close(cosine(10), 0.55, "cosine midpoint");
  close(cosine(9), 0.1 + 0.9 * (1 + Math.SQRT1_2) / 2, "cosine(9)");
  const sqrt = warmupStableDecay({ ...base, decayShape: "sqrt" });
  close(sqrt(9), 0.1 + 0.9 * (1 - 0.5), "sqrt(9)"); // r = 1/4
  close(sqrt(12), 0.1);
  const noDecay = warmupStableDecay({ maxLr: 3, minLr: 1, decaySteps: 0, totalSteps: 5 });
  assert.deepEqual([0, 4, 5, 9].map(noDecay), [3, 3, 1, 1]); // minLr from totalSteps on
});

Deno.test("schedules reject bad options and steps, naming the function", () => {
  assert.throws(() => constantLr(-1), /constantLr: lr must be a finite number >= 0, got -1/);
  assert.throws(
    () => linearLr({ from: 1, to: NaN, steps: 3 }),
    /linearLr: to must be a finite number >= 0, got NaN/,
  );
  assert.throws(
    () => cosineLr({ from: 1, to: 0, steps: 2.5 }),
    /cosineLr: steps must be an integer >= 0, got 2.5/,
  );
  assert.throws(
    () => warmupLr({ lr: 1, steps: -1 }),
    /warmupLr: steps must be an integer >= 0, got -1/,
  );
  assert.throws(
    () => warmupStableDecay({ maxLr: 1, minLr: 2, decaySteps: 1, totalSteps: 5 }),
    /warmupStableDecay: minLr must be in \[0, maxLr=1\], got 2/,
  );
  assert.throws(
    () => warmupStableDecay({ maxLr: 1, warmup: 3, decaySteps: 3, totalSteps: 5 }),
    /totalSteps must be an integer >= warmup \+ decaySteps \(6\), got 5/,
  );
  assert.throws(
    () => warmupStableDecay({ maxLr: 1, decaySteps: 1, totalSteps: 5, decayShape: "exp" as never }),
    /decayShape must be "linear", "cosine" or "sqrt", got exp/,
  );
  assert.throws(
    () => cosineLr({ from: 1, to: 0, steps: 3 })(-1),
    /cosineLr: step must be an integer >= 0, got -1/,
  );
  assert.throws(
    () => warmupStableDecay({ maxLr: 1, decaySteps: 1, totalSteps: 5 })(0.5),
    /warmupStableDecay: step must be an integer >= 0, got 0.5/,
  );
});
