/**
 * The BPE model of HF tokenizers (`tokenizers/src/models/bpe/{model.rs,word.rs}`), re-implemented for speed:
 * symbols are token ids, merges live in an open-addressing hash table keyed by the id pair, and a word is
 * merged by repeatedly applying the lowest-ranked adjacent pair, leftmost first. That is exactly the order
 * HF's `Word::merge_all` pops from its (rank, position) min-heap; short words use a linear scan, long ones
 * a heap, and both are tested against each other.
 */
import { FormatError } from '../../errors.js';
import { BYTE_TO_CHAR, utf8Encode } from './bytes.js';
import { Fields, type JsonObject } from './json.js';

/** Open-addressing map (idA, idB) -> merge rank; the merged id is `mergeIds[rank]`. */
class PairTable {
  private keysA: Int32Array;
  private keysB: Int32Array;
  private vals: Int32Array;
  private mask: number;
  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap <<= 1;
    this.keysA = new Int32Array(cap).fill(-1);
    this.keysB = new Int32Array(cap);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
  }
  private slot(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) & this.mask;
  }
  set(a: number, b: number, v: number): void {
    let s = this.slot(a, b);
    for (;;) {
      const k = this.keysA[s]!;
      if (k === -1) { this.keysA[s] = a; this.keysB[s] = b; this.vals[s] = v; return; }
      if (k === a && this.keysB[s] === b) { this.vals[s] = v; return; }
      s = (s + 1) & this.mask;
    }
  }
  /** The rank of merging (a, b), or -1. */
  get(a: number, b: number): number {
    let s = this.slot(a, b);
    for (;;) {
      const k = this.keysA[s]!;
      if (k === -1) return -1;
      if (k === a && this.keysB[s] === b) return this.vals[s]!;
      s = (s + 1) & this.mask;
    }
  }
}

export interface BpeOptions {
  unkToken: string | null;
  continuingSubwordPrefix: string | null;
  endOfWordSuffix: string | null;
  fuseUnk: boolean;
  byteFallback: boolean;
  ignoreMerges: boolean;
}

const LINEAR_MAX = 64;

export class BpeModel {
  readonly vocab: Map<string, number>;
  /** id -> token string (sparse ids allowed). */
  readonly idToToken: (string | undefined)[];
  readonly options: BpeOptions;
  readonly unkId: number;
  private pairs: PairTable;
  private mergeIds: Int32Array;
  readonly mergeCount: number;
  /** Byte -> id of its byte-level character, for words handed over as raw text (-1: not in vocab). */
  private byteIds = new Int32Array(256);
  /** True when every byte char is in the vocab and no prefix/suffix applies: the allocation-free path. */
  private plainBytes: boolean;
  // Scratch buffers reused across words (grown on demand).
  private buf = new Uint8Array(1024);
  private sym = new Int32Array(1024);
  private prev = new Int32Array(1024);
  private next = new Int32Array(1024);
  private heap = new Float64Array(3072);

  constructor(vocab: Map<string, number>, merges: [string, string][], options: BpeOptions, source = 'tokenizer.json') {
    this.vocab = vocab;
    this.options = options;
    this.idToToken = [];
    for (const [t, id] of vocab) this.idToToken[id] = t;
    if (options.unkToken !== null) {
      const u = vocab.get(options.unkToken);
      if (u === undefined) throw new FormatError(`${source}: model.unk_token ${JSON.stringify(options.unkToken)} is not in model.vocab`);
      this.unkId = u;
    } else this.unkId = -1;
    this.pairs = new PairTable(merges.length);
    this.mergeIds = new Int32Array(merges.length);
    this.mergeCount = merges.length;
    const prefix = options.continuingSubwordPrefix ?? '';
    for (let r = 0; r < merges.length; r++) {
      const [a, b] = merges[r]!;
      const ia = vocab.get(a), ib = vocab.get(b);
      if (ia === undefined || ib === undefined) {
        throw new FormatError(`${source}: model.merges[${r}]: ${JSON.stringify(ia === undefined ? a : b)} is not in model.vocab`);
      }
      // HF model.rs: the merged token drops the right part's continuing-subword prefix.
      const merged = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
      const im = vocab.get(merged);
      if (im === undefined) throw new FormatError(`${source}: model.merges[${r}]: merged token ${JSON.stringify(merged)} is not in model.vocab`);
      this.pairs.set(ia, ib, r); // later duplicates win, as HF's HashMap collect does
      this.mergeIds[r] = im;
    }
    let plain = !options.continuingSubwordPrefix && !options.endOfWordSuffix;
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(BYTE_TO_CHAR[b]!);
      this.byteIds[b] = id ?? -1;
      if (id === undefined) plain = false;
    }
    this.plainBytes = plain;
  }

  /** Parse and validate a tokenizer.json `model` object of type BPE. */
  static fromJSON(model: JsonObject, f: Fields): BpeModel {
    const vocabObj = f.obj(model['vocab'], 'model.vocab');
    const vocab = new Map<string, number>();
    for (const k of Object.keys(vocabObj)) vocab.set(k, f.int(vocabObj[k], `model.vocab[${JSON.stringify(k)}]`));
    const rawMerges = f.arr(model['merges'] ?? [], 'model.merges');
    const merges: [string, string][] = new Array(rawMerges.length);
    for (let i = 0; i < rawMerges.length; i++) {
      const m = rawMerges[i];
      if (typeof m === 'string') {
        // Legacy "a b" form (tokenizers < 0.20): split on the first space.
        const sp = m.indexOf(' ');
        if (sp <= 0 || sp === m.length - 1 || m.indexOf(' ', sp + 1) !== -1) f.fail(`model.merges[${i}]`, `expected "left right", got ${JSON.stringify(m)}`);
        merges[i] = [m.slice(0, sp), m.slice(sp + 1)];
      } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
        merges[i] = [m[0], m[1]];
      } else f.fail(`model.merges[${i}]`, 'expected a "left right" string or a [left, right] pair of strings');
    }
    if (model['dropout'] !== undefined && model['dropout'] !== null && model['dropout'] !== 0) {
      f.fail('model.dropout', 'BPE dropout is a training-time option and is not supported for encoding');
    }
    return new BpeModel(vocab, merges, {
      unkToken: f.optStr(model['unk_token'], 'model.unk_token'),
      continuingSubwordPrefix: f.optStr(model['continuing_subword_prefix'], 'model.continuing_subword_prefix') || null,
      endOfWordSuffix: f.optStr(model['end_of_word_suffix'], 'model.end_of_word_suffix') || null,
      fuseUnk: f.bool(model['fuse_unk'], 'model.fuse_unk', false),
      byteFallback: f.bool(model['byte_fallback'], 'model.byte_fallback', false),
      ignoreMerges: f.bool(model['ignore_merges'], 'model.ignore_merges', false),
    }, f.source);
  }

  get vocabSize(): number { return this.vocab.size; }

  private grow(n: number): void {
    if (this.sym.length >= n) return;
    let cap = this.sym.length;
    while (cap < n) cap *= 2;
    this.sym = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.heap = new Float64Array(cap * 3);
  }

  /**
   * Encode one pre-tokenized piece given as raw text whose UTF-8 bytes are the word's byte-level symbols
   * (the ByteLevel pre-tokenizer fused into the model: no byte-level string is built). Appends ids to out.
   */
  encodeRawBytes(text: string, out: number[]): void {
    if (this.buf.length < text.length * 3) this.buf = new Uint8Array(text.length * 3 * 2);
    const n = utf8Encode(text, 0, text.length, this.buf);
    if (n === 0) return;
    if (this.options.ignoreMerges || !this.plainBytes) {
      let s = '';
      for (let i = 0; i < n; i++) s += BYTE_TO_CHAR[this.buf[i]!];
      this.encodeWord(s, out);
      return;
    }
    this.grow(n);
    const sym = this.sym;
    for (let i = 0; i < n; i++) sym[i] = this.byteIds[this.buf[i]!]!;
    this.mergeSymbols(n, out);
  }

  /** Encode one word (a string in the model's alphabet, e.g. byte-level characters), HF `merge_word`. */
  encodeWord(word: string, out: number[]): void {
    if (word.length === 0) return;
    if (this.options.ignoreMerges) {
      const id = this.vocab.get(word);
      if (id !== undefined) { out.push(id); return; }
    }
    const chars = Array.from(word);
    this.grow(chars.length * 4 + 4);
    const { continuingSubwordPrefix: prefix, endOfWordSuffix: suffix, unkToken, fuseUnk, byteFallback } = this.options;
    const sym = this.sym;
    let n = 0;
    let pendingUnk = false; // an unk symbol waiting to be pushed (so fuse_unk can extend it)
    for (let i = 0; i < chars.length; i++) {
      let s = chars[i]!;
      if (i > 0 && prefix) s = prefix + s;
      if (i === chars.length - 1 && suffix) s = s + suffix;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        if (pendingUnk) { sym[n++] = this.unkId; pendingUnk = false; }
        sym[n++] = id;
        continue;
      }
      if (byteFallback) {
        const bytes = new TextEncoder().encode(chars[i]!);
        const ids: number[] = [];
        for (const b of bytes) {
          const bid = this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
          if (bid === undefined) break;
          ids.push(bid);
        }
        if (ids.length === bytes.length) {
          if (pendingUnk) { sym[n++] = this.unkId; pendingUnk = false; }
          for (const b of ids) sym[n++] = b;
          continue;
        }
      }
      if (unkToken !== null) {
        if (pendingUnk && !fuseUnk) sym[n++] = this.unkId;
        pendingUnk = true;
      }
      // No unk token: HF silently drops the character.
    }
    if (pendingUnk) sym[n++] = this.unkId;
    if (n > 0) this.mergeSymbols(n, out);
  }

  /** Merge sym[0..n) in place and append the result to out. */
  private mergeSymbols(n: number, out: number[]): void {
    if (n === 1) { out.push(this.sym[0]!); return; }
    if (n <= LINEAR_MAX) this.mergeLinear(n, out);
    else this.mergeHeap(n, out);
  }

  /** O(n^2) scan: fastest for the short words that dominate text. */
  private mergeLinear(n: number, out: number[]): void {
    const sym = this.sym, pairs = this.pairs, mergeIds = this.mergeIds;
    for (;;) {
      let best = 0x7fffffff, at = -1;
      let a = sym[0]!;
      for (let i = 0; i < n - 1; i++) {
        const b = sym[i + 1]!;
        const r = pairs.get(a, b);
        if (r !== -1 && r < best) { best = r; at = i; }
        a = b;
      }
      if (at < 0) break;
      sym[at] = mergeIds[best]!;
      for (let i = at + 1; i < n - 1; i++) sym[i] = sym[i + 1]!;
      n--;
    }
    for (let i = 0; i < n; i++) out.push(sym[i]!);
  }

  /** Linked list + (rank, position) min-heap, as HF word.rs; stale heap entries are skipped. */
  private mergeHeap(n: number, out: number[]): void {
    const sym = this.sym, prev = this.prev, next = this.next, pairs = this.pairs, mergeIds = this.mergeIds;
    const heap = this.heap;
    let hn = 0;
    const POS = 4294967296; // key = rank * 2^32 + pos, ordered by rank then position
    const push = (key: number): void => {
      let i = hn++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heap[p]! <= key) break;
        heap[i] = heap[p]!;
        i = p;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0]!;
      const last = heap[--hn]!;
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= hn) break;
        if (c + 1 < hn && heap[c + 1]! < heap[c]!) c++;
        if (heap[c]! >= last) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
      return top;
    };
    for (let i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
    for (let i = 0; i < n - 1; i++) {
      const r = pairs.get(sym[i]!, sym[i + 1]!);
      if (r !== -1) push(r * POS + i);
    }
    while (hn > 0) {
      const key = pop();
      const rank = Math.floor(key / POS);
      const pos = key - rank * POS;
      if (sym[pos] === -1) continue; // removed
      const nx = next[pos]!;
      if (nx === -1) continue;
      if (pairs.get(sym[pos]!, sym[nx]!) !== rank) continue; // stale entry
      sym[pos] = mergeIds[rank]!;
      sym[nx] = -1;
      const nn = next[nx]!;
      next[pos] = nn;
      if (nn !== -1) prev[nn] = pos;
      const pv = prev[pos]!;
      if (pv !== -1) {
        const r = pairs.get(sym[pv]!, sym[pos]!);
        if (r !== -1) push(r * POS + pv);
      }
      if (nn !== -1) {
        const r = pairs.get(sym[pos]!, sym[nn]!);
        if (r !== -1) push(r * POS + pos);
      }
    }
    for (let i = 0; i !== -1; i = next[i]!) out.push(sym[i]!);
  }

  /** Test hook: merge the same symbols with both strategies. */
  debugMergeBoth(ids: number[]): [number[], number[]] {
    this.grow(ids.length);
    const a: number[] = [], b: number[] = [];
    this.sym.set(ids); this.mergeLinear(ids.length, a);
    this.sym.set(ids); this.mergeHeap(ids.length, b);
    return [a, b];
  }
}
