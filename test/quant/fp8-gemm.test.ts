import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fp8Gemm, fp8GemmQuantized, roundToBits, type Fp8GemmOptions } from '../../src/quant/fp8-gemm.js';
import { dequantizeBlockwise, quantizeActivations, quantizeWeight, type BlockQuantized } from '../../src/quant/blockwise.js';
import { encodeFp8, fp8Native } from '../../src/quant/fp8.js';
import { Rng } from '../../src/tensor/random.js';
import { ConfigError, ShapeError } from '../../src/errors.js';

const NATIVE = fp8Native();
const SKIP = NATIVE ? false : 'native addon not built';

function randn(n: number, rng: Rng, scale = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * scale;
  return x;
}

/** Hand-made operand: given FP8 codes, one scale per block. */
function operand(codes: number[], rows: number, cols: number, scaleInv: number[], blockRows: number, blockCols: number): BlockQuantized {
  return { codes: Uint8Array.from(codes), scaleInv: Float32Array.from(scaleInv), rows, cols, blockRows, blockCols, format: 'e4m3' };
}

test('roundToBits: nearest-even and toward-zero at a few hand-checked points', () => {
  assert.equal(roundToBits(1.25, 2), 1); // tie between 1.0 and 1.5: even
  assert.equal(roundToBits(1.75, 2), 2); // tie between 1.5 and 2.0: even
  assert.equal(roundToBits(1.75, 2, true), 1.5);
  assert.equal(roundToBits(-1.75, 2), -2);
  assert.equal(roundToBits(-1.75, 2, true), -1.5);
  assert.equal(roundToBits(1 + 2 ** -23, 24), 1 + 2 ** -23);
  assert.equal(roundToBits(1 + 2 ** -24, 24), 1); // tie: even
  assert.equal(roundToBits(1 + 3 * 2 ** -25, 24), 1 + 2 ** -23);
  assert.equal(roundToBits(12345.678, 24), Math.fround(12345.678));
  assert.equal(roundToBits(0, 5), 0);
  // One significant bit: the tie 1.5 * 2^e goes up (integer significand 2 is the even one).
  assert.equal(roundToBits(1.5, 1), 2);
  assert.equal(roundToBits(3, 1), 4);
  assert.equal(roundToBits(1.4, 1), 1);
  assert.equal(roundToBits(1.9, 1, true), 1);
  assert.ok(Number.isNaN(roundToBits(NaN, 5)));
  assert.equal(roundToBits(Infinity, 5), Infinity);
  assert.equal(roundToBits(2 ** -1074 * 7, 51), 2 ** -1074 * 8); // subnormal: 2 dropped bits, 7 -> 8
});

for (const backend of ['js', 'native'] as const) {
  test(`${backend}: hand-computed accumulation (accBits 2 and 3, promotion, rounding mode, scales)`, { skip: backend === 'native' ? SKIP : false }, () => {
    const one = encodeFp8(1, 'e4m3'), half = encodeFp8(0.5, 'e4m3'), quarter = encodeFp8(0.25, 'e4m3'), sixteenth = encodeFp8(1 / 16, 'e4m3');
    // A = [1, 0.5, 0.25], B = [1, 1, 1]: partial sums 1, 1.5, 1.75.
    const a = operand([one, half, quarter], 1, 3, [1], 1, 128);
    const b = operand([one, one, one], 1, 3, [1], 128, 128);
    const run = (o: Fp8GemmOptions, x = a, y = b) => fp8GemmQuantized(x, y, { ...o, backend })[0];
    assert.equal(run({ accBits: 24 }), 1.75);
    assert.equal(run({ accBits: 2 }), 2); // 1.75 is a tie of 1.5 and 2 at 2 bits: even
    assert.equal(run({ accBits: 2, accRounding: 'toward-zero' }), 1.5);
    assert.equal(run({ accBits: 2, promoteEvery: 2 }), 1.75); // [1 + 0.5] promoted, then 0.25
    // Scales multiply each promoted partial: sa * sb = 2 * 0.5... and with per-column blocks of 1, each product alone.
    assert.equal(run({ accBits: 2 }, operand([one, half, quarter], 1, 3, [2], 1, 128), operand([one, one, one], 1, 3, [3], 128, 128)), 12);
    assert.equal(run({ accBits: 2 }, operand([one, half, quarter], 1, 3, [1, 1, 1], 1, 1), b), 1.75); // scale boundary = promotion
    // A = [1, 1/16 x 15], B = ones: at 3 bits 1 + 1/16 rounds back to 1, so without promotion the 15 small terms vanish.
    const a16 = operand([one, ...new Array<number>(15).fill(sixteenth)], 1, 16, [1], 1, 128);
    const b16 = operand(new Array<number>(16).fill(one), 1, 16, [1], 128, 128);
    assert.equal(run({ accBits: 3, promoteEvery: 16 }, a16, b16), 1);
    assert.equal(run({ accBits: 3, promoteEvery: 4 }, a16, b16), 1.75); // 1 + 3 x (4/16)
    assert.equal(run({ accBits: 24 }, a16, b16), 1.9375);
  });
}

function f64Reference(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += a[i * K + k]! * b[j * K + k]!;
    c[i * N + j] = s;
  }
  return c;
}
function relFrobenius(x: Float32Array, ref: Float64Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < x.length; i++) { num += (x[i]! - ref[i]!) ** 2; den += ref[i]! ** 2; }
  return Math.sqrt(num / den);
}

test('accBits = 24 with promotion every 128 equals dequantize(A) · dequantize(B)^T to ~1e-7 (f64 reference)', () => {
  const rng = new Rng(3);
  const M = 5, N = 130, K = 300; // partial blocks at every edge
  const a = randn(M * K, rng), b = randn(N * K, rng, 0.05);
  const qa = quantizeActivations(a, M, K), qb = quantizeWeight(b, N, K);
  const da = dequantizeBlockwise(qa.codes, qa.scaleInv, M, K, { blockRows: 1, blockCols: 128 });
  const db = dequantizeBlockwise(qb.codes, qb.scaleInv, N, K);
  const ref = f64Reference(da, db, M, N, K);
  for (const backend of ['js', 'auto'] as const) {
    const c = fp8GemmQuantized(qa, qb, { accBits: 24, backend });
    const e = relFrobenius(c, ref);
    assert.ok(e < 1e-6, `${backend}: relative error ${e}`);
    // Elementwise against the sum of |terms| (cancellation-proof): a few f32 roundings per 128 terms at most.
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let mag = 0;
      for (let k = 0; k < K; k++) mag += Math.abs(da[i * K + k]! * db[j * K + k]!);
      assert.ok(Math.abs(c[i * N + j]! - ref[i * N + j]!) <= 2e-6 * mag, `${backend} C[${i},${j}]`);
    }
  }
  // And against the unquantized product it is only as good as FP8 (E4M3: a few percent).
  const e8 = relFrobenius(fp8Gemm(a, b, M, N, K, { accBits: 24 }), f64Reference(a, b, M, N, K));
  assert.ok(e8 > 1e-3 && e8 < 0.06, `fp8 quantization error ${e8}`);
});

test('limited precision hurts without promotion and promotion every 128 repairs most of it', () => {
  const rng = new Rng(8);
  const M = 4, N = 6, K = 4096;
  const a = randn(M * K, rng), b = randn(N * K, rng);
  // One scale along K for both operands (per-row / per-tensor scaling), so promoteEvery alone decides the partials.
  const qa = quantizeActivations(a, M, K, { tile: K }), qb = quantizeWeight(b, N, K, { block: K });
  const da = dequantizeBlockwise(qa.codes, qa.scaleInv, M, K, { blockRows: 1, blockCols: K });
  const db = dequantizeBlockwise(qb.codes, qb.scaleInv, N, K, { blockRows: K, blockCols: K });
  const ref = f64Reference(da, db, M, N, K);
  const none = relFrobenius(fp8GemmQuantized(qa, qb, { accBits: 14, promoteEvery: K }), ref);
  const every128 = relFrobenius(fp8GemmQuantized(qa, qb, { accBits: 14, promoteEvery: 128 }), ref);
  const fp32 = relFrobenius(fp8GemmQuantized(qa, qb, { accBits: 24, promoteEvery: K }), ref);
  assert.ok(none > 3 * every128, `no promotion ${none} vs every 128 ${every128}`);
  assert.ok(every128 > fp32, `every 128 ${every128} vs f32 ${fp32}`);
  assert.ok(none > 1e-5 && none < 0.05, `no promotion ${none}`);
  const trunc = relFrobenius(fp8GemmQuantized(qa, qb, { accBits: 14, promoteEvery: K, accRounding: 'toward-zero' }), ref);
  assert.ok(trunc > none, `truncation ${trunc} vs nearest ${none}`);
});

test('native kernel equals the JS reference bit for bit (shapes, blocks, accBits, promotion, rounding, formats, NaN)', { skip: SKIP }, () => {
  const rng = new Rng(21);
  const cases: [number, number, number, Partial<Fp8GemmOptions> & { format?: 'e4m3' | 'e5m2'; block?: number }][] = [
    [3, 7, 300, {}],
    [2, 130, 257, { accBits: 24 }],
    [5, 9, 512, { accBits: 8, promoteEvery: 100 }],
    [4, 4, 640, { accBits: 14, promoteEvery: 640, block: 640 }],
    [3, 3, 200, { accBits: 1, promoteEvery: 1 }],
    [6, 5, 384, { accBits: 11, accRounding: 'toward-zero', promoteEvery: 64 }],
    [2, 3, 333, { format: 'e5m2', accBits: 13, block: 50 }],
    [1, 1, 1, {}],
    [7, 1, 129, { accBits: 20, promoteEvery: 1000 }],
  ];
  for (const [M, N, K, o] of cases) {
    const a = randn(M * K, rng, 3), b = randn(N * K, rng, 0.02);
    for (let i = 0; i < a.length; i += 37) a[i] = a[i]! * 100; // outliers
    const js = fp8Gemm(a, b, M, N, K, { ...o, backend: 'js' });
    const nat = fp8Gemm(a, b, M, N, K, { ...o, backend: 'native' });
    assert.deepEqual(new Uint32Array(nat.buffer), new Uint32Array(js.buffer), `M=${M} N=${N} K=${K} ${JSON.stringify(o)}`);
  }
  // Rows with a non-finite input give NaN in both (the tile's codes are NaN).
  const M = 3, N = 4, K = 256;
  const a = randn(M * K, rng), b = randn(N * K, rng);
  a[K + 5] = Infinity;
  const js = fp8Gemm(a, b, M, N, K, { backend: 'js' }), nat = fp8Gemm(a, b, M, N, K, { backend: 'native' });
  for (let i = 0; i < M * N; i++) {
    assert.equal(Number.isNaN(js[i]), Math.floor(i / N) === 1);
    assert.ok(Object.is(js[i], nat[i]), `C[${i}]: ${js[i]} vs ${nat[i]}`);
  }
  // Bigger, multithreaded.
  const M2 = 64, N2 = 96, K2 = 1024;
  const a2 = randn(M2 * K2, rng), b2 = randn(N2 * K2, rng);
  const j2 = fp8Gemm(a2, b2, M2, N2, K2, { backend: 'js' }), n2 = fp8Gemm(a2, b2, M2, N2, K2, { backend: 'native' });
  assert.deepEqual(new Uint32Array(n2.buffer), new Uint32Array(j2.buffer));
});

test('empty dimensions', () => {
  assert.deepEqual(fp8Gemm(new Float32Array(0), new Float32Array(0), 2, 3, 0), new Float32Array(6));
  assert.equal(fp8Gemm(new Float32Array(0), new Float32Array(10), 0, 2, 5).length, 0);
});

test('bad shapes and options throw typed errors', () => {
  const a = new Float32Array(6), b = new Float32Array(6);
  assert.throws(() => fp8Gemm(a, b, 2, 2, 4), ShapeError);
  assert.throws(() => fp8Gemm(a, new Float32Array(5), 2, 2, 3), ShapeError);
  assert.throws(() => fp8Gemm(a, b, -2, 2, -3), ShapeError);
  assert.throws(() => fp8Gemm(a, b, 2, 2, 3, { accBits: 0 }), ConfigError);
  assert.throws(() => fp8Gemm(a, b, 2, 2, 3, { accBits: 25 }), ConfigError);
  assert.throws(() => fp8Gemm(a, b, 2, 2, 3, { accBits: 1.5 }), ConfigError);
  assert.throws(() => fp8Gemm(a, b, 2, 2, 3, { promoteEvery: 0 }), ConfigError);
  assert.throws(() => fp8Gemm(a, b, 2, 2, 3, { block: 0 }), ConfigError);
  assert.throws(() => fp8Gemm(a, b, 2, 2, 3, { accRounding: 'up' as 'nearest' }), ConfigError);
  const qa = quantizeActivations(new Float32Array(8), 2, 4), qb = quantizeWeight(new Float32Array(12), 3, 4);
  assert.throws(() => fp8GemmQuantized(qa, quantizeWeight(new Float32Array(15), 3, 5)), ShapeError);
  assert.throws(() => fp8GemmQuantized(qa, { ...qb, format: 'e5m2' }), ConfigError);
  assert.throws(() => fp8GemmQuantized(qa, { ...qb, scaleInv: new Float32Array(2) }), ShapeError);
  assert.throws(() => fp8GemmQuantized(qa, { ...qb, codes: new Uint8Array(11) }), ShapeError);
  assert.throws(() => fp8GemmQuantized({ ...qa, blockCols: 0 }, qb), ShapeError);
  assert.equal(fp8GemmQuantized(qa, qb).length, 6);
});

test('native fp8Gemm entry point validates every size', { skip: SKIP }, () => {
  const n = NATIVE!;
  const M = 2, N = 3, K = 130;
  const c = new Float32Array(M * N), ac = new Uint8Array(M * K), as = new Float32Array(M * 2), bc = new Uint8Array(N * K), bs = new Float32Array(2);
  const call = (over: Partial<Record<string, unknown>>) => {
    const v = { c, ac, as, bc, bs, M, N, K, abr: 1, abc: 128, bbr: 128, bbc: 128, bits: 14, prom: 128, mode: 0, fmt: 0, ...over };
    (n.fp8Gemm as (...x: unknown[]) => void)(v.c, v.ac, v.as, v.bc, v.bs, v.M, v.N, v.K, v.abr, v.abc, v.bbr, v.bbc, v.bits, v.prom, v.mode, v.fmt);
  };
  call({});
  assert.throws(() => call({ c: new Float32Array(5) }), RangeError);
  assert.throws(() => call({ ac: new Uint8Array(M * K - 1) }), RangeError);
  assert.throws(() => call({ bc: new Uint8Array(N * K - 1) }), RangeError);
  assert.throws(() => call({ as: new Float32Array(3) }), RangeError);
  assert.throws(() => call({ bs: new Float32Array(1) }), RangeError);
  assert.throws(() => call({ abc: 0 }), RangeError);
  assert.throws(() => call({ bits: 25 }), RangeError);
  assert.throws(() => call({ prom: 0 }), RangeError);
  assert.throws(() => call({ mode: 2 }), RangeError);
  assert.throws(() => call({ M: 2 ** 40, N: 2 ** 40 }), RangeError);
  assert.throws(() => call({ ac: new Float32Array(M * K) }), TypeError);
  assert.throws(() => call({ bs: [1, 2] }), TypeError);
});
