/**
 * The generate bench's --repeat: each phase's median run (by tokens/s), every run kept for the spread, and the flag's
 * end-to-end effect on a tiny r1ts-only run (rows carry repeats and min <= tokens/s <= max).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { medianRun } from '../../bench/generate.js';
import generate from '../../bench/generate.js';

test('medianRun: the median run of each phase, separately; the lower middle one for an even count', () => {
  const run = (pt: number, ps: number, dt: number, ds: number) => ({ prefill: { tokens: pt, seconds: ps }, decode: { tokens: dt, seconds: ds } });
  // prefill rates 100, 300, 200; decode rates 50, 10, 30
  const m = medianRun([run(100, 1, 100, 2), run(300, 1, 10, 1), run(400, 2, 60, 2)]);
  assert.deepEqual(m.prefill, { tokens: 400, seconds: 2 });
  assert.deepEqual(m.decode, { tokens: 60, seconds: 2 });
  assert.deepEqual(m.runs, { prefill: [100, 300, 200], decode: [50, 10, 30] });
  const even = medianRun([run(4, 1, 4, 1), run(1, 1, 1, 1), run(3, 1, 3, 1), run(2, 1, 2, 1)]);
  assert.equal(even.decode.tokens, 2);
  assert.deepEqual(medianRun([run(7, 1, 7, 1)]).decode, { tokens: 7, seconds: 1 });
  assert.throws(() => medianRun([]), /no runs/);
});

test('bench generate --repeat 3 on T1: every row is the median of 3 runs', { timeout: 120000 }, async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: unknown) => { lines.push(String(s)); };
  try {
    await generate(['--models', 'T1', '--dtypes', 'bf16', '--no-peer', '--prompt', '8', '--new', '4', '--repeat', '3', '--json']);
  } finally {
    console.log = log;
  }
  const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r['phase']);
  assert.equal(rows.length, 4); // batch 1 and 16, prefill and decode
  for (const r of rows) {
    assert.equal(r['repeats'], 3);
    const v = r['tokens_per_s'] as number, lo = r['tokens_per_s_min'] as number, hi = r['tokens_per_s_max'] as number;
    assert.ok(lo <= v && v <= hi, `${r['batch']} ${r['phase']}: ${lo} <= ${v} <= ${hi}`);
  }
  assert.ok(rows.some((r) => r['batch'] === 16 && r['phase'] === 'decode' && typeof r['batch_speedup'] === 'number'));
  await assert.rejects(generate(['--repeat', '0']), /--repeat/);
});
