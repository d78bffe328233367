import assert from "node:assert/strict";
import { join } from "node:path";
import {
  listShards,
  readShard,
  readShardInfo,
  SHARD_HEADER_BYTES,
  SHARD_MAGIC,
  ShardFormatError,
  ShardWriter,
  streamShards,
} from "../mod.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_shards_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function ramp(n: number, offset = 0): Uint16Array {
  return Uint16Array.from({ length: n }, (_, i) => (i * 7 + offset) % 65536);
}

async function writeShards(dir: string, tokens: Uint16Array, shardSize: number): Promise<string[]> {
  const writer = new ShardWriter({ dir, name: "t", split: "train", shardSize });
  await writer.write(tokens);
  return await writer.close();
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("ShardWriter rotates at exactly shardSize tokens and readShard returns them", async () => {
  await withTempDir(async (dir) => {
    const tokens = ramp(2500);
    const writer = new ShardWriter({ dir, name: "t", split: "train", shardSize: 1000 });
    // Uneven chunks, one ending exactly on a shard boundary and one crossing it.
    for (const [a, b] of [[0, 7], [7, 1000], [1000, 1001], [1001, 2500]]) {
      await writer.write(Array.from(tokens.subarray(a, b)));
    }
    const files = await writer.close();
    assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), [
      "t_train_000000.bin",
      "t_train_000001.bin",
      "t_train_000002.bin",
    ]);
    assert.deepEqual(files.map((f) => Deno.statSync(f).size), [3024, 3024, 2024]);
    assert.deepEqual(readShard(files[0]), tokens.subarray(0, 1000));
    assert.deepEqual(readShard(files[1]), tokens.subarray(1000, 2000));
    assert.deepEqual(readShard(files[2]), tokens.subarray(2000));
    assert.equal(writer.tokens, 2500);
    assert.equal(writer.nextIndex, 3);
  });
});

Deno.test("ShardWriter writes no empty shard when the tokens end on a boundary", async () => {
  await withTempDir(async (dir) => {
    const files = await writeShards(dir, ramp(2000), 1000);
    assert.equal(files.length, 2);
    assert.deepEqual(await names(dir), ["t_train_000000.bin", "t_train_000001.bin"]);
  });
});

Deno.test("ShardWriter handles shards larger than its write buffer", async () => {
  await withTempDir(async (dir) => {
    const tokens = ramp(2_500_000, 3);
    const files = await writeShards(dir, tokens, (1 << 20) + 3);
    assert.equal(files.length, 3);
    const back = files.map(readShard);
    assert.deepEqual(back.map((t) => t.length), [
      (1 << 20) + 3,
      (1 << 20) + 3,
      2_500_000 - 2 * ((1 << 20) + 3),
    ]);
    let off = 0;
    for (const part of back) {
      assert.deepEqual(part, tokens.subarray(off, off + part.length));
      off += part.length;
    }
  });
});

Deno.test("ShardWriter writes llm.c's header: magic, version 1, count, zeros", async () => {
  await withTempDir(async (dir) => {
    const [file] = await writeShards(dir, new Uint16Array([50256, 1, 65535]), 10);
    const bytes = Deno.readFileSync(file);
    const view = new DataView(bytes.buffer);
    assert.equal(view.getInt32(0, true), 20240520);
    assert.equal(view.getInt32(4, true), 1);
    assert.equal(view.getInt32(8, true), 3);
    assert.ok(bytes.subarray(12, SHARD_HEADER_BYTES).every((b) => b === 0));
    assert.deepEqual([...bytes.subarray(SHARD_HEADER_BYTES)], [0x50, 0xc4, 1, 0, 0xff, 0xff]);
    assert.deepEqual(await readShardInfo(file), { path: file, tokens: 3 });
  });
});

Deno.test("ShardWriter rejects tokens outside uint16 and writes nothing of that chunk", async () => {
  await withTempDir(async (dir) => {
    const writer = new ShardWriter({ dir, name: "t", split: "val" });
    await writer.write([1, 2, 3]);
    for (const bad of [65536, -1, 1.5, NaN]) {
      await assert.rejects(
        writer.write([4, bad]),
        (e: Error) => e instanceof RangeError && e.message.includes(`token ${bad} at index 1`),
      );
    }
    const [file] = await writer.close();
    assert.deepEqual(readShard(file), new Uint16Array([1, 2, 3]));
  });
});

Deno.test("ShardWriter validates its options", () => {
  assert.throws(
    () => new ShardWriter({ dir: "x", name: "t", split: "train", shardSize: 0 }),
    RangeError,
  );
  assert.throws(
    () => new ShardWriter({ dir: "x", name: "t", split: "train", shardSize: 2 ** 31 }),
    RangeError,
  );
  assert.throws(() => new ShardWriter({ dir: "x", name: "a/b", split: "train" }), TypeError);
});

Deno.test("ShardWriter shows only a .tmp file until a shard is complete", async () => {
  await withTempDir(async (dir) => {
    const writer = new ShardWriter({ dir, name: "t", split: "train", shardSize: 1 << 22 });
    await writer.write(ramp(1 << 21)); // more than the buffer: some bytes reach the disk
    assert.deepEqual(await names(dir), ["t_train_000000.bin.tmp"]);
    await writer.close();
    assert.deepEqual(await names(dir), ["t_train_000000.bin"]);
  });
});

Deno.test("a failed write under `await using` leaves no file behind, finished shards included", async () => {
  await withTempDir(async (dir) => {
    const shardSize = (1 << 20) + 10; // larger than the write buffer, so partial data hits disk
    const fail = async () => {
      await using writer = new ShardWriter({ dir, name: "t", split: "train", shardSize });
      await writer.write(ramp(2 * shardSize + (1 << 20) + 5)); // two finished shards + a partial
      assert.deepEqual(await names(dir), [
        "t_train_000000.bin",
        "t_train_000001.bin",
        "t_train_000002.bin.tmp",
      ]);
      throw new Error("tokenizer crashed");
    };
    await assert.rejects(fail(), /tokenizer crashed/);
    assert.deepEqual(await names(dir), []);
  });
});

Deno.test("write after close is an error", async () => {
  await withTempDir(async (dir) => {
    const writer = new ShardWriter({ dir, name: "t", split: "train" });
    await writer.close();
    await assert.rejects(writer.write([1]), /write after close/);
  });
});

// Writes a valid 10-token shard, lets `damage` edit its bytes, and returns the path.
async function damaged(dir: string, damage: (bytes: Uint8Array) => Uint8Array): Promise<string> {
  const [file] = await writeShards(dir, ramp(10), 100);
  Deno.writeFileSync(file, damage(Deno.readFileSync(file)));
  return file;
}

function setInt(bytes: Uint8Array, index: number, value: number): Uint8Array {
  new DataView(bytes.buffer).setInt32(4 * index, value, true);
  return bytes;
}

const damages: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
  [
    "a truncated header",
    (b) => b.slice(0, 500),
    /truncated: 500 bytes, shorter than the 1024-byte header/,
  ],
  [
    "truncated tokens",
    (b) => b.slice(0, b.length - 3),
    /truncated: the header says 10 tokens \(1044 bytes\) but the file has 1041 bytes/,
  ],
  [
    "a bad magic",
    (b) => setInt(b, 0, 12345),
    /bad magic 12345 \(expected 20240520\); not an llm.c token shard/,
  ],
  [
    "an unsupported version",
    (b) => setInt(b, 1, 7),
    /unsupported version 7 \(this reader supports version 1/,
  ],
  [
    "a count mismatch",
    (b) => setInt(b, 2, 8),
    /count mismatch: the header says 8 tokens \(1040 bytes\) but the file has 1044 bytes \(10 tokens\)/,
  ],
  ["a negative count", (b) => setInt(b, 2, -4), /count mismatch: the header says -4 tokens/],
];

for (const [what, damage, message] of damages) {
  Deno.test(`readers reject a shard with ${what}, naming the file`, async () => {
    await withTempDir(async (dir) => {
      const file = await damaged(dir, damage);
      const check = (e: Error) =>
        e instanceof ShardFormatError && e.path === file && message.test(e.message) &&
        e.message.startsWith(`token shard ${file}: `);
      assert.throws(() => readShard(file), check);
      await assert.rejects(readShardInfo(file), check);
      await assert.rejects(streamShards([file]).next(), check);
    });
  });
}

Deno.test("streamShards yields every file in the given order, in chunks", async () => {
  await withTempDir(async (dir) => {
    const tokens = ramp(2500);
    const files = await writeShards(dir, tokens, 1000);
    const lengths: number[] = [];
    const seen: number[] = [];
    for await (const chunk of streamShards(files, { chunkTokens: 300 })) {
      lengths.push(chunk.length);
      seen.push(...chunk);
    }
    assert.deepEqual(lengths, [300, 300, 300, 100, 300, 300, 300, 100, 300, 200]);
    assert.deepEqual(seen, [...tokens]);
    // The caller's order is kept, not re-sorted.
    const reversed: number[] = [];
    for await (const chunk of streamShards([...files].reverse())) reversed.push(...chunk);
    assert.deepEqual(reversed, [
      ...tokens.subarray(2000),
      ...tokens.subarray(1000, 2000),
      ...tokens.subarray(0, 1000),
    ]);
  });
});

Deno.test("streamShards validates every header before yielding anything", async () => {
  await withTempDir(async (dir) => {
    const files = await writeShards(dir, ramp(30), 10);
    const last = files[2];
    Deno.writeFileSync(last, Deno.readFileSync(last).slice(0, 1030));
    const stream = streamShards(files);
    await assert.rejects(
      stream.next(),
      (e: Error) => e instanceof ShardFormatError && e.path === last,
    );
  });
});

Deno.test("listShards finds one split's shards in index order", async () => {
  await withTempDir(async (dir) => {
    for (
      const f of [
        "s_train_000002.bin",
        "s_train_000001.bin",
        "s_val_000000.bin",
        "s_train_000001.bin.tmp",
        "x_train_000001.bin",
      ]
    ) {
      Deno.writeFileSync(join(dir, f), new Uint8Array());
    }
    assert.deepEqual(await listShards(dir, "s", "train"), [
      join(dir, "s_train_000001.bin"),
      join(dir, "s_train_000002.bin"),
    ]);
    assert.deepEqual(await listShards(dir, "s", "val"), [join(dir, "s_val_000000.bin")]);
  });
});

Deno.test("readShard reads a shard written byte by byte as llm.c would", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "hand_val_000000.bin");
    const bytes = new Uint8Array(SHARD_HEADER_BYTES + 4);
    const v = new DataView(bytes.buffer);
    v.setInt32(0, SHARD_MAGIC, true);
    v.setInt32(4, 1, true);
    v.setInt32(8, 2, true);
    v.setUint16(SHARD_HEADER_BYTES, 50256, true);
    v.setUint16(SHARD_HEADER_BYTES + 2, 464, true);
    await Deno.writeFile(file, bytes);
    assert.deepEqual(readShard(file), new Uint16Array([50256, 464]));
  });
});
