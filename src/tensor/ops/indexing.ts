/** Index ops: indexSelect/indexAdd, gather/scatter/scatterAdd, embedding, topk. Indices are i32 or i64 tensors. */
import type { AnyArray, FArray } from '../backend.js';
import { record } from '../autograd.js';
import { Tensor, empty, fmtShape, sizeOf } from '../tensor.js';
import { DTypeError, ShapeError } from '../../errors.js';
import { backendFor, farr, floatArgs, normAxis } from './common.js';
import { clone, contiguous } from './shape.js';

/** A validated contiguous Int32Array of an index tensor's values, each in [0, bound). */
export function indexArray(op: string, idx: Tensor, bound: number): Int32Array {
  if (idx.dtype !== 'i32' && idx.dtype !== 'i64') throw new DTypeError(`${op}: indices must be i32 or i64, got ${idx.describe()}`);
  // Always a private copy: backward closures keep it after the index tensor is disposed.
  const vals = idx.toArray() as Int32Array | BigInt64Array;
  const out = new Int32Array(vals.length);
  for (let i = 0; i < vals.length; i++) {
    const v = Number(vals[i]!);
    if (!(v >= 0 && v < bound)) throw new ShapeError(`${op}: index ${String(vals[i])} out of range [0, ${bound}) at position ${i} of ${idx.describe()}`);
    out[i] = v;
  }
  return out;
}

function dims3(t: Tensor, d: number): [number, number, number] {
  return [sizeOf(t.shape.slice(0, d)), t.shape[d]!, sizeOf(t.shape.slice(d + 1))];
}

/** Rows of x along dim picked by a 1-d index (like torch.index_select). Gradient: indexAdd. */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normAxis('indexSelect', dim, x.ndim);
  if (index.ndim !== 1) throw new ShapeError(`indexSelect: index must be 1-d, got ${index.describe()}`);
  const [outer, n, inner] = dims3(x, d);
  const idx = indexArray('indexSelect', index, n);
  const shape = [...x.shape];
  shape[d] = idx.length;
  const c = contiguous(x);
  const out = empty(shape, x.dtype);
  backendFor(x.dtype).indexSelect(out.raw, c.raw.subarray(c.offset, c.offset + c.size) as AnyArray, idx, outer, n, idx.length, inner);
  if (c !== x) c.dispose();
  return record(out, 'indexSelect', [x], (g) => {
    const z = empty(x.shape, g.dtype, true);
    const gc = contiguous(g);
    backendFor(g.dtype).indexAdd(farr(z), farr(gc), idx, outer, n, idx.length, inner);
    if (gc !== g) gc.dispose();
    return [z];
  });
}

/** x with src's slices added at index positions along dim (out of place; like torch.index_add). */
export function indexAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const dt = floatArgs('indexAdd', x, src);
  const d = normAxis('indexAdd', dim, x.ndim);
  const [outer, n, inner] = dims3(x, d);
  const idx = indexArray('indexAdd', index, n);
  const want = [...x.shape];
  want[d] = idx.length;
  if (src.ndim !== x.ndim || src.shape.some((v, i) => v !== want[i])) {
    throw new ShapeError(`indexAdd: source ${src.describe()} must have shape ${fmtShape(want)} for ${x.describe()} and ${idx.length} indices`);
  }
  const out = clone(x);
  out.gradFn = null;
  out.requiresGrad = false;
  const sc = contiguous(src);
  backendFor(dt).indexAdd(farr(out), farr(sc), idx, outer, n, idx.length, inner);
  if (sc !== src) sc.dispose();
  return record(out, 'indexAdd', [x, src], (g) => {
    const gc = contiguous(g);
    const gs = empty(want, g.dtype);
    backendFor(g.dtype).indexSelect(gs.raw, farr(gc), idx, outer, n, idx.length, inner);
    const gx = clone(g);
    if (gc !== g) gc.dispose();
    return [gx, gs];
  });
}

/** Embedding lookup: weight [V, D], ids [...] -> [..., D]. Gradient: scatter-add of rows. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) throw new ShapeError(`embedding: weight must be [vocab, dim], got ${weight.describe()}`);
  const flat = ids.ndim === 1 ? ids : ids.reshape(ids.size);
  const rows = indexSelect(weight, 0, flat);
  if (flat !== ids) flat.dispose();
  return rows.reshape(...ids.shape, weight.shape[1]!);
}

function checkGatherShapes(op: string, x: Tensor, d: number, index: Tensor): void {
  if (index.ndim !== x.ndim || index.shape.some((v, i) => i !== d && v !== x.shape[i])) {
    throw new ShapeError(`${op}: index ${index.describe()} must match ${x.describe()} in every dim but ${d}`);
  }
}

/** out[o, j, i] = x[o, index[o, j, i], i] along dim (torch.gather; index matches x except in dim). */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normAxis('gather', dim, x.ndim);
  checkGatherShapes('gather', x, d, index);
  const [outer, n, inner] = dims3(x, d);
  const idx = indexArray('gather', index, n);
  const c = contiguous(x);
  const out = empty(index.shape, x.dtype);
  backendFor(x.dtype).gather(out.raw, c.raw.subarray(c.offset, c.offset + c.size) as AnyArray, idx, outer, n, index.shape[d]!, inner);
  if (c !== x) c.dispose();
  return record(out, 'gather', [x], (g) => {
    const z = empty(x.shape, g.dtype, true);
    const gc = contiguous(g);
    backendFor(g.dtype).scatter(farr(z), farr(gc), idx, outer, n, index.shape[d]!, inner, true);
    if (gc !== g) gc.dispose();
    return [z];
  });
}

/** In place, no autograd: dst[o, index[o,j,i], i] (+)= src[o, j, i]. dst must be contiguous. */
export function scatterRaw(dst: Tensor, d: number, index: Tensor, src: Tensor, accumulate: boolean): void {
  const [outer, n, inner] = dims3(dst, d);
  const idx = indexArray('scatter', index, n);
  const sc = contiguous(src);
  backendFor(dst.dtype).scatter(farr(dst), farr(sc), idx, outer, n, index.shape[d]!, inner, accumulate);
  if (sc !== src) sc.dispose();
}

/** x with src written at index along dim (torch.scatter, out of place). Gradient to x excludes overwritten places. */
export function scatter(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  return scatterOp('scatter', x, dim, index, src, false);
}
/** x with src added at index along dim (torch.scatter_add, out of place). */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  return scatterOp('scatterAdd', x, dim, index, src, true);
}

function scatterOp(op: string, x: Tensor, dim: number, index: Tensor, src: Tensor, accumulate: boolean): Tensor {
  floatArgs(op, x, src);
  const d = normAxis(op, dim, x.ndim);
  checkGatherShapes(op, x, d, index);
  if (src.ndim !== index.ndim || src.shape.some((v, i) => v !== index.shape[i])) {
    throw new ShapeError(`${op}: source ${src.describe()} must have the index's shape ${fmtShape(index.shape)}`);
  }
  const out = clone(x);
  out.gradFn = null;
  out.requiresGrad = false;
  scatterRaw(out, d, index, src, accumulate);
  return record(out, op, [x, src], (g) => {
    let gx: Tensor;
    if (accumulate) gx = clone(g);
    else {
      // Overwritten positions get no gradient from x.
      gx = clone(g);
      gx.gradFn = null;
      const z = empty(index.shape, g.dtype, true);
      scatterRaw(gx, d, index, z, false);
      z.dispose();
    }
    const gs = src.requiresGrad ? gather(g, d, index) : null;
    return [gx, gs];
  });
}

/**
 * The k largest (or smallest) values along the last dim, sorted, with their i32 indices.
 * values is differentiable (the gradient scatters back to the chosen positions).
 */
export function topk(x: Tensor, k: number, opts: { largest?: boolean } = {}): { values: Tensor; indices: Tensor } {
  const dt = floatArgs('topk', x);
  if (x.ndim === 0) throw new ShapeError('topk: needs at least 1 dim');
  const n = x.shape[x.ndim - 1]!;
  if (!Number.isInteger(k) || k < 0 || k > n) throw new ShapeError(`topk: k = ${k} out of range for last dim ${n} of ${x.describe()}`);
  const rows = x.size / Math.max(n, 1);
  const shape = [...x.shape.slice(0, -1), k];
  const c = contiguous(x);
  const values = empty(shape, dt);
  const indices = empty(shape, 'i32');
  if (n > 0) backendFor(dt).topk(farr(values), indices.raw as Int32Array, farr(c), rows, n, k, opts.largest ?? true);
  if (c !== x) c.dispose();
  record(values, 'topk', [x], (g) => {
    const z = empty(x.shape, g.dtype, true);
    scatterRaw(z, x.ndim - 1, indices, g, true);
    return [z];
  });
  return { values, indices };
}

/** Fill helper used by creation ops. */
export function fillArray(a: AnyArray, v: number): void {
  if (a instanceof BigInt64Array) a.fill(BigInt(Math.trunc(v)));
  else (a as FArray).fill(v);
}
