/**
 * Splitting DeepSeek-R1's generated text into `reasoning` (the <think> block) and `content` (the answer),
 * incrementally, as the engine streams decoded text — the `reasoning_content` / `content` pair of
 * DeepSeek's API (and vLLM's `deepseek_r1` reasoning parser).
 *
 * R1 conventions and the rules here:
 * - R1's chat template ends the prompt with "<think>\n", so the generated text usually starts INSIDE the
 *   thinking block (`startInThinking: true`). Without that, the model may open the block itself: if the
 *   first non-whitespace text is "<think>", thinking starts there (the whitespace before it is dropped);
 *   any other first text means there is no thinking block and everything is content (tags included).
 * - Leading whitespace of the reasoning is dropped, and so are redundant "<think>" tags there (a model
 *   repeating the forced tag), so the forced and the generated opening give the same reasoning.
 * - "</think>" ends the reasoning; neither tag ever appears in the output.
 * - After "</think>", leading newlines ("\n", "\r") of the content are dropped, as DeepSeek's API does
 *   (R1 writes "</think>\n\n" before its answer). Everything after that is content verbatim — tags inside
 *   the answer are literal text.
 * - A reasoning block that never closes is all reasoning (content stays empty).
 *
 * Streaming: text is processed as it arrives; text that could be the start of a tag ("<", "</th", …) is
 * held back until the next chunk decides it, so a tag split over any chunk boundaries is recognised and a
 * partial tag is never emitted. `flush()` at the end of generation releases what is held back (as text of
 * the current part). The concatenated deltas always equal `splitReasoning(whole text)`.
 */

import { R1Error } from '../errors.js';

const OPEN = '<think>';
const CLOSE = '</think>';

export interface ReasoningDelta {
  reasoning: string;
  content: string;
}

type State =
  | 'lead-content' // content mode, only whitespace so far: a "<think>" may still open the block
  | 'lead-thinking' // thinking, nothing emitted yet: skip whitespace and redundant "<think>" tags
  | 'thinking' // inside the block: watch for "</think>"
  | 'after-think' // just closed: skip newlines
  | 'content'; // the answer: verbatim

const isWs = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const firstNonWs = (s: string): number => {
  for (let i = 0; i < s.length; i++) if (!isWs(s[i]!)) return i;
  return -1;
};

/** Length of the longest suffix of `s` that is a proper prefix of `tag` (0 if none). */
function partialTagSuffix(s: string, tag: string): number {
  for (let h = Math.min(tag.length - 1, s.length); h > 0; h--) {
    if (tag.startsWith(s.slice(s.length - h))) return h;
  }
  return 0;
}

export class ReasoningSplitter {
  private state: State;
  private buf = '';
  private reasoningText = '';
  private contentText = '';
  private flushed = false;

  constructor(opts: { startInThinking: boolean }) {
    this.state = opts.startInThinking ? 'lead-thinking' : 'lead-content';
  }

  /** All reasoning emitted so far. */
  get reasoning(): string {
    return this.reasoningText;
  }
  /** All content emitted so far. */
  get content(): string {
    return this.contentText;
  }
  /** True while the text is inside the thinking block. */
  get inThinking(): boolean {
    return this.state === 'lead-thinking' || this.state === 'thinking';
  }

  /** Feed the next piece of generated text; returns what became reasoning and content (deltas). */
  push(text: string): ReasoningDelta {
    if (this.flushed) throw new R1Error('ReasoningSplitter.push: called after flush() (the text has ended)');
    this.buf += text;
    return this.run(false);
  }

  /** End of text: release everything held back. */
  flush(): ReasoningDelta {
    if (this.flushed) return { reasoning: '', content: '' };
    const d = this.run(true);
    this.flushed = true;
    return d;
  }

  private run(final: boolean): ReasoningDelta {
    let reasoning = '';
    let content = '';
    for (;;) {
      const b = this.buf;
      switch (this.state) {
        case 'lead-content': {
          const i = firstNonWs(b);
          if (i < 0) {
            if (final) { content += b; this.buf = ''; }
            return this.done(reasoning, content);
          }
          const rest = b.slice(i);
          if (rest.startsWith(OPEN)) { this.buf = rest.slice(OPEN.length); this.state = 'lead-thinking'; continue; }
          if (!final && OPEN.startsWith(rest)) return this.done(reasoning, content); // wait: maybe "<think>"
          this.state = 'content'; // the whitespace stays: it is content
          continue;
        }
        case 'lead-thinking': {
          const i = firstNonWs(b);
          if (i < 0) { this.buf = ''; return this.done(reasoning, content); }
          const rest = b.slice(i);
          if (rest.startsWith(OPEN)) { this.buf = rest.slice(OPEN.length); continue; }
          this.buf = rest;
          if (!final && OPEN.startsWith(rest)) return this.done(reasoning, content);
          this.state = 'thinking';
          continue;
        }
        case 'thinking': {
          const j = b.indexOf(CLOSE);
          if (j >= 0) {
            reasoning += b.slice(0, j);
            this.buf = b.slice(j + CLOSE.length);
            this.state = 'after-think';
            continue;
          }
          const hold = final ? 0 : partialTagSuffix(b, CLOSE);
          reasoning += b.slice(0, b.length - hold);
          this.buf = b.slice(b.length - hold);
          return this.done(reasoning, content);
        }
        case 'after-think': {
          let i = 0;
          while (i < b.length && (b[i] === '\n' || b[i] === '\r')) i++;
          this.buf = b.slice(i);
          if (!this.buf) return this.done(reasoning, content);
          this.state = 'content';
          continue;
        }
        case 'content':
          content += b;
          this.buf = '';
          return this.done(reasoning, content);
      }
    }
  }

  private done(reasoning: string, content: string): ReasoningDelta {
    this.reasoningText += reasoning;
    this.contentText += content;
    return { reasoning, content };
  }
}

/** The whole-text split, by the same rules as ReasoningSplitter (written directly, without streaming). */
export function splitReasoning(full: string, startInThinking: boolean): ReasoningDelta {
  let s = full;
  if (!startInThinking) {
    const open = /^[ \t\r\n]*<think>/.exec(s);
    if (!open) return { reasoning: '', content: full };
    s = s.slice(open[0].length);
  }
  s = s.replace(/^(?:[ \t\r\n]|<think>)*/, '');
  const j = s.indexOf(CLOSE);
  if (j < 0) return { reasoning: s, content: '' };
  return { reasoning: s.slice(0, j), content: s.slice(j + CLOSE.length).replace(/^[\r\n]+/, '') };
}
