/**
 * Batching for training: a {@linkcode DataLoader} over a dataset of fixed-length examples and a
 * {@linkcode ShardLoader} over llm.c token shards. Both produce (B, T) i32 tensors, shuffle with
 * their own counter-based generator keyed by (seed, epoch) — so the global generator is never
 * touched — and expose their position as two integers, so a resumed run sees the same batches.
 * @module
 */

import type { Device } from "../backend/backend.ts";
import type { Tensor } from "../tensor.ts";
import { tensor } from "../ops/creation.ts";
import { philox4x32 } from "../random.ts";
import type { Dataset, Example } from "./dataset.ts";
import { readShard, readShardInfo, SHARD_HEADER_BYTES, ShardFormatError } from "./shards.ts";

/** One batch: inputs and next-token targets, both (B, T) i32; the caller disposes them. */
export interface Batch {
  /** Token ids, (B, T). */
  input: Tensor;
  /** Targets, (B, T). */
  target: Tensor;
}

/** Where a loader is: the epoch and the batch within it (JSON-serialisable, for checkpoints). */
export interface LoaderState {
  /** Completed passes over the data. */
  epoch: number;
  /** Batches already taken from the current epoch. */
  batch: number;
}

/** What a trainer draws batches from. */
export interface BatchSource {
  /** Batches in one epoch. */
  readonly batchesPerEpoch: number;
  /** Tokens in a full batch (B * T). */
  readonly tokensPerBatch: number;
  /** The next batch; after the last batch of an epoch, the first of the next (reshuffled). */
  next(): Batch;
  /** The current position. */
  state(): LoaderState;
  /** Moves to a position returned by {@linkcode BatchSource.state}. */
  loadState(state: LoaderState): void;
}

/** A permutation of 0..n-1 (Fisher-Yates) drawn from Philox keyed by (seed, epoch), stream `s`. */
export function permutation(n: number, seed: number, epoch: number, stream = 0): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const w = new Uint32Array(4);
  for (let i = n - 1; i > 0; i--) {
    const k = n - 1 - i;
    if ((k & 3) === 0) philox4x32(k >>> 2, stream, seed, epoch, w);
    const j = Math.floor((w[k & 3] / 4294967296) * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

function checkInt(op: string, name: string, v: unknown, min: number): number {
  if (!Number.isInteger(v) || (v as number) < min) {
    throw new RangeError(`${op}: ${name} must be an integer >= ${min}, got ${v}`);
  }
  return v as number;
}

function checkSeed(op: string, seed: unknown): number {
  if (!Number.isInteger(seed) || (seed as number) < 0 || (seed as number) > 0xffffffff) {
    throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  return seed as number;
}

function checkState(op: string, s: LoaderState, batches: number): void {
  if (s === null || typeof s !== "object") throw new TypeError(`${op}: expected {epoch, batch}`);
  checkInt(op, "epoch", s.epoch, 0);
  checkInt(op, "batch", s.batch, 0);
  if (s.batch >= batches) {
    throw new RangeError(`${op}: batch ${s.batch} is past the epoch's ${batches} batches`);
  }
}

/** Options of {@linkcode DataLoader}. */
export interface DataLoaderOptions {
  /** Examples per batch (B). */
  batchSize: number;
  /** Reshuffle the examples every epoch (default true). */
  shuffle?: boolean;
  /** Drop the last, smaller batch of an epoch (default true). */
  dropLast?: boolean;
  /** Seed of the shuffling, an integer in [0, 2^32) (default 0). */
  seed?: number;
  /** Device of the batch tensors (default "cpu"). */
  device?: Device;
}

/**
 * Batches a dataset of equal-length examples into (B, T) i32 tensors, forever, epoch after epoch.
 * The order of epoch `e` depends only on (seed, e), so {@linkcode DataLoader.loadState} can jump
 * anywhere without replaying.
 *
 * @example
 * ```ts
 * import { DataLoader, slidingWindows } from "@denograd/denograd";
 * const ds = slidingWindows(Array.from({ length: 100 }, (_, i) => i), { maxLength: 4 });
 * const loader = new DataLoader(ds, { batchSize: 8, seed: 1 }); // 24 windows: 3 batches/epoch
 * const { input, target } = loader.next();
 * console.log(input.shape, loader.state()); // [8, 4] { epoch: 0, batch: 1 }
 * input.dispose();
 * target.dispose();
 * ```
 */
export class DataLoader implements BatchSource, Iterable<Batch> {
  /** The dataset batched. */
  readonly dataset: Dataset<Example>;
  /** Examples per batch. */
  readonly batchSize: number;
  /** Whether each epoch is reshuffled. */
  readonly shuffle: boolean;
  /** Whether a last, smaller batch is dropped. */
  readonly dropLast: boolean;
  /** The shuffling seed. */
  readonly seed: number;
  /** Device of the batches. */
  readonly device: Device;
  /** Batches per epoch. */
  readonly batchesPerEpoch: number;
  /** Tokens in a full batch: batchSize times the length of the first example. */
  readonly tokensPerBatch: number;
  #epoch = 0;
  #batch = 0;
  #order: Uint32Array | null = null;

  /** Validates the options; throws a RangeError for an empty dataset or one too small to batch. */
  constructor(dataset: Dataset<Example>, options: DataLoaderOptions) {
    const op = "DataLoader";
    if (!dataset || typeof dataset.get !== "function" || !Number.isInteger(dataset.length)) {
      throw new TypeError(`${op}: dataset must have a length and get(index)`);
    }
    const { shuffle = true, dropLast = true, seed = 0, device = "cpu" } = options ?? {};
    this.dataset = dataset;
    this.batchSize = checkInt(op, "batchSize", options?.batchSize, 1);
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.seed = checkSeed(op, seed);
    this.device = device;
    const n = dataset.length;
    this.batchesPerEpoch = dropLast
      ? Math.floor(n / this.batchSize)
      : Math.ceil(n / this.batchSize);
    if (n === 0) throw new RangeError(`${op}: the dataset is empty`);
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(
        `${op}: ${n} examples make no full batch of ${this.batchSize} (use a smaller batchSize or dropLast: false)`,
      );
    }
    this.tokensPerBatch = this.batchSize * dataset.get(0).input.length;
  }

  /** Completed epochs. */
  get epoch(): number {
    return this.#epoch;
  }

  #indexOrder(): Uint32Array | null {
    if (!this.shuffle) return null;
    this.#order ??= permutation(this.dataset.length, this.seed, this.#epoch);
    return this.#order;
  }

  /** The next batch (B, T); the caller disposes its tensors. */
  next(): Batch {
    const order = this.#indexOrder();
    const n = this.dataset.length;
    const start = this.#batch * this.batchSize;
    const size = Math.min(this.batchSize, n - start);
    let T = -1, input = new Int32Array(0), target = new Int32Array(0);
    for (let b = 0; b < size; b++) {
      const index = order ? order[start + b] : start + b;
      const ex = this.dataset.get(index);
      if (T < 0) {
        T = ex.input.length;
        input = new Int32Array(size * T);
        target = new Int32Array(size * T);
      }
      if (ex.input.length !== T || ex.target.length !== T) {
        throw new RangeError(
          `DataLoader: example ${index} has ${ex.input.length} inputs and ${ex.target.length} targets; the batch needs ${T} of each`,
        );
      }
      input.set(ex.input, b * T);
      target.set(ex.target, b * T);
    }
    if (++this.#batch === this.batchesPerEpoch) {
      this.#batch = 0;
      this.#epoch++;
      this.#order = null;
    }
    return {
      input: tensor(input, { shape: [size, T], device: this.device }),
      target: tensor(target, { shape: [size, T], device: this.device }),
    };
  }

  /** The rest of the current epoch (all of it from a fresh loader), like a PyTorch DataLoader. */
  *[Symbol.iterator](): Iterator<Batch> {
    const epoch = this.#epoch;
    while (this.#epoch === epoch) yield this.next();
  }

  /** The current position. */
  state(): LoaderState {
    return { epoch: this.#epoch, batch: this.#batch };
  }

  /** Moves to a saved position. */
  loadState(state: LoaderState): void {
    checkState("DataLoader.loadState", state, this.batchesPerEpoch);
    if (state.epoch !== this.#epoch) this.#order = null;
    this.#epoch = state.epoch;
    this.#batch = state.batch;
  }
}

/** Options of {@linkcode ShardLoader.open}. */
export interface ShardLoaderOptions {
  /** Sequences per batch (B). */
  batchSize: number;
  /** Tokens per sequence (T). */
  seqLen: number;
  /**
   * false (default): read shards in order, sequences back to back, as llm.c does. true: every
   * epoch shuffles the shard order and the order of the sequences inside each shard.
   */
  shuffle?: boolean;
  /** Seed of the shuffling, an integer in [0, 2^32) (default 0). */
  seed?: number;
  /** Device of the batch tensors (default "cpu"). */
  device?: Device;
}

/**
 * Batches from llm.c token shards (see {@linkcode readShard}). A shard of N tokens holds
 * floor((N - 1) / T) sequences of T + 1 tokens starting every T tokens (the last token of one is
 * the first of the next, as in llm.c); each shard gives floor(sequences / B) batches. One shard is
 * in memory at a time.
 *
 * @example
 * ```ts
 * import { ShardLoader, ShardWriter } from "@denograd/denograd";
 * const dir = await Deno.makeTempDir();
 * const writer = new ShardWriter({ dir, name: "demo", split: "train" });
 * await writer.write(Array.from({ length: 33 }, (_, i) => i));
 * const loader = await ShardLoader.open(await writer.close(), { batchSize: 2, seqLen: 8 });
 * const { input, target } = loader.next();
 * console.log(input.toArray(), target.toArray()); // [[0..7], [8..15]], [[1..8], [9..16]]
 * console.log(loader.batchesPerEpoch); // 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ShardLoader implements BatchSource {
  /** The shard files. */
  readonly paths: readonly string[];
  /** Sequences per batch. */
  readonly batchSize: number;
  /** Tokens per sequence. */
  readonly seqLen: number;
  /** Whether epochs are shuffled. */
  readonly shuffle: boolean;
  /** The shuffling seed. */
  readonly seed: number;
  /** Device of the batches. */
  readonly device: Device;
  /** Batches per epoch (over all shards). */
  readonly batchesPerEpoch: number;
  /** Tokens per batch (batchSize * seqLen). */
  readonly tokensPerBatch: number;
  readonly #batchesPer: number[];
  /** Tokens of each shard when opened: a shard that changes since is an error, not padding. */
  readonly #tokensPer: number[];
  #epoch = 0;
  #batch = 0;
  #shardOrder: Uint32Array | null = null;
  #loaded: { shard: number; tokens: Uint16Array; order: Uint32Array | null } | null = null;

  private constructor(paths: string[], counts: number[], o: ShardLoaderOptions) {
    this.paths = paths;
    this.batchSize = o.batchSize;
    this.seqLen = o.seqLen;
    this.shuffle = o.shuffle ?? false;
    this.seed = o.seed ?? 0;
    this.device = o.device ?? "cpu";
    this.#tokensPer = counts;
    this.#batchesPer = counts.map((n) =>
      Math.floor(Math.max(0, Math.floor((n - 1) / o.seqLen)) / o.batchSize)
    );
    this.batchesPerEpoch = this.#batchesPer.reduce((a, b) => a + b, 0);
    this.tokensPerBatch = o.batchSize * o.seqLen;
  }

  /**
   * Validates every shard's header (so a bad file fails now, not hours in) and the options.
   *
   * @throws {ShardFormatError} for a bad shard; {RangeError} for bad options or too few tokens
   */
  static async open(paths: readonly string[], options: ShardLoaderOptions): Promise<ShardLoader> {
    const op = "ShardLoader.open";
    if (!Array.isArray(paths) || paths.length === 0) {
      throw new RangeError(`${op}: expected a non-empty list of shard files`);
    }
    checkInt(op, "batchSize", options?.batchSize, 1);
    checkInt(op, "seqLen", options?.seqLen, 1);
    checkSeed(op, options.seed ?? 0);
    const counts: number[] = [];
    for (const p of paths) counts.push((await readShardInfo(p)).tokens);
    const loader = new ShardLoader([...paths], counts, options);
    if (loader.batchesPerEpoch === 0) {
      throw new RangeError(
        `${op}: no shard holds a batch of ${options.batchSize} x (${options.seqLen} + 1) tokens (sizes: ${
          counts.join(", ")
        })`,
      );
    }
    return loader;
  }

  /** Completed epochs. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Which shard (in this epoch's order) and which batch inside it the position points at. */
  #locate(): [number, number] {
    this.#shardOrder ??= this.shuffle
      ? permutation(this.paths.length, this.seed, this.#epoch)
      : Uint32Array.from(this.paths, (_, i) => i);
    let b = this.#batch;
    for (const shard of this.#shardOrder) {
      if (b < this.#batchesPer[shard]) return [shard, b];
      b -= this.#batchesPer[shard];
    }
    throw new Error("ShardLoader: position past the end of the epoch"); // unreachable
  }

  /** The next batch (B, T); the caller disposes its tensors. */
  next(): Batch {
    const [shard, b] = this.#locate();
    const loaded = this.#loaded;
    if (!loaded || loaded.shard !== shard) {
      const tokens = readShard(this.paths[shard]);
      if (tokens.length !== this.#tokensPer[shard]) {
        const need = this.#batchesPer[shard] * this.batchSize * this.seqLen + 1;
        throw new ShardFormatError(
          this.paths[shard],
          `changed since ShardLoader.open: it held ${this.#tokensPer[shard]} tokens then and ` +
            `holds ${tokens.length} now, but this loader's batches read its tokens [0, ${need}) ` +
            `(file bytes [${SHARD_HEADER_BYTES}, ${SHARD_HEADER_BYTES + 2 * need}))`,
        );
      }
      const sequences = Math.floor((tokens.length - 1) / this.seqLen);
      // Stream shard + 1 so shard orders (stream 0) and sequence orders never share draws.
      const order = this.shuffle ? permutation(sequences, this.seed, this.#epoch, shard + 1) : null;
      this.#loaded = { shard, tokens, order };
    }
    const { tokens, order } = this.#loaded!;
    const B = this.batchSize, T = this.seqLen;
    const input = new Int32Array(B * T), target = new Int32Array(B * T);
    for (let i = 0; i < B; i++) {
      const seq = b * B + i;
      const s = (order ? order[seq] : seq) * T;
      for (let t = 0; t < T; t++) {
        input[i * T + t] = tokens[s + t];
        target[i * T + t] = tokens[s + t + 1];
      }
    }
    if (++this.#batch === this.batchesPerEpoch) {
      this.#batch = 0;
      this.#epoch++;
      this.#shardOrder = null;
      this.#loaded = this.shuffle ? null : this.#loaded; // orders change with the epoch
    }
    return {
      input: tensor(input, { shape: [B, T], device: this.device }),
      target: tensor(target, { shape: [B, T], device: this.device }),
    };
  }

  /** The current position. */
  state(): LoaderState {
    return { epoch: this.#epoch, batch: this.#batch };
  }

  /** Moves to a saved position. */
  loadState(state: LoaderState): void {
    checkState("ShardLoader.loadState", state, this.batchesPerEpoch);
    if (state.epoch !== this.#epoch) {
      this.#shardOrder = null;
      if (this.shuffle) this.#loaded = null;
    }
    this.#epoch = state.epoch;
    this.#batch = state.batch;
  }
}
