/** Elementwise ops: unary maths and activations, broadcasting binary ops, comparisons, where, clamp, dropout. */
import type { BinaryOp, CompareOp, FArray, UnaryGradOp, UnaryOp } from '../backend.js';
import { record } from '../autograd.js';
import { Tensor, empty, fmtShape } from '../tensor.js';
import { DTypeError, ShapeError } from '../../errors.js';
import { backendFor, broadcastShapes, describeArgs, farr, floatArgs, stridedOf } from './common.js';
import { alias, contiguous, sumTo } from './shape.js';
import { Rng, globalRng } from '../random.js';

function unaryRaw(op: UnaryOp, x: Tensor, s?: number, s2?: number): Tensor {
  const dt = floatArgs(op, x);
  const c = contiguous(x);
  const out = empty(x.shape, dt);
  backendFor(dt).unary(op, farr(out), farr(c), x.size, s, s2);
  if (c !== x) c.dispose();
  return out;
}

function unaryGradRaw(op: UnaryGradOp, x: Tensor, g: Tensor): Tensor {
  const cx = contiguous(x);
  const cg = contiguous(g);
  const out = empty(x.shape, x.dtype);
  backendFor(x.dtype).unaryGrad(op, farr(out), farr(cx), farr(cg), x.size);
  if (cg !== g) cg.dispose();
  if (cx !== x) cx.dispose();
  return out;
}

export function neg(x: Tensor): Tensor {
  return record(unaryRaw('neg', x), 'neg', [x], (g) => [neg(g)]);
}
export function exp(x: Tensor): Tensor {
  const y = unaryRaw('exp', x);
  return record(y, 'exp', [x], (g) => [mul(g, y)]);
}
export function log(x: Tensor): Tensor {
  return record(unaryRaw('log', x), 'log', [x], (g) => [div(g, x)]);
}
export function sqrt(x: Tensor): Tensor {
  const y = unaryRaw('sqrt', x);
  // d sqrt(x) = 0.5 / sqrt(x)
  return record(y, 'sqrt', [x], (g) => { const t = div(g, y); const r = mulScalar(t, 0.5); t.dispose(); return [r]; });
}
export function rsqrt(x: Tensor): Tensor {
  const y = unaryRaw('rsqrt', x);
  // d x^-1/2 = -0.5 x^-3/2 = -0.5 * y^3
  return record(y, 'rsqrt', [x], (g) => {
    const y3 = unaryRaw('pow_scalar', y, 3);
    const t = mul(g, y3);
    const r = mulScalar(t, -0.5);
    y3.dispose(); t.dispose();
    return [r];
  });
}
export function abs(x: Tensor): Tensor {
  return record(unaryRaw('abs', x), 'abs', [x], (g) => {
    const s = sign(x);
    const r = mul(g, s);
    s.dispose();
    return [r];
  });
}
/** -1, 0 or 1 (no gradient). */
export function sign(x: Tensor): Tensor {
  const zero = scalarLike(x, 0);
  const pos = compare('gt', x, zero);
  const negm = compare('lt', x, zero);
  const one = scalarLike(x, 1);
  const mone = scalarLike(x, -1);
  const a = where(pos, one, zero);
  const r = where(negm, mone, a);
  for (const t of [zero, pos, negm, one, mone, a]) t.dispose();
  return r;
}
export function square(x: Tensor): Tensor {
  return record(unaryRaw('square', x), 'square', [x], (g) => { const t = mul(g, x); const r = mulScalar(t, 2); t.dispose(); return [r]; });
}

function activation(op: UnaryGradOp, x: Tensor): Tensor {
  return record(unaryRaw(op, x), op, [x], (g) => [unaryGradRaw(op, x, g)]);
}
export const sigmoid = (x: Tensor): Tensor => activation('sigmoid', x);
export const tanh = (x: Tensor): Tensor => activation('tanh', x);
export const relu = (x: Tensor): Tensor => activation('relu', x);
export const silu = (x: Tensor): Tensor => activation('silu', x);
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return activation(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

export function addScalar(x: Tensor, s: number): Tensor {
  return record(unaryRaw('add_scalar', x, s), 'add_scalar', [x], (g) => [alias(g)]);
}
export function mulScalar(x: Tensor, s: number): Tensor {
  return record(unaryRaw('mul_scalar', x, s), 'mul_scalar', [x], (g) => [mulScalar(g, s)]);
}
export function powScalar(x: Tensor, p: number): Tensor {
  return record(unaryRaw('pow_scalar', x, p), 'pow_scalar', [x], (g) => {
    const t = unaryRaw('pow_scalar', x, p - 1);
    const u = mul(g, t);
    const r = mulScalar(u, p);
    t.dispose(); u.dispose();
    return [r];
  });
}

/** Clamp to [lo, hi]; the gradient passes where lo <= x <= hi. */
export function clamp(x: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  if (lo > hi) throw new ShapeError(`clamp: lo ${lo} > hi ${hi}`);
  return record(unaryRaw('clamp', x, lo, hi), 'clamp', [x], (g) => {
    const l = scalarLike(x, lo);
    const h = scalarLike(x, hi);
    const m1 = compare('ge', x, l);
    const m2 = compare('le', x, h);
    const z = scalarLike(x, 0);
    const a = where(m1, g, z);
    const r = where(m2, a, z);
    for (const t of [l, h, m1, m2, z, a]) t.dispose();
    return [r];
  });
}

/** A 0-d tensor holding v, with x's dtype. */
export function scalarLike(x: Tensor, v: number): Tensor {
  const t = empty([], x.dtype);
  (t.raw as FArray)[0] = v;
  return t;
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const dt = floatArgs(op, a, b);
  const shape = broadcastShapes(op, a, b);
  const out = empty(shape, dt);
  if (out.size > 0) backendFor(dt).binary(op, farr(out), stridedOf(a, shape), stridedOf(b, shape), shape);
  return out;
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(a, b);
  return record(binaryRaw('add', a, b), 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}
export function sub(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(a, -b);
  return record(binaryRaw('sub', a, b), 'sub', [a, b], (g) => {
    const ng = neg(g);
    const gb = sumTo(ng, b.shape);
    ng.dispose();
    return [sumTo(g, a.shape), gb];
  });
}
export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(a, b);
  return record(binaryRaw('mul', a, b), 'mul', [a, b], (g) => {
    const ga = a.requiresGrad ? reduced(binaryRaw('mul', g, b), a.shape) : null;
    const gb = b.requiresGrad ? reduced(binaryRaw('mul', g, a), b.shape) : null;
    return [ga, gb];
  });
}
export function div(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(a, 1 / b);
  return record(binaryRaw('div', a, b), 'div', [a, b], (g) => {
    const ga = a.requiresGrad ? reduced(binaryRaw('div', g, b), a.shape) : null;
    let gb: Tensor | null = null;
    if (b.requiresGrad) {
      // d(a/b)/db = -a / b^2
      const b2 = binaryRaw('mul', b, b);
      const t = binaryRaw('div', a, b2);
      const u = binaryRaw('mul', g, t);
      gb = reduced(unaryRaw('neg', u), b.shape);
      b2.dispose(); t.dispose(); u.dispose();
    }
    return [ga, gb];
  });
}
export function pow(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return powScalar(a, b);
  const y = binaryRaw('pow', a, b);
  return record(y, 'pow', [a, b], (g) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      // b * a^(b-1)
      const bm1 = unaryRaw('add_scalar', b, -1);
      const p = binaryRaw('pow', a, bm1);
      const t = binaryRaw('mul', p, b);
      ga = reduced(binaryRaw('mul', g, t), a.shape);
      bm1.dispose(); p.dispose(); t.dispose();
    }
    if (b.requiresGrad) {
      // a^b * ln a
      const la = unaryRaw('log', a);
      const t = binaryRaw('mul', y, la);
      gb = reduced(binaryRaw('mul', g, t), b.shape);
      la.dispose(); t.dispose();
    }
    return [ga, gb];
  });
}
export function maximum(a: Tensor, b: Tensor): Tensor {
  return minmax('maximum', a, b);
}
export function minimum(a: Tensor, b: Tensor): Tensor {
  return minmax('minimum', a, b);
}
function minmax(op: 'maximum' | 'minimum', a: Tensor, b: Tensor): Tensor {
  const y = binaryRaw(op, a, b);
  return record(y, op, [a, b], (g) => {
    // The gradient goes to a where a wins (ties to a), else to b.
    const m = compare(op === 'maximum' ? 'ge' : 'le', a, b);
    const z = scalarLike(g, 0);
    const ga = a.requiresGrad ? reduced(whereRaw(m, g, z), a.shape) : null;
    const gb = b.requiresGrad ? reduced(whereRaw(m, z, g), b.shape) : null;
    m.dispose(); z.dispose();
    return [ga, gb];
  });
}

/** sumTo that consumes its input. */
function reduced(t: Tensor, shape: readonly number[]): Tensor {
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}

/** Elementwise comparison into a bool (u8) tensor; no gradient. */
export function compare(op: CompareOp, a: Tensor, b: Tensor | number): Tensor {
  const bb = typeof b === 'number' ? scalarLike(a, b) : b;
  const dt = floatArgs(op, a, bb);
  const shape = broadcastShapes(op, a, bb);
  const out = empty(shape, 'bool');
  if (out.size > 0) backendFor(dt).compare(op, out.raw as Uint8Array, stridedOf(a, shape), stridedOf(bb, shape), shape);
  if (bb !== b) bb.dispose();
  return out;
}
export const eq = (a: Tensor, b: Tensor | number): Tensor => compare('eq', a, b);
export const ne = (a: Tensor, b: Tensor | number): Tensor => compare('ne', a, b);
export const lt = (a: Tensor, b: Tensor | number): Tensor => compare('lt', a, b);
export const le = (a: Tensor, b: Tensor | number): Tensor => compare('le', a, b);
export const gt = (a: Tensor, b: Tensor | number): Tensor => compare('gt', a, b);
export const ge = (a: Tensor, b: Tensor | number): Tensor => compare('ge', a, b);

function whereRaw(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (cond.dtype !== 'bool' && cond.dtype !== 'u8') throw new DTypeError(`where: condition must be bool or u8, got (${describeArgs([cond, a, b])})`);
  const dt = floatArgs('where', a, b);
  const s1 = broadcastShapes('where', a, b);
  const shape = broadcastShapes('where', cond, empty(s1, 'u8'));
  const out = empty(shape, dt);
  if (out.size > 0) backendFor(dt).where(farr(out), stridedOf<Uint8Array>(cond, shape), stridedOf(a, shape), stridedOf(b, shape), shape);
  return out;
}

/** cond ? a : b with broadcasting; gradients flow to the chosen side. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const ref = typeof a !== 'number' ? a : typeof b !== 'number' ? b : null;
  if (!ref) throw new ShapeError('where: at least one of a, b must be a tensor');
  const ta = typeof a === 'number' ? scalarLike(ref, a) : a;
  const tb = typeof b === 'number' ? scalarLike(ref, b) : b;
  const y = whereRaw(cond, ta, tb);
  return record(y, 'where', [ta, tb], (g) => {
    const z = scalarLike(g, 0);
    const ga = ta.requiresGrad ? reduced(whereRaw(cond, g, z), ta.shape) : null;
    const gb = tb.requiresGrad ? reduced(whereRaw(cond, z, g), tb.shape) : null;
    z.dispose();
    return [ga, gb];
  });
}

/**
 * Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p).
 * Identity when !training or p == 0. The mask comes from `rng` (default: the global seeded generator).
 */
export function dropout(x: Tensor, p: number, training = true, rng: Rng = globalRng()): Tensor {
  if (!(p >= 0 && p < 1)) throw new ShapeError(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return record(alias(x), 'dropout', [x], (g) => [alias(g)]);
  const mask = empty(x.shape, x.dtype);
  const m = mask.raw as FArray;
  const scale = 1 / (1 - p);
  for (let i = 0; i < m.length; i++) m[i] = rng.next() < p ? 0 : scale;
  const y = binaryRaw('mul', x, mask);
  return record(y, 'dropout', [x], (g) => [binaryRaw('mul', g, mask)]);
}

export function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.ndim !== b.ndim || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`${op}: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} must match [dtypes ${a.dtype}, ${b.dtype}]`);
  }
}
