/**
 * In-place growth of an inference KV cache along the sequence axis (dim 2 of [1, heads, S, D]).
 *
 * Why: re-concatenating past and new rows every decode step copies the whole cache per layer per sequence per step
 * (S1 at batch 16 and ~300 positions: ~120 MB per step). Instead each cache is a buffer with spare rows and a row
 * count `len`; a step's raggedAttention (src/tensor/ops/nn.ts) writes the new rows after `len`, and the count grows,
 * with no new tensor objects (S1 at batch 16: per-step views, aliases and their keep/dispose cost 2-4% of a step).
 * When the buffer is full it is replaced by one with ~25% spare rows (amortised O(1) copies per token).
 *
 * A sequence's cache is owned by one SequenceCache (src/infer/kv-cache.ts) and only ever extended from its latest
 * length, so writing past `len` never changes rows in use.
 */
import { Tensor, empty, copyInto } from '../tensor/index.js';

/** A sequence's rows of one cache buffer [1, H, capacity, D]: the first `len` rows are in use. */
export interface CacheRows {
  buf: Tensor;
  len: number;
}

/** Spare rows on (re)allocation: a quarter of the need, at least 64, rounded up to a multiple of 64. */
export function cacheCapacity(need: number): number {
  return Math.ceil((need + Math.max(64, need >> 2)) / 64) * 64;
}

/**
 * Room for n more rows after past's `len` without writing them (raggedAttention writes them): returns the buffer
 * [1, H, cap >= len + n, D] holding past's rows first — past's own buffer (the same tensor object) when they fit,
 * else a larger copy — and len. After the write the sequence uses the buffer's first len + n rows. `dtype` is that
 * of a new cache; an existing one keeps its own (a sequence's rows are never re-rounded).
 */
export function reserveRows(past: CacheRows | null, n: number, H: number, D: number, dtype: Tensor['dtype']): CacheRows {
  const len = past ? past.len : 0;
  const need = len + n;
  if (past && past.buf.shape[2]! >= need && past.buf.shape[1] === H && past.buf.shape[3] === D) return { buf: past.buf, len };
  const buf = empty([1, H, cacheCapacity(need), D], past ? past.buf.dtype : dtype);
  if (past && len > 0) copyInto(buf.narrow(2, 0, len), past.buf.narrow(2, 0, len));
  return { buf, len };
}
