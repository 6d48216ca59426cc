/**
 * Countdown: reach a target from 3–4 given numbers with + - * /, each number used at most once,
 * every intermediate result an exact integer. Difficulty = how many numbers are given.
 *
 * The generator only makes solvable instances: it draws the numbers, then combines random pairs with
 * random valid operations (positive integer results, exact division) until one value is left: the target.
 * The verifier parses the answer with a hand-written recursive-descent parser (no eval), checks the
 * multiset of numbers it uses, and evaluates it exactly. The solver searches exhaustively (fewest
 * operations first) and writes the found expression one operation per line:
 *
 *   Use 3, 7, 25, 2 to make 51 ...:   25-3=22 / 22*2=44 / 44+7=51   answer (25-3)*2+7
 */
import type { Rng } from '../tensor/random.js';
import { FormatError, R1Error } from '../errors.js';
import { defineTask, intField, randInt, type Task } from './task.js';

export interface CountdownData {
  numbers: number[];
  target: number;
}

export type CountdownOp = '+' | '-' | '*' | '/';

/** An expression tree over the given numbers. */
export type Expr = { kind: 'num'; value: number } | { kind: 'bin'; op: CountdownOp; left: Expr; right: Expr };

const PREC: Record<CountdownOp, number> = { '+': 1, '-': 1, '*': 2, '/': 2 };
const BIG = [25, 50, 75, 100];
const MAX_TARGET = 999;
/** Longest answer the verifier will parse (a 4-number expression needs far less). */
const MAX_ANSWER_CHARS = 200;

function prec(e: Expr): number {
  return e.kind === 'num' ? 3 : PREC[e.op];
}

/** The expression with the fewest parentheses that keeps its evaluation order. */
export function formatExpr(e: Expr): string {
  if (e.kind === 'num') return String(e.value);
  const p = PREC[e.op];
  const l = formatExpr(e.left);
  const r = formatExpr(e.right);
  const lp = prec(e.left) < p ? `(${l})` : l;
  // a-(b+c) and a/(b*c) need them; a+(b-c) and a*(b/c) do not (and stay integer left to right).
  const rp = prec(e.right) < p || (prec(e.right) === p && (e.op === '-' || e.op === '/')) ? `(${r})` : r;
  return `${lp}${e.op}${rp}`;
}

/**
 * Exact value, or an error naming the first bad step. Intermediate results may be negative
 * (3-7+10 is fine), but every division must be exact and by a non-zero number.
 */
export function evalExpr(e: Expr): { value: number } | { error: string } {
  if (e.kind === 'num') return { value: e.value };
  const l = evalExpr(e.left);
  if ('error' in l) return l;
  const r = evalExpr(e.right);
  if ('error' in r) return r;
  const [a, b] = [l.value, r.value];
  let v: number;
  switch (e.op) {
    case '+': v = a + b; break;
    case '-': v = a - b; break;
    case '*': v = a * b; break;
    case '/':
      if (b === 0) return { error: `division by zero: ${a}/${b}` };
      if (a % b !== 0) return { error: `division with remainder: ${a}/${b}` };
      v = a / b;
      break;
  }
  if (!Number.isSafeInteger(v)) return { error: `result too large: ${a}${e.op}${b}` };
  return { value: v === 0 ? 0 : v };
}

/** The numbers an expression uses, in order of appearance. */
export function exprNumbers(e: Expr): number[] {
  return e.kind === 'num' ? [e.value] : [...exprNumbers(e.left), ...exprNumbers(e.right)];
}

/**
 * Parses an arithmetic expression over non-negative integer literals, + - * / and parentheses.
 * Also accepted: × · \times \cdot for *, ÷ \div for /, Unicode minus, \left( \right), and a trailing
 * "= N" (returned as `claimed`). Unary signs are not operations of the game and are rejected.
 */
export function parseExpr(text: string): { expr: Expr; claimed: number | null } | { error: string } {
  if (text.length > MAX_ANSWER_CHARS) return { error: `expression longer than ${MAX_ANSWER_CHARS} characters` };
  const s = text
    .replace(/\\left|\\right/g, '')
    .replace(/\\times|\\cdot|[×·∗]/g, '*')
    .replace(/\\div|÷/g, '/')
    .replace(/\u2212/g, '-');
  type Tok = { t: 'num'; v: number } | { t: 'op'; v: string };
  const toks: Tok[] = [];
  for (let i = 0; i < s.length;) {
    const ch = s[i]!;
    if (/\s/.test(ch)) { i++; continue; }
    if (ch >= '0' && ch <= '9') {
      let j = i;
      while (j < s.length && s[j]! >= '0' && s[j]! <= '9') j++;
      const v = Number(s.slice(i, j));
      if (!Number.isSafeInteger(v)) return { error: `number too large: ${s.slice(i, j)}` };
      toks.push({ t: 'num', v });
      i = j;
      continue;
    }
    if ('+-*/()='.includes(ch)) { toks.push({ t: 'op', v: ch }); i++; continue; }
    return { error: `unexpected character ${JSON.stringify(ch)} at ${i}` };
  }
  let pos = 0;
  const peek = (): Tok | undefined => toks[pos];
  const isOp = (v: string): boolean => { const k = peek(); return k !== undefined && k.t === 'op' && k.v === v; };
  class ParseFail extends Error {}
  const fail = (msg: string): never => { throw new ParseFail(msg); };
  const where = (): string => (pos < toks.length ? `token ${pos + 1}` : 'end of expression');
  const factor = (): Expr => {
    const k = peek();
    if (k === undefined) return fail('expression ends where a number was expected');
    if (k.t === 'num') { pos++; return { kind: 'num', value: k.v }; }
    if (k.v === '(') {
      pos++;
      const e = sum();
      if (!isOp(')')) fail(`missing ")" at ${where()}`);
      pos++;
      return e;
    }
    if (k.v === '-' || k.v === '+') return fail(`unary ${k.v} at ${where()}: only binary operations are allowed`);
    return fail(`unexpected "${k.v}" at ${where()}`);
  };
  const product = (): Expr => {
    let e = factor();
    while (isOp('*') || isOp('/')) {
      const op = (toks[pos++]!.v) as CountdownOp;
      e = { kind: 'bin', op, left: e, right: factor() };
    }
    return e;
  };
  const sum = (): Expr => {
    let e = product();
    while (isOp('+') || isOp('-')) {
      const op = (toks[pos++]!.v) as CountdownOp;
      e = { kind: 'bin', op, left: e, right: product() };
    }
    return e;
  };
  try {
    if (toks.length === 0) return { error: 'empty expression' };
    const expr = sum();
    let claimed: number | null = null;
    if (isOp('=')) {
      pos++;
      const k = peek();
      if (k === undefined || k.t !== 'num' || pos + 1 !== toks.length) fail('"=" must be followed by a single number at the end');
      claimed = (k as { v: number }).v;
      pos++;
    }
    if (pos !== toks.length) fail(`unexpected "${String(toks[pos]!.v)}" at ${where()}`);
    return { expr, claimed };
  } catch (e) {
    if (e instanceof ParseFail) return { error: e.message };
    throw e;
  }
}

/** Checks an answer expression against a problem: numbers from the multiset given, exact value == target. */
export function checkCountdown(d: CountdownData, answer: string): { correct: boolean; reason?: string } {
  const p = parseExpr(answer);
  if ('error' in p) return { correct: false, reason: `cannot parse ${JSON.stringify(answer)}: ${p.error}` };
  const left = new Map<number, number>();
  for (const n of d.numbers) left.set(n, (left.get(n) ?? 0) + 1);
  for (const n of exprNumbers(p.expr)) {
    const k = left.get(n) ?? 0;
    if (k === 0) {
      return { correct: false, reason: d.numbers.includes(n) ? `${n} used more times than given` : `${n} is not one of the given numbers ${d.numbers.join(', ')}` };
    }
    left.set(n, k - 1);
  }
  const v = evalExpr(p.expr);
  if ('error' in v) return { correct: false, reason: v.error };
  if (v.value !== d.target) return { correct: false, reason: `expression equals ${v.value}, target is ${d.target}` };
  if (p.claimed !== null && p.claimed !== d.target) return { correct: false, reason: `claims = ${p.claimed}, target is ${d.target}` };
  return { correct: true };
}

/** Operations the generator and solver use: positive integer results only, no useless *1 or /1. */
function combine(a: number, b: number, op: CountdownOp): number | null {
  switch (op) {
    case '+': return a + b;
    case '-': return a > b ? a - b : null;
    case '*': return a > 1 && b > 1 ? a * b : null;
    case '/': return b > 1 && a % b === 0 ? a / b : null;
  }
}
const OPS: readonly CountdownOp[] = ['+', '-', '*', '/'];

/**
 * An expression reaching the target with the fewest operations (iterative deepening over the classic
 * pick-two-and-combine search), or null. Exhaustive over positive-integer intermediates, which is the
 * space the generator builds its targets in.
 */
export function solveCountdown(numbers: readonly number[], target: number): Expr | null {
  const items: Expr[] = numbers.map((value) => ({ kind: 'num', value }));
  const vals: number[] = [...numbers];
  if (vals.includes(target)) return items[vals.indexOf(target)]!;
  const dfs = (list: Expr[], vs: number[], opsLeft: number): Expr | null => {
    for (let i = 0; i < vs.length; i++) {
      for (let j = 0; j < vs.length; j++) {
        if (i === j) continue;
        for (const op of OPS) {
          if ((op === '+' || op === '*') && j < i) continue; // commutative: one order is enough
          const v = combine(vs[i]!, vs[j]!, op);
          if (v === null) continue;
          const e: Expr = { kind: 'bin', op, left: list[i]!, right: list[j]! };
          if (v === target) return e;
          if (opsLeft > 1) {
            const nl = list.filter((_, k) => k !== i && k !== j);
            const nv = vs.filter((_, k) => k !== i && k !== j);
            nl.push(e); nv.push(v);
            const r = dfs(nl, nv, opsLeft - 1);
            if (r) return r;
          }
        }
      }
    }
    return null;
  };
  for (let depth = 1; depth < numbers.length; depth++) {
    const r = dfs(items, vals, depth);
    if (r) return r;
  }
  return null;
}

/** One line per operation, in evaluation order: "25-3=22". */
export function countdownSteps(e: Expr): string[] {
  const out: string[] = [];
  const walk = (x: Expr): number => {
    if (x.kind === 'num') return x.value;
    const a = walk(x.left);
    const b = walk(x.right);
    const v = evalExpr({ kind: 'bin', op: x.op, left: { kind: 'num', value: a }, right: { kind: 'num', value: b } });
    if ('error' in v) throw new R1Error(`countdown: solver produced a bad step ${a}${x.op}${b}: ${v.error}`);
    out.push(`${a}${x.op}${b}=${v.value}`);
    return v.value;
  };
  walk(e);
  if (out.length === 0) out.push(`${formatExpr(e)} is given`);
  return out;
}

function drawNumbers(rng: Rng, count: number): number[] {
  const ns: number[] = [];
  for (let i = 0; i < count; i++) ns.push(randInt(rng, 1, 20));
  if (rng.int(10) < 3) ns[rng.int(count)] = BIG[rng.int(BIG.length)]!;
  return ns;
}

/** A random expression over all the numbers, combining random pairs with random valid operations. */
function randomTarget(rng: Rng, numbers: readonly number[]): number {
  const pool = [...numbers];
  while (pool.length > 1) {
    const i = rng.int(pool.length);
    let j = rng.int(pool.length - 1);
    if (j >= i) j++;
    const [a, b] = [Math.max(pool[i]!, pool[j]!), Math.min(pool[i]!, pool[j]!)];
    const choices: number[] = [];
    for (const op of OPS) {
      const v = combine(a, b, op);
      if (v !== null && v <= MAX_TARGET) choices.push(v);
    }
    const v = choices.length ? choices[rng.int(choices.length)]! : a + b;
    pool.splice(Math.max(i, j), 1);
    pool.splice(Math.min(i, j), 1);
    pool.push(v);
  }
  return pool[0]!;
}

function promptOf(d: CountdownData): string {
  return `Use ${d.numbers.join(', ')} to make ${d.target} with + - * / (each number at most once).`;
}

const cache = new WeakMap<CountdownData, Expr>();
function solution(d: CountdownData): Expr {
  let e = cache.get(d);
  if (!e) {
    const found = solveCountdown(d.numbers, d.target);
    if (!found) throw new R1Error(`countdown: no solution for ${promptOf(d)}`);
    e = found;
    cache.set(d, e);
  }
  return e;
}

export const countdown: Task = defineTask<CountdownData>({
  name: 'countdown',
  description: 'reach a target from 3-4 numbers with + - * / (each at most once, exact integers); difficulty = how many numbers',
  difficulties: [3, 4],
  make(rng, count) {
    for (let attempt = 0; attempt < 10_000; attempt++) {
      const numbers = drawNumbers(rng, count);
      const target = randomTarget(rng, numbers);
      // A target that is one of the numbers, or too large, is no puzzle: draw again.
      if (target < 1 || target > MAX_TARGET || numbers.includes(target)) continue;
      return { numbers, target };
    }
    throw new R1Error(`countdown: no valid instance with ${count} numbers in 10000 attempts`);
  },
  key: (d) => `countdown:${d.numbers.join(',')}=${d.target}`,
  canonical: (d) => `countdown:${[...d.numbers].sort((a, b) => a - b).join(',')}=${d.target}`,
  prompt: promptOf,
  answer: (d) => formatExpr(solution(d)),
  decode(data, where) {
    const nums = (data as { numbers?: unknown } | null)?.numbers;
    if (!Array.isArray(nums) || nums.length < 2 || nums.length > 6) throw new FormatError(`${where}.numbers: expected 2 to 6 integers, got ${JSON.stringify(nums)}`);
    const numbers = nums.map((_, i) => intField(nums, String(i), `${where}.numbers`));
    if (numbers.some((n) => n < 1)) throw new FormatError(`${where}.numbers: must be positive, got ${numbers.join(', ')}`);
    const target = intField(data, 'target', where);
    return { numbers, target };
  },
  check: checkCountdown,
  trace: (d) => countdownSteps(solution(d)),
});
