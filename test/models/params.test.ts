import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { loadConfig, parseConfig } from '../../src/models/config.js';
import { countParameters, fp8ScaleShapes, numel, parameterShapes, COMPONENTS } from '../../src/models/params.js';
import { repoPath } from '../util.js';

function realConfig(name: string) {
  const shared = repoPath('..', 'shared', 'models', name, 'config.json');
  return loadConfig(existsSync(shared) ? shared : repoPath('test', 'fixtures', 'models', name, 'config.json'));
}

test('DeepSeek-V3: 671B total without MTP, ~37B active, MTP makes HF 685B', () => {
  const c = realConfig('deepseek-v3');
  const r = countParameters(c);
  // V3 report §1/§4.2: 671B total, 37B activated per token.
  assert.ok(Math.abs(r.total - 671e9) / 671e9 < 0.005, `total ${r.total}`);
  // Exact figure from the shapes (pins the accounting itself against silent changes).
  assert.equal(r.total, 671_026_419_200);
  // Without the embedding lookup 36.6B, with it 37.6B; both round to the paper's 37B.
  assert.ok(r.active > 36.5e9 && r.active < 37e9, `active ${r.active}`);
  assert.ok(r.activeWithEmbedding > 37e9 && r.activeWithEmbedding < 38e9, `activeWithEmbedding ${r.activeWithEmbedding}`);
  assert.equal(r.embeddingLookupCounted, false);
  // MTP module: one MoE block + eh_proj + norms, plus stored embedding/head copies.
  assert.ok(r.mtp > 11.5e9 && r.mtp < 14e9, `mtp ${r.mtp}`);
  assert.ok(r.mtpDetail.unique > 11.5e9 && r.mtpDetail.unique < r.mtp);
  assert.ok(Math.abs(r.totalWithMtp - 685e9) / 685e9 < 0.002, `total+mtp ${r.totalWithMtp}`);
  // The HF hub's element count of the FP8 checkpoint: parameters + weight_scale_inv tensors.
  const scales = fp8ScaleShapes(c).reduce((s, e) => s + numel(e.shape), 0);
  assert.equal(r.totalWithMtp + scales, 684_531_386_000);
  assert.equal(r.denseLayers, 3);
  assert.equal(r.moeLayers, 58);
  assert.equal(r.paramsPerExpert, 3 * 7168 * 2048);
  // routed active = 8/256 of routed total
  assert.equal(r.activeComponents.routedExperts, r.components.routedExperts * 8 / 256);
});

test('dense: S1 494M (tied), D1 1.78B', () => {
  const s1 = countParameters(realConfig('s1-qwen2.5-0.5b'));
  assert.equal(s1.total, 494_032_768); // Qwen2.5-0.5B: 0.49B (model card)
  assert.equal(s1.components.head, 0, 'tied: no lm_head tensor');
  assert.equal(s1.active, s1.total, 'tied embedding is active as the head');
  assert.equal(s1.mtp, 0);
  const d1 = countParameters(realConfig('d1-r1-distill-qwen-1.5b'));
  assert.ok(Math.abs(d1.total - 1.78e9) / 1.78e9 < 0.005, `D1 ${d1.total}`);
  assert.equal(d1.activeWithEmbedding, d1.total);
  assert.equal(d1.active, d1.total - d1.components.embedding);
});

test('parameterShapes: HF names and shapes; the counts are its sum', () => {
  const c = realConfig('deepseek-v3');
  const list = parameterShapes(c);
  const byName = new Map(list.map((e) => [e.name, e.shape]));
  assert.deepEqual(byName.get('model.layers.3.self_attn.kv_a_proj_with_mqa.weight'), [576, 7168]);
  assert.deepEqual(byName.get('model.layers.0.self_attn.q_b_proj.weight'), [128 * 192, 1536]);
  assert.deepEqual(byName.get('model.layers.0.self_attn.kv_b_proj.weight'), [128 * 256, 512]);
  assert.deepEqual(byName.get('model.layers.0.self_attn.o_proj.weight'), [7168, 128 * 128]);
  assert.deepEqual(byName.get('model.layers.0.mlp.gate_proj.weight'), [18432, 7168]);
  assert.equal(byName.get('model.layers.2.mlp.gate.weight'), undefined, 'layer 2 is dense');
  assert.deepEqual(byName.get('model.layers.3.mlp.gate.weight'), [256, 7168]);
  assert.deepEqual(byName.get('model.layers.3.mlp.gate.e_score_correction_bias'), [256]);
  assert.deepEqual(byName.get('model.layers.60.mlp.experts.255.down_proj.weight'), [7168, 2048]);
  assert.deepEqual(byName.get('model.layers.3.mlp.shared_experts.up_proj.weight'), [2048, 7168]);
  for (const n of ['enorm', 'hnorm', 'shared_head.norm']) assert.deepEqual(byName.get(`model.layers.61.${n}.weight`), [7168]);
  assert.deepEqual(byName.get('model.layers.61.eh_proj.weight'), [7168, 14336]);
  assert.deepEqual(byName.get('model.layers.61.shared_head.head.weight'), [129280, 7168]);
  assert.deepEqual(byName.get('model.layers.61.mlp.experts.0.gate_proj.weight'), [2048, 7168]);
  assert.equal(byName.get('model.layers.62.enorm.weight'), undefined);
  assert.equal(new Set(list.map((e) => e.name)).size, list.length, 'names unique');
  const r = countParameters(c, list);
  const sum = list.reduce((s, e) => s + numel(e.shape), 0);
  assert.equal(r.totalWithMtp, sum);
  assert.equal(COMPONENTS.reduce((s, k) => s + r.components[k], 0), r.total);
  // Dropping one tensor changes the count: the count is computed from the list, not on the side.
  assert.equal(countParameters(c, list.slice(1)).total, r.total - 129280 * 7168);
});

test('qwen2 bias, llama bias/head_dim, V2 direct q_proj and softmax gate without correction bias', () => {
  const q = parseConfig({ model_type: 'qwen2', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 }, 'q');
  const qn = parameterShapes(q).map((e) => e.name);
  assert.ok(qn.includes('model.layers.0.self_attn.k_proj.bias'));
  assert.ok(!qn.includes('model.layers.0.self_attn.o_proj.bias'));
  assert.equal(countParameters(q).total,
    10 * 8 + (8 + 8 * 8 + 8 + 4 * 8 + 4 + 4 * 8 + 4 + 8 * 8 + 8 + 3 * 8 * 16) + 8 + 10 * 8);
  const l = parseConfig({ model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 6, attention_bias: true, mlp_bias: true }, 'l');
  const ls = new Map(parameterShapes(l).map((e) => [e.name, e.shape]));
  assert.deepEqual(ls.get('model.layers.0.self_attn.q_proj.weight'), [12, 8]);
  assert.deepEqual(ls.get('model.layers.0.self_attn.o_proj.bias'), [8]);
  assert.deepEqual(ls.get('model.layers.0.mlp.down_proj.bias'), [8]);
  const v2 = parseConfig({
    model_type: 'deepseek_v2', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2,
    q_lora_rank: null, kv_lora_rank: 4, qk_nope_head_dim: 2, qk_rope_head_dim: 2, v_head_dim: 2, n_routed_experts: 4,
    num_experts_per_tok: 2, n_shared_experts: 2, moe_intermediate_size: 3, first_k_dense_replace: 1,
  }, 'v2');
  const vs = new Map(parameterShapes(v2).map((e) => [e.name, e.shape]));
  assert.deepEqual(vs.get('model.layers.0.self_attn.q_proj.weight'), [8, 8]);
  assert.equal(vs.get('model.layers.1.mlp.gate.e_score_correction_bias'), undefined);
  assert.deepEqual(vs.get('model.layers.1.mlp.shared_experts.gate_proj.weight'), [6, 8]);
  const r = countParameters(v2);
  assert.equal(r.mtp, 0);
  assert.equal(r.activeComponents.routedExperts, r.components.routedExperts / 2);
});
