/**
 * Packed-weight GEMV / small GEMM (native/qgemm.c) against the f32 GEMM (native/gemm.c), decode-sized:
 * y[M, N] = x[M, K] . W^T with W in f32 (row-major through the f32 GEMM; f32p: f32 in 16-row panels through
 * native/qpanel.c), bf16 or fp8 (E4M3 + 128x128 block scales), M = 1 and 16.
 *
 * Run: npm run bench -- qgemm [--json] [--m 1,16] [--formats f32,f32p,bf16,fp8] [--cases gemv,down,s1] [--set-mb 96]
 *                               [--min-time S] [--reps N] [--threads T]
 *
 * Cases: gemv = 1 x 896 x 4864 (BENCH.md's GEMV shape, the S1 MLP up projection); down = 1 x 4864 x 896 (long
 * rows: the S1 MLP down projection, not in the default run); s1 = the seven projections of
 * a Qwen2.5-0.5B (S1) decoder layer (q, k, v, o, gate, up, down). Decode is memory-bound, so each case cycles
 * through enough distinct copies of its matrices that the smallest format (fp8) still spans --set-mb MiB
 * (default 96, well above this machine's 32 MiB L3): every product then streams its weights from DRAM, as
 * decode does. Reported: time per pass over the weight set, GB/s of weight bytes read (scales included for fp8)
 * and GFLOP/s (2 M N K per matrix). Timing: repeat passes until a sample lasts --min-time seconds, best of --reps.
 */
import { availableParallelism } from 'node:os';
import { UsageError } from '../src/errors.js';
import { loadNative, nativeLoadError } from '../src/tensor/backends/native.js';
import { qgemm, qgemmNative, packedBytes, type PackedMatrix } from '../src/quant/qgemm.js';
import { packMatrix } from '../src/nn/packed-weights.js';

type Fmt = 'f32' | 'f32p' | 'bf16' | 'fp8';
type Mat = [N: number, K: number];

const CASES: Record<string, Mat[]> = {
  gemv: [[4864, 896]],
  down: [[896, 4864]],
  s1: [[896, 896], [128, 896], [128, 896], [896, 896], [4864, 896], [4864, 896], [896, 4864]],
};

export interface QgemmRow {
  bench: 'qgemm';
  case: string;
  format: Fmt;
  m: number;
  threads: number;
  /** distinct matrices cycled, and their weight bytes in this format */
  matrices: number;
  set_mb: number;
  ms_per_pass: number;
  weight_gbps: number;
  gflops: number;
  /** time of f32 / time of this format (same case, same M) */
  speedup_vs_f32: number | null;
}

interface Opts { json: boolean; ms: number[]; formats: Fmt[]; cases: string[]; setMb: number; minTime: number; reps: number; threads: number }

function parseOpts(argv: string[]): Opts {
  const o: Opts = { json: false, ms: [1, 16], formats: ['f32', 'bf16', 'fp8'], cases: ['gemv', 's1'], setMb: 96, minTime: 0.3, reps: 5, threads: availableParallelism() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`bench qgemm: ${a} needs a value`);
      return v;
    };
    const num = (v: string, min: number): number => {
      const x = Number(v);
      if (!Number.isFinite(x) || x < min) throw new UsageError(`bench qgemm: ${a} must be a number >= ${min}, got '${v}'`);
      return x;
    };
    if (a === '--json') o.json = true;
    else if (a === '--m') o.ms = val().split(',').map((t) => Math.floor(num(t, 1)));
    else if (a === '--formats') {
      o.formats = val().split(',') as Fmt[];
      for (const f of o.formats) if (f !== 'f32' && f !== 'f32p' && f !== 'bf16' && f !== 'fp8') throw new UsageError(`bench qgemm: unknown format '${f}' (f32, f32p, bf16, fp8)`);
    } else if (a === '--cases') {
      o.cases = val().split(',');
      for (const c of o.cases) if (!CASES[c]) throw new UsageError(`bench qgemm: unknown case '${c}' (${Object.keys(CASES).join(', ')})`);
    } else if (a === '--set-mb') o.setMb = num(val(), 1);
    else if (a === '--min-time') o.minTime = num(val(), 0);
    else if (a === '--reps') o.reps = Math.floor(num(val(), 1));
    else if (a === '--threads') o.threads = Math.floor(num(val(), 1));
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- qgemm [--json] [--m 1,16] [--formats f32,f32p,bf16,fp8] [--cases gemv,down,s1] [--set-mb 96] [--min-time S] [--reps N] [--threads T]');
      process.exit(0);
    } else throw new UsageError(`bench qgemm: unknown option '${a}'`);
  }
  return o;
}

/** Deterministic weights ~ N(0, 0.02) (a uniform sum is enough: values, not answers, are measured). */
function randomWeights(n: number, seed: number): Float32Array {
  const w = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = ((s / 2 ** 32) - 0.5) * 0.07;
  }
  return w;
}

interface Weights { f32: Float32Array[]; f32p: PackedMatrix[]; bf16: PackedMatrix[]; fp8: PackedMatrix[]; mats: Mat[] }

function buildSet(mats: Mat[], setMb: number, formats: Fmt[]): Weights {
  const perCopy = mats.reduce((a, [n, k]) => a + n * k, 0); // fp8 bytes per copy (scales aside)
  const copies = Math.max(1, Math.ceil((setMb * 2 ** 20) / perCopy));
  const out: Weights = { f32: [], f32p: [], bf16: [], fp8: [], mats: [] };
  let seed = 1;
  for (let c = 0; c < copies; c++) {
    for (const [n, k] of mats) {
      const w = randomWeights(n * k, seed++);
      out.mats.push([n, k]);
      if (formats.includes('bf16')) out.bf16.push(packMatrix(w, n, k, 'bf16'));
      if (formats.includes('fp8')) out.fp8.push(packMatrix(w, n, k, 'fp8'));
      if (formats.includes('f32')) out.f32.push(w);
      if (formats.includes('f32p')) out.f32p.push(packMatrix(w, n, k, 'f32'));
    }
  }
  return out;
}

export default async function main(argv: string[]): Promise<void> {
  const o = parseOpts(argv);
  const nat = loadNative();
  if (!nat || !qgemmNative()) throw new UsageError(`bench qgemm: the native addon with qgemm is required (${nativeLoadError() ?? 'built without qgemm.c: rebuild'})`);
  nat.setThreads(o.threads);
  const rows: QgemmRow[] = [];
  for (const cname of o.cases) {
    const set = buildSet(CASES[cname]!, o.setMb, o.formats);
    const maxK = Math.max(...set.mats.map(([, k]) => k)), maxN = Math.max(...set.mats.map(([n]) => n));
    for (const m of o.ms) {
      const x = randomWeights(m * maxK, 99).map((v) => v * 30);
      const y = new Float32Array(m * maxN);
      const f32Time: Record<number, number> = {};
      for (const fmt of o.formats) {
        const pass = (): void => {
          for (let i = 0; i < set.mats.length; i++) {
            const [n, k] = set.mats[i]!;
            if (fmt === 'f32') nat.matmul(y, 0, x, 0, 0, k, false, set.f32[i]!, 0, 0, k, true, 1, m, n, k, false);
            else qgemm(x, m, set[fmt][i]!, null, y);
          }
        };
        pass(); // warm-up (page faults, thread pool)
        let best = Infinity;
        for (let r = 0; r < o.reps; r++) {
          let n = 0;
          const t0 = process.hrtime.bigint();
          let el = 0;
          do { pass(); n++; el = Number(process.hrtime.bigint() - t0) / 1e9; } while (el < o.minTime);
          best = Math.min(best, el / n);
        }
        const bytes = fmt === 'f32' ? set.f32.reduce((a, w) => a + w.byteLength, 0)
          : set[fmt].reduce((a, w) => a + packedBytes(w), 0);
        const flops = set.mats.reduce((a, [n, k]) => a + 2 * m * n * k, 0);
        if (fmt === 'f32') f32Time[m] = best;
        rows.push({
          bench: 'qgemm', case: cname, format: fmt, m, threads: o.threads, matrices: set.mats.length,
          set_mb: +(bytes / 2 ** 20).toFixed(1), ms_per_pass: +(best * 1e3).toFixed(3),
          weight_gbps: +(bytes / best / 1e9).toFixed(2), gflops: +(flops / best / 1e9).toFixed(2),
          speedup_vs_f32: f32Time[m] !== undefined ? +(f32Time[m]! / best).toFixed(2) : null,
        });
      }
    }
  }
  if (o.json) {
    console.log(JSON.stringify({ bench: 'qgemm', isa: nat.isa, threads: o.threads, rows }, null, 1));
    return;
  }
  console.log(`qgemm: packed-weight GEMV/GEMM, isa ${nat.isa}, ${o.threads} thread(s); weight set cycled from DRAM (fp8 set >= ${o.setMb} MiB)`);
  console.log('case  fmt   M   matrices  set MiB   ms/pass   weight GB/s  GFLOP/s  speedup vs f32');
  for (const r of rows) {
    console.log(`${r.case.padEnd(5)} ${r.format.padEnd(5)} ${String(r.m).padStart(2)}  ${String(r.matrices).padStart(8)}  ${r.set_mb.toFixed(1).padStart(7)}  ${r.ms_per_pass.toFixed(2).padStart(8)}  ${r.weight_gbps.toFixed(1).padStart(11)}  ${r.gflops.toFixed(1).padStart(7)}  ${r.speedup_vs_f32 === null ? '-' : r.speedup_vs_f32.toFixed(2)}`);
  }
}
