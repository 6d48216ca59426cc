/**
 * FP8 mixed-precision training vs the f32 baseline (issue 7; DeepSeek-V3 technical report section 3.3, whose
 * validation (3.3, Figure 10 / appendix B.1) shows FP8 training loss staying within 0.25% relative of BF16).
 *
 * For each model (T1: ../shared/models/t1-dense, M1: ../shared/models/m1-moe) and each seed, two runs from the same
 * initial weights on the same batches in the same order:
 *   f32  every GEMM in f32, AdamW moments f32;
 *   fp8  `precision: 'fp8'` (src/nn/fp8-linear.ts): the attention/MLP/expert/eh_proj Linears' Fprop, Dgrad and
 *        Wgrad GEMMs on E4M3 operands (1x128 activation/gradient tiles, 128x128 weight blocks, 128x1 token tiles for
 *        Wgrad), f32 accumulation; embeddings, lm_head, MoE gate, norms and attention in f32; f32 master weights and
 *        gradients; AdamW moments stored in BF16.
 * Data: the built-in arithmetic task's problems + reasoning traces (src/tasks), tokenized by a byte-level BPE trained
 * on them (384 tokens, digits split), packed into windows with EOS between documents — text a tiny model learns, so
 * the loss falls over the run. The models keep their shipped vocab_size (8192); unused ids just get low logits.
 * Schedule: linear warmup then cosine to 10% (AdamW, weight decay 0.1, clip 1.0; M1 also trains MTP, lambda 0.3, and
 * updates routing biases, gamma 0.001 unless --bias-gamma says otherwise).
 *
 * Metric: the training loss (the optimized objective: CE, + 0.3 x MTP CE for M1) per step; both curves smoothed with
 * a debiased EMA (weight --smooth, default 0.6 — TensorBoard-style, "lightly smoothed"); relative difference
 * |fp8 - f32| / f32 per step; max and mean over the steps after warmup. The unsmoothed per-step difference and the
 * relative difference of the mean loss over the last 10% of steps are reported too. With two or more seeds, the f32
 * curves of different seeds are compared the same way as a yardstick (what a change of init/data order does).
 * --yardstick E adds a third run per seed: f32 from the same initial weights multiplied by (1 +- E) (fixed signs;
 * E = 1e-6 is about 8 f32 ulps): how far a rounding-sized perturbation alone moves this tiny run's curve.
 * --bf16 adds a run with BF16-operand GEMMs (f32 accumulation) in the same Linears (nn/fp8-linear.ts bf16Linear),
 * f32 moments: the paper's baseline precision, so both "bf16 vs f32" and "fp8 vs bf16" are reported.
 * --f32-eval also evaluates each step's batch with f32 Linears at the fp8 run's weights before its update: the gap
 * "fp8 weights, f32 forward" vs f32 is the trajectory's drift; the rest of the FP8 gap is the forward's quantization.
 * --tag NAME names the plots fp8-train-<model>-NAME.png/.svg. --replot FILE.json redraws the plots of a saved --json
 * output without training (with --smooth, at another smoothing; --plot-dir, --tag apply).
 *
 * Run: npm run bench -- fp8-train [--json] [--model T1|M1|T1,M1] [--steps N] [--seeds 0,1] [--batch B] [--seq S]
 *                                 [--lr X] [--warmup N] [--beta2 X] [--bias-gamma X] [--balance-alpha X] [--smooth W] [--plot-dir DIR] [--threshold 0.25] [--problems N]
 *                                 [--moments bf16|f32] [--wgrad-input requantize-cached|fresh] [--gemm f32|fp8-acc]
 *                                 [--fp8-gemms fprop,dgrad,wgrad] [--yardstick E] [--bf16] [--tag NAME] [--f32-eval]
 * The last three vary the fp8 run only (defaults: the paper's recipe, bf16 moments, re-quantized cached activation,
 * f32-accumulating GEMM; 'fp8-acc' is the 14-bit-accumulator emulation and is far slower). --fp8-gemms lists the GEMMs
 * the fp8 run quantizes (ablation; the others run on f32 operands).
 * --bias-gamma X (default 0.001, V3's) and --balance-alpha X (default 0; V3: 0.0001) set M1's aux-loss-free routing-bias
 * update speed and sequence-wise balance loss weight for every run. The bias update moves each expert's bias by +-gamma
 * on the sign of its load error, so a one-token difference in an expert's load between two runs moves their biases
 * 2 gamma apart; gamma 0 (with or without the balance loss) takes that discrete step out of the comparison.
 * --beta2 X sets AdamW's beta2 for every run (default 0.999, PyTorch's; DeepSeek-V3 trained with 0.95, section 4.2:
 * with BF16 moments at 0.999, v's per-step change 0.1% x (g^2/v - 1) falls below half a BF16 ulp late in a run).
 * Defaults: both models, 100 steps, seed 0, batch 4 x seq 128 (512 tokens/step), lr 1e-3, warmup 10, plots in bench/out/.
 * Time on this 2-core machine (shared, so approximate): T1 ~0.4-0.6 s/step f32 + ~1.0 s/step fp8, ~2.5 min per seed at
 * the defaults; M1 ~1.05 + ~1.95 s/step, ~5 min per seed (before the native per-tile quantizer: T1 at batch 8 now
 * takes ~1.35x the f32 step in fp8, was ~2x). The FP8 emulation's overhead is quantizing and dequantizing 5
 * activation-sized operands per Linear per step (native/fp8.c r1_fp8_quantize_tiles) and their transposes.
 * --json prints one JSON object per model (and per-step losses); plots: <plot-dir>/fp8-train-<model>.png and .svg.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../src/errors.js';
import { loadConfig } from '../src/models/config.js';
import { buildModel } from '../src/models/load.js';
import { trainBpe } from '../src/io/tokenizer/train.js';
import { Tokenizer } from '../src/io/tokenizer/tokenizer.js';
import { tokenizeRows, DataLoader, type Example, type Row } from '../src/train/data.js';
import { Trainer } from '../src/train/loop.js';
import { cosineSchedule } from '../src/train/schedule.js';
import { getTask } from '../src/tasks/index.js';
import { ema, renderChart, stackCharts, type Point } from '../src/report/plot.js';
import { fp8Layers, enableBf16Gemms, enableFp8Training, disableFp8Training } from '../src/nn/fp8-linear.js';
import { noGrad, tidy } from '../src/tensor/index.js';
import { activeBackend } from '../src/tensor/index.js';

const here = dirname(fileURLToPath(import.meta.url));
// dist/bench -> repository root -> ../shared
const ROOT = join(here, '..', '..');
const CONFIGS: Record<string, string> = {
  T1: join(ROOT, '..', 'shared', 'models', 't1-dense', 'config.json'),
  M1: join(ROOT, '..', 'shared', 'models', 'm1-moe', 'config.json'),
};

const USAGE = 'usage: npm run bench -- fp8-train [--json] [--model T1|M1|T1,M1] [--steps N] [--seeds 0,1] [--batch B] [--seq S] ' +
  '[--lr X] [--warmup N] [--beta2 X] [--bias-gamma X] [--balance-alpha X] [--smooth W] [--plot-dir DIR] [--threshold PCT] [--problems N] [--moments bf16|f32] ' +
  '[--wgrad-input requantize-cached|fresh] [--gemm f32|fp8-acc] [--fp8-gemms fprop,dgrad,wgrad] [--yardstick 1e-6] [--bf16] [--tag NAME] [--f32-eval] [--replot FILE.json]';

interface Opts {
  json: boolean; models: string[]; steps: number; seeds: number[]; batch: number; seq: number; lr: number; warmup: number;
  smooth: number; plotDir: string; threshold: number; problems: number;
  /** AdamW's beta2 for every run (DeepSeek-V3 section 4.2 trains with 0.9 / 0.95; PyTorch's default is 0.999). */
  beta2: number;
  /** M1's routing-bias update speed (V3: 0.001) and sequence-wise balance loss weight (V3: 0.0001), every run. */
  biasGamma: number; balanceAlpha: number;
  /** Variants of the fp8 run, to attribute a difference: AdamW moment storage, Wgrad's X operand, GEMM engine. */
  moments: 'f32' | 'bf16'; wgradInput: 'requantize-cached' | 'fresh'; gemm: 'f32' | 'fp8-acc';
  /** Also run f32 from initial weights perturbed by this relative amount (0 = no such run). */
  yardstick: number;
  /** Also run with BF16-operand GEMMs in the same Linears (the paper's baseline precision). */
  bf16: boolean;
  /** Which GEMMs of the fp8 run are FP8 (ablation; default all). */
  fp8Gemms: { fprop: boolean; dgrad: boolean; wgrad: boolean };
  /** Suffix of the plot files (fp8-train-<model>[-<tag>].png), so runs with different settings do not overwrite. */
  tag: string;
  /**
   * fp8 run: before each step also evaluate the step's batch with f32 Linears at the FP8 run's current weights (no
   * update), to split the FP8 - f32 loss gap into the forward's quantization (same weights) and the weights' drift.
   */
  f32Eval: boolean;
  /** Redraw plots from a saved --json file instead of training. */
  replot: string;
  smoothSet: boolean;
}

function parse(argv: string[]): Opts {
  const o: Opts = {
    json: false, models: ['T1', 'M1'], steps: 100, seeds: [0], batch: 4, seq: 128, lr: 1e-3, warmup: 10, smooth: 0.6,
    plotDir: join(ROOT, 'bench', 'out'), threshold: 0.25, problems: 4000, yardstick: 0, bf16: false, tag: '', f32Eval: false, replot: '', smoothSet: false, fp8Gemms: { fprop: true, dgrad: true, wgrad: true }, beta2: 0.999, biasGamma: 0.001, balanceAlpha: 0, moments: 'bf16', wgradInput: 'requantize-cached', gemm: 'f32',
  };
  const choice = <T extends string>(flag: string, v: string, allowed: readonly T[]): T => {
    if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`bench fp8-train: ${flag} must be one of ${allowed.join(', ')}, got '${v}'`);
    return v as T;
  };
  const num = (flag: string, v: string, int: boolean, min: number): number => {
    const x = Number(v);
    if (!Number.isFinite(x) || (int && !Number.isInteger(x)) || x < min) throw new UsageError(`bench fp8-train: ${flag} must be ${int ? 'an integer' : 'a number'} >= ${min}, got '${v}'`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`bench fp8-train: ${a} needs a value`);
      return v;
    };
    if (a === '--json') o.json = true;
    else if (a === '--model' || a === '--models') {
      o.models = val().split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
      for (const m of o.models) if (!CONFIGS[m]) throw new UsageError(`bench fp8-train: unknown model '${m}' (T1 or M1)`);
    } else if (a === '--steps') o.steps = num(a, val(), true, 2);
    else if (a === '--seeds') o.seeds = val().split(',').map((s) => num(a, s.trim(), true, 0));
    else if (a === '--batch') o.batch = num(a, val(), true, 1);
    else if (a === '--seq') o.seq = num(a, val(), true, 8);
    else if (a === '--lr') o.lr = num(a, val(), false, 0);
    else if (a === '--warmup') o.warmup = num(a, val(), true, 0);
    else if (a === '--smooth') { o.smoothSet = true; o.smooth = num(a, val(), false, 0); if (o.smooth >= 1) throw new UsageError('bench fp8-train: --smooth must be in [0, 1)'); }
    else if (a === '--plot-dir') o.plotDir = val();
    else if (a === '--threshold') o.threshold = num(a, val(), false, 0);
    else if (a === '--problems') o.problems = num(a, val(), true, 10);
    else if (a === '--bf16') o.bf16 = true;
    else if (a === '--f32-eval') o.f32Eval = true;
    else if (a === '--replot') o.replot = val();
    else if (a === '--fp8-gemms') {
      const list = val().split(',').map((x) => x.trim()).filter(Boolean);
      for (const g of list) choice(a, g, ['fprop', 'dgrad', 'wgrad'] as const);
      o.fp8Gemms = { fprop: list.includes('fprop'), dgrad: list.includes('dgrad'), wgrad: list.includes('wgrad') };
    }
    else if (a === '--yardstick') o.yardstick = num(a, val(), false, 0);
    else if (a === '--tag') { o.tag = val(); if (!/^[A-Za-z0-9._-]+$/.test(o.tag)) throw new UsageError(`bench fp8-train: --tag must be letters, digits, '.', '_' or '-', got '${o.tag}'`); }
    else if (a === '--beta2') { o.beta2 = num(a, val(), false, 0); if (o.beta2 >= 1) throw new UsageError(`bench fp8-train: --beta2 must be in [0, 1), got ${o.beta2}`); }
    else if (a === '--bias-gamma') o.biasGamma = num(a, val(), false, 0);
    else if (a === '--balance-alpha') o.balanceAlpha = num(a, val(), false, 0);
    else if (a === '--moments') o.moments = choice(a, val(), ['f32', 'bf16'] as const);
    else if (a === '--wgrad-input') o.wgradInput = choice(a, val(), ['requantize-cached', 'fresh'] as const);
    else if (a === '--gemm') o.gemm = choice(a, val(), ['f32', 'fp8-acc'] as const);
    else if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else throw new UsageError(`bench fp8-train: unknown option '${a}'\n${USAGE}`);
  }
  if (o.warmup >= o.steps) throw new UsageError(`bench fp8-train: --warmup ${o.warmup} must be below --steps ${o.steps}`);
  return o;
}

/** Arithmetic problems + traces, a BPE trained on them, tokenized documents (the same for every run). */
export function buildData(problems: number): { examples: Example[]; vocab: number; tokens: number } {
  const task = getTask('arithmetic');
  const docs = task.sample('train', problems, { seed: 1234 }).map((p) => `${p.prompt}\n${task.solve(p)}`);
  const trained = trainBpe(docs.slice(0, 2000), 384, { splitDigits: true });
  const tok = Tokenizer.fromJSON(trained.tokenizerJSON, { config: trained.tokenizerConfig });
  const rows: Row[] = docs.map((text, i) => ({ kind: 'text', text, where: `arithmetic:${i + 1}` }));
  const examples = tokenizeRows(rows, tok, null);
  return { examples, vocab: trained.vocabSize, tokens: examples.reduce((a, e) => a + e.ids.length, 0) };
}

interface RunResult { loss: number[]; lmLoss: number[]; seconds: number; fp8Layers: number; f32EvalLoss: number[] | null }

function trainOnce(model: string, seed: number, mode: 'f32' | 'fp8' | 'bf16', examples: readonly Example[], o: Opts, perturb = 0): RunResult {
  const cfg = loadConfig(CONFIGS[model]!);
  const m = buildModel(cfg, { seed, maxPositions: Math.max(o.seq, 64) });
  const precision = mode === 'fp8' ? 'fp8' : 'f32';
  if (mode === 'bf16') enableBf16Gemms(m);
  if (perturb > 0) {
    // w <- w * (1 +- perturb), signs from a fixed LCG: a perturbation of the size of f32 rounding (1e-6 ~ 8 ulp).
    let st = 12345;
    for (const t of m.parameters()) {
      const a = t.raw as Float32Array;
      for (let i = t.offset; i < t.offset + t.size; i++) {
        st = (Math.imul(st, 1664525) + 1013904223) >>> 0;
        a[i] = a[i]! * (1 + (st & 1 ? perturb : -perturb));
      }
    }
  }
  const trainer = new Trainer(m, {
    lr: cosineSchedule({ lr: o.lr, warmupSteps: o.warmup, totalSteps: o.steps, minLr: o.lr * 0.1 }),
    betas: [0.9, o.beta2], weightDecay: 0.1, clip: 1.0, mtpWeight: 0.3, biasGamma: o.biasGamma, balanceAlpha: o.balanceAlpha, precision: mode === 'bf16' ? undefined : precision,
    momentDtype: precision === 'fp8' ? o.moments : 'f32', fp8: { wgradInput: o.wgradInput, gemm: o.gemm, quantize: o.fp8Gemms },
  });
  const nFp8 = fp8Layers(m).length;
  const loader = new DataLoader(examples, { batchSize: o.batch, seqLen: o.seq, seed, pack: true });
  const loss: number[] = [], lmLoss: number[] = [];
  const f32EvalLoss: number[] | null = mode === 'fp8' && o.f32Eval ? [] : null;
  const fp8Opts = { wgradInput: o.wgradInput, gemm: o.gemm, quantize: o.fp8Gemms };
  const t0 = performance.now();
  for (let s = 0; s < o.steps; s++) {
    const batch = loader.next();
    if (f32EvalLoss) {
      // Eval mode: MoE layers do not count routed tokens (the routing-bias update must see the training step's only).
      disableFp8Training(m);
      m.eval();
      noGrad(() => tidy(() => { f32EvalLoss.push(trainer.loss(batch).loss.item()); }));
      m.train();
      enableFp8Training(m, fp8Opts);
    }
    const r = trainer.trainStep([batch]);
    if (!Number.isFinite(r.loss)) throw new UsageError(`bench fp8-train: ${model} ${mode} seed ${seed} diverged at step ${r.step} (loss ${r.loss})`);
    loss.push(r.loss);
    lmLoss.push(r.lmLoss);
    if ((s + 1) % 10 === 0) process.stderr.write(`  ${model} ${mode}${perturb ? ' perturbed' : ''} seed ${seed}: step ${s + 1}/${o.steps} loss ${r.loss.toFixed(4)} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  }
  const seconds = (performance.now() - t0) / 1000;
  m.dispose();
  return { loss, lmLoss, seconds, fp8Layers: nFp8, f32EvalLoss };
}

function smoothCurve(y: readonly number[], w: number): number[] {
  return ema(y.map((v, i): Point => [i + 1, v]), w).map((p) => p[1]);
}

/** Relative difference of b vs a per step (after `skip` steps): max, mean, and the last-10% mean comparison. */
function compare(a: readonly number[], b: readonly number[], skip: number, smooth: number) {
  const sa = smoothCurve(a, smooth), sb = smoothCurve(b, smooth);
  const rel = (x: readonly number[], y: readonly number[]) => x.map((v, i) => Math.abs(y[i]! - v) / Math.abs(v)).slice(skip);
  const rs = rel(sa, sb), rr = rel(a, b);
  const tail = Math.max(1, Math.round(a.length / 10));
  const meanOf = (x: readonly number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ta = meanOf(a.slice(-tail)), tb = meanOf(b.slice(-tail));
  return {
    smoothed_max_pct: 100 * Math.max(...rs), smoothed_mean_pct: 100 * meanOf(rs),
    raw_max_pct: 100 * Math.max(...rr), raw_mean_pct: 100 * meanOf(rr),
    final_rel_pct: 100 * Math.abs(tb - ta) / ta, final_a: ta, final_b: tb,
  };
}

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

interface SeedCurves { seed: number; f32: number[]; fp8: number[]; pert: number[] | null; bf16: number[] | null; f32Eval: number[] | null }

/**
 * Per seed: the loss curves as measured (faint) and smoothed (bold), and a panel of the smoothed curves' relative
 * differences from f32. Writes <plotDir>/fp8-train-<model>[-<tag>].png and .svg.
 */
function writePlots(model: string, seeds: readonly SeedCurves[], o: { yardstick: number; smooth: number; warmup: number; plotDir: string; tag: string }): { png: string; svg: string } {
  const charts = [];
  const pts = (y: readonly number[]): Point[] => y.map((v, i) => [i + 1, v]);
  for (const p of seeds) {
    const cmp = compare(p.f32, p.fp8, o.warmup, o.smooth);
    const curves = [{ name: 'f32', points: pts(p.f32) }, { name: 'fp8', points: pts(p.fp8) }];
    if (p.pert) curves.push({ name: o.yardstick > 0 ? `f32, init x (1 +- ${o.yardstick})` : 'f32, perturbed init', points: pts(p.pert) });
    if (p.bf16) curves.push({ name: 'bf16 GEMMs', points: pts(p.bf16) });
    charts.push(renderChart(curves, {
      title: `${model} training loss, seed ${p.seed} (smoothed max rel diff ${cmp.smoothed_max_pct.toFixed(3)}% after step ${o.warmup})`, xLabel: 'step', yLabel: 'loss',
      width: 900, height: 420, smooth: o.smooth,
    }));
    const sa = smoothCurve(p.f32, o.smooth);
    const diff = (name: string, y: readonly number[]) => {
      const sy = smoothCurve(y, o.smooth);
      return { name, points: sa.map((v, i): Point => [i + 1, 100 * (sy[i]! - v) / v]) };
    };
    const diffs = [diff('fp8 vs f32', p.fp8)];
    if (p.pert) diffs.push(diff('perturbed f32 vs f32', p.pert));
    if (p.bf16) diffs.push(diff('bf16 vs f32', p.bf16));
    if (p.f32Eval) diffs.push(diff('fp8 weights, f32 forward vs f32', p.f32Eval));
    charts.push(renderChart(diffs, {
      title: `${model} seed ${p.seed}: (smoothed loss - f32) / f32, %, EMA ${o.smooth}`, xLabel: 'step', yLabel: '%', width: 900, height: 260,
    }));
  }
  const chart = stackCharts(charts);
  const stem = `fp8-train-${model}${o.tag ? `-${o.tag}` : ''}`;
  const png = join(o.plotDir, `${stem}.png`), svg = join(o.plotDir, `${stem}.svg`);
  writeFileSync(png, chart.toPng());
  writeFileSync(svg, chart.toSvg());
  return { png, svg };
}

/** --replot FILE: redraw the plots of a saved --json output (one object per line), e.g. at another --smooth. */
function replot(file: string, o: Opts): void {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const row = JSON.parse(line) as {
      model: string; warmup: number; smooth: number; tag?: string; yardstick?: number;
      per_seed: { seed: number; f32_losses: number[]; fp8_losses: number[]; perturbed_f32_losses: number[] | null; bf16_losses: number[] | null; fp8_weights_f32_eval_losses?: number[] | null }[];
    };
    const smooth = o.smoothSet ? o.smooth : row.smooth;
    const tag = o.tag || row.tag || '';
    const { png } = writePlots(row.model, row.per_seed.map((p) => ({
      seed: p.seed, f32: p.f32_losses, fp8: p.fp8_losses, pert: p.perturbed_f32_losses, bf16: p.bf16_losses, f32Eval: p.fp8_weights_f32_eval_losses ?? null,
    })), { yardstick: row.yardstick ?? o.yardstick, smooth, warmup: row.warmup, plotDir: o.plotDir, tag });
    console.log(`plot: ${png}`);
  }
}
/** Per-step losses keep 6 decimals (1e-6 absolute, ~1e-4 % of a loss near 1): fine enough to re-analyse gaps of 0.01%. */
const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

export default async function run(argv: string[]): Promise<void> {
  const o = parse(argv);
  if (o.replot) { mkdirSync(o.plotDir, { recursive: true }); replot(o.replot, o); return; }
  const data = buildData(o.problems);
  if (!o.json) {
    console.log(`fp8-train: ${o.models.join(', ')}; ${o.steps} steps x batch ${o.batch} x seq ${o.seq} (${o.batch * o.seq} tokens/step); seeds ${o.seeds.join(',')}; lr ${o.lr} (warmup ${o.warmup}, cosine to 10%); backend ${activeBackend()}`);
    console.log(`data: ${data.examples.length} arithmetic problems + traces, ${data.tokens} tokens, BPE vocab ${data.vocab}; EMA smoothing ${o.smooth}; comparing steps ${o.warmup + 1}..${o.steps}`);
  }
  mkdirSync(o.plotDir, { recursive: true });
  for (const model of o.models) {
    const perSeed: {
      seed: number; f32: RunResult; fp8: RunResult; cmp: ReturnType<typeof compare>; cmpLm: ReturnType<typeof compare>;
      pert: RunResult | null; cmpPert: ReturnType<typeof compare> | null;
      bf: RunResult | null; cmpBf: ReturnType<typeof compare> | null; cmpFp8Bf: ReturnType<typeof compare> | null;
    }[] = [];
    for (const seed of o.seeds) {
      const f32 = trainOnce(model, seed, 'f32', data.examples, o);
      const fp8 = trainOnce(model, seed, 'fp8', data.examples, o);
      const pert = o.yardstick > 0 ? trainOnce(model, seed, 'f32', data.examples, o, o.yardstick) : null;
      const bf = o.bf16 ? trainOnce(model, seed, 'bf16', data.examples, o) : null;
      perSeed.push({
        seed, f32, fp8, cmp: compare(f32.loss, fp8.loss, o.warmup, o.smooth), cmpLm: compare(f32.lmLoss, fp8.lmLoss, o.warmup, o.smooth),
        pert, cmpPert: pert ? compare(f32.loss, pert.loss, o.warmup, o.smooth) : null,
        bf, cmpBf: bf ? compare(f32.loss, bf.loss, o.warmup, o.smooth) : null, cmpFp8Bf: bf ? compare(bf.loss, fp8.loss, o.warmup, o.smooth) : null,
      });
    }
    // Yardstick: f32 seed-to-seed difference (init + data order), when there are two seeds.
    const yard = perSeed.length >= 2 ? compare(perSeed[0]!.f32.loss, perSeed[1]!.f32.loss, o.warmup, o.smooth) : null;
    const worstMax = Math.max(...perSeed.map((p) => p.cmp.smoothed_max_pct));
    const worstMean = Math.max(...perSeed.map((p) => p.cmp.smoothed_mean_pct));

    const { png, svg } = writePlots(model, perSeed.map((p) => ({
      seed: p.seed, f32: p.f32.loss, fp8: p.fp8.loss, pert: p.pert?.loss ?? null, bf16: p.bf?.loss ?? null, f32Eval: p.fp8.f32EvalLoss,
    })), { yardstick: o.yardstick, smooth: o.smooth, warmup: o.warmup, plotDir: o.plotDir, tag: o.tag });

    const row = {
      bench: 'fp8-train', model, tag: o.tag, fp8_gemms: Object.entries(o.fp8Gemms).filter(([, v]) => v).map(([k]) => k).join(','), beta2: o.beta2, bias_gamma: o.biasGamma, balance_alpha: o.balanceAlpha, moments: o.moments, wgrad_input: o.wgradInput, gemm: o.gemm, steps: o.steps, batch: o.batch, seq: o.seq, lr: o.lr, warmup: o.warmup, smooth: o.smooth, seeds: o.seeds, yardstick: o.yardstick, bf16: o.bf16, f32_eval: o.f32Eval,
      fp8_layers: perSeed[0]!.fp8.fp8Layers,
      smoothed_max_rel_pct: r4(worstMax), smoothed_mean_rel_pct: r4(worstMean), threshold_pct: o.threshold, within: worstMax <= o.threshold,
      per_seed: perSeed.map((p) => ({
        seed: p.seed, f32_s: r4(p.f32.seconds), fp8_s: r4(p.fp8.seconds),
        first_loss: r4(p.f32.loss[0]!), final_loss_f32: r4(p.cmp.final_a), final_loss_fp8: r4(p.cmp.final_b),
        loss: Object.fromEntries(Object.entries(p.cmp).map(([k, v]) => [k, r4(v)])),
        lm_loss: Object.fromEntries(Object.entries(p.cmpLm).map(([k, v]) => [k, r4(v)])),
        f32_losses: p.f32.loss.map(r6), fp8_losses: p.fp8.loss.map(r6),
        perturbed_f32: p.cmpPert ? Object.fromEntries(Object.entries(p.cmpPert).map(([k, v]) => [k, r4(v)])) : null,
        perturbed_f32_losses: p.pert ? p.pert.loss.map(r6) : null,
        bf16_vs_f32: p.cmpBf ? Object.fromEntries(Object.entries(p.cmpBf).map(([k, v]) => [k, r4(v)])) : null,
        fp8_vs_bf16: p.cmpFp8Bf ? Object.fromEntries(Object.entries(p.cmpFp8Bf).map(([k, v]) => [k, r4(v)])) : null,
        bf16_losses: p.bf ? p.bf.loss.map(r6) : null, bf16_s: p.bf ? r4(p.bf.seconds) : null,
        fp8_weights_f32_eval_losses: p.fp8.f32EvalLoss ? p.fp8.f32EvalLoss.map(r6) : null,
        fp8_weights_f32_eval_vs_f32: p.fp8.f32EvalLoss ? Object.fromEntries(Object.entries(compare(p.f32.loss, p.fp8.f32EvalLoss, o.warmup, o.smooth)).map(([k, v]) => [k, r4(v)])) : null,
      })),
      f32_seed_to_seed: yard ? Object.fromEntries(Object.entries(yard).map(([k, v]) => [k, r4(v)])) : null,
      plot_png: png, plot_svg: svg,
    };
    if (o.json) { console.log(JSON.stringify(row)); continue; }
    console.log(`\n${model}: ${row.fp8_layers} Linear layers in FP8 (GEMMs ${row.fp8_gemms}, moments ${o.moments}, Wgrad X ${o.wgradInput}, GEMM ${o.gemm})`);
    console.log('seed | f32 s | fp8 s | loss step1 | final f32 | final fp8 | smoothed rel diff max / mean | raw max / mean | final rel');
    for (const p of perSeed) {
      const c = p.cmp;
      console.log(`${String(p.seed).padStart(4)} | ${p.f32.seconds.toFixed(0).padStart(5)} | ${p.fp8.seconds.toFixed(0).padStart(5)} | ${p.f32.loss[0]!.toFixed(4).padStart(10)} | ` +
        `${c.final_a.toFixed(4).padStart(9)} | ${c.final_b.toFixed(4).padStart(9)} | ${c.smoothed_max_pct.toFixed(3)}% / ${c.smoothed_mean_pct.toFixed(3)}% | ` +
        `${c.raw_max_pct.toFixed(3)}% / ${c.raw_mean_pct.toFixed(3)}% | ${c.final_rel_pct.toFixed(3)}%`);
    }
    for (const p of perSeed) {
      if (p.cmpBf && p.cmpFp8Bf) {
        console.log(`seed ${p.seed}: bf16-GEMM run vs f32: smoothed max ${p.cmpBf.smoothed_max_pct.toFixed(3)}%, mean ${p.cmpBf.smoothed_mean_pct.toFixed(3)}%, final ${p.cmpBf.final_rel_pct.toFixed(3)}%; ` +
          `fp8 vs bf16 (the paper's comparison): smoothed max ${p.cmpFp8Bf.smoothed_max_pct.toFixed(3)}%, mean ${p.cmpFp8Bf.smoothed_mean_pct.toFixed(3)}%, final ${p.cmpFp8Bf.final_rel_pct.toFixed(3)}%`);
      }
      if (p.fp8.f32EvalLoss) {
        const c = compare(p.f32.loss, p.fp8.f32EvalLoss, o.warmup, o.smooth);
        console.log(`seed ${p.seed}: fp8 weights evaluated with f32 Linears vs f32: smoothed max ${c.smoothed_max_pct.toFixed(3)}%, mean ${c.smoothed_mean_pct.toFixed(3)}%, final ${c.final_rel_pct.toFixed(3)}%`);
      }
      if (p.cmpPert) console.log(`seed ${p.seed}: f32 from init x (1 +- ${o.yardstick}) vs f32 (yardstick): smoothed max ${p.cmpPert.smoothed_max_pct.toFixed(3)}%, mean ${p.cmpPert.smoothed_mean_pct.toFixed(3)}%, final ${p.cmpPert.final_rel_pct.toFixed(3)}%`);
    }
    if (yard) console.log(`f32 seed ${o.seeds[0]} vs seed ${o.seeds[1]} (yardstick): smoothed max ${yard.smoothed_max_pct.toFixed(3)}%, mean ${yard.smoothed_mean_pct.toFixed(3)}%`);
    console.log(`${model}: FP8 vs f32 smoothed loss, max ${worstMax.toFixed(3)}% / mean ${worstMean.toFixed(3)}% relative over steps ${o.warmup + 1}..${o.steps} ` +
      `(${o.seeds.length} seed${o.seeds.length > 1 ? 's' : ''}): ${row.within ? 'within' : 'NOT within'} ${o.threshold}%`);
    console.log(`plot: ${png} (${svg})`);
  }
}
