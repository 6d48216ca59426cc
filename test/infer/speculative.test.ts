/** MTP speculative decoding returns exactly the plain greedy tokens, with consistent draft accounting. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/models/load.js';
import { DeepseekV3ForCausalLM } from '../../src/models/deepseek-v3.js';
import { ModelRunner, SequenceCache } from '../../src/infer/kv-cache.js';
import { speculativeGreedy } from '../../src/infer/speculative.js';
import { repoPath } from '../util.js';

function plainGreedy(runner: ModelRunner, prompt: number[], n: number): number[] {
  const cache = new SequenceCache();
  const out: number[] = [];
  let feed = prompt;
  for (let i = 0; i < n; i++) {
    const row = runner.step([{ ids: feed, cache }])[0]![0]!;
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    out.push(best);
    feed = [best];
  }
  cache.dispose();
  return out;
}

test('MTP speculative greedy == plain greedy (deepseek-v3-tiny, several prompts)', () => {
  const { model } = loadModel(repoPath('test/fixtures/models/deepseek-v3-tiny'), { maxPositions: 64 });
  assert.ok(model instanceof DeepseekV3ForCausalLM && model.mtpLayers.length === 1);
  const runner = new ModelRunner(model);
  let drafted = 0;
  for (const prompt of [[1, 2, 3], [5, 9, 14, 20, 7, 7, 3], [42]]) {
    const want = plainGreedy(runner, prompt, 20);
    const got = speculativeGreedy(model, prompt, { maxTokens: 20 });
    assert.deepEqual(got.tokens, want, `prompt ${prompt}`);
    assert.equal(got.mainPasses + got.accepted, got.tokens.length);
    assert.ok(got.accepted <= got.drafted);
    drafted += got.drafted;
  }
  assert.ok(drafted > 0);
  // Stop tokens end the sequence exactly where plain greedy would.
  const ref = plainGreedy(runner, [1, 2, 3], 20);
  const stop = ref[7]!;
  const cut = ref.indexOf(stop);
  const s = speculativeGreedy(model, [1, 2, 3], { maxTokens: 20, stopTokenIds: [stop] });
  assert.deepEqual(s.tokens, ref.slice(0, cut));
  assert.equal(s.finishReason, 'stop');
  model.dispose();
});

test('speculative decoding refuses a model without MTP', () => {
  const { model } = loadModel(repoPath('test/fixtures/models/deepseek-v3-tiny'), { maxPositions: 64, mtp: false });
  assert.throws(() => speculativeGreedy(model as DeepseekV3ForCausalLM, [1, 2], { maxTokens: 3 }), /needs a DeepSeek-V3 model with MTP/);
  model.dispose();
});
