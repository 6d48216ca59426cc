/**
 * Discrete-event execution of a pipeline schedule (schedules.ts).
 *
 * Each rank runs its op list in order. An op starts when its rank is free and its inputs have arrived:
 *  - F of stage s needs F of stage s−1 of the same micro-batch (plus the p2p time when that ran on another rank);
 *  - B of stage s needs this rank's F of stage s and B of stage s+1 (the last stage's B needs only its own F: the
 *    loss is computed at the end of that F), plus p2p time across ranks;
 *  - W needs the split B of the same chunk on this rank;
 *  - FB needs both its forward's and its backward's inputs.
 * The simulator validates the schedule (every chunk's F and B exactly once on the rank hosting it, a W exactly for
 * each split B, F before B, no deadlock) and reports per-rank busy/idle time, the bubble, the activation memory peak
 * (in micro-batch·stage units, held from the start of F until the chunk's backward is complete: the end of its B,
 * or of its W when the backward was split) and the parameter copies per rank (distinct stages hosted).
 */
import { UsageError } from '../errors.js';
import { opLabel, type ChunkRef, type Op, type Schedule } from './schedules.js';

export interface Durations {
  /** Forward chunk. */
  F: number;
  /** Full backward chunk (input + weight gradients). */
  B: number;
  /** The weight-gradient part of B. */
  W: number;
  /** An overlapped forward + backward pair (DualPipe's F&B); defaults to F + B (no overlap gain). */
  FB?: number;
  /** Point-to-point activation/gradient transfer between ranks (0: fully overlapped, as DualPipe intends). */
  comm?: number;
}

export interface TimedOp {
  op: Op;
  label: string;
  start: number;
  end: number;
}

export interface RankStats {
  busy: number;
  /** makespan − busy. */
  idle: number;
  /** Peak activations held, in micro-batch·stage units. */
  peakActivations: number;
  /** Distinct model stages hosted (1 = one stage's parameters). */
  parameterCopies: number;
}

export interface SimResult {
  schedule: string;
  ranks: number;
  stages: number;
  makespan: number;
  timeline: TimedOp[][];
  perRank: RankStats[];
  /**
   * Pipeline bubble: the largest per-rank gap between the makespan and the time the rank needed for its work
   * if it were never idle (max over ranks of makespan − busy) — the quantity the DualPipe README tabulates.
   */
  bubble: number;
  activationMicroBatches: number;
  parameterCopies: number;
}

export class ScheduleError extends UsageError {}

const key = (c: ChunkRef) => `${c.dir}:${c.stage}:${c.mb}`;

export function simulate(s: Schedule, d: Durations): SimResult {
  for (const [k, v] of Object.entries(d)) {
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new UsageError(`simulate: duration ${k} must be a finite number >= 0, got ${v}`);
  }
  if (d.W > d.B) throw new UsageError(`simulate: W (${d.W}) cannot exceed the full backward B (${d.B})`);
  const FB = d.FB ?? d.F + d.B;
  const comm = d.comm ?? 0;
  const dur = (op: Op): number => {
    switch (op.kind) {
      case 'F': return d.F;
      case 'B': return op.split ? d.B - d.W : d.B;
      case 'W': return d.W;
      case 'FB': return FB;
    }
  };

  // Static validation: every chunk's F and B once, on its rank; W exactly for split B's.
  const fEnd = new Map<string, number>();
  const bEnd = new Map<string, number>();
  const splitB = new Set<string>();
  const seenF = new Set<string>(), seenB = new Set<string>(), seenW = new Set<string>();
  const where = (r: number, i: number, op: Op) => `${s.name}: rank ${r} op ${i} (${opLabel(op)})`;
  const claim = (set: Set<string>, c: ChunkRef, r: number, i: number, op: Op, what: string) => {
    if (c.dir >= s.directions || c.stage < 0 || c.stage >= s.stages || c.mb < 0 || c.mb >= s.microPerDirection[c.dir]!) {
      throw new ScheduleError(`${where(r, i, op)}: ${what} refers to a chunk outside the schedule (dir ${c.dir}, stage ${c.stage}, micro-batch ${c.mb})`);
    }
    if (s.rankOf(c.dir, c.stage) !== r) throw new ScheduleError(`${where(r, i, op)}: stage ${c.stage} of direction ${c.dir} lives on rank ${s.rankOf(c.dir, c.stage)}`);
    if (set.has(key(c))) throw new ScheduleError(`${where(r, i, op)}: ${what} of this chunk appears twice`);
    set.add(key(c));
  };
  s.ops.forEach((list, r) => list.forEach((op, i) => {
    if (op.kind === 'F') claim(seenF, op, r, i, op, 'F');
    else if (op.kind === 'B') { claim(seenB, op, r, i, op, 'B'); if (op.split) splitB.add(key(op)); }
    else if (op.kind === 'W') claim(seenW, op, r, i, op, 'W');
    else { claim(seenF, op.f, r, i, op, 'F'); claim(seenB, op.b, r, i, op, 'B'); }
  }));
  let expected = 0;
  for (let dir = 0; dir < s.directions; dir++) expected += s.microPerDirection[dir]! * s.stages;
  if (seenF.size !== expected) throw new ScheduleError(`${s.name}: ${seenF.size} forward chunks scheduled, expected ${expected}`);
  if (seenB.size !== expected) throw new ScheduleError(`${s.name}: ${seenB.size} backward chunks scheduled, expected ${expected}`);
  for (const k of splitB) if (!seenW.has(k)) throw new ScheduleError(`${s.name}: split backward ${k} has no W`);
  for (const k of seenW) if (!splitB.has(k)) throw new ScheduleError(`${s.name}: W ${k} without a split backward`);

  // Readiness of an op's inputs: null while a producer has not been scheduled yet.
  const fReady = (c: ChunkRef, r: number): number | null => {
    if (c.stage === 0) return 0;
    const prev = { dir: c.dir, stage: c.stage - 1, mb: c.mb };
    const t = fEnd.get(key(prev));
    if (t === undefined) return null;
    return s.rankOf(c.dir, prev.stage) === r ? t : t + comm;
  };
  const bReady = (c: ChunkRef, r: number, rankOps: Op[], idx: number): number | null => {
    const own = fEnd.get(key(c));
    if (own === undefined) {
      // Our own F must come earlier on this rank; if it is later in the list the schedule is invalid, not waiting.
      const later = rankOps.slice(idx + 1).some((o) => (o.kind === 'F' && key(o) === key(c)) || (o.kind === 'FB' && key(o.f) === key(c)));
      if (later) throw new ScheduleError(`${s.name}: rank ${r}: backward of ${key(c)} is scheduled before its forward`);
      return null;
    }
    if (c.stage === s.stages - 1) return own;
    const next = { dir: c.dir, stage: c.stage + 1, mb: c.mb };
    const t = bEnd.get(key(next));
    if (t === undefined) return null;
    return Math.max(own, s.rankOf(c.dir, next.stage) === r ? t : t + comm);
  };

  const pos = s.ops.map(() => 0);
  const clock = s.ops.map(() => 0);
  const timeline: TimedOp[][] = s.ops.map(() => []);
  let remaining = s.ops.reduce((n, l) => n + l.length, 0);
  while (remaining > 0) {
    let progressed = false;
    for (let r = 0; r < s.ops.length; r++) {
      const list = s.ops[r]!;
      // Run as many ops of this rank as are ready.
      while (pos[r]! < list.length) {
        const idx = pos[r]!;
        const op = list[idx]!;
        let ready: number | null;
        if (op.kind === 'F') ready = fReady(op, r);
        else if (op.kind === 'B') ready = bReady(op, r, list, idx);
        else if (op.kind === 'W') {
          const t = bEnd.get(key(op));
          if (t === undefined) throw new ScheduleError(`${s.name}: rank ${r}: W of ${key(op)} comes before its split backward`);
          ready = t;
        } else {
          const a = fReady(op.f, r);
          const b = bReady(op.b, r, list, idx);
          ready = a === null || b === null ? null : Math.max(a, b);
        }
        if (ready === null) break;
        const start = Math.max(clock[r]!, ready);
        const end = start + dur(op);
        clock[r] = end;
        if (op.kind === 'F') fEnd.set(key(op), end);
        else if (op.kind === 'B') bEnd.set(key(op), end);
        else if (op.kind === 'FB') { fEnd.set(key(op.f), end); bEnd.set(key(op.b), end); }
        timeline[r]!.push({ op, label: opLabel(op), start, end });
        pos[r] = idx + 1;
        remaining--;
        progressed = true;
      }
    }
    if (!progressed) {
      const stuck = s.ops.map((l, r) => (pos[r]! < l.length ? `rank ${r} at ${opLabel(l[pos[r]!]!)}` : null)).filter((x) => x !== null);
      throw new ScheduleError(`${s.name}: deadlock — ${stuck.join('; ')}`);
    }
  }

  const makespan = Math.max(...clock);
  const perRank: RankStats[] = timeline.map((ops) => {
    const busy = ops.reduce((t, o) => t + (o.end - o.start), 0);
    return { busy, idle: makespan - busy, peakActivations: peakActivations(ops, splitB), parameterCopies: stagesHosted(ops) };
  });
  return {
    schedule: s.name,
    ranks: s.ranks,
    stages: s.stages,
    makespan,
    timeline,
    perRank,
    bubble: Math.max(...perRank.map((p) => p.idle)),
    activationMicroBatches: Math.max(...perRank.map((p) => p.peakActivations)),
    parameterCopies: Math.max(...perRank.map((p) => p.parameterCopies)),
  };
}

/** Activations live from the start of a chunk's F to the end of its backward (its W when split). */
function peakActivations(ops: TimedOp[], splitB: Set<string>): number {
  const events: [number, number][] = [];
  for (const t of ops) {
    const op = t.op;
    if (op.kind === 'F') events.push([t.start, +1]);
    else if (op.kind === 'B' && !splitB.has(key(op))) events.push([t.end, -1]);
    else if (op.kind === 'W') events.push([t.end, -1]);
    else if (op.kind === 'FB') {
      events.push([t.start, +1]);
      if (!splitB.has(key(op.b))) events.push([t.end, -1]);
    }
  }
  // Releases at time t happen before acquisitions at t (a freed buffer is reused by the next op).
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0, peak = 0;
  for (const [, dlt] of events) {
    cur += dlt;
    peak = Math.max(peak, cur);
  }
  return peak;
}

function stagesHosted(ops: TimedOp[]): number {
  const s = new Set<string>();
  for (const t of ops) {
    const op = t.op;
    if (op.kind === 'FB') { s.add(`${op.f.dir}:${op.f.stage}`); s.add(`${op.b.dir}:${op.b.stage}`); }
    else s.add(`${op.dir}:${op.stage}`);
  }
  // Two directions of DualPipe hold the same model stage on different ranks; on one rank the two chunks are
  // different model stages (stage r and PP−1−r), so each distinct (dir, stage) is one parameter copy.
  return s.size;
}
