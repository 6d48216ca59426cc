import type { Command } from '../command.js';
import { parseFlags, numberFlag } from '../args.js';
import { UsageError } from '../../errors.js';
import { getTask, taskNames } from '../../tasks/index.js';
import { evaluateTask } from '../../train/evaluate.js';
import { kvCacheFlag, loadChatModel, WEIGHTS_FLAG, weightsFlag } from '../sampling-flags.js';
import { Progress } from '../progress.js';
import { MetricsWriter } from '../../train/metrics.js';

const usage = `r1 eval <model-dir> --task NAME [options]

Accuracy of a model folder on a built-in task's held-out split (never seen in training data the tasks
generate): greedy accuracy, and pass@1 averaged over k samples at DeepSeek-R1's settings (temperature 0.6,
top-p 0.95), as the R1 paper reports it. Answers are checked by the task's rule-based verifier.

  --task NAME        ${taskNames().join(', ')}
  --problems N       held-out problems (default 200)
  --difficulty N     one difficulty level (default: all mixed)
  --k N              samples per problem for pass@1 (default 4; 0 = greedy only)
  --max-tokens N     completion budget (default 256)
  --batch N          sequences decoded together (default 32)
  --seed N           problem draw and sampling seed (default 0)
  --no-think         do not force "<think>\\n"
  --metrics FILE     append the result as a JSONL line (for r1 plot)
  --json             one JSON object
  --weights F        Linear weights: f32 (default), bf16 or fp8 (E4M3 + 128x128 block scales); fewer
                     weight bytes decode faster (see r1 run --help)
  --kv-cache T       KV cache values: auto (bf16 with packed weights, else f32), f32 or bf16`;

const command: Command = {
  name: 'eval',
  summary: 'held-out accuracy on a built-in task (greedy and pass@1 over k samples)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags('eval', argv, {
      task: { type: 'string' }, problems: { type: 'string' }, difficulty: { type: 'string' }, k: { type: 'string' }, 'max-tokens': { type: 'string' },
      batch: { type: 'string' }, seed: { type: 'string' }, 'no-think': { type: 'boolean' }, metrics: { type: 'string' }, ...WEIGHTS_FLAG,
    });
    if (values['help']) { console.log(usage); return 0; }
    if (positionals.length !== 1) throw new UsageError(`r1 eval: expected one model folder, got ${positionals.length} arguments. See 'r1 eval --help'.`);
    if (values['task'] === undefined) throw new UsageError(`r1 eval: --task is required (${taskNames().join(', ')})`);
    const task = getTask(String(values['task']));
    const n = numberFlag('eval', 'problems', values['problems'], { int: true, min: 1, def: 200 });
    const k = numberFlag('eval', 'k', values['k'], { int: true, min: 0, def: 4 });
    const seed = numberFlag('eval', 'seed', values['seed'], { int: true, min: 0, def: 0 });
    const difficulty = values['difficulty'] === undefined ? undefined : numberFlag('eval', 'difficulty', values['difficulty'], { int: true });
    if (difficulty !== undefined && !task.difficulties.includes(difficulty)) throw new UsageError(`r1 eval: --difficulty ${difficulty} is not one of ${task.name}'s levels (${task.difficulties.join(', ')})`);
    const json = values['json'] === true;
    const chat = loadChatModel(positionals[0]!, undefined, json, numberFlag('eval', 'batch', values['batch'], { int: true, min: 1, def: 32 }), weightsFlag('eval', values), kvCacheFlag('eval', values));
    const problems = task.sample('test', n, { seed, difficulty });
    const bar = json ? null : new Progress({ total: n * (k + 1), label: 'eval', unit: 'completions' });
    const r = await evaluateTask(chat, task, problems, { k, seed, maxTokens: numberFlag('eval', 'max-tokens', values['max-tokens'], { int: true, min: 1, def: 256 }), think: values['no-think'] !== true, onProgress: (d) => bar?.update(d) });
    bar?.finish();
    if (values['metrics']) {
      const w = new MetricsWriter(String(values['metrics']), { append: true });
      w.write({ task: r.task, problems: r.problems, accuracy: r.greedyAccuracy, pass_at_1: r.passAt1, k: r.k, completion_tokens: r.meanCompletionTokens });
      w.close();
    }
    if (json) console.log(JSON.stringify(r));
    else {
      console.log(`${r.task}: ${r.problems} held-out problems`);
      console.log(`  greedy accuracy  ${(r.greedyAccuracy * 100).toFixed(1)}%`);
      if (r.passAt1 !== null) console.log(`  pass@1 (k=${r.k}, T=0.6, top-p 0.95)  ${(r.passAt1 * 100).toFixed(1)}%`);
      for (const [d, v] of Object.entries(r.byDifficulty)) console.log(`  difficulty ${d}: ${v.problems} problems, greedy ${(v.greedy * 100).toFixed(1)}%${v.passAt1 !== null ? `, pass@1 ${(v.passAt1 * 100).toFixed(1)}%` : ''}`);
      console.log(`  mean completion ${r.meanCompletionTokens.toFixed(1)} tokens`);
    }
    chat.dispose();
    return 0;
  },
};
export default command;
