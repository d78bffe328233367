/**
 * The CUDA kernel wrappers: one function per Backend kernel method, with the Backend method's
 * parameters after a leading {@linkcode KernelLauncher}. Each validates the dtypes and shapes its
 * kernels support (TypeError/RangeError naming the method), picks the kernel and its launch
 * geometry, and packs the arguments exactly as the PTX `.entry` declares them
 * (tests/cuda_kernels_test.ts checks every launch against the PTX).
 * @module
 */

export { binary, fill, unary, where } from "./elementwise.ts";
export { reduce } from "./reduce.ts";
export { embeddingBackward, embeddingForward, gather, scatterAdd } from "./indexing.ts";
export {
  crossEntropyBackward,
  crossEntropyForward,
  layerNormBackward,
  layerNormForward,
  softmaxBackward,
  softmaxForward,
} from "./nn.ts";
export { adamStep, adamwStep, sgdStep } from "./optim.ts";
export { attentionBackward, attentionForward } from "./attention.ts";
