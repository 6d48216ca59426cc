/**
 * One training step for any r1ts causal LM: forward, loss, backward, clipping, AdamW, and (DeepSeek-V3)
 * the aux-loss-free routing-bias update. Losses:
 *   L = CE(next token) + lambda_MTP * mean_d CE(MTP depth d) + sum over MoE layers of the sequence-wise
 *   balance loss (alpha; V3 eq. 17-20)  — V3 sections 2.1.2 and 2.2.
 * Gradient accumulation averages micro-batches; labels use -100 for positions without a loss.
 */
import * as T from '../tensor/index.js';
import { Tensor, tidy, noGrad } from '../tensor/index.js';
import { DeepseekV3ForCausalLM } from '../models/deepseek-v3.js';
import type { CausalLM } from '../models/load.js';
import { AdamW, clipGradNorm } from './optim.js';
import { ConfigError, ShapeError } from '../errors.js';
import { enableFp8Training, disableFp8Training, type Fp8LinearOptions } from '../nn/fp8-linear.js';

export interface Batch {
  /** Token ids [batch * seqLen] (row-major). */
  ids: Int32Array;
  /** Next-token targets per position [batch * seqLen], -100 = no loss. */
  labels: Int32Array;
  batch: number;
  seqLen: number;
}

export interface TrainerOptions {
  /** Learning rate at a step (0-based optimizer step). */
  lr: (step: number) => number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** Global gradient-norm clip (0 = off; default 1.0). */
  clip?: number;
  /** MTP loss weight lambda (V3: 0.3 for the first 10T tokens, then 0.1). Default 0.3. */
  mtpWeight?: number;
  /** Aux-loss-free bias update speed gamma (V3: 0.001). */
  biasGamma?: number;
  /** Sequence-wise balance loss weight alpha (V3: 0.0001; 0 = off). */
  balanceAlpha?: number;
  /**
   * 'fp8': DeepSeek-V3 section 3.3 mixed precision — the attention/MLP/expert Linears' Fprop, Dgrad and Wgrad GEMMs
   * on fine-grained E4M3 operands (nn/fp8-linear.ts), AdamW moments stored in BF16, f32 master weights and
   * gradients. 'f32': every GEMM in f32 (removes FP8 from the model if it was installed). Unset: the model as is.
   */
  precision?: 'f32' | 'fp8';
  /** Options for the FP8 Linears when precision is 'fp8'. */
  fp8?: Fp8LinearOptions;
  /** AdamW moment storage; default 'bf16' when precision is 'fp8', else 'f32'. */
  momentDtype?: 'f32' | 'bf16';
}

export interface StepMetrics {
  step: number;
  loss: number;
  /** Next-token cross-entropy alone. */
  lmLoss: number;
  mtpLoss: number | null;
  balanceLoss: number | null;
  gradNorm: number;
  lr: number;
  /** Tokens with a loss in this step. */
  tokens: number;
  /** Per MoE layer, max/mean of tokens routed per expert in this step (1 = perfectly balanced). */
  expertImbalance: number | null;
}

function countTargets(labels: Int32Array): number {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== -100) n++;
  return n;
}

export class Trainer {
  readonly optimizer: AdamW;
  step = 0;
  private readonly clip: number;
  private readonly mtpWeight: number;
  private readonly biasGamma: number;
  private readonly balanceAlpha: number;
  constructor(readonly model: CausalLM, readonly opts: TrainerOptions) {
    if (opts.precision !== undefined && opts.precision !== 'f32' && opts.precision !== 'fp8') throw new ConfigError(`trainer: precision must be 'f32' or 'fp8', got '${String(opts.precision)}'`);
    if (opts.precision === 'fp8') enableFp8Training(model, opts.fp8);
    else if (opts.precision === 'f32') disableFp8Training(model);
    this.optimizer = new AdamW(model.trainableParameters(), {
      lr: opts.lr(0), betas: opts.betas, eps: opts.eps, weightDecay: opts.weightDecay ?? 0.1,
      momentDtype: opts.momentDtype ?? (opts.precision === 'fp8' ? 'bf16' : 'f32'),
    });
    this.clip = opts.clip ?? 1.0;
    this.mtpWeight = opts.mtpWeight ?? 0.3;
    this.biasGamma = opts.biasGamma ?? 0.001;
    this.balanceAlpha = opts.balanceAlpha ?? 0;
    model.train();
  }

  /** Loss of one micro-batch (a scalar tensor with a graph) and its parts as numbers. */
  loss(b: Batch): { loss: Tensor; lm: number; mtp: number | null; bal: number | null } {
    if (b.ids.length !== b.batch * b.seqLen || b.labels.length !== b.ids.length) throw new ShapeError(`trainer: batch arrays of ${b.ids.length}/${b.labels.length} values for ${b.batch} x ${b.seqLen}`);
    const ids = T.fromArray(b.ids, [b.batch, b.seqLen]);
    const labels = T.fromArray(b.labels, [b.batch * b.seqLen]);
    const m = this.model;
    if (m instanceof DeepseekV3ForCausalLM) {
      const out = m.forward(ids, { mtp: this.mtpWeight > 0, balanceAlpha: this.balanceAlpha });
      const V = m.config.vocabSize;
      const lm = T.crossEntropy(out.logits.reshape(b.batch * b.seqLen, V), labels);
      let loss = lm;
      let mtp: number | null = null;
      if (out.mtpLogits.length) {
        // Depth d at position t predicts token t + 2 + d, i.e. the label of position t + 1 + d.
        const lab2 = T.fromArray(b.labels, [b.batch, b.seqLen]);
        const parts = out.mtpLogits.map((lg, d) => {
          const n = b.seqLen - 1 - d;
          const tgt = lab2.narrow(1, 1 + d, n).contiguous().reshape(b.batch * n);
          return T.crossEntropy(lg.reshape(b.batch * n, V), tgt);
        });
        let sum = parts[0]!;
        for (const p of parts.slice(1)) sum = sum.add(p);
        const mean = sum.mul(1 / parts.length);
        mtp = mean.item();
        loss = loss.add(mean.mul(this.mtpWeight));
      }
      let bal: number | null = null;
      if (this.balanceAlpha > 0) {
        let acc: Tensor | null = null;
        for (const moe of m.moeLayers()) if (moe.balanceLoss) acc = acc ? acc.add(moe.balanceLoss) : moe.balanceLoss;
        if (acc) { bal = acc.item(); loss = loss.add(acc); }
      }
      return { loss, lm: lm.item(), mtp, bal };
    }
    const out = m.forward(ids);
    const lm = T.crossEntropy(out.logits.reshape(b.batch * b.seqLen, m.config.vocabSize), labels);
    return { loss: lm, lm: lm.item(), mtp: null, bal: null };
  }

  /** One optimizer step over `micro` accumulated micro-batches. */
  trainStep(micro: readonly Batch[]): StepMetrics {
    if (!micro.length) throw new ShapeError('trainer: a step needs at least one micro-batch');
    this.model.train();
    const lr = this.opts.lr(this.step);
    this.optimizer.lr = lr;
    let loss = 0, lm = 0, mtp: number | null = null, bal: number | null = null, tokens = 0;
    for (const b of micro) {
      tidy(() => {
        const r = this.loss(b);
        r.loss.mul(1 / micro.length).backward();
        loss += r.loss.item() / micro.length;
        lm += r.lm / micro.length;
        if (r.mtp !== null) mtp = (mtp ?? 0) + r.mtp / micro.length;
        if (r.bal !== null) bal = (bal ?? 0) + r.bal / micro.length;
      });
      tokens += countTargets(b.labels);
    }
    const params = this.optimizer.params;
    const gradNorm = this.clip > 0 ? clipGradNorm(params, this.clip) : clipGradNorm(params, Infinity);
    this.optimizer.stepUpdate();
    this.optimizer.zeroGrad();
    let imbalance: number | null = null;
    if (this.model instanceof DeepseekV3ForCausalLM) {
      const layers = this.model.moeLayers();
      if (layers.length) {
        let worst = 0;
        for (const l of layers) {
          const mean = l.load.reduce((a, v) => a + v, 0) / l.load.length;
          if (mean > 0) worst = Math.max(worst, Math.max(...l.load) / mean);
        }
        imbalance = worst;
        noGrad(() => (this.model as DeepseekV3ForCausalLM).updateRoutingBias(this.biasGamma));
      }
    }
    this.step++;
    return { step: this.step, loss, lmLoss: lm, mtpLoss: mtp, balanceLoss: bal, gradNorm, lr, tokens, expertImbalance: imbalance };
  }

  /** Mean next-token loss on batches without updating anything. */
  evaluate(batches: readonly Batch[]): number {
    let s = 0;
    noGrad(() => { for (const b of batches) tidy(() => { s += this.loss(b).lm; }); });
    return s / Math.max(1, batches.length);
  }
}
