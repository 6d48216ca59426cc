/**
 * Model-level throughput (issue 3): forward + backward tokens/s of whole models T1 (Qwen2-style dense) and
 * M1 (tiny DeepSeek-V3: MLA, MoE, MTP) at batch 8 x sequence 256 (BENCH.md), and the forward + backward time
 * of one DeepSeekMoE layer at 16, 64 and 256 routed experts with the same top-k (M1's dims otherwise):
 * compute follows the activated experts (top-k + shared), so that time should stay nearly flat as the
 * expert count grows. Each figure is measured against PyTorch CPU (bench/peers/torch_model.py, the same
 * architecture from test/fixtures/models/make_models.py's blocks) in the same run.
 *
 * Run: npm run bench -- model [--json] [--models T1,M1] [--experts 16,64,256] [--parts fwdbwd,moe]
 *                             [--steps N] [--warmup N] [--batch B] [--seq S] [--threads N] [--seed N] [--no-peer] [--profile]
 *
 * fwd+bwd = forward, cross-entropy (+ 0.3 x MTP loss for M1), backward; no optimizer (bench/train.ts has
 * the full step). moe = MoE.forward(x) on x [B, S, hidden] (x requires grad), backward of y.sum().
 * Both sides run in worker processes; after warm-up, single-step samples alternate ours / peer; medians.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../src/errors.js';
import {
  intFlag, measurePair, median, parseCommon, printProfile, printTable, profileRows, round, shapeConfigPath, torchUnavailable, type ProfileRow, type ShapeName,
} from './model-common.js';

export interface ModelRow {
  bench: 'model';
  what: 'fwd+bwd';
  model: ShapeName;
  batch: number;
  seq: number;
  steps: number;
  params: number;
  tokens_per_s: number;
  step_s: number;
  peer: 'pytorch' | null;
  peer_tokens_per_s: number | null;
  peer_step_s: number | null;
  /** tokens_per_s / peer_tokens_per_s (> 1: r1ts faster). */
  ratio: number | null;
  peer_note?: string;
  /** Peer version, threads and a BLAS sanity figure. */
  peer_info?: string;
}

export interface MoeRow {
  bench: 'model';
  what: 'moe-layer';
  model: 'M1';
  experts: number;
  top_k: number;
  shared_experts: number;
  batch: number;
  seq: number;
  steps: number;
  params: number;
  /** Routed (token, expert) rows per expert on average: batch x seq x top_k / experts. */
  tokens_per_expert: number;
  /** Forward + backward flop of the layer (GEMMs: 3 x forward; routed + shared experts + gate): nearly constant in experts. */
  gflop: number;
  /** Median forward + backward time of the layer, milliseconds. */
  ms: number;
  gflops: number;
  /** ms / ms at the first (smallest) expert count: ~1 means cost follows activated, not total, experts. */
  rel_to_first: number;
  peer: 'pytorch' | null;
  peer_ms: number | null;
  peer_gflops: number | null;
  peer_rel_to_first: number | null;
  /** peer_ms / ms (> 1: r1ts faster). */
  ratio: number | null;
  peer_note?: string;
  /** Peer version, threads and a BLAS sanity figure. */
  peer_info?: string;
}

const USAGE = 'usage: npm run bench -- model [--json] [--models T1,M1] [--experts 16,64,256] [--parts fwdbwd,moe] [--steps N] [--warmup N] [--batch B] [--seq S] [--threads N] [--seed N] [--no-peer] [--profile]';

type Part = 'fwdbwd' | 'moe';

export default async function run(argv: string[]): Promise<void> {
  let experts = [16, 64, 256];
  let parts: Part[] = ['fwdbwd', 'moe'];
  const o = parseCommon('model', argv, USAGE, (flag, value) => {
    if (flag === '--experts') {
      experts = value().split(',').map((e) => intFlag('model', flag, e, 1));
      return true;
    }
    if (flag === '--parts') {
      parts = value().split(',').map((p) => {
        if (p !== 'fwdbwd' && p !== 'moe') throw new UsageError(`bench model: --parts entry '${p}' is not fwdbwd or moe`);
        return p;
      });
      return true;
    }
    return false;
  });
  if (o.seq > 2048) throw new UsageError(`bench model: --seq ${o.seq} exceeds the models' max_position_embeddings (2048)`);
  const peerNote = o.peer ? torchUnavailable() : 'peer disabled (--no-peer)';
  const tokens = o.batch * o.seq;
  const modelRows: ModelRow[] = [];
  const moeRows: MoeRow[] = [];
  const profiles: ProfileRow[] = [];

  if (parts.includes('fwdbwd')) {
    for (const model of o.models) {
      const r = await measurePair({ mode: 'fwdbwd', config: shapeConfigPath(model), batch: o.batch, seq: o.seq, seed: o.seed }, o, peerNote);
      const step = median(r.ours.seconds);
      const peerStep = r.peer ? median(r.peer.seconds) : null;
      const row: ModelRow = {
        bench: 'model', what: 'fwd+bwd', model, batch: o.batch, seq: o.seq, steps: o.steps, params: r.ours.params,
        tokens_per_s: round(tokens / step), step_s: round(step, 3),
        peer: r.peer ? 'pytorch' : null,
        peer_tokens_per_s: peerStep === null ? null : round(tokens / peerStep),
        peer_step_s: peerStep === null ? null : round(peerStep, 3),
        ratio: peerStep === null ? null : round(peerStep / step, 3),
      };
      if (r.peerNote) row.peer_note = r.peerNote;
      if (r.peer) row.peer_info = r.peer.info;
      if (r.peer && r.peer.params !== r.ours.params) row.peer_note = `parameter counts differ: r1ts ${r.ours.params}, pytorch ${r.peer.params}`;
      modelRows.push(row);
      const prof = profileRows('model', 'fwd+bwd', model, r);
      profiles.push(...prof);
      if (o.json) for (const x of [row, ...prof]) console.log(JSON.stringify(x));
    }
  }

  if (parts.includes('moe')) {
    const cfgPath = shapeConfigPath('M1');
    const raw = readFileSync(cfgPath, 'utf8');
    const m1 = JSON.parse(raw) as { num_experts_per_tok: number; n_shared_experts: number; n_group?: number; hidden_size: number; moe_intermediate_size: number };
    for (const E of experts) {
      if (m1.n_group && E % m1.n_group !== 0) throw new UsageError(`bench model: --experts ${E} is not a multiple of M1's n_group (${m1.n_group})`);
    }
    let first: { ms: number; peerMs: number | null } | null = null;
    for (const E of experts) {
      const r = await measurePair({ mode: 'moe', config: cfgPath, batch: o.batch, seq: o.seq, seed: o.seed, experts: E }, o, peerNote);
      const ms = median(r.ours.seconds) * 1000;
      const peerMs = r.peer ? median(r.peer.seconds) * 1000 : null;
      first ??= { ms, peerMs };
      // SwiGLU on n rows: 3 GEMMs of 2 n D I flop forward, twice that backward; the gate: 2 T D E, x3.
      const D = m1.hidden_size, I = m1.moe_intermediate_size, K = m1.num_experts_per_tok;
      const flop = 18 * D * I * tokens * (K + m1.n_shared_experts) + 6 * tokens * D * E;
      const row: MoeRow = {
        bench: 'model', what: 'moe-layer', model: 'M1', experts: E, top_k: m1.num_experts_per_tok,
        shared_experts: m1.n_shared_experts, batch: o.batch, seq: o.seq, steps: o.steps, params: r.ours.params,
        tokens_per_expert: round((tokens * K) / E, 1), gflop: round(flop / 1e9, 2),
        ms: round(ms, 2), gflops: round(flop / ms / 1e6, 1), rel_to_first: round(ms / first.ms, 3),
        peer: r.peer ? 'pytorch' : null,
        peer_ms: peerMs === null ? null : round(peerMs, 2),
        peer_gflops: peerMs === null ? null : round(flop / peerMs / 1e6, 1),
        peer_rel_to_first: peerMs === null || first.peerMs === null ? null : round(peerMs / first.peerMs, 3),
        ratio: peerMs === null ? null : round(peerMs / ms, 3),
      };
      if (r.peerNote) row.peer_note = r.peerNote;
      if (r.peer) row.peer_info = r.peer.info;
      if (r.peer && r.peer.params !== r.ours.params) row.peer_note = `parameter counts differ: r1ts ${r.ours.params}, pytorch ${r.peer.params}`;
      moeRows.push(row);
      const prof = profileRows('model', 'moe-layer', 'M1', r, E);
      profiles.push(...prof);
      if (o.json) for (const x of [row, ...prof]) console.log(JSON.stringify(x));
    }
  }

  if (o.json) return;
  console.log(`forward + backward, batch ${o.batch} x seq ${o.seq}, f32, ${o.threads} threads; median of ${o.steps} steps after ${o.warmup} warm-up` +
    (peerNote ? `; ${peerNote}` : ''));
  const info = [...modelRows, ...moeRows].find((r) => r.peer_info)?.peer_info;
  if (info) console.log(`peer: ${info}`);
  if (modelRows.length) {
    printTable(['model', 'params', 'tok/s', 'torch tok/s', 'ratio'],
      modelRows.map((r) => [r.model, r.params, r.tokens_per_s, r.peer_tokens_per_s ?? '-', r.ratio ?? '-']));
  }
  if (moeRows.length) {
    console.log(`\nMoE layer (M1 dims, top-${moeRows[0]!.top_k} + ${moeRows[0]!.shared_experts} shared), forward + backward on ${tokens} tokens`);
    printTable(['experts', 'rows/expert', 'GFLOP', 'ms', 'GFLOP/s', 'x first', 'torch ms', 'torch GFLOP/s', 'torch x first', 'ratio'],
      moeRows.map((r) => [r.experts, r.tokens_per_expert, r.gflop, r.ms, r.gflops, r.rel_to_first, r.peer_ms ?? '-', r.peer_gflops ?? '-', r.peer_rel_to_first ?? '-', r.ratio ?? '-']));
  }
  for (const r of [...modelRows, ...moeRows]) if (r.peer_note && r.peer_note !== peerNote) console.log(`${r.model}${'experts' in r ? ` (${r.experts} experts)` : ''}: ${r.peer_note}`);
  for (const p of profiles) printProfile(p);
}
