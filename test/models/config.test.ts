import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig, isDeepseek, isMoeLayer, configToJson, type ModelConfig } from '../../src/models/config.js';
import { ConfigError } from '../../src/errors.js';
import { repoPath } from '../util.js';

/** The real configs: ../shared/models when present (the dev tree), else the committed copies under test/fixtures. */
export function realConfigPath(name: string): string {
  const shared = repoPath('..', 'shared', 'models', name, 'config.json');
  return existsSync(shared) ? shared : repoPath('test', 'fixtures', 'models', name, 'config.json');
}

const V3_MIN = {
  model_type: 'deepseek_v3', vocab_size: 1000, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3,
  num_attention_heads: 4, kv_lora_rank: 16, qk_nope_head_dim: 8, qk_rope_head_dim: 4, v_head_dim: 8,
  moe_intermediate_size: 32, n_routed_experts: 8, num_experts_per_tok: 2, n_group: 4, topk_group: 2,
};
const QWEN_MIN = { model_type: 'qwen2', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 };

function throwsConfig(json: unknown, field: string, extra?: RegExp): void {
  assert.throws(() => parseConfig(json, 'cfg.json'), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.match(e.message, /^cfg\.json: /, 'names the file');
    assert.ok(e.message.includes(`'${field}'`), `names field ${field}: ${e.message}`);
    if (extra) assert.match(e.message, extra);
    return true;
  });
}

test('DeepSeek-V3 671B config parses with every field', () => {
  const c = loadConfig(realConfigPath('deepseek-v3'));
  assert.ok(isDeepseek(c));
  if (!isDeepseek(c)) return;
  assert.equal(c.modelType, 'deepseek_v3');
  assert.equal(c.hiddenSize, 7168);
  assert.equal(c.numHiddenLayers, 61);
  assert.equal(c.vocabSize, 129280);
  assert.equal(c.qLoraRank, 1536);
  assert.equal(c.kvLoraRank, 512);
  assert.equal(c.qkNopeHeadDim + c.qkRopeHeadDim, 192);
  assert.equal(c.headDim, 192);
  assert.equal(c.nRoutedExperts, 256);
  assert.equal(c.numExpertsPerTok, 8);
  assert.equal(c.nGroup, 8);
  assert.equal(c.topkGroup, 4);
  assert.equal(c.routedScalingFactor, 2.5);
  assert.equal(c.scoringFunc, 'sigmoid');
  assert.equal(c.topkMethod, 'noaux_tc');
  assert.equal(c.numNextnPredictLayers, 1);
  assert.equal(c.firstKDenseReplace, 3);
  assert.deepEqual(c.ropeScaling, {
    type: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1,
    attentionFactor: null, lowFreqFactor: null, highFreqFactor: null,
  });
  assert.deepEqual(c.quantization, { quantMethod: 'fp8', fmt: 'e4m3', activationScheme: 'dynamic', weightBlockSize: [128, 128] });
  assert.equal(isMoeLayer(c, 2), false);
  assert.equal(isMoeLayer(c, 3), true);
  assert.equal(isMoeLayer(c, 61), true, 'the MTP block is MoE');
  // raw is kept for saving back
  assert.equal(configToJson(c)['ep_size'], 1);
});

test('dense configs: S1 (tied, q/k/v bias), D1, T1 (explicit attention_bias false)', () => {
  const s1 = loadConfig(realConfigPath('s1-qwen2.5-0.5b'));
  assert.equal(s1.family, 'dense');
  assert.equal(s1.tieWordEmbeddings, true);
  assert.equal(s1.attentionBias, true, 'Qwen2 has q/k/v bias by default');
  assert.equal(s1.headDim, 64);
  assert.equal(s1.numKeyValueHeads, 2);
  assert.equal(s1.ropeTheta, 1e6);
  const d1 = loadConfig(realConfigPath('d1-r1-distill-qwen-1.5b'));
  assert.equal(d1.headDim, 128);
  assert.equal(d1.tieWordEmbeddings, false);
  assert.equal(d1.bosTokenId, 151646);
  const t1 = loadConfig(realConfigPath('t1-dense'));
  assert.equal(t1.attentionBias, false);
  const m1 = loadConfig(realConfigPath('m1-moe'));
  assert.ok(isDeepseek(m1));
  assert.equal(m1.ropeScaling, null);
});

test('HF defaults fill absent behavioural fields', () => {
  const q = parseConfig(QWEN_MIN, 'q.json');
  assert.equal(q.rmsNormEps, 1e-6);
  assert.equal(q.ropeTheta, 10000);
  assert.equal(q.maxPositionEmbeddings, 32768);
  assert.equal(q.attentionBias, true);
  assert.equal(q.hiddenAct, 'silu');
  const l = parseConfig({ ...QWEN_MIN, model_type: 'llama', num_key_value_heads: undefined }, 'l.json');
  assert.equal(l.numKeyValueHeads, 4, 'llama: kv heads default to heads');
  assert.equal(l.attentionBias, false);
  assert.equal(l.maxPositionEmbeddings, 2048);
  assert.equal(l.bosTokenId, 1);
  const lh = parseConfig({ ...QWEN_MIN, model_type: 'llama', head_dim: 16 }, 'l.json');
  assert.equal(lh.headDim, 16, 'explicit llama head_dim');
  const v3 = parseConfig(V3_MIN, 'v3.json');
  assert.ok(isDeepseek(v3));
  if (isDeepseek(v3)) {
    assert.equal(v3.qLoraRank, 1536, 'deepseek_v3 default q_lora_rank');
    assert.equal(v3.nSharedExperts, 1);
    assert.equal(v3.routedScalingFactor, 2.5);
    assert.equal(v3.firstKDenseReplace, 3);
    assert.equal(v3.numNextnPredictLayers, 1);
    assert.equal(v3.scoringFunc, 'sigmoid');
  }
});

test('deepseek_v2: softmax gating, q_lora_rank null, null n_group', () => {
  const v2 = parseConfig({ ...V3_MIN, model_type: 'deepseek_v2', q_lora_rank: null, n_group: null, topk_group: null, n_shared_experts: 2 }, 'v2.json');
  assert.ok(isDeepseek(v2));
  if (!isDeepseek(v2)) return;
  assert.equal(v2.qLoraRank, null);
  assert.equal(v2.scoringFunc, 'softmax');
  assert.equal(v2.topkMethod, 'gready');
  assert.equal(v2.normTopkProb, false);
  assert.equal(v2.nGroup, 1);
  assert.equal(v2.firstKDenseReplace, 0);
  assert.equal(v2.numNextnPredictLayers, 0);
  assert.equal(v2.routedScalingFactor, 1);
  // V2 with n_routed_experts null is a dense DeepSeek (every layer a dense MLP)
  const dense = parseConfig({ ...V3_MIN, model_type: 'deepseek_v2', n_routed_experts: null, num_experts_per_tok: null }, 'v2.json') as ModelConfig;
  assert.equal(isMoeLayer(dense, 1), false);
});

test('rope_scaling: linear, llama3, yarn, rope_type alias, rope_parameters', () => {
  const lin = parseConfig({ ...QWEN_MIN, rope_scaling: { type: 'linear', factor: 2 } }, 'x');
  assert.equal(lin.ropeScaling?.type, 'linear');
  assert.equal(lin.ropeScaling?.factor, 2);
  const l3 = parseConfig({ ...QWEN_MIN, model_type: 'llama', rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, 'x');
  assert.equal(l3.ropeScaling?.type, 'llama3');
  assert.equal(l3.ropeScaling?.highFreqFactor, 4);
  const y = parseConfig({ ...V3_MIN, rope_scaling: { type: 'yarn', factor: 40 } }, 'x');
  assert.equal(y.ropeScaling?.originalMaxPositionEmbeddings, 4096, 'DeepSeek yarn default');
  assert.equal(y.ropeScaling?.mscaleAllDim, 0);
  assert.equal(y.ropeScaling?.betaFast, 32);
  const v5 = parseConfig({ ...QWEN_MIN, rope_parameters: { rope_type: 'default', rope_theta: 500000 } }, 'x');
  assert.equal(v5.ropeTheta, 500000);
  assert.equal(v5.ropeScaling, null);
  throwsConfig({ ...QWEN_MIN, rope_scaling: { type: 'longrope', factor: 2 } }, 'rope_scaling.type');
  throwsConfig({ ...QWEN_MIN, rope_scaling: { type: 'linear' } }, 'rope_scaling.factor', /required/);
  throwsConfig({ ...QWEN_MIN, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, original_max_position_embeddings: 8192 } }, 'rope_scaling.high_freq_factor');
});

test('bad configs: ConfigError naming the field and the file', () => {
  throwsConfig({ ...QWEN_MIN, model_type: 'gpt2' }, 'model_type', /'qwen2'/);
  throwsConfig({ vocab_size: 3 }, 'model_type', /required/);
  throwsConfig({ ...QWEN_MIN, hidden_size: undefined }, 'hidden_size', /required/);
  throwsConfig({ ...QWEN_MIN, hidden_size: '32' }, 'hidden_size', /integer/);
  throwsConfig({ ...QWEN_MIN, hidden_size: 0 }, 'hidden_size', />= 1/);
  throwsConfig({ ...QWEN_MIN, hidden_size: 30 }, 'num_attention_heads', /divide hidden_size/);
  throwsConfig({ ...QWEN_MIN, num_key_value_heads: 3 }, 'num_key_value_heads', /divide/);
  throwsConfig({ ...QWEN_MIN, rms_norm_eps: -1 }, 'rms_norm_eps');
  throwsConfig({ ...QWEN_MIN, tie_word_embeddings: 'yes' }, 'tie_word_embeddings');
  throwsConfig({ ...V3_MIN, num_experts_per_tok: 9 }, 'num_experts_per_tok', /<= n_routed_experts/);
  throwsConfig({ ...V3_MIN, n_group: 3 }, 'n_group', /divide/);
  throwsConfig({ ...V3_MIN, topk_group: 5 }, 'topk_group', /<= n_group/);
  throwsConfig({ ...V3_MIN, n_group: 8, topk_group: 1 }, 'topk_group', /cannot hold/);
  throwsConfig({ ...V3_MIN, kv_lora_rank: undefined }, 'kv_lora_rank');
  throwsConfig({ ...V3_MIN, qk_rope_head_dim: 5 }, 'qk_rope_head_dim', /even/);
  throwsConfig({ ...V3_MIN, scoring_func: 'relu' }, 'scoring_func');
  throwsConfig({ ...V3_MIN, moe_intermediate_size: undefined }, 'moe_intermediate_size');
  throwsConfig({ ...QWEN_MIN, eos_token_id: [1, -2] }, 'eos_token_id[1]');
  assert.throws(() => parseConfig([1, 2], 'a.json'), ConfigError);
});

test('loadConfig: unreadable and invalid JSON name the path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1cfg-'));
  const p = join(dir, 'config.json');
  writeFileSync(p, '{ "model_type": ');
  assert.throws(() => loadConfig(p), (e: unknown) => e instanceof ConfigError && e.message.includes(p) && /JSON/.test(e.message));
  assert.throws(() => loadConfig(join(dir, 'missing.json')), (e: unknown) => e instanceof ConfigError && /ENOENT/.test(e.message));
});
