/**
 * The pipeline stages of an HF tokenizer.json other than the model: normalizers, pre-tokenizers,
 * post-processors and decoders (HF tokenizers `src/{normalizers,pre_tokenizers,processors,decoders}`).
 * Each parser validates its JSON and names the offending field; a component type we do not implement is
 * a FormatError, never a silent pass-through.
 */
import { BYTE_TO_CHAR, CHAR_TO_BYTE, toByteLevel } from './bytes.js';
import { Fields, type Json, type JsonObject } from './json.js';
import { compileOnigRegex, escapeRegex } from './regex.js';

// ---------------------------------------------------------------- normalizers

export type Normalizer = (s: string) => string;

export function parseNormalizer(v: Json | undefined, f: Fields, path = 'normalizer'): Normalizer | null {
  if (v === undefined || v === null) return null;
  const o = f.obj(v, path);
  const type = f.str(o['type'], `${path}.type`);
  switch (type) {
    case 'NFC': return (s) => s.normalize('NFC');
    case 'NFD': return (s) => s.normalize('NFD');
    case 'NFKC': return (s) => s.normalize('NFKC');
    case 'NFKD': return (s) => s.normalize('NFKD');
    case 'Lowercase': return (s) => s.toLowerCase();
    case 'Sequence': {
      const list = f.arr(o['normalizers'], `${path}.normalizers`).map((n, i) => parseNormalizer(n, f, `${path}.normalizers[${i}]`));
      const steps = list.filter((n): n is Normalizer => n !== null);
      if (steps.length === 0) return null;
      if (steps.length === 1) return steps[0]!;
      return (s) => { for (const n of steps) s = n(s); return s; };
    }
    case 'Prepend': {
      const p = f.str(o['prepend'], `${path}.prepend`);
      // HF normalizers/prepend.rs: only non-empty strings get the prefix.
      return (s) => (s.length ? p + s : s);
    }
    case 'Replace': {
      const re = patternRegex(o['pattern'], f, `${path}.pattern`);
      const content = f.str(o['content'], `${path}.content`);
      return (s) => s.replace(re, () => content);
    }
    case 'Strip': {
      const left = f.bool(o['strip_left'], `${path}.strip_left`, true);
      const right = f.bool(o['strip_right'], `${path}.strip_right`, true);
      return (s) => { if (left) s = s.replace(/^\p{White_Space}+/u, ''); if (right) s = s.replace(/\p{White_Space}+$/u, ''); return s; };
    }
    default:
      return f.fail(`${path}.type`, `unsupported normalizer type ${JSON.stringify(type)} (supported: NFC, NFD, NFKC, NFKD, Lowercase, Sequence, Prepend, Replace, Strip)`);
  }
}

function patternRegex(v: Json | undefined, f: Fields, path: string): RegExp {
  const p = f.obj(v, path);
  if (typeof p['Regex'] === 'string') return compileOnigRegex(p['Regex'], `${f.source}: ${path}.Regex`);
  if (typeof p['String'] === 'string') return new RegExp(escapeRegex(p['String']), 'gu');
  return f.fail(path, 'expected {"Regex": string} or {"String": string}');
}

// ---------------------------------------------------------------- pre-tokenizers

/** One pre-tokenization step: splits `s` and appends the non-empty pieces to `out`. */
export type PreTokenStep = (s: string, out: string[]) => void;

export interface PreTokenizer {
  steps: PreTokenStep[];
  /**
   * True when the last step is ByteLevel: its byte -> character mapping is left to the model, which reads
   * the UTF-8 bytes of each piece directly (same ids, no intermediate strings).
   */
  byteLevelFinal: boolean;
}

type Behavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS = new Set<Behavior>(['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']);

/** HF `NormalizedString::split` with a pattern (pre_tokenizers/split.rs + tokenizer/normalizer.rs). */
export function splitStep(re: RegExp, behavior: Behavior, invert: boolean): PreTokenStep {
  if (behavior === 'Isolated' && !invert) {
    // The hot path of every byte-level tokenizer: matches and the gaps between them, in order.
    return (s, out) => {
      re.lastIndex = 0;
      let prev = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(s)) !== null) {
        const start = m.index, end = start + m[0].length;
        if (end === start) { re.lastIndex = end + (s.codePointAt(end)! > 0xffff ? 2 : 1); continue; }
        if (start > prev) out.push(s.slice(prev, start));
        out.push(m[0]);
        prev = end;
      }
      if (prev < s.length) out.push(prev === 0 ? s : s.slice(prev));
    };
  }
  return (s, out) => {
    // (start, end, isMatch) covering s, as Pattern::find_matches.
    const parts: [number, number, boolean][] = [];
    re.lastIndex = 0;
    let prev = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(s)) !== null) {
      const start = m.index, end = start + m[0].length;
      if (end === start) re.lastIndex = end + (s.codePointAt(end)! > 0xffff ? 2 : 1);
      if (start !== prev) parts.push([prev, start, false]);
      parts.push([start, end, true]);
      prev = end;
    }
    if (prev !== s.length) parts.push([prev, s.length, false]);
    if (invert) for (const p of parts) p[2] = !p[2];
    let spans: [number, number][] = [];
    if (behavior === 'Isolated') spans = parts.map(([a, b]) => [a, b]);
    else if (behavior === 'Removed') spans = parts.filter((p) => !p[2]).map(([a, b]) => [a, b]);
    else if (behavior === 'Contiguous') {
      let prevMatch = false;
      for (const [a, b, isM] of parts) {
        if (isM === prevMatch && spans.length) spans[spans.length - 1]![1] = b;
        else spans.push([a, b]);
        prevMatch = isM;
      }
    } else if (behavior === 'MergedWithPrevious') {
      let prevMatch = false;
      for (const [a, b, isM] of parts) {
        if (isM && !prevMatch && spans.length) spans[spans.length - 1]![1] = b;
        else spans.push([a, b]);
        prevMatch = isM;
      }
    } else {
      let prevMatch = false;
      for (let i = parts.length - 1; i >= 0; i--) {
        const [a, b, isM] = parts[i]!;
        if (isM && !prevMatch && spans.length) spans[spans.length - 1]![0] = a;
        else spans.push([a, b]);
        prevMatch = isM;
      }
      spans.reverse();
    }
    for (const [a, b] of spans) if (b > a) out.push(s.slice(a, b));
  };
}

/** GPT-2's pattern, used by ByteLevel when use_regex is true (pre_tokenizers/byte_level.rs). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

export function parsePreTokenizer(v: Json | undefined, f: Fields): PreTokenizer {
  const steps: PreTokenStep[] = [];
  let byteLevelFinal = false;
  const add = (v: Json, path: string, last: boolean): void => {
    const o = f.obj(v, path);
    const type = f.str(o['type'], `${path}.type`);
    switch (type) {
      case 'Sequence': {
        const list = f.arr(o['pretokenizers'], `${path}.pretokenizers`);
        list.forEach((p, i) => add(p, `${path}.pretokenizers[${i}]`, last && i === list.length - 1));
        return;
      }
      case 'Split': {
        const re = patternRegex(o['pattern'], f, `${path}.pattern`);
        const behavior = f.str(o['behavior'], `${path}.behavior`) as Behavior;
        if (!BEHAVIORS.has(behavior)) f.fail(`${path}.behavior`, `expected one of ${[...BEHAVIORS].join(', ')}, got ${JSON.stringify(behavior)}`);
        steps.push(splitStep(re, behavior, f.bool(o['invert'], `${path}.invert`, false)));
        return;
      }
      case 'Digits': {
        const individual = f.bool(o['individual_digits'], `${path}.individual_digits`, false);
        // Rust char::is_numeric is the N general category; Contiguous joins runs of digits.
        steps.push(splitStep(individual ? /\p{N}/gu : /\p{N}+/gu, 'Isolated', false));
        return;
      }
      case 'ByteLevel': {
        const prefix = f.bool(o['add_prefix_space'], `${path}.add_prefix_space`, true);
        const useRegex = f.bool(o['use_regex'], `${path}.use_regex`, true);
        if (prefix) steps.push((s, out) => { out.push(s.charCodeAt(0) === 32 ? s : ' ' + s); });
        if (useRegex) steps.push(splitStep(compileOnigRegex(GPT2_PATTERN, 'ByteLevel'), 'Isolated', false));
        if (last) byteLevelFinal = true;
        else steps.push((s, out) => { out.push(toByteLevel(s)); });
        return;
      }
      case 'WhitespaceSplit':
        steps.push(splitStep(/\p{White_Space}+/gu, 'Removed', false));
        return;
      case 'Whitespace':
        // HF pre_tokenizers/whitespace.rs: \w+|[^\w\s]+ kept, the rest removed.
        steps.push(splitStep(compileOnigRegex('\\w+|[^\\w\\s]+', `${path}`), 'Removed', true));
        return;
      default:
        f.fail(`${path}.type`, `unsupported pre-tokenizer type ${JSON.stringify(type)} (supported: Sequence, Split, Digits, ByteLevel, Whitespace, WhitespaceSplit)`);
    }
  };
  if (v !== undefined && v !== null) add(v, 'pre_tokenizer', true);
  return { steps, byteLevelFinal };
}

// ---------------------------------------------------------------- post-processors

/** Adds the special tokens around a single sequence of ids (pairs are not needed by r1ts). */
export type PostProcessor = (ids: number[]) => number[];

export function parsePostProcessor(v: Json | undefined, f: Fields, path = 'post_processor'): PostProcessor | null {
  if (v === undefined || v === null) return null;
  const o = f.obj(v, path);
  const type = f.str(o['type'], `${path}.type`);
  switch (type) {
    case 'ByteLevel': return null; // only trims offsets; adds no tokens
    case 'Sequence': {
      const list = f.arr(o['processors'], `${path}.processors`).map((p, i) => parsePostProcessor(p, f, `${path}.processors[${i}]`)).filter((p): p is PostProcessor => p !== null);
      if (list.length === 0) return null;
      return (ids) => { for (const p of list) ids = p(ids); return ids; };
    }
    case 'TemplateProcessing': {
      const specials = f.obj(o['special_tokens'] ?? {}, `${path}.special_tokens`);
      const single = f.arr(o['single'], `${path}.single`);
      const parts: (number[] | 'A')[] = single.map((p, i) => {
        const po = f.obj(p, `${path}.single[${i}]`);
        if (po['Sequence'] !== undefined) {
          const id = f.str(f.obj(po['Sequence'], `${path}.single[${i}].Sequence`)['id'], `${path}.single[${i}].Sequence.id`);
          if (id !== 'A') f.fail(`${path}.single[${i}].Sequence.id`, `a single-sequence template may only reference "A", got ${JSON.stringify(id)}`);
          return 'A';
        }
        const name = f.str(f.obj(po['SpecialToken'], `${path}.single[${i}].SpecialToken`)['id'], `${path}.single[${i}].SpecialToken.id`);
        const st = f.obj(specials[name], `${path}.special_tokens[${JSON.stringify(name)}]`);
        return f.arr(st['ids'], `${path}.special_tokens[${JSON.stringify(name)}].ids`).map((x, k) => f.int(x, `${path}.special_tokens[${JSON.stringify(name)}].ids[${k}]`));
      });
      return (ids) => {
        const out: number[] = [];
        for (const p of parts) { if (p === 'A') for (const x of ids) out.push(x); else for (const x of p) out.push(x); }
        return out;
      };
    }
    case 'BertProcessing':
    case 'RobertaProcessing': {
      const cls = f.arr(o['cls'], `${path}.cls`), sep = f.arr(o['sep'], `${path}.sep`);
      const clsId = f.int(cls[1], `${path}.cls[1]`), sepId = f.int(sep[1], `${path}.sep[1]`);
      return (ids) => [clsId, ...ids, sepId];
    }
    default:
      return f.fail(`${path}.type`, `unsupported post-processor type ${JSON.stringify(type)} (supported: ByteLevel, TemplateProcessing, Sequence, BertProcessing, RobertaProcessing)`);
  }
}

// ---------------------------------------------------------------- decoders

/** HF `Decoder::decode_chain`: tokens in, strings out (joined by the caller). */
export interface Decoder {
  chain(tokens: string[]): string[];
  /** True for a plain ByteLevel decoder, which lets streaming decode go byte by byte. */
  byteLevel: boolean;
}

/** The bytes a ByteLevel decoder produces for one token (decoders/byte_level.rs: raw UTF-8 if any char is not a byte char). */
export function byteLevelTokenBytes(t: string, out: number[]): void {
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c >= 0x200 || CHAR_TO_BYTE[c]! < 0) {
      for (const b of new TextEncoder().encode(t)) out.push(b);
      return;
    }
  }
  for (let i = 0; i < t.length; i++) out.push(CHAR_TO_BYTE[t.charCodeAt(i)]!);
}

const lossy = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export function parseDecoder(v: Json | undefined, f: Fields, path = 'decoder'): Decoder | null {
  if (v === undefined || v === null) return null;
  const o = f.obj(v, path);
  const type = f.str(o['type'], `${path}.type`);
  switch (type) {
    case 'ByteLevel':
      return {
        byteLevel: true,
        chain(tokens) {
          const bytes: number[] = [];
          for (const t of tokens) byteLevelTokenBytes(t, bytes);
          return [lossy.decode(Uint8Array.from(bytes))];
        },
      };
    case 'Sequence': {
      const list = f.arr(o['decoders'], `${path}.decoders`).map((d, i) => parseDecoder(d, f, `${path}.decoders[${i}]`)).filter((d): d is Decoder => d !== null);
      return { byteLevel: list.length === 1 && list[0]!.byteLevel, chain(tokens) { for (const d of list) tokens = d.chain(tokens); return tokens; } };
    }
    case 'Replace': {
      const re = patternRegex(o['pattern'], f, `${path}.pattern`);
      const content = f.str(o['content'], `${path}.content`);
      return { byteLevel: false, chain: (tokens) => tokens.map((t) => t.replace(re, () => content)) };
    }
    case 'Fuse':
      return { byteLevel: false, chain: (tokens) => [tokens.join('')] };
    case 'Strip': {
      const content = f.str(o['content'], `${path}.content`);
      const start = f.optInt(o['start'], `${path}.start`, 0), stop = f.optInt(o['stop'], `${path}.stop`, 0);
      return {
        byteLevel: false,
        chain: (tokens) => tokens.map((t) => {
          const cs = Array.from(t);
          let a = 0, b = cs.length;
          while (a < start && a < b && cs[a] === content) a++;
          while (cs.length - b < stop && b > a && cs[b - 1] === content) b--;
          return cs.slice(a, b).join('');
        }),
      };
    }
    case 'ByteFallback':
      return {
        byteLevel: false,
        chain(tokens) {
          const out: string[] = [];
          let pending: number[] = [];
          const flush = (): void => {
            if (!pending.length) return;
            try { out.push(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(pending))); }
            catch { out.push('\ufffd'.repeat(pending.length)); }
            pending = [];
          };
          for (const t of tokens) {
            const m = /^<0x([0-9A-F]{2})>$/.exec(t);
            if (m) pending.push(parseInt(m[1]!, 16));
            else { flush(); out.push(t); }
          }
          flush();
          return out;
        },
      };
    case 'Metaspace': {
      const rep = f.str(o['replacement'] ?? '▁', `${path}.replacement`);
      const scheme = o['prepend_scheme'] !== undefined ? f.str(o['prepend_scheme'], `${path}.prepend_scheme`) : (f.bool(o['add_prefix_space'], `${path}.add_prefix_space`, true) ? 'always' : 'never');
      return {
        byteLevel: false,
        chain: (tokens) => tokens.map((t, i) => {
          let s = t.split(rep).join(' ');
          if (i === 0 && scheme !== 'never' && s.startsWith(' ')) s = s.slice(1);
          return s;
        }),
      };
    }
    default:
      return f.fail(`${path}.type`, `unsupported decoder type ${JSON.stringify(type)} (supported: ByteLevel, Sequence, Replace, Fuse, Strip, ByteFallback, Metaspace)`);
  }
}

export { BYTE_TO_CHAR };
export type { JsonObject };
