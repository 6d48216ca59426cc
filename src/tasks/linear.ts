/**
 * Linear equations in one unknown with an integer solution: a·x + b = c·x + d.
 *
 *   difficulty 1: a·x + b = d, a in 2..9, b > 0, x in 0..12            "Solve for x: 3x + 7 = 22"
 *   difficulty 2: a·x + b = d, a in ±2..15, b ≠ 0, x in -20..20        "Solve for x: -4x - 6 = 10"
 *   difficulty 3: x on both sides, a ≠ c, both non-zero in ±1..12     "Solve for x: 5x + 3 = 2x + 18"
 *
 * Traces move terms across and divide, one line per step:
 *   3x+7=22:       3x=22-7=15 / x=15/3=5
 *   5x+3=2x+18:    5x-2x=18-3 / 3x=15 / x=15/3=5
 * The answer is the integer ("5"); the verifier also takes "x = 5".
 */
import type { Rng } from '../tensor/random.js';
import { FormatError } from '../errors.js';
import { defineTask, intField, parseInteger, randInt, type Task } from './task.js';

/** a·x + b = c·x + d (c = 0 when x is on the left only). */
export interface LinearData {
  a: number;
  b: number;
  c: number;
  d: number;
}

/** The solution, or null when it is not a unique integer. */
export function solveLinear(e: LinearData): number | null {
  const k = e.a - e.c;
  const r = e.d - e.b;
  if (k === 0 || r % k !== 0) return null;
  const x = r / k;
  return x === 0 ? 0 : x;
}

/** "3x", "x", "-x", "-4x". */
function xTerm(k: number): string {
  return k === 1 ? 'x' : k === -1 ? '-x' : `${k}x`;
}

/** One side, written with or without spaces: "3x + 7", "-x - 6", "12", "2x". */
function side(k: number, m: number, sp: boolean): string {
  const gap = sp ? ' ' : '';
  if (k === 0) return String(m);
  if (m === 0) return xTerm(k);
  return `${xTerm(k)}${gap}${m < 0 ? '-' : '+'}${gap}${Math.abs(m)}`;
}

export function equationText(e: LinearData, spaces = true): string {
  const gap = spaces ? ' ' : '';
  return `${side(e.a, e.b, spaces)}${gap}=${gap}${side(e.c, e.d, spaces)}`;
}

/** "/3" or "/(-4)". */
function over(k: number): string {
  return k < 0 ? `/(${k})` : `/${k}`;
}

export function linearSteps(e: LinearData): string[] {
  const x = solveLinear(e);
  if (x === null) throw new FormatError(`linear: ${equationText(e)} has no unique integer solution`);
  const k = e.a - e.c;
  const r = e.d - e.b;
  const steps: string[] = [];
  if (e.c === 0) {
    // a·x + b = d  →  a·x = d - b = r  →  x = r/a
    if (e.b !== 0) steps.push(`${xTerm(k)}=${e.d}${e.b > 0 ? '-' : '+'}${Math.abs(e.b)}=${r}`);
  } else {
    // a·x + b = c·x + d  →  a·x - c·x = d - b  →  k·x = r
    const lhs = `${xTerm(e.a)}${e.c > 0 ? '-' : '+'}${xTerm(Math.abs(e.c))}`;
    const rhs = e.b === 0 ? `${e.d}` : `${e.d}${e.b > 0 ? '-' : '+'}${Math.abs(e.b)}`;
    steps.push(`${lhs}=${rhs}`);
    steps.push(`${xTerm(k)}=${r}`);
  }
  if (k !== 1) steps.push(`x=${r}${over(k)}=${x}`);
  if (steps.length === 0) steps.push(`x=${x}`); // x = d already (not generated, but decodable)
  return steps;
}

/** Non-zero integer in ±[lo, hi]. */
function signed(rng: Rng, lo: number, hi: number): number {
  const v = randInt(rng, lo, hi);
  return rng.int(2) === 1 ? -v : v;
}

export const linear: Task = defineTask<LinearData>({
  name: 'linear',
  description: 'solve a linear equation a*x + b = c*x + d for integer x; difficulty 1-3 (negatives at 2, x on both sides at 3)',
  difficulties: [1, 2, 3],
  make(rng, difficulty) {
    if (difficulty === 1) {
      const a = randInt(rng, 2, 9), x = randInt(rng, 0, 12), b = randInt(rng, 1, 30);
      return { a, b, c: 0, d: a * x + b };
    }
    if (difficulty === 2) {
      const a = signed(rng, 2, 15), x = randInt(rng, -20, 20), b = signed(rng, 1, 60);
      return { a, b, c: 0, d: a * x + b };
    }
    let a = 0, c = 0;
    while (a === c) { a = signed(rng, 1, 12); c = signed(rng, 1, 12); }
    const x = randInt(rng, -20, 20), b = randInt(rng, -50, 50);
    return { a, b, c, d: (a - c) * x + b };
  },
  key: (e) => `linear:${e.a},${e.b},${e.c},${e.d}`,
  // "5x + 3 = 2x + 18" and "2x + 18 = 5x + 3" are one problem: they share a split.
  canonical: (e) => {
    const l = `${e.a},${e.b}`, r = `${e.c},${e.d}`;
    return `linear:${l <= r ? `${l}=${r}` : `${r}=${l}`}`;
  },
  prompt: (e) => `Solve for x: ${equationText(e)}`,
  answer: (e) => String(solveLinear(e)),
  decode(data, where) {
    const e = { a: intField(data, 'a', where), b: intField(data, 'b', where), c: intField(data, 'c', where), d: intField(data, 'd', where) };
    if (solveLinear(e) === null) throw new FormatError(`${where}: ${equationText(e)} has no unique integer solution`);
    return e;
  },
  check(e, parsed) {
    const body = parsed.replace(/^\s*x\s*=/i, '');
    const v = parseInteger(body);
    if (v === null) return { correct: false, reason: `not an integer (or "x = integer"): ${JSON.stringify(parsed)}` };
    const want = solveLinear(e)!;
    return v === want ? { correct: true } : { correct: false, reason: `got x = ${v}, expected x = ${want}` };
  },
  trace: linearSteps,
});
