/**
 * Chat templates: the Jinja `chat_template` of tokenizer_config.json rendered with @huggingface/jinja
 * (the JS implementation HF maintains for transformers.js), with the variables HF transformers'
 * `apply_chat_template` passes: messages, add_generation_prompt, tools, the special tokens (bos_token,
 * eos_token, ...) and any template-specific extras (e.g. Qwen3's enable_thinking); raise_exception is built in.
 */
import { Template } from '@huggingface/jinja';
import { ConfigError, FormatError } from '../errors.js';
import type { TokenizerConfig } from './tokenizer/tokenizer.js';

export interface ChatMessage {
  role: string;
  content: string | null;
  /** Separate reasoning text (Qwen3 templates read it; DeepSeek-R1 keeps it inside content). */
  reasoning_content?: string;
  tool_calls?: unknown[];
  [key: string]: unknown;
}

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  tools?: unknown[];
  /** Extra template variables, e.g. { enable_thinking: false }. */
  extra?: Record<string, unknown>;
}

export class ChatTemplate {
  private template: Template;
  constructor(readonly source: string, readonly specialTokens: Record<string, string | null> = {}, readonly where = 'chat_template') {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new FormatError(`${where}: the template does not parse: ${(e as Error).message}`);
    }
  }

  /** The prompt text for `messages` (no tokenization; encode it with the tokenizer). */
  render(messages: ChatMessage[], opts: RenderOptions = {}): string {
    if (!Array.isArray(messages)) throw new ConfigError(`${this.where}: messages must be an array`);
    messages.forEach((m, i) => {
      if (typeof m !== 'object' || m === null || typeof m.role !== 'string') throw new ConfigError(`${this.where}: messages[${i}].role must be a string`);
      if (m.content !== null && typeof m.content !== 'string') throw new ConfigError(`${this.where}: messages[${i}].content must be a string or null`);
    });
    const vars: Record<string, unknown> = {
      ...this.specialTokens,
      ...opts.extra,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    };
    if (opts.tools !== undefined) vars['tools'] = opts.tools;
    try {
      return this.template.render(vars);
    } catch (e) {
      // The template's own raise_exception(...) (built into @huggingface/jinja) rejects the conversation;
      // anything else is a template the runtime cannot evaluate. Both are reported with the template's name.
      throw new ConfigError(`${this.where}: rendering failed: ${(e as Error).message}`);
    }
  }
}

/** The chat template of a tokenizer_config.json (by name when it has several), with its special tokens bound. */
export function chatTemplateFromConfig(config: TokenizerConfig, name?: string): ChatTemplate {
  const src = name ? config.chatTemplates[name] : config.chatTemplate;
  if (!src) throw new ConfigError(`tokenizer_config.json: no chat_template${name ? ` named ${JSON.stringify(name)}` : ''}`);
  return new ChatTemplate(src, {
    bos_token: config.bosToken ?? '',
    eos_token: config.eosToken ?? '',
    pad_token: config.padToken ?? '',
    unk_token: config.unkToken ?? '',
  }, name ? `chat_template[${name}]` : 'chat_template');
}

/** One-shot render of a template string. */
export function renderChatTemplate(template: string, messages: ChatMessage[], opts: RenderOptions & { bosToken?: string; eosToken?: string } = {}): string {
  return new ChatTemplate(template, { bos_token: opts.bosToken ?? '', eos_token: opts.eosToken ?? '' }).render(messages, opts);
}
