/**
 * Translate the Oniguruma regexes found in tokenizer.json (HF tokenizers compiles `Split` patterns with the
 * `onig` crate, Ruby syntax, UTF-8) into JavaScript RegExps with the `u` flag that match exactly the same
 * strings. The differences that matter for real tokenizer files:
 *  - `\s`/`\S`: Onig's Unicode `\s` is the White_Space property (includes U+0085, excludes U+FEFF), JS `\s`
 *    is not (it has U+FEFF and lacks U+0085). We emit `\p{White_Space}` / `\P{White_Space}`.
 *  - `\d`, `\w`: Unicode in Onig, ASCII in JS. We emit `\p{Nd}` and `[\p{L}\p{M}\p{Nd}\p{Pc}]`.
 *  - `(?i:...)` (Qwen2/GPT-4o contractions) is not supported by Node 20's RegExp: letters inside the group
 *    are expanded to case classes, including Unicode simple case folds onto ASCII (ſ U+017F folds to s,
 *    K U+212A to k) because Onig's case-insensitive match uses Unicode case folding.
 *  - identity escapes such as `\#`, `\&`, `\~` are legal in Onig but a SyntaxError under `u`; they are
 *    emitted as `\u{..}` escapes, valid both inside and outside classes.
 * Anything we cannot translate faithfully (atomic groups, possessive quantifiers, nested classes, inline
 * option changes other than `(?i:`) is refused with a FormatError rather than silently approximated.
 */
import { FormatError } from '../../errors.js';

const FOLDS: Record<string, string> = { s: 'sSſ', k: 'kKK' };
function caseChars(c: string): string {
  const lower = c.toLowerCase();
  if (FOLDS[lower]) return FOLDS[lower]!;
  const upper = c.toUpperCase();
  return lower === upper ? c : lower + upper;
}

/** Translate an Onig pattern to JS source (for `new RegExp(src, 'gu')`). `where` names the field for errors. */
export function translateOnigRegex(pattern: string, where: string): string {
  const fail = (msg: string): never => { throw new FormatError(`${where}: regex ${JSON.stringify(pattern)}: ${msg}`); };
  let out = '';
  let inClass = false;
  // Paren stack: true for a (?i: group, so we know when case-insensitivity ends.
  const parens: boolean[] = [];
  let ciDepth = 0;
  const cps = Array.from(pattern);
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === '\\') {
      const e = cps[++i];
      if (e === undefined) fail('trailing backslash');
      switch (e) {
        case 's': out += '\\p{White_Space}'; break;
        case 'S': out += '\\P{White_Space}'; break;
        case 'd': out += '\\p{Nd}'; break;
        case 'D': out += '\\P{Nd}'; break;
        case 'w': out += inClass ? '\\p{L}\\p{M}\\p{Nd}\\p{Pc}' : '[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]'; break;
        case 'W': if (inClass) fail('\\W inside a character class is not supported'); out += '[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}]'; break;
        case 'h': out += inClass ? '0-9a-fA-F' : '[0-9a-fA-F]'; break;
        case 'A': if (inClass) fail('\\A inside a class'); out += '^'; break;
        case 'z': if (inClass) fail('\\z inside a class'); out += '$'; break;
        case 'Z': if (inClass) fail('\\Z inside a class'); out += '(?=\\n?$)'; break;
        case 'p': case 'P': {
          if (cps[i + 1] !== '{') fail(`\\${e} must be followed by {Name}`);
          let j = i + 2, name = '';
          while (j < cps.length && cps[j] !== '}') name += cps[j++];
          if (j >= cps.length) fail(`unterminated \\${e}{`);
          let neg = e === 'P';
          if (name.startsWith('^')) { neg = !neg; name = name.slice(1); }
          out += `\\${neg ? 'P' : 'p'}{${name}}`;
          i = j;
          break;
        }
        case 'x': {
          if (cps[i + 1] === '{') {
            let j = i + 2, hex = '';
            while (j < cps.length && cps[j] !== '}') hex += cps[j++];
            if (!/^[0-9a-fA-F]{1,6}$/.test(hex)) fail(`bad \\x{${hex}}`);
            out += `\\u{${hex}}`;
            i = j;
          } else {
            const hex = (cps[i + 1] ?? '') + (cps[i + 2] ?? '');
            if (!/^[0-9a-fA-F]{2}$/.test(hex)) fail('\\x needs two hex digits');
            out += `\\x${hex}`;
            i += 2;
          }
          break;
        }
        case 'n': case 'r': case 't': case 'f': case 'v': case 'b': case 'B': case 'u':
          out += '\\' + e; break;
        default:
          if (/[0-9]/.test(e)) { out += '\\' + e; break; }
          if (/[A-Za-z]/.test(e)) fail(`unsupported escape \\${e}`);
          out += `\\u{${e.codePointAt(0)!.toString(16)}}`;
      }
      continue;
    }
    if (inClass) {
      if (c === ']') { inClass = false; out += c; continue; }
      if (c === '[') fail('nested character classes are not supported');
      if (ciDepth > 0 && /[A-Za-z]/.test(c)) { out += caseChars(c); continue; }
      out += c;
      continue;
    }
    switch (c) {
      case '[':
        inClass = true;
        out += c;
        if (cps[i + 1] === '^') { out += '^'; i++; }
        // A leading ']' is a literal in Onig; JS would end the class.
        if (cps[i + 1] === ']') { out += '\\]'; i++; }
        continue;
      case '(': {
        if (cps[i + 1] === '?') {
          const rest = cps.slice(i + 2, i + 5).join('');
          if (rest.startsWith('i:')) { parens.push(true); ciDepth++; out += '(?:'; i += 3; continue; }
          if (rest.startsWith(':') || rest.startsWith('=') || rest.startsWith('!') || rest.startsWith('<=') || rest.startsWith('<!')) {
            parens.push(false); out += '(?'; i += 1; continue;
          }
          if (rest.startsWith('<')) { parens.push(false); out += '(?'; i += 1; continue; }
          fail(`unsupported group syntax (?${rest}`);
        }
        parens.push(false);
        out += c;
        continue;
      }
      case ')': {
        const ci = parens.pop();
        if (ci === undefined) fail('unbalanced )');
        if (ci) ciDepth--;
        out += c;
        continue;
      }
      case '+': case '*': case '?':
        if (cps[i + 1] === '+') fail('possessive quantifiers are not supported');
        out += c;
        continue;
      default:
        if (ciDepth > 0 && /[A-Za-z]/.test(c)) {
          const cc = caseChars(c);
          out += cc.length > 1 ? `[${cc}]` : cc;
          continue;
        }
        out += c;
    }
  }
  if (inClass) fail('unterminated character class');
  if (parens.length) fail('unbalanced (');
  return out;
}

/** Compile an Onig pattern into a global Unicode JS RegExp; a pattern JS rejects is a FormatError naming `where`. */
export function compileOnigRegex(pattern: string, where: string): RegExp {
  const src = translateOnigRegex(pattern, where);
  try {
    return new RegExp(src, 'gu');
  } catch (e) {
    throw new FormatError(`${where}: regex ${JSON.stringify(pattern)} does not compile (as ${JSON.stringify(src)}): ${(e as Error).message}`);
  }
}

/** Escape a literal string for use in a RegExp (HF `SplitPattern::String`). */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\\/-]/g, '\\$&');
}
