/**
 * Pipeline-parallel schedules as explicit per-rank op lists.
 *
 * A schedule moves micro-batches through one or two chains of pipeline stages. Each rank executes its list in
 * order; the simulator (simulator.ts) computes when each op can start and checks every dependency.
 *
 * Ops (names as in the DualPipe repository's README and the zero-bubble paper, Qi et al. 2023):
 *  - F:  forward of one micro-batch through one stage.
 *  - B:  backward of one stage. `split: false` is the full backward (input and weight gradients, time B);
 *        `split: true` computes only the input gradient (time B − W) and leaves a W for later (zero bubble).
 *  - W:  the deferred weight-gradient part of a split B (time W).
 *  - FB: a forward and a backward chunk executed together with their compute and communication mutually
 *        overlapped (DualPipe's `overlapped_forward_backward`), time F&B.
 *
 * Chains ("directions"): 1F1B/ZB1P use one chain, stage s on rank s. DualPipe (DeepSeek-V3 report §3.2.1) feeds
 * micro-batches from both ends: direction 0 runs stage s on rank s, direction 1 runs stage s on rank PP−1−s, so
 * every rank holds two stages (two parameter copies). DualPipeV ("cut-in-half", Sea AI Lab) folds one chain of
 * 2N stages onto N ranks in a V: stage s on rank s for s < N, on rank 2N−1−s otherwise.
 *
 * The DualPipe and DualPipeV op orders follow deepseek-ai/DualPipe `dualpipe/dualpipe.py` and
 * `dualpipe/dualpipev.py` (`step()`: the eight steps nF0, nF0F1, nB1W1F1, nF0B1F1B0, nB1F1B0, nB1B0, nWB0, nW);
 * the code here is our own.
 */
import { UsageError } from '../errors.js';

export type ScheduleName = '1f1b' | 'zb1p' | 'dualpipe' | 'dualpipev';
export const SCHEDULES: readonly ScheduleName[] = ['1f1b', 'zb1p', 'dualpipe', 'dualpipev'];

/** One stage-pass of one micro-batch. */
export interface ChunkRef {
  dir: 0 | 1;
  stage: number;
  mb: number;
}

export type Op =
  | ({ kind: 'F' } & ChunkRef)
  | ({ kind: 'B'; split: boolean } & ChunkRef)
  | ({ kind: 'W' } & ChunkRef)
  | { kind: 'FB'; f: ChunkRef; b: ChunkRef };

export interface Schedule {
  name: ScheduleName;
  /** Devices. */
  ranks: number;
  /** Pipeline stages per chain (the model is cut into this many pieces). */
  stages: number;
  /** Number of chains (2 for DualPipe's two directions). */
  directions: 1 | 2;
  /** Micro-batches per chain. */
  microPerDirection: number[];
  /** Rank hosting stage `stage` of chain `dir`. */
  rankOf(dir: 0 | 1, stage: number): number;
  ops: Op[][];
}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new UsageError(msg);
}

// ---------------------------------------------------------------------------------------------------------------
// 1F1B (PipeDream-Flush / Megatron): rank i warms up with PP−1−i forwards, alternates one F and one B, then drains.

export function oneFOneB(pp: number, micro: number): Schedule {
  check(Number.isInteger(pp) && pp >= 1, `1f1b: pp must be a positive integer, got ${pp}`);
  check(Number.isInteger(micro) && micro >= 1, `1f1b: micro-batches must be a positive integer, got ${micro}`);
  const ops: Op[][] = [];
  for (let r = 0; r < pp; r++) {
    const list: Op[] = [];
    const warm = Math.min(pp - 1 - r, micro);
    let f = 0, b = 0;
    for (; f < warm; f++) list.push({ kind: 'F', dir: 0, stage: r, mb: f });
    while (f < micro) {
      list.push({ kind: 'F', dir: 0, stage: r, mb: f++ });
      list.push({ kind: 'B', split: false, dir: 0, stage: r, mb: b++ });
    }
    while (b < micro) list.push({ kind: 'B', split: false, dir: 0, stage: r, mb: b++ });
    ops.push(list);
  }
  return { name: '1f1b', ranks: pp, stages: pp, directions: 1, microPerDirection: [micro], rankOf: (_d, s) => s, ops };
}

// ---------------------------------------------------------------------------------------------------------------
// ZB1P (ZB-H1 of "Zero Bubble Pipeline Parallelism", §3.1): the 1F1B order with every backward split into B (input
// gradient) and W (weight gradient). Rank i postpones up to i of its W passes: the later a stage, the less
// activation memory 1F1B holds there (PP−i micro-batches), so the postponed W's keep every rank at PP in flight —
// the same peak as 1F1B. The postponed W's fill the gaps of the drain phase, which shrinks the bubble from
// (PP−1)(F+B) to (PP−1)(F+B−2W) with B the full backward.

export function zb1p(pp: number, micro: number): Schedule {
  check(Number.isInteger(pp) && pp >= 1, `zb1p: pp must be a positive integer, got ${pp}`);
  check(Number.isInteger(micro) && micro >= 1, `zb1p: micro-batches must be a positive integer, got ${micro}`);
  const ops: Op[][] = [];
  for (let r = 0; r < pp; r++) {
    const list: Op[] = [];
    const pending: number[] = [];
    const maxDeferred = r;
    const warm = Math.min(pp - 1 - r, micro);
    let f = 0, b = 0;
    const backward = () => {
      list.push({ kind: 'B', split: true, dir: 0, stage: r, mb: b });
      pending.push(b++);
    };
    const weight = () => list.push({ kind: 'W', dir: 0, stage: r, mb: pending.shift()! });
    for (; f < warm; f++) list.push({ kind: 'F', dir: 0, stage: r, mb: f });
    while (f < micro) {
      list.push({ kind: 'F', dir: 0, stage: r, mb: f++ });
      backward();
      while (pending.length > maxDeferred) weight();
    }
    // Drain: each B is followed by one postponed W, which fills the wait for the next B from downstream.
    while (b < micro) {
      backward();
      weight();
    }
    while (pending.length > 0) weight();
    ops.push(list);
  }
  return { name: 'zb1p', ranks: pp, stages: pp, directions: 1, microPerDirection: [micro], rankOf: (_d, s) => s, ops };
}

// ---------------------------------------------------------------------------------------------------------------
// DualPipe and DualPipeV share the eight-step order; they differ in how a rank's two local chunks ("phase" 0 and 1
// in the reference) map to chains and stages, and in the per-rank step counts.

interface PhaseMap {
  /** The chunk a local phase refers to on this rank, for its next F / B. */
  chain(phase: 0 | 1): { dir: 0 | 1; stage: number };
}

class OpBuilder {
  readonly list: Op[] = [];
  private nextF: [number, number] = [0, 0];
  private nextB: [number, number] = [0, 0];
  private wQueue: ChunkRef[] = [];
  constructor(private readonly map: PhaseMap) {}

  private fRef(phase: 0 | 1): ChunkRef {
    const c = this.map.chain(phase);
    return { dir: c.dir, stage: c.stage, mb: this.nextF[phase]++ };
  }
  private bRef(phase: 0 | 1): ChunkRef {
    const c = this.map.chain(phase);
    return { dir: c.dir, stage: c.stage, mb: this.nextB[phase]++ };
  }
  F(phase: 0 | 1): void {
    this.list.push({ kind: 'F', ...this.fRef(phase) });
  }
  /** `zb`: the reference's enable_zb — input gradient now, weight gradient queued (FIFO) for a later W. */
  B(phase: 0 | 1, zb = false): void {
    const ref = this.bRef(phase);
    this.list.push({ kind: 'B', split: zb, ...ref });
    if (zb) this.wQueue.push(ref);
  }
  W(): void {
    const ref = this.wQueue.shift();
    if (!ref) throw new Error('schedule generator: W with no pending split backward');
    this.list.push({ kind: 'W', ...ref });
  }
  /** Overlapped forward (phase0) and full backward (phase1). */
  FB(phase0: 0 | 1, phase1: 0 | 1): void {
    const f = this.fRef(phase0);
    const b = this.bRef(phase1);
    this.list.push({ kind: 'FB', f, b });
  }
  pendingW(): number {
    return this.wQueue.length;
  }
}

/**
 * The eight steps of DualPipe's `step()` for one rank. `n` = ranks in the half (DualPipe: PP/2; DualPipeV: all
 * N ranks), `h` = this rank's index in that half, `chunks` = micro-batches this rank's phase-0 chain carries
 * (DualPipe: per direction; DualPipeV: all), `middle` = the rank where the two chunks meet (DualPipe: ranks
 * PP/2−1 and PP/2; DualPipeV: the last rank), where the first F0/B1 pair of step 4 is not overlapped.
 */
function eightSteps(o: OpBuilder, n: number, h: number, chunks: number, middle: boolean): void {
  // Step 1: nF0 — fill this rank's share of the first chain.
  for (let i = 0; i < (n - h - 1) * 2; i++) o.F(0);
  // Step 2: nF0F1 — alternate forwards of both chunks.
  for (let i = 0; i < h + 1; i++) {
    o.F(0);
    o.F(1);
  }
  // Step 3: nB1W1F1 — zero-bubble backward of chunk 1 with its W right away, then a forward of chunk 1.
  for (let i = 0; i < n - h - 1; i++) {
    o.B(1, true);
    o.W();
    o.F(1);
  }
  // Step 4 (main): nF0B1F1B0 — two overlapped forward-and-backward pairs per iteration.
  const step4 = chunks - 2 * n + h + 1;
  for (let i = 0; i < step4; i++) {
    if (i === 0 && middle) {
      // Reference: "We don't overlap these two chunks to further reduce bubble size."
      o.F(0);
      o.B(1);
    } else {
      o.FB(0, 1);
    }
    o.FB(1, 0);
  }
  // Step 5: nB1F1B0.
  for (let i = 0; i < n - h - 1; i++) {
    o.B(1);
    o.FB(1, 0);
  }
  // Step 6: nB1B0 — the second half of these backwards use zero bubble.
  const step6 = h + 1;
  let zb = false;
  for (let i = 0; i < step6; i++) {
    if (i === Math.floor(step6 / 2) && h % 2 === 1) zb = true;
    o.B(1, zb);
    if (i === Math.floor(step6 / 2) && h % 2 === 0) zb = true;
    o.B(0, zb);
  }
  // Step 7: nWB0.
  for (let i = 0; i < n - h - 1; i++) {
    o.W();
    o.B(0, true);
  }
  // Step 8: nW — the remaining weight gradients.
  for (let i = 0; i < h + 1; i++) o.W();
  if (o.pendingW() !== 0) throw new Error('schedule generator: weight gradients left over');
}

/** DualPipe (DeepSeek-V3 §3.2.1): PP ranks (even), `micro` micro-batches in total (even, ≥ 2·PP), half per direction. */
export function dualPipe(pp: number, micro: number): Schedule {
  check(Number.isInteger(pp) && pp >= 2 && pp % 2 === 0, `dualpipe: pp must be an even integer >= 2, got ${pp}`);
  check(Number.isInteger(micro) && micro % 2 === 0 && micro >= 2 * pp, `dualpipe: micro-batches must be even and >= 2*pp (${2 * pp}), got ${micro}`);
  const half = pp / 2;
  const ops: Op[][] = [];
  for (let r = 0; r < pp; r++) {
    const second = r >= half ? 1 : 0;
    // Reference: phase ^= is_in_second_half. Phase 0 is the chain that enters at this rank's end of the pipeline.
    const map: PhaseMap = {
      chain: (phase) => {
        const dir = (phase ^ second) as 0 | 1;
        return { dir, stage: dir === 0 ? r : pp - 1 - r };
      },
    };
    const o = new OpBuilder(map);
    const h = Math.min(r, pp - 1 - r);
    eightSteps(o, half, h, micro / 2, r === half - 1 || r === half);
    ops.push(o.list);
  }
  return {
    name: 'dualpipe', ranks: pp, stages: pp, directions: 2, microPerDirection: [micro / 2, micro / 2],
    rankOf: (d, s) => (d === 0 ? s : pp - 1 - s), ops,
  };
}

/**
 * DualPipeV: `pp` pipeline stages (even) on pp/2 ranks in a V, `micro` micro-batches (≥ pp, the reference's
 * num_chunks >= 2·ranks).
 */
export function dualPipeV(pp: number, micro: number): Schedule {
  check(Number.isInteger(pp) && pp >= 2 && pp % 2 === 0, `dualpipev: pp (stages) must be an even integer >= 2, got ${pp}`);
  const n = pp / 2;
  check(Number.isInteger(micro) && micro >= 2 * n, `dualpipev: micro-batches must be an integer >= pp (${2 * n}), got ${micro}`);
  const ops: Op[][] = [];
  for (let r = 0; r < n; r++) {
    const map: PhaseMap = { chain: (phase) => ({ dir: 0, stage: phase === 0 ? r : 2 * n - 1 - r }) };
    const o = new OpBuilder(map);
    eightSteps(o, n, r, micro, r === n - 1);
    ops.push(o.list);
  }
  return {
    name: 'dualpipev', ranks: n, stages: pp, directions: 1, microPerDirection: [micro],
    rankOf: (_d, s) => (s < n ? s : 2 * n - 1 - s), ops,
  };
}

export function makeSchedule(name: ScheduleName, pp: number, micro: number): Schedule {
  switch (name) {
    case '1f1b': return oneFOneB(pp, micro);
    case 'zb1p': return zb1p(pp, micro);
    case 'dualpipe': return dualPipe(pp, micro);
    case 'dualpipev': return dualPipeV(pp, micro);
  }
}

/** Short label of an op for timelines: F3, B3, b3 (split), W3, F3|B1 (overlapped); direction 1 primed. */
export function opLabel(op: Op): string {
  const ref = (c: ChunkRef) => `${c.mb}${c.dir === 1 ? "'" : ''}`;
  switch (op.kind) {
    case 'F': return `F${ref(op)}`;
    case 'B': return `${op.split ? 'b' : 'B'}${ref(op)}`;
    case 'W': return `W${ref(op)}`;
    case 'FB': return `F${ref(op.f)}|B${ref(op.b)}`;
  }
}
