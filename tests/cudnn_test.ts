// cuDNN fused attention without cuDNN: the FFI table and enum values against cudnn_graph.h, status
// messages and the missing-library error, which calls go to cuDNN (supports decisions), and the
// CUDA backend's choice of path over a fake device and a fake cuDNN. The graphs themselves are
// checked in tests/cudnn_graph_test.ts.
import assert from "node:assert/strict";
import {
  checkCudnn,
  CUDNN_ATTR,
  CUDNN_BACKEND,
  CUDNN_DATA,
  CUDNN_HEUR_MODE,
  CUDNN_POINTWISE,
  CUDNN_REDUCE_TENSOR,
  CUDNN_SYMBOLS,
  CUDNN_TENSOR_REORDERING,
  CUDNN_TYPE,
  CudnnError,
  cudnnStatusText,
  isCudnnNotSupported,
  loadCudnn,
} from "../ffi/cudnn.ts";
import type { AttentionOptions, View } from "../src/backend/backend.ts";
import { cudnnAttentionUnsupported } from "../src/backend/cuda/cudnn_attention.ts";
import { MASK_VALUE, SDPA_UID } from "../src/backend/cuda/cudnn_sdpa.ts";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import { FakeCudnn } from "./_fake_cudnn.ts";
import { FakeDevice } from "./_fake_cuda_device.ts";
import { address, contiguous, harness, options, qkvViews, view } from "./_cudnn_harness.ts";

// ---- the FFI table and enums ----

Deno.test("cuDNN symbol table: names and C signatures from cudnn_graph.h", () => {
  const sig = (name: keyof typeof CUDNN_SYMBOLS) => {
    const s = CUDNN_SYMBOLS[name];
    return `${s.parameters.join(",")}->${s.result}`;
  };
  assert.deepEqual(Object.keys(CUDNN_SYMBOLS).sort(), [
    "cudnnBackendCreateDescriptor",
    "cudnnBackendDestroyDescriptor",
    "cudnnBackendExecute",
    "cudnnBackendFinalize",
    "cudnnBackendGetAttribute",
    "cudnnBackendSetAttribute",
    "cudnnCreate",
    "cudnnDestroy",
    "cudnnGetErrorString",
    "cudnnGetLastErrorString",
    "cudnnGetVersion",
    "cudnnSetStream",
  ]);
  assert.equal(sig("cudnnGetVersion"), "->usize"); // size_t (void)
  assert.equal(sig("cudnnCreate"), "buffer->i32"); // (cudnnHandle_t*)
  assert.equal(sig("cudnnSetStream"), "usize,usize->i32"); // (handle, cudaStream_t)
  assert.equal(sig("cudnnBackendCreateDescriptor"), "i32,buffer->i32"); // (enum, descriptor*)
  // (descriptor, attribute name enum, attribute type enum, int64_t count, const void*)
  assert.equal(sig("cudnnBackendSetAttribute"), "usize,i32,i32,i64,buffer->i32");
  // (descriptor, name, type, int64_t requested, int64_t* count, void*)
  assert.equal(sig("cudnnBackendGetAttribute"), "usize,i32,i32,i64,buffer,buffer->i32");
  assert.equal(sig("cudnnBackendExecute"), "usize,usize,usize->i32"); // (handle, plan, pack)
  assert.equal(sig("cudnnGetLastErrorString"), "buffer,usize->void"); // (char*, size_t)
});

Deno.test("cuDNN enum values match cudnn_graph.h (cuDNN 9.6.0)", () => {
  // cudnnDataType_t: explicit values in the header.
  assert.deepEqual([CUDNN_DATA.FLOAT, CUDNN_DATA.HALF, CUDNN_DATA.INT32, CUDNN_DATA.BFLOAT16], [
    0,
    2,
    4,
    9,
  ]);
  assert.deepEqual([CUDNN_DATA.INT64, CUDNN_DATA.BOOLEAN], [10, 11]);
  // cudnnBackendDescriptorType_t: implicit, counted in declaration order from POINTWISE = 0
  // (POINTWISE, CONVOLUTION, ENGINE, ENGINECFG, ENGINEHEUR, EXECUTION_PLAN, INTERMEDIATE_INFO,
  // KNOB_CHOICE, KNOB_INFO, LAYOUT_INFO, OP_CONV_FWD, OP_CONV_BWD_FILTER, OP_CONV_BWD_DATA,
  // OP_POINTWISE = 13, OP_GEN_STATS, OPERATIONGRAPH = 15, VARIANT_PACK, TENSOR = 17, MATMUL,
  // OP_MATMUL = 19, OP_BN_FINALIZE, REDUCTION = 21, OP_REDUCTION, OP_BN_BWD_WEIGHTS, RESAMPLE,
  // OP_RESAMPLE_FWD, OP_RESAMPLE_BWD, OP_CONCAT, OP_SIGNAL, OP_NORM_FWD, OP_NORM_BWD,
  // OP_RESHAPE = 30).
  assert.deepEqual(CUDNN_BACKEND, {
    POINTWISE_DESCRIPTOR: 0,
    ENGINE_DESCRIPTOR: 2,
    ENGINECFG_DESCRIPTOR: 3,
    ENGINEHEUR_DESCRIPTOR: 4,
    EXECUTION_PLAN_DESCRIPTOR: 5,
    OPERATION_POINTWISE_DESCRIPTOR: 13,
    OPERATIONGRAPH_DESCRIPTOR: 15,
    VARIANT_PACK_DESCRIPTOR: 16,
    TENSOR_DESCRIPTOR: 17,
    MATMUL_DESCRIPTOR: 18,
    OPERATION_MATMUL_DESCRIPTOR: 19,
    REDUCTION_DESCRIPTOR: 21,
    OPERATION_REDUCTION_DESCRIPTOR: 22,
    OPERATION_RESHAPE_DESCRIPTOR: 30,
  });
  // cudnnBackendAttributeType_t: implicit from HANDLE = 0 (HANDLE, DATA_TYPE, BOOLEAN, INT64,
  // FLOAT, DOUBLE, VOID_PTR, CONVOLUTION_MODE, HEUR_MODE = 8, KNOB_TYPE, NAN_PROPOGATION,
  // NUMERICAL_NOTE, LAYOUT_TYPE, ATTRIB_NAME, POINTWISE_MODE = 14, BACKEND_DESCRIPTOR = 15,
  // GENSTATS_MODE, BN_FINALIZE_STATS_MODE, REDUCTION_OPERATOR_TYPE = 18, BEHAVIOR_NOTE,
  // TENSOR_REORDERING_MODE = 20, RESAMPLE_MODE, PADDING_MODE, INT32 = 23).
  assert.deepEqual(CUDNN_TYPE, {
    HANDLE: 0,
    DATA_TYPE: 1,
    BOOLEAN: 2,
    INT64: 3,
    FLOAT: 4,
    DOUBLE: 5,
    VOID_PTR: 6,
    HEUR_MODE: 8,
    POINTWISE_MODE: 14,
    BACKEND_DESCRIPTOR: 15,
    REDUCTION_OPERATOR_TYPE: 18,
    TENSOR_REORDERING_MODE: 20,
    INT32: 23,
  });
  // cudnnBackendAttributeName_t: explicit values in the header.
  assert.deepEqual(
    [CUDNN_ATTR.POINTWISE_MODE, CUDNN_ATTR.POINTWISE_MATH_PREC, CUDNN_ATTR.POINTWISE_AXIS],
    [0, 1, 9],
  );
  assert.deepEqual([
    CUDNN_ATTR.ENGINEHEUR_MODE,
    CUDNN_ATTR.ENGINEHEUR_OPERATION_GRAPH,
    CUDNN_ATTR.ENGINEHEUR_RESULTS,
  ], [
    200,
    201,
    202,
  ]);
  assert.deepEqual([
    CUDNN_ATTR.EXECUTION_PLAN_HANDLE,
    CUDNN_ATTR.EXECUTION_PLAN_ENGINE_CONFIG,
    CUDNN_ATTR.EXECUTION_PLAN_WORKSPACE_SIZE,
  ], [400, 401, 402]);
  assert.deepEqual([
    CUDNN_ATTR.OPERATION_POINTWISE_PW_DESCRIPTOR,
    CUDNN_ATTR.OPERATION_POINTWISE_XDESC,
    CUDNN_ATTR.OPERATION_POINTWISE_BDESC,
    CUDNN_ATTR.OPERATION_POINTWISE_YDESC,
    CUDNN_ATTR.OPERATION_POINTWISE_TDESC,
  ], [750, 751, 752, 753, 758]);
  assert.deepEqual([CUDNN_ATTR.OPERATIONGRAPH_HANDLE, CUDNN_ATTR.OPERATIONGRAPH_OPS], [800, 801]);
  assert.deepEqual([
    CUDNN_ATTR.TENSOR_BYTE_ALIGNMENT,
    CUDNN_ATTR.TENSOR_DATA_TYPE,
    CUDNN_ATTR.TENSOR_DIMENSIONS,
    CUDNN_ATTR.TENSOR_STRIDES,
    CUDNN_ATTR.TENSOR_UNIQUE_ID,
    CUDNN_ATTR.TENSOR_IS_VIRTUAL,
    CUDNN_ATTR.TENSOR_IS_BY_VALUE,
    CUDNN_ATTR.TENSOR_REORDERING_MODE,
  ], [900, 901, 902, 903, 906, 907, 908, 909]);
  assert.deepEqual([
    CUDNN_ATTR.VARIANT_PACK_UNIQUE_IDS,
    CUDNN_ATTR.VARIANT_PACK_DATA_POINTERS,
    CUDNN_ATTR.VARIANT_PACK_WORKSPACE,
  ], [1000, 1001, 1003]);
  assert.deepEqual([
    CUDNN_ATTR.MATMUL_COMP_TYPE,
    CUDNN_ATTR.OPERATION_MATMUL_ADESC,
    CUDNN_ATTR.OPERATION_MATMUL_BDESC,
    CUDNN_ATTR.OPERATION_MATMUL_CDESC,
    CUDNN_ATTR.OPERATION_MATMUL_DESC,
  ], [1500, 1520, 1521, 1522, 1523]);
  assert.deepEqual([
    CUDNN_ATTR.REDUCTION_OPERATOR,
    CUDNN_ATTR.REDUCTION_COMP_TYPE,
    CUDNN_ATTR.OPERATION_REDUCTION_XDESC,
    CUDNN_ATTR.OPERATION_REDUCTION_YDESC,
    CUDNN_ATTR.OPERATION_REDUCTION_DESC,
  ], [1600, 1601, 1610, 1611, 1612]);
  assert.deepEqual([CUDNN_ATTR.OPERATION_RESHAPE_XDESC, CUDNN_ATTR.OPERATION_RESHAPE_YDESC], [
    2200,
    2201,
  ]);
  // cudnnPointwiseMode_t: explicit values.
  assert.deepEqual(CUDNN_POINTWISE, {
    ADD: 0,
    MUL: 1,
    DIV: 6,
    SUB: 9,
    EXP: 13,
    LOG: 15,
    IDENTITY: 21,
    CMP_GE: 303,
    GEN_INDEX: 501,
    BINARY_SELECT: 601,
  });
  // cudnnReduceTensorOp_t, cudnnBackendHeurMode_t, cudnnBackendTensorReordering_t.
  assert.deepEqual(CUDNN_REDUCE_TENSOR, { ADD: 0, MAX: 3 });
  assert.deepEqual(CUDNN_HEUR_MODE, { INSTANT: 0, B: 1, FALLBACK: 2, A: 3 });
  assert.deepEqual(CUDNN_TENSOR_REORDERING, { NONE: 0, INT8x32: 1, F16x16: 2 });
  // The masked-score value is float's lowest finite value, exactly representable in f32.
  assert.equal(MASK_VALUE, -(2 - 2 ** -23) * 2 ** 127);
  assert.equal(Math.fround(MASK_VALUE), MASK_VALUE);
});

Deno.test("cuDNN status text, checkCudnn and the NOT_SUPPORTED category", () => {
  assert.equal(cudnnStatusText(3001), "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN (3001)");
  assert.equal(cudnnStatusText(77), "unknown cuDNN status (77)");
  const fake = new FakeCudnn();
  assert.equal(
    cudnnStatusText(2000, fake.symbols),
    "CUDNN_STATUS_BAD_PARAM (2000): fake status 2000 [fake: last error]",
  );
  checkCudnn(0, "cudnnCreate");
  assert.throws(() => checkCudnn(3002, "cudnnBackendFinalize(plan)"), (e: unknown) => {
    assert.ok(e instanceof CudnnError);
    assert.equal(e.status, 3002);
    assert.match(
      e.message,
      /^cuDNN: cudnnBackendFinalize\(plan\) failed: CUDNN_STATUS_NOT_SUPPORTED_SHAPE \(3002\)/,
    );
    return true;
  });
  assert.deepEqual([3000, 3001, 3999, 2000, 4000, 0].map(isCudnnNotSupported), [
    true,
    true,
    true,
    false,
    false,
    false,
  ]);
});

Deno.test("missing cuDNN: the error names the override, every path tried, and how to install", () => {
  const saved = Deno.env.get("DENOGRAD_CUDNN");
  try {
    Deno.env.set("DENOGRAD_CUDNN", "/nonexistent/libcudnn.so.9");
    assert.throws(() => loadCudnn(), (e: unknown) => {
      const msg = (e as Error).message;
      assert.match(
        msg,
        /^cuDNN: DENOGRAD_CUDNN=\/nonexistent\/libcudnn\.so\.9 could not be loaded/,
      );
      assert.match(msg, /\/nonexistent\/libcudnn\.so\.9: not found/);
      assert.match(msg, /nvidia-cudnn-cu12/);
      return true;
    });
    Deno.env.delete("DENOGRAD_CUDNN");
    let loaded = false;
    try {
      loadCudnn();
      loaded = true; // a machine with cuDNN: nothing to check here
    } catch (e) {
      const msg = (e as Error).message;
      assert.match(msg, /^cuDNN: no loadable library found\. Tried:/);
      assert.match(msg, /libcudnn\.so\.9: /);
      assert.match(msg, /libcudnn_graph\.so\.9: /);
      assert.match(msg, /set DENOGRAD_CUDNN/);
    }
    if (loaded) {
      console.log(
        "cuDNN is installed here; the missing-library text was checked only via the override",
      );
    }
  } finally {
    if (saved === undefined) Deno.env.delete("DENOGRAD_CUDNN");
    else Deno.env.set("DENOGRAD_CUDNN", saved);
  }
});

// ---- support decisions ----

Deno.test("cudnnAttentionUnsupported: what goes to cuDNN and what falls back", () => {
  const { q, k, v, out, lse } = qkvViews(1, 2, 64, 16);
  const ok = (o: Partial<AttentionOptions> = {}, backward = false) =>
    cudnnAttentionUnsupported(q, k, v, null, null, out, lse, options(o), backward, address);
  assert.equal(ok(), null);
  assert.equal(ok({ causal: false }), null);
  assert.equal(ok({ causal: false, qOffset: 7 }), null, "qOffset only matters for masks");
  assert.equal(ok({}, true), null);
  assert.match(ok({ dropout: 0.1 })!, /dropout/);
  assert.match(ok({ window: 4 })!, /sliding window/);
  assert.match(ok({ qOffset: 3 })!, /qOffset 3/);
  const f32 = { ...q, dtype: "f32" as const };
  assert.match(
    cudnnAttentionUnsupported(f32, k, v, null, null, out, lse, options(), false)!,
    /bf16/,
  );
  const bias = view("f32", [1, 2, 64, 64], [0, 0, 64, 1]);
  assert.match(cudnnAttentionUnsupported(q, k, v, null, bias, out, lse, options(), false)!, /bias/);
  const slopes = view("f32", [2], [1]);
  assert.equal(cudnnAttentionUnsupported(q, k, v, slopes, null, out, lse, options(), false), null);
  assert.match(
    cudnnAttentionUnsupported(q, k, v, slopes, null, out, lse, options({ causal: false }), false)!,
    /ALiBi/,
  );
  // Head sizes: multiples of 8 up to 128.
  for (const [D, good] of [[8, true], [12, false], [128, true], [256, false]] as const) {
    const x = qkvViews(1, 2, 4, D);
    const why = cudnnAttentionUnsupported(
      x.q,
      x.k,
      x.v,
      null,
      null,
      x.out,
      x.lse,
      options(),
      false,
    );
    assert.equal(why === null, good, `D = ${D}: ${why}`);
  }
  // Bottom-right causal: forward any T <= S, backward only with T, S multiples of 64.
  const kv = (S: number, o: number) => view("bf16", [1, 2, S, 16], contiguous([1, 2, S, 16]), o);
  const q5 = view("bf16", [1, 2, 5, 16], contiguous([1, 2, 5, 16]));
  const o5 = view("bf16", [1, 2, 5, 16], contiguous([1, 2, 5, 16]), 1 << 20);
  const l5 = view("f32", [1, 2, 5], contiguous([1, 2, 5]), 1 << 21);
  const br = (backward: boolean) =>
    cudnnAttentionUnsupported(
      q5,
      kv(9, 1 << 16),
      kv(9, 1 << 17),
      null,
      null,
      o5,
      l5,
      options({ qOffset: 4 }),
      backward,
    );
  assert.equal(br(false), null);
  assert.match(br(true)!, /multiples of 64/);
  // Layout: unit stride in D, B/H/T strides in whole 16-byte units, 16-byte aligned addresses.
  const odd = view("bf16", [1, 2, 64, 16], [2 * 64 * 20, 64 * 20, 20 + 1, 1]);
  assert.match(
    cudnnAttentionUnsupported(odd, k, v, null, null, out, lse, options(), false)!,
    /multiples of 8/,
  );
  const shifted = { ...q, offset: 4 };
  assert.match(
    cudnnAttentionUnsupported(shifted, k, v, null, null, out, lse, options(), false, address)!,
    /16-byte aligned/,
  );
  const colMajor = view("bf16", [1, 2, 64, 16], [2048, 1024, 1, 64]);
  assert.match(
    cudnnAttentionUnsupported(colMajor, k, v, null, null, out, lse, options(), false)!,
    /unit stride in D/,
  );
  // tryForward declines unsupported calls without touching cuDNN.
  const { fake, attn } = harness();
  assert.equal(
    attn.tryForward({
      q,
      k,
      v,
      alibiSlopes: null,
      bias: null,
      out,
      lse,
      options: options({ dropout: 0.5 }),
    }),
    false,
  );
  assert.equal(fake.descriptors.size, 0);
  assert.deepEqual(fake.calls, []);
});

// ---- the CUDA backend's choice of path (fake device, fake cuDNN) ----

function backendViews(be: CudaBackend, B: number, H: number, T: number, D: number) {
  const bf16 = (shape: number[]): View => ({
    buffer: be.alloc(shape.reduce((a, b) => a * b, 1) * 2),
    dtype: "bf16",
    shape,
    strides: contiguous(shape),
    offset: 0,
  });
  const lse: View = {
    buffer: be.alloc(B * H * T * 4),
    dtype: "f32",
    shape: [B, H, T],
    strides: contiguous([B, H, T]),
    offset: 0,
  };
  const s = [B, H, T, D];
  return {
    q: bf16(s),
    k: bf16(s),
    v: bf16(s),
    out: bf16(s),
    dout: bf16(s),
    dq: bf16(s),
    dk: bf16(s),
    dv: bf16(s),
    lse,
  };
}

Deno.test("CudaBackend: attention 'cudnn' runs supported calls on cuDNN, the rest on our kernel", () => {
  const dev = new FakeDevice();
  const fake = new FakeCudnn();
  const be = new CudaBackend(dev, { attention: "cudnn", cudnnSymbols: fake.symbols });
  const B = 1, H = 2, T = 16, D = 64;
  const x = backendViews(be, B, H, T, D);
  const allocated = be.memoryStats().allocatedBytes;
  be.attentionForward({
    ...x,
    alibiSlopes: null,
    bias: null,
    options: options(),
  });
  assert.equal(fake.executions.length, 1);
  assert.deepEqual(dev.launches.filter((l) => l.name.startsWith("attention")), []);
  assert.equal(fake.stream, dev.stream, "cuDNN is bound to the backend's stream");
  assert.equal(
    be.memoryStats().allocatedBytes,
    allocated,
    "the workspace went back when the call returned",
  );

  // Backward: the f32 dQ accumulator is zeroed on the device before cuDNN runs.
  const acc0 = dev.launches.length;
  be.attentionBackward({
    ...x,
    alibiSlopes: null,
    bias: null,
    options: options(),
  });
  assert.equal(fake.executions.length, 2);
  assert.equal(dev.launches.length, acc0, "no kernel launched");
  const acc = fake.executions[1].pointers.get(SDPA_UID.DQ_ACCUM)!;
  assert.ok(dev.bytes(acc, B * H * T * D * 4).every((b) => b === 0));
  assert.equal(be.memoryStats().allocatedBytes, allocated);

  // Dropout is not cuDNN's to do: our kernel runs, cuDNN is not asked.
  be.attentionForward({
    ...x,
    alibiSlopes: null,
    bias: null,
    options: options({ dropout: 0.2 }),
  });
  assert.equal(fake.executions.length, 2);
  assert.ok(dev.launches.some((l) => /^attention_forward_(mma_)?bf16_/.test(l.name)));
});

Deno.test("CudaBackend: our kernel is the default; a bad attention option is a TypeError", () => {
  const saved = Deno.env.get("DENOGRAD_ATTENTION");
  try {
    Deno.env.delete("DENOGRAD_ATTENTION");
    const dev = new FakeDevice();
    const fake = new FakeCudnn();
    const be = new CudaBackend(dev, { cudnnSymbols: fake.symbols });
    const x = backendViews(be, 1, 2, 16, 64);
    be.attentionForward({
      ...x,
      alibiSlopes: null,
      bias: null,
      options: options(),
    });
    assert.ok(dev.launches.some((l) => /^attention_forward_(mma_)?bf16_/.test(l.name)));
    assert.deepEqual(fake.calls, [], "cuDNN never touched");
    assert.equal(fake.descriptors.size, 0);

    // DENOGRAD_ATTENTION=cudnn selects cuDNN when no option is given.
    Deno.env.set("DENOGRAD_ATTENTION", "cudnn");
    const dev2 = new FakeDevice();
    const fake2 = new FakeCudnn();
    const be2 = new CudaBackend(dev2, { cudnnSymbols: fake2.symbols });
    const y = backendViews(be2, 1, 2, 16, 64);
    be2.attentionForward({
      ...y,
      alibiSlopes: null,
      bias: null,
      options: options(),
    });
    assert.equal(fake2.executions.length, 1);
  } finally {
    if (saved === undefined) Deno.env.delete("DENOGRAD_ATTENTION");
    else Deno.env.set("DENOGRAD_ATTENTION", saved);
  }
  assert.throws(
    () => new CudaBackend(new FakeDevice(), { attention: "tensorrt" as "cudnn" }),
    /CudaBackend: attention must be "flash" or "cudnn", got tensorrt/,
  );
});
