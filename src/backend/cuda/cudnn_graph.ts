/**
 * A small builder over cuDNN's backend API: tensors and operations become descriptors, the
 * operations an operation graph, the graph an execution plan chosen by cuDNN's heuristics, and a
 * variant pack (uid -> device address) runs the plan. Every call goes through the
 * {@linkcode CudnnSymbols} it is given, so tests drive it with a recording fake.
 *
 * Attribute value encodings (what `cudnnBackendSetAttribute` reads per `cudnnBackendAttributeType_t`):
 * INT64 -> int64_t[], DATA_TYPE / POINTWISE_MODE / REDUCTION_OPERATOR_TYPE / HEUR_MODE /
 * TENSOR_REORDERING_MODE -> the C enum (int32), BOOLEAN -> C `bool` (1 byte), FLOAT -> float,
 * BACKEND_DESCRIPTOR / HANDLE / VOID_PTR -> pointer-sized values.
 * @module
 */

import {
  checkCudnn,
  CUDNN_ATTR,
  CUDNN_BACKEND,
  CUDNN_DATA,
  CUDNN_HEUR_MODE,
  CUDNN_TYPE,
  CudnnError,
  cudnnStatusText,
  type CudnnSymbols,
} from "../../../ffi/cudnn.ts";
import { contiguousStrides } from "../../_shape.ts";

/** One tensor of a graph. */
export interface GraphTensor {
  /** Its TENSOR descriptor. */
  readonly desc: bigint;
  /** CUDNN_ATTR_TENSOR_UNIQUE_ID: the variant pack's key for non-virtual tensors. */
  readonly uid: number;
  /** What it is, for messages. */
  readonly name: string;
  /** `cudnnDataType_t`. */
  readonly dtype: number;
  /** Dims, outermost first. */
  readonly dims: readonly number[];
  /** Element strides. */
  readonly strides: readonly number[];
  /** Lives only inside the fused kernel (no memory, not in the variant pack). */
  readonly virtual: boolean;
  /** A host scalar passed by value (its host buffer goes in the variant pack). */
  readonly byValue: boolean;
}

/** What {@linkcode CudnnGraph.tensor} needs. */
export interface TensorSpec {
  /** What it is, for messages. */
  name: string;
  /** Unique id; virtual tensors get one automatically. */
  uid?: number;
  /** `cudnnDataType_t` (default FLOAT). */
  dtype?: number;
  /** Dims, outermost first. */
  dims: readonly number[];
  /** Element strides (default: contiguous). */
  strides?: readonly number[];
  /** Default false. */
  virtual?: boolean;
  /** `cudnnBackendTensorReordering_t`, set only when given. */
  reordering?: number;
}

/** Options of one pointwise operation. */
export interface PointwiseOptions {
  /** Second input (CUDNN_ATTR_OPERATION_POINTWISE_BDESC). */
  b?: GraphTensor;
  /** Third input, BINARY_SELECT's condition (CUDNN_ATTR_OPERATION_POINTWISE_TDESC). */
  t?: GraphTensor;
  /** CUDNN_ATTR_POINTWISE_MATH_PREC (default FLOAT). */
  compute?: number;
  /** CUDNN_ATTR_POINTWISE_AXIS (GEN_INDEX's dimension). */
  axis?: number;
}

/** An execution plan and the workspace it needs. */
export interface ExecutionPlan {
  /** The EXECUTION_PLAN descriptor. */
  readonly desc: bigint;
  /** CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE in bytes. */
  readonly workspaceBytes: number;
}

/** No engine cuDNN's heuristics offered could run the graph. */
export class CudnnUnsupportedError extends Error {
  /**
   * @param message why (every engine's status)
   */
  constructor(message: string) {
    super(message);
    this.name = "CudnnUnsupportedError";
  }
}

/** Bytes of the host buffer behind each by-value scalar (above V8's on-heap typed-array size). */
const SCALAR_BUFFER_BYTES = 128;

/** First uid handed to virtual tensors (non-virtual ones use small fixed uids). */
export const FIRST_VIRTUAL_UID = 1000;

/** Builds one operation graph; {@linkcode dispose} destroys every descriptor it created. */
export class CudnnGraph {
  readonly #s: CudnnSymbols;
  readonly #owned: bigint[] = [];
  readonly #ops: bigint[] = [];
  readonly #tensors: GraphTensor[] = [];
  readonly #hostValues = new Map<number, Float32Array | Int32Array>();
  #nextUid = FIRST_VIRTUAL_UID;
  #graph = 0n;

  /** @param symbols the cuDNN functions */
  constructor(symbols: CudnnSymbols) {
    this.#s = symbols;
  }

  /** Every tensor created so far. */
  get tensors(): readonly GraphTensor[] {
    return this.#tensors;
  }

  /** A new descriptor of `type` (a CUDNN_BACKEND value), destroyed by {@linkcode dispose}. */
  create(type: number): bigint {
    const out = new BigUint64Array(1);
    checkCudnn(
      this.#s.cudnnBackendCreateDescriptor(type, out),
      `cudnnBackendCreateDescriptor(${type})`,
      this.#s,
    );
    this.#owned.push(out[0]);
    return out[0];
  }

  /** Sets one attribute from an already encoded buffer. */
  set(desc: bigint, name: number, type: number, count: number, values: BufferSource): void {
    const status = this.#s.cudnnBackendSetAttribute(desc, name, type, BigInt(count), values);
    checkCudnn(
      status,
      `cudnnBackendSetAttribute(attr ${name}, type ${type}, count ${count})`,
      this.#s,
    );
  }

  /** Sets int64_t values. */
  setInt64(desc: bigint, name: number, values: readonly number[]): void {
    this.set(desc, name, CUDNN_TYPE.INT64, values.length, BigInt64Array.from(values, BigInt));
  }

  /** Sets one C enum (int32) of attribute type `type`. */
  setEnum(desc: bigint, name: number, type: number, value: number): void {
    this.set(desc, name, type, 1, Int32Array.of(value));
  }

  /** Sets descriptors (CUDNN_TYPE_BACKEND_DESCRIPTOR). */
  setDescs(desc: bigint, name: number, descs: readonly bigint[]): void {
    this.set(desc, name, CUDNN_TYPE.BACKEND_DESCRIPTOR, descs.length, BigUint64Array.from(descs));
  }

  /** Sets a C `bool`. */
  setBool(desc: bigint, name: number, value: boolean): void {
    this.set(desc, name, CUDNN_TYPE.BOOLEAN, 1, Uint8Array.of(value ? 1 : 0));
  }

  /** Finalizes a descriptor. */
  finalize(desc: bigint, what: string): void {
    checkCudnn(this.#s.cudnnBackendFinalize(desc), `cudnnBackendFinalize(${what})`, this.#s);
  }

  /** A finalized TENSOR descriptor (alignment 16 bytes, as cudnn-frontend sets). */
  tensor(spec: TensorSpec, byValue = false): GraphTensor {
    const virtual = spec.virtual ?? false;
    const uid = spec.uid ?? this.#nextUid++;
    const dtype = spec.dtype ?? CUDNN_DATA.FLOAT;
    const strides = spec.strides ?? contiguousStrides(spec.dims);
    if (strides.length !== spec.dims.length) {
      throw new RangeError(
        `CudnnGraph.tensor(${spec.name}): ${spec.dims.length} dims but ${strides.length} strides`,
      );
    }
    const d = this.create(CUDNN_BACKEND.TENSOR_DESCRIPTOR);
    this.setEnum(d, CUDNN_ATTR.TENSOR_DATA_TYPE, CUDNN_TYPE.DATA_TYPE, dtype);
    this.setInt64(d, CUDNN_ATTR.TENSOR_DIMENSIONS, spec.dims);
    this.setInt64(d, CUDNN_ATTR.TENSOR_STRIDES, strides);
    this.setInt64(d, CUDNN_ATTR.TENSOR_UNIQUE_ID, [uid]);
    this.setInt64(d, CUDNN_ATTR.TENSOR_BYTE_ALIGNMENT, [16]);
    this.setBool(d, CUDNN_ATTR.TENSOR_IS_VIRTUAL, virtual);
    if (byValue) this.setBool(d, CUDNN_ATTR.TENSOR_IS_BY_VALUE, true);
    if (spec.reordering !== undefined) {
      this.setEnum(
        d,
        CUDNN_ATTR.TENSOR_REORDERING_MODE,
        CUDNN_TYPE.TENSOR_REORDERING_MODE,
        spec.reordering,
      );
    }
    this.finalize(d, `tensor ${spec.name}`);
    const t: GraphTensor = {
      desc: d,
      uid,
      name: spec.name,
      dtype,
      dims: [...spec.dims],
      strides: [...strides],
      virtual,
      byValue,
    };
    this.#tensors.push(t);
    return t;
  }

  /** A virtual f32 (or `dtype`) tensor with contiguous strides. */
  virtual(name: string, dims: readonly number[], dtype: number = CUDNN_DATA.FLOAT): GraphTensor {
    return this.tensor({ name, dims, dtype, virtual: true });
  }

  /**
   * A scalar passed by value (dims and strides [1, 1, 1, 1]); its value lives in a host buffer
   * owned by the graph and can be changed before each execution ({@linkcode setScalar}).
   */
  scalar(name: string, uid: number, dtype: number, value: number): GraphTensor {
    const t = this.tensor({ name, uid, dtype, dims: [1, 1, 1, 1], strides: [1, 1, 1, 1] }, true);
    // Its own ArrayBuffer: V8 keeps only small typed arrays made by `new Float32Array(n)` inside
    // the (moving) JS heap; a separately allocated ArrayBuffer has a fixed address, which cuDNN
    // reads at every execution.
    const storage = new ArrayBuffer(SCALAR_BUFFER_BYTES);
    const host = dtype === CUDNN_DATA.INT32
      ? new Int32Array(storage, 0, 1)
      : new Float32Array(storage, 0, 1);
    host[0] = value;
    this.#hostValues.set(uid, host);
    return t;
  }

  /** Changes a by-value scalar's value (read by the next execution). */
  setScalar(uid: number, value: number): void {
    const host = this.#hostValues.get(uid);
    if (!host) throw new RangeError(`CudnnGraph.setScalar: no by-value tensor with uid ${uid}`);
    host[0] = value;
  }

  /** Host address of a by-value scalar's buffer (its variant-pack pointer). */
  scalarAddress(uid: number): bigint {
    const host = this.#hostValues.get(uid);
    if (!host) throw new RangeError(`CudnnGraph.scalarAddress: no by-value tensor with uid ${uid}`);
    return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(host)));
  }

  /** Adds y = mode(x[, b[, t]]) (CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR). */
  pointwise(mode: number, x: GraphTensor, y: GraphTensor, o: PointwiseOptions = {}): void {
    const pw = this.create(CUDNN_BACKEND.POINTWISE_DESCRIPTOR);
    this.setEnum(pw, CUDNN_ATTR.POINTWISE_MODE, CUDNN_TYPE.POINTWISE_MODE, mode);
    this.setEnum(
      pw,
      CUDNN_ATTR.POINTWISE_MATH_PREC,
      CUDNN_TYPE.DATA_TYPE,
      o.compute ?? CUDNN_DATA.FLOAT,
    );
    if (o.axis !== undefined) this.setInt64(pw, CUDNN_ATTR.POINTWISE_AXIS, [o.axis]);
    this.finalize(pw, `pointwise mode ${mode}`);
    const op = this.create(CUDNN_BACKEND.OPERATION_POINTWISE_DESCRIPTOR);
    this.setDescs(op, CUDNN_ATTR.OPERATION_POINTWISE_PW_DESCRIPTOR, [pw]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_POINTWISE_XDESC, [x.desc]);
    if (o.b) this.setDescs(op, CUDNN_ATTR.OPERATION_POINTWISE_BDESC, [o.b.desc]);
    if (o.t) this.setDescs(op, CUDNN_ATTR.OPERATION_POINTWISE_TDESC, [o.t.desc]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_POINTWISE_YDESC, [y.desc]);
    this.finalize(op, `pointwise op -> ${y.name}`);
    this.#ops.push(op);
  }

  /** Adds c = a @ b over the last two dims, batched (and broadcast) over the others. */
  matmul(a: GraphTensor, b: GraphTensor, c: GraphTensor): void {
    const mm = this.create(CUDNN_BACKEND.MATMUL_DESCRIPTOR);
    this.setEnum(mm, CUDNN_ATTR.MATMUL_COMP_TYPE, CUDNN_TYPE.DATA_TYPE, CUDNN_DATA.FLOAT);
    this.finalize(mm, "matmul");
    const op = this.create(CUDNN_BACKEND.OPERATION_MATMUL_DESCRIPTOR);
    this.setDescs(op, CUDNN_ATTR.OPERATION_MATMUL_ADESC, [a.desc]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_MATMUL_BDESC, [b.desc]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_MATMUL_CDESC, [c.desc]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_MATMUL_DESC, [mm]);
    this.finalize(op, `matmul op -> ${c.name}`);
    this.#ops.push(op);
  }

  /** Adds y = reduce(x) over the dims where y has extent 1 and x does not. */
  reduction(operator: number, x: GraphTensor, y: GraphTensor): void {
    const rd = this.create(CUDNN_BACKEND.REDUCTION_DESCRIPTOR);
    this.setEnum(rd, CUDNN_ATTR.REDUCTION_OPERATOR, CUDNN_TYPE.REDUCTION_OPERATOR_TYPE, operator);
    this.setEnum(rd, CUDNN_ATTR.REDUCTION_COMP_TYPE, CUDNN_TYPE.DATA_TYPE, CUDNN_DATA.FLOAT);
    this.finalize(rd, "reduction");
    const op = this.create(CUDNN_BACKEND.OPERATION_REDUCTION_DESCRIPTOR);
    this.setDescs(op, CUDNN_ATTR.OPERATION_REDUCTION_XDESC, [x.desc]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_REDUCTION_YDESC, [y.desc]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_REDUCTION_DESC, [rd]);
    this.finalize(op, `reduction op -> ${y.name}`);
    this.#ops.push(op);
  }

  /** Adds y = x seen through y's dims and strides (how the graphs transpose). */
  reshape(x: GraphTensor, y: GraphTensor): void {
    const op = this.create(CUDNN_BACKEND.OPERATION_RESHAPE_DESCRIPTOR);
    this.setDescs(op, CUDNN_ATTR.OPERATION_RESHAPE_XDESC, [x.desc]);
    this.setDescs(op, CUDNN_ATTR.OPERATION_RESHAPE_YDESC, [y.desc]);
    this.finalize(op, `reshape op -> ${y.name}`);
    this.#ops.push(op);
  }

  /** Finalizes the OPERATIONGRAPH over every operation added, bound to `handle`. */
  build(handle: bigint): bigint {
    const g = this.create(CUDNN_BACKEND.OPERATIONGRAPH_DESCRIPTOR);
    this.setDescs(g, CUDNN_ATTR.OPERATIONGRAPH_OPS, this.#ops);
    this.set(g, CUDNN_ATTR.OPERATIONGRAPH_HANDLE, CUDNN_TYPE.HANDLE, 1, BigUint64Array.of(handle));
    this.finalize(g, "operation graph");
    return this.#graph = g;
  }

  /**
   * The first engine configuration, in cuDNN's heuristic order (mode A, then FALLBACK), whose
   * execution plan finalizes.
   * @throws CudnnUnsupportedError when none does (with every engine's status)
   */
  plan(handle: bigint): ExecutionPlan {
    if (this.#graph === 0n) throw new Error("CudnnGraph.plan: build() the graph first");
    const failures: string[] = [];
    for (const mode of [CUDNN_HEUR_MODE.A, CUDNN_HEUR_MODE.FALLBACK]) {
      for (const cfg of this.#engineConfigs(mode, failures)) {
        const p = this.create(CUDNN_BACKEND.EXECUTION_PLAN_DESCRIPTOR);
        this.set(
          p,
          CUDNN_ATTR.EXECUTION_PLAN_HANDLE,
          CUDNN_TYPE.HANDLE,
          1,
          BigUint64Array.of(handle),
        );
        this.setDescs(p, CUDNN_ATTR.EXECUTION_PLAN_ENGINE_CONFIG, [cfg]);
        const status = this.#s.cudnnBackendFinalize(p);
        if (status !== 0) {
          failures.push(`heuristic mode ${mode}: ${cudnnStatusText(status, this.#s)}`);
          continue;
        }
        const ws = new BigInt64Array(1);
        const count = new BigInt64Array(1);
        checkCudnn(
          this.#s.cudnnBackendGetAttribute(
            p,
            CUDNN_ATTR.EXECUTION_PLAN_WORKSPACE_SIZE,
            CUDNN_TYPE.INT64,
            1n,
            count,
            ws,
          ),
          "cudnnBackendGetAttribute(EXECUTION_PLAN_WORKSPACE_SIZE)",
          this.#s,
        );
        return { desc: p, workspaceBytes: Number(ws[0]) };
      }
    }
    throw new CudnnUnsupportedError(
      `cuDNN: no engine supports this graph:\n  ${
        failures.join("\n  ") || "the heuristics returned no engine"
      }`,
    );
  }

  #engineConfigs(mode: number, failures: string[]): bigint[] {
    const heur = this.create(CUDNN_BACKEND.ENGINEHEUR_DESCRIPTOR);
    this.setDescs(heur, CUDNN_ATTR.ENGINEHEUR_OPERATION_GRAPH, [this.#graph]);
    this.setEnum(heur, CUDNN_ATTR.ENGINEHEUR_MODE, CUDNN_TYPE.HEUR_MODE, mode);
    const status = this.#s.cudnnBackendFinalize(heur);
    if (status !== 0) {
      failures.push(`heuristics mode ${mode}: ${cudnnStatusText(status, this.#s)}`);
      return [];
    }
    // First ask how many configurations there are, then fetch them into fresh ENGINECFGs.
    const count = new BigInt64Array(1);
    checkCudnn(
      this.#s.cudnnBackendGetAttribute(
        heur,
        CUDNN_ATTR.ENGINEHEUR_RESULTS,
        CUDNN_TYPE.BACKEND_DESCRIPTOR,
        0n,
        count,
        new BigUint64Array(1),
      ),
      "cudnnBackendGetAttribute(ENGINEHEUR_RESULTS count)",
      this.#s,
    );
    const n = Number(count[0]);
    if (n === 0) return [];
    const cfgs = BigUint64Array.from(
      { length: n },
      () => this.create(CUDNN_BACKEND.ENGINECFG_DESCRIPTOR),
    );
    checkCudnn(
      this.#s.cudnnBackendGetAttribute(
        heur,
        CUDNN_ATTR.ENGINEHEUR_RESULTS,
        CUDNN_TYPE.BACKEND_DESCRIPTOR,
        BigInt(n),
        count,
        cfgs,
      ),
      "cudnnBackendGetAttribute(ENGINEHEUR_RESULTS)",
      this.#s,
    );
    return [...cfgs.subarray(0, Number(count[0]))];
  }

  /**
   * Runs `plan` on the handle's stream with the device addresses of every non-virtual, non-scalar
   * tensor (by uid); by-value scalars are filled in from their host buffers.
   */
  execute(
    handle: bigint,
    plan: ExecutionPlan,
    pointers: ReadonlyMap<number, bigint>,
    workspace: bigint,
  ): void {
    const uids: number[] = [];
    const ptrs: bigint[] = [];
    for (const t of this.#tensors) {
      if (t.virtual) continue;
      const p = t.byValue ? this.scalarAddress(t.uid) : pointers.get(t.uid);
      if (p === undefined) {
        throw new RangeError(`CudnnGraph.execute: no address for tensor ${t.name} (uid ${t.uid})`);
      }
      uids.push(t.uid);
      ptrs.push(p);
    }
    const pack = new BigUint64Array(1);
    checkCudnn(
      this.#s.cudnnBackendCreateDescriptor(CUDNN_BACKEND.VARIANT_PACK_DESCRIPTOR, pack),
      "cudnnBackendCreateDescriptor(VARIANT_PACK)",
      this.#s,
    );
    try {
      const vp = pack[0];
      const set = (name: number, type: number, n: number, v: BufferSource) =>
        checkCudnn(
          this.#s.cudnnBackendSetAttribute(vp, name, type, BigInt(n), v),
          `variant pack attr ${name}`,
          this.#s,
        );
      set(
        CUDNN_ATTR.VARIANT_PACK_UNIQUE_IDS,
        CUDNN_TYPE.INT64,
        uids.length,
        BigInt64Array.from(uids, BigInt),
      );
      set(
        CUDNN_ATTR.VARIANT_PACK_DATA_POINTERS,
        CUDNN_TYPE.VOID_PTR,
        ptrs.length,
        BigUint64Array.from(ptrs),
      );
      set(CUDNN_ATTR.VARIANT_PACK_WORKSPACE, CUDNN_TYPE.VOID_PTR, 1, BigUint64Array.of(workspace));
      checkCudnn(this.#s.cudnnBackendFinalize(vp), "cudnnBackendFinalize(variant pack)", this.#s);
      checkCudnn(
        this.#s.cudnnBackendExecute(handle, plan.desc, vp),
        "cudnnBackendExecute",
        this.#s,
      );
    } finally {
      this.#s.cudnnBackendDestroyDescriptor(pack[0]);
    }
  }

  /** Destroys every descriptor this graph created (in reverse order); safe to call twice. */
  dispose(): void {
    while (this.#owned.length) {
      const d = this.#owned.pop()!;
      const status = this.#s.cudnnBackendDestroyDescriptor(d);
      if (status !== 0) {
        throw new CudnnError(`cuDNN: cudnnBackendDestroyDescriptor failed (${status})`, status);
      }
    }
    this.#ops.length = 0;
    this.#graph = 0n;
  }
}
