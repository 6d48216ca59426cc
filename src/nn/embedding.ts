/** Token embedding: ids -> rows of weight [vocab, dim]. */
import { Tensor, embedding, empty } from '../tensor/index.js';
import { Module, type InitOptions, normalInit } from './module.js';

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(readonly num: number, readonly dim: number, init: InitOptions | 'empty', dtype: InitOptions['dtype'] = 'f32') {
    super();
    this.weight = this.param('weight', init === 'empty' ? empty([num, dim], dtype, true) : normalInit([num, dim], init));
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
