/**
 * In-place growth of an inference KV cache along the sequence axis (dim 2 of [1, heads, S, D]).
 *
 * Why: re-concatenating past and new rows every decode step copies the whole cache per layer per sequence per step
 * (S1 at batch 16 and ~300 positions: ~120 MB per step). Instead each cache tensor is a view `buf.narrow(2, 0, len)`
 * of a buffer with spare rows; a step writes its new rows after `len` and returns a longer view of the same buffer.
 * Attention reads the view in place (k/v strides, src/tensor/ops/nn.ts attention). When the buffer is full it is
 * replaced by one with ~25% spare rows (amortised O(1) copies per token).
 *
 * A sequence's cache is owned by one SequenceCache (src/infer/kv-cache.ts) and only ever extended from its latest
 * view, so writing past `len` never changes rows another live view can see.
 */
import { Tensor, empty, alias, copyInto } from '../tensor/index.js';

/** A cache tensor: the rows in use (`view`, [1, H, len, D]) and the buffer they live in ([1, H, capacity, D]). */
export interface GrowingRows {
  view: Tensor;
  buf: Tensor | null;
}

/** Spare rows on (re)allocation: a quarter of the need, at least 64, rounded up to a multiple of 64. */
export function cacheCapacity(need: number): number {
  return Math.ceil((need + Math.max(64, need >> 2)) / 64) * 64;
}

/**
 * Append rows [1, H, n, D] after `past` (null: a new cache). Returns the new view and its buffer (a new tensor
 * object on the same storage when the rows fit: the caller disposes the old objects as usual).
 */
export function appendRows(past: GrowingRows | null, rows: Tensor): GrowingRows {
  const [B, H, n, D] = rows.shape as [number, number, number, number];
  const len = past ? past.view.shape[2]! : 0;
  const need = len + n;
  if (past && past.buf && past.buf.shape[2]! >= need && past.buf.shape[1] === H && past.buf.shape[3] === D) {
    copyInto(past.buf.narrow(2, len, n), rows);
    const buf = alias(past.buf);
    return { view: buf.narrow(2, 0, need), buf };
  }
  const buf = empty([B, H, cacheCapacity(need), D], rows.dtype);
  if (past && len > 0) copyInto(buf.narrow(2, 0, len), past.view);
  copyInto(buf.narrow(2, len, n), rows);
  return { view: buf.narrow(2, 0, need), buf };
}
