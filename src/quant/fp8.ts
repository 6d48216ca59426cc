/**
 * FP8 codecs: E4M3 ("fn" variant) and E5M2, as in "FP8 Formats for Deep Learning" (Micikevicius et al. 2022,
 * arXiv:2209.05433, Table 1) and the OCP 8-bit floating point spec. These are the formats of DeepSeek-V3's FP8 training
 * (paper section 3.3: E4M3 for all tensors) and of its released checkpoints (safetensors dtype `F8_E4M3`).
 *
 *   E4M3fn: S.EEEE.MMM, bias 7. No infinities; S.1111.111 is NaN, so the largest finite is S.1111.110 = 1.75 * 2^8 = 448.
 *           Smallest subnormal 2^-9, smallest normal 2^-6.
 *   E5M2:   S.EEEEE.MM, bias 15, IEEE-754-like: exponent 11111 with mantissa 0 is +-inf, otherwise NaN.
 *           Largest finite 1.75 * 2^15 = 57344, smallest subnormal 2^-16, smallest normal 2^-14.
 *
 * Decoding is exact (every FP8 value is an f32 value). Encoding rounds to nearest, ties to even, from the exact input value
 * (a JS number; f32 inputs are exact in it), so it is correctly rounded with no double rounding. The positive finite codes
 * of both formats are ordered like the values they encode (code k+1 is the next value above code k), so rounding is a
 * search among the midpoints between neighbours; "ties to even" means the neighbour whose code is even (its last mantissa
 * bit is 0), exactly as in IEEE 754.
 *
 * Out of range: with `saturate: true` (default; what DeepSeek's quantization does, since values are pre-scaled by
 * amax/448 so only rounding can overshoot) anything beyond the largest finite (including +-inf) becomes +-max finite.
 * With `saturate: false` overflow follows the format: E4M3fn has no infinity so it becomes NaN (as torch's
 * `float8_e4m3fn` cast does); E5M2 overflows to +-inf, and +-inf stays +-inf. NaN always encodes as NaN.
 */

import { nativeAddonExports } from '../tensor/backends/native.js';

export type Fp8Format = 'e4m3' | 'e5m2';

export interface Fp8Spec {
  readonly format: Fp8Format;
  readonly exponentBits: number;
  readonly mantissaBits: number;
  readonly bias: number;
  /** Largest finite positive code (0x7E for E4M3fn, 0x7B for E5M2). */
  readonly maxCode: number;
  /** Largest finite value (448, 57344). */
  readonly max: number;
  /** Smallest positive subnormal (2^-9, 2^-16). */
  readonly minSubnormal: number;
  /** Smallest positive normal (2^-6, 2^-14). */
  readonly minNormal: number;
  /** The positive NaN code this encoder emits (0x7F for both; for E5M2 it is the quiet NaN S.11111.11). */
  readonly nanCode: number;
  /** +inf code, or null (E4M3fn has none). */
  readonly infCode: number | null;
  readonly hasInfinity: boolean;
}

export const E4M3: Fp8Spec = {
  format: 'e4m3', exponentBits: 4, mantissaBits: 3, bias: 7, maxCode: 0x7e, max: 448,
  minSubnormal: 2 ** -9, minNormal: 2 ** -6, nanCode: 0x7f, infCode: null, hasInfinity: false,
};

export const E5M2: Fp8Spec = {
  format: 'e5m2', exponentBits: 5, mantissaBits: 2, bias: 15, maxCode: 0x7b, max: 57344,
  minSubnormal: 2 ** -16, minNormal: 2 ** -14, nanCode: 0x7f, infCode: 0x7c, hasInfinity: true,
};

export function fp8Spec(format: Fp8Format): Fp8Spec {
  return format === 'e4m3' ? E4M3 : E5M2;
}

export interface Fp8EncodeOptions {
  /** Clamp out-of-range values (and infinities) to +-max finite. Default true. */
  saturate?: boolean;
}

/** Decode one code from first principles (used to build the tables). */
function decodeFromBits(spec: Fp8Spec, code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const m = spec.mantissaBits;
  const e = (code >> m) & ((1 << spec.exponentBits) - 1);
  const f = code & ((1 << m) - 1);
  const eMax = (1 << spec.exponentBits) - 1;
  if (spec.hasInfinity && e === eMax) return f === 0 ? sign * Infinity : NaN;
  if (!spec.hasInfinity && e === eMax && f === (1 << m) - 1) return NaN;
  if (e === 0) return sign * f * 2 ** (1 - spec.bias - m); // subnormal: 0.f * 2^(1-bias)
  return sign * (1 + f / (1 << m)) * 2 ** (e - spec.bias);
}

function buildTable(spec: Fp8Spec): Float32Array {
  const t = new Float32Array(256);
  for (let c = 0; c < 256; c++) t[c] = decodeFromBits(spec, c);
  return t;
}

/** All 256 codes of each format decoded (exact: every FP8 value is representable in f32). */
export const E4M3_TABLE: Readonly<Float32Array> = buildTable(E4M3);
export const E5M2_TABLE: Readonly<Float32Array> = buildTable(E5M2);

export function decodeTable(format: Fp8Format): Readonly<Float32Array> {
  return format === 'e4m3' ? E4M3_TABLE : E5M2_TABLE;
}

/**
 * Midpoints between neighbouring positive finite codes: MID[k] = (value(k) + value(k+1)) / 2 for k < maxCode, and
 * MID[maxCode] = max + half an ulp at the top binade (the overflow threshold IEEE rounding uses). All are exact in f64.
 */
function buildMidpoints(spec: Fp8Spec, table: Float32Array): Float64Array {
  const mid = new Float64Array(spec.maxCode + 1);
  for (let k = 0; k < spec.maxCode; k++) mid[k] = (table[k]! + table[k + 1]!) / 2;
  const topUlp = 2 ** (Math.floor(Math.log2(spec.max)) - spec.mantissaBits);
  mid[spec.maxCode] = spec.max + topUlp / 2;
  return mid;
}

const E4M3_MID = buildMidpoints(E4M3, E4M3_TABLE as Float32Array);
const E5M2_MID = buildMidpoints(E5M2, E5M2_TABLE as Float32Array);

/**
 * The code of |x| (finite, >= 0) rounded to nearest-even among codes 0..maxCode, or maxCode + 1 when it overflows.
 * Binary search for the first midpoint >= a: codes below it are too small, the code at it is the lower neighbour.
 */
function roundMagnitude(a: number, mid: Float64Array, maxCode: number): number {
  let lo = 0;
  let hi = maxCode + 1; // answer in [0, maxCode + 1]: first k with mid[k] >= a, or maxCode + 1 if none
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (mid[m]! < a) lo = m + 1;
    else hi = m;
  }
  // Now mid[lo-1] < a <= mid[lo] (when they exist): a lies between value(lo) and value(lo+1), nearer value(lo) unless tie.
  if (lo <= maxCode && a === mid[lo]) {
    // Exactly halfway between code lo and code lo+1: ties to even (last mantissa bit 0).
    return (lo & 1) === 0 ? lo : lo + 1;
  }
  return lo;
}

/** Encode one number (exact input) to an FP8 code with round-to-nearest-even. */
export function encodeFp8(x: number, format: Fp8Format, opts: Fp8EncodeOptions = {}): number {
  const spec = format === 'e4m3' ? E4M3 : E5M2;
  const mid = format === 'e4m3' ? E4M3_MID : E5M2_MID;
  return encodeWith(x, spec, mid, opts.saturate ?? true);
}

function encodeWith(x: number, spec: Fp8Spec, mid: Float64Array, saturate: boolean): number {
  if (Number.isNaN(x)) return spec.nanCode;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  if (a === Infinity) {
    if (saturate) return sign | spec.maxCode;
    return spec.infCode !== null ? sign | spec.infCode : sign | spec.nanCode;
  }
  const k = roundMagnitude(a, mid, spec.maxCode);
  if (k > spec.maxCode) {
    if (saturate) return sign | spec.maxCode;
    return spec.infCode !== null ? sign | spec.infCode : sign | spec.nanCode;
  }
  return sign | k;
}

/** Decode one code. */
export function decodeFp8(code: number, format: Fp8Format): number {
  if (!Number.isInteger(code) || code < 0 || code > 255) throw new RangeError(`decodeFp8: code must be an integer in 0..255, got ${code}`);
  return (format === 'e4m3' ? E4M3_TABLE : E5M2_TABLE)[code]!;
}

/**
 * Encode an array (f32 or f64 values) to FP8 codes. `out` may be given to avoid an allocation. Float32Array and
 * Float64Array inputs of at least NATIVE_MIN_LENGTH values run in the native addon (native/fp8.c) when it is loaded;
 * the result is bit-identical to `encodeFp8ArrayJs`, the reference (test/quant/fp8-native.test.ts checks it).
 */
export function encodeFp8Array(src: ArrayLike<number>, format: Fp8Format, opts: Fp8EncodeOptions = {}, out?: Uint8Array): Uint8Array {
  const dst = out ?? new Uint8Array(src.length);
  if (dst.length < src.length) throw new RangeError(`encodeFp8Array: output holds ${dst.length} codes, need ${src.length}`);
  if (src.length >= NATIVE_MIN_LENGTH && (src instanceof Float32Array || src instanceof Float64Array)) {
    const n = fp8Native();
    if (n) {
      n.fp8Encode(dst, src, src.length, format === 'e4m3' ? 0 : 1, opts.saturate ?? true);
      return dst;
    }
  }
  return encodeFp8ArrayJs(src, format, opts, dst);
}

/** The TypeScript reference of `encodeFp8Array` (never native). */
export function encodeFp8ArrayJs(src: ArrayLike<number>, format: Fp8Format, opts: Fp8EncodeOptions = {}, out?: Uint8Array): Uint8Array {
  const spec = format === 'e4m3' ? E4M3 : E5M2;
  const mid = format === 'e4m3' ? E4M3_MID : E5M2_MID;
  const saturate = opts.saturate ?? true;
  const dst = out ?? new Uint8Array(src.length);
  if (dst.length < src.length) throw new RangeError(`encodeFp8Array: output holds ${dst.length} codes, need ${src.length}`);
  for (let i = 0; i < src.length; i++) dst[i] = encodeWith(src[i]!, spec, mid, saturate);
  return dst;
}

/** Decode FP8 codes to f32 by table lookup. `out` may be given to avoid an allocation. Native when loaded (as above). */
export function decodeFp8Array(codes: Uint8Array, format: Fp8Format, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(codes.length);
  if (dst.length < codes.length) throw new RangeError(`decodeFp8Array: output holds ${dst.length} values, need ${codes.length}`);
  if (codes.length >= NATIVE_MIN_LENGTH) {
    const n = fp8Native();
    if (n) {
      n.fp8Decode(dst, codes, codes.length, format === 'e4m3' ? 0 : 1);
      return dst;
    }
  }
  return decodeFp8ArrayJs(codes, format, dst);
}

/** The TypeScript reference of `decodeFp8Array` (never native). */
export function decodeFp8ArrayJs(codes: Uint8Array, format: Fp8Format, out?: Float32Array): Float32Array {
  const t = format === 'e4m3' ? E4M3_TABLE : E5M2_TABLE;
  const dst = out ?? new Float32Array(codes.length);
  if (dst.length < codes.length) throw new RangeError(`decodeFp8Array: output holds ${dst.length} values, need ${codes.length}`);
  for (let i = 0; i < codes.length; i++) dst[i] = t[codes[i]!]!;
  return dst;
}

/** True for the codes that decode to NaN. */
export function isFp8NaN(code: number, format: Fp8Format): boolean {
  return Number.isNaN((format === 'e4m3' ? E4M3_TABLE : E5M2_TABLE)[code & 0xff]!);
}

// ------------------------------------------------------------------------------------------------
// Native path. The FP8 entry points live in the same addon as the tensor kernels (native/fp8.c, registered in
// native/addon.c); they are used only when loadNative() succeeds, and R1_BACKEND=js (or setFp8Native(false)) keeps
// everything on the TypeScript reference.

/** The addon's FP8 exports (native/fp8.c). format: 0 = e4m3, 1 = e5m2; roundMode: 0 = nearest even, 1 = toward zero. */
export interface Fp8NativeAddon {
  fp8Encode(dst: Uint8Array, src: Float32Array | Float64Array, n: number, format: number, saturate: boolean): void;
  fp8Decode(dst: Float32Array, src: Uint8Array, n: number, format: number): void;
  fp8Gemm(c: Float32Array, aCodes: Uint8Array, aScaleInv: Float32Array, bCodes: Uint8Array, bScaleInv: Float32Array,
    M: number, N: number, K: number, aBlockRows: number, aBlockCols: number, bBlockRows: number, bBlockCols: number,
    accBits: number, promoteEvery: number, roundMode: number, format: number): void;
  /** Per-tile quantization (native/fp8.c r1_fp8_quantize_tiles; src/nn/fp8-linear.ts quantizeTiles). */
  fp8QuantizeTiles?(x: Float32Array, rows: number, cols: number, blockRows: number, blockCols: number, format: number,
    scaleInv: Float32Array, codes: Uint8Array, deq: Float32Array | null): void;
}

/** Below this many values the N-API call costs more than the TS loop saves. */
export const NATIVE_MIN_LENGTH = 64;

let nativeEnabled = process.env['R1_BACKEND'] !== 'js';
let nativeAddon: Fp8NativeAddon | null | undefined;

/** Turn the native FP8 path on (default, when the addon is built) or off (TS reference everywhere). */
export function setFp8Native(enabled: boolean): void {
  nativeEnabled = enabled;
}

/** The addon's FP8 functions, or null when disabled, not built, or built without them. */
export function fp8Native(): Fp8NativeAddon | null {
  if (!nativeEnabled) return null;
  if (nativeAddon !== undefined) return nativeAddon;
  nativeAddon = null;
  const mod = nativeAddonExports() as Partial<Fp8NativeAddon> | null;
  if (mod && typeof mod.fp8Encode === 'function' && typeof mod.fp8Decode === 'function' && typeof mod.fp8Gemm === 'function') {
    nativeAddon = mod as Fp8NativeAddon;
  }
  return nativeAddon;
}
