/**
 * Module: a tree of named parameters whose paths are the Hugging Face tensor names
 * (DESIGN: "Hugging Face names are the wire format"), so loading and saving are lookups.
 */
import { Tensor, randn, zeros, ones, Rng, keep } from '../tensor/index.js';
import type { DType } from '../tensor/index.js';
import { ShapeError } from '../errors.js';

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  /** Register a parameter under `name` (requires grad, kept out of tidy scopes). */
  protected param(name: string, t: Tensor, trainable = true): Tensor {
    if (trainable) t.setRequiresGrad(true);
    keep(t);
    this._params.set(name, t);
    return t;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  /** (HF path, tensor) for every parameter, depth first in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this._params) out.push([prefix + n, t]);
    for (const [n, m] of this._children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** (path, module) for this module ('' or prefix without its dot) and every descendant, depth first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this._children) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Only the trainable parameters (requiresGrad). */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((t) => t.requiresGrad);
  }

  numParameters(): number {
    return this.parameters().reduce((a, t) => a + t.size, 0);
  }

  train(on = true): this {
    this.training = on;
    for (const m of this._children.values()) m.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** The parameter at an HF path (relative to this module), or undefined. */
  getParameter(path: string): Tensor | undefined {
    const own = this._params.get(path);
    if (own) return own;
    for (const [n, m] of this._children) {
      if (path.startsWith(n + '.')) { const t = m.getParameter(path.slice(n.length + 1)); if (t) return t; }
    }
    return undefined;
  }

  /**
   * Copy values into the parameter at `path`, in place (modules keep their references), converting
   * the dtype if needed. Shape must match exactly.
   */
  setParameter(path: string, value: Tensor): void {
    const cur = this.getParameter(path);
    if (!cur) throw new ShapeError(`setParameter: no parameter named ${path}`);
    if (cur.shape.length !== value.shape.length || cur.shape.some((d, i) => d !== value.shape[i])) {
      throw new ShapeError(`setParameter: ${path} expects shape [${cur.shape.join(', ')}], got [${value.shape.join(', ')}]`);
    }
    const v = value.dtype === cur.dtype ? value.contiguous() : value.to(cur.dtype);
    (cur.raw as unknown as { set(a: ArrayLike<number>, o: number): void }).set(v.raw.subarray(v.offset, v.offset + v.size) as unknown as ArrayLike<number>, cur.offset);
    if (v !== value) v.dispose();
  }

  /** Dispose every parameter. */
  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}

/** A list of modules named 0, 1, 2, ... (HF's nn.ModuleList). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[] = [];
  constructor(items: M[]) {
    super();
    items.forEach((m, i) => { this.items.push(this.child(String(i), m)); });
  }
}

export interface InitOptions {
  rng: Rng;
  std: number;
  dtype: DType;
}

/** The dtype parameters are created in ('empty' models load f32 weights). */
export function dtypeOf(init: InitOptions | 'empty'): DType {
  return init === 'empty' ? 'f32' : init.dtype;
}

export function normalInit(shape: number[], init: InitOptions): Tensor {
  return randn(shape, { rng: init.rng, std: init.std, dtype: init.dtype });
}
export function zeroInit(shape: number[], dtype: DType): Tensor {
  return zeros(shape, dtype);
}
export function oneInit(shape: number[], dtype: DType): Tensor {
  return ones(shape, dtype);
}
