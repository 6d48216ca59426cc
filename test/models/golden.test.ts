/**
 * r1ts models against the independent PyTorch reference (test/fixtures/models/make_models.py):
 * logits, MTP logits, routing, loss and gradient norms, loading the HF folders with src/io.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as T from '../../src/tensor/index.js';
import { loadModel } from '../../src/models/load.js';
import { DeepseekV3ForCausalLM } from '../../src/models/deepseek-v3.js';
import { repoPath } from '../util.js';

interface Golden {
  input_ids: number[];
  logits: number[][];
  loss: number;
  grad_norms: Record<string, number>;
  mtp_logits?: number[][];
  mtp_lambda?: number;
  total_loss?: number;
  grad_norms_total?: Record<string, number>;
  routing?: Record<string, { experts: number[][] }>;
}

function maxAbs(got: T.Tensor, want: number[][]): number {
  const g = got.toArray() as Float32Array;
  const w = want.flat();
  assert.equal(g.length, w.length);
  let m = 0;
  for (let i = 0; i < w.length; i++) m = Math.max(m, Math.abs(g[i]! - w[i]!));
  return m;
}

function gradNorm(m: { getParameter(n: string): T.Tensor | undefined }, name: string): number {
  const p = m.getParameter(name);
  assert.ok(p, `no parameter ${name}`);
  if (!p.grad) return 0;
  const a = p.grad.toArray() as Float32Array;
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

for (const name of ['qwen2-tiny', 'llama-tiny', 'deepseek-v3-tiny', 'deepseek-v2-tiny']) {
  test(`${name}: logits, loss and gradients match PyTorch`, () => {
    const dir = repoPath('test/fixtures/models', name);
    const g = JSON.parse(readFileSync(`${dir}/golden.json`, 'utf8')) as Golden;
    const { model } = loadModel(dir, { maxPositions: 64 });
    const S = g.input_ids.length;
    const ids = T.tensor([g.input_ids], { dtype: 'i32' });
    T.tidy(() => {
      const out = model instanceof DeepseekV3ForCausalLM ? model.forward(ids) : model.forward(ids);
      const err = maxAbs(out.logits, g.logits);
      assert.ok(err <= 1e-4, `logits max abs error ${err}`);
      let loss = T.crossEntropy(out.logits.reshape(S, -1).narrow(0, 0, S - 1), ids.reshape(S).narrow(0, 1, S - 1));
      assert.ok(Math.abs(loss.item() - g.loss) < 1e-4, `loss ${loss.item()} vs ${g.loss}`);
      let norms = g.grad_norms;
      if (g.mtp_logits && 'mtpLogits' in out) {
        const mtp = out.mtpLogits[0]!;
        const e2 = maxAbs(mtp, g.mtp_logits);
        assert.ok(e2 <= 1e-4, `MTP logits max abs error ${e2}`);
        const n = S - 2;
        const ml = T.crossEntropy(mtp.reshape(S - 1, -1).narrow(0, 0, n), ids.reshape(S).narrow(0, 2, n));
        loss = loss.add(ml.mul(g.mtp_lambda!));
        assert.ok(Math.abs(loss.item() - g.total_loss!) < 1e-4, `total loss ${loss.item()} vs ${g.total_loss}`);
        norms = g.grad_norms_total!;
      }
      loss.backward();
      for (const [p, want] of Object.entries(norms)) {
        const got = gradNorm(model, p);
        assert.ok(Math.abs(got - want) <= 1e-4 + 1e-3 * want, `grad norm of ${p}: ${got} vs ${want}`);
      }
    });
    if (g.routing && model instanceof DeepseekV3ForCausalLM) {
      // Router choices per MoE layer equal the reference's (sorted per token).
      T.noGrad(() => T.tidy(() => {
        const picks: number[][][] = [];
        for (const moe of model.moeLayers()) {
          const f = moe.forwardRouted.bind(moe);
          moe.forwardRouted = (x: T.Tensor, a?: number) => {
            const r = f(x, a);
            const idx = r.routing.indices.toArray() as Int32Array;
            const k = r.routing.indices.shape[1]!;
            const rows: number[][] = [];
            for (let t = 0; t < idx.length / k; t++) rows.push(Array.from(idx.slice(t * k, t * k + k)).sort((a2, b2) => a2 - b2));
            picks.push(rows);
            return r;
          };
        }
        model.forward(ids);
        const want = Object.values(g.routing!).map((r) => r.experts);
        assert.equal(picks.length, want.length);
        picks.forEach((p, l) => assert.deepEqual(p.slice(0, want[l]!.length), want[l]));
      }));
    }
    model.dispose();
  });
}

test('r1 logits --json prints the same logits (and MTP logits) as the PyTorch reference', async () => {
  const { default: cmd } = await import('../../src/cli/commands/logits.js');
  for (const name of ['qwen2-tiny', 'deepseek-v3-tiny']) {
    const dir = repoPath('test/fixtures/models', name);
    const g = JSON.parse(readFileSync(`${dir}/golden.json`, 'utf8')) as Golden;
    const lines: string[] = [];
    const orig = console.log;
    console.log = (s: string) => { lines.push(s); };
    try {
      assert.equal(await cmd.run([dir, '--ids', g.input_ids.join(','), '--json']), 0);
    } finally {
      console.log = orig;
    }
    const out = JSON.parse(lines.join('')) as { logits: number[][]; mtp_logits?: number[][] };
    let err = 0;
    out.logits.flat().forEach((v, i) => { err = Math.max(err, Math.abs(v - g.logits.flat()[i]!)); });
    assert.ok(err <= 1e-4, `${name}: ${err}`);
    if (g.mtp_logits) {
      let e2 = 0;
      out.mtp_logits!.flat().forEach((v, i) => { e2 = Math.max(e2, Math.abs(v - g.mtp_logits!.flat()[i]!)); });
      assert.ok(e2 <= 1e-4, `${name} mtp: ${e2}`);
    }
  }
  await assert.rejects(() => cmd.run([repoPath('test/fixtures/models/qwen2-tiny'), '--ids', '1,x']), /--ids item 2/);
  await assert.rejects(() => cmd.run([repoPath('test/fixtures/models/qwen2-tiny'), '--ids', '1,100000']), /outside the vocabulary/);
});
