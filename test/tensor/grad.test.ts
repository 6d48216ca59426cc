/** Numeric gradient checks (central differences, f64) for every differentiable op. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Rng, tensor } from '../../src/tensor/index.js';
import { gradcheck, leaf } from './gradcheck.js';

const x23 = () => leaf([2, 3], 1);

test('grad: elementwise unary', () => {
  gradcheck('neg', (x) => T.neg(x), [x23()]);
  gradcheck('exp', (x) => T.exp(x), [x23()]);
  gradcheck('log', (x) => T.log(x), [leaf([2, 3], 2, { scale: 0.2, offset: 2 })]);
  gradcheck('sqrt', (x) => T.sqrt(x), [leaf([2, 3], 3, { scale: 0.2, offset: 2 })]);
  gradcheck('rsqrt', (x) => T.rsqrt(x), [leaf([2, 3], 4, { scale: 0.2, offset: 2 })]);
  gradcheck('abs', (x) => T.abs(x), [x23()]);
  gradcheck('square', (x) => T.square(x), [x23()]);
  gradcheck('sigmoid', (x) => T.sigmoid(x), [x23()]);
  gradcheck('tanh', (x) => T.tanh(x), [x23()]);
  gradcheck('relu', (x) => T.relu(x), [x23()]);
  gradcheck('silu', (x) => T.silu(x), [x23()]);
  gradcheck('gelu', (x) => T.gelu(x), [x23()]);
  gradcheck('gelu_tanh', (x) => T.gelu(x, 'tanh'), [x23()]);
  gradcheck('pow scalar', (x) => T.pow(x, 3), [x23()]);
  gradcheck('pow 0.5', (x) => T.pow(x, 0.5), [leaf([2, 3], 5, { scale: 0.2, offset: 2 })]);
  gradcheck('add scalar', (x) => T.add(x, 2.5), [x23()]);
  gradcheck('mul scalar', (x) => T.mul(x, -1.5), [x23()]);
  gradcheck('div scalar', (x) => T.div(x, 4), [x23()]);
  gradcheck('clamp', (x) => T.clamp(x, -0.5, 0.5), [x23()]);
  gradcheck('dropout', (x) => T.dropout(x, 0.4, true, new Rng(7)), [leaf([4, 5], 6)]);
});

test('grad: broadcasting binary ops', () => {
  gradcheck('add', (a, b) => T.add(a, b), [leaf([2, 3, 4], 1), leaf([3, 1], 2)]);
  gradcheck('sub', (a, b) => T.sub(a, b), [leaf([2, 1, 4], 3), leaf([3, 4], 4)]);
  gradcheck('mul', (a, b) => T.mul(a, b), [leaf([2, 3, 4], 5), leaf([4], 6)]);
  gradcheck('div', (a, b) => T.div(a, b), [leaf([2, 3], 7), leaf([2, 1], 8, { scale: 0.3, offset: 2 })]);
  gradcheck('pow', (a, b) => T.pow(a, b), [leaf([2, 3], 9, { scale: 0.2, offset: 1.5 }), leaf([3], 10)]);
  gradcheck('maximum', (a, b) => T.maximum(a, b), [leaf([3, 4], 11), leaf([4], 12)]);
  gradcheck('minimum', (a, b) => T.minimum(a, b), [leaf([3, 4], 13), leaf([3, 1], 14)]);
  gradcheck('same input twice', (a) => T.mul(a, a), [leaf([5], 15)]);
  gradcheck('where', (a, b) => T.where(T.gt(a, 0), a, b), [leaf([3, 4], 16), leaf([4], 17)]);
});

test('grad: reductions', () => {
  gradcheck('sum all', (x) => T.sum(x), [leaf([2, 3, 4], 1)]);
  gradcheck('sum axes', (x) => T.sum(x, [0, 2]), [leaf([2, 3, 4], 2)]);
  gradcheck('sum keepdim', (x) => T.sum(x, 1, true), [leaf([2, 3, 4], 3)]);
  gradcheck('mean', (x) => T.mean(x, -1), [leaf([2, 3, 4], 4)]);
  gradcheck('max dim', (x) => T.max(x, 1), [leaf([2, 5, 3], 5)]);
  gradcheck('min all', (x) => T.min(x), [leaf([2, 5], 6)]);
});

test('grad: matmul', () => {
  gradcheck('2d', (a, b) => T.matmul(a, b), [leaf([3, 4], 1), leaf([4, 5], 2)]);
  gradcheck('batched', (a, b) => T.matmul(a, b), [leaf([2, 3, 4], 3), leaf([2, 4, 5], 4)]);
  gradcheck('broadcast weight', (a, b) => T.matmul(a, b), [leaf([2, 3, 4], 5), leaf([4, 2], 6)]);
  gradcheck('broadcast batch', (a, b) => T.matmul(a, b), [leaf([2, 1, 3, 4], 7), leaf([3, 4, 2], 8)]);
  gradcheck('transposed operands', (a, b) => T.matmul(T.transpose(a), T.transpose(b)), [leaf([4, 3], 9), leaf([5, 4], 10)]);
  gradcheck('linear with bias', (x, w, b) => T.linear(x, w, b), [leaf([2, 3, 4], 11), leaf([6, 4], 12), leaf([6], 13)]);
  gradcheck('vector', (a, b) => T.matmul(a, b), [leaf([4], 14), leaf([4, 3], 15)]);
});

test('grad: views and copies', () => {
  gradcheck('reshape', (x) => T.mul(T.reshape(x, [3, 2]), tensor([[1, 2], [3, 4], [5, 6]], { dtype: 'f64' })), [x23()]);
  gradcheck('permute', (x) => T.contiguous(T.permute(x, [2, 0, 1])), [leaf([2, 3, 4], 2)]);
  gradcheck('transpose then reshape (copy)', (x) => T.reshape(T.transpose(x, 0, 1), [-1]), [leaf([2, 3], 3)]);
  gradcheck('narrow', (x) => T.narrow(x, 1, 1, 2), [leaf([2, 4], 4)]);
  gradcheck('slice', (x) => T.slice(x, 0, -2), [leaf([5, 2], 5)]);
  gradcheck('expand', (x) => T.mul(T.expand(x, [3, 2, 4]), leaf([3, 2, 4], 99)), [leaf([2, 1], 6)]);
  gradcheck('cat', (a, b) => T.cat([a, b], 1), [leaf([2, 2], 7), leaf([2, 3], 8)]);
  gradcheck('stack', (a, b) => T.stack([a, b], 1), [leaf([2, 3], 9), leaf([2, 3], 10)]);
  gradcheck('split', (x) => { const [p, q] = T.split(x, [1, 3], 1); return T.mul(p!, T.sum(q!, 1, true)); }, [leaf([2, 4], 11)]);
  gradcheck('squeeze/unsqueeze', (x) => T.squeeze(T.unsqueeze(x, 1), 1), [x23()]);
});

test('grad: softmax family', () => {
  gradcheck('softmax', (x) => T.softmax(x), [leaf([3, 5], 1)]);
  gradcheck('softmax dim 0', (x) => T.softmax(x, 0), [leaf([3, 5], 2)]);
  gradcheck('logSoftmax', (x) => T.logSoftmax(x), [leaf([3, 5], 3)]);
  gradcheck('logSoftmax dim 1 of 3', (x) => T.logSoftmax(x, 1), [leaf([2, 3, 4], 4)]);
});

test('grad: rmsNorm, siluMul', () => {
  gradcheck('rmsNorm', (x, w) => T.rmsNorm(x, w, 1e-6), [leaf([2, 3, 8], 1), leaf([8], 2, { offset: 1 })]);
  gradcheck('siluMul', (a, b) => T.siluMul(a, b), [leaf([3, 4], 3), leaf([3, 4], 4)]);
});

test('grad: rope, both layouts, partial rotary', () => {
  const P = 10;
  const half = 3;
  const cos = T.zeros([P, half], 'f64');
  const sin = T.zeros([P, half], 'f64');
  const c = cos.raw as Float64Array;
  const s = sin.raw as Float64Array;
  for (let p = 0; p < P; p++) for (let i = 0; i < half; i++) {
    const th = p * Math.pow(10000, (-2 * i) / 6);
    c[p * half + i] = Math.cos(th);
    s[p * half + i] = Math.sin(th);
  }
  const pos = tensor([3, 1, 7, 0], { dtype: 'i32' });
  gradcheck('rope half', (x) => T.rope(x, cos, sin, pos, 'half'), [leaf([2, 4, 2, 8], 1)]);
  gradcheck('rope interleaved', (x) => T.rope(x, cos, sin, pos, 'interleaved'), [leaf([2, 4, 2, 6], 2)]);
});

test('grad: embedding, crossEntropy', () => {
  const ids = tensor([[1, 3, 1], [0, 4, 4]], { dtype: 'i32' });
  gradcheck('embedding', (w) => T.embedding(w, ids), [leaf([5, 3], 1)]);
  const tg = tensor([2, -100, 0, 4], { dtype: 'i64' });
  gradcheck('crossEntropy mean ignore', (x) => T.crossEntropy(x, tg), [leaf([4, 5], 2)]);
  gradcheck('crossEntropy none', (x) => T.crossEntropy(x, tg, { reduction: 'none' }), [leaf([4, 5], 3)]);
  gradcheck('crossEntropy sum 3d', (x) => T.crossEntropy(x, tensor([[1, 2], [3, 0]], { dtype: 'i32' }), { reduction: 'sum' }), [leaf([2, 2, 5], 4)]);
});

test('grad: attention (causal, GQA, mask, Sq < Sk, Dk != Dv)', () => {
  gradcheck('plain', (q, k, v) => T.attention(q, k, v), [leaf([1, 2, 3, 4], 1), leaf([1, 2, 3, 4], 2), leaf([1, 2, 3, 4], 3)]);
  gradcheck('causal gqa dk!=dv', (q, k, v) => T.attention(q, k, v, { causal: true }), [leaf([2, 4, 3, 4], 4), leaf([2, 2, 3, 4], 5), leaf([2, 2, 3, 2], 6)]);
  gradcheck('causal decode Sq<Sk', (q, k, v) => T.attention(q, k, v, { causal: true, scale: 0.7 }), [leaf([1, 2, 2, 3], 7), leaf([1, 1, 5, 3], 8), leaf([1, 1, 5, 3], 9)]);
  const mask = T.tensor([[0, -1e9, 0, 0], [0, 0, -2, 0], [-1e9, 0, 0, 0]], { dtype: 'f64' });
  gradcheck('mask', (q, k, v) => T.attention(q, k, v, { mask }), [leaf([2, 2, 3, 4], 10), leaf([2, 2, 4, 4], 11), leaf([2, 2, 4, 3], 12)]);
});

test('grad: index ops', () => {
  const idx = tensor([2, 0, 2], { dtype: 'i32' });
  gradcheck('indexSelect', (x) => T.indexSelect(x, 1, idx), [leaf([2, 4, 3], 1)]);
  gradcheck('indexAdd', (x, s) => T.indexAdd(x, 1, idx, s), [leaf([2, 4, 3], 2), leaf([2, 3, 3], 3)]);
  const gi = tensor([[0, 2], [1, 1], [2, 0]], { dtype: 'i32' });
  gradcheck('gather', (x) => T.gather(x, 1, gi), [leaf([3, 4], 4)]);
  gradcheck('scatterAdd', (x, s) => T.scatterAdd(x, 1, gi, s), [leaf([3, 4], 5), leaf([3, 2], 6)]);
  const si = tensor([[0, 2], [1, 3], [2, 0]], { dtype: 'i32' });
  gradcheck('scatter', (x, s) => T.scatter(x, 1, si, s), [leaf([3, 4], 7), leaf([3, 2], 8)]);
  gradcheck('topk values', (x) => T.topk(x, 2).values, [leaf([3, 5], 9)]);
  gradcheck('topk smallest', (x) => T.topk(x, 3, { largest: false }).values, [leaf([2, 6], 10)]);
});

test('groupedSwiGLU: equals per-expert SwiGLU scaled by the routing weight; gradients of rows, weights and experts (one expert empty)', () => {
  const counts = [3, 0, 4];
  const D = 5, I = 3, P = 7;
  const xs = leaf([P, D], 31);
  const rw = leaf([P], 32);
  const gate = counts.map((_, e) => leaf([I, D], 40 + e));
  const up = counts.map((_, e) => leaf([I, D], 50 + e));
  const down = counts.map((_, e) => leaf([D, I], 60 + e));
  for (const w of [gate[1]!, up[1]!, down[1]!]) w.setRequiresGrad(false); // no rows: no gradient
  const fn = (x: T.Tensor, r: T.Tensor, ...w: T.Tensor[]) => T.groupedSwiGLU(x, r, counts, w.slice(0, 3), w.slice(3, 6), w.slice(6, 9));
  // Forward against the composition of plain ops.
  T.noGrad(() => T.tidy(() => {
    const y = fn(xs, rw, ...gate, ...up, ...down);
    let o = 0;
    for (let e = 0; e < 3; e++) {
      const n = counts[e]!;
      if (n) {
        const x = xs.narrow(0, o, n);
        const ref = T.siluMul(T.linear(x, gate[e]!), T.linear(x, up[e]!)).matmul(down[e]!.T).mul(rw.narrow(0, o, n).reshape(n, 1));
        const got = y.narrow(0, o, n).toArray() as Float64Array;
        (ref.toArray() as Float64Array).forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-12));
      }
      o += n;
    }
  }));
  gradcheck('groupedSwiGLU', fn, [xs, rw, ...gate, ...up, ...down]);
  assert.throws(() => T.groupedSwiGLU(xs, rw, [3, 3], gate.slice(0, 2), up.slice(0, 2), down.slice(0, 2)), /counts must be non-negative integers summing to 7/);
});
