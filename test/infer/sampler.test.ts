/** The sampler: greedy, temperature, top-k/top-p/min-p, penalties, seeding and validation, checked by hand and against a naive full-sort reference. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, greedyRows, validateSampling, R1_DEFAULTS, type SamplingParams } from '../../src/infer/sampler.js';
import { UsageError, R1Error } from '../../src/errors.js';
import { Rng } from '../../src/tensor/random.js';

const f32 = (a: number[]): Float32Array => Float32Array.from(a);
const probs = (logits: number[], T = 1): number[] => {
  const m = Math.max(...logits.map((v) => v / T));
  const e = logits.map((v) => Math.exp(v / T - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
};
/** Logits whose softmax (T = 1) is exactly `p` (up to float32 rounding). */
const fromProbs = (p: number[]): Float32Array => f32(p.map((v) => (v > 0 ? Math.log(v) : -Infinity)));
const keptIds = (s: Sampler, logits: Float32Array, history: number[] = [], pl = 0): number[] =>
  [...s.distribution(logits, history, pl).ids].sort((a, b) => a - b);

/** Naive reference: every step over the full sorted vocabulary, straight from the definitions. */
function reference(logits: Float32Array, p: SamplingParams, history: number[], pl: number): Map<number, number> {
  const V = logits.length;
  const x = Array.from(logits, Number);
  const rp = p.repetitionPenalty ?? 1;
  for (const t of new Set(history)) x[t] = x[t]! > 0 ? x[t]! / rp : x[t]! * rp;
  const cnt = new Map<number, number>();
  for (const t of history.slice(pl)) cnt.set(t, (cnt.get(t) ?? 0) + 1);
  for (const [t, c] of cnt) x[t] = x[t]! - (p.presencePenalty ?? 0) - (p.frequencyPenalty ?? 0) * c;
  const T = p.temperature ?? 1;
  let order = x.map((v, i) => ({ i, v: v / T })).filter((c) => c.v !== -Infinity).sort((a, b) => b.v - a.v || a.i - b.i);
  const k = p.topK ?? 0;
  if (k > 0) order = order.slice(0, k);
  const norm = (o: typeof order): number[] => { const m = o[0]!.v; const e = o.map((c) => Math.exp(c.v - m)); const z = e.reduce((a, b) => a + b, 0); return e.map((v) => v / z); };
  const tp = p.topP ?? 1;
  if (tp < 1) {
    const pr = norm(order);
    let acc = 0;
    let n = 0;
    while (n < order.length) { acc += pr[n]!; n++; if (acc >= tp * (1 - 1e-9)) break; }
    order = order.slice(0, n);
  }
  const mp = p.minP ?? 0;
  if (mp > 0) { const pr = norm(order); order = order.filter((_, j) => pr[j]! >= mp * pr[0]! * (1 - 1e-9)); }
  const pr = norm(order);
  assert.ok(V > 0);
  return new Map(order.map((c, j) => [c.i, Math.log(pr[j]!)]));
}

test('greedy: temperature 0 picks the argmax, ties go to the lowest id, no random draw', () => {
  const s = new Sampler({ temperature: 0, seed: 1 });
  const before = s.getState();
  assert.equal(s.sample(f32([0.1, 2, -1, 2, 1.5]), []).token, 1);
  assert.equal(s.sample(f32([5, 1, 5]), []).token, 0);
  assert.equal(s.sample(f32([-Infinity, -3, -2.5]), []).token, 2);
  assert.deepEqual(s.getState(), before);
  // Logprob: log-softmax of the (penalised) logits at temperature 1.
  const l = [1, 3, 0.5];
  assert.ok(Math.abs(s.sample(f32(l), []).logprob - Math.log(probs(l)[1]!)) < 1e-6);
  // Greedy ignores top-k / top-p / min-p.
  assert.equal(new Sampler({ temperature: 0, topK: 1, topP: 0.1, minP: 0.9 }).sample(f32([0, 0, 9, 1]), []).token, 2);
});

test('temperature -> 0 concentrates on the argmax; logprob -> 0', () => {
  const logits = f32([1.0, 1.1, 0.9, -2]);
  for (const T of [0.01, 0.001]) {
    const s = new Sampler({ temperature: T, seed: 3 });
    for (let i = 0; i < 200; i++) {
      const r = s.sample(logits, []);
      assert.equal(r.token, 1);
      assert.ok(r.logprob <= 0 && r.logprob > -1e-3, `T=${T} logprob ${r.logprob}`);
    }
  }
  // And a high temperature flattens: all four appear.
  const hot = new Sampler({ temperature: 50, seed: 4 });
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(hot.sample(logits, []).token);
  assert.equal(seen.size, 4);
});

function chiSquare(counts: number[], p: number[], n: number): number {
  let c = 0;
  for (let i = 0; i < p.length; i++) { const e = p[i]! * n; if (e > 0) c += (counts[i]! - e) ** 2 / e; else assert.equal(counts[i], 0); }
  return c;
}

test('empirical frequencies over 20k draws match softmax(logits / T)', () => {
  const l = [2.0, 1.0, 0.5, 0.0, -1.0, 1.5];
  for (const [n, T] of [1, 0.6, 2].entries()) {
    const s = new Sampler({ temperature: T, seed: 42 + n });
    const N = 20000;
    const cnt = new Array(l.length).fill(0) as number[];
    const p = probs(l, T);
    for (let i = 0; i < N; i++) {
      const r = s.sample(f32(l), []);
      cnt[r.token]++;
      assert.ok(Math.abs(r.logprob - Math.log(p[r.token]!)) < 1e-5);
    }
    // df = 5: P(chi2 > 20.5) = 0.001.
    const c = chiSquare(cnt, p, N);
    assert.ok(c < 20.5, `T=${T}: chi-square ${c.toFixed(2)} counts ${cnt}`);
  }
});

test('empirical frequencies under top-k + top-p follow the renormalised kept set', () => {
  // probs .4 .25 .15 .1 .06 .04; top-k 5 → renormalised over .96; top-p 0.8 → .4/.96=.4167, +.2604=.677, +.15625=.833 ≥ .8: keep 3.
  const p = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04];
  const s = new Sampler({ topK: 5, topP: 0.8, seed: 9 });
  const N = 20000;
  const cnt = new Array(p.length).fill(0) as number[];
  for (let i = 0; i < N; i++) cnt[s.sample(fromProbs(p), []).token]++;
  const q = [0.4, 0.25, 0.15, 0, 0, 0].map((v) => v / 0.8);
  const c = chiSquare(cnt, q, N);
  assert.ok(c < 13.8, `chi-square ${c.toFixed(2)} counts ${cnt}`); // df = 2, p = 0.001
});

test('top-k keeps exactly the k largest (ties to lower ids)', () => {
  const l = f32([0.5, 3, 1, 3, -1, 2, 0.9]);
  assert.deepEqual(keptIds(new Sampler({ topK: 1 }), l), [1]);
  assert.deepEqual(keptIds(new Sampler({ topK: 2 }), l), [1, 3]);
  assert.deepEqual(keptIds(new Sampler({ topK: 3 }), l), [1, 3, 5]);
  assert.deepEqual(keptIds(new Sampler({ topK: 4 }), l), [1, 2, 3, 5]);
  assert.deepEqual(keptIds(new Sampler({ topK: 100 }), l), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(keptIds(new Sampler({ topK: 0 }), l), [0, 1, 2, 3, 4, 5, 6]);
  // Masked (-Infinity) tokens are never kept, whatever the filters.
  const masked = f32([-Infinity, 1, -Infinity, 0]);
  for (const p of [{}, { topK: 3 }, { topP: 1 }, { topP: 0.999999 }, { minP: 0 }]) assert.deepEqual(keptIds(new Sampler(p), masked), [1, 3], JSON.stringify(p));
  const tie = f32([1, 1, 1, 1]);
  assert.deepEqual(keptIds(new Sampler({ topK: 2 }), tie), [0, 1]);
  // Logprobs renormalise over the kept set.
  const d = new Sampler({ topK: 2 }).distribution(f32([Math.log(0.5), Math.log(0.3), Math.log(0.2)]));
  assert.deepEqual([...d.ids], [0, 1]);
  assert.ok(Math.abs(Math.exp(d.logprobs[0]!) - 0.625) < 1e-6 && Math.abs(Math.exp(d.logprobs[1]!) - 0.375) < 1e-6);
});

test('top-p keeps the smallest prefix reaching p (at least one token)', () => {
  const p = [0.1, 0.5, 0.05, 0.3, 0.05]; // sorted: 1 (.5), 3 (.3), 0 (.1), 2 (.05), 4 (.05)
  const l = fromProbs(p);
  assert.deepEqual(keptIds(new Sampler({ topP: 0.3 }), l), [1]);
  assert.deepEqual(keptIds(new Sampler({ topP: 0.5 }), l), [1]); // exact boundary: .5 reaches .5
  assert.deepEqual(keptIds(new Sampler({ topP: 0.51 }), l), [1, 3]);
  assert.deepEqual(keptIds(new Sampler({ topP: 0.8 }), l), [1, 3]); // .5 + .3 = .8 reaches .8
  assert.deepEqual(keptIds(new Sampler({ topP: 0.85 }), l), [0, 1, 3]);
  assert.deepEqual(keptIds(new Sampler({ topP: 0.92 }), l), [0, 1, 2, 3]); // equal .05s: lower id first
  assert.deepEqual(keptIds(new Sampler({ topP: 1 }), l), [0, 1, 2, 3, 4]);
  assert.deepEqual(keptIds(new Sampler({ topP: 1e-9 }), l), [1]);
  // The temperature changes the distribution top-p sees: T = 0.5 squares the ratios → .5²/(Σp²)=.25/.3575=.699.
  assert.deepEqual(keptIds(new Sampler({ topP: 0.69, temperature: 0.5 }), l), [1]);
  assert.deepEqual(keptIds(new Sampler({ topP: 0.71, temperature: 0.5 }), l), [1, 3]);
});

test('min-p drops tokens below minP * max probability; order top-k → top-p → min-p', () => {
  const p = [0.1, 0.5, 0.05, 0.3, 0.05];
  const l = fromProbs(p);
  assert.deepEqual(keptIds(new Sampler({ minP: 0.5 }), l), [1, 3]); // floor .25
  assert.deepEqual(keptIds(new Sampler({ minP: 0.19 }), l), [0, 1, 3]); // floor .095
  assert.deepEqual(keptIds(new Sampler({ minP: 0.21 }), l), [1, 3]); // floor .105
  // Exact boundary (integer logits are exact in float32): prob == minP * max is kept, as in HF.
  assert.deepEqual(keptIds(new Sampler({ minP: Math.exp(-1) }), f32([0, -1, -2, -1.001])), [0, 1]);
  assert.deepEqual(keptIds(new Sampler({ minP: 0.09 }), l), [0, 1, 2, 3, 4]); // floor .045
  assert.deepEqual(keptIds(new Sampler({ minP: 1 }), l), [1]);
  // min-p with top-p: top-p .95 keeps 4 tokens (1,3,0,2), min-p .15 (floor .075) leaves 1,3,0.
  assert.deepEqual(keptIds(new Sampler({ topP: 0.95, minP: 0.15 }), l), [0, 1, 3]);
  // top-p computed after top-k renormalisation: top-k 2 → (.625, .375); top-p .6 keeps only id 1.
  assert.deepEqual(keptIds(new Sampler({ topK: 2, topP: 0.6 }), l), [1]);
  assert.deepEqual(keptIds(new Sampler({ topK: 2, topP: 0.63 }), l), [1, 3]);
  // Sampling never picks an excluded token.
  const s = new Sampler({ minP: 0.5, seed: 5 });
  for (let i = 0; i < 2000; i++) assert.ok([1, 3].includes(s.sample(l, []).token));
});

test('penalties: repetition (HF) over prompt + generated, presence/frequency (OpenAI) over generated only', () => {
  const l = [2, -1, 0.5, 3, 0];
  const d = (params: SamplingParams, history: number[], pl: number): number[] => {
    const dist = new Sampler(params).distribution(f32(l), history, pl);
    const out = new Array(l.length).fill(-Infinity) as number[];
    dist.ids.forEach((id, j) => { out[id] = dist.logprobs[j]!; });
    return out;
  };
  const expect = (got: number[], logits: number[]): void => {
    const p = probs(logits);
    got.forEach((g, i) => assert.ok(Math.abs(g - Math.log(p[i]!)) < 1e-6, `token ${i}: ${g} vs ${Math.log(p[i]!)}`));
  };
  // history: prompt [0, 1], generated [3, 3, 1]. Repetition 2: 0: 2/2 = 1; 1: -1*2 = -2; 3: 3/2 = 1.5 (once, despite repeats).
  expect(d({ repetitionPenalty: 2 }, [0, 1, 3, 3, 1], 2), [1, -2, 0.5, 1.5, 0]);
  // Presence .5 + frequency .25 over generated only: 3 (count 2) -= .5 + .5; 1 (count 1) -= .5 + .25; 0 (prompt only) untouched.
  expect(d({ presencePenalty: 0.5, frequencyPenalty: 0.25 }, [0, 1, 3, 3, 1], 2), [2, -1.75, 0.5, 2, 0]);
  // promptLength 0: every history token counts as generated.
  expect(d({ presencePenalty: 0.5, frequencyPenalty: 0.25 }, [0, 1, 3, 3, 1], 0), [1.25, -2, 0.5, 2, 0]);
  // All three: repetition first, then presence/frequency.  0: 2/2=1; 1: -2 - .75 = -2.75; 3: 1.5 - 1 = .5.
  expect(d({ repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25 }, [0, 1, 3, 3, 1], 2), [1, -2.75, 0.5, 0.5, 0]);
  // Negative penalties encourage; repetition < 1 encourages too.
  expect(d({ repetitionPenalty: 0.5, frequencyPenalty: -1 }, [4, 2], 1), [2, -1, 0.5 / 0.5 + 1, 3, 0]);
  // Greedy after penalties: token 3 is the argmax until penalised.
  assert.equal(new Sampler({ temperature: 0 }).sample(f32(l), [3], 0).token, 3);
  assert.equal(new Sampler({ temperature: 0, frequencyPenalty: 2 }).sample(f32(l), [3], 0).token, 0);
  assert.equal(new Sampler({ temperature: 0, frequencyPenalty: 2 }).sample(f32(l), [3], 1).token, 3); // 3 is prompt
  // The shared scratch is left clean: a later sampler without history sees the raw logits.
  expect(d({ repetitionPenalty: 3, presencePenalty: 1 }, [], 0), l);
});

test('penalties applied before temperature: a penalised token at low temperature', () => {
  const s = new Sampler({ temperature: 0.5, repetitionPenalty: 1.5 });
  const dist = s.distribution(f32([3, 2.5]), [0], 1);
  const p = probs([2, 2.5], 0.5);
  assert.equal(dist.ids[0], 1);
  assert.ok(Math.abs(Math.exp(dist.logprobs[0]!) - p[1]!) < 1e-6);
});

test('same seed, same tokens; state save/restore resumes the stream', () => {
  const rng = new Rng(7);
  const steps = Array.from({ length: 50 }, () => f32(Array.from({ length: 100 }, () => rng.normal() * 2)));
  const run = (seed: number): number[] => { const s = new Sampler({ ...R1_DEFAULTS, seed }); return steps.map((l) => s.sample(l, []).token); };
  assert.deepEqual(run(123), run(123));
  assert.notDeepEqual(run(123), run(124));
  const s = new Sampler({ temperature: 1, seed: 11 });
  for (let i = 0; i < 10; i++) s.sample(steps[i]!, []);
  const st = s.getState();
  const a = steps.slice(10).map((l) => s.sample(l, []).token);
  const t = new Sampler({ temperature: 1, seed: 999 });
  t.setState(st);
  assert.deepEqual(steps.slice(10).map((l) => t.sample(l, []).token), a);
  assert.deepEqual(R1_DEFAULTS, { temperature: 0.6, topP: 0.95 });
});

test('random small cases (ties, masked tokens, every filter combination) match the naive reference', () => {
  const rng = new Rng(2024);
  for (let c = 0; c < 400; c++) {
    const V = 1 + rng.int(30);
    const logits = f32(Array.from({ length: V }, () => (rng.next() < 0.1 ? -Infinity : rng.int(7) - 3 + (rng.next() < 0.5 ? 0 : rng.next()))));
    if (!logits.some((v) => v > -Infinity)) logits[rng.int(V)] = 0;
    const p: SamplingParams = { temperature: 0.2 + 2 * rng.next() };
    if (rng.next() < 0.5) p.topK = rng.int(V + 3);
    if (rng.next() < 0.5) p.topP = 0.05 + 0.95 * rng.next();
    if (rng.next() < 0.4) p.minP = rng.next() * 0.9;
    if (rng.next() < 0.3) p.repetitionPenalty = 0.5 + rng.next() * 1.5;
    if (rng.next() < 0.3) p.presencePenalty = rng.next() * 4 - 2;
    if (rng.next() < 0.3) p.frequencyPenalty = rng.next() * 4 - 2;
    const history = Array.from({ length: rng.int(8) }, () => rng.int(V));
    const pl = rng.int(history.length + 1);
    const ref = reference(logits, p, history, pl);
    const s = new Sampler({ ...p, seed: c });
    const d = s.distribution(logits, history, pl);
    const msg = `case ${c}: ${JSON.stringify(p)} logits ${[...logits]}`;
    assert.deepEqual([...d.ids].sort((a, b) => a - b), [...ref.keys()].sort((a, b) => a - b), msg);
    d.ids.forEach((id, j) => assert.ok(Math.abs(ref.get(id)! - d.logprobs[j]!) < 1e-6, msg));
    for (let j = 1; j < d.ids.length; j++) assert.ok(d.logprobs[j - 1]! >= d.logprobs[j]!, 'most likely first');
    const r = s.sample(logits, history, pl);
    assert.ok(ref.has(r.token) && Math.abs(ref.get(r.token)! - r.logprob) < 1e-6, msg);
  }
});

test('large vocabulary: matches the naive full-sort reference, and is fast', () => {
  const V = 151936;
  const rng = new Rng(1);
  const logits = new Float32Array(V);
  for (let i = 0; i < V; i++) logits[i] = rng.normal() * 3;
  logits[77] = 20; // a peaked head plus a long tail
  logits[5000] = 19;
  const history = Array.from({ length: 300 }, () => rng.int(V));
  const cases: SamplingParams[] = [
    { temperature: 0.6, topP: 0.95 },
    { temperature: 1, topK: 50 },
    { temperature: 1.3, topK: 1000, topP: 0.9, minP: 0.001 },
    { temperature: 2, topP: 0.5 },
    { temperature: 0.8, minP: 0.05, repetitionPenalty: 1.3, presencePenalty: 0.4, frequencyPenalty: 0.2 },
    { temperature: 1, topP: 0.99, frequencyPenalty: 1, repetitionPenalty: 1.1 },
  ];
  // A flat distribution too: the nucleus then holds most of the vocabulary.
  const flat = new Float32Array(V);
  for (let i = 0; i < V; i++) flat[i] = rng.normal() * 0.2;
  const all: Array<[SamplingParams, Float32Array]> = [
    ...cases.map((p): [SamplingParams, Float32Array] => [p, logits]),
    [{ temperature: 0.6, topP: 0.95 }, flat],
    [{ temperature: 1, topP: 0.3, minP: 0.8 }, flat],
  ];
  for (const [p, logits] of all) {
    const ref = reference(logits, p, history, 100);
    const s = new Sampler({ ...p, seed: 1 });
    const d = s.distribution(logits, history, 100);
    assert.equal(d.ids.length, ref.size, `${JSON.stringify(p)}: kept ${d.ids.length} vs ${ref.size}`);
    d.ids.forEach((id, j) => {
      assert.ok(ref.has(id), `${JSON.stringify(p)}: token ${id} not in the reference set`);
      assert.ok(Math.abs(ref.get(id)! - d.logprobs[j]!) < 1e-6);
    });
    const r = s.sample(logits, history, 100);
    assert.ok(Math.abs(ref.get(r.token)! - r.logprob) < 1e-6);
  }
  const s = new Sampler({ ...R1_DEFAULTS, topK: 40, seed: 2 });
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) s.sample(logits, history, 100);
  const ms = (performance.now() - t0) / 20;
  assert.ok(ms < 100, `sample() took ${ms.toFixed(1)} ms per call at V = ${V}`);
});

test('validation names the field', () => {
  const bad: Array<[SamplingParams, RegExp]> = [
    [{ temperature: -0.1 }, /req 3: sampling\.temperature must be >= 0/],
    [{ temperature: NaN }, /sampling\.temperature must be a finite number/],
    [{ topP: 0 }, /sampling\.topP must be in \(0, 1\]/],
    [{ topP: 1.01 }, /sampling\.topP/],
    [{ topK: -1 }, /sampling\.topK must be an integer >= 0/],
    [{ topK: 2.5 }, /sampling\.topK/],
    [{ minP: 1.5 }, /sampling\.minP must be in \[0, 1\]/],
    [{ repetitionPenalty: 0 }, /sampling\.repetitionPenalty must be > 0/],
    [{ presencePenalty: 2.5 }, /sampling\.presencePenalty must be in \[-2, 2\]/],
    [{ frequencyPenalty: -3 }, /sampling\.frequencyPenalty/],
    [{ seed: 1.5 }, /sampling\.seed must be a safe integer/],
    [{ temperature: '1' as unknown as number }, /sampling\.temperature must be a finite number/],
  ];
  for (const [p, re] of bad) {
    assert.throws(() => validateSampling(p, 'req 3'), (e: unknown) => e instanceof UsageError && re.test((e as Error).message), JSON.stringify(p));
    assert.throws(() => new Sampler(p), UsageError);
  }
  validateSampling({}, 'x');
  validateSampling({ ...R1_DEFAULTS, topK: 0, minP: 0, temperature: 0, seed: -5 }, 'x');
  // Bad inputs to sample().
  const s = new Sampler({ repetitionPenalty: 1.2 });
  assert.throws(() => s.sample(f32([1, 2]), [0, 5]), /history\[1\] = 5 is outside the vocabulary \[0, 2\)/);
  assert.throws(() => s.sample(f32([1, 2]), [0], 2), /promptLength/);
  assert.throws(() => s.sample(f32([1, NaN]), []), R1Error);
  assert.throws(() => s.sample(f32([-Infinity, -Infinity]), []), /every logit is -Infinity/);
  assert.throws(() => s.sample(new Float32Array(0), []), /logits are empty/);
  // A failed call leaves the scratch clean.
  const d = new Sampler({ repetitionPenalty: 2 }).distribution(f32([Math.log(0.5), Math.log(0.5)]), [], 0);
  assert.ok(Math.abs(Math.exp(d.logprobs[0]!) - 0.5) < 1e-6);
});

test('greedy logprob over a real-sized vocabulary (native log-softmax) equals the f64 log-softmax', () => {
  const V = 151936;
  const rng = new Rng(11);
  const logits = new Float32Array(V);
  for (let i = 0; i < V; i++) logits[i] = rng.normal() * 3;
  logits[4242] = 25;
  const s = new Sampler({ temperature: 0 });
  const d = s.distribution(logits);
  assert.equal(d.ids[0], 4242);
  let z = 0;
  for (let i = 0; i < V; i++) z += Math.exp(logits[i]! - 25);
  assert.ok(Math.abs(d.logprobs[0]! - -Math.log(z)) < 1e-5, `${d.logprobs[0]} vs ${-Math.log(z)}`);
});

test('greedy on a large vocabulary: the one-pass path gives the general path\'s token and logprob; bad logits still rejected', () => {
  const V = 20000;
  const logits = new Float32Array(V);
  let s = 12345;
  for (let i = 0; i < V; i++) { s = (s * 1103515245 + 12345) >>> 0; logits[i] = (s / 2 ** 32) * 20 - 10; }
  logits[777] = 15; logits[778] = 15; // a tie: the lower id wins
  const g = new Sampler({ temperature: 0 });
  const fast = g.sample(logits);
  const general = g.distribution(logits); // always the general path
  assert.equal(fast.token, 777);
  assert.equal(general.ids[0], 777);
  assert.ok(Math.abs(fast.logprob - general.logprobs[0]!) < 1e-5, `${fast.logprob} vs ${general.logprobs[0]}`);
  // f64 reference of the log-softmax
  let m = -Infinity; for (const v of logits) m = Math.max(m, v);
  let z = 0; for (const v of logits) z += Math.exp(v - m);
  assert.ok(Math.abs(fast.logprob - (15 - m - Math.log(z))) < 1e-5);
  const bad = logits.slice(); bad[5] = NaN;
  assert.throws(() => g.sample(bad), /logit 5 is NaN/);
  const inf = logits.slice(); inf[9] = Infinity;
  assert.throws(() => g.sample(inf), /logit 9 is Infinity/);
  assert.throws(() => g.sample(new Float32Array(V).fill(-Infinity)), /every logit is -Infinity/);
});

test('greedyRows: picks for many rows at once equal each row\'s own greedy sample; bad rows still rejected by sample', () => {
  const V = 20000, rows = 5;
  const block = new Float32Array(rows * V);
  const rng = new Rng(3);
  for (let i = 0; i < block.length; i++) block[i] = rng.normal() * 4;
  block[2 * V + 10] = 30; block[2 * V + 11] = 30; // a tie in row 2: the lower id
  block[3 * V + 7] = NaN; // row 3 is bad
  const picks = greedyRows(block, rows, V);
  assert.ok(picks, 'the native addon is built');
  assert.equal(picks.length, rows);
  assert.equal(picks[2]!.token, 10);
  const g = new Sampler({ temperature: 0 });
  for (let r = 0; r < rows; r++) {
    const row = block.subarray(r * V, (r + 1) * V);
    if (r === 3) {
      assert.throws(() => g.sample(row, [], 0, picks[r]), /logit 7 is NaN/);
      continue;
    }
    assert.deepEqual(g.sample(row, [], 0, picks[r]), g.sample(row));
    const general = g.distribution(row);
    assert.equal(picks[r]!.token, general.ids[0]);
  }
  assert.equal(greedyRows(block.subarray(0, V * 2), rows, V), null, 'a block of the wrong size');
  assert.equal(greedyRows(new Float32Array(10), 1, 10), null, 'below the native vocabulary size');
});
