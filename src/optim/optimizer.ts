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
 * Base class of the optimizers. Parameters are numbered across groups in order; that index names
 * their state in {@linkcode Optimizer.state} (`"<index>.<slot>"`, plus `"step"`: the number of
 * updates each parameter has received, i32 of shape [numParams]).
 */
export abstract class Optimizer<O extends { lr: number }> {
  /** The groups, defaults filled in. Change `lr` here (or with {@linkcode setLr}) between steps. */
  readonly paramGroups: ResolvedGroup<O>[];
  /** Every parameter, in index order. */
  readonly params: readonly Tensor[];
  /** Updates each parameter has received (the step count of its bias corrections). */
  protected readonly steps: number[];
  /** Per-parameter state tensors by slot name (e.g. m, v), allocated on the first update. */
  protected readonly slots: Map<string, Tensor>[];
  readonly #name: string;
  readonly #slotNames: readonly string[];

  /** Validates the parameters and options; `check` validates one group's resolved options. */
  protected constructor(
    name: string,
    params: readonly Tensor[] | readonly ParamGroup<O>[],
    defaults: O,
    slotNames: readonly string[],
    check: (options: O, where: string) => void,
  ) {
    this.#name = name;
    this.#slotNames = slotNames;
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
   * Restores a {@linkcode Optimizer.state}, e.g. read back from a checkpoint (any device: values
   * are copied onto the parameters' devices). Everything is checked before anything is written.
   */
  loadState(state: Record<string, Tensor>): void {
    const op = `${this.#name}.loadState`;
    if (state === null || typeof state !== "object") {
      throw new TypeError(`${op}: expected a record of tensors`);
    }
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
      for (const s of this.#slotNames) {
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
    if (problems.length) {
      throw new RangeError(`${op}: ${problems.length} problem(s): ${problems.join("; ")}`);
    }
    for (let i = 0; i < n; i++) {
      this.steps[i] = counts![i];
      for (const s of this.#slotNames) {
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
