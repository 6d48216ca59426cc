import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  E4M3, E5M2, decodeTable, encodeFp8, encodeFp8Array, encodeFp8ArrayJs, decodeFp8Array, decodeFp8ArrayJs, fp8Native,
  setFp8Native, type Fp8Format,
} from '../../src/quant/fp8.js';
import { Rng } from '../../src/tensor/random.js';

const N = fp8Native();
const SKIP = N ? false : 'native addon not built (or built without the fp8 entry points)';
const FORMATS: Fp8Format[] = ['e4m3', 'e5m2'];
const fcode = (f: Fp8Format) => (f === 'e4m3' ? 0 : 1);

function nativeEncode(src: Float32Array | Float64Array, f: Fp8Format, saturate: boolean): Uint8Array {
  const out = new Uint8Array(src.length);
  N!.fp8Encode(out, src, src.length, fcode(f), saturate);
  return out;
}

/** First index where the two code arrays differ, with the input, or null. */
function firstMismatch(src: ArrayLike<number>, a: Uint8Array, b: Uint8Array): string | null {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      const x = src[i]!;
      const bits = src instanceof Float32Array ? new Uint32Array(new Float32Array([x]).buffer)[0]!.toString(16) : String(x);
      return `index ${i}: x = ${x} (bits ${bits}) native 0x${a[i]!.toString(16)} js 0x${b[i]!.toString(16)}`;
    }
  }
  return null;
}

function checkAll(src: Float32Array | Float64Array, what: string): void {
  for (const f of FORMATS) {
    for (const saturate of [true, false]) {
      const js = encodeFp8ArrayJs(src, f, { saturate });
      const nat = nativeEncode(src, f, saturate);
      const bad = firstMismatch(src, nat, js);
      assert.equal(bad, null, `${what} ${f} saturate=${saturate}: ${bad}`);
    }
  }
}

test('native fp8 encode: every f32 top-16-bit pattern x low-bit patterns equals the TS codec', { skip: SKIP }, () => {
  const lows = [0x0000, 0x0001, 0x3fff, 0x4000, 0x7fff, 0x8000, 0x8001, 0xbfff, 0xc000, 0xffff];
  const rng = new Rng(11);
  for (let i = 0; i < 4; i++) lows.push(rng.nextU32() & 0xffff);
  const u = new Uint32Array(65536 * lows.length);
  let p = 0;
  for (const lo of lows) for (let hi = 0; hi < 65536; hi++) u[p++] = ((hi << 16) | lo) >>> 0;
  checkAll(new Float32Array(u.buffer), 'f32 bit patterns');
});

function nextUp32(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (x === 0) { u[0] = 1; return f[0]!; }
  u[0] = x > 0 ? u[0]! + 1 : u[0]! - 1;
  return f[0]!;
}
function nextDown32(x: number): number {
  return -nextUp32(-x);
}
function nextUp64(x: number): number {
  const f = new Float64Array([x]);
  const u = new BigUint64Array(f.buffer);
  if (x === 0) { u[0] = 1n; return f[0]!; }
  u[0] = x > 0 ? u[0]! + 1n : u[0]! - 1n;
  return f[0]!;
}
function nextDown64(x: number): number {
  return -nextUp64(-x);
}

/** Every value at, and one f32 / f64 ulp either side of, each rounding boundary and each code's value, both signs. */
function boundaries(f: Fp8Format): number[] {
  const t = decodeTable(f);
  const s = f === 'e4m3' ? E4M3 : E5M2;
  const pts: number[] = [];
  for (let c = 0; c <= s.maxCode; c++) {
    const v = t[c]!;
    const mid = c < s.maxCode ? (v + t[c + 1]!) / 2 : s.max + 2 ** (Math.floor(Math.log2(s.max)) - s.mantissaBits) / 2;
    for (const y of [v, mid]) pts.push(y, nextUp32(y), nextDown32(y), nextUp64(y), nextDown64(y));
  }
  pts.push(s.minSubnormal / 2, s.minSubnormal / 4, s.max * 2, 1e30, 3.4028234663852886e38, 1e300, Infinity, NaN, 0, 1e-40, 1e-320);
  return [...pts, ...pts.map((x) => -x)];
}

test('native fp8 encode: every rounding boundary (f32 and f64 inputs) equals the TS codec', { skip: SKIP }, () => {
  for (const f of FORMATS) {
    const pts = boundaries(f);
    checkAll(new Float32Array(pts), `f32 boundaries of ${f}`);
    checkAll(new Float64Array(pts), `f64 boundaries of ${f}`);
  }
});

test('native fp8 encode: random f32 and f64 arrays (multithreaded sizes, random bit patterns)', { skip: SKIP }, () => {
  const rng = new Rng(5);
  const n = 200_003;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * 2 ** (rng.int(60) - 30);
  checkAll(a, 'random normal f32');
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = rng.nextU32();
  checkAll(new Float32Array(bits.buffer), 'random f32 bits');
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal() * 2 ** (rng.int(60) - 30);
  checkAll(d, 'random normal f64');
  const dbits = new Uint32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) dbits[i] = rng.nextU32();
  checkAll(new Float64Array(dbits.buffer), 'random f64 bits');
});

test('native fp8 decode: all codes bit-exact against the table, and on a long array', { skip: SKIP }, () => {
  for (const f of FORMATS) {
    const codes = new Uint8Array(256 * 300).map((_, i) => i & 0xff);
    const nat = new Float32Array(codes.length);
    N!.fp8Decode(nat, codes, codes.length, fcode(f));
    const js = decodeFp8ArrayJs(codes, f);
    const nb = new Uint32Array(nat.buffer), jb = new Uint32Array(js.buffer);
    for (let i = 0; i < codes.length; i++) {
      if (Number.isNaN(js[i])) assert.ok(Number.isNaN(nat[i]), `${f} code 0x${codes[i]!.toString(16)}`);
      else assert.equal(nb[i], jb[i], `${f} code 0x${codes[i]!.toString(16)}: ${nat[i]} vs ${js[i]}`);
    }
  }
});

test('bulk functions take the native path and agree with the references; views with byte offsets work', { skip: SKIP }, () => {
  const rng = new Rng(9);
  const buf = new Float32Array(5000);
  for (let i = 0; i < buf.length; i++) buf[i] = rng.normal() * 300;
  const view = buf.subarray(37, 4037);
  for (const f of FORMATS) {
    const outBuf = new Uint8Array(4100);
    const out = outBuf.subarray(50, 4050);
    encodeFp8Array(view, f, {}, out);
    assert.deepEqual(out, encodeFp8ArrayJs(view, f));
    assert.equal(outBuf[49], 0);
    assert.equal(outBuf[4050], 0);
    for (let i = 0; i < 20; i++) assert.equal(out[i], encodeFp8(view[i]!, f));
    const dec = decodeFp8Array(out, f);
    assert.deepEqual(dec, decodeFp8ArrayJs(out, f));
    // The switch really changes the path and both answer the same.
    setFp8Native(false);
    try {
      assert.equal(fp8Native(), null);
      assert.deepEqual(encodeFp8Array(view, f, { saturate: false }), nativeEncode(view, f, false));
    } finally {
      setFp8Native(true);
    }
    assert.notEqual(fp8Native(), null);
  }
  // Short arrays and plain arrays stay on the TS path and still work.
  assert.deepEqual([...encodeFp8Array([1, -2, 448, 1e9], 'e4m3')], [0x38, 0xc0, 0x7e, 0x7e]);
  assert.throws(() => encodeFp8Array(new Float32Array(100), 'e4m3', {}, new Uint8Array(99)), RangeError);
  assert.throws(() => decodeFp8Array(new Uint8Array(100), 'e4m3', new Float32Array(99)), RangeError);
});

test('native fp8 entry points reject bad arguments instead of crashing', { skip: SKIP }, () => {
  const n = N!;
  const x = new Float32Array(10), c = new Uint8Array(10);
  assert.throws(() => n.fp8Encode(c, x, 11, 0, true), RangeError);
  assert.throws(() => n.fp8Encode(new Uint8Array(5), x, 10, 0, true), RangeError);
  assert.throws(() => n.fp8Encode(c, x, 10, 2, true), RangeError);
  assert.throws(() => n.fp8Encode(c, x, -1, 0, true), RangeError);
  assert.throws(() => n.fp8Encode(c, x, 1.5, 0, true), RangeError);
  assert.throws(() => n.fp8Encode(c, new Int32Array(10) as unknown as Float32Array, 10, 0, true), TypeError);
  assert.throws(() => n.fp8Encode(x as unknown as Uint8Array, x, 10, 0, true), TypeError);
  assert.throws(() => n.fp8Decode(new Float32Array(9), c, 10, 0), RangeError);
  assert.throws(() => n.fp8Decode(x, new Uint8Array(9), 10, 1), RangeError);
  assert.throws(() => n.fp8Decode(new Float64Array(10) as unknown as Float32Array, c, 10, 1), TypeError);
  assert.throws(() => (n.fp8Decode as unknown as (a: unknown) => void)(x), TypeError);
  n.fp8Encode(new Uint8Array(0), new Float32Array(0), 0, 0, true); // empty is fine
});
