import type { Command } from '../command.js';
import { parseFlags, numberFlag } from '../args.js';
import { UsageError } from '../../errors.js';
import { runCharDemo } from '../../demo/char-model.js';
import { runReasoningDemo } from '../../demo/reasoning-demo.js';
import { taskNames } from '../../tasks/index.js';

const usage = `r1 demo [options]

The main job: the DeepSeek-R1 recipe in miniature on your CPU. Draws disjoint train/held-out problems
from a built-in verifiable task, trains a BPE tokenizer, builds a tiny DeepSeek-V3 (MLA, DeepSeekMoE with
aux-loss-free routing, one MTP module), pretrains it on reasoning traces, SFTs it on chat-formatted traces
(loss on the assistant only), evaluates held-out accuracy with the generation engine (greedy, R1 reasoning
mode), measures MTP speculative decoding, writes a report folder (report.md, training.png/svg, metrics,
checkpoints, the model as a Hugging Face folder) and shows one reasoning answer.

  --out DIR          report folder (default ./r1-demo)
  --task NAME        ${['arithmetic (default: + and -, 1-2 digits)', ...taskNames().filter((n) => n !== 'arithmetic')].join(', ')}
  --difficulty LIST  comma-separated difficulty levels (task-specific; arithmetic: digits)
  --pretrain-steps N pretraining steps (default 500)
  --sft-steps N      SFT steps (default 400)
  --problems N       training problems (default 12000)
  --test N           held-out problems evaluated (default 200)
  --batch N          sequences per step (default 16) x --seq tokens (default 128)
  --hidden N         model width (default 128; larger runs: 256)
  --layers N         decoder layers (default 4)
  --experts N        routed experts (default 8; a multiple of 4 groups)
  --lr X             peak learning rate (default 3e-3)
  --seed N           seed (default 0)
  --char             instead: the tensor-engine demo (a char-level transformer, seconds)
  --json             quiet; one JSON line at the end: {"task","params","trainSeconds","heldOutAccuracy","reportDir",...}`;

const demo: Command = {
  name: 'demo',
  summary: 'the main job: train a tiny DeepSeek-V3 to reason on arithmetic, evaluate, report',
  usage,
  async run(argv) {
    const { values } = parseFlags('demo', argv, {
      out: { type: 'string' }, task: { type: 'string' }, difficulty: { type: 'string' }, 'pretrain-steps': { type: 'string' }, 'sft-steps': { type: 'string' },
      problems: { type: 'string' }, test: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' }, hidden: { type: 'string' }, layers: { type: 'string' },
      experts: { type: 'string' }, lr: { type: 'string' }, seed: { type: 'string' }, char: { type: 'boolean' }, steps: { type: 'string' },
    }, false);
    if (values['help']) { console.log(usage); return 0; }
    const json = values['json'] === true;
    const seed = numberFlag('demo', 'seed', values['seed'], { int: true, min: 0, def: 0 });
    if (values['char']) {
      const steps = numberFlag('demo', 'steps', values['steps'], { int: true, min: 1, def: 300 });
      const batch = numberFlag('demo', 'batch', values['batch'], { int: true, min: 1, def: 16 });
      const res = runCharDemo({ steps, batch, seed, onStep: (step, loss, tps) => { if (!json && (step === 1 || step % 50 === 0 || step === steps)) process.stdout.write(`step ${step}/${steps}  loss ${loss.toFixed(4)}  ${tps.toFixed(0)} tok/s\n`); } });
      if (json) console.log(JSON.stringify(res));
      else console.log(`${res.params.toLocaleString()} parameters: loss ${res.firstLoss.toFixed(3)} -> ${res.finalLoss.toFixed(3)} in ${res.seconds.toFixed(1)} s\nsample: "To add two numbers${res.sample}"`);
      return 0;
    }
    if (values['steps'] !== undefined) throw new UsageError("r1 demo: --steps belongs to --char; use --pretrain-steps / --sft-steps");
    const hidden = numberFlag('demo', 'hidden', values['hidden'], { int: true, min: 32, def: 128 });
    if (hidden % 32 !== 0) throw new UsageError(`r1 demo: --hidden must be a multiple of 32, got ${hidden}`);
    const experts = numberFlag('demo', 'experts', values['experts'], { int: true, min: 4, def: 8 });
    if (experts % 4 !== 0) throw new UsageError(`r1 demo: --experts must be a multiple of 4 (4 expert groups), got ${experts}`);
    const difficulties = values['difficulty'] === undefined ? undefined : String(values['difficulty']).split(',').map((s, i) => {
      const v = Number(s);
      if (!Number.isInteger(v) || v < 1) throw new UsageError(`r1 demo: --difficulty item ${i + 1} ('${s}') must be a positive integer`);
      return v;
    });
    const log = json ? () => {} : (l: string) => console.log(l);
    const r = await runReasoningDemo({
      task: values['task'] as string | undefined, difficulties, seed, hidden, experts,
      outDir: values['out'] as string | undefined,
      pretrainSteps: numberFlag('demo', 'pretrain-steps', values['pretrain-steps'], { int: true, min: 1, def: 500 }),
      sftSteps: numberFlag('demo', 'sft-steps', values['sft-steps'], { int: true, min: 1, def: 400 }),
      trainProblems: numberFlag('demo', 'problems', values['problems'], { int: true, min: 10, def: 12000 }),
      testProblems: numberFlag('demo', 'test', values['test'], { int: true, min: 1, def: 200 }),
      batch: numberFlag('demo', 'batch', values['batch'], { int: true, min: 1, def: 16 }),
      seqLen: numberFlag('demo', 'seq', values['seq'], { int: true, min: 16, def: 128 }),
      layers: numberFlag('demo', 'layers', values['layers'], { int: true, min: 2, def: 4 }),
      lr: numberFlag('demo', 'lr', values['lr'], { min: 0, def: 3e-3 }),
      stream: json ? null : process.stderr,
      log,
    });
    if (json) {
      console.log(JSON.stringify({ task: r.task, params: r.params, trainSeconds: r.trainSeconds, heldOutAccuracy: r.heldOutAccuracy, reportDir: r.reportDir, accuracyByDifficulty: r.accuracyByDifficulty, mtpAcceptance: r.mtp.acceptance, totalSeconds: r.totalSeconds }));
    } else {
      console.log(`\nUser: ${r.sample.prompt}\n\x1b[2m<think>\n${r.sample.reasoning}</think>\x1b[0m\n\n${r.sample.content}\n(${r.sample.correct ? 'correct' : 'wrong'})`);
      console.log(`\nheld-out accuracy ${(r.heldOutAccuracy * 100).toFixed(1)}% on ${r.testProblems} problems; trained in ${r.trainSeconds.toFixed(0)} s; report: ${r.reportDir}/report.md`);
    }
    return 0;
  },
};
export default demo;
