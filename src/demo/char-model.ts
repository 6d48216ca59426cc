/**
 * The engine demo (until the training issue's `r1 demo` lands): a tiny character-level transformer —
 * embedding, RMSNorm, rotary multi-head causal attention, SwiGLU MLP, LM head — built directly on the
 * tensor ops and trained with AdamW on a small embedded text. It exercises the real hot path:
 * GEMMs, fused norm/RoPE/attention/SiLU*mul/cross-entropy kernels, autograd and pooled memory.
 */
import * as T from '../tensor/index.js';
import { Tensor, tidy, Rng, noGrad } from '../tensor/index.js';
import { AdamW } from '../train/optim.js';

export const DEMO_TEXT = `DeepSeek-R1 is a reasoning model. It thinks step by step before it answers.
The base model is a mixture of experts with multi-head latent attention.
Reinforcement learning with rule-based rewards taught it to check its own work.
A question comes in. The model writes its thoughts inside think tags, then gives the answer.
Small dense models learned the same habits by distillation from the large one.
To add two numbers, add the ones, carry the ten, then add the tens.
To check an answer, work it out again a different way and compare the results.
If the two results differ, find the step where they part and fix that step.
Good reasoning is short when the problem is easy and long when the problem is hard.
`;

export interface CharModelConfig {
  dim: number;
  layers: number;
  heads: number;
  ffn: number;
  seq: number;
}

export class CharModel {
  readonly vocab: string[];
  readonly index = new Map<string, number>();
  readonly params: Tensor[] = [];
  readonly emb: Tensor;
  readonly layers: { an: Tensor; wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor; mn: Tensor; wg: Tensor; wu: Tensor; wd: Tensor }[] = [];
  readonly norm: Tensor;
  readonly head: Tensor;
  readonly cos: Tensor;
  readonly sin: Tensor;

  constructor(text: string, readonly cfg: CharModelConfig, seed = 0) {
    this.vocab = [...new Set(text)].sort();
    this.vocab.forEach((c, i) => this.index.set(c, i));
    const rng = new Rng(seed);
    const V = this.vocab.length;
    const d = cfg.dim;
    const p = (shape: number[], std: number): Tensor => {
      const t = T.randn(shape, { rng, std }).setRequiresGrad().keep();
      this.params.push(t);
      return t;
    };
    const one = (n: number): Tensor => {
      const t = T.ones([n]).setRequiresGrad().keep();
      this.params.push(t);
      return t;
    };
    this.emb = p([V, d], 0.5);
    for (let l = 0; l < cfg.layers; l++) {
      const s = 1 / Math.sqrt(d);
      this.layers.push({
        an: one(d), wq: p([d, d], s), wk: p([d, d], s), wv: p([d, d], s), wo: p([d, d], s / Math.sqrt(2 * cfg.layers)),
        mn: one(d), wg: p([cfg.ffn, d], s), wu: p([cfg.ffn, d], s), wd: p([d, cfg.ffn], 1 / Math.sqrt(cfg.ffn) / Math.sqrt(2 * cfg.layers)),
      });
    }
    this.norm = one(d);
    this.head = p([V, d], 1 / Math.sqrt(d));
    // RoPE tables for the half-split layout, theta = 10000.
    const hd = d / cfg.heads;
    const half = hd / 2;
    const c = new Float32Array(cfg.seq * half);
    const sn = new Float32Array(cfg.seq * half);
    for (let pos = 0; pos < cfg.seq; pos++) for (let i = 0; i < half; i++) {
      const th = pos * Math.pow(10000, -i / half);
      c[pos * half + i] = Math.cos(th);
      sn[pos * half + i] = Math.sin(th);
    }
    this.cos = T.fromArray(c, [cfg.seq, half]).keep();
    this.sin = T.fromArray(sn, [cfg.seq, half]).keep();
  }

  get paramCount(): number {
    return this.params.reduce((a, p) => a + p.size, 0);
  }

  encode(s: string): number[] {
    return [...s].map((ch) => this.index.get(ch) ?? 0);
  }

  /** Logits [B, S, V] for ids [B, S]. */
  forward(ids: Tensor): Tensor {
    const [B, S] = ids.shape as [number, number];
    const { dim: d, heads: H } = this.cfg;
    const hd = d / H;
    const pos = T.arange(0, S);
    let x = T.embedding(this.emb, ids);
    for (const L of this.layers) {
      const h = T.rmsNorm(x, L.an, 1e-6);
      const q = T.rope(T.linear(h, L.wq).reshape(B, S, H, hd), this.cos, this.sin, pos, 'half').transpose(1, 2);
      const k = T.rope(T.linear(h, L.wk).reshape(B, S, H, hd), this.cos, this.sin, pos, 'half').transpose(1, 2);
      const v = T.linear(h, L.wv).reshape(B, S, H, hd).transpose(1, 2);
      const o = T.attention(q, k, v, { causal: true }).transpose(1, 2).reshape(B, S, d);
      x = x.add(T.linear(o, L.wo));
      const h2 = T.rmsNorm(x, L.mn, 1e-6);
      x = x.add(T.linear(T.siluMul(T.linear(h2, L.wg), T.linear(h2, L.wu)), L.wd));
    }
    return T.linear(T.rmsNorm(x, this.norm, 1e-6), this.head);
  }

  /** Sample n characters after a prompt (temperature 0 = greedy). */
  generate(prompt: string, n: number, temperature = 0, rng = new Rng(1)): string {
    const ids = this.encode(prompt);
    noGrad(() => {
      for (let i = 0; i < n; i++) {
        const ctx = ids.slice(-this.cfg.seq);
        const next = tidy(() => {
          const logits = this.forward(T.tensor([ctx], { dtype: 'i32' }));
          const last = logits.narrow(1, ctx.length - 1, 1).reshape(-1);
          if (temperature <= 0) return last.argmax(0).item();
          const probs = T.softmax(last.div(temperature)).toArray() as Float32Array;
          let r = rng.next();
          for (let j = 0; j < probs.length; j++) { r -= probs[j]!; if (r <= 0) return j; }
          return probs.length - 1;
        });
        ids.push(next);
      }
    });
    return ids.slice(-n).map((i) => this.vocab[i]).join('');
  }
}

export interface DemoResult {
  params: number;
  steps: number;
  firstLoss: number;
  finalLoss: number;
  tokensPerSecond: number;
  seconds: number;
  sample: string;
  backend: string;
}

/** Train the char model; onStep reports progress. */
export function runCharDemo(opts: { steps?: number; batch?: number; cfg?: Partial<CharModelConfig>; seed?: number; onStep?: (step: number, loss: number, tokensPerSecond: number) => void } = {}): DemoResult {
  const cfg: CharModelConfig = { dim: 64, layers: 2, heads: 4, ffn: 172, seq: 64, ...opts.cfg };
  const steps = opts.steps ?? 300;
  const batch = opts.batch ?? 16;
  const model = new CharModel(DEMO_TEXT, cfg, opts.seed ?? 0);
  const data = model.encode(DEMO_TEXT);
  const rng = new Rng((opts.seed ?? 0) + 1);
  const opt = new AdamW(model.params, { lr: 3e-3, weightDecay: 0.01 });
  let first = NaN;
  let last = NaN;
  const t0 = performance.now();
  for (let step = 1; step <= steps; step++) {
    const xs: number[][] = [];
    const ys: number[][] = [];
    for (let b = 0; b < batch; b++) {
      const start = rng.int(data.length - cfg.seq - 1);
      xs.push(data.slice(start, start + cfg.seq));
      ys.push(data.slice(start + 1, start + cfg.seq + 1));
    }
    const loss = tidy(() => {
      const logits = model.forward(T.tensor(xs, { dtype: 'i32' }));
      const l = T.crossEntropy(logits, T.tensor(ys, { dtype: 'i32' }));
      l.backward();
      return l.item();
    });
    opt.stepUpdate();
    opt.zeroGrad();
    if (step === 1) first = loss;
    last = loss;
    const secs = (performance.now() - t0) / 1000;
    opts.onStep?.(step, loss, (step * batch * cfg.seq) / secs);
  }
  const seconds = (performance.now() - t0) / 1000;
  const sample = model.generate('To add two numbers', 60);
  return { params: model.paramCount, steps, firstLoss: first, finalLoss: last, tokensPerSecond: (steps * batch * cfg.seq) / seconds, seconds, sample, backend: T.activeBackend() };
}
