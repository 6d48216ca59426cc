/**
 * matmul: [..., m, k] @ [..., k, n] with NumPy batch broadcasting. Transposed operands (a .T view)
 * reach the GEMM as a trans flag, never as a copy; [B, S, k] @ [k, n] runs as one [B*S, k] GEMM.
 */
import type { FArray } from '../backend.js';
import { record } from '../autograd.js';
import { Tensor, empty, fmtShape, sizeOf } from '../tensor.js';
import { ShapeError } from '../../errors.js';
import { backendFor, floatArgs } from './common.js';
import { expand, reshape, sumTo, transpose, unsqueeze, squeeze } from './shape.js';

/** How a 2-D matrix view is laid out for the GEMM: leading dim and whether it is transposed. */
function matLayout(rows: number, cols: number, rs: number, cs: number): { ld: number; trans: boolean } | null {
  if (cs === 1 && (rs >= cols || rows <= 1)) return { ld: rows <= 1 ? Math.max(cols, 1) : rs, trans: false };
  if (rs === 1 && (cs >= rows || cols <= 1)) return { ld: cols <= 1 ? Math.max(rows, 1) : cs, trans: true };
  return null;
}

/**
 * One uniform stride over the flattened batch dims of t (given the broadcast batch shape), or null.
 * Dims of size 1 are skipped; a fully broadcast batch has stride 0.
 */
function batchStride(batchShape: readonly number[], strides: readonly number[]): number | null {
  let stride: number | null = null;
  let expect = -1;
  for (let i = batchShape.length - 1; i >= 0; i--) {
    const d = batchShape[i]!;
    if (d === 1) continue;
    const s = strides[i]!;
    if (stride === null) { stride = s; expect = s * d; continue; }
    if (stride === 0 ? s !== 0 : s !== expect) return null;
    expect = s * d;
  }
  return stride ?? 0;
}

interface Operand { t: Tensor; off: number; bs: number; ld: number; trans: boolean; owned: boolean }

function prepare(t: Tensor, batchShape: readonly number[], rows: number, cols: number): Operand {
  const nb = batchShape.length;
  // Broadcast strides of t's batch dims against batchShape.
  const bstr = new Array<number>(nb).fill(0);
  const tb = t.ndim - 2;
  for (let i = 0; i < tb; i++) {
    const j = nb - tb + i;
    bstr[j] = t.shape[i] === 1 ? 0 : t.strides[i]!;
  }
  const lay = matLayout(rows, cols, t.strides[t.ndim - 2]!, t.strides[t.ndim - 1]!);
  const bs = batchStride(batchShape, bstr);
  if (lay && bs !== null) return { t, off: t.offset, bs, ld: lay.ld, trans: lay.trans, owned: false };
  // No single batch stride or matrix layout: materialise t broadcast to the full batch (then both exist).
  const full = [...batchShape, rows, cols];
  const e = t.ndim === full.length && t.shape.every((d, i) => d === full[i]) ? t : expand(t, full);
  const c = copyOf(e);
  if (e !== t) e.dispose();
  return { t: c, off: 0, bs: rows * cols, ld: cols, trans: false, owned: true };
}

function copyOf(t: Tensor): Tensor {
  const out = empty(t.shape, t.dtype);
  backendFor(t.dtype).copy({ data: out.raw, offset: 0, strides: out.strides }, { data: t.raw, offset: t.offset, strides: t.strides }, t.shape);
  return out;
}

function matmulRaw(a: Tensor, b: Tensor): Tensor {
  const dt = floatArgs('matmul', a, b);
  if (a.ndim < 2 || b.ndim < 2) throw new ShapeError(`matmul: operands must be at least 2-d, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const m = a.shape[a.ndim - 2]!;
  const k = a.shape[a.ndim - 1]!;
  const k2 = b.shape[b.ndim - 2]!;
  const n = b.shape[b.ndim - 1]!;
  if (k !== k2) throw new ShapeError(`matmul: inner dimensions differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} [${a.dtype}, ${b.dtype}] (${k} vs ${k2})`);
  const ab = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  const nb = Math.max(ab.length, bb.length);
  const batchShape: number[] = [];
  for (let i = 0; i < nb; i++) {
    const x = ab[ab.length - nb + i] ?? 1;
    const y = bb[bb.length - nb + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new ShapeError(`matmul: batch dims of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not broadcast`);
    batchShape.push(x === 1 ? y : x);
  }
  const outShape = [...batchShape, m, n];
  const be = backendFor(dt);

  // [..., m, k] @ [k, n] with a's rows contiguous over the batch: one tall GEMM.
  if (bb.length === 0 && ab.length > 0 && a.strides[a.ndim - 1] === 1 && a.isContiguous()) {
    const mm = sizeOf(ab) * m;
    const out = empty(outShape, dt);
    const pb = prepare(b, [], k, n);
    if (mm > 0 && n > 0) {
      if (k === 0) (out.raw as FArray).fill(0);
      else be.matmul(out.raw as FArray, 0, a.raw as FArray, a.offset, 0, k, false, pb.t.raw as FArray, pb.off, 0, pb.ld, pb.trans, 1, mm, n, k, false);
    }
    if (pb.owned) pb.t.dispose();
    return out;
  }

  const pa = prepare(a, batchShape, m, k);
  const pb = prepare(b, batchShape, k, n);
  const out = empty(outShape, dt);
  const batch = sizeOf(batchShape);
  if (batch > 0 && m > 0 && n > 0) {
    if (k === 0) (out.raw as FArray).fill(0);
    else be.matmul(out.raw as FArray, 0, pa.t.raw as FArray, pa.off, pa.bs, pa.ld, pa.trans, pb.t.raw as FArray, pb.off, pb.bs, pb.ld, pb.trans, batch, m, n, k, false);
  }
  if (pa.owned) pa.t.dispose();
  if (pb.owned) pb.t.dispose();
  return out;
}

/**
 * Matrix product with broadcasting; 1-d operands are promoted like NumPy
 * ([k] @ [k, n] -> [n], [m, k] @ [k] -> [m]).
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 1 || b.ndim === 1) {
    const a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
    const b2 = b.ndim === 1 ? unsqueeze(b, 1) : b;
    let r = matmul(a2, b2);
    if (a.ndim === 1) { const s = squeeze(r, -2); r = s; }
    if (b.ndim === 1) { const s = squeeze(r, -1); r = s; }
    return r;
  }
  const out = matmulRaw(a, b);
  return record(out, 'matmul', [a, b], (g) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = dC @ B^T (a transposed view: no copy)
      const bt = transpose(b, -2, -1);
      const full = matmulRaw(g, bt);
      ga = sumTo(full, a.shape);
      full.dispose(); bt.dispose();
    }
    if (b.requiresGrad) {
      if (b.ndim === 2 && a.ndim > 2 && a.isContiguous() && g.isContiguous()) {
        // dB = A^T @ dC summed over the batch = one GEMM over the flattened rows.
        const k = a.shape[a.ndim - 1]!;
        const n = g.shape[g.ndim - 1]!;
        const a2 = reshape(a, [-1, k]);
        const g2 = reshape(g, [-1, n]);
        const a2t = transpose(a2, 0, 1);
        gb = matmulRaw(a2t, g2);
        a2.dispose(); g2.dispose(); a2t.dispose();
      } else {
        const at = transpose(a, -2, -1);
        const full = matmulRaw(at, g);
        gb = sumTo(full, b.shape);
        full.dispose(); at.dispose();
      }
    }
    return [ga, gb];
  });
}

/** x @ w^T (+ bias): the Linear layer's product with HF's [out, in] weight layout. */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
  const wt = transpose(w, 0, 1);
  const y = matmul(x, wt);
  if (!bias) return y;
  return y.add(bias);
}
