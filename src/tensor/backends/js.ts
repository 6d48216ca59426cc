/**
 * The pure-TypeScript reference backend: every kernel of src/tensor/backend.ts for Float32Array and
 * Float64Array (FArray).
 *
 * This is the readable oracle the native C kernels are tested against and the fallback when the
 * addon is missing. Rules kept throughout:
 * - Sums and products are accumulated in JS numbers (f64) and rounded once on store, so an f32 result
 *   is the f64 result rounded to f32 (the native kernels, which accumulate in f32, are compared with
 *   a tolerance).
 * - Plain loops; no closures or allocations per element. Scratch rows (Float64Array) are allocated once
 *   per call.
 * - Empty shapes (any dimension 0) are no-ops, never errors, except where an empty input has no answer
 *   (argmax over an empty axis, top-k with k > n), which raises ShapeError.
 * - Array extents are checked up front (cheap) so a caller bug gives a ShapeError naming the kernel and
 *   argument instead of silently reading `undefined` (NaN).
 */
import type {
  AnyArray, Backend, BinaryOp, CacheArray, CompareOp, FArray, KVStrides, RaggedSegment, ReduceOp, RopeLayout, Strided, UnaryGradOp, UnaryOp,
} from '../backend.js';
import { DTypeError, R1Error, ShapeError } from '../../errors.js';

// ---------------------------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------------------------

function checkLen(kernel: string, name: string, a: ArrayLike<unknown>, need: number): void {
  if (!(need >= 0) || !Number.isInteger(need)) throw new ShapeError(`js.${kernel}: invalid size ${need} for '${name}'`);
  if (a.length < need) throw new ShapeError(`js.${kernel}: '${name}' has ${a.length} elements, needs at least ${need}`);
}

function checkDims(kernel: string, dims: Record<string, number>): void {
  for (const key in dims) {
    const v = dims[key]!;
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`js.${kernel}: ${key} must be a non-negative integer, got ${v}`);
  }
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Checks a strided operand stays inside its array for `shape` (strides are never negative). */
function checkStrided(kernel: string, name: string, s: { data: ArrayLike<unknown>; offset: number; strides: readonly number[] }, shape: readonly number[]): void {
  if (s.strides.length !== shape.length) {
    throw new ShapeError(`js.${kernel}: '${name}' has ${s.strides.length} strides for a ${shape.length}-d shape [${shape.join(', ')}]`);
  }
  if (numel(shape) === 0) return;
  let last = s.offset;
  for (let d = 0; d < shape.length; d++) {
    const st = s.strides[d]!;
    if (!Number.isInteger(st) || st < 0) throw new ShapeError(`js.${kernel}: '${name}' stride ${d} is ${st} (must be a non-negative integer)`);
    last += (shape[d]! - 1) * st;
  }
  if (!Number.isInteger(s.offset) || s.offset < 0 || last >= s.data.length) {
    throw new ShapeError(`js.${kernel}: '${name}' (offset ${s.offset}, strides [${s.strides.join(', ')}]) reaches element ${last} of an array of ${s.data.length} for shape [${shape.join(', ')}]`);
  }
}

function checkShape(kernel: string, shape: readonly number[]): void {
  for (let d = 0; d < shape.length; d++) {
    const v = shape[d]!;
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`js.${kernel}: shape [${shape.join(', ')}] has an invalid dimension ${d}`);
  }
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

interface OffsetStrides { offset: number; strides: readonly number[] }

/**
 * Walks every row (innermost dimension) of `shape` for several strided operands at once, calling
 * `row(offs, len)` with each operand's offset of the row's first element. `offs` is reused: read it
 * before returning. A 0-d shape is one row of length 1; a shape with a 0 dimension has no rows.
 * The callback runs once per row, never per element.
 */
function forEachRow(shape: readonly number[], ops: readonly OffsetStrides[], row: (offs: number[], len: number) => void): void {
  const nd = shape.length;
  const offs = ops.map((o) => o.offset);
  if (nd === 0) { row(offs, 1); return; }
  for (const d of shape) if (d === 0) return;
  const len = shape[nd - 1]!;
  const idx = new Array<number>(nd).fill(0);
  const k = ops.length;
  for (;;) {
    row(offs, len);
    let d = nd - 2;
    for (; d >= 0; d--) {
      idx[d]!++;
      for (let q = 0; q < k; q++) offs[q]! += ops[q]!.strides[d]!;
      if (idx[d]! < shape[d]!) break;
      for (let q = 0; q < k; q++) offs[q]! -= ops[q]!.strides[d]! * shape[d]!;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

function innerStride(s: OffsetStrides): number {
  return s.strides.length === 0 ? 0 : s.strides[s.strides.length - 1]!;
}

// ---------------------------------------------------------------------------------------------
// bf16 / f16 conversions (bit-exact, round to nearest even)
// ---------------------------------------------------------------------------------------------

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
const scratchF64 = new Float64Array(1);
const scratchU32x2 = new Uint32Array(scratchF64.buffer);
// Little-endian hosts only (every platform Node 20 runs on): the high word of a double is index 1.
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** bf16 bits of an f32 given as its bit pattern: round to nearest even; NaN stays a quiet NaN (payload top bits kept). */
function bf16FromF32Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x0040) & 0xffff;
  // Adding 0x7fff plus the lowest kept bit rounds half to even; a carry into the exponent is correct
  // (it rounds up to the next binade, or to infinity above bf16's maximum).
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f16 bits of an f32 given as its bit pattern (IEEE 754 binary16, round to nearest even). */
function f16FromF32Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a >= 0x7f800000) {
    // Infinity, or NaN made quiet (bit 9) with the top payload bits kept.
    return a === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  }
  // 65520 = 0x477ff000 is the midpoint between 65504 (max finite, odd mantissa) and 2^16: ties go to even = infinity.
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    // Below the smallest normal 2^-14: a subnormal in units of 2^-24. 2^-25 (0x33000000) and below round to zero.
    if (a <= 0x33000000) return sign;
    const e = a >>> 23; // 102..112
    const m = (a & 0x7fffff) | 0x800000; // value = m * 2^(e - 150)
    const s = 126 - e; // value / 2^-24 = m / 2^s, s in 14..24
    let r = m >>> s;
    const rem = m & ((1 << s) - 1);
    const half = 1 << (s - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r; // r = 0x400 encodes the smallest normal correctly
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits with round-half-even.
  const b = a - 0x38000000;
  let r = b >>> 13;
  const rem = b & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

/**
 * Round any double directly (no intermediate f32, so no double rounding) to a binary format with
 * `mant` mantissa bits and `expBits` exponent bits, returning its bit pattern.
 */
function roundDoubleToBits(x: number, mant: number, expBits: number): number {
  scratchF64[0] = x;
  const hi = scratchU32x2[HI]!;
  const sign = (hi >>> 31) << (mant + expBits);
  const maxField = (1 << expBits) - 1;
  if (x !== x) return sign | (maxField << mant) | (1 << (mant - 1)) | ((hi & 0xfffff) >>> (20 - mant));
  const a = Math.abs(x);
  if (a === Infinity) return sign | (maxField << mant);
  const ef = (hi >>> 20) & 0x7ff;
  if (ef === 0) return sign; // zero or double subnormal (< 2^-1022): far below both formats' range
  const bias = (1 << (expBits - 1)) - 1;
  const emin = 1 - bias;
  let e = ef - 1023;
  if (e > bias) return sign | (maxField << mant);
  if (e < emin - mant - 2) return sign; // below half the smallest subnormal
  const ulpExp = e < emin ? emin - mant : e - mant;
  const q = a * Math.pow(2, -ulpExp); // exact: scaling by a power of two inside the double range
  let f = Math.floor(q);
  const d = q - f; // exact (q < 2^(mant+2))
  if (d > 0.5 || (d === 0.5 && f % 2 === 1)) f += 1;
  if (e < emin) return sign | f; // subnormal (f = 2^mant becomes the smallest normal)
  if (f === 2 ** (mant + 1)) { f = 2 ** mant; e += 1; }
  if (e > bias) return sign | (maxField << mant);
  return sign | ((e + bias) << mant) | (f - 2 ** mant);
}

/**
 * bf16 bit pattern of a number, rounded to nearest even. Exact for f32 values and for any double
 * (a double that is not an f32 is rounded once, directly). NaN gives a quiet NaN.
 */
export function f32ToBf16Bits(x: number): number {
  if (Math.fround(x) === x || x !== x) {
    scratchF32[0] = x;
    return bf16FromF32Bits(scratchU32[0]!);
  }
  return roundDoubleToBits(x, 7, 8);
}

/** The f32 value (as a number) of a bf16 bit pattern. */
export function bf16BitsToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

/**
 * f16 (IEEE binary16) bit pattern of a number, rounded to nearest even; overflow goes to infinity,
 * values below 2^-24 go to subnormals or zero; NaN gives a quiet NaN.
 */
export function f32ToF16Bits(x: number): number {
  if (Math.fround(x) === x || x !== x) {
    scratchF32[0] = x;
    return f16FromF32Bits(scratchU32[0]!);
  }
  return roundDoubleToBits(x, 10, 5);
}

/** The value of an f16 bit pattern (every f16 is exactly representable in f32 and f64). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1024 + m) * 2 ** (e - 25);
}

// ---------------------------------------------------------------------------------------------
// cast
// ---------------------------------------------------------------------------------------------

type CastKind = 'f32' | 'f64' | 'bf16' | 'f16' | 'i32' | 'u8' | 'bool' | 'i64';
const CAST_KINDS: readonly string[] = ['f32', 'f64', 'bf16', 'f16', 'i32', 'u8', 'bool', 'i64'];

function castArrayOk(kind: CastKind, a: AnyArray): boolean {
  switch (kind) {
    case 'f32': return a instanceof Float32Array;
    case 'f64': return a instanceof Float64Array;
    case 'bf16': case 'f16': return a instanceof Uint16Array;
    case 'i32': return a instanceof Int32Array;
    case 'u8': case 'bool': return a instanceof Uint8Array;
    case 'i64': return a instanceof BigInt64Array;
  }
}

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** Float -> integer: truncate toward zero, NaN -> 0, saturate at the target range (a defined answer where C leaves it undefined). */
function floatToInt(x: number, lo: number, hi: number): number {
  if (x !== x) return 0;
  const t = Math.trunc(x);
  return t < lo ? lo : t > hi ? hi : t;
}

function floatToI64(x: number): bigint {
  if (x !== x) return 0n;
  if (x >= 9223372036854775807) return I64_MAX; // 2^63 (the double nearest 2^63-1) and above
  if (x <= -9223372036854775808) return I64_MIN;
  return BigInt(Math.trunc(x));
}

/** i64 -> f32 rounded once (Number(b) then fround would round twice for |b| > 2^53). */
function i64ToF32(b: bigint): number {
  const neg = b < 0n;
  let a = neg ? -b : b;
  if (a <= 9007199254740992n) return Math.fround(neg ? -Number(a) : Number(a));
  // Keep 24 significant bits, round half to even on the rest.
  const bits = a.toString(2).length;
  const drop = BigInt(bits - 24);
  let m = a >> drop;
  const rem = a - (m << drop);
  const half = 1n << (drop - 1n);
  if (rem > half || (rem === half && (m & 1n) === 1n)) m += 1n;
  a = m << drop;
  const v = Number(a); // exact: at most 25 significant bits
  return Math.fround(neg ? -v : v);
}

/** Reads element i of a source of kind `k` as a number (i64 excluded). */
function readNum(k: CastKind, src: AnyArray, i: number): number {
  switch (k) {
    case 'bf16': return bf16BitsToF32((src as Uint16Array)[i]!);
    case 'f16': return f16BitsToF32((src as Uint16Array)[i]!);
    default: return (src as Float32Array)[i]!;
  }
}

function cast(dst: AnyArray, dstDtype: string, src: AnyArray, srcDtype: string, n: number): void {
  if (!CAST_KINDS.includes(dstDtype) || !CAST_KINDS.includes(srcDtype)) {
    throw new DTypeError(`js.cast: unsupported cast ${srcDtype} -> ${dstDtype} (supported: ${CAST_KINDS.join(', ')}; fp8 goes through src/quant/fp8.ts)`);
  }
  const dk = dstDtype as CastKind;
  const sk = srcDtype as CastKind;
  if ((dk === 'i64' || sk === 'i64') && dk !== sk) {
    const other = dk === 'i64' ? sk : dk;
    if (other !== 'i32' && other !== 'f32' && other !== 'f64') {
      throw new DTypeError(`js.cast: unsupported cast ${srcDtype} -> ${dstDtype} (i64 converts to and from i32, f32, f64 only)`);
    }
  }
  if (!castArrayOk(dk, dst)) throw new DTypeError(`js.cast: dst is a ${dst.constructor.name}, which does not hold ${dstDtype}`);
  if (!castArrayOk(sk, src)) throw new DTypeError(`js.cast: src is a ${src.constructor.name}, which does not hold ${srcDtype}`);
  checkDims('cast', { n });
  checkLen('cast', 'dst', dst, n);
  checkLen('cast', 'src', src, n);
  if (n === 0) return;

  // Same storage and meaning: a plain copy (bool -> u8 is also a copy of 0/1 values; u8 -> bool is not).
  if (dk === sk) {
    (dst as Uint8Array).set((src as Uint8Array).subarray(0, n));
    return;
  }

  if (sk === 'i64') {
    const s = src as BigInt64Array;
    if (dk === 'i32') {
      // Two's-complement wrap, as C and PyTorch narrow integers.
      const d = dst as Int32Array;
      for (let i = 0; i < n; i++) d[i] = Number(BigInt.asIntN(32, s[i]!));
    } else if (dk === 'f32') {
      const d = dst as Float32Array;
      for (let i = 0; i < n; i++) d[i] = i64ToF32(s[i]!);
    } else {
      const d = dst as Float64Array;
      for (let i = 0; i < n; i++) d[i] = Number(s[i]!); // Number(bigint) rounds to nearest even once
    }
    return;
  }
  if (dk === 'i64') {
    const d = dst as BigInt64Array;
    if (sk === 'i32') {
      const s = src as Int32Array;
      for (let i = 0; i < n; i++) d[i] = BigInt(s[i]!);
    } else {
      const s = src as FArray;
      for (let i = 0; i < n; i++) d[i] = floatToI64(s[i]!);
    }
    return;
  }

  const srcIsInt = sk === 'i32' || sk === 'u8' || sk === 'bool';
  switch (dk) {
    case 'f32': case 'f64': {
      if (dk === 'f32' && sk === 'bf16') {
        // bf16 is the top half of an f32: shift the bits (keeps NaN payloads).
        const d = new Uint32Array(dst.buffer, dst.byteOffset, n);
        const s = src as Uint16Array;
        for (let i = 0; i < n; i++) d[i] = s[i]! << 16;
        return;
      }
      // Every other source value is exact in the target or rounds once (to nearest even) on store.
      const d = dst as FArray;
      if (sk === 'bf16' || sk === 'f16') {
        for (let i = 0; i < n; i++) d[i] = readNum(sk, src, i);
      } else {
        const s = src as Float32Array;
        for (let i = 0; i < n; i++) d[i] = s[i]!;
      }
      return;
    }
    case 'bf16': case 'f16': {
      const d = dst as Uint16Array;
      const isBf = dk === 'bf16';
      if (sk === 'f32') {
        const bits = new Uint32Array(src.buffer, src.byteOffset, n);
        if (isBf) for (let i = 0; i < n; i++) d[i] = bf16FromF32Bits(bits[i]!);
        else for (let i = 0; i < n; i++) d[i] = f16FromF32Bits(bits[i]!);
      } else if (sk === 'bf16' || sk === 'f16') {
        // bf16 <-> f16: via the exact f32 value, rounded once.
        const s = src as Uint16Array;
        for (let i = 0; i < n; i++) {
          scratchF32[0] = readNum(sk, s, i);
          d[i] = isBf ? bf16FromF32Bits(scratchU32[0]!) : f16FromF32Bits(scratchU32[0]!);
        }
      } else {
        // f64, i32, u8, bool: round the double value once.
        const s = src as Float64Array;
        if (isBf) for (let i = 0; i < n; i++) d[i] = f32ToBf16Bits(s[i]!);
        else for (let i = 0; i < n; i++) d[i] = f32ToF16Bits(s[i]!);
      }
      return;
    }
    case 'i32': {
      const d = dst as Int32Array;
      if (srcIsInt) { const s = src as Uint8Array; for (let i = 0; i < n; i++) d[i] = s[i]!; return; }
      for (let i = 0; i < n; i++) d[i] = floatToInt(readNum(sk, src, i), I32_MIN, I32_MAX);
      return;
    }
    case 'u8': {
      const d = dst as Uint8Array;
      // Integers wrap modulo 256 (C/PyTorch narrowing); floats truncate then saturate to [0, 255].
      if (srcIsInt) { const s = src as Int32Array; for (let i = 0; i < n; i++) d[i] = s[i]! & 0xff; return; }
      for (let i = 0; i < n; i++) d[i] = floatToInt(readNum(sk, src, i), 0, 255);
      return;
    }
    case 'bool': {
      const d = dst as Uint8Array;
      // Nonzero -> 1; NaN is nonzero (as in C and PyTorch); -0 is zero.
      for (let i = 0; i < n; i++) d[i] = readNum(sk, src, i) !== 0 ? 1 : 0;
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------------------------

/** Element access common to every typed array kind (BigInt64Array included). */
type Cells = { [i: number]: unknown };

function copy(dst: Strided, src: Strided, shape: readonly number[]): void {
  checkShape('copy', shape);
  if (dst.data.constructor !== src.data.constructor) {
    throw new DTypeError(`js.copy: dst is a ${dst.data.constructor.name} but src is a ${src.data.constructor.name}`);
  }
  checkStrided('copy', 'dst', dst, shape);
  checkStrided('copy', 'src', src, shape);
  const d = dst.data as unknown as Cells;
  const s = src.data as unknown as Cells;
  const ds = innerStride(dst);
  const ss = innerStride(src);
  forEachRow(shape, [dst, src], (offs, len) => {
    let di = offs[0]!;
    let si = offs[1]!;
    for (let i = 0; i < len; i++, di += ds, si += ss) d[di] = s[si];
  });
}

// ---------------------------------------------------------------------------------------------
// Scalar maths: erf, erfc, gelu, pow
// ---------------------------------------------------------------------------------------------

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2 / sqrt(pi)
const ONE_OVER_SQRT_PI = 0.5641895835477563; // 1 / sqrt(pi)
const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327; // 1 / sqrt(2 pi)
const SQRT_2_OVER_PI = 0.7978845608028654; // sqrt(2 / pi)
const GELU_TANH_C = 0.044715;

/** exp(-x^2) without the rounding error of forming x^2 (it grows like x^2 * eps): x = xh + xl with xh^2 exact. */
function expNegSquare(x: number): number {
  const xh = Math.fround(x); // 24 significant bits: xh*xh is exact in a double
  const xl = x - xh;
  return Math.exp(-xh * xh) * Math.exp(-xl * (x + xh));
}

/**
 * erfc for z >= 2 by the continued fraction (Abramowitz & Stegun 7.1.14, Laplace):
 *   erfc(z) = exp(-z^2)/sqrt(pi) * 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + ...)))))
 * evaluated bottom-up from a fixed depth; at z >= 2 depth 60 converges to full double precision
 * (checked against mpmath: relative error < 4e-16 on [2, 6]).
 */
function erfcContinuedFraction(z: number): number {
  let f = z;
  for (let m = 60; m >= 1; m--) f = z + (m * 0.5) / f;
  return expNegSquare(z) * ONE_OVER_SQRT_PI / f;
}

/**
 * erf for |z| < 2 by the everywhere-positive series (Abramowitz & Stegun 7.1.6):
 *   erf(z) = 2/sqrt(pi) * exp(-z^2) * sum_n 2^n z^(2n+1) / (1*3*...*(2n+1))
 * No cancellation, so the relative error stays within a few ulp.
 */
function erfSeries(z: number): number {
  const z2 = z * z;
  let term = z;
  let sum = z;
  for (let n = 1; n < 200; n++) {
    term *= (2 * z2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) <= Math.abs(sum) * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * expNegSquare(z) * sum;
}

/** The error function in double precision (relative error ~1e-15 or better). */
export function erf(z: number): number {
  if (z !== z) return z;
  const a = Math.abs(z);
  if (a < 2) return erfSeries(z);
  if (a >= 6) return z > 0 ? 1 : -1; // erfc(6) ~ 2e-17 < eps/2
  const r = 1 - erfcContinuedFraction(a);
  return z > 0 ? r : -r;
}

/**
 * The complementary error function. Relative error ~1e-15 for z <= 0.5 and z >= 2; in between it is
 * 1 - erf(z), whose cancellation costs at most a factor 1/erfc(2) ~ 200 (relative error < 1e-13).
 */
export function erfc(z: number): number {
  if (z !== z) return z;
  if (z >= 2) return z > 27.3 ? 0 : erfcContinuedFraction(z);
  return 1 - erf(z);
}

/** GELU (exact): x * Phi(x) = 0.5 x (1 + erf(x/sqrt 2)) = 0.5 x erfc(-x/sqrt 2), the latter keeping the left tail accurate. */
function gelu(x: number): number {
  return 0.5 * x * erfc(-x * SQRT1_2);
}

/** d/dx GELU = Phi(x) + x phi(x). */
function geluGrad(x: number): number {
  return 0.5 * erfc(-x * SQRT1_2) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/**
 * x ** y with C99/IEEE pow special cases (which PyTorch and the native kernels follow) where JS differs:
 * pow(1, y) = 1 for every y (NaN included) and pow(-1, +-Infinity) = 1. JS gives NaN for both.
 */
function powC(x: number, y: number): number {
  if (x === 1) return 1;
  if (x === -1 && (y === Infinity || y === -Infinity)) return 1;
  return Math.pow(x, y);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

function unary(op: UnaryOp, dst: FArray, src: FArray, n: number, s?: number, s2?: number): void {
  checkDims('unary', { n });
  checkLen('unary', 'dst', dst, n);
  checkLen('unary', 'src', src, n);
  const needS = op === 'pow_scalar' || op === 'add_scalar' || op === 'mul_scalar' || op === 'clamp';
  if (needS && (s === undefined || (op === 'clamp' && s2 === undefined))) {
    throw new R1Error(`js.unary: '${op}' needs its scalar parameter${op === 'clamp' ? 's (lo, hi)' : ''}`);
  }
  const p = s ?? 0;
  const p2 = s2 ?? 0;
  switch (op) {
    case 'neg': for (let i = 0; i < n; i++) dst[i] = -src[i]!; return;
    case 'exp': for (let i = 0; i < n; i++) dst[i] = Math.exp(src[i]!); return;
    case 'log': for (let i = 0; i < n; i++) dst[i] = Math.log(src[i]!); return;
    case 'sqrt': for (let i = 0; i < n; i++) dst[i] = Math.sqrt(src[i]!); return;
    case 'rsqrt': for (let i = 0; i < n; i++) dst[i] = 1 / Math.sqrt(src[i]!); return;
    case 'abs': for (let i = 0; i < n; i++) dst[i] = Math.abs(src[i]!); return;
    case 'square': for (let i = 0; i < n; i++) { const x = src[i]!; dst[i] = x * x; } return;
    case 'sigmoid': for (let i = 0; i < n; i++) dst[i] = sigmoid(src[i]!); return;
    case 'tanh': for (let i = 0; i < n; i++) dst[i] = Math.tanh(src[i]!); return;
    // relu keeps NaN (as torch.relu does) and maps -0 to 0.
    case 'relu': for (let i = 0; i < n; i++) { const x = src[i]!; dst[i] = x > 0 ? x : x !== x ? x : 0; } return;
    case 'silu': for (let i = 0; i < n; i++) { const x = src[i]!; dst[i] = x * sigmoid(x); } return;
    case 'gelu': for (let i = 0; i < n; i++) dst[i] = gelu(src[i]!); return;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const x = src[i]!;
        dst[i] = 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)));
      }
      return;
    case 'pow_scalar': for (let i = 0; i < n; i++) dst[i] = powC(src[i]!, p); return;
    case 'add_scalar': for (let i = 0; i < n; i++) dst[i] = src[i]! + p; return;
    case 'mul_scalar': for (let i = 0; i < n; i++) dst[i] = src[i]! * p; return;
    // min(max(x, lo), hi): NaN stays NaN (Math.max/min propagate it), as torch.clamp.
    case 'clamp': for (let i = 0; i < n; i++) dst[i] = Math.min(Math.max(src[i]!, p), p2); return;
    default: throw new R1Error(`js.unary: unknown op '${op as string}'`);
  }
}

function unaryGrad(op: UnaryGradOp, dx: FArray, x: FArray, dy: FArray, n: number): void {
  checkDims('unaryGrad', { n });
  checkLen('unaryGrad', 'dx', dx, n);
  checkLen('unaryGrad', 'x', x, n);
  checkLen('unaryGrad', 'dy', dy, n);
  switch (op) {
    case 'sigmoid': for (let i = 0; i < n; i++) { const s = sigmoid(x[i]!); dx[i] = dy[i]! * s * (1 - s); } return;
    case 'tanh': for (let i = 0; i < n; i++) { const t = Math.tanh(x[i]!); dx[i] = dy[i]! * (1 - t * t); } return;
    // relu'(0) = 0, as PyTorch (threshold_backward).
    case 'relu': for (let i = 0; i < n; i++) dx[i] = x[i]! > 0 ? dy[i]! : 0; return;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const s = sigmoid(v);
        dx[i] = dy[i]! * s * (1 + v * (1 - s));
      }
      return;
    case 'gelu': for (let i = 0; i < n; i++) dx[i] = dy[i]! * geluGrad(x[i]!); return;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const t = Math.tanh(SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v));
        const du = SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_C * v * v);
        dx[i] = dy[i]! * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du);
      }
      return;
    default: throw new R1Error(`js.unaryGrad: unknown op '${op as string}'`);
  }
}

function binary(op: BinaryOp, dst: FArray, a: Strided<FArray>, b: Strided<FArray>, shape: readonly number[]): void {
  checkShape('binary', shape);
  checkLen('binary', 'dst', dst, numel(shape));
  checkStrided('binary', 'a', a, shape);
  checkStrided('binary', 'b', b, shape);
  const A = a.data;
  const B = b.data;
  const as = innerStride(a);
  const bs = innerStride(b);
  const out = { offset: 0, strides: contiguousStrides(shape) };
  forEachRow(shape, [out, a, b], (offs, len) => {
    let o = offs[0]!;
    let ia = offs[1]!;
    let ib = offs[2]!;
    const end = o + len;
    switch (op) {
      case 'add': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! + B[ib]!; return;
      case 'sub': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! - B[ib]!; return;
      case 'mul': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! * B[ib]!; return;
      case 'div': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! / B[ib]!; return;
      case 'pow': for (; o < end; o++, ia += as, ib += bs) dst[o] = powC(A[ia]!, B[ib]!); return;
      // NaN propagates (torch.maximum / torch.minimum).
      case 'maximum': for (; o < end; o++, ia += as, ib += bs) dst[o] = Math.max(A[ia]!, B[ib]!); return;
      case 'minimum': for (; o < end; o++, ia += as, ib += bs) dst[o] = Math.min(A[ia]!, B[ib]!); return;
      default: throw new R1Error(`js.binary: unknown op '${op as string}'`);
    }
  });
}

function compare(op: CompareOp, dst: Uint8Array, a: Strided<FArray>, b: Strided<FArray>, shape: readonly number[]): void {
  checkShape('compare', shape);
  checkLen('compare', 'dst', dst, numel(shape));
  checkStrided('compare', 'a', a, shape);
  checkStrided('compare', 'b', b, shape);
  const A = a.data;
  const B = b.data;
  const as = innerStride(a);
  const bs = innerStride(b);
  const out = { offset: 0, strides: contiguousStrides(shape) };
  // IEEE comparisons: any comparison with NaN is false, except 'ne' which is true.
  forEachRow(shape, [out, a, b], (offs, len) => {
    let o = offs[0]!;
    let ia = offs[1]!;
    let ib = offs[2]!;
    const end = o + len;
    switch (op) {
      case 'eq': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! === B[ib]! ? 1 : 0; return;
      case 'ne': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! !== B[ib]! ? 1 : 0; return;
      case 'lt': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! < B[ib]! ? 1 : 0; return;
      case 'le': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! <= B[ib]! ? 1 : 0; return;
      case 'gt': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! > B[ib]! ? 1 : 0; return;
      case 'ge': for (; o < end; o++, ia += as, ib += bs) dst[o] = A[ia]! >= B[ib]! ? 1 : 0; return;
      default: throw new R1Error(`js.compare: unknown op '${op as string}'`);
    }
  });
}

function where(dst: FArray, cond: Strided<Uint8Array>, a: Strided<FArray>, b: Strided<FArray>, shape: readonly number[]): void {
  checkShape('where', shape);
  checkLen('where', 'dst', dst, numel(shape));
  checkStrided('where', 'cond', cond, shape);
  checkStrided('where', 'a', a, shape);
  checkStrided('where', 'b', b, shape);
  const C = cond.data;
  const A = a.data;
  const B = b.data;
  const cs = innerStride(cond);
  const as = innerStride(a);
  const bs = innerStride(b);
  const out = { offset: 0, strides: contiguousStrides(shape) };
  forEachRow(shape, [out, cond, a, b], (offs, len) => {
    let o = offs[0]!;
    let ic = offs[1]!;
    let ia = offs[2]!;
    let ib = offs[3]!;
    for (let i = 0; i < len; i++, o++, ic += cs, ia += as, ib += bs) dst[o] = C[ic]! !== 0 ? A[ia]! : B[ib]!;
  });
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

function reduce(op: ReduceOp, dst: FArray, src: FArray, outer: number, n: number, inner: number): void {
  checkDims('reduce', { outer, n, inner });
  checkLen('reduce', 'dst', dst, outer * inner);
  checkLen('reduce', 'src', src, outer * n * inner);
  if (op !== 'sum' && op !== 'max' && op !== 'min') throw new R1Error(`js.reduce: unknown op '${op as string}'`);
  const init = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
  // One f64 accumulator per output column, walking the source in memory order.
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(init);
    for (let j = 0; j < n; j++) {
      const base = (o * n + j) * inner;
      if (op === 'sum') {
        for (let i = 0; i < inner; i++) acc[i]! += src[base + i]!;
      } else if (op === 'max') {
        // `v !== v` makes NaN stick: once the accumulator is NaN no comparison replaces it.
        for (let i = 0; i < inner; i++) { const v = src[base + i]!; if (v > acc[i]! || v !== v) acc[i] = v; }
      } else {
        for (let i = 0; i < inner; i++) { const v = src[base + i]!; if (v < acc[i]! || v !== v) acc[i] = v; }
      }
    }
    const ob = o * inner;
    for (let i = 0; i < inner; i++) dst[ob + i] = acc[i]!;
  }
}

function argReduce(op: 'argmax' | 'argmin', dst: Int32Array, src: FArray, outer: number, n: number, inner: number): void {
  checkDims('argReduce', { outer, n, inner });
  checkLen('argReduce', 'dst', dst, outer * inner);
  checkLen('argReduce', 'src', src, outer * n * inner);
  if (outer * inner === 0) return;
  if (n === 0) throw new ShapeError(`js.argReduce: ${op} over an empty axis (n = 0) has no answer`);
  const isMax = op === 'argmax';
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = src[base]!;
      let bi = 0;
      for (let j = 1; j < n; j++) {
        const v = src[base + j * inner]!;
        // NaN is the largest value: argmax takes the first NaN; argmin only lands on NaN if every value is NaN.
        if (isMax) {
          if (best !== best) break;
          if (v > best || v !== v) { best = v; bi = j; }
        } else if (v < best || (best !== best && v === v)) { best = v; bi = j; }
      }
      dst[o * inner + i] = bi;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------------------

function matmul(
  c: FArray, cOffset: number,
  a: FArray, aOffset: number, aBatchStride: number, lda: number, transA: boolean,
  b: FArray, bOffset: number, bBatchStride: number, ldb: number, transB: boolean,
  batch: number, m: number, n: number, k: number, accumulate: boolean,
): void {
  checkDims('matmul', { cOffset, aOffset, aBatchStride, lda, bOffset, bBatchStride, ldb, batch, m, n, k });
  if (batch === 0 || m === 0 || n === 0) return;
  checkLen('matmul', 'c', c, cOffset + batch * m * n);
  if (k > 0) {
    // Last element each operand touches: rows x cols stored with a row stride.
    const aRows = transA ? k : m, aCols = transA ? m : k;
    const bRows = transB ? n : k, bCols = transB ? k : n;
    if (lda < aCols) throw new ShapeError(`js.matmul: lda ${lda} < ${aCols} columns of A`);
    if (ldb < bCols) throw new ShapeError(`js.matmul: ldb ${ldb} < ${bCols} columns of B`);
    checkLen('matmul', 'a', a, aOffset + (batch - 1) * aBatchStride + (aRows - 1) * lda + aCols);
    checkLen('matmul', 'b', b, bOffset + (batch - 1) * bBatchStride + (bRows - 1) * ldb + bCols);
  }
  // Element (i, p) of op(A) and (p, j) of op(B), as (row step, column step) in the stored layout.
  const aRowStep = transA ? 1 : lda, aColStep = transA ? lda : 1;
  const bRowStep = transB ? 1 : ldb, bColStep = transB ? ldb : 1;
  const acc = new Float64Array(n); // one output row, accumulated in f64
  for (let bt = 0; bt < batch; bt++) {
    const a0 = aOffset + bt * aBatchStride;
    const b0 = bOffset + bt * bBatchStride;
    const c0 = cOffset + bt * m * n;
    for (let i = 0; i < m; i++) {
      const cRow = c0 + i * n;
      if (accumulate) for (let j = 0; j < n; j++) acc[j] = c[cRow + j]!;
      else acc.fill(0);
      const aRow = a0 + i * aRowStep;
      if (!transB) {
        // i-k-j: stream along a contiguous row of B for each a_ip.
        for (let p = 0; p < k; p++) {
          const aip = a[aRow + p * aColStep]!;
          const bRow = b0 + p * bRowStep;
          for (let j = 0; j < n; j++) acc[j]! += aip * b[bRow + j]!;
        }
      } else {
        // B^T: row j of the stored B is column j of op(B), so each output is a dot product along p.
        for (let j = 0; j < n; j++) {
          const bCol = b0 + j * bColStep;
          let s = 0;
          for (let p = 0; p < k; p++) s += a[aRow + p * aColStep]! * b[bCol + p]!;
          acc[j]! += s;
        }
      }
      for (let j = 0; j < n; j++) c[cRow + j] = acc[j]!;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// softmax, norms, rope, cross-entropy, SwiGLU
// ---------------------------------------------------------------------------------------------

function softmax(dst: FArray, src: FArray, rows: number, cols: number, log: boolean): void {
  checkDims('softmax', { rows, cols });
  checkLen('softmax', 'dst', dst, rows * cols);
  checkLen('softmax', 'src', src, rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let mx = -Infinity;
    for (let j = 0; j < cols; j++) { const v = src[base + j]!; if (v > mx || v !== v) mx = v; }
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += Math.exp(src[base + j]! - mx);
    // A row of all -Infinity gives NaN (-inf - -inf), as PyTorch does.
    if (log) {
      const lse = Math.log(sum);
      for (let j = 0; j < cols; j++) dst[base + j] = src[base + j]! - mx - lse;
    } else {
      const inv = 1 / sum;
      for (let j = 0; j < cols; j++) dst[base + j] = Math.exp(src[base + j]! - mx) * inv;
    }
  }
}

function softmaxGrad(dx: FArray, y: FArray, dy: FArray, rows: number, cols: number, log: boolean): void {
  checkDims('softmaxGrad', { rows, cols });
  for (const [name, arr] of [['dx', dx], ['y', y], ['dy', dy]] as const) checkLen('softmaxGrad', name, arr, rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let s = 0;
    if (log) {
      for (let j = 0; j < cols; j++) s += dy[base + j]!;
      for (let j = 0; j < cols; j++) dx[base + j] = dy[base + j]! - Math.exp(y[base + j]!) * s;
    } else {
      for (let j = 0; j < cols; j++) s += dy[base + j]! * y[base + j]!;
      for (let j = 0; j < cols; j++) dx[base + j] = y[base + j]! * (dy[base + j]! - s);
    }
  }
}

function rmsnorm(y: FArray, rstd: FArray, x: FArray, w: FArray, rows: number, cols: number, eps: number): void {
  checkDims('rmsnorm', { rows, cols });
  checkLen('rmsnorm', 'y', y, rows * cols);
  checkLen('rmsnorm', 'rstd', rstd, rows);
  checkLen('rmsnorm', 'x', x, rows * cols);
  checkLen('rmsnorm', 'w', w, cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let ss = 0;
    for (let j = 0; j < cols; j++) { const v = x[base + j]!; ss += v * v; }
    // cols = 0: mean of nothing taken as 0, so rstd = 1/sqrt(eps) (y is empty anyway).
    const rs = 1 / Math.sqrt((cols > 0 ? ss / cols : 0) + eps);
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) y[base + j] = x[base + j]! * rs * w[j]!;
  }
}

function rmsnormGrad(dx: FArray, dw: FArray, dy: FArray, x: FArray, w: FArray, rstd: FArray, rows: number, cols: number): void {
  checkDims('rmsnormGrad', { rows, cols });
  checkLen('rmsnormGrad', 'dx', dx, rows * cols);
  checkLen('rmsnormGrad', 'dw', dw, cols);
  checkLen('rmsnormGrad', 'dy', dy, rows * cols);
  checkLen('rmsnormGrad', 'x', x, rows * cols);
  checkLen('rmsnormGrad', 'w', w, cols);
  checkLen('rmsnormGrad', 'rstd', rstd, rows);
  const dwAcc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const rs = rstd[r]!;
    let dot = 0; // sum_i w_i dy_i x_i
    for (let j = 0; j < cols; j++) dot += w[j]! * dy[base + j]! * x[base + j]!;
    const c = cols > 0 ? rs * rs * rs * (dot / cols) : 0;
    for (let j = 0; j < cols; j++) {
      const xv = x[base + j]!;
      const g = dy[base + j]!;
      dx[base + j] = rs * w[j]! * g - xv * c;
      dwAcc[j]! += g * xv * rs;
    }
  }
  for (let j = 0; j < cols; j++) dw[j] = dwAcc[j]!;
}

function rope(dst: FArray, x: FArray, cos: FArray, sin: FArray, pos: Int32Array,
  T: number, H: number, D: number, R: number, layout: RopeLayout, inverse: boolean): void {
  checkDims('rope', { T, H, D, R });
  if (R % 2 !== 0 || R > D) throw new ShapeError(`js.rope: rotary dims R = ${R} must be even and <= D = ${D}`);
  if (layout !== 'half' && layout !== 'interleaved') throw new R1Error(`js.rope: unknown layout '${layout as string}'`);
  checkLen('rope', 'dst', dst, T * H * D);
  checkLen('rope', 'x', x, T * H * D);
  checkLen('rope', 'pos', pos, T);
  const half = R / 2;
  if (half > 0) {
    const P = Math.floor(Math.min(cos.length, sin.length) / half);
    for (let t = 0; t < T; t++) {
      const p = pos[t]!;
      if (p < 0 || p >= P) throw new ShapeError(`js.rope: pos[${t}] = ${p} outside the cos/sin tables (${P} rows of ${half})`);
    }
  }
  const sgn = inverse ? -1 : 1;
  // Element offsets of pair i's two members within a head.
  const aStep = layout === 'half' ? 1 : 2;
  const bOff = layout === 'half' ? half : 1;
  for (let t = 0; t < T; t++) {
    const row = pos[t]! * half;
    for (let h = 0; h < H; h++) {
      const base = (t * H + h) * D;
      for (let i = 0; i < half; i++) {
        const ia = base + i * aStep;
        const ib = ia + bOff;
        const a = x[ia]!;
        const b = x[ib]!; // both read before either write: dst may be x
        const c = cos[row + i]!;
        const s = sgn * sin[row + i]!;
        dst[ia] = a * c - b * s;
        dst[ib] = b * c + a * s;
      }
      if (dst !== x) for (let j = R; j < D; j++) dst[base + j] = x[base + j]!;
    }
  }
}

function crossEntropy(loss: FArray, lse: FArray, logits: FArray, targets: Int32Array, rows: number, V: number, ignoreIndex: number): void {
  checkDims('crossEntropy', { rows, V });
  checkLen('crossEntropy', 'loss', loss, rows);
  checkLen('crossEntropy', 'lse', lse, rows);
  checkLen('crossEntropy', 'logits', logits, rows * V);
  checkLen('crossEntropy', 'targets', targets, rows);
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    let mx = -Infinity;
    for (let j = 0; j < V; j++) { const v = logits[base + j]!; if (v > mx || v !== v) mx = v; }
    let l: number;
    if (mx === -Infinity) {
      l = -Infinity; // empty vocabulary or all -Infinity: log(0)
    } else {
      let sum = 0;
      for (let j = 0; j < V; j++) sum += Math.exp(logits[base + j]! - mx);
      l = mx + Math.log(sum);
    }
    lse[r] = l;
    const t = targets[r]!;
    loss[r] = t === ignoreIndex ? 0 : l - logits[base + t]!;
  }
}

function crossEntropyGrad(dlogits: FArray, logits: FArray, lse: FArray, targets: Int32Array, dloss: FArray,
  rows: number, V: number, ignoreIndex: number): void {
  checkDims('crossEntropyGrad', { rows, V });
  checkLen('crossEntropyGrad', 'dlogits', dlogits, rows * V);
  checkLen('crossEntropyGrad', 'logits', logits, rows * V);
  checkLen('crossEntropyGrad', 'lse', lse, rows);
  checkLen('crossEntropyGrad', 'targets', targets, rows);
  checkLen('crossEntropyGrad', 'dloss', dloss, rows);
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    const t = targets[r]!;
    if (t === ignoreIndex) {
      for (let j = 0; j < V; j++) dlogits[base + j] = 0;
      continue;
    }
    const g = dloss[r]!;
    const l = lse[r]!;
    for (let j = 0; j < V; j++) dlogits[base + j] = g * (Math.exp(logits[base + j]! - l) - (j === t ? 1 : 0));
  }
}

function siluMul(y: FArray, a: FArray, b: FArray, n: number): void {
  checkDims('siluMul', { n });
  checkLen('siluMul', 'y', y, n);
  checkLen('siluMul', 'a', a, n);
  checkLen('siluMul', 'b', b, n);
  for (let i = 0; i < n; i++) { const v = a[i]!; y[i] = v * sigmoid(v) * b[i]!; }
}

function siluMulGrad(da: FArray, db: FArray, a: FArray, b: FArray, dy: FArray, n: number): void {
  checkDims('siluMulGrad', { n });
  for (const [name, arr] of [['da', da], ['db', db], ['a', a], ['b', b], ['dy', dy]] as const) checkLen('siluMulGrad', name, arr, n);
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    const s = sigmoid(v);
    const g = dy[i]!;
    const bv = b[i]!; // read before writing: da/db may be reused buffers
    da[i] = g * bv * s * (1 + v * (1 - s));
    db[i] = g * v * s;
  }
}

// ---------------------------------------------------------------------------------------------
// Attention (fused; one row of scores at a time)
// ---------------------------------------------------------------------------------------------

interface AttnDims { B: number; Hq: number; Hkv: number; Sq: number; Sk: number; Dk: number; Dv: number }

function checkAttention(kernel: string, d: AttnDims, q: FArray, k: FArray, v: FArray, out: FArray, lse: FArray, mask: Strided<FArray> | null,
  st: KVStrides | null = null): void {
  checkDims(kernel, { ...d });
  if (d.Hkv === 0 ? d.Hq !== 0 : d.Hq % d.Hkv !== 0) throw new ShapeError(`js.${kernel}: Hq = ${d.Hq} is not a multiple of Hkv = ${d.Hkv}`);
  checkLen(kernel, 'q', q, d.B * d.Hq * d.Sq * d.Dk);
  if (st) {
    for (const [name, val] of Object.entries(st) as [string, number][]) {
      if (!Number.isInteger(val) || val < 0) throw new ShapeError(`js.${kernel}: kvStrides.${name} = ${val} must be a non-negative integer`);
    }
    if (st.kRow < d.Dk || st.vRow < d.Dv) throw new ShapeError(`js.${kernel}: kvStrides rows (${st.kRow}, ${st.vRow}) shorter than Dk = ${d.Dk} / Dv = ${d.Dv}`);
    const nbh = d.B * d.Hkv;
    checkLen(kernel, 'k', k, nbh > 0 && d.Sk > 0 ? (nbh - 1) * st.kHead + (d.Sk - 1) * st.kRow + d.Dk : 0);
    checkLen(kernel, 'v', v, nbh > 0 && d.Sk > 0 ? (nbh - 1) * st.vHead + (d.Sk - 1) * st.vRow + d.Dv : 0);
  } else {
    checkLen(kernel, 'k', k, d.B * d.Hkv * d.Sk * d.Dk);
    checkLen(kernel, 'v', v, d.B * d.Hkv * d.Sk * d.Dv);
  }
  checkLen(kernel, 'out', out, d.B * d.Hq * d.Sq * d.Dv);
  checkLen(kernel, 'lse', lse, d.B * d.Hq * d.Sq);
  if (mask) checkStrided(kernel, 'mask', mask, [d.B, d.Hq, d.Sq, d.Sk]);
}

/**
 * Scores of query row (b, h, i) into `s` (length Sk), masked entries -Infinity; returns the row max
 * over visible keys (-Infinity if none). `jEnd` is one past the last visible key (causal).
 */
function scoreRow(s: Float64Array, q: FArray, qBase: number, k: FArray, kBase: number, Dk: number, jEnd: number,
  mask: Strided<FArray> | null, mBase: number, mStride: number, scale: number, kRow = Dk): number {
  let mx = -Infinity;
  for (let j = 0; j < jEnd; j++) {
    const kb = kBase + j * kRow;
    let dot = 0;
    for (let d = 0; d < Dk; d++) dot += q[qBase + d]! * k[kb + d]!;
    let sc = scale * dot;
    if (mask) sc += mask.data[mBase + j * mStride]!;
    s[j] = sc;
    if (sc > mx || sc !== sc) mx = sc;
  }
  return mx;
}

function attentionRagged(out: FArray, q: FArray, kNew: FArray, vNew: FArray | null, kCaches: readonly CacheArray[],
  vCaches: readonly CacheArray[] | null, segs: readonly RaggedSegment[], Hq: number, Hkv: number, Dk: number, Dv: number,
  scale: number, valuesInKeys: boolean): void {
  const bf = kCaches[0] instanceof Uint16Array;
  if ([...kCaches, ...(valuesInKeys ? [] : vCaches ?? [])].some((c) => (c instanceof Uint16Array) !== bf)) {
    throw new DTypeError('js.attentionRagged: the key and value caches must all be bf16 (Uint16Array) or all float arrays');
  }
  if (Hkv < 1 || Hq % Hkv !== 0) throw new ShapeError(`js.attentionRagged: Hq = ${Hq} must be a multiple of Hkv = ${Hkv} (>= 1)`);
  if (valuesInKeys && Dv > Dk) throw new ShapeError(`js.attentionRagged: valuesInKeys: Dv = ${Dv} exceeds Dk = ${Dk}`);
  if (kCaches.length !== segs.length || (!valuesInKeys && (!vCaches || vCaches.length !== segs.length || !vNew))) {
    throw new ShapeError(`js.attentionRagged: ${segs.length} sequences but ${kCaches.length} key and ${vCaches?.length ?? 0} value caches`);
  }
  const G = Hq / Hkv;
  let N = 0;
  segs.forEach((g, s) => {
    if (g.past + g.n > g.cap) throw new ShapeError(`js.attentionRagged: sequence ${s}: ${g.past} cached + ${g.n} new rows exceed the cache capacity ${g.cap}`);
    if (g.kOffset + Hkv * g.cap * Dk > kCaches[s]!.length) throw new ShapeError(`js.attentionRagged: kCaches[${s}] is too short`);
    if (!valuesInKeys && g.vOffset + Hkv * g.cap * Dv > vCaches![s]!.length) throw new ShapeError(`js.attentionRagged: vCaches[${s}] is too short`);
    N += g.n;
  });
  if (q.length < N * Hq * Dk || kNew.length < N * Hkv * Dk || (!valuesInKeys && vNew!.length < N * Hkv * Dv) || out.length < N * Hq * Dv) {
    throw new ShapeError(`js.attentionRagged: q, kNew, vNew or out is shorter than ${N} tokens`);
  }
  let t0 = 0;
  const sc = new Float64Array(segs.reduce((m, g) => Math.max(m, g.past + g.n), 0));
  const put = bf ? (x: number) => f32ToBf16Bits(x) : (x: number) => x;
  // bf16 caches: the scaled queries are rounded to bf16 as well (every score a sum of exact bf16 products)
  const qs = bf ? Float32Array.from(q.subarray(0, N * Hq * Dk), (x) => bf16BitsToF32(f32ToBf16Bits(Math.fround(x * scale)))) : q;
  const qScale = bf ? 1 : scale;
  segs.forEach((g, s) => {
    const kw = kCaches[s]!, vw = valuesInKeys ? kw : vCaches![s]!;
    const vRow = valuesInKeys ? Dk : Dv;
    const vBase = valuesInKeys ? g.kOffset : g.vOffset;
    for (let h = 0; h < Hkv; h++) {
      for (let i = 0; i < g.n; i++) {
        const dst = g.kOffset + (h * g.cap + g.past + i) * Dk, src = ((t0 + i) * Hkv + h) * Dk;
        for (let d = 0; d < Dk; d++) kw[dst + d] = put(kNew[src + d]!);
        if (!valuesInKeys) {
          const vd = g.vOffset + (h * g.cap + g.past + i) * Dv, vs = ((t0 + i) * Hkv + h) * Dv;
          for (let d = 0; d < Dv; d++) vw[vd + d] = put(vNew![vs + d]!);
        }
      }
    }
    // bf16 caches are read as the f32 values their bit patterns hold (a widened copy: this is the reference path)
    const kc: FArray = kw instanceof Uint16Array ? Float32Array.from(kw, bf16BitsToF32) : kw;
    const vc: FArray = valuesInKeys ? kc : vw instanceof Uint16Array ? Float32Array.from(vw, bf16BitsToF32) : vw;
    for (let i = 0; i < g.n; i++) {
      const visible = g.past + i + 1;
      for (let h = 0; h < Hq; h++) {
        const kvh = Math.floor(h / G);
        const mx = scoreRow(sc, qs, ((t0 + i) * Hq + h) * Dk, kc, g.kOffset + kvh * g.cap * Dk, Dk, visible, null, 0, 0, qScale);
        let sum = 0;
        for (let j = 0; j < visible; j++) { sc[j] = Math.exp(sc[j]! - mx); sum += sc[j]!; }
        const ob = ((t0 + i) * Hq + h) * Dv;
        for (let d = 0; d < Dv; d++) {
          let a = 0;
          for (let j = 0; j < visible; j++) a += sc[j]! * vc[vBase + (kvh * g.cap + j) * vRow + d]!;
          out[ob + d] = a / sum;
        }
      }
    }
    t0 += g.n;
  });
}

function attention(out: FArray, lse: FArray, q: FArray, k: FArray, v: FArray, mask: Strided<FArray> | null,
  B: number, Hq: number, Hkv: number, Sq: number, Sk: number, Dk: number, Dv: number, scale: number, causal: boolean,
  kvStrides: KVStrides | null = null): void {
  const dims = { B, Hq, Hkv, Sq, Sk, Dk, Dv };
  const st = kvStrides ?? { kRow: Dk, kHead: Sk * Dk, vRow: Dv, vHead: Sk * Dv };
  checkAttention('attention', dims, q, k, v, out, lse, mask, st);
  if (B * Hq * Sq === 0) return;
  const group = Hq / Hkv;
  const s = new Float64Array(Sk); // the one row of scores
  const acc = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const kBase = (b * Hkv + hk) * st.kHead;
      const vBase = (b * Hkv + hk) * st.vHead;
      for (let i = 0; i < Sq; i++) {
        const row = (b * Hq + h) * Sq + i;
        // Causal: queries are the last Sq of Sk positions, so query i sees keys j <= i + Sk - Sq.
        const jEnd = causal ? Math.max(0, Math.min(Sk, i + Sk - Sq + 1)) : Sk;
        const mBase = mask ? mask.offset + b * mask.strides[0]! + h * mask.strides[1]! + i * mask.strides[2]! : 0;
        const mx = scoreRow(s, q, row * Dk, k, kBase, Dk, jEnd, mask, mBase, mask ? mask.strides[3]! : 0, scale, st.kRow);
        const oBase = row * Dv;
        if (mx === -Infinity) {
          // No visible key (or every score -Infinity): defined as out = 0, lse = -Infinity.
          for (let d = 0; d < Dv; d++) out[oBase + d] = 0;
          lse[row] = -Infinity;
          continue;
        }
        acc.fill(0);
        let sum = 0;
        for (let j = 0; j < jEnd; j++) {
          const p = Math.exp(s[j]! - mx);
          if (p === 0) continue;
          sum += p;
          const vb = vBase + j * st.vRow;
          for (let d = 0; d < Dv; d++) acc[d]! += p * v[vb + d]!;
        }
        const inv = 1 / sum;
        for (let d = 0; d < Dv; d++) out[oBase + d] = acc[d]! * inv;
        lse[row] = mx + Math.log(sum);
      }
    }
  }
}

function attentionGrad(dq: FArray, dk: FArray, dv: FArray, dout: FArray, q: FArray, k: FArray, v: FArray,
  out: FArray, lse: FArray, mask: Strided<FArray> | null,
  B: number, Hq: number, Hkv: number, Sq: number, Sk: number, Dk: number, Dv: number, scale: number, causal: boolean): void {
  const dims = { B, Hq, Hkv, Sq, Sk, Dk, Dv };
  checkAttention('attentionGrad', dims, q, k, v, out, lse, mask);
  checkLen('attentionGrad', 'dq', dq, B * Hq * Sq * Dk);
  checkLen('attentionGrad', 'dk', dk, B * Hkv * Sk * Dk);
  checkLen('attentionGrad', 'dv', dv, B * Hkv * Sk * Dv);
  checkLen('attentionGrad', 'dout', dout, B * Hq * Sq * Dv);
  const nK = B * Hkv * Sk;
  // dk and dv sum over queries and over the query heads of a group: accumulate in f64, store once.
  const dkAcc = new Float64Array(nK * Dk);
  const dvAcc = new Float64Array(nK * Dv);
  const group = Hkv > 0 ? Hq / Hkv : 1;
  const s = new Float64Array(Sk);
  const dqAcc = new Float64Array(Dk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const kBase = (b * Hkv + hk) * Sk * Dk;
      const vBase = (b * Hkv + hk) * Sk * Dv;
      for (let i = 0; i < Sq; i++) {
        const row = (b * Hq + h) * Sq + i;
        const qBase = row * Dk;
        const oBase = row * Dv;
        const jEnd = causal ? Math.max(0, Math.min(Sk, i + Sk - Sq + 1)) : Sk;
        const mBase = mask ? mask.offset + b * mask.strides[0]! + h * mask.strides[1]! + i * mask.strides[2]! : 0;
        const l = lse[row]!;
        dqAcc.fill(0);
        if (l !== -Infinity) {
          scoreRow(s, q, qBase, k, kBase, Dk, jEnd, mask, mBase, mask ? mask.strides[3]! : 0, scale);
          let Di = 0;
          for (let d = 0; d < Dv; d++) Di += dout[oBase + d]! * out[oBase + d]!;
          for (let j = 0; j < jEnd; j++) {
            const P = Math.exp(s[j]! - l);
            if (P === 0) continue; // masked (or negligible) keys contribute nothing
            const vb = vBase + j * Dv;
            const kb = kBase + j * Dk;
            let dP = 0;
            for (let d = 0; d < Dv; d++) {
              const g = dout[oBase + d]!;
              dP += g * v[vb + d]!;
              dvAcc[vb + d]! += P * g;
            }
            const dS = P * (dP - Di) * scale;
            for (let d = 0; d < Dk; d++) {
              dqAcc[d]! += dS * k[kb + d]!;
              dkAcc[kb + d]! += dS * q[qBase + d]!;
            }
          }
        }
        for (let d = 0; d < Dk; d++) dq[qBase + d] = dqAcc[d]!;
      }
    }
  }
  for (let i = 0; i < nK * Dk; i++) dk[i] = dkAcc[i]!;
  for (let i = 0; i < nK * Dv; i++) dv[i] = dvAcc[i]!;
}

// ---------------------------------------------------------------------------------------------
// Indexing
// ---------------------------------------------------------------------------------------------

function checkIdx(kernel: string, idx: Int32Array, count: number, bound: number): void {
  for (let j = 0; j < count; j++) {
    const v = idx[j]!;
    if (!(v >= 0 && v < bound)) throw new ShapeError(`js.${kernel}: index ${v} at position ${j} is outside [0, ${bound})`);
  }
}

function sameKind(kernel: string, dst: AnyArray, src: AnyArray): void {
  if (dst.constructor !== src.constructor) {
    throw new DTypeError(`js.${kernel}: dst is a ${dst.constructor.name} but src is a ${src.constructor.name}`);
  }
}

function indexSelect(dst: AnyArray, src: AnyArray, idx: Int32Array, outer: number, nSrc: number, nIdx: number, inner: number): void {
  checkDims('indexSelect', { outer, nSrc, nIdx, inner });
  sameKind('indexSelect', dst, src);
  checkLen('indexSelect', 'dst', dst, outer * nIdx * inner);
  checkLen('indexSelect', 'src', src, outer * nSrc * inner);
  checkLen('indexSelect', 'idx', idx, nIdx);
  if (outer * inner === 0) return;
  checkIdx('indexSelect', idx, nIdx, nSrc);
  const d = dst as unknown as Cells;
  const s = src as unknown as Cells;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < nIdx; j++) {
      const db = (o * nIdx + j) * inner;
      const sb = (o * nSrc + idx[j]!) * inner;
      for (let i = 0; i < inner; i++) d[db + i] = s[sb + i];
    }
  }
}

function indexAdd(dst: FArray, src: FArray, idx: Int32Array, outer: number, nDst: number, nIdx: number, inner: number): void {
  checkDims('indexAdd', { outer, nDst, nIdx, inner });
  checkLen('indexAdd', 'dst', dst, outer * nDst * inner);
  checkLen('indexAdd', 'src', src, outer * nIdx * inner);
  checkLen('indexAdd', 'idx', idx, nIdx);
  if (outer * inner === 0) return;
  checkIdx('indexAdd', idx, nIdx, nDst);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < nIdx; j++) {
      const db = (o * nDst + idx[j]!) * inner;
      const sb = (o * nIdx + j) * inner;
      for (let i = 0; i < inner; i++) dst[db + i]! += src[sb + i]!;
    }
  }
}

function gather(dst: AnyArray, src: AnyArray, idx: Int32Array, outer: number, nSrc: number, nIdx: number, inner: number): void {
  checkDims('gather', { outer, nSrc, nIdx, inner });
  sameKind('gather', dst, src);
  const total = outer * nIdx * inner;
  checkLen('gather', 'dst', dst, total);
  checkLen('gather', 'src', src, outer * nSrc * inner);
  checkLen('gather', 'idx', idx, total);
  checkIdx('gather', idx, total, nSrc);
  const d = dst as unknown as Cells;
  const s = src as unknown as Cells;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < nIdx; j++) {
      const ib = (o * nIdx + j) * inner;
      for (let i = 0; i < inner; i++) d[ib + i] = s[(o * nSrc + idx[ib + i]!) * inner + i];
    }
  }
}

function scatter(dst: FArray, src: FArray, idx: Int32Array, outer: number, nDst: number, nIdx: number, inner: number, accumulate: boolean): void {
  checkDims('scatter', { outer, nDst, nIdx, inner });
  const total = outer * nIdx * inner;
  checkLen('scatter', 'dst', dst, outer * nDst * inner);
  checkLen('scatter', 'src', src, total);
  checkLen('scatter', 'idx', idx, total);
  checkIdx('scatter', idx, total, nDst);
  // j ascending, so with accumulate = false the last j writing a cell wins.
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < nIdx; j++) {
      const ib = (o * nIdx + j) * inner;
      for (let i = 0; i < inner; i++) {
        const t = (o * nDst + idx[ib + i]!) * inner + i;
        if (accumulate) dst[t]! += src[ib + i]!;
        else dst[t] = src[ib + i]!;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// top-k
// ---------------------------------------------------------------------------------------------

/**
 * Whether (x, ix) comes before (y, iy) in top-k order: by value (descending if largest, else
 * ascending) with NaN the largest value, ties (equal values, or both NaN) to the lower index.
 * A strict total order, so the result does not depend on the sort's stability.
 */
function before(x: number, ix: number, y: number, iy: number, largest: boolean): boolean {
  const xn = x !== x, yn = y !== y;
  if (xn || yn) {
    if (xn && yn) return ix < iy;
    return largest ? xn : yn;
  }
  if (x !== y) return largest ? x > y : x < y;
  return ix < iy;
}

/** Whether x precedes y by value alone (no index tie-break): NaN largest, -0 equal to 0. */
function valueBefore(x: number, y: number, largest: boolean): boolean {
  const xn = x !== x, yn = y !== y;
  if (xn || yn) return xn !== yn && (largest ? xn : yn);
  return largest ? x > y : x < y;
}

function topk(values: FArray, indices: Int32Array, src: FArray, rows: number, n: number, k: number, largest: boolean): void {
  checkDims('topk', { rows, n, k });
  if (k > n) throw new ShapeError(`js.topk: k = ${k} exceeds the axis length n = ${n}`);
  checkLen('topk', 'values', values, rows * k);
  checkLen('topk', 'indices', indices, rows * k);
  checkLen('topk', 'src', src, rows * n);
  if (k === 0) return;
  // Small k: keep the best k in order by insertion (O(n) for typical data, O(n k) at worst).
  // Large k: find the k-th best value with a native numeric sort of the row (ascending, NaN last),
  // take everything strictly better plus the lowest-index ties, then order those k with `before`.
  const useInsertion = k <= 32;
  const best = new Int32Array(k);
  const sorted = useInsertion ? null : new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    if (useInsertion) {
      let count = 0;
      for (let j = 0; j < n; j++) {
        const x = src[base + j]!;
        if (count === k && !before(x, j, src[base + best[k - 1]!]!, best[k - 1]!, largest)) continue;
        let p = count < k ? count++ : k - 1;
        while (p > 0 && before(x, j, src[base + best[p - 1]!]!, best[p - 1]!, largest)) {
          best[p] = best[p - 1]!;
          p--;
        }
        best[p] = j;
      }
    } else {
      const srt = sorted!;
      for (let j = 0; j < n; j++) srt[j] = src[base + j]!;
      srt.sort();
      const thr = srt[largest ? n - k : k - 1]!; // the k-th best value
      let count = 0;
      for (let j = 0; j < n; j++) if (valueBefore(src[base + j]!, thr, largest)) best[count++] = j;
      for (let j = 0; j < n && count < k; j++) {
        const x = src[base + j]!;
        if (!valueBefore(x, thr, largest) && !valueBefore(thr, x, largest)) best[count++] = j;
      }
      best.sort((i1, i2) => (before(src[base + i1]!, i1, src[base + i2]!, i2, largest) ? -1 : 1));
    }
    for (let t = 0; t < k; t++) {
      const j = best[t]!;
      values[r * k + t] = src[base + j]!;
      indices[r * k + t] = j;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

/** Decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", Alg. 2). */
function adamw(p: FArray, g: FArray, m: FArray, v: FArray, n: number,
  lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number): void {
  checkDims('adamw', { n });
  for (const [name, arr] of [['p', p], ['g', g], ['m', m], ['v', v]] as const) checkLen('adamw', name, arr, n);
  for (let i = 0; i < n; i++) {
    const gi = g[i]!;
    const mi = b1 * m[i]! + (1 - b1) * gi;
    const vi = b2 * v[i]! + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i]!;
    p[i] = pi - lr * (wd * pi + (mi / bc1) / (Math.sqrt(vi / bc2) + eps));
  }
}

export const jsBackend: Backend = {
  name: 'js',
  copy,
  cast,
  unary,
  unaryGrad,
  binary,
  compare,
  where,
  reduce,
  argReduce,
  matmul,
  softmax,
  softmaxGrad,
  rmsnorm,
  rmsnormGrad,
  rope,
  crossEntropy,
  crossEntropyGrad,
  attention,
  attentionRagged,
  attentionGrad,
  siluMul,
  siluMulGrad,
  indexSelect,
  indexAdd,
  gather,
  scatter,
  topk,
  adamw,
};
