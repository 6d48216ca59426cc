/**
 * Next-token sampling for ONE sequence: logits (a plain Float32Array over the vocabulary) → one token id.
 *
 * The pipeline, in the order vLLM's sampler and Hugging Face's logits processors apply it:
 *   1. repetition penalty (HF `RepetitionPenaltyLogitsProcessor`): for every distinct token in the whole
 *      history (prompt + generated), logit > 0 ? logit / p : logit * p;
 *   2. presence / frequency penalties (OpenAI): logit -= presence * [count > 0] + frequency * count, with
 *      counts over the GENERATED tokens only (vLLM `apply_penalties` uses output tokens for these two);
 *   3. temperature: logit / T; a temperature below 1e-5 means greedy (vLLM's `_SAMPLING_EPS`): argmax,
 *      ties → lowest id, and no random number is drawn;
 *   4. top-k: keep the k largest (ties → lower ids first); k = 0 disables;
 *   5. top-p (nucleus), on the distribution renormalised over what top-k kept: keep the smallest prefix of
 *      the tokens sorted by probability (descending, ties → lower id) whose cumulative probability is
 *      >= p — always at least one token. A relative slack of 1e-9 makes an exact boundary (0.5 + 0.3 at
 *      p = 0.8) count as reached despite rounding;
 *   6. min-p: drop tokens whose probability is < minP * (largest probability). The ratio does not depend
 *      on renormalisation, so it is a threshold on logits: keep logit >= maxLogit + ln(minP) (HF keeps
 *      prob == minP * max too; the same 1e-9 relative slack keeps exact boundaries despite rounding).
 * Then one uniform draw picks a token in proportion to the kept probabilities.
 *
 * History: `sample(logits, history, promptLength)` takes the full token history (prompt followed by the
 * generated tokens) and how many of its first entries are the prompt; history[promptLength..] are the
 * generated tokens. promptLength defaults to 0, i.e. the whole history counts as generated.
 *
 * Returned logprob (the "processed" choice, like vLLM v0 and vLLM v1's `processed_logprobs` mode): the
 * natural log of the chosen token's probability under the FINAL distribution the draw used (after
 * penalties, temperature, top-k, top-p and min-p, renormalised). Greedy has no sampling distribution to
 * speak of (it would be a point mass, logprob 0), so there it is the log-softmax of the penalised logits at
 * temperature 1 with no truncation — the model's own confidence in its argmax (vLLM v0 likewise resets
 * temperature to 1 and disables top-k/top-p/min-p for greedy requests).
 *
 * Defaults: a field left out takes its neutral value (temperature 1, topK 0, topP 1, minP 0, penalties
 * off), as in the OpenAI API. R1_DEFAULTS holds DeepSeek-R1's recommendation; spread it in explicitly.
 * Without a seed the generator is seeded from Math.random, so unseeded requests differ.
 *
 * Speed (vocab ~150k): one pass copies and penalises, one finds the maximum, one sums exponentials. Top-k
 * uses a size-k heap (O(V log k), no full sort); top-p over the whole vocabulary histograms the mass over
 * 4096 logit bins and sorts only the bin where the nucleus ends (O(V) even for flat distributions).
 * Scratch buffers are shared by all samplers (JavaScript runs one call at a time).
 */
import { R1Error, UsageError } from '../errors.js';
import { Rng } from '../tensor/random.js';
import { loadNative } from '../tensor/backends/native.js';

export interface SamplingParams {
  /** Softmax temperature; 0 (or below 1e-5) = greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 0. */
  topK?: number;
  /** Nucleus mass in (0, 1]; 1 = off. Default 1. */
  topP?: number;
  /** Relative probability floor in [0, 1]; 0 = off. Default 0. */
  minP?: number;
  /** HF repetition penalty over prompt + generated tokens, > 0; 1 = off. Default 1. */
  repetitionPenalty?: number;
  /** OpenAI presence penalty in [-2, 2] over generated tokens. Default 0. */
  presencePenalty?: number;
  /** OpenAI frequency penalty in [-2, 2] over generated tokens. Default 0. */
  frequencyPenalty?: number;
  /** Seed for the sequence's own generator: same seed, same logits → same tokens. */
  seed?: number;
}

/** DeepSeek-R1's recommended sampling (model card: temperature 0.5–0.7, 0.6 recommended; top-p 0.95). */
export const R1_DEFAULTS: Readonly<SamplingParams> = Object.freeze({ temperature: 0.6, topP: 0.95 });

/** Temperatures below this are greedy (vLLM's _SAMPLING_EPS). */
export const GREEDY_EPS = 1e-5;

const TOP_P_SLACK = 1e-9;
const MIN_P_SLACK = 1e-9;

/** Throws a UsageError naming the field (`${where}: sampling.topP ...`) for any invalid value. */
export function validateSampling(p: SamplingParams, where: string): void {
  if (p === null || typeof p !== 'object') throw new UsageError(`${where}: sampling must be an object`);
  const num = (field: keyof SamplingParams): number | undefined => {
    const v = p[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new UsageError(`${where}: sampling.${field} must be a finite number, got ${String(v)}`);
    return v;
  };
  const bad = (field: string, rule: string, v: number): never => {
    throw new UsageError(`${where}: sampling.${field} must be ${rule}, got ${v}`);
  };
  const t = num('temperature');
  if (t !== undefined && t < 0) bad('temperature', '>= 0', t);
  const k = num('topK');
  if (k !== undefined && (!Number.isInteger(k) || k < 0)) bad('topK', 'an integer >= 0 (0 = off)', k);
  const tp = num('topP');
  if (tp !== undefined && !(tp > 0 && tp <= 1)) bad('topP', 'in (0, 1]', tp);
  const mp = num('minP');
  if (mp !== undefined && !(mp >= 0 && mp <= 1)) bad('minP', 'in [0, 1]', mp);
  const rp = num('repetitionPenalty');
  if (rp !== undefined && !(rp > 0)) bad('repetitionPenalty', '> 0 (1 = off)', rp);
  const pp = num('presencePenalty');
  if (pp !== undefined && !(pp >= -2 && pp <= 2)) bad('presencePenalty', 'in [-2, 2]', pp);
  const fp = num('frequencyPenalty');
  if (fp !== undefined && !(fp >= -2 && fp <= 2)) bad('frequencyPenalty', 'in [-2, 2]', fp);
  const s = num('seed');
  if (s !== undefined && !Number.isSafeInteger(s)) bad('seed', 'a safe integer', s);
}

/** A greedy pick precomputed by `greedyRows`: the argmax, -logprob and the row's log-sum-exp. */
export interface GreedyPick {
  token: number;
  loss: number;
  lse: number;
}

/**
 * Greedy picks of `rows` logit rows [rows, V] (contiguous) in one native call whose rows are shared among the threads
 * (a batched decode step: 16 rows of 152K logits), for `Sampler.sample(..., pre)`; null without the addon or below
 * the native vocabulary size.
 */
export function greedyRows(block: Float32Array, rows: number, V: number): GreedyPick[] | null {
  const native = V >= NATIVE_LSE_MIN ? loadNative() : null;
  if (!native || block.length !== rows * V) return null;
  const ids = new Int32Array(rows), loss = new Float32Array(rows), lse = new Float32Array(rows);
  native.greedyPick(ids, loss, lse, block, rows, V);
  return Array.from({ length: rows }, (_, i) => ({ token: ids[i]!, loss: loss[i]!, lse: lse[i]! }));
}

/** The final distribution of one step: kept token ids (most likely first) and their log-probabilities. */
export interface SamplingDistribution {
  ids: Int32Array;
  logprobs: Float64Array;
}

// Shared scratch, grown to the largest vocabulary seen.
let work = new Float64Array(0); // processed logits
let lseIn = new Float32Array(0); // greedy logprob through the native log-softmax (large vocabularies)
let lseOut = new Float32Array(0);
const ceLoss = new Float32Array(1), ceLse = new Float32Array(1), ceTarget = new Int32Array(1);
/** Vocabulary size from which the greedy logprob uses the native log-softmax. */
const NATIVE_LSE_MIN = 4096;
let candIds = new Int32Array(0); // candidate ids
let counts = new Int32Array(0); // generated-token counts (penalties)
let seenMark = new Uint8Array(0); // 1 = in history (cleared after use)
let tailIds = new Int32Array(0); // top-p: the tokens of the crossing bin
let wts = new Float64Array(0); // top-p: exp(processed logit)
const binMass = new Float64Array(4096); // top-p: probability mass per logit bin
function ensureScratch(V: number): void {
  if (work.length >= V) return;
  work = new Float64Array(V);
  candIds = new Int32Array(V);
  counts = new Int32Array(V);
  seenMark = new Uint8Array(V);
  tailIds = new Int32Array(V);
  wts = new Float64Array(V);
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly seed: number;
  private readonly rng: Rng;

  constructor(params: SamplingParams = {}) {
    validateSampling(params, 'Sampler');
    this.temperature = params.temperature ?? 1;
    this.topK = params.topK ?? 0;
    this.topP = params.topP ?? 1;
    this.minP = params.minP ?? 0;
    this.repetitionPenalty = params.repetitionPenalty ?? 1;
    this.presencePenalty = params.presencePenalty ?? 0;
    this.frequencyPenalty = params.frequencyPenalty ?? 0;
    this.seed = params.seed ?? Math.floor(Math.random() * 4294967296);
    this.rng = new Rng(this.seed);
  }

  get greedy(): boolean {
    return this.temperature < GREEDY_EPS;
  }

  /**
   * Choose the next token. `history` = prompt tokens then generated tokens; its first `promptLength`
   * entries are the prompt (see the file comment). Draws exactly one uniform number unless greedy. `pre`: this row's
   * pick from `greedyRows` (a batch's rows picked together), used on the plain greedy path instead of picking again.
   */
  sample(logits: Float32Array, history: ArrayLike<number> = [], promptLength = 0, pre?: GreedyPick): { token: number; logprob: number } {
    const fast = this.greedyPlain(logits, history, promptLength, pre);
    if (fast) return fast;
    const n = this.process(logits, history, promptLength);
    const x = work;
    if (n < 0) return this.greedyResult(logits.length);
    // x[candIds[0..n)] hold (logit - max); draw in proportion to exp.
    let total = 0;
    for (let j = 0; j < n; j++) total += Math.exp(x[candIds[j]!]!);
    const u = this.rng.next() * total;
    let acc = 0;
    let pick = candIds[n - 1]!;
    for (let j = 0; j < n; j++) {
      const id = candIds[j]!;
      acc += Math.exp(x[id]!);
      if (u < acc) { pick = id; break; }
    }
    return { token: pick, logprob: x[pick]! - Math.log(total) };
  }

  /**
   * The final distribution `sample` would draw from (no random number used), most likely first. Greedy:
   * the argmax alone, with the logprob `sample` reports for it.
   */
  distribution(logits: Float32Array, history: ArrayLike<number> = [], promptLength = 0): SamplingDistribution {
    const n = this.process(logits, history, promptLength);
    if (n < 0) {
      const g = this.greedyResult(logits.length);
      return { ids: Int32Array.of(g.token), logprobs: Float64Array.of(g.logprob) };
    }
    const x = work;
    const ids = candIds.slice(0, n);
    ids.sort((a, b) => x[b]! - x[a]! || a - b);
    let total = 0;
    for (let j = 0; j < n; j++) total += Math.exp(x[ids[j]!]!);
    const lz = Math.log(total);
    const logprobs = new Float64Array(n);
    for (let j = 0; j < n; j++) logprobs[j] = x[ids[j]!]! - lz;
    return { ids, logprobs };
  }

  /** The generator's state (to checkpoint a sequence mid-generation). */
  getState(): number[] {
    return this.rng.getState();
  }
  setState(state: readonly number[]): void {
    this.rng.setState(state);
  }

  /**
   * Greedy without penalties on a large vocabulary (the common decode case): the native greedyPick
   * (argmax and log-sum-exp for the logprob in one pass, no V-sized output) instead of copying the row three times; a JS pass over
   * the row only to name a bad logit. Same token and logprob as the general path; null when it does not apply.
   */
  private greedyPlain(logits: Float32Array, history: ArrayLike<number>, promptLength: number, pre?: GreedyPick): { token: number; logprob: number } | null {
    const V = logits.length;
    if (!this.plainGreedy(V)) return null;
    const native = loadNative();
    if (!native) return null;
    if (!Number.isInteger(promptLength) || promptLength < 0 || promptLength > history.length) return null; // the general path reports it
    // Native argmax (ties -> lowest id) and log-sum-exp in one pass (greedyPick). A finite lse means no NaN, no
    // +Infinity and not all -Infinity; otherwise the scan below names the offending logit.
    if (pre) {
      ceTarget[0] = pre.token; ceLoss[0] = pre.loss; ceLse[0] = pre.lse;
    } else {
      native.greedyPick(ceTarget, ceLoss, ceLse, logits, 1, V);
    }
    const best = ceTarget[0]!;
    if (!Number.isFinite(ceLse[0]!)) {
      let bv = -Infinity;
      for (let i = 0; i < V; i++) {
        const v = logits[i]!;
        if (Number.isNaN(v)) throw new R1Error(`Sampler.sample: logit ${i} is ${v} (expected finite or -Infinity)`);
        if (v > bv) bv = v;
        if (v === Infinity) throw new R1Error(`Sampler.sample: logit ${i} is Infinity (expected finite or -Infinity)`);
      }
      if (bv === -Infinity) throw new R1Error('Sampler.sample: every logit is -Infinity');
    }
    return { token: best, logprob: -ceLoss[0]! };
  }

  /** True when `sample` on a vocabulary of V is a plain greedy pick (greedy, no penalties) that `greedyRows` can precompute. */
  plainGreedy(V: number): boolean {
    return this.greedy && V >= NATIVE_LSE_MIN && this.repetitionPenalty === 1 && this.presencePenalty === 0 && this.frequencyPenalty === 0;
  }

  /** Argmax of the penalised logits in `work`, ties → lowest id; logprob = log-softmax at T = 1. */
  private greedyResult(V: number): { token: number; logprob: number } {
    const x = work;
    let best = 0;
    for (let i = 1; i < V; i++) if (x[i]! > x[best]!) best = i;
    const m = x[best]!;
    const native = V >= NATIVE_LSE_MIN ? loadNative() : null;
    if (native) {
      // A real vocabulary (150K for Qwen) costs ~1.5 ms of scalar Math.exp per token, which is a large share of
      // a batched decode step; the native log-softmax (vectorised exp, f32) gives the same logprob to ~1e-7.
      if (lseIn.length < V) { lseIn = new Float32Array(V); lseOut = new Float32Array(V); }
      for (let i = 0; i < V; i++) lseIn[i] = x[i]!;
      native.softmax(lseOut.subarray(0, V), lseIn.subarray(0, V), 1, V, true);
      return { token: best, logprob: lseOut[best]! };
    }
    let z = 0;
    for (let i = 0; i < V; i++) z += Math.exp(x[i]! - m);
    return { token: best, logprob: -Math.log(z) };
  }

  /**
   * Fill `work` with processed logits. Greedy: penalised logits, returns -1. Otherwise work[i] = logit/T
   * - max over the whole vocabulary, candIds[0..n) the kept tokens, returns n >= 1.
   */
  private process(logits: Float32Array, history: ArrayLike<number>, promptLength: number): number {
    const V = logits.length;
    if (V === 0) throw new UsageError('Sampler.sample: logits are empty');
    if (!Number.isInteger(promptLength) || promptLength < 0 || promptLength > history.length) {
      throw new UsageError(`Sampler.sample: promptLength must be an integer in [0, ${history.length}] (the history length), got ${promptLength}`);
    }
    ensureScratch(V);
    const x = work;
    for (let i = 0; i < V; i++) {
      const v = logits[i]!;
      if (Number.isNaN(v) || v === Infinity) throw new R1Error(`Sampler.sample: logit ${i} is ${v} (expected finite or -Infinity)`);
      x[i] = v;
    }
    this.applyPenalties(V, history, promptLength);
    if (this.greedy) {
      let best = 0;
      for (let i = 1; i < V; i++) if (x[i]! > x[best]!) best = i;
      if (x[best] === -Infinity) throw new R1Error('Sampler.sample: every logit is -Infinity');
      return -1;
    }

    // Temperature, then shift so that the maximum is 0 (exp never overflows).
    const T = this.temperature;
    let m = -Infinity;
    for (let i = 0; i < V; i++) {
      const v = x[i]! / T;
      x[i] = v;
      if (v > m) m = v;
    }
    if (m === -Infinity) throw new R1Error('Sampler.sample: every logit is -Infinity');
    for (let i = 0; i < V; i++) x[i] = x[i]! - m;
    // min-p as a threshold on shifted logits (max is 0).
    const floor = this.minP > 0 ? Math.log(this.minP) + Math.log1p(-MIN_P_SLACK) : -Infinity;
    const k = this.topK > 0 && this.topK < V ? this.topK : 0;

    if (k > 0) {
      // Top-k by heap, then top-p over the k (renormalised to them), then min-p.
      const n = topKInto(x, V, k);
      let zk = 0;
      for (let j = 0; j < n; j++) zk += Math.exp(x[candIds[j]!]!);
      const keep = this.topP < 1 ? nucleusPrefix(x, n, zk * this.topP) : n;
      return minPTrim(x, keep, floor);
    }
    if (this.topP >= 1) {
      // No sorting needed: every token above the min-p floor.
      let n = 0;
      for (let i = 0; i < V; i++) if (x[i]! >= floor && x[i]! !== -Infinity) candIds[n++] = i;
      return n;
    }
    // Top-p over the whole vocabulary without a full sort: a histogram of the probability mass over logit
    // bins finds the bin where the mass counted from the top reaches p. Tokens in higher bins are all kept
    // (binning is monotone, so they rank above every token of that bin); only the crossing bin's tokens
    // are sorted. Tokens under the min-p floor are never candidates: min-p, applied after top-p, would
    // drop them, and it never drops the max. The nucleus target uses the mass of the WHOLE vocabulary.
    let z = 0;
    let lo = 0;
    for (let i = 0; i < V; i++) {
      const v = x[i]!;
      const w = Math.exp(v);
      wts[i] = w;
      z += w;
      if (v >= floor && v < lo && v !== -Infinity) lo = v; // lo stays finite: masked tokens never bin
    }
    const goal = z * this.topP * (1 - TOP_P_SLACK);
    const B = binMass.length;
    const scale = lo < 0 ? B / -lo : 0;
    const binOf = (v: number): number => (lo < 0 ? Math.min(B - 1, Math.floor((v - lo) * scale)) : B - 1);
    binMass.fill(0);
    for (let i = 0; i < V; i++) {
      const v = x[i]!;
      if (v >= lo) binMass[binOf(v)] += wts[i]!;
    }
    let crossing = -1;
    let above = 0; // mass of the bins above the crossing one
    for (let bi = B - 1; bi >= 0; bi--) {
      if (above + binMass[bi]! >= goal) { crossing = bi; break; }
      above += binMass[bi]!;
    }
    let n = 0;
    let t = 0;
    for (let i = 0; i < V; i++) {
      const v = x[i]!;
      if (!(v >= lo)) continue;
      const bi = binOf(v);
      if (bi > crossing) candIds[n++] = i;
      else if (bi === crossing) tailIds[t++] = i;
    }
    if (crossing < 0) return n; // min-p cut the tail before p was reached: every token above the floor
    const tail = tailIds.subarray(0, t);
    tail.sort((a, b) => x[b]! - x[a]! || a - b);
    let acc = above;
    for (let j = 0; j < t; j++) {
      const id = tail[j]!;
      candIds[n++] = id;
      acc += wts[id]!;
      if (acc >= goal) break;
    }
    return n;
  }

  private applyPenalties(V: number, history: ArrayLike<number>, promptLength: number): void {
    const rp = this.repetitionPenalty;
    const pres = this.presencePenalty;
    const freq = this.frequencyPenalty;
    const useRep = rp !== 1;
    const useCount = pres !== 0 || freq !== 0;
    if (!useRep && !useCount) return;
    const x = work;
    const H = history.length;
    // Validate first, so a bad id never leaves the shared scratch marks half-set.
    const from = useRep ? 0 : promptLength;
    for (let i = from; i < H; i++) {
      const t = history[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new UsageError(`Sampler.sample: history[${i}] = ${t} is outside the vocabulary [0, ${V})`);
    }
    if (useRep) {
      // Each distinct token once (HF gathers, then scatters: a token repeated in the history is penalised once).
      for (let i = 0; i < H; i++) {
        const t = history[i]!;
        if (seenMark[t] === 1) continue;
        seenMark[t] = 1;
        const v = x[t]!;
        x[t] = v > 0 ? v / rp : v * rp;
      }
      for (let i = 0; i < H; i++) seenMark[history[i]!] = 0;
    }
    if (useCount) {
      for (let i = promptLength; i < H; i++) {
        const t = history[i]!;
        counts[t] = counts[t]! + 1;
      }
      for (let i = promptLength; i < H; i++) {
        const t = history[i]!;
        const c = counts[t]!;
        if (c === 0) continue; // already applied
        x[t] = x[t]! - (pres + freq * c);
        counts[t] = 0;
      }
    }
  }
}

/** "a ranks before b": larger value, or equal value and lower id. */
function better(x: Float64Array, a: number, b: number): boolean {
  const va = x[a]!;
  const vb = x[b]!;
  return va > vb || (va === vb && a < b);
}

/** The k best ids of x[0..V) into candIds[0..k), sorted best first (a min-heap keeps the worst at the root). */
function topKInto(x: Float64Array, V: number, k: number): number {
  const h = candIds;
  let size = 0;
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      let w = l;
      if (r < size && better(x, h[l]!, h[r]!)) w = r; // w = the worse child
      if (!better(x, h[i]!, h[w]!)) return;
      const t = h[i]!; h[i] = h[w]!; h[w] = t;
      i = w;
    }
  };
  for (let id = 0; id < V; id++) {
    if (size < k) {
      // Sift up.
      let i = size++;
      h[i] = id;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!better(x, h[p]!, h[i]!)) break;
        const t = h[p]!; h[p] = h[i]!; h[i] = t;
        i = p;
      }
    } else if (better(x, id, h[0]!)) {
      h[0] = id;
      siftDown(0);
    }
  }
  sortCandidates(x, size);
  return size;
}

function sortCandidates(x: Float64Array, n: number): void {
  candIds.subarray(0, n).sort((a, b) => x[b]! - x[a]! || a - b);
}

/** Length of the shortest prefix of the sorted candidates whose exp-mass reaches `target` (>= 1). */
function nucleusPrefix(x: Float64Array, n: number, target: number): number {
  const goal = target * (1 - TOP_P_SLACK);
  let acc = 0;
  for (let j = 0; j < n; j++) {
    acc += Math.exp(x[candIds[j]!]!);
    if (acc >= goal) return j + 1;
  }
  return n;
}

/** Drop sorted candidates under the min-p floor, and masked (-Infinity) ones; the first, the max, stays. */
function minPTrim(x: Float64Array, n: number, floor: number): number {
  let j = 1;
  while (j < n && x[candIds[j]!]! >= floor && x[candIds[j]!]! !== -Infinity) j++;
  return j;
}
