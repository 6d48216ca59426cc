/** SwiGLU MLP (Shazeer 2020) as Llama/Qwen2/DeepSeek use it: down(silu(gate(x)) * up(x)). */
import { Tensor, siluMul } from '../tensor/index.js';
import { Module, type InitOptions } from './module.js';
import { Linear } from './linear.js';

export class SwiGLU extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  constructor(readonly dim: number, readonly hidden: number, init: InitOptions | 'empty') {
    super();
    this.gate_proj = this.child('gate_proj', new Linear(dim, hidden, false, init));
    this.up_proj = this.child('up_proj', new Linear(dim, hidden, false, init));
    this.down_proj = this.child('down_proj', new Linear(hidden, dim, false, init));
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(siluMul(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}
