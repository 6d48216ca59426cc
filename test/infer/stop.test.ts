/** Stop strings: hand cases, and every random chunking of random text agrees with a brute-force whole-text reference. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StopMatcher, truncateAtStop } from '../../src/infer/stop.js';
import { UsageError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/random.js';

/** Brute force: scan end positions; the first where some stop ends wins, the longest on ties. */
function reference(text: string, stops: string[]): { text: string; matched?: string } {
  for (let e = 1; e <= text.length; e++) {
    const head = text.slice(0, e);
    const ending = stops.filter((s) => head.endsWith(s)).sort((a, b) => b.length - a.length);
    if (ending.length) return { text: text.slice(0, e - ending[0]!.length), matched: ending[0]! };
  }
  return { text };
}

function streamed(chunks: string[], stops: string[]): { text: string; matched?: string; emits: string[] } {
  const m = new StopMatcher(stops);
  const emits: string[] = [];
  let matched: string | undefined;
  for (const c of chunks) {
    const r = m.push(c);
    emits.push(r.emit);
    if (r.stopped) { matched = r.matched; break; }
  }
  if (matched === undefined) emits.push(m.flush());
  const out: { text: string; matched?: string; emits: string[] } = { text: emits.join(''), emits };
  if (matched !== undefined) out.matched = matched;
  return out;
}

test('hand cases: text before the stop, stop not included, hold-back of possible prefixes', () => {
  const m = new StopMatcher(['###', '\nUser:']);
  assert.deepEqual(m.push('Hello #'), { emit: 'Hello ', stopped: false }); // "#" might start "###"
  assert.deepEqual(m.push('# not'), { emit: '## not', stopped: false });
  assert.deepEqual(m.push(' done\nUs'), { emit: ' done', stopped: false });
  assert.equal(m.stopped, false);
  assert.deepEqual(m.push('er: hi'), { emit: '', stopped: true, matched: '\nUser:' });
  assert.equal(m.stopped, true);
  assert.equal(m.matched, '\nUser:');
  assert.deepEqual(m.push('more'), { emit: '', stopped: true, matched: '\nUser:' });
  assert.equal(m.flush(), '');

  const n = new StopMatcher(['END']);
  assert.deepEqual(n.push('abcEN'), { emit: 'abc', stopped: false });
  assert.equal(n.flush(), 'EN'); // end of generation: the tail was not a stop
  // A match in the middle of one chunk: the rest of the chunk is dropped.
  assert.deepEqual(new StopMatcher(['x']).push('abxcd'), { emit: 'ab', stopped: true, matched: 'x' });
  // Earliest completion wins over earliest start, and the longest on ties.
  assert.deepEqual(truncateAtStop('abc', ['abc', 'b']), { text: 'a', matched: 'b' });
  assert.deepEqual(truncateAtStop('abc', ['bc', 'abc']), { text: '', matched: 'abc' });
  assert.deepEqual(truncateAtStop('abc', ['z']), { text: 'abc' });
  assert.deepEqual(truncateAtStop('stop', ['stop']), { text: '', matched: 'stop' });
  // Overlapping self-prefix: "aab" in "aaab".
  assert.deepEqual(streamed(['a', 'a', 'a', 'b', 'c'], ['aab']), { text: 'a', matched: 'aab', emits: ['', '', 'a', ''] });
  // Validation.
  assert.throws(() => new StopMatcher(['ok', '']), (e: unknown) => e instanceof UsageError && /stop\[1\]/.test((e as Error).message));
  assert.throws(() => new StopMatcher([3 as unknown as string]), UsageError);
  // No stops: everything passes straight through.
  assert.deepEqual(new StopMatcher([]).push('abc'), { emit: 'abc', stopped: false });
});

test('random texts and stops: every chunking matches the whole-text reference', () => {
  const rng = new Rng(5);
  const alpha = ['a', 'b', 'c', '\n', '😀'];
  const word = (max: number): string => { let s = ''; const n = 1 + rng.int(max); for (let i = 0; i < n; i++) s += alpha[rng.int(alpha.length)]!; return s; };
  let runs = 0;
  for (let c = 0; c < 1500; c++) {
    const stops = Array.from({ length: rng.int(4) }, () => word(4));
    const text = rng.int(5) === 0 ? '' : word(25);
    const want = reference(text, stops);
    assert.deepEqual(truncateAtStop(text, stops), want, `text ${JSON.stringify(text)} stops ${JSON.stringify(stops)}`);
    const ways: string[][] = [[text], Array.from({ length: text.length }, (_, i) => text[i]!)];
    for (let w = 0; w < 3; w++) {
      const chunks: string[] = [];
      for (let i = 0; i < text.length;) { const len = rng.int(6); chunks.push(text.slice(i, i + len)); i += len; }
      ways.push(chunks);
    }
    for (const chunks of ways) {
      const got = streamed(chunks, stops);
      runs++;
      const msg = `text ${JSON.stringify(text)} stops ${JSON.stringify(stops)} chunks ${JSON.stringify(chunks)}`;
      assert.equal(got.text, want.text, msg);
      assert.equal(got.matched, want.matched, msg);
      // Nothing is emitted that is later found to be part of the stop string: the emits are a prefix of the answer at every step.
      let acc = '';
      for (const e of got.emits) { acc += e; assert.ok(want.text.startsWith(acc), msg); }
    }
  }
  assert.ok(runs > 7000);
});

test('hold-back is minimal: text that cannot start a stop string goes out immediately', () => {
  const m = new StopMatcher(['</answer>', 'STOP']);
  assert.deepEqual(m.push('x < y'), { emit: 'x < y', stopped: false });
  assert.deepEqual(m.push(' </ans'), { emit: ' ', stopped: false });
  assert.deepEqual(m.push('wer-ish S'), { emit: '</answer-ish ', stopped: false });
  assert.deepEqual(m.push('TO'), { emit: '', stopped: false });
  assert.deepEqual(m.push('RY'), { emit: 'STORY', stopped: false });
  assert.equal(m.flush(), '');
});
