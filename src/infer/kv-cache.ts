/**
 * Per-sequence KV caches and the model runner the generation engine drives.
 * - Dense family (Qwen2/Llama): per layer the rotated keys and the values, [1, kv_heads, S, head_dim] each.
 * - DeepSeek-V3: per layer the absorbed MLA cache [1, 1, S, kv_lora_rank + qk_rope_head_dim] — only the
 *   normalised latent and the shared RoPE key (576 values per token per layer for V3).
 * The runner packs several sequences' new tokens into one ragged batch (prefill chunks and single decode
 * tokens together), so weights are streamed once per step for the whole batch.
 */
import { Tensor, tidy, keep, noGrad, alias } from '../tensor/index.js';
import type { KVPair } from '../nn/attention.js';
import type { MLACache } from '../models/deepseek-v3.js';
import { DeepseekV3ForCausalLM } from '../models/deepseek-v3.js';
import type { CausalLM } from '../models/load.js';
import type { ModelConfig } from '../models/config.js';

type LayerCache = KVPair | MLACache;

/** Every tensor object a layer cache holds (views and their buffers): kept and disposed together. */
function tensorsOf(c: LayerCache): Tensor[] {
  const out = 'kv' in c ? [c.kv, c.kvBuf] : [c.k, c.v, c.kBuf, c.vBuf];
  return out.filter((t): t is Tensor => !!t);
}
/** The cached values themselves (views only). */
function valuesOf(c: LayerCache): Tensor[] {
  return 'kv' in c ? [c.kv] : [c.k, c.v];
}

export class SequenceCache {
  /** Tokens whose keys/values are cached. */
  length = 0;
  layers: LayerCache[] | null = null;

  /** Values held per token (all layers): the figure the MLA design minimises. */
  valuesPerToken(): number {
    if (!this.layers || this.length === 0) return 0;
    let n = 0;
    for (const c of this.layers) for (const t of valuesOf(c)) n += t.size;
    return n / this.length;
  }
  /** Bytes of the cached values (spare rows of the buffers not counted). */
  bytes(): number {
    if (!this.layers) return 0;
    let n = 0;
    for (const c of this.layers) for (const t of valuesOf(c)) n += t.size * (t.dtype === 'f64' ? 8 : 4);
    return n;
  }
  /** Take ownership of the extended cache and release the old one. */
  replace(layers: LayerCache[], length: number): void {
    for (const c of layers) for (const t of tensorsOf(c)) keep(t);
    const old = this.layers;
    this.layers = layers;
    this.length = length;
    if (old) for (const c of old) for (const t of tensorsOf(c)) t.dispose();
  }
  /** Drop cached tokens beyond `length` (speculative decoding rejects drafted tokens this way). */
  truncate(length: number): void {
    if (length >= this.length) return;
    if (!this.layers || length <= 0) { this.dispose(); return; }
    // Shorter views of the same buffers (later steps overwrite the dropped rows in place).
    const cut = (t: Tensor) => t.narrow(2, 0, length);
    const same = (t: Tensor | null | undefined) => (t ? alias(t) : null);
    const layers = this.layers.map((c): LayerCache => ('kv' in c
      ? { kv: cut(c.kv), kvBuf: same(c.kvBuf) }
      : { k: cut(c.k), v: cut(c.v), kBuf: same(c.kBuf), vBuf: same(c.vBuf) }));
    this.replace(layers, length);
  }

  dispose(): void {
    if (this.layers) for (const c of this.layers) for (const t of tensorsOf(c)) t.dispose();
    this.layers = null;
    this.length = 0;
  }
}

export interface StepInput {
  ids: ArrayLike<number>;
  cache: SequenceCache;
}

/** Runs a model on ragged batches with caches; no autograd, no leaked tensors. */
export class ModelRunner {
  readonly config: ModelConfig;
  constructor(readonly model: CausalLM) {
    this.config = model.config;
    model.eval();
  }
  /** The longest sequence the model's RoPE table covers. */
  get contextLength(): number {
    return this.model.cos.shape[0]!;
  }
  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /**
   * Feed each input's new tokens after its cache; returns the logits of each input's last token
   * (or of every token, per input, with all = true) and extends the caches in place.
   */
  step(inputs: readonly StepInput[], all = false): Float32Array[][] {
    const V = this.vocabSize;
    return noGrad(() => tidy(() => {
      const segs = inputs.map((s) => ({ ids: s.ids, past: (s.cache.layers ?? null) as never, pastLength: s.cache.length }));
      const r = this.model instanceof DeepseekV3ForCausalLM ? this.model.forwardSegments(segs, all) : this.model.forwardSegments(segs, all);
      const logits = r.logits.dtype === 'f32' ? (r.logits.toArray() as Float32Array) : Float32Array.from(r.logits.toArray() as Float64Array);
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
}
