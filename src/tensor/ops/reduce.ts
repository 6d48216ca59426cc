/** Reductions: sum, mean, max, min over axes; argmax/argmin. */
import { record } from '../autograd.js';
import { Tensor, empty, sizeOf } from '../tensor.js';
import { backendFor, farr, floatArgs, normAxis } from './common.js';
import { contiguous, expand, reduceDims, reshape } from './shape.js';
import { mulScalar } from './elementwise.js';
import { scatterRaw } from './indexing.js';

function axesOf(op: string, t: Tensor, dims?: number | readonly number[]): number[] {
  if (dims === undefined) return t.shape.map((_, i) => i);
  const list = typeof dims === 'number' ? [dims] : [...dims];
  return [...new Set(list.map((d) => normAxis(op, d, t.ndim)))].sort((a, b) => a - b);
}

function keptShape(t: Tensor, axes: readonly number[]): number[] {
  return t.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Gradient of a reduction: g (reduced shape) broadcast back to the input shape, made contiguous. */
function broadcastBack(g: Tensor, t: Tensor, axes: readonly number[]): Tensor {
  const gk = reshape(g, keptShape(t, axes));
  const e = expand(gk, t.shape);
  const c = contiguous(e);
  const r = c === e ? reshape(e, t.shape) : c;
  if (r !== e) e.dispose();
  gk.dispose();
  return r;
}

export function sum(t: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  floatArgs('sum', t);
  const axes = axesOf('sum', t, dims);
  const r = reduceDims(t, axes, 'sum');
  const out = keepdim ? reshapeConsume(r, keptShape(t, axes)) : r;
  return record(out, 'sum', [t], (g) => [broadcastBack(g, t, axes)]);
}

export function mean(t: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const axes = axesOf('mean', t, dims);
  const n = sizeOf(axes.map((a) => t.shape[a]!));
  const s = sum(t, axes, keepdim);
  const m = mulScalar(s, 1 / n);
  return m;
}

function reshapeConsume(t: Tensor, shape: number[]): Tensor {
  const r = reshape(t, shape);
  t.dispose();
  return r;
}

/** Max over one dim (or all elements when dim is undefined). The gradient goes to the first maximum. */
export function max(t: Tensor, dim?: number, keepdim = false): Tensor {
  return extremum('max', t, dim, keepdim);
}
export function min(t: Tensor, dim?: number, keepdim = false): Tensor {
  return extremum('min', t, dim, keepdim);
}

function extremum(op: 'max' | 'min', t: Tensor, dim: number | undefined, keepdim: boolean): Tensor {
  floatArgs(op, t);
  if (dim === undefined) {
    const flat = reshape(t, [t.size]);
    const r = extremum(op, flat, 0, false);
    return keepdim ? reshapeConsume(r, t.shape.map(() => 1)) : r;
  }
  const d = normAxis(op, dim, t.ndim);
  const out = reduceDims(t, [d], op);
  const shaped = keepdim ? reshapeConsume(out, keptShape(t, [d])) : out;
  return record(shaped, op, [t], (g) => {
    const idx = argReduce(op === 'max' ? 'argmax' : 'argmin', t, d, true);
    const gk = reshape(g, keptShape(t, [d]));
    const gc = contiguous(gk);
    const z = empty(t.shape, t.dtype, true);
    scatterRaw(z, d, idx, gc, false);
    idx.dispose(); gk.dispose(); if (gc !== gk) gc.dispose();
    return [z];
  });
}

function argReduce(op: 'argmax' | 'argmin', t: Tensor, dim: number, keepdim: boolean): Tensor {
  const dt = floatArgs(op, t);
  const d = normAxis(op, dim, t.ndim);
  const c = contiguous(t);
  const outer = sizeOf(t.shape.slice(0, d));
  const n = t.shape[d]!;
  const inner = sizeOf(t.shape.slice(d + 1));
  const shape = keepdim ? keptShape(t, [d]) : t.shape.filter((_, i) => i !== d);
  const out = empty(shape, 'i32');
  backendFor(dt).argReduce(op, out.raw as Int32Array, farr(c), outer, n, inner);
  if (c !== t) c.dispose();
  return out;
}

/** Index of the first maximum along dim (i32, no gradient). */
export function argmax(t: Tensor, dim = -1, keepdim = false): Tensor {
  return argReduce('argmax', t, dim, keepdim);
}
export function argmin(t: Tensor, dim = -1, keepdim = false): Tensor {
  return argReduce('argmin', t, dim, keepdim);
}
