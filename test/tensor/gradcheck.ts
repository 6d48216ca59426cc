/** Numeric gradient checking (central differences in f64) for the op tests. */
import assert from 'node:assert/strict';
import { Tensor, noGrad, randn, Rng, tidy, mul, sum } from '../../src/tensor/index.js';

/** Random f64 leaf tensor requiring grad. */
export function leaf(shape: number[], seed: number, opts: { scale?: number; offset?: number } = {}): Tensor {
  const t = randn(shape, { dtype: 'f64', rng: new Rng(seed), std: opts.scale ?? 1, mean: opts.offset ?? 0 });
  return t.setRequiresGrad(true).keep();
}

/**
 * Checks d(sum(fn(inputs) * R))/d(input) from autograd against central differences, for every element
 * of every input that requires grad. R is a fixed random weighting so every output element matters.
 */
export function gradcheck(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { eps?: number; atol?: number; rtol?: number } = {}): void {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  for (const x of inputs) x.zeroGrad();
  let weights: Tensor | null = null;
  tidy(() => {
    const out = fn(...inputs);
    weights = randn(out.shape, { dtype: 'f64', rng: new Rng(99) }).keep();
    const loss = sum(mul(out, weights));
    loss.backward();
  });
  const w = weights!;
  const lossAt = (): number => noGrad(() => tidy(() => sum(mul(fn(...inputs), w)).item()));
  for (let xi = 0; xi < inputs.length; xi++) {
    const x = inputs[xi]!;
    if (!x.requiresGrad) continue;
    assert.ok(x.grad, `${name}: input ${xi} got no gradient`);
    const g = x.grad!.toArray() as Float64Array;
    const data = x.raw as Float64Array;
    assert.ok(x.isContiguous());
    for (let i = 0; i < x.size; i++) {
      const orig = data[x.offset + i]!;
      data[x.offset + i] = orig + eps;
      const lp = lossAt();
      data[x.offset + i] = orig - eps;
      const lm = lossAt();
      data[x.offset + i] = orig;
      const num = (lp - lm) / (2 * eps);
      const err = Math.abs(num - g[i]!);
      assert.ok(err <= atol + rtol * Math.abs(num), `${name}: d/d input${xi}[${i}] autograd ${g[i]} vs numeric ${num} (err ${err})`);
    }
  }
  w.dispose();
}
