// The GEMM form of the attention backward (native backend, training-sized shapes) against the js backend's fused
// row-at-a-time kernel, the oracle: GQA, causal with more keys than queries, and non-causal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';

function grads(backend: 'js' | 'native', shapes: { B: number; Hq: number; Hkv: number; Sq: number; Sk: number; D: number; Dv: number }, causal: boolean): Float32Array[] {
  T.setBackend(backend);
  try {
    const { B, Hq, Hkv, Sq, Sk, D, Dv } = shapes;
    const rng = new T.Rng(5);
    const q = T.randn([B, Hq, Sq, D], { rng }).setRequiresGrad(true);
    const k = T.randn([B, Hkv, Sk, D], { rng }).setRequiresGrad(true);
    const v = T.randn([B, Hkv, Sk, Dv], { rng }).setRequiresGrad(true);
    const w = T.randn([B, Hq, Sq, Dv], { rng });
    T.attention(q, k, v, { causal, scale: 0.3 }).mul(w).sum().backward();
    return [q.grad!, k.grad!, v.grad!].map((t) => t.toArray() as Float32Array);
  } finally {
    T.setBackend('native');
  }
}

test('attention backward: GEMM form (native) equals the fused kernel (js)', { skip: T.activeBackend() !== 'native' && 'native addon not loaded' }, () => {
  for (const [shapes, causal] of [
    [{ B: 2, Hq: 4, Hkv: 2, Sq: 64, Sk: 80, D: 16, Dv: 8 }, true],
    [{ B: 1, Hq: 3, Hkv: 3, Sq: 72, Sk: 72, D: 12, Dv: 12 }, false],
    [{ B: 2, Hq: 6, Hkv: 1, Sq: 96, Sk: 96, D: 8, Dv: 16 }, true],
  ] as const) {
    const a = grads('native', shapes, causal);
    const b = grads('js', shapes, causal);
    ['dq', 'dk', 'dv'].forEach((name, i) => {
      let err = 0, ref = 0;
      a[i]!.forEach((x, j) => { err = Math.max(err, Math.abs(x - b[i]![j]!)); ref = Math.max(ref, Math.abs(b[i]![j]!)); });
      assert.ok(err <= 1e-4 * Math.max(1, ref), `${name} ${JSON.stringify(shapes)} causal=${causal}: max error ${err} (max |ref| ${ref})`);
    });
  }
});
