/**
 * The shared part of the optimizers: parameter groups with their own options, per-parameter state
 * tensors allocated on first use, `zeroGrad`, and `state()`/`loadState()` for checkpoints.
 * @module
 */

import { Tensor } from "../tensor.ts";
import { keep } from "../memory.ts";
import { noGrad } from "../autograd.ts";
import { tensor, zeros } from "../ops/creation.ts";
import { fmt } from "../_shape.ts";

/** A list of parameters with options that override the optimizer's defaults for them. */
export type ParamGroup<O> = Partial<O> & {
  /** The parameters of this group (f32 leaves with requiresGrad). */
  params: Tensor[];
};

/** A group after defaults are filled in; the options (e.g. `lr`) may be changed between steps. */
export type ResolvedGroup<O> = O & {
  /** The parameters of this group. */
  readonly params: readonly Tensor[];
};

function isGroupList<O>(x: readonly unknown[]): x is ParamGroup<O>[] {
  return x.length > 0 && !(x[0] instanceof Tensor);
}

/**
 * What the model-aware optimizer builders read from a model: its parameters by name and its
 * submodules (an `nn` `Module` fits; optimizers sit below `nn` and do not import it).
 */
export interface ModelParameters {
  /** Every trainable parameter with its path. */
  namedParameters(): [string, Tensor][];
  /** Every submodule with its path. */
  namedModules(): [string, object][];
}

/**
 * What a training loop needs from an optimizer: {@linkcode Optimizer} and
 * {@linkcode CombinedOptimizer} (e.g. Muon for hidden matrices with AdamW for the rest) both fit.
 */
export interface TrainOptimizer {
  /** Every parameter, in state-index order. */
  readonly params: readonly Tensor[];
  /** Applies one update to every parameter that has a gradient. */
  step(): void;
  /** Drops the gradient of every parameter. */
  zeroGrad(): void;
  /** Sets every group's lr to its initial lr times `factor` (torch's LambdaLR rule). */
  scaleLr(factor: number): void;
  /** Every group's current learning rate, in group order. */
  lrs(): number[];
  /** The state tensors for a checkpoint (fresh copies the caller owns). */
  state(): Record<string, Tensor>;
  /** The problems {@linkcode TrainOptimizer.loadState} would report; empty when `state` fits. */
  checkState(state: Record<string, Tensor>): string[];
  /** Restores a {@linkcode TrainOptimizer.state}, after checking all of it. */
  loadState(state: Record<string, Tensor>): void;
  /** Frees the state tensors. */
  dispose(): void;
}

/**
 * Base class of the optimizers. Parameters are numbered across groups in order; that index names
 * their state in {@linkcode Optimizer.state} (`"<index>.<slot>"`, plus `"step"`: the number of
 * updates each parameter has received, i32 of shape [numParams]).
 */
export abstract class Optimizer<O extends { lr: number }> implements TrainOptimizer {
  /** The groups, defaults filled in. Change `lr` here (or with {@linkcode setLr}) between steps. */
  readonly paramGroups: ResolvedGroup<O>[];
  /** Every parameter, in index order. */
  readonly params: readonly Tensor[];
  /** Updates each parameter has received (the step count of its bias corrections). */
  protected readonly steps: number[];
  /** Per-parameter state tensors by slot name (e.g. m, v), allocated on the first update. */
  protected readonly slots: Map<string, Tensor>[];
  readonly #name: string;
  /** The state slots of parameter `index`, from its group's current options. */
  readonly #slotsOf: (index: number) => readonly string[];
  readonly #initialLrs: number[];

  /**
   * Validates the parameters and options; `check` validates one group's resolved options;
   * `slotNames` names the state tensors of a parameter in a group with those options.
   */
  protected constructor(
    name: string,
    params: readonly Tensor[] | readonly ParamGroup<O>[],
    defaults: O,
    slotNames: readonly string[] | ((options: O) => readonly string[]),
    check: (options: O, where: string) => void,
  ) {
    this.#name = name;
    if (!Array.isArray(params) || params.length === 0) {
      throw new TypeError(`${name}: expected a non-empty array of parameters or parameter groups`);
    }
    const groups: ParamGroup<O>[] = isGroupList<O>(params)
      ? params
      : [{ params: params as Tensor[] } as ParamGroup<O>];
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      const where = groups.length > 1 ? ` (group ${gi})` : "";
      if (!g || !Array.isArray(g.params)) {
        throw new TypeError(`${name}: group ${gi} has no params array`);
      }
      const resolved = { ...defaults, ...g, params: [...g.params] } as ResolvedGroup<O>;
      check(resolved, where);
      g.params.forEach((p, i) => {
        if (!(p instanceof Tensor)) {
          throw new TypeError(`${name}: params[${i}]${where} is not a Tensor`);
        }
        if (p.dtype !== "f32" || !p.requiresGrad || !p.isLeaf) {
          throw new TypeError(
            `${name}: params[${i}]${where} must be an f32 leaf with requiresGrad, got ` +
              `${p.dtype} ${fmt(p.shape)} requiresGrad=${p.requiresGrad}`,
          );
        }
        if (seen.has(p)) {
          throw new TypeError(`${name}: params[${i}]${where} appears more than once`);
        }
        seen.add(p);
      });
      return resolved;
    });
    this.params = this.paramGroups.flatMap((g) => g.params);
    const groupOf = this.paramGroups.flatMap((g) => g.params.map(() => g));
    this.#slotsOf = typeof slotNames === "function"
      ? (index) => slotNames(groupOf[index])
      : () => slotNames;
    this.#initialLrs = this.paramGroups.map((g) => g.lr);
    this.steps = this.params.map(() => 0);
    this.slots = this.params.map(() => new Map());
  }

  /** Applies one update to every parameter that has a gradient. */
  abstract step(): void;

  /** Sets the learning rate of every group (what a schedule calls before each step). */
  setLr(lr: number): void {
    if (!(Number.isFinite(lr) && lr >= 0)) {
      throw new RangeError(`${this.#name}.setLr: lr must be a finite number >= 0, got ${lr}`);
    }
    for (const g of this.paramGroups) g.lr = lr;
  }

  /**
   * Sets every group's lr to the lr it was built with times `factor` (torch's LambdaLR rule), so
   * one schedule drives groups with different learning rates.
   *
   * @example
   * ```ts
   * import { SGD, zeros } from "@denograd/denograd";
   * const [a, b] = [zeros([2], { requiresGrad: true }), zeros([2], { requiresGrad: true })];
   * const opt = new SGD([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.01 }]);
   * opt.scaleLr(0.5);
   * console.log(opt.lrs()); // [0.05, 0.005]
   * ```
   */
  scaleLr(factor: number): void {
    if (!(Number.isFinite(factor) && factor >= 0)) {
      throw new RangeError(
        `${this.#name}.scaleLr: factor must be a finite number >= 0, got ${factor}`,
      );
    }
    this.paramGroups.forEach((g, i) => g.lr = this.#initialLrs[i] * factor);
  }

  /** Every group's current learning rate, in group order. */
  lrs(): number[] {
    return this.paramGroups.map((g) => g.lr);
  }

  /** Drops the gradient of every parameter. */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /** The state tensor `slot` of parameter `index`, zeros of the parameter's shape at first. */
  protected slot(index: number, slot: string): Tensor {
    let t = this.slots[index].get(slot);
    if (!t) {
      const p = this.params[index];
      t = keep(zeros(p.shape, { device: p.device }));
      this.slots[index].set(slot, t);
    }
    return t;
  }

  /**
   * The optimizer state for a checkpoint: `"<index>.<slot>"` for every parameter updated so far,
   * and `"step"` (i32 [numParams]). The tensors are fresh copies the caller owns.
   */
  state(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {
      step: tensor(Int32Array.from(this.steps), { shape: [this.steps.length] }),
    };
    this.slots.forEach((m, i) => {
      for (const [name, t] of m) out[`${i}.${name}`] = noGrad(() => t.clone());
    });
    return out;
  }

  /**
   * The problems {@linkcode Optimizer.loadState} would report for `state` (empty when it fits):
   * a `"step"` entry of the right shape, every slot of every updated parameter with the
   * parameter's shape, nothing else.
   */
  checkState(state: Record<string, Tensor>): string[] {
    if (state === null || typeof state !== "object") return ["expected a record of tensors"];
    const n = this.params.length;
    const problems: string[] = [];
    const step = state.step;
    let counts: Int32Array | null = null;
    if (!(step instanceof Tensor) || step.dtype !== "i32" || step.ndim !== 1) {
      problems.push(`"step" must be an i32 tensor of shape [${n}]`);
    } else if (step.shape[0] !== n) {
      problems.push(`"step" has ${step.shape[0]} entries but the optimizer has ${n} parameters`);
    } else counts = step.toTypedArray() as Int32Array;
    const expected = new Set(["step"]);
    for (let i = 0; i < n && counts; i++) {
      if (counts[i] < 0) problems.push(`"step" of parameter ${i} is negative`);
      if (counts[i] === 0) continue;
      for (const s of this.#slotsOf(i)) {
        const key = `${i}.${s}`, t = state[key], p = this.params[i];
        expected.add(key);
        if (!(t instanceof Tensor)) problems.push(`missing "${key}"`);
        else if (
          t.dtype !== "f32" || t.shape.length !== p.ndim || t.shape.some((d, k) => d !== p.shape[k])
        ) {
          problems.push(`"${key}" is ${t.dtype} ${fmt(t.shape)}, expected f32 ${fmt(p.shape)}`);
        }
      }
    }
    for (const key of Object.keys(state)) {
      if (!expected.has(key)) problems.push(`unexpected "${key}"`);
    }
    return problems;
  }

  /**
   * Restores a {@linkcode Optimizer.state}, e.g. read back from a checkpoint (any device: values
   * are copied onto the parameters' devices). Everything is checked before anything is written.
   *
   * @throws {RangeError} listing every problem {@linkcode Optimizer.checkState} finds
   */
  loadState(state: Record<string, Tensor>): void {
    const op = `${this.#name}.loadState`;
    if (state === null || typeof state !== "object") {
      throw new TypeError(`${op}: expected a record of tensors`);
    }
    const problems = this.checkState(state);
    if (problems.length) {
      throw new RangeError(`${op}: ${problems.length} problem(s): ${problems.join("; ")}`);
    }
    const counts = state.step.toTypedArray() as Int32Array;
    for (let i = 0; i < this.params.length; i++) {
      this.steps[i] = counts[i];
      for (const s of this.#slotsOf(i)) {
        const src = state[`${i}.${s}`];
        if (!src) {
          this.slots[i].get(s)?.dispose();
          this.slots[i].delete(s);
          continue;
        }
        const dst = this.slot(i, s);
        if (src.device === dst.device) dst.assign(src);
        else {
          const moved = tensor(src.toTypedArray(), { shape: src.shape, device: dst.device });
          dst.assign(moved);
          moved.dispose();
        }
      }
    }
  }

  /** Frees the state tensors (the parameters are left alone). */
  dispose(): void {
    for (const m of this.slots) {
      for (const t of m.values()) t.dispose();
      m.clear();
    }
  }
}
