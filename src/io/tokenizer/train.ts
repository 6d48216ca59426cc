/**
 * Byte-level BPE training, producing a tokenizer.json in the HF schema (as HF tokenizers'
 * `ByteLevelBPETokenizer` + `BpeTrainer` write it) and a matching tokenizer_config.json with special
 * tokens and a DeepSeek-R1-style chat template, for models trained from scratch.
 *
 * Algorithm (Sennrich et al. 2016, as HF `models/bpe/trainer.rs`): split the corpus into words with the
 * GPT-2 byte-level regex (added tokens are cut out first so they are never learned), start from the 256
 * byte symbols, and repeatedly merge the most frequent adjacent pair, updating the counts of only the words
 * that contain it. A lazy max-heap keyed by (count, then smaller pair ids) keeps every step O(log P).
 */
import { ConfigError } from '../../errors.js';
import { AddedTokenMatcher, type AddedToken, type Segment } from './added.js';
import { BYTE_TO_CHAR, utf8Encode } from './bytes.js';
import { GPT2_PATTERN } from './pipeline.js';
import { compileOnigRegex } from './regex.js';

export interface TrainOptions {
  /** Special tokens (special=true), ids 0.. in this order. The first is BOS, the second EOS. */
  specialTokens?: string[];
  /** Added tokens that are not special (kept when decoding with skipSpecialTokens), e.g. <think>. */
  addedTokens?: string[];
  /** Pairs seen fewer times than this are never merged (HF min_frequency). Default 2. */
  minFrequency?: number;
  /** Chat template for tokenizer_config.json; default an R1-style template over the special tokens. */
  chatTemplate?: string;
  /**
   * Split every digit into its own pre-token (as DeepSeek-V3's and Llama-3's pre-tokenizers isolate digits),
   * so numbers are never merged into multi-digit tokens — what arithmetic learners need. The tokenizer.json
   * then has a Sequence pre-tokenizer: Split(\p{N}, Isolated) followed by ByteLevel.
   */
  splitDigits?: boolean;
  /** Called every 64 merges with the vocabulary size so far and the target. */
  onProgress?: (vocab: number, target: number) => void;
}

export interface TrainedTokenizer {
  tokenizerJSON: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** Merges learned, and the final vocabulary size (smaller than asked if the corpus ran out of pairs). */
  merges: number;
  vocabSize: number;
}

export const DEFAULT_SPECIAL_TOKENS = ['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>'];
export const DEFAULT_ADDED_TOKENS = ['<think>', '</think>'];

/**
 * R1's template reduced to system/user/assistant turns: generation opens <think>; the thinking of earlier
 * assistant turns is dropped as R1's template does, but a conversation's final assistant turn keeps it, so
 * SFT on reasoning traces renders the trace exactly after the generation prompt (the chat prefix is a prefix).
 */
export function defaultChatTemplate(special: string[]): string {
  const [, eos, user, assistant] = special;
  return "{{ bos_token }}{%- for m in messages %}{%- if m['role'] == 'system' %}{{ m['content'] }}" +
    `{%- elif m['role'] == 'user' %}{{ '${user}' + m['content'] }}` +
    "{%- elif m['role'] == 'assistant' %}{%- set c = m['content'] %}{%- if '</think>' in c and not loop.last %}{%- set c = c.split('</think>')[-1] %}{%- endif %}" +
    `{{ '${assistant}' + c + '${eos}' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{ '${assistant}<think>\n' }}{%- endif %}`;
}

/** GPT-2's pattern with every digit alone (the words BPE counts when splitDigits is on). */
const DIGIT_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Lazy max-heap of (count, a, b): stale entries are dropped when popped. */
class PairHeap {
  count: number[] = [];
  a: number[] = [];
  b: number[] = [];
  private less(i: number, j: number): boolean {
    // true when i should come after j (lower priority)
    const ci = this.count[i]!, cj = this.count[j]!;
    if (ci !== cj) return ci < cj;
    if (this.a[i] !== this.a[j]) return this.a[i]! > this.a[j]!;
    return this.b[i]! > this.b[j]!;
  }
  private swap(i: number, j: number): void {
    [this.count[i], this.count[j]] = [this.count[j]!, this.count[i]!];
    [this.a[i], this.a[j]] = [this.a[j]!, this.a[i]!];
    [this.b[i], this.b[j]] = [this.b[j]!, this.b[i]!];
  }
  get size(): number { return this.count.length; }
  push(c: number, a: number, b: number): void {
    this.count.push(c); this.a.push(a); this.b.push(b);
    let i = this.count.length - 1;
    while (i > 0) { const p = (i - 1) >> 1; if (!this.less(p, i)) break; this.swap(i, p); i = p; }
  }
  pop(): [number, number, number] {
    const top: [number, number, number] = [this.count[0]!, this.a[0]!, this.b[0]!];
    const last = this.count.length - 1;
    this.swap(0, last);
    this.count.pop(); this.a.pop(); this.b.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < this.count.length && this.less(m, l)) m = l;
      if (r < this.count.length && this.less(m, r)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

export function trainBpe(corpus: string | string[], vocabSize: number, options: TrainOptions = {}): TrainedTokenizer {
  const special = options.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const added = options.addedTokens ?? DEFAULT_ADDED_TOKENS;
  const minFrequency = options.minFrequency ?? 2;
  const all = [...special, ...added];
  if (new Set(all).size !== all.length) throw new ConfigError('trainBpe: special and added tokens must be distinct');
  if (all.some((t) => t.length === 0)) throw new ConfigError('trainBpe: added tokens cannot be empty');
  if (special.length < 2) throw new ConfigError('trainBpe: at least two special tokens (BOS, EOS) are needed');
  const base = all.length + 256;
  if (!Number.isInteger(vocabSize) || vocabSize < base) throw new ConfigError(`trainBpe: vocab size must be an integer >= ${base} (${all.length} added tokens + 256 bytes), got ${vocabSize}`);
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new ConfigError(`trainBpe: minFrequency must be an integer >= 1, got ${minFrequency}`);

  // 1. Words and their counts, with added tokens cut out of the text.
  const addedToks: AddedToken[] = all.map((content, id) => ({ id, content, special: id < special.length, singleWord: false, lstrip: false, rstrip: false, normalized: false }));
  const matcher = new AddedTokenMatcher(addedToks.map((t) => [t.content, t]));
  const re = compileOnigRegex(options.splitDigits ? DIGIT_SPLIT_PATTERN : GPT2_PATTERN, 'trainBpe');
  const wordCounts = new Map<string, number>();
  for (const doc of typeof corpus === 'string' ? [corpus] : corpus) {
    const segs: Segment[] = [];
    matcher.split(doc, segs);
    for (const s of segs) {
      if (s.token) continue;
      re.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(s.text)) !== null) {
        if (m[0].length === 0) { re.lastIndex++; continue; }
        wordCounts.set(m[0], (wordCounts.get(m[0]) ?? 0) + 1);
      }
    }
  }

  // 2. Symbols: ids after the added tokens; bytes first, in byte order.
  const idToToken: string[] = [...all];
  for (let b = 0; b < 256; b++) idToToken.push(BYTE_TO_CHAR[b]!);
  const byteId = (b: number): number => all.length + b;
  const words: number[][] = [];
  const counts: number[] = [];
  let buf = new Uint8Array(256);
  for (const [w, c] of wordCounts) {
    if (buf.length < w.length * 3) buf = new Uint8Array(w.length * 3);
    const n = utf8Encode(w, 0, w.length, buf);
    const syms: number[] = new Array(n);
    for (let i = 0; i < n; i++) syms[i] = byteId(buf[i]!);
    words.push(syms);
    counts.push(c);
  }

  // 3. Pair statistics: count and the words each pair occurs in.
  const KEY = 1 << 22;
  if (vocabSize >= KEY) throw new ConfigError(`trainBpe: vocab size must be < ${KEY}`);
  const pairCount = new Map<number, number>();
  const touched = new Set<number>();
  const where = new Map<number, Set<number>>();
  const heap = new PairHeap();
  const bump = (a: number, b: number, delta: number, w: number): void => {
    const k = a * KEY + b;
    const c = (pairCount.get(k) ?? 0) + delta;
    pairCount.set(k, c);
    touched.add(k);
    if (delta > 0) {
      let s = where.get(k);
      if (!s) { s = new Set(); where.set(k, s); }
      s.add(w);
    }
  };
  for (let w = 0; w < words.length; w++) {
    const s = words[w]!;
    for (let i = 0; i + 1 < s.length; i++) bump(s[i]!, s[i + 1]!, counts[w]!, w);
  }
  for (const [k, c] of pairCount) heap.push(c, Math.floor(k / KEY), k % KEY);
  touched.clear();

  // 4. Merge loop.
  const merges: [number, number][] = [];
  const tokenId = new Map<string, number>();
  idToToken.forEach((t, i) => tokenId.set(t, i));
  while (idToToken.length < vocabSize && heap.size > 0) {
    const [c, a, b] = heap.pop();
    const k = a * KEY + b;
    const cur = pairCount.get(k) ?? 0;
    if (cur !== c) continue; // stale
    if (c < minFrequency) break;
    // Two merge paths can spell the same token ("ab"+"c", "a"+"bc"): HF's trainer reuses its id.
    const merged = idToToken[a]! + idToToken[b]!;
    let newId = tokenId.get(merged);
    if (newId === undefined) { newId = idToToken.length; idToToken.push(merged); tokenId.set(merged, newId); }
    merges.push([a, b]);
    touched.clear();
    for (const w of where.get(k) ?? []) {
      const s = words[w]!, wc = counts[w]!;
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue;
      for (let i = 0; i + 1 < s.length; i++) bump(s[i]!, s[i + 1]!, -wc, w);
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { out.push(newId); i++; }
        else out.push(s[i]!);
      }
      words[w] = out;
      for (let i = 0; i + 1 < out.length; i++) bump(out[i]!, out[i + 1]!, wc, w);
    }
    touched.delete(k);
    pairCount.delete(k);
    where.delete(k);
    // Every pair whose count changed gets an entry with its new count; its old entries are stale on pop.
    for (const t of touched) {
      const tc = pairCount.get(t)!;
      if (tc > 0) heap.push(tc, Math.floor(t / KEY), t % KEY);
      else { pairCount.delete(t); where.delete(t); }
    }
    if (merges.length % 64 === 0) options.onProgress?.(idToToken.length, vocabSize);
  }
  return { tokenizerJSON: toJSON(idToToken, merges, addedToks, options.splitDigits ?? false), tokenizerConfig: toConfig(special, addedToks, options.chatTemplate ?? defaultChatTemplate(special)), merges: merges.length, vocabSize: idToToken.length };
}

function toJSON(idToToken: string[], merges: [number, number][], added: AddedToken[], splitDigits: boolean): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  idToToken.forEach((t, id) => { vocab[t] = id; });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.special })),
    normalizer: null,
    pre_tokenizer: splitDigits
      ? { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: '\\p{N}' }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ] }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [idToToken[a]!, idToToken[b]!]),
    },
  };
}

function toConfig(special: string[], added: AddedToken[], chatTemplate: string): Record<string, unknown> {
  const decoderMap: Record<string, unknown> = {};
  for (const t of added) decoderMap[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: t.special };
  return {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: decoderMap,
    bos_token: special[0],
    eos_token: special[1],
    pad_token: special[1],
    unk_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: 131072,
    tokenizer_class: 'PreTrainedTokenizerFast',
    chat_template: chatTemplate,
  };
}
