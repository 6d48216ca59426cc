// Loading a model peaks at ~1x its weights in RSS (issue 4: "no more than ~1.2x the weights' size"): measured in a
// child process (VmHWM, the kernel's peak resident set) so the test runner's own memory does not blur it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseConfig } from '../../src/models/config.js';
import { buildModel, saveModel } from '../../src/models/load.js';

const here = dirname(fileURLToPath(import.meta.url));
const loadJs = pathToFileURL(join(here, '../../src/models/load.js')).href;

// ~36M parameters (144 MB in f32) in many tensors, the embedding and the untied head the largest (13 MB each).
const RAW = {
  model_type: 'qwen2', vocab_size: 6400, hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 10,
  num_attention_heads: 8, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-6, rope_theta: 10000,
  tie_word_embeddings: false,
};

function childPeak(dir: string): { baseKb: number; peakKb: number; params: number } {
  const script = `
    import { readFileSync } from 'node:fs';
    const kb = (k) => Number(new RegExp(k + ':\\\\s+(\\\\d+)').exec(readFileSync('/proc/self/status', 'utf8'))[1]);
    const { loadModel } = await import(${JSON.stringify(loadJs)});
    const baseKb = kb('VmRSS');
    const m = loadModel(process.argv[1]);
    const params = m.model.namedParameters().reduce((a, [, t]) => a + t.size, 0);
    console.log(JSON.stringify({ baseKb, peakKb: kb('VmHWM'), params }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, dir], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as { baseKb: number; peakKb: number; params: number };
}

test('loadModel peaks at <= 1.2x the f32 weights in RSS (F32 and BF16 checkpoints)', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  const root = mkdtempSync(join(tmpdir(), 'r1-loadmem-'));
  try {
    const config = parseConfig(RAW, 'load-memory');
    const model = buildModel(config, { seed: 3 });
    const weightBytes = model.namedParameters().reduce((a, [, t]) => a + t.size * 4, 0);
    for (const dtype of ['F32', 'BF16'] as const) saveModel(join(root, dtype), model, { dtype });
    model.dispose();
    writeFileSync(join(root, 'note'), 'r1ts load-memory test');
    for (const dtype of ['F32', 'BF16'] as const) {
      const r = childPeak(join(root, dtype));
      assert.equal(r.params * 4, weightBytes);
      const grown = (r.peakKb - r.baseKb) * 1024;
      const ratio = grown / weightBytes;
      if (process.env["R1_TEST_VERBOSE"]) console.log(`${dtype}: ${ratio.toFixed(3)}x`);
      assert.ok(ratio <= 1.2, `${dtype}: peak RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB for ${(weightBytes / 2 ** 20).toFixed(1)} MiB of weights (${ratio.toFixed(2)}x)`);
      assert.ok(ratio >= 0.9, `${dtype}: the weights (${(weightBytes / 2 ** 20).toFixed(1)} MiB) must be resident after loading; RSS grew only ${ratio.toFixed(2)}x`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
