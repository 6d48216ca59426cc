/**
 * Verifiable reasoning tasks: the shared shape of a task, the final-answer parser, and the machinery
 * every task shares (seeded sampling, train/test splits, the think/answer wrapper).
 *
 * A task is four things (the DeepSeek-R1 recipe, §2.2: rule-based rewards, and §2.3.1: cold-start data):
 * - a seeded generator with difficulty levels,
 * - an exact verifier, whose verdict is the rule-based accuracy reward (correct ? 1 : 0),
 * - the parser of the model's final answer (`<answer>…</answer>` or `\boxed{…}`, the last one wins),
 * - a solver that writes a correct step-by-step `<think>…</think>` trace and the answer (SFT data).
 *
 * Splits: whether a problem is in `train` or `test` is a pure function of its canonical form (a hash of it),
 * never of the seed or the order it was drawn in, so the same problem can never land in both splits,
 * whatever seeds, difficulties or sample sizes were used to draw them.
 */
import { Rng } from '../tensor/random.js';
import { FormatError, UsageError } from '../errors.js';

export type Split = 'train' | 'test';

/** One problem instance. `data` is the task's own typed record (JSON-safe, so problems can go to JSONL). */
export interface Problem {
  /** Stable identifier derived from the problem's content (same problem, same id, on every machine). */
  id: string;
  /** Name of the task that made it (see tasks/index.ts). */
  task: string;
  difficulty: number;
  /** What the user says, e.g. "What is 347 + 58?". */
  prompt: string;
  /** The reference final answer in canonical form, e.g. "405". */
  answer: string;
  data: unknown;
}

export interface Verdict {
  correct: boolean;
  /** What parseFinalAnswer found, or null when the completion has no final answer. */
  parsed: string | null;
  /** Why the answer was rejected (absent when correct). */
  reason?: string;
}

export interface SampleOptions {
  seed: number;
  /** One difficulty, or (absent) a uniformly random difficulty from `task.difficulties` per problem. */
  difficulty?: number;
  /** Skip problems already drawn in this call (default false). Throws UsageError when the space runs out. */
  unique?: boolean;
}

export interface Task {
  name: string;
  description: string;
  difficulties: readonly number[];
  /** One problem, drawn from `rng`. Ignores splits (use sample for that). */
  generate(rng: Rng, difficulty: number): Problem;
  /** n problems of one split; deterministic in (split, n, opts); train and test never share a problem. */
  sample(split: Split, n: number, opts: SampleOptions): Problem[];
  /** Exact check of a completion's final answer. The reward is `correct ? 1 : 0`. */
  verify(problem: Problem, completion: string): Verdict;
  /** "<think>\n…\n</think>\n<answer>…</answer>"; verify(problem, solve(problem)).correct is always true. */
  solve(problem: Problem): string;
  /** The split a problem belongs to (a hash of its canonical form). */
  splitOf(problem: Problem): Split;
}

/** Fraction of every task's problem space that belongs to the test split (by hash). */
export const TEST_FRACTION = 0.1;

// ---------------------------------------------------------------------------------------------
// Final-answer parser
// ---------------------------------------------------------------------------------------------

/**
 * The model's final answer: the content of the last `<answer>…</answer>` or `\boxed{…}` in the text
 * (last by starting position, so `<answer>\boxed{5}</answer>` gives "5"), trimmed, with one pair of
 * surrounding `$…$`, `$$…$$` or `\(…\)` removed. `\boxed` takes balanced braces (`\boxed{\frac{1}{2}}`).
 * An unclosed tag or unbalanced brace is not an answer. Returns null when there is none.
 */
export function parseFinalAnswer(text: string): string | null {
  let bestStart = -1;
  let best: string | null = null;
  const tagRe = /<answer>([\s\S]*?)<\/answer>/gi;
  for (let m = tagRe.exec(text); m !== null; m = tagRe.exec(text)) {
    if (m.index > bestStart) { bestStart = m.index; best = m[1]!; }
  }
  const boxRe = /\\boxed\s*\{/g;
  for (let m = boxRe.exec(text); m !== null; m = boxRe.exec(text)) {
    const open = m.index + m[0].length; // first character after '{'
    let depth = 1;
    let i = open;
    for (; i < text.length && depth > 0; i++) {
      const ch = text[i];
      if (ch === '\\' && i + 1 < text.length) { i++; continue; } // \{ and \} are literal braces
      if (ch === '{') depth++;
      else if (ch === '}') depth--;
    }
    if (depth !== 0) continue;
    if (m.index > bestStart) { bestStart = m.index; best = text.slice(open, i - 1); }
  }
  if (best === null) return null;
  return stripMath(best.trim());
}

function stripMath(s: string): string {
  for (const [l, r] of [['$$', '$$'], ['$', '$'], ['\\(', '\\)'], ['\\[', '\\]']] as const) {
    if (s.length >= l.length + r.length && s.startsWith(l) && s.endsWith(r)) return s.slice(l.length, s.length - r.length).trim();
  }
  return s;
}

/**
 * An integer written as a final answer: optional sign (ASCII or Unicode minus), digits, optionally
 * grouped by commas in threes ("1,234"); whitespace anywhere is ignored. Returns null if it is not one.
 */
export function parseInteger(s: string): number | null {
  const t = s.replace(/\s+/g, '').replace(/\u2212/g, '-');
  if (!/^[+-]?(\d+|\d{1,3}(,\d{3})+)$/.test(t)) return null;
  const v = Number(t.replace(/,/g, ''));
  return Number.isSafeInteger(v) ? (Object.is(v, -0) ? 0 : v) : null;
}

// ---------------------------------------------------------------------------------------------
// Shared machinery: defineTask
// ---------------------------------------------------------------------------------------------

/** FNV-1a, 32 bits, over the UTF-16 code units of a string. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32) so that the low bits, which pick the split, are well mixed.
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The split of a canonical problem key. Salted so that it is independent of any other use of the hash. */
export function splitOfKey(canonical: string): Split {
  return fnv1a32(`r1ts-split:${canonical}`) % 1000 < TEST_FRACTION * 1000 ? 'test' : 'train';
}

/** What a task file supplies; defineTask turns it into a Task. D is the task's data record. */
export interface TaskSpec<D> {
  name: string;
  description: string;
  difficulties: readonly number[];
  /** Draw one problem's data at a difficulty (already validated). */
  make(rng: Rng, difficulty: number): D;
  /** Content key of the problem as shown (the id). */
  key(data: D): string;
  /** Content key of the problem up to presentation (e.g. operand order of a+b); decides the split. */
  canonical(data: D): string;
  prompt(data: D): string;
  answer(data: D): string;
  /** Validate untrusted `problem.data` (e.g. read back from JSONL); throw FormatError naming the field. */
  decode(data: unknown, where: string): D;
  /** Exact check of a parsed final answer. */
  check(data: D, parsed: string): { correct: boolean; reason?: string };
  /** The reasoning steps, one per line, without the <think> tags. */
  trace(data: D): string[];
}

/** The solver's output format: think block, then the answer tag. */
export function formatSolution(steps: readonly string[], answer: string): string {
  return `<think>\n${steps.join('\n')}\n</think>\n<answer>${answer}</answer>`;
}

export function defineTask<D>(spec: TaskSpec<D>): Task {
  const { name, difficulties } = spec;
  const checkDifficulty = (d: number): void => {
    if (!difficulties.includes(d)) {
      throw new UsageError(`task ${name}: difficulty ${d} is not one of ${difficulties.join(', ')}`);
    }
  };
  const build = (data: D, difficulty: number): Problem => ({
    id: spec.key(data),
    task: name,
    difficulty,
    prompt: spec.prompt(data),
    answer: spec.answer(data),
    data,
  });
  const decodeProblem = (p: Problem): D => {
    if (p.task !== name) throw new FormatError(`task ${name}: problem ${p.id} belongs to task ${JSON.stringify(p.task)}`);
    return spec.decode(p.data, `task ${name}, problem ${p.id}: data`);
  };
  const task: Task = {
    name,
    description: spec.description,
    difficulties,
    generate(rng: Rng, difficulty: number): Problem {
      checkDifficulty(difficulty);
      return build(spec.make(rng, difficulty), difficulty);
    },
    sample(split: Split, n: number, opts: SampleOptions): Problem[] {
      if (split !== 'train' && split !== 'test') throw new UsageError(`task ${name}: split must be train or test, got ${String(split)}`);
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`task ${name}: sample size must be a non-negative integer, got ${n}`);
      if (opts.difficulty !== undefined) checkDifficulty(opts.difficulty);
      const rng = new Rng(opts.seed);
      const out: Problem[] = [];
      const seen = new Set<string>();
      // The test split is ~TEST_FRACTION of the space, so ~10 draws per test problem; the cap only
      // trips when `unique` asks for more distinct problems than the space (or split) holds.
      const maxDraws = 200 * n + 10_000;
      for (let draws = 0; out.length < n; draws++) {
        if (draws >= maxDraws) {
          throw new UsageError(`task ${name}: found only ${out.length} distinct ${split} problems` +
            `${opts.difficulty !== undefined ? ` at difficulty ${opts.difficulty}` : ''} in ${maxDraws} draws, ${n} asked for`);
        }
        const difficulty = opts.difficulty ?? difficulties[rng.int(difficulties.length)]!;
        const data = spec.make(rng, difficulty);
        const canon = spec.canonical(data);
        if (splitOfKey(canon) !== split) continue;
        if (opts.unique) {
          if (seen.has(canon)) continue;
          seen.add(canon);
        }
        out.push(build(data, difficulty));
      }
      return out;
    },
    verify(problem: Problem, completion: string): Verdict {
      const data = decodeProblem(problem);
      const parsed = parseFinalAnswer(completion);
      if (parsed === null) return { correct: false, parsed: null, reason: 'no final answer: neither <answer>…</answer> nor \\boxed{…} found' };
      const r = spec.check(data, parsed);
      return r.correct ? { correct: true, parsed } : { correct: false, parsed, reason: r.reason ?? 'wrong answer' };
    },
    solve(problem: Problem): string {
      const data = decodeProblem(problem);
      return formatSolution(spec.trace(data), spec.answer(data));
    },
    splitOf(problem: Problem): Split {
      return splitOfKey(spec.canonical(decodeProblem(problem)));
    },
  };
  return task;
}

// ---------------------------------------------------------------------------------------------
// Small helpers for task files
// ---------------------------------------------------------------------------------------------

/** Uniform integer in [lo, hi] (inclusive). */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** Reads an integer field of untrusted data, throwing FormatError naming it. */
export function intField(obj: unknown, field: string, where: string): number {
  if (typeof obj !== 'object' || obj === null) throw new FormatError(`${where}: expected an object, got ${obj === null ? 'null' : typeof obj}`);
  const v = (obj as Record<string, unknown>)[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new FormatError(`${where}.${field}: expected an integer, got ${JSON.stringify(v)}`);
  return v;
}
