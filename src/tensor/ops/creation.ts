/** Creation: zeros, ones, full, arange, tensor from values, *Like variants. */
import type { AnyArray, FArray } from '../backend.js';
import type { DType } from '../dtype.js';
import { Tensor, empty, fromArray, sizeOf } from '../tensor.js';
import { ShapeError } from '../../errors.js';
import { fillArray } from './indexing.js';

export function zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return empty(shape, dtype, true);
}
export function full(shape: readonly number[], value: number, dtype: DType = 'f32'): Tensor {
  const t = empty(shape, dtype);
  fillArray(t.raw, value);
  return t;
}
export function ones(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return full(shape, 1, dtype);
}
export const zerosLike = (t: Tensor): Tensor => zeros(t.shape, t.dtype);
export const onesLike = (t: Tensor): Tensor => ones(t.shape, t.dtype);
export const fullLike = (t: Tensor, v: number): Tensor => full(t.shape, v, t.dtype);

/** [start, end) by step. */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'i32'): Tensor {
  if (end === undefined) { end = start; start = 0; }
  if (step === 0) throw new ShapeError('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const t = empty([n], dtype);
  const a = t.raw;
  if (a instanceof BigInt64Array) for (let i = 0; i < n; i++) a[i] = BigInt(start + i * step);
  else for (let i = 0; i < n; i++) (a as FArray)[i] = start + i * step;
  return t;
}

type Nested = number | Nested[];

/** A tensor from (nested) JS numbers or a typed array; shape inferred from nesting unless given. */
export function tensor(values: Nested | AnyArray | readonly number[], opts: { shape?: readonly number[]; dtype?: DType } = {}): Tensor {
  const dtype = opts.dtype ?? 'f32';
  if (ArrayBuffer.isView(values)) {
    const arr = values as AnyArray;
    return fromArray(arr, opts.shape ?? [arr.length], opts.dtype);
  }
  const shape: number[] = [];
  let v: Nested = values as Nested;
  while (Array.isArray(v)) { shape.push(v.length); v = v[0] as Nested; if (v === undefined) break; }
  const flat: number[] = [];
  const walk = (x: Nested, depth: number): void => {
    if (Array.isArray(x)) {
      if (x.length !== shape[depth]) throw new ShapeError(`tensor: ragged nested array at depth ${depth} (expected ${shape[depth]} items, got ${x.length})`);
      for (const y of x) walk(y, depth + 1);
    } else {
      if (depth !== shape.length) throw new ShapeError('tensor: ragged nested array');
      if (typeof x !== 'number') throw new ShapeError(`tensor: expected numbers, got ${typeof x}`);
      flat.push(x);
    }
  };
  walk(values as Nested, 0);
  const finalShape = opts.shape ? [...opts.shape] : shape;
  if (sizeOf(finalShape) !== flat.length) throw new ShapeError(`tensor: ${flat.length} values do not fill shape [${finalShape.join(', ')}]`);
  const t = empty(finalShape, dtype);
  const a = t.raw;
  if (a instanceof BigInt64Array) flat.forEach((x, i) => { a[i] = BigInt(Math.trunc(x)); });
  else flat.forEach((x, i) => { (a as FArray)[i] = x; });
  return t;
}

/** A 0-d tensor. */
export function scalar(v: number, dtype: DType = 'f32'): Tensor {
  return full([], v, dtype);
}
