/**
 * FP8 benchmark (issue 7; DeepSeek-V3 technical report section 3.3): three parts.
 *
 *   accumulation  Relative error of the emulated FP8 GEMM (src/quant/fp8-gemm.ts) at K = 4096 with a ~14-bit
 *                 accumulator and no promotion, against promotion to f32 every 128 elements of K (the paper reports
 *                 up to ~2% relative error without promotion on H800). To isolate the accumulator, both runs use the
 *                 same operands (one scale along K per row of A and for all of B, so a partial sum may span all of K)
 *                 and the reference is the f64 product of the DEQUANTIZED operands. Inputs: standard normal, and
 *                 uniform [0, 1) (all products positive: the sum grows linearly, the worst case for a short adder).
 *                 Also the DeepSeek recipe end to end (1x128 / 128x128 scales, promote every 128) against the f64
 *                 product of the unquantized inputs.
 *   quantization  Activations [64, 4096] ~ N(0, 1) with 8 outlier channels x10 .. x10000: error of per-tensor scaling vs
 *                 per-token and fine-grained 1 x 128 tiles (section 3.3.2: outliers squeeze per-tensor scaling), on the
 *                 activations themselves and on X · W^T (W quantized 128 x 128; reference: f64 of X · dequantized W).
 *   codec         Native bulk codec throughput (native/fp8.c) f32 -> E4M3 / E5M2 and back, in GB/s of memory traffic
 *                 (4 + 1 bytes per value), against the TypeScript codec (the reference) in the same run.
 *   gemm-speed    Time of one emulated FP8 GEMM (M x N x K, default accBits 14, 1x128 / 128x128 scales, promote every
 *                 128) in native/fp8.c at each thread count, against the TypeScript reference (same bits) once.
 *
 * Run: npm run bench -- fp8 [--json] [--parts accumulation,quantization,codec,gemm-speed] [--m 128] [--n 128] [--k 4096]
 *      [--codec-n 16777216] [--outlier-factors 10,100,1000,10000] [--reps 5] [--min-time 0.2] [--threads 1,2] [--seed 1]
 * --json prints one JSON object per row ({"bench": "fp8", "part": ...}).
 */
import { availableParallelism } from 'node:os';
import { UsageError } from '../src/errors.js';
import { fp8Gemm, fp8GemmQuantized, type AccRounding } from '../src/quant/fp8-gemm.js';
import {
  dequantizeBlockwise, quantizeBlockwise, type BlockQuantized,
} from '../src/quant/blockwise.js';
import {
  decodeFp8ArrayJs, encodeFp8ArrayJs, fp8Native, type Fp8Format,
} from '../src/quant/fp8.js';
import { loadNative } from '../src/tensor/backends/native.js';
import { Rng } from '../src/tensor/random.js';

type Part = 'accumulation' | 'quantization' | 'codec' | 'gemm-speed';
const PARTS: Part[] = ['accumulation', 'quantization', 'codec', 'gemm-speed'];

interface Opts {
  json: boolean; parts: Part[]; m: number; n: number; k: number; codecN: number; outlierFactors: number[];
  reps: number; minTime: number; threads: number[]; seed: number;
}

const USAGE = 'usage: npm run bench -- fp8 [--json] [--parts accumulation,quantization,codec,gemm-speed] [--m 128] [--n 128] [--k 4096] ' +
  '[--codec-n 16777216] [--outlier-factors 10,100,1000,10000] [--reps 5] [--min-time 0.2] [--threads 1,2] [--seed 1]';

function parseOpts(argv: string[]): Opts {
  const all = availableParallelism();
  const o: Opts = {
    json: false, parts: PARTS, m: 128, n: 128, k: 4096, codecN: 1 << 24, outlierFactors: [10, 100, 1000, 10000], reps: 5, minTime: 0.2,
    threads: all > 1 ? [1, all] : [1], seed: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`bench fp8: ${a} needs a value`);
      return v;
    };
    const int = (v: string, min: number): number => {
      const x = Number(v);
      if (!Number.isInteger(x) || x < min) throw new UsageError(`bench fp8: ${a} must be an integer >= ${min}, got '${v}'`);
      return x;
    };
    if (a === '--json') o.json = true;
    else if (a === '--parts') {
      o.parts = val().split(',').map((p) => {
        if (!PARTS.includes(p as Part)) throw new UsageError(`bench fp8: --parts entry '${p}' is not one of ${PARTS.join(', ')}`);
        return p as Part;
      });
    } else if (a === '--m') o.m = int(val(), 1);
    else if (a === '--n') o.n = int(val(), 1);
    else if (a === '--k') o.k = int(val(), 1);
    else if (a === '--codec-n') o.codecN = int(val(), 1);
    else if (a === '--reps') o.reps = int(val(), 1);
    else if (a === '--seed') o.seed = int(val(), 0);
    else if (a === '--outlier-factors') {
      o.outlierFactors = val().split(',').map((v) => {
        const x = Number(v);
        if (!Number.isFinite(x) || x <= 0) throw new UsageError(`bench fp8: --outlier-factors entry '${v}' must be a positive number`);
        return x;
      });
    } else if (a === '--threads') o.threads = val().split(',').map((t) => int(t, 1));
    else if (a === '--min-time') {
      const v = val(), x = Number(v);
      if (!Number.isFinite(x) || x < 0) throw new UsageError(`bench fp8: --min-time must be a number >= 0, got '${v}'`);
      o.minTime = x;
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new UsageError(`bench fp8: unknown option '${a}'\n${USAGE}`);
  }
  return o;
}

// ------------------------------------------------------------------------------------------------------------------
// Error metrics (f64).

interface ErrStats {
  /** ||C - ref||_F / ||ref||_F */
  rel_frobenius: number;
  /** max_ij |C - ref| / max_ij |ref| */
  rel_max_abs: number;
  /** max_ij |C - ref| / |ref| over elements with |ref| >= 0.1 * max |ref| (elementwise, large outputs only) */
  rel_max_elem: number;
  /** median_ij |C - ref| / |ref| */
  rel_median_elem: number;
}

function errStats(c: Float32Array, ref: Float64Array): ErrStats {
  let num = 0, den = 0, maxErr = 0, maxRef = 0;
  for (let i = 0; i < c.length; i++) {
    const e = Math.abs(c[i]! - ref[i]!);
    num += e * e; den += ref[i]! * ref[i]!;
    maxErr = Math.max(maxErr, e); maxRef = Math.max(maxRef, Math.abs(ref[i]!));
  }
  const rel: number[] = [];
  let relMax = 0;
  for (let i = 0; i < c.length; i++) {
    const r = Math.abs(ref[i]!);
    if (r === 0) continue;
    const e = Math.abs(c[i]! - ref[i]!) / r;
    rel.push(e);
    if (r >= 0.1 * maxRef) relMax = Math.max(relMax, e);
  }
  rel.sort((x, y) => x - y);
  return {
    rel_frobenius: Math.sqrt(num / den), rel_max_abs: maxErr / maxRef, rel_max_elem: relMax,
    rel_median_elem: rel.length ? rel[rel.length >> 1]! : 0,
  };
}

/** f64 C = A · B^T (A [M, K], B [N, K]). */
function gemmF64(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k]! * b[j * K + k]!;
      c[i * N + j] = s;
    }
  }
  return c;
}

function fill(n: number, rng: Rng, dist: 'normal' | 'uniform'): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = dist === 'normal' ? rng.normal() : rng.next();
  return x;
}

function dequant(q: BlockQuantized): Float32Array {
  return dequantizeBlockwise(q.codes, q.scaleInv, q.rows, q.cols, { blockRows: q.blockRows, blockCols: q.blockCols, format: q.format });
}

const pct = (x: number): string => `${(100 * x).toFixed(x < 1e-3 ? 5 : 3)}%`;

// ------------------------------------------------------------------------------------------------------------------

interface AccRow extends ErrStats {
  bench: 'fp8'; part: 'accumulation'; inputs: 'normal' | 'uniform'; m: number; n: number; k: number;
  acc_bits: number; acc_rounding: AccRounding; promote_every: number | null; scaling: string; reference: string;
  backend: string;
}

function accumulation(o: Opts, emit: (r: object) => void): AccRow[] {
  const { m: M, n: N, k: K } = o;
  const backend = fp8Native() ? 'native' : 'js';
  const rows: AccRow[] = [];
  for (const inputs of ['normal', 'uniform'] as const) {
    const rng = new Rng(o.seed + (inputs === 'normal' ? 0 : 1000));
    const a = fill(M * K, rng, inputs), b = fill(N * K, rng, inputs);
    // One scale along K: per row of A, one for all of B (blocks of [N rounded up, K]), so no scale boundary cuts K.
    const qa = quantizeBlockwise(a, M, K, { blockRows: 1, blockCols: K });
    const qb = quantizeBlockwise(b, N, K, { blockRows: N, blockCols: K });
    const ref = gemmF64(dequant(qa), dequant(qb), M, N, K);
    const configs: [number, AccRounding, number | null][] = [
      [14, 'nearest', null], [14, 'nearest', 128], [14, 'toward-zero', null], [14, 'toward-zero', 128],
      [24, 'nearest', null], [24, 'nearest', 128],
    ];
    for (const [bits, rounding, every] of configs) {
      const c = fp8GemmQuantized(qa, qb, { accBits: bits, accRounding: rounding, promoteEvery: every ?? K });
      const row: AccRow = {
        bench: 'fp8', part: 'accumulation', inputs, m: M, n: N, k: K, acc_bits: bits, acc_rounding: rounding,
        promote_every: every, scaling: 'per-row A, per-tensor B (one scale along K)', reference: 'f64 of dequantized operands',
        backend, ...errStats(c, ref),
      };
      rows.push(row);
      emit(row);
    }
    // The DeepSeek recipe end to end: 1x128 / 128x128 scales, ~14-bit accumulation, promotion every 128.
    const refRaw = gemmF64(a, b, M, N, K);
    for (const [bits, every] of [[14, 128], [24, 128]] as const) {
      const c = fp8Gemm(a, b, M, N, K, { accBits: bits, promoteEvery: every });
      const row: AccRow = {
        bench: 'fp8', part: 'accumulation', inputs, m: M, n: N, k: K, acc_bits: bits, acc_rounding: 'nearest',
        promote_every: every, scaling: '1x128 A tiles, 128x128 B blocks', reference: 'f64 of unquantized inputs',
        backend, ...errStats(c, refRaw),
      };
      rows.push(row);
      emit(row);
    }
  }
  return rows;
}

interface QuantRow {
  bench: 'fp8'; part: 'quantization'; format: Fp8Format; tokens: number; channels: number; outlier_channels: number;
  outlier_factor: number; scaling: string;
  /** ||deq - x|| / ||x|| over the ordinary channels, the outlier channels, all; fraction of nonzero ordinary values that became 0 */
  rel_err_normal_channels: number; rel_err_outlier_channels: number; rel_err_all: number; flushed_to_zero: number;
  /** relative Frobenius error of X · W^T (W [256, channels] in 128x128 blocks, f32 accumulation) vs f64 of unquantized X · dequantized W */
  gemm_rel_err: number;
}

function quantization(o: Opts, emit: (r: object) => void): QuantRow[] {
  const T = 64, C = o.k, nOut = 8, NW = 256;
  const rng = new Rng(o.seed + 7);
  const base = fill(T * C, rng, 'normal');
  const outliers = new Set<number>();
  while (outliers.size < Math.min(nOut, C)) outliers.add(rng.int(C));
  const w = fill(NW * C, rng, 'normal');
  for (let i = 0; i < w.length; i++) w[i] = w[i]! * 0.02;
  const qw = quantizeBlockwise(w, NW, C, { blockRows: 128, blockCols: 128 });
  const dw = dequant(qw); // the reference uses the quantized weights, so only the activations' scaling differs
  const rows: QuantRow[] = [];
  const schemes: [string, number, number][] = [
    ['per-tensor', T, C], ['per-token (1 x channels)', 1, C], ['fine-grained 1 x 128 tiles', 1, 128],
  ];
  const format: Fp8Format = 'e4m3';
  for (const factor of o.outlierFactors) {
    const x = base.slice();
    for (let t = 0; t < T; t++) for (const c of outliers) x[t * C + c] = x[t * C + c]! * factor;
    const refGemm = gemmF64(x, dw, T, NW, C);
    for (const [name, br, bc] of schemes) {
      const q = quantizeBlockwise(x, T, C, { blockRows: br, blockCols: bc, format });
      const d = dequant(q);
      let nn = 0, nd = 0, on = 0, od = 0, flushed = 0, nonzero = 0;
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < C; c++) {
          const i = t * C + c, e = (d[i]! - x[i]!) ** 2, v = x[i]! ** 2;
          if (outliers.has(c)) { on += e; od += v; } else {
            nn += e; nd += v;
            if (x[i] !== 0) { nonzero++; if (d[i] === 0) flushed++; }
          }
        }
      }
      const g = fp8GemmQuantized(q, qw, { accBits: 24, promoteEvery: 128 });
      const row: QuantRow = {
        bench: 'fp8', part: 'quantization', format, tokens: T, channels: C, outlier_channels: outliers.size, outlier_factor: factor,
        scaling: name, rel_err_normal_channels: Math.sqrt(nn / nd), rel_err_outlier_channels: Math.sqrt(on / od),
        rel_err_all: Math.sqrt((nn + on) / (nd + od)), flushed_to_zero: flushed / nonzero,
        gemm_rel_err: errStats(g, refGemm).rel_frobenius,
      };
      rows.push(row);
      emit(row);
    }
  }
  return rows;
}

// ------------------------------------------------------------------------------------------------------------------

interface CodecRow {
  bench: 'fp8'; part: 'codec'; op: string; n: number; threads: number; gb_per_s: number; gelem_per_s: number;
  peer: 'typescript codec'; peer_gb_per_s: number; ratio: number;
}

/** Best of `reps` samples, each repeating fn until it lasts minTime seconds; seconds per call. */
function timeBest(fn: () => void, reps: number, minTime: number): number {
  fn();
  let t0 = performance.now();
  fn();
  const one = Math.max((performance.now() - t0) / 1000, 1e-9);
  const inner = Math.max(1, Math.floor(minTime / one));
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    best = Math.min(best, (performance.now() - t0) / 1000 / inner);
  }
  return best;
}

function codec(o: Opts, emit: (r: object) => void): CodecRow[] {
  const native = fp8Native(), be = loadNative();
  if (!native || !be) throw new UsageError('bench fp8: the codec part needs the native addon (npm run build)');
  const n = o.codecN;
  const rng = new Rng(o.seed + 99);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * 100;
  const codes = new Uint8Array(n), back = new Float32Array(n);
  // The TS peer runs once per op (its speed does not depend on our thread count), on at most 4M values.
  const pn = Math.min(n, 1 << 22);
  const px = x.subarray(0, pn), pcodes = codes.subarray(0, pn), pback = back.subarray(0, pn);
  const ops: [string, () => void, () => void][] = [
    ['encode f32->e4m3 (saturate)', () => native.fp8Encode(codes, x, n, 0, true), () => encodeFp8ArrayJs(px, 'e4m3', {}, pcodes)],
    ['encode f32->e5m2 (saturate)', () => native.fp8Encode(codes, x, n, 1, true), () => encodeFp8ArrayJs(px, 'e5m2', {}, pcodes)],
    ['decode e4m3->f32', () => native.fp8Decode(back, codes, n, 0), () => decodeFp8ArrayJs(pcodes, 'e4m3', pback)],
  ];
  const peerGbs = new Map<string, number>();
  const rows: CodecRow[] = [];
  const saved = be.getThreads();
  try {
    for (const t of o.threads) {
      be.setThreads(t);
      for (const [op, ours, peer] of ops) {
        if (!peerGbs.has(op)) peerGbs.set(op, (5 * pn) / timeBest(peer, Math.min(o.reps, 3), o.minTime) / 1e9);
        const s = timeBest(ours, o.reps, o.minTime);
        const gbs = (5 * n) / s / 1e9;
        const row: CodecRow = {
          bench: 'fp8', part: 'codec', op, n, threads: t, gb_per_s: gbs, gelem_per_s: n / s / 1e9,
          peer: 'typescript codec', peer_gb_per_s: peerGbs.get(op)!, ratio: gbs / peerGbs.get(op)!,
        };
        rows.push(row);
        emit(row);
      }
    }
  } finally {
    be.setThreads(saved);
  }
  return rows;
}

interface SpeedRow {
  bench: 'fp8'; part: 'gemm-speed'; m: number; n: number; k: number; threads: number; seconds: number; gmac_per_s: number;
  peer: 'typescript reference'; peer_seconds: number; ratio: number;
}

function gemmSpeed(o: Opts, emit: (r: object) => void): SpeedRow[] {
  const native = fp8Native(), be = loadNative();
  if (!native || !be) throw new UsageError('bench fp8: the gemm-speed part needs the native addon (npm run build)');
  const { m: M, n: N, k: K } = o;
  const rng = new Rng(o.seed + 5);
  const qa = quantizeBlockwise(fill(M * K, rng, 'normal'), M, K, { blockRows: 1, blockCols: 128 });
  const qb = quantizeBlockwise(fill(N * K, rng, 'normal'), N, K, { blockRows: 128, blockCols: 128 });
  let t0 = performance.now();
  fp8GemmQuantized(qa, qb, { backend: 'js' });
  const peer = (performance.now() - t0) / 1000;
  const rows: SpeedRow[] = [];
  const saved = be.getThreads();
  try {
    for (const t of o.threads) {
      be.setThreads(t);
      const s = timeBest(() => { fp8GemmQuantized(qa, qb, { backend: 'native' }); }, o.reps, o.minTime);
      const row: SpeedRow = {
        bench: 'fp8', part: 'gemm-speed', m: M, n: N, k: K, threads: t, seconds: s, gmac_per_s: (M * N * K) / s / 1e9,
        peer: 'typescript reference', peer_seconds: peer, ratio: peer / s,
      };
      rows.push(row);
      emit(row);
    }
  } finally {
    be.setThreads(saved);
  }
  return rows;
}

// ------------------------------------------------------------------------------------------------------------------

export default async function run(argv: string[]): Promise<void> {
  const o = parseOpts(argv);
  const emit = (r: object): void => { if (o.json) console.log(JSON.stringify(r)); };
  const be = loadNative();
  if (!o.json) {
    console.log(`fp8 bench: native ${fp8Native() ? `loaded (isa ${be?.isa}, ${be?.getThreads()} threads)` : 'not available: GEMM runs on the TS reference'}`);
  }
  if (o.parts.includes('accumulation')) {
    const rows = accumulation(o, emit);
    if (!o.json) {
      console.log(`\n(a) accumulation error, C = A·B^T, M=${o.m} N=${o.n} K=${o.k}, rows with scaling '${rows[0]?.scaling}' vs f64 of the dequantized operands`);
      console.log('inputs   | acc bits | rounding    | promote every | scaling / reference                         | rel Frobenius | max|err|/max|C| | max elem rel (|C|>=0.1 max) | median elem rel');
      for (const r of rows) {
        console.log(`${r.inputs.padEnd(8)} | ${String(r.acc_bits).padEnd(8)} | ${r.acc_rounding.padEnd(11)} | ${String(r.promote_every ?? 'never').padEnd(13)} | ` +
          `${(r.reference.startsWith('f64 of unq') ? 'DeepSeek recipe vs unquantized' : 'same operands vs dequantized').padEnd(43)} | ` +
          `${pct(r.rel_frobenius).padEnd(13)} | ${pct(r.rel_max_abs).padEnd(15)} | ${pct(r.rel_max_elem).padEnd(27)} | ${pct(r.rel_median_elem)}`);
      }
    }
  }
  if (o.parts.includes('quantization')) {
    const rows = quantization(o, emit);
    if (!o.json) {
      const r0 = rows[0]!;
      console.log(`\n(b) quantization error (E4M3), activations [${r0.tokens}, ${r0.channels}] ~ N(0,1), ${r0.outlier_channels} outlier channels x factor; X·W^T with W [256, ${r0.channels}] ~ N(0, 0.02^2) in 128x128 blocks, f32 accumulation (accBits 24, promote every 128), vs f64 of unquantized X · dequantized W`);
      console.log('factor | scaling                      | rel err ordinary ch. | rel err outlier ch. | rel err all | ordinary values flushed to 0 | X·W^T rel err');
      for (const r of rows) {
        console.log(`${String(r.outlier_factor).padEnd(6)} | ${r.scaling.padEnd(28)} | ${pct(r.rel_err_normal_channels).padEnd(20)} | ${pct(r.rel_err_outlier_channels).padEnd(19)} | ` +
          `${pct(r.rel_err_all).padEnd(11)} | ${pct(r.flushed_to_zero).padEnd(28)} | ${pct(r.gemm_rel_err)}`);
      }
    }
  }
  if (o.parts.includes('codec')) {
    const rows = codec(o, emit);
    if (!o.json) {
      console.log(`\n(c) codec throughput, n = ${o.codecN} values, GB/s of memory traffic (4 B f32 + 1 B code per value); peer: the TS codec on ${Math.min(o.codecN, 1 << 22)} values`);
      console.log('op                           | threads | native GB/s | Gvalues/s | TS GB/s | ratio');
      for (const r of rows) {
        console.log(`${r.op.padEnd(28)} | ${String(r.threads).padEnd(7)} | ${r.gb_per_s.toFixed(2).padEnd(11)} | ${r.gelem_per_s.toFixed(3).padEnd(9)} | ` +
          `${r.peer_gb_per_s.toFixed(3).padEnd(7)} | ${r.ratio.toFixed(0)}`);
      }
    }
  }
  if (o.parts.includes('gemm-speed')) {
    const rows = gemmSpeed(o, emit);
    if (!o.json) {
      console.log(`\n(d) emulated FP8 GEMM speed, M=${o.m} N=${o.n} K=${o.k} (accBits 14, promote every 128); peer: the TS reference (bit-identical), one run`);
      console.log('threads | native ms | GMAC/s | TS ms   | ratio');
      for (const r of rows) {
        console.log(`${String(r.threads).padEnd(7)} | ${(r.seconds * 1e3).toFixed(1).padEnd(9)} | ${r.gmac_per_s.toFixed(3).padEnd(6)} | ` +
          `${(r.peer_seconds * 1e3).toFixed(0).padEnd(7)} | ${r.ratio.toFixed(1)}`);
      }
    }
  }
}
