/** `--weights f32|bf16|fp8` and `--kv-cache auto|f32|bf16` on r1 run / eval: parsed, validated, and the model answers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainBpe } from '../../src/io/tokenizer/train.js';
import { parseConfig } from '../../src/models/config.js';
import { buildModel, saveModel } from '../../src/models/load.js';
import { panelsPreferred } from '../../src/quant/qgemm.js';
import { repoPath } from '../util.js';

const main = repoPath('dist', 'src', 'cli', 'main.js');

function r1(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('r1 run --weights: f32, bf16 and fp8 all answer; greedy bf16 tokens equal f32 on a tiny model; bad values are usage errors', () => {
  const root = mkdtempSync(join(tmpdir(), 'r1-weights-'));
  try {
    const corpus = Array.from({ length: 120 }, (_, i) => `What is ${i} + ${i * 3}? <think>\nadd</think>\n<answer>${i * 4}</answer>`);
    const t = trainBpe(corpus, 300);
    const config = parseConfig({ model_type: 'qwen2', vocab_size: t.vocabSize, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, initializer_range: 0.5, tie_word_embeddings: true }, 'cli-test');
    const model = buildModel(config, { seed: 5, maxPositions: 128 });
    const dir = join(root, 'm');
    saveModel(dir, model, { tokenizerFiles: { 'tokenizer.json': JSON.stringify(t.tokenizerJSON), 'tokenizer_config.json': JSON.stringify(t.tokenizerConfig) } });
    model.dispose();
    const out: Record<string, { tokens: number; content: string; reasoning: string }> = {};
    for (const w of ['f32', 'bf16', 'fp8']) {
      // an f32 cache throughout: the weights alone differ (a bf16 cache is checked below)
      const r = r1(['run', dir, 'What is 2 + 2?', '--temperature', '0', '--max-tokens', '8', '--weights', w, '--kv-cache', 'f32', '--json']);
      assert.equal(r.code, 0, `--weights ${w}: ${r.stderr}`);
      out[w] = JSON.parse(r.stdout);
      assert.equal(out[w]!.tokens, 8, `--weights ${w}: ${r.stdout}`);
    }
    // bf16 rounding moves these logits by ~0.3% (test/nn/packed-weights.test.ts): greedy picks stay the same here.
    assert.equal(out['bf16']!.reasoning + out['bf16']!.content, out['f32']!.reasoning + out['f32']!.content);
    // --kv-cache: an f32 model with a bf16 cache (and bf16 weights with an f32 one) still answers the same here
    for (const [w, kv] of [['f32', 'bf16'], ['bf16', 'f32']]) {
      const r = r1(['run', dir, 'What is 2 + 2?', '--temperature', '0', '--max-tokens', '8', '--weights', w!, '--kv-cache', kv!, '--json']);
      assert.equal(r.code, 0, `--weights ${w} --kv-cache ${kv}: ${r.stderr}`);
      const o = JSON.parse(r.stdout) as { tokens: number; content: string; reasoning: string };
      assert.equal(o.tokens, 8);
      assert.equal(o.reasoning + o.content, out['f32']!.reasoning + out['f32']!.content, `--weights ${w} --kv-cache ${kv}`);
    }
    // f32 weights are re-laid out in panels where the AVX-512 kernels run (same values: the answers above agree), q/k/v
    // and gate/up of both layers fused, and the load line says so
    const plain = r1(['run', dir, 'What is 2 + 2?', '--temperature', '0', '--max-tokens', '4']);
    assert.equal(plain.code, 0, plain.stderr);
    if (panelsPreferred('f32')) assert.match(plain.stderr, /weights: f32, \d+ linear layers packed \([0-9.]+ MiB in 16-row panels\), tied head copy [^,]+, 4 groups of projections fused/);
    else assert.doesNotMatch(plain.stderr, /linear layers packed/);
    const badKv = r1(['run', dir, 'hi', '--kv-cache', 'q4']);
    assert.equal(badKv.code, 2);
    assert.match(badKv.stderr, /--kv-cache must be one of auto, f32, bf16, got 'q4'/);
    assert.match(r1(['run', '--help']).stdout, /--kv-cache T/);
    const bad = r1(['run', dir, 'hi', '--weights', 'int4']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--weights must be one of f32, bf16, fp8, got 'int4'/);
    const help = r1(['run', '--help']);
    assert.match(help.stdout, /--weights F/);
    assert.match(r1(['eval', '--help']).stdout, /--weights F/);
    assert.match(r1(['chat', '--help']).stdout, /--weights F/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
