import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeSchedule, oneFOneB, dualPipe, SCHEDULES, type Schedule } from '../../src/plan/schedules.js';
import { simulate, ScheduleError } from '../../src/plan/simulator.js';
import { UsageError } from '../../src/errors.js';

// The comparison table of deepseek-ai/DualPipe README ("based on the same number of PP stages").
function formula(name: string, pp: number, d: { F: number; B: number; W: number; FB: number }): number {
  switch (name) {
    case '1f1b': return (pp - 1) * (d.F + d.B);
    case 'zb1p': return (pp - 1) * (d.F + d.B - 2 * d.W);
    default: return (pp / 2 - 1) * (d.FB + d.B - 3 * d.W);
  }
}
const table: Record<string, { params: number; act: (pp: number) => number; devices: (pp: number) => number }> = {
  '1f1b': { params: 1, act: (pp) => pp, devices: (pp) => pp },
  zb1p: { params: 1, act: (pp) => pp, devices: (pp) => pp },
  dualpipe: { params: 2, act: (pp) => pp + 1, devices: (pp) => pp },
  dualpipev: { params: 2, act: (pp) => pp + 1, devices: (pp) => pp / 2 },
};

// The closed forms are exact in the regime the DualPipe figure draws: a forward chunk as long as an input-gradient
// backward (F = B − W), W <= F, and max(F, B) <= F&B <= F + B. (ZB1P's needs only W <= F and W <= B − W.)
const durations = [
  { F: 3, B: 5, W: 2, FB: 7 },
  { F: 1, B: 2, W: 1, FB: 2.5 },
  { F: 12, B: 21, W: 9, FB: 26 },
  { F: 4, B: 4, W: 0, FB: 6 },
];

test('simulated bubble, activations, parameters and devices equal the DualPipe table over a grid', () => {
  let cases = 0;
  for (const name of SCHEDULES) {
    for (const pp of [2, 4, 6, 8, 10, 16]) {
      for (const mult of [2, 3, 4]) {
        const micro = mult * pp;
        for (const d of durations) {
          const s = makeSchedule(name, pp, micro);
          const r = simulate(s, d);
          const expect = formula(name, pp, d);
          assert.ok(Math.abs(r.bubble - expect) < 1e-9, `${name} pp=${pp} micro=${micro} ${JSON.stringify(d)}: bubble ${r.bubble} != ${expect}`);
          assert.equal(r.activationMicroBatches, table[name]!.act(pp), `${name} pp=${pp} activations`);
          assert.equal(r.parameterCopies, table[name]!.params, `${name} pp=${pp} params`);
          assert.equal(s.ranks, table[name]!.devices(pp), `${name} devices`);
          cases++;
        }
      }
    }
  }
  assert.ok(cases >= 200);
});

test('outside that regime the simulator differs from the closed form (it simulates, it does not evaluate it)', () => {
  const d = { F: 2, B: 2, W: 1, FB: 3 }; // F != B - W
  const r = simulate(dualPipe(8, 24), d);
  assert.notEqual(r.bubble, formula('dualpipe', 8, d));
  const z = simulate(makeSchedule('zb1p', 8, 24), { F: 1, B: 4, W: 2, FB: 5 }); // W > F
  assert.notEqual(z.bubble, formula('zb1p', 8, { F: 1, B: 4, W: 2, FB: 5 }));
  // ZB1P's formula holds with F != B - W as long as W <= F and W <= B - W.
  const z2 = simulate(makeSchedule('zb1p', 6, 13), { F: 4, B: 3, W: 1 });
  assert.equal(z2.bubble, 5 * (4 + 3 - 2));
});

test('odd micro-batch counts and pp for 1F1B/ZB1P; makespan of 1F1B is (m+pp-1)(F+B)', () => {
  const d = { F: 2, B: 3, W: 1 };
  for (const pp of [3, 5, 7]) for (const m of [pp, pp + 3, 3 * pp + 1]) {
    const r = simulate(oneFOneB(pp, m), d);
    assert.equal(r.makespan, (m + pp - 1) * (d.F + d.B));
    assert.equal(r.bubble, (pp - 1) * (d.F + d.B));
    const z = simulate(makeSchedule('zb1p', pp, m), d);
    assert.equal(z.bubble, (pp - 1) * (d.F + d.B - 2 * d.W));
  }
});

test('communication delays add to the bubble; overlap gain of F&B matters', () => {
  const base = simulate(dualPipe(8, 20), { F: 3, B: 5, W: 2, FB: 7 });
  const withComm = simulate(dualPipe(8, 20), { F: 3, B: 5, W: 2, FB: 7, comm: 1 });
  assert.ok(withComm.makespan > base.makespan);
  const noOverlap = simulate(dualPipe(8, 20), { F: 3, B: 5, W: 2 }); // FB = F + B
  assert.equal(noOverlap.bubble, (8 / 2 - 1) * (3 + 5 + 5 - 3 * 2));
});

test('DualPipe op lists follow the reference step structure', () => {
  const s = dualPipe(8, 20);
  // Rank 0: step 1 is (PP/2 − 1)·2 = 6 forwards of direction 0, then F0 F1 of step 2.
  const r0 = s.ops[0]!.slice(0, 8).map((o) => (o.kind === 'F' ? `F${o.dir}.${o.mb}` : o.kind));
  assert.deepEqual(r0, ['F0.0', 'F0.1', 'F0.2', 'F0.3', 'F0.4', 'F0.5', 'F0.6', 'F1.0']);
  // The last rank mirrors rank 0 with the directions swapped.
  const r7 = s.ops[7]!.slice(0, 8).map((o) => (o.kind === 'F' ? `F${o.dir}.${o.mb}` : o.kind));
  assert.deepEqual(r7, ['F1.0', 'F1.1', 'F1.2', 'F1.3', 'F1.4', 'F1.5', 'F1.6', 'F0.0']);
  // Every rank ends with W's (step 8).
  for (const list of s.ops) assert.equal(list[list.length - 1]!.kind, 'W');
  // Overlapped chunks exist and pair a forward of one direction with a backward of the other.
  const fb = s.ops[0]!.find((o) => o.kind === 'FB');
  assert.ok(fb && fb.kind === 'FB' && fb.f.dir !== fb.b.dir);
});

test('invalid schedules are rejected: deadlock, missing ops, wrong rank, bad arguments', () => {
  const s = oneFOneB(2, 2);
  // Swap rank 1's first F and B: its backward would precede its forward.
  const broken: Schedule = { ...s, ops: [s.ops[0]!, [...s.ops[1]!].reverse()] };
  assert.throws(() => simulate(broken, { F: 1, B: 1, W: 0 }), ScheduleError);
  // Rank 0 wants B of micro-batch 1 before F of micro-batch 1 has gone downstream: deadlock.
  const dl: Schedule = { ...s, ops: [[s.ops[0]![0]!, { kind: 'B', split: false, dir: 0, stage: 0, mb: 1 }, { kind: 'F', dir: 0, stage: 0, mb: 1 }, { kind: 'B', split: false, dir: 0, stage: 0, mb: 0 }], s.ops[1]!] };
  assert.throws(() => simulate(dl, { F: 1, B: 1, W: 0 }), /deadlock|before its forward/);
  const missing: Schedule = { ...s, ops: [s.ops[0]!.slice(1), s.ops[1]!] };
  assert.throws(() => simulate(missing, { F: 1, B: 1, W: 0 }), /forward chunks scheduled/);
  const wrong: Schedule = { ...s, ops: [s.ops[1]!, s.ops[0]!] };
  assert.throws(() => simulate(wrong, { F: 1, B: 1, W: 0 }), /lives on rank/);
  assert.throws(() => dualPipe(7, 20), UsageError);
  assert.throws(() => dualPipe(8, 10), /2\*pp/);
  assert.throws(() => simulate(s, { F: 1, B: 1, W: 2 }), /cannot exceed/);
});
