/** `r1 pretrain` and `r1 sft`: one implementation, two data conventions. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from './command.js';
import { parseFlags, numberFlag } from './args.js';
import { UsageError } from '../errors.js';
import { loadModel, buildModel, type CausalLM } from '../models/load.js';
import { loadConfig } from '../models/config.js';
import { Tokenizer } from '../io/tokenizer/tokenizer.js';
import { chatTemplateFromConfig } from '../io/chat-template.js';
import { readJsonl, tokenizeRows, padIdOf, type Row } from '../train/data.js';
import { scheduleFlags, scheduleUsage, parseSchedule } from '../train/schedule.js';
import { runTraining } from '../train/run.js';
import { getTask, taskNames } from '../tasks/index.js';

/** An AdamW beta: a number in [0, 1). */
function betaFlag(command: string, flag: string, raw: unknown, def: number): number {
  const v = numberFlag(command, flag, raw, { min: 0, def });
  if (v >= 1) throw new UsageError(`r1 ${command}: --${flag} must be below 1, got ${v}`);
  return v;
}

export function trainCommand(kind: 'pretrain' | 'sft'): Command {
  const name = kind;
  const usage = `r1 ${name} --model <folder|config.json> --out <dir> (--data <file.jsonl> | --task <name>) --lr X [options]

${kind === 'pretrain'
    ? 'Pretrain (or continue pretraining) a causal LM on text: every token is trained, documents are packed into\nwindows with EOS between them. JSONL rows: {"text"} (other row kinds are rendered with the chat template).'
    : 'Supervised fine-tuning on conversations, loss on assistant tokens only (the chat template renders the\nrest). JSONL rows: {"messages":[{"role","content"}...]} or {"prompt","completion"} (HF datasets conventions).'}
Writes <out>/metrics.jsonl, <out>/checkpoints/checkpoint-N (atomic, resumable) and <out>/model (a Hugging
Face folder with the tokenizer). DeepSeek-V3 models also train their MTP modules and update routing biases.

  --model PATH         a Hugging Face folder (its weights are the start), or a config.json (random init)
  --tokenizer DIR      folder with tokenizer.json/tokenizer_config.json (default: the model folder)
  --data FILE          JSONL training data
  --task NAME          or generate data from a built-in task (${taskNames().join(', ')}): problem + reasoning trace
  --problems N         task problems to generate (default 5000)
  --difficulty N       task difficulty (default: all levels mixed)
  --out DIR            output folder (required)
  --steps N            optimizer steps (default 200)
  --batch N            sequences per micro-batch (default 8)
  --seq N              tokens per sequence (default 256)
  --grad-accum N       micro-batches per step (default 1)
  --no-pack            one example per row, padded (default: packed windows)
  --seed N             data order and init seed (default 0)
  --save-every N       checkpoint every N steps (default 0: at the end only)
  --resume             continue from the newest checkpoint in <out>/checkpoints
  --clip X             gradient-norm clip (default 1.0; 0 = off)
  --weight-decay X     AdamW weight decay (default 0.1)
  --adam-beta1 X       AdamW beta1 (default 0.9)
  --adam-beta2 X       AdamW beta2 (default 0.999; DeepSeek-V3 pretrained with 0.95)
  --mtp-weight X       DeepSeek-V3: MTP loss weight lambda (default 0.3)
  --bias-gamma X       DeepSeek-V3: aux-loss-free bias update speed (default 0.001)
  --balance-alpha X    DeepSeek-V3: sequence-wise balance loss weight (default 0)
  --precision P        f32 (default) or fp8: DeepSeek-V3 FP8 mixed precision (section 3.3): attention/MLP/expert
                       Linears' Fprop, Dgrad and Wgrad GEMMs on E4M3 operands (1x128 activation tiles, 128x128
                       weight blocks), AdamW moments in BF16; embeddings, output head, MoE gate, norms and
                       attention stay f32, as do master weights and gradients
${scheduleUsage}
  --json               quiet; one JSON summary line at the end`;
  return {
    name,
    summary: kind === 'pretrain' ? 'pretrain a model on text (JSONL or a built-in task)' : 'supervised fine-tuning on conversations (loss on assistant tokens)',
    usage,
    async run(argv) {
      const { values } = parseFlags(name, argv, {
        model: { type: 'string' }, tokenizer: { type: 'string' }, data: { type: 'string' }, task: { type: 'string' }, problems: { type: 'string' },
        difficulty: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' },
        'grad-accum': { type: 'string' }, 'no-pack': { type: 'boolean' }, seed: { type: 'string' }, 'save-every': { type: 'string' }, resume: { type: 'boolean' },
        clip: { type: 'string' }, 'weight-decay': { type: 'string' }, 'adam-beta1': { type: 'string' }, 'adam-beta2': { type: 'string' }, 'mtp-weight': { type: 'string' }, 'bias-gamma': { type: 'string' }, 'balance-alpha': { type: 'string' },
        precision: { type: 'string' },
        ...scheduleFlags,
      }, false);
      if (values['help']) { console.log(usage); return 0; }
      const need = (k: string) => { if (values[k] === undefined) throw new UsageError(`r1 ${name}: --${k} is required. See 'r1 ${name} --help'.`); return String(values[k]); };
      const modelPath = need('model');
      const out = need('out');
      if ((values['data'] === undefined) === (values['task'] === undefined)) throw new UsageError(`r1 ${name}: give exactly one of --data or --task`);
      const steps = numberFlag(name, 'steps', values['steps'], { int: true, min: 1, def: 200 });
      const lr = parseSchedule(values, `r1 ${name}`, steps);
      const seed = numberFlag(name, 'seed', values['seed'], { int: true, min: 0, def: 0 });
      const json = values['json'] === true;
      if (!existsSync(modelPath)) throw new UsageError(`r1 ${name}: --model ${modelPath} does not exist`);
      const seqLen = numberFlag(name, 'seq', values['seq'], { int: true, min: 2, def: 256 });
      const precision = String(values['precision'] ?? 'f32');
      if (precision !== 'f32' && precision !== 'fp8') throw new UsageError(`r1 ${name}: --precision must be f32 or fp8, got '${precision}'`);
      let model: CausalLM;
      let tokDir: string;
      if (statSync(modelPath).isDirectory()) {
        model = loadModel(modelPath, { maxPositions: Math.max(seqLen, 64) }).model;
        tokDir = (values['tokenizer'] as string | undefined) ?? modelPath;
      } else {
        model = buildModel(loadConfig(modelPath), { seed, maxPositions: Math.max(seqLen, 64) });
        if (values['tokenizer'] === undefined) throw new UsageError(`r1 ${name}: --tokenizer is required when --model is a config.json`);
        tokDir = String(values['tokenizer']);
      }
      if (!existsSync(join(tokDir, 'tokenizer.json'))) throw new UsageError(`r1 ${name}: ${tokDir} has no tokenizer.json (use --tokenizer)`);
      const tok = Tokenizer.load(tokDir);
      if (tok.model.idToToken.length > model.config.vocabSize) throw new UsageError(`r1 ${name}: the tokenizer has ${tok.model.idToToken.length} tokens but the model's vocab_size is ${model.config.vocabSize}`);
      let rows: Row[];
      if (values['data'] !== undefined) rows = readJsonl(String(values['data']));
      else {
        const task = getTask(String(values['task']));
        const n = numberFlag(name, 'problems', values['problems'], { int: true, min: 1, def: 5000 });
        const difficulty = values['difficulty'] === undefined ? undefined : numberFlag(name, 'difficulty', values['difficulty'], { int: true });
        if (difficulty !== undefined && !task.difficulties.includes(difficulty)) throw new UsageError(`r1 ${name}: --difficulty ${difficulty} is not one of ${task.name}'s levels (${task.difficulties.join(', ')})`);
        rows = task.sample('train', n, { seed, difficulty }).map((p, i): Row => kind === 'pretrain'
          ? { kind: 'text', text: `${p.prompt}\n${task.solve(p)}`, where: `${task.name}:${i + 1}` }
          : { kind: 'messages', messages: [{ role: 'user', content: p.prompt }, { role: 'assistant', content: task.solve(p) }], where: `${task.name}:${i + 1}` });
      }
      const template = tok.config?.chatTemplate ? chatTemplateFromConfig(tok.config) : null;
      const examples = tokenizeRows(rows, tok, template);
      const r = runTraining({
        model, examples, steps, lr, seed, outDir: out, tokenizerDir: tokDir, seqLen,
        batchSize: numberFlag(name, 'batch', values['batch'], { int: true, min: 1, def: 8 }),
        gradAccum: numberFlag(name, 'grad-accum', values['grad-accum'], { int: true, min: 1, def: 1 }),
        pack: values['no-pack'] !== true, padId: padIdOf(tok),
        saveEvery: numberFlag(name, 'save-every', values['save-every'], { int: true, min: 0, def: 0 }),
        resume: values['resume'] === true,
        clip: numberFlag(name, 'clip', values['clip'], { min: 0, def: 1.0 }),
        weightDecay: numberFlag(name, 'weight-decay', values['weight-decay'], { min: 0, def: 0.1 }),
        betas: [betaFlag(name, 'adam-beta1', values['adam-beta1'], 0.9), betaFlag(name, 'adam-beta2', values['adam-beta2'], 0.999)],
        mtpWeight: numberFlag(name, 'mtp-weight', values['mtp-weight'], { min: 0, def: 0.3 }),
        biasGamma: numberFlag(name, 'bias-gamma', values['bias-gamma'], { min: 0, def: 0.001 }),
        balanceAlpha: numberFlag(name, 'balance-alpha', values['balance-alpha'], { min: 0, def: 0 }),
        precision,
        label: name, progressStream: json ? null : process.stderr,
      });
      const summary = { command: name, precision, steps: r.steps, resumedFrom: r.resumedFrom, firstLoss: r.firstLoss, finalLoss: r.finalLoss, seconds: r.seconds, tokensPerSecond: r.tokensPerSecond, examples: examples.length, modelDir: r.modelDir, metrics: r.metricsPath };
      if (json) console.log(JSON.stringify(summary));
      else console.log(`${name}: ${r.steps} steps, loss ${r.firstLoss.toFixed(4)} -> ${r.finalLoss.toFixed(4)}, ${r.tokensPerSecond.toFixed(0)} tokens/s; model: ${r.modelDir}; metrics: ${r.metricsPath}`);
      model.dispose();
      return 0;
    },
  };
}
