import type { Command } from '../command.js';
import { parseFlags } from '../args.js';
import { UsageError } from '../../errors.js';
import { SAMPLING_FLAGS, SAMPLING_USAGE, generationFlags, loadChatModel } from '../sampling-flags.js';

const usage = `r1 run <model-dir> "<prompt>" [options]

Answer one prompt with a local Hugging Face model folder (config.json, safetensors, tokenizer.json,
tokenizer_config.json with a chat template), streaming the output. In reasoning mode (the default, as
DeepSeek-R1) the answer opens with "<think>\\n"; the thinking is shown dimmed on a terminal.

${SAMPLING_USAGE}
  --hide-thinking        print only the answer after </think>
  --system STR           a system message (R1 recommends none)
  --json                 one JSON object: {"reasoning","content","tokens","prompt_tokens","tokens_per_s","finish_reason"}`;

const DIM = '\x1b[2m', RESET = '\x1b[0m';

const command: Command = {
  name: 'run',
  summary: 'answer one prompt with a model folder (streams thinking and answer)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags('run', argv, { ...SAMPLING_FLAGS, 'hide-thinking': { type: 'boolean' }, system: { type: 'string' } });
    if (values['help']) { console.log(usage); return 0; }
    if (positionals.length !== 2) throw new UsageError(`r1 run: expected <model-dir> "<prompt>", got ${positionals.length} arguments. See 'r1 run --help'.`);
    const [dir, prompt] = positionals as [string, string];
    const g = generationFlags('run', values);
    const json = values['json'] === true;
    const hide = values['hide-thinking'] === true;
    const chat = loadChatModel(dir, g.context, json, undefined, g.weights, g.kvCache);
    const tty = process.stdout.isTTY === true;
    let inReasoning = false;
    const messages = [...(values['system'] ? [{ role: 'system', content: String(values['system']) }] : []), { role: 'user', content: prompt }];
    const r = await chat.chat(messages, {
      sampling: g.sampling, maxTokens: g.maxTokens, stop: g.stop, think: g.think, thinkingBudget: g.thinkingBudget,
      onReasoning: (t) => {
        if (json || hide) return;
        if (!inReasoning) { process.stdout.write(tty ? `${DIM}<think>\n` : '<think>\n'); inReasoning = true; }
        process.stdout.write(t);
      },
      onContent: (t) => {
        if (json) return;
        if (inReasoning) { process.stdout.write(tty ? `</think>${RESET}\n\n` : '</think>\n\n'); inReasoning = false; }
        process.stdout.write(t);
      },
    });
    if (json) {
      console.log(JSON.stringify({ reasoning: r.reasoning, content: r.content, tokens: r.tokens.length, prompt_tokens: r.promptTokens, tokens_per_s: r.tokensPerSecond, finish_reason: r.finishReason }));
    } else {
      if (inReasoning && tty) process.stdout.write(RESET);
      process.stdout.write('\n');
      process.stderr.write(`${r.tokens.length} tokens, ${r.tokensPerSecond.toFixed(1)} tokens/s, finish: ${r.finishReason}\n`);
    }
    chat.dispose();
    return 0;
  },
};
export default command;
