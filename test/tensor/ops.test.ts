/** Forward semantics, views, autograd mechanics and error messages of the op layer. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { tensor, tidy, noGrad } from '../../src/tensor/index.js';
import { DisposedError, DTypeError, ShapeError } from '../../src/errors.js';

const close = (a: unknown, b: unknown, tol = 1e-5): void => {
  const fa = (a as number[]).flat(4) as number[];
  const fb = (b as number[]).flat(4) as number[];
  assert.equal(fa.length, fb.length);
  fa.forEach((v, i) => assert.ok(Math.abs(v - fb[i]!) <= tol * (1 + Math.abs(fb[i]!)), `at ${i}: ${v} vs ${fb[i]}`));
};

test('views share storage; copies only when needed', () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  const t = x.transpose();
  assert.equal(t.storage, x.storage);
  assert.deepEqual(t.shape, [3, 2]);
  assert.deepEqual(t.strides, [1, 3]);
  assert.equal(t.isContiguous(), false);
  assert.deepEqual(t.tolist(), [[1, 4], [2, 5], [3, 6]]);
  const n = x.narrow(1, 1, 2);
  assert.equal(n.storage, x.storage);
  assert.deepEqual(n.tolist(), [[2, 3], [5, 6]]);
  const r = x.reshape(3, 2);
  assert.equal(r.storage, x.storage);
  const rt = t.reshape(6); // not viewable: copies
  assert.notEqual(rt.storage, x.storage);
  assert.deepEqual(rt.tolist(), [1, 4, 2, 5, 3, 6]);
  const e = tensor([[1], [2]]).expand(2, 3);
  assert.deepEqual(e.strides, [1, 0]);
  assert.deepEqual(e.tolist(), [[1, 1, 1], [2, 2, 2]]);
  assert.deepEqual(x.unsqueeze(0).shape, [1, 2, 3]);
  assert.deepEqual(x.reshape(-1, 2).shape, [3, 2]);
  // a transposed view of a 4-d tensor reshaped when the merged dims stay contiguous: still a view
  const y = T.zeros([2, 3, 4, 5]);
  const v = y.permute(0, 2, 1, 3).reshape(8, 3, 5);
  assert.notEqual(v.storage, y.storage); // dims 0 and 2 are not mergeable without a copy
  const w = y.permute(1, 0, 2, 3).reshape(3, 2, 20);
  assert.equal(w.storage, y.storage);
});

test('broadcasting arithmetic and unary maths', () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const b = tensor([10, 20, 30]);
  assert.deepEqual(a.add(b).tolist(), [[11, 22, 33], [14, 25, 36]]);
  assert.deepEqual(a.sub(tensor([[1], [2]])).tolist(), [[0, 1, 2], [2, 3, 4]]);
  assert.deepEqual(a.mul(2).tolist(), [[2, 4, 6], [8, 10, 12]]);
  close(a.div(b).tolist(), [[0.1, 0.1, 0.1], [0.4, 0.25, 0.2]]);
  close(T.exp(tensor([0, 1])).tolist(), [1, Math.E]);
  close(T.sigmoid(tensor([0])).tolist(), [0.5]);
  close(T.silu(tensor([1])).tolist(), [1 / (1 + Math.exp(-1))]);
  close(T.gelu(tensor([1])).tolist(), [0.8413447460685429]);
  assert.deepEqual(T.clamp(tensor([-2, 0.5, 3]), -1, 1).tolist(), [-1, 0.5, 1]);
  assert.deepEqual(T.where(T.gt(a, 3), a, 0).tolist(), [[0, 0, 0], [4, 5, 6]]);
  assert.deepEqual(T.maximum(a, tensor([2])).tolist(), [[2, 2, 3], [4, 5, 6]]);
});

test('reductions', () => {
  const a = tensor([[1, 5, 3], [4, 2, 6]]);
  assert.deepEqual(a.sum().tolist(), 21);
  assert.deepEqual(a.sum(0).tolist(), [5, 7, 9]);
  assert.deepEqual(a.sum(1, true).tolist(), [[9], [12]]);
  assert.deepEqual(a.mean(1).tolist(), [3, 4]);
  assert.deepEqual(a.max(1).tolist(), [5, 6]);
  assert.deepEqual(a.min(0).tolist(), [1, 2, 3]);
  assert.deepEqual(a.argmax(1).tolist(), [1, 2]);
  assert.deepEqual(a.argmax(0).tolist(), [1, 0, 1]);
  assert.equal(a.max().item(), 6);
  assert.deepEqual(a.transpose().sum(1).tolist(), [5, 7, 9]);
});

test('matmul: 2-d, batched, broadcast, transposed views, vectors', () => {
  const a = tensor([[1, 2], [3, 4], [5, 6]]);
  const b = tensor([[1, 0, 2], [0, 1, 3]]);
  assert.deepEqual(a.matmul(b).tolist(), [[1, 2, 8], [3, 4, 18], [5, 6, 28]]);
  assert.deepEqual(b.T.matmul(a.T).tolist(), [[1, 3, 5], [2, 4, 6], [8, 18, 28]]);
  const batch = T.stack([a, a.mul(2)]);
  assert.deepEqual(batch.matmul(b).tolist(), [[[1, 2, 8], [3, 4, 18], [5, 6, 28]], [[2, 4, 16], [6, 8, 36], [10, 12, 56]]]);
  assert.deepEqual(T.matmul(tensor([1, 1]), b).tolist(), [1, 1, 5]);
  assert.deepEqual(T.matmul(a, tensor([1, -1])).tolist(), [-1, -1, -1]);
  assert.deepEqual(T.linear(a, b.T, tensor([1, 1, 1])).tolist(), [[2, 3, 9], [4, 5, 19], [6, 7, 29]]);
});

test('softmax, cross-entropy, topk, index ops, concat', () => {
  const s = T.softmax(tensor([[1, 2, 3], [0, 0, 0]]));
  close(s.sum(1).tolist(), [1, 1]);
  close(s.tolist(), [[0.09003057, 0.24472847, 0.66524096], [1 / 3, 1 / 3, 1 / 3]]);
  const logits = tensor([[1, 2, 3], [1, 1, 1]]);
  const ce = T.crossEntropy(logits, tensor([2, -100], { dtype: 'i32' }));
  close([ce.item()], [-Math.log(0.66524096)]);
  const tk = T.topk(tensor([[3, 1, 4, 1, 5]]), 3);
  assert.deepEqual(tk.values.tolist(), [[5, 4, 3]]);
  assert.deepEqual(tk.indices.tolist(), [[4, 2, 0]]);
  const tie = T.topk(tensor([1, 2, 2, 0]), 2);
  assert.deepEqual(tie.indices.tolist(), [1, 2]);
  assert.deepEqual(T.indexSelect(tensor([[1, 2], [3, 4], [5, 6]]), 0, tensor([2, 0], { dtype: 'i64' })).tolist(), [[5, 6], [1, 2]]);
  assert.deepEqual(T.gather(tensor([[1, 2], [3, 4]]), 1, tensor([[1, 1], [0, 1]], { dtype: 'i32' })).tolist(), [[2, 2], [3, 4]]);
  assert.deepEqual(T.scatterAdd(T.zeros([2, 3]), 1, tensor([[0, 0], [2, 1]], { dtype: 'i32' }), tensor([[1, 2], [3, 4]])).tolist(), [[3, 0, 0], [0, 4, 3]]);
  assert.deepEqual(T.embedding(tensor([[0, 0], [1, 1], [2, 2]]), tensor([2, 0], { dtype: 'i32' })).tolist(), [[2, 2], [0, 0]]);
  assert.deepEqual(T.cat([tensor([[1], [2]]), tensor([[3, 4], [5, 6]])], 1).tolist(), [[1, 3, 4], [2, 5, 6]]);
  const [p, q] = T.split(tensor([1, 2, 3, 4, 5]), 3);
  assert.deepEqual([p!.tolist(), q!.tolist()], [[1, 2, 3], [4, 5]]);
});

test('dtypes: bf16/f16 storage converts both ways; i64 indices', () => {
  const x = tensor([1, -2.5, 3.140625, 65504]);
  const bf = x.to('bf16');
  assert.equal(bf.dtype, 'bf16');
  assert.deepEqual(Array.from(bf.raw as Uint16Array).slice(0, 2), [0x3f80, 0xc020]);
  assert.deepEqual(bf.to('f32').tolist(), [1, -2.5, 3.140625, 65536]);
  const h = x.to('f16');
  assert.deepEqual(h.to('f32').tolist(), [1, -2.5, 3.140625, 65504]);
  assert.deepEqual(x.to('f64').tolist(), [1, -2.5, 3.140625, 65504]);
  assert.deepEqual(tensor([1.7, -2.2]).to('i32').tolist(), [1, -2]);
});

test('autograd mechanics: accumulation, detach, noGrad, non-scalar root', () => {
  const w = tensor([1, 2, 3]).setRequiresGrad();
  w.mul(w).sum().backward();
  assert.deepEqual(w.grad!.tolist(), [2, 4, 6]);
  w.mul(3).sum().backward();
  assert.deepEqual(w.grad!.tolist(), [5, 7, 9]); // accumulated
  w.zeroGrad();
  w.detach().mul(w).sum().backward();
  assert.deepEqual(w.grad!.tolist(), [1, 2, 3]); // only through the non-detached side
  const y = noGrad(() => w.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.gradFn, null);
  assert.throws(() => w.mul(2).backward(), ShapeError);
  assert.throws(() => tensor([1]).backward(), /does not require grad/);
});

test('errors name the op, the shapes and the dtypes', () => {
  assert.throws(() => T.matmul(T.zeros([2, 3]), T.zeros([4, 5])), (e: Error) => e instanceof ShapeError && /matmul/.test(e.message) && /\[2, 3\]/.test(e.message) && /\[4, 5\]/.test(e.message) && /f32/.test(e.message));
  assert.throws(() => T.add(T.zeros([2, 3]), T.zeros([4])), (e: Error) => e instanceof ShapeError && /add/.test(e.message) && /\[2, 3\]/.test(e.message) && /\[4\]/.test(e.message));
  assert.throws(() => T.add(T.zeros([2]), T.zeros([2], 'f64')), (e: Error) => e instanceof DTypeError && /add/.test(e.message) && /f64/.test(e.message));
  assert.throws(() => T.indexSelect(T.zeros([3, 2]), 0, tensor([3], { dtype: 'i32' })), /index 3 out of range \[0, 3\)/);
  assert.throws(() => T.crossEntropy(T.zeros([2, 4]), tensor([1, 7], { dtype: 'i32' })), /target 7/);
  assert.throws(() => T.zeros([2, 3]).reshape(4, 2), /cannot reshape/);
  assert.throws(() => T.attention(T.zeros([1, 3, 2, 4]), T.zeros([1, 2, 2, 4]), T.zeros([1, 2, 2, 4])), /attention/);
  assert.throws(() => T.zeros([2]).narrow(0, 1, 2), /out of bounds/);
});

test('tidy disposes intermediates and keeps the result; disposed tensors refuse use', () => {
  const x = tensor([1, 2, 3]);
  let inner: T.Tensor | null = null;
  const r = tidy(() => {
    inner = x.mul(2);
    return inner.add(1);
  });
  assert.equal(inner!.isDisposed, true);
  assert.equal(r.isDisposed, false);
  assert.equal(x.isDisposed, false);
  assert.deepEqual(r.tolist(), [3, 5, 7]);
  assert.throws(() => inner!.tolist(), DisposedError);
  // a view outlives its base's dispose (storage is reference-counted)
  const base = tensor([1, 2, 3, 4]);
  const view = base.narrow(0, 2, 2);
  base.dispose();
  assert.deepEqual(view.tolist(), [3, 4]);
});
