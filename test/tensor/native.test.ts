/**
 * The native backend against the js reference (the oracle) on random inputs over many shapes: odd
 * sizes, size-1 dims, broadcasts and non-contiguous strides, long rows (V = 50,000), attention with
 * causal Sq < Sk, GQA, Dk != Dv, masks and fully masked rows. Tolerances are those of f32 arithmetic
 * against a reference that accumulates in f64 (js.ts rounds once on store).
 *
 * The whole suite also runs in child processes under every ISA this CPU offers (R1_ISA=scalar, and the
 * default) and with R1_THREADS=1 and 2: the parent spawns `node <this file>` with R1_NATIVE_CHILD=1.
 * Skipped, with a message, only when the addon is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Backend, BinaryOp, CompareOp, FArray, Strided, UnaryGradOp, UnaryOp } from '../../src/tensor/backend.js';
import { jsBackend as J } from '../../src/tensor/backends/js.js';
import { loadNative, nativeLoadError, nativeAddonExports, type NativeBackend } from '../../src/tensor/backends/native.js';

const loaded = loadNative();
const SKIP = loaded ? false : `native addon not built: ${nativeLoadError()}`;
const N = loaded as NativeBackend; // only used when not skipped
const IS_CHILD = process.env.R1_NATIVE_CHILD === '1';

// ------------------------------------------------------------------------------------------------
// helpers

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let rnd = mulberry32(20240611);
function reseed(s: number): void { rnd = mulberry32(s); }
function randInt(lo: number, hi: number): number { return lo + Math.floor(rnd() * (hi - lo + 1)); }
function randF32(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rnd();
  return a;
}
function numel(shape: readonly number[]): number { return shape.reduce((a, b) => a * b, 1); }

/** |got - want| <= atol + rtol |want| everywhere; NaN matches NaN, infinities must be equal. */
function assertClose(name: string, got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, n = want.length): void {
  assert.ok(got.length >= n, `${name}: length ${got.length} < ${n}`);
  for (let i = 0; i < n; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(w) || Number.isNaN(g)) {
      if (Number.isNaN(w) && Number.isNaN(g)) continue;
      assert.fail(`${name}[${i}]: got ${g}, want ${w}`);
    }
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (g === w) continue;
      assert.fail(`${name}[${i}]: got ${g}, want ${w}`);
    }
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      assert.fail(`${name}[${i}]: got ${g}, want ${w} (|diff| ${Math.abs(g - w)} > ${atol} + ${rtol}*|want|)`);
    }
  }
}
function assertSame(name: string, got: ArrayLike<number | bigint>, want: ArrayLike<number | bigint>): void {
  assert.equal(got.length, want.length, `${name}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (typeof g === 'number' && typeof w === 'number' && Number.isNaN(g) && Number.isNaN(w)) continue;
    if (!Object.is(g, w)) assert.fail(`${name}[${i}]: got ${String(g)}, want ${String(w)}`);
  }
}

/**
 * A strided view over a fresh array for a logical shape: `perm` picks the physical order of the dims
 * (non-contiguous when not the identity), `pad` spreads rows apart, `bcast[d]` gives stride 0.
 */
function makeStrided<T extends Float32Array | Uint8Array | Int32Array | Uint16Array | Float64Array>(
  ctor: { new (n: number): T }, shape: readonly number[],
  opts: { perm?: boolean; pad?: boolean; bcast?: readonly boolean[]; offset?: number },
  fill: (i: number) => number,
): Strided<T> {
  const nd = shape.length;
  const order = [...Array(nd).keys()]; // physical order, outermost first
  if (opts.perm) order.reverse();
  const strides = new Array<number>(nd).fill(0);
  let acc = 1;
  for (let p = nd - 1; p >= 0; p--) {
    const d = order[p]!;
    if (opts.bcast?.[d]) { strides[d] = 0; continue; }
    strides[d] = acc;
    acc *= shape[d]! + (opts.pad ? 1 : 0);
  }
  const offset = opts.offset ?? 0;
  let last = offset;
  for (let d = 0; d < nd; d++) last += Math.max(0, shape[d]! - 1) * strides[d]!;
  const data = new ctor(last + 1 + 3);
  for (let i = 0; i < data.length; i++) data[i] = fill(i);
  return { data, offset, strides };
}
function randomView(shape: readonly number[], allowBcast: boolean, fill: (i: number) => number = () => rnd() * 2 - 1): Strided<Float32Array> {
  const bcast = shape.map((s) => allowBcast && s > 1 && rnd() < 0.3);
  return makeStrided(Float32Array, shape, { perm: rnd() < 0.4, pad: rnd() < 0.3, bcast, offset: randInt(0, 3) }, fill);
}

const ODD = [1, 3, 7, 17, 31, 33, 63, 129];

// ------------------------------------------------------------------------------------------------
// the suite

test('native: loads and reports isa and threads', { skip: SKIP }, () => {
  assert.equal(N.name, 'native');
  assert.ok(['avx512bf16', 'avx512', 'avx2', 'scalar'].includes(N.isa), `isa ${N.isa}`);
  assert.ok(N.getThreads() >= 1);
  assert.equal(loadNative(), loaded, 'loadNative is cached');
  if (process.env.R1_ISA === 'scalar') assert.equal(N.isa, 'scalar');
  if (process.env.R1_THREADS) assert.equal(N.getThreads(), Number(process.env.R1_THREADS));
});

test('native: copy with permuted, padded and broadcast strides, every array kind', { skip: SKIP }, () => {
  reseed(1);
  const shapes = [[1], [7], [3, 5], [1, 17], [4, 1, 33], [2, 3, 4, 5], [129, 63], [40, 1, 900]];
  const kinds = [Float32Array, Float64Array, Int32Array, Uint8Array, Uint16Array] as const;
  for (const shape of shapes) {
    for (const K of kinds) {
      const src = makeStrided(K as unknown as { new (n: number): Float32Array }, shape,
        { perm: rnd() < 0.5, pad: rnd() < 0.5, bcast: shape.map((s) => s > 1 && rnd() < 0.3), offset: randInt(0, 2) },
        (i) => (i * 7 + 3) % 251);
      const mk = () => makeStrided(K as unknown as { new (n: number): Float32Array }, shape, { perm: true, pad: true, offset: 1 }, () => 0);
      const d1 = mk(), d2 = mk();
      N.copy(d1, src, shape);
      J.copy(d2, src, shape);
      assertSame(`copy ${K.name} [${shape}]`, d1.data, d2.data);
    }
  }
  // BigInt64Array moves as raw 8-byte elements
  const s64 = { data: BigInt64Array.from([1n, -2n, 3n, -4n, 5n, 6n]), offset: 0, strides: [1, 2] };
  const d64 = new BigInt64Array(6);
  N.copy({ data: d64, offset: 0, strides: [3, 1] }, s64, [2, 3]);
  assertSame('copy i64', d64, [1n, 3n, 5n, -2n, -4n, 6n]);
});

test('native: cast f32 <-> f64 / bf16 / f16 bit-exact against js, other pairs delegated', { skip: SKIP }, () => {
  reseed(2);
  const specials = [0, -0, 1, -1, NaN, Infinity, -Infinity, 65504, 65520, 65519.99, 1e-8, 6e-8, 2.9802322e-8, 5.96e-8,
    6.1e-5, 3.4e38, -3.4e38, 1.1754944e-38, 1e-45, 0.1, 1 / 3, 1.00390625, 1.005859375, 257, 1.0009765625, 2049];
  for (const n of [...ODD, 1000, 50001]) {
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = i < specials.length ? specials[i]! : (rnd() - 0.5) * Math.pow(2, randInt(-30, 20));
    for (const dt of ['bf16', 'f16'] as const) {
      const a = new Uint16Array(n), b = new Uint16Array(n);
      N.cast(a, dt, src, 'f32', n);
      J.cast(b, dt, src, 'f32', n);
      for (let i = 0; i < n; i++) {
        const an = dt === 'f16' ? (a[i]! & 0x7c00) === 0x7c00 && (a[i]! & 0x3ff) !== 0 : (a[i]! & 0x7f80) === 0x7f80 && (a[i]! & 0x7f) !== 0;
        if (Number.isNaN(src[i]!)) { assert.ok(an, `${dt} NaN stays NaN`); continue; }
        assert.equal(a[i], b[i], `f32 -> ${dt} of ${src[i]}: got ${a[i]!.toString(16)}, want ${b[i]!.toString(16)}`);
      }
      const f1 = new Float32Array(n), f2 = new Float32Array(n);
      N.cast(f1, 'f32', b, dt, n);
      J.cast(f2, 'f32', b, dt, n);
      assertSame(`${dt} -> f32`, f1, f2);
    }
    const d1 = new Float64Array(n), d2 = new Float64Array(n);
    N.cast(d1, 'f64', src, 'f32', n);
    J.cast(d2, 'f64', src, 'f32', n);
    assertSame('f32 -> f64', d1, d2);
    const dsrc = Float64Array.from(d1, (x, i) => x * (1 + 1e-9 * (i % 3)));
    const g1 = new Float32Array(n), g2 = new Float32Array(n);
    N.cast(g1, 'f32', dsrc, 'f64', n);
    J.cast(g2, 'f32', dsrc, 'f64', n);
    assertSame('f64 -> f32', g1, g2);
  }
  // every 16-bit pattern round-trips through f32 exactly
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const dt of ['bf16', 'f16'] as const) {
    const f1 = new Float32Array(65536), f2 = new Float32Array(65536);
    N.cast(f1, 'f32', all, dt, 65536);
    J.cast(f2, 'f32', all, dt, 65536);
    assertSame(`all ${dt} -> f32`, f1, f2);
  }
  const i32 = Int32Array.from([1, -2, 300]), out = new Float32Array(3);
  N.cast(out, 'f32', i32, 'i32', 3);
  assertSame('i32 -> f32 (delegated)', out, [1, -2, 300]);
});

const UNARY_CASES: [UnaryOp, number, number, number?, number?, number?, number?][] = [
  // op, lo, hi, s, s2, rtol, atol. gelu_tanh: js forms 1 + tanh(u) in f64, which is 0 below x ~ -9
  // (true values ~1e-16); the native kernel uses x sigmoid(2u), which has no cancellation.
  ['neg', -5, 5], ['exp', -90, 88], ['log', 1e-30, 1e4], ['sqrt', 0, 100], ['rsqrt', 1e-6, 100], ['abs', -5, 5],
  ['square', -5, 5], ['sigmoid', -30, 30], ['tanh', -12, 12], ['relu', -2, 2], ['silu', -30, 30],
  ['gelu', -12, 12, undefined, undefined, 3e-6, 1e-30], ['gelu_tanh', -12, 12, undefined, undefined, 3e-6, 1e-14],
  ['pow_scalar', 0.01, 4, 2], ['pow_scalar', 0.01, 4, 0.5], ['pow_scalar', 0.01, 4, -1], ['pow_scalar', 0.01, 4, -0.5],
  ['pow_scalar', 0.01, 4, 1.7], ['pow_scalar', -4, 4, 3], ['add_scalar', -5, 5, 0.25], ['mul_scalar', -5, 5, -3],
  ['clamp', -5, 5, -1, 2], ['clamp', -5, 5, -Infinity, 0.5],
];

test('native: unary ops against js (odd sizes, wide ranges, special values)', { skip: SKIP }, () => {
  reseed(3);
  const specials = [0, -0, NaN, Infinity, -Infinity, 1e-40, -1e-40, 100, -100, 89, -89, -104, 0.625, -0.625, 1e-7];
  for (const [op, lo, hi, s, s2, rtol = 2e-6, atol = 1e-37] of UNARY_CASES) {
    for (const n of [...ODD, 40000]) {
      const src = randF32(n, lo, hi);
      const a = new Float32Array(n), b = new Float32Array(n);
      N.unary(op, a, src, n, s, s2);
      J.unary(op, b, src, n, s, s2);
      assertClose(`unary ${op}(${s ?? ''}) n=${n}`, a, b, rtol, atol);
    }
    const sp = Float32Array.from(specials);
    const a = new Float32Array(sp.length), b = new Float32Array(sp.length);
    N.unary(op, a, sp, sp.length, s, s2);
    J.unary(op, b, sp, sp.length, s, s2);
    assertClose(`unary ${op} specials`, a, b, rtol, 1e-37);
  }
  // a view with a byte offset: the kernel must start at the view, not the buffer
  const buf = randF32(64, 0.1, 2);
  const view = buf.subarray(5, 25), outBuf = new Float32Array(64), outView = outBuf.subarray(7, 27);
  N.unary('sqrt', outView, view, 20);
  for (let i = 0; i < 20; i++) assert.equal(outView[i], Math.fround(Math.sqrt(view[i]!)));
  assert.equal(outBuf[6], 0);
  assert.equal(outBuf[27], 0);
});

test('native: unaryGrad against js', { skip: SKIP }, () => {
  reseed(4);
  const ops: UnaryGradOp[] = ['sigmoid', 'tanh', 'relu', 'silu', 'gelu', 'gelu_tanh'];
  for (const op of ops) {
    for (const n of [...ODD, 40000]) {
      const x = randF32(n, -12, 12), dy = randF32(n, -2, 2);
      const a = new Float32Array(n), b = new Float32Array(n);
      N.unaryGrad(op, a, x, dy, n);
      J.unaryGrad(op, b, x, dy, n);
      // where f'(x) crosses 0 (silu at -1.28, gelu at -0.75) the f32 sum of O(1) terms leaves an absolute
      // error of a few ulp of |dy| <= 2
      assertClose(`unaryGrad ${op} n=${n}`, a, b, 1e-5, 5e-7);
    }
  }
});

/** A random broadcastable pair of views for `shape`. */
function binaryCases(): number[][] {
  return [[1], [7], [33], [3, 1], [1, 17], [5, 31], [2, 3, 4], [4, 1, 63], [2, 1, 3, 129], [64, 700], [3, 5, 7, 2, 3]];
}

test('native: binary / compare / where with broadcast and non-contiguous operands', { skip: SKIP }, () => {
  reseed(5);
  const bops: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'];
  const cops: CompareOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'];
  const coarse = () => (rnd() < 0.05 ? NaN : Math.round((rnd() * 2 - 1) * 3) / 2);
  for (const shape of binaryCases()) {
    const n = numel(shape);
    for (let rep = 0; rep < 3; rep++) {
      for (const op of bops) {
        const pos = op === 'pow';
        const a = randomView(shape, true, () => (pos ? 0.1 + rnd() * 3 : rnd() * 4 - 2));
        const b = randomView(shape, true, () => (pos ? rnd() * 4 - 2 : rnd() < 0.02 ? NaN : rnd() * 4 - 2));
        const d1 = new Float32Array(n), d2 = new Float32Array(n);
        N.binary(op, d1, a, b, shape);
        J.binary(op, d2, a, b, shape);
        assertClose(`binary ${op} [${shape}]`, d1, d2, op === 'pow' ? 1e-6 : 0, 0);
      }
      for (const op of cops) {
        const a = randomView(shape, true, coarse), b = randomView(shape, true, coarse);
        const d1 = new Uint8Array(n), d2 = new Uint8Array(n);
        N.compare(op, d1, a, b, shape);
        J.compare(op, d2, a, b, shape);
        assertSame(`compare ${op} [${shape}]`, d1, d2);
      }
      const cond = makeStrided(Uint8Array, shape, { perm: rnd() < 0.5, bcast: shape.map((s) => s > 1 && rnd() < 0.3) }, () => (rnd() < 0.5 ? 1 : 0));
      const a = randomView(shape, true), b = randomView(shape, true);
      const d1 = new Float32Array(n), d2 = new Float32Array(n);
      N.where(d1, cond, a, b, shape);
      J.where(d2, cond, a, b, shape);
      assertSame(`where [${shape}]`, d1, d2);
    }
  }
  // scalar (0-d) operands and an empty shape
  const s1 = new Float32Array(1);
  N.binary('add', s1, { data: Float32Array.of(2), offset: 0, strides: [] }, { data: Float32Array.of(0, 3), offset: 1, strides: [] }, []);
  assert.equal(s1[0], 5);
  N.binary('add', new Float32Array(0), { data: new Float32Array(0), offset: 0, strides: [1, 1] }, { data: new Float32Array(0), offset: 0, strides: [1, 1] }, [0, 3]);
});

test('native: reduce and argReduce over [outer, n, inner]', { skip: SKIP }, () => {
  reseed(6);
  const dims: [number, number, number][] = [[1, 1, 1], [3, 7, 1], [1, 129, 1], [2, 33, 17], [5, 1, 31], [1, 100000, 1],
    [4, 0, 3], [3, 63, 300], [2, 5000, 3], [1, 3, 70000]];
  for (const [outer, n, inner] of dims) {
    const src = randF32(outer * n * inner, -3, 3);
    if (src.length > 10) src[7] = NaN;
    const hasNaN = src.length > 10;
    for (const op of ['sum', 'max', 'min'] as const) {
      const a = new Float32Array(outer * inner), b = new Float32Array(outer * inner);
      N.reduce(op, a, src, outer, n, inner);
      J.reduce(op, b, src, outer, n, inner);
      // sums: f32 rounding against an f64 reference, relative to sqrt(n) * 3
      assertClose(`reduce ${op} [${outer},${n},${inner}]`, a, b, 1e-6, op === 'sum' ? 3e-7 * Math.sqrt(n + 1) * 3 : 0);
    }
    if (n === 0) continue;
    for (const op of ['argmax', 'argmin'] as const) {
      const src2 = Float32Array.from(src, (x) => Math.round(x)); // ties
      if (hasNaN) src2[9] = NaN;
      const a = new Int32Array(outer * inner), b = new Int32Array(outer * inner);
      N.argReduce(op, a, src2, outer, n, inner);
      J.argReduce(op, b, src2, outer, n, inner);
      assertSame(`${op} [${outer},${n},${inner}]`, a, b);
    }
  }
});

test('native: readProbe (the bandwidth probe) reads each thread\'s share as interleaved streams of whole lines', { skip: SKIP }, () => {
  const A = nativeAddonExports() as unknown as { readProbe(d: Float32Array, s: Float32Array, streams: number): void };
  const nt = N.getThreads();
  const lines = 1000 * nt + 7, src = new Float32Array(lines * 16 + 5);
  for (let i = 0; i < src.length; i++) src[i] = (i % 13) - 6;
  for (const streams of [1, 3, 8]) {
    const dst = new Float32Array(nt).fill(NaN);
    A.readProbe(dst, src, streams);
    const per = Math.floor(lines / nt), ls = Math.floor(per / streams);
    for (let t = 0; t < nt; t++) {
      let want = 0;
      for (let s = 0; s < streams; s++) for (let l = 0; l < ls; l++) for (let k = 0; k < 16; k++) want += src[(t * per + s * ls + l) * 16 + k]!;
      assert.equal(dst[t], want, `streams ${streams} thread ${t}`);
    }
  }
  assert.throws(() => A.readProbe(new Float32Array(0), src, 8), /dst/);
  assert.throws(() => A.readProbe(new Float32Array(nt), src, 0), /streams/);
});

test('native: argmax of long contiguous rows (the vectorised path): ties, NaN, infinities, all -Infinity', { skip: SKIP }, () => {
  const V = 1000, rows: number[][] = [];
  const base = () => Array.from({ length: V }, (_, i) => Math.sin(i) * 3);
  let r = base(); r[300] = 9; r[700] = 9; rows.push(r); // tie: the first
  r = base(); r[999] = 50; rows.push(r); // last element
  rows.push(Array.from({ length: V }, () => -Infinity)); // nothing above -Infinity: 0
  r = base(); r[100] = 20; r[900] = NaN; rows.push(r); // NaN counts as the maximum
  r = base(); r[5] = Infinity; r[8] = Infinity; rows.push(r);
  const src = Float32Array.from(rows.flat());
  const a = new Int32Array(rows.length), b = new Int32Array(rows.length);
  N.argReduce('argmax', a, src, rows.length, V, 1);
  J.argReduce('argmax', b, src, rows.length, V, 1);
  assert.deepEqual(Array.from(a), [300, 999, 0, 900, 5]);
  assert.deepEqual(Array.from(b), Array.from(a));
});

test('native: one long row (>= 32768, split among the threads): argmax and crossEntropy match the reference', { skip: SKIP }, () => {
  const V = 151936;
  const before = N.getThreads();
  try {
    for (const threads of [2, 3]) {
      N.setThreads(threads);
      const base = () => Float32Array.from({ length: V }, (_, i) => Math.sin(i * 0.37) * 4);
      const cases: [string, Float32Array][] = [];
      let r = base(); r[V - 3] = 30; r[40000] = 30; cases.push(['tie across parts: the first', r]);
      r = base(); r[V - 1] = 31; cases.push(['max in the last part', r]);
      r = base(); r[7] = 29; r[100000] = NaN; cases.push(['NaN', r]);
      r = base(); r[90000] = Infinity; cases.push(['+inf', r]);
      r = base().fill(-Infinity); r[120000] = 2; cases.push(['one finite value', r]);
      cases.push(['all -inf', base().fill(-Infinity)]);
      r = base(); for (let i = 0; i < V; i++) r[i]! += i / 2000; cases.push(['growing maxima', r]);
      for (const [what, x] of cases) {
        const a = new Int32Array(1), b = new Int32Array(1);
        N.argReduce('argmax', a, x, 1, V, 1);
        J.argReduce('argmax', b, x, 1, V, 1);
        assert.equal(a[0], b[0], `argmax ${what}, ${threads} threads`);
        const t = Int32Array.of(what === 'all -inf' ? 0 : a[0]!);
        const l1 = new Float32Array(1), l2 = new Float32Array(1), s1 = new Float32Array(1), s2 = new Float32Array(1);
        N.crossEntropy(l1, s1, x, t, 1, V, -100);
        J.crossEntropy(l2, s2, x, t, 1, V, -100);
        if (Number.isFinite(s2[0]!)) assertClose(`xent lse ${what}, ${threads} threads`, s1, s2, 1e-6, 1e-5);
        else assert.ok(!Number.isFinite(s1[0]!), `xent lse ${what}, ${threads} threads: ${s1[0]} (reference ${s2[0]}) must stay non-finite`);
      }
    }
  } finally {
    N.setThreads(before);
  }
});

test('native: greedyPick equals argReduce then crossEntropy bit for bit (ties across blocks, NaN, infinities, many rows)', { skip: SKIP }, () => {
  const eq = (a: number, b: number) => Object.is(a, b);
  for (const V of [1, 7, 2048, 2049, 5000, 40000, 151936]) {
    const base = () => Float32Array.from({ length: V }, (_, i) => Math.sin(i * 0.37 + V) * 4);
    const rows: [string, Float32Array][] = [['plain', base()]];
    let r = base(); r[V - 1] = 30; r[0] = 30; rows.push(['tie: the first', r]);
    if (V > 2100) { r = base(); r[2100] = 30; r[100] = 30; rows.push(['tie across blocks: the first', r]); }
    if (V > 32768) { r = base(); r[V - 5] = 30; r[V >> 2] = 30; rows.push(['tie across thread parts: the first', r]); }
    r = base(); r[V >> 1] = NaN; r[V - 1] = 50; rows.push(['NaN', r]);
    r = base(); r[V - 1] = Infinity; rows.push(['+inf', r]);
    rows.push(['all -inf', base().fill(-Infinity)]);
    r = base().fill(-Infinity); r[V - 1] = -3; rows.push(['one finite value, last', r]);
    r = base(); for (let i = 0; i < V; i++) r[i]! += i / 500; rows.push(['growing maxima', r]);
    const n = rows.length, block = new Float32Array(n * V);
    rows.forEach(([, x], i) => block.set(x, i * V));
    const ids = new Int32Array(n), loss = new Float32Array(n), lse = new Float32Array(n);
    N.greedyPick(ids, loss, lse, block, n, V);
    const a = new Int32Array(n), l = new Float32Array(n), s = new Float32Array(n);
    N.argReduce('argmax', a, block, n, V, 1);
    N.crossEntropy(l, s, block, a, n, V, -1);
    rows.forEach(([what], i) => {
      const w = `V = ${V}, ${what}`;
      assert.equal(ids[i], a[i], `${w}: the argmax`);
      assert.ok(eq(lse[i]!, s[i]!) && eq(loss[i]!, l[i]!), `${w}: lse ${lse[i]} / loss ${loss[i]} against ${s[i]} / ${l[i]}`);
    });
    // one row at a time: from 32768 values the row is split among the threads (as argReduce + crossEntropy)
    const before = N.getThreads();
    try {
      for (const threads of [1, 2, 3]) {
        N.setThreads(threads);
        rows.forEach(([what], i) => {
          const x = block.subarray(i * V, (i + 1) * V);
          const id = new Int32Array(1), ls = new Float32Array(1), ee = new Float32Array(1);
          N.greedyPick(id, ls, ee, x, 1, V);
          const a1 = new Int32Array(1), l1 = new Float32Array(1), s1 = new Float32Array(1);
          N.argReduce('argmax', a1, x, 1, V, 1);
          N.crossEntropy(l1, s1, x, a1, 1, V, -1);
          const w = `V = ${V}, one row, ${threads} threads, ${what}`;
          assert.equal(id[0], a1[0], `${w}: the argmax`);
          assert.ok(eq(ee[0]!, s1[0]!) && eq(ls[0]!, l1[0]!), `${w}: lse ${ee[0]} / loss ${ls[0]} against ${s1[0]} / ${l1[0]}`);
        });
      }
    } finally {
      N.setThreads(before);
    }
  }
  assert.throws(() => N.greedyPick(new Int32Array(2), new Float32Array(2), new Float32Array(2), new Float32Array(10), 2, 6), /logits/);
});

test('native: matmul (transposes, batch broadcast, offsets, leading dims, accumulate)', { skip: SKIP }, () => {
  reseed(7);
  const cases: [number, number, number, number][] = [[1, 1, 1, 1], [1, 3, 7, 5], [2, 17, 31, 33], [3, 1, 63, 129],
    [1, 129, 1, 17], [4, 8, 8, 8], [64, 5, 6, 7], [1, 70, 90, 110], [2, 33, 1, 64], [3, 4, 5, 0]];
  for (const [batch, m, n, k] of cases) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const acc = rnd() < 0.5;
        const bcastA = batch > 1 && rnd() < 0.3, bcastB = batch > 1 && !bcastA && rnd() < 0.3;
        const lda = (tA ? m : k) + randInt(0, 2), ldb = (tB ? k : n) + randInt(0, 2);
        const aRows = tA ? k : m, bRows = tB ? n : k;
        const aBS = bcastA ? 0 : aRows * lda + randInt(0, 3), bBS = bcastB ? 0 : bRows * ldb + randInt(0, 3);
        const aOff = randInt(0, 3), bOff = randInt(0, 3), cOff = randInt(0, 3);
        const A = randF32(aOff + batch * Math.max(aBS, aRows * lda) + 4), B = randF32(bOff + batch * Math.max(bBS, bRows * ldb) + 4);
        const C0 = randF32(cOff + batch * m * n + 2);
        const c1 = C0.slice(), c2 = C0.slice();
        N.matmul(c1, cOff, A, aOff, aBS, lda, tA, B, bOff, bBS, ldb, tB, batch, m, n, k, acc);
        J.matmul(c2, cOff, A, aOff, aBS, lda, tA, B, bOff, bBS, ldb, tB, batch, m, n, k, acc);
        assertClose(`matmul b${batch} ${m}x${n}x${k} tA=${tA} tB=${tB} acc=${acc}`, c1, c2, 1e-5, 2e-6 * Math.sqrt(k + 1));
      }
    }
  }
});

test('native: softmax / log_softmax and gradients (odd widths, V = 50,000 rows)', { skip: SKIP }, () => {
  reseed(8);
  const shapes: [number, number][] = [[1, 1], [3, 7], [5, 33], [17, 129], [2, 1000], [3, 50000], [200, 31]];
  for (const [rows, cols] of shapes) {
    const x = randF32(rows * cols, -20, 20);
    for (const log of [false, true]) {
      const a = new Float32Array(rows * cols), b = new Float32Array(rows * cols);
      N.softmax(a, x, rows, cols, log);
      J.softmax(b, x, rows, cols, log);
      assertClose(`softmax log=${log} [${rows},${cols}]`, a, b, 1e-5, log ? 2e-5 : 1e-12);
      const dy = randF32(rows * cols);
      const g1 = new Float32Array(rows * cols), g2 = new Float32Array(rows * cols);
      N.softmaxGrad(g1, b, dy, rows, cols, log);
      J.softmaxGrad(g2, b, dy, rows, cols, log);
      assertClose(`softmaxGrad log=${log} [${rows},${cols}]`, g1, g2, 1e-4, log ? 1e-5 : 1e-7);
    }
  }
});

test('native: rmsnorm and its gradient', { skip: SKIP }, () => {
  reseed(9);
  for (const [rows, cols] of [[1, 1], [3, 7], [17, 33], [5, 129], [64, 1024], [1, 5000], [300, 63]] as const) {
    const x = randF32(rows * cols, -2, 2), w = randF32(cols, 0.5, 1.5);
    const y1 = new Float32Array(rows * cols), y2 = new Float32Array(rows * cols);
    const r1 = new Float32Array(rows), r2 = new Float32Array(rows);
    N.rmsnorm(y1, r1, x, w, rows, cols, 1e-6);
    J.rmsnorm(y2, r2, x, w, rows, cols, 1e-6);
    assertClose(`rmsnorm y [${rows},${cols}]`, y1, y2, 1e-5, 1e-6);
    assertClose(`rmsnorm rstd [${rows},${cols}]`, r1, r2, 1e-5, 0);
    const dy = randF32(rows * cols);
    const dx1 = new Float32Array(rows * cols), dx2 = new Float32Array(rows * cols);
    const dw1 = new Float32Array(cols).fill(NaN), dw2 = new Float32Array(cols);
    N.rmsnormGrad(dx1, dw1, dy, x, w, r2, rows, cols);
    J.rmsnormGrad(dx2, dw2, dy, x, w, r2, rows, cols);
    assertClose(`rmsnormGrad dx [${rows},${cols}]`, dx1, dx2, 1e-4, 1e-5);
    assertClose(`rmsnormGrad dw [${rows},${cols}]`, dw1, dw2, 1e-4, 1e-5 * Math.sqrt(rows));
  }
});

test('native: rope (half and interleaved, partial rotary dims, inverse, in place)', { skip: SKIP }, () => {
  reseed(10);
  for (const [T, H, D, R] of [[1, 1, 2, 2], [3, 2, 8, 8], [7, 3, 64, 32], [5, 4, 192, 64], [33, 2, 17, 10], [2, 1, 6, 0]] as const) {
    const P = T + 5, half = R / 2;
    const cos = new Float32Array(P * half), sin = new Float32Array(P * half);
    for (let p = 0; p < P; p++) for (let i = 0; i < half; i++) {
      const th = p * Math.pow(10000, -i / Math.max(half, 1));
      cos[p * half + i] = Math.cos(th);
      sin[p * half + i] = Math.sin(th);
    }
    const pos = Int32Array.from({ length: T }, () => randInt(0, P - 1));
    for (const layout of ['half', 'interleaved'] as const) {
      for (const inverse of [false, true]) {
        const x = randF32(T * H * D);
        const a = new Float32Array(T * H * D), b = new Float32Array(T * H * D);
        N.rope(a, x, cos, sin, pos, T, H, D, R, layout, inverse);
        J.rope(b, x, cos, sin, pos, T, H, D, R, layout, inverse);
        assertClose(`rope ${layout} inv=${inverse} [${T},${H},${D},${R}]`, a, b, 1e-6, 1e-7);
        const inPlace = x.slice();
        N.rope(inPlace, inPlace, cos, sin, pos, T, H, D, R, layout, inverse);
        assertSame(`rope in place ${layout}`, inPlace, a);
      }
    }
  }
});

test('native: crossEntropy and its gradient (V up to 50,000, ignore index, growing maxima)', { skip: SKIP }, () => {
  reseed(11);
  for (const [rows, V] of [[1, 1], [3, 7], [4, 129], [5, 3000], [4, 50000], [64, 33]] as const) {
    const logits = randF32(rows * V, -10, 10);
    // row 0: increasing ramp, so the running max grows block after block (online rescaling path)
    for (let j = 0; j < V; j++) logits[j] = (j / V) * 60 - 30 + rnd();
    const targets = Int32Array.from({ length: rows }, (_, r) => (r === 1 ? -100 : randInt(0, V - 1)));
    const l1 = new Float32Array(rows), l2 = new Float32Array(rows), s1 = new Float32Array(rows), s2 = new Float32Array(rows);
    N.crossEntropy(l1, s1, logits, targets, rows, V, -100);
    J.crossEntropy(l2, s2, logits, targets, rows, V, -100);
    assertClose(`xent lse [${rows},${V}]`, s1, s2, 1e-6, 1e-5);
    assertClose(`xent loss [${rows},${V}]`, l1, l2, 1e-5, 2e-5);
    const dloss = randF32(rows, 0.5, 2);
    const g1 = new Float32Array(rows * V).fill(NaN), g2 = new Float32Array(rows * V);
    N.crossEntropyGrad(g1, logits, s2, targets, dloss, rows, V, -100);
    J.crossEntropyGrad(g2, logits, s2, targets, dloss, rows, V, -100);
    assertClose(`xent grad [${rows},${V}]`, g1, g2, 1e-5, 1e-9);
  }
});

interface AttnCase { B: number; Hq: number; Hkv: number; Sq: number; Sk: number; Dk: number; Dv: number; causal: boolean; mask?: 'full' | 'bcast' | 'rowmasked' }
function attnCase(c: AttnCase, seed: number): void {
  reseed(seed);
  const { B, Hq, Hkv, Sq, Sk, Dk, Dv, causal } = c;
  const q = randF32(B * Hq * Sq * Dk, -1.5, 1.5), k = randF32(B * Hkv * Sk * Dk, -1.5, 1.5), v = randF32(B * Hkv * Sk * Dv);
  let mask: Strided<FArray> | null = null;
  if (c.mask === 'full') {
    mask = { data: randF32(3 + B * Hq * Sq * Sk, -2, 2), offset: 3, strides: [Hq * Sq * Sk, Sq * Sk, Sk, 1] };
  } else if (c.mask === 'bcast') { // [1, 1, Sq, Sk] broadcast over batch and heads, with -inf entries
    const data = randF32(Sq * Sk, -1, 1);
    for (let i = 0; i < data.length; i++) if (rnd() < 0.2) data[i] = -Infinity;
    mask = { data, offset: 0, strides: [0, 0, Sk, 1] };
  } else if (c.mask === 'rowmasked') { // [B, 1, Sq, Sk] with whole query rows at -inf, key-major storage
    const data = new Float32Array(B * Sq * Sk);
    for (let b = 0; b < B; b++) for (let i = 0; i < Sq; i++) for (let j = 0; j < Sk; j++) {
      data[b * Sq * Sk + j * Sq + i] = i % 3 === 1 ? -Infinity : (rnd() < 0.5 ? 0 : -Infinity);
    }
    mask = { data, offset: 0, strides: [Sq * Sk, 0, 1, Sq] };
  }
  const scale = 1 / Math.sqrt(Dk);
  const o1 = new Float32Array(B * Hq * Sq * Dv), o2 = new Float32Array(B * Hq * Sq * Dv);
  const l1 = new Float32Array(B * Hq * Sq), l2 = new Float32Array(B * Hq * Sq);
  N.attention(o1, l1, q, k, v, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
  J.attention(o2, l2, q, k, v, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
  const tag = JSON.stringify(c);
  assertClose(`attention out ${tag}`, o1, o2, 1e-4, 1e-5);
  assertClose(`attention lse ${tag}`, l1, l2, 1e-5, 1e-5);
  const dout = randF32(B * Hq * Sq * Dv);
  const g = (n: number) => [new Float32Array(n).fill(NaN), new Float32Array(n)] as const;
  const [dq1, dq2] = g(q.length), [dk1, dk2] = g(k.length), [dv1, dv2] = g(v.length);
  N.attentionGrad(dq1, dk1, dv1, dout, q, k, v, o2, l2, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
  J.attentionGrad(dq2, dk2, dv2, dout, q, k, v, o2, l2, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
  assertClose(`attentionGrad dq ${tag}`, dq1, dq2, 1e-4, 2e-5);
  assertClose(`attentionGrad dk ${tag}`, dk1, dk2, 1e-4, 2e-5);
  assertClose(`attentionGrad dv ${tag}`, dv1, dv2, 1e-4, 2e-5);
}

test('native: attention forward and backward (GQA, causal Sq < Sk, Dk != Dv, masks, empty rows)', { skip: SKIP }, () => {
  const cases: AttnCase[] = [
    { B: 1, Hq: 1, Hkv: 1, Sq: 1, Sk: 1, Dk: 1, Dv: 1, causal: false },
    { B: 2, Hq: 3, Hkv: 3, Sq: 7, Sk: 7, Dk: 16, Dv: 16, causal: true },
    { B: 1, Hq: 4, Hkv: 2, Sq: 5, Sk: 17, Dk: 24, Dv: 8, causal: true },          // GQA, decode-style Sq < Sk
    { B: 1, Hq: 4, Hkv: 1, Sq: 1, Sk: 129, Dk: 32, Dv: 32, causal: true },        // one-token decode, MQA
    { B: 2, Hq: 2, Hkv: 1, Sq: 70, Sk: 150, Dk: 33, Dv: 17, causal: true },       // several query and key blocks
    { B: 1, Hq: 2, Hkv: 2, Sq: 40, Sk: 90, Dk: 31, Dv: 63, causal: false, mask: 'full' },
    { B: 2, Hq: 2, Hkv: 1, Sq: 9, Sk: 20, Dk: 8, Dv: 8, causal: true, mask: 'bcast' },
    { B: 2, Hq: 4, Hkv: 2, Sq: 12, Sk: 12, Dk: 16, Dv: 8, causal: false, mask: 'rowmasked' },
    { B: 1, Hq: 2, Hkv: 1, Sq: 9, Sk: 4, Dk: 8, Dv: 8, causal: true },            // Sq > Sk: early queries see nothing
    { B: 1, Hq: 2, Hkv: 2, Sq: 20, Sk: 40, Dk: 192, Dv: 128, causal: true },      // DeepSeek MLA head dims
    { B: 1, Hq: 2, Hkv: 1, Sq: 3, Sk: 0, Dk: 4, Dv: 4, causal: false },           // no keys at all
  ];
  cases.forEach((c, i) => attnCase(c, 100 + i));
});

test('native: siluMul gives the same bits on AVX-512 and AVX2 (the same operations lane for lane)', { skip: SKIP || (!N.isa.startsWith('avx512') ? 'needs AVX-512' : false) }, () => {
  const n = 4099;
  const code = `const { loadNative } = await import(${JSON.stringify(new URL('../../src/tensor/backends/native.js', import.meta.url).href)});
    const N = loadNative(), n = ${n};
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7) * (i % 50)), b = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
    a[3] = NaN; a[5] = Infinity; a[6] = -Infinity; a[7] = -0;
    const y = new Float32Array(n); N.siluMul(y, a, b, n);
    process.stdout.write(N.isa + ' ' + Buffer.from(y.buffer).toString('base64'));`;
  const run = (isa: string | null) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (isa) env.R1_ISA = isa; else delete env.R1_ISA;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split(' ');
  };
  const [i512, y512] = run(null), [i2, y2] = run('avx2');
  assert.ok(i512!.startsWith('avx512'), i512);
  assert.equal(i2, 'avx2');
  assert.equal(y512, y2, 'siluMul: AVX-512 and AVX2 bits differ');
});

test('native: siluMul, adamw', { skip: SKIP }, () => {
  reseed(12);
  for (const n of [...ODD, 50000]) {
    const a = randF32(n, -20, 20), b = randF32(n, -2, 2), dy = randF32(n);
    const y1 = new Float32Array(n), y2 = new Float32Array(n);
    N.siluMul(y1, a, b, n);
    J.siluMul(y2, a, b, n);
    assertClose(`siluMul n=${n}`, y1, y2, 2e-6, 1e-30);
    const da1 = new Float32Array(n), da2 = new Float32Array(n), db1 = new Float32Array(n), db2 = new Float32Array(n);
    N.siluMulGrad(da1, db1, a, b, dy, n);
    J.siluMulGrad(da2, db2, a, b, dy, n);
    assertClose(`siluMulGrad da n=${n}`, da1, da2, 1e-5, 5e-7); // silu' crosses 0 at a = -1.28 (see unaryGrad)
    assertClose(`siluMulGrad db n=${n}`, db1, db2, 2e-6, 1e-30);
    const p = randF32(n), g = randF32(n), m = randF32(n, -0.1, 0.1), v = randF32(n, 0, 0.01);
    const s1 = [p.slice(), m.slice(), v.slice()] as const, s2 = [p.slice(), m.slice(), v.slice()] as const;
    N.adamw(s1[0], g, s1[1], s1[2], n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 ** 3, 1 - 0.95 ** 3);
    J.adamw(s2[0], g, s2[1], s2[2], n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 ** 3, 1 - 0.95 ** 3);
    assertClose(`adamw p n=${n}`, s1[0], s2[0], 1e-6, 1e-7);
    assertClose(`adamw m n=${n}`, s1[1], s2[1], 1e-6, 3e-8);
    assertClose(`adamw v n=${n}`, s1[2], s2[2], 1e-6, 1e-8);
  }
});

test('native: indexSelect / indexAdd / gather / scatter (float and integer arrays, repeated indices)', { skip: SKIP }, () => {
  reseed(13);
  for (const [outer, nBig, nIdx, inner] of [[1, 1, 1, 1], [3, 7, 5, 1], [2, 5, 17, 33], [1, 100, 300, 64], [4, 3, 9, 700]] as const) {
    const idx = Int32Array.from({ length: nIdx }, () => randInt(0, nBig - 1));
    const src = randF32(outer * nBig * inner);
    const d1 = new Float32Array(outer * nIdx * inner), d2 = new Float32Array(outer * nIdx * inner);
    N.indexSelect(d1, src, idx, outer, nBig, nIdx, inner);
    J.indexSelect(d2, src, idx, outer, nBig, nIdx, inner);
    assertSame(`indexSelect f32`, d1, d2);
    const isrc = Int32Array.from(src, (x) => Math.round(x * 1000));
    const i1 = new Int32Array(d1.length), i2 = new Int32Array(d1.length);
    N.indexSelect(i1, isrc, idx, outer, nBig, nIdx, inner);
    J.indexSelect(i2, isrc, idx, outer, nBig, nIdx, inner);
    assertSame(`indexSelect i32`, i1, i2);

    const small = randF32(outer * nIdx * inner);
    const base = randF32(outer * nBig * inner);
    const a1 = base.slice(), a2 = base.slice();
    N.indexAdd(a1, small, idx, outer, nBig, nIdx, inner);
    J.indexAdd(a2, small, idx, outer, nBig, nIdx, inner);
    assertClose(`indexAdd`, a1, a2, 1e-6, 1e-6);

    const gidx = Int32Array.from({ length: outer * nIdx * inner }, () => randInt(0, nBig - 1));
    const g1 = new Float32Array(gidx.length), g2 = new Float32Array(gidx.length);
    N.gather(g1, src, gidx, outer, nBig, nIdx, inner);
    J.gather(g2, src, gidx, outer, nBig, nIdx, inner);
    assertSame(`gather f32`, g1, g2);
    const usrc = Uint16Array.from(isrc, (x) => x & 0xffff), u1 = new Uint16Array(gidx.length), u2 = new Uint16Array(gidx.length);
    N.gather(u1, usrc, gidx, outer, nBig, nIdx, inner);
    J.gather(u2, usrc, gidx, outer, nBig, nIdx, inner);
    assertSame(`gather u16`, u1, u2);

    for (const acc of [false, true]) {
      const s1 = base.slice(), s2 = base.slice();
      N.scatter(s1, small, gidx, outer, nBig, nIdx, inner, acc);
      J.scatter(s2, small, gidx, outer, nBig, nIdx, inner, acc);
      assertClose(`scatter acc=${acc}`, s1, s2, 1e-6, 1e-6);
    }
  }
});

test('native: topk (ties, NaN, small and large k, both directions)', { skip: SKIP }, () => {
  reseed(14);
  for (const [rows, n, k] of [[1, 1, 1], [3, 7, 3], [5, 33, 8], [2, 256, 8], [2, 1000, 100], [4, 50000, 50], [3, 17, 17], [2, 5, 0]] as const) {
    const src = Float32Array.from({ length: rows * n }, () => (rnd() < 0.02 ? NaN : Math.round(rnd() * 40) / 4));
    for (const largest of [true, false]) {
      const v1 = new Float32Array(rows * k), v2 = new Float32Array(rows * k), i1 = new Int32Array(rows * k), i2 = new Int32Array(rows * k);
      N.topk(v1, i1, src, rows, n, k, largest);
      J.topk(v2, i2, src, rows, n, k, largest);
      assertSame(`topk values [${rows},${n}] k=${k} largest=${largest}`, v1, v2);
      assertSame(`topk indices [${rows},${n}] k=${k} largest=${largest}`, i1, i2);
    }
  }
});

test('native: out-of-bounds arguments throw RangeError (never crash)', { skip: SKIP }, () => {
  const f = (n: number) => new Float32Array(n);
  const rangeErr = (fn: () => void, what: string) => assert.throws(fn, RangeError, what);
  rangeErr(() => N.unary('exp', f(4), f(2), 4), 'unary src too short');
  rangeErr(() => N.unary('exp', f(8).subarray(6), f(8), 4), 'unary dst view too short');
  rangeErr(() => N.unaryGrad('silu', f(4), f(4), f(3), 4), 'unaryGrad dy');
  rangeErr(() => N.binary('add', f(6), { data: f(6), offset: 1, strides: [3, 1] }, { data: f(6), offset: 0, strides: [3, 1] }, [2, 3]), 'binary offset');
  rangeErr(() => N.binary('add', f(6), { data: f(6), offset: 0, strides: [4, 1] }, { data: f(6), offset: 0, strides: [0, 1] }, [2, 3]), 'binary stride');
  rangeErr(() => N.compare('lt', new Uint8Array(5), { data: f(6), offset: 0, strides: [1] }, { data: f(6), offset: 0, strides: [1] }, [6]), 'compare dst');
  rangeErr(() => N.where(f(6), { data: new Uint8Array(5), offset: 0, strides: [1] }, { data: f(6), offset: 0, strides: [1] }, { data: f(6), offset: 0, strides: [0] }, [6]), 'where cond');
  rangeErr(() => N.copy({ data: f(4), offset: 0, strides: [2, 1] }, { data: f(6), offset: 0, strides: [3, 1] }, [2, 3]), 'copy dst');
  rangeErr(() => N.copy({ data: f(6), offset: 0, strides: [1, 2] }, { data: f(6), offset: -1, strides: [3, 1] }, [2, 3]), 'copy negative offset');
  rangeErr(() => N.cast(new Uint16Array(3), 'bf16', f(4), 'f32', 4), 'cast dst');
  rangeErr(() => N.reduce('sum', f(2), f(5), 2, 3, 1), 'reduce src');
  rangeErr(() => N.argReduce('argmax', new Int32Array(1), f(6), 2, 3, 1), 'argReduce dst');
  rangeErr(() => N.matmul(f(4), 0, f(4), 0, 0, 1, false, f(4), 0, 0, 2, false, 1, 2, 2, 2, false), 'matmul lda < k');
  rangeErr(() => N.matmul(f(4), 0, f(4), 0, 4, 2, false, f(4), 0, 0, 2, false, 2, 2, 2, 2, false), 'matmul c too short for batch');
  rangeErr(() => N.matmul(f(8), 0, f(4), 0, 4, 2, false, f(4), 1, 0, 2, true, 2, 2, 2, 2, false), 'matmul b offset');
  rangeErr(() => N.softmax(f(10), f(9), 2, 5, false), 'softmax src');
  rangeErr(() => N.softmaxGrad(f(10), f(10), f(9), 2, 5, true), 'softmaxGrad dy');
  rangeErr(() => N.rmsnorm(f(6), f(1), f(6), f(3), 2, 3, 1e-6), 'rmsnorm rstd');
  rangeErr(() => N.rmsnormGrad(f(6), f(2), f(6), f(6), f(3), f(2), 2, 3), 'rmsnormGrad dw');
  rangeErr(() => N.rope(f(8), f(8), f(4), f(4), Int32Array.of(0, 2), 2, 1, 4, 4, 'half', false), 'rope pos beyond table');
  rangeErr(() => N.rope(f(8), f(8), f(4), f(4), Int32Array.of(0, -1), 2, 1, 4, 4, 'half', false), 'rope negative pos');
  rangeErr(() => N.rope(f(8), f(8), f(4), f(4), Int32Array.of(0, 0), 2, 1, 4, 3, 'half', false), 'rope odd R');
  rangeErr(() => N.crossEntropy(f(2), f(2), f(10), Int32Array.of(1, 5), 2, 5, -100), 'xent target = V');
  rangeErr(() => N.crossEntropyGrad(f(10), f(10), f(2), Int32Array.of(1), f(2), 2, 5, -100), 'xent targets too short');
  const q = f(2 * 4 * 8), kk = f(2 * 8 * 8), vv = f(2 * 8 * 8);
  rangeErr(() => N.attention(f(2 * 4 * 8), f(8), q, f(10), vv, null, 1, 2, 1, 4, 8, 8, 8, 1, true), 'attention k too short');
  rangeErr(() => N.attention(f(64), f(8), q, kk, vv, null, 1, 2, 3, 4, 8, 8, 8, 1, true), 'attention Hq % Hkv');
  rangeErr(() => N.attention(f(64), f(8), q, kk, vv, { data: f(31), offset: 0, strides: [0, 0, 8, 1] }, 1, 2, 2, 4, 8, 8, 8, 1, false), 'attention mask');
  rangeErr(() => N.attentionGrad(f(64), f(128), f(128), f(64), q, kk, vv, f(64), f(7), null, 1, 2, 2, 4, 8, 8, 8, 1, true), 'attentionGrad lse');
  rangeErr(() => N.siluMul(f(3), f(4), f(4), 4), 'siluMul y');
  rangeErr(() => N.siluMulGrad(f(4), f(4), f(4), f(4), f(2), 4), 'siluMulGrad dy');
  rangeErr(() => N.indexSelect(f(4), f(6), Int32Array.of(0, 3), 1, 3, 2, 2), 'indexSelect idx >= nSrc');
  rangeErr(() => N.indexAdd(f(6), f(4), Int32Array.of(0, -1), 1, 3, 2, 2), 'indexAdd negative idx');
  rangeErr(() => N.gather(f(4), f(6), Int32Array.of(0, 1, 2, 3), 1, 3, 2, 2), 'gather idx');
  rangeErr(() => N.scatter(f(6), f(4), Int32Array.of(0, 1, 2), 1, 3, 2, 2, true), 'scatter idx too short');
  rangeErr(() => N.topk(f(2), new Int32Array(2), f(9), 2, 5, 1, true), 'topk src');
  rangeErr(() => N.adamw(f(4), f(4), f(3), f(4), 4, 1e-3, 0.9, 0.99, 1e-8, 0, 1, 1), 'adamw m');
  rangeErr(() => N.unary('exp', f(4), f(4), 1.5), 'non-integer n');
  rangeErr(() => N.unary('exp', f(4), f(4), -1), 'negative n');
  rangeErr(() => N.setThreads(0), 'setThreads(0)');
  rangeErr(() => N.reduce('sum', f(1), f(1), 2 ** 40, 2 ** 40, 1), 'size overflow');
});

test('native: thread count changes keep results identical', { skip: SKIP }, () => {
  reseed(15);
  const before = N.getThreads();
  const x = randF32(300 * 257, -5, 5);
  const outs: Float32Array[] = [];
  for (const t of [1, 2, 3]) {
    N.setThreads(t);
    assert.equal(N.getThreads(), t);
    const o = new Float32Array(x.length);
    N.softmax(o, x, 300, 257, false);
    outs.push(o);
  }
  N.setThreads(before);
  assertSame('softmax 1 vs 2 threads', outs[0]!, outs[1]!);
  assertSame('softmax 1 vs 3 threads', outs[0]!, outs[2]!);
});

// ------------------------------------------------------------------------------------------------
// the same suite under each ISA and thread count, in child processes

if (!IS_CHILD) {
  const isas = ['scalar', 'default'];
  const self = fileURLToPath(import.meta.url);
  for (const isa of isas) {
    for (const threads of ['1', '2']) {
      if (isa === 'default' && threads === String(N?.getThreads?.() ?? '')) continue; // that is this process
      test(`native: whole suite with R1_ISA=${isa} R1_THREADS=${threads}`, { skip: SKIP }, () => {
        const env: NodeJS.ProcessEnv = { ...process.env, R1_NATIVE_CHILD: '1', R1_THREADS: threads };
        delete env.NODE_TEST_CONTEXT; // run as a plain script, not as a test-runner child
        if (isa === 'default') delete env.R1_ISA; else env.R1_ISA = isa;
        const r = spawnSync(process.execPath, [self], { env, encoding: 'utf8', timeout: 120_000 });
        const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
        assert.equal(r.status, 0, `child (R1_ISA=${isa}, R1_THREADS=${threads}) failed:\n${out.slice(-4000)}`);
        assert.match(out, /# fail 0/, 'child reported no failures');
        assert.doesNotMatch(out, /# pass 0\b/, 'child ran tests');
      });
    }
  }
}

// Silence unused-type lint for Backend (documents that N satisfies it).
const _check: Backend | null = loaded;
void _check;
