/** Shared plumbing for ops: backend choice, argument checks, broadcasting, gradient reduction. */
import type { Backend, FArray, Strided } from '../backend.js';
import { jsBackend } from '../backends/js.js';
import { loadNative } from '../backends/native.js';
import type { DType } from '../dtype.js';
import { isComputeFloat } from '../dtype.js';
import { Tensor, fmtShape } from '../tensor.js';
import { DTypeError, ShapeError } from '../../errors.js';

let useNative = process.env['R1_BACKEND'] !== 'js';

/** The backend that runs kernels for a dtype: native for f32 when the addon is loaded, js otherwise. */
export function backendFor(dtype: DType): Backend {
  if (useNative && dtype === 'f32') {
    const n = loadNative();
    if (n) return n;
  }
  return jsBackend;
}

/** The backend for element copies of any dtype: the native copy moves elements of any size (e.g. a bf16 KV cache
 * that grows), falling back to the js one itself for mismatched arrays. */
export function copyBackend(): Backend {
  return (useNative && loadNative()) || jsBackend;
}

/** Choose 'native' (default; falls back to js if the addon is missing) or 'js' for every op. */
export function setBackend(name: 'js' | 'native'): void {
  useNative = name === 'native';
}

/** Name of the backend f32 ops run on now. */
export function activeBackend(): 'js' | 'native' {
  return useNative && loadNative() ? 'native' : 'js';
}

export function describeArgs(ts: readonly Tensor[]): string {
  return ts.map((t) => `${fmtShape(t.shape)} ${t.dtype}`).join(', ');
}

/** Require f32/f64 inputs of one dtype. */
export function floatArgs(op: string, ...ts: Tensor[]): 'f32' | 'f64' {
  const d = ts[0]!.dtype;
  for (const t of ts) {
    if (!isComputeFloat(t.dtype) || t.dtype !== d) {
      throw new DTypeError(`${op}: expected f32 or f64 inputs of one dtype, got (${describeArgs(ts)})`);
    }
  }
  return d as 'f32' | 'f64';
}

/** Normalise a possibly negative axis. */
export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= Math.max(ndim, 1) || (ndim === 0 && a !== 0)) {
    throw new ShapeError(`${op}: dimension ${axis} out of range for a ${ndim}-d tensor`);
  }
  return a;
}

/** The broadcast shape of two shapes (NumPy rules), or a ShapeError naming the op. */
export function broadcastShapes(op: string, a: Tensor, b: Tensor): number[] {
  const n = Math.max(a.ndim, b.ndim);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a.shape[a.ndim - n + i] ?? 1;
    const db = b.shape[b.ndim - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not broadcast (dim ${i}: ${da} vs ${db}) [dtypes ${a.dtype}, ${b.dtype}]`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read t as if broadcast to `shape` (0 where t is broadcast). */
export function broadcastStrides(t: Tensor, shape: readonly number[]): number[] {
  const n = shape.length;
  const s = new Array<number>(n).fill(0);
  for (let i = 0; i < t.ndim; i++) {
    const j = n - t.ndim + i;
    s[j] = t.shape[i] === 1 && shape[j] !== 1 ? 0 : t.strides[i]!;
  }
  return s;
}

export function stridedOf<A extends FArray | Uint8Array>(t: Tensor, shape: readonly number[]): Strided<A> {
  return { data: t.raw as A, offset: t.offset, strides: broadcastStrides(t, shape) };
}

/** The contiguous float array of t (t must be contiguous; offset applied via subarray). */
export function farr(t: Tensor): FArray {
  const a = t.raw as FArray;
  return t.offset === 0 && a.length === t.size ? a : (a.subarray(t.offset, t.offset + t.size) as FArray);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
