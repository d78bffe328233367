// RoPE (with linear / NTK / YaRN scaling) and ALiBi against the PyTorch references of
// tests/fixtures/make_positions_fixture.py, and RoPE's relative-position property.
import assert from "node:assert/strict";
import {
  alibiSlopes,
  applyRope,
  naiveAttention,
  noGrad,
  randn,
  ropeFrequencies,
  type RopeScaling,
  scaledDotProductAttention,
  tensor,
} from "../mod.ts";
import { ropeTables } from "../src/nn/rope.ts";
import { type FixtureTensor, num, readFixture, toTensor } from "./_fixtures.ts";

interface RopeCase {
  name: string;
  theta: number;
  scaling: RopeScaling;
  inv_freq: FixtureTensor;
  mscale: number;
  cos: FixtureTensor;
  sin: FixtureTensor;
  q_rot: FixtureTensor;
  k_rot: FixtureTensor;
}
interface AlibiCase {
  n_head: number;
  slopes: FixtureTensor;
  t: number;
  s: number;
  q_offset: number;
  bias: FixtureTensor;
}
const fx = readFixture<{
  q: FixtureTensor;
  k: FixtureTensor;
  start: number;
  rope: RopeCase[];
  alibi: AlibiCase[];
}>("positions.json");

function assertClose(
  actual: ArrayLike<number>,
  expected: FixtureTensor,
  tol: number,
  what: string,
) {
  assert.equal(actual.length, expected.data.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const e = num(expected.data[i]);
    assert.ok(
      Math.abs(actual[i] - e) <= tol * (1 + Math.abs(e)),
      `${what}[${i}]: ${actual[i]} vs ${e}`,
    );
  }
}

for (const c of fx.rope) {
  Deno.test(`RoPE "${c.name}" frequencies and cos/sin tables match the PyTorch reference`, () => {
    const config = { theta: c.theta, scaling: c.scaling };
    const d = fx.q.shape[3];
    const { invFreq, mscale } = ropeFrequencies(d, config);
    assertClose(invFreq, c.inv_freq, 1e-12, "invFreq");
    assert.ok(Math.abs(mscale - c.mscale) < 1e-12, `mscale ${mscale} vs ${c.mscale}`);
    const n = c.cos.shape[0];
    const { cos, sin } = ropeTables(d, config, 0, n, "cpu"); // (n, D/2)
    assertClose(cos.toTypedArray(), c.cos, 1e-6, "cos");
    assertClose(sin.toTypedArray(), c.sin, 1e-6, "sin");
    cos.dispose();
    sin.dispose();
  });

  Deno.test(`applyRope "${c.name}" rotates q and k at their positions like PyTorch`, () => {
    const config = { theta: c.theta, scaling: c.scaling };
    const q = toTensor(fx.q), k = toTensor(fx.k);
    assertClose(applyRope(q, fx.start, config).toTypedArray(), c.q_rot, 1e-5, "q_rot");
    // A strided view (as attention passes it): keys transposed in and out.
    const kt = k.transpose(1, 2).contiguous().transpose(1, 2);
    assertClose(applyRope(kt, fx.start, config).toTypedArray(), c.k_rot, 1e-5, "k_rot");
  });
}

Deno.test("RoPE scores depend only on the distance between query and key positions", () => {
  const q = randn([1, 1, 1, 32]), k = randn([1, 1, 1, 32]);
  const score = (m: number, n: number, scaling?: RopeScaling): number =>
    noGrad(() => {
      const qm = applyRope(q, m, { scaling }).toTypedArray() as Float32Array;
      const kn = applyRope(k, n, { scaling }).toTypedArray() as Float32Array;
      return qm.reduce((s, v, i) => s + v * kn[i], 0);
    });
  const scalings: (RopeScaling | undefined)[] = [
    undefined,
    { type: "ntk", factor: 4 },
    { type: "yarn", factor: 4, originalContext: 64 },
  ];
  for (const scaling of scalings) {
    for (const dist of [0, 3, 17]) {
      const ref = score(dist, 0, scaling);
      for (const shift of [1, 250, 3000]) {
        const s = score(shift + dist, shift, scaling);
        assert.ok(
          Math.abs(s - ref) < 1e-3 * (1 + Math.abs(ref)),
          `d=${dist} +${shift}: ${s} vs ${ref}`,
        );
      }
    }
    // ...and does depend on the distance.
    assert.ok(Math.abs(score(5, 0, scaling) - score(6, 0, scaling)) > 1e-4);
  }
});

Deno.test("RoPE tables grow on demand and agree with the smaller table they replace", () => {
  const scaling: RopeScaling = { type: "linear", factor: 3 };
  const small = ropeTables(8, { scaling }, 10, 5, "cpu");
  const before = Array.from(small.cos.toTypedArray());
  small.cos.dispose();
  small.sin.dispose();
  const big = ropeTables(8, { scaling }, 5000, 5, "cpu"); // forces a rebuild past 256
  const again = ropeTables(8, { scaling }, 10, 5, "cpu");
  assert.deepEqual(Array.from(again.cos.toTypedArray()), before);
  for (const t of [big.cos, big.sin, again.cos, again.sin]) t.dispose();
});

for (const c of fx.alibi) {
  Deno.test(`ALiBi slopes for ${c.n_head} heads and the op's bias match the paper's reference`, () => {
    const slopes = alibiSlopes(c.n_head);
    assertClose(slopes, c.slopes, 1e-7, "slopes");
    // The fused op with slopes equals the naive path with the reference (H, T, S) bias.
    const D = 8;
    const q = randn([1, c.n_head, c.t, D]), k = randn([1, c.n_head, c.s, D]);
    const v = randn([1, c.n_head, c.s, D]);
    const opts = { causal: false, qOffset: c.q_offset };
    const bias = toTensor(c.bias).view([1, c.n_head, c.t, c.s]);
    const withSlopes = scaledDotProductAttention(q, k, v, {
      ...opts,
      alibiSlopes: tensor(slopes, { shape: [c.n_head] }),
    }).toTypedArray();
    const withBias = naiveAttention(q, k, v, { ...opts, bias }).toTypedArray();
    withSlopes.forEach((x, i) => assert.ok(Math.abs(x - withBias[i]) < 1e-5, `element ${i}`));
  });
}

Deno.test("position helpers reject bad arguments with clear errors", () => {
  assert.throws(() => ropeFrequencies(7), /headDim must be an even integer >= 2, got 7/);
  assert.throws(() => ropeFrequencies(8, { theta: 1 }), /theta must be a finite number > 1/);
  assert.throws(
    () => ropeFrequencies(8, { scaling: { type: "linear", factor: 0.5 } }),
    /ropeScaling.factor must be a finite number >= 1, got 0.5/,
  );
  assert.throws(
    () => ropeFrequencies(8, { scaling: { type: "yarn", factor: 2 } as unknown as RopeScaling }),
    /originalContext must be a positive integer, got undefined/,
  );
  assert.throws(
    () => ropeFrequencies(8, { scaling: { type: "cubic" } as unknown as RopeScaling }),
    /ropeScaling.type must be "none", "linear", "ntk" or "yarn", got cubic/,
  );
  assert.throws(() => applyRope(randn([2, 3, 5]), 0), /x must be \(B, H, T, D\) with D even/);
  assert.throws(() => applyRope(randn([1, 1, 2, 4]), -1), /start must be a non-negative integer/);
  assert.throws(() => alibiSlopes(0), /nHead must be a positive integer, got 0/);
});
