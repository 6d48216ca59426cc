/** Linear layer with HF's [out, in] weight layout: y = x W^T (+ b). */
import { Tensor, linear, empty } from '../tensor/index.js';
import { Module, type InitOptions, normalInit, zeroInit } from './module.js';

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias: boolean, init: InitOptions | 'empty', dtype: InitOptions['dtype'] = 'f32') {
    super();
    const dt = init === 'empty' ? dtype : init.dtype;
    this.weight = this.param('weight', init === 'empty' ? empty([outFeatures, inFeatures], dt, true) : normalInit([outFeatures, inFeatures], init));
    this.bias = bias ? this.param('bias', zeroInit([outFeatures], dt)) : null;
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
