/**
 * A recording stand-in for cuDNN's backend API, for tests on machines without cuDNN: every
 * descriptor, attribute (name, type, count, decoded values), finalize and execution is kept so
 * tests can check the graphs we build. It validates what cuDNN would reject outright (setting an
 * attribute on a finalized or unknown descriptor, finalizing twice, an element count that does
 * not match the buffer) and can be told to refuse execution plans.
 * @module
 */

import { CUDNN_ATTR, CUDNN_BACKEND, CUDNN_TYPE, type CudnnSymbols } from "../ffi/cudnn.ts";

/** One attribute as set. */
export interface FakeAttr {
  /** `cudnnBackendAttributeType_t`. */
  type: number;
  /** Element count passed. */
  count: number;
  /** Decoded elements (bigint for pointer-sized types, boolean for BOOLEAN, number otherwise). */
  values: (number | bigint | boolean)[];
}

/** One descriptor as created. */
export interface FakeDescriptor {
  /** Its handle. */
  id: bigint;
  /** `cudnnBackendDescriptorType_t`. */
  type: number;
  /** Attributes by name. */
  attrs: Map<number, FakeAttr>;
  /** Whether cudnnBackendFinalize succeeded on it. */
  finalized: boolean;
  /** Whether it was destroyed. */
  destroyed: boolean;
}

/** One cudnnBackendExecute call, with the variant pack decoded. */
export interface FakeExecution {
  /** The handle passed. */
  handle: bigint;
  /** The execution plan passed. */
  plan: bigint;
  /** uid -> data pointer. */
  pointers: Map<number, bigint>;
  /** The workspace pointer. */
  workspace: bigint;
}

/** Element size of each attribute type as cuDNN reads it. */
function elementBytes(type: number): number {
  switch (type) {
    case CUDNN_TYPE.BOOLEAN:
      return 1;
    case CUDNN_TYPE.INT64:
    case CUDNN_TYPE.DOUBLE:
    case CUDNN_TYPE.HANDLE:
    case CUDNN_TYPE.VOID_PTR:
    case CUDNN_TYPE.BACKEND_DESCRIPTOR:
      return 8;
    default:
      return 4; // FLOAT, INT32 and every C enum
  }
}

function decode(type: number, count: number, buf: ArrayBufferView): (number | bigint | boolean)[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const size = elementBytes(type);
  if (buf.byteLength < count * size) {
    throw new RangeError(
      `fake cuDNN: ${count} elements of ${size} bytes but a ${buf.byteLength}-byte buffer`,
    );
  }
  const out: (number | bigint | boolean)[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * size;
    switch (type) {
      case CUDNN_TYPE.BOOLEAN:
        out.push(view.getUint8(at) !== 0);
        break;
      case CUDNN_TYPE.INT64:
        out.push(Number(view.getBigInt64(at, true)));
        break;
      case CUDNN_TYPE.FLOAT:
        out.push(view.getFloat32(at, true));
        break;
      case CUDNN_TYPE.DOUBLE:
        out.push(view.getFloat64(at, true));
        break;
      case CUDNN_TYPE.HANDLE:
      case CUDNN_TYPE.VOID_PTR:
      case CUDNN_TYPE.BACKEND_DESCRIPTOR:
        out.push(view.getBigUint64(at, true));
        break;
      default:
        out.push(view.getInt32(at, true));
    }
  }
  return out;
}

/** Options of {@linkcode FakeCudnn}. */
export interface FakeCudnnOptions {
  /** Engine configurations the heuristics report (default 2). */
  engines?: number;
  /** How many execution plans fail to finalize (NOT_SUPPORTED) before one succeeds (default 0). */
  rejectPlans?: number;
  /** Workspace size reported by finalized plans (default 4096). */
  workspaceBytes?: number;
}

/** The recording fake; `symbols` is what the code under test receives. */
export class FakeCudnn {
  readonly descriptors = new Map<bigint, FakeDescriptor>();
  readonly executions: FakeExecution[] = [];
  readonly calls: string[] = [];
  readonly options: Required<FakeCudnnOptions>;
  handle = 0n;
  stream: bigint | null = null;
  #next = 0x1000n;
  #plansRejected = 0;
  readonly #strings: Uint8Array[] = [];

  constructor(options: FakeCudnnOptions = {}) {
    this.options = { engines: 2, rejectPlans: 0, workspaceBytes: 4096, ...options };
  }

  /** The descriptor `id` (throws if unknown). */
  get(id: bigint): FakeDescriptor {
    const d = this.descriptors.get(id);
    if (!d) throw new Error(`fake cuDNN: unknown descriptor ${id}`);
    return d;
  }

  /** Descriptors of one type, in creation order. */
  ofType(type: number): FakeDescriptor[] {
    return [...this.descriptors.values()].filter((d) => d.type === type);
  }

  /** Descriptors not yet destroyed. */
  live(): FakeDescriptor[] {
    return [...this.descriptors.values()].filter((d) => !d.destroyed);
  }

  /** The values of attribute `name` of descriptor `id`. */
  attr(id: bigint, name: number): FakeAttr {
    const a = this.get(id).attrs.get(name);
    if (!a) throw new Error(`fake cuDNN: descriptor ${id} has no attribute ${name}`);
    return a;
  }

  #cString(text: string): Deno.PointerValue {
    const bytes = new TextEncoder().encode(text + "\0");
    this.#strings.push(bytes); // keep alive
    return Deno.UnsafePointer.of(bytes);
  }

  get symbols(): CudnnSymbols {
    const fake = {
      cudnnGetVersion: () => 90600n,
      cudnnGetErrorString: (status: number) => this.#cString(`fake status ${status}`),
      cudnnGetLastErrorString: (buf: Uint8Array, size: bigint) => {
        const msg = new TextEncoder().encode("fake: last error\0");
        buf.set(msg.subarray(0, Math.min(msg.length, Number(size))));
      },
      cudnnCreate: (out: BigUint64Array) => {
        this.calls.push("cudnnCreate");
        out[0] = this.handle = 0xABCn;
        return 0;
      },
      cudnnDestroy: (h: bigint) => {
        this.calls.push("cudnnDestroy");
        return h === this.handle ? 0 : 2000;
      },
      cudnnSetStream: (h: bigint, stream: bigint) => {
        if (h !== this.handle) return 2000;
        this.stream = stream;
        return 0;
      },
      cudnnBackendCreateDescriptor: (type: number, out: BigUint64Array) => {
        const id = this.#next;
        this.#next += 0x10n;
        this.descriptors.set(id, {
          id,
          type,
          attrs: new Map(),
          finalized: false,
          destroyed: false,
        });
        out[0] = id;
        return 0;
      },
      cudnnBackendDestroyDescriptor: (id: bigint) => {
        const d = this.descriptors.get(id);
        if (!d || d.destroyed) return 2000;
        d.destroyed = true;
        return 0;
      },
      cudnnBackendSetAttribute: (
        id: bigint,
        name: number,
        type: number,
        count: bigint,
        buf: ArrayBufferView,
      ) => {
        const d = this.descriptors.get(id);
        if (!d || d.destroyed || d.finalized) return 2000; // BAD_PARAM
        d.attrs.set(name, { type, count: Number(count), values: decode(type, Number(count), buf) });
        return 0;
      },
      cudnnBackendFinalize: (id: bigint) => this.#finalize(id),
      cudnnBackendGetAttribute: (
        id: bigint,
        name: number,
        type: number,
        requested: bigint,
        count: BigInt64Array,
        out: ArrayBufferView,
      ) => {
        const d = this.descriptors.get(id);
        if (!d || !d.finalized) return 2004; // BAD_PARAM_NOT_FINALIZED
        if (
          d.type === CUDNN_BACKEND.ENGINEHEUR_DESCRIPTOR && name === CUDNN_ATTR.ENGINEHEUR_RESULTS
        ) {
          if (type !== CUDNN_TYPE.BACKEND_DESCRIPTOR) return 2010;
          const n = Math.min(this.options.engines, Number(requested) || this.options.engines);
          count[0] = BigInt(this.options.engines);
          // cuDNN fills caller-created ENGINECFG descriptors; mark them as filled.
          for (const cfg of decode(CUDNN_TYPE.BACKEND_DESCRIPTOR, Number(requested) ? n : 0, out)) {
            const c = this.get(cfg as bigint);
            if (c.type !== CUDNN_BACKEND.ENGINECFG_DESCRIPTOR) return 2012;
            c.finalized = true;
          }
          return 0;
        }
        if (
          d.type === CUDNN_BACKEND.EXECUTION_PLAN_DESCRIPTOR &&
          name === CUDNN_ATTR.EXECUTION_PLAN_WORKSPACE_SIZE
        ) {
          if (type !== CUDNN_TYPE.INT64) return 2010;
          count[0] = 1n;
          new DataView(out.buffer, out.byteOffset).setBigInt64(
            0,
            BigInt(this.options.workspaceBytes),
            true,
          );
          return 0;
        }
        return 3000;
      },
      cudnnBackendExecute: (h: bigint, plan: bigint, pack: bigint) => {
        if (h !== this.handle) return 2000;
        if (!this.get(plan).finalized || !this.get(pack).finalized) return 2004;
        const uids = this.attr(pack, CUDNN_ATTR.VARIANT_PACK_UNIQUE_IDS).values as number[];
        const ptrs = this.attr(pack, CUDNN_ATTR.VARIANT_PACK_DATA_POINTERS).values as bigint[];
        const workspace = this.attr(pack, CUDNN_ATTR.VARIANT_PACK_WORKSPACE).values[0] as bigint;
        this.executions.push({
          handle: h,
          plan,
          pointers: new Map(uids.map((u, i) => [u, ptrs[i]])),
          workspace,
        });
        return 0;
      },
    };
    return fake as unknown as CudnnSymbols;
  }

  #finalize(id: bigint): number {
    const d = this.descriptors.get(id);
    if (!d || d.destroyed) return 2000;
    if (d.finalized) return 2000;
    if (d.type === CUDNN_BACKEND.EXECUTION_PLAN_DESCRIPTOR) {
      if (
        !d.attrs.has(CUDNN_ATTR.EXECUTION_PLAN_ENGINE_CONFIG) ||
        !d.attrs.has(CUDNN_ATTR.EXECUTION_PLAN_HANDLE)
      ) return 2000;
      if (this.#plansRejected < this.options.rejectPlans) {
        this.#plansRejected++;
        return 3000; // NOT_SUPPORTED
      }
    }
    d.finalized = true;
    return 0;
  }
}
