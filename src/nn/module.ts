/**
 * Module: a tree of named parameters and sub-modules, like PyTorch's nn.Module. Parameters and
 * children are plain fields; names come from the field path (`h.0.attn.c_attn.weight`).
 * @module
 */

import { keep } from "../memory.ts";
import { noGrad } from "../autograd.ts";
import { Tensor } from "../tensor.ts";
import { fmt } from "../_shape.ts";

/**
 * Marks `t` as a trainable parameter: requiresGrad, and kept out of every tidy scope.
 *
 * @returns the same tensor
 */
export function parameter(t: Tensor): Tensor {
  t.requiresGrad = true;
  registeredParameters.add(t);
  return keep(t);
}

// Tensors made by parameter(): freezing clears requiresGrad, so this set is what still tells a
// frozen parameter from a buffer (unfreeze() and the includeFrozen listings need it).
const registeredParameters = new WeakSet<Tensor>();

/** Options of {@linkcode Module.namedParameters} and the listings built on it. */
export interface ParameterListOptions {
  /** Also list frozen parameters (made by {@linkcode parameter}, requiresGrad now false). Default false. */
  includeFrozen?: boolean;
}

/** Options of {@linkcode Module.loadStateDict}. */
export interface LoadStateDictOptions {
  /** Every parameter must be present and no extra names allowed (default true). */
  strict?: boolean;
}

/**
 * Base class of layers and models. Subclasses assign parameters (tensors with requiresGrad),
 * buffers (other tensors, not trained) and child modules (or arrays of them) to fields in their
 * constructor; `namedParameters()` finds them by walking the fields in definition order.
 *
 * @example
 * ```ts
 * import { Module, parameter, randn, type Tensor } from "@denograd/denograd";
 * class Scale extends Module {
 *   w: Tensor = parameter(randn([3]));
 *   forward(x: Tensor): Tensor {
 *     return x.mul(this.w);
 *   }
 * }
 * console.log(new Scale().namedParameters().map(([n]) => n)); // ["w"]
 * ```
 */
export class Module {
  /** Training mode (dropout active); switch with train()/eval(). */
  training = true;

  /** Child modules by field name (arrays of modules are named `field.0`, `field.1`, ...). */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Module) out.push([key, value]);
      else if (Array.isArray(value)) {
        value.forEach((v, i) => {
          if (v instanceof Module) out.push([`${key}.${i}`, v]);
        });
      }
    }
    return out;
  }

  /** Every module of the tree below this one (depth first, parents first) with dotted paths. */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [name, child] of this.namedChildren()) {
      out.push([prefix + name, child], ...child.namedModules(`${prefix}${name}.`));
    }
    return out;
  }

  /**
   * Puts `module` where the sub-module at dotted `path` is (`h.0.attn.c_attn`; array items by
   * index), the way LoRA wraps a layer in place.
   *
   * @param path a path from {@linkcode Module.namedModules}
   * @param module the replacement
   * @returns the module that was there
   * @throws {RangeError} when no sub-module lives at `path`
   * @example
   * ```ts
   * import { Linear, Module } from "@denograd/denograd";
   * class Net extends Module {
   *   layers = [new Linear(4, 4), new Linear(4, 2)];
   * }
   * const net = new Net();
   * const old = net.setSubmodule("layers.1", new Linear(4, 3));
   * console.log(old.numParameters(), net.layers[1].outFeatures); // 10 3
   * ```
   */
  setSubmodule(path: string, module: Module): Module {
    if (!(module instanceof Module)) {
      throw new TypeError(`setSubmodule: the replacement for "${path}" must be a Module`);
    }
    const missing = () =>
      new RangeError(
        `setSubmodule: no sub-module at "${path}"; the modules are: ${
          this.namedModules().map(([n]) => n).join(", ") || "(none)"
        }`,
      );
    // Walk the fields (and array indices) down to the one that holds the sub-module.
    const parts = typeof path === "string" ? path.split(".") : [""];
    const key = parts.pop()!;
    const has = (holder: unknown, k: string): holder is Record<string, unknown> =>
      (holder instanceof Module || (Array.isArray(holder) && /^\d+$/.test(k))) &&
      Object.hasOwn(holder, k);
    const parent = parts.reduce<unknown>((holder, k) => {
      if (!has(holder, k)) throw missing();
      return holder[k];
    }, this);
    if (!has(parent, key)) throw missing();
    const old = parent[key];
    if (!(old instanceof Module)) {
      throw new RangeError(`setSubmodule: "${path}" holds ${typeof old}, not a Module`);
    }
    parent[key] = module;
    return old;
  }

  /**
   * Every tensor field in the tree, parameters and buffers, with dotted names; a tensor shared by
   * two fields (weight tying) is listed once, under its first name.
   */
  namedTensors(prefix = "", seen: Set<Tensor> = new Set()): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const visit = (name: string, value: unknown) => {
      if (value instanceof Tensor) {
        if (!seen.has(value)) out.push([prefix + name, value]);
        seen.add(value);
      } else if (value instanceof Module) {
        out.push(...value.namedTensors(`${prefix}${name}.`, seen));
      }
    };
    for (const [key, value] of Object.entries(this)) {
      if (Array.isArray(value)) value.forEach((v, i) => visit(`${key}.${i}`, v));
      else visit(key, value);
    }
    return out;
  }

  /**
   * Trainable tensors (requiresGrad) with dotted names, each shared tensor once; with
   * `includeFrozen`, also the parameters that {@linkcode Module.freeze} switched off.
   */
  namedParameters(options: ParameterListOptions = {}): [string, Tensor][] {
    const all = options.includeFrozen ?? false;
    return this.namedTensors().filter(([, t]) =>
      t.requiresGrad || (all && registeredParameters.has(t))
    );
  }

  /** Trainable tensors, each shared tensor once (frozen ones too with `includeFrozen`). */
  parameters(options: ParameterListOptions = {}): Tensor[] {
    return this.namedParameters(options).map(([, t]) => t);
  }

  /** Number of trainable scalars, tied weights counted once (frozen ones too with `includeFrozen`). */
  numParameters(options: ParameterListOptions = {}): number {
    return this.parameters(options).reduce((n, p) => n + p.size, 0);
  }

  /**
   * Stops training every parameter of this tree: requiresGrad off and gradients dropped. The
   * tensors stay in the state dict; {@linkcode Module.unfreeze} (of this module or a child)
   * switches them back on. Freezing a sub-tree is how fine-tuning picks what trains.
   *
   * @returns this module
   * @example
   * ```ts
   * import { Linear, Module } from "@denograd/denograd";
   * class Two extends Module {
   *   body = new Linear(4, 4);
   *   head = new Linear(4, 2);
   * }
   * const m = new Two().freeze();
   * m.head.unfreeze();
   * console.log(m.namedParameters().map(([n]) => n)); // ["head.weight", "head.bias"]
   * console.log(m.numParameters(), m.numParameters({ includeFrozen: true })); // 10 30
   * ```
   */
  freeze(): this {
    for (const t of this.parameters({ includeFrozen: true })) {
      t.zeroGrad();
      t.requiresGrad = false;
    }
    return this;
  }

  /**
   * Makes every parameter of this tree trainable again (the inverse of {@linkcode Module.freeze}).
   *
   * @returns this module
   */
  unfreeze(): this {
    for (const t of this.parameters({ includeFrozen: true })) t.requiresGrad = true;
    return this;
  }

  /** Name -> tensor for every parameter and buffer (the live tensors, not copies). */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedTensors());
  }

  /**
   * Copies values from `state` into this module's tensors, in place. Every name and shape is
   * checked before anything is written, so a bad state leaves the module unchanged.
   */
  loadStateDict(state: Record<string, Tensor>, options: LoadStateDictOptions = {}): void {
    const { strict = true } = options;
    const own = new Map(this.namedTensors());
    const problems: string[] = [];
    for (const [name, t] of Object.entries(state)) {
      const target = own.get(name);
      if (!target) {
        if (strict) problems.push(`unexpected "${name}"`);
        continue;
      }
      if (!(t instanceof Tensor)) problems.push(`"${name}" is not a Tensor`);
      else if (
        t.shape.length !== target.shape.length || t.shape.some((d, i) => d !== target.shape[i])
      ) {
        problems.push(`"${name}" has shape ${fmt(t.shape)}, expected ${fmt(target.shape)}`);
      }
    }
    if (strict) {
      for (const name of own.keys()) if (!(name in state)) problems.push(`missing "${name}"`);
    }
    if (problems.length) {
      throw new RangeError(`loadStateDict: ${problems.length} problem(s): ${problems.join("; ")}`);
    }
    noGrad(() => {
      for (const [name, t] of Object.entries(state)) own.get(name)?.assign(t);
    });
  }

  /** Sets training mode on this module and every child. */
  train(mode = true): this {
    this.training = mode;
    for (const [, child] of this.namedChildren()) child.train(mode);
    return this;
  }

  /** Evaluation mode (dropout off). */
  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /**
   * Frees every tensor of the tree (and their gradients), then lets each child module free what
   * it keeps outside its fields (caches such as attention's ALiBi slopes). Disposing twice is
   * harmless.
   */
  dispose(): void {
    for (const [, t] of this.namedTensors()) {
      t.zeroGrad();
      t.dispose();
    }
    for (const [, child] of this.namedChildren()) child.dispose();
  }
}
