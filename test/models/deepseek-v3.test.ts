/** DeepSeek-V3 model mechanics: MLA naive == absorbed, routing rules, expert grouping, balancing, gradients. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { parseConfig, type DeepseekConfig } from '../../src/models/config.js';
import { DeepseekV3ForCausalLM, MoE, mlaSoftmaxScale } from '../../src/models/deepseek-v3.js';

const tiny = (over: Record<string, unknown> = {}): DeepseekConfig => parseConfig({
  model_type: 'deepseek_v3', vocab_size: 61, hidden_size: 32, intermediate_size: 48, moe_intermediate_size: 16,
  num_hidden_layers: 2, first_k_dense_replace: 1, num_attention_heads: 4, num_key_value_heads: 4,
  q_lora_rank: 24, kv_lora_rank: 16, qk_nope_head_dim: 8, qk_rope_head_dim: 4, v_head_dim: 8,
  n_routed_experts: 8, num_experts_per_tok: 2, n_group: 4, topk_group: 2, n_shared_experts: 1,
  routed_scaling_factor: 2.5, scoring_func: 'sigmoid', topk_method: 'noaux_tc', norm_topk_prob: true,
  num_nextn_predict_layers: 1, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000,
  rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
  ...over,
}, 'tiny-test-config') as DeepseekConfig;

const ids = T.tensor([[3, 14, 15, 9, 2, 6, 5, 35, 8, 9]], { dtype: 'i32' });

function maxDiff(a: T.Tensor, b: T.Tensor): number {
  const x = a.toArray() as Float32Array;
  const y = b.toArray() as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

test('MLA: the absorbed path equals the naive path, with and without a q low-rank path', () => {
  for (const over of [{}, { q_lora_rank: null }]) {
    const m = new DeepseekV3ForCausalLM(tiny(over), { seed: 3, maxPositions: 32 });
    T.noGrad(() => T.tidy(() => {
      const a = m.forward(ids, { mtp: false });
      const b = m.forward(ids, { absorbed: true, mtp: false });
      assert.ok(maxDiff(a.logits, b.logits) < 1e-5, `naive vs absorbed differ by ${maxDiff(a.logits, b.logits)}`);
      // The absorbed cache holds kv_lora_rank + qk_rope_head_dim values per token per layer.
      assert.deepEqual(b.cache[0]!.kv.shape, [1, 1, 10, 16 + 4]);
      // Incremental: prefill 6 tokens, then 4 more against the cache, equals the full pass.
      const p = m.forward(ids.narrow(1, 0, 6).contiguous(), { absorbed: true, mtp: false });
      const q = m.forward(ids.narrow(1, 6, 4).contiguous(), { absorbed: true, mtp: false, past: p.cache });
      assert.ok(maxDiff(q.logits, a.logits.narrow(1, 6, 4)) < 1e-5);
    }));
    m.dispose();
  }
});

test('MLA softmax scale carries YaRN mscale^2 (V3: 0.1 ln 40 + 1)', () => {
  const v3 = tiny({ qk_nope_head_dim: 128, qk_rope_head_dim: 64, rope_scaling: { type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 } });
  const ms = 0.1 * Math.log(40) + 1;
  assert.ok(Math.abs(mlaSoftmaxScale(v3) - (ms * ms) / Math.sqrt(192)) < 1e-12);
});

test('gate: group-limited routing on biased scores, weights from unbiased scores', () => {
  const c = tiny();
  const m = new DeepseekV3ForCausalLM(c, { seed: 5, maxPositions: 32, mtp: false });
  const moe = m.moeLayers()[0]!;
  const bias = moe.gate.e_score_correction_bias!;
  (bias.raw as Float32Array).set([0.3, -0.2, 0.1, 0, 0.25, -0.3, 0.05, 0.2]);
  const x = T.randn([12, 32], { rng: new T.Rng(9) });
  const r = T.noGrad(() => moe.gate.route(x));
  const s = T.sigmoid(T.linear(x, moe.gate.weight)).toArray() as Float32Array;
  const b = bias.toArray() as Float32Array;
  const idx = r.indices.toArray() as Int32Array;
  const w = r.weights.toArray() as Float32Array;
  let differsFromUnbiased = false;
  for (let t = 0; t < 12; t++) {
    // brute force: group score = sum of top-2 biased scores in each group of 2; keep top-2 groups; top-2 experts
    const biased = Array.from({ length: 8 }, (_, e) => s[t * 8 + e]! + b[e]!);
    const gs = [0, 1, 2, 3].map((g) => biased[2 * g]! + biased[2 * g + 1]!);
    const groups = [0, 1, 2, 3].sort((p, q) => gs[q]! - gs[p]!).slice(0, 2);
    const cand = [0, 1, 2, 3, 4, 5, 6, 7].filter((e) => groups.includes(Math.floor(e / 2))).sort((p, q) => biased[q]! - biased[p]!);
    const want = cand.slice(0, 2);
    assert.deepEqual([idx[t * 2]!, idx[t * 2 + 1]!], want);
    const unb = [0, 1, 2, 3, 4, 5, 6, 7].sort((p, q) => s[t * 8 + q]! - s[t * 8 + p]!).slice(0, 2);
    if (unb[0] !== want[0] || unb[1] !== want[1]) differsFromUnbiased = true;
    const sum = s[t * 8 + want[0]!]! + s[t * 8 + want[1]!]!;
    for (let j = 0; j < 2; j++) assert.ok(Math.abs(w[t * 2 + j]! - (2.5 * s[t * 8 + want[j]!]!) / sum) < 1e-5);
  }
  assert.ok(differsFromUnbiased, 'the bias changed no choice: the test would not catch a bias bug');
  m.dispose();
});

test('MoE equals a token-by-token reference (weighted experts + shared); loads counted; balancing bias moves toward the mean load', () => {
  const c = tiny();
  const m = new DeepseekV3ForCausalLM(c, { seed: 7, maxPositions: 32, mtp: false });
  const moe = m.moeLayers()[0]!;
  const x = T.randn([2, 5, 32], { rng: new T.Rng(2) });
  const { out, routing } = T.noGrad(() => moe.forwardRouted(x));
  const idx = routing.indices.toArray() as Int32Array;
  const w = routing.weights.toArray() as Float32Array;
  const K = c.numExpertsPerTok;
  // Reference: each token alone through its k experts (module forwards), weighted, plus the shared expert.
  const flat = x.reshape(10, 32);
  const got = out.reshape(10, 32).toArray() as Float32Array;
  T.noGrad(() => {
    for (let t = 0; t < 10; t++) {
      const xt = flat.narrow(0, t, 1);
      let ref = moe.shared_experts!.forward(xt);
      for (let j = 0; j < K; j++) ref = ref.add(moe.experts.items[idx[t * K + j]!]!.forward(xt).mul(w[t * K + j]!));
      const r = ref.toArray() as Float32Array;
      for (let d = 0; d < 32; d++) assert.ok(Math.abs(r[d]! - got[t * 32 + d]!) < 1e-5, `token ${t} dim ${d}: ${got[t * 32 + d]} vs ${r[d]}`);
    }
  });
  const counts = new Array(8).fill(0);
  for (const e of idx) counts[e]++;
  assert.deepEqual(Array.from(moe.load), counts);
  const before = moe.gate.e_score_correction_bias!.toArray() as Float32Array;
  moe.updateBias(0.001);
  const after = moe.gate.e_score_correction_bias!.toArray() as Float32Array;
  const mean = counts.reduce((a: number, b: number) => a + b, 0) / 8;
  for (let e = 0; e < 8; e++) assert.ok(Math.abs(after[e]! - before[e]! - 0.001 * Math.sign(mean - counts[e]!)) < 1e-9);
  assert.deepEqual(Array.from(moe.load), new Array(8).fill(0));
  m.dispose();
});

test('backward reaches the gate, the experts, MLA and MTP; the balance loss is differentiable', () => {
  const c = tiny();
  const m = new DeepseekV3ForCausalLM(c, { seed: 11, maxPositions: 32 });
  T.tidy(() => {
    const out = m.forward(ids, { balanceAlpha: 0.001 });
    assert.equal(out.mtpLogits.length, 1);
    assert.deepEqual(out.mtpLogits[0]!.shape, [1, 9, 61]);
    const tg = ids.narrow(1, 1, 9).contiguous();
    let loss = T.crossEntropy(out.logits.narrow(1, 0, 9), tg);
    loss = loss.add(T.crossEntropy(out.mtpLogits[0]!.narrow(1, 0, 8), ids.narrow(1, 2, 8).contiguous()).mul(0.3));
    const bal = m.moeLayers().map((l) => l.balanceLoss!);
    for (const b of bal) loss = loss.add(b);
    loss.backward();
  });
  const g = (name: string): number => {
    const p = m.getParameter(name)!;
    assert.ok(p.grad, `${name} has no gradient`);
    return Math.max(...Array.from(p.grad!.toArray() as Float32Array, Math.abs));
  };
  assert.ok(g('model.layers.1.mlp.gate.weight') > 0);
  assert.ok(g('model.layers.1.mlp.shared_experts.down_proj.weight') > 0);
  assert.ok(g('model.layers.0.self_attn.kv_b_proj.weight') > 0);
  assert.ok(g('model.layers.2.eh_proj.weight') > 0);
  assert.equal(m.getParameter('model.layers.1.mlp.gate.e_score_correction_bias')!.grad, null);
  m.dispose();
});

test('a tiny DeepSeek-V3 overfits a fixed batch', () => {
  const c = tiny();
  const m = new DeepseekV3ForCausalLM(c, { seed: 13, maxPositions: 32, mtp: false });
  const params = m.trainableParameters();
  let loss = Infinity;
  for (let step = 0; step < 60; step++) {
    loss = T.tidy(() => {
      const out = m.forward(ids, { mtp: false });
      const l = T.crossEntropy(out.logits.narrow(1, 0, 9), ids.narrow(1, 1, 9).contiguous());
      l.backward();
      return l.item();
    });
    T.noGrad(() => {
      for (const p of params) {
        if (!p.grad) continue;
        const a = p.raw as Float32Array;
        const gr = p.grad.toArray() as Float32Array;
        for (let i = 0; i < a.length; i++) a[i]! -= 0.5 * gr[i]!;
        p.zeroGrad();
      }
    });
    m.updateRoutingBias(0.001);
  }
  assert.ok(loss < 0.1, `loss after 60 steps: ${loss}`);
  assert.ok(m.moeLayers()[0] instanceof MoE);
  m.dispose();
});
