/**
 * Per-GEMM and whole-model error of the FP8 training Linear (src/nn/fp8-linear.ts) on the real tensors of one
 * training step (issue 7 diagnosis: is any of Fprop / Dgrad / Wgrad less accurate than E4M3 with fine-grained scales
 * should be?). DeepSeek-V3 technical report section 3.3.2: activations and output gradients per 1 x 128 tile along
 * the GEMM's reduction dimension, weights per 128 x 128 block, E4M3, scaleInv = amax / 448.
 *
 * 1. Train the model in f32 for --pretrain steps (the fp8-train bench's data, schedule and seed), then take the next
 *    batch.
 * 2. One f32 forward/backward with a probe on every FP8-eligible Linear records its input X [M, K], weight W [N, K]
 *    and output gradient dY [M, N].
 * 3. Per recorded Linear: fp8Linear's y, dX, dW against the f32 products (relative Frobenius error), next to
 *    - the operands' own E4M3 quantization errors (||qdq(A) - A|| / ||A|| in the GEMM's tiling), and
 *    - the "one operand at a time" errors (only X, only W, ...) — the error a product of exactly these quantized
 *      operands must have, computed here with blockwise-free code (quantizeTiles + the f32 GEMM).
 *    An FP8 GEMM whose error exceeds the root-sum-square of its one-operand errors by much would point at a bug.
 * 4. Whole model at the same weights: loss and full gradient with FP8 Linears (all / one GEMM at a time) and with
 *    BF16 operands, against f32 (loss relative difference; gradient relative L2 error and cosine).
 *
 * Run: npm run bench -- fp8-gemm-check [--model T1|M1] [--seed 0] [--batch 4] [--seq 128] [--pretrain 50]
 *      [--total 100] [--lr 1e-3] [--warmup 10] [--json]
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../src/errors.js';
import { loadConfig } from '../src/models/config.js';
import { buildModel } from '../src/models/load.js';
import { DataLoader } from '../src/train/data.js';
import { Trainer } from '../src/train/loop.js';
import { cosineSchedule } from '../src/train/schedule.js';
import { Linear, type LinearImpl } from '../src/nn/linear.js';
import { record } from '../src/tensor/autograd.js';
import { Tensor, fromArray, matmul, transpose, noGrad, tidy, linear } from '../src/tensor/index.js';
import { fp8Linear, bf16Linear, isFp8Layer, quantizeTiles, transposeF32, enableFp8Training, disableFp8Training, enableBf16Gemms, type Fp8LinearOptions } from '../src/nn/fp8-linear.js';
import { buildData } from './fp8-train.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..', '..');
const CONFIGS: Record<string, string> = {
  T1: join(ROOT, '..', 'shared', 'models', 't1-dense', 'config.json'),
  M1: join(ROOT, '..', 'shared', 'models', 'm1-moe', 'config.json'),
};

interface Rec { name: string; M: number; K: number; N: number; x: Float32Array; w: Float32Array; g: Float32Array | null }

function f32Copy(t: Tensor): Float32Array {
  const c = t.isContiguous() ? t : noGrad(() => t.contiguous());
  const out = Float32Array.from((c.raw as Float32Array).subarray(c.offset, c.offset + c.size));
  if (c !== t) c.dispose();
  return out;
}

/** f32 Linear that records X, W and (in backward) dY. */
class ProbeImpl implements LinearImpl {
  readonly name = 'probe';
  readonly recs: Rec[] = [];
  constructor(private readonly names: Map<Linear, string>) {}
  forward(x: Tensor, layer: Linear): Tensor {
    const [N, K] = layer.weight.shape as [number, number];
    const M = x.size / K;
    const rec: Rec = { name: this.names.get(layer)!, M, K, N, x: f32Copy(x), w: f32Copy(layer.weight), g: null };
    this.recs.push(rec);
    const y = linear(x, layer.weight, layer.bias);
    const out = noGrad(() => y.mul(1));
    return record(out, 'probe', [y], (g) => { rec.g = f32Copy(g); return [noGrad(() => g.mul(1))]; });
  }
}

function relFro(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d = 0, w = 0;
  for (let i = 0; i < want.length; i++) { const e = got[i]! - want[i]!; d += e * e; w += want[i]! * want[i]!; }
  return w > 0 ? Math.sqrt(d / w) : 0;
}

/** Dequantized E4M3 copy of row-major a [rows, cols] in [br, bc] blocks. */
function qdq(a: Float32Array, rows: number, cols: number, br: number, bc: number): Float32Array {
  const deq = new Float32Array(rows * cols);
  quantizeTiles(a, rows, cols, br, bc, 'e4m3', { deq });
  return deq;
}

/** C = A · B^T with the engine's f32 GEMM (A [m, k], B [n, k]). */
function abt(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
  return tidy(() => {
    const A = fromArray(a, [m, k]), Bt = transpose(fromArray(b, [n, k]), 0, 1);
    return f32Copy(matmul(A, Bt));
  });
}

interface GemmErr {
  name: string; M: number; K: number; N: number;
  /** Operand quantization errors (rel. Frobenius) in each GEMM's tiling. */
  qX: number; qW: number; qG: number; qGt: number; qXt: number;
  /** fp8Linear outputs vs f32. */
  fprop: number; dgrad: number; wgrad: number;
  /** One operand quantized at a time, same GEMM. */
  fpropX: number; fpropW: number; dgradG: number; dgradW: number; wgradG: number; wgradX: number;
  /** bf16Linear outputs vs f32. */
  bfFprop: number; bfDgrad: number; bfWgrad: number;
}

function checkGemm(r: Rec, tile = 128, block = 128): GemmErr {
  const { M, K, N, x, w } = r;
  const g = r.g!;
  // f32 references.
  const yRef = abt(x, w, M, N, K);
  const wT = transposeF32(w, N, K); // [K, N]
  const dxRef = abt(g, wT, M, K, N);
  const gT = transposeF32(g, M, N), xT = transposeF32(x, M, K); // [N, M], [K, M]
  const dwRef = abt(gT, xT, N, K, M);
  // Operands quantized as the recipe does.
  const xq = qdq(x, M, K, 1, tile), wq = qdq(w, N, K, block, block), gq = qdq(g, M, N, 1, tile);
  const gTq = qdq(gT, N, M, 1, tile), xTq = qdq(transposeF32(xq, M, K), K, M, 1, tile); // Wgrad X = re-quantized cached FP8 X
  const wqT = transposeF32(wq, N, K);
  // fp8Linear itself (forward + backward with dY = g).
  const res = tidy(() => {
    const X = fromArray(x, [M, K]), W = fromArray(w, [N, K]);
    X.requiresGrad = true; W.requiresGrad = true;
    const y = fp8Linear(X, W, null, {});
    const yv = f32Copy(y);
    y.backward(fromArray(g, [M, N]));
    const out = { y: yv, dx: f32Copy(X.grad!), dw: f32Copy(W.grad!) };
    X.zeroGrad(); W.zeroGrad();
    const X2 = fromArray(x, [M, K]), W2 = fromArray(w, [N, K]);
    X2.requiresGrad = true; W2.requiresGrad = true;
    const y2 = bf16Linear(X2, W2, null);
    const y2v = f32Copy(y2);
    y2.backward(fromArray(g, [M, N]));
    const bf = { y: y2v, dx: f32Copy(X2.grad!), dw: f32Copy(W2.grad!) };
    X2.zeroGrad(); W2.zeroGrad();
    return { out, bf };
  });
  return {
    name: r.name, M, K, N,
    qX: relFro(xq, x), qW: relFro(wq, w), qG: relFro(gq, g), qGt: relFro(gTq, gT), qXt: relFro(xTq, xT),
    fprop: relFro(res.out.y, yRef), dgrad: relFro(res.out.dx, dxRef), wgrad: relFro(res.out.dw, dwRef),
    fpropX: relFro(abt(xq, w, M, N, K), yRef), fpropW: relFro(abt(x, wq, M, N, K), yRef),
    dgradG: relFro(abt(gq, wT, M, K, N), dxRef), dgradW: relFro(abt(g, wqT, M, K, N), dxRef),
    wgradG: relFro(abt(gTq, xT, N, K, M), dwRef), wgradX: relFro(abt(gT, xTq, N, K, M), dwRef),
    bfFprop: relFro(res.bf.y, yRef), bfDgrad: relFro(res.bf.dx, dxRef), bfWgrad: relFro(res.bf.dw, dwRef),
  };
}

function kindOf(name: string): string {
  const p = name.split('.');
  const last = p[p.length - 1]!;
  if (p.includes('experts')) return `experts.${last}`;
  if (p.includes('shared_experts')) return `shared_experts.${last}`;
  return last;
}

export default async function run(argv: string[]): Promise<void> {
  const o = { model: 'T1', seed: 0, batch: 4, seq: 128, pretrain: 50, total: 100, lr: 1e-3, warmup: 10, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => { const v = argv[++i]; if (v === undefined) throw new UsageError(`bench fp8-gemm-check: ${a} needs a value`); return v; };
    const num = (): number => { const v = Number(val()); if (!Number.isFinite(v) || v < 0) throw new UsageError(`bench fp8-gemm-check: ${a} must be a number >= 0`); return v; };
    if (a === '--model') { o.model = val().toUpperCase(); if (!CONFIGS[o.model]) throw new UsageError(`bench fp8-gemm-check: unknown model '${o.model}' (T1 or M1)`); }
    else if (a === '--seed') o.seed = num();
    else if (a === '--batch') o.batch = num();
    else if (a === '--seq') o.seq = num();
    else if (a === '--pretrain') o.pretrain = num();
    else if (a === '--total') o.total = num();
    else if (a === '--lr') o.lr = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--json') o.json = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- fp8-gemm-check [--model T1|M1] [--seed 0] [--batch 4] [--seq 128] [--pretrain 50] [--total 100] [--lr 1e-3] [--warmup 10] [--json]');
      process.exit(0);
    } else throw new UsageError(`bench fp8-gemm-check: unknown option '${a}' (see --help)`);
  }
  const data = buildData(4000);
  const m = buildModel(loadConfig(CONFIGS[o.model]!), { seed: o.seed, maxPositions: Math.max(o.seq, 64) });
  const trainer = new Trainer(m, {
    lr: cosineSchedule({ lr: o.lr, warmupSteps: o.warmup, totalSteps: o.total, minLr: o.lr * 0.1 }),
    weightDecay: 0.1, clip: 1.0, mtpWeight: 0.3, biasGamma: 0.001, precision: 'f32', momentDtype: 'f32',
  });
  const loader = new DataLoader(data.examples, { batchSize: o.batch, seqLen: o.seq, seed: o.seed, pack: true });
  let last = NaN;
  for (let s = 0; s < o.pretrain; s++) last = trainer.trainStep([loader.next()]).loss;
  const batch = loader.next();
  const linears = m.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear && isFp8Layer(e[0]));
  const names = new Map(linears.map(([n, l]) => [l, n] as [Linear, string]));
  const params = m.trainableParameters();
  const pnames = new Map(m.namedParameters().map(([n, t]) => [t, n] as [Tensor, string]));

  // Loss + full gradient with the Linears' current impl.
  const lossAndGrad = (): { loss: number; grads: Float32Array[] } => {
    let loss = NaN;
    tidy(() => { const r = trainer.loss(batch); r.loss.backward(); loss = r.loss.item(); });
    const grads = params.map((p) => (p.grad ? f32Copy(p.grad) : new Float32Array(p.size)));
    for (const p of params) p.zeroGrad();
    return { loss, grads };
  };
  const setImpl = (impl: LinearImpl | null) => { disableFp8Training(m); for (const [, l] of linears) l.impl = impl; };

  // f32 with the probe (the probe's f32 product is the plain linear()).
  const probe = new ProbeImpl(names);
  setImpl(probe);
  const ref = lossAndGrad();
  setImpl(null);

  const variants: [string, () => void][] = [
    ['fp8 (all GEMMs)', () => enableFp8Training(m, {})],
    ['fp8 Fprop only', () => enableFp8Training(m, { quantize: { fprop: true, dgrad: false, wgrad: false } } satisfies Fp8LinearOptions)],
    ['fp8 Dgrad only', () => enableFp8Training(m, { quantize: { fprop: false, dgrad: true, wgrad: false } })],
    ['fp8 Wgrad only', () => enableFp8Training(m, { quantize: { fprop: false, dgrad: false, wgrad: true } })],
    ['bf16 operands', () => enableBf16Gemms(m)],
  ];
  const whole = variants.map(([label, install]) => {
    setImpl(null);
    install();
    const r = lossAndGrad();
    setImpl(null);
    let d = 0, n2 = 0, dot = 0, n2b = 0;
    const perKind = new Map<string, { d: number; n: number }>();
    r.grads.forEach((g, i) => {
      const gr = ref.grads[i]!;
      const kind = kindOf((pnames.get(params[i]!) ?? '?').replace(/\.weight$|\.bias$/, ''));
      const e = perKind.get(kind) ?? { d: 0, n: 0 };
      for (let j = 0; j < g.length; j++) { const x = g[j]! - gr[j]!; d += x * x; n2 += gr[j]! * gr[j]!; dot += g[j]! * gr[j]!; n2b += g[j]! * g[j]!; e.d += x * x; e.n += gr[j]! * gr[j]!; }
      perKind.set(kind, e);
    });
    return {
      variant: label, loss: r.loss, loss_rel_pct: 100 * (r.loss - ref.loss) / ref.loss,
      grad_rel_l2_pct: 100 * Math.sqrt(d / n2), grad_cos: dot / Math.sqrt(n2 * n2b), grad_norm_ratio: Math.sqrt(n2b / n2),
      per_kind_grad_rel_pct: Object.fromEntries([...perKind].map(([k, v]) => [k, Math.round(1e4 * 100 * Math.sqrt(v.d / v.n)) / 1e4])),
    };
  });

  const gemms = probe.recs.filter((r) => r.g).map((r) => checkGemm(r));
  const pct = (v: number) => (100 * v).toFixed(2);
  if (o.json) {
    console.log(JSON.stringify({ bench: 'fp8-gemm-check', ...o, loss_before: last, loss_f32: ref.loss, whole, gemms }));
    return;
  }
  console.log(`fp8-gemm-check: ${o.model}, seed ${o.seed}, batch ${o.batch} x ${o.seq}, after ${o.pretrain} f32 steps (last loss ${last.toFixed(4)}); f32 loss on the probe batch ${ref.loss.toFixed(5)}`);
  console.log('\nWhole model at the same weights (vs f32): loss rel diff | grad rel L2 err | grad cosine | |g|/|g_f32|');
  for (const w of whole) console.log(`  ${w.variant.padEnd(16)} ${w.loss_rel_pct.toFixed(4).padStart(8)}% | ${w.grad_rel_l2_pct.toFixed(2).padStart(6)}% | ${w.grad_cos.toFixed(5)} | ${w.grad_norm_ratio.toFixed(4)}`);
  for (const w of whole) console.log(`  ${w.variant}: per-kind grad rel err % ${JSON.stringify(w.per_kind_grad_rel_pct)}`);
  console.log('\nPer GEMM, relative Frobenius error in % (operand quantization | one operand at a time | fp8Linear | bf16Linear):');
  console.log('layer | M K N | qX qW qG(1x128) qGt qXt(128x1) | Fprop: X-only W-only FP8 bf16 | Dgrad: G-only W-only FP8 bf16 | Wgrad: G-only X-only FP8 bf16');
  for (const e of gemms) {
    console.log(`${e.name} | ${e.M} ${e.K} ${e.N} | ${pct(e.qX)} ${pct(e.qW)} ${pct(e.qG)} ${pct(e.qGt)} ${pct(e.qXt)} | ` +
      `${pct(e.fpropX)} ${pct(e.fpropW)} ${pct(e.fprop)} ${pct(e.bfFprop)} | ${pct(e.dgradG)} ${pct(e.dgradW)} ${pct(e.dgrad)} ${pct(e.bfDgrad)} | ` +
      `${pct(e.wgradG)} ${pct(e.wgradX)} ${pct(e.wgrad)} ${pct(e.bfWgrad)}`);
  }
  // Per kind means.
  const kinds = new Map<string, GemmErr[]>();
  for (const e of gemms) { const k = kindOf(e.name); kinds.set(k, [...(kinds.get(k) ?? []), e]); }
  console.log('\nMean per kind (%): Fprop FP8 (rss of one-operand) | Dgrad FP8 (rss) | Wgrad FP8 (rss)');
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  for (const [k, es] of kinds) {
    const rss = (a: number, b: number) => Math.hypot(a, b);
    console.log(`  ${k.padEnd(22)} ${pct(mean(es.map((e) => e.fprop)))} (${pct(mean(es.map((e) => rss(e.fpropX, e.fpropW))))}) | ` +
      `${pct(mean(es.map((e) => e.dgrad)))} (${pct(mean(es.map((e) => rss(e.dgradG, e.dgradW))))}) | ${pct(mean(es.map((e) => e.wgrad)))} (${pct(mean(es.map((e) => rss(e.wgradG, e.wgradX))))})`);
  }
}
