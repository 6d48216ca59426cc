/** The model runner: ragged batches with per-sequence caches equal full recomputation, for both families. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { loadModel, type CausalLM } from '../../src/models/load.js';
import { DeepseekV3ForCausalLM } from '../../src/models/deepseek-v3.js';
import { ModelRunner, SequenceCache } from '../../src/infer/kv-cache.js';
import { repoPath } from '../util.js';

const FAMILIES = ['qwen2-tiny', 'llama-tiny', 'deepseek-v3-tiny', 'deepseek-v2-tiny'];

/** Logits of every position of `ids`, recomputed from scratch (the training path). */
function fullLogits(m: CausalLM, ids: number[]): Float32Array[] {
  return T.noGrad(() => T.tidy(() => {
    const x = T.tensor([ids], { dtype: 'i32' });
    const out = m instanceof DeepseekV3ForCausalLM ? m.forward(x, { mtp: false }).logits : m.forward(x).logits;
    const a = out.toArray() as Float32Array;
    const V = m.config.vocabSize;
    return ids.map((_, i) => a.slice(i * V, (i + 1) * V));
  }));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

for (const fam of FAMILIES) {
  test(`${fam}: prefill + one-token decode steps with the cache equal full recomputation`, () => {
    const { model, config } = loadModel(repoPath('test/fixtures/models', fam), { maxPositions: 64 });
    const runner = new ModelRunner(model);
    const V = config.vocabSize;
    const seq = Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % V);
    const ref = fullLogits(model, seq);
    const cache = new SequenceCache();
    const live0 = T.memoryStats.liveBytes;
    const pre = runner.step([{ ids: seq.slice(0, 5), cache }], true)[0]!;
    for (let i = 0; i < 5; i++) assert.ok(maxDiff(pre[i]!, ref[i]!) < 1e-4, `${fam} prefill position ${i}`);
    for (let i = 5; i < seq.length; i++) {
      const row = runner.step([{ ids: [seq[i]!], cache }])[0]![0]!;
      assert.ok(maxDiff(row, ref[i]!) < 1e-4, `${fam} decode position ${i}: ${maxDiff(row, ref[i]!)}`);
    }
    assert.equal(cache.length, seq.length);
    if (model instanceof DeepseekV3ForCausalLM) {
      // The absorbed MLA cache: kv_lora_rank + qk_rope_head_dim values per token per layer.
      const c = model.config;
      assert.equal(cache.valuesPerToken(), c.numHiddenLayers * (c.kvLoraRank + c.qkRopeHeadDim));
    } else {
      const c = config as { numHiddenLayers: number; numKeyValueHeads: number; headDim: number };
      assert.equal(cache.valuesPerToken(), c.numHiddenLayers * 2 * c.numKeyValueHeads * c.headDim);
    }
    cache.dispose();
    assert.equal(T.memoryStats.liveBytes, live0, 'the runner leaks no tensors');
    model.dispose();
  });

  test(`${fam}: a ragged batch (prefills and decodes together) equals each sequence alone`, () => {
    const { model, config } = loadModel(repoPath('test/fixtures/models', fam), { maxPositions: 64 });
    const runner = new ModelRunner(model);
    const V = config.vocabSize;
    const seqs = [9, 4, 13].map((n, s) => Array.from({ length: n }, (_, i) => (i * (s + 3) + 5 * s + 1) % V));
    const refs = seqs.map((s) => fullLogits(model, s));
    const caches = seqs.map(() => new SequenceCache());
    // Sequence 0 starts alone; then 1 and 2 join with their whole prompts while 0 decodes.
    runner.step([{ ids: seqs[0]!.slice(0, 6), cache: caches[0]! }]);
    const rows = runner.step([
      { ids: seqs[0]!.slice(6, 7), cache: caches[0]! },
      { ids: seqs[1]!, cache: caches[1]! },
      { ids: seqs[2]!.slice(0, 10), cache: caches[2]! },
    ], true);
    assert.ok(maxDiff(rows[0]![0]!, refs[0]![6]!) < 1e-4);
    rows[1]!.forEach((r, i) => assert.ok(maxDiff(r, refs[1]![i]!) < 1e-4, `seq 1 pos ${i}`));
    rows[2]!.forEach((r, i) => assert.ok(maxDiff(r, refs[2]![i]!) < 1e-4, `seq 2 pos ${i}`));
    const last = runner.step([
      { ids: seqs[2]!.slice(10), cache: caches[2]! },
      { ids: seqs[0]!.slice(7, 9), cache: caches[0]! },
    ]);
    assert.ok(maxDiff(last[0]![0]!, refs[2]![12]!) < 1e-4);
    assert.ok(maxDiff(last[1]![0]!, refs[0]![8]!) < 1e-4);
    for (const c of caches) c.dispose();
    model.dispose();
  });
}

test('runner: a sequence past the context is refused with both lengths', () => {
  const { model } = loadModel(repoPath('test/fixtures/models', 'qwen2-tiny'), { maxPositions: 8 });
  const runner = new ModelRunner(model);
  const cache = new SequenceCache();
  assert.throws(() => runner.step([{ ids: [1, 2, 3, 4, 5, 6, 7, 8, 9], cache }]), /position 9, beyond the context of 8/);
  model.dispose();
});
