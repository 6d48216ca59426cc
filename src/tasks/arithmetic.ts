/**
 * Arithmetic: a + b, a - b, a * b on non-negative integers; difficulty = number of digits.
 *
 * The first operand has exactly `difficulty` digits (0–9 at difficulty 1), the second between 1 and
 * `difficulty` digits; order is random, so subtraction can be negative.
 *
 * Traces are the school procedures in a terse notation a tiny model can learn inside a ~256-token
 * context (for 2–3 digit problems, prompt + trace + answer stay under ~200 characters):
 *
 *   addition, column by column from the right; carry "c1", then the digits written so far:
 *     347 + 58:   7+8=15 c1 5 / 4+5+1=10 c1 05 / 3+0+1=4 405
 *   subtraction, column by column with borrows "b1" (a borrowed column shows its 1 in front);
 *   a smaller minuend is swapped first, "-(b-a)", and the sign put back on the last line:
 *     58 - 347:   -(347-58) / 17-8=9 b1 9 / 14-5-1=8 b1 89 / 3-0-1=2 289 / =-289
 *   multiplication, one partial product per non-zero digit of the shorter factor, then their running sum:
 *     347 * 58:   347*8=2776 / 347*50=17350 / 2776+17350=20126
 */
import type { Rng } from '../tensor/random.js';
import { FormatError } from '../errors.js';
import { defineTask, intField, parseInteger, randInt, type Task } from './task.js';

export type ArithmeticOp = 'add' | 'sub' | 'mul';
const SYMBOL: Record<ArithmeticOp, string> = { add: '+', sub: '-', mul: '*' };
export const ARITHMETIC_OPS: readonly ArithmeticOp[] = ['add', 'sub', 'mul'];

export interface ArithmeticData {
  op: ArithmeticOp;
  a: number;
  b: number;
}

export function arithmeticResult(d: ArithmeticData): number {
  return d.op === 'add' ? d.a + d.b : d.op === 'sub' ? d.a - d.b : d.a * d.b;
}

/** A number with exactly `digits` digits (0–9 for one digit). */
function withDigits(rng: Rng, digits: number): number {
  return digits === 1 ? randInt(rng, 0, 9) : randInt(rng, 10 ** (digits - 1), 10 ** digits - 1);
}

/** Digits of a non-negative integer, least significant first, padded with zeros to `len`. */
function digitsLsb(n: number, len: number): number[] {
  const s = String(n);
  const out: number[] = [];
  for (let i = 0; i < len; i++) out.push(i < s.length ? s.charCodeAt(s.length - 1 - i) - 48 : 0);
  return out;
}

export function additionSteps(a: number, b: number): string[] {
  const len = Math.max(String(a).length, String(b).length);
  const da = digitsLsb(a, len);
  const db = digitsLsb(b, len);
  const steps: string[] = [];
  let carry = 0;
  let acc = '';
  for (let i = 0; i < len; i++) {
    const s = da[i]! + db[i]! + carry;
    const expr = `${da[i]}+${db[i]}${carry ? '+1' : ''}=${s}`;
    if (i === len - 1) {
      // Last column: the whole column sum goes in front (a final carry needs no extra line).
      acc = `${s}${acc}`;
      steps.push(len === 1 ? expr : `${expr} ${acc}`);
    } else {
      carry = s >= 10 ? 1 : 0;
      acc = `${s % 10}${acc}`;
      steps.push(`${expr}${carry ? ' c1' : ''} ${acc}`);
    }
  }
  return steps;
}

export function subtractionSteps(a: number, b: number): string[] {
  const steps: string[] = [];
  const negative = a < b;
  const [top, bottom] = negative ? [b, a] : [a, b];
  if (negative) steps.push(`-(${top}-${bottom})`);
  const len = String(top).length;
  const dt = digitsLsb(top, len);
  const db = digitsLsb(bottom, len);
  let borrow = 0;
  let acc = '';
  for (let i = 0; i < len; i++) {
    let r = dt[i]! - db[i]! - borrow;
    const next = r < 0 ? 1 : 0;
    if (next) r += 10;
    acc = `${r}${acc}`;
    const expr = `${next ? '1' : ''}${dt[i]}-${db[i]}${borrow ? '-1' : ''}=${r}`;
    steps.push(`${expr}${next ? ' b1' : ''}${len === 1 ? '' : ` ${acc}`}`);
    borrow = next;
  }
  const result = a - b;
  if (String(result) !== acc) steps.push(`=${result}`);
  return steps;
}

export function multiplicationSteps(a: number, b: number): string[] {
  // Multiply by the digits of the shorter factor (the second on a tie).
  const [m, k] = String(b).length <= String(a).length ? [a, b] : [b, a];
  const kd = digitsLsb(k, String(k).length);
  const partials: number[] = [];
  const steps: string[] = [];
  for (let i = 0; i < kd.length; i++) {
    if (kd[i] === 0 && kd.length > 1) continue; // a zero digit adds nothing
    const f = kd[i]! * 10 ** i;
    partials.push(m * f);
    steps.push(`${m}*${f}=${m * f}`);
  }
  let sum = partials[0]!;
  for (let i = 1; i < partials.length; i++) {
    steps.push(`${sum}+${partials[i]}=${sum + partials[i]!}`);
    sum += partials[i]!;
  }
  return steps;
}

export function arithmeticSteps(d: ArithmeticData): string[] {
  return d.op === 'add' ? additionSteps(d.a, d.b) : d.op === 'sub' ? subtractionSteps(d.a, d.b) : multiplicationSteps(d.a, d.b);
}

export interface ArithmeticTaskOptions {
  /** Registry name (default "arithmetic"). */
  name?: string;
  /** Operations to draw from, uniformly (default all three). */
  ops?: readonly ArithmeticOp[];
  /** Digit counts offered as difficulties (default 1–6; products stay exact in float64 up to 7). */
  difficulties?: readonly number[];
}

export function makeArithmeticTask(opts: ArithmeticTaskOptions = {}): Task {
  const ops = opts.ops ?? ARITHMETIC_OPS;
  const difficulties = opts.difficulties ?? [1, 2, 3, 4, 5, 6];
  if (ops.length === 0 || ops.some((o) => !ARITHMETIC_OPS.includes(o))) {
    throw new FormatError(`arithmetic task: ops must be a non-empty subset of ${ARITHMETIC_OPS.join(', ')}, got ${JSON.stringify(ops)}`);
  }
  if (difficulties.some((d) => !Number.isInteger(d) || d < 1 || d > 7)) {
    throw new FormatError(`arithmetic task: difficulties must be digit counts 1..7, got ${JSON.stringify(difficulties)}`);
  }
  return defineTask<ArithmeticData>({
    name: opts.name ?? 'arithmetic',
    description: `integer ${ops.map((o) => SYMBOL[o]).join(' ')} ; difficulty = digits per operand`,
    difficulties,
    make(rng, digits) {
      const op = ops[rng.int(ops.length)]!;
      let a = withDigits(rng, digits);
      let b = withDigits(rng, randInt(rng, 1, digits));
      if (rng.int(2) === 1) [a, b] = [b, a];
      return { op, a, b };
    },
    key: (d) => `${d.op}:${d.a},${d.b}`,
    // a+b and b+a (a*b, b*a) are one problem: they share a split.
    canonical: (d) => (d.op === 'sub' ? `sub:${d.a},${d.b}` : `${d.op}:${Math.min(d.a, d.b)},${Math.max(d.a, d.b)}`),
    prompt: (d) => `What is ${d.a} ${SYMBOL[d.op]} ${d.b}?`,
    answer: (d) => String(arithmeticResult(d)),
    decode(data, where) {
      const op = (data as { op?: unknown } | null)?.op;
      if (op !== 'add' && op !== 'sub' && op !== 'mul') throw new FormatError(`${where}.op: expected add, sub or mul, got ${JSON.stringify(op)}`);
      const a = intField(data, 'a', where);
      const b = intField(data, 'b', where);
      if (a < 0 || b < 0) throw new FormatError(`${where}: operands must be non-negative, got a=${a}, b=${b}`);
      return { op, a, b };
    },
    check(d, parsed) {
      const v = parseInteger(parsed);
      if (v === null) return { correct: false, reason: `not an integer: ${JSON.stringify(parsed)}` };
      const want = arithmeticResult(d);
      return v === want ? { correct: true } : { correct: false, reason: `got ${v}, expected ${want}` };
    },
    trace: arithmeticSteps,
  });
}

export const arithmetic: Task = makeArithmeticTask();
