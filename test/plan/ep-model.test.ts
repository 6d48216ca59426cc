// `r1 plan ep --model`: all-to-all and EPLB from the routing a real (tiny, random) DeepSeek-V3 model's gate produces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../util.js';
import { getTask } from '../../src/tasks/index.js';
import { trainBpe } from '../../src/io/tokenizer/train.js';
import { parseConfig } from '../../src/models/config.js';
import { buildModel, saveModel } from '../../src/models/load.js';
import { collectRouting } from '../../src/models/routing.js';
import { DeepseekV3ForCausalLM } from '../../src/models/deepseek-v3.js';
import { Tokenizer } from '../../src/io/tokenizer/tokenizer.js';

const main = repoPath('dist', 'src', 'cli', 'main.js');

test('collectRouting + r1 plan ep --model: group-limited samples, loads, node limit, EPLB', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-ep-model-'));
  try {
    const task = getTask('arithmetic');
    const corpus = task.sample('train', 200, { seed: 1 }).map((p) => `${p.prompt}\n${task.solve(p)}`);
    const t = trainBpe(corpus, 300, { splitDigits: true });
    const config = parseConfig({
      model_type: 'deepseek_v3', vocab_size: t.vocabSize, hidden_size: 32, intermediate_size: 48, moe_intermediate_size: 16,
      num_hidden_layers: 3, first_k_dense_replace: 1, num_attention_heads: 2, num_key_value_heads: 2, q_lora_rank: 16, kv_lora_rank: 8,
      qk_nope_head_dim: 8, qk_rope_head_dim: 8, v_head_dim: 8, n_routed_experts: 16, num_experts_per_tok: 4, n_group: 4, topk_group: 2,
      n_shared_experts: 1, num_nextn_predict_layers: 1, max_position_embeddings: 1024, bos_token_id: 0, eos_token_id: 1,
    }, 'ep-model');
    const model = buildModel(config, { seed: 5 }) as DeepseekV3ForCausalLM;
    const modelDir = join(dir, 'model');
    saveModel(modelDir, model, { tokenizerFiles: { 'tokenizer.json': JSON.stringify(t.tokenizerJSON), 'tokenizer_config.json': JSON.stringify(t.tokenizerConfig) } });

    // Library: one sample per MoE layer (layers 1 and 2), k ids per token, every token within topk_group groups.
    const tok = Tokenizer.load(modelDir);
    const problems = task.sample('test', 6, { seed: 0 });
    const seqs = problems.map((p) => tok.encode(`${p.prompt}\n${task.solve(p)}`));
    const tokens = seqs.reduce((a, s) => a + s.length, 0);
    const layers = collectRouting(model, seqs);
    assert.deepEqual(layers.map((l) => l.layer), [1, 2]);
    for (const l of layers) {
      assert.equal(l.experts.length, tokens * 4);
      for (let i = 0; i < tokens; i++) {
        const ids = [...l.experts.subarray(i * 4, i * 4 + 4)];
        assert.equal(new Set(ids).size, 4, 'distinct experts per token');
        assert.ok(new Set(ids.map((e) => Math.floor(e / 4))).size <= 2, `token ${i} reaches more than topk_group groups: ${ids}`);
      }
    }
    assert.equal(model.model.layers.items.some((l) => l.mlp && 'routingLog' in l.mlp && (l.mlp as { routingLog: unknown }).routingLog !== null), false, 'logging is switched off afterwards');
    model.dispose();

    // CLI: same sample (same seed and count), one expert per GPU, one group per node.
    const j = JSON.parse(execFileSync(process.execPath, [main, 'plan', 'ep', '--model', modelDir, '--samples', '6', '--json'], { encoding: 'utf8' }));
    assert.equal(j.gpus, 16);
    assert.equal(j.gpusPerNode, 4);
    assert.equal(j.nodes, 4);
    assert.equal(j.layers.length, 2);
    for (const [i, r] of j.layers.entries()) {
      assert.equal(r.tokens, tokens);
      const want = new Array(16).fill(0);
      for (const e of layers[i]!.experts) want[e]++;
      assert.deepEqual(r.expertLoads, want, 'CLI loads are the library sample\'s');
      assert.ok(r.maxNodesPerToken <= 2, 'node-limited: at most topk_group nodes per token');
      assert.ok(r.meanNodesPerToken >= 1);
      assert.ok(r.eplb.global <= r.gpuImbalanceBefore + 1e-12);
      assert.ok(r.eplb.hierarchical <= r.gpuImbalanceBefore + 1e-12);
    }
    const text = execFileSync(process.execPath, [main, 'plan', 'ep', '--model', modelDir, '--samples', '3'], { encoding: 'utf8' });
    assert.match(text, /16 experts in 4 groups, top-4 \(top-2 groups\)/);

    // Errors: a dense model, flags that only make sense for synthetic routing, and a missing text file.
    const bad = (...a: string[]) => spawnSync(process.execPath, [main, 'plan', 'ep', '--model', modelDir, ...a], { encoding: 'utf8' });
    assert.match(bad('--skew', '2').stderr, /--skew and --tokens-per-gpu describe synthetic routing/);
    assert.match(bad('--text-file', join(dir, 'nope.txt')).stderr, /cannot read --text-file/);
    writeFileSync(join(dir, 'lines.txt'), 'What is 1 + 2?\n\nWhat is 3 - 1?\n');
    const jt = JSON.parse(execFileSync(process.execPath, [main, 'plan', 'ep', '--model', modelDir, '--text-file', join(dir, 'lines.txt'), '--json'], { encoding: 'utf8' }));
    assert.equal(jt.sequences, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
