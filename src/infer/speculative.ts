/**
 * MTP speculative decoding (DeepSeek-V3 section 2.2 / 5.4.3): the model's own multi-token-prediction module
 * drafts the token after next, the main model verifies it in the same pass that produces the next token.
 *
 * Greedy, one sequence. State after n tokens: the main cache holds tokens 0..n-1 and x_n (the argmax at
 * position n-1) is known; the MTP module has consumed (h_t, x_{t+1}) for t < n-1 (h = the main model's final
 * normed hidden state, as in training). Each iteration:
 *   1. draft: feed the pending (h_t, x_{t+1}) pairs to the MTP block (with its own absorbed-MLA cache);
 *      its last logits give the draft d for position n+1;
 *   2. verify: run the main model on [x_n, d]; y = argmax at position n. If y == d both tokens are accepted
 *      and the argmax at n+1 is the next token; otherwise d is dropped from the cache and y is next.
 * Every emitted token is an argmax of the main model over accepted tokens, so the output equals plain
 * greedy decoding; each accepted draft saves one main-model pass.
 */
import * as T from '../tensor/index.js';
import { tidy, noGrad } from '../tensor/index.js';
import { DeepseekV3ForCausalLM, type MLARows } from '../models/deepseek-v3.js';
import { SequenceCache } from './kv-cache.js';
import { UsageError } from '../errors.js';

export interface SpeculativeResult {
  tokens: number[];
  finishReason: 'stop' | 'length';
  /** Drafts proposed and drafts accepted (acceptance rate = accepted / drafted). */
  drafted: number;
  accepted: number;
  /** Main-model passes after the prefill (plain greedy needs one per token). */
  mainPasses: number;
}

function argmax(a: ArrayLike<number>, off: number, n: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < n; i++) { const v = a[off + i]!; if (v > bv) { bv = v; best = i; } }
  return best;
}

export function speculativeGreedy(model: DeepseekV3ForCausalLM, prompt: readonly number[], opts: { maxTokens: number; stopTokenIds?: readonly number[] }): SpeculativeResult {
  if (!model.mtpLayers.length) throw new UsageError('speculative decoding needs a DeepSeek-V3 model with MTP weights (num_nextn_predict_layers >= 1, loaded with mtp)');
  if (prompt.length === 0) throw new UsageError('speculative decoding: empty prompt');
  const ctx = model.cos.shape[0]!;
  if (prompt.length >= ctx) throw new UsageError(`speculative decoding: the prompt has ${prompt.length} tokens but the context holds ${ctx}`);
  const maxTokens = Math.min(opts.maxTokens, ctx - prompt.length - 1);
  const stops = new Set(opts.stopTokenIds ?? []);
  const V = model.config.vocabSize;
  const Hd = model.config.hiddenSize;
  const mtp = model.mtpLayers[0]!;
  model.eval();
  const main = new SequenceCache();
  const mtpCache = new SequenceCache();
  const out: number[] = [];
  let drafted = 0, accepted = 0, mainPasses = 0;
  // Pending MTP inputs: normed hidden rows h_t and the token x_{t+1} that follows each.
  let pendH: Float32Array[] = [];
  let pendNext: number[] = [];

  /** Run the main model on `ids` after the cache; returns per-token logits and normed hidden rows. */
  const runMain = (ids: number[]): { logits: Float32Array; hidden: Float32Array } => noGrad(() => tidy(() => {
    const r = model.forwardSegments([{ ids, past: main.layers as MLARows[] | null, pastLength: main.length }], true);
    main.replace(r.caches[0]!, main.length + ids.length);
    return { logits: r.logits.toArray() as Float32Array, hidden: model.model.norm.forward(r.hidden).toArray() as Float32Array };
  }));

  /** Feed the pending (h_t, x_{t+1}) pairs to the MTP block; returns the draft for the position after the last. */
  const draft = (): number => noGrad(() => tidy(() => {
    const k = pendH.length;
    const h = T.fromArray(Float32Array.from(pendH.flatMap((r) => Array.from(r))), [1, k, Hd]);
    const e = mtp.enorm.forward(model.model.embed_tokens.forward(T.fromArray(Int32Array.from(pendNext), [1, k])));
    const x = mtp.eh_proj.forward(T.cat([e, mtp.hnorm.forward(h)], 2));
    const r = { cos: model.cos, sin: model.sin, positions: T.arange(mtpCache.length, mtpCache.length + k) };
    const res = mtp.forwardSegments(x, r, [{ length: k, past: (mtpCache.layers?.[0] as MLARows | undefined) ?? null }]);
    mtpCache.replace(res.caches, mtpCache.length + k);
    const last = res.out.narrow(1, k - 1, 1);
    const lg = model.lm_head.forward(mtp.shared_head.norm.forward(last)).toArray() as Float32Array;
    pendH = [];
    pendNext = [];
    return argmax(lg, 0, V);
  }));

  try {
    const pre = runMain([...prompt]);
    const n0 = prompt.length;
    for (let t = 0; t + 1 < n0; t++) { pendH.push(pre.hidden.slice(t * Hd, (t + 1) * Hd)); pendNext.push(prompt[t + 1]!); }
    let next = argmax(pre.logits, (n0 - 1) * V, V);
    let hLast = pre.hidden.slice((n0 - 1) * Hd, n0 * Hd);
    let finish: 'stop' | 'length' = 'length';
    while (out.length < maxTokens) {
      if (stops.has(next)) { finish = 'stop'; break; }
      pendH.push(hLast);
      pendNext.push(next);
      const d = draft();
      drafted++;
      const v = runMain([next, d]);
      mainPasses++;
      out.push(next);
      const y = argmax(v.logits, 0, V);
      if (y === d && out.length < maxTokens && !stops.has(d)) {
        accepted++;
        out.push(d);
        pendH.push(v.hidden.slice(0, Hd));
        pendNext.push(d);
        next = argmax(v.logits, V, V);
        hLast = v.hidden.slice(Hd, 2 * Hd);
      } else {
        main.truncate(main.length - 1);
        next = y;
        hLast = v.hidden.slice(0, Hd);
      }
    }
    return { tokens: out, finishReason: finish, drafted, accepted, mainPasses };
  } finally {
    main.dispose();
    mtpCache.dispose();
  }
}
