// The CPU backend's matmul paths agree, and a missing OpenBLAS degrades to the fallback loudly once.
import assert from "node:assert/strict";
import type { View } from "../mod.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { BufferPool } from "../src/backend/cpu/buffer.ts";
import { normalArray } from "../src/random.ts";

function view(be: CpuBackend, data: Float32Array, shape: number[], strides: number[]): View {
  const buffer = be.alloc(data.length * 4);
  be.write(buffer, data);
  return { buffer, dtype: "f32", shape, strides, offset: 0 };
}

Deno.test("OpenBLAS and the TypeScript fallback give the same matmul, transposed or not", () => {
  const blas = new CpuBackend();
  const ts = new CpuBackend({ blas: false });
  for (
    const [m, k, n, ta, tb] of [[7, 5, 3, false, false], [33, 17, 9, true, false], [
      16,
      40,
      8,
      true,
      true,
    ]] as const
  ) {
    const a = normalArray(m * k), b = normalArray(k * n);
    const results = [blas, ts].map((be) => {
      const av = view(be, a, [m, k], ta ? [1, m] : [k, 1]); // ta: storage is (k, m), seen transposed
      const bv = view(be, b, [k, n], tb ? [1, k] : [n, 1]);
      const out = view(be, new Float32Array(m * n), [m, n], [n, 1]);
      be.matmul(av, bv, out, { transA: false, transB: false });
      return be.read(out.buffer, "f32", 0, m * n);
    });
    results[0].forEach((v, i) =>
      assert.ok(Math.abs(v - results[1][i]) < 1e-4, `[${m},${k},${n}] at ${i}`)
    );
  }
});

Deno.test("without OpenBLAS the CPU backend warns once on stderr and still computes", async () => {
  const script = `
    import { matmul, tensor } from "${new URL("../mod.ts", import.meta.url)}";
    const a = tensor([[1, 2], [3, 4]]);
    console.log(JSON.stringify(matmul(a, a).toArray()), JSON.stringify(matmul(a, a).toArray()));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { DENOGRAD_OPENBLAS: "/nonexistent/libopenblas.so.0" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.equal(stdout.trim(), "[[7,10],[15,22]] [[7,10],[15,22]]");
  const warnings = stderr.split("\n").filter((l) => l.includes("falls back"));
  assert.equal(warnings.length, 1, stderr);
  assert.match(stderr, /libopenblas0-pthread/);
  assert.match(stderr, /nonexistent/);
});

Deno.test("the CPU buffer pool reuses freed memory by size and drops the oldest over its limit", () => {
  const pool = new BufferPool(100);
  const [a, b, c] = [pool.take(40), pool.take(40), pool.take(40)];
  pool.give(a);
  pool.give(b);
  assert.equal(pool.cachedBytes, 80);
  pool.give(c); // over the limit: a, cached first, goes
  assert.equal(pool.cachedBytes, 80);
  assert.equal(pool.take(40).data, c.data); // most recently freed first
  assert.equal(pool.take(40).data, b.data);
  assert.notEqual(pool.take(40).data, a.data); // a was dropped: fresh memory
  assert.equal(pool.cachedBytes, 0);
  const none = new BufferPool(0);
  none.give(none.take(8));
  assert.equal(none.cachedBytes, 0);
});

Deno.test("the CPU buffer pool's bookkeeping is bounded by the blocks it holds, not by frees", () => {
  const pool = new BufferPool(1 << 20);
  // A training loop under the limit: the same few sizes taken and given back, a million times.
  for (let i = 0; i < 1_000_000; i++) pool.give(pool.take(4 * (1 + (i % 3))));
  assert.equal(pool.cachedBlocks, 3);
  assert.equal(pool.cachedBytes, 4 + 8 + 12);
  const b = pool.take(8);
  pool.give(b);
  pool.give(b); // a second give of the same memory caches it once
  assert.equal(pool.cachedBlocks, 3);
  pool.clear();
  assert.equal(pool.cachedBlocks, 0);
});
