import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, formatDuration, formatField } from '../../src/cli/progress.js';

function fakeStream(isTTY: boolean, columns?: number) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns, write(s: string) { chunks.push(s); return true; } } };
}
function fakeClock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

test('formatDuration and formatField', () => {
  assert.equal(formatDuration(0.42), '0.4s');
  assert.equal(formatDuration(42), '42s');
  assert.equal(formatDuration(72), '1m12s');
  assert.equal(formatDuration(59.7), '1m00s');
  assert.equal(formatDuration(3600 * 2 + 180), '2h03m');
  assert.equal(formatDuration(86400 * 3 + 3600 * 4), '3d04h');
  assert.equal(formatDuration(Number.NaN), '?');
  assert.equal(formatDuration(-1), '?');
  assert.equal(formatField(1.23456), '1.235');
  assert.equal(formatField(5230), '5230');
  assert.equal(formatField(5230.7), '5231');
  assert.equal(formatField(0.00012345), '1.23e-4');
  assert.equal(formatField('warmup'), 'warmup');
});

test('Progress on a non-TTY stream: plain lines at ~10% steps, ETA from the observed rate, final line', () => {
  const { chunks, stream } = fakeStream(false);
  const clock = fakeClock();
  const p = new Progress({ total: 400, label: 'sft', stream, now: clock.now, unit: 'steps' });
  p.update(0);
  for (let i = 1; i <= 400; i++) {
    clock.advance(100); // 10 steps/s
    p.update(i, { loss: 1.23456, 'tok/s': 5230 });
  }
  p.finish();
  p.finish();
  const lines = chunks.join('').split('\n').filter((l) => l !== '');
  assert.equal(chunks.every((c) => !c.includes('\r')), true);
  // 10 prints at 10%, 20%, ..., 100%, plus nothing extra from finish() since the last state was printed.
  assert.equal(lines.length, 10, lines.join('\n'));
  assert.equal(lines[0], 'sft [=>                  ] 40/400 steps 10% loss 1.235 tok/s 5230 ETA 36s');
  assert.match(lines[2]!, /^sft \[=====>\s{14}\] 120\/400 steps 30% loss 1\.235 tok\/s 5230 ETA 28s$/);
  assert.equal(lines[9], 'sft [====================] 400/400 steps 100% loss 1.235 tok/s 5230 ETA 0.0s');
});

test('Progress on a non-TTY stream: a slow job prints every 5 s even without 10% progress; finish prints the final state', () => {
  const { chunks, stream } = fakeStream(false);
  const clock = fakeClock();
  const p = new Progress({ total: 1000, label: 'grpo', stream, now: clock.now });
  p.update(0);
  for (let i = 1; i <= 30; i++) {
    clock.advance(1000);
    p.update(i);
  }
  // 30 s, 3% done: printed at 5 s, 10 s, ... 30 s.
  assert.equal(chunks.length, 6);
  assert.match(chunks[0]!, /^grpo \[\s+\] 5\/1000 0% ETA 16m35s\n$/);
  clock.advance(500);
  p.update(31);
  p.finish();
  assert.equal(chunks.length, 7);
  assert.match(chunks[6]!, /31\/1000 3% in 31s\n$/);
});

test('Progress on a TTY: redraws with \\r, throttled to ~10/s, newline at finish', () => {
  const { chunks, stream } = fakeStream(true, 120);
  const clock = fakeClock();
  const p = new Progress({ total: 100, label: 'eval', stream, now: clock.now });
  for (let i = 1; i <= 100; i++) {
    clock.advance(10); // 100 updates in 1 s
    p.update(i, { acc: 0.5 });
  }
  p.finish();
  // ~10 draws for 1 s of updates (first update, then every 100 ms, plus the last at 100%), then finish.
  assert.ok(chunks.length >= 10 && chunks.length <= 13, String(chunks.length));
  assert.equal(chunks.slice(0, -1).every((c) => c.startsWith('\r')), true);
  assert.equal(chunks[chunks.length - 1], '\n');
  assert.match(chunks[chunks.length - 2]!, /^\reval \[=+\] 100\/100 100% acc 0\.5 in 1\.0s/);
});

test('Progress with stream null writes nothing; bad totals are rejected', () => {
  const p = new Progress({ total: 10, stream: null });
  const orig = process.stderr.write;
  let wrote = false;
  process.stderr.write = (() => { wrote = true; return true; }) as typeof process.stderr.write;
  try {
    for (let i = 0; i <= 10; i++) p.update(i, { loss: 1 });
    p.finish();
  } finally {
    process.stderr.write = orig;
  }
  assert.equal(wrote, false);
  assert.match(p.render(), /\[=+\] 10\/10 100% loss 1/);
  assert.throws(() => new Progress({ total: -1, stream: null }), /total must be a finite number >= 0/);
});
