/**
 * Optimizers over parameter tensors. AdamW follows Loshchilov & Hutter (decoupled weight decay) with
 * PyTorch's bias correction; the update is one fused kernel per parameter (backend.adamw).
 */
import type { FArray } from '../tensor/backend.js';
import { Tensor, zeros, noGrad, backendFor, keep } from '../tensor/index.js';
import { ConfigError, ShapeError } from '../errors.js';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /**
   * Storage precision of the moments. 'bf16': DeepSeek-V3 section 3.3.3 ("Low-Precision Optimizer States") tracks
   * AdamW's first and second moments in BF16 while master weights and gradients stay FP32. The update itself runs in
   * f32 (the fused kernel reads the stored moments and uses its f32 results for this step's update); the moments are
   * then stored rounded to BF16 (nearest-even) — kept in f32 buffers holding exactly-BF16 values, so checkpoints and
   * kernels are unchanged. Default 'f32'.
   */
  momentDtype?: 'f32' | 'bf16';
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
  readonly momentDtype: 'f32' | 'bf16';

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
    this.momentDtype = opts.momentDtype ?? 'f32';
    if (this.momentDtype !== 'f32' && this.momentDtype !== 'bf16') throw new ConfigError(`AdamW: momentDtype must be 'f32' or 'bf16', got '${String(this.momentDtype)}'`);
    if (this.momentDtype === 'bf16' && params.some((p) => p.dtype !== 'f32')) throw new ConfigError(`AdamW: BF16 moments need f32 parameters`);
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
        if (this.momentDtype === 'bf16') {
          roundToBf16InPlace(this.m[i]!.raw as Float32Array, p.size);
          roundToBf16InPlace(this.v[i]!.raw as Float32Array, p.size);
        }
      });
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }
}

let bf16Scratch = new Uint16Array(0);

/** a[0..n) = bf16(a[i]) (round to nearest even, through the engine's f32 <-> bf16 casts). */
export function roundToBf16InPlace(a: Float32Array, n = a.length): void {
  if (bf16Scratch.length < n) bf16Scratch = new Uint16Array(n);
  const be = backendFor('f32');
  be.cast(bf16Scratch, 'bf16', a, 'f32', n);
  be.cast(a, 'f32', bf16Scratch, 'bf16', n);
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
