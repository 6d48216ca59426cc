/**
 * native/qgemm.c (through src/quant/qgemm.ts) against an independent f64 reference computed on the dequantized
 * weights (bf16: the bit pattern shifted into an f32; fp8: src/quant/blockwise.ts dequantizeBlockwise, i.e.
 * decode(code) * scaleInv per 128 x 128 block). Sizes cover N, K that are not multiples of 128, 16 or 8, every
 * path of the kernel (M = 1 register GEMV, M <= 16 tile path, M > 16 dequantized panels + f32 GEMM) and 1 or 2
 * threads. bf16 also in the 16-row panel layout (native/qpanel.c: the AVX512_BF16 outer-product kernels, or the
 * portable dequantize + f32 GEMM path under R1_ISA below avx512bf16), and f32 weights in 16-row panels (the same
 * kernels with f32 FMAs on AVX-512; activations not rounded).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { qgemm, qgemmGlu, qgemmJs, dequantPacked, qgemmNative, panelsPreferred, roundActivations, panelsFromRows, f32PanelsFromRows, fp8PanelsFromRows, fp8PanelOffset, checkPacked, packedLength, type PackedMatrix } from '../../src/quant/qgemm.js';
import { packMatrix } from '../../src/nn/packed-weights.js';
import { quantizeWeight, dequantizeBlockwise } from '../../src/quant/blockwise.js';
import { f32ToBf16Bits, bf16BitsToF32 } from '../../src/tensor/backends/js.js';
import { loadNative } from '../../src/tensor/backends/native.js';
import { fp8DecodeCase } from './fp8-decode-case.js';
import { lcg } from '../util.js';

function gaussian(n: number, rnd: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  return out;
}

function packBf16(w: Float32Array, N: number, K: number, panels = false): { p: PackedMatrix; deq: Float32Array } {
  const data = Uint16Array.from(w, f32ToBf16Bits);
  const deq = Float32Array.from(data, bf16BitsToF32);
  if (panels) return { p: { format: 'bf16', rows: N, cols: K, data: panelsFromRows(data, N, K), scaleInv: null, layout: 'panels' }, deq };
  return { p: { format: 'bf16', rows: N, cols: K, data, scaleInv: null }, deq };
}
function packF32(w: Float32Array, N: number, K: number, ts = false): { p: PackedMatrix; deq: Float32Array } {
  if (ts) return { p: { format: 'f32', rows: N, cols: K, data: f32PanelsFromRows(w, N, K), scaleInv: null, layout: 'panels' }, deq: w };
  return { p: packMatrix(w, N, K, 'f32'), deq: w };
}
function packFp8(w: Float32Array, N: number, K: number, panels = false): { p: PackedMatrix; deq: Float32Array } {
  const q = quantizeWeight(w, N, K);
  const deq = dequantizeBlockwise(q.codes, q.scaleInv, N, K);
  if (panels) return { p: { format: 'fp8', rows: N, cols: K, data: fp8PanelsFromRows(q.codes, N, K), scaleInv: q.scaleInv, layout: 'panels' }, deq };
  return { p: { format: 'fp8', rows: N, cols: K, data: q.codes, scaleInv: q.scaleInv }, deq };
}

/** y = x W^T + b in f64, and sum |x||w| per output (the scale of f32 rounding error). */
function reference(x: Float32Array, M: number, W: Float32Array, N: number, K: number, bias: Float32Array | null) {
  const y = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j]! : 0, a = bias ? Math.abs(bias[j]!) : 0;
      for (let p = 0; p < K; p++) { const t = x[i * K + p]! * W[j * K + p]!; s += t; a += Math.abs(t); }
      y[i * N + j] = s; mag[i * N + j] = a;
    }
  }
  return { y, mag };
}

function check(got: Float32Array, ref: { y: Float64Array; mag: Float64Array }, K: number, what: string): void {
  // f32 summation of K + 2 terms: |error| <= (K + 2) * 2^-24 * sum |terms| (Higham, gamma_n bound), with slack.
  const gamma = (K + 4) * 2 ** -23;
  for (let i = 0; i < ref.y.length; i++) {
    const err = Math.abs(got[i]! - ref.y[i]!);
    if (!(err <= gamma * ref.mag[i]! + 1e-30)) {
      assert.fail(`${what}: element ${i}: got ${got[i]}, want ${ref.y[i]} (|err| ${err} > ${gamma * ref.mag[i]!})`);
    }
  }
}

const SHAPES: [number, number][] = [[5, 7], [30, 50], [131, 259], [260, 384], [9, 1000], [300, 129]]; // bf16 panels at M = 1 go four at a time: N = 30, 131, 300 end on 2, 1, 3
const MS = [1, 3, 9, 16, 200, 600]; // 600: several 256-row slabs of the bf16-dot path

for (const fmt of ['bf16', 'bf16 panels', 'fp8', 'fp8 panels', 'f32 panels'] as const) {
  test(`${fmt}: qgemm matches an f64 reference on the dequantized weights (odd N, K; M = 1, 3, 9, 16, 200, 600; 1 and 2 threads)`, () => {
    const nat = loadNative();
    const before = nat?.getThreads() ?? 1;
    const rnd = lcg(fmt.startsWith('fp8') ? 12 : 11);
    try {
      for (const threads of [1, 2]) {
        nat?.setThreads(threads);
        for (const [N, K] of SHAPES) {
          const w = gaussian(N * K, rnd, 0.05);
          // Blocks of different magnitude so the per-block scales matter for fp8.
          for (let j = 0; j < N; j++) for (let p = 0; p < K; p++) w[j * K + p]! *= 2 ** (((j >> 7) + 2 * (p >> 7)) % 5 - 2);
          const { p, deq } = fmt.startsWith('fp8') ? packFp8(w, N, K, fmt === 'fp8 panels') : fmt === 'f32 panels' ? packF32(w, N, K) : packBf16(w, N, K, fmt === 'bf16 panels');
          const bias = gaussian(N, rnd);
          for (const M of MS) {
            if ((M === 200 && N * K > 100_000) || (M === 600 && N * K > 40_000)) continue; // keeps the f64 reference quick
            const x = gaussian(M * K, rnd);
            for (const b of [null, bias]) {
              const got = qgemm(x, M, p, b);
              check(got, reference(fmt === 'f32 panels' ? x : roundActivations(x), M, deq, N, K, b), K, `${fmt} N=${N} K=${K} M=${M} threads=${threads} bias=${!!b}`);
            }
          }
        }
      }
    } finally {
      nat?.setThreads(before);
    }
  });
}

test('the TypeScript reference qgemmJs agrees with the f64 reference too', () => {
  const rnd = lcg(5);
  const N = 37, K = 150, M = 3;
  const w = gaussian(N * K, rnd);
  for (const { p, deq } of [packBf16(w, N, K), packBf16(w, N, K, true), packFp8(w, N, K), packFp8(w, N, K, true), packF32(w, N, K, true)]) {
    const x = gaussian(M * K, rnd);
    check(qgemmJs(x, M, p), reference(p.format === 'f32' ? x : roundActivations(x), M, deq, N, K, null), K, `js ${p.format} ${p.layout ?? 'rows'}`);
  }
});

test('the panel layout: packMatrix (native qpanelPack when built) equals the TypeScript reorder; shapes and errors', () => {
  const rnd = lcg(8);
  for (const [N, K] of [[1, 1], [5, 7], [16, 2], [33, 129], [300, 64]] as [number, number][]) {
    const w = gaussian(N * K, rnd);
    w[0] = 1 + 2 ** -8; // a tie: rounds to even (1), as f32ToBf16Bits does
    const p = packMatrix(w, N, K, 'bf16', 'test', 'panels');
    assert.equal(p.layout, 'panels');
    assert.equal(p.data.length, packedLength(N, K, 'panels'));
    assert.equal(p.data.length, Math.ceil(N / 16) * 16 * (K + (K % 2)));
    assert.deepEqual(p.data, panelsFromRows(Uint16Array.from(w, f32ToBf16Bits), N, K), `[${N}, ${K}]`);
    // row-major and panels hold the same values
    const rows = packMatrix(w, N, K, 'bf16', 'test', 'rows');
    assert.deepEqual(dequantPacked(p), dequantPacked(rows));
    // f32 panels: the values themselves, one K index per 16-row panel row, no pad
    const f = packMatrix(w, N, K, 'f32');
    assert.equal(f.layout, 'panels');
    assert.ok(f.data instanceof Float32Array);
    assert.equal(f.data.length, packedLength(N, K, 'panels', 'f32'));
    assert.equal(f.data.length, Math.ceil(N / 16) * 16 * K);
    assert.deepEqual(f.data, f32PanelsFromRows(w, N, K), `f32 [${N}, ${K}]`);
    assert.deepEqual(dequantPacked(f), w);
    if (N > 2) assert.deepEqual(dequantPacked(f, 1, N - 1), w.subarray(K, (N - 1) * K));
    // fp8 panels: the codes reordered (native reorder = TypeScript reference, every code at its offset, zero pad),
    // the same dequantized values as row-major
    const r8 = packMatrix(w, N, K, 'fp8', 'test', 'rows'), p8 = packMatrix(w, N, K, 'fp8', 'test', 'panels');
    assert.equal(p8.layout, 'panels');
    assert.equal(p8.data.length, Math.ceil(N / 16) * 16 * Math.ceil(K / 4) * 4);
    assert.deepEqual(p8.data, fp8PanelsFromRows(r8.data as Uint8Array, N, K), `fp8 [${N}, ${K}]`);
    const seen = new Uint8Array(p8.data.length);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) { const o = fp8PanelOffset(n, k, K); assert.equal(seen[o], 0); seen[o] = 1; assert.equal(p8.data[o], r8.data[n * K + k]); }
    for (let o = 0; o < seen.length; o++) if (!seen[o]) assert.equal(p8.data[o], 0, `fp8 pad at ${o}`);
    assert.deepEqual(dequantPacked(p8), dequantPacked(r8));
    if (N > 2) assert.deepEqual(dequantPacked(p8, 1, N - 1), dequantPacked(r8, 1, N - 1));
  }
  // The rounding itself (native r1_round_bf16: 16 or 8 values per step where AVX-512 / AVX2 run, the scalar loop
  // for the tail and elsewhere) on values that test each branch: ties up and down, overflow to infinity, signed
  // zeros, subnormals and random finite bit patterns through the packer (which takes finite weights only); NaNs
  // (kept NaN with sign and top payload bits, made quiet) and infinities through a bf16 KV cache's append.
  const special = [0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0x7f7fffff, 0xff7f8000, 0x7f7f7fff, 0x00000000,
    0x80000000, 0x00000001, 0x807fffff, 0x00008000, 0x00018000, 0x0000ffff, 0x3f7fffff, 0x7f800001, 0xff812345,
    0x7fc00000, 0x7f800000, 0xff800000];
  const bits = (finite: boolean, n: number): Uint32Array => {
    const sp = special.filter((u) => !finite || (u & 0x7f800000) !== 0x7f800000);
    const raw = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      let u = (rnd() * 2 ** 32) >>> 0;
      while (finite && (u & 0x7f800000) === 0x7f800000) u = (rnd() * 2 ** 32) >>> 0;
      raw[i] = i < sp.length ? sp[i]! : u;
    }
    for (let i = 0; i < sp.length; i++) raw[n - 1 - i] = sp[i]!; // again in the scalar tail of the last row
    return raw;
  };
  const rounded = (raw: Uint32Array): Uint16Array => {
    const f = new Float32Array(raw.buffer);
    return Uint16Array.from(raw, (u, i) => ((u & 0x7fffffff) >>> 0 > 0x7f800000 ? (u >>> 16) | 0x40 : f32ToBf16Bits(f[i]!)));
  };
  const fin = bits(true, 37 * 41);
  assert.deepEqual(packMatrix(new Float32Array(fin.buffer), 37, 41, 'bf16', 'test', 'panels').data, panelsFromRows(rounded(fin), 37, 41), 'special values');
  const nat = loadNative();
  if (nat) {
    const rows = 37, D = 41, kb = bits(false, rows * D), vb = bits(false, rows * D);
    const kc = new Uint16Array(rows * D), vc = new Uint16Array(rows * D);
    nat.attentionRagged(new Float32Array(rows * D), new Float32Array(rows * D), new Float32Array(kb.buffer), new Float32Array(vb.buffer),
      [kc], [vc], [{ n: rows, past: 0, cap: rows, kOffset: 0, vOffset: 0 }], 1, 1, D, D, 1, false);
    assert.deepEqual(kc, rounded(kb), 'keys appended to a bf16 cache');
    assert.deepEqual(vc, rounded(vb), 'values appended to a bf16 cache');
  }
  assert.throws(() => packMatrix(new Float32Array(4), 2, 2, 'f32', 'test', 'rows'), /'panels' layout only/);
  assert.throws(() => checkPacked({ format: 'f32', rows: 2, cols: 2, data: new Float32Array(4), scaleInv: null }), /'panels' layout only/);
  assert.throws(() => checkPacked({ format: 'f32', rows: 2, cols: 2, data: new Uint16Array(32), scaleInv: null, layout: 'panels' }), /Float32Array/);
  assert.throws(() => checkPacked({ format: 'f32', rows: 2, cols: 3, data: new Float32Array(64), scaleInv: null, layout: 'panels' }), /in 16-row panels \(48\)/);
  assert.throws(() => checkPacked({ format: 'bf16', rows: 2, cols: 2, data: new Uint16Array(4), scaleInv: null, layout: 'panels' }), /in 16-row panels \(32\)/);
  assert.throws(() => checkPacked({ format: 'bf16', rows: 2, cols: 2, data: new Uint16Array(4), scaleInv: null, layout: 'tiles' as 'rows' }), /unknown layout 'tiles'/);
});

test('dequantPacked is bit-identical to dequantizeBlockwise / the bf16 bit pattern (every non-NaN E4M3 code)', () => {
  const N = 200, K = 300;
  // Every E4M3 code except the NaNs 0x7f / 0xff, spread over blocks with different scales.
  const codes = new Uint8Array(N * K);
  for (let i = 0; i < codes.length; i++) { let c = (i * 97) & 0xff; if ((c & 0x7f) === 0x7f) c ^= 1; codes[i] = c; }
  const scaleInv = new Float32Array([0.001, 3.5, 1e-30, 7.25, 1 / 3, 2 ** -20]);
  const p: PackedMatrix = { format: 'fp8', rows: N, cols: K, data: codes, scaleInv };
  const want = dequantizeBlockwise(codes, scaleInv, N, K);
  const got = dequantPacked(p);
  assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer));
  const part = dequantPacked(p, 130, 170);
  assert.deepEqual(new Uint32Array(part.buffer), new Uint32Array(want.slice(130 * K, 170 * K).buffer));
  const bits = new Uint16Array(N * K);
  for (let i = 0; i < bits.length; i++) bits[i] = (i * 2654435761) >>> 16;
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0x7f80) === 0x7f80) bits[i] = bits[i]! & 0xbfff; // no inf/NaN
  const gb = dequantPacked({ format: 'bf16', rows: N, cols: K, data: bits, scaleInv: null });
  for (let i = 0; i < bits.length; i++) assert.equal(new Uint32Array(gb.buffer, i * 4, 1)[0], bits[i]! << 16 >>> 0);
  const panels: PackedMatrix = { format: 'bf16', rows: N, cols: K, data: panelsFromRows(bits, N, K), scaleInv: null, layout: 'panels' };
  assert.deepEqual(new Uint32Array(dequantPacked(panels).buffer), new Uint32Array(gb.buffer));
  assert.deepEqual(new Uint32Array(dequantPacked(panels, 17, 35).buffer), new Uint32Array(gb.slice(17 * K, 35 * K).buffer));
});

test('fp8 GEMV over every E4M3 code (subnormals included) with |x| from 2^-130 to 2^110 stays within f32 rounding (rows and panels)', () => {
  const N = 260, K = 300;
  const codes = new Uint8Array(N * K);
  for (let i = 0; i < codes.length; i++) { let c = (i * 101 + (i >> 7)) & 0xff; if ((c & 0x7f) === 0x7f) c ^= 1; codes[i] = c; }
  const sr = Math.ceil(N / 128), sc = Math.ceil(K / 128);
  const scaleInv = Float32Array.from({ length: sr * sc }, (_, i) => 2 ** (i * 3 - 30) * (1 + i / 10)); // <= 2^-6: results stay finite
  const rowsP: PackedMatrix = { format: 'fp8', rows: N, cols: K, data: codes, scaleInv };
  const panelsP: PackedMatrix = { format: 'fp8', rows: N, cols: K, data: fp8PanelsFromRows(codes, N, K), scaleInv, layout: 'panels' };
  const deq = dequantizeBlockwise(codes, scaleInv, N, K);
  for (const p of [rowsP, panelsP]) for (const range of [1, 2 ** 100, 2 ** -100, 2 ** 110]) {
    const rnd = lcg(range === 1 ? 1 : 2);
    const x = gaussian(K, rnd, range);
    x[5] = range * 3; // one large entry sets the pre-scale; the rest are smaller, some much smaller
    for (let i = 0; i < K; i += 17) x[i]! *= 2 ** -30;
    for (const M of [1, 2]) {
      const xm = new Float32Array(M * K);
      for (let i = 0; i < M; i++) xm.set(x, i * K);
      check(qgemm(xm, M, p), reference(roundActivations(xm), M, deq, N, K, null), K, `fp8 ${p.layout ?? 'rows'} every code, |x| ~ ${range}, M=${M}`);
    }
  }
});

test('native qgemm rejects bad arguments with RangeError/TypeError', { skip: !qgemmNative() }, () => {
  const n = qgemmNative()!;
  const y = new Float32Array(4), x = new Float32Array(8);
  assert.throws(() => n.qgemm(y, x, new Uint16Array(7), null, null, 1, 4, 2, 0), RangeError);
  assert.throws(() => n.qgemm(y, x, new Uint8Array(8), null, null, 1, 4, 2, 0), TypeError); // fp8 without scales
  assert.throws(() => n.qgemm(y, x, new Uint8Array(8), new Float32Array(2), null, 1, 4, 2, 0), RangeError);
  assert.throws(() => n.qgemm(y, x, new Int16Array(8) as unknown as Uint16Array, null, null, 1, 4, 2, 0), TypeError);
  assert.throws(() => n.qgemm(new Float32Array(3), x, new Uint16Array(8), null, null, 1, 4, 2, 0), RangeError);
  assert.throws(() => n.qgemm(y, x, new Uint16Array(8), null, new Float32Array(3), 1, 4, 2, 0), RangeError);
  // panel layout: 16 rows x even K; bf16 only; layout 0 or 1
  assert.throws(() => n.qgemm(y, x, new Uint16Array(8), null, null, 1, 4, 2, 1), /16-row panels needs 32/);
  assert.throws(() => n.qgemm(y, x, new Uint8Array(32), new Float32Array(1), null, 1, 4, 2, 1), /16-row panels needs 64/); // fp8: K to a multiple of 4
  assert.throws(() => n.qgemm(y, x, new Uint8Array(64), null, null, 1, 4, 2, 1), /scaleInv is required/);
  assert.throws(() => n.qpanelPack(new Uint8Array(64), new Float32Array(8), 4, 2), TypeError); // fp8 panels reorder codes
  assert.throws(() => n.qgemm(y, x, new Uint16Array(32), null, null, 1, 4, 2, 2 as 1), RangeError);
  assert.throws(() => n.qpanelPack(new Uint16Array(31), new Float32Array(8), 4, 2), /needs 32/);
  n.qgemm(y, x, new Uint16Array(32), null, null, 1, 4, 2, 1);
  assert.deepEqual(Array.from(y), [0, 0, 0, 0]);
  // f32 weights: panels only, 16 rows x K (no pad)
  assert.throws(() => n.qgemm(y, x, new Float32Array(8), null, null, 1, 4, 2, 0), /panels \(layout 1\) only/);
  assert.throws(() => n.qgemm(y, x, new Float32Array(8), null, null, 1, 4, 2, 1), /16-row panels needs 32/);
  assert.throws(() => n.qpanelPack(new Float32Array(31), new Float32Array(8), 4, 2), /needs 32/);
  assert.throws(() => n.qpanelPack(new Int32Array(32) as unknown as Float32Array, new Float32Array(8), 4, 2), /Uint16Array .*, a Float32Array .* or a Uint8Array/);
  assert.throws(() => n.qpanelPreferred('int4' as 'fp8'), TypeError);
  assert.throws(() => n.qpanelPreferred(true as unknown as 'fp8'), TypeError);
  n.qgemm(y, x, new Float32Array(32), null, null, 1, 4, 2, 1);
  assert.deepEqual(Array.from(y), [0, 0, 0, 0]);
});

test('qgemmGlu / native qpanelGlu: silu(gate) * up from [gate; up] panels, null where it cannot run, clear errors', { skip: !qgemmNative() }, () => {
  const n = qgemmNative()!;
  const rnd = lcg(11), N = 32, K = 6, M = 3;
  const w = gaussian(2 * N * K, rnd), x = gaussian(M * K, rnd);
  const p = packBf16(w, 2 * N, K, true).p;
  const got = qgemmGlu(x, M, p);
  if (panelsPreferred('bf16')) {
    assert.ok(got, 'runs where the bf16 panel kernels do');
    const y = qgemm(x, M, p), want = new Float32Array(M * N); // the product of [gate; up], then silu(gate) * up in f64
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      const g = y[i * 2 * N + j]!, u = y[i * 2 * N + N + j]!;
      want[i * N + j] = (g / (1 + Math.exp(-g))) * u;
    }
    for (let i = 0; i < M * N; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * (1 + Math.abs(want[i]!)), `${i}: ${got[i]} vs ${want[i]}`);
  } else assert.equal(got, null, 'null where the panel kernels do not run');
  assert.equal(qgemmGlu(x, M, packBf16(w, 2 * N, K).p), null, 'rows layout');
  assert.equal(qgemmGlu(x, M, packBf16(w.subarray(0, 31 * K), 31, K, true).p), null, 'odd rows: not a pair');
  assert.throws(() => qgemmGlu(x.subarray(0, 5), M, p), /x holds 5 values, need 3 x 6/);
  assert.throws(() => qgemmGlu(x, M, p, new Float32Array(10)), /y holds 10 values, need 3 x 32/);
  if (!n.qpanelGlu) return;
  const y = new Float32Array(M * N);
  assert.throws(() => n.qpanelGlu!(y, x, new Uint16Array(10), null, M, N, K), /16-row panels needs 384/);
  assert.throws(() => n.qpanelGlu!(y, x, new Uint8Array(512), null, M, N, K), /scaleInv is required/);
  assert.throws(() => n.qpanelGlu!(new Float32Array(3), x, p.data, null, M, N, K), RangeError);
  assert.equal(n.qpanelGlu!(y, x, new Uint16Array(16 * 6 * 3), null, M, 24, K), false, 'N = 24: not whole panels');
});

// The fp8 panels' GFNI decode (native/e4m3_bf16.h) must give the table decode's bf16 words, so the same products to
// the last bit: the decoder is picked once per process, so a child with R1_NO_GFNI computes the same case by table.
const gfni = loadNative()?.gfni ?? false;
test('fp8 panels: the GFNI decode equals the table decode bit for bit (normal, subnormal, zero and every code; M = 1, 2, 16, 40; GLU)', { skip: !gfni && 'the kernels here do not use GFNI' }, () => {
  const mine = fp8DecodeCase();
  assert.ok(mine.length >= 12);
  const script = fileURLToPath(new URL('./fp8-decode-case.js', import.meta.url));
  const r = spawnSync(process.execPath, [script, '--print'], { env: { ...process.env, R1_NO_GFNI: '1' }, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  const theirs = r.stdout.trim().split('\n');
  assert.equal(theirs.length, mine.length);
  for (let i = 0; i < mine.length; i++) {
    const a = Buffer.from(mine[i]!.buffer, mine[i]!.byteOffset, mine[i]!.byteLength).toString('base64');
    assert.ok(a === theirs[i], `product ${i}: GFNI and table decodes differ`);
    assert.ok(mine[i]!.some((v) => v !== 0) && mine[i]!.every(Number.isFinite), `product ${i}: finite, not all zero`);
  }
});

// The kernels are picked once per process from the CPU (R1_ISA caps it): rerun this file with each lower ISA so the
// AVX-512 without bf16 dot products, AVX2 and portable paths are checked too on a machine that has more.
const ISA_LEVELS = ['scalar', 'avx2', 'avx512', 'avx512bf16'];
const isa = loadNative()?.isa;
// R1_QSMALL_NO_VBMI: the bf16-dot kernels' fp8 decode without byte permutes (AVX512_BF16 CPUs lacking AVX512_VBMI);
// R1_NO_GFNI: the fp8 panels decoded by table only (AVX512_BF16 CPUs lacking GFNI).
for (const lower of ['avx512', 'avx2', 'scalar', 'avx512bf16 without VBMI', 'avx512bf16 without GFNI']) {
  const level = lower.split(' ')[0]!;
  const skip = !qgemmNative() || process.env['R1_QGEMM_TEST_CHILD'] === '1' ||
    (level === lower ? ISA_LEVELS.indexOf(level) >= ISA_LEVELS.indexOf(isa ?? 'scalar') : isa !== level) ||
    (lower.endsWith('GFNI') && !gfni);
  test(`the same checks with R1_ISA=${lower}`, { skip }, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, R1_ISA: level, R1_QGEMM_TEST_CHILD: '1' };
    if (lower.endsWith('VBMI')) env['R1_QSMALL_NO_VBMI'] = '1';
    if (lower.endsWith('GFNI')) env['R1_NO_GFNI'] = '1';
    delete env['NODE_TEST_CONTEXT']; // a fresh runner that prints its own TAP, not a child of this one
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', fileURLToPath(import.meta.url)], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout.slice(-3000) + r.stderr.slice(-2000));
    assert.match(r.stdout, /# fail 0/);
  });
}
