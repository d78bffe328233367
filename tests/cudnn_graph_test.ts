// The cuDNN SDPA graphs we build, checked descriptor by descriptor through a recording fake of
// the backend API (tests/_fake_cudnn.ts): op order, tensor uids, dims and strides of strided
// (B, H, T, D) views, virtual and by-value flags, the causal/ALiBi mask ops, heuristics and plans,
// the variant pack, plan caching and fallback when cuDNN rejects a graph.
import assert from "node:assert/strict";
import {
  CUDNN_ATTR,
  CUDNN_BACKEND,
  CUDNN_DATA,
  CUDNN_HEUR_MODE,
  CUDNN_TENSOR_REORDERING,
} from "../ffi/cudnn.ts";
import { MASK_VALUE, SDPA_UID } from "../src/backend/cuda/cudnn_sdpa.ts";
import {
  address,
  assertTopological,
  BASE,
  contiguous,
  graphOps,
  harness,
  options,
  qkvViews,
  readF32,
  readI32,
  view,
} from "./_cudnn_harness.ts";

// ---- the forward graph ----

Deno.test("cuDNN SDPA forward: causal graph over strided qkv views, op by op", () => {
  const B = 2, H = 3, T = 5, D = 16;
  const { q, k, v, out, lse } = qkvViews(B, H, T, D);
  const { fake, attn, scratch } = harness();
  assert.equal(
    attn.tryForward({ q, k, v, alibiSlopes: null, bias: null, out, lse, options: options() }),
    true,
  );
  assert.equal(fake.stream, 0x77n, "the handle is bound to the backend's stream");

  const ops = graphOps(fake);
  assert.deepEqual(ops.map((o) => o.label), [
    "matmul", // S = Q K^T
    "MUL", // * scale
    "GEN_INDEX", // row
    "GEN_INDEX", // col
    "CMP_GE", // row >= col
    "BINARY_SELECT", // masked
    "max",
    "SUB",
    "EXP",
    "sum",
    "LOG",
    "ADD", // Stats = max + log(sum)
    "DIV", // P = E / sum
    "matmul", // O = P V
  ]);
  assertTopological(ops);
  const row = 3 * H * D;
  const [mm1, scale, genRow, genCol, ge, select, max, sub, exp, sum, log, stats, div, mm2] = ops;
  // Q and K^T are the caller's strided views; K^T swaps the last two dims and strides.
  assert.deepEqual(mm1.x, {
    ...mm1.x,
    uid: SDPA_UID.Q,
    dtype: CUDNN_DATA.BFLOAT16,
    dims: [B, H, T, D],
    strides: [T * row, D, row, 1],
    virtual: false,
  });
  assert.deepEqual(mm1.b, {
    ...mm1.b!,
    uid: SDPA_UID.K,
    dtype: CUDNN_DATA.BFLOAT16,
    dims: [B, H, D, T],
    strides: [T * row, D, 1, row],
    virtual: false,
  });
  assert.deepEqual([mm1.y.dims, mm1.y.strides, mm1.y.virtual, mm1.y.dtype], [
    [B, H, T, T],
    [H * T * T, T * T, T, 1],
    true,
    CUDNN_DATA.FLOAT,
  ]);
  // Scale: S * by-value f32 scalar.
  assert.equal(scale.x.id, mm1.y.id);
  assert.deepEqual([
    scale.b!.uid,
    scale.b!.byValue,
    scale.b!.virtual,
    scale.b!.dims,
    scale.b!.dtype,
  ], [SDPA_UID.SCALE, true, false, [1, 1, 1, 1], CUDNN_DATA.FLOAT]);
  // Causal mask: row index (axis 2) >= column index (axis 3), int32, boolean compare, select.
  assert.deepEqual([genRow.axis, genRow.compute, genRow.y.dtype, genRow.x.id], [
    2,
    CUDNN_DATA.INT32,
    CUDNN_DATA.INT32,
    scale.y.id,
  ]);
  assert.deepEqual([genCol.axis, genCol.compute, genCol.y.dtype, genCol.x.id], [
    3,
    CUDNN_DATA.INT32,
    CUDNN_DATA.INT32,
    scale.y.id,
  ]);
  assert.deepEqual([ge.x.id, ge.b!.id, ge.compute, ge.y.dtype], [
    genRow.y.id,
    genCol.y.id,
    CUDNN_DATA.BOOLEAN,
    CUDNN_DATA.BOOLEAN,
  ]);
  assert.deepEqual([select.x.id, select.b!.uid, select.b!.byValue, select.t!.id], [
    scale.y.id,
    SDPA_UID.NEG_INF,
    true,
    ge.y.id,
  ]);
  // Softmax with stats.
  assert.deepEqual([max.x.id, max.y.dims, max.y.virtual], [select.y.id, [B, H, T, 1], true]);
  assert.deepEqual([sub.x.id, sub.b!.id], [select.y.id, max.y.id]);
  assert.equal(exp.x.id, sub.y.id);
  assert.deepEqual([sum.x.id, sum.y.dims], [exp.y.id, [B, H, T, 1]]);
  assert.equal(log.x.id, sum.y.id);
  assert.deepEqual([stats.x.id, stats.b!.id], [max.y.id, log.y.id]);
  assert.deepEqual(stats.y, {
    ...stats.y,
    uid: SDPA_UID.STATS,
    dtype: CUDNN_DATA.FLOAT,
    dims: [B, H, T, 1],
    strides: [H * T, T, 1, 1],
    virtual: false,
  });
  assert.deepEqual([div.x.id, div.b!.id, div.y.dtype, div.y.virtual], [
    exp.y.id,
    sum.y.id,
    CUDNN_DATA.BFLOAT16,
    true,
  ]);
  // O = P V, V strided, O contiguous.
  assert.equal(mm2.x.id, div.y.id);
  assert.deepEqual(mm2.b, {
    ...mm2.b!,
    uid: SDPA_UID.V,
    dims: [B, H, T, D],
    strides: [T * row, D, row, 1],
    virtual: false,
  });
  assert.deepEqual(mm2.y, {
    ...mm2.y,
    uid: SDPA_UID.O,
    dtype: CUDNN_DATA.BFLOAT16,
    dims: [B, H, T, D],
    strides: contiguous([B, H, T, D]),
    virtual: false,
  });
  // Virtual uids are unique.
  const virtualUids = ops.flatMap((o) => [o.x, o.b, o.t, o.y]).filter((t) => t?.virtual).map((
    t,
  ) => [t!.id, t!.uid]);
  assert.equal(
    new Set(virtualUids.map(([, u]) => u)).size,
    new Set(virtualUids.map(([id]) => id)).size,
  );

  // Heuristics (mode A) and the plan from the first engine configuration.
  const heur = fake.ofType(CUDNN_BACKEND.ENGINEHEUR_DESCRIPTOR)[0];
  assert.deepEqual(fake.attr(heur.id, CUDNN_ATTR.ENGINEHEUR_MODE).values, [CUDNN_HEUR_MODE.A]);
  const plans = fake.ofType(CUDNN_BACKEND.EXECUTION_PLAN_DESCRIPTOR);
  assert.equal(plans.length, 1);
  const cfgs = fake.ofType(CUDNN_BACKEND.ENGINECFG_DESCRIPTOR);
  assert.deepEqual(fake.attr(plans[0].id, CUDNN_ATTR.EXECUTION_PLAN_ENGINE_CONFIG).values, [
    cfgs[0].id,
  ]);

  // The variant pack: every non-virtual tensor, caller addresses, by-value scalars on the host.
  assert.equal(fake.executions.length, 1);
  const run = fake.executions[0];
  assert.equal(run.plan, plans[0].id);
  assert.deepEqual([...run.pointers.keys()].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(run.pointers.get(SDPA_UID.Q), BASE);
  assert.equal(run.pointers.get(SDPA_UID.K), BASE + BigInt(H * D * 2));
  assert.equal(run.pointers.get(SDPA_UID.V), BASE + BigInt(2 * H * D * 2));
  assert.equal(run.pointers.get(SDPA_UID.O), address(out));
  assert.equal(run.pointers.get(SDPA_UID.STATS), address(lse));
  assert.equal(readF32(run.pointers.get(SDPA_UID.SCALE)!), 0.125);
  assert.equal(readF32(run.pointers.get(SDPA_UID.NEG_INF)!), MASK_VALUE);
  assert.deepEqual(scratch, [run.workspace], "the workspace (4096 bytes here) comes from scratch");
});

Deno.test("cuDNN SDPA forward: plans are cached per layout; the scale is set per call", () => {
  const { q, k, v, out, lse } = qkvViews(1, 2, 8, 8);
  const { fake, attn } = harness();
  assert.ok(
    attn.tryForward({
      q,
      k,
      v,
      alibiSlopes: null,
      bias: null,
      out,
      lse,
      options: options({ scale: 0.5 }),
    }),
  );
  const descriptors = fake.descriptors.size;
  assert.ok(
    attn.tryForward({
      q,
      k,
      v,
      alibiSlopes: null,
      bias: null,
      out,
      lse,
      options: options({ scale: 0.25 }),
    }),
  );
  assert.equal(fake.descriptors.size, descriptors + 1, "only a new variant pack");
  assert.equal(fake.executions[0].plan, fake.executions[1].plan);
  assert.equal(readF32(fake.executions[1].pointers.get(SDPA_UID.SCALE)!), 0.25);
  // A different mask is a different graph.
  assert.ok(
    attn.tryForward({
      q,
      k,
      v,
      alibiSlopes: null,
      bias: null,
      out,
      lse,
      options: options({ causal: false }),
    }),
  );
  assert.equal(fake.ofType(CUDNN_BACKEND.OPERATIONGRAPH_DESCRIPTOR).length, 2);
  assert.deepEqual(graphOps(fake).map((o) => o.label), [
    "matmul",
    "MUL",
    "max",
    "SUB",
    "EXP",
    "sum",
    "LOG",
    "ADD",
    "DIV",
    "matmul",
  ]);
  // dispose destroys every descriptor and the handle.
  attn.dispose();
  assert.deepEqual(fake.live(), []);
  assert.deepEqual(fake.calls, ["cudnnCreate", "cudnnDestroy"]);
});

Deno.test("cuDNN SDPA: engines that fail to finalize are skipped; no engine means fallback, remembered", () => {
  const { q, k, v, out, lse } = qkvViews(1, 2, 8, 8);
  const skip = harness({ rejectPlans: 1 });
  assert.ok(
    skip.attn.tryForward({ q, k, v, alibiSlopes: null, bias: null, out, lse, options: options() }),
  );
  const cfgs = skip.fake.ofType(CUDNN_BACKEND.ENGINECFG_DESCRIPTOR);
  const plans = skip.fake.ofType(CUDNN_BACKEND.EXECUTION_PLAN_DESCRIPTOR);
  assert.deepEqual(plans.map((p) => p.finalized), [false, true]);
  assert.deepEqual(skip.fake.attr(plans[1].id, CUDNN_ATTR.EXECUTION_PLAN_ENGINE_CONFIG).values, [
    cfgs[1].id,
  ]);

  const none = harness({ engines: 0 });
  assert.equal(
    none.attn.tryForward({ q, k, v, alibiSlopes: null, bias: null, out, lse, options: options() }),
    false,
  );
  assert.equal(none.fake.executions.length, 0);
  // Both heuristic modes were asked (A, then FALLBACK).
  const modes = none.fake.ofType(CUDNN_BACKEND.ENGINEHEUR_DESCRIPTOR).map((h) =>
    none.fake.attr(h.id, CUDNN_ATTR.ENGINEHEUR_MODE).values[0]
  );
  assert.deepEqual(modes, [CUDNN_HEUR_MODE.A, CUDNN_HEUR_MODE.FALLBACK]);
  assert.deepEqual(none.fake.live(), [], "the rejected graph's descriptors are destroyed");
  assert.match(
    none.attn.reason(q, k, v, null, null, out, lse, options())!,
    /no engine supports this graph/,
  );
  const created = none.fake.descriptors.size;
  assert.equal(
    none.attn.tryForward({ q, k, v, alibiSlopes: null, bias: null, out, lse, options: options() }),
    false,
  );
  assert.equal(none.fake.descriptors.size, created, "not rebuilt");
});

Deno.test("cuDNN SDPA forward: ALiBi adds (col - row) * slope before the causal mask", () => {
  const B = 1, H = 4, T = 8, D = 8;
  const { q, k, v, out, lse } = qkvViews(B, H, T, D);
  const slopes = view("f32", [H], [1], 1 << 22);
  const { fake, attn } = harness();
  assert.ok(
    attn.tryForward({ q, k, v, alibiSlopes: slopes, bias: null, out, lse, options: options() }),
  );
  const ops = graphOps(fake);
  assert.deepEqual(ops.slice(0, 11).map((o) => o.label), [
    "matmul",
    "MUL",
    "GEN_INDEX",
    "GEN_INDEX",
    "SUB",
    "MUL",
    "ADD",
    "GEN_INDEX",
    "GEN_INDEX",
    "CMP_GE",
    "BINARY_SELECT",
  ]);
  assertTopological(ops);
  const [, scale, row, col, diff, bias, add, , , , select] = ops;
  assert.deepEqual([row.axis, col.axis], [2, 3]);
  assert.deepEqual(
    [diff.x.id, diff.b!.id, diff.compute],
    [col.y.id, row.y.id, CUDNN_DATA.INT32],
    "col - row",
  );
  assert.deepEqual(bias.b, {
    ...bias.b!,
    uid: SDPA_UID.SLOPES,
    dtype: CUDNN_DATA.FLOAT,
    dims: [1, H, 1, 1],
    strides: [H, 1, 1, 1],
    virtual: false,
  });
  assert.deepEqual([add.x.id, add.b!.id], [scale.y.id, bias.y.id]);
  assert.equal(select.x.id, add.y.id);
  assert.equal(fake.executions[0].pointers.get(SDPA_UID.SLOPES), address(slopes));
});

Deno.test("cuDNN SDPA forward: bottom-right causal (qOffset = S - T) shifts the row index", () => {
  const B = 1, H = 2, T = 3, S = 11, D = 8;
  const q = view("bf16", [B, H, T, D], contiguous([B, H, T, D]));
  const k = view("bf16", [B, H, S, D], contiguous([B, H, S, D]), 4096);
  const v = view("bf16", [B, H, S, D], contiguous([B, H, S, D]), 8192);
  const out = view("bf16", [B, H, T, D], contiguous([B, H, T, D]), 12288);
  const lse = view("f32", [B, H, T], contiguous([B, H, T]), 16384);
  const { fake, attn } = harness();
  assert.ok(
    attn.tryForward({
      q,
      k,
      v,
      alibiSlopes: null,
      bias: null,
      out,
      lse,
      options: options({ qOffset: S - T }),
    }),
  );
  const ops = graphOps(fake);
  assert.deepEqual(ops.slice(2, 7).map((o) => o.label), [
    "GEN_INDEX",
    "ADD",
    "GEN_INDEX",
    "CMP_GE",
    "BINARY_SELECT",
  ]);
  const [row, shift, col, ge] = ops.slice(2, 6);
  assert.deepEqual([shift.x.id, shift.b!.uid, shift.b!.dtype, shift.b!.byValue, shift.compute], [
    row.y.id,
    SDPA_UID.Q_OFFSET,
    CUDNN_DATA.INT32,
    true,
    CUDNN_DATA.INT32,
  ]);
  assert.deepEqual([ge.x.id, ge.b!.id], [shift.y.id, col.y.id]);
  assert.deepEqual(ops[0].b!.dims, [B, H, D, S]);
  assert.deepEqual(ops[0].y.dims, [B, H, T, S]);
  assert.equal(readI32(fake.executions[0].pointers.get(SDPA_UID.Q_OFFSET)!), S - T);
});

// ---- the backward graph ----

Deno.test("cuDNN SDPA backward: grouped-query causal graph, op by op", () => {
  const B = 2, H = 4, Hkv = 2, T = 6, D = 8;
  const q = view("bf16", [B, H, T, D], contiguous([B, H, T, D]));
  const kvStrides = [T * 2 * Hkv * D, D, 2 * Hkv * D, 1]; // (B, Hkv, S, D) inside a (B, S, 2, Hkv, D) kv buffer
  const k = view("bf16", [B, Hkv, T, D], kvStrides, 1 << 16);
  const v = view("bf16", [B, Hkv, T, D], kvStrides, (1 << 16) + Hkv * D);
  const out = view("bf16", [B, H, T, D], contiguous([B, H, T, D]), 1 << 17);
  const dout = view("bf16", [B, H, T, D], contiguous([B, H, T, D]), 1 << 18);
  const lse = view("f32", [B, H, T], contiguous([B, H, T]), 1 << 19);
  const dq = view("bf16", [B, H, T, D], contiguous([B, H, T, D]), 1 << 20);
  const dk = view("bf16", [B, Hkv, T, D], contiguous([B, Hkv, T, D]), 1 << 21);
  const dv = view("bf16", [B, Hkv, T, D], contiguous([B, Hkv, T, D]), 1 << 22);
  const { fake, attn, scratch, zeroed } = harness();
  assert.ok(
    attn.tryBackward({
      q,
      k,
      v,
      alibiSlopes: null,
      bias: null,
      out,
      dout,
      lse,
      dq,
      dk,
      dv,
      options: options({ scale: 0.3 }),
    }),
  );
  const ops = graphOps(fake);
  assert.deepEqual(ops.map((o) => o.label), [
    "MUL", // dO * O
    "sum", // rowsum
    "MUL", // * 1 (dropout keep probability)
    "matmul", // S = Q K^T
    "MUL", // * scale
    "GEN_INDEX",
    "GEN_INDEX",
    "CMP_GE",
    "BINARY_SELECT",
    "SUB", // - Stats
    "EXP", // P
    "reshape", // P^T
    "matmul", // P^T dO per query head
    "sum", // over the heads of a kv group -> dV
    "matmul", // dP = dO V^T
    "MUL", // * 1 (dropout mask)
    "SUB", // - Dsum
    "MUL", // * P
    "MUL", // * scale -> dS
    "reshape", // dS^T
    "matmul", // dS^T Q per query head
    "sum", // -> dK
    "reshape", // K^T -> K
    "matmul", // dS K -> dQ accumulator
    "IDENTITY", // -> dQ
  ]);
  assertTopological(ops);
  const [
    mulDoO,
    rowsum,
    dsum,
    mm1,
    ,
    ,
    ,
    ,
    select,
    subStats,
    exp,
    pT,
    mmDv,
    sumDv,
    mmDp,
    keep,
    subDsum,
    mulP,
    mulScale,
    dST,
    mmDk,
    sumDk,
    kk,
    mmDq,
    ident,
  ] = ops;
  assert.deepEqual([mulDoO.x.uid, mulDoO.b!.uid], [SDPA_UID.DO, SDPA_UID.O]);
  assert.deepEqual([rowsum.x.id, rowsum.y.dims], [mulDoO.y.id, [B, H, T, 1]]);
  assert.deepEqual([dsum.x.id, dsum.b!.uid, dsum.b!.byValue], [rowsum.y.id, SDPA_UID.ONE, true]);
  assert.deepEqual([mm1.x.uid, mm1.b!.uid, mm1.b!.dims, mm1.b!.strides], [SDPA_UID.Q, SDPA_UID.K, [
    B,
    Hkv,
    D,
    T,
  ], [kvStrides[0], D, 1, kvStrides[2]]]);
  assert.deepEqual([subStats.x.id, subStats.b!.uid, subStats.b!.dims], [
    select.y.id,
    SDPA_UID.STATS,
    [B, H, T, 1],
  ]);
  assert.equal(exp.x.id, subStats.y.id);
  assert.deepEqual([pT.x.id, pT.y.dims, pT.y.strides, pT.y.dtype, pT.y.virtual], [
    exp.y.id,
    [B, H, T, T],
    [H * T * T, T * T, 1, T],
    CUDNN_DATA.BFLOAT16,
    true,
  ]);
  assert.deepEqual([mmDv.x.id, mmDv.b!.uid, mmDv.y.dims, mmDv.y.virtual], [pT.y.id, SDPA_UID.DO, [
    B,
    H,
    T,
    D,
  ], true]);
  assert.deepEqual([sumDv.x.id, sumDv.y.uid, sumDv.y.dims, sumDv.y.strides], [
    mmDv.y.id,
    SDPA_UID.DV,
    [B, Hkv, T, D],
    contiguous([B, Hkv, T, D]),
  ]);
  assert.deepEqual([mmDp.x.uid, mmDp.b!.uid, mmDp.b!.dims, mmDp.b!.strides], [
    SDPA_UID.DO,
    SDPA_UID.V,
    [B, Hkv, D, T],
    [kvStrides[0], D, 1, kvStrides[2]],
  ]);
  assert.deepEqual([keep.x.id, keep.b!.uid], [mmDp.y.id, SDPA_UID.ONE]);
  assert.deepEqual([subDsum.x.id, subDsum.b!.id], [keep.y.id, dsum.y.id]);
  assert.deepEqual([mulP.x.id, mulP.b!.id], [subDsum.y.id, exp.y.id]);
  assert.deepEqual([mulScale.x.id, mulScale.b!.uid], [mulP.y.id, SDPA_UID.SCALE]);
  assert.deepEqual([dST.x.id, dST.y.dims, dST.y.strides], [mulScale.y.id, [B, H, T, T], [
    H * T * T,
    T * T,
    1,
    T,
  ]]);
  assert.deepEqual([mmDk.x.id, mmDk.b!.uid], [dST.y.id, SDPA_UID.Q]);
  assert.deepEqual([sumDk.x.id, sumDk.y.uid, sumDk.y.dims], [mmDk.y.id, SDPA_UID.DK, [
    B,
    Hkv,
    T,
    D,
  ]]);
  assert.deepEqual([kk.x.uid, kk.y.dims, kk.y.strides, kk.y.virtual], [
    SDPA_UID.K,
    [B, Hkv, T, D],
    kvStrides,
    true,
  ]);
  assert.deepEqual([mmDq.x.id, mmDq.b!.id], [mulScale.y.id, kk.y.id]);
  assert.deepEqual(mmDq.y, {
    ...mmDq.y,
    uid: SDPA_UID.DQ_ACCUM,
    dtype: CUDNN_DATA.FLOAT,
    dims: [B, H, T, D],
    strides: contiguous([B, H, T, D]),
    virtual: false,
    reordering: CUDNN_TENSOR_REORDERING.F16x16,
  });
  assert.deepEqual([ident.x.id, ident.y.uid, ident.y.dtype], [
    mmDq.y.id,
    SDPA_UID.DQ,
    CUDNN_DATA.BFLOAT16,
  ]);

  // Variant pack: inputs, gradients, scalars, and the zeroed f32 accumulator from scratch.
  const run = fake.executions[0];
  assert.deepEqual([...run.pointers.keys()].sort((a, b) => a - b), [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    10,
    11,
    12,
    13,
    14,
    15,
  ]);
  assert.equal(run.pointers.get(SDPA_UID.V), address(v));
  assert.equal(run.pointers.get(SDPA_UID.DK), address(dk));
  const acc = run.pointers.get(SDPA_UID.DQ_ACCUM)!;
  assert.deepEqual(zeroed, [[acc, B * H * T * D * 4]]);
  assert.deepEqual(scratch, [acc, run.workspace]);
  assert.equal(readF32(run.pointers.get(SDPA_UID.SCALE)!), Math.fround(0.3));
  assert.equal(readF32(run.pointers.get(SDPA_UID.ONE)!), 1);
});

Deno.test("cuDNN SDPA backward: equal heads write dK and dV straight from the matmuls", () => {
  const { q, k, v, out, lse } = qkvViews(1, 2, 4, 8);
  const g = (o: number) => view("bf16", [1, 2, 4, 8], contiguous([1, 2, 4, 8]), o);
  const { fake, attn } = harness();
  assert.ok(
    attn.tryBackward({
      q,
      k,
      v,
      alibiSlopes: null,
      bias: null,
      out,
      dout: g(1 << 20),
      lse,
      dq: g(1 << 21),
      dk: g(1 << 22),
      dv: g(1 << 23),
      options: options({ causal: false }),
    }),
  );
  const ops = graphOps(fake);
  assert.equal(ops.filter((o) => o.label === "sum").length, 1, "only the rowsum(dO * O) reduction");
  const mms = ops.filter((o) => o.label === "matmul");
  assert.deepEqual(mms.map((m) => m.y.uid), [
    mms[0].y.uid,
    SDPA_UID.DV,
    mms[2].y.uid,
    SDPA_UID.DK,
    SDPA_UID.DQ_ACCUM,
  ]);
  assert.equal(ops.some((o) => o.label === "BINARY_SELECT"), false);
});

Deno.test("cuDNN SDPA backward: a rejected graph is reported by reason(backward) and not rebuilt", () => {
  const { q, k, v, out, lse } = qkvViews(1, 2, 8, 8);
  const g = (o: number) => view("bf16", [1, 2, 8, 8], contiguous([1, 2, 8, 8]), o);
  const { fake, attn } = harness({ engines: 0 });
  const args = {
    q,
    k,
    v,
    alibiSlopes: null,
    bias: null,
    out,
    dout: g(1 << 20),
    lse,
    dq: g(1 << 21),
    dk: g(1 << 22),
    dv: g(1 << 23),
  };
  assert.equal(attn.tryBackward({ ...args, options: options() }), false);
  assert.match(attn.reason(q, k, v, null, null, out, lse, options(), true)!, /no engine supports/);
  assert.equal(
    attn.reason(q, k, v, null, null, out, lse, options()),
    null,
    "the forward is still worth trying",
  );
  const created = fake.descriptors.size;
  assert.equal(attn.tryBackward({ ...args, options: options() }), false);
  assert.equal(fake.descriptors.size, created);
});
