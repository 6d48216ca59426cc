/** Sampling and generation flags shared by `r1 run`, `r1 chat` and `r1 eval` (OpenAI/Ollama names). */
import type { FlagSpec, Parsed } from './args.js';
import { numberFlag } from './args.js';
import type { SamplingParams } from '../infer/sampler.js';
import { Progress } from './progress.js';
import { ChatModel } from '../infer/chat.js';

export const SAMPLING_FLAGS: FlagSpec = {
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  'min-p': { type: 'string' },
  'repeat-penalty': { type: 'string' },
  'presence-penalty': { type: 'string' },
  'frequency-penalty': { type: 'string' },
  seed: { type: 'string' },
  'max-tokens': { type: 'string' },
  stop: { type: 'string', multiple: true },
  'no-think': { type: 'boolean' },
  'thinking-budget': { type: 'string' },
  'context': { type: 'string' },
};

export const SAMPLING_USAGE = `  --temperature T        softmax temperature (default 0.6, or generation_config.json; 0 = greedy)
  --top-p P              nucleus sampling mass (default 0.95)
  --top-k K              keep the K most likely tokens (0 = off)
  --min-p P              drop tokens below P x the top probability
  --repeat-penalty R     HF repetition penalty (1 = off)
  --presence-penalty X   OpenAI presence penalty over generated tokens
  --frequency-penalty X  OpenAI frequency penalty over generated tokens
  --seed N               sampling seed (same seed, same output)
  --max-tokens N         new tokens at most (default: up to the context)
  --stop STR             stop string (repeatable)
  --no-think             do not force the "<think>\\n" opening
  --thinking-budget N    after N thinking tokens insert "\\n</think>\\n\\n" and answer
  --context N            positions to allocate (default min(max_position_embeddings, 4096))`;

export interface GenerationFlags {
  sampling: SamplingParams;
  maxTokens?: number;
  stop?: string[];
  think: boolean;
  thinkingBudget?: number;
  context?: number;
}

export function generationFlags(cmd: string, v: Parsed['values']): GenerationFlags {
  const opt = (name: string, o: { int?: boolean; min?: number; max?: number } = {}) => (v[name] === undefined ? undefined : numberFlag(cmd, name, v[name], o));
  const sampling: SamplingParams = {};
  const set = <K extends keyof SamplingParams>(k: K, x: number | undefined) => { if (x !== undefined) sampling[k] = x as SamplingParams[K]; };
  set('temperature', opt('temperature', { min: 0 }));
  set('topP', opt('top-p', { min: 0, max: 1 }));
  set('topK', opt('top-k', { int: true, min: 0 }));
  set('minP', opt('min-p', { min: 0, max: 1 }));
  set('repetitionPenalty', opt('repeat-penalty', { min: 0 }));
  set('presencePenalty', opt('presence-penalty', { min: -2, max: 2 }));
  set('frequencyPenalty', opt('frequency-penalty', { min: -2, max: 2 }));
  set('seed', opt('seed', { int: true }));
  const stop = v['stop'] as string[] | undefined;
  return {
    sampling,
    maxTokens: opt('max-tokens', { int: true, min: 1 }),
    stop: stop && stop.length ? stop : undefined,
    think: v['no-think'] !== true,
    thinkingBudget: opt('thinking-budget', { int: true, min: 0 }),
    context: opt('context', { int: true, min: 2 }),
  };
}

/** Load a model folder for chatting, with a progress bar on stderr (none with --json). */
export function loadChatModel(dir: string, context: number | undefined, quiet: boolean, maxBatch?: number): ChatModel {
  let bar: Progress | null = null;
  const m = ChatModel.load(dir, {
    maxPositions: context,
    maxBatch,
    onProgress: (done, total, bytes, totalBytes) => {
      if (quiet) return;
      if (!bar) bar = new Progress({ total: totalBytes, label: 'loading', unit: 'bytes' });
      bar.update(bytes, { tensors: `${done}/${total}` });
    },
  });
  (bar as Progress | null)?.finish();
  return m;
}
