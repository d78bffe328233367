/**
 * Whole computations against PyTorch (tests/fixtures/composed.json): a 2-layer MLP trained with
 * cross-entropy and one causal self-attention block, forward values and every gradient.
 */

import { crossEntropy, layerNorm, linear, ones, type Tensor } from "../mod.ts";
import {
  assertTensorClose,
  assertValuesClose,
  type FixtureNumber,
  type FixtureTensor,
  num,
  readFixture,
  type Tolerance,
  toTensor,
} from "./_fixtures.ts";

interface Composed {
  inputs: Record<string, FixtureTensor>;
  outputs: Record<string, FixtureTensor>;
  loss: FixtureNumber;
  grads: Record<string, FixtureTensor>;
}

const fixture = readFixture<{ mlp: Composed; attention: Composed }>("composed.json");

/** Gradients pass through a dozen ops; allow a little more accumulated f32 rounding. */
const GRAD_TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

/** Builds every input as a tensor; f32 inputs require grad. */
function leaves(c: Composed): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(c.inputs)) {
    out[name] = toTensor(t, { requiresGrad: t.dtype === "f32" });
  }
  return out;
}

function checkLossAndGrads(c: Composed, loss: Tensor, p: Record<string, Tensor>): void {
  assertValuesClose("loss", [loss.item()], [num(c.loss)]);
  loss.backward();
  for (const [name, g] of Object.entries(c.grads)) {
    assertTensorClose(`grad of ${name}`, p[name].grad, g, GRAD_TOL);
  }
}

Deno.test("a 2-layer GELU MLP with cross-entropy matches PyTorch's loss and every gradient", () => {
  const c = fixture.mlp;
  const p = leaves(c);
  const h = linear(p.x, p.w1, p.b1).gelu(); // (6,16)
  const logits = linear(h, p.w2, p.b2); // (6,4)
  assertTensorClose("logits", logits, c.outputs.logits);
  const loss = crossEntropy(logits, p.targets);
  checkLossAndGrads(c, loss, p);
});

Deno.test("a causal self-attention block matches PyTorch's output and every gradient", () => {
  const c = fixture.attention;
  const p = leaves(c);
  const [B, T, C] = p.x.shape;
  const H = 2;
  const D = C / H;
  const h = layerNorm(p.x, [C], p.lnWeight, p.lnBias); // (B,T,C)
  const qkv = linear(h, p.wQkv, p.bQkv); // (B,T,3C)
  const heads = qkv.split(C, 2).map((t) => t.reshape([B, T, H, D]).transpose(1, 2)); // (B,H,T,D)
  const [q, k, v] = heads;
  let att = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(D)); // (B,H,T,T)
  const causal = ones([T, T]).tril(); // (T,T)
  att = att.maskedFill(causal.eq(0), -Infinity).softmax(-1);
  assertTensorClose("attention weights", att, c.outputs.att);
  const y = att.matmul(v).transpose(1, 2).contiguous().reshape([B, T, C]); // (B,T,C)
  const out = p.x.add(linear(y, p.wProj, p.bProj)); // (B,T,C)
  assertTensorClose("block output", out, c.outputs.out);
  const loss = out.mul(out).mean();
  checkLossAndGrads(c, loss, p);
});
