import { createInterface } from 'node:readline';
import type { Command } from '../command.js';
import { parseFlags } from '../args.js';
import { UsageError } from '../../errors.js';
import type { ChatMessage } from '../../io/chat-template.js';
import { SAMPLING_FLAGS, SAMPLING_USAGE, generationFlags, loadChatModel } from '../sampling-flags.js';

const usage = `r1 chat <model-dir> [options]

Interactive multi-turn chat with a local Hugging Face model folder, streaming each answer; the thinking
is shown dimmed. The whole history is re-rendered through the model's chat template every turn (R1's
template drops earlier turns' thinking). Reads lines from stdin, so it also works with a pipe.

Commands inside the chat:
  /reset          forget the conversation
  /think on|off   force (or not) the "<think>\\n" opening
  /exit           quit (or end of input)

${SAMPLING_USAGE}
  --system STR           a system message (R1 recommends none)`;

const DIM = '\x1b[2m', RESET = '\x1b[0m';

const command: Command = {
  name: 'chat',
  summary: 'interactive multi-turn chat with a model folder',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags('chat', argv, { ...SAMPLING_FLAGS, system: { type: 'string' } });
    if (values['help']) { console.log(usage); return 0; }
    if (positionals.length !== 1) throw new UsageError(`r1 chat: expected one model folder, got ${positionals.length} arguments. See 'r1 chat --help'.`);
    const g = generationFlags('chat', values);
    const chat = loadChatModel(positionals[0]!, g.context, false, undefined, g.weights, g.kvCache);
    const tty = process.stdout.isTTY === true;
    const system: ChatMessage[] = values['system'] ? [{ role: 'system', content: String(values['system']) }] : [];
    let history: ChatMessage[] = [];
    let think = g.think;
    const rl = createInterface({ input: process.stdin, terminal: process.stdin.isTTY === true });
    const prompt = () => { if (process.stdin.isTTY) process.stdout.write('>>> '); };
    prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (!line) { prompt(); continue; }
      if (line === '/exit' || line === '/bye') break;
      if (line === '/reset') { history = []; console.log('(conversation cleared)'); prompt(); continue; }
      if (line.startsWith('/think')) {
        const arg = line.split(/\s+/)[1];
        if (arg !== 'on' && arg !== 'off') console.log('usage: /think on|off');
        else { think = arg === 'on'; console.log(`(thinking ${think ? 'forced' : 'not forced'})`); }
        prompt();
        continue;
      }
      if (line.startsWith('/')) { console.log('commands: /reset, /think on|off, /exit'); prompt(); continue; }
      history.push({ role: 'user', content: line });
      let inReasoning = false;
      try {
        const r = await chat.chat([...system, ...history], {
          sampling: g.sampling, maxTokens: g.maxTokens, stop: g.stop, think, thinkingBudget: g.thinkingBudget,
          onReasoning: (t) => {
            if (!inReasoning) { process.stdout.write(tty ? `${DIM}<think>\n` : '<think>\n'); inReasoning = true; }
            process.stdout.write(t);
          },
          onContent: (t) => {
            if (inReasoning) { process.stdout.write(tty ? `</think>${RESET}\n\n` : '</think>\n\n'); inReasoning = false; }
            process.stdout.write(t);
          },
        });
        if (inReasoning && tty) process.stdout.write(RESET);
        process.stdout.write(`\n${tty ? DIM : ''}[${r.tokens.length} tokens, ${r.tokensPerSecond.toFixed(1)} tokens/s]${tty ? RESET : ''}\n`);
        // The assistant turn goes back with its thinking; the template decides what to keep of it.
        history.push({ role: 'assistant', content: r.reasoning ? `<think>\n${r.reasoning}</think>\n\n${r.content}` : r.content });
      } catch (e) {
        history.pop();
        console.error(`r1 chat: ${(e as Error).message}`);
      }
      prompt();
    }
    rl.close();
    chat.dispose();
    return 0;
  },
};
export default command;
