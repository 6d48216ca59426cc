/** saveModel writes an HF folder loadModel reads back: F32 exactly, BF16 within bf16 rounding. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, saveModel } from '../../src/models/load.js';
import { repoPath } from '../util.js';

test('saveModel round-trips F32 exactly and BF16 to bf16 precision; config records torch_dtype', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-save-'));
  try {
    const { model } = loadModel(repoPath('test/fixtures/models/qwen2-tiny'));
    for (const dtype of ['F32', 'BF16'] as const) {
      const out = join(dir, dtype);
      saveModel(out, model, { dtype });
      assert.equal((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { torch_dtype: string }).torch_dtype, dtype === 'F32' ? 'float32' : 'bfloat16');
      const back = loadModel(out).model;
      for (const [name, t] of model.namedParameters()) {
        const a = t.toArray() as Float32Array;
        const b = back.getParameter(name)!.toArray() as Float32Array;
        for (let i = 0; i < a.length; i++) {
          const tol = dtype === 'F32' ? 0 : Math.abs(a[i]!) * 2 ** -8;
          assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${dtype} ${name}[${i}]: ${a[i]} vs ${b[i]}`);
        }
      }
      back.dispose();
    }
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
