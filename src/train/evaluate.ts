/**
 * Held-out evaluation of a chat model on a built-in task, with the one generation engine: greedy accuracy,
 * and pass@1 averaged over k samples at R1's settings (temperature 0.6, top-p 0.95), as the R1 paper reports.
 */
import type { ChatModel } from '../infer/chat.js';
import type { Problem, Task } from '../tasks/task.js';
import type { SamplingParams } from '../infer/sampler.js';
import { R1_DEFAULTS } from '../infer/sampler.js';

export interface EvalOptions {
  /** Samples per problem for pass@1 (0 = greedy only). */
  k?: number;
  maxTokens?: number;
  seed?: number;
  sampling?: SamplingParams;
  think?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalResult {
  task: string;
  problems: number;
  greedyAccuracy: number;
  /** Mean over problems of (correct samples / k); null when k = 0. */
  passAt1: number | null;
  k: number;
  byDifficulty: Record<string, { problems: number; greedy: number; passAt1: number | null }>;
  meanCompletionTokens: number;
  examples: { prompt: string; answer: string; completion: string; correct: boolean }[];
}

export async function evaluateTask(chat: ChatModel, task: Task, problems: readonly Problem[], o: EvalOptions = {}): Promise<EvalResult> {
  const k = o.k ?? 0;
  const maxTokens = o.maxTokens ?? 256;
  const sampling = { ...R1_DEFAULTS, ...(o.sampling ?? {}) };
  const jobs: { p: number; greedy: boolean; promise: Promise<{ text: string; tokens: number[] }> }[] = [];
  problems.forEach((p, i) => {
    const messages = [{ role: 'user', content: p.prompt }];
    jobs.push({ p: i, greedy: true, promise: chat.engine.submit(chat.request(messages, { sampling: { temperature: 0 }, maxTokens, think: o.think }).req) });
    for (let j = 0; j < k; j++) {
      const seed = ((o.seed ?? 0) * 1000003 + i * 7919 + j) >>> 0;
      jobs.push({ p: i, greedy: false, promise: chat.engine.submit(chat.request(messages, { sampling: { ...sampling, seed }, maxTokens, think: o.think }).req) });
    }
  });
  let done = 0;
  for (const j of jobs) void j.promise.then(() => o.onProgress?.(++done, jobs.length), () => {});
  chat.engine.runToCompletion();
  const res = await Promise.all(jobs.map((j) => j.promise));
  const greedyOk = new Array<boolean>(problems.length).fill(false);
  const sampleOk = new Array<number>(problems.length).fill(0);
  const examples: EvalResult['examples'] = [];
  let tokens = 0;
  jobs.forEach((j, i) => {
    const p = problems[j.p]!;
    const text = res[i]!.text;
    tokens += res[i]!.tokens.length;
    const ok = task.verify(p, text).correct;
    if (j.greedy) {
      greedyOk[j.p] = ok;
      if (examples.length < 5) examples.push({ prompt: p.prompt, answer: p.answer, completion: text, correct: ok });
    } else if (ok) sampleOk[j.p]!++;
  });
  const byD = new Map<number, number[]>();
  problems.forEach((p, i) => { const l = byD.get(p.difficulty) ?? []; l.push(i); byD.set(p.difficulty, l); });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const byDifficulty = Object.fromEntries([...byD.entries()].sort((a, b) => a[0] - b[0]).map(([d, idx]) => [String(d), {
    problems: idx.length,
    greedy: mean(idx.map((i) => (greedyOk[i] ? 1 : 0))),
    passAt1: k ? mean(idx.map((i) => sampleOk[i]! / k)) : null,
  }]));
  return {
    task: task.name, problems: problems.length, k,
    greedyAccuracy: mean(greedyOk.map((b) => (b ? 1 : 0))),
    passAt1: k ? mean(sampleOk.map((c) => c / k)) : null,
    byDifficulty, meanCompletionTokens: tokens / Math.max(1, jobs.length), examples,
  };
}
