/** Views and copies: reshape, permute/transpose, narrow, expand, squeeze/unsqueeze, contiguous, cast, concat/split/stack. */
import type { AnyArray, Strided } from '../backend.js';
import { record } from '../autograd.js';
import type { DType } from '../dtype.js';
import { isComputeFloat } from '../dtype.js';
import { Tensor, contiguousStrides, empty, fmtShape, makeView, sizeOf } from '../tensor.js';
import { DTypeError, ShapeError } from '../../errors.js';
import { backendFor, copyBackend, describeArgs, normAxis, sameShape } from './common.js';

/** A new view of t with identical geometry (used to hand a gradient on without sharing the object). */
export function alias(t: Tensor): Tensor {
  return makeView(t, t.shape, t.strides, t.offset);
}

function stridedView(t: Tensor): Strided {
  return { data: t.raw, offset: t.offset, strides: t.strides };
}

/** Copy t (any layout) into a fresh contiguous tensor of the same dtype. */
function copyContiguous(t: Tensor): Tensor {
  const out = empty(t.shape, t.dtype);
  if (t.size > 0) backendFor(t.dtype).copy({ data: out.raw, offset: 0, strides: out.strides }, stridedView(t), t.shape);
  return out;
}

/** t itself when already contiguous (like PyTorch), otherwise a contiguous copy. */
export function contiguous(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  return record(copyContiguous(t), 'contiguous', [t], (g) => [alias(g)]);
}

/** Always a new contiguous copy. */
export function clone(t: Tensor): Tensor {
  return record(copyContiguous(t), 'clone', [t], (g) => [alias(g)]);
}

/** Convert to another dtype (a copy; the same dtype gives a copy too). */
export function cast(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return clone(t);
  const src = t.isContiguous() ? t : copyContiguous(t);
  const out = empty(t.shape, dtype);
  const from = src.raw.subarray(src.offset, src.offset + src.size) as AnyArray;
  // Kernels convert on the js side unless f32 is involved (native handles f32<->bf16/f16/f64).
  const be = t.dtype === 'f32' || dtype === 'f32' ? backendFor('f32') : backendFor(dtype);
  if (dtype.startsWith('fp8') || t.dtype.startsWith('fp8')) {
    throw new DTypeError(`cast: ${t.dtype} -> ${dtype} goes through src/quant/fp8.ts (scaled codecs), not a plain cast`);
  }
  be.cast(out.raw, dtype, from, t.dtype, t.size);
  if (src !== t) src.dispose();
  if (isComputeFloat(t.dtype) && isComputeFloat(dtype)) return record(out, 'cast', [t], (g) => [cast(g, t.dtype)]);
  return out;
}

/** Resolve a -1 in a requested shape. */
function inferShape(op: string, t: Tensor, shape: readonly number[]): number[] {
  const out = [...shape];
  let infer = -1;
  let known = 1;
  for (let i = 0; i < out.length; i++) {
    const d = out[i]!;
    if (d === -1) {
      if (infer >= 0) throw new ShapeError(`${op}: only one -1 allowed in ${fmtShape(shape)}`);
      infer = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${op}: invalid shape ${fmtShape(shape)}`);
    } else known *= d;
  }
  if (infer >= 0) {
    if (known === 0 || t.size % known !== 0) throw new ShapeError(`${op}: cannot reshape ${fmtShape(t.shape)} (${t.size} elements) into ${fmtShape(shape)}`);
    out[infer] = t.size / known;
  }
  if (sizeOf(out) !== t.size) throw new ShapeError(`${op}: cannot reshape ${fmtShape(t.shape)} ${t.dtype} (${t.size} elements) into ${fmtShape(shape)} (${sizeOf(out)} elements)`);
  return out;
}

/**
 * Strides for viewing t as `shape` without a copy, or null if impossible
 * (PyTorch's rule: each run of merged dims must be contiguous among themselves).
 */
function viewStrides(t: Tensor, shape: readonly number[]): number[] | null {
  if (t.isContiguous()) return contiguousStrides(shape);
  // Drop size-1 dims from the source, then match chunks.
  const sd: number[] = [];
  const ss: number[] = [];
  t.shape.forEach((d, i) => { if (d !== 1) { sd.push(d); ss.push(t.strides[i]!); } });
  const out = new Array<number>(shape.length).fill(0);
  let si = 0;
  let oi = 0;
  while (oi < shape.length || si < sd.length) {
    if (oi < shape.length && shape[oi] === 1) { out[oi] = 1; oi++; continue; }
    if (si >= sd.length || oi >= shape.length) return null;
    // Collect a group of source dims and target dims with equal products.
    let sp = sd[si]!;
    let op = shape[oi]!;
    const sStart = si;
    const oStart = oi;
    si++; oi++;
    while (sp !== op) {
      if (sp < op) { if (si >= sd.length) return null; sp *= sd[si]!; si++; }
      else { while (oi < shape.length && shape[oi] === 1) { out[oi] = 1; oi++; } if (oi >= shape.length) return null; op *= shape[oi]!; oi++; }
    }
    // Source dims sStart..si-1 must be mutually contiguous.
    for (let k = sStart; k < si - 1; k++) if (ss[k] !== ss[k + 1]! * sd[k + 1]!) return null;
    let stride = ss[si - 1]!;
    for (let k = oi - 1; k >= oStart; k--) {
      out[k] = stride;
      stride *= shape[k]!;
    }
  }
  return out;
}

export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  const s = inferShape('reshape', t, shape);
  if (sameShape(s, t.shape)) return record(alias(t), 'reshape', [t], (g) => [alias(g)]);
  const strides = viewStrides(t, s);
  let out: Tensor;
  if (strides) out = makeView(t, s, strides, t.offset);
  else {
    const c = copyContiguous(t);
    out = makeView(c, s, contiguousStrides(s), 0);
    c.dispose();
  }
  const inShape = t.shape;
  return record(out, 'reshape', [t], (g) => [reshape(g, inShape)]);
}

export function flatten(t: Tensor, start = 0, end = -1): Tensor {
  if (t.ndim === 0) return reshape(t, [1]);
  const s = normAxis('flatten', start, t.ndim);
  const e = normAxis('flatten', end, t.ndim);
  if (e < s) throw new ShapeError(`flatten: end dim ${end} before start dim ${start}`);
  const shape = [...t.shape.slice(0, s), sizeOf(t.shape.slice(s, e + 1)), ...t.shape.slice(e + 1)];
  return reshape(t, shape);
}

export function permute(t: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== t.ndim) throw new ShapeError(`permute: ${dims.length} dims given for a ${t.ndim}-d tensor ${fmtShape(t.shape)}`);
  const d = dims.map((x) => normAxis('permute', x, t.ndim));
  if (new Set(d).size !== d.length) throw new ShapeError(`permute: repeated dimension in [${dims.join(', ')}]`);
  const out = makeView(t, d.map((i) => t.shape[i]!), d.map((i) => t.strides[i]!), t.offset);
  const inv = new Array<number>(d.length);
  d.forEach((x, i) => { inv[x] = i; });
  return record(out, 'permute', [t], (g) => [permute(g, inv)]);
}

export function transpose(t: Tensor, a = -2, b = -1): Tensor {
  if (t.ndim < 2) return reshape(t, t.shape);
  const x = normAxis('transpose', a, t.ndim);
  const y = normAxis('transpose', b, t.ndim);
  const dims = t.shape.map((_, i) => i);
  dims[x] = y;
  dims[y] = x;
  return permute(t, dims);
}

/** Elements start..start+length-1 along dim (a view). Backward writes g into a zero tensor. */
export function narrow(t: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normAxis('narrow', dim, t.ndim);
  const n = t.shape[d]!;
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > n) {
    throw new ShapeError(`narrow: range [${start}, ${start + length}) out of bounds for dim ${dim} of size ${n} in ${t.describe()}`);
  }
  const shape = [...t.shape];
  shape[d] = length;
  const out = makeView(t, shape, t.strides, t.offset + start * t.strides[d]!);
  const inShape = t.shape;
  return record(out, 'narrow', [t], (g) => {
    const z = empty(inShape, g.dtype, true);
    const region = makeView(z, shape, z.strides, start * z.strides[d]!);
    copyInto(region, g);
    region.dispose();
    return [z];
  });
}

/** Python-style slice along one dim: [start, end) with negative indices allowed. */
export function slice(t: Tensor, dim: number, start: number, end?: number): Tensor {
  const d = normAxis('slice', dim, t.ndim);
  const n = t.shape[d]!;
  let s = start < 0 ? start + n : start;
  let e = end === undefined ? n : end < 0 ? end + n : end;
  s = Math.max(0, Math.min(n, s));
  e = Math.max(s, Math.min(n, e));
  return narrow(t, d, s, e - s);
}

/** Write src's values into dst (a view, possibly strided); shapes must match. No autograd (used by kernels of other ops). */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (!sameShape(dst.shape, src.shape) || dst.dtype !== src.dtype) {
    throw new ShapeError(`copyInto: destination ${dst.describe()} and source ${src.describe()} differ`);
  }
  if (src.size === 0) return;
  copyBackend().copy({ data: dst.raw, offset: dst.offset, strides: dst.strides }, stridedView(src), src.shape);
}

/** Broadcast to `shape` without copying (stride 0 on broadcast dims). -1 keeps a dim. */
export function expand(t: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < t.ndim) throw new ShapeError(`expand: cannot expand ${t.describe()} to fewer dims ${fmtShape(shape)}`);
  const n = shape.length;
  const outShape = new Array<number>(n);
  const strides = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    const j = i - (n - t.ndim);
    const want = shape[i]!;
    if (j < 0) {
      if (want < 0) throw new ShapeError(`expand: -1 not allowed for new leading dim ${i}`);
      outShape[i] = want;
      continue;
    }
    const have = t.shape[j]!;
    const w = want === -1 ? have : want;
    if (have !== w && have !== 1) throw new ShapeError(`expand: cannot expand ${t.describe()} to ${fmtShape(shape)} (dim ${i}: ${have} -> ${w})`);
    outShape[i] = w;
    strides[i] = have === w ? t.strides[j]! : 0;
  }
  const out = makeView(t, outShape, strides, t.offset);
  const inShape = t.shape;
  return record(out, 'expand', [t], (g) => [sumTo(g, inShape)]);
}

export function squeeze(t: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(t, t.shape.filter((d) => d !== 1));
  const d = normAxis('squeeze', dim, t.ndim);
  if (t.shape[d] !== 1) return reshape(t, t.shape);
  return reshape(t, t.shape.filter((_, i) => i !== d));
}

export function unsqueeze(t: Tensor, dim: number): Tensor {
  const d = normAxis('unsqueeze', dim, t.ndim + 1);
  const s = [...t.shape];
  s.splice(d, 0, 1);
  return reshape(t, s);
}

/**
 * Sum g over the dims that broadcasting added or stretched, giving `shape`
 * (the gradient of a broadcast). Returns a new tensor (a view at most).
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return alias(g);
  const lead = g.ndim - shape.length;
  if (lead < 0) throw new ShapeError(`sumTo: cannot reduce ${g.describe()} to ${fmtShape(shape)}`);
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead) dims.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) dims.push(i);
  }
  const s = sumDims(g, dims);
  const r = reshape(s, shape);
  s.dispose();
  return r;
}

/**
 * Sum over `dims` (keepdim false). Adjacent reduced dims of a contiguous tensor are merged into one
 * kernel call. No autograd (reduce.ts builds the differentiable sum on it).
 */
export function sumDims(t: Tensor, dims: readonly number[]): Tensor {
  return reduceDims(t, dims, 'sum');
}

export function reduceDims(t: Tensor, dims: readonly number[], op: 'sum' | 'max' | 'min'): Tensor {
  const be = backendFor(t.dtype);
  if (!isComputeFloat(t.dtype)) throw new DTypeError(`${op}: expected a float tensor, got ${describeArgs([t])}`);
  const set = new Set(dims.map((d) => normAxis(op, d, t.ndim)));
  let cur = t.isContiguous() ? t : copyContiguous(t);
  let shape = [...t.shape];
  // Walk from the last dim, merging runs of reduced dims.
  let i = shape.length - 1;
  while (i >= 0) {
    if (!set.has(i)) { i--; continue; }
    let j = i;
    while (j - 1 >= 0 && set.has(j - 1)) j--;
    const outer = sizeOf(shape.slice(0, j));
    const n = sizeOf(shape.slice(j, i + 1));
    const inner = sizeOf(shape.slice(i + 1));
    const newShape = [...shape.slice(0, j), ...shape.slice(i + 1)];
    const out = empty(newShape, t.dtype);
    const src = cur.raw.subarray(cur.offset, cur.offset + cur.size);
    be.reduce(op, out.raw as never, src as never, outer, n, inner);
    if (cur !== t) cur.dispose();
    cur = out;
    shape = newShape;
    i = j - 1;
  }
  if (cur === t) return clone(t);
  return cur;
}

// ---- concat / split / stack ----

export function cat(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new ShapeError('cat: no tensors given');
  const first = ts[0]!;
  const d = normAxis('cat', dim, first.ndim);
  let total = 0;
  for (const t of ts) {
    if (t.dtype !== first.dtype || t.ndim !== first.ndim || t.shape.some((x, i) => i !== d && x !== first.shape[i])) {
      throw new ShapeError(`cat: tensors must match except in dim ${dim}, got (${describeArgs(ts)})`);
    }
    total += t.shape[d]!;
  }
  const shape = [...first.shape];
  shape[d] = total;
  const out = empty(shape, first.dtype);
  let off = 0;
  const sizes: number[] = [];
  for (const t of ts) {
    const len = t.shape[d]!;
    sizes.push(len);
    if (t.size > 0) {
      const region = makeView(out, t.shape, out.strides, off * out.strides[d]!);
      copyInto(region, t);
      region.dispose();
    }
    off += len;
  }
  return record(out, 'cat', ts, (g) => {
    let o = 0;
    return sizes.map((len) => {
      const part = narrow(g, d, o, len);
      o += len;
      const c = clone(part);
      part.dispose();
      return c;
    });
  });
}

/** Split into pieces of `size` (last may be smaller) or of the given sizes, along dim. Views. */
export function split(t: Tensor, sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
  const d = normAxis('split', dim, t.ndim);
  const n = t.shape[d]!;
  let sizes: number[];
  if (typeof sizeOrSizes === 'number') {
    if (!Number.isInteger(sizeOrSizes) || sizeOrSizes <= 0) throw new ShapeError(`split: size must be a positive integer, got ${sizeOrSizes}`);
    sizes = [];
    for (let o = 0; o < n; o += sizeOrSizes) sizes.push(Math.min(sizeOrSizes, n - o));
  } else {
    sizes = [...sizeOrSizes];
    if (sizes.reduce((a, b) => a + b, 0) !== n) throw new ShapeError(`split: sizes [${sizes.join(', ')}] do not sum to dim ${dim} of ${t.describe()}`);
  }
  let o = 0;
  return sizes.map((len) => {
    const p = narrow(t, d, o, len);
    o += len;
    return p;
  });
}

export function chunk(t: Tensor, chunks: number, dim = 0): Tensor[] {
  const n = t.shape[normAxis('chunk', dim, t.ndim)]!;
  return split(t, Math.max(1, Math.ceil(n / chunks)), dim);
}

export function stack(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new ShapeError('stack: no tensors given');
  const d = normAxis('stack', dim, ts[0]!.ndim + 1);
  const us = ts.map((t) => unsqueeze(t, d));
  const out = cat(us, d);
  for (const u of us) if (!out.gradFn) u.dispose();
  return out;
}
