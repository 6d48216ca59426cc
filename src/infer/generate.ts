/**
 * The one generation engine of r1ts (DESIGN: "same engine for every job"): the CLI, the server and GRPO
 * rollouts all submit sequences here. Continuous batching: every step packs the prefill chunks of newly
 * admitted sequences and one decode token of every running sequence into a single ragged forward pass;
 * sequences finish independently (stop token, stop string, max tokens, context) and free their slot for
 * the next queued one. Each sequence has its own sampler (settings + seed) and its own KV cache.
 */
import type { Tokenizer } from '../io/tokenizer/tokenizer.js';
import type { DecodeStream } from '../io/tokenizer/stream.js';
import { UsageError } from '../errors.js';
import { ModelRunner, SequenceCache } from './kv-cache.js';
import { Sampler, greedyRows, validateSampling, type GreedyPick, type SamplingParams } from './sampler.js';
import { StopMatcher } from './stop.js';

export type FinishReason = 'stop' | 'length';

export interface GenerateRequest {
  /** Prompt token ids (already rendered through the chat template and encoded). */
  prompt: readonly number[];
  /** New tokens at most (default: up to the context length). */
  maxTokens?: number;
  sampling?: SamplingParams;
  /** Token ids that end the sequence (default: the tokenizer's EOS). Not included in the output. */
  stopTokenIds?: readonly number[];
  /** Strings that end the sequence (OpenAI semantics: the text stops before them). Needs a tokenizer. */
  stop?: readonly string[];
  /**
   * Thinking budget (R1 reasoning mode): when the sequence is still thinking after this many generated
   * tokens, "\n</think>\n\n" is inserted and the model goes on to answer. `startsInThinking` says the prompt
   * already opened the <think> block (R1's forced "<think>\n").
   */
  thinkingBudget?: number;
  startsInThinking?: boolean;
  /** Called with each piece of new text (after stop-string hold-back) and the token that produced it. */
  onText?: (text: string, token: number) => void;
}

export interface GenerateResult {
  tokens: number[];
  text: string;
  /** Log-probability of each generated token under the sampling distribution (0 for inserted tokens). */
  logprobs: number[];
  finishReason: FinishReason;
  promptTokens: number;
  /** Matched stop string or stop token id, when finishReason is 'stop'. */
  stoppedBy?: string | number;
}

const END_THINK = '\n</think>\n\n';

class Sequence {
  readonly cache = new SequenceCache();
  /** Tokens to feed next (the prompt at first, then each sampled token). */
  pending: number[];
  /** Tokens to insert after the pending ones instead of sampling (thinking-budget close). */
  forced: number[] = [];
  readonly history: number[];
  readonly tokens: number[] = [];
  readonly logprobs: number[] = [];
  text = '';
  private emittedUpTo = 0;
  thinking: boolean;
  thinkingTokens = 0;
  done = false;
  finishReason: FinishReason = 'length';
  stoppedBy?: string | number;
  readonly sampler: Sampler;
  readonly stream: DecodeStream | null;
  readonly stops: StopMatcher | null;
  readonly stopIds: Set<number>;
  readonly maxTokens: number;
  resolve!: (r: GenerateResult) => void;
  reject!: (e: Error) => void;
  readonly promise: Promise<GenerateResult>;
  constructor(readonly req: GenerateRequest, readonly id: number, tok: Tokenizer | null, ctx: number, defaultStops: number[]) {
    this.pending = [...req.prompt];
    this.history = [...req.prompt];
    this.sampler = new Sampler(req.sampling ?? {});
    this.stream = tok ? tok.decodeStream({ skipSpecialTokens: false }) : null;
    this.stops = req.stop && req.stop.length ? new StopMatcher([...req.stop]) : null;
    this.stopIds = new Set(req.stopTokenIds ?? defaultStops);
    this.maxTokens = Math.min(req.maxTokens ?? Infinity, ctx - req.prompt.length);
    this.thinking = req.startsInThinking ?? false;
    this.promise = new Promise((res, rej) => { this.resolve = res; this.reject = rej; });
  }

  result(): GenerateResult {
    const r: GenerateResult = { tokens: this.tokens, text: this.text, logprobs: this.logprobs, finishReason: this.finishReason, promptTokens: this.req.prompt.length };
    if (this.stoppedBy !== undefined) r.stoppedBy = this.stoppedBy;
    return r;
  }

  /** Append text decoded from `token`, honouring stop strings; returns true when a stop string matched. */
  appendText(piece: string, token: number): boolean {
    if (!this.stops) {
      this.text += piece;
      if (piece && this.req.onText) this.req.onText(piece, token);
      return false;
    }
    const r = this.stops.push(piece);
    this.text += r.emit;
    if (r.emit && this.req.onText) this.req.onText(r.emit, token);
    if (r.stopped) { this.stoppedBy = r.matched; return true; }
    return false;
  }

  flushText(): void {
    if (!this.stops || this.stoppedBy !== undefined) return;
    const rest = this.stops.flush();
    if (rest) {
      this.text += rest;
      this.req.onText?.(rest, -1);
    }
  }
}

export interface EngineOptions {
  /** Sequences decoded together at most (others wait; default 16). */
  maxBatch?: number;
  /** Prompt tokens prefilled per sequence per step at most (default 512). */
  prefillChunk?: number;
}

export class GenerationEngine {
  readonly runner: ModelRunner;
  private queue: Sequence[] = [];
  private active: Sequence[] = [];
  private nextId = 0;
  private readonly maxBatch: number;
  private readonly prefillChunk: number;
  private readonly defaultStops: number[];
  private endThinkIds: number[] | null = null;
  /** Totals for reporting: tokens fed in prefill and decode, and seconds spent in each. */
  readonly stats = { prefillTokens: 0, decodeTokens: 0, steps: 0 };

  constructor(runner: ModelRunner, readonly tokenizer: Tokenizer | null = null, opts: EngineOptions = {}) {
    this.runner = runner;
    this.maxBatch = opts.maxBatch ?? 16;
    this.prefillChunk = opts.prefillChunk ?? 512;
    if (!(this.maxBatch >= 1) || !(this.prefillChunk >= 1)) throw new UsageError('generation engine: maxBatch and prefillChunk must be >= 1');
    const eos = tokenizer?.config?.eosToken ? tokenizer.tokenToId(tokenizer.config.eosToken) : null;
    this.defaultStops = eos === null || eos === undefined ? [] : [eos];
  }

  /** Queue one sequence; its promise settles when it finishes. Validates the request first. */
  submit(req: GenerateRequest): Promise<GenerateResult> {
    const ctx = this.runner.contextLength;
    const where = `request ${this.nextId}`;
    if (!Array.isArray(req.prompt) && !(req.prompt as unknown as ArrayLike<number>)?.length) throw new UsageError(`${where}: prompt must be a non-empty array of token ids`);
    if (req.prompt.length === 0) throw new UsageError(`${where}: the prompt is empty`);
    if (req.prompt.length >= ctx) throw new UsageError(`${where}: the prompt has ${req.prompt.length} tokens but the context holds ${ctx} (prompt + at least one new token)`);
    for (const t of req.prompt) if (!Number.isInteger(t) || t < 0 || t >= this.runner.vocabSize) throw new UsageError(`${where}: prompt token ${t} is outside the vocabulary [0, ${this.runner.vocabSize})`);
    if (req.maxTokens !== undefined && !(Number.isInteger(req.maxTokens) && req.maxTokens >= 1)) throw new UsageError(`${where}: maxTokens must be an integer >= 1, got ${req.maxTokens}`);
    if (req.stop && req.stop.length && !this.tokenizer) throw new UsageError(`${where}: stop strings need a tokenizer`);
    if (req.thinkingBudget !== undefined && !this.tokenizer) throw new UsageError(`${where}: a thinking budget needs a tokenizer`);
    validateSampling(req.sampling ?? {}, where);
    const s = new Sequence(req, this.nextId++, this.tokenizer, ctx, this.defaultStops);
    this.queue.push(s);
    return s.promise;
  }

  /** Sequences waiting or running. */
  get pendingCount(): number {
    return this.queue.length + this.active.length;
  }

  /** Run submitted requests to completion. */
  async generate(reqs: readonly GenerateRequest[]): Promise<GenerateResult[]> {
    const ps = reqs.map((r) => this.submit(r));
    this.runToCompletion();
    return Promise.all(ps);
  }

  runToCompletion(): void {
    while (this.step()) { /* keep stepping */ }
  }

  /** One engine iteration; returns false when nothing is left to do. */
  step(): boolean {
    while (this.active.length < this.maxBatch && this.queue.length) this.active.push(this.queue.shift()!);
    if (!this.active.length) return false;
    const batch = this.active;
    const inputs = batch.map((s) => {
      const n = Math.min(s.pending.length, this.prefillChunk);
      return { ids: s.pending.slice(0, n), cache: s.cache };
    });
    let rows: Float32Array[][];
    try {
      rows = this.runner.step(inputs, false, { borrow: true }); // views of the logits, released after sampling
    } catch (e) {
      for (const s of batch) { s.cache.dispose(); s.reject(e as Error); }
      this.active = [];
      return this.queue.length > 0;
    }
    this.stats.steps++;
    try {
      const picks = this.greedyPicks(batch, inputs, rows);
      batch.forEach((s, i) => {
        const fed = inputs[i]!.ids.length;
        if (s.cache.length <= s.req.prompt.length) this.stats.prefillTokens += fed; else this.stats.decodeTokens += fed;
        s.pending = s.pending.slice(fed);
        if (s.pending.length) return; // still prefilling
        this.advance(s, rows[i]![0]!, picks?.[i]);
      });
    } finally {
      this.runner.releaseLogits();
    }
    this.active = batch.filter((s) => {
      if (!s.done) return true;
      s.cache.dispose();
      s.resolve(s.result());
      return false;
    });
    return this.active.length > 0 || this.queue.length > 0;
  }

  /**
   * When two or more sequences pick greedily from one-row logits that lie back to back in one buffer (a batched
   * decode step), their argmaxes and log-sum-exps in two native calls over all the rows (threads share the rows)
   * instead of two single-row calls per sequence; null otherwise.
   */
  private greedyPicks(batch: Sequence[], inputs: { ids: number[] }[], rows: Float32Array[][]): (GreedyPick | undefined)[] | null {
    if (batch.length < 2 || rows.length !== batch.length) return null;
    const first = rows[0]![0];
    if (!first) return null;
    const V = first.length;
    let eligible = 0;
    for (let i = 0; i < batch.length; i++) {
      const r = rows[i]!, s = batch[i]!;
      // one row each, at first.byteOffset + i rows of the same buffer
      if (r.length !== 1 || r[0]!.buffer !== first.buffer || r[0]!.length !== V || r[0]!.byteOffset !== first.byteOffset + i * V * 4) return null;
      if (s.pending.length === inputs[i]!.ids.length && !s.forced.length && s.sampler.plainGreedy(V)) eligible++;
    }
    if (eligible < 2) return null;
    return greedyRows(new Float32Array(first.buffer, first.byteOffset, batch.length * V), batch.length, V);
  }

  /** Choose the next token of `s` from its last logits (or take a forced one) and check stop conditions. */
  private advance(s: Sequence, logits: Float32Array, pre?: GreedyPick): void {
    let token: number;
    let logprob = 0;
    if (s.forced.length) {
      token = s.forced.shift()!;
    } else {
      const r = s.sampler.sample(logits, s.history, s.req.prompt.length, pre);
      token = r.token;
      logprob = r.logprob;
      if (s.stopIds.has(token)) {
        s.done = true;
        s.finishReason = 'stop';
        s.stoppedBy = token;
        s.flushText();
        return;
      }
    }
    s.tokens.push(token);
    s.logprobs.push(logprob);
    s.history.push(token);
    if (s.stream) {
      const piece = s.stream.step(token);
      if (s.appendText(piece, token)) {
        s.done = true;
        s.finishReason = 'stop';
        return;
      }
      if (s.thinking) {
        if (s.text.includes('</think>')) s.thinking = false;
        else if (s.req.thinkingBudget !== undefined && ++s.thinkingTokens >= s.req.thinkingBudget && !s.forced.length) {
          s.forced = [...this.endThinking()];
          s.thinking = false;
        }
      }
    }
    if (s.tokens.length >= s.maxTokens) {
      s.done = true;
      s.finishReason = 'length';
      s.flushText();
      return;
    }
    s.pending = [token];
  }

  private endThinking(): number[] {
    if (!this.endThinkIds) this.endThinkIds = this.tokenizer!.encode(END_THINK, { addSpecialTokens: false });
    return this.endThinkIds;
  }
}
