/**
 * Streaming decode: token ids arrive one by one (generation) and text goes out as soon as it is whole.
 * A byte-level decoder emits raw bytes, and one character may span several tokens (a CJK character or an
 * emoji is 3-4 bytes, often split across tokens), so bytes are run through a streaming UTF-8 decoder that
 * holds an incomplete trailing sequence back; invalid bytes become U+FFFD exactly as in a full decode.
 * For other decoders we use HF tokenizers' DecodeStream algorithm (`tokenizer/mod.rs` step_decode_stream):
 * re-decode the ids since the last emission and emit the new suffix once it no longer ends in U+FFFD.
 */
import type { DecodeOptions, Tokenizer } from './tokenizer.js';
import { byteLevelTokenBytes } from './pipeline.js';

export class DecodeStream {
  private utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private ids: number[] = [];
  private prefix = '';
  private prefixIndex = 0;
  private readonly byteLevel: boolean;

  constructor(private readonly tok: Tokenizer, private readonly opts: DecodeOptions) {
    this.byteLevel = tok.decoder?.byteLevel === true;
  }

  /** Feed one id; returns the text that became complete (possibly ''). */
  step(id: number): string {
    if (this.byteLevel) {
      const tokens = this.tok.idsToTokens([id], this.opts);
      if (tokens.length === 0) return '';
      const bytes: number[] = [];
      byteLevelTokenBytes(tokens[0]!, bytes);
      return this.utf8.decode(Uint8Array.from(bytes), { stream: true });
    }
    this.ids.push(id);
    const text = this.tok.decode(this.ids, this.opts);
    if (text.length > this.prefix.length && !text.endsWith('\ufffd')) {
      const fresh = text.slice(this.prefix.length);
      // Keep the last id as context (decoders such as Metaspace treat the first token specially).
      this.prefixIndex = this.ids.length - 1;
      this.ids = this.ids.slice(this.prefixIndex);
      this.prefix = this.tok.decode(this.ids, this.opts);
      return fresh;
    }
    return '';
  }

  /** End of stream: whatever is held back, with U+FFFD for an incomplete character. */
  flush(): string {
    if (this.byteLevel) return this.utf8.decode();
    const text = this.ids.length ? this.tok.decode(this.ids, this.opts) : '';
    const rest = text.slice(this.prefix.length);
    this.ids = [];
    this.prefix = '';
    return rest;
  }
}
