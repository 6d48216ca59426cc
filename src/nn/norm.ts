/** RMSNorm (Zhang & Sennrich 2019) as Llama/Qwen2/DeepSeek-V3 use it: x / rms(x) * weight, weight initialised to 1. */
import { Tensor, rmsNorm } from '../tensor/index.js';
import { Module, oneInit } from './module.js';
import type { DType } from '../tensor/index.js';

export class RMSNorm extends Module {
  readonly weight: Tensor;
  constructor(readonly dim: number, readonly eps: number, dtype: DType = 'f32') {
    super();
    this.weight = this.param('weight', oneInit([dim], dtype));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
