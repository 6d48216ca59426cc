/**
 * Chat on top of the generation engine, with DeepSeek-R1's conventions: the conversation is rendered by the
 * model's chat template with the generation prompt; in reasoning mode the assistant turn is forced to open
 * with "<think>\n" (DeepSeek's recommendation, since the model sometimes skips thinking otherwise), the
 * defaults are temperature 0.6 / top-p 0.95 (generation_config.json wins when it sets them) and no system
 * prompt; the output is split into `reasoning` and `content` as it streams.
 */
import { FormatError, UsageError } from '../errors.js';
import type { Tokenizer } from '../io/tokenizer/tokenizer.js';
import { ChatTemplate, chatTemplateFromConfig, type ChatMessage } from '../io/chat-template.js';
import { loadModel, type LoadOptions, type LoadedModel } from '../models/load.js';
import { GenerationEngine, type GenerateRequest, type GenerateResult } from './generate.js';
import { ModelRunner, type KvCacheOption } from './kv-cache.js';
import { ReasoningSplitter } from './reasoning.js';
import { R1_DEFAULTS, type SamplingParams } from './sampler.js';

export const THINK_OPEN = '<think>\n';

export interface ChatTurnOptions {
  sampling?: SamplingParams;
  maxTokens?: number;
  stop?: string[];
  /** Reasoning mode (default true): force the "<think>\n" opening. */
  think?: boolean;
  thinkingBudget?: number;
  /** Streaming callbacks with the reasoning and content deltas. */
  onReasoning?: (text: string) => void;
  onContent?: (text: string) => void;
}

export interface ChatTurnResult extends GenerateResult {
  reasoning: string;
  content: string;
  prompt: string;
  seconds: number;
  tokensPerSecond: number;
}

export class ChatModel {
  readonly engine: GenerationEngine;
  readonly tokenizer: Tokenizer;
  readonly template: ChatTemplate;
  readonly defaults: SamplingParams;
  constructor(readonly loaded: LoadedModel, opts: { maxBatch?: number; kvCache?: KvCacheOption } = {}) {
    if (!loaded.tokenizer) throw new FormatError(`${loaded.dir}: no tokenizer.json — a chat needs the model's tokenizer`);
    this.tokenizer = loaded.tokenizer;
    const cfg = this.tokenizer.config;
    if (!cfg || !cfg.chatTemplate) throw new FormatError(`${loaded.dir}: tokenizer_config.json has no chat_template`);
    this.template = chatTemplateFromConfig(cfg);
    this.engine = new GenerationEngine(new ModelRunner(loaded.model, { kvCache: opts.kvCache }), this.tokenizer, { maxBatch: opts.maxBatch });
    const g = loaded.generationConfig ?? {};
    this.defaults = {
      ...R1_DEFAULTS,
      ...(typeof g['temperature'] === 'number' ? { temperature: g['temperature'] as number } : {}),
      ...(typeof g['top_p'] === 'number' ? { topP: g['top_p'] as number } : {}),
      ...(typeof g['top_k'] === 'number' && (g['top_k'] as number) > 0 ? { topK: g['top_k'] as number } : {}),
    };
  }

  static load(dir: string, opts: LoadOptions & { maxBatch?: number; kvCache?: KvCacheOption } = {}): ChatModel {
    return new ChatModel(loadModel(dir, opts), opts);
  }

  /** The prompt text for a conversation (generation prompt added; "<think>\n" forced in reasoning mode). */
  render(messages: ChatMessage[], think = true): string {
    let text = this.template.render(messages, { addGenerationPrompt: true });
    if (think && !text.endsWith(THINK_OPEN)) text += THINK_OPEN;
    return text;
  }

  /** Encode a rendered prompt (the template already holds BOS; no second one is added). */
  encode(prompt: string): number[] {
    return this.tokenizer.encode(prompt, { addSpecialTokens: false });
  }

  request(messages: ChatMessage[], o: ChatTurnOptions = {}): { req: GenerateRequest; prompt: string; splitter: ReasoningSplitter } {
    const think = o.think ?? true;
    const prompt = this.render(messages, think);
    const ids = this.encode(prompt);
    const ctx = this.engine.runner.contextLength;
    if (ids.length >= ctx) throw new UsageError(`the prompt is ${ids.length} tokens long but the model's context is ${ctx} tokens`);
    const splitter = new ReasoningSplitter({ startInThinking: think });
    const req: GenerateRequest = {
      prompt: ids,
      maxTokens: o.maxTokens,
      sampling: { ...this.defaults, ...(o.sampling ?? {}) },
      stop: o.stop,
      startsInThinking: think,
      thinkingBudget: o.thinkingBudget,
      onText: (text) => {
        const d = splitter.push(text);
        if (d.reasoning) o.onReasoning?.(d.reasoning);
        if (d.content) o.onContent?.(d.content);
      },
    };
    return { req, prompt, splitter };
  }

  /** One assistant turn for `messages`. */
  async chat(messages: ChatMessage[], o: ChatTurnOptions = {}): Promise<ChatTurnResult> {
    const { req, prompt, splitter } = this.request(messages, o);
    const t0 = performance.now();
    const p = this.engine.submit(req);
    this.engine.runToCompletion();
    const r = await p;
    const tail = splitter.flush();
    if (tail.reasoning) o.onReasoning?.(tail.reasoning);
    if (tail.content) o.onContent?.(tail.content);
    const seconds = (performance.now() - t0) / 1000;
    return { ...r, reasoning: splitter.reasoning, content: splitter.content, prompt, seconds, tokensPerSecond: r.tokens.length / Math.max(seconds, 1e-9) };
  }

  dispose(): void {
    this.loaded.model.dispose();
  }
}
