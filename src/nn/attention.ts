/**
 * Grouped-query self-attention with RoPE (Llama/Qwen2): q/k/v projections (optional bias, Qwen2),
 * rotate-half RoPE on q and k, fused causal attention with KV-head sharing, output projection.
 */
import { Tensor, rope, attention, cat, raggedAttention } from '../tensor/index.js';
import { Module, type InitOptions } from './module.js';
import { Linear } from './linear.js';
import { reserveRows } from './kv-buffer.js';
import { fuseLinears, type FusedPacked } from './packed-weights.js';

/** Per-layer key/value history for incremental decoding through forward ([B, Hkv, S, D] each). */
export interface KVPair { k: Tensor; v: Tensor }
/** A sequence's keys and values for one layer as the inference engine keeps them (forwardSegments): buffers
 * [1, Hkv, capacity, D] whose first `len` rows are in use; later steps append in place (src/nn/kv-buffer.ts). */
export interface KVRows { kBuf: Tensor; vBuf: Tensor; len: number }

export interface AttentionContext {
  cos: Tensor;
  sin: Tensor;
  /** Positions of the tokens in x (length S). */
  positions: Tensor;
  /** Optional additive mask broadcastable to [B, H, S, Skv]. */
  mask?: Tensor | null;
  /** forwardSegments: the dtype of new KV cache buffers (default x's; 'bf16' halves them). A cache keeps its dtype. */
  cacheDtype?: CacheDtype;
}
/** Element types an inference KV cache can have. */
export type CacheDtype = 'f32' | 'f64' | 'bf16';

export class GQAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  constructor(readonly hidden: number, readonly heads: number, readonly kvHeads: number, readonly headDim: number, bias: boolean, init: InitOptions | 'empty') {
    super();
    this.q_proj = this.child('q_proj', new Linear(hidden, heads * headDim, bias, init));
    this.k_proj = this.child('k_proj', new Linear(hidden, kvHeads * headDim, bias, init));
    this.v_proj = this.child('v_proj', new Linear(hidden, kvHeads * headDim, bias, init));
    this.o_proj = this.child('o_proj', new Linear(heads * headDim, hidden, false, init));
  }

  /** q_proj, k_proj and v_proj as one packed product (fuseProjections, after packing; used by forwardSegments, the
   * inference engine's path); null: three products. */
  qkv: FusedPacked | null = null;
  fuseProjections(path: string): boolean {
    this.qkv = fuseLinears([this.q_proj, this.k_proj, this.v_proj], `${path}.q_proj+k_proj+v_proj`);
    return this.qkv !== null;
  }

  /** x [B, S, hidden] -> [B, S, hidden]. With `past`, keys/values are appended to it and the new pair returned in `present`. */
  forward(x: Tensor, ctx: AttentionContext, past?: KVPair | null): { out: Tensor; present: KVPair } {
    const [B, S] = x.shape as [number, number, number];
    const { heads: H, kvHeads: Hkv, headDim: D } = this;
    const q = rope(this.q_proj.forward(x).reshape(B, S, H, D), ctx.cos, ctx.sin, ctx.positions, 'half').transpose(1, 2);
    let k = rope(this.k_proj.forward(x).reshape(B, S, Hkv, D), ctx.cos, ctx.sin, ctx.positions, 'half').transpose(1, 2);
    let v = this.v_proj.forward(x).reshape(B, S, Hkv, D).transpose(1, 2);
    if (past) {
      k = cat([past.k, k], 2);
      v = cat([past.v, v], 2);
    }
    const o = attention(q, k, v, { causal: true, mask: ctx.mask ?? null });
    const out = this.o_proj.forward(o.transpose(1, 2).reshape(B, S, H * D));
    return { out, present: { k, v } };
  }

  /**
   * Ragged batch (inference): x [1, N, hidden] holds several sequences' new tokens back to back
   * (`segments[i].length` tokens each, ctx.positions per token). Projections run once over all N tokens; one
   * raggedAttention call appends every segment's keys/values to its own cache and attends. Returns each segment's
   * extended cache.
   */
  forwardSegments(x: Tensor, ctx: AttentionContext, segments: readonly { length: number; past: KVRows | null }[]): { out: Tensor; present: KVRows[] } {
    const N = x.shape[1]!;
    const { heads: H, kvHeads: Hkv, headDim: D } = this;
    const [yq, yk, yv] = this.qkv && !this.training && this.qkv.serves(x) ? this.qkv.apply(x) : [this.q_proj.forward(x), this.k_proj.forward(x), this.v_proj.forward(x)];
    const q = rope(yq!.reshape(1, N, H, D), ctx.cos, ctx.sin, ctx.positions, 'half');
    const k = rope(yk!.reshape(1, N, Hkv, D), ctx.cos, ctx.sin, ctx.positions, 'half');
    const v = yv!.reshape(1, N, Hkv, D);
    const cd = ctx.cacheDtype ?? x.dtype;
    const kb = segments.map((s) => reserveRows(s.past ? { buf: s.past.kBuf, len: s.past.len } : null, s.length, Hkv, D, cd));
    const vb = segments.map((s) => reserveRows(s.past ? { buf: s.past.vBuf, len: s.past.len } : null, s.length, Hkv, D, cd));
    // One call for all sequences: appends each one's new rows to its cache and attends (token-major in and out).
    const o = raggedAttention(q.reshape(N, H, D), k.reshape(N, Hkv, D), v.reshape(N, Hkv, D),
      segments.map((s, i) => ({ length: s.length, past: kb[i]!.len, k: kb[i]!.buf, v: vb[i]!.buf })));
    const present = segments.map((s, i) => ({ kBuf: kb[i]!.buf, vBuf: vb[i]!.buf, len: kb[i]!.len + s.length }));
    return { out: this.o_proj.forward(o.reshape(1, N, H * D)), present };
  }
}
