/**
 * Stop strings over streamed, decoded text (OpenAI semantics: the output ends just BEFORE the stop string,
 * which is not part of it).
 *
 * Which match counts: the text ends at the first point in the stream where any stop string is complete
 * (the earliest END position); if several complete at the same character, the longest one (the one that
 * starts first) counts. That rule depends only on the text up to the stop, never on how it was chunked —
 * a rule like "the earliest start in the current buffer" would not be: with stops ["abc", "b"], "abc" in
 * one piece starts earlier, yet streamed as "ab" + "c", "b" completes first. It is what a token-by-token
 * check (vLLM's) does at character resolution.
 *
 * Streaming: `push` emits everything that can no longer be part of a stop string and holds back the
 * longest tail that is a proper prefix of some stop string; `flush` releases the tail at the end of
 * generation. Concatenated emits (+ flush) equal `truncateAtStop(whole text).text`.
 */
import { UsageError } from '../errors.js';

export interface StopPush {
  /** Text that is final: never part of a stop string. */
  emit: string;
  /** A stop string completed: the output ends here (later pushes emit nothing). */
  stopped: boolean;
  /** The stop string that matched, when stopped. */
  matched?: string;
}

export class StopMatcher {
  private readonly stops: readonly string[];
  private readonly longest: number;
  private held = '';
  private matchedStop: string | undefined;

  constructor(stops: readonly string[]) {
    stops.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) throw new UsageError(`stop[${i}]: stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
    });
    this.stops = [...new Set(stops)];
    this.longest = Math.max(0, ...this.stops.map((s) => s.length));
  }

  /** True once a stop string has matched. */
  get stopped(): boolean {
    return this.matchedStop !== undefined;
  }
  /** The stop string that matched, if any. */
  get matched(): string | undefined {
    return this.matchedStop;
  }

  push(text: string): StopPush {
    if (this.matchedStop !== undefined) return { emit: '', stopped: true, matched: this.matchedStop };
    const buf = this.held + text;
    // Earliest end; ties → the longest stop. A stop's first occurrence is also its earliest end.
    let bestEnd = Infinity;
    let best: string | undefined;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i < 0) continue;
      const end = i + s.length;
      if (end < bestEnd || (end === bestEnd && s.length > best!.length)) { bestEnd = end; best = s; }
    }
    if (best !== undefined) {
      this.held = '';
      this.matchedStop = best;
      return { emit: buf.slice(0, bestEnd - best.length), stopped: true, matched: best };
    }
    const keep = this.heldLength(buf);
    this.held = buf.slice(buf.length - keep);
    return { emit: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** End of generation without a match: the held-back tail (empty after a match). */
  flush(): string {
    const h = this.held;
    this.held = '';
    return h;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private heldLength(buf: string): number {
    for (let k = Math.min(this.longest - 1, buf.length); k > 0; k--) {
      const tail = buf.slice(buf.length - k);
      for (const s of this.stops) if (s.length > k && s.startsWith(tail)) return k;
    }
    return 0;
  }
}

/** Whole-text form: the text before the first stop string to complete (and which one), or all of it. */
export function truncateAtStop(text: string, stops: readonly string[]): { text: string; matched?: string } {
  const m = new StopMatcher(stops);
  const r = m.push(text);
  return r.stopped ? { text: r.emit, matched: r.matched! } : { text: r.emit + m.flush() };
}
