/**
 * Tensor: a strided view over a reference-counted storage, with reverse-mode autograd.
 *
 * Views (reshape of contiguous data, transpose/permute, narrow, expand, squeeze/unsqueeze) share
 * storage; dispose() releases this tensor's hold, and the buffer returns to the pool when the last
 * view is gone. Ops live in ./ops/*; the methods here are thin conveniences that call them.
 */
import type { AnyArray } from './backend.js';
import type { DType } from './dtype.js';
import { arrayMatches, isComputeFloat } from './dtype.js';
import { allocArray, releaseArray, track, keep } from './memory.js';
import { DisposedError, DTypeError, ShapeError } from '../errors.js';
import type { GradNode } from './autograd.js';
import * as ops from './ops/index.js';

export class Storage {
  refs = 0;
  /** False when the array was supplied by the caller (not from the pool): never recycled. */
  constructor(public data: AnyArray, public readonly pooled: boolean) {}
  retain(): void { this.refs++; }
  release(): void {
    if (--this.refs === 0 && this.pooled) releaseArray(this.data);
  }
}

let nextId = 1;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function checkShape(shape: readonly number[], op = 'tensor'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: invalid shape ${fmtShape(shape)} (dimensions must be non-negative integers)`);
  }
}

export class Tensor {
  readonly id = nextId++;
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The node that made this tensor (null for leaves and no-grad results). */
  gradFn: GradNode | null = null;
  /** Optional name (parameter path) used in error messages. */
  name?: string;
  private disposed = false;

  constructor(
    readonly storage: Storage,
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
    readonly offset: number,
  ) {
    this.size = sizeOf(shape);
    storage.retain();
    track(this);
  }

  get ndim(): number { return this.shape.length; }
  get isDisposed(): boolean { return this.disposed; }

  /** The raw storage array (shared with views; index with offset and strides). Throws if disposed. */
  get raw(): AnyArray {
    if (this.disposed) throw new DisposedError(`tensor ${this.describe()} was disposed`);
    return this.storage.data;
  }

  isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      const d = this.shape[i]!;
      if (d !== 1 && this.strides[i] !== acc) return false;
      acc *= d;
    }
    return true;
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}${fmtShape(this.shape)} ${this.dtype}`;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // gradFn stays: a disposed tensor in a graph still routes gradients (its own data is gone, so a
    // backward that needs it fails with DisposedError rather than silently cutting the graph).
    this.storage.release();
    if (this.grad) { this.grad.dispose(); this.grad = null; }
  }

  /** Keep this tensor out of every enclosing tidy() (parameters, caches, results to hold on to). */
  keep(): this { return keep(this); }

  /** A contiguous typed array of the values (a fresh copy, never pooled: safe to keep). */
  toArray(): AnyArray {
    const c = this.isContiguous() ? this : ops.contiguous(this);
    const src = c.raw;
    const out = src.slice(c.offset, c.offset + c.size) as AnyArray;
    if (c !== this) c.dispose();
    return out;
  }

  /** Values as a nested JS array (numbers; i64 as numbers). */
  tolist(): unknown {
    const flat = Array.from(this.toArray() as ArrayLike<number | bigint>, (v) => Number(v));
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return flat[off];
      const n = this.shape[dim]!;
      const step = sizeOf(this.shape.slice(dim + 1));
      const r: unknown[] = [];
      for (let i = 0; i < n; i++) r.push(build(dim + 1, off + i * step));
      return r;
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item(): tensor ${this.describe()} has ${this.size} elements, expected 1`);
    const v = this.raw[this.offset + 0];
    if (this.dtype === 'bf16' || this.dtype === 'f16') return ops.cast(this, 'f32').item();
    return Number(v);
  }

  // ---- autograd ----
  setRequiresGrad(on = true): this {
    if (on && !isComputeFloat(this.dtype)) throw new DTypeError(`requiresGrad: only f32/f64 tensors can require gradients, got ${this.describe()}`);
    this.requiresGrad = on;
    return this;
  }
  backward(grad?: Tensor, opts?: { retainGraph?: boolean }): void { ops.backward(this, grad, opts); }
  detach(): Tensor { return ops.detach(this); }
  zeroGrad(): void { if (this.grad) { this.grad.dispose(); this.grad = null; } }

  // ---- conveniences (see ops/*) ----
  contiguous(): Tensor { return ops.contiguous(this); }
  clone(): Tensor { return ops.clone(this); }
  to(dtype: DType): Tensor { return ops.cast(this, dtype); }
  reshape(...shape: number[]): Tensor { return ops.reshape(this, shape); }
  view(...shape: number[]): Tensor { return ops.reshape(this, shape); }
  flatten(start = 0, end = -1): Tensor { return ops.flatten(this, start, end); }
  permute(...dims: number[]): Tensor { return ops.permute(this, dims); }
  transpose(a = -2, b = -1): Tensor { return ops.transpose(this, a, b); }
  get T(): Tensor { return ops.transpose(this, -2, -1); }
  narrow(dim: number, start: number, length: number): Tensor { return ops.narrow(this, dim, start, length); }
  expand(...shape: number[]): Tensor { return ops.expand(this, shape); }
  squeeze(dim?: number): Tensor { return ops.squeeze(this, dim); }
  unsqueeze(dim: number): Tensor { return ops.unsqueeze(this, dim); }
  add(b: Tensor | number): Tensor { return ops.add(this, b); }
  sub(b: Tensor | number): Tensor { return ops.sub(this, b); }
  mul(b: Tensor | number): Tensor { return ops.mul(this, b); }
  div(b: Tensor | number): Tensor { return ops.div(this, b); }
  pow(b: Tensor | number): Tensor { return ops.pow(this, b); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  tanh(): Tensor { return ops.tanh(this); }
  relu(): Tensor { return ops.relu(this); }
  silu(): Tensor { return ops.silu(this); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return ops.gelu(this, approximate); }
  clamp(lo: number, hi: number): Tensor { return ops.clamp(this, lo, hi); }
  matmul(b: Tensor): Tensor { return ops.matmul(this, b); }
  sum(dims?: number | number[], keepdim = false): Tensor { return ops.sum(this, dims, keepdim); }
  mean(dims?: number | number[], keepdim = false): Tensor { return ops.mean(this, dims, keepdim); }
  max(dim?: number, keepdim = false): Tensor { return ops.max(this, dim, keepdim); }
  min(dim?: number, keepdim = false): Tensor { return ops.min(this, dim, keepdim); }
  argmax(dim = -1, keepdim = false): Tensor { return ops.argmax(this, dim, keepdim); }
  softmax(dim = -1): Tensor { return ops.softmax(this, dim); }
  logSoftmax(dim = -1): Tensor { return ops.logSoftmax(this, dim); }

  toString(): string {
    return `Tensor(${this.describe()})`;
  }
}

/** A fresh tensor over a new pooled buffer (contents undefined unless zero). */
export function empty(shape: readonly number[], dtype: DType = 'f32', zero = false): Tensor {
  checkShape(shape);
  const n = sizeOf(shape);
  return new Tensor(new Storage(allocArray(dtype, n, zero), true), dtype, [...shape], contiguousStrides(shape), 0);
}

/** A tensor over a caller's array (not copied, never recycled). */
export function fromArray(data: AnyArray, shape: readonly number[], dtype?: DType): Tensor {
  checkShape(shape);
  const n = sizeOf(shape);
  const dt: DType = dtype ?? inferDType(data);
  if (!arrayMatches(dt, data)) throw new DTypeError(`fromArray: a ${data.constructor.name} cannot hold dtype ${dt}`);
  if (data.length !== n) throw new ShapeError(`fromArray: ${data.length} values do not fill shape ${fmtShape(shape)} (${n} elements)`);
  return new Tensor(new Storage(data, false), dt, [...shape], contiguousStrides(shape), 0);
}

function inferDType(a: AnyArray): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof BigInt64Array) return 'i64';
  if (a instanceof Uint16Array) return 'bf16';
  return 'u8';
}

/** A new view on t's storage. */
export function makeView(t: Tensor, shape: readonly number[], strides: readonly number[], offset: number): Tensor {
  return new Tensor(t.storage, t.dtype, shape, strides, offset);
}
