/**
 * Per-sequence KV caches and the model runner the generation engine drives.
 * - Dense family (Qwen2/Llama): per layer the rotated keys and the values, [1, kv_heads, S, head_dim] each.
 * - DeepSeek-V3: per layer the absorbed MLA cache [1, 1, S, kv_lora_rank + qk_rope_head_dim] — only the
 *   normalised latent and the shared RoPE key (576 values per token per layer for V3).
 * The runner packs several sequences' new tokens into one ragged batch (prefill chunks and single decode
 * tokens together), so weights are streamed once per step for the whole batch.
 *
 * Cache element type (ModelRunner option kvCache): 'f32', or 'bf16' (2 bytes per value: new rows are rounded to
 * nearest even once, on the append, and read back exactly, so attention streams half the bytes); 'auto' (default)
 * picks the model's weight precision as vLLM's kv_cache_dtype=auto does: bf16 when the model's layers are packed
 * to bf16 or fp8 (src/nn/packed-weights.ts; f32 weights in panels keep f32), else the model's own dtype. llama.cpp's
 * default is an F16 cache.
 */
import { Tensor, tidy, keep, noGrad } from '../tensor/index.js';
import type { CacheDtype, KVRows } from '../nn/attention.js';
import type { MLARows } from '../models/deepseek-v3.js';
import { DeepseekV3ForCausalLM } from '../models/deepseek-v3.js';
import type { CausalLM } from '../models/load.js';
import type { ModelConfig } from '../models/config.js';
import { hasRoundedWeights } from '../nn/packed-weights.js';
import { ITEM_SIZE } from '../tensor/dtype.js';
import { UsageError } from '../errors.js';

type LayerCache = KVRows | MLARows;

/** The buffers a layer cache holds (kept while the sequence lives). */
function buffersOf(c: LayerCache): Tensor[] {
  return 'kvBuf' in c ? [c.kvBuf] : [c.kBuf, c.vBuf];
}

export class SequenceCache {
  /** Tokens whose keys/values are cached. */
  length = 0;
  /** Per layer: the cache buffers and the rows in use (a new object each step; the buffers are reused). */
  layers: LayerCache[] | null = null;

  /** Values held per token (all layers): the figure the MLA design minimises. */
  valuesPerToken(): number {
    if (!this.layers || this.length === 0) return 0;
    let n = 0;
    for (const c of this.layers) for (const b of buffersOf(c)) n += b.shape[1]! * b.shape[3]!;
    return n;
  }
  /** Bytes of the cached values (spare rows of the buffers not counted). */
  bytes(): number {
    if (!this.layers) return 0;
    let n = 0;
    for (const c of this.layers) for (const b of buffersOf(c)) n += c.len * b.shape[1]! * b.shape[3]! * ITEM_SIZE[b.dtype];
    return n;
  }
  /** Take ownership of the extended cache: keep its buffers, dispose the old ones it no longer uses. */
  replace(layers: LayerCache[], length: number): void {
    const old = this.layers;
    const live = new Set<Tensor>();
    for (const c of layers) for (const b of buffersOf(c)) { keep(b); live.add(b); }
    this.layers = layers;
    this.length = length;
    if (old) for (const c of old) for (const b of buffersOf(c)) if (!live.has(b)) b.dispose();
  }
  /** Drop cached tokens beyond `length` (speculative decoding rejects drafted tokens this way; later steps overwrite
   * the dropped rows in place). */
  truncate(length: number): void {
    if (length >= this.length) return;
    if (!this.layers || length <= 0) { this.dispose(); return; }
    this.layers = this.layers.map((c): LayerCache => ({ ...c, len: length }));
    this.length = length;
  }

  dispose(): void {
    if (this.layers) for (const c of this.layers) for (const b of buffersOf(c)) b.dispose();
    this.layers = null;
    this.length = 0;
  }
}

export interface StepInput {
  ids: ArrayLike<number>;
  cache: SequenceCache;
}

/** Values of a --kv-cache flag. */
export type KvCacheOption = 'auto' | 'f32' | 'bf16';
export const KV_CACHE_OPTIONS: readonly KvCacheOption[] = ['auto', 'f32', 'bf16'];
export function parseKvCache(s: string, where = '--kv-cache'): KvCacheOption {
  if ((KV_CACHE_OPTIONS as readonly string[]).includes(s)) return s as KvCacheOption;
  throw new UsageError(`${where} must be one of ${KV_CACHE_OPTIONS.join(', ')}, got '${s}'`);
}

/** Runs a model on ragged batches with caches; no autograd, no leaked tensors. */
export class ModelRunner {
  readonly config: ModelConfig;
  /** Element type of the caches this runner creates. */
  readonly cacheDtype: CacheDtype;
  constructor(readonly model: CausalLM, opts: { kvCache?: KvCacheOption } = {}) {
    this.config = model.config;
    model.eval();
    const want = opts.kvCache ?? 'auto';
    const own = model.model.embed_tokens.weight.dtype === 'f64' ? 'f64' : 'f32';
    this.cacheDtype = want === 'auto' ? (hasRoundedWeights(model) ? 'bf16' : own) : want;
  }
  /** The longest sequence the model's RoPE table covers. */
  get contextLength(): number {
    return this.model.cos.shape[0]!;
  }
  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** The logits tensor lent by the last step({ borrow: true }), until releaseLogits() or the next step. */
  private lent: Tensor | null = null;

  /**
   * Feed each input's new tokens after its cache; returns the logits of each input's last token
   * (or of every token, per input, with all = true) and extends the caches in place.
   * borrow: the rows are views of the logits tensor itself, not a copy (S1 at batch 16: 16 x 152K values, ~2 ms a
   * step to copy), valid until releaseLogits() or the next step; the generation engine samples from them and
   * releases them at once, so the buffer goes back to the pool for the next step.
   */
  step(inputs: readonly StepInput[], all = false, opts: { borrow?: boolean } = {}): Float32Array[][] {
    const V = this.vocabSize;
    this.releaseLogits();
    return noGrad(() => tidy(() => {
      const segs = inputs.map((s) => ({ ids: s.ids, past: (s.cache.layers ?? null) as never, pastLength: s.cache.length }));
      const r = this.model instanceof DeepseekV3ForCausalLM ? this.model.forwardSegments(segs, all, this.cacheDtype) : this.model.forwardSegments(segs, all, this.cacheDtype);
      let logits: Float32Array;
      if (opts.borrow && r.logits.dtype === 'f32' && r.logits.isContiguous()) {
        this.lent = keep(r.logits);
        logits = (r.logits.raw as Float32Array).subarray(r.logits.offset, r.logits.offset + r.logits.size);
      } else logits = r.logits.dtype === 'f32' ? (r.logits.toArray() as Float32Array) : Float32Array.from(r.logits.toArray() as Float64Array);
      r.caches.forEach((c, i) => inputs[i]!.cache.replace(c, inputs[i]!.cache.length + inputs[i]!.ids.length));
      const out: Float32Array[][] = [];
      let row = 0;
      for (const s of inputs) {
        const n = all ? s.ids.length : 1;
        const rows: Float32Array[] = [];
        for (let j = 0; j < n; j++, row++) rows.push(logits.subarray(row * V, (row + 1) * V));
        out.push(rows);
      }
      return out;
    }));
  }

  /** Give back the logits a step({ borrow: true }) lent (their rows must not be read afterwards). */
  releaseLogits(): void {
    this.lent?.dispose();
    this.lent = null;
  }
}
