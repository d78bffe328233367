// The CPU backend's optimizer-step kernels (sgdStep, adamStep, adamwStep) check their views.
import assert from "node:assert/strict";
import { CpuBackend } from "../src/backend/cpu/mod.ts";

const be = new CpuBackend();
/** A contiguous f32 view of `n` fresh elements. */
const view = (n: number) => ({
  buffer: be.alloc(4 * n),
  dtype: "f32" as const,
  shape: [n],
  strides: [1],
  offset: 0,
});

Deno.test("the CPU sgdStep and adamStep kernels check their views", () => {
  const o = {
    lr: 1,
    momentum: 0.9,
    dampening: 0,
    weightDecay: 0,
    nesterov: false,
    firstStep: true,
  };
  assert.throws(
    () => be.sgdStep(view(4), view(4), null, o),
    /sgdStep: momentumBuf is required when momentum is 0.9/,
  );
  assert.throws(
    () => be.sgdStep(view(4), view(4), view(4), { ...o, momentum: 0 }),
    /momentumBuf must be null when momentum is 0/,
  );
  assert.throws(
    () => be.sgdStep(view(4), view(4), view(2), o),
    /sgdStep: momentumBuf has 2 elements, param has 4/,
  );
  const a = { lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
  assert.throws(
    () => be.adamStep(view(4), view(3), view(4), view(4), a),
    /adamStep: grad has 3 elements, param has 4/,
  );
});

Deno.test("the CPU adamwStep kernel refuses views of different sizes", () => {
  const o = { lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
  assert.throws(
    () => be.adamwStep(view(4), view(4), view(3), view(4), o),
    /m has 3 elements, param has 4/,
  );
});
