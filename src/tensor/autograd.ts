/**
 * Reverse-mode autograd. Every differentiable op records a GradNode on its output holding its inputs
 * and a backward function written in terms of other ops (run with gradients disabled).
 * backward() walks the graph in reverse topological order, accumulating into leaves' .grad.
 */
import type { Tensor } from './tensor.js';
import { keep } from './memory.js';
import { ShapeError } from '../errors.js';

export interface GradNode {
  readonly name: string;
  readonly inputs: readonly (Tensor | null)[];
  /** Gradients w.r.t. each input (null where not needed or not differentiable). */
  backward(gradOut: Tensor): (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn with gradient recording off (inference, optimizer steps, backward itself). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Set gradient recording on or off; returns the previous state. */
export function setGradEnabled(on: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = on;
  return prev;
}

/**
 * Attach a node to `out` if recording is on and any input requires grad.
 * Returns out for chaining.
 */
export function record(out: Tensor, name: string, inputs: readonly (Tensor | null)[], backward: (g: Tensor) => (Tensor | null)[]): Tensor {
  if (!gradEnabled) return out;
  let any = false;
  for (const t of inputs) if (t && t.requiresGrad) { any = true; break; }
  if (!any) return out;
  out.requiresGrad = true;
  out.gradFn = { name, inputs, backward };
  return out;
}

/** Hooks the op layer provides (avoids an import cycle). */
export interface GradMath {
  add(a: Tensor, b: Tensor): Tensor;
  onesLike(t: Tensor): Tensor;
  clone(t: Tensor): Tensor;
}
let math: GradMath | null = null;
export function setGradMath(m: GradMath): void {
  math = m;
}

/**
 * Backpropagate from `root`. Without `grad`, root must have one element (the gradient is 1).
 * Leaves' gradients accumulate into .grad across calls (call zeroGrad between steps).
 * Unless retainGraph, the graph is freed as it is walked.
 */
export function backward(root: Tensor, grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
  if (!math) throw new Error('autograd: op layer not initialised');
  const m = math;
  if (!root.requiresGrad) throw new ShapeError(`backward: tensor ${root.describe()} does not require grad (no input had requiresGrad, or it was computed under noGrad)`);
  if (!grad && root.size !== 1) throw new ShapeError(`backward: the root ${root.describe()} is not a scalar; pass its gradient explicitly`);
  if (grad && (grad.shape.length !== root.shape.length || grad.shape.some((d, i) => d !== root.shape[i]))) {
    throw new ShapeError(`backward: gradient shape [${grad.shape.join(', ')}] does not match root ${root.describe()}`);
  }

  // Topological order by iterative DFS (graphs can be thousands of nodes deep).
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.gradFn ? t.gradFn.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const inp = inputs[i];
      if (inp && inp.requiresGrad && !seen.has(inp)) {
        seen.add(inp);
        stack.push([inp, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  const prev = setGradEnabled(false);
  try {
    const grads = new Map<Tensor, Tensor>();
    grads.set(root, grad ?? m.onesLike(root));
    for (let idx = order.length - 1; idx >= 0; idx--) {
      const t = order[idx]!;
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t.gradFn;
      if (!node) {
        // A leaf: accumulate into .grad, which outlives any tidy() scope.
        if (t.grad) {
          const sum = m.add(t.grad, g);
          t.grad.dispose();
          t.grad = keep(sum);
          if (g !== grad) g.dispose();
        } else {
          t.grad = keep(g === grad ? m.clone(g) : g);
        }
        continue;
      }
      const inGrads = node.backward(g);
      // Backward functions return fresh tensors (views at most), so g can go now.
      if (g !== grad) g.dispose();
      for (let i = 0; i < node.inputs.length; i++) {
        const inp = node.inputs[i];
        const ig = inGrads[i];
        if (!inp || !ig || !inp.requiresGrad) { ig?.dispose(); continue; }
        const prevG = grads.get(inp);
        if (prevG) {
          grads.set(inp, m.add(prevG, ig));
          prevG.dispose();
          ig.dispose();
        } else {
          grads.set(inp, ig);
        }
      }
      if (!opts.retainGraph) t.gradFn = null;
    }
  } finally {
    setGradEnabled(prev);
  }
}
