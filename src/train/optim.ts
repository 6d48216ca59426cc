/**
 * Optimizers over parameter tensors. AdamW follows Loshchilov & Hutter (decoupled weight decay) with
 * PyTorch's bias correction; the update is one fused kernel per parameter (backend.adamw).
 */
import type { FArray } from '../tensor/backend.js';
import { Tensor, zeros, noGrad, backendFor, keep } from '../tensor/index.js';
import { ShapeError } from '../errors.js';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly params: Tensor[];
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step = 0;
  readonly m: Tensor[];
  readonly v: Tensor[];

  constructor(params: Tensor[], opts: AdamWOptions) {
    for (const p of params) {
      if (!p.requiresGrad) throw new ShapeError(`AdamW: parameter ${p.describe()} does not require grad`);
      if (!p.isContiguous() || p.offset !== 0) throw new ShapeError(`AdamW: parameter ${p.describe()} must be contiguous`);
    }
    this.params = params;
    this.lr = opts.lr;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.m = params.map((p) => keep(zeros(p.shape, p.dtype)));
    this.v = params.map((p) => keep(zeros(p.shape, p.dtype)));
  }

  /** One update from the parameters' .grad (parameters without a gradient are skipped). */
  stepUpdate(): void {
    this.step++;
    const bc1 = 1 - Math.pow(this.beta1, this.step);
    const bc2 = 1 - Math.pow(this.beta2, this.step);
    noGrad(() => {
      this.params.forEach((p, i) => {
        const g = p.grad;
        if (!g) return;
        const gc = g.contiguous();
        backendFor(p.dtype).adamw(p.raw as FArray, gc.raw.subarray(gc.offset, gc.offset + gc.size) as FArray, this.m[i]!.raw as FArray, this.v[i]!.raw as FArray,
          p.size, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2);
        if (gc !== g) gc.dispose();
      });
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }
}

/** Scale all gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) {
    if (!p.grad) continue;
    const a = p.grad.toArray() as FArray;
    for (let i = 0; i < a.length; i++) sq += a[i]! * a[i]!;
  }
  const norm = Math.sqrt(sq);
  if (norm > maxNorm && norm > 0) {
    const s = maxNorm / (norm + 1e-6);
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad;
      const a = g.raw as FArray;
      if (g.isContiguous()) for (let i = g.offset; i < g.offset + g.size; i++) a[i]! *= s;
      else { const c = g.mul(s); p.grad = keep(c); g.dispose(); }
    }
  }
  return norm;
}
