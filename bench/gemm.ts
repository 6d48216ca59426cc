/**
 * f32 GEMM throughput of the native backend (native/gemm.c via the addon's matmul) against numpy's
 * matmul (OpenBLAS), measured side by side in the same run, at 1 thread and at all threads.
 * Shapes from ../shared/BENCH.md: square 256/512/1024/2048 and the transformer shapes (m x k x n)
 * 2048x384x1024, 2048x896x4864, 1x896x4864 (GEMV).
 *
 * Run: npm run bench -- gemm [--json] [--reps N] [--min-time S] [--threads 1,2] [--shapes 512,1x896x4864] [--no-peer]
 *
 * Timing rule (both sides): repeat the product until a sample lasts --min-time seconds, take the best
 * of --reps samples. The peer runs in one long-lived python process per thread count, and samples
 * alternate ours / peer / ours / ... so a burst of load from other processes on a shared machine hits
 * both sides alike.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../src/errors.js';
import { loadNative, nativeLoadError, type NativeBackend } from '../src/tensor/backends/native.js';

type Shape = [m: number, k: number, n: number];

const PEER_SETTLE_MS = 1000;

const DEFAULT_SHAPES: Shape[] = [
  [256, 256, 256], [512, 512, 512], [1024, 1024, 1024], [2048, 2048, 2048],
  [2048, 384, 1024], [2048, 896, 4864], [1, 896, 4864],
];

export interface GemmRow {
  bench: 'gemm';
  m: number; k: number; n: number;
  threads: number;
  gflops: number;
  peer: 'numpy' | null;
  peer_gflops: number | null;
  ratio: number | null;
  /** gflops / (peak per core x threads) */
  peak_fraction: number;
}

interface Opts { json: boolean; reps: number; minTime: number; threads: number[]; shapes: Shape[]; peer: boolean }

function parseShape(s: string): Shape {
  const parts = s.toLowerCase().split('x').map(Number);
  const dims = parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts;
  if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new UsageError(`bench gemm: --shapes entry '${s}' must be N or MxKxN with positive integers`);
  }
  return dims as Shape;
}

function parseOpts(argv: string[]): Opts {
  const o: Opts = { json: false, reps: 7, minTime: 0.2, threads: [], shapes: DEFAULT_SHAPES, peer: true };
  const all = availableParallelism();
  o.threads = all > 1 ? [1, all] : [1];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`bench gemm: ${a} needs a value`);
      return v;
    };
    const num = (name: string, v: string, min: number): number => {
      const x = Number(v);
      if (!Number.isFinite(x) || x < min) throw new UsageError(`bench gemm: ${name} must be a number >= ${min}, got '${v}'`);
      return x;
    };
    if (a === '--json') o.json = true;
    else if (a === '--no-peer') o.peer = false;
    else if (a === '--reps') o.reps = Math.floor(num(a, val(), 1));
    else if (a === '--min-time') o.minTime = num(a, val(), 0);
    else if (a === '--threads') o.threads = val().split(',').map((t) => Math.floor(num(a, t, 1)));
    else if (a === '--shapes') o.shapes = val().split(',').map(parseShape);
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- gemm [--json] [--reps N] [--min-time S] [--threads 1,2] [--shapes 512,2048x896x4864] [--no-peer]');
      process.exit(0);
    } else throw new UsageError(`bench gemm: unknown option '${a}'`);
  }
  return o;
}

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

/** Sampler of C = A B through the backend's matmul (A m x k, B k x n, row-major): each call of the
 *  returned function times one sample (the product repeated until it lasts ~minTime s), in seconds
 *  per product. */
function oursSampler(be: NativeBackend, [m, k, n]: Shape, minTime: number): () => number {
  const A = rand(m * k, 1), B = rand(k * n, 2), C = new Float32Array(m * n);
  const call = (): void => be.matmul(C, 0, A, 0, 0, k, false, B, 0, 0, n, false, 1, m, n, k, false);
  call(); // warm-up: packing buffers, thread start, page faults
  let t0 = performance.now();
  call();
  const one = (performance.now() - t0) / 1000;
  const inner = Math.max(1, Math.floor(minTime / Math.max(one, 1e-9)));
  return () => {
    t0 = performance.now();
    for (let i = 0; i < inner; i++) call();
    return (performance.now() - t0) / 1000 / inner;
  };
}

/** One long-lived numpy process (fixed OpenBLAS thread count), answering one shape per request. */
class NumpyPeer {
  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly failed: Promise<never>,
    readonly blas: string,
  ) {}

  static async start(threads: number): Promise<NumpyPeer> {
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers', 'numpy_gemm.py');
    const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
    // BENCH.md: some machines set these and they slow a current numpy's OpenBLAS; unset for the peer only.
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const proc = spawn('python3', [script, '--serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const failed = new Promise<never>((_, reject) => {
      proc.on('error', (e) => reject(new Error(`python3 could not start: ${e.message}`)));
      proc.on('exit', (code) => reject(new Error(`numpy peer exited (${code}): ${stderr.trim().split('\n').pop() ?? ''}`)));
    });
    failed.catch(() => undefined); // observed through the races below
    const it = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const first = await Promise.race([it.next(), failed]);
    const hello = (first.done ? {} : JSON.parse(first.value)) as { ready?: boolean; blas?: string; numpy?: string };
    if (!hello.ready) throw new Error('numpy peer did not start');
    return new NumpyPeer(proc, it, failed, `numpy ${hello.numpy} / ${hello.blas}`);
  }

  async time(shape: Shape, reps: number, minTime: number): Promise<number> {
    this.proc.stdin.write(JSON.stringify({ shapes: [shape], reps, min_time: minTime }) + '\n');
    const r = await Promise.race([this.lines.next(), this.failed]);
    if (r.done) throw new Error('numpy peer closed its output');
    return (JSON.parse(r.value) as { gflops: number }).gflops;
  }

  close(): void {
    this.proc.removeAllListeners('exit');
    this.proc.stdin.end();
    this.proc.kill();
  }
}

function numpyAvailable(): string | null {
  const r = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (r.error) return `python3 not found (${r.error.message})`;
  if (r.status !== 0) return `numpy not importable: ${(r.stderr || '').trim().split('\n').pop()}`;
  return null;
}

/**
 * Clock for the peak estimate. Measured: a chain of dependent 1-cycle integer ops (add/xor) timed in
 * short slices, best slice kept (a slice without preemption runs at one op per cycle, so this is a
 * lower bound on the core clock that ignores load from other processes). Reported: /proc/cpuinfo
 * "cpu MHz" (under a hypervisor often the nominal/TSC rate). The larger of the two is used, which
 * makes the peak an upper estimate and the reported fraction a conservative one.
 */
export function estimateClock(): { ghz: number; source: string; measuredGhz: number; cpuinfoGhz: number | null } {
  let cpuinfoGhz: number | null = null;
  try {
    const mhz = readFileSync('/proc/cpuinfo', 'utf8').match(/^cpu MHz\s*:\s*([\d.]+)/m);
    if (mhz) cpuinfoGhz = Number(mhz[1]) / 1000;
  } catch { /* not Linux */ }
  const chain = (n: number, x: number): number => {
    for (let i = 0; i < n; i++) {
      x = (x + i) | 0; x ^= 0x5bd1; x = (x + 7) | 0; x ^= i;
      x = (x - 3) | 0; x ^= 0x1f; x = (x + i) | 0; x ^= 0x2a;
    }
    return x;
  };
  let x = 1, best = 0;
  for (let r = 0; r < 1500; r++) {
    const n = 20_000; // ~70 us slices: short enough that some run without preemption on a busy machine
    const t0 = process.hrtime.bigint();
    x = chain(n, x);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r >= 100) best = Math.max(best, (8 * n) / s / 1e9); // first slices: JIT warm-up
  }
  if (x === 0.5) console.log(''); // keep x observable so the loop is not optimised away
  const measuredGhz = best;
  const useCpuinfo = cpuinfoGhz !== null && cpuinfoGhz > measuredGhz;
  return {
    ghz: useCpuinfo ? cpuinfoGhz! : measuredGhz,
    source: useCpuinfo
      ? `/proc/cpuinfo cpu MHz (${cpuinfoGhz!.toFixed(3)} GHz; dependent-op chain measured ${measuredGhz.toFixed(3)} GHz)`
      : `dependent-op chain, best slice (${measuredGhz.toFixed(3)} GHz${cpuinfoGhz ? `; /proc/cpuinfo says ${cpuinfoGhz.toFixed(3)} GHz` : ''})`,
    measuredGhz,
    cpuinfoGhz,
  };
}

/** FP32 flops per cycle per core: 2 FMA pipes x vector lanes x 2 (AVX2: Zen 2/3/4, Haswell and later). */
function flopsPerCycle(isa: string): number {
  if (isa === 'avx512' || isa === 'avx512bf16') return 2 * 16 * 2; // assumes two 512-bit FMA ports (Xeon Gold/Platinum class)
  if (isa === 'avx2') return 2 * 8 * 2;
  return 2 * 4 * 2; // SSE2 pair of 4-wide multiply + add per cycle, roughly
}

function cpuModel(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? 'unknown CPU';
  } catch {
    return 'unknown CPU';
  }
}

export default async function run(argv: string[]): Promise<void> {
  const o = parseOpts(argv);
  const be = loadNative();
  if (!be) throw new UsageError(`bench gemm: the native addon is not available (${nativeLoadError()}); run npm run build`);
  const cores = availableParallelism();
  const clock = estimateClock();
  const fpc = flopsPerCycle(be.isa);
  const peakPerCore = clock.ghz * fpc;
  const peak = peakPerCore * cores;

  let peerNote: string | null = o.peer ? numpyAvailable() : 'disabled (--no-peer)';
  const rows: GemmRow[] = [];
  const savedThreads = be.getThreads();
  let blas = '';
  try {
    for (const t of o.threads) {
      be.setThreads(t);
      let peer: NumpyPeer | null = null;
      if (!peerNote) {
        try {
          peer = await NumpyPeer.start(t);
          blas = peer.blas;
        } catch (e) {
          peerNote = e instanceof Error ? e.message : String(e);
        }
      }
      try {
        for (const shape of o.shapes) {
          // Alternate one sample of ours with one of the peer, best of each: a burst of load from
          // other processes then hits both sides alike instead of one side's whole block of samples.
          const flop = 2 * shape[0] * shape[1] * shape[2];
          const sample = oursSampler(be, shape, o.minTime);
          let best = Infinity, peerG: number | null = null;
          for (let r = 0; r < o.reps; r++) {
            best = Math.min(best, sample());
            if (peer) {
              peerG = Math.max(peerG ?? 0, await peer.time(shape, 1, o.minTime));
              // OpenBLAS workers busy-wait after a call (THREAD_TIMEOUT, default 2^28 cycles, ~0.1 s
              // here) before sleeping; let them go idle so they do not compete with our next sample.
              // (Our pool spins only 0.1 ms, so the peer needs no such pause.)
              if (t > 1) await sleep(PEER_SETTLE_MS);
            }
          }
          const gflops = flop / best / 1e9;
          const row: GemmRow = {
            bench: 'gemm', m: shape[0], k: shape[1], n: shape[2], threads: t,
            gflops: round(gflops), peer: peer ? 'numpy' : null,
            peer_gflops: peerG === null ? null : round(peerG),
            ratio: peerG === null ? null : round(gflops / peerG, 3),
            peak_fraction: round(gflops / (peakPerCore * Math.min(t, cores)), 3),
          };
          rows.push(row);
          if (o.json) console.log(JSON.stringify(row));
        }
      } finally {
        peer?.close();
      }
    }
  } finally {
    be.setThreads(savedThreads);
  }

  const allT = Math.max(...o.threads);
  const bestAll = Math.max(...rows.filter((r) => r.threads === allT).map((r) => r.gflops));
  const peakRow = {
    bench: 'gemm', kind: 'peak', cpu: cpuModel(), cores, isa: be.isa, clock_ghz: round(clock.ghz, 3),
    clock_source: clock.source, flops_per_cycle_per_core: fpc, peak_gflops: round(peak),
    best_gflops: bestAll, best_threads: allT, peak_fraction: round(bestAll / (peakPerCore * Math.min(allT, cores)), 3),
    peer_info: peerNote ?? blas,
  };
  if (o.json) {
    console.log(JSON.stringify(peakRow));
    return;
  }
  console.log(`GEMM f32, native (${be.isa}) vs ${peerNote ? `no peer: ${peerNote}` : blas}; best of ${o.reps}, samples >= ${o.minTime}s`);
  const head = ['m', 'k', 'n', 'threads', 'GFLOP/s', 'numpy', 'ratio', 'of peak'];
  const table = rows.map((r) => [r.m, r.k, r.n, r.threads, r.gflops.toFixed(1), r.peer_gflops?.toFixed(1) ?? '-',
    r.ratio?.toFixed(2) ?? '-', `${(r.peak_fraction * 100).toFixed(0)}%`].map(String));
  const w = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  console.log(head.map((h, i) => h.padStart(w[i])).join('  '));
  for (const r of table) console.log(r.map((c, i) => c.padStart(w[i])).join('  '));
  console.log(`peak FP32: ${cores} cores x ${clock.ghz.toFixed(3)} GHz x ${fpc} flop/cycle = ${peak.toFixed(1)} GFLOP/s ` +
    `(clock: ${clock.source}); best at ${allT} threads ${bestAll.toFixed(1)} GFLOP/s = ${(peakRow.peak_fraction * 100).toFixed(0)}% (${cpuModel()})`);
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
