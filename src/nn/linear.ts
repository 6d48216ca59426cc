/** Linear layer with HF's [out, in] weight layout: y = x W^T (+ b). */
import { Tensor, linear, empty } from '../tensor/index.js';
import { Module, type InitOptions, normalInit, zeroInit } from './module.js';

/**
 * Another implementation of one Linear's product, installed per layer: FP8 mixed-precision training
 * (quant/), packed bf16/fp8 weights for inference (infer/). `forward` must return what
 * linear(x, weight, bias) would, up to the format's rounding, with autograd where the impl trains.
 */
export interface LinearImpl {
  readonly name: string;
  forward(x: Tensor, layer: Linear): Tensor;
}

export class Linear extends Module {
  /** When set, forward runs through it instead of the f32/f64 GEMM. */
  impl: LinearImpl | null = null;
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias: boolean, init: InitOptions | 'empty', dtype: InitOptions['dtype'] = 'f32') {
    super();
    const dt = init === 'empty' ? dtype : init.dtype;
    this.weight = this.param('weight', init === 'empty' ? empty([outFeatures, inFeatures], dt, true) : normalInit([outFeatures, inFeatures], init));
    this.bias = bias ? this.param('bias', zeroInit([outFeatures], dt)) : null;
  }
  forward(x: Tensor): Tensor {
    return this.impl ? this.impl.forward(x, this) : linear(x, this.weight, this.bias);
  }
}
