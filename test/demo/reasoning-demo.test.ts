/** The main job end to end at a toy size: every phase runs and the report folder is complete. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runReasoningDemo } from '../../src/demo/reasoning-demo.js';

test('r1 demo pipeline (tiny): tokenizer, pretrain, SFT, export, eval, MTP speculation, report', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-demo-'));
  try {
    const r = await runReasoningDemo({ pretrainSteps: 3, sftSteps: 3, trainProblems: 300, testProblems: 4, batch: 2, seqLen: 64, hidden: 64, layers: 2, outDir: dir, stream: null });
    assert.equal(r.task, 'arithmetic');
    assert.equal(r.testProblems, 4);
    assert.ok(r.heldOutAccuracy >= 0 && r.heldOutAccuracy <= 1);
    assert.ok(r.pretrainLoss[1] < r.pretrainLoss[0], 'pretraining lowers the loss');
    for (const f of ['report.md', 'training.png', 'training.svg', 'results.json', 'model/model.safetensors', 'model/tokenizer.json', 'model/config.json', 'pretrain/metrics.jsonl', 'sft/metrics.jsonl']) assert.ok(existsSync(join(dir, f)), f);
    assert.match(readFileSync(join(dir, 'report.md'), 'utf8'), /held-out accuracy/);
    assert.ok(r.mtp.acceptance >= 0 && r.mtp.acceptance <= 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
