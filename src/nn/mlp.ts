/** SwiGLU MLP (Shazeer 2020) as Llama/Qwen2/DeepSeek use it: down(silu(gate(x)) * up(x)). */
import { Tensor, siluMul } from '../tensor/index.js';
import { Module, type InitOptions } from './module.js';
import { Linear } from './linear.js';
import { fuseLinears, type FusedPacked } from './packed-weights.js';

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
  /** gate_proj and up_proj as one packed product (fuseProjections, after packing); null: two products. */
  gateUp: FusedPacked | null = null;
  fuseProjections(path: string): boolean {
    this.gateUp = fuseLinears([this.gate_proj, this.up_proj], `${path}.gate_proj+up_proj`);
    return this.gateUp !== null;
  }
  forward(x: Tensor): Tensor {
    if (this.gateUp && !this.training) {
      // silu(gate) * up in one native call (the same values as below); at one row where measured faster (gluAtOneRow)
      const oneRow = this.gateUp.serves(x);
      const h = !oneRow || this.gateUp.gluAtOneRow ? this.gateUp.glu(x) : null;
      if (h) return this.down_proj.forward(h);
      if (oneRow) {
        const [g, u] = this.gateUp.apply(x);
        return this.down_proj.forward(siluMul(g!, u!));
      }
    }
    return this.down_proj.forward(siluMul(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}
