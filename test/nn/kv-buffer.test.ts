/**
 * In-place KV caches (src/nn/kv-buffer.ts) and attention reading k/v in place (src/tensor/ops/nn.ts, kvStrides of
 * both backends): views of buffers with spare rows, MLA-style values that are the leading columns of the key rows,
 * and evenly strided batches give the same attention as contiguous copies; appending fills the buffer in place and
 * regrows it when full.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { appendRows, cacheCapacity } from '../../src/nn/kv-buffer.js';

const BACKENDS = T.activeBackend() === 'native' ? (['native', 'js'] as const) : (['js'] as const);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const be of BACKENDS) {
  test(`attention (${be}) reads strided k/v in place: cache views with spare rows, batches, values inside key rows`, () => {
    T.setBackend(be);
    try {
      T.noGrad(() => T.tidy(() => {
        const rng = new T.Rng(3);
        for (const { B, Hq, Hkv, Sq, Sk, D, cap } of [
          { B: 1, Hq: 4, Hkv: 2, Sq: 1, Sk: 37, D: 16, cap: 64 },
          { B: 2, Hq: 6, Hkv: 3, Sq: 5, Sk: 20, D: 8, cap: 33 },
          { B: 1, Hq: 2, Hkv: 1, Sq: 7, Sk: 7, D: 12, cap: 8 },
        ]) {
          const q = T.randn([B, Hq, Sq, D], { rng });
          const kb = T.randn([B, Hkv, cap, D], { rng });
          const vb = T.randn([B, Hkv, cap, D], { rng });
          const k = kb.narrow(2, 0, Sk), v = vb.narrow(2, 0, Sk);
          if (B * Hkv > 1) assert.ok(!k.isContiguous(), 'the view really is strided');
          const got = T.attention(q, k, v, { causal: true }).toArray() as Float32Array;
          const want = T.attention(q, k.contiguous(), v.contiguous(), { causal: true }).toArray() as Float32Array;
          assert.ok(maxDiff(got, want) === 0, `${be} B=${B} Hkv=${Hkv} Sk=${Sk}/${cap}: in place differs by ${maxDiff(got, want)}`);
        }
        // MLA: one kv head [1, 1, S, L + R]; values = the first L columns of each row.
        const L = 24, R = 8, S = 30;
        const kvb = T.randn([1, 1, 48, L + R], { rng });
        const kv = kvb.narrow(2, 0, S);
        const q = T.randn([1, 4, 3, L + R], { rng });
        const got = T.attention(q, kv, kv.narrow(3, 0, L), { causal: true, scale: 0.2 }).toArray() as Float32Array;
        const want = T.attention(q, kv.contiguous(), kv.narrow(3, 0, L).contiguous(), { causal: true, scale: 0.2 }).toArray() as Float32Array;
        assert.ok(maxDiff(got, want) === 0, `${be} MLA values in place differ by ${maxDiff(got, want)}`);
      }));
    } finally {
      T.setBackend('native');
    }
  });
}

test('attention with gradients still differentiates strided k/v (copied, not read in place)', () => {
  const rng = new T.Rng(4);
  const kb = T.randn([1, 2, 16, 8], { rng }).setRequiresGrad(true);
  const q = T.randn([1, 2, 3, 8], { rng });
  const k = kb.narrow(2, 0, 10);
  T.attention(q, k, k, { causal: true }).sum().backward();
  const g = kb.grad!.toArray() as Float32Array;
  let beyond = 0, inside = 0;
  for (let h = 0; h < 2; h++) for (let j = 0; j < 16; j++) for (let d = 0; d < 8; d++) {
    const x = Math.abs(g[(h * 16 + j) * 8 + d]!);
    if (j >= 10) beyond += x; else inside += x;
  }
  assert.equal(beyond, 0);
  assert.ok(inside > 0);
});

test('appendRows: grows in place while capacity lasts, regrows with spare rows, keeps every row', () => {
  T.noGrad(() => {
    const rng = new T.Rng(9);
    const all: T.Tensor[] = [];
    let cur: { view: T.Tensor; buf: T.Tensor | null } | null = null;
    const bufs = new Set<unknown>();
    let regrows = 0;
    for (const n of [5, 1, 1, 60, 1, 1, 1, 70, 1]) {
      const rows = T.randn([1, 2, n, 4], { rng }).keep();
      all.push(rows);
      const next: { view: T.Tensor; buf: T.Tensor | null } = appendRows(cur, rows);
      if (!bufs.has(next.buf!.raw)) { regrows++; bufs.add(next.buf!.raw); }
      if (cur) { cur.view.dispose(); cur.buf?.dispose(); }
      cur = next;
      const len = all.reduce((a, t) => a + t.shape[2]!, 0);
      assert.deepEqual(cur.view.shape, [1, 2, len, 4]);
      assert.ok(cur.buf!.shape[2]! >= len);
      const want = T.cat(all, 2).toArray();
      assert.deepEqual(cur.view.toArray(), want);
    }
    assert.equal(regrows, 2, 'one allocation for the first rows (128 capacity), one regrowth past 128 rows');
    cur!.view.dispose(); cur!.buf?.dispose();
    for (const t of all) t.dispose();
  });
  assert.equal(cacheCapacity(1), 128);
  assert.equal(cacheCapacity(256), 320);
  assert.equal(cacheCapacity(1000), 1280);
});
