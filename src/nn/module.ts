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
  return keep(t);
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

  /** Trainable tensors (requiresGrad) with dotted names, each shared tensor once. */
  namedParameters(): [string, Tensor][] {
    return this.namedTensors().filter(([, t]) => t.requiresGrad);
  }

  /** Trainable tensors, each shared tensor once. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Number of trainable scalars (tied weights counted once). */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
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

  /** Frees every tensor of the tree (and their gradients). */
  dispose(): void {
    for (const [, t] of this.namedTensors()) {
      t.zeroGrad();
      t.dispose();
    }
  }
}
