/**
 * An HF `tokenizer.json` tokenizer (byte-level BPE as used by DeepSeek-V3/R1, Qwen2/3, Llama-3, GPT-2):
 * added tokens -> normalizer -> pre-tokenizer -> BPE model -> post-processor, and the decoder back.
 * The order and semantics follow HF tokenizers `tokenizer/mod.rs` (`encode_single_sequence`, `decode`).
 * tokenizer_config.json, when given, adds what HF transformers adds on top: BOS/EOS insertion for
 * `add_bos_token`/`add_eos_token` (LlamaTokenizerFast.update_post_processor) and the chat template.
 */
import { readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import { AddedTokenMatcher, type AddedToken, type Segment } from './added.js';
import { BpeModel } from './bpe.js';
import { Fields, describe, type Json, type JsonObject } from './json.js';
import {
  parseDecoder, parseNormalizer, parsePostProcessor, parsePreTokenizer,
  type Decoder, type Normalizer, type PostProcessor, type PreTokenizer,
} from './pipeline.js';
import { DecodeStream } from './stream.js';

export interface EncodeOptions {
  /** Add the post-processor's special tokens (BOS etc.). Default true, as HF. */
  addSpecialTokens?: boolean;
}
export interface DecodeOptions {
  /** Drop added tokens marked special. Default false, as HF. */
  skipSpecialTokens?: boolean;
}

/** The parts of tokenizer_config.json that change encoding or are needed around it. */
export interface TokenizerConfig {
  bosToken: string | null;
  eosToken: string | null;
  padToken: string | null;
  unkToken: string | null;
  addBosToken: boolean | null;
  addEosToken: boolean | null;
  /** The default chat template, and any named ones (HF allows a list of {name, template}). */
  chatTemplate: string | null;
  chatTemplates: Record<string, string>;
  tokenizerClass: string | null;
  /** The raw object (templates may read other fields). */
  raw: JsonObject;
}

/** Parse tokenizer_config.json (already JSON-parsed). */
export function parseTokenizerConfig(v: unknown, source = 'tokenizer_config.json'): TokenizerConfig {
  const f = new Fields(source);
  const o = f.obj(v, '$');
  const tok = (k: string): string | null => {
    const x = o[k];
    if (x === undefined || x === null) return null;
    if (typeof x === 'string') return x;
    if (typeof x === 'object' && !Array.isArray(x) && typeof x['content'] === 'string') return x['content'];
    return f.fail(k, `expected a string or an AddedToken object with "content", got ${describe(x)}`);
  };
  const optBool = (k: string): boolean | null => (o[k] === undefined || o[k] === null ? null : f.bool(o[k], k, false));
  const templates: Record<string, string> = {};
  let chatTemplate: string | null = null;
  const ct = o['chat_template'];
  if (typeof ct === 'string') chatTemplate = ct;
  else if (Array.isArray(ct)) {
    ct.forEach((e, i) => {
      const eo = f.obj(e, `chat_template[${i}]`);
      templates[f.str(eo['name'], `chat_template[${i}].name`)] = f.str(eo['template'], `chat_template[${i}].template`);
    });
    chatTemplate = templates['default'] ?? null;
  } else if (ct !== undefined && ct !== null) f.fail('chat_template', `expected a string or a list of {name, template}, got ${describe(ct)}`);
  return {
    bosToken: tok('bos_token'), eosToken: tok('eos_token'), padToken: tok('pad_token'), unkToken: tok('unk_token'),
    addBosToken: optBool('add_bos_token'), addEosToken: optBool('add_eos_token'),
    chatTemplate, chatTemplates: templates,
    tokenizerClass: f.optStr(o['tokenizer_class'], 'tokenizer_class'),
    raw: o,
  };
}

const CACHE_MAX_ENTRIES = 1 << 17;
const CACHE_MAX_PIECE = 128;

export class Tokenizer {
  readonly source: string;
  readonly model: BpeModel;
  readonly normalizer: Normalizer | null;
  readonly preTokenizer: PreTokenizer;
  readonly postProcessor: PostProcessor | null;
  readonly decoder: Decoder | null;
  readonly addedTokens: AddedToken[];
  readonly config: TokenizerConfig | null;
  private addedById = new Map<number, AddedToken>();
  private addedByContent = new Map<string, AddedToken>();
  private rawMatcher: AddedTokenMatcher;
  private normMatcher: AddedTokenMatcher;
  private cache = new Map<string, number[]>();
  /** BOS/EOS that tokenizer_config.json asks for and the post-processor does not already add. */
  private extraBos: number | null = null;
  private extraEos: number | null = null;

  private constructor(json: JsonObject, f: Fields, config: TokenizerConfig | null) {
    this.source = f.source;
    this.config = config;
    const model = f.obj(json['model'], 'model');
    const type = model['type'] === undefined ? 'BPE' : f.str(model['type'], 'model.type');
    if (type !== 'BPE') f.fail('model.type', `only BPE models are supported, got ${JSON.stringify(type)}`);
    this.model = BpeModel.fromJSON(model, f);
    this.normalizer = parseNormalizer(json['normalizer'], f);
    this.preTokenizer = parsePreTokenizer(json['pre_tokenizer'], f);
    this.postProcessor = parsePostProcessor(json['post_processor'], f);
    this.decoder = parseDecoder(json['decoder'], f);
    this.addedTokens = f.arr(json['added_tokens'] ?? [], 'added_tokens').map((t, i) => {
      const p = `added_tokens[${i}]`;
      const o = f.obj(t, p);
      const tok: AddedToken = {
        id: f.int(o['id'], `${p}.id`),
        content: f.str(o['content'], `${p}.content`),
        special: f.bool(o['special'], `${p}.special`, false),
        singleWord: f.bool(o['single_word'], `${p}.single_word`, false),
        lstrip: f.bool(o['lstrip'], `${p}.lstrip`, false),
        rstrip: f.bool(o['rstrip'], `${p}.rstrip`, false),
        normalized: f.bool(o['normalized'], `${p}.normalized`, !f.bool(o['special'], `${p}.special`, false)),
      };
      if (tok.content.length === 0) f.fail(`${p}.content`, 'an added token cannot be empty');
      const other = this.addedById.get(tok.id);
      if (other && other.content !== tok.content) f.fail(`${p}.id`, `id ${tok.id} is also used by added token ${JSON.stringify(other.content)}`);
      const inVocab = this.model.idToToken[tok.id];
      if (inVocab !== undefined && inVocab !== tok.content) f.fail(`${p}.id`, `id ${tok.id} is the model's token ${JSON.stringify(inVocab)}, not ${JSON.stringify(tok.content)}`);
      this.addedById.set(tok.id, tok);
      this.addedByContent.set(tok.content, tok);
      return tok;
    });
    const raw: [string, AddedToken][] = [], norm: [string, AddedToken][] = [];
    for (const t of this.addedTokens) {
      if (t.normalized) norm.push([this.normalizer ? this.normalizer(t.content) : t.content, t]);
      else raw.push([t.content, t]);
    }
    this.rawMatcher = new AddedTokenMatcher(raw);
    this.normMatcher = new AddedTokenMatcher(norm);
    if (config) {
      const probe = this.postProcessor ? this.postProcessor([]) : [];
      const idOf = (name: string, t: string | null): number | null => {
        if (t === null) return null;
        const id = this.tokenToId(t);
        if (id === null) throw new FormatError(`tokenizer_config.json: ${name} ${JSON.stringify(t)} is not a token of ${f.source}`);
        return id;
      };
      const bos = idOf('bos_token', config.bosToken), eos = idOf('eos_token', config.eosToken);
      if (config.addBosToken === true && bos !== null && probe[0] !== bos) this.extraBos = bos;
      if (config.addEosToken === true && eos !== null && probe[probe.length - 1] !== eos) this.extraEos = eos;
    }
  }

  /** Build from a parsed tokenizer.json object (and optionally a parsed tokenizer_config.json). */
  static fromJSON(json: unknown, opts: { source?: string; config?: unknown; configSource?: string } = {}): Tokenizer {
    const f = new Fields(opts.source ?? 'tokenizer.json');
    const o = f.obj(json, '$');
    const config = opts.config === undefined || opts.config === null ? null : parseTokenizerConfig(opts.config, opts.configSource);
    return new Tokenizer(o, f, config);
  }

  /** Load a tokenizer.json file, or a model folder holding tokenizer.json (and tokenizer_config.json). */
  static load(path: string): Tokenizer {
    let st;
    try { st = statSync(path); } catch { throw new FormatError(`${path}: no such file or folder`); }
    let jsonPath = path, configPath: string | null = null;
    if (st.isDirectory()) {
      jsonPath = join(path, 'tokenizer.json');
      if (!existsSync(jsonPath)) throw new FormatError(`${path}: the folder has no tokenizer.json`);
      const c = join(path, 'tokenizer_config.json');
      if (existsSync(c)) configPath = c;
    }
    const json = readJson(jsonPath);
    const config = configPath ? readJson(configPath) : undefined;
    return Tokenizer.fromJSON(json, { source: jsonPath, config, configSource: configPath ?? undefined });
  }

  get vocabSize(): number {
    let n = this.model.idToToken.length;
    for (const t of this.addedTokens) n = Math.max(n, t.id + 1);
    return n;
  }

  tokenToId(token: string): number | null {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token) ?? null;
  }
  idToToken(id: number): string | null {
    return this.addedById.get(id)?.content ?? this.model.idToToken[id] ?? null;
  }
  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    let ids: number[] = [];
    const segs: Segment[] = [];
    this.rawMatcher.split(text, segs);
    for (const s of segs) {
      if (s.token) { ids.push(s.token.id); continue; }
      const t = this.normalizer ? this.normalizer(s.text) : s.text;
      if (this.normMatcher.size === 0) { this.encodeText(t, ids); continue; }
      const inner: Segment[] = [];
      this.normMatcher.split(t, inner);
      for (const x of inner) {
        if (x.token) ids.push(x.token.id);
        else this.encodeText(x.text, ids);
      }
    }
    if (opts.addSpecialTokens ?? true) {
      if (this.postProcessor) ids = this.postProcessor(ids);
      if (this.extraBos !== null) ids.unshift(this.extraBos);
      if (this.extraEos !== null) ids.push(this.extraEos);
    }
    return ids;
  }

  /** Pre-tokenize and run the model on normalized text that holds no added token. */
  private encodeText(text: string, out: number[]): void {
    if (text.length === 0) return;
    let pieces: string[] = [text];
    for (const step of this.preTokenizer.steps) {
      const next: string[] = [];
      for (const p of pieces) step(p, next);
      pieces = next;
    }
    const cache = this.cache, model = this.model, raw = this.preTokenizer.byteLevelFinal;
    for (const p of pieces) {
      const hit = cache.get(p);
      if (hit !== undefined) {
        for (let i = 0; i < hit.length; i++) out.push(hit[i]!);
        continue;
      }
      const start = out.length;
      if (raw) model.encodeRawBytes(p, out);
      else model.encodeWord(p, out);
      if (p.length <= CACHE_MAX_PIECE) {
        if (cache.size >= CACHE_MAX_ENTRIES) cache.clear();
        cache.set(p, out.slice(start));
      }
    }
  }

  /** ids -> token strings, as HF: added tokens first, then the model; optionally without special tokens. */
  idsToTokens(ids: ArrayLike<number>, opts: DecodeOptions = {}): string[] {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const added = this.addedById.get(id);
      if (added) { if (!(opts.skipSpecialTokens && added.special)) out.push(added.content); continue; }
      const t = Number.isInteger(id) ? this.model.idToToken[id] : undefined;
      if (t === undefined) throw new FormatError(`decode: token id ${String(id)} at position ${i} is not in the vocabulary of ${this.source} (size ${this.vocabSize})`);
      out.push(t);
    }
    return out;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const tokens = this.idsToTokens(ids, opts);
    if (!this.decoder) return tokens.join(' ');
    return this.decoder.chain(tokens).join('');
  }

  /** A decoder for ids arriving one at a time that only ever emits whole characters. */
  decodeStream(opts: DecodeOptions = {}): DecodeStream {
    return new DecodeStream(this, opts);
  }

  /** Forget cached word encodings (memory). */
  clearCache(): void {
    this.cache.clear();
  }
}

function readJson(path: string): Json {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new FormatError(`${path}: cannot read: ${(e as Error).message}`); }
  try { return JSON.parse(text) as Json; } catch (e) { throw new FormatError(`${path}: not valid JSON: ${(e as Error).message}`); }
}

/** Load a tokenizer from a tokenizer.json path or a model folder. */
export function loadTokenizer(path: string): Tokenizer {
  return Tokenizer.load(path);
}
