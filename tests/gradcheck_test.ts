// Every differentiable op's backward against central finite differences.
import assert from "node:assert/strict";
import {
  cat,
  crossEntropy,
  embedding,
  gradcheck,
  layerNorm,
  linear,
  logsumexp,
  manualSeed,
  matmul,
  maximum,
  minimum,
  rand,
  randn,
  stack,
  type Tensor,
  tensor,
  where,
} from "../mod.ts";

manualSeed(7);
const x34 = () => randn([3, 4], { requiresGrad: true });
const pos34 = () => rand([3, 4]).add(0.5).detach();
const leaf = (t: Tensor) => {
  t.requiresGrad = true;
  return t;
};

const cases: [string, () => [(...t: Tensor[]) => Tensor, Tensor[]]][] = [
  [
    "add with broadcasting",
    () => [(a, b) => a.add(b), [x34(), randn([4], { requiresGrad: true })]],
  ],
  [
    "sub with broadcasting",
    () => [(a, b) => a.sub(b), [x34(), randn([3, 1], { requiresGrad: true })]],
  ],
  [
    "mul with broadcasting",
    () => [(a, b) => a.mul(b), [x34(), randn([1, 4], { requiresGrad: true })]],
  ],
  ["div", () => [(a, b) => a.div(b), [x34(), leaf(pos34())]]],
  ["pow by a tensor", () => [(a, b) => a.pow(b), [leaf(pos34()), x34()]]],
  ["pow by a number", () => [(a) => a.pow(3), [x34()]]],
  ["neg", () => [(a) => a.neg(), [x34()]]],
  ["exp", () => [(a) => a.exp(), [x34()]]],
  ["log", () => [(a) => a.log(), [leaf(pos34())]]],
  ["sqrt", () => [(a) => a.sqrt(), [leaf(pos34())]]],
  ["rsqrt", () => [(a) => a.rsqrt(), [leaf(pos34())]]],
  ["abs", () => [(a) => a.abs(), [leaf(pos34().sub(1.0001))]]],
  ["tanh", () => [(a) => a.tanh(), [x34()]]],
  ["sigmoid", () => [(a) => a.sigmoid(), [x34()]]],
  ["relu", () => [(a) => a.relu(), [leaf(pos34().sub(1.0001))]]],
  ["gelu", () => [(a) => a.gelu(), [x34()]]],
  ["silu", () => [(a) => a.silu(), [x34()]]],
  ["maximum", () => [(a, b) => maximum(a, b), [x34(), x34()]]],
  ["minimum", () => [(a, b) => minimum(a, b), [x34(), x34()]]],
  ["where", () => [(a, b) => where(a.gt(0), a, b), [x34(), x34()]]],
  ["maskedFill", () => [(a) => a.maskedFill(a.lt(0), 0.5), [x34()]]],
  ["tril and triu", () => [(a) => a.tril(-1).add(a.triu(2)), [x34()]]],
  ["sum over a dim", () => [(a) => a.sum(1), [x34()]]],
  ["mean over all dims", () => [(a) => a.mean(), [x34()]]],
  ["max over a dim", () => [(a) => a.max(0), [x34()]]],
  ["min over two dims", () => [(a) => a.min([0, 1], true), [x34()]]],
  ["var", () => [(a) => a.var(1), [x34()]]],
  ["logsumexp", () => [(a) => logsumexp(a, 0), [x34()]]],
  ["softmax on the last dim", () => [(a) => a.softmax(-1), [x34()]]],
  ["softmax on the first dim", () => [(a) => a.softmax(0), [x34()]]],
  ["logSoftmax", () => [(a) => a.logSoftmax(-1), [x34()]]],
  ["matmul with batch broadcasting", () => [
    (a, b) => matmul(a, b),
    [randn([2, 1, 3, 4], { requiresGrad: true }), randn([3, 4, 2], { requiresGrad: true })],
  ]],
  [
    "matmul of vectors",
    () => [(a, b) => matmul(a, b), [randn([4], { requiresGrad: true }), x34().transpose(0, 1)]],
  ],
  ["linear on 3-D input", () => [
    (x, w, b) => linear(x, w, b),
    [
      randn([2, 3, 4], { requiresGrad: true }),
      randn([5, 4], { requiresGrad: true }),
      randn([5], { requiresGrad: true }),
    ],
  ]],
  ["layerNorm with affine", () => [
    (x, w, b) => layerNorm(x, [4], w, b),
    [x34(), randn([4], { requiresGrad: true }), randn([4], { requiresGrad: true })],
  ]],
  ["embedding", () => [
    (w) => embedding(tensor([[0, 2], [2, 1]], { dtype: "i32" }), w),
    [randn([3, 4], { requiresGrad: true })],
  ]],
  ["crossEntropy with ignored targets", () => [
    (l) => crossEntropy(l, tensor([1, -100, 3], { dtype: "i32" })),
    [x34()],
  ]],
  [
    "reshape, permute and transpose",
    () => [(a) => a.reshape([2, 6]).transpose(0, 1).permute([1, 0]), [x34()]],
  ],
  ["slice with a step and narrow", () => [(a) => a.slice(1, 0, 4, 2).narrow(0, 1, 2), [x34()]]],
  ["cat and stack", () => [(a, b) => stack([cat([a, b], 0), cat([b, a], 0)], 1), [x34(), x34()]]],
  ["split and chunk", () => [(a) => a.split(3, 1)[0].add(a.chunk(2, 1)[1].sum(1, true)), [x34()]]],
  [
    "expand, squeeze and unsqueeze",
    () => [(a) => a.unsqueeze(0).expand([2, 3, 4]).squeeze(), [x34()]],
  ],
  ["indexSelect", () => [(a) => a.indexSelect(1, tensor([3, 0, 3], { dtype: "i32" })), [x34()]]],
  [
    "gather",
    () => [(a) => a.gather(1, tensor([[0, 1], [3, 3], [2, 0]], { dtype: "i32" })), [x34()]],
  ],
  ["contiguous of a transpose", () => [(a) => a.transpose(0, 1).contiguous(), [x34()]]],
];

for (const [name, make] of cases) {
  Deno.test(`gradcheck passes for ${name}`, () => {
    const [fn, inputs] = make();
    assert.equal(gradcheck(fn, inputs), true);
  });
}

Deno.test("gradcheck rejects a wrong gradient", () => {
  // sigmoid(x) * 1 computed with a detached factor that the gradient misses.
  const x = randn([3], { requiresGrad: true });
  assert.throws(() => gradcheck((a) => a.mul(a.detach()), [x]), /gradcheck: input 0/);
});

Deno.test("gradcheck passes on a small MLP trained a few steps", () => {
  manualSeed(1);
  const w1 = randn([8, 4]).mul(0.5).detach(), b1 = randn([8]).mul(0.1).detach();
  const w2 = randn([3, 8]).mul(0.5).detach(), b2 = randn([3]).mul(0.1).detach();
  const params = [w1, b1, w2, b2];
  for (const p of params) p.requiresGrad = true;
  const x = randn([6, 4]);
  const y = tensor([0, 1, 2, 0, 1, 2], { dtype: "i32" });
  const loss = (w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) =>
    crossEntropy(linear(linear(x, w1, b1).gelu(), w2, b2), y);
  const losses: number[] = [];
  let current = params;
  for (let step = 0; step < 5; step++) {
    const l = loss(...(current as [Tensor, Tensor, Tensor, Tensor]));
    l.backward();
    losses.push(l.item());
    current = current.map((p) => {
      const next = p.sub(p.grad!.mul(0.5)).detach();
      next.requiresGrad = true;
      return next;
    });
  }
  assert.ok(losses[4] < losses[0], `loss should fall: ${losses}`);
  assert.equal(gradcheck(loss, current), true);
});
