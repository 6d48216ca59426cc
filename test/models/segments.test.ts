/** runLayer (src/models/segments.ts): a ragged inference step frees each layer's intermediates as the layer ends. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { runLayer } from '../../src/models/segments.js';

test('runLayer: under noGrad the layer\'s intermediates and its input go back at once and its results stay; under autograd nothing is freed', () => {
  T.noGrad(() => T.tidy(() => {
    const x = T.fromArray(Float32Array.of(1, 2, 3, 4), [2, 2]);
    let mid: T.Tensor | null = null;
    const r = runLayer(x, () => {
      mid = x.mul(2);
      return { out: mid.add(1), caches: [{ k: mid.add(2), kBuf: null }] };
    });
    assert.ok(x.isDisposed, 'the input is released');
    assert.ok(mid!.isDisposed, 'an intermediate is released');
    assert.ok(!r.out.isDisposed && !r.caches[0]!.k.isDisposed, 'the results stay');
    assert.deepEqual(Array.from(r.out.toArray() as Float32Array), [3, 5, 7, 9]);
    assert.deepEqual(Array.from(r.caches[0]!.k.toArray() as Float32Array), [4, 6, 8, 10]);
  }));
  T.tidy(() => {
    const x = T.fromArray(Float32Array.of(1, 2), [2]).setRequiresGrad();
    let mid: T.Tensor | null = null;
    const r = runLayer(x, () => { mid = x.mul(3); return { out: mid.mul(mid) }; });
    assert.ok(!x.isDisposed && !mid!.isDisposed, 'under autograd the graph keeps its tensors');
    r.out.sum().backward();
    assert.deepEqual(Array.from(x.grad!.toArray() as Float32Array), [18, 36]);
  });
});
