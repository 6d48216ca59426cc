import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/tensor/random.js';
import { FormatError, UsageError } from '../../src/errors.js';
import { parseFinalAnswer, parseInteger, type Problem, type Task } from '../../src/tasks/task.js';
import {
  arithmetic, makeArithmeticTask, additionSteps, subtractionSteps, multiplicationSteps,
} from '../../src/tasks/arithmetic.js';
import {
  countdown, parseExpr, evalExpr, formatExpr, solveCountdown, checkCountdown, countdownSteps, type CountdownData, type Expr,
} from '../../src/tasks/countdown.js';
import { linear, linearSteps, solveLinear, equationText, type LinearData } from '../../src/tasks/linear.js';
import { getTask, taskNames, TASKS } from '../../src/tasks/index.js';

// ------------------------------------------------------------------ parser

test('parseFinalAnswer: answer tags, boxed, last one wins, whitespace, missing', () => {
  assert.equal(parseFinalAnswer('<answer>42</answer>'), '42');
  assert.equal(parseFinalAnswer('<answer>  42 \n</answer>'), '42');
  assert.equal(parseFinalAnswer('<ANSWER>7</ANSWER>'), '7');
  assert.equal(parseFinalAnswer('so \\boxed{17}.'), '17');
  assert.equal(parseFinalAnswer('\\boxed {  17 }'), '17');
  // nested braces
  assert.equal(parseFinalAnswer('\\boxed{\\frac{1}{2}}'), '\\frac{1}{2}');
  assert.equal(parseFinalAnswer('x \\boxed{{a}{b{c}}} y'), '{a}{b{c}}');
  // last one wins, across both kinds
  assert.equal(parseFinalAnswer('<answer>1</answer> then <answer>2</answer>'), '2');
  assert.equal(parseFinalAnswer('\\boxed{1} <answer>2</answer>'), '2');
  assert.equal(parseFinalAnswer('<answer>2</answer> oh wait \\boxed{3}'), '3');
  assert.equal(parseFinalAnswer('<think>maybe \\boxed{9}</think><answer>8</answer>'), '8');
  // a box inside the answer tag starts later, so it wins: the content of the box
  assert.equal(parseFinalAnswer('<answer>The answer is \\boxed{5}.</answer>'), '5');
  // surrounding math delimiters
  assert.equal(parseFinalAnswer('<answer>$405$</answer>'), '405');
  assert.equal(parseFinalAnswer('<answer>\\(12\\)</answer>'), '12');
  // missing or malformed
  assert.equal(parseFinalAnswer(''), null);
  assert.equal(parseFinalAnswer('the answer is 42'), null);
  assert.equal(parseFinalAnswer('<answer>42'), null);
  assert.equal(parseFinalAnswer('\\boxed{42'), null);
  assert.equal(parseFinalAnswer('\\boxed{4{2}'), null);
  // an unclosed box does not hide an earlier good answer
  assert.equal(parseFinalAnswer('<answer>5</answer> \\boxed{6'), '5');
  assert.equal(parseFinalAnswer('<answer></answer>'), '');
  // non-greedy tags: two answers are two answers, not one
  assert.equal(parseFinalAnswer('<answer>1</answer><answer>22</answer>'), '22');
});

test('parseInteger: signs, grouping, whitespace, junk', () => {
  assert.equal(parseInteger('405'), 405);
  assert.equal(parseInteger(' - 289 '), -289);
  assert.equal(parseInteger('\u2212289'), -289);
  assert.equal(parseInteger('+7'), 7);
  assert.equal(parseInteger('1,234,567'), 1234567);
  assert.equal(parseInteger('-0'), 0);
  assert.equal(parseInteger('1,23'), null);
  assert.equal(parseInteger('12.0'), null);
  assert.equal(parseInteger('1e3'), null);
  assert.equal(parseInteger(''), null);
  assert.equal(parseInteger('--3'), null);
  assert.equal(parseInteger('99999999999999999999'), null);
});

// ------------------------------------------------------------------ shared checks for every task

function checkSolverAndVerifier(task: Task, perDifficulty: number, seed: number): void {
  for (const d of task.difficulties) {
    const rng = new Rng(seed + d);
    for (let i = 0; i < perDifficulty; i++) {
      const p = task.generate(rng, d);
      assert.equal(p.task, task.name);
      assert.equal(p.difficulty, d);
      const sol = task.solve(p);
      assert.match(sol, /^<think>\n[\s\S]+\n<\/think>\n<answer>[^<]+<\/answer>$/);
      const v = task.verify(p, sol);
      assert.ok(v.correct, `${task.name} d${d} ${p.id}: solver rejected (${v.reason}):\n${p.prompt}\n${sol}`);
      assert.equal(v.parsed, p.answer);
      // the problem survives JSON (problems go to JSONL)
      const back = JSON.parse(JSON.stringify(p)) as Problem;
      assert.ok(task.verify(back, sol).correct);
    }
  }
}

function checkDeterminismAndSplits(task: Task, n: number): void {
  const a = task.sample('train', 50, { seed: 7 });
  const b = task.sample('train', 50, { seed: 7 });
  assert.deepEqual(a, b, 'same seed, same problems');
  const c = task.sample('train', 50, { seed: 8 });
  assert.notDeepEqual(a, c, 'another seed, other problems');
  const g1 = task.generate(new Rng(3), task.difficulties[0]!);
  const g2 = task.generate(new Rng(3), task.difficulties[0]!);
  assert.deepEqual(g1, g2);
  // Disjoint splits over thousands of samples, drawn with different seeds and all difficulties.
  const train = task.sample('train', n, { seed: 1 });
  const test = task.sample('test', n, { seed: 2 });
  const canon = (p: Problem): string => `${p.difficulty}|${task.splitOf(p)}`;
  const trainIds = new Set(train.map((p) => p.id));
  for (const p of test) {
    assert.ok(!trainIds.has(p.id), `${p.id} is in both splits`);
    assert.equal(task.splitOf(p), 'test', canon(p));
  }
  for (const p of train) assert.equal(task.splitOf(p), 'train');
  assert.equal(test.length, n);
  // every difficulty shows up when none is asked for
  for (const d of task.difficulties) assert.ok(train.some((p) => p.difficulty === d), `difficulty ${d} missing`);
  // one difficulty when asked
  const only = task.sample('test', 30, { seed: 5, difficulty: task.difficulties.at(-1)! });
  assert.ok(only.every((p) => p.difficulty === task.difficulties.at(-1)));
  assert.throws(() => task.sample('train', 3, { seed: 0, difficulty: 99 }), UsageError);
  assert.throws(() => task.generate(new Rng(0), 99), UsageError);
}

// ------------------------------------------------------------------ arithmetic

test('arithmetic: traces follow the school procedures', () => {
  assert.deepEqual(additionSteps(347, 58), ['7+8=15 c1 5', '4+5+1=10 c1 05', '3+0+1=4 405']);
  assert.deepEqual(additionSteps(95, 17), ['5+7=12 c1 2', '9+1+1=11 112']);
  assert.deepEqual(additionSteps(3, 4), ['3+4=7']);
  assert.deepEqual(additionSteps(8, 5), ['8+5=13']);
  assert.deepEqual(subtractionSteps(347, 58), ['17-8=9 b1 9', '14-5-1=8 b1 89', '3-0-1=2 289']);
  assert.deepEqual(subtractionSteps(58, 347), ['-(347-58)', '17-8=9 b1 9', '14-5-1=8 b1 89', '3-0-1=2 289', '=-289']);
  assert.deepEqual(subtractionSteps(100, 99), ['10-9=1 b1 1', '10-9-1=0 b1 01', '1-0-1=0 001', '=1']);
  assert.deepEqual(subtractionSteps(5, 5), ['5-5=0']);
  assert.deepEqual(subtractionSteps(3, 7), ['-(7-3)', '7-3=4', '=-4']);
  assert.deepEqual(multiplicationSteps(347, 58), ['347*8=2776', '347*50=17350', '2776+17350=20126']);
  assert.deepEqual(multiplicationSteps(7, 58), ['58*7=406']);
  assert.deepEqual(multiplicationSteps(347, 0), ['347*0=0']);
  assert.deepEqual(multiplicationSteps(123, 405), ['123*5=615', '123*400=49200', '615+49200=49815']);
});

test('arithmetic: every step line is true arithmetic (checked by re-evaluation)', () => {
  const rng = new Rng(11);
  for (let i = 0; i < 2000; i++) {
    const p = arithmetic.generate(rng, 1 + (i % 4));
    const think = /<think>\n([\s\S]*)\n<\/think>/.exec(arithmetic.solve(p))![1]!;
    for (const line of think.split('\n')) {
      const m = /^(\d+)([+*-])(\d+)((?:[+-]1)?)=(\d+)/.exec(line);
      if (!m) continue;
      const [x, y, extra, r] = [Number(m[1]), Number(m[3]), Number(m[4] || 0), Number(m[5])];
      const v = m[2] === '+' ? x + y + extra : m[2] === '-' ? x - y + extra : x * y;
      assert.equal(v, r, `${p.prompt}: bad step ${line}`);
    }
  }
});

test('arithmetic: solve verifies for thousands of problems per difficulty', () => {
  checkSolverAndVerifier(arithmetic, 1500, 100);
});

test('arithmetic: traces are compact for 2-3 digit problems', () => {
  const rng = new Rng(4);
  let longest = 0;
  for (const d of [1, 2, 3]) {
    for (let i = 0; i < 2000; i++) {
      const p = arithmetic.generate(rng, d);
      longest = Math.max(longest, p.prompt.length + arithmetic.solve(p).length);
    }
  }
  assert.ok(longest <= 200, `longest prompt+solution ${longest} chars`);
  const worst = arithmetic.solve({ ...arithmetic.generate(new Rng(0), 3), data: { op: 'mul', a: 999, b: 999 } });
  assert.ok(worst.length < 180, worst);
});

test('arithmetic: verifier accepts equivalent forms and rejects wrong answers', () => {
  const p = arithmetic.generate(new Rng(1), 3);
  const data = { op: 'sub', a: 58, b: 347 } as const;
  const q: Problem = { ...p, id: 'sub:58,347', prompt: 'What is 58 - 347?', answer: '-289', data };
  for (const ok of ['<answer>-289</answer>', '<answer> - 289 </answer>', '\\boxed{-289}', '<answer>\u2212289</answer>', '<answer>2</answer> \\boxed{-289}']) {
    assert.ok(arithmetic.verify(q, ok).correct, ok);
  }
  for (const bad of ['<answer>289</answer>', '<answer>-288</answer>', '<answer>-289.0</answer>', '<answer>x</answer>', '-289', '<answer>-289</answer><answer>1</answer>']) {
    const v = arithmetic.verify(q, bad);
    assert.equal(v.correct, false, bad);
    assert.ok(v.reason && v.reason.length > 0);
  }
  assert.equal(arithmetic.verify(q, 'no answer').parsed, null);
  // Every generated problem's answer is exact; off-by-one is rejected.
  const rng = new Rng(2);
  for (let i = 0; i < 500; i++) {
    const r = arithmetic.generate(rng, 1 + (i % 6));
    assert.equal(arithmetic.verify(r, `<answer>${Number(r.answer) + 1}</answer>`).correct, false);
    assert.equal(arithmetic.verify(r, `<answer>${r.answer}</answer>`).correct, true);
  }
  // malformed data and foreign problems are errors, not wrong answers
  assert.throws(() => arithmetic.verify({ ...q, data: { op: 'pow', a: 1, b: 2 } }, '<answer>1</answer>'), FormatError);
  assert.throws(() => arithmetic.verify({ ...q, data: { op: 'add', a: 1.5, b: 2 } }, '<answer>1</answer>'), FormatError);
  assert.throws(() => arithmetic.verify({ ...q, task: 'countdown' }, '<answer>1</answer>'), FormatError);
});

test('arithmetic: determinism and disjoint train/test splits', () => {
  checkDeterminismAndSplits(arithmetic, 3000);
  // a+b and b+a share the split
  const p = arithmetic.generate(new Rng(0), 2);
  for (let a = 0; a < 100; a += 7) {
    for (let b = 0; b < 100; b += 3) {
      const x = { ...p, data: { op: 'add', a, b } };
      const y = { ...p, data: { op: 'add', a: b, b: a } };
      assert.equal(arithmetic.splitOf(x), arithmetic.splitOf(y));
    }
  }
  // the test split is about TEST_FRACTION of the space: all 2-digit additions a+b with a <= b
  let tests = 0, total = 0;
  for (let a = 10; a < 100; a++) for (let b = a; b < 100; b++) {
    total++;
    if (arithmetic.splitOf({ ...p, data: { op: 'add', a, b } }) === 'test') tests++;
  }
  assert.ok(tests / total > 0.07 && tests / total < 0.13, `test fraction ${tests / total}`);
  // unique sampling runs out on a tiny space and says so
  const addOnly = makeArithmeticTask({ name: 'add', ops: ['add'], difficulties: [1] });
  const all = addOnly.sample('train', 40, { seed: 0, difficulty: 1, unique: true });
  assert.equal(new Set(all.map((q) => q.id)).size, 40);
  assert.throws(() => addOnly.sample('test', 100, { seed: 0, difficulty: 1, unique: true }), UsageError);
  assert.ok(addOnly.sample('train', 20, { seed: 0 }).every((q) => (q.data as { op: string }).op === 'add'));
});

// ------------------------------------------------------------------ countdown

function cdProblem(numbers: number[], target: number): Problem {
  return { id: 'x', task: 'countdown', difficulty: numbers.length, prompt: '', answer: '', data: { numbers, target } };
}

test('countdown: expression parser (no eval) and exact evaluation', () => {
  const val = (s: string): number | string => {
    const p = parseExpr(s);
    if ('error' in p) return `error: ${p.error}`;
    const v = evalExpr(p.expr);
    return 'error' in v ? `error: ${v.error}` : v.value;
  };
  assert.equal(val('(25-3)*2+7'), 51);
  assert.equal(val('2+3*4'), 14);
  assert.equal(val('(2+3)*4'), 20);
  assert.equal(val('20-5-3'), 12);          // left associative
  assert.equal(val('20-(5-3)'), 18);
  assert.equal(val('24/4/2'), 3);
  assert.equal(val('24/(4/2)'), 12);
  assert.equal(val(' 3 \\times ( 4 + 5 ) '), 27);
  assert.equal(val('3 × 4 ÷ 2'), 6);
  assert.equal(val('\\left(8 \\div 2\\right) \\cdot 3'), 12);
  assert.equal(val('3\u22127'), -4);        // negative intermediates are fine
  assert.match(String(val('7/2')), /remainder/);
  assert.match(String(val('7/(3-3)')), /zero/);
  for (const bad of ['', '3+', '(3+4', '3+4)', '-3+4', '3*-4', '3 4', 'abs(3)', '3^2', '2**3', 'eval(1)', '1;2', '3.5+1']) {
    assert.match(String(val(bad)), /^error/, bad);
  }
  const c = parseExpr('3*4 = 12');
  assert.ok(!('error' in c) && c.claimed === 12);
  assert.ok('error' in parseExpr('3*4 = 12 = 12'));
  assert.ok('error' in parseExpr('1+'.repeat(150) + '1'));   // length cap
});

test('countdown: formatExpr uses minimal parentheses and round-trips', () => {
  const n = (value: number): Expr => ({ kind: 'num', value });
  const b = (op: '+' | '-' | '*' | '/', left: Expr, right: Expr): Expr => ({ kind: 'bin', op, left, right });
  assert.equal(formatExpr(b('+', b('*', b('-', n(25), n(3)), n(2)), n(7))), '(25-3)*2+7');
  assert.equal(formatExpr(b('-', n(9), b('+', n(3), n(2)))), '9-(3+2)');
  assert.equal(formatExpr(b('+', n(9), b('-', n(3), n(2)))), '9+3-2');
  assert.equal(formatExpr(b('/', n(24), b('*', n(3), n(2)))), '24/(3*2)');
  assert.equal(formatExpr(b('*', n(5), b('/', n(6), n(2)))), '5*6/2');
  // Round trip on random trees: the printed form evaluates to the tree's value.
  const rng = new Rng(9);
  const rand = (depth: number): Expr => depth === 0 || rng.int(3) === 0
    ? n(1 + rng.int(12))
    : b((['+', '-', '*', '/'] as const)[rng.int(4)]!, rand(depth - 1), rand(depth - 1));
  let checked = 0;
  for (let i = 0; i < 3000; i++) {
    const e = rand(3);
    const v = evalExpr(e);
    if ('error' in v) continue;
    const p = parseExpr(formatExpr(e));
    assert.ok(!('error' in p), formatExpr(e));
    const w = evalExpr(p.expr);
    assert.deepEqual(w, v, formatExpr(e));
    checked++;
  }
  assert.ok(checked > 1000);
});

test('countdown: verifier rejects reused numbers, foreign numbers, remainders, wrong targets', () => {
  const d: CountdownData = { numbers: [3, 7, 25, 2], target: 51 };
  const p = cdProblem(d.numbers, d.target);
  const v = (s: string) => countdown.verify(p, `<answer>${s}</answer>`);
  assert.ok(v('(25-3)*2+7').correct);
  assert.ok(v('7+2*(25-3)').correct);
  assert.ok(v('(25 - 3) \\times 2 + 7 = 51').correct);
  assert.ok(countdown.verify(p, '\\boxed{(25-3)*2+7}').correct);
  assert.match(v('25+25+1').reason!, /25 used more times than given/);
  assert.match(v('25*2+1').reason!, /1 is not one of the given numbers/);
  assert.match(v('7*7+2').reason!, /7 used more times/);
  assert.match(v('(25-3)*2+7 = 52').reason!, /claims/);
  assert.match(v('25*2+3').reason!, /equals 53, target is 51/);
  assert.match(v('').reason!, /cannot parse/);
  assert.match(v('-3+25*2+7-3').reason!, /cannot parse.*unary/);
  const q = cdProblem([7, 2, 10], 5);
  assert.match(countdown.verify(q, '<answer>10-7/2</answer>').reason!, /division with remainder: 7\/2/);
  assert.match(countdown.verify(q, '<answer>10/(7-7)</answer>').reason!, /7 used more times/);
  assert.match(countdown.verify(cdProblem([7, 2, 9], 5), '<answer>7/(9-9)</answer>').reason!, /9 used more times/);
  assert.match(countdown.verify(cdProblem([7, 2, 2], 5), '<answer>7/(2-2)</answer>').reason!, /division by zero/);
  assert.ok(countdown.verify(q, '<answer>10/2</answer>').correct);   // not every number has to be used
  assert.ok(countdown.verify(q, '<answer>7-2</answer>').correct);
  assert.equal(countdown.verify(q, 'no answer here').parsed, null);
  // duplicate numbers: each copy may be used once
  const r = cdProblem([4, 4, 5], 21);
  assert.ok(countdown.verify(r, '<answer>4*4+5</answer>').correct);
  assert.match(countdown.verify(r, '<answer>4*4+4+5-4</answer>').reason!, /4 used more times/);
  assert.equal(checkCountdown(d, '((25-3))*2+7').correct, true);
});

test('countdown: generated instances are solvable, non-trivial, and the search is exhaustive', () => {
  const rng = new Rng(21);
  for (const count of countdown.difficulties) {
    for (let i = 0; i < 300; i++) {
      const p = countdown.generate(rng, count);
      const d = p.data as CountdownData;
      assert.equal(d.numbers.length, count);
      assert.ok(d.target >= 1 && d.target <= 999 && !d.numbers.includes(d.target), p.prompt);
      assert.ok(p.prompt.includes(String(d.target)) && d.numbers.every((n) => p.prompt.includes(String(n))));
    }
  }
  // exhaustive: known unreachable targets give null; a reachable one needing all four numbers is found
  assert.equal(solveCountdown([1, 1, 1], 100), null);
  assert.equal(solveCountdown([2, 3], 7), null);
  const e = solveCountdown([3, 7, 25, 2], 51)!;
  assert.ok(e && checkCountdown({ numbers: [3, 7, 25, 2], target: 51 }, formatExpr(e)).correct);
  // fewest operations first: 10/2 uses one operation, though 7-2 would also reach 5
  assert.equal(countdownSteps(solveCountdown([7, 2, 10], 5)!).length, 1);
  // the steps are the expression, one operation per line, each line true
  for (const line of countdownSteps(e)) {
    const m = /^(\d+)([-+*/])(\d+)=(-?\d+)$/.exec(line)!;
    assert.ok(m, line);
    const [a, b, r] = [Number(m[1]), Number(m[3]), Number(m[4])];
    assert.equal(m[2] === '+' ? a + b : m[2] === '-' ? a - b : m[2] === '*' ? a * b : a / b, r, line);
  }
  // Brute-force cross-check on 3 numbers: solver finds an answer iff some expression over
  // ordered pairs of values (any sign, exact division) reaches the target.
  const reach = (vs: number[]): Set<number> => {
    const out = new Set<number>(vs);
    for (let i = 0; i < vs.length; i++) for (let j = 0; j < vs.length; j++) {
      if (i === j) continue;
      const [a, b] = [vs[i]!, vs[j]!];
      const rest = vs.filter((_, k) => k !== i && k !== j);
      const res = [a + b, a - b, a * b];
      if (b !== 0 && a % b === 0) res.push(a / b);
      for (const v of res) for (const w of reach([...rest, v])) out.add(w);
    }
    return out;
  };
  const r2 = new Rng(5);
  for (let i = 0; i < 150; i++) {
    const ns = [1 + r2.int(12), 1 + r2.int(12), 1 + r2.int(12)];
    const all = reach(ns);
    for (let t = 1; t <= 60; t++) {
      const found = solveCountdown(ns, t);
      if (found) assert.ok(checkCountdown({ numbers: ns, target: t }, formatExpr(found)).correct);
      else assert.ok(!all.has(t) || ns.includes(t), `missed ${ns} -> ${t}`);
    }
  }
});

test('countdown: solve verifies for thousands of problems per difficulty', () => {
  checkSolverAndVerifier(countdown, 1500, 200);
});

test('countdown: determinism and disjoint splits; number order does not change the split', () => {
  checkDeterminismAndSplits(countdown, 2000);
  const p = countdown.generate(new Rng(1), 4);
  const d = p.data as CountdownData;
  const rev = { ...p, data: { numbers: [...d.numbers].reverse(), target: d.target } };
  assert.equal(countdown.splitOf(rev), countdown.splitOf(p));
  assert.throws(() => countdown.verify({ ...p, data: { numbers: [1, 'x'], target: 3 } }, '<answer>1</answer>'), FormatError);
});

// ------------------------------------------------------------------ linear

test('linear: traces, solution and answer forms', () => {
  const e = (a: number, b: number, c: number, d: number): LinearData => ({ a, b, c, d });
  assert.deepEqual(linearSteps(e(3, 7, 0, 22)), ['3x=22-7=15', 'x=15/3=5']);
  assert.deepEqual(linearSteps(e(-4, -6, 0, 10)), ['-4x=10+6=16', 'x=16/(-4)=-4']);
  assert.deepEqual(linearSteps(e(5, 3, 2, 18)), ['5x-2x=18-3', '3x=15', 'x=15/3=5']);
  assert.deepEqual(linearSteps(e(2, -3, -1, 9)), ['2x+x=9+3', '3x=12', 'x=12/3=4']);
  assert.deepEqual(linearSteps(e(3, 0, 2, 4)), ['3x-2x=4', 'x=4']);
  assert.deepEqual(linearSteps(e(1, 0, 2, 5)), ['x-2x=5', '-x=5', 'x=5/(-1)=-5']);
  assert.equal(equationText(e(-1, -6, 0, 10)), '-x - 6 = 10');
  assert.equal(equationText(e(5, 3, 2, 18)), '5x + 3 = 2x + 18');
  assert.equal(solveLinear(e(2, 0, 0, 3)), null);
  assert.equal(solveLinear(e(2, 1, 2, 3)), null);
  const p: Problem = { id: 'l', task: 'linear', difficulty: 3, prompt: '', answer: '5', data: e(5, 3, 2, 18) };
  for (const ok of ['<answer>5</answer>', '<answer>x = 5</answer>', '\\boxed{x=5}', '<answer> X=+5 </answer>']) assert.ok(linear.verify(p, ok).correct, ok);
  for (const bad of ['<answer>-5</answer>', '<answer>x=5.0</answer>', '<answer>y=5</answer>', '<answer>15/3</answer>', '<answer>6</answer>']) assert.equal(linear.verify(p, bad).correct, false, bad);
  assert.throws(() => linear.verify({ ...p, data: e(2, 0, 0, 3) }, '<answer>1</answer>'), FormatError);
});

test('linear: every generated equation has the integer solution the trace reaches', () => {
  const rng = new Rng(33);
  for (const d of linear.difficulties) {
    for (let i = 0; i < 1000; i++) {
      const p = linear.generate(rng, d);
      const e = p.data as LinearData;
      const x = Number(p.answer);
      assert.equal(e.a * x + e.b, e.c * x + e.d, p.prompt);
      if (d < 3) assert.equal(e.c, 0); else assert.ok(e.c !== 0 && e.a !== e.c);
      if (d === 1) assert.ok(e.a >= 2 && e.b > 0 && x >= 0);
      assert.ok(p.prompt.length + linear.solve(p).length < 120, linear.solve(p));
    }
  }
});

test('linear: solve verifies for thousands of problems per difficulty', () => {
  checkSolverAndVerifier(linear, 1500, 300);
});

test('linear: determinism and disjoint splits', () => {
  checkDeterminismAndSplits(linear, 3000);
  const p = linear.generate(new Rng(0), 3);
  const e = p.data as LinearData;
  assert.equal(linear.splitOf({ ...p, data: { a: e.c, b: e.d, c: e.a, d: e.b } }), linear.splitOf(p));
});

// ------------------------------------------------------------------ registry

test('registry: getTask by name, UsageError listing known names', () => {
  assert.deepEqual(taskNames(), ['arithmetic', 'countdown', 'linear']);
  for (const name of taskNames()) assert.equal(getTask(name).name, name);
  assert.equal(getTask('countdown'), countdown);
  assert.equal(TASKS.size, 3);
  assert.throws(() => getTask('chess'), (err: unknown) => err instanceof UsageError &&
    /unknown task "chess"; known tasks: arithmetic, countdown, linear/.test(err.message));
  // a problem from one task is refused by another
  const p = getTask('linear').generate(new Rng(0), 1);
  assert.throws(() => getTask('arithmetic').verify(p, '<answer>1</answer>'), FormatError);
});
