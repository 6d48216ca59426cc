/**
 * The dense decoder family: Llama and Qwen2 (Qwen2 = Llama + q/k/v bias). Reads like HF's
 * modeling_llama.py: embed -> N x [RMSNorm -> GQA attention (rotate-half RoPE) -> residual ->
 * RMSNorm -> SwiGLU -> residual] -> RMSNorm -> lm_head (tied to the embedding when configured).
 * Parameter paths are the HF tensor names.
 */
import { Tensor, arange, Rng, keep } from '../tensor/index.js';
import type { DType } from '../tensor/index.js';
import { Module, ModuleList, dtypeOf, type InitOptions } from '../nn/module.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { RMSNorm } from '../nn/norm.js';
import { SwiGLU } from '../nn/mlp.js';
import { GQAttention, type CacheDtype, type KVPair, type KVRows } from '../nn/attention.js';
import { ropeTables } from '../nn/rope.js';
import type { DenseConfig } from './config.js';
import { ShapeError } from '../errors.js';
import * as T from '../tensor/index.js';
import { packSegments, runLayer, type SegmentInput } from './segments.js';

export interface BuildOptions {
  /** 'random' initialises like HF (normal(0, initializer_range)); 'empty' allocates zeros for loading. */
  init?: 'random' | 'empty';
  seed?: number;
  dtype?: DType;
  /** Positions the RoPE table covers (default: min(max_position_embeddings, 4096)). */
  maxPositions?: number;
}

export function initOptions(c: { initializerRange: number }, opts: BuildOptions): InitOptions | 'empty' {
  if (opts.init === 'empty') return 'empty';
  return { rng: new Rng(opts.seed ?? 0), std: c.initializerRange, dtype: opts.dtype ?? 'f32' };
}

export class DenseDecoderLayer extends Module {
  readonly self_attn: GQAttention;
  readonly mlp: SwiGLU;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(c: DenseConfig, init: InitOptions | 'empty') {
    super();
    this.self_attn = this.child('self_attn', new GQAttention(c.hiddenSize, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.attentionBias, init));
    this.mlp = this.child('mlp', new SwiGLU(c.hiddenSize, c.intermediateSize, init));
    this.input_layernorm = this.child('input_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
    this.post_attention_layernorm = this.child('post_attention_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
  }
  forward(x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, past?: KVPair | null): { out: Tensor; present: KVPair } {
    const a = this.self_attn.forward(this.input_layernorm.forward(x), { cos, sin, positions }, past);
    const h = x.add(a.out);
    return { out: h.add(this.mlp.forward(this.post_attention_layernorm.forward(h))), present: a.present };
  }
  forwardSegments(x: Tensor, ctx: { cos: Tensor; sin: Tensor; positions: Tensor; cacheDtype?: CacheDtype }, segs: readonly { length: number; past: KVRows | null }[]): { out: Tensor; present: KVRows[] } {
    const a = this.self_attn.forwardSegments(this.input_layernorm.forward(x), ctx, segs);
    const h = x.add(a.out);
    return { out: h.add(this.mlp.forward(this.post_attention_layernorm.forward(h))), present: a.present };
  }
}

class DenseBody extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<DenseDecoderLayer>;
  readonly norm: RMSNorm;
  constructor(c: DenseConfig, init: InitOptions | 'empty') {
    super();
    this.embed_tokens = this.child('embed_tokens', new Embedding(c.vocabSize, c.hiddenSize, init));
    this.layers = this.child('layers', new ModuleList(Array.from({ length: c.numHiddenLayers }, () => new DenseDecoderLayer(c, init))));
    this.norm = this.child('norm', new RMSNorm(c.hiddenSize, c.rmsNormEps, dtypeOf(init)));
  }
}

export interface ForwardResult {
  logits: Tensor;
  /** Per-layer keys/values including this call's tokens (for incremental decoding). */
  cache: KVPair[];
}

export class DenseCausalLM extends Module {
  readonly model: DenseBody;
  readonly lm_head: Linear | null;
  /** Inference hook for a tied head (no lm_head): when set, it computes the logits instead of n . embed^T
   * (src/nn/packed-weights.ts installs a packed bf16/fp8 copy of the head; the embedding stays f32 for lookups). */
  tiedHeadImpl: ((n: Tensor) => Tensor) | null = null;
  readonly cos: Tensor;
  readonly sin: Tensor;
  constructor(readonly config: DenseConfig, opts: BuildOptions = {}) {
    super();
    const init = initOptions(config, opts);
    this.model = this.child('model', new DenseBody(config, init));
    this.lm_head = config.tieWordEmbeddings ? null : this.child('lm_head', new Linear(config.hiddenSize, config.vocabSize, false, init));
    const P = opts.maxPositions ?? Math.min(config.maxPositionEmbeddings, 4096);
    const t = ropeTables(config.headDim, config.ropeTheta, config.ropeScaling, P, opts.dtype ?? 'f32');
    this.cos = t.cos;
    this.sin = t.sin;
  }

  /** ids [B, S] (i32) -> logits [B, S, vocab]. `past` continues from cached keys/values (positions follow them). */
  forward(ids: Tensor, past?: KVPair[] | null): ForwardResult {
    if (ids.ndim !== 2) throw new ShapeError(`${this.config.modelType}: input ids must be [batch, seq], got ${ids.describe()}`);
    const S = ids.shape[1]!;
    const start = past && past.length ? past[0]!.k.shape[2]! : 0;
    if (start + S > this.cos.shape[0]!) throw new ShapeError(`${this.config.modelType}: positions up to ${start + S} exceed the RoPE table (${this.cos.shape[0]})`);
    const positions = arange(start, start + S);
    let x = this.model.embed_tokens.forward(ids);
    const cache: KVPair[] = [];
    this.model.layers.items.forEach((layer, i) => {
      const r = layer.forward(x, this.cos, this.sin, positions, past?.[i] ?? null);
      x = r.out;
      cache.push(r.present);
    });
    return { logits: this.head(x), cache };
  }

  /** Final norm + output head on hidden rows [R, hidden] -> logits [R, vocab]. */
  head(h: Tensor): Tensor {
    const n = this.model.norm.forward(h);
    if (this.lm_head) return this.lm_head.forward(n);
    return this.tiedHeadImpl ? this.tiedHeadImpl(n) : n.matmul(this.model.embed_tokens.weight.T);
  }

  /**
   * Inference on a ragged batch: each segment's new tokens continue its own cache (one KVRows per layer).
   * Returns logits [R, vocab] for each segment's last token (or every token with all = true) and the
   * extended caches (the same buffers with more rows in use, or larger ones where they were full; the caller keeps
   * the new buffers and disposes the old ones it no longer holds: SequenceCache.replace).
   */
  forwardSegments(segs: readonly SegmentInput<KVRows[]>[], all = false, cacheDtype?: CacheDtype): { logits: Tensor; caches: KVRows[][] } {
    const p = packSegments(segs, this.cos.shape[0]!, this.config.vocabSize, this.config.modelType, all);
    let x = this.model.embed_tokens.forward(p.ids);
    const caches: KVRows[][] = segs.map(() => []);
    const ctx = { cos: this.cos, sin: this.sin, positions: p.positions, cacheDtype };
    this.model.layers.items.forEach((layer, li) => {
      const r = runLayer(x, () => layer.forwardSegments(x, ctx, segs.map((s) => ({ length: s.ids.length, past: s.past?.[li] ?? null }))));
      x = r.out;
      r.present.forEach((kv, i) => caches[i]!.push(kv));
    });
    const rows = T.indexSelect(x.reshape(p.N, this.config.hiddenSize), 0, p.rows);
    return { logits: this.head(rows), caches };
  }

  override dispose(): void {
    super.dispose();
    keep(this.cos).dispose();
    keep(this.sin).dispose();
  }
}
