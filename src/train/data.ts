/**
 * Training data: JSONL rows in the Hugging Face datasets conventions, tokenized into examples with loss masks,
 * and turned into fixed-shape next-token batches by packing or padding, with a deterministic, resumable loader.
 *
 * Rows (one JSON object per line; other fields are ignored, as HF `datasets` columns a trainer does not use):
 *   {"text": "..."}                                         pretraining: every token trained, EOS after each document
 *   {"prompt": "...", "completion": "..."}                  SFT: the prompt as a user turn, loss on the completion only
 *   {"messages": [{"role": "user", "content": "..."}, ...]} SFT: loss on the assistant turns only
 * When a row has several of these, `messages` wins, then prompt/completion, then text (e.g. ultrachat_200k rows
 * carry both a "prompt" string and "messages").
 *
 * Labels follow the HF convention: an example's `labels` align with its `ids` (unshifted) and -100 marks tokens
 * without loss — the `ignoreIndex` default of crossEntropy (src/tensor/ops/nn.ts). Batches are shifted for the
 * trainer (loop.ts `Batch`): labels[t] is the target for the input at position t.
 */
import { readFileSync } from 'node:fs';
import type { Tokenizer } from '../io/tokenizer/tokenizer.js';
import type { ChatMessage, ChatTemplate } from '../io/chat-template.js';
import { Rng } from '../tensor/random.js';
import { ConfigError, FormatError, R1Error } from '../errors.js';
import type { Batch } from './loop.js';

export type { Batch };

/** Label of a token without loss (crossEntropy's default ignoreIndex). */
export const IGNORE_INDEX = -100;

/** Roles a `messages` row may use (those the HF chat templates of DeepSeek/Qwen/Llama know). */
export const ROLES = ['system', 'user', 'assistant', 'tool'] as const;

export interface TextRow { kind: 'text'; text: string; where: string }
export interface PromptCompletionRow { kind: 'prompt-completion'; prompt: string; completion: string; where: string }
export interface MessagesRow { kind: 'messages'; messages: ChatMessage[]; where: string }
/** One dataset row; `where` is "file:line" for messages that name it. */
export type Row = TextRow | PromptCompletionRow | MessagesRow;

/** A FormatError listing every bad line of a JSONL file (the message names each as file:line). */
export class JsonlError extends FormatError {
  constructor(message: string, readonly problems: readonly { line: number; message: string }[]) {
    super(message);
  }
}

const MAX_LISTED = 20;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** Validate one parsed line; returns the row or a message saying what is wrong. */
function toRow(v: unknown, where: string): Row | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `expected a JSON object, got ${describe(v)}`;
  const o = v as Record<string, unknown>;
  if ('messages' in o) {
    const ms = o['messages'];
    if (!Array.isArray(ms)) return `"messages" must be an array of {"role", "content"} objects, got ${describe(ms)}`;
    if (ms.length === 0) return '"messages" is empty';
    const messages: ChatMessage[] = [];
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i] as unknown;
      if (typeof m !== 'object' || m === null || Array.isArray(m)) return `messages[${i}] must be an object with "role" and "content", got ${describe(m)}`;
      const mo = m as Record<string, unknown>;
      if (!('role' in mo)) return `messages[${i}] has no "role"`;
      if (typeof mo['role'] !== 'string') return `messages[${i}].role must be a string, got ${describe(mo['role'])}`;
      if (!(ROLES as readonly string[]).includes(mo['role'])) return `messages[${i}].role: unknown role ${JSON.stringify(mo['role'])} (expected one of ${ROLES.join(', ')})`;
      if (!('content' in mo)) return `messages[${i}] has no "content"`;
      if (typeof mo['content'] !== 'string') return `messages[${i}].content must be a string, got ${describe(mo['content'])}`;
      messages.push({ ...mo, role: mo['role'], content: mo['content'] });
    }
    return { kind: 'messages', messages, where };
  }
  if ('prompt' in o || 'completion' in o) {
    if (!('prompt' in o)) return '"completion" without "prompt"';
    if (!('completion' in o)) return '"prompt" without "completion"';
    if (typeof o['prompt'] !== 'string') return `"prompt" must be a string, got ${describe(o['prompt'])}`;
    if (typeof o['completion'] !== 'string') return `"completion" must be a string, got ${describe(o['completion'])}`;
    return { kind: 'prompt-completion', prompt: o['prompt'], completion: o['completion'], where };
  }
  if ('text' in o) {
    if (typeof o['text'] !== 'string') return `"text" must be a string, got ${describe(o['text'])}`;
    return { kind: 'text', text: o['text'], where };
  }
  const keys = Object.keys(o);
  return `no "text", "prompt"/"completion" or "messages" field (keys: ${keys.length ? keys.map((k) => JSON.stringify(k)).join(', ') : 'none'})`;
}

/**
 * Parse JSONL text. Blank lines are skipped; every bad line is collected and reported together in one
 * JsonlError whose message names each as `source:line` (1-based) and what is wrong.
 */
export function parseJsonl(text: string, source: string): Row[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: Row[] = [];
  const problems: { line: number; message: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') continue;
    const where = `${source}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      problems.push({ line: i + 1, message: `invalid JSON: ${(e as Error).message}` });
      continue;
    }
    const r = toRow(v, where);
    if (typeof r === 'string') problems.push({ line: i + 1, message: r });
    else rows.push(r);
  }
  if (problems.length === 1) {
    const p = problems[0]!;
    throw new JsonlError(`${source}:${p.line}: ${p.message}`, problems);
  }
  if (problems.length > 1) {
    const listed = problems.slice(0, MAX_LISTED).map((p) => `  ${source}:${p.line}: ${p.message}`);
    if (problems.length > MAX_LISTED) listed.push(`  ... and ${problems.length - MAX_LISTED} more`);
    throw new JsonlError(`${source}: ${problems.length} bad lines:\n${listed.join('\n')}`, problems);
  }
  if (rows.length === 0) throw new JsonlError(`${source}: empty file (no rows; blank lines are skipped)`, []);
  return rows;
}

/** Read a JSONL dataset file (see parseJsonl for the rules and errors). */
export function readJsonl(path: string): Row[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FormatError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return parseJsonl(text, path);
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenization

/** A tokenized row: ids and unshifted labels (label = the id where trained, IGNORE_INDEX elsewhere). */
export interface Example {
  ids: Int32Array;
  labels: Int32Array;
  /** The row's "file:line". */
  where: string;
}

export interface TokenizeOptions {
  /** EOS id appended after `text` documents (default: the tokenizer config's eos_token). */
  eosId?: number;
  /**
   * Which assistant turns of a `messages` row carry loss: 'all' (default) or only the 'last'. Use 'last' when the
   * template rewrites earlier assistant turns (R1-style templates drop their <think> reasoning), so the
   * conversation cannot be one sequence in which every turn is both context and target.
   */
  turns?: 'all' | 'last';
  /** Extra chat-template variables (e.g. { enable_thinking: false }). */
  templateVars?: Record<string, unknown>;
}

/** The EOS id of a tokenizer (tokenizer_config.json eos_token), or a ConfigError. */
export function eosIdOf(tok: Tokenizer): number {
  const t = tok.config?.eosToken ?? null;
  const id = t === null ? null : tok.tokenToId(t);
  if (id === null) throw new ConfigError(`${tok.source}: the tokenizer has no eos_token (tokenizer_config.json); pass eosId`);
  return id;
}

/** The padding id: tokenizer_config.json pad_token, else eos_token, else 0 (padded positions carry no loss). */
export function padIdOf(tok: Tokenizer): number {
  const c = tok.config;
  for (const t of [c?.padToken ?? null, c?.eosToken ?? null]) {
    if (t === null) continue;
    const id = tok.tokenToId(t);
    if (id !== null) return id;
  }
  return 0;
}

/** Markers standing in for trained assistant contents while rendering; a template cannot produce them itself. */
function sentinel(i: number): string {
  return `\u0000r1ts-assistant-content-${i}\u0000`;
}

function preview(s: string, from: number, n = 48): string {
  return JSON.stringify(s.slice(from, from + n) + (s.length > from + n ? '…' : ''));
}

function renderAt(tpl: ChatTemplate, msgs: ChatMessage[], gen: boolean, where: string, vars?: Record<string, unknown>): string {
  try {
    return tpl.render(msgs, { addGenerationPrompt: gen, extra: vars });
  } catch (e) {
    if (e instanceof R1Error) throw new FormatError(`${where}: ${e.message}`);
    throw e;
  }
}

/**
 * Render `msgs` with the contents of the assistant turns in `verbatim` replaced by sentinels, then put the
 * contents back. Templates may rewrite an assistant message (R1's drops everything up to </think>), which is
 * right for history but would delete the very tokens SFT trains on; the template still decides everything
 * around the content (role markers, EOS).
 */
function renderVerbatim(tpl: ChatTemplate, msgs: ChatMessage[], verbatim: ReadonlySet<number>, where: string, vars?: Record<string, unknown>): string {
  const withS = msgs.map((m, i) => (verbatim.has(i) ? { ...m, content: sentinel(i) } : m));
  let text = renderAt(tpl, withS, false, where, vars);
  for (const i of verbatim) {
    if (i >= msgs.length) continue;
    const parts = text.split(sentinel(i));
    if (parts.length !== 2) {
      throw new FormatError(`${where}: the chat template ${tpl.where} renders the content of messages[${i}] ${parts.length - 1} times, not once; ` +
        'cannot locate the assistant turn to train on');
    }
    text = parts[0]! + (msgs[i]!.content ?? '') + parts[1]!;
  }
  return text;
}

/**
 * Split a conversation into [text, trained] pieces: for each trained assistant turn, the render of the messages
 * before it with the generation prompt (what inference feeds the model) must be a string prefix of the render
 * that includes the turn; the difference is trained. Every render must be a prefix of the whole conversation.
 */
function chatPieces(messages: ChatMessage[], tpl: ChatTemplate, where: string, opts: TokenizeOptions): [string, boolean][] {
  let last = -1;
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'assistant') { last = i; break; }
  if (last < 0) throw new FormatError(`${where}: no assistant message to train on`);
  // Messages after the last assistant turn would be context for nothing: dropped.
  const msgs = messages.slice(0, last + 1);
  const trained: number[] = [];
  if ((opts.turns ?? 'all') === 'last') trained.push(last);
  else msgs.forEach((m, i) => { if (m.role === 'assistant') trained.push(i); });
  const verbatim = new Set(trained);
  const vars = opts.templateVars;
  const full = renderVerbatim(tpl, msgs, verbatim, where, vars);
  const pieces: [string, boolean][] = [];
  let pos = 0;
  trained.forEach((i, k) => {
    const turn = `assistant turn ${k + 1} (messages[${i}])`;
    const prompt = renderAt(tpl, msgs.slice(0, i), true, where, vars);
    const upto = renderVerbatim(tpl, msgs.slice(0, i + 1), verbatim, where, vars);
    if (!upto.startsWith(prompt)) {
      let c = 0;
      while (c < prompt.length && prompt[c] === upto[c]) c++;
      if (c < pos) {
        throw new FormatError(`${where}: ${turn}: the template renders an earlier assistant turn differently as history ` +
          `(at character ${c}: ${preview(prompt, c)} in the prompt vs ${preview(upto, c)} as trained; R1-style templates drop ` +
          'the reasoning of earlier turns), so the turns cannot share one sequence: train only the last turn (turns: \'last\')');
      }
      // When they part inside what the generation prompt adds, say what the content has to start with.
      const base = renderAt(tpl, msgs.slice(0, i), false, where, vars);
      const hint = prompt.startsWith(base) && c >= base.length
        ? ` (the generation prompt adds ${JSON.stringify(prompt.slice(base.length))}; the assistant content must begin with what it ` +
          'adds after the role marker, e.g. "<think>\\n" for R1-style templates)'
        : '';
      throw new FormatError(`${where}: ${turn}: the prompt rendered with the generation prompt is not a prefix of the conversation ` +
        `rendered with this turn: at character ${c} the prompt has ${preview(prompt, c)} but the turn renders ${preview(upto, c)}${hint}`);
    }
    if (!full.startsWith(upto)) {
      let c = 0;
      while (c < upto.length && upto[c] === full[c]) c++;
      throw new FormatError(`${where}: ${turn}: the template renders the conversation up to this turn differently from the whole ` +
        `conversation (at character ${c}: ${preview(upto, c)} vs ${preview(full, c)}); ` +
        'if the template rewrites earlier assistant turns, train only the last turn (turns: \'last\')');
    }
    if (prompt.length < pos) {
      throw new FormatError(`${where}: ${turn}: the prompt before this turn (${prompt.length} characters) ends inside the previous ` +
        `assistant turn (which ends at ${pos}); the template rewrites earlier turns: train only the last turn (turns: 'last')`);
    }
    if (upto.length === prompt.length) throw new FormatError(`${where}: ${turn}: the turn renders no text to train on`);
    if (prompt.length > pos) pieces.push([full.slice(pos, prompt.length), false]);
    pieces.push([full.slice(prompt.length, upto.length), true]);
    pos = upto.length;
  });
  return pieces;
}

/**
 * Tokenize one row. Chat rows are rendered with the template and encoded without the tokenizer's own special
 * tokens (the template writes BOS; as HF apply_chat_template(tokenize=True)). Each piece is encoded on its
 * own and the ids concatenated, so the prompt tokens are exactly those inference would feed the model.
 */
export function tokenizeRow(row: Row, tok: Tokenizer, template: ChatTemplate | null, opts: TokenizeOptions = {}): Example {
  if (row.kind === 'text') {
    const ids = tok.encode(row.text, { addSpecialTokens: true });
    const eos = opts.eosId ?? eosIdOf(tok);
    if (ids[ids.length - 1] !== eos) ids.push(eos);
    return { ids: Int32Array.from(ids), labels: Int32Array.from(ids), where: row.where };
  }
  if (!template) throw new ConfigError(`${row.where}: a chat template is needed to tokenize ${row.kind} rows`);
  const messages: ChatMessage[] = row.kind === 'messages'
    ? row.messages
    : [{ role: 'user', content: row.prompt }, { role: 'assistant', content: row.completion }];
  const pieces = chatPieces(messages, template, row.where, opts);
  const ids: number[] = [], labels: number[] = [];
  for (const [text, trained] of pieces) {
    for (const id of tok.encode(text, { addSpecialTokens: false })) {
      ids.push(id);
      labels.push(trained ? id : IGNORE_INDEX);
    }
  }
  return { ids: Int32Array.from(ids), labels: Int32Array.from(labels), where: row.where };
}

/** Tokenize every row (errors name the row's file:line). */
export function tokenizeRows(rows: readonly Row[], tok: Tokenizer, template: ChatTemplate | null, opts: TokenizeOptions = {}): Example[] {
  return rows.map((r) => tokenizeRow(r, tok, template, opts));
}

// ---------------------------------------------------------------------------------------------------------------
// Batches

export interface DataStats {
  examples: number;
  /** Tokens of the examples after truncation. */
  tokens: number;
  /** Examples longer than seqLen + 1 tokens that were cut (padding mode, or packing with truncate). */
  truncated: number;
  /** Tokens removed by truncation. */
  truncatedTokens: number;
  /** Packing without truncation: examples longer than seqLen + 1 tokens, which span windows. */
  spanning: number;
  /** Packing: tokens at the end of the stream that did not fill a window and are not targets. */
  droppedTokens: number;
  /** Padding: padded positions. */
  paddingTokens: number;
  /** Positions with a loss (labels != -100) in the produced rows. */
  targets: number;
  rows: number;
}

/** A batch and how it was made. */
export type BatchWithStats = Batch & { stats: DataStats };

function emptyStats(): DataStats {
  return { examples: 0, tokens: 0, truncated: 0, truncatedTokens: 0, spanning: 0, droppedTokens: 0, paddingTokens: 0, targets: 0, rows: 0 };
}

function checkSeqLen(where: string, seqLen: number): void {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new ConfigError(`${where}: seqLen must be an integer >= 1, got ${seqLen}`);
}

/** A one-line warning for truncated or dropped data, or null when nothing was lost. */
export function statsWarning(s: DataStats, seqLen: number): string | null {
  const parts: string[] = [];
  if (s.truncated) parts.push(`${s.truncated} of ${s.examples} examples were longer than ${seqLen + 1} tokens and were truncated (${s.truncatedTokens} tokens dropped)`);
  if (s.spanning) parts.push(`${s.spanning} of ${s.examples} examples are longer than ${seqLen + 1} tokens and span packed windows`);
  return parts.length ? parts.join('; ') : null;
}

/**
 * Pack: concatenate the examples (in the given order) into one stream and cut it into windows of seqLen + 1
 * tokens that overlap by one token (stride seqLen), as llm.c's / nanoGPT's loaders do: inputs are a window's
 * first seqLen tokens, targets its last seqLen labels, so every adjacent pair of the stream is trained exactly
 * once. Masks travel with the tokens (a prompt token's label stays -100). The tail that does not fill a window
 * is dropped (stats.droppedTokens). Examples longer than seqLen + 1 are cut to that length when `truncate` is
 * set; otherwise they span windows (stats.spanning), as HF run_clm's group_texts does with long documents.
 * Attention is not masked across document boundaries (standard packing).
 */
export function packSequences(examples: readonly Example[], seqLen: number, opts: { truncate?: boolean } = {}): BatchWithStats {
  checkSeqLen('packSequences', seqLen);
  const st = emptyStats();
  st.examples = examples.length;
  const win = seqLen + 1;
  let total = 0;
  for (const e of examples) {
    const n = e.ids.length;
    if (n > win) {
      if (opts.truncate) { st.truncated++; st.truncatedTokens += n - win; total += win; } else { st.spanning++; total += n; }
    } else total += n;
  }
  st.tokens = total;
  const ids = new Int32Array(total), lab = new Int32Array(total);
  let p = 0;
  for (const e of examples) {
    const n = opts.truncate ? Math.min(e.ids.length, win) : e.ids.length;
    ids.set(e.ids.subarray(0, n), p);
    lab.set(e.labels.subarray(0, n), p);
    p += n;
  }
  const rows = total > 1 ? Math.floor((total - 1) / seqLen) : 0;
  st.rows = rows;
  st.droppedTokens = total - (rows > 0 ? rows * seqLen + 1 : 0);
  const outIds = new Int32Array(rows * seqLen), outLab = new Int32Array(rows * seqLen);
  for (let r = 0; r < rows; r++) {
    const s = r * seqLen;
    outIds.set(ids.subarray(s, s + seqLen), r * seqLen);
    outLab.set(lab.subarray(s + 1, s + seqLen + 1), r * seqLen);
  }
  for (let i = 0; i < outLab.length; i++) if (outLab[i] !== IGNORE_INDEX) st.targets++;
  return { ids: outIds, labels: outLab, batch: rows, seqLen, stats: st };
}

/**
 * Pad: one example per row, inputs ids[0..n-1), targets labels[1..n), right-padded to seqLen with padId and
 * label -100. Examples longer than seqLen + 1 tokens are truncated (counted in stats).
 */
export function padBatch(examples: readonly Example[], seqLen: number, padId: number): BatchWithStats {
  checkSeqLen('padBatch', seqLen);
  if (!Number.isInteger(padId) || padId < 0) throw new ConfigError(`padBatch: padId must be a non-negative integer, got ${padId}`);
  const st = emptyStats();
  const b = examples.length;
  st.examples = b;
  st.rows = b;
  const ids = new Int32Array(b * seqLen).fill(padId), labels = new Int32Array(b * seqLen).fill(IGNORE_INDEX);
  examples.forEach((e, r) => {
    let n = e.ids.length;
    if (n > seqLen + 1) { st.truncated++; st.truncatedTokens += n - seqLen - 1; n = seqLen + 1; }
    st.tokens += n;
    const m = Math.max(0, n - 1);
    ids.set(e.ids.subarray(0, m), r * seqLen);
    labels.set(e.labels.subarray(1, n), r * seqLen);
    st.paddingTokens += seqLen - m;
  });
  for (let i = 0; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) st.targets++;
  return { ids, labels, batch: b, seqLen, stats: st };
}

// ---------------------------------------------------------------------------------------------------------------
// Loader

export interface LoaderOptions {
  batchSize: number;
  seqLen: number;
  seed: number;
  /** Pack examples into windows (true) or pad one example per row (false). */
  pack: boolean;
  /** Padding id (pad mode; default 0 — padded positions carry no loss). */
  padId?: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Pack mode: cut examples to seqLen + 1 tokens instead of letting them span windows (default false). */
  truncate?: boolean;
  /** Skip an epoch's last batch when it has fewer than batchSize rows (default false: a smaller batch). */
  dropLast?: boolean;
}

/** Where the loader is: the next batch starts at row `position` of epoch `epoch`. */
export interface LoaderState {
  epoch: number;
  position: number;
}

/** A 32-bit finalizer (murmur3 fmix32): bijective, so (seed, epoch) pairs map to well-spread seeds. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Batches over epochs with a deterministic order: epoch e shuffles the examples with an Rng seeded from
 * (seed, e) alone, so the whole run is a function of (examples, options) and `{epoch, position}` is enough to
 * resume exactly — restore(state()) then next() yields what the uninterrupted run would have.
 */
export class DataLoader {
  readonly options: Readonly<Required<LoaderOptions>>;
  /** Rows (windows or padded examples) per epoch; the same every epoch. */
  readonly rowsPerEpoch: number;
  /** What packing/padding does to this dataset (truncation etc.), computed once. */
  readonly stats: DataStats;
  private epoch = 0;
  private position = 0;
  private cache: { epoch: number; order: number[]; packed: Batch | null } | null = null;

  constructor(private readonly examples: readonly Example[], opts: LoaderOptions) {
    const o: Required<LoaderOptions> = {
      padId: 0, shuffle: true, truncate: false, dropLast: false, ...opts,
    };
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new ConfigError(`DataLoader: batchSize must be an integer >= 1, got ${o.batchSize}`);
    checkSeqLen('DataLoader', o.seqLen);
    if (!Number.isFinite(o.seed)) throw new ConfigError(`DataLoader: seed must be a number, got ${o.seed}`);
    if (examples.length === 0) throw new ConfigError('DataLoader: no examples');
    this.options = o;
    // Stats and row count do not depend on the order, so epoch 0's natural order gives them.
    this.stats = o.pack ? packSequences(examples, o.seqLen, { truncate: o.truncate }).stats : padBatch(examples, o.seqLen, o.padId).stats;
    this.rowsPerEpoch = this.stats.rows;
    if (this.rowsPerEpoch === 0) {
      throw new ConfigError(`DataLoader: the dataset has ${this.stats.tokens} tokens, fewer than one packed window of seqLen + 1 = ${o.seqLen + 1}`);
    }
    if (o.dropLast && this.rowsPerEpoch < o.batchSize) {
      throw new ConfigError(`DataLoader: an epoch has ${this.rowsPerEpoch} rows, fewer than batchSize ${o.batchSize}, and dropLast is set`);
    }
  }

  /** The last position from which a batch can start in an epoch (exclusive). */
  private get endPosition(): number {
    const { batchSize, dropLast } = this.options;
    return dropLast ? this.rowsPerEpoch - (this.rowsPerEpoch % batchSize) : this.rowsPerEpoch;
  }

  private epochData(epoch: number): { order: number[]; packed: Batch | null } {
    if (this.cache && this.cache.epoch === epoch) return this.cache;
    const order = this.examples.map((_, i) => i);
    if (this.options.shuffle) {
      const s = this.options.seed;
      const seed32 = ((s >>> 0) ^ Math.floor(s / 4294967296)) >>> 0;
      new Rng(fmix32(fmix32(seed32) ^ fmix32(epoch + 0x9e3779b9))).shuffle(order);
    }
    const packed = this.options.pack
      ? packSequences(order.map((i) => this.examples[i]!), this.options.seqLen, { truncate: this.options.truncate })
      : null;
    this.cache = { epoch, order, packed };
    return this.cache;
  }

  next(): Batch {
    if (this.position >= this.endPosition) { this.epoch++; this.position = 0; }
    const { batchSize, seqLen, padId } = this.options;
    const n = Math.min(batchSize, this.rowsPerEpoch - this.position);
    const d = this.epochData(this.epoch);
    let out: Batch;
    if (d.packed) {
      const a = this.position * seqLen, b = (this.position + n) * seqLen;
      out = { ids: d.packed.ids.slice(a, b), labels: d.packed.labels.slice(a, b), batch: n, seqLen };
    } else {
      const p = padBatch(d.order.slice(this.position, this.position + n).map((i) => this.examples[i]!), seqLen, padId);
      out = { ids: p.ids, labels: p.labels, batch: p.batch, seqLen };
    }
    this.position += n;
    return out;
  }

  state(): LoaderState {
    if (this.position >= this.endPosition) return { epoch: this.epoch + 1, position: 0 };
    return { epoch: this.epoch, position: this.position };
  }

  restore(s: LoaderState): void {
    if (typeof s !== 'object' || s === null) throw new ConfigError('DataLoader.restore: state must be an object {epoch, position}');
    if (!Number.isInteger(s.epoch) || s.epoch < 0) throw new ConfigError(`DataLoader.restore: epoch must be an integer >= 0, got ${String(s.epoch)}`);
    if (!Number.isInteger(s.position) || s.position < 0 || s.position > this.rowsPerEpoch) {
      throw new ConfigError(`DataLoader.restore: position must be an integer in [0, ${this.rowsPerEpoch}] (rows per epoch), got ${String(s.position)}`);
    }
    this.epoch = s.epoch;
    this.position = s.position;
  }
}
