/** r1 pretrain -> r1 sft -> r1 eval -> r1 run end to end on a tiny model (and resume, and flag errors). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTokenizerFolder } from '../util.js';
import { getTask } from '../../src/tasks/index.js';

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (s: string) => { lines.push(String(s)); };
  try {
    return { code: await fn(), out: lines.join('\n') };
  } finally {
    console.log = orig;
  }
}

test('pretrain, sft (resumable), eval and run on a tiny DeepSeek-V3 from the command line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-cli-train-'));
  try {
    const task = getTask('arithmetic');
    const corpus = task.sample('train', 300, { seed: 1 }).map((p) => `${p.prompt}\n${task.solve(p)}`);
    const tokDir = join(dir, 'tok');
    const vocabSize = writeTokenizerFolder(tokDir, corpus, 300);
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({
      model_type: 'deepseek_v3', vocab_size: vocabSize, hidden_size: 32, intermediate_size: 48, moe_intermediate_size: 16,
      num_hidden_layers: 2, first_k_dense_replace: 1, num_attention_heads: 2, num_key_value_heads: 2, q_lora_rank: 16, kv_lora_rank: 8,
      qk_nope_head_dim: 8, qk_rope_head_dim: 8, v_head_dim: 8, n_routed_experts: 4, num_experts_per_tok: 2, n_group: 2, topk_group: 1,
      n_shared_experts: 1, num_nextn_predict_layers: 1, max_position_embeddings: 256, bos_token_id: 0, eos_token_id: 1,
    }));
    const { default: pretrain } = await import('../../src/cli/commands/pretrain.js');
    const { default: sft } = await import('../../src/cli/commands/sft.js');
    const { default: evalCmd } = await import('../../src/cli/commands/eval.js');
    const { default: run } = await import('../../src/cli/commands/run.js');
    const pre = await capture(() => pretrain.run(['--model', cfg, '--tokenizer', tokDir, '--task', 'arithmetic', '--problems', '200', '--out', join(dir, 'pre'), '--steps', '4', '--batch', '2', '--seq', '64', '--lr', '1e-3', '--json']));
    assert.equal(pre.code, 0);
    const ps = JSON.parse(pre.out) as { steps: number; modelDir: string; finalLoss: number };
    assert.equal(ps.steps, 4);
    assert.ok(Number.isFinite(ps.finalLoss));
    assert.ok(existsSync(join(ps.modelDir, 'model.safetensors')) && existsSync(join(ps.modelDir, 'tokenizer.json')));
    // --adam-beta2 reaches the optimizer: the same run with DeepSeek-V3's 0.95 follows another curve from step 2 on
    // (Adam's first update is sign(g) x lr whatever beta2 is).
    const preB = await capture(() => pretrain.run(['--model', cfg, '--tokenizer', tokDir, '--task', 'arithmetic', '--problems', '200', '--out', join(dir, 'pre-b2'), '--steps', '4', '--batch', '2', '--seq', '64', '--lr', '1e-3', '--adam-beta2', '0.95', '--json']));
    const lossesOf = (run: string) => readFileSync(join(dir, run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
    const [la, lb] = [lossesOf('pre'), lossesOf('pre-b2')];
    assert.equal(JSON.parse(preB.out).steps, 4);
    assert.deepEqual(lb.slice(0, 2), la.slice(0, 2), 'steps 1-2 see the same weights (first update independent of beta2)');
    assert.notDeepEqual(lb.slice(2), la.slice(2));
    await assert.rejects(() => pretrain.run(['--model', cfg, '--tokenizer', tokDir, '--task', 'arithmetic', '--out', join(dir, 'x'), '--lr', '1e-3', '--adam-beta2', '1']), /--adam-beta2 must be below 1/);
    // SFT from the pretrained folder, stopped after 2 steps, then resumed to 4: the metrics continue the same run.
    const sftArgs = (steps: string) => ['--model', ps.modelDir, '--task', 'arithmetic', '--problems', '100', '--out', join(dir, 'sft'), '--steps', steps, '--batch', '2', '--seq', '64', '--lr', '1e-3', '--lr-schedule', 'constant', '--save-every', '1', '--json'];
    const full = await capture(() => sft.run(sftArgs('4')));
    const fullMetrics = readFileSync(join(dir, 'sft', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number });
    rmSync(join(dir, 'sft'), { recursive: true });
    await capture(() => sft.run(sftArgs('2')));
    const resumed = await capture(() => sft.run([...sftArgs('4'), '--resume']));
    assert.equal((JSON.parse(resumed.out) as { resumedFrom: number }).resumedFrom, 2);
    const resumedMetrics = readFileSync(join(dir, 'sft', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number });
    assert.deepEqual(resumedMetrics.map((m) => m.loss), fullMetrics.map((m) => m.loss), 'a resumed run continues the exact loss curve');
    const modelDir = (JSON.parse(full.out) as { modelDir: string }).modelDir;
    const ev = await capture(() => evalCmd.run([modelDir, '--task', 'arithmetic', '--problems', '3', '--k', '1', '--max-tokens', '6', '--json']));
    const er = JSON.parse(ev.out) as { problems: number; greedyAccuracy: number; passAt1: number; k: number };
    assert.equal(er.problems, 3);
    assert.ok(er.greedyAccuracy >= 0 && er.greedyAccuracy <= 1 && er.passAt1 >= 0 && er.k === 1);
    const rr = await capture(() => run.run([modelDir, 'What is 2 + 3?', '--max-tokens', '5', '--temperature', '0', '--json']));
    const rj = JSON.parse(rr.out) as { tokens: number; prompt_tokens: number; finish_reason: string; reasoning: string; content: string };
    assert.ok(rj.tokens <= 5 && rj.prompt_tokens > 5 && typeof rj.reasoning === 'string');
    await assert.rejects(() => pretrain.run(['--model', cfg, '--out', join(dir, 'x'), '--task', 'arithmetic', '--lr', '1e-3']), /--tokenizer is required/);
    await assert.rejects(() => sft.run(['--model', modelDir, '--out', join(dir, 'x'), '--lr', '1e-3']), /exactly one of --data or --task/);
    await assert.rejects(() => sft.run(['--model', modelDir, '--out', join(dir, 'x'), '--task', 'chess', '--lr', '1e-3']), /unknown task/);
    await assert.rejects(() => run.run([join(dir, 'nope'), 'hi']), /no such folder/);
    await assert.rejects(() => run.run([modelDir, 'hi', '--top-p', '2']), /--top-p must be <= 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
