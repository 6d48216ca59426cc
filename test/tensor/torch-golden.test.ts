/**
 * Ops against PyTorch goldens (test/fixtures/tensor/ops.json, made by make_ops.py with Debian's torch):
 * outputs and gradients, in f64 on the js backend and in f32 on the native backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as T from '../../src/tensor/index.js';
import { Tensor, tidy } from '../../src/tensor/index.js';
import { loadNative } from '../../src/tensor/backends/native.js';
import { repoPath } from '../util.js';

interface J { shape: number[]; data: number[] }
interface Case { inputs: Record<string, J>; ints: Record<string, J>; args: Record<string, unknown>; out: J; weight: J; grads: Record<string, J> }
const golden = JSON.parse(readFileSync(repoPath('test/fixtures/tensor/ops.json'), 'utf8')) as { cases: Record<string, Case> };
const C = golden.cases;

type Fn = (x: Record<string, Tensor>, ints: Record<string, Tensor>, c: Case, dt: 'f32' | 'f64') => Tensor;
const ropeTables = (dt: 'f32' | 'f64'): [Tensor, Tensor] => {
  const t = C['rope_tables']!.inputs;
  return [T.tensor(t['cos']!.data, { shape: t['cos']!.shape, dtype: dt }), T.tensor(t['sin']!.data, { shape: t['sin']!.shape, dtype: dt })];
};
const ops: Record<string, Fn> = {
  matmul_broadcast: (x) => T.matmul(x['a']!, x['b']!),
  matmul_transposed: (x) => T.matmul(x['a']!.T, x['b']!.T),
  linear_bias: (x) => T.linear(x['x']!, x['w']!, x['b']!),
  softmax: (x) => T.softmax(x['x']!, -1),
  log_softmax_dim1: (x) => T.logSoftmax(x['x']!, 1),
  gelu: (x) => T.gelu(x['x']!),
  gelu_tanh: (x) => T.gelu(x['x']!, 'tanh'),
  silu_mul: (x) => T.siluMul(x['a']!, x['b']!),
  sigmoid_tanh_exp_log: (x) => { const v = x['x']!; return T.sigmoid(v).add(T.tanh(v)).add(T.exp(v.mul(0.3))).add(T.log(T.abs(v).add(1))); },
  sum_mean_max: (x) => { const v = x['x']!; return T.sum(v, [0, 2]).add(T.mean(v, [0, 2]).mul(2)).add(T.max(T.max(v, 2), 0)); },
  pow_div_broadcast: (x) => T.pow(T.abs(x['a']!).add(0.5), x['b']!).div(T.abs(x['b']!).add(1)),
  rmsnorm: (x, _i, c) => T.rmsNorm(x['x']!, x['w']!, c.args['eps'] as number),
  rope_half: (x, i, _c, dt) => { const [cs, sn] = ropeTables(dt); return T.rope(x['x']!, cs, sn, i['pos']!, 'half'); },
  rope_interleaved: (x, i, _c, dt) => { const [cs, sn] = ropeTables(dt); return T.rope(x['x']!, cs, sn, i['pos']!, 'interleaved'); },
  cross_entropy: (x, i) => T.crossEntropy(x['x']!, i['targets']!),
  attention_causal_gqa: (x) => T.attention(x['q']!, x['k']!, x['v']!, { causal: true }),
  attention_decode: (x) => T.attention(x['q']!, x['k']!, x['v']!, { causal: true, scale: 0.3 }),
  attention_mask: (x, _i, c, dt) => { const m = c.args['mask'] as J; return T.attention(x['q']!, x['k']!, x['v']!, { scale: 0.5, mask: T.tensor(m.data, { shape: m.shape, dtype: dt }) }); },
  embedding: (x, i) => T.embedding(x['w']!, i['ids']!),
  gather: (x, i) => T.gather(x['x']!, 1, i['index']!),
  scatter_add: (x, i) => T.scatterAdd(x['x']!, 1, i['index']!, x['s']!),
  index_select: (x, i) => T.indexSelect(x['x']!, 1, i['index']!),
  index_add: (x, i) => T.indexAdd(x['x']!, 1, i['index']!, x['s']!),
  topk: (x) => T.topk(x['x']!, 3).values,
};

function compare(label: string, got: Tensor, want: J, tol: number): void {
  assert.deepEqual([...got.shape], want.shape, `${label}: shape`);
  const g = got.toArray() as Float32Array | Float64Array;
  for (let i = 0; i < want.data.length; i++) {
    const w = want.data[i]!;
    const err = Math.abs(g[i]! - w);
    assert.ok(err <= tol * (1 + Math.abs(w)), `${label}[${i}]: ${g[i]} vs torch ${w}`);
  }
}

function runAll(dt: 'f32' | 'f64', tol: number): void {
  for (const [name, fn] of Object.entries(ops)) {
    const c = C[name];
    assert.ok(c, `fixture case ${name} missing`);
    tidy(() => {
      const xs: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(c.inputs)) xs[k] = T.tensor(v.data, { shape: v.shape, dtype: dt }).setRequiresGrad();
      const is: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(c.ints)) is[k] = T.tensor(v.data, { shape: v.shape, dtype: 'i64' });
      const out = fn(xs, is, c, dt);
      compare(`${name} (${dt}) output`, out, c.out, tol);
      const w = T.tensor(c.weight.data, { shape: c.weight.shape, dtype: dt });
      T.sum(T.mul(out, w)).backward();
      for (const [k, g] of Object.entries(c.grads)) {
        assert.ok(xs[k]!.grad, `${name}: no gradient for ${k}`);
        compare(`${name} (${dt}) d/d${k}`, xs[k]!.grad!, g, tol * 10);
      }
      for (const x of Object.values(xs)) x.zeroGrad();
    });
  }
}

test('ops match PyTorch in f64 (js backend)', () => {
  runAll('f64', 1e-9);
});

test('ops match PyTorch in f32 (native backend when built)', () => {
  T.setBackend('native');
  runAll('f32', 2e-5);
});

test('ops match PyTorch in f32 on the js backend too', () => {
  T.setBackend('js');
  try {
    runAll('f32', 2e-5);
  } finally {
    T.setBackend('native');
  }
  assert.ok(loadNative() !== undefined);
});
