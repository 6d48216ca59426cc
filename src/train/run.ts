/**
 * The training driver shared by `r1 pretrain`, `r1 sft` and `r1 demo`: batches from a DataLoader, the
 * Trainer's steps, metrics as JSONL, a progress bar, periodic atomic checkpoints, exact resume
 * (model, AdamW moments, step, data position) and a final export as a Hugging Face folder.
 */
import { join } from 'node:path';
import type { CausalLM } from '../models/load.js';
import { saveModel } from '../models/load.js';
import { Trainer, type TrainerOptions } from './loop.js';
import { DataLoader, type Example, type LoaderState } from './data.js';
import { MetricsWriter } from './metrics.js';
import { saveCheckpoint, loadCheckpoint, latestCheckpoint } from './checkpoint.js';
import { Progress } from '../cli/progress.js';
import { UsageError } from '../errors.js';

export interface TrainRunOptions extends TrainerOptions {
  model: CausalLM;
  examples: readonly Example[];
  steps: number;
  batchSize: number;
  seqLen: number;
  /** Pack examples into windows (pretraining) or pad one per row (SFT). */
  pack: boolean;
  padId?: number;
  seed: number;
  gradAccum?: number;
  /** Output folder: metrics.jsonl, checkpoints/, and the final model/ (HF folder). */
  outDir: string;
  /** Checkpoint every N steps (0 = only at the end). */
  saveEvery?: number;
  keepCheckpoints?: number;
  /** Continue from the newest checkpoint in outDir/checkpoints. */
  resume?: boolean;
  /** Tokenizer folder to copy into the exported model (and checkpoints). */
  tokenizerDir?: string;
  /** Progress label; null stream = no progress output. */
  label?: string;
  progressStream?: NodeJS.WriteStream | null;
  /** Extra metrics every `evalEvery` steps (e.g. held-out accuracy), merged into the metrics line. */
  evalEvery?: number;
  evaluate?: (step: number) => Record<string, number>;
  /** Extra fields written on every metrics line (e.g. phase). */
  tags?: Record<string, string>;
  /** Added to the step written in metrics (a later phase of a longer run, e.g. SFT after pretraining). */
  stepOffset?: number;
  /** Skip the final HF export (the demo exports once after all phases). */
  noExport?: boolean;
}

export interface TrainRunResult {
  steps: number;
  seconds: number;
  tokensPerSecond: number;
  firstLoss: number;
  finalLoss: number;
  resumedFrom: number | null;
  modelDir: string | null;
  metricsPath: string;
}

export function runTraining(o: TrainRunOptions): TrainRunResult {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new UsageError(`training: steps must be an integer >= 1, got ${o.steps}`);
  if (!o.examples.length) throw new UsageError('training: no examples');
  const loader = new DataLoader(o.examples, { batchSize: o.batchSize, seqLen: o.seqLen, seed: o.seed, pack: o.pack, padId: o.padId });
  const trainer = new Trainer(o.model, o);
  const ckptDir = join(o.outDir, 'checkpoints');
  let resumedFrom: number | null = null;
  if (o.resume) {
    const last = latestCheckpoint(ckptDir);
    if (last) {
      const st = loadCheckpoint(last, o.model, trainer.optimizer);
      trainer.step = st.step;
      loader.restore(st['data'] as LoaderState);
      resumedFrom = st.step;
    }
  }
  const metricsPath = join(o.outDir, 'metrics.jsonl');
  const metrics = new MetricsWriter(metricsPath, { append: resumedFrom !== null });
  const progress = o.progressStream === null ? null : new Progress({ total: o.steps, label: o.label ?? 'train', unit: 'steps', stream: o.progressStream });
  const accum = o.gradAccum ?? 1;
  const t0 = performance.now();
  let tokens = 0;
  let first = NaN;
  let last = NaN;
  const save = () => saveCheckpoint(ckptDir, o.model, trainer.optimizer, { step: trainer.step, data: loader.state(), seed: o.seed }, { keep: o.keepCheckpoints ?? 2 });
  try {
    while (trainer.step < o.steps) {
      const ts = performance.now();
      const micro = Array.from({ length: accum }, () => loader.next());
      const m = trainer.trainStep(micro);
      const dt = (performance.now() - ts) / 1000;
      const stepTokens = micro.reduce((a, b) => a + b.ids.length, 0);
      tokens += stepTokens;
      if (Number.isNaN(first)) first = m.loss;
      last = m.loss;
      if (!Number.isFinite(m.loss)) throw new UsageError(`training diverged at step ${m.step}: loss ${m.loss} (lower --lr?)`);
      const rec: Record<string, number | string | null> = {
        ...(o.tags ?? {}), step: m.step + (o.stepOffset ?? 0), loss: m.loss, lm_loss: m.lmLoss, lr: m.lr, grad_norm: m.gradNorm,
        tokens_per_s: stepTokens / dt, elapsed_s: (performance.now() - t0) / 1000,
      };
      if (m.mtpLoss !== null) rec['mtp_loss'] = m.mtpLoss;
      if (m.balanceLoss !== null) rec['balance_loss'] = m.balanceLoss;
      if (m.expertImbalance !== null) rec['expert_imbalance'] = m.expertImbalance;
      if (o.evaluate && o.evalEvery && (m.step % o.evalEvery === 0 || m.step === o.steps)) Object.assign(rec, o.evaluate(m.step));
      metrics.write(rec);
      progress?.update(m.step, { loss: m.loss.toFixed(4), 'tok/s': Math.round(stepTokens / dt) });
      if (o.saveEvery && m.step % o.saveEvery === 0 && m.step < o.steps) save();
    }
  } finally {
    metrics.close();
  }
  progress?.finish();
  if (resumedFrom === null || trainer.step > resumedFrom) save();
  const seconds = (performance.now() - t0) / 1000;
  let modelDir: string | null = null;
  if (!o.noExport) {
    modelDir = join(o.outDir, 'model');
    saveModel(modelDir, o.model, { tokenizerFrom: o.tokenizerDir });
  }
  return { steps: trainer.step, seconds, tokensPerSecond: tokens / Math.max(seconds, 1e-9), firstLoss: first, finalLoss: last, resumedFrom, modelDir, metricsPath };
}
