/**
 * Every op family, re-exported: the one door through which `Tensor`'s method aliases reach the
 * ops. The ops need `Tensor` and `Tensor`'s methods need the ops; that circle is inherent to
 * method-style tensors, and passing it through this file keeps it the only one.
 * @module
 */

export * from "./attention.ts";
export * from "./batched_linear.ts";
export * from "./creation.ts";
export * from "./elementwise.ts";
export * from "./matmul.ts";
export * from "./movement.ts";
export * from "./nn.ts";
export * from "./reduce.ts";
export * from "./transfer.ts";
