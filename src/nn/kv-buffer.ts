/**
 * In-place growth of an inference KV cache along the sequence axis (dim 2 of [1, heads, S, D]).
 *
 * Why: re-concatenating past and new rows every decode step copies the whole cache per layer per sequence per step
 * (S1 at batch 16 and ~300 positions: ~120 MB per step). Instead each cache tensor is a view `buf.narrow(2, 0, len)`
 * of a buffer with spare rows; a step's raggedAttention (src/tensor/ops/nn.ts) writes the new rows after `len`, and
 * the cache becomes a longer view of the same buffer. When the buffer is full it is replaced by one with ~25% spare
 * rows (amortised O(1) copies per token).
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
 * Room for n more rows after `past` without writing them (raggedAttention writes them): returns the buffer
 * [1, H, cap >= len + n, D] holding past's rows first (the same storage when they fit, else a larger copy) and len.
 * After the write, the cache is `buf.narrow(2, 0, len + n)`. `dtype` is that of a new cache; an existing one keeps
 * its own (a sequence's rows are never re-rounded).
 */
export function reserveRows(past: GrowingRows | null, n: number, H: number, D: number, dtype: Tensor['dtype']): { buf: Tensor; len: number } {
  const len = past ? past.view.shape[2]! : 0;
  const need = len + n;
  if (past && past.buf && past.buf.shape[2]! >= need && past.buf.shape[1] === H && past.buf.shape[3] === D) {
    return { buf: alias(past.buf), len };
  }
  const buf = empty([1, H, cacheCapacity(need), D], past ? past.view.dtype : dtype);
  if (past && len > 0) copyInto(buf.narrow(2, 0, len), past.view);
  return { buf, len };
}
