/** Deterministic memory: a training loop of thousands of steps keeps its live bytes and RSS flat. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { tidy, memoryStats, Rng } from '../../src/tensor/index.js';
import { AdamW } from '../../src/train/optim.js';

test('a 3000-step MLP training loop has flat live bytes and RSS', () => {
  const rng = new Rng(1);
  const w1 = T.randn([64, 32], { rng, std: 0.2 }).setRequiresGrad().keep();
  const b1 = T.zeros([64]).setRequiresGrad().keep();
  const w2 = T.randn([10, 64], { rng, std: 0.2 }).setRequiresGrad().keep();
  const opt = new AdamW([w1, b1, w2], { lr: 1e-3 });
  const x = T.randn([16, 32], { rng }).keep();
  const y = T.tensor(Array.from({ length: 16 }, (_, i) => i % 10), { dtype: 'i32' }).keep();
  const step = (): number => {
    const loss = tidy(() => {
      const h = T.relu(T.linear(x, w1, b1));
      const logits = T.linear(h, w2);
      const l = T.crossEntropy(logits, y);
      l.backward();
      return l.item();
    });
    opt.stepUpdate();
    opt.zeroGrad();
    return loss;
  };
  let first = 0;
  for (let i = 0; i < 200; i++) { const l = step(); if (i === 0) first = l; }
  const live0 = memoryStats.liveBytes;
  const rss0 = process.memoryUsage().rss;
  let last = 0;
  for (let i = 0; i < 3000; i++) last = step();
  const live1 = memoryStats.liveBytes;
  const rss1 = process.memoryUsage().rss;
  assert.equal(live1, live0, `live pooled bytes changed: ${live0} -> ${live1}`);
  assert.ok(rss1 - rss0 < 24 * 1024 * 1024, `RSS grew by ${((rss1 - rss0) / 1048576).toFixed(1)} MiB`);
  assert.ok(last < first * 0.5, `loss did not fall: ${first} -> ${last}`);
});

test('a full pool drops its largest idle buffers, not the one just released (a decode loop after a big prefill)', () => {
  T.clearPool();
  T.setPoolLimit(8 << 20);
  try {
    // "Prefill": big temporaries fill the pool to its cap.
    tidy(() => { for (let i = 0; i < 4; i++) T.zeros([(2 << 20) / 4]); }); // exactly the 8 MiB cap
    // "Decode": small tensors created and freed every step must come back from the pool.
    tidy(() => { T.zeros([1000]).add(1); });
    const before = { ...memoryStats };
    for (let step = 0; step < 50; step++) tidy(() => { T.zeros([1000]).add(1); });
    assert.equal(memoryStats.allocated - before.allocated, 0, 'every small buffer reused');
    assert.ok(memoryStats.reused - before.reused >= 100);
  } finally {
    T.setPoolLimit(1 << 30);
    T.clearPool();
  }
});
