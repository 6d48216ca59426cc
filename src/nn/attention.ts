/**
 * Grouped-query self-attention with RoPE (Llama/Qwen2): q/k/v projections (optional bias, Qwen2),
 * rotate-half RoPE on q and k, fused causal attention with KV-head sharing, output projection.
 */
import { Tensor, rope, attention, cat } from '../tensor/index.js';
import { Module, type InitOptions } from './module.js';
import { Linear } from './linear.js';
import { appendRows } from './kv-buffer.js';

/**
 * Per-layer key/value history for incremental decoding ([B, Hkv, S, D] each). From forwardSegments (the inference
 * engine) k and v are views of buffers with spare rows (kBuf, vBuf; src/nn/kv-buffer.ts) that later steps extend in
 * place.
 */
export interface KVPair { k: Tensor; v: Tensor; kBuf?: Tensor | null; vBuf?: Tensor | null }

export interface AttentionContext {
  cos: Tensor;
  sin: Tensor;
  /** Positions of the tokens in x (length S). */
  positions: Tensor;
  /** Optional additive mask broadcastable to [B, H, S, Skv]. */
  mask?: Tensor | null;
}

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
   * (`segments[i].length` tokens each, ctx.positions per token). Projections run once over all N tokens;
   * attention runs per segment against that sequence's own cache. Returns each segment's extended cache.
   */
  forwardSegments(x: Tensor, ctx: AttentionContext, segments: readonly { length: number; past: KVPair | null }[]): { out: Tensor; present: KVPair[] } {
    const N = x.shape[1]!;
    const { heads: H, kvHeads: Hkv, headDim: D } = this;
    const q = rope(this.q_proj.forward(x).reshape(1, N, H, D), ctx.cos, ctx.sin, ctx.positions, 'half').transpose(1, 2);
    const k = rope(this.k_proj.forward(x).reshape(1, N, Hkv, D), ctx.cos, ctx.sin, ctx.positions, 'half').transpose(1, 2);
    const v = this.v_proj.forward(x).reshape(1, N, Hkv, D).transpose(1, 2);
    const outs: Tensor[] = [];
    const present: KVPair[] = [];
    let off = 0;
    for (const s of segments) {
      const p = s.past;
      const kr = appendRows(p ? { view: p.k, buf: p.kBuf ?? null } : null, k.narrow(2, off, s.length));
      const vr = appendRows(p ? { view: p.v, buf: p.vBuf ?? null } : null, v.narrow(2, off, s.length));
      outs.push(attention(q.narrow(2, off, s.length), kr.view, vr.view, { causal: true }));
      present.push({ k: kr.view, v: vr.view, kBuf: kr.buf, vBuf: vr.buf });
      off += s.length;
    }
    const o = outs.length === 1 ? outs[0]! : cat(outs, 2);
    return { out: this.o_proj.forward(o.transpose(1, 2).reshape(1, N, H * D)), present };
  }
}
