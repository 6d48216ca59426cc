/**
 * Training throughput and peak memory (BENCH.md "Training step"): batch 8 x sequence 256, forward +
 * backward + AdamW, f32, for T1 (Qwen2-style dense) and M1 (tiny DeepSeek-V3: MLA, MoE, MTP), against
 * PyTorch CPU (Debian's python3-torch, bench/peers/torch_model.py) doing the same step in the same run.
 *
 * Run: npm run bench -- train [--json] [--models T1,M1] [--steps N] [--warmup N] [--batch B] [--seq S]
 *                             [--threads N] [--seed N] [--no-peer] [--profile]
 *
 * One step = src/train/loop.ts Trainer.trainStep: forward, cross-entropy (+ 0.3 x MTP loss for M1),
 * backward, global grad-norm clip 1.0, AdamW (weight decay 0.1), zero grad, routing-bias update (M1).
 * Each side runs in its own worker process per model (peak RSS = that process's ru_maxrss: the model,
 * optimizer state, activations and runtime). After warm-up, single-step samples alternate ours / peer;
 * tokens/s = batch x seq / median step time.
 */
import { UsageError } from '../src/errors.js';
import {
  measurePair, median, parseCommon, printProfile, printTable, profileRows, round, shapeConfigPath, torchUnavailable, type ProfileRow, type ShapeName,
} from './model-common.js';

export interface TrainRow {
  bench: 'train';
  model: ShapeName;
  batch: number;
  seq: number;
  steps: number;
  params: number;
  tokens_per_s: number;
  step_s: number;
  peak_rss_mb: number;
  loss: number | null;
  peer: 'pytorch' | null;
  peer_tokens_per_s: number | null;
  peer_step_s: number | null;
  peer_peak_rss_mb: number | null;
  peer_loss: number | null;
  /** tokens_per_s / peer_tokens_per_s (> 1: r1ts faster). */
  ratio: number | null;
  /** peak_rss_mb / peer_peak_rss_mb. */
  rss_ratio: number | null;
  /** Why there are no peer numbers, when there are none. */
  peer_note?: string;
  /** Peer version, threads and a BLAS sanity figure. */
  peer_info?: string;
}

const USAGE = 'usage: npm run bench -- train [--json] [--models T1,M1] [--steps N] [--warmup N] [--batch B] [--seq S] [--threads N] [--seed N] [--no-peer] [--profile]';

export default async function run(argv: string[]): Promise<void> {
  const o = parseCommon('train', argv, USAGE);
  if (o.seq > 2048) throw new UsageError(`bench train: --seq ${o.seq} exceeds the models' max_position_embeddings (2048)`);
  const peerNote = o.peer ? torchUnavailable() : 'peer disabled (--no-peer)';
  const rows: TrainRow[] = [];
  const profiles: ProfileRow[] = [];
  for (const model of o.models) {
    const r = await measurePair({ mode: 'train', config: shapeConfigPath(model), batch: o.batch, seq: o.seq, seed: o.seed }, o, peerNote);
    const tokens = o.batch * o.seq;
    const step = median(r.ours.seconds);
    const peerStep = r.peer ? median(r.peer.seconds) : null;
    const row: TrainRow = {
      bench: 'train', model, batch: o.batch, seq: o.seq, steps: o.steps, params: r.ours.params,
      tokens_per_s: round(tokens / step), step_s: round(step, 3), peak_rss_mb: round(r.ours.peakRssMb),
      loss: r.ours.loss === null ? null : round(r.ours.loss, 4),
      peer: r.peer ? 'pytorch' : null,
      peer_tokens_per_s: peerStep === null ? null : round(tokens / peerStep),
      peer_step_s: peerStep === null ? null : round(peerStep, 3),
      peer_peak_rss_mb: r.peer ? round(r.peer.peakRssMb) : null,
      peer_loss: r.peer?.loss == null ? null : round(r.peer.loss, 4),
      ratio: peerStep === null ? null : round(peerStep / step, 3),
      rss_ratio: r.peer ? round(r.ours.peakRssMb / r.peer.peakRssMb, 3) : null,
    };
    if (r.peerNote) row.peer_note = r.peerNote;
      if (r.peer) row.peer_info = r.peer.info;
    if (r.peer && r.peer.params !== r.ours.params) row.peer_note = `parameter counts differ: r1ts ${r.ours.params}, pytorch ${r.peer.params}`;
    rows.push(row);
    const prof = profileRows('train', 'train', model, r);
    profiles.push(...prof);
    if (o.json) for (const x of [row, ...prof]) console.log(JSON.stringify(x));
  }
  if (o.json) return;
  console.log(`training step (fwd + bwd + clip + AdamW), batch ${o.batch} x seq ${o.seq}, f32, ${o.threads} threads; ` +
    `median of ${o.steps} steps after ${o.warmup} warm-up${peerNote ? `; ${peerNote}` : ''}`);
  const info = rows.find((r) => r.peer_info)?.peer_info;
  if (info) console.log(`peer: ${info}`);
  printTable(['model', 'params', 'tok/s', 'torch tok/s', 'ratio', 'RSS MB', 'torch RSS MB'],
    rows.map((r) => [r.model, r.params, r.tokens_per_s, r.peer_tokens_per_s ?? '-', r.ratio ?? '-', r.peak_rss_mb, r.peer_peak_rss_mb ?? '-']));
  for (const r of rows) if (r.peer_note && r.peer_note !== peerNote) console.log(`${r.model}: ${r.peer_note}`);
  for (const p of profiles) printProfile(p);
}
