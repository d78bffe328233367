/**
 * denograd: tensors, reverse-mode autograd and a CPU backend (TypeScript + OpenBLAS) for Deno.
 *
 * @example
 * ```ts
 * import { crossEntropy, linear, manualSeed, randn, tensor } from "@denograd/denograd";
 * manualSeed(0);
 * const w = randn([3, 4], { requiresGrad: true });
 * const x = randn([2, 4]);
 * const loss = crossEntropy(linear(x, w), tensor([0, 2], { dtype: "i32" }));
 * loss.backward();
 * console.log(loss.item(), w.grad!.shape); // ~1.1, [3, 4]
 * ```
 * @module
 */

export { type NestedArray, type Operand, Tensor } from "./src/tensor.ts";
export type { DType, TypedArray } from "./src/dtype.ts";
export type {
  Backend,
  BinaryOp,
  Device,
  MatmulOptions,
  ReduceOp,
  UnaryOp,
  View,
} from "./src/backend/backend.ts";
export type { Buffer } from "./src/backend/backend.ts";
export { getBackend } from "./src/backend/registry.ts";
export {
  arange,
  fromArray,
  type FromDataOptions,
  full,
  ones,
  onesLike,
  rand,
  randint,
  randn,
  tensor,
  type TensorOptions,
  zeros,
  zerosLike,
} from "./src/ops/creation.ts";
export {
  abs,
  add,
  cast,
  div,
  eq,
  exp,
  ge,
  gelu,
  gt,
  le,
  log,
  lt,
  maskedFill,
  maximum,
  minimum,
  mul,
  ne,
  neg,
  pow,
  relu,
  rsqrt,
  sigmoid,
  silu,
  sqrt,
  sub,
  tanh,
  tril,
  triu,
  where,
} from "./src/ops/elementwise.ts";
export {
  cat,
  chunk,
  clone,
  contiguous,
  expand,
  flatten,
  gather,
  indexSelect,
  narrow,
  permute,
  reshape,
  slice,
  split,
  squeeze,
  stack,
  transpose,
  unsqueeze,
  view,
} from "./src/ops/movement.ts";
export {
  argmax,
  argmin,
  type Dims,
  logsumexp,
  max,
  mean,
  min,
  sum,
  variance,
  type VarOptions,
} from "./src/ops/reduce.ts";
export { linear, matmul } from "./src/ops/matmul.ts";
export {
  crossEntropy,
  type CrossEntropyOptions,
  dropout,
  embedding,
  layerNorm,
  logSoftmax,
  softmax,
} from "./src/ops/nn.ts";
export { isGradEnabled, noGrad } from "./src/autograd.ts";
export { gradcheck, type GradcheckOptions } from "./src/gradcheck.ts";
export { keep, type MemoryStats, memoryStats, tidy, type Tracked } from "./src/memory.ts";
export { getRngState, manualSeed, type RngState, setRngState } from "./src/random.ts";
