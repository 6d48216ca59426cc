/**
 * Ragged batches for inference: several sequences' new tokens packed back to back as one [1, N] row
 * (vLLM's "flattened" batch). Linear layers, norms and experts see all N tokens at once; attention runs per
 * sequence against its own cache. Each sequence continues at its own position.
 */
import { Tensor, fromArray, tidy, isGradEnabled } from '../tensor/index.js';
import { ShapeError } from '../errors.js';

export interface SegmentInput<C> {
  /** New token ids of this sequence. */
  ids: ArrayLike<number>;
  /** Its cache so far (null for a fresh sequence). */
  past: C | null;
  /** Tokens already in `past`. */
  pastLength: number;
}

export interface PackedSegments {
  /** [1, N] token ids. */
  ids: Tensor;
  /** [N] absolute positions. */
  positions: Tensor;
  /** Row of each segment's last token in the flattened batch, or every row when all = true. */
  rows: Tensor;
  N: number;
}

export function packSegments(segs: readonly SegmentInput<unknown>[], maxPositions: number, vocab: number, where: string, all = false): PackedSegments {
  if (segs.length === 0) throw new ShapeError(`${where}: no sequences to run`);
  let N = 0;
  for (const [i, s] of segs.entries()) {
    if (s.ids.length === 0) throw new ShapeError(`${where}: sequence ${i} has no new tokens`);
    if (s.pastLength + s.ids.length > maxPositions) throw new ShapeError(`${where}: sequence ${i} reaches position ${s.pastLength + s.ids.length}, beyond the context of ${maxPositions}`);
    N += s.ids.length;
  }
  const ids = new Int32Array(N);
  const pos = new Int32Array(N);
  const rows = new Int32Array(all ? N : segs.length);
  let o = 0;
  segs.forEach((s, i) => {
    for (let j = 0; j < s.ids.length; j++) {
      const t = s.ids[j]!;
      if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new ShapeError(`${where}: token id ${t} (sequence ${i}) is outside the vocabulary [0, ${vocab})`);
      ids[o + j] = t;
      pos[o + j] = s.pastLength + j;
    }
    o += s.ids.length;
    if (!all) rows[i] = o - 1;
  });
  if (all) for (let i = 0; i < N; i++) rows[i] = i;
  return { ids: fromArray(ids, [1, N]), positions: fromArray(pos, [N]), rows: fromArray(rows, [rows.length]), N };
}

/**
 * One layer of a ragged inference step: fn runs in its own tidy() scope, so the layer's intermediates (norms,
 * projections, attention and MLP outputs) go back to the tensor pool as soon as the layer is done, and its input
 * `x` (the previous layer's output) is disposed after it. The next layer then writes into the same buffers, still in
 * cache, instead of fresh ones (S1 at batch 16: ~30 buffers of 57-311 KB per layer, ~22 MB a step). What fn returns
 * (the layer's output and its caches) moves to the enclosing scope. Under autograd nothing is freed early.
 */
export function runLayer<R>(x: Tensor, fn: () => R): R {
  if (isGradEnabled()) return fn();
  const r = tidy(fn);
  x.dispose();
  return r;
}
