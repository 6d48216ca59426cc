/**
 * Added tokens (special tokens such as <｜begin▁of▁sentence｜>, <|im_start|>, <think>), matched in the text
 * before the model runs, as HF tokenizers' `AddedVocabulary::find_matches` does: leftmost-longest over all
 * tokens of one set (its aho-corasick uses MatchKind::LeftmostLongest), then `single_word`, `lstrip` and
 * `rstrip` are applied to each match. Tokens with normalized=false are matched on the raw text; those with
 * normalized=true on the normalized text of the pieces in between (`extract_and_normalize`).
 */

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

interface TrieNode { next: Map<number, TrieNode>; token: AddedToken | null }

// The `regex` crate's Unicode \w (added_vocabulary.rs STARTS_WITH_WORD/ENDS_WITH_WORD) and \s.
const WORD_START = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
const WORD_END = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;
const SPACE_END = /\p{White_Space}*$/u;
const SPACE_START = /^\p{White_Space}*/u;

/** A piece of the input: either text still to tokenize or an added token already recognised. */
export type Segment = { text: string; token: null } | { text: string; token: AddedToken };

export class AddedTokenMatcher {
  private root: TrieNode = { next: new Map(), token: null };
  private first = new Uint8Array(65536);
  readonly size: number;

  /** `patterns` pairs each token with the string to look for (its content, or its normalized content). */
  constructor(patterns: [string, AddedToken][]) {
    let n = 0;
    for (const [pat, tok] of patterns) {
      if (pat.length === 0) continue;
      let node = this.root;
      for (let i = 0; i < pat.length; i++) {
        const c = pat.charCodeAt(i);
        let nx = node.next.get(c);
        if (!nx) { nx = { next: new Map(), token: null }; node.next.set(c, nx); }
        node = nx;
      }
      node.token = tok;
      this.first[pat.charCodeAt(0)] = 1;
      n++;
    }
    this.size = n;
  }

  /** Split `s` into text and token segments (non-empty text segments only). */
  split(s: string, out: Segment[]): void {
    if (this.size === 0 || s.length === 0) { if (s.length) out.push({ text: s, token: null }); return; }
    const first = this.first;
    let startOffset = 0;
    let i = 0;
    const n = s.length;
    while (i < n) {
      if (first[s.charCodeAt(i)] === 0) { i++; continue; }
      // Longest token starting at i (UTF-16 units preserve code-point boundaries, so this equals the byte-wise match).
      let node: TrieNode | undefined = this.root;
      let best: AddedToken | null = null, bestEnd = -1;
      for (let j = i; j < n; j++) {
        node = node.next.get(s.charCodeAt(j));
        if (!node) break;
        if (node.token) { best = node.token; bestEnd = j + 1; }
      }
      if (!best) { i++; continue; }
      let start = i, stop = bestEnd;
      if (best.singleWord) {
        const startSpace = start === 0 || !WORD_END.test(s.slice(0, start));
        const stopSpace = stop === n || !WORD_START.test(s.slice(stop));
        // Discarded, and (as HF's non-overlapping find_iter) the search resumes after the match.
        if (!startSpace || !stopSpace) { i = bestEnd; continue; }
      }
      if (best.lstrip) {
        const m = SPACE_END.exec(s.slice(startOffset, start))!;
        start = startOffset + m.index;
      }
      if (best.rstrip) stop += SPACE_START.exec(s.slice(stop))![0].length;
      if (startOffset < start) out.push({ text: s.slice(startOffset, start), token: null });
      out.push({ text: s.slice(start, stop), token: best });
      startOffset = stop;
      i = Math.max(bestEnd, stop);
    }
    if (startOffset < n) out.push({ text: startOffset === 0 ? s : s.slice(startOffset), token: null });
  }
}
