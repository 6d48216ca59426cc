/**
 * GPT-2's reversible byte <-> printable-character table ("bytes_to_unicode"), used by every byte-level
 * BPE (HF tokenizers `pre_tokenizers/byte_level.rs`, OpenAI gpt-2 `encoder.py`). Printable Latin-1 bytes
 * ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes map, in order, to U+0100.. so that
 * no token ever contains a space or a control character.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return out;
})();

/** Inverse of BYTE_TO_CHAR indexed by UTF-16 code unit (all mapped chars are < U+0144); -1 = not a byte char. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(0x200).fill(-1);
  for (let b = 0; b < 256; b++) t[BYTE_TO_CHAR[b]!.charCodeAt(0)] = b;
  return t;
})();

/**
 * UTF-8 encode `s[start, end)` into `out` (which must hold 3 bytes per UTF-16 unit); returns the byte count.
 * Lone surrogates become U+FFFD exactly as TextEncoder (and Rust's `String`, which cannot hold them) do.
 */
export function utf8Encode(s: string, start: number, end: number, out: Uint8Array): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) { out[n++] = c; continue; }
    if (c < 0x800) { out[n++] = 0xc0 | (c >> 6); out[n++] = 0x80 | (c & 63); continue; }
    if (c >= 0xd800 && c < 0xe000) {
      const d = i + 1 < end ? s.charCodeAt(i + 1) : 0;
      if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        out[n++] = 0xf0 | (cp >> 18); out[n++] = 0x80 | ((cp >> 12) & 63);
        out[n++] = 0x80 | ((cp >> 6) & 63); out[n++] = 0x80 | (cp & 63);
        i++;
        continue;
      }
      c = 0xfffd;
    }
    out[n++] = 0xe0 | (c >> 12); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63);
  }
  return n;
}

/** The byte-level string of a piece of text (what HF's ByteLevel pre-tokenizer produces for it). */
export function toByteLevel(s: string): string {
  const buf = new Uint8Array(s.length * 3);
  const n = utf8Encode(s, 0, s.length, buf);
  let r = '';
  for (let i = 0; i < n; i++) r += BYTE_TO_CHAR[buf[i]!];
  return r;
}
