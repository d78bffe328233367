import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  openSafetensors,
  SafetensorsError,
  tensor,
  writeFileAtomic,
  writeSafetensors,
} from "../mod.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_st_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A safetensors file from a header object and data bytes, with an optional length override. */
function rawFile(header: unknown, data: Uint8Array, declaredLength?: number): Uint8Array {
  const json = typeof header === "string" ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  const v = new DataView(out.buffer);
  const n = declaredLength ?? h.length;
  v.setUint32(0, n % 2 ** 32, true);
  v.setUint32(4, Math.floor(n / 2 ** 32), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("writeSafetensors then openSafetensors round-trips names, shapes, values and metadata", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    const a = tensor([[1.5, -2, 3.25], [4, 5, 6e-30]]);
    const ids = tensor(new Int32Array([7, -8, 2 ** 31 - 1]), { shape: [3, 1] });
    const scalar = tensor(42);
    const empty = tensor(new Float32Array(0), { shape: [0, 4] });
    await writeSafetensors(path, { a, ids, scalar, empty }, { format: "pt", note: "ünïcode" });
    using file = await openSafetensors(path);
    assert.deepEqual(file.metadata, { format: "pt", note: "ünïcode" });
    assert.deepEqual(file.names.sort(), ["a", "empty", "ids", "scalar"]);
    assert.deepEqual(file.info("a"), { name: "a", dtype: "F32", shape: [2, 3], begin: 0, end: 24 });
    assert.equal(file.info("ids")!.dtype, "I32");
    assert.equal(file.dataOffset % 8, 0, "the header is padded to a multiple of 8");
    assert.deepEqual(await file.read("a"), a.toTypedArray());
    assert.deepEqual(await file.read("ids"), new Int32Array([7, -8, 2 ** 31 - 1]));
    assert.deepEqual(await file.read("scalar"), new Float32Array([42]));
    assert.deepEqual(await file.read("empty"), new Float32Array(0));
    const t = await file.readTensor("ids");
    assert.deepEqual(t.shape, [3, 1]);
    assert.equal(t.dtype, "i32");
    t.dispose();
    for (const x of [a, ids, scalar, empty]) x.dispose();
  });
});

Deno.test("the written header is JSON padded with spaces, readable by any safetensors reader", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    const x = tensor([1, 2, 3]);
    await writeSafetensors(path, [["x", x]]);
    x.dispose();
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{.*\} *$/);
    const data = bytes.subarray(8 + n);
    const sha = createHash("sha256").update(data).digest("hex");
    assert.deepEqual(JSON.parse(text), {
      __metadata__: { tensor_sha256: JSON.stringify({ x: sha }) },
      x: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
    });
    assert.equal(bytes.length, 8 + n + 12);
  });
});

Deno.test("a flipped bit in a tensor is an error naming it; other tensors still read", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    const a = tensor([1, 2, 3]), b = tensor([4, 5]);
    await writeSafetensors(path, [["a", a], ["b", b]], { note: "kept" });
    a.dispose();
    b.dispose();
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    bytes[8 + n + 13] ^= 0x10; // a bit of b's first element
    await Deno.writeFile(path, bytes);
    using file = await openSafetensors(path);
    assert.equal(file.checksummed, true);
    assert.deepEqual(file.metadata, { note: "kept" }); // the checksums are not the caller's
    assert.deepEqual([...await file.read("a")], [1, 2, 3]);
    await assert.rejects(file.read("b"), {
      name: "SafetensorsError",
      message: new RegExp(`^safetensors ${path}: "b" is corrupted: its bytes hash to sha256 `),
    });
  });
});

Deno.test("checksums can be left out; a reserved key or malformed checksums are refused", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    const x = tensor([1, 2, 3]);
    await writeSafetensors(path, { x }, undefined, { checksums: false });
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), {
      x: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
    });
    {
      using file = await openSafetensors(path);
      assert.equal(file.checksummed, false);
    }
    await assert.rejects(
      writeSafetensors(path, { x }, { tensor_sha256: "{}" }),
      /metadata\["tensor_sha256"\] is reserved/,
    );
    x.dispose();
    const bad = join(dir, "bad.safetensors");
    await Deno.writeFile(
      bad,
      rawFile({
        __metadata__: { tensor_sha256: JSON.stringify({ y: "00" }) },
        x: { dtype: "U8", shape: [1], data_offsets: [0, 1] },
      }, new Uint8Array(1)),
    );
    await assert.rejects(openSafetensors(bad), /"y"\] is not a SHA-256 hex digest/);
  });
});

Deno.test("reads run one at a time even when started together", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    const ts = Array.from({ length: 6 }, (_, i) => tensor(new Float32Array(1000).fill(i)));
    await writeSafetensors(path, ts.map((t, i): [string, typeof t] => [`t${i}`, t]));
    using file = await openSafetensors(path);
    const all = await Promise.all(ts.map((_, i) => file.read(`t${i}`)));
    all.forEach((a, i) => assert.ok(a.every((v) => v === i), `t${i}`));
    ts.forEach((t) => t.dispose());
    await assert.rejects(file.read("nope"), /no tensor named "nope"/);
    file.close();
    await assert.rejects(file.read("t0"), /read after close/);
  });
});

Deno.test("F16, BF16, F64 and F8 decode to f32; integer types to i32 with a range check", async () => {
  await withTempDir(async (dir) => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000]); // 1 -2 65504 2^-24 inf -0
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x4049]); // 1, -3, 3.140625
    const f64 = new Float64Array([0.1, -1e10]);
    const i64 = new BigInt64Array([-5n, 2147483647n, -2147483648n]);
    const u8 = new Uint8Array([0, 255, 7, 1]);
    const e4m3 = new Uint8Array([0x38, 0xb8, 0x7e, 0x01]); // 1, -1, 448, 2^-9
    const e5m2 = new Uint8Array([0x3c, 0xc0]); // 1, -2
    const parts: [string, string, number[], Uint8Array][] = [
      ["f16", "F16", [2, 3], bytesOf(f16)],
      ["bf16", "BF16", [3], bytesOf(bf16)],
      ["f64", "F64", [2], bytesOf(f64)],
      ["i64", "I64", [3], bytesOf(i64)],
      ["u8", "U8", [4], u8],
      ["e4m3", "F8_E4M3", [4], e4m3],
      ["e5m2", "F8_E5M2", [2], e5m2],
    ];
    const header: Record<string, unknown> = {};
    let at = 0;
    for (const [name, dtype, shape, b] of parts) {
      header[name] = { dtype, shape, data_offsets: [at, at + b.length] };
      at += b.length;
    }
    const data = new Uint8Array(at);
    at = 0;
    for (const [, , , b] of parts) data.set(b, (at += b.length) - b.length);
    const path = join(dir, "mixed.safetensors");
    await Deno.writeFile(path, rawFile(header, data));
    using file = await openSafetensors(path);
    assert.deepEqual(
      Array.from(await file.read("f16")),
      [1, -2, 65504, 2 ** -24, Infinity, -0],
    );
    assert.deepEqual(await file.read("bf16"), new Float32Array([1, -3, 3.140625]));
    assert.deepEqual(await file.read("f64"), new Float32Array([0.1, -1e10]));
    assert.deepEqual(await file.read("i64"), new Int32Array([-5, 2147483647, -2147483648]));
    assert.deepEqual(await file.read("u8"), new Int32Array([0, 255, 7, 1]));
    assert.deepEqual(await file.read("e4m3"), new Float32Array([1, -1, 448, 2 ** -9]));
    assert.deepEqual(await file.read("e5m2"), new Float32Array([1, -2]));

    const big = join(dir, "big.safetensors");
    const values = bytesOf(new BigInt64Array([1n, 2n ** 31n]));
    await Deno.writeFile(
      big,
      rawFile({ x: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, values),
    );
    using bad = await openSafetensors(big);
    await assert.rejects(bad.read("x"), /I64 value 2147483648 at index 1 is outside the int32/);
  });
});

const ONE = { x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };

const corrupt: [string, () => Uint8Array, RegExp][] = [
  ["shorter than the length field", () => new Uint8Array(5), /truncated: 5 bytes/],
  [
    "a header length larger than the file",
    () => rawFile(ONE, new Uint8Array(8), 1e12),
    /header length 1000000000000 is larger than the \d+ bytes/,
  ],
  ["bad JSON", () => rawFile('{"x": {"dtype": "F32",', new Uint8Array(8)), /not valid UTF-8 JSON/],
  ["a JSON array", () => rawFile("[1, 2]", new Uint8Array(0)), /must be a JSON object/],
  [
    "offsets past the end of the data",
    () => rawFile({ x: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
    /run past the end of the data \(8 bytes\)/,
  ],
  [
    "a file shorter than the header declares (truncated download)",
    () => rawFile(ONE, new Uint8Array(8)).subarray(0, -3),
    /run past the end of the data \(5 bytes\)/,
  ],
  [
    "trailing bytes no tensor covers",
    () => rawFile(ONE, new Uint8Array(12)),
    /cover 8 bytes but the data section has 12/,
  ],
  [
    "overlapping tensors",
    () =>
      rawFile({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, new Uint8Array(12)),
    /"b": data_offsets \[4, 12\] overlap/,
  ],
  [
    "a gap between tensors",
    () =>
      rawFile({
        a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
      }, new Uint8Array(12)),
    /a gap of 4 bytes/,
  ],
  [
    "offsets that disagree with dtype x shape",
    () => rawFile({ x: { dtype: "F16", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /F16 \[2\] needs 4 bytes but data_offsets \[0, 8\] span 8/,
  ],
  [
    "an unknown dtype",
    () => rawFile({ x: { dtype: "C64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /unsupported dtype "C64"/,
  ],
  [
    "a dtype named like an Object property",
    () =>
      rawFile({ x: { dtype: "constructor", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
    /unsupported dtype "constructor"/,
  ],
  [
    "a header of more JSON values than any model has (bounded work per header byte)",
    () =>
      rawFile(
        `{"x":{"dtype":"U8","shape":[${"1,".repeat(1 << 20)}1],"data_offsets":[0,1]}}`,
        new Uint8Array(1),
      ),
    /header holds over 1048576 JSON values .*refusing to parse it/,
  ],
  [
    "a negative dimension",
    () => rawFile({ x: { dtype: "U8", shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0)),
    /shape must be an array of non-negative integers/,
  ],
  [
    "non-string metadata",
    () => rawFile({ __metadata__: { step: 3 }, ...ONE }, new Uint8Array(8)),
    /__metadata__\["step"\] must be a string/,
  ],
];

for (const [what, make, message] of corrupt) {
  Deno.test(`openSafetensors rejects ${what} before reading any tensor`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "bad.safetensors");
      await Deno.writeFile(path, make());
      await assert.rejects(
        openSafetensors(path),
        (e: Error) => e instanceof SafetensorsError && e.path === path && message.test(e.message),
      );
    });
  });
}

Deno.test("openSafetensors lists every header problem in one error", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.safetensors");
    await Deno.writeFile(
      path,
      rawFile({
        a: { dtype: "Q4", shape: [1], data_offsets: [0, 1] },
        b: { dtype: "F32", shape: [1], data_offsets: [0, 5] },
      }, new Uint8Array(5)),
    );
    await assert.rejects(openSafetensors(path), /2 problem\(s\): "a": unsupported.*"b": F32/);
  });
});

Deno.test("a failed writeSafetensors leaves the old file untouched and no temp file behind", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    await writeFileAtomic(path, "old contents");
    const good = tensor([1, 2]);
    const bad = tensor([3, 4]);
    bad.toTypedArray = () => {
      throw new Error("device lost");
    };
    await assert.rejects(writeSafetensors(path, { good, bad }), /device lost/);
    assert.equal(await Deno.readTextFile(path), "old contents");
    assert.deepEqual(await names(dir), ["w.safetensors"]);
    await assert.rejects(
      writeSafetensors(path, [["a", good], ["a", good]]),
      /duplicate tensor name "a"/,
    );
    await assert.rejects(
      writeSafetensors(path, { a: good }, { step: 3 as unknown as string }),
      /metadata\["step"\] must be a string/,
    );
    assert.deepEqual(await names(dir), ["w.safetensors"]);
    good.dispose();
    bad.dispose();
  });
});
