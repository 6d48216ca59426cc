/**
 * Shared machinery of the model-level benchmarks (bench/model.ts, bench/train.ts): the r1ts side and the
 * PyTorch peer (bench/peers/torch_model.py) each run as a long-lived worker process that speaks the same
 * JSON-lines protocol, so the two are driven alike and sampled alternately:
 *
 *   -> {"setup": {"mode": "train"|"fwdbwd"|"moe", "config": <config.json>, "batch": B, "seq": S,
 *                 "seed": n, "experts": E (moe only)}}
 *   <- {"ready": true, "impl": "...", "params": <trainable parameter count>}
 *   -> {"run": k}
 *   <- {"seconds": [k step times], "loss": <last loss>, "peak_rss_mb": <process peak RSS>}
 *   -> {"profile": k}
 *   <- {"step_ms": <wall ms per step>, "ops": {<op>: [ms per step, calls per step]}}
 *
 * One worker per (model, mode): peak RSS (getrusage's ru_maxrss, lifetime peak of the process) then belongs
 * to that model alone, for both sides.
 *
 * Modes (identical on both sides; see bench/MODEL.md):
 *   train   forward + loss + backward + grad-norm clip 1.0 + AdamW (wd 0.1) + zero grad; DeepSeek adds the
 *           MTP loss (lambda 0.3) and the aux-loss-free routing-bias update — src/train/loop.ts Trainer.
 *   fwdbwd  forward + loss (+ MTP) + backward, gradients dropped; no optimizer.
 *   moe     one DeepSeekMoE layer (the config's dims, n_routed_experts = E) forward on x [B, S, hidden]
 *           (x requires grad) and backward of y.sum().
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { R1Error, UsageError } from '../src/errors.js';
import { loadConfig, parseConfig, isDeepseek, type DeepseekConfig } from '../src/models/config.js';
import { buildModel } from '../src/models/load.js';
import { Gate, MoE } from '../src/models/deepseek-v3.js';
import { Trainer, type Batch } from '../src/train/loop.js';
import { Rng, randn, tidy, keep } from '../src/tensor/index.js';
import { activeBackend } from '../src/tensor/ops/common.js';
import { loadNative, nativeAddonExports } from '../src/tensor/backends/native.js';
import { jsBackend } from '../src/tensor/backends/js.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (this file compiles to dist/bench/model-common.js). */
export const REPO_ROOT = join(here, '..', '..');

/** BENCH.md shapes used here; the committed copies in test/fixtures equal ../shared/models/<dir>/config.json. */
export const SHAPES = { T1: 't1-dense', M1: 'm1-moe' } as const;
export type ShapeName = keyof typeof SHAPES;

export function shapeConfigPath(name: ShapeName): string {
  return join(REPO_ROOT, 'test', 'fixtures', 'models', SHAPES[name], 'config.json');
}

export function parseShapeNames(bench: string, v: string): ShapeName[] {
  return v.split(',').map((s) => {
    const n = s.trim().toUpperCase();
    if (!(n in SHAPES)) throw new UsageError(`bench ${bench}: --models entry '${s}' is not one of ${Object.keys(SHAPES).join(', ')}`);
    return n as ShapeName;
  });
}

export type WorkMode = 'train' | 'fwdbwd' | 'moe';

export interface SetupRequest {
  mode: WorkMode;
  config: string;
  batch: number;
  seq: number;
  seed: number;
  /** moe mode: routed experts of the layer. */
  experts?: number;
}

export interface Ready { impl: string; params: number }
export interface StepProfile { stepMs: number; ops: OpProfile }
export interface RunReply { seconds: number[]; loss: number | null; peak_rss_mb: number }

// ------------------------------------------------------------------------------------------------
// Options shared by both benches
// ------------------------------------------------------------------------------------------------

export interface CommonOpts {
  json: boolean;
  peer: boolean;
  steps: number;
  warmup: number;
  batch: number;
  seq: number;
  threads: number;
  models: ShapeName[];
  seed: number;
  /** After the timed steps, one profiled step per side: per-op time breakdown rows. */
  profile: boolean;
}

/**
 * Parse the flags both benches take; `extra(flag, value)` handles bench-specific ones (return true when
 * consumed). Unknown flags are UsageErrors naming the flag.
 */
export function parseCommon(bench: string, argv: string[], usage: string,
  extra: (flag: string, value: () => string) => boolean = () => false): CommonOpts {
  const o: CommonOpts = { json: false, peer: true, steps: 3, warmup: 1, batch: 8, seq: 256, threads: availableParallelism(), models: ['T1', 'M1'], seed: 1, profile: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`bench ${bench}: ${a} needs a value`);
      return v;
    };
    if (a === '--json') o.json = true;
    else if (a === '--no-peer') o.peer = false;
    else if (a === '--profile') o.profile = true;
    else if (a === '--steps') o.steps = intFlag(bench, a, val(), 1);
    else if (a === '--warmup') o.warmup = intFlag(bench, a, val(), 0);
    else if (a === '--batch') o.batch = intFlag(bench, a, val(), 1);
    else if (a === '--seq') o.seq = intFlag(bench, a, val(), 3);
    else if (a === '--threads') o.threads = intFlag(bench, a, val(), 1);
    else if (a === '--seed') o.seed = intFlag(bench, a, val(), 0);
    else if (a === '--models') o.models = parseShapeNames(bench, val());
    else if (a === '--help' || a === '-h') {
      console.log(usage);
      process.exit(0);
    } else if (!extra(a, val)) throw new UsageError(`bench ${bench}: unknown option '${a}' (see --help)`);
  }
  return o;
}

export function intFlag(bench: string, name: string, v: string, min: number): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new UsageError(`bench ${bench}: ${name} must be an integer >= ${min}, got '${v}'`);
  return x;
}

// ------------------------------------------------------------------------------------------------
// Workers
// ------------------------------------------------------------------------------------------------

/** A long-lived child process answering one JSON line per request line. */
export class LineWorker {
  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly failed: Promise<never>,
    readonly hello: Record<string, unknown>,
    readonly label: string,
  ) {}

  static async start(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<LineWorker> {
    const proc = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    const failed = new Promise<never>((_, reject) => {
      proc.on('error', (e) => reject(new R1Error(`${label}: could not start ${cmd} (${e.message})`)));
      proc.on('exit', (code, sig) => reject(new R1Error(`${label}: worker exited (${code ?? sig}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`)));
    });
    failed.catch(() => undefined); // observed through the races below
    const it = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const w = new LineWorker(proc, it, failed, {}, label);
    const hello = await w.read();
    if (hello['hello'] !== true) {
      w.close();
      throw new R1Error(`${label}: ${String(hello['error'] ?? 'did not start')}`);
    }
    return new LineWorker(proc, it, failed, hello, label);
  }

  private async read(): Promise<Record<string, unknown>> {
    const r = await Promise.race([this.lines.next(), this.failed]);
    if (r.done) throw new R1Error(`${this.label}: worker closed its output`);
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(r.value) as Record<string, unknown>;
    } catch {
      throw new R1Error(`${this.label}: unexpected output line '${r.value.slice(0, 200)}'`);
    }
    if (typeof msg['error'] === 'string' && msg['hello'] === undefined) throw new R1Error(`${this.label}: ${msg['error']}`);
    return msg;
  }

  async request(req: object): Promise<Record<string, unknown>> {
    this.proc.stdin.write(JSON.stringify(req) + '\n');
    return this.read();
  }

  async setup(req: SetupRequest): Promise<Ready> {
    const r = await this.request({ setup: req });
    return { impl: String(r['impl']), params: Number(r['params']) };
  }

  /** One profiled step (after the timed ones: profiling slows a step down). */
  async profile(): Promise<StepProfile> {
    const r = await this.request({ profile: 1 });
    return { stepMs: Number(r['step_ms']), ops: r['ops'] as OpProfile };
  }

  async run(steps: number): Promise<RunReply> {
    const r = await this.request({ run: steps });
    return { seconds: r['seconds'] as number[], loss: (r['loss'] as number | null) ?? null, peak_rss_mb: Number(r['peak_rss_mb']) };
  }

  close(): void {
    this.proc.removeAllListeners('exit');
    this.proc.stdin.end();
    this.proc.kill();
  }
}

/** The r1ts worker: this module run with --serve, the native pool at `threads`. */
export function startR1Worker(threads: number): Promise<LineWorker> {
  const env = { ...process.env, R1_THREADS: String(threads) };
  return LineWorker.start('r1ts worker', process.execPath, [fileURLToPath(import.meta.url), '--serve'], env);
}

export const TORCH_PYTHON = '/usr/bin/python3';
export const TORCH_PEER_SCRIPT = join(REPO_ROOT, 'bench', 'peers', 'torch_model.py');

/** Why the PyTorch peer cannot run (null when it can). */
export function torchUnavailable(): string | null {
  const r = spawnSync(TORCH_PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `peer unavailable: ${TORCH_PYTHON} not found (${r.error.message})`;
  if (r.status !== 0) return `peer unavailable: torch not importable by ${TORCH_PYTHON} (${(r.stderr || '').trim().split('\n').pop()})`;
  return null;
}

/** PyTorch from Debian (BENCH.md): set_num_threads(threads); OpenBLAS pinned to the same count. */
export function startTorchPeer(threads: number): Promise<LineWorker> {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  // BENCH.md: these slow a current OpenBLAS on some machines; unset for the peer only (as bench/gemm.ts).
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return LineWorker.start('pytorch peer', TORCH_PYTHON, [TORCH_PEER_SCRIPT, '--serve', '--threads', String(threads)], env);
}

// ------------------------------------------------------------------------------------------------
// Alternating measurement
// ------------------------------------------------------------------------------------------------

/** After a peer sample, let OpenBLAS/OpenMP workers stop busy-waiting before our next sample (bench/gemm.ts). */
export const PEER_SETTLE_MS = 300;

export interface PairResult {
  ours: { seconds: number[]; loss: number | null; peakRssMb: number; params: number; impl: string; profile: StepProfile | null };
  peer: { seconds: number[]; loss: number | null; peakRssMb: number; params: number; impl: string; profile: StepProfile | null; info: string } | null;
  /** Why the peer has no numbers (unavailable, disabled or failed). */
  peerNote: string | null;
}

/**
 * Set up the same workload on both sides, warm both up, then take `steps` single-step samples alternating
 * ours / peer. A peer that fails (at start or mid-run) leaves ours measured and says why in peerNote.
 */
export async function measurePair(req: SetupRequest, o: { steps: number; warmup: number; threads: number; profile?: boolean },
  peerNote: string | null): Promise<PairResult> {
  const ours = await startR1Worker(o.threads);
  let peer: LineWorker | null = null;
  let note = peerNote;
  try {
    const oursReady = await ours.setup(req);
    let peerReady: Ready | null = null;
    if (!note) {
      try {
        peer = await startTorchPeer(o.threads);
        peerReady = await peer.setup(req);
      } catch (e) {
        note = `peer failed: ${e instanceof Error ? e.message : String(e)}`;
        peer?.close();
        peer = null;
      }
    }
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const our: number[] = [];
    const their: number[] = [];
    let ourLast: RunReply | null = null;
    let theirLast: RunReply | null = null;
    if (o.warmup > 0) {
      ourLast = await ours.run(o.warmup);
      if (peer) {
        try { theirLast = await peer.run(o.warmup); await sleep(PEER_SETTLE_MS); } catch (e) { note = `peer failed: ${(e as Error).message}`; peer.close(); peer = null; }
      }
    }
    for (let s = 0; s < o.steps; s++) {
      ourLast = await ours.run(1);
      our.push(...ourLast.seconds);
      if (peer) {
        try {
          theirLast = await peer.run(1);
          their.push(...theirLast.seconds);
          await sleep(PEER_SETTLE_MS);
        } catch (e) {
          note = `peer failed: ${(e as Error).message}`;
          peer.close();
          peer = null;
        }
      }
    }
    // Profiles come last: peak RSS and the timed samples above are unaffected by profiling.
    let ourProfile: StepProfile | null = null;
    let theirProfile: StepProfile | null = null;
    if (o.profile) {
      ourProfile = await ours.profile();
      if (peer) {
        try { theirProfile = await peer.profile(); } catch (e) { note = `peer profile failed: ${(e as Error).message}`; }
      }
    }
    return {
      ours: { seconds: our, loss: ourLast?.loss ?? null, peakRssMb: ourLast?.peak_rss_mb ?? 0, params: oursReady.params, impl: oursReady.impl, profile: ourProfile },
      peer: peer && peerReady && theirLast
        ? { seconds: their, loss: theirLast.loss, peakRssMb: theirLast.peak_rss_mb, params: peerReady.params, impl: peerReady.impl, profile: theirProfile, info: peerInfo(peer.hello) }
        : null,
      peerNote: note,
    };
  } finally {
    ours.close();
    peer?.close();
  }
}

export interface ProfileRow {
  bench: string;
  what: 'profile';
  /** The measurement this profile belongs to (e.g. 'train', 'fwd+bwd', 'moe-layer'). */
  of: string;
  model: string;
  experts?: number;
  side: 'r1ts' | 'pytorch';
  /** Wall time of the profiled step (profiling overhead included). */
  step_ms: number;
  /** Time not inside any listed top-level op (r1ts: JavaScript glue, autograd, routing loops). */
  other_ms: number;
  /** Top ops by time: [name, ms per step, calls per step]. */
  ops: [string, number, number][];
}

/** Rows for the profiles of a pair (none when profiling was off). */
export function profileRows(bench: string, of: string, model: string, r: PairResult, experts?: number, top = 25): ProfileRow[] {
  const rows: ProfileRow[] = [];
  const sides: ['r1ts' | 'pytorch', StepProfile | null | undefined][] = [['r1ts', r.ours.profile], ['pytorch', r.peer?.profile]];
  for (const [side, p] of sides) {
    if (!p) continue;
    const entries = Object.entries(p.ops).sort((a, b) => b[1][0] - a[1][0]);
    // Nested entries (fallbacks, the inclusive gate figure) are already inside a top-level op's time.
    const topLevel = entries.filter(([k]) => !k.includes('-fallback:') && !k.startsWith('Gate.route') && !k.startsWith(MATMUL_SHAPE));
    const inside = topLevel.reduce((a, [, v]) => a + v[0], 0);
    const row: ProfileRow = {
      bench, what: 'profile', of, model, side, step_ms: round(p.stepMs, 1), other_ms: round(Math.max(0, p.stepMs - inside), 1),
      ops: entries.slice(0, top).map(([k, v]) => [k, round(v[0], 2), round(v[1], 1)]),
    };
    if (experts !== undefined) row.experts = experts;
    rows.push(row);
  }
  return rows;
}

/** GFLOP/s of a per-shape GEMM profile entry, or '' for other entries. */
function gemmRate(key: string, ms: number, calls: number): string {
  if (!key.startsWith(MATMUL_SHAPE)) return '';
  const [b, m, n, k] = key.slice(MATMUL_SHAPE.length).split(':')[0]!.split('x').map(Number) as [number, number, number, number];
  return ms > 0 ? String(round((2 * b * m * n * k * calls) / ms / 1e6, 1)) : '';
}

export function printProfile(p: ProfileRow): void {
  console.log(`\nprofile: ${p.of} ${p.model}${p.experts ? ` (${p.experts} experts)` : ''}, ${p.side}: one step ${p.step_ms} ms, outside listed ops ${p.other_ms} ms`);
  printTable(['op', 'ms/step', 'calls', '%', 'GFLOP/s'], p.ops.map(([k, ms, n]) => [k, ms, n, round((100 * ms) / p.step_ms, 1), gemmRate(k, ms, n)]));
}

/** "pytorch <version>, <n> threads, 512^3 matmul <x> GFLOP/s" — the last is a BLAS sanity figure: Debian's
 *  torch on the reference BLAS (no libopenblas0-pthread) shows ~4 and the comparison means nothing (BENCH.md). */
export function peerInfo(hello: Record<string, unknown>): string {
  const g = Number(hello['matmul_gflops']);
  return `pytorch ${String(hello['torch'])}, ${String(hello['threads'])} threads, 512^3 matmul ${g} GFLOP/s` +
    (g < 20 ? ' (LOW: reference BLAS? install libopenblas0-pthread)' : '');
}

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Print rows as an aligned text table. */
export function printTable(head: string[], rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map(String));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  console.log(head.map((h, i) => h.padStart(w[i]!)).join('  '));
  for (const r of cells) console.log(r.map((c, i) => c.padStart(w[i]!)).join('  '));
}

// ------------------------------------------------------------------------------------------------
// The r1ts worker (runs in its own process: node dist/bench/model-common.js --serve)
// ------------------------------------------------------------------------------------------------

/** Random ids [B*S] and next-token labels (last position of each row -100). */
export function randomBatch(rng: Rng, batch: number, seq: number, vocab: number): Batch {
  const ids = new Int32Array(batch * seq);
  for (let i = 0; i < ids.length; i++) ids[i] = rng.nextU32() % vocab;
  const labels = new Int32Array(ids.length);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq; t++) labels[b * seq + t] = t + 1 < seq ? ids[b * seq + t + 1]! : -100;
  }
  return { ids, labels, batch, seqLen: seq };
}

interface Workload { params: number; step(): number | null }

/** Per-kernel time of one profiled run: name -> [ms, calls]. */
export type OpProfile = Record<string, [number, number]>;

let profiling = false;
let profileDepth = 0;
const profileData = new Map<string, [number, number]>();
let profilerInstalled = false;

/**
 * Time every backend kernel call (native and js backends; a js call made from inside a native one is a
 * fallback and is listed as `js-fallback:<kernel>`, its time also inside the outer kernel's), plus the
 * DeepSeek gate's routing (`Gate.route`, inclusive of its own kernels). The step time not inside any
 * kernel is the JavaScript side: autograd bookkeeping, views, routing loops, allocation.
 */
function add(key: string, ms: number): void {
  const e = profileData.get(key) ?? [0, 0];
  e[0] += ms;
  e[1]++;
  profileData.set(key, e);
}

/** Profile keys of per-shape GEMM entries (their time is also in native.matmul). */
export const MATMUL_SHAPE = 'matmul-shape:';

function installProfiler(): void {
  if (profilerInstalled) return;
  profilerInstalled = true;
  const wrapAll = (obj: Record<string, unknown>, tag: string): void => {
    for (const [name, fn] of Object.entries(obj)) {
      if (typeof fn !== 'function' || name === 'getThreads' || name === 'setThreads') continue;
      const orig = fn as (...a: unknown[]) => unknown;
      obj[name] = function (this: unknown, ...args: unknown[]): unknown {
        if (!profiling) return orig.apply(this, args);
        const key = profileDepth > 0 ? `${tag}-fallback:${name}` : `${tag}.${name}`;
        profileDepth++;
        const t0 = performance.now();
        try {
          return orig.apply(this, args);
        } finally {
          const dt = performance.now() - t0;
          profileDepth--;
          add(key, dt);
          // GEMMs also by shape: which products are slow (batch x m x n x k, N/T = op(A), op(B)).
          if (name === 'matmul' && profileDepth === 0) {
            const [, , , , , , tA, , , , , tB, batch, m, n, k] = args as [unknown, unknown, unknown, unknown, unknown, unknown, boolean, unknown, unknown, unknown, unknown, boolean, number, number, number, number];
            add(`${MATMUL_SHAPE}${batch}x${m}x${n}x${k}:${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`, dt);
          }
        }
      };
    }
  };
  const native = loadNative();
  if (native) wrapAll(native as unknown as Record<string, unknown>, 'native');
  // Kernels that ops call on the raw addon (grouped GEMM, packed GEMMs) rather than through the backend object.
  const raw = nativeAddonExports();
  if (raw) {
    const picked: Record<string, unknown> = {};
    for (const name of ['gemmGrouped', 'qgemm']) if (typeof raw[name] === 'function') picked[name] = raw[name];
    wrapAll(picked, 'native');
    Object.assign(raw, picked);
  }
  wrapAll(jsBackend as unknown as Record<string, unknown>, 'js');
  const route = Gate.prototype.route;
  Gate.prototype.route = function (this: Gate, x) {
    if (!profiling) return route.call(this, x);
    const d = profileDepth;
    profileDepth = 0; // kernels inside still count as top-level kernels
    const t0 = performance.now();
    try {
      return route.call(this, x);
    } finally {
      const e = profileData.get('Gate.route (incl. its kernels)') ?? [0, 0];
      e[0] += performance.now() - t0;
      e[1]++;
      profileData.set('Gate.route (incl. its kernels)', e);
      profileDepth = d;
    }
  };
}

function buildWorkload(req: SetupRequest): Workload {
  const rng = new Rng(req.seed);
  if (req.mode === 'moe') {
    const base = loadConfig(req.config);
    if (!isDeepseek(base)) throw new UsageError(`moe mode needs a DeepSeek config, ${req.config} is ${base.modelType}`);
    const raw = { ...base.raw, n_routed_experts: req.experts ?? base.nRoutedExperts };
    const c = parseConfig(raw, `${req.config} (n_routed_experts=${raw['n_routed_experts']})`) as DeepseekConfig;
    const layer = new MoE(c, { rng, std: c.initializerRange, dtype: 'f32' });
    layer.train();
    const x = keep(randn([req.batch, req.seq, c.hiddenSize], { rng }));
    x.requiresGrad = true;
    const params = layer.trainableParameters();
    return {
      params: params.reduce((a, p) => a + p.size, 0),
      step: () => {
        tidy(() => { layer.forward(x).sum().backward(); });
        for (const p of params) p.zeroGrad();
        x.zeroGrad();
        return null;
      },
    };
  }
  const config = loadConfig(req.config);
  const model = buildModel(config, { init: 'random', seed: req.seed, maxPositions: req.seq });
  const trainer = new Trainer(model, { lr: () => 1e-4 });
  const batch = randomBatch(rng, req.batch, req.seq, config.vocabSize);
  const params = model.trainableParameters().reduce((a, p) => a + p.size, 0);
  if (req.mode === 'train') return { params, step: () => trainer.trainStep([batch]).loss };
  return {
    params,
    step: () => {
      const loss = tidy(() => {
        const r = trainer.loss(batch);
        r.loss.backward();
        return r.loss.item();
      });
      trainer.optimizer.zeroGrad();
      return loss;
    },
  };
}

export async function serveR1Worker(): Promise<void> {
  const out = (o: object): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
  out({ hello: true, backend: activeBackend() });
  let work: Workload | null = null;
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    try {
      const msg = JSON.parse(line) as { setup?: SetupRequest; run?: number; profile?: number };
      if (msg.setup) {
        work = buildWorkload(msg.setup);
        out({ ready: true, impl: `r1ts (${activeBackend()} backend, ${process.env['R1_THREADS'] ?? 'default'} threads)`, params: work.params });
      } else if (typeof msg.profile === 'number') {
        if (!work) throw new UsageError('profile before setup');
        installProfiler();
        profileData.clear();
        profiling = true;
        const t0 = performance.now();
        try {
          for (let i = 0; i < msg.profile; i++) work.step();
        } finally {
          profiling = false;
        }
        const total = performance.now() - t0;
        const ops: OpProfile = {};
        for (const [k, v] of profileData) ops[k] = [v[0] / msg.profile, v[1] / msg.profile];
        out({ step_ms: total / msg.profile, ops });
      } else if (typeof msg.run === 'number') {
        if (!work) throw new UsageError('run before setup');
        const seconds: number[] = [];
        let loss: number | null = null;
        for (let i = 0; i < msg.run; i++) {
          const t0 = performance.now();
          loss = work.step();
          seconds.push((performance.now() - t0) / 1000);
        }
        out({ seconds, loss, peak_rss_mb: process.resourceUsage().maxRSS / 1024 });
      } else throw new UsageError(`unknown request ${line.slice(0, 100)}`);
    } catch (e) {
      out({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2] === '--serve') {
  serveR1Worker().catch((e: unknown) => {
    console.error(e instanceof Error ? e.stack ?? e.message : String(e));
    process.exitCode = 1;
  });
}

