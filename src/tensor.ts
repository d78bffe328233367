/**
 * Tensor: a strided view onto reference-counted device storage, plus its place on the tape.
 * Ops live in `src/ops`; the methods here are thin aliases so `x.matmul(w).add(b)` reads well.
 * @module
 */

import type { Backend, Device, View } from "./backend/backend.ts";
import { type DType, dtypeBytes, type TypedArray } from "./dtype.ts";
import { accumulate, type GradNode, releaseNode, runBackward } from "./autograd.ts";
import { Storage, track, untrack } from "./memory.ts";
import { contiguousStrides, fmt, isContiguous, numel } from "./_shape.ts";
import * as ops from "./ops/mod.ts";

/** Nested arrays of numbers, as `toArray()` returns and `tensor()` accepts. */
export type NestedArray = number | NestedArray[];

/** A right-hand operand: a tensor, or a number broadcast as a scalar. */
export type Operand = Tensor | number;

/**
 * An n-dimensional array of f32, i32 or bf16 on a device, with reverse-mode autograd.
 * Create tensors with {@linkcode tensor}, {@linkcode zeros}, {@linkcode randn} and friends.
 *
 * @example
 * ```ts
 * import { tensor } from "@denograd/denograd";
 * const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
 * const y = x.mul(x).sum();
 * y.backward();
 * console.log(x.grad!.toArray()); // [[2, 4], [6, 8]]
 * ```
 */
export class Tensor {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element strides of each dim in storage. */
  readonly strides: readonly number[];
  /** Element offset of the first element in storage. */
  readonly offset: number;
  /** Element type. */
  readonly dtype: DType;
  /** @internal the shared storage */
  readonly storage: Storage;
  /** Gradient accumulated by `backward()` (leaf tensors only). */
  grad: Tensor | null = null;
  /** Set by {@linkcode keep}: no tidy scope disposes this tensor. */
  kept = false;
  #requiresGrad = false;
  #node: GradNode | null = null;
  #disposeRequested = false;
  #released = false;
  #graphRefs = 0;
  #graphFreed = false;

  /** @internal Use the creation functions; this wraps storage the caller already retained. */
  constructor(
    storage: Storage,
    shape: readonly number[],
    dtype: DType,
    strides: readonly number[] = contiguousStrides(shape),
    offset = 0,
  ) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.offset = offset;
    this.dtype = dtype;
    track(this, storage);
  }

  /** A new contiguous tensor on `backend` whose contents are unspecified until written. */
  static empty(shape: readonly number[], dtype: DType, backend: Backend): Tensor {
    const buf = backend.alloc(Math.max(numel(shape), 1) * dtypeBytes(dtype));
    return new Tensor(new Storage(backend, buf), shape, dtype);
  }

  /** The backend holding the storage. */
  get backend(): Backend {
    return this.storage.backend;
  }
  /** Device name, e.g. "cpu". */
  get device(): Device {
    return this.storage.backend.device;
  }
  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }
  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }
  /** Whether this tensor's memory has been given back (dispose() and no graph still needs it). */
  get disposed(): boolean {
    return this.#released;
  }
  /** Whether elements are laid out row-major without gaps. */
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  /** Whether gradients flow to (leaf) or through (op output) this tensor. */
  get requiresGrad(): boolean {
    return this.#requiresGrad || this.#node !== null;
  }
  set requiresGrad(value: boolean) {
    if (this.#node) throw new TypeError("requiresGrad: only leaf tensors can change requiresGrad");
    if (value && this.dtype !== "f32") {
      throw new TypeError(
        `requiresGrad: only f32 tensors can require gradients, got ${this.dtype}`,
      );
    }
    this.#requiresGrad = value;
  }
  /** True for tensors not produced by a recorded op. */
  get isLeaf(): boolean {
    return this.#node === null;
  }
  /** @internal the tape node that produced this tensor */
  get _node(): GradNode | null {
    return this.#node;
  }
  /** @internal */
  _setNode(node: GradNode | null): void {
    if (this.#node && !node) this.#graphFreed = true;
    this.#node = node;
  }

  /** @internal The backend view of this tensor; throws if disposed. */
  _view(op = "tensor"): View {
    if (this.#released) throw new Error(`${op}: tensor of shape ${fmt(this.shape)} was disposed`);
    return {
      buffer: this.storage.buffer,
      dtype: this.dtype,
      shape: this.shape,
      strides: this.strides,
      offset: this.offset,
    };
  }

  /** @internal A new tensor object over the same storage (no copy, no graph). */
  alias(
    shape: readonly number[] = this.shape,
    strides: readonly number[] = this.strides,
    offset = this.offset,
  ): Tensor {
    this._view("alias");
    return new Tensor(this.storage.retain(), shape, this.dtype, strides, offset);
  }

  /**
   * Gives back this tensor's memory. If a recorded graph still needs the values for backward,
   * the memory is freed as soon as the graph is done with it. Safe to call twice.
   */
  dispose(): void {
    if (this.#disposeRequested) return;
    this.#disposeRequested = true;
    if (this.#graphRefs === 0) this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    untrack(this);
    this.storage.release();
    const node = this.#node;
    this.#node = null;
    if (node) releaseNode(node);
  }

  /** @internal A graph node (or the backward sweep) needs this tensor's values. */
  _retainGraph(): void {
    this.#graphRefs++;
  }

  /** @internal Drops a graph reference; frees the memory if disposed and now unreferenced. */
  _releaseGraph(): void {
    if (--this.#graphRefs === 0 && this.#disposeRequested) this.#release();
  }

  /** `using t = ...` disposes at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- reading back (the only sync points) ----

  /** A flat copy of the elements in row-major order. */
  toTypedArray(): TypedArray {
    const t = this.isContiguous ? this : ops.contiguous(this);
    const v = t._view("toTypedArray");
    const out = t.backend.read(v.buffer, t.dtype, t.offset, t.size);
    if (t !== this) t.dispose();
    return out;
  }

  /** The elements as nested arrays (a number for a 0-d tensor). */
  toArray(): NestedArray {
    const flat = this.toTypedArray();
    const build = (dim: number, start: number): NestedArray => {
      if (dim === this.shape.length) return flat[start];
      const stride = numel(this.shape.slice(dim + 1));
      const out: NestedArray[] = new Array(this.shape[dim]);
      for (let i = 0; i < this.shape[dim]; i++) out[i] = build(dim + 1, start + i * stride);
      return out;
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) {
      throw new RangeError(
        `item: tensor of shape ${fmt(this.shape)} has ${this.size} elements, not 1`,
      );
    }
    return this.toTypedArray()[0];
  }

  /** A short description, e.g. `Tensor(f32, [2,3], cpu)`. */
  toString(): string {
    return `Tensor(${this.dtype}, ${fmt(this.shape)}, ${this.device})`;
  }

  /** What console.log shows: the description, plus the values of small tensors. */
  [Symbol.for("Deno.customInspect")](): string {
    if (this.#released) return `${this} (disposed)`;
    const grad = this.requiresGrad ? ", requiresGrad" : "";
    const head = `Tensor(${this.dtype}, ${fmt(this.shape)}, ${this.device}${grad})`;
    return this.size <= 64 ? `${head} ${JSON.stringify(this.toArray())}` : head;
  }

  // ---- autograd ----

  /**
   * Backpropagates from this tensor: a scalar needs no `gradient`; otherwise pass the upstream
   * gradient of this tensor's shape. Leaf gradients accumulate into `.grad`; the graph is freed.
   */
  backward(gradient?: Tensor): void {
    this._view("backward");
    if (!this.requiresGrad) {
      throw new Error(
        this.#graphFreed
          ? "backward: the graph of this tensor was freed by an earlier backward(); run the forward again"
          : "backward: tensor does not require grad (no input had requiresGrad)",
      );
    }
    if (gradient === undefined) {
      if (this.size !== 1) {
        throw new RangeError(
          `backward: gradient can be implicit only for scalar outputs, got shape ${
            fmt(this.shape)
          }`,
        );
      }
      const seed = ops.onesLike(this);
      runBackward(this, seed);
      seed.dispose();
      return;
    }
    if (!(gradient instanceof Tensor)) throw new TypeError("backward: gradient must be a Tensor");
    if (
      gradient.shape.length !== this.shape.length ||
      gradient.shape.some((d, i) => d !== this.shape[i])
    ) {
      throw new RangeError(
        `backward: gradient shape ${fmt(gradient.shape)} does not match tensor shape ${
          fmt(this.shape)
        }`,
      );
    }
    if (gradient.device !== this.device) {
      throw new TypeError(`backward: gradient is on ${gradient.device}, tensor on ${this.device}`);
    }
    runBackward(this, gradient.dtype === "f32" ? gradient : ops.cast(gradient, "f32"));
  }

  /** @internal Adds `g` (whose ownership passes here) into `.grad`. */
  _accumulateGrad(g: Tensor): void {
    let owned = g.isContiguous ? g : ops.contiguous(g);
    if (owned !== g) g.dispose();
    if (this.grad && !this.grad.disposed) {
      const sum = accumulate(this.grad, owned);
      owned.dispose();
      owned = sum;
    }
    owned.kept = true;
    this.grad = owned;
  }

  /**
   * Overwrites this tensor's elements in place with `src`'s (same shape; converted to this dtype).
   * Not recorded by autograd: for optimizer updates and caches, not inside a differentiated graph.
   *
   * @returns this tensor
   */
  assign(src: Tensor): this {
    if (!(src instanceof Tensor)) throw new TypeError("assign: src must be a Tensor");
    if (src.shape.length !== this.shape.length || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new RangeError(`assign: shape ${fmt(src.shape)} does not match ${fmt(this.shape)}`);
    }
    if (src.device !== this.device) {
      throw new TypeError(`assign: src is on ${src.device}, this tensor on ${this.device}`);
    }
    if (this.#node) {
      throw new TypeError("assign: cannot overwrite a tensor produced by a recorded op");
    }
    this.backend.unary("copy", src._view("assign"), this._view("assign"));
    return this;
  }

  /** Drops the accumulated gradient. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  /** The same data cut from the graph (shares storage; no gradient flows back). */
  detach(): Tensor {
    return this.alias();
  }

  // ---- aliases of the ops (see src/ops for docs) ----

  /** Copy into a new contiguous tensor (differentiable). */
  clone(): Tensor {
    return ops.clone(this);
  }
  /** This tensor if contiguous, else a contiguous copy. */
  contiguous(): Tensor {
    return ops.contiguous(this);
  }
  /** Converts the dtype ("f32", "i32" or "bf16"). */
  cast(dtype: DType): Tensor {
    return ops.cast(this, dtype);
  }
  /** This tensor on `device` ("cpu", "cuda", "cuda:N"); gradients flow back to this device. */
  to(device: Device): Tensor {
    return ops.to(this, device);
  }
  /** Same data, new shape (one dim may be -1); copies only when strides demand it. */
  reshape(shape: readonly number[]): Tensor {
    return ops.reshape(this, shape);
  }
  /** Like reshape, but throws if a copy would be needed. */
  view(shape: readonly number[]): Tensor {
    return ops.view(this, shape);
  }
  /** Collapses dims `start..end` into one. */
  flatten(start = 0, end = -1): Tensor {
    return ops.flatten(this, start, end);
  }
  /** Swaps two dims (a view). */
  transpose(dim0: number, dim1: number): Tensor {
    return ops.transpose(this, dim0, dim1);
  }
  /** Reorders dims (a view). */
  permute(dims: readonly number[]): Tensor {
    return ops.permute(this, dims);
  }
  /** `length` elements of `dim` from `start` (a view). */
  narrow(dim: number, start: number, length: number): Tensor {
    return ops.narrow(this, dim, start, length);
  }
  /** Python-style slice `start:end:step` of one dim (a view). */
  slice(dim: number, start?: number, end?: number, step?: number): Tensor {
    return ops.slice(this, dim, start, end, step);
  }
  /** Splits `dim` into pieces of `sizeOrSizes` (views). */
  split(sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
    return ops.split(this, sizeOrSizes, dim);
  }
  /** Splits `dim` into `chunks` near-equal pieces (views). */
  chunk(chunks: number, dim = 0): Tensor[] {
    return ops.chunk(this, chunks, dim);
  }
  /** Broadcasts size-1 dims to `shape` (-1 keeps a dim); a view. */
  expand(shape: readonly number[]): Tensor {
    return ops.expand(this, shape);
  }
  /** Removes size-1 dims (all, or the one given). */
  squeeze(dim?: number): Tensor {
    return ops.squeeze(this, dim);
  }
  /** Inserts a size-1 dim at `dim`. */
  unsqueeze(dim: number): Tensor {
    return ops.unsqueeze(this, dim);
  }
  /** Picks entries of `dim` by a 1-D i32 index. */
  indexSelect(dim: number, index: Tensor): Tensor {
    return ops.indexSelect(this, dim, index);
  }
  /** torch.gather along `dim`. */
  gather(dim: number, index: Tensor): Tensor {
    return ops.gather(this, dim, index);
  }

  /** Elementwise `this + other` with broadcasting. */
  add(other: Operand): Tensor {
    return ops.add(this, other);
  }
  /** Elementwise `this - other`. */
  sub(other: Operand): Tensor {
    return ops.sub(this, other);
  }
  /** Elementwise `this * other`. */
  mul(other: Operand): Tensor {
    return ops.mul(this, other);
  }
  /** Elementwise `this / other` (true division, f32). */
  div(other: Operand): Tensor {
    return ops.div(this, other);
  }
  /** Elementwise `this ** exponent`. */
  pow(exponent: Operand): Tensor {
    return ops.pow(this, exponent);
  }
  /** Elementwise maximum. */
  maximum(other: Operand): Tensor {
    return ops.maximum(this, other);
  }
  /** Elementwise minimum. */
  minimum(other: Operand): Tensor {
    return ops.minimum(this, other);
  }
  /** `-this`. */
  neg(): Tensor {
    return ops.neg(this);
  }
  /** e^x. */
  exp(): Tensor {
    return ops.exp(this);
  }
  /** Natural log. */
  log(): Tensor {
    return ops.log(this);
  }
  /** Square root. */
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  /** 1 / sqrt(x). */
  rsqrt(): Tensor {
    return ops.rsqrt(this);
  }
  /** |x|. */
  abs(): Tensor {
    return ops.abs(this);
  }
  /** tanh(x). */
  tanh(): Tensor {
    return ops.tanh(this);
  }
  /** 1 / (1 + e^-x). */
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  /** max(x, 0). */
  relu(): Tensor {
    return ops.relu(this);
  }
  /** GELU, tanh approximation (GPT-2's). */
  gelu(): Tensor {
    return ops.gelu(this);
  }
  /** x * sigmoid(x). */
  silu(): Tensor {
    return ops.silu(this);
  }
  /** `this == other` as i32 0/1. */
  eq(other: Operand): Tensor {
    return ops.eq(this, other);
  }
  /** `this != other` as i32 0/1. */
  ne(other: Operand): Tensor {
    return ops.ne(this, other);
  }
  /** `this < other` as i32 0/1. */
  lt(other: Operand): Tensor {
    return ops.lt(this, other);
  }
  /** `this <= other` as i32 0/1. */
  le(other: Operand): Tensor {
    return ops.le(this, other);
  }
  /** `this > other` as i32 0/1. */
  gt(other: Operand): Tensor {
    return ops.gt(this, other);
  }
  /** `this >= other` as i32 0/1. */
  ge(other: Operand): Tensor {
    return ops.ge(this, other);
  }
  /** `value` where `mask` is non-zero, else this. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return ops.maskedFill(this, mask, value);
  }
  /** Lower triangle of the last two dims (diagonal offset `k`), zeros above. */
  tril(k = 0): Tensor {
    return ops.tril(this, k);
  }
  /** Upper triangle of the last two dims (diagonal offset `k`), zeros below. */
  triu(k = 0): Tensor {
    return ops.triu(this, k);
  }

  /** Sum over `dim` (all dims if omitted). */
  sum(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.sum(this, dim, keepdim);
  }
  /** Mean over `dim` (all dims if omitted). */
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.mean(this, dim, keepdim);
  }
  /** Maximum over `dim` (gradient split evenly among ties). */
  max(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.max(this, dim, keepdim);
  }
  /** Minimum over `dim` (gradient split evenly among ties). */
  min(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.min(this, dim, keepdim);
  }
  /** Index of the maximum along `dim` (over the flattened tensor if omitted), i32. */
  argmax(dim?: number, keepdim = false): Tensor {
    return ops.argmax(this, dim, keepdim);
  }
  /** Index of the minimum along `dim`, i32. */
  argmin(dim?: number, keepdim = false): Tensor {
    return ops.argmin(this, dim, keepdim);
  }
  /** Variance over `dim` with Bessel's correction by default. */
  var(dim?: number | readonly number[], options: ops.VarOptions = {}): Tensor {
    return ops.variance(this, dim, options);
  }
  /** log(sum(exp(x))) over `dim`, computed stably. */
  logsumexp(dim: number | readonly number[], keepdim = false): Tensor {
    return ops.logsumexp(this, dim, keepdim);
  }
  /** Softmax along `dim`. */
  softmax(dim = -1): Tensor {
    return ops.softmax(this, dim);
  }
  /** Log-softmax along `dim`. */
  logSoftmax(dim = -1): Tensor {
    return ops.logSoftmax(this, dim);
  }
  /** Matrix product with NumPy/PyTorch broadcasting of batch dims. */
  matmul(other: Tensor): Tensor {
    return ops.matmul(this, other);
  }
}
