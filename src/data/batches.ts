/**
 * Batches of variable-length items: a {@linkcode Batches} loader shuffles a list of items with the
 * same counter-based generator as {@linkcode DataLoader} and hands each batch to a collate function
 * (padding, masking) — what fine-tuning needs, where every example has its own length.
 * @module
 */

import { type LoaderState, permutation } from "./loader.ts";

/** Options of {@linkcode Batches}. */
export interface BatchesOptions {
  /** Items per batch. */
  batchSize: number;
  /** Reshuffle the items every epoch (default true). */
  shuffle?: boolean;
  /** Drop the last, smaller batch of an epoch (default true when shuffling, else false). */
  dropLast?: boolean;
  /** Seed of the shuffling, an integer in [0, 2^32) (default 0). */
  seed?: number;
}

/**
 * Batches `items` forever, epoch after epoch, through `collate`. Epoch `e`'s order depends only on
 * (seed, e), so {@linkcode Batches.loadState} jumps to any position without replaying, and a
 * resumed run sees the same batches.
 *
 * @example
 * ```ts
 * import { Batches } from "@denograd/denograd";
 * const loader = new Batches(["a", "bb", "ccc", "dddd", "e"], (xs) => xs.join("+"), {
 *   batchSize: 2,
 *   shuffle: false,
 * });
 * console.log(loader.next(), loader.next(), loader.next(), loader.state()); // a+bb ccc+dddd e { epoch: 1, batch: 0 }
 * ```
 */
export class Batches<T, B> {
  /** The items batched. */
  readonly items: readonly T[];
  /** Items per batch. */
  readonly batchSize: number;
  /** Whether each epoch is reshuffled. */
  readonly shuffle: boolean;
  /** Whether a last, smaller batch is dropped. */
  readonly dropLast: boolean;
  /** The shuffling seed. */
  readonly seed: number;
  /** Batches per epoch. */
  readonly batchesPerEpoch: number;
  readonly #collate: (items: T[]) => B;
  #epoch = 0;
  #batch = 0;
  #order: Uint32Array | null = null;

  /**
   * A loader at the start of epoch 0.
   *
   * @param items the examples (not copied; do not change them while the loader is in use)
   * @param collate turns a batch of items into what the trainer consumes (tensors it will dispose)
   * @throws {RangeError} for an empty list, a bad option or no full batch
   */
  constructor(items: readonly T[], collate: (items: T[]) => B, options: BatchesOptions) {
    const op = "Batches";
    if (!Array.isArray(items)) throw new TypeError(`${op}: items must be an array`);
    if (typeof collate !== "function") throw new TypeError(`${op}: collate must be a function`);
    const { batchSize, shuffle = true, seed = 0 } = options ?? {};
    const dropLast = options?.dropLast ?? shuffle;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`${op}: batchSize must be an integer >= 1, got ${batchSize}`);
    }
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
    }
    if (items.length === 0) throw new RangeError(`${op}: no items`);
    this.items = items;
    this.#collate = collate;
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.seed = seed;
    this.batchesPerEpoch = dropLast
      ? Math.floor(items.length / batchSize)
      : Math.ceil(items.length / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(
        `${op}: ${items.length} items make no full batch of ${batchSize} (use a smaller batchSize or dropLast: false)`,
      );
    }
  }

  /** Completed epochs. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The items of the next batch, in order, without collating them. */
  nextItems(): T[] {
    if (this.shuffle) this.#order ??= permutation(this.items.length, this.seed, this.#epoch);
    const order = this.#order;
    const start = this.#batch * this.batchSize;
    const size = Math.min(this.batchSize, this.items.length - start);
    const out: T[] = [];
    for (let b = 0; b < size; b++) out.push(this.items[order ? order[start + b] : start + b]);
    if (++this.#batch === this.batchesPerEpoch) {
      this.#batch = 0;
      this.#epoch++;
      this.#order = null;
    }
    return out;
  }

  /** The next batch, collated; after an epoch's last batch, the first of the next (reshuffled). */
  next(): B {
    return this.#collate(this.nextItems());
  }

  /** The current position. */
  state(): LoaderState {
    return { epoch: this.#epoch, batch: this.#batch };
  }

  /** Moves to a position returned by {@linkcode Batches.state}. */
  loadState(state: LoaderState): void {
    const op = "Batches.loadState";
    if (state === null || typeof state !== "object") {
      throw new TypeError(`${op}: expected {epoch, batch}`);
    }
    const { epoch, batch } = state;
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(batch) || batch < 0) {
      throw new RangeError(`${op}: epoch and batch must be integers >= 0, got ${epoch}, ${batch}`);
    }
    if (batch >= this.batchesPerEpoch) {
      throw new RangeError(`${op}: batch ${batch} is past the epoch's ${this.batchesPerEpoch}`);
    }
    if (epoch !== this.#epoch) this.#order = null;
    this.#epoch = epoch;
    this.#batch = batch;
  }
}
