import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  E4M3, E5M2, E4M3_TABLE, E5M2_TABLE, decodeFp8, encodeFp8, encodeFp8Array, decodeFp8Array, isFp8NaN, type Fp8Format,
} from '../../src/quant/fp8.js';

const FORMATS: Fp8Format[] = ['e4m3', 'e5m2'];
const table = (f: Fp8Format) => (f === 'e4m3' ? E4M3_TABLE : E5M2_TABLE);
const spec = (f: Fp8Format) => (f === 'e4m3' ? E4M3 : E5M2);

test('known values (arXiv:2209.05433 Table 1)', () => {
  // E4M3fn
  assert.equal(decodeFp8(0x7e, 'e4m3'), 448);
  assert.equal(decodeFp8(0x77, 'e4m3'), 240);
  assert.equal(decodeFp8(0x01, 'e4m3'), 2 ** -9);
  assert.equal(decodeFp8(0x08, 'e4m3'), 2 ** -6);
  assert.equal(decodeFp8(0x38, 'e4m3'), 1);
  assert.equal(decodeFp8(0xb8, 'e4m3'), -1);
  assert.equal(decodeFp8(0xfe, 'e4m3'), -448);
  assert.ok(Number.isNaN(decodeFp8(0x7f, 'e4m3')));
  assert.ok(Number.isNaN(decodeFp8(0xff, 'e4m3')));
  assert.equal(decodeFp8(0x78, 'e4m3'), 256); // exponent 1111 is a normal binade in the fn variant
  assert.ok(Object.is(decodeFp8(0x80, 'e4m3'), -0));
  // E5M2
  assert.equal(decodeFp8(0x7b, 'e5m2'), 57344);
  assert.equal(decodeFp8(0x01, 'e5m2'), 2 ** -16);
  assert.equal(decodeFp8(0x04, 'e5m2'), 2 ** -14);
  assert.equal(decodeFp8(0x3c, 'e5m2'), 1);
  assert.equal(decodeFp8(0x7c, 'e5m2'), Infinity);
  assert.equal(decodeFp8(0xfc, 'e5m2'), -Infinity);
  for (const c of [0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff]) assert.ok(Number.isNaN(decodeFp8(c, 'e5m2')));
  // the other direction
  assert.equal(encodeFp8(448, 'e4m3'), 0x7e);
  assert.equal(encodeFp8(240, 'e4m3'), 0x77);
  assert.equal(encodeFp8(2 ** -9, 'e4m3'), 0x01);
  assert.equal(encodeFp8(57344, 'e5m2'), 0x7b);
  assert.equal(encodeFp8(2 ** -16, 'e5m2'), 0x01);
  assert.equal(E4M3.max, 448);
  assert.equal(E5M2.max, 57344);
});

test('NaN and infinity counts per format', () => {
  let nan4 = 0, nan5 = 0, inf5 = 0;
  for (let c = 0; c < 256; c++) {
    if (Number.isNaN(E4M3_TABLE[c])) nan4++;
    if (Number.isNaN(E5M2_TABLE[c])) nan5++;
    if (!Number.isFinite(E5M2_TABLE[c]!) && !Number.isNaN(E5M2_TABLE[c])) inf5++;
    assert.equal(isFp8NaN(c, 'e4m3'), Number.isNaN(E4M3_TABLE[c]));
  }
  assert.equal(nan4, 2); // S.1111.111 only
  assert.equal(nan5, 6); // S.11111.{01,10,11}
  assert.equal(inf5, 2);
  assert.ok(E4M3_TABLE.every((v) => !Number.isFinite(v) ? Number.isNaN(v) : true), 'E4M3fn has no infinities');
});

for (const f of FORMATS) {
  test(`${f}: decode then encode round-trips every non-NaN code (both saturation modes)`, () => {
    const t = table(f);
    for (let c = 0; c < 256; c++) {
      const v = t[c]!;
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(t[encodeFp8(v, f)]!));
        continue;
      }
      assert.equal(encodeFp8(v, f, { saturate: false }), c, `code 0x${c.toString(16)} = ${v}`);
      if (Number.isFinite(v)) assert.equal(encodeFp8(v, f, { saturate: true }), c);
    }
  });

  test(`${f}: positive finite codes are strictly increasing (the rounding search relies on it)`, () => {
    const t = table(f);
    for (let c = 1; c <= spec(f).maxCode; c++) assert.ok(t[c]! > t[c - 1]!, `code ${c}`);
  });

  test(`${f}: rounding at, just below and just above every midpoint between neighbours`, () => {
    const t = table(f);
    const s = spec(f);
    for (const sign of [1, -1]) {
      const sb = sign < 0 ? 0x80 : 0;
      for (let c = 0; c < s.maxCode; c++) {
        const lo = t[c]!, hi = t[c + 1]!;
        const mid = (lo + hi) / 2;
        // Midpoints are exact in f32 too, so an f32 input can sit exactly on one.
        assert.equal(Math.fround(mid), mid);
        const even = (c & 1) === 0 ? c : c + 1;
        assert.equal(encodeFp8(sign * mid, f), sb | even, `tie between 0x${c.toString(16)} and 0x${(c + 1).toString(16)}`);
        // Nearest f32 values on either side of the midpoint.
        const below = nextDown32(mid), above = nextUp32(mid);
        assert.equal(encodeFp8(sign * below, f), sb | c, `just below midpoint of code ${c}`);
        assert.equal(encodeFp8(sign * above, f), sb | (c + 1), `just above midpoint of code ${c}`);
        // And the f32 array path agrees.
        const codes = encodeFp8Array(new Float32Array([sign * mid, sign * below, sign * above]), f);
        assert.deepEqual([...codes], [sb | even, sb | c, sb | (c + 1)]);
      }
    }
  });

  test(`${f}: overflow, saturation, infinities, NaN, signed zero, underflow`, () => {
    const s = spec(f);
    const overflow = s.infCode ?? s.nanCode;
    const topMid = s.max + 2 ** (Math.floor(Math.log2(s.max)) - s.mantissaBits) / 2; // 464 / 61440
    assert.equal(topMid, f === 'e4m3' ? 464 : 61440);
    // Saturating (default): everything beyond max clamps.
    for (const v of [s.max, topMid, topMid * 2, 1e30, Infinity]) {
      assert.equal(encodeFp8(v, f), s.maxCode, `saturate ${v}`);
      assert.equal(encodeFp8(-v, f), 0x80 | s.maxCode);
    }
    // Non-saturating: a tie at the top goes to even (448 = 0x7E even; 57344 = 0x7B odd -> overflow, like IEEE).
    assert.equal(encodeFp8(topMid, f, { saturate: false }), f === 'e4m3' ? s.maxCode : overflow);
    assert.equal(encodeFp8(nextDown32(topMid), f, { saturate: false }), s.maxCode);
    assert.equal(encodeFp8(nextUp32(topMid), f, { saturate: false }), overflow);
    assert.equal(encodeFp8(-1e30, f, { saturate: false }), 0x80 | overflow);
    assert.equal(encodeFp8(Infinity, f, { saturate: false }), overflow);
    assert.ok(Number.isNaN(decodeFp8(encodeFp8(NaN, f), f)));
    assert.ok(Number.isNaN(decodeFp8(encodeFp8(NaN, f, { saturate: false }), f)));
    assert.equal(encodeFp8(0, f), 0x00);
    assert.equal(encodeFp8(-0, f), 0x80);
    // Half the smallest subnormal is a tie between 0 (even) and code 1: rounds to zero; anything above rounds up.
    assert.equal(encodeFp8(s.minSubnormal / 2, f), 0);
    assert.equal(encodeFp8(nextUp32(s.minSubnormal / 2), f), 1);
    assert.equal(encodeFp8(-s.minSubnormal / 4, f), 0x80);
    // 1.5 * minSubnormal is a tie between codes 1 and 2: goes to 2 (even).
    assert.equal(encodeFp8(1.5 * s.minSubnormal, f), 2);
  });

  test(`${f}: bulk decode matches the table and bulk encode matches scalar on random f32`, () => {
    const codes = new Uint8Array(256).map((_, i) => i);
    const dec = decodeFp8Array(codes, f);
    for (let c = 0; c < 256; c++) assert.ok(Object.is(dec[c], table(f)[c]) || (Number.isNaN(dec[c]) && Number.isNaN(table(f)[c])));
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const xs = new Float32Array(5000).map(() => (rnd() - 0.5) * 2 ** (rnd() * 40 - 20));
    const enc = encodeFp8Array(xs, f);
    for (let i = 0; i < xs.length; i++) {
      assert.equal(enc[i], encodeFp8(xs[i]!, f));
      // Nearest: no other finite code is strictly closer.
      const v = table(f)[enc[i]!]!;
      const err = Math.abs(v - xs[i]!);
      if (Math.abs(xs[i]!) <= spec(f).max) {
        for (let c = 0; c < 256; c++) {
          const w = table(f)[c]!;
          if (Number.isFinite(w)) assert.ok(Math.abs(w - xs[i]!) >= err, `x=${xs[i]} got ${v}, but ${w} is closer`);
        }
      }
    }
  });
}

test('decodeFp8 rejects a non-byte code', () => {
  assert.throws(() => decodeFp8(256, 'e4m3'), RangeError);
  assert.throws(() => decodeFp8(1.5, 'e5m2'), RangeError);
});

function nextUp32(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (x >= 0) u[0] = u[0]! + 1;
  else u[0] = u[0]! - 1;
  return f[0]!;
}
function nextDown32(x: number): number {
  return -nextUp32(-x);
}
