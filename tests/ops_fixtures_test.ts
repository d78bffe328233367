/**
 * Every op against PyTorch: forward values and the gradient of every input, one test per case of
 * tests/fixtures/ops_*.json (written by tests/fixtures/make_fixtures.py).
 */

import assert from "node:assert/strict";
import {
  cat,
  crossEntropy,
  embedding,
  layerNorm,
  linear,
  memoryStats,
  stack,
  type Tensor,
  tensor,
  tidy,
  where,
} from "../mod.ts";
import {
  assertTensorClose,
  buildInput,
  F32_TOL,
  type FixtureTensor,
  loadOpCases,
  num,
  type OpCase,
  type Tolerance,
  toTensor,
} from "./_fixtures.ts";

// deno-lint-ignore no-explicit-any
type Args = Record<string, any>;
type OpFn = (x: Tensor[], args: Args) => Tensor | Tensor[];

/** `a.op(b)`, or `a.op(args.scalar)` for the cases with a number operand. */
function binary(op: (a: Tensor, b: Tensor | number) => Tensor): OpFn {
  return ([a, b], args) => op(a, args.scalar ?? b);
}

/** A reduction's dim: null in the fixture means all dims (undefined here). */
function dimArg(args: Args): number | number[] | undefined {
  return args.dim ?? undefined;
}

/** How each fixture op is called in denograd. */
const OPS: Record<string, OpFn> = {
  add: binary((a, b) => a.add(b)),
  sub: binary((a, b) => a.sub(b)),
  mul: binary((a, b) => a.mul(b)),
  div: binary((a, b) => a.div(b)),
  pow: binary((a, b) => a.pow(b)),
  maximum: binary((a, b) => a.maximum(b)),
  minimum: binary((a, b) => a.minimum(b)),
  eq: binary((a, b) => a.eq(b)),
  ne: binary((a, b) => a.ne(b)),
  lt: binary((a, b) => a.lt(b)),
  le: binary((a, b) => a.le(b)),
  gt: binary((a, b) => a.gt(b)),
  ge: binary((a, b) => a.ge(b)),
  neg: ([x]) => x.neg(),
  exp: ([x]) => x.exp(),
  log: ([x]) => x.log(),
  sqrt: ([x]) => x.sqrt(),
  rsqrt: ([x]) => x.rsqrt(),
  abs: ([x]) => x.abs(),
  tanh: ([x]) => x.tanh(),
  sigmoid: ([x]) => x.sigmoid(),
  relu: ([x]) => x.relu(),
  gelu: ([x]) => x.gelu(),
  silu: ([x]) => x.silu(),
  where: ([c, a, b], args) => where(c, a, args.scalarB ?? b),
  maskedFill: ([x, mask], args) => x.maskedFill(mask, num(args.value)),
  tril: ([x], args) => x.tril(args.k),
  triu: ([x], args) => x.triu(args.k),

  sum: ([x], args) => x.sum(dimArg(args), args.keepdim),
  mean: ([x], args) => x.mean(dimArg(args), args.keepdim),
  max: ([x], args) => x.max(dimArg(args), args.keepdim),
  min: ([x], args) => x.min(dimArg(args), args.keepdim),
  argmax: ([x], args) => x.argmax(args.dim ?? undefined, args.keepdim),
  var: ([x], args) => x.var(dimArg(args), { correction: args.correction, keepdim: args.keepdim }),
  softmax: ([x], args) => x.softmax(args.dim),
  logSoftmax: ([x], args) => x.logSoftmax(args.dim),
  logsumexp: ([x], args) => x.logsumexp(args.dim, args.keepdim),

  matmul: ([a, b]) => a.matmul(b),
  embedding: ([ids, w]) => embedding(ids, w),
  layerNorm: ([x, w, b], args) => layerNorm(x, args.normalizedShape, w, b, args.eps),
  crossEntropy: ([logits, targets], args) =>
    crossEntropy(logits, targets, { ignoreIndex: args.ignoreIndex, reduction: args.reduction }),
  linear: ([x, w, b]) => linear(x, w, b),

  reshape: ([x], args) => x.reshape(args.shape),
  view: ([x], args) => x.view(args.shape),
  transpose: ([x], args) => x.transpose(args.d0, args.d1),
  permute: ([x], args) => x.permute(args.dims),
  narrow: ([x], args) => x.narrow(args.dim, args.start, args.length),
  slice: ([x], args) =>
    x.slice(args.dim, args.start ?? undefined, args.end ?? undefined, args.step ?? undefined),
  cat: (xs, args) => cat(xs, args.dim),
  stack: (xs, args) => stack(xs, args.dim),
  split: ([x], args) => x.split(args.sizes, args.dim),
  chunk: ([x], args) => x.chunk(args.chunks, args.dim),
  expand: ([x], args) => x.expand(args.shape),
  squeeze: ([x], args) => x.squeeze(args.dim),
  unsqueeze: ([x], args) => x.unsqueeze(args.dim),
  indexSelect: ([x, index], args) => x.indexSelect(args.dim, index),
  gather: ([x, index], args) => x.gather(args.dim, index),
  contiguous: ([x]) => x.contiguous(),
};

/** Seeds backward with the fixture's upstream gradient(s); frees what it creates. */
function backward(outs: Tensor[], ups: FixtureTensor[]): void {
  if (outs.length === 1) {
    const up = toTensor(ups[0]);
    outs[0].backward(up);
    up.dispose();
    return;
  }
  // Several outputs (split, chunk): d/dx sum_i <out_i, up_i> is what PyTorch's fixture holds.
  tidy(() => {
    let loss: Tensor = tensor(0);
    for (let i = 0; i < outs.length; i++) loss = loss.add(outs[i].mul(toTensor(ups[i])).sum());
    loss.backward();
  });
}

/**
 * Runs one case, then disposes every tensor it made (inputs, views, outputs, gradients) and checks
 * that nothing the library allocated internally is left alive: no tidy() here, so a forgotten
 * temporary in any forward or backward shows up as a leak.
 */
function runCase(c: OpCase): void {
  const fn = OPS[c.op];
  assert.ok(fn, `no denograd call for fixture op "${c.op}"`);
  const before = memoryStats();
  const built = c.inputs.map(buildInput);
  const result = fn(built.map((b) => b.view), c.args);
  const outs = Array.isArray(result) ? result : [result];
  const expected = c.outputs ?? [c.output!];
  const tol: Tolerance = c.tol ?? F32_TOL;
  assert.equal(outs.length, expected.length, `${c.name}: number of outputs`);
  outs.forEach((o, i) => {
    const what = expected.length > 1 ? `output ${i}` : "output";
    assertTensorClose(`${c.name}: ${what}`, o, expected[i], tol);
  });

  const ups = c.upstreams ?? (c.upstream ? [c.upstream] : []);
  if (ups.length > 0) {
    backward(outs, ups);
    c.grads!.forEach((g, i) => {
      if (g === null) return;
      assertTensorClose(`${c.name}: grad of input ${i}`, built[i].leaf.grad, g, tol);
    });
  }

  for (const t of outs) t.dispose();
  for (const b of built) {
    b.view.dispose();
    b.leaf.zeroGrad();
    b.leaf.dispose();
  }
  const after = memoryStats();
  assert.equal(after.liveTensors, before.liveTensors, `${c.name}: tensors left alive`);
  assert.equal(after.liveBytes, before.liveBytes, `${c.name}: bytes left alive`);
}

for (
  const file of ["ops_elementwise.json", "ops_reduce.json", "ops_nn.json", "ops_movement.json"]
) {
  for (const c of loadOpCases(file)) {
    Deno.test(`${c.name} (as in PyTorch)`, () => runCase(c));
  }
}
