/**
 * FP8 GEMM emulation: DeepSeek-V3 technical report, section 3.3.2 ("Increasing Accumulation Precision", Figure 7b).
 *
 * C[M, N] = A[M, K] · B[N, K]^T where A (activations) is quantized per 1 x 128 tile and B (weights, [out, in] like a
 * Linear weight) per 128 x 128 block, with blockwise.ts's quantizers and `scaleInv` (dequantization factor) layout.
 *
 * The paper: on H800, the Tensor Cores' FP8 GEMM keeps only about 14 bits of the running sum, which for K = 4096
 * gives up to ~2% relative error. DeepSeek's fix: every N_C = 128 elements of K the partial result is copied to CUDA
 * cores, multiplied by the tile/block scales and added into an FP32 register ("promotion").
 *
 * What this emulates, exactly (the native kernel native/fp8.c and the reference below are bit-identical):
 *   1. K is cut into segments at every multiple of `promoteEvery` AND wherever A's or B's scale changes along K
 *      (multiples of the operands' blockCols): one Tensor-Core partial sum is over raw FP8 products sharing one pair of
 *      scales, so it cannot run across a scale boundary. Hence "no promotion" (promoteEvery >= K) only means one
 *      partial over all of K when the operands have one scale along K (quantize with `block: K`; `fp8Gemm` does that
 *      for you when you pass `block`), as with per-tensor scaling.
 *   2. Within a segment the limited-precision accumulator starts at +0 and for k in increasing order becomes
 *      round(acc + a_k * b_k), where a_k, b_k are the decoded FP8 values (their product is exact) and round() keeps
 *      `accBits` significant bits (leading bit included: 24 = f32) with an unbounded exponent, either to nearest,
 *      ties to even (`accRounding: 'nearest'`, default) or toward zero ('toward-zero': the bits shifted out of a
 *      fixed-width adder are dropped). The sum is formed in f64 before rounding, which for accBits <= 24 gives the
 *      same result as rounding the exact sum (the exact sum is either exact in f64 or far from a rounding boundary).
 *   3. At the end of each segment (promotion): scale = f32(sa * sb); out = f32(out + f32(partial * scale)). Two f32
 *      roundings, no fused multiply-add. `out` starts at +0.
 * The default accBits = 14 is the paper's "around 14 bits"; it is an emulation of the effect, not of NVIDIA's adder
 * (whose exact alignment and rounding are not documented).
 */
import { ConfigError, R1Error, ShapeError } from '../errors.js';
import { type BlockQuantized, DEFAULT_BLOCK, quantizeActivations, quantizeWeight, scaleShape } from './blockwise.js';
import { decodeFp8ArrayJs, fp8Native, type Fp8Format } from './fp8.js';

export type AccRounding = 'nearest' | 'toward-zero';

export interface Fp8GemmOptions {
  /** Significant bits kept by the limited-precision accumulator, 1..24 (24 = f32). Default 14. */
  accBits?: number;
  /** Promote into the f32 accumulator every this many elements of K (N_C). Default 128; >= K means never. */
  promoteEvery?: number;
  /** How the accumulator rounds after each add. Default 'nearest' (ties to even). */
  accRounding?: AccRounding;
  /** 'auto' (default): native when the addon is loaded; 'js': the reference; 'native': native or an error. */
  backend?: 'auto' | 'js' | 'native';
}

export interface Fp8GemmQuantizeOptions extends Fp8GemmOptions {
  /** FP8 format of both operands. Default 'e4m3' (DeepSeek-V3 uses E4M3 for all GEMM inputs). */
  format?: Fp8Format;
  /** Scaling granularity along K (and along N for B): A per 1 x block tile, B per block x block. Default 128. */
  block?: number;
}

export const DEFAULT_ACC_BITS = 14;
export const DEFAULT_PROMOTE_EVERY = 128;

interface Resolved { accBits: number; promoteEvery: number; towardZero: boolean; backend: 'auto' | 'js' | 'native' }

function resolve(where: string, opts: Fp8GemmOptions): Resolved {
  const accBits = opts.accBits ?? DEFAULT_ACC_BITS;
  if (!Number.isInteger(accBits) || accBits < 1 || accBits > 24) {
    throw new ConfigError(`${where}: accBits must be an integer in 1..24 (24 = f32), got ${accBits}`);
  }
  const promoteEvery = opts.promoteEvery ?? DEFAULT_PROMOTE_EVERY;
  if (!Number.isSafeInteger(promoteEvery) || promoteEvery < 1) {
    throw new ConfigError(`${where}: promoteEvery must be a positive integer, got ${promoteEvery}`);
  }
  const r = opts.accRounding ?? 'nearest';
  if (r !== 'nearest' && r !== 'toward-zero') throw new ConfigError(`${where}: accRounding must be 'nearest' or 'toward-zero', got '${String(r)}'`);
  const backend = opts.backend ?? 'auto';
  if (backend !== 'auto' && backend !== 'js' && backend !== 'native') {
    throw new ConfigError(`${where}: backend must be 'auto', 'js' or 'native', got '${String(backend)}'`);
  }
  return { accBits, promoteEvery, towardZero: r === 'toward-zero', backend };
}

function checkDim(where: string, name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new ShapeError(`${where}: ${name} must be a non-negative integer, got ${v}`);
}

function checkOperand(where: string, name: string, q: BlockQuantized): void {
  checkDim(where, `${name}.rows`, q.rows);
  checkDim(where, `${name}.cols`, q.cols);
  if (!Number.isSafeInteger(q.blockRows) || q.blockRows < 1 || !Number.isSafeInteger(q.blockCols) || q.blockCols < 1) {
    throw new ShapeError(`${where}: ${name} blocks must be positive integers, got ${q.blockRows} x ${q.blockCols}`);
  }
  if (!(q.codes instanceof Uint8Array) || q.codes.length !== q.rows * q.cols) {
    throw new ShapeError(`${where}: ${name}.codes must be a Uint8Array of ${q.rows} x ${q.cols} = ${q.rows * q.cols} codes, got ${q.codes?.length}`);
  }
  const [sr, sc] = scaleShape(q.rows, q.cols, q.blockRows, q.blockCols);
  if (!(q.scaleInv instanceof Float32Array) || q.scaleInv.length !== sr * sc) {
    throw new ShapeError(`${where}: ${name}.scaleInv must be a Float32Array of [${sr}, ${sc}] = ${sr * sc} scales for ` +
      `[${q.rows}, ${q.cols}] in ${q.blockRows}x${q.blockCols} blocks, got ${q.scaleInv?.length}`);
  }
  if (q.format !== 'e4m3' && q.format !== 'e5m2') throw new ConfigError(`${where}: ${name}.format must be 'e4m3' or 'e5m2', got '${String(q.format)}'`);
}

/**
 * C = A · B^T from pre-quantized operands: `a` is [M, K] (typically 1 x 128 tiles from quantizeActivations), `b` is
 * [N, K] (typically 128 x 128 blocks from quantizeWeight). Any block sizes are accepted; see the header for what the
 * limited-precision accumulation and the promotion do. Returns a new row-major [M, N] Float32Array.
 */
export function fp8GemmQuantized(a: BlockQuantized, b: BlockQuantized, opts: Fp8GemmOptions = {}): Float32Array {
  const where = 'fp8GemmQuantized';
  checkOperand(where, 'a', a);
  checkOperand(where, 'b', b);
  if (a.cols !== b.cols) throw new ShapeError(`${where}: a is [${a.rows}, ${a.cols}] and b is [${b.rows}, ${b.cols}]; C = a·b^T needs the same K (cols)`);
  if (a.format !== b.format) throw new ConfigError(`${where}: a is ${a.format} but b is ${b.format}; both operands must use one FP8 format`);
  const o = resolve(where, opts);
  const M = a.rows, N = b.rows, K = a.cols;
  const out = new Float32Array(M * N);
  const native = o.backend === 'js' ? null : fp8Native();
  if (o.backend === 'native' && !native) throw new R1Error(`${where}: backend 'native' requested but the native addon is not loaded`);
  if (native) {
    native.fp8Gemm(out, a.codes, a.scaleInv, b.codes, b.scaleInv, M, N, K, a.blockRows, a.blockCols, b.blockRows, b.blockCols,
      o.accBits, o.promoteEvery, o.towardZero ? 1 : 0, a.format === 'e4m3' ? 0 : 1);
    return out;
  }
  gemmJs(out, a, b, o);
  return out;
}

/**
 * Quantize A [M, K] per 1 x block tile and B [N, K] per block x block (blockwise.ts, E4M3 by default), then
 * C = A · B^T with the emulated FP8 accumulation. a and b are row-major f32.
 */
export function fp8Gemm(a: Float32Array, b: Float32Array, M: number, N: number, K: number, opts: Fp8GemmQuantizeOptions = {}): Float32Array {
  const where = 'fp8Gemm';
  checkDim(where, 'M', M);
  checkDim(where, 'N', N);
  checkDim(where, 'K', K);
  if (a.length !== M * K) throw new ShapeError(`${where}: a has ${a.length} values, expected M x K = ${M} x ${K} = ${M * K}`);
  if (b.length !== N * K) throw new ShapeError(`${where}: b has ${b.length} values, expected N x K = ${N} x ${K} = ${N * K}`);
  const block = opts.block ?? DEFAULT_BLOCK;
  if (!Number.isSafeInteger(block) || block < 1) throw new ConfigError(`${where}: block must be a positive integer, got ${block}`);
  const format = opts.format ?? 'e4m3';
  if (format !== 'e4m3' && format !== 'e5m2') throw new ConfigError(`${where}: format must be 'e4m3' or 'e5m2', got '${String(format)}'`);
  resolve(where, opts); // report option errors before the (costly) quantization
  const qa = quantizeActivations(a, M, K, { tile: block, format });
  const qb = quantizeWeight(b, N, K, { block, format });
  return fp8GemmQuantized(qa, qb, opts);
}

// ------------------------------------------------------------------------------------------------------------------
// The reference.

/** 2^k for integer k in [-1074, 1023], built by exact doubling/halving. */
const POW2_BIAS = 1100;
const POW2 = (() => {
  const t = new Float64Array(2200);
  t[POW2_BIAS] = 1;
  for (let k = 1; k <= 1023; k++) t[POW2_BIAS + k] = t[POW2_BIAS + k - 1]! * 2;
  for (let k = 1; k <= 1074; k++) t[POW2_BIAS - k] = t[POW2_BIAS - k + 1]! / 2;
  return t;
})();
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // index of the high word

/**
 * x rounded to `bits` significant bits (unbounded exponent): to nearest, ties to even, or toward zero. This is the
 * native kernel's bit operation on the f64 encoding (add half an ulp minus one plus the kept lsb, clear the dropped
 * bits; or just clear them) written with arithmetic: for normal x, |x| / ulp lies in [2^(bits-1), 2^bits).
 */
export function roundToBits(x: number, bits: number, towardZero = false): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  F64[0] = x;
  const ef = (U32[HI]! >>> 20) & 0x7ff;
  if (ef === 0) return roundSubnormal(x, bits, towardZero);
  const e = ef - 1023;
  const ulp = POW2[POW2_BIAS + e - bits + 1]!;
  const r = x / ulp; // exact
  let n: number;
  if (towardZero) n = Math.trunc(r);
  else {
    const f = Math.floor(r);
    const d = r - f;
    n = d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  }
  return n * ulp;
}

/** f64 subnormals (never reached by FP8 products, kept for completeness): the bit trick treats the 52-bit fraction
 * as the significand, so the dropped bits are the low 53 - bits bits of the fraction. */
function roundSubnormal(x: number, bits: number, towardZero: boolean): number {
  const ulp = POW2[POW2_BIAS - 1074 + 53 - bits]!;
  const r = x / ulp;
  if (towardZero) return Math.trunc(r) * ulp;
  const f = Math.floor(r), d = r - f;
  return (d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1) * ulp;
}

/** Segment boundaries along K (see the header, rule 1) and each segment's scale column in A's and B's grids. */
function segments(K: number, promoteEvery: number, abc: number, bbc: number): { bounds: number[]; colA: number[]; colB: number[] } {
  const bounds = [0], colA: number[] = [], colB: number[] = [];
  for (let k = 0; k < K;) {
    const next = Math.min(K, (Math.floor(k / promoteEvery) + 1) * promoteEvery, (Math.floor(k / abc) + 1) * abc, (Math.floor(k / bbc) + 1) * bbc);
    colA.push(Math.floor(k / abc));
    colB.push(Math.floor(k / bbc));
    bounds.push(next);
    k = next;
  }
  return { bounds, colA, colB };
}

function gemmJs(out: Float32Array, a: BlockQuantized, b: BlockQuantized, o: Resolved): void {
  const M = a.rows, N = b.rows, K = a.cols;
  if (M === 0 || N === 0) return;
  const A = decodeFp8ArrayJs(a.codes, a.format);
  const B = decodeFp8ArrayJs(b.codes, b.format);
  const { bounds, colA, colB } = segments(K, o.promoteEvery, a.blockCols, b.blockCols);
  const asc = scaleShape(M, K, a.blockRows, a.blockCols)[1], bsc = scaleShape(N, K, b.blockRows, b.blockCols)[1];
  const nseg = colA.length;
  const { accBits, towardZero } = o;
  const fr = Math.fround;
  for (let i = 0; i < M; i++) {
    const ai = i * K, sa = Math.floor(i / a.blockRows) * asc;
    for (let j = 0; j < N; j++) {
      const bj = j * K, sb = Math.floor(j / b.blockRows) * bsc;
      let acc32 = 0;
      for (let s = 0; s < nseg; s++) {
        let acc = 0;
        for (let k = bounds[s]!, k1 = bounds[s + 1]!; k < k1; k++) acc = roundToBits(acc + A[ai + k]! * B[bj + k]!, accBits, towardZero);
        const scale = fr(a.scaleInv[sa + colA[s]!]! * b.scaleInv[sb + colB[s]!]!);
        acc32 = fr(acc32 + fr(fr(acc) * scale));
      }
      out[i * N + j] = acc32;
    }
  }
}
