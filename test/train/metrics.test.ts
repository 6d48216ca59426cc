import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsWriter, readMetrics } from '../../src/train/metrics.js';
import { FormatError, R1Error } from '../../src/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'r1metrics-'));

test('MetricsWriter: creates parent folders, one JSON object per line, round-trips through readMetrics', () => {
  const path = join(tmp(), 'a', 'b', 'metrics.jsonl');
  const w = new MetricsWriter(path);
  w.write({ step: 1, loss: 2.5, phase: 'sft', eval: false, note: null });
  w.write({ step: 2, loss: 2.25, lr: 1e-4 });
  // Each write is on disk before close(): a crash loses at most the line being written.
  assert.equal(readFileSync(path, 'utf8').split('\n').length, 3);
  w.write({ step: 3, loss: Number.NaN, grad: Number.POSITIVE_INFINITY, g2: Number.NEGATIVE_INFINITY });
  w.close();
  w.close(); // idempotent
  assert.throws(() => w.write({ step: 4 }), R1Error);
  const text = readFileSync(path, 'utf8');
  assert.equal(text.endsWith('\n'), true);
  assert.deepEqual(JSON.parse(text.split('\n')[0]!), { step: 1, loss: 2.5, phase: 'sft', eval: false, note: null });
  const r = readMetrics(path);
  assert.equal(r.length, 3);
  assert.deepEqual(r[1], { step: 2, loss: 2.25, lr: 1e-4 });
  assert.ok(Number.isNaN(r[2]!['loss']));
  assert.equal(r[2]!['grad'], Infinity);
  assert.equal(r[2]!['g2'], -Infinity);
});

test('MetricsWriter: truncates by default, continues with append: true; rejects non-scalar values', () => {
  const path = join(tmp(), 'm.jsonl');
  const a = new MetricsWriter(path);
  a.write({ step: 1 });
  a.close();
  const b = new MetricsWriter(path, { append: true });
  b.write({ step: 2 });
  assert.throws(() => b.write({ step: 3, bad: [1, 2] as unknown as number }), /metric 'bad' must be a number, string, boolean or null/);
  b.close();
  assert.deepEqual(readMetrics(path).map((r) => r['step']), [1, 2]);
  const c = new MetricsWriter(path);
  c.close();
  assert.equal(readFileSync(path, 'utf8'), '');
  assert.deepEqual(readMetrics(path), []);
});

test('readMetrics: bad lines are FormatErrors naming file and line; blank lines skipped; truncated tail optional', () => {
  const path = join(tmp(), 'bad.jsonl');
  writeFileSync(path, '{"step":1}\n\n{"step":2}\n{"step":3,\n{"step":4}\n');
  assert.throws(() => readMetrics(path), (e: unknown) => e instanceof FormatError && e.message.includes(`${path}:4:`) && /not valid JSON/.test(e.message));
  writeFileSync(path, '{"step":1}\n[1,2]\n');
  assert.throws(() => readMetrics(path), (e: unknown) => e instanceof FormatError && e.message.includes(`${path}:2: expected a JSON object per line, got an array`));
  writeFileSync(path, '{"step":1}\n42\n');
  assert.throws(() => readMetrics(path), /:2: expected a JSON object per line, got number/);
  // A crash mid-line leaves an unterminated, unparsable last line.
  writeFileSync(path, '{"step":1}\n{"step":2}\n');
  appendFileSync(path, '{"step":3,"lo');
  assert.throws(() => readMetrics(path), /:3: not valid JSON/);
  assert.deepEqual(readMetrics(path, { allowTruncatedTail: true }).map((r) => r['step']), [1, 2]);
  // ...but a bad line in the middle is still an error with allowTruncatedTail.
  writeFileSync(path, '{"step":1}\n{"st\n{"step":2}\n');
  assert.throws(() => readMetrics(path, { allowTruncatedTail: true }), /:2: not valid JSON/);
  assert.throws(() => readMetrics(join(tmp(), 'missing.jsonl')), (e: unknown) => e instanceof FormatError && /missing\.jsonl: cannot read metrics file: no such file/.test(e.message));
});
