/** All ops, one namespace. Also wires autograd's arithmetic hooks. */
import { setGradMath, backward as runBackward } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { onesLike } from './creation.js';
import { clone, alias, contiguous } from './shape.js';

export * from './common.js';
export * from './shape.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './indexing.js';
export * from './nn.js';
export * from './creation.js';

setGradMath({ add, onesLike, clone: (t) => { const c = contiguous(t); return c === t ? clone(t) : c; } });

export function backward(t: Tensor, grad?: Tensor, opts?: { retainGraph?: boolean }): void {
  runBackward(t, grad, opts);
}

/** A tensor sharing t's data but cut from the graph. */
export function detach(t: Tensor): Tensor {
  const a = alias(t);
  a.gradFn = null;
  a.requiresGrad = false;
  return a;
}
