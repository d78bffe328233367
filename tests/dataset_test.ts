// Sliding-window datasets, the train/val split, and the two loaders' batching and determinism.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Batch,
  type BatchSource,
  DataLoader,
  ShardLoader,
  ShardWriter,
  slidingWindows,
  trainValSplit,
} from "../mod.ts";
import { permutation } from "../src/data/loader.ts";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Reads a batch back as plain arrays and frees it. */
function take(b: Batch): { input: number[][]; target: number[][] } {
  const out = { input: b.input.toArray() as number[][], target: b.target.toArray() as number[][] };
  b.input.dispose();
  b.target.dispose();
  return out;
}

Deno.test("slidingWindows makes GPTDatasetV1's windows: inputs and targets shifted by one", () => {
  // for i in range(0, len - max_length, stride): ids[i:i+L], ids[i+1:i+L+1]
  const ds = slidingWindows(range(10), { maxLength: 4, stride: 2 });
  assert.equal(ds.length, 3); // starts 0, 2, 4
  assert.deepEqual([...ds.get(2).input], [4, 5, 6, 7]);
  assert.deepEqual([...ds.get(2).target], [5, 6, 7, 8]);
  assert.equal(slidingWindows(range(10), { maxLength: 4 }).length, 2); // stride = maxLength
  assert.equal(slidingWindows(range(10), { maxLength: 4, stride: 1 }).length, 6);
  assert.equal(slidingWindows(range(5), { maxLength: 4 }).length, 1); // exactly one window
  assert.equal(slidingWindows(new Uint16Array([7, 8, 9]), { maxLength: 2 }).get(0).target[1], 9);
  assert.throws(() => ds.get(3), /index 3 outside \[0, 3\)/);
});

Deno.test("slidingWindows rejects bad options and too few tokens", () => {
  assert.throws(() => slidingWindows(range(4), { maxLength: 4 }), /4 tokens make no window/);
  assert.throws(() => slidingWindows([], { maxLength: 1 }), /0 tokens make no window/);
  assert.throws(() => slidingWindows(range(9), { maxLength: 0 }), /maxLength must be a positive/);
  assert.throws(() => slidingWindows(range(9), { maxLength: 2, stride: 0.5 }), /stride must be/);
  assert.throws(() => slidingWindows([1, -2, 3], { maxLength: 1 }), /tokens\[1\] = -2 is not/);
});

Deno.test("trainValSplit keeps the leading part for training and the tail for validation", () => {
  const { train, val } = trainValSplit(range(20));
  assert.equal(train.length, 18);
  assert.deepEqual([...val], [18, 19]);
  assert.equal(trainValSplit(range(10), { valFraction: 0 }).val.length, 0);
  assert.throws(() => trainValSplit(range(10), { valFraction: 1 }), /valFraction must be in/);
});

Deno.test("DataLoader batches (B, T) i32 tensors and drops the last partial batch", () => {
  const ds = slidingWindows(range(41), { maxLength: 4 }); // 10 windows
  const loader = new DataLoader(ds, { batchSize: 3, shuffle: false });
  assert.equal(loader.batchesPerEpoch, 3);
  const first = loader.next();
  assert.equal(first.input.dtype, "i32");
  assert.deepEqual(first.input.shape, [3, 4]);
  const b = take(first);
  assert.deepEqual(b.input[1], [4, 5, 6, 7]);
  assert.deepEqual(b.target[1], [5, 6, 7, 8]);
  take(loader.next());
  take(loader.next());
  assert.deepEqual(loader.state(), { epoch: 1, batch: 0 });
  assert.deepEqual(take(loader.next()).input[0], [0, 1, 2, 3]); // next epoch starts over

  const keep = new DataLoader(ds, { batchSize: 3, shuffle: false, dropLast: false });
  assert.equal(keep.batchesPerEpoch, 4);
  const batches = [...keep].map(take); // iterating gives one epoch
  assert.equal(batches.length, 4);
  assert.deepEqual(batches[3].input, [[36, 37, 38, 39]]); // the last batch holds one example
});

Deno.test("DataLoader shuffling is seeded, a permutation per epoch, and differs between epochs", () => {
  const ds = slidingWindows(range(201), { maxLength: 2 }); // 100 windows
  const firstTokens = (l: DataLoader) =>
    [...l].flatMap((b) => take(b).input.map((row) => row[0] / 2));
  const a = new DataLoader(ds, { batchSize: 10, seed: 7 });
  const e0 = firstTokens(a), e1 = firstTokens(a);
  assert.deepEqual([...e0].sort((x, y) => x - y), range(100)); // every window once
  assert.notDeepEqual(e0, range(100));
  assert.notDeepEqual(e0, e1);
  assert.deepEqual(firstTokens(new DataLoader(ds, { batchSize: 10, seed: 7 })), e0);
  assert.notDeepEqual(firstTokens(new DataLoader(ds, { batchSize: 10, seed: 8 })), e0);
});

Deno.test("a loader restored from state() continues with exactly the same batches", () => {
  const ds = slidingWindows(range(301), { maxLength: 3 });
  const run = (loader: BatchSource, n: number) =>
    Array.from({ length: n }, () => take(loader.next()).input);
  const straight = new DataLoader(ds, { batchSize: 7, seed: 3 });
  const reference = run(straight, 40); // crosses several epochs (14 batches each)
  const first = new DataLoader(ds, { batchSize: 7, seed: 3 });
  run(first, 17);
  const resumed = new DataLoader(ds, { batchSize: 7, seed: 3 });
  resumed.loadState(JSON.parse(JSON.stringify(first.state())));
  assert.deepEqual(run(resumed, 23), reference.slice(17));
  assert.throws(() => resumed.loadState({ epoch: 0, batch: 14 }), /batch 14 is past the epoch/);
  assert.throws(() => resumed.loadState({ epoch: -1, batch: 0 }), /epoch must be an integer >= 0/);
});

Deno.test("DataLoader rejects an empty dataset, bad options and ragged examples", () => {
  const ds = slidingWindows(range(9), { maxLength: 4 }); // 2 windows
  assert.throws(() => new DataLoader({ length: 0, get: () => ds.get(0) }, { batchSize: 1 }), {
    name: "RangeError",
    message: "DataLoader: the dataset is empty",
  });
  assert.throws(() => new DataLoader(ds, { batchSize: 3 }), /2 examples make no full batch of 3/);
  assert.throws(() => new DataLoader(ds, { batchSize: 0 }), /batchSize must be an integer >= 1/);
  assert.throws(() => new DataLoader(ds, { batchSize: 1, seed: -1 }), /seed must be an integer/);
  const ragged = {
    length: 2,
    get: (i: number) => ({ input: new Int32Array(i + 1), target: new Int32Array(i + 1) }),
  };
  assert.throws(
    () => new DataLoader(ragged, { batchSize: 2, shuffle: false }).next(),
    /example 1 has 2 inputs and 2 targets; the batch needs 1 of each/,
  );
});

Deno.test("permutation() is a seeded Fisher-Yates permutation", () => {
  const p = permutation(1000, 1, 0);
  assert.deepEqual([...p].sort((a, b) => a - b), range(1000));
  assert.deepEqual(permutation(1000, 1, 0), p);
  assert.notDeepEqual(permutation(1000, 1, 1), p);
  assert.notDeepEqual(permutation(1000, 1, 0, 1), p);
  assert.deepEqual([...permutation(1, 5, 5)], [0]);
  assert.equal(permutation(0, 5, 5).length, 0);
});

async function writeShards(dir: string, sizes: number[]): Promise<string[]> {
  const files: string[] = [];
  let next = 0;
  for (const [i, n] of sizes.entries()) {
    const w = new ShardWriter({ dir, name: "t", split: "train", firstIndex: i });
    await w.write(Array.from({ length: n }, () => next++ % 60000));
    files.push(...await w.close());
  }
  return files;
}

Deno.test("ShardLoader reads shards in order like llm.c, sequences sharing their edge token", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeShards(dir, [33, 20]); // T=4, B=2: 8 sequences -> 4 batches; 4 -> 2
    const loader = await ShardLoader.open(files, { batchSize: 2, seqLen: 4 });
    assert.equal(loader.batchesPerEpoch, 6);
    const b0 = take(loader.next());
    assert.deepEqual(b0.input, [[0, 1, 2, 3], [4, 5, 6, 7]]);
    assert.deepEqual(b0.target, [[1, 2, 3, 4], [5, 6, 7, 8]]);
    for (let i = 0; i < 3; i++) take(loader.next());
    assert.deepEqual(take(loader.next()).input, [[33, 34, 35, 36], [37, 38, 39, 40]]); // shard 2
    take(loader.next());
    assert.deepEqual(loader.state(), { epoch: 1, batch: 0 });
    assert.deepEqual(take(loader.next()).input[0], [0, 1, 2, 3]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ShardLoader refuses a shard that shrank after open() instead of padding with 0", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeShards(dir, [33, 33]); // T=4, B=2: 4 batches per shard
    const loader = await ShardLoader.open(files, { batchSize: 2, seqLen: 4 });
    take(loader.next()); // shard 0 is in memory now
    // The second shard is rewritten, consistently, with fewer tokens (a regenerated dataset).
    const writer = new ShardWriter({ dir: join(dir, "new"), name: "t", split: "train" });
    await writer.write(range(10));
    const [small] = await writer.close();
    await Deno.copyFile(small, files[1]);
    for (let i = 0; i < 3; i++) take(loader.next()); // the rest of shard 0 still reads
    assert.throws(() => loader.next(), {
      name: "ShardFormatError",
      message: `token shard ${files[1]}: changed since ShardLoader.open: it held 33 tokens then ` +
        "and holds 10 now, but this loader's batches read its tokens [0, 33) " +
        "(file bytes [1024, 1090))",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ShardLoader shuffles every sequence once per epoch and resumes exactly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeShards(dir, [81, 41, 61]); // T=4: 20 + 10 + 15 sequences
    const opts = { batchSize: 5, seqLen: 4, shuffle: true, seed: 11 };
    const loader = await ShardLoader.open(files, opts);
    assert.equal(loader.batchesPerEpoch, 4 + 2 + 3);
    const starts = (n: number, l: ShardLoader) =>
      Array.from({ length: n }, () => take(l.next()).input.map((row) => row[0])).flat();
    const epoch0 = starts(9, loader);
    const expected = [...range(20).map((i) => i * 4), ...range(10).map((i) => 81 + i * 4)]
      .concat(range(15).map((i) => 122 + i * 4));
    assert.deepEqual([...epoch0].sort((a, b) => a - b), expected.sort((a, b) => a - b));
    assert.notDeepEqual(epoch0, expected);
    const reference = starts(12, loader); // epoch 1 and part of epoch 2
    const again = await ShardLoader.open(files, opts);
    again.loadState({ epoch: 1, batch: 0 });
    assert.deepEqual(starts(12, again), reference);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ShardLoader fails on bad shards and on shards too small for a batch", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeShards(dir, [9]);
    await assert.rejects(
      ShardLoader.open(files, { batchSize: 2, seqLen: 8 }),
      /no shard holds a batch of 2 x \(8 \+ 1\) tokens \(sizes: 9\)/,
    );
    await assert.rejects(ShardLoader.open([], { batchSize: 1, seqLen: 8 }), /non-empty list/);
    await assert.rejects(ShardLoader.open(files, { batchSize: 1, seqLen: 0 }), /seqLen must be/);
    const bad = `${dir}/bad.bin`;
    await Deno.writeFile(bad, new Uint8Array(1030));
    await assert.rejects(ShardLoader.open([bad], { batchSize: 1, seqLen: 1 }), {
      name: "ShardFormatError",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
