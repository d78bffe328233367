// How each fixture op (tests/fixtures/ops_*.json) is called in denograd: shared by the PyTorch
// fixture suite (tests/ops_fixtures_test.ts) and the suite that runs the same cases on another
// device (tests/_cuda_op_suite.ts). Imports src/ only, never mod.ts: the GPU tests must not pull in
// the tokenizer's npm package.
import { cat, stack } from "../src/ops/movement.ts";
import { crossEntropy, embedding, layerNorm } from "../src/ops/nn.ts";
import { linear } from "../src/ops/matmul.ts";
import { where } from "../src/ops/elementwise.ts";
import type { Tensor } from "../src/tensor.ts";
import { num } from "./_fixtures.ts";

// deno-lint-ignore no-explicit-any
export type Args = Record<string, any>;
export type OpFn = (x: Tensor[], args: Args) => Tensor | Tensor[];

/** `a.op(b)`, or `a.op(args.scalar)` for the cases with a number operand. */
function binary(op: (a: Tensor, b: Tensor | number) => Tensor): OpFn {
  return ([a, b], args) => op(a, args.scalar ?? b);
}

/** A reduction's dim: null in the fixture means all dims (undefined here). */
function dimArg(args: Args): number | number[] | undefined {
  return args.dim ?? undefined;
}

/** How each fixture op is called in denograd. */
export const OPS: Record<string, OpFn> = {
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
