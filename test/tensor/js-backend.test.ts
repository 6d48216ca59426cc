/**
 * Tests of the pure-TypeScript reference backend (src/tensor/backends/js.ts).
 *
 * Every kernel is compared with an independent naive computation written differently here (full
 * score matrices, unravelled multi-indices, explicit sorts, complex rotations), gradients against
 * central finite differences in f64, and bf16/f16 against known bit patterns and a brute-force
 * nearest-value search. Reference values quoted as literals were computed with mpmath (30 digits).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  jsBackend as K, f32ToBf16Bits, bf16BitsToF32, f32ToF16Bits, f16BitsToF32, erf, erfc,
} from '../../src/tensor/backends/js.js';
import type { FArray, Strided, UnaryGradOp, UnaryOp } from '../../src/tensor/backend.js';
import { DTypeError, ShapeError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/random.js';

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/** Seeded uniform generator (the engine's Rng) so failures reproduce. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}
function randn(n: number, seed: number, scale = 1): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e)) { assert.ok(Number.isNaN(a), `${what}[${i}]: expected NaN, got ${a}`); continue; }
    if (!Number.isFinite(e)) { assert.equal(a, e, `${what}[${i}]`); continue; }
    const err = Math.abs(a - e);
    assert.ok(err <= tol * (1 + Math.abs(e)), `${what}[${i}]: got ${a}, expected ${e} (err ${err}, tol ${tol})`);
  }
}

/** Central finite-difference gradient of a scalar function of x (x is perturbed in place and restored). */
function numGrad(f: () => number, x: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + h; const fp = f();
    x[i] = x0 - h; const fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Offset of a flat (row-major) index of `shape` in a strided operand, by unravelling. */
function stridedAt(flat: number, shape: readonly number[], offset: number, strides: readonly number[]): number {
  let off = offset;
  for (let d = shape.length - 1; d >= 0; d--) {
    const i = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
    off += i * strides[d]!;
  }
  return off;
}

// ---------------------------------------------------------------------------------------------
// bf16 / f16
// ---------------------------------------------------------------------------------------------

/** Brute force: every finite non-negative value of the format, ascending, with its bits. */
function finiteTable(toNum: (h: number) => number, maxBits: number): { v: Float64Array; bits: Uint16Array } {
  const v = new Float64Array(maxBits + 1);
  const bits = new Uint16Array(maxBits + 1);
  for (let h = 0; h <= maxBits; h++) { v[h] = toNum(h); bits[h] = h; }
  return { v, bits };
}

/** Nearest representable value by binary search; ties to the even bit pattern; above max + ulp/2 (or at it, if max is odd) = infinity. */
function nearestBits(x: number, table: { v: Float64Array; bits: Uint16Array }, infBits: number, signBit: number): number {
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  const v = table.v;
  const last = v.length - 1;
  const maxUlp = v[last]! - v[last - 1]!;
  const limit = v[last]! + maxUlp / 2;
  if (a > limit || (a === limit && (table.bits[last]! & 1) === 1)) return sign | infBits;
  let lo = 0, hi = last;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (v[mid]! <= a) lo = mid; else hi = mid; }
  if (a >= v[last]!) return sign | table.bits[last]!;
  const dl = a - v[lo]!, dh = v[hi]! - a;
  if (dl < dh) return sign | table.bits[lo]!;
  if (dh < dl) return sign | table.bits[hi]!;
  return sign | ((table.bits[lo]! & 1) === 0 ? table.bits[lo]! : table.bits[hi]!);
}

describe('bf16 / f16 conversions', () => {
  it('bf16 known bit patterns', () => {
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(f32ToBf16Bits(-2), 0xc000);
    assert.equal(f32ToBf16Bits(0), 0x0000);
    assert.equal(f32ToBf16Bits(-0), 0x8000);
    assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
    assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
    assert.equal(f32ToBf16Bits(3.140625), 0x4049);
    // Ties to even: 1 + 2^-8 is halfway between 0x3f80 and 0x3f81; 1 + 3*2^-8 halfway between 0x3f81 and 0x3f82.
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
    // f32 max rounds up to infinity in bf16.
    assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80);
    // Subnormals: 2^-133 is bf16's smallest subnormal; the smallest f32 subnormal rounds to 0.
    assert.equal(f32ToBf16Bits(2 ** -133), 0x0001);
    assert.equal(f32ToBf16Bits(2 ** -149), 0x0000);
    assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
    assert.equal(bf16BitsToF32(0x3f80), 1);
    assert.equal(bf16BitsToF32(0xff80), -Infinity);
    const nan = f32ToBf16Bits(NaN);
    assert.equal(nan & 0x7f80, 0x7f80);
    assert.ok((nan & 0x0040) !== 0, 'quiet NaN bit set');
    assert.ok(Number.isNaN(bf16BitsToF32(nan)));
  });

  it('f16 known bit patterns', () => {
    assert.equal(f32ToF16Bits(1), 0x3c00);
    assert.equal(f32ToF16Bits(-2), 0xc000);
    assert.equal(f32ToF16Bits(65504), 0x7bff);
    assert.equal(f32ToF16Bits(65519), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // the tie above max goes to even = infinity
    assert.equal(f32ToF16Bits(1e6), 0x7c00);
    assert.equal(f32ToF16Bits(-1e6), 0xfc00);
    assert.equal(f32ToF16Bits(2 ** -14), 0x0400); // smallest normal
    assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie to even: 0
    assert.equal(f32ToF16Bits(1.5 * 2 ** -25), 0x0001);
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 ulps: even
    assert.equal(f32ToF16Bits(5 * 2 ** -25), 0x0002); // tie between 2 and 3 ulps: even
    assert.equal(f32ToF16Bits(0.1), 0x2e66);
    assert.equal(f32ToF16Bits(1 / 3), 0x3555);
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(f32ToF16Bits(-0), 0x8000);
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
    assert.equal(f16BitsToF32(0x3555), 0.333251953125);
    assert.equal(f16BitsToF32(0xfc00), -Infinity);
    assert.ok(Object.is(f16BitsToF32(0x8000), -0));
    const nan = f32ToF16Bits(NaN);
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.ok((nan & 0x0200) !== 0, 'quiet NaN bit set');
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  });

  it('every finite bf16 and f16 pattern round-trips', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7fff) < 0x7f80) assert.equal(f32ToBf16Bits(bf16BitsToF32(h)), h, `bf16 ${h.toString(16)}`);
      if ((h & 0x7fff) <= 0x7c00) assert.equal(f32ToF16Bits(f16BitsToF32(h)), h, `f16 ${h.toString(16)}`);
    }
  });

  it('random f32 and f64 values round like a brute-force nearest search', () => {
    const bfTable = finiteTable(bf16BitsToF32, 0x7f7f);
    const hTable = finiteTable(f16BitsToF32, 0x7bff);
    const r = rng(7);
    const bits = new Uint32Array(1);
    const f32 = new Float32Array(bits.buffer);
    for (let t = 0; t < 20000; t++) {
      // f32 values with exponents across the whole range, and doubles (not f32) near f16's range.
      bits[0] = Math.floor(r() * 2 ** 32);
      const x32 = f32[0]!;
      const x64 = (r() * 2 - 1) * 2 ** Math.floor(r() * 50 - 30);
      for (const x of [x32, x64]) {
        if (Number.isNaN(x)) continue;
        assert.equal(f32ToBf16Bits(x), nearestBits(x, bfTable, 0x7f80, 0x8000), `bf16 of ${x}`);
        assert.equal(f32ToF16Bits(x), nearestBits(x, hTable, 0x7c00, 0x8000), `f16 of ${x}`);
      }
    }
  });

  it('f64 sources round once (no double rounding through f32)', () => {
    // 1 + 2^-8 + 2^-40 is just above the bf16 midpoint; as f32 it would become the midpoint and round down.
    assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -40), 0x3f81);
    assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -40), 0x3c01);
    const d = new Uint16Array(2);
    K.cast(d, 'bf16', new Float64Array([1 + 2 ** -8 + 2 ** -40, -(1 + 2 ** -8)]), 'f64', 2);
    assert.deepEqual([...d], [0x3f81, 0xbf80]);
    K.cast(d, 'f16', new Float64Array([1 + 2 ** -11 + 2 ** -40, 70000]), 'f64', 2);
    assert.deepEqual([...d], [0x3c01, 0x7c00]);
  });
});

// ---------------------------------------------------------------------------------------------
// cast
// ---------------------------------------------------------------------------------------------

describe('cast', () => {
  it('float -> int truncates toward zero, NaN -> 0, saturates', () => {
    const d = new Int32Array(6);
    K.cast(d, 'i32', new Float32Array([2.7, -2.7, NaN, 3e9, -3e9, -0.5]), 'f32', 6);
    assert.deepEqual([...d], [2, -2, 0, 2147483647, -2147483648, 0]);
    const u = new Uint8Array(4);
    K.cast(u, 'u8', new Float64Array([300, -5, 254.9, NaN]), 'f64', 4);
    assert.deepEqual([...u], [255, 0, 254, 0]);
  });
  it('int narrowing wraps; bool is nonzero', () => {
    const u = new Uint8Array(3);
    K.cast(u, 'u8', new Int32Array([257, -1, 7]), 'i32', 3);
    assert.deepEqual([...u], [1, 255, 7]);
    const b = new Uint8Array(5);
    K.cast(b, 'bool', new Float32Array([0, -0, NaN, 0.5, -3]), 'f32', 5);
    assert.deepEqual([...b], [0, 0, 1, 1, 1]);
    K.cast(b, 'bool', new Int32Array([0, 2, -1, 0, 256]), 'i32', 5);
    assert.deepEqual([...b], [0, 1, 1, 0, 1]);
    const f = new Float32Array(3);
    K.cast(f, 'f32', new Uint8Array([0, 1, 255]), 'bool', 3);
    assert.deepEqual([...f], [0, 1, 255]);
  });
  it('i64 <-> i32 / f32 / f64', () => {
    const i64 = new BigInt64Array([2n ** 53n + 1n, -5n, 2n ** 60n + 2n ** 36n + 1n, 2n ** 32n + 3n]);
    const f64 = new Float64Array(4);
    K.cast(f64, 'f64', i64, 'i64', 4);
    assert.deepEqual([...f64], [2 ** 53, -5, 2 ** 60 + 2 ** 36, 2 ** 32 + 3]);
    const f32 = new Float32Array(4);
    K.cast(f32, 'f32', i64, 'i64', 4);
    // 2^60 + 2^36 + 1 is above the f32 midpoint 2^60 + 2^36: rounds up to 2^60 + 2^37 (via f64 it would tie to 2^60).
    assert.equal(f32[2], 2 ** 60 + 2 ** 37);
    assert.equal(f32[1], -5);
    const i32 = new Int32Array(4);
    K.cast(i32, 'i32', i64, 'i64', 4);
    assert.equal(i32[1], -5);
    assert.equal(i32[3], 3); // wraps modulo 2^32
    const back = new BigInt64Array(3);
    K.cast(back, 'i64', new Float64Array([-3.9, 1e30, NaN]), 'f64', 3);
    assert.deepEqual([...back], [-3n, 2n ** 63n - 1n, 0n]);
    K.cast(back, 'i64', new Int32Array([-7, 0, 2147483647]), 'i32', 3);
    assert.deepEqual([...back], [-7n, 0n, 2147483647n]);
  });
  it('bf16 / f16 arrays to and from every float and int type', () => {
    const src = new Float32Array([1, -2.5, 65504, 1e-3, NaN]);
    const b = new Uint16Array(5), h = new Uint16Array(5);
    K.cast(b, 'bf16', src, 'f32', 5);
    K.cast(h, 'f16', src, 'f32', 5);
    for (let i = 0; i < 5; i++) {
      assert.equal(b[i], f32ToBf16Bits(src[i]!));
      assert.equal(h[i], f32ToF16Bits(src[i]!));
    }
    const f = new Float32Array(5), g = new Float64Array(5);
    K.cast(f, 'f32', b, 'bf16', 5);
    K.cast(g, 'f64', h, 'f16', 5);
    for (let i = 0; i < 4; i++) {
      assert.equal(f[i], bf16BitsToF32(b[i]!));
      assert.equal(g[i], f16BitsToF32(h[i]!));
    }
    assert.ok(Number.isNaN(f[4]!) && Number.isNaN(g[4]!));
    // f16 -> bf16 goes through the exact value: 65504 needs rounding to bf16's 8 bits (65536).
    const hb = new Uint16Array(5);
    K.cast(hb, 'bf16', h, 'f16', 5);
    assert.equal(hb[2], f32ToBf16Bits(65504));
    assert.equal(bf16BitsToF32(hb[2]!), 65536);
    const ints = new Int32Array(2);
    K.cast(ints, 'i32', new Uint16Array([f32ToF16Bits(-7.75), f32ToF16Bits(100.5)]), 'f16', 2);
    assert.deepEqual([...ints], [-7, 100]);
    const fromInt = new Uint16Array(1);
    K.cast(fromInt, 'bf16', new Int32Array([16777217]), 'i32', 1);
    assert.equal(fromInt[0], f32ToBf16Bits(16777216));
  });
  it('rejects unsupported pairs and wrong arrays with DTypeError', () => {
    assert.throws(() => K.cast(new Uint8Array(1), 'fp8e4m3', new Float32Array(1), 'f32', 1), DTypeError);
    assert.throws(() => K.cast(new Uint16Array(1), 'bf16', new BigInt64Array(1), 'i64', 1), DTypeError);
    assert.throws(() => K.cast(new Float64Array(1), 'f32', new Float32Array(1), 'f32', 1), DTypeError);
    assert.throws(() => K.cast(new Float32Array(1), 'f32', new Float64Array(1), 'f64', 2), ShapeError);
    K.cast(new Float32Array(0), 'f32', new Float64Array(0), 'f64', 0);
  });
});

// ---------------------------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------------------------

describe('copy', () => {
  it('transposes, broadcasts and offsets like an unravelled reference, for every array kind', () => {
    const shape = [2, 3, 4];
    const srcStrides = [1, 8, 2]; // a permuted view of a 24-element buffer at offset 1
    const kinds = [
      (n: number) => new Float32Array(n), (n: number) => new Float64Array(n), (n: number) => new Int32Array(n),
      (n: number) => new Uint16Array(n), (n: number) => new Uint8Array(n),
    ];
    for (const make of kinds) {
      const src = make(40);
      for (let i = 0; i < 40; i++) src[i] = (i * 7) % 50;
      const dst = make(24);
      K.copy({ data: dst, offset: 0, strides: [12, 4, 1] }, { data: src, offset: 1, strides: srcStrides }, shape);
      for (let f = 0; f < 24; f++) assert.equal(dst[f], src[stridedAt(f, shape, 1, srcStrides)], `${src.constructor.name}[${f}]`);
    }
    const big = new BigInt64Array([5n, -6n, 7n]);
    const bd = new BigInt64Array(6);
    K.copy({ data: bd, offset: 0, strides: [3, 1] }, { data: big, offset: 0, strides: [0, 1] }, [2, 3]);
    assert.deepEqual([...bd], [5n, -6n, 7n, 5n, -6n, 7n]);
    // A strided destination (dst into the middle of a bigger buffer).
    const wide = new Float64Array(12);
    K.copy({ data: wide, offset: 1, strides: [4, 1] }, { data: new Float64Array([1, 2, 3, 4, 5, 6]), offset: 0, strides: [3, 1] }, [2, 3]);
    assert.deepEqual([...wide], [0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0]);
  });
  it('0-d copies one element; zero-size copies nothing', () => {
    const d = new Float32Array(3);
    K.copy({ data: d, offset: 2, strides: [] }, { data: new Float32Array([9, 8]), offset: 1, strides: [] }, []);
    assert.deepEqual([...d], [0, 0, 8]);
    K.copy({ data: new Float32Array(0), offset: 0, strides: [3, 1] }, { data: new Float32Array(0), offset: 0, strides: [3, 1] }, [0, 3]);
    K.copy({ data: new Int32Array(0), offset: 0, strides: [1] }, { data: new Int32Array(0), offset: 0, strides: [1] }, [0]);
  });
  it('rejects mismatched kinds and out-of-range operands', () => {
    assert.throws(() => K.copy({ data: new Float32Array(2), offset: 0, strides: [1] }, { data: new Float64Array(2), offset: 0, strides: [1] }, [2]), DTypeError);
    assert.throws(() => K.copy({ data: new Float32Array(2), offset: 0, strides: [1] }, { data: new Float32Array(2), offset: 1, strides: [1] }, [2]), ShapeError);
    assert.throws(() => K.copy({ data: new Float32Array(2), offset: 0, strides: [1] }, { data: new Float32Array(2), offset: 0, strides: [1, 1] }, [2]), ShapeError);
  });
});

// ---------------------------------------------------------------------------------------------
// elementwise
// ---------------------------------------------------------------------------------------------

describe('erf and unary ops', () => {
  it('erf / erfc match mpmath to ~1e-15', () => {
    const cases: [number, number, number][] = [
      [1e-8, 1.1283791670955125599e-8, 0.99999998871620832904],
      [0.3, 0.32862675945912741619, 0.67137324054087258381],
      [0.5, 0.52049987781304653768, 0.47950012218695346232],
      [1, 0.84270079294971486934, 0.15729920705028513066],
      [1.5, 0.96610514647531072707, 0.033894853524689272933],
      [2, 0.99532226501895273416, 0.0046777349810472658379],
      [2.5, 0.99959304798255504106, 0.00040695201744495893956],
      [3.5, 0.99999925690162765859, 7.4309837234141274552e-7],
      [4.5, 0.99999999980338395585, 1.9661604415428874763e-10],
      [5.9, 0.9999999999999999281, 7.1904097835504777249e-17],
    ];
    for (const [x, e, c] of cases) {
      assert.ok(Math.abs(erf(x) - e) <= 2e-15 * e, `erf(${x}) = ${erf(x)} vs ${e}`);
      assert.ok(Math.abs(erf(-x) + e) <= 2e-15 * e, `erf(-${x})`);
      assert.ok(Math.abs(erfc(x) - c) <= (x >= 2 ? 2e-15 : 2e-13) * c, `erfc(${x}) = ${erfc(x)} vs ${c}`);
    }
    assert.equal(erf(0), 0);
    assert.equal(erf(Infinity), 1);
    assert.equal(erf(-Infinity), -1);
    assert.ok(Number.isNaN(erf(NaN)));
  });

  it('every op against its formula, in f64 and f32', () => {
    const x = new Float64Array([-3, -1.5, -0.5, -0, 0, 0.25, 0.75, 1, 2.5, 4]);
    const n = x.length;
    const refs: [UnaryOp, (v: number) => number, number?, number?][] = [
      ['neg', (v) => 0 - v], ['exp', (v) => Math.E ** v], ['log', (v) => Math.log(v)], ['sqrt', (v) => v ** 0.5],
      ['rsqrt', (v) => (Object.is(v, -0) ? -Infinity : v ** -0.5)] /* IEEE rSqrt(-0) = -inf, as torch.rsqrt */, ['abs', (v) => (v < 0 ? -v : v)], ['square', (v) => v ** 2],
      ['sigmoid', (v) => Math.exp(v) / (1 + Math.exp(v))], ['tanh', (v) => (Math.exp(2 * v) - 1) / (Math.exp(2 * v) + 1)],
      ['relu', (v) => (v > 0 ? v : 0)], ['silu', (v) => v * Math.exp(v) / (1 + Math.exp(v))],
      ['gelu_tanh', (v) => v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))) / 2],
      ['pow_scalar', (v) => v ** 3, 3], ['add_scalar', (v) => v + 0.5, 0.5], ['mul_scalar', (v) => v * -2, -2],
      ['clamp', (v) => (v < -1 ? -1 : v > 2 ? 2 : v), -1, 2],
    ];
    for (const [op, f, s, s2] of refs) {
      const y = new Float64Array(n);
      K.unary(op, y, x, n, s, s2);
      close(y, Array.from(x, f), 1e-14, op);
      const y32 = new Float32Array(n);
      K.unary(op, y32, new Float32Array(x), n, s, s2);
      close(y32, Array.from(x, (v) => Math.fround(f(v))), 0, `${op} f32`);
    }
    // Exact GELU against mpmath values of x * Phi(x), including the far left tail.
    const gx = new Float64Array([-6, -3, -1, -0.5, 0.5, 1, 3]);
    const ge = [-5.9195258702261888442e-9, -0.00404969409489028358, -0.15865525393145705141, -0.15426876936299344818,
      0.34573123063700655182, 0.84134474606854294859, 2.9959503059051097164];
    const gy = new Float64Array(7);
    K.unary('gelu', gy, gx, 7);
    for (let i = 0; i < 7; i++) assert.ok(Math.abs(gy[i]! - ge[i]!) <= 1e-14 * Math.abs(ge[i]!), `gelu(${gx[i]}) = ${gy[i]} vs ${ge[i]}`);
  });

  it('special values: NaN through relu/clamp, C pow rules, clamp with infinite bounds', () => {
    const y = new Float64Array(3);
    K.unary('relu', y, new Float64Array([NaN, -0, -1]), 3);
    assert.ok(Number.isNaN(y[0]!));
    assert.ok(Object.is(y[1], 0));
    K.unary('clamp', y, new Float64Array([NaN, -5, 5]), 3, -Infinity, 1);
    assert.ok(Number.isNaN(y[0]!));
    assert.deepEqual([...y.subarray(1)], [-5, 1]);
    K.unary('pow_scalar', y, new Float64Array([1, -1, 0]), 3, NaN);
    assert.equal(y[0], 1);
    assert.ok(Number.isNaN(y[1]!));
    K.unary('pow_scalar', y, new Float64Array([1, -1, 2]), 3, Infinity);
    assert.deepEqual([...y], [1, 1, Infinity]);
    K.unary('exp', new Float64Array(0), new Float64Array(0), 0);
    assert.throws(() => K.unary('clamp', y, y, 3, 0));
    assert.throws(() => K.unary('exp', y, new Float64Array(2), 3), ShapeError);
  });

  it('unaryGrad matches central differences of unary', () => {
    const x = new Float64Array([-3.1, -1.2, -0.4, 0.3, 0.9, 2.2, 4.1]);
    const dy = randn(x.length, 3);
    for (const op of ['sigmoid', 'tanh', 'relu', 'silu', 'gelu', 'gelu_tanh'] as UnaryGradOp[]) {
      const dx = new Float64Array(x.length);
      K.unaryGrad(op, dx, x, dy, x.length);
      const tmp = new Float64Array(x.length);
      const loss = (): number => { K.unary(op, tmp, x, x.length); return dot(tmp, dy); };
      close(dx, numGrad(loss, x), 1e-8, `${op}'`);
    }
    const dx = new Float64Array(1);
    K.unaryGrad('relu', dx, new Float64Array([0]), new Float64Array([1]), 1);
    assert.equal(dx[0], 0); // relu'(0) = 0, as PyTorch
  });
});

describe('binary, compare, where (strided, broadcast)', () => {
  const shape = [2, 3, 4];
  const aData = randn(40, 11, 3);
  const bData = randn(12, 12, 3);
  // a: a transposed view with offset; b: broadcast over dim 0 (stride 0) and dim 2 reads every other element.
  const a: Strided<Float64Array> = { data: aData, offset: 2, strides: [1, 12, 3] };
  const b: Strided<Float64Array> = { data: bData, offset: 0, strides: [0, 4, 1] };
  bData[3] = aData[stridedAt(3, shape, 2, a.strides)]!; // make one pair equal
  bData[5] = NaN;

  it('binary ops', () => {
    const ops: [Parameters<typeof K.binary>[0], (x: number, y: number) => number][] = [
      ['add', (x, y) => x + y], ['sub', (x, y) => x - y], ['mul', (x, y) => x * y], ['div', (x, y) => x / y],
      ['pow', (x, y) => (x === 1 ? 1 : Math.pow(Math.abs(x), y) * (x < 0 && Number.isInteger(y) && y % 2 !== 0 ? -1 : 1) * (x < 0 && !Number.isInteger(y) ? NaN : 1))],
      ['maximum', (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : x > y ? x : y)],
      ['minimum', (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : x < y ? x : y)],
    ];
    for (const [op, f] of ops) {
      const dst = new Float64Array(24);
      K.binary(op, dst, a, b, shape);
      const exp = new Float64Array(24);
      for (let i = 0; i < 24; i++) exp[i] = f(aData[stridedAt(i, shape, 2, a.strides)]!, bData[stridedAt(i, shape, 0, b.strides)]!);
      close(dst, exp, 1e-14, op);
    }
    // 0-d and empty shapes.
    const d0 = new Float32Array(1);
    K.binary('mul', d0, { data: new Float32Array([3]), offset: 0, strides: [] }, { data: new Float32Array([0, 4]), offset: 1, strides: [] }, []);
    assert.equal(d0[0], 12);
    K.binary('add', new Float32Array(0), { data: new Float32Array(0), offset: 0, strides: [1, 1] }, { data: new Float32Array(0), offset: 0, strides: [1, 1] }, [3, 0]);
    assert.throws(() => K.binary('add', new Float64Array(24), { ...a, offset: 20 }, b, shape), ShapeError);
  });

  it('compare: NaN compares false except ne', () => {
    const ops: [Parameters<typeof K.compare>[0], (x: number, y: number) => boolean][] = [
      ['eq', (x, y) => x === y], ['ne', (x, y) => !(x === y)], ['lt', (x, y) => x < y],
      ['le', (x, y) => x < y || x === y], ['gt', (x, y) => y < x], ['ge', (x, y) => y < x || x === y],
    ];
    for (const [op, f] of ops) {
      const dst = new Uint8Array(24);
      K.compare(op, dst, a, b, shape);
      for (let i = 0; i < 24; i++) {
        const x = aData[stridedAt(i, shape, 2, a.strides)]!, y = bData[stridedAt(i, shape, 0, b.strides)]!;
        assert.equal(dst[i], f(x, y) ? 1 : 0, `${op}(${x}, ${y})`);
      }
    }
    const eq = new Uint8Array(24);
    K.compare('eq', eq, a, b, shape);
    assert.equal(eq[3], 1);
  });

  it('where', () => {
    const cond = new Uint8Array([1, 0, 2, 0]);
    const dst = new Float64Array(24);
    K.where(dst, { data: cond, offset: 0, strides: [0, 0, 1] }, a, b, shape);
    for (let i = 0; i < 24; i++) {
      const pick = cond[i % 4]! !== 0;
      const e = pick ? aData[stridedAt(i, shape, 2, a.strides)]! : bData[stridedAt(i, shape, 0, b.strides)]!;
      assert.ok(Object.is(dst[i], e), `where[${i}]`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// reductions
// ---------------------------------------------------------------------------------------------

describe('reduce and argReduce', () => {
  it('sum / max / min over the middle axis', () => {
    const [outer, n, inner] = [3, 5, 4];
    const src = randn(outer * n * inner, 21, 10);
    for (const op of ['sum', 'max', 'min'] as const) {
      const dst = new Float64Array(outer * inner);
      K.reduce(op, dst, src, outer, n, inner);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const col: number[] = [];
          for (let j = 0; j < n; j++) col.push(src[o * n * inner + j * inner + i]!);
          const e = op === 'sum' ? col.reduce((s, v) => s + v, 0) : op === 'max' ? Math.max(...col) : Math.min(...col);
          assert.ok(Math.abs(dst[o * inner + i]! - e) <= 1e-12, `${op}[${o},${i}]`);
        }
      }
    }
  });
  it('empty axis and NaN', () => {
    const d = new Float32Array(2);
    K.reduce('sum', d, new Float32Array(0), 1, 0, 2);
    assert.deepEqual([...d], [0, 0]);
    K.reduce('max', d, new Float32Array(0), 2, 0, 1);
    assert.deepEqual([...d], [-Infinity, -Infinity]);
    K.reduce('min', d, new Float32Array(0), 2, 0, 1);
    assert.deepEqual([...d], [Infinity, Infinity]);
    K.reduce('max', d, new Float32Array([1, NaN, 2, 5, 3, -1]), 2, 3, 1);
    assert.ok(Number.isNaN(d[0]!));
    assert.equal(d[1], 5);
    K.reduce('min', d, new Float32Array([NaN, 1, 2, 5, 3, -1]), 2, 3, 1);
    assert.ok(Number.isNaN(d[0]!));
    assert.equal(d[1], -1);
    K.reduce('sum', new Float32Array(0), new Float32Array(0), 0, 5, 3);
  });
  it('f32 sums accumulate in f64 (rounded once)', () => {
    const src = new Float32Array([1, 2 ** -24, 2 ** -24, 2 ** -24, 2 ** -24]);
    const d = new Float32Array(1);
    K.reduce('sum', d, src, 1, 5, 1);
    assert.equal(d[0], Math.fround(1 + 4 * 2 ** -24)); // f32 accumulation would give exactly 1
  });
  it('argmax / argmin: first extreme, NaN the largest', () => {
    const d = new Int32Array(1);
    const run = (op: 'argmax' | 'argmin', vals: number[]): number => { K.argReduce(op, d, new Float64Array(vals), 1, vals.length, 1); return d[0]!; };
    assert.equal(run('argmax', [1, 3, 3, 2]), 1);
    assert.equal(run('argmin', [4, 1, 3, 1]), 1);
    assert.equal(run('argmax', [1, NaN, 5, NaN]), 1);
    assert.equal(run('argmin', [NaN, 2, -1, NaN]), 2);
    assert.equal(run('argmin', [NaN, NaN]), 0);
    assert.equal(run('argmax', [-Infinity, -Infinity]), 0);
    // [outer, n, inner] addressing against a naive scan.
    const [outer, n, inner] = [2, 4, 3];
    const src = randn(24, 5);
    const dst = new Int32Array(6);
    K.argReduce('argmax', dst, src, outer, n, inner);
    for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) {
      const col = Array.from({ length: n }, (_, j) => src[(o * n + j) * inner + i]!);
      assert.equal(dst[o * inner + i], col.indexOf(Math.max(...col)));
    }
    assert.throws(() => K.argReduce('argmax', new Int32Array(1), new Float64Array(0), 1, 0, 1), ShapeError);
    K.argReduce('argmax', new Int32Array(0), new Float64Array(0), 0, 0, 1);
  });
});

// ---------------------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------------------

describe('matmul', () => {
  it('every trans combination, padded leading dims, batch strides (incl. broadcast), accumulate', () => {
    const [batch, m, n, k] = [3, 4, 5, 6];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [aBS, bBS] of [[40, 50], [0, 50], [40, 0]] as const) {
          for (const accumulate of [false, true]) {
            const lda = (transA ? m : k) + 2; // padded rows
            const ldb = (transB ? k : n) + 1;
            const aOff = 3, bOff = 1, cOff = 2;
            const aRows = transA ? k : m, bRows = transB ? n : k;
            const a = randn(aOff + 2 * 40 + aRows * lda, 31);
            const b = randn(bOff + 2 * 50 + bRows * ldb, 32);
            const c = randn(cOff + batch * m * n, 33);
            const expected = Float64Array.from(c);
            const A = (bt: number, i: number, p: number): number => a[aOff + bt * aBS + (transA ? p * lda + i : i * lda + p)]!;
            const B = (bt: number, p: number, j: number): number => b[bOff + bt * bBS + (transB ? j * ldb + p : p * ldb + j)]!;
            for (let bt = 0; bt < batch; bt++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
              let s = 0;
              for (let p = 0; p < k; p++) s += A(bt, i, p) * B(bt, p, j);
              const at = cOff + (bt * m + i) * n + j;
              expected[at] = (accumulate ? expected[at]! : 0) + s;
            }
            K.matmul(c, cOff, a, aOff, aBS, lda, transA, b, bOff, bBS, ldb, transB, batch, m, n, k, accumulate);
            close(c, expected, 1e-13, `matmul tA=${transA} tB=${transB} bs=${aBS},${bBS} acc=${accumulate}`);
          }
        }
      }
    }
  });
  it('hand-checked 2x2 and f32 = f64 result rounded once', () => {
    const c = new Float64Array(4);
    K.matmul(c, 0, new Float64Array([1, 2, 3, 4]), 0, 0, 2, false, new Float64Array([5, 6, 7, 8]), 0, 0, 2, false, 1, 2, 2, 2, false);
    assert.deepEqual([...c], [19, 22, 43, 50]);
    const a = randn(12, 41), b = randn(20, 42);
    const c64 = new Float64Array(15), c32 = new Float32Array(15);
    const a32 = new Float32Array(a), b32 = new Float32Array(b);
    K.matmul(c64, 0, new Float64Array(a32), 0, 0, 4, false, new Float64Array(b32), 0, 0, 4, true, 1, 3, 5, 4, false);
    K.matmul(c32, 0, a32, 0, 0, 4, false, b32, 0, 0, 4, true, 1, 3, 5, 4, false);
    assert.deepEqual([...c32], Array.from(c64, Math.fround));
  });
  it('k = 0 gives zeros (or leaves C when accumulating); empty m/n/batch are no-ops', () => {
    const c = new Float64Array([1, 2, 3, 4]);
    K.matmul(c, 0, new Float64Array(0), 0, 0, 0, false, new Float64Array(0), 0, 0, 2, false, 1, 2, 2, 0, true);
    assert.deepEqual([...c], [1, 2, 3, 4]);
    K.matmul(c, 0, new Float64Array(0), 0, 0, 0, false, new Float64Array(0), 0, 0, 2, false, 1, 2, 2, 0, false);
    assert.deepEqual([...c], [0, 0, 0, 0]);
    K.matmul(new Float64Array(0), 0, new Float64Array(0), 0, 0, 3, false, new Float64Array(0), 0, 0, 3, false, 0, 0, 3, 3, false);
    assert.throws(() => K.matmul(c, 0, new Float64Array(3), 0, 0, 2, false, new Float64Array(4), 0, 0, 2, false, 1, 2, 2, 2, false), ShapeError);
  });
});

// ---------------------------------------------------------------------------------------------
// softmax, rmsnorm, rope, cross-entropy, SwiGLU
// ---------------------------------------------------------------------------------------------

describe('softmax', () => {
  it('softmax and log_softmax against exp / sum; stable for large inputs', () => {
    const [rows, cols] = [3, 7];
    const x = randn(rows * cols, 51, 4);
    const y = new Float64Array(rows * cols), ly = new Float64Array(rows * cols);
    K.softmax(y, x, rows, cols, false);
    K.softmax(ly, x, rows, cols, true);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const z = row.reduce((s, v) => s + Math.exp(v), 0);
      close(y.subarray(r * cols, (r + 1) * cols), row.map((v) => Math.exp(v) / z), 1e-14, `softmax row ${r}`);
      close(ly.subarray(r * cols, (r + 1) * cols), row.map((v) => v - Math.log(z)), 1e-14, `log_softmax row ${r}`);
    }
    const big = new Float64Array([1000, 1001, 999]);
    K.softmax(big, Float64Array.from(big), 1, 3, false);
    close(big, [Math.exp(-1) / (Math.exp(-1) + 1 + Math.exp(-2)), 1 / (Math.exp(-1) + 1 + Math.exp(-2)), Math.exp(-2) / (Math.exp(-1) + 1 + Math.exp(-2))], 1e-14, 'large');
    const withInf = new Float64Array(3);
    K.softmax(withInf, new Float64Array([-Infinity, 0, 0]), 1, 3, false);
    assert.deepEqual([...withInf], [0, 0.5, 0.5]);
    K.softmax(new Float64Array(0), new Float64Array(0), 2, 0, false);
  });
  it('softmaxGrad (both kinds) against finite differences', () => {
    const [rows, cols] = [2, 5];
    const x = randn(rows * cols, 52, 2);
    const dy = randn(rows * cols, 53);
    for (const log of [false, true]) {
      const y = new Float64Array(rows * cols), dx = new Float64Array(rows * cols);
      K.softmax(y, x, rows, cols, log);
      K.softmaxGrad(dx, y, dy, rows, cols, log);
      const tmp = new Float64Array(rows * cols);
      const loss = (): number => { K.softmax(tmp, x, rows, cols, log); return dot(tmp, dy); };
      close(dx, numGrad(loss, x), 1e-8, log ? 'log_softmax grad' : 'softmax grad');
    }
  });
});

describe('rmsnorm', () => {
  const [rows, cols, eps] = [3, 6, 1e-5];
  const x = randn(rows * cols, 61, 2);
  const w = randn(cols, 62);
  it('forward against mean of squares', () => {
    const y = new Float64Array(rows * cols), rstd = new Float64Array(rows);
    K.rmsnorm(y, rstd, x, w, rows, cols, eps);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / cols + eps);
      assert.ok(Math.abs(rstd[r]! - 1 / rms) < 1e-14);
      close(y.subarray(r * cols, (r + 1) * cols), row.map((v, j) => (v / rms) * w[j]!), 1e-14, `rmsnorm row ${r}`);
    }
    // Hand-checked: x = [3, 4], w = [1, 2], eps = 0: rms = sqrt(12.5).
    const y2 = new Float64Array(2), r2 = new Float64Array(1);
    K.rmsnorm(y2, r2, new Float64Array([3, 4]), new Float64Array([1, 2]), 1, 2, 0);
    close(y2, [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)], 1e-15, 'hand');
  });
  it('rmsnormGrad: dx and dw against finite differences', () => {
    const dy = randn(rows * cols, 63);
    const y = new Float64Array(rows * cols), rstd = new Float64Array(rows);
    K.rmsnorm(y, rstd, x, w, rows, cols, eps);
    const dx = new Float64Array(rows * cols), dw = new Float64Array(cols).fill(99);
    K.rmsnormGrad(dx, dw, dy, x, w, rstd, rows, cols);
    const tmpY = new Float64Array(rows * cols), tmpR = new Float64Array(rows);
    const loss = (): number => { K.rmsnorm(tmpY, tmpR, x, w, rows, cols, eps); return dot(tmpY, dy); };
    close(dx, numGrad(loss, x), 1e-8, 'dx');
    close(dw, numGrad(loss, w), 1e-8, 'dw'); // also shows dw is written, not accumulated onto 99
  });
});

describe('rope', () => {
  const [T, H, D, R] = [3, 2, 10, 8];
  const P = 6;
  const half = R / 2;
  const cos = new Float64Array(P * half), sin = new Float64Array(P * half);
  for (let p = 0; p < P; p++) for (let i = 0; i < half; i++) {
    const th = p * Math.pow(10000, (-2 * i) / R);
    cos[p * half + i] = Math.cos(th);
    sin[p * half + i] = Math.sin(th);
  }
  const pos = new Int32Array([5, 0, 2]);
  const x = randn(T * H * D, 71);

  it("'interleaved' equals multiplying complex pairs by e^{i theta}", () => {
    const y = new Float64Array(T * H * D);
    K.rope(y, x, cos, sin, pos, T, H, D, R, 'interleaved', false);
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const base = (t * H + h) * D;
      for (let i = 0; i < half; i++) {
        const th = pos[t]! * Math.pow(10000, (-2 * i) / R);
        // (re + i im) * (cos th + i sin th)
        const re = x[base + 2 * i]!, im = x[base + 2 * i + 1]!;
        const ore = re * Math.cos(th) - im * Math.sin(th), oim = re * Math.sin(th) + im * Math.cos(th);
        assert.ok(Math.abs(y[base + 2 * i]! - ore) < 1e-14 && Math.abs(y[base + 2 * i + 1]! - oim) < 1e-14, `t${t} h${h} pair ${i}`);
      }
      for (let j = R; j < D; j++) assert.equal(y[base + j], x[base + j]);
    }
  });
  it("'half' equals x*cos + rotate_half(x)*sin", () => {
    const y = new Float64Array(T * H * D);
    K.rope(y, x, cos, sin, pos, T, H, D, R, 'half', false);
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const base = (t * H + h) * D;
      for (let d = 0; d < R; d++) {
        const i = d % half;
        const th = pos[t]! * Math.pow(10000, (-2 * i) / R);
        const rot = d < half ? -x[base + d + half]! : x[base + d - half]!; // rotate_half
        const e = x[base + d]! * Math.cos(th) + rot * Math.sin(th);
        assert.ok(Math.abs(y[base + d]! - e) < 1e-14, `t${t} h${h} d${d}`);
      }
      for (let j = R; j < D; j++) assert.equal(y[base + j], x[base + j]);
    }
  });
  it('inverse undoes the rotation; in place works; bad positions are rejected', () => {
    for (const layout of ['half', 'interleaved'] as const) {
      const y = Float64Array.from(x);
      K.rope(y, y, cos, sin, pos, T, H, D, R, layout, false);
      assert.ok(y.some((v, i) => Math.abs(v - x[i]!) > 1e-3), 'rotation changed something');
      K.rope(y, y, cos, sin, pos, T, H, D, R, layout, true);
      close(y, x, 1e-14, `${layout} inverse`);
    }
    assert.throws(() => K.rope(new Float64Array(T * H * D), x, cos, sin, new Int32Array([6, 0, 0]), T, H, D, R, 'half', false), ShapeError);
    assert.throws(() => K.rope(new Float64Array(T * H * D), x, cos, sin, pos, T, H, D, 7, 'half', false), ShapeError);
    K.rope(new Float64Array(0), new Float64Array(0), cos, sin, new Int32Array(0), 0, H, D, R, 'half', false);
  });
});

describe('cross-entropy', () => {
  const [rows, V, ignore] = [4, 6, -100];
  const logits = randn(rows * V, 81, 3);
  const targets = new Int32Array([2, -100, 0, 5]);
  it('loss = logsumexp - logit[target]; ignored rows get 0 but keep lse', () => {
    const loss = new Float64Array(rows), lse = new Float64Array(rows);
    K.crossEntropy(loss, lse, logits, targets, rows, V, ignore);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(logits.subarray(r * V, (r + 1) * V));
      const l = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
      assert.ok(Math.abs(lse[r]! - l) < 1e-14);
      assert.ok(Math.abs(loss[r]! - (targets[r] === ignore ? 0 : l - row[targets[r]!]!)) < 1e-14);
    }
    // Hand-checked: uniform logits over 4 classes -> loss log 4.
    const l1 = new Float64Array(1), s1 = new Float64Array(1);
    K.crossEntropy(l1, s1, new Float64Array([7, 7, 7, 7]), new Int32Array([3]), 1, 4, -1);
    assert.ok(Math.abs(l1[0]! - Math.log(4)) < 1e-15);
  });
  it('crossEntropyGrad against finite differences of sum(dloss * loss)', () => {
    const dloss = randn(rows, 82);
    const loss = new Float64Array(rows), lse = new Float64Array(rows), dl = new Float64Array(rows * V).fill(7);
    K.crossEntropy(loss, lse, logits, targets, rows, V, ignore);
    K.crossEntropyGrad(dl, logits, lse, targets, dloss, rows, V, ignore);
    const f = (): number => { K.crossEntropy(loss, lse, logits, targets, rows, V, ignore); return dot(loss, dloss); };
    close(dl, numGrad(f, logits), 1e-8, 'dlogits');
    for (let j = 0; j < V; j++) assert.equal(dl[V + j], 0); // ignored row zeroed
  });
});

describe('siluMul (SwiGLU)', () => {
  it('forward and gradients', () => {
    const n = 9;
    const a = randn(n, 91, 4), b = randn(n, 92, 2), dy = randn(n, 93);
    const y = new Float64Array(n);
    K.siluMul(y, a, b, n);
    close(y, Array.from(a, (v, i) => (v / (1 + Math.exp(-v))) * b[i]!), 1e-14, 'siluMul');
    const da = new Float64Array(n), db = new Float64Array(n);
    K.siluMulGrad(da, db, a, b, dy, n);
    const tmp = new Float64Array(n);
    const loss = (): number => { K.siluMul(tmp, a, b, n); return dot(tmp, dy); };
    close(da, numGrad(loss, a), 1e-8, 'da');
    close(db, numGrad(loss, b), 1e-8, 'db');
  });
});

// ---------------------------------------------------------------------------------------------
// attention
// ---------------------------------------------------------------------------------------------

interface AttnCase {
  B: number; Hq: number; Hkv: number; Sq: number; Sk: number; Dk: number; Dv: number; causal: boolean;
  mask: Strided<Float64Array> | null; scale: number;
}

/** Naive reference: the full [Sq, Sk] score matrix per (b, h), then softmax, then P @ V. */
function attentionReference(c: AttnCase, q: Float64Array, k: Float64Array, v: Float64Array): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(c.B * c.Hq * c.Sq * c.Dv);
  const lse = new Float64Array(c.B * c.Hq * c.Sq);
  const rep = c.Hq / c.Hkv;
  for (let b = 0; b < c.B; b++) for (let h = 0; h < c.Hq; h++) {
    const kvh = (h - (h % rep)) / rep;
    const S: number[][] = [];
    for (let i = 0; i < c.Sq; i++) {
      S.push([]);
      for (let j = 0; j < c.Sk; j++) {
        let s = 0;
        for (let d = 0; d < c.Dk; d++) s += q[(((b * c.Hq + h) * c.Sq + i) * c.Dk) + d]! * k[(((b * c.Hkv + kvh) * c.Sk + j) * c.Dk) + d]!;
        s *= c.scale;
        if (c.mask) {
          const m = c.mask;
          s += m.data[m.offset + b * m.strides[0]! + h * m.strides[1]! + i * m.strides[2]! + j * m.strides[3]!]!;
        }
        const offsetQ = c.Sk - c.Sq; // query i sits at absolute position i + Sk - Sq
        if (c.causal && j > i + offsetQ) s = -Infinity;
        S[i]!.push(s);
      }
    }
    for (let i = 0; i < c.Sq; i++) {
      const row = S[i]!;
      const mx = Math.max(...row);
      const r = (b * c.Hq + h) * c.Sq + i;
      if (mx === -Infinity) { lse[r] = -Infinity; continue; } // out stays 0
      const e = row.map((s) => Math.exp(s - mx));
      const z = e.reduce((x, y) => x + y, 0);
      lse[r] = mx + Math.log(z);
      for (let d = 0; d < c.Dv; d++) {
        let acc = 0;
        for (let j = 0; j < c.Sk; j++) acc += (e[j]! / z) * v[(((b * c.Hkv + kvh) * c.Sk + j) * c.Dv) + d]!;
        out[r * c.Dv + d] = acc;
      }
    }
  }
  return { out, lse };
}

function attnInputs(c: AttnCase, seed: number): { q: Float64Array; k: Float64Array; v: Float64Array } {
  return {
    q: randn(c.B * c.Hq * c.Sq * c.Dk, seed, 1.5),
    k: randn(c.B * c.Hkv * c.Sk * c.Dk, seed + 1, 1.5),
    v: randn(c.B * c.Hkv * c.Sk * c.Dv, seed + 2),
  };
}

function runAttention(c: AttnCase, q: Float64Array, k: Float64Array, v: Float64Array): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(c.B * c.Hq * c.Sq * c.Dv).fill(NaN);
  const lse = new Float64Array(c.B * c.Hq * c.Sq).fill(NaN);
  K.attention(out, lse, q, k, v, c.mask, c.B, c.Hq, c.Hkv, c.Sq, c.Sk, c.Dk, c.Dv, c.scale, c.causal);
  return { out, lse };
}

/** Mask data with some -Infinity entries; broadcast through zero strides. */
function keyPaddingMask(B: number, Sk: number): Strided<Float64Array> {
  const data = new Float64Array(B * Sk);
  for (let j = 0; j < Sk; j++) data[j] = j === 1 ? -Infinity : 0.3 * j; // batch 0: key 1 masked
  for (let j = 0; j < Sk; j++) data[Sk + j] = j >= Sk - 2 ? -Infinity : -0.2 * j; // batch 1: last two masked
  return { data, offset: 0, strides: [Sk, 0, 0, 1] }; // [B, 1, 1, Sk]
}

const attnCases: [string, AttnCase][] = [
  ['plain MHA', { B: 1, Hq: 2, Hkv: 2, Sq: 4, Sk: 4, Dk: 3, Dv: 3, causal: false, mask: null, scale: 0.5 }],
  ['causal, Sq < Sk (decode-style)', { B: 2, Hq: 2, Hkv: 2, Sq: 3, Sk: 7, Dk: 4, Dv: 4, causal: true, mask: null, scale: 0.5 }],
  ['GQA Hq=4 Hkv=2, Dk != Dv, causal', { B: 1, Hq: 4, Hkv: 2, Sq: 5, Sk: 5, Dk: 6, Dv: 3, causal: true, mask: null, scale: 1 / Math.sqrt(6) }],
  ['additive key-padding mask broadcast over heads and queries', { B: 2, Hq: 4, Hkv: 2, Sq: 3, Sk: 6, Dk: 3, Dv: 5, causal: false, mask: keyPaddingMask(2, 6), scale: 0.7 }],
  ['causal, Sq > Sk: leading rows see no key', { B: 1, Hq: 2, Hkv: 1, Sq: 5, Sk: 3, Dk: 2, Dv: 2, causal: true, mask: null, scale: 1 }],
];

describe('attention', () => {
  for (const [name, c] of attnCases) {
    it(`forward matches the full-matrix reference: ${name}`, () => {
      const { q, k, v } = attnInputs(c, 101);
      const got = runAttention(c, q, k, v);
      const ref = attentionReference(c, q, k, v);
      close(got.out, ref.out, 1e-13, 'out');
      close(got.lse, ref.lse, 1e-13, 'lse');
    });
  }

  it('a [Sq, Sk] mask with an offset, and fully masked rows (out 0, lse -Infinity)', () => {
    const c: AttnCase = { B: 1, Hq: 4, Hkv: 2, Sq: 3, Sk: 4, Dk: 2, Dv: 3, causal: true, mask: null, scale: 0.9 };
    const data = new Float64Array(2 + 3 * 4);
    const m = randn(12, 111);
    for (let j = 0; j < 4; j++) m[4 + j] = -Infinity; // query row 1: everything masked
    data.set(m, 2);
    c.mask = { data, offset: 2, strides: [0, 0, 4, 1] };
    const { q, k, v } = attnInputs(c, 112);
    const got = runAttention(c, q, k, v);
    const ref = attentionReference(c, q, k, v);
    close(got.out, ref.out, 1e-13, 'out');
    close(got.lse, ref.lse, 1e-13, 'lse');
    for (let h = 0; h < 4; h++) {
      assert.equal(got.lse[h * 3 + 1], -Infinity);
      for (let d = 0; d < 3; d++) assert.equal(got.out[(h * 3 + 1) * 3 + d], 0);
    }
  });

  it('hand-checked: one query, two keys', () => {
    // s = [0, ln 3] -> p = [1/4, 3/4]; out = 0.25*v0 + 0.75*v1.
    const out = new Float64Array(2), lse = new Float64Array(1);
    K.attention(out, lse, new Float64Array([1]), new Float64Array([0, Math.log(3)]), new Float64Array([4, 0, 0, 8]), null,
      1, 1, 1, 1, 2, 1, 2, 1, false);
    close(out, [1, 6], 1e-15, 'out');
    close(lse, [Math.log(4)], 1e-15, 'lse');
  });

  it('f32 result equals the f64 result rounded once', () => {
    const c = attnCases[2]![1];
    const { q, k, v } = attnInputs(c, 121);
    const [q32, k32, v32] = [new Float32Array(q), new Float32Array(k), new Float32Array(v)];
    const ref = runAttention(c, new Float64Array(q32), new Float64Array(k32), new Float64Array(v32));
    const out = new Float32Array(ref.out.length), lse = new Float32Array(ref.lse.length);
    K.attention(out, lse, q32, k32, v32, null, c.B, c.Hq, c.Hkv, c.Sq, c.Sk, c.Dk, c.Dv, c.scale, c.causal);
    assert.deepEqual([...out], Array.from(ref.out, Math.fround));
    assert.deepEqual([...lse], Array.from(ref.lse, Math.fround));
  });

  it('rejects Hq not a multiple of Hkv; empty sizes are no-ops', () => {
    assert.throws(() => K.attention(new Float64Array(3), new Float64Array(3), new Float64Array(3), new Float64Array(2), new Float64Array(2), null,
      1, 3, 2, 1, 1, 1, 1, 1, false), ShapeError);
    K.attention(new Float64Array(0), new Float64Array(0), new Float64Array(0), new Float64Array(0), new Float64Array(0), null, 0, 2, 1, 3, 3, 4, 4, 1, true);
    const out = new Float64Array(4), lse = new Float64Array(2);
    K.attention(out, lse, new Float64Array(8), new Float64Array(0), new Float64Array(0), null, 1, 1, 1, 2, 0, 4, 2, 1, false);
    assert.deepEqual([...out], [0, 0, 0, 0]);
    assert.deepEqual([...lse], [-Infinity, -Infinity]);
  });

  for (const [name, c] of [...attnCases.slice(1), ['fully masked query row', {
    B: 1, Hq: 2, Hkv: 1, Sq: 2, Sk: 3, Dk: 2, Dv: 3, causal: false, scale: 0.8,
    mask: { data: new Float64Array([0.1, -0.4, 0.2, -Infinity, -Infinity, -Infinity]), offset: 0, strides: [0, 0, 3, 1] },
  }] as [string, AttnCase]]) {
    it(`attentionGrad matches finite differences: ${name}`, () => {
      const { q, k, v } = attnInputs(c, 131);
      const dout = randn(c.B * c.Hq * c.Sq * c.Dv, 134);
      const { out, lse } = runAttention(c, q, k, v);
      const dq = new Float64Array(q.length).fill(5), dk = new Float64Array(k.length).fill(5), dv = new Float64Array(v.length).fill(5);
      K.attentionGrad(dq, dk, dv, dout, q, k, v, out, lse, c.mask, c.B, c.Hq, c.Hkv, c.Sq, c.Sk, c.Dk, c.Dv, c.scale, c.causal);
      const loss = (): number => dot(runAttention(c, q, k, v).out, dout);
      close(dq, numGrad(loss, q), 1e-7, 'dq');
      close(dk, numGrad(loss, k), 1e-7, 'dk');
      close(dv, numGrad(loss, v), 1e-7, 'dv');
    });
  }
});

// ---------------------------------------------------------------------------------------------
// indexing
// ---------------------------------------------------------------------------------------------

describe('indexSelect, indexAdd, gather, scatter', () => {
  const [outer, nSrc, inner] = [2, 5, 3];
  it('indexSelect on float, int and bigint arrays', () => {
    const idx = new Int32Array([4, 0, 4, 2]);
    const srcF = randn(outer * nSrc * inner, 141);
    for (const src of [srcF, Int32Array.from(srcF, (v) => Math.round(v * 100))]) {
      const dst = new (src.constructor as Float64ArrayConstructor)(outer * 4 * inner);
      K.indexSelect(dst, src, idx, outer, nSrc, 4, inner);
      for (let o = 0; o < outer; o++) for (let j = 0; j < 4; j++) for (let i = 0; i < inner; i++) {
        assert.equal(dst[o * 12 + j * 3 + i], src[o * 15 + idx[j]! * 3 + i]);
      }
    }
    const big = new BigInt64Array([10n, 11n, 12n]);
    const bd = new BigInt64Array(2);
    K.indexSelect(bd, big, new Int32Array([2, 0]), 1, 3, 2, 1);
    assert.deepEqual([...bd], [12n, 10n]);
    assert.throws(() => K.indexSelect(new Float64Array(12), srcF, new Int32Array([5, 0]), outer, nSrc, 2, inner), ShapeError);
  });
  it('indexAdd accumulates repeated indices', () => {
    const dst = new Float64Array(outer * nSrc * inner).fill(1);
    const src = randn(outer * 3 * inner, 142);
    const idx = new Int32Array([1, 3, 1]);
    const exp = Float64Array.from(dst);
    for (let o = 0; o < outer; o++) for (let j = 0; j < 3; j++) for (let i = 0; i < inner; i++) exp[o * 15 + idx[j]! * 3 + i]! += src[o * 9 + j * 3 + i]!;
    K.indexAdd(dst, src, idx, outer, nSrc, 3, inner);
    close(dst, exp, 1e-15, 'indexAdd');
  });
  it('gather and scatter (assign: later j wins; accumulate: sums)', () => {
    const nIdx = 4;
    const r = rng(143);
    const idx = Int32Array.from({ length: outer * nIdx * inner }, () => Math.floor(r() * nSrc));
    const src = randn(outer * nSrc * inner, 144);
    const g = new Float64Array(outer * nIdx * inner);
    K.gather(g, src, idx, outer, nSrc, nIdx, inner);
    for (let o = 0; o < outer; o++) for (let j = 0; j < nIdx; j++) for (let i = 0; i < inner; i++) {
      const f = (o * nIdx + j) * inner + i;
      assert.equal(g[f], src[(o * nSrc + idx[f]!) * inner + i]);
    }
    const gi = new Int32Array(g.length);
    K.gather(gi, Int32Array.from(src, (v) => Math.round(v * 1000)), idx, outer, nSrc, nIdx, inner);
    assert.deepEqual([...gi], Array.from(g, (v) => Math.round(v * 1000)));

    const upd = randn(outer * nIdx * inner, 145);
    for (const accumulate of [false, true]) {
      const dst = new Float64Array(outer * nSrc * inner).fill(-1);
      const exp = Float64Array.from(dst);
      const lastWriter = new Map<number, number>();
      for (let o = 0; o < outer; o++) for (let j = 0; j < nIdx; j++) for (let i = 0; i < inner; i++) {
        const f = (o * nIdx + j) * inner + i;
        const t = (o * nSrc + idx[f]!) * inner + i;
        if (accumulate) exp[t]! += upd[f]!;
        else lastWriter.set(t, f);
      }
      for (const [t, f] of lastWriter) exp[t] = upd[f]!;
      K.scatter(dst, upd, idx, outer, nSrc, nIdx, inner, accumulate);
      close(dst, exp, 1e-15, `scatter acc=${accumulate}`);
    }
    assert.throws(() => K.scatter(new Float64Array(2), new Float64Array(1), new Int32Array([-1]), 1, 2, 1, 1, false), ShapeError);
    K.gather(new Float64Array(0), new Float64Array(0), new Int32Array(0), 0, 3, 2, 2);
  });
});

// ---------------------------------------------------------------------------------------------
// top-k
// ---------------------------------------------------------------------------------------------

describe('topk', () => {
  /** Reference: sort (value, index) pairs with NaN mapped to a rank above every number. */
  function topkRef(row: number[], k: number, largest: boolean): number[] {
    const key = (v: number): [number, number] => (Number.isNaN(v) ? [1, 0] : [0, v]);
    const order = row.map((v, i) => ({ v, i })).sort((x, y) => {
      const [xa, xb] = key(x.v), [ya, yb] = key(y.v);
      const cmp = xa !== ya ? xa - ya : xb < yb ? -1 : xb > yb ? 1 : 0;
      if (cmp !== 0) return largest ? -cmp : cmp;
      return x.i - y.i;
    });
    return order.slice(0, k).map((o) => o.i);
  }
  it('small and large k (both code paths), ties, NaN, both directions', () => {
    const r = rng(151);
    for (const [rows, n, k, ties] of [[3, 10, 4, true], [2, 50, 40, true], [2, 7, 7, true], [1, 100, 1, true], [1, 40, 40, true],
      [2, 300, 33, true], [2, 300, 33, false], [2, 60, 50, false], [3, 20, 5, false]] as const) {
      const src = new Float64Array(rows * n);
      // With `ties`, few distinct values so ties are common; a few NaNs either way.
      for (let i = 0; i < src.length; i++) src[i] = r() < 0.1 ? NaN : ties ? Math.floor(r() * 6) - 3 : r() * 10 - 5;
      for (let i = 0; i < src.length; i++) if (src[i] === 0 && r() < 0.5) src[i] = -0; // -0 ties with 0
      for (const largest of [true, false]) {
        const vals = new Float64Array(rows * k), idx = new Int32Array(rows * k);
        K.topk(vals, idx, src, rows, n, k, largest);
        for (let row = 0; row < rows; row++) {
          const exp = topkRef(Array.from(src.subarray(row * n, (row + 1) * n)), k, largest);
          assert.deepEqual([...idx.subarray(row * k, (row + 1) * k)], exp, `rows ${rows} n ${n} k ${k} largest ${largest} row ${row}`);
          for (let t = 0; t < k; t++) assert.ok(Object.is(vals[row * k + t], src[row * n + exp[t]!]));
        }
      }
    }
  });
  it('hand-checked and edge cases', () => {
    const vals = new Float32Array(3), idx = new Int32Array(3);
    K.topk(vals, idx, new Float32Array([1, 5, 3, 5, NaN]), 1, 5, 3, true);
    assert.deepEqual([...idx], [4, 1, 3]);
    K.topk(vals, idx, new Float32Array([1, 5, 3, 5, NaN]), 1, 5, 3, false);
    assert.deepEqual([...idx], [0, 2, 1]);
    assert.deepEqual([...vals], [1, 3, 5]);
    K.topk(new Float32Array(0), new Int32Array(0), new Float32Array(4), 2, 2, 0, true);
    assert.throws(() => K.topk(vals, idx, new Float32Array(2), 1, 2, 3, true), ShapeError);
  });
});

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

describe('adamw', () => {
  it('two steps against the bias-corrected update written out', () => {
    const n = 5;
    const [lr, b1, b2, eps, wd] = [1e-2, 0.9, 0.95, 1e-8, 0.1];
    const p = randn(n, 161), m = new Float64Array(n), v = new Float64Array(n);
    const pe = Array.from(p), me = new Array<number>(n).fill(0), ve = new Array<number>(n).fill(0);
    for (let t = 1; t <= 2; t++) {
      const g = randn(n, 161 + t);
      K.adamw(p, g, m, v, n, lr, b1, b2, eps, wd, 1 - b1 ** t, 1 - b2 ** t);
      for (let i = 0; i < n; i++) {
        me[i] = b1 * me[i]! + (1 - b1) * g[i]!;
        ve[i] = b2 * ve[i]! + (1 - b2) * g[i]! ** 2;
        const mhat = me[i]! / (1 - b1 ** t), vhat = ve[i]! / (1 - b2 ** t);
        pe[i] = pe[i]! - lr * wd * pe[i]! - (lr * mhat) / (Math.sqrt(vhat) + eps);
      }
      close(m, me, 1e-15, `m step ${t}`);
      close(v, ve, 1e-15, `v step ${t}`);
      close(p, pe, 1e-14, `p step ${t}`);
    }
    // Hand-checked first step, wd = 0: m/bc1 = g, sqrt(v/bc2) = |g| -> p moves by lr * sign(g).
    const p1 = new Float64Array([1, 1]);
    K.adamw(p1, new Float64Array([3, -0.5]), new Float64Array(2), new Float64Array(2), 2, 0.1, 0.9, 0.999, 0, 0, 0.1, 0.001);
    close(p1, [0.9, 1.1], 1e-15, 'sign step');
  });
});

// ---------------------------------------------------------------------------------------------
// every kernel on empty inputs
// ---------------------------------------------------------------------------------------------

describe('empty inputs', () => {
  it('every kernel accepts zero-size work', () => {
    const e: FArray = new Float32Array(0);
    const ei = new Int32Array(0);
    const s = { data: e, offset: 0, strides: [1] };
    K.unaryGrad('gelu', e, e, e, 0);
    K.binary('add', e, s, s, [0]);
    K.compare('lt', new Uint8Array(0), s, s, [0]);
    K.where(e, { data: new Uint8Array(0), offset: 0, strides: [1] }, s, s, [0]);
    K.softmaxGrad(e, e, e, 0, 5, false);
    K.rmsnorm(e, e, e, new Float32Array(4), 0, 4, 1e-6);
    const dw = new Float32Array([3, 3]);
    K.rmsnormGrad(e, dw, e, e, new Float32Array(2), e, 0, 2);
    assert.deepEqual([...dw], [0, 0]); // written as zeros, not left alone
    K.crossEntropy(e, e, e, ei, 0, 10, -100);
    K.crossEntropyGrad(e, e, e, ei, e, 0, 10, -100);
    K.attentionGrad(e, e, e, e, e, e, e, e, e, null, 1, 2, 2, 0, 0, 4, 4, 1, true);
    K.siluMul(e, e, e, 0);
    K.siluMulGrad(e, e, e, e, e, 0);
    K.indexAdd(e, e, ei, 3, 0, 0, 2);
    K.adamw(e, e, e, e, 0, 1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001);
    K.cast(new Uint16Array(0), 'bf16', e, 'f32', 0);
  });
});
