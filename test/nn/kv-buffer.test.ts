/**
 * In-place KV caches (src/nn/kv-buffer.ts) and attention reading k/v in place (src/tensor/ops/nn.ts, kvStrides of
 * both backends): views of buffers with spare rows, MLA-style values that are the leading columns of the key rows,
 * and evenly strided batches give the same attention as contiguous copies; raggedAttention (the inference engine's one
 * call per layer) writes each sequence's new rows into its buffer in place and matches attention over the grown
 * cache; reserveRows regrows a buffer when it is full.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { reserveRows, cacheCapacity } from '../../src/nn/kv-buffer.js';

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

/** Reference for one sequence: its cache rows [0, past) + the new rows, attended with the plain attention op. */
function reference(q: T.Tensor, kOld: T.Tensor, vOld: T.Tensor | null, kNew: T.Tensor, vNew: T.Tensor | null, Dv: number, scale: number): T.Tensor {
  // q [n, Hq, Dk], kOld [Hkv, past, Dk], kNew [n, Hkv, Dk] -> out [n, Hq, Dv]
  const k = T.cat([kOld, kNew.transpose(0, 1)], 1).unsqueeze(0);
  const v = vNew ? T.cat([vOld!, vNew.transpose(0, 1)], 1).unsqueeze(0) : k.narrow(3, 0, Dv);
  return T.attention(q.transpose(0, 1).unsqueeze(0), k.contiguous(), v.contiguous(), { causal: true, scale }).squeeze(0).transpose(0, 1);
}

for (const be of BACKENDS) {
  test(`raggedAttention (${be}): sequences of mixed lengths append to their caches in place and match attention`, () => {
    T.setBackend(be);
    try {
      T.noGrad(() => T.tidy(() => {
        const rng = new T.Rng(11);
        for (const { Hq, Hkv, Dk, Dv, seqs, vInK } of [
          // decode steps (one token after a long cache), a prefill (nothing cached), a chunk; S1's head layout (G = 7)
          { Hq: 14, Hkv: 2, Dk: 64, Dv: 64, seqs: [[1, 150], [9, 0], [5, 20], [1, 63], [1, 64]], vInK: false },
          // head dims that are not multiples of 16, multi-query (G = Hq), MLA-like values inside the key rows
          { Hq: 6, Hkv: 1, Dk: 20, Dv: 12, seqs: [[3, 70], [1, 1], [40, 0]], vInK: true },
          // below the kernel's one-thread threshold (2e5 multiply-adds); the others share their items among threads
          { Hq: 4, Hkv: 4, Dk: 24, Dv: 8, seqs: [[2, 5], [1, 129]], vInK: false },
          // a batch's decode step (S1 heads, 16 sequences)
          { Hq: 14, Hkv: 2, Dk: 64, Dv: 64, seqs: Array.from({ length: 16 }, (_, i) => [1, 280 + i]), vInK: false },
          // long caches: the kernel takes keys in chunks of up to 512 (online softmax across chunks); value widths
          // 40 and 72 leave a partial chunk of 32 values
          { Hq: 8, Hkv: 2, Dk: 32, Dv: 40, seqs: [[1, 1100], [3, 520], [1, 511]], vInK: false },
          { Hq: 4, Hkv: 1, Dk: 80, Dv: 72, seqs: [[2, 700], [1, 1030]], vInK: true },
        ]) {
          const N = seqs.reduce((a, [n]) => a + n!, 0);
          const q = T.randn([N, Hq, Dk], { rng });
          const kNew = T.randn([N, Hkv, Dk], { rng });
          const vNew = vInK ? null : T.randn([N, Hkv, Dv], { rng });
          const caches = seqs.map(([n, past]) => {
            const cap = past! + n! + 3;
            return { length: n!, past: past!, k: T.randn([1, Hkv, cap, Dk], { rng }), v: vInK ? null : T.randn([1, Hkv, cap, Dv], { rng }) };
          });
          const before = caches.map((c) => ({ k: c.k.clone(), v: c.v?.clone() ?? null }));
          const scale = 0.3;
          const out = T.raggedAttention(q, kNew, vNew, caches, { scale, valueDim: vInK ? Dv : undefined });
          assert.deepEqual(out.shape, [N, Hq, Dv]);
          let off = 0;
          caches.forEach((c, i) => {
            const n = c.length, past = c.past, cap = c.k.shape[2]!;
            const qs = q.narrow(0, off, n), ks = kNew.narrow(0, off, n), vs = vNew ? vNew.narrow(0, off, n) : null;
            const kOld = before[i]!.k.squeeze(0).narrow(1, 0, past);
            const vOld = before[i]!.v ? before[i]!.v!.squeeze(0).narrow(1, 0, past) : null;
            const want = reference(qs, kOld, vOld, ks, vs, Dv, scale).toArray() as Float32Array;
            const got = out.narrow(0, off, n).toArray() as Float32Array;
            assert.ok(maxDiff(got, want) < 2e-5, `${be} Hq=${Hq} Hkv=${Hkv} Dk=${Dk} seq ${i} (${n} after ${past}): differs by ${maxDiff(got, want)}`);
            // the cache: rows [0, past) kept, [past, past + n) = the new rows, the rest untouched
            const rows = (t: T.Tensor, a: number, b: number) => Array.from(t.squeeze(0).narrow(1, a, b - a).toArray() as Float32Array);
            assert.deepEqual(rows(c.k, 0, past), rows(before[i]!.k, 0, past));
            assert.deepEqual(rows(c.k, past, past + n), Array.from(ks.transpose(0, 1).toArray() as Float32Array));
            assert.deepEqual(rows(c.k, past + n, cap), rows(before[i]!.k, past + n, cap));
            if (c.v) assert.deepEqual(rows(c.v, past, past + n), Array.from(vs!.transpose(0, 1).toArray() as Float32Array));
            off += n;
          });
        }
      }));
    } finally {
      T.setBackend('native');
    }
  });
}

for (const be of BACKENDS) {
  test(`raggedAttention (${be}): bf16 caches round the new rows (and the scaled queries) and attend like f32 caches holding the rounded values`, () => {
    if (be === 'js') T.setBackend('js');
    try {
      T.noGrad(() => T.tidy(() => {
        const rng = new T.Rng(21);
        for (const { Hq, Hkv, Dk, Dv, seqs, vInK } of [
          { Hq: 14, Hkv: 2, Dk: 64, Dv: 64, seqs: Array.from({ length: 16 }, (_, i) => [1, 280 + i]), vInK: false }, // S1 decode step
          { Hq: 6, Hkv: 1, Dk: 20, Dv: 12, seqs: [[3, 70], [1, 1], [40, 0]], vInK: true }, // MLA-like, head dims not multiples of 16
          { Hq: 4, Hkv: 2, Dk: 15, Dv: 9, seqs: [[2, 100], [7, 0]], vInK: false }, // an odd Dk: keys widened, no pair products
          // long caches (several chunks of keys), value widths with a partial chunk of 32 (pv_bf16's masked tail)
          { Hq: 8, Hkv: 2, Dk: 32, Dv: 40, seqs: [[1, 1100], [3, 520]], vInK: false },
          { Hq: 4, Hkv: 1, Dk: 80, Dv: 72, seqs: [[2, 700], [1, 1030]], vInK: true },
        ]) {
          const N = seqs.reduce((a, [n]) => a + n!, 0);
          const q = T.randn([N, Hq, Dk], { rng }), kNew = T.randn([N, Hkv, Dk], { rng });
          const vNew = vInK ? null : T.randn([N, Hkv, Dv], { rng });
          const caches = seqs.map(([n, past]) => {
            const cap = past! + n! + 3;
            return { length: n!, past: past!, k: T.randn([1, Hkv, cap, Dk], { rng }).to('bf16'), v: vInK ? null : T.randn([1, Hkv, cap, Dv], { rng }).to('bf16') };
          });
          // the f32 twin: caches holding the same (bf16) values, new rows rounded the same way
          const twin = caches.map((c) => ({ ...c, k: c.k.to('f32'), v: c.v ? c.v.to('f32') : null }));
          const r = (t: T.Tensor | null) => (t ? t.to('bf16').to('f32') : null);
          const out = T.raggedAttention(q, kNew, vNew, caches, { scale: 0.25, valueDim: vInK ? Dv : undefined });
          // scale 1/4 (a power of two): rounding q * scale to bf16 equals rounding q, then scaling
          const want = T.raggedAttention(r(q)!, r(kNew)!, r(vNew), twin, { scale: 0.25, valueDim: vInK ? Dv : undefined });
          const d = maxDiff(out.toArray() as Float32Array, want.toArray() as Float32Array);
          assert.ok(d < 1e-5, `${be} Hq=${Hq} Dk=${Dk}: bf16 caches differ from their f32 twin by ${d}`);
          caches.forEach((c, i) => { // the caches hold the rounded new rows (bit patterns equal to the twin's values)
            assert.deepEqual(c.k.to('f32').toArray(), twin[i]!.k.toArray(), `seq ${i} keys`);
            if (c.v) assert.deepEqual(c.v.to('f32').toArray(), twin[i]!.v!.toArray(), `seq ${i} values`);
          });
        }
        const q = T.randn([1, 2, 8]);
        assert.throws(() => T.raggedAttention(q, T.randn([1, 1, 8]), T.randn([1, 1, 8]),
          [{ length: 1, past: 0, k: T.zeros([1, 1, 4, 8]).to('bf16'), v: T.zeros([1, 1, 4, 8]) }]), /must all be f32 \(as q\) or all bf16/);
        assert.throws(() => T.raggedAttention(q, T.randn([1, 1, 8]), T.randn([1, 1, 8]),
          [{ length: 1, past: 0, k: T.zeros([1, 1, 4, 8]).to('f16'), v: T.zeros([1, 1, 4, 8]).to('f16') }]), /must all be f32 \(as q\) or all bf16, got f16/);
      }));
    } finally {
      T.setBackend('native');
    }
  });
}

test('raggedAttention: native and js agree; bad calls are errors that name the problem', () => {
  T.noGrad(() => T.tidy(() => {
    const rng = new T.Rng(12);
    const q = T.randn([3, 4, 16], { rng }), k = T.randn([3, 2, 16], { rng }), v = T.randn([3, 2, 16], { rng });
    const mk = () => [{ length: 2, past: 10, k: T.randn([1, 2, 16, 16], { rng: new T.Rng(1) }), v: T.randn([1, 2, 16, 16], { rng: new T.Rng(2) }) },
      { length: 1, past: 0, k: T.zeros([1, 2, 4, 16]), v: T.zeros([1, 2, 4, 16]) }];
    const results = (['native', 'js'] as const).map((be) => {
      T.setBackend(be);
      try { return T.raggedAttention(q, k, v, mk()).toArray() as Float32Array; } finally { T.setBackend('native'); }
    });
    assert.ok(maxDiff(results[0]!, results[1]!) < 1e-5);
    const seqs = mk();
    assert.throws(() => T.raggedAttention(q, k, v, [{ ...seqs[0]!, past: 15 }, seqs[1]!]), /exceed the key cache capacity 16/);
    assert.throws(() => T.raggedAttention(q, k, v, [seqs[0]!]), /hold 2 tokens but q has 3/);
    assert.throws(() => T.raggedAttention(q, k, null, seqs), /valueDim/);
    assert.throws(() => T.raggedAttention(q, k, v, [{ ...seqs[0]!, k: T.randn([1, 2, 16, 32]).narrow(3, 0, 16) }, seqs[1]!]), /contiguous/);
    assert.throws(() => T.raggedAttention(q, T.randn([3, 3, 16]), v, seqs), /does not fit/);
  }));
  const kg = T.randn([1, 2, 16, 16]).setRequiresGrad(true);
  assert.throws(() => T.raggedAttention(T.randn([1, 4, 16]), T.randn([1, 2, 16]), T.randn([1, 2, 16]),
    [{ length: 1, past: 0, k: kg, v: T.zeros([1, 2, 16, 16]) }]), /inference only/);
});

test('reserveRows: a bf16 cache grows by a bit-exact copy (native element copy) and keeps its dtype', () => {
  T.noGrad(() => T.tidy(() => {
    const buf = T.randn([1, 2, 64, 8], { rng: new T.Rng(4) }).to('bf16');
    const view = buf.narrow(2, 0, 60);
    const { buf: grown, len } = reserveRows({ buf, len: 60 }, 10, 2, 8, 'f32'); // an existing cache keeps bf16
    assert.equal(len, 60);
    assert.equal(grown.dtype, 'bf16');
    assert.ok(grown.shape[2]! >= 70 && grown.raw !== buf.raw);
    assert.deepEqual(Array.from(grown.narrow(2, 0, 60).toArray() as Uint16Array), Array.from(view.toArray() as Uint16Array));
  }));
});

test('reserveRows: the same buffer while capacity lasts, a larger copy (past rows kept) when full', () => {
  T.noGrad(() => {
    const rng = new T.Rng(9);
    const all: T.Tensor[] = [];
    let cur: { buf: T.Tensor; len: number } | null = null;
    const bufs = new Set<unknown>();
    let regrows = 0;
    for (const n of [5, 1, 1, 60, 1, 1, 1, 70, 1]) {
      const rows = T.randn([n, 2, 4], { rng }).keep(); // token-major, as raggedAttention takes them
      all.push(rows);
      const { buf, len } = reserveRows(cur, n, 2, 4, 'f32');
      if (!bufs.has(buf.raw)) { regrows++; bufs.add(buf.raw); }
      if (cur && buf.raw === cur.buf.raw) assert.equal(buf, cur.buf, 'the same tensor object while it has room (no new view)');
      T.raggedAttention(T.randn([n, 2, 4], { rng }), rows, rows, [{ length: n, past: len, k: buf, v: T.zeros(buf.shape) }]).dispose();
      if (cur && cur.buf !== buf) cur.buf.dispose();
      cur = { buf, len: len + n };
      const total = all.reduce((a, t) => a + t.shape[0]!, 0);
      assert.equal(len + n, total);
      assert.ok(buf.shape[2]! >= total);
      assert.deepEqual(buf.narrow(2, 0, cur.len).toArray(), T.cat(all, 0).transpose(0, 1).unsqueeze(0).toArray());
    }
    assert.equal(regrows, 2, 'one allocation for the first rows (128 capacity), one regrowth past 128 rows');
    cur!.buf.dispose();
    for (const t of all) t.dispose();
  });
  assert.equal(cacheCapacity(1), 128);
  assert.equal(cacheCapacity(256), 320);
  assert.equal(cacheCapacity(1000), 1280);
});
