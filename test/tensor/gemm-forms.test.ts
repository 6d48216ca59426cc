// GEMM forms of fused ops against the js backend. The GEMM form of the attention backward (native backend, training-sized shapes) against the js backend's fused
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

test('groupedSwiGLU: native grouped GEMMs (forward and every gradient) equal the js backend', { skip: T.activeBackend() !== 'native' && 'native addon not loaded' }, () => {
  const counts = [90, 0, 3, 230, 1, 76];
  const P = counts.reduce((a, b) => a + b, 0), D = 64, I = 48; // large enough for the threaded path
  const run = (backend: 'js' | 'native'): Float32Array[] => {
    T.setBackend(backend);
    try {
      const rng = new T.Rng(9);
      const xs = T.randn([P, D], { rng }).setRequiresGrad(true);
      const rw = T.rand([P], { rng }).setRequiresGrad(true);
      const mk = (shape: number[]) => counts.map(() => T.randn(shape, { rng, std: 0.2 }).setRequiresGrad(true));
      const gate = mk([I, D]), up = mk([I, D]), down = mk([D, I]);
      const y = T.groupedSwiGLU(xs, rw, counts, gate, up, down);
      y.mul(T.randn([P, D], { rng })).sum().backward();
      const used = (ws: T.Tensor[]) => ws.filter((_, e) => counts[e]! > 0).map((w) => w.grad!.toArray() as Float32Array);
      return [y.toArray() as Float32Array, xs.grad!.toArray() as Float32Array, rw.grad!.toArray() as Float32Array, ...used(gate), ...used(up), ...used(down)];
    } finally {
      T.setBackend('native');
    }
  };
  const a = run('native'), b = run('js');
  assert.equal(a.length, b.length);
  a.forEach((arr, i) => {
    let err = 0, ref = 0;
    arr.forEach((x, j) => { err = Math.max(err, Math.abs(x - b[i]![j]!)); ref = Math.max(ref, Math.abs(b[i]![j]!)); });
    assert.ok(err <= 1e-4 * Math.max(1, ref), `output ${i}: max error ${err} (max |ref| ${ref})`);
  });
});

test('gemmGrouped (native) checks every extent before running', { skip: T.activeBackend() !== 'native' && 'native addon not loaded' }, async () => {
  const { nativeAddonExports } = await import('../../src/tensor/backends/native.js');
  const fn = nativeAddonExports()!['gemmGrouped'] as (...a: unknown[]) => void;
  const a = new Float32Array(4 * 3), b = new Float32Array(5 * 3), c = new Float32Array(4 * 5);
  const I = (...v: number[]) => Int32Array.from(v);
  fn([c], I(0), [a], I(0), 3, false, [b], I(0), 3, true, I(4), 5, I(3), 5, false); // fits exactly
  assert.throws(() => fn([c.subarray(1)], I(0), [a], I(0), 3, false, [b], I(0), 3, true, I(4), 5, I(3), 5, false), RangeError);
  assert.throws(() => fn([c], I(0), [a], I(1), 3, false, [b], I(0), 3, true, I(4), 5, I(3), 5, false), RangeError);
  assert.throws(() => fn([c, c], I(0), [a], I(0), 3, false, [b], I(0), 3, true, I(4), 5, I(3), 5, false), RangeError);
  assert.throws(() => fn([c], I(0), [a], I(0), 3, false, [new Float64Array(15)], I(0), 3, true, I(4), 5, I(3), 5, false), TypeError);
});
