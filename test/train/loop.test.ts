/**
 * The trainer on whole models: f64 gradient check of tiny full models (every loss term: next-token CE, MTP,
 * balance loss), each family overfits a fixed batch, and a checkpointed run resumes onto the exact loss curve.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.js';
import { parseConfig, type ModelConfig } from '../../src/models/config.js';
import { buildModel } from '../../src/models/load.js';
import { Trainer, type Batch } from '../../src/train/loop.js';
import { saveCheckpoint, loadCheckpoint, latestCheckpoint, listCheckpoints } from '../../src/train/checkpoint.js';

const CONFIGS: Record<string, Record<string, unknown>> = {
  qwen2: { model_type: 'qwen2', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, tie_word_embeddings: false },
  llama: { model_type: 'llama', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, tie_word_embeddings: true, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } },
  deepseek_v3: {
    model_type: 'deepseek_v3', vocab_size: 37, hidden_size: 16, intermediate_size: 24, moe_intermediate_size: 8,
    num_hidden_layers: 2, first_k_dense_replace: 1, num_attention_heads: 2, num_key_value_heads: 2,
    q_lora_rank: 12, kv_lora_rank: 8, qk_nope_head_dim: 4, qk_rope_head_dim: 4, v_head_dim: 4,
    n_routed_experts: 8, num_experts_per_tok: 2, n_group: 4, topk_group: 2, n_shared_experts: 1,
    routed_scaling_factor: 2.5, scoring_func: 'sigmoid', topk_method: 'noaux_tc', norm_topk_prob: true,
    num_nextn_predict_layers: 1, max_position_embeddings: 32, rope_theta: 10000,
    rope_scaling: { type: 'yarn', factor: 2, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
  },
};
const cfg = (name: string, over: Record<string, unknown> = {}): ModelConfig => parseConfig({ initializer_range: 0.2, ...CONFIGS[name], ...over }, `${name}-train-test`);

function fixedBatch(V: number, B: number, S: number, seed: number): Batch {
  const rng = new T.Rng(seed);
  const ids = new Int32Array(B * S);
  const labels = new Int32Array(B * S);
  for (let b = 0; b < B; b++) {
    const seq = Array.from({ length: S + 1 }, () => rng.int(V));
    for (let t = 0; t < S; t++) { ids[b * S + t] = seq[t]!; labels[b * S + t] = t === 0 ? -100 : seq[t + 1]!; }
  }
  return { ids, labels, batch: B, seqLen: S };
}

for (const fam of Object.keys(CONFIGS)) {
  test(`${fam}: gradient of the full training loss (f64) matches central differences`, () => {
    const model = buildModel(cfg(fam), { seed: 1, dtype: 'f64', maxPositions: 32 });
    const trainer = new Trainer(model, { lr: () => 0, mtpWeight: 0.3, balanceAlpha: fam === 'deepseek_v3' ? 0.01 : 0 });
    const b = fixedBatch(37, 2, 6, 5);
    T.tidy(() => trainer.loss(b).loss.backward());
    const lossAt = () => T.noGrad(() => T.tidy(() => trainer.loss(b).loss.item()));
    const rng = new T.Rng(3);
    let checked = 0;
    for (const [name, p] of model.namedParameters()) {
      if (!p.requiresGrad) continue;
      // Experts no token chose get no gradient: their numeric gradient must be 0 too.
      const g = p.grad ? (p.grad.toArray() as Float64Array) : new Float64Array(p.size);
      const a = p.raw as Float64Array;
      // A few coordinates per parameter keeps the test fast while covering every tensor.
      for (let k = 0; k < 2; k++) {
        const i = rng.int(p.size);
        const orig = a[p.offset + i]!;
        const eps = 1e-6;
        a[p.offset + i] = orig + eps;
        const up = lossAt();
        a[p.offset + i] = orig - eps;
        const down = lossAt();
        a[p.offset + i] = orig;
        const num = (up - down) / (2 * eps);
        if (Math.abs(num - g[i]!) > 1e-5 + 1e-4 * Math.abs(num)) assert.fail(`${fam} ${name}[${i}]: autograd ${g[i]} vs numeric ${num}`);
        checked++;
      }
    }
    assert.ok(checked > 20);
    model.dispose();
  });

  test(`${fam}: a tiny model overfits a fixed batch (loss < 0.1)`, () => {
    const model = buildModel(cfg(fam, { hidden_size: 32, intermediate_size: 64 }), { seed: 2, maxPositions: 32 });
    const trainer = new Trainer(model, { lr: () => 1e-2, weightDecay: 0, mtpWeight: 0.3 });
    const b = fixedBatch(37, 4, 16, 9);
    let last = Infinity;
    for (let i = 0; i < 300 && last >= 0.1; i++) last = trainer.trainStep([b]).lmLoss;
    assert.ok(last < 0.1, `${fam}: loss ${last}`);
    model.dispose();
  });
}

test('a checkpointed run resumes onto the exact loss curve (model, AdamW moments, routing bias, step)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-ckpt-'));
  try {
    const c = cfg('deepseek_v3');
    const batches = Array.from({ length: 8 }, (_, i) => fixedBatch(37, 2, 8, 100 + i));
    const lr = (s: number) => 3e-3 * Math.min(1, (s + 1) / 3);
    const a = buildModel(c, { seed: 4, maxPositions: 32 });
    const ta = new Trainer(a, { lr, balanceAlpha: 0.001 });
    const full: number[] = [];
    for (let i = 0; i < 8; i++) {
      full.push(ta.trainStep([batches[i]!]).loss);
      if (i === 3) saveCheckpoint(dir, a, ta.optimizer, { step: ta.step, note: 'test' }, { keep: 2 });
      if (i === 4) saveCheckpoint(dir, a, ta.optimizer, { step: ta.step }, { keep: 2 });
    }
    assert.deepEqual(listCheckpoints(dir).map((x) => x.step), [4, 5]);
    // A fresh process: different init, restored from step 4.
    const b = buildModel(c, { seed: 77, maxPositions: 32 });
    const tb = new Trainer(b, { lr, balanceAlpha: 0.001 });
    const state = loadCheckpoint(join(dir, 'checkpoint-000004'), b, tb.optimizer);
    assert.equal(state.step, 4);
    assert.equal(state['note'], 'test');
    tb.step = state.step;
    const resumed: number[] = [];
    for (let i = 4; i < 8; i++) resumed.push(tb.trainStep([batches[i]!]).loss);
    assert.deepEqual(resumed, full.slice(4), 'identical losses after resuming');
    assert.ok(latestCheckpoint(dir)!.endsWith('checkpoint-000005'));
    a.dispose();
    b.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
