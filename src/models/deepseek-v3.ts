/**
 * DeepSeek-V3 (and V2-style configs), in the paper's order like DeepSeek-V3's inference/model.py:
 * config -> MLA -> gate -> MoE -> block -> MTP -> model. Parameter paths are the HF tensor names.
 *
 * - MLA (V2 paper 2.1, V3 2.1.1): low-rank queries (q_a_proj, q_a_layernorm, q_b_proj) or q_proj; the
 *   compressed latent kv_a_proj_with_mqa -> kv_lora_rank + a decoupled RoPE key shared by all heads;
 *   kv_b_proj expands the latent to per-head k_nope and v. RoPE rotates interleaved pairs.
 *   Two paths: naive (training) and absorbed (inference: kv_b_proj folded into the query and output,
 *   attention runs as multi-query attention over the cached [latent ; rope key], kv_lora_rank + qk_rope_head_dim
 *   values per token per layer — 576 for V3).
 * - DeepSeekMoE (V3 2.1.2): sigmoid (V3) or softmax (V2) affinities; e_score_correction_bias for selection only;
 *   group-limited routing; weights from unbiased scores, normalised if norm_topk_prob, times routed_scaling_factor;
 *   each routed expert runs one GEMM over exactly its tokens. Aux-loss-free balancing via bias updates,
 *   optional sequence-wise balance loss.
 * - MTP (V3 2.2): per depth, eh_proj(concat(enorm(embed(t_{i+1})), hnorm(h_i))) -> one block -> shared head.
 */
import * as T from '../tensor/index.js';
import { Tensor, arange, keep, noGrad } from '../tensor/index.js';
import { Module, ModuleList, dtypeOf, type InitOptions } from '../nn/module.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { reserveRows } from '../nn/kv-buffer.js';
import type { CacheDtype } from '../nn/attention.js';
import { RMSNorm } from '../nn/norm.js';
import { SwiGLU } from '../nn/mlp.js';
import { fuseLinears, type FusedPacked } from '../nn/packed-weights.js';
import { ropeTables, yarnMscale } from '../nn/rope.js';
import { isMoeLayer, type DeepseekConfig } from './config.js';
import { initOptions, type BuildOptions } from './llama.js';
import { ShapeError } from '../errors.js';
import { packSegments, runLayer, type SegmentInput } from './segments.js';

/** Softmax scale of MLA: 1/sqrt(qk_nope + qk_rope) times YaRN's mscale^2 (mscale_all_dim, as HF's DeepseekV3Attention). */
export function mlaSoftmaxScale(c: DeepseekConfig): number {
  let scale = 1 / Math.sqrt(c.qkNopeHeadDim + c.qkRopeHeadDim);
  const rs = c.ropeScaling;
  if (rs && rs.type === 'yarn') {
    const m = rs.mscaleAllDim ?? rs.mscale;
    if (m) {
      const ms = yarnMscale(rs.factor, m);
      scale *= ms * ms;
    }
  }
  return scale;
}

/** The MLA cache of one layer: [B, 1, S, kv_lora_rank + qk_rope_head_dim] (latent ; rope key). */
export interface MLACache { kv: Tensor }
/** A sequence's MLA cache for one layer as the inference engine keeps it (forwardSegments): a buffer
 * [1, 1, capacity, kv_lora_rank + qk_rope_head_dim] whose first `len` rows are in use (src/nn/kv-buffer.ts). */
export interface MLARows { kvBuf: Tensor; len: number }

export interface RopeCtx {
  cos: Tensor;
  sin: Tensor;
  positions: Tensor;
  /** forwardSegments: the dtype of new MLA cache buffers (default x's; src/nn/attention.ts AttentionContext). */
  cacheDtype?: CacheDtype;
}

export class MLA extends Module {
  readonly q_proj: Linear | null = null;
  readonly q_a_proj: Linear | null = null;
  readonly q_a_layernorm: RMSNorm | null = null;
  readonly q_b_proj: Linear | null = null;
  readonly kv_a_proj_with_mqa: Linear;
  readonly kv_a_layernorm: RMSNorm;
  readonly kv_b_proj: Linear;
  readonly o_proj: Linear;
  readonly H: number;
  readonly qkHead: number;
  readonly scale: number;
  constructor(readonly c: DeepseekConfig, init: InitOptions | 'empty') {
    super();
    const H = (this.H = c.numAttentionHeads);
    this.qkHead = c.qkNopeHeadDim + c.qkRopeHeadDim;
    if (c.qLoraRank === null) {
      this.q_proj = this.child('q_proj', new Linear(c.hiddenSize, H * this.qkHead, false, init));
    } else {
      this.q_a_proj = this.child('q_a_proj', new Linear(c.hiddenSize, c.qLoraRank, c.attentionBias, init));
      this.q_a_layernorm = this.child('q_a_layernorm', new RMSNorm(c.qLoraRank, c.rmsNormEps, dtypeOf(init)));
      this.q_b_proj = this.child('q_b_proj', new Linear(c.qLoraRank, H * this.qkHead, false, init));
    }
    this.kv_a_proj_with_mqa = this.child('kv_a_proj_with_mqa', new Linear(c.hiddenSize, c.kvLoraRank + c.qkRopeHeadDim, c.attentionBias, init));
    this.kv_a_layernorm = this.child('kv_a_layernorm', new RMSNorm(c.kvLoraRank, c.rmsNormEps, dtypeOf(init)));
    this.kv_b_proj = this.child('kv_b_proj', new Linear(c.kvLoraRank, H * (c.qkNopeHeadDim + c.vHeadDim), false, init));
    this.o_proj = this.child('o_proj', new Linear(H * c.vHeadDim, c.hiddenSize, c.attentionBias, init));
    this.scale = mlaSoftmaxScale(c);
  }

  /** The two projections of x (q_proj or q_a_proj, and kv_a_proj_with_mqa) as one packed product (fuseProjections,
   * after packing; used by forwardSegments at one row, as GQAttention's); null: two products. */
  xProj: FusedPacked | null = null;
  fuseProjections(path: string): boolean {
    const q = this.q_proj ?? this.q_a_proj!;
    this.xProj = fuseLinears([q, this.kv_a_proj_with_mqa], `${path}.${this.q_proj ? 'q_proj' : 'q_a_proj'}+kv_a_proj_with_mqa`);
    return this.xProj !== null;
  }

  /** Queries split into their no-RoPE and (rotated) RoPE parts: [B, S, H, nope], [B, S, H, rope]. qx: x's q_proj /
   * q_a_proj output when already computed (the fused product). */
  private queries(x: Tensor, r: RopeCtx, qx?: Tensor): { qNope: Tensor; qPe: Tensor } {
    const [B, S] = x.shape as [number, number];
    const c = this.c;
    const first = qx ?? (this.q_proj ?? this.q_a_proj!).forward(x);
    const q = (this.q_proj ? first : this.q_b_proj!.forward(this.q_a_layernorm!.forward(first))).reshape(B, S, this.H, this.qkHead);
    const qNope = q.narrow(3, 0, c.qkNopeHeadDim);
    const qPe = T.rope(q.narrow(3, c.qkNopeHeadDim, c.qkRopeHeadDim), r.cos, r.sin, r.positions, 'interleaved');
    return { qNope, qPe };
  }

  /** The per-token latent kv_a_layernorm(c_kv) [B, S, kv_lora] and the rotated shared key [B, S, 1, rope]. */
  private latent(x: Tensor, r: RopeCtx, kvx?: Tensor): { kvNorm: Tensor; kPe: Tensor } {
    const [B, S] = x.shape as [number, number];
    const c = this.c;
    const kv = kvx ?? this.kv_a_proj_with_mqa.forward(x);
    const kvNorm = this.kv_a_layernorm.forward(kv.narrow(2, 0, c.kvLoraRank));
    const kPe = T.rope(kv.narrow(2, c.kvLoraRank, c.qkRopeHeadDim).reshape(B, S, 1, c.qkRopeHeadDim), r.cos, r.sin, r.positions, 'interleaved');
    return { kvNorm, kPe };
  }

  /** Naive MLA (training): materialise per-head keys and values. x [B, S, hidden] -> [B, S, hidden]. */
  forward(x: Tensor, r: RopeCtx): Tensor {
    const [B, S] = x.shape as [number, number];
    const c = this.c;
    const H = this.H;
    const { qNope, qPe } = this.queries(x, r);
    const { kvNorm, kPe } = this.latent(x, r);
    const kvb = this.kv_b_proj.forward(kvNorm).reshape(B, S, H, c.qkNopeHeadDim + c.vHeadDim);
    const kNope = kvb.narrow(3, 0, c.qkNopeHeadDim);
    const v = kvb.narrow(3, c.qkNopeHeadDim, c.vHeadDim);
    const q = T.cat([qNope, qPe], 3).transpose(1, 2);
    const k = T.cat([kNope, kPe.expand(B, S, H, c.qkRopeHeadDim)], 3).transpose(1, 2);
    const o = T.attention(q, k, v.transpose(1, 2), { causal: true, scale: this.scale });
    return this.o_proj.forward(o.transpose(1, 2).reshape(B, S, H * c.vHeadDim));
  }

  /**
   * Absorbed MLA (inference): scores = (q_nope W_uk) . c_kv + q_pe . k_pe; out = (P c_kv) W_uv.
   * Runs as multi-query attention (one shared KV head) over [c_kv ; k_pe]. `past` holds earlier tokens' cache.
   */
  forwardAbsorbed(x: Tensor, r: RopeCtx, past?: MLACache | null): { out: Tensor; cache: MLACache } {
    const [B, S] = x.shape as [number, number];
    const c = this.c;
    const H = this.H;
    const L = c.kvLoraRank;
    const { qNope, qPe } = this.queries(x, r);
    const { kvNorm, kPe } = this.latent(x, r);
    let kv = T.cat([kvNorm, kPe.reshape(B, S, c.qkRopeHeadDim)], 2).reshape(B, 1, S, L + c.qkRopeHeadDim);
    if (past) kv = T.cat([past.kv, kv], 2);
    const w = this.kv_b_proj.weight.reshape(H, c.qkNopeHeadDim + c.vHeadDim, L);
    const wUk = w.narrow(1, 0, c.qkNopeHeadDim); // [H, nope, L]
    const wUv = w.narrow(1, c.qkNopeHeadDim, c.vHeadDim); // [H, v, L]
    // Fold W_uk into the query: per head [B*S, nope] @ [nope, L].
    const qn = qNope.permute(2, 0, 1, 3).reshape(H, B * S, c.qkNopeHeadDim);
    const qAbs = T.matmul(qn, wUk).reshape(H, B, S, L).permute(1, 0, 2, 3); // [B, H, S, L]
    const q = T.cat([qAbs, qPe.transpose(1, 2)], 3);
    const vLatent = kv.narrow(3, 0, L);
    const oLatent = T.attention(q, kv, vLatent, { causal: true, scale: this.scale }); // [B, H, S, L]
    // Fold W_uv into the output: per head [B*S, L] @ [L, v].
    const ol = oLatent.permute(1, 0, 2, 3).reshape(H, B * S, L);
    const o = T.matmul(ol, wUv.transpose(1, 2)).reshape(H, B, S, c.vHeadDim).permute(1, 2, 0, 3).reshape(B, S, H * c.vHeadDim);
    return { out: this.o_proj.forward(o), cache: { kv } };
  }

  /**
   * Absorbed MLA over a ragged batch (inference): x [1, N, hidden] packs several sequences' new tokens;
   * projections and the W_uk/W_uv folds run once over all N tokens, attention per sequence over its own
   * cached [latent ; rope key]. Returns each sequence's extended cache.
   */
  forwardSegments(x: Tensor, r: RopeCtx, segments: readonly { length: number; past: MLARows | null }[]): { out: Tensor; caches: MLARows[] } {
    const N = x.shape[1]!;
    const c = this.c;
    const H = this.H;
    const L = c.kvLoraRank;
    const [qx, kvx] = this.xProj && !this.training && this.xProj.serves(x) ? this.xProj.apply(x) : [];
    const { qNope, qPe } = this.queries(x, r, qx);
    const { kvNorm, kPe } = this.latent(x, r, kvx);
    const kvNew = T.cat([kvNorm, kPe.reshape(1, N, c.qkRopeHeadDim)], 2).reshape(1, 1, N, L + c.qkRopeHeadDim);
    const w = this.kv_b_proj.weight.reshape(H, c.qkNopeHeadDim + c.vHeadDim, L);
    const wUk = w.narrow(1, 0, c.qkNopeHeadDim);
    const wUv = w.narrow(1, c.qkNopeHeadDim, c.vHeadDim);
    const qAbs = T.matmul(qNope.permute(2, 0, 1, 3).reshape(H, N, c.qkNopeHeadDim), wUk).reshape(H, 1, N, L).permute(1, 0, 2, 3);
    const q = T.cat([qAbs, qPe.transpose(1, 2)], 3).transpose(1, 2).reshape(N, H, L + c.qkRopeHeadDim); // token-major
    const bufs = segments.map((s) => reserveRows(s.past ? { buf: s.past.kvBuf, len: s.past.len } : null, s.length, 1, L + c.qkRopeHeadDim, r.cacheDtype ?? x.dtype));
    // One call for all sequences: each one's latent rows are appended to its cache and attended; the values are the
    // first L columns of each cached row, read in place.
    const oLatent = T.raggedAttention(q, kvNew.reshape(N, 1, L + c.qkRopeHeadDim), null,
      segments.map((s, i) => ({ length: s.length, past: bufs[i]!.len, k: bufs[i]!.buf, v: null })), { scale: this.scale, valueDim: L }); // [N, H, L]
    const caches = segments.map((s, i) => ({ kvBuf: bufs[i]!.buf, len: bufs[i]!.len + s.length }));
    const o = T.matmul(oLatent.transpose(0, 1), wUv.transpose(1, 2)).permute(1, 0, 2).reshape(1, N, H * c.vHeadDim);
    return { out: this.o_proj.forward(o), caches };
  }
}

/** Routing decisions for a batch of tokens. */
export interface Routing {
  /** Chosen experts [T, k] (i32). */
  indices: Tensor;
  /** Differentiable combine weights [T, k]. */
  weights: Tensor;
  /** Affinities s_{i,t} before the bias [T, E] (differentiable; for the balance loss). */
  scores: Tensor;
}

export class Gate extends Module {
  readonly weight: Tensor;
  readonly e_score_correction_bias: Tensor | null;
  constructor(readonly c: DeepseekConfig, init: InitOptions | 'empty') {
    super();
    const E = c.nRoutedExperts;
    this.weight = this.param('weight', init === 'empty' ? T.zeros([E, c.hiddenSize]) : T.randn([E, c.hiddenSize], { rng: init.rng, std: init.std, dtype: init.dtype }));
    // The bias is adjusted by the balancing rule, not by gradients (V3 2.1.2).
    this.e_score_correction_bias = c.topkMethod === 'noaux_tc' ? this.param('e_score_correction_bias', T.zeros([E], dtypeOf(init)), false) : null;
  }

  /** Route x [T, hidden]. */
  route(x: Tensor): Routing {
    const c = this.c;
    const E = c.nRoutedExperts;
    const K = c.numExpertsPerTok;
    const logits = T.linear(x, this.weight);
    const scores = c.scoringFunc === 'sigmoid' ? T.sigmoid(logits) : T.softmax(logits, -1);
    const Tn = x.shape[0]!;
    // Selection happens on plain numbers: no gradient flows through the choice itself.
    const s = scores.toArray() as Float32Array | Float64Array;
    const bias = this.e_score_correction_bias ? (this.e_score_correction_bias.toArray() as Float32Array) : null;
    const G = c.nGroup > 1 && c.topkMethod !== 'greedy' ? c.nGroup : 1;
    const per = E / G;
    const idx = new Int32Array(Tn * K);
    const biased = new Float64Array(E);
    const groupScore = new Float64Array(G);
    const allowed = new Uint8Array(G);
    const topVal = new Float64Array(K);
    const topIdx = new Int32Array(K);
    // Selection by insertion into the running top K (O(E K) per token, no allocation): at 256 experts sorting every
    // token's candidates cost more than the layer's expert GEMMs. Order: biased score descending, then expert
    // index ascending (experts are visited in increasing index and an equal score never displaces an earlier one).
    for (let t = 0; t < Tn; t++) {
      for (let e = 0; e < E; e++) biased[e] = s[t * E + e]! + (bias ? bias[e]! : 0);
      if (G > 1) {
        for (let g = 0; g < G; g++) {
          // V3: sum of the group's top-2 biased scores; V2 group_limited_greedy: the group's max.
          let a = -Infinity;
          let b = -Infinity;
          for (let j = 0; j < per; j++) {
            const v = biased[g * per + j]!;
            if (v > a) { b = a; a = v; } else if (v > b) b = v;
          }
          groupScore[g] = bias ? a + (per > 1 ? b : 0) : a;
        }
        // The topk_group best groups (score descending, then group index ascending).
        allowed.fill(0);
        for (let j = 0; j < c.topkGroup; j++) {
          let best = -1;
          for (let g = 0; g < G; g++) if (!allowed[g] && (best < 0 || groupScore[g]! > groupScore[best]!)) best = g;
          allowed[best] = 1;
        }
      } else allowed.fill(1);
      let n = 0;
      for (let e = 0; e < E; e++) {
        if (!allowed[(e / per) | 0]) continue;
        const v = biased[e]!;
        if (n === K && !(v > topVal[K - 1]!)) continue;
        let pos = n < K ? n++ : K - 1;
        while (pos > 0 && topVal[pos - 1]! < v) { topVal[pos] = topVal[pos - 1]!; topIdx[pos] = topIdx[pos - 1]!; pos--; }
        topVal[pos] = v;
        topIdx[pos] = e;
      }
      for (let j = 0; j < K; j++) idx[t * K + j] = topIdx[j]!;
    }
    const indices = T.fromArray(idx, [Tn, K]);
    let weights = T.gather(scores, 1, indices);
    if (c.normTopkProb && K > 1) weights = weights.div(weights.sum(-1, true).add(c.scoringFunc === 'sigmoid' ? 1e-20 : 0));
    weights = weights.mul(c.routedScalingFactor);
    return { indices, weights, scores };
  }
}

export class MoE extends Module {
  readonly gate: Gate;
  readonly experts: ModuleList<SwiGLU>;
  readonly shared_experts: SwiGLU | null;
  /** Tokens routed to each expert in training forwards since the last bias update (aux-loss-free balancing statistics). */
  readonly load: Float64Array;
  /** Sequence-wise balance loss of the last forward (when alpha > 0 and training). */
  balanceLoss: Tensor | null = null;
  /** When set, every forward appends its routed expert ids (tokens x k, token-major) here: routing samples for plan/. */
  routingLog: Int32Array[] | null = null;
  constructor(readonly c: DeepseekConfig, init: InitOptions | 'empty') {
    super();
    this.gate = this.child('gate', new Gate(c, init));
    this.experts = this.child('experts', new ModuleList(Array.from({ length: c.nRoutedExperts }, () => new SwiGLU(c.hiddenSize, c.moeIntermediateSize, init))));
    this.shared_experts = c.nSharedExperts > 0 ? this.child('shared_experts', new SwiGLU(c.hiddenSize, c.moeIntermediateSize * c.nSharedExperts, init)) : null;
    this.load = new Float64Array(c.nRoutedExperts);
  }

  /** x [B, S, hidden] -> [B, S, hidden]. Returns the routing too (for tests and statistics). */
  forwardRouted(x: Tensor, balanceAlpha = 0): { out: Tensor; routing: Routing } {
    const [B, S, D] = x.shape as [number, number, number];
    const K = this.c.numExpertsPerTok;
    const flat = x.reshape(B * S, D);
    const routing = this.gate.route(flat);
    const idx = routing.indices.toArray() as Int32Array;
    this.routingLog?.push(idx.slice());
    // Group (token, slot) pairs by expert (a counting sort): each expert runs one GEMM over exactly its tokens.
    const E = this.c.nRoutedExperts;
    const counts = new Array<number>(E).fill(0);
    for (let p = 0; p < idx.length; p++) counts[idx[p]!]!++;
    if (this.training) for (let e = 0; e < E; e++) this.load[e]! += counts[e]!;
    const start = new Int32Array(E);
    for (let e = 1; e < E; e++) start[e] = start[e - 1]! + counts[e - 1]!;
    const order = new Int32Array(idx.length);
    for (let p = 0; p < idx.length; p++) order[start[idx[p]!]!++] = p;
    const tokOf = T.fromArray(Int32Array.from(order, (p) => Math.floor(p / K)), [order.length]);
    const wSorted = T.indexSelect(routing.weights.reshape(B * S * K), 0, T.fromArray(order, [order.length]));
    const experts = this.experts.items;
    let ys: Tensor;
    if (experts.every((m) => !m.gate_proj.impl && !m.up_proj.impl && !m.down_proj.impl)) {
      // One gather of every routed row, one fused op for all experts, one scatter back.
      ys = T.groupedSwiGLU(T.indexSelect(flat, 0, tokOf), wSorted, counts,
        experts.map((m) => m.gate_proj.weight), experts.map((m) => m.up_proj.weight), experts.map((m) => m.down_proj.weight));
    } else {
      // Experts with another Linear implementation (FP8 training, packed inference weights) run as modules.
      const xs = T.indexSelect(flat, 0, tokOf);
      const parts: Tensor[] = [];
      let o = 0;
      for (let e = 0; e < E; e++) {
        const n = counts[e]!;
        if (n) parts.push(experts[e]!.forward(xs.narrow(0, o, n)));
        o += n;
      }
      ys = T.cat(parts, 0).mul(wSorted.reshape(order.length, 1));
    }
    let y = T.indexAdd(T.zeros([B * S, D], x.dtype), 0, tokOf, ys);
    if (this.shared_experts) y = y.add(this.shared_experts.forward(flat));
    this.balanceLoss = balanceAlpha > 0 ? this.sequenceBalanceLoss(routing, B, S, balanceAlpha) : null;
    return { out: y.reshape(B, S, D), routing };
  }

  forward(x: Tensor, balanceAlpha = 0): Tensor {
    return this.forwardRouted(x, balanceAlpha).out;
  }

  /**
   * V3 eq. 17-20: L = alpha * sum_i f_i P_i per sequence, f_i = E/(K S) * #tokens choosing i,
   * P_i = mean over the sequence of s_{i,t} / sum_j s_{j,t}; averaged over the batch.
   */
  private sequenceBalanceLoss(r: Routing, B: number, S: number, alpha: number): Tensor {
    const E = this.c.nRoutedExperts;
    const K = this.c.numExpertsPerTok;
    const idx = r.indices.toArray() as Int32Array;
    const f = new Float32Array(B * E);
    for (let t = 0; t < B * S; t++) for (let j = 0; j < K; j++) f[Math.floor(t / S) * E + idx[t * K + j]!]! += E / (K * S);
    const sn = r.scores.div(r.scores.sum(-1, true)).reshape(B, S, E);
    const P = sn.mean(1); // [B, E]
    const fx = r.scores.dtype === 'f64' ? T.tensor(Array.from(f), { shape: [B, E], dtype: 'f64' }) : T.fromArray(f, [B, E]);
    return P.mul(fx).sum().mul(alpha / B);
  }

  /** Aux-loss-free balancing (V3 2.1.2): b_i += gamma * sign(mean load - load_i); then reset the counts. */
  updateBias(gamma: number): void {
    const b = this.gate.e_score_correction_bias;
    if (!b) return;
    const mean = this.load.reduce((a, v) => a + v, 0) / this.load.length;
    const arr = b.raw as Float32Array;
    for (let i = 0; i < this.load.length; i++) arr[b.offset + i]! += gamma * Math.sign(mean - this.load[i]!);
    this.load.fill(0);
  }
}

export class DeepseekDecoderLayer extends Module {
  readonly self_attn: MLA;
  readonly mlp: SwiGLU | MoE;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(c: DeepseekConfig, readonly layerIndex: number, init: InitOptions | 'empty') {
    super();
    this.self_attn = this.child('self_attn', new MLA(c, init));
    this.mlp = this.child('mlp', isMoeLayer(c, layerIndex) ? new MoE(c, init) : new SwiGLU(c.hiddenSize, c.intermediateSize, init));
    this.input_layernorm = this.child('input_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
    this.post_attention_layernorm = this.child('post_attention_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
  }
  forward(x: Tensor, r: RopeCtx, opts: { absorbed?: boolean; past?: MLACache | null; balanceAlpha?: number } = {}): { out: Tensor; cache: MLACache | null } {
    const hn = this.input_layernorm.forward(x);
    let a: Tensor;
    let cache: MLACache | null = null;
    if (opts.absorbed) {
      const res = this.self_attn.forwardAbsorbed(hn, r, opts.past);
      a = res.out;
      cache = res.cache;
    } else a = this.self_attn.forward(hn, r);
    const h = x.add(a);
    const m = this.post_attention_layernorm.forward(h);
    const y = this.mlp instanceof MoE ? this.mlp.forward(m, opts.balanceAlpha ?? 0) : this.mlp.forward(m);
    return { out: h.add(y), cache };
  }
  forwardSegments(x: Tensor, r: RopeCtx, segs: readonly { length: number; past: MLARows | null }[]): { out: Tensor; caches: MLARows[] } {
    const a = this.self_attn.forwardSegments(this.input_layernorm.forward(x), r, segs);
    const h = x.add(a.out);
    const m = this.post_attention_layernorm.forward(h);
    return { out: h.add(this.mlp.forward(m)), caches: a.caches };
  }
}

/** One MTP module (V3 2.2), stored as model.layers.<num_hidden_layers + d>.* in HF checkpoints. */
export class MTPLayer extends DeepseekDecoderLayer {
  readonly enorm: RMSNorm;
  readonly hnorm: RMSNorm;
  readonly eh_proj: Linear;
  readonly shared_head: SharedHead;
  constructor(c: DeepseekConfig, layerIndex: number, init: InitOptions | 'empty') {
    super(c, layerIndex, init);
    this.enorm = this.child('enorm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
    this.hnorm = this.child('hnorm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
    this.eh_proj = this.child('eh_proj', new Linear(2 * c.hiddenSize, c.hiddenSize, false, init));
    this.shared_head = this.child('shared_head', new SharedHead(c, init));
  }
}

class SharedHead extends Module {
  readonly norm: RMSNorm;
  constructor(c: DeepseekConfig, init: InitOptions | 'empty') {
    super();
    this.norm = this.child('norm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
  }
}

class DeepseekBody extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<DeepseekDecoderLayer>;
  readonly norm: RMSNorm;
  constructor(c: DeepseekConfig, init: InitOptions | 'empty', withMtp: boolean) {
    super();
    this.embed_tokens = this.child('embed_tokens', new Embedding(c.vocabSize, c.hiddenSize, init));
    const layers: DeepseekDecoderLayer[] = [];
    for (let i = 0; i < c.numHiddenLayers; i++) layers.push(new DeepseekDecoderLayer(c, i, init));
    if (withMtp) for (let d = 0; d < c.numNextnPredictLayers; d++) layers.push(new MTPLayer(c, c.numHiddenLayers + d, init));
    this.layers = this.child('layers', new ModuleList(layers));
    this.norm = this.child('norm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
  }
}

export interface DeepseekForward {
  logits: Tensor;
  /** Final hidden states before the last norm [B, S, hidden]. */
  hidden: Tensor;
  /** MTP logits per depth d: [B, S - 1 - d, vocab], predicting token t + 2 + d at position t. */
  mtpLogits: Tensor[];
  cache: (MLACache | null)[];
}

export class DeepseekV3ForCausalLM extends Module {
  readonly model: DeepseekBody;
  readonly lm_head: Linear;
  readonly cos: Tensor;
  readonly sin: Tensor;
  readonly mtpDepth: number;
  constructor(readonly config: DeepseekConfig, opts: BuildOptions & { mtp?: boolean } = {}) {
    super();
    const init = initOptions(config, opts);
    this.mtpDepth = opts.mtp === false ? 0 : config.numNextnPredictLayers;
    this.model = this.child('model', new DeepseekBody(config, init, this.mtpDepth > 0));
    this.lm_head = this.child('lm_head', new Linear(config.hiddenSize, config.vocabSize, false, init));
    const P = opts.maxPositions ?? Math.min(config.maxPositionEmbeddings, 4096);
    const t = ropeTables(config.qkRopeHeadDim, config.ropeTheta, config.ropeScaling, P, opts.dtype ?? 'f32');
    this.cos = t.cos;
    this.sin = t.sin;
  }

  get mainLayers(): DeepseekDecoderLayer[] {
    return this.model.layers.items.slice(0, this.config.numHiddenLayers);
  }
  get mtpLayers(): MTPLayer[] {
    return this.model.layers.items.slice(this.config.numHiddenLayers) as MTPLayer[];
  }
  moeLayers(): MoE[] {
    return this.model.layers.items.map((l) => l.mlp).filter((m): m is MoE => m instanceof MoE);
  }

  /** ids [B, S] -> logits (and MTP logits when the model has MTP modules and opts.mtp is not false). */
  forward(ids: Tensor, opts: { absorbed?: boolean; past?: (MLACache | null)[] | null; mtp?: boolean; balanceAlpha?: number } = {}): DeepseekForward {
    if (ids.ndim !== 2) throw new ShapeError(`deepseek_v3: input ids must be [batch, seq], got ${ids.describe()}`);
    const [B, S] = ids.shape as [number, number];
    const start = opts.past?.[0] ? opts.past[0].kv.shape[2]! : 0;
    if (start + S > this.cos.shape[0]!) throw new ShapeError(`deepseek_v3: positions up to ${start + S} exceed the RoPE table (${this.cos.shape[0]})`);
    const r: RopeCtx = { cos: this.cos, sin: this.sin, positions: arange(start, start + S) };
    let x = this.model.embed_tokens.forward(ids);
    const cache: (MLACache | null)[] = [];
    this.mainLayers.forEach((layer, i) => {
      const res = layer.forward(x, r, { absorbed: opts.absorbed, past: opts.past?.[i] ?? null, balanceAlpha: opts.balanceAlpha });
      x = res.out;
      cache.push(res.cache);
    });
    const normed = this.model.norm.forward(x);
    const logits = this.lm_head.forward(normed);
    const mtpLogits: Tensor[] = [];
    if (opts.mtp !== false && this.mtpDepth > 0 && S > 1) {
      // The first MTP depth reads the main model's final (normed) hidden state, as vLLM/SGLang/Megatron
      // feed the released weights; concat order is [embedding ; hidden] (eh_proj).
      let h = normed;
      this.mtpLayers.forEach((m, d) => {
        const n = S - 1 - d;
        if (n <= 0) return;
        // Depth d+1 combines h_t (from depth d) with the embedding of token t + d + 1.
        const hPrev = h.narrow(1, 0, n);
        const nextIds = ids.narrow(1, d + 1, n).contiguous();
        const e = m.enorm.forward(this.model.embed_tokens.forward(nextIds));
        const hin = m.eh_proj.forward(T.cat([e, m.hnorm.forward(hPrev)], 2));
        const rr: RopeCtx = { cos: this.cos, sin: this.sin, positions: arange(0, n) };
        const out = m.forward(hin, rr, { balanceAlpha: opts.balanceAlpha }).out;
        mtpLogits.push(this.lm_head.forward(m.shared_head.norm.forward(out)));
        h = out;
      });
    }
    return { logits, hidden: x, mtpLogits, cache };
  }

  /**
   * Inference on a ragged batch with the absorbed MLA cache: each segment's new tokens continue its own
   * cache (one MLARows per main layer). Returns logits [R, vocab] for each segment's last token (every
   * token with all = true), the final hidden rows (pre-norm, for MTP drafting) and the extended caches.
   */
  forwardSegments(segs: readonly SegmentInput<MLARows[]>[], all = false, cacheDtype?: CacheDtype): { logits: Tensor; hidden: Tensor; caches: MLARows[][] } {
    const p = packSegments(segs, this.cos.shape[0]!, this.config.vocabSize, 'deepseek_v3', all);
    const r: RopeCtx = { cos: this.cos, sin: this.sin, positions: p.positions, cacheDtype };
    let x = this.model.embed_tokens.forward(p.ids);
    const caches: MLARows[][] = segs.map(() => []);
    this.mainLayers.forEach((layer, li) => {
      const res = runLayer(x, () => layer.forwardSegments(x, r, segs.map((s) => ({ length: s.ids.length, past: s.past?.[li] ?? null }))));
      x = res.out;
      res.caches.forEach((kv, i) => caches[i]!.push(kv));
    });
    const hidden = T.indexSelect(x.reshape(p.N, this.config.hiddenSize), 0, p.rows);
    return { logits: this.lm_head.forward(this.model.norm.forward(hidden)), hidden, caches };
  }

  /** Apply the aux-loss-free bias update to every MoE layer (call after each optimizer step). */
  updateRoutingBias(gamma = 0.001): void {
    noGrad(() => { for (const m of this.moeLayers()) m.updateBias(gamma); });
  }

  override dispose(): void {
    super.dispose();
    keep(this.cos).dispose();
    keep(this.sin).dispose();
  }
}
