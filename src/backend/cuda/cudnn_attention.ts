/**
 * cuDNN's fused flash attention as an alternative to our own CUDA kernels, chosen with
 * `DENOGRAD_ATTENTION=cudnn` (or the backend's `attention: "cudnn"` option); our kernel stays the
 * default. Graphs (cudnn_sdpa.ts) are built, planned and cached once per shape, strides and mask
 * options; the scale is a by-value scalar set per call, the workspace and dQ accumulator come from
 * the backend's scratch memory.
 *
 * What it does not cover falls back to our kernel ({@linkcode cudnnAttentionUnsupported} says
 * why): dropout (cuDNN draws its own Philox mask; ours must equal the naive path's), an additive
 * `bias` (f32 with arbitrary broadcasting), sliding windows, f32 data, D not a multiple of 8 or
 * above 128, ALiBi without the causal mask at offset 0 (cuDNN adds (j - i) * slope, which is
 * -slope * |i - j| only there), and causal offsets other than 0 or S - T (bottom-right). Graphs
 * cuDNN's heuristics reject fall back too, and are remembered as unsupported.
 * @module
 */

import type { AttentionArgs, AttentionBackwardArgs, AttentionOptions, View } from "../backend.ts";
import { checkCudnn, cudnn, type CudnnSymbols } from "../../../ffi/cudnn.ts";
import { CudnnGraph, CudnnUnsupportedError, type ExecutionPlan } from "./cudnn_graph.ts";
import {
  buildSdpaBackward,
  buildSdpaForward,
  SDPA_UID,
  type SdpaLayout,
  type SdpaMask,
} from "./cudnn_sdpa.ts";

function isStrides4(v: View): boolean {
  return v.shape.length === 4 && v.strides[3] === 1;
}

/**
 * Why cuDNN's fused attention cannot run this call (null when it can, as far as we can tell
 * without asking cuDNN: its heuristics may still reject the graph, which
 * {@linkcode CudnnAttention.tryForward} handles by falling back).
 * @param backward whether the backward graph is wanted (bottom-right causal needs T, S % 64 == 0)
 * @param address device address of a view, to check the 16-byte alignment cuDNN wants
 */
export function cudnnAttentionUnsupported(
  q: View,
  k: View,
  v: View,
  alibiSlopes: View | null,
  bias: View | null,
  out: View,
  lse: View,
  options: AttentionOptions,
  backward: boolean,
  address?: (v: View) => bigint,
): string | null {
  if (q.dtype !== "bf16" || k.dtype !== "bf16" || v.dtype !== "bf16" || out.dtype !== "bf16") {
    return `cuDNN fused attention needs bf16 q/k/v/out, got ${q.dtype}/${k.dtype}/${v.dtype}/${out.dtype}`;
  }
  if (lse.dtype !== "f32" || lse.shape.length !== 3) return "lse must be an f32 (B, H, T) view";
  if (![q, k, v, out].every(isStrides4)) return "q, k, v, out must be 4-d with unit stride in D";
  if (options.dropout !== 0) {
    return "dropout: cuDNN draws its own mask, not the one the naive path draws";
  }
  if (bias !== null) {
    return "an additive bias is not mapped onto cuDNN (f32, arbitrary broadcasting)";
  }
  if (options.window !== 0) return "sliding windows are not mapped onto cuDNN";
  const [, H, T, D] = q.shape;
  const [, Hkv, S] = k.shape;
  if (D % 8 !== 0 || D > 128) return `head size ${D}: cuDNN needs a multiple of 8, at most 128`;
  if (H % Hkv !== 0) return `H = ${H} is not a multiple of Hkv = ${Hkv}`;
  if (options.causal && options.qOffset !== 0) {
    if (options.qOffset !== S - T || S < T) {
      return `causal qOffset ${options.qOffset}: cuDNN aligns causal masks top-left (0) or bottom-right (S - T = ${
        S - T
      })`;
    }
    if (alibiSlopes !== null) {
      return "ALiBi with a bottom-right causal mask is not supported by cuDNN";
    }
    if (backward && (T % 64 !== 0 || S % 64 !== 0)) {
      return "bottom-right causal backward needs T and S multiples of 64 in cuDNN";
    }
  }
  if (alibiSlopes !== null && !options.causal) {
    return "ALiBi without the causal mask: cuDNN adds (j - i) * slope, not -slope * |i - j|";
  }
  const strided = [q, k, v, out];
  if (strided.some((x) => x.strides.slice(0, 3).some((s) => s % 8 !== 0 && s !== 0))) {
    return "cuDNN needs B/H/T strides that are multiples of 8 elements (16 bytes)";
  }
  if (address && strided.some((x) => address(x) % 16n !== 0n)) {
    return "cuDNN needs 16-byte aligned q/k/v/out";
  }
  return null;
}

/** Whether the user asked for cuDNN attention (`DENOGRAD_ATTENTION=cudnn`). */
export function cudnnAttentionRequested(): boolean {
  try {
    return Deno.env.get("DENOGRAD_ATTENTION") === "cudnn";
  } catch {
    return false; // no --allow-env: the default kernel
  }
}

/** What {@linkcode CudnnAttention} needs from the CUDA backend. */
export interface CudnnAttentionDeps {
  /** The cuDNN functions (default: the library, opened on first use). */
  symbols?: CudnnSymbols;
  /** The backend's stream (cuDNN's handle is bound to it). */
  stream: bigint;
  /** Device address of a view's first element. */
  address(view: View): bigint;
  /** Temporary device memory released when the current backend call returns. */
  scratch(bytes: number): bigint;
  /** Queues `bytes` zero bytes at `ptr` on the stream. */
  zero(ptr: bigint, bytes: number): void;
  /** Makes the device's context current (before creating the handle). */
  activate?(): void;
}

interface CachedPlan {
  readonly graph: CudnnGraph;
  readonly plan: ExecutionPlan;
}

/** Plans kept at once; the oldest is destroyed beyond this. */
export const PLAN_CACHE_LIMIT = 32;

function strides4(v: View): [number, number, number, number] {
  return [v.strides[0], v.strides[1], v.strides[2], v.strides[3]];
}

function layoutOf(q: View, k: View, v: View, alibi: View | null, out: View, lse: View): SdpaLayout {
  return {
    B: q.shape[0],
    H: q.shape[1],
    Hkv: k.shape[1],
    T: q.shape[2],
    S: k.shape[2],
    D: q.shape[3],
    q: strides4(q),
    k: strides4(k),
    v: strides4(v),
    o: strides4(out),
    lse: [lse.strides[0], lse.strides[1], lse.strides[2]],
    slopes: alibi === null ? null : alibi.strides[0],
  };
}

/**
 * The cuDNN SDPA path of one CUDA backend: a cuDNN handle on the backend's stream and a cache of
 * execution plans.
 *
 * @example
 * ```ts ignore
 * // Inside CudaBackend (needs a GPU and cuDNN 9):
 * const attn = new CudnnAttention({ stream, address, scratch, zero });
 * const args = { q, k, v, alibiSlopes: null, bias: null, out, lse, options };
 * if (!attn.tryForward(args)) ourKernel(args);
 * ```
 */
export class CudnnAttention {
  readonly #deps: CudnnAttentionDeps;
  #symbols: CudnnSymbols | null = null;
  #handle = 0n;
  readonly #plans = new Map<string, CachedPlan>();
  /** Why cuDNN rejected a graph, by direction, q/k/v/out/lse layout and mask. */
  readonly #declined = new Map<string, string>();

  /**
   * Binds the path to a backend; cuDNN itself is loaded on first use.
   * @param deps the backend's stream, addresses and scratch memory
   */
  constructor(deps: CudnnAttentionDeps) {
    this.#deps = deps;
  }

  /** cuDNN's version (e.g. 90600 for 9.6.0); opens the library. */
  version(): number {
    return Number(this.#lib().cudnnGetVersion());
  }

  /**
   * Why this call cannot go to cuDNN (null when it can be tried): the static checks of
   * {@linkcode cudnnAttentionUnsupported}, then a graph cuDNN rejected before.
   */
  reason(
    q: View,
    k: View,
    v: View,
    alibiSlopes: View | null,
    bias: View | null,
    out: View,
    lse: View,
    options: AttentionOptions,
    backward = false,
  ): string | null {
    const why = cudnnAttentionUnsupported(
      q,
      k,
      v,
      alibiSlopes,
      bias,
      out,
      lse,
      options,
      backward,
      this.#deps.address,
    );
    if (why !== null) return why;
    const layout = layoutOf(q, k, v, alibiSlopes, out, lse);
    return this.#declined.get(this.#key(backward ? "bwd" : "fwd", layout, options)) ?? null;
  }

  /**
   * Runs the forward pass through cuDNN when it can (see {@linkcode reason}).
   * @returns true if cuDNN computed out and lse; false if the caller must use its own kernel
   */
  tryForward(args: AttentionArgs): boolean {
    const { q, k, v, alibiSlopes, bias, out, lse, options } = args;
    if (this.reason(q, k, v, alibiSlopes, bias, out, lse, options) !== null) return false;
    const layout = layoutOf(q, k, v, alibiSlopes, out, lse);
    const entry = this.#plan(
      "fwd",
      layout,
      options,
      (g) => buildSdpaForward(g, layout, maskOf(options), options.scale),
    );
    if (entry === null) return false;
    const ptrs = new Map<number, bigint>([
      [SDPA_UID.Q, this.#deps.address(q)],
      [SDPA_UID.K, this.#deps.address(k)],
      [SDPA_UID.V, this.#deps.address(v)],
      [SDPA_UID.O, this.#deps.address(out)],
      [SDPA_UID.STATS, this.#deps.address(lse)],
    ]);
    if (alibiSlopes) ptrs.set(SDPA_UID.SLOPES, this.#deps.address(alibiSlopes));
    this.#run(entry, options, ptrs);
    return true;
  }

  /**
   * Runs the backward pass through cuDNN when it can; dq, dk, dv are overwritten.
   * @returns true if cuDNN computed the gradients; false if the caller must use its own kernel
   */
  tryBackward(args: AttentionBackwardArgs): boolean {
    const { q, k, v, alibiSlopes, bias, out, dout, lse, dq, dk, dv, options } = args;
    if (this.reason(q, k, v, alibiSlopes, bias, out, lse, options, true) !== null) return false;
    if (
      cudnnAttentionUnsupported(
        dq,
        dk,
        dv,
        alibiSlopes,
        bias,
        dout,
        lse,
        options,
        true,
        this.#deps.address,
      )
    ) return false;
    const layout: SdpaLayout = {
      ...layoutOf(q, k, v, alibiSlopes, out, lse),
      dO: strides4(dout),
      dQ: strides4(dq),
      dK: strides4(dk),
      dV: strides4(dv),
    };
    const entry = this.#plan(
      "bwd",
      layout,
      options,
      (g) => buildSdpaBackward(g, layout, maskOf(options), options.scale),
    );
    if (entry === null) return false;
    const accBytes = layout.B * layout.H * layout.T * layout.D * 4;
    const acc = this.#deps.scratch(accBytes);
    this.#deps.zero(acc, accBytes); // the dQ accumulator must start at zero
    const ptrs = new Map<number, bigint>([
      [SDPA_UID.Q, this.#deps.address(q)],
      [SDPA_UID.K, this.#deps.address(k)],
      [SDPA_UID.V, this.#deps.address(v)],
      [SDPA_UID.O, this.#deps.address(out)],
      [SDPA_UID.DO, this.#deps.address(dout)],
      [SDPA_UID.STATS, this.#deps.address(lse)],
      [SDPA_UID.DQ, this.#deps.address(dq)],
      [SDPA_UID.DK, this.#deps.address(dk)],
      [SDPA_UID.DV, this.#deps.address(dv)],
      [SDPA_UID.DQ_ACCUM, acc],
    ]);
    if (alibiSlopes) ptrs.set(SDPA_UID.SLOPES, this.#deps.address(alibiSlopes));
    this.#run(entry, options, ptrs);
    return true;
  }

  /** Destroys every cached plan and the handle; safe to call twice. */
  dispose(): void {
    for (const entry of this.#plans.values()) entry.graph.dispose();
    this.#plans.clear();
    this.#declined.clear();
    if (this.#handle !== 0n) {
      const h = this.#handle;
      this.#handle = 0n;
      checkCudnn(this.#lib().cudnnDestroy(h), "cudnnDestroy", this.#lib());
    }
  }

  #lib(): CudnnSymbols {
    return this.#symbols ??= this.#deps.symbols ?? cudnn().symbols;
  }

  #handleFor(): bigint {
    if (this.#handle !== 0n) return this.#handle;
    const s = this.#lib();
    this.#deps.activate?.();
    const out = new BigUint64Array(1);
    checkCudnn(s.cudnnCreate(out), "cudnnCreate", s);
    checkCudnn(s.cudnnSetStream(out[0], this.#deps.stream), "cudnnSetStream", s);
    return this.#handle = out[0];
  }

  /**
   * The cache key. The scale is a by-value scalar, so it is not part of it. Declined graphs are
   * keyed without the gradient strides (`reason` sees only q/k/v/out/lse).
   */
  #key(direction: string, layout: SdpaLayout, options: AttentionOptions, grads = false): string {
    const { dO, dQ, dK, dV, ...base } = layout;
    return JSON.stringify([
      grads ? [dO, dQ, dK, dV] : null,
      direction,
      base,
      options.causal,
      options.causal ? options.qOffset : 0,
    ]);
  }

  /** The cached plan for this call, built now if new; null (remembered) if cuDNN rejects it. */
  #plan(
    direction: string,
    layout: SdpaLayout,
    options: AttentionOptions,
    build: (g: CudnnGraph) => void,
  ): CachedPlan | null {
    const declinedKey = this.#key(direction, layout, options);
    if (this.#declined.has(declinedKey)) return null;
    const key = this.#key(direction, layout, options, true);
    const cached = this.#plans.get(key);
    if (cached) return cached;
    const handle = this.#handleFor();
    const graph = new CudnnGraph(this.#lib());
    try {
      build(graph);
      graph.build(handle);
      const entry = { graph, plan: graph.plan(handle) };
      this.#remember(key, entry);
      return entry;
    } catch (err) {
      graph.dispose();
      if (!(err instanceof CudnnUnsupportedError)) throw err;
      this.#declined.set(declinedKey, err.message);
      return null;
    }
  }

  #remember(key: string, entry: CachedPlan): void {
    this.#plans.set(key, entry);
    while (this.#plans.size > PLAN_CACHE_LIMIT) {
      const [oldest, old] = this.#plans.entries().next().value!;
      this.#plans.delete(oldest);
      old.graph.dispose();
    }
  }

  #run(entry: CachedPlan, options: AttentionOptions, ptrs: Map<number, bigint>): void {
    entry.graph.setScalar(SDPA_UID.SCALE, options.scale);
    const ws = entry.plan.workspaceBytes > 0 ? this.#deps.scratch(entry.plan.workspaceBytes) : 0n;
    entry.graph.execute(this.#handleFor(), entry.plan, ptrs, ws);
  }
}

function maskOf(options: AttentionOptions): SdpaMask {
  return { causal: options.causal, qOffset: options.causal ? options.qOffset : 0 };
}
