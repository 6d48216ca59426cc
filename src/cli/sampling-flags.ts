/** Sampling and generation flags shared by `r1 run`, `r1 chat` and `r1 eval` (OpenAI/Ollama names). */
import type { FlagSpec, Parsed } from './args.js';
import { numberFlag } from './args.js';
import type { SamplingParams } from '../infer/sampler.js';
import { Progress } from './progress.js';
import { ChatModel } from '../infer/chat.js';
import { parseWeightFormat, type WeightFormat } from '../nn/packed-weights.js';
import { parseKvCache, type KvCacheOption } from '../infer/kv-cache.js';

/** --weights: how Linear weights are held for inference (src/nn/packed-weights.ts). */
export const WEIGHTS_FLAG: FlagSpec = { weights: { type: 'string' }, 'kv-cache': { type: 'string' } };
export const WEIGHTS_USAGE = `  --weights F            Linear weights for inference: f32 (default), bf16 (half the bytes) or fp8 (E4M3 with
                         128x128 block scales, a quarter; an FP8 checkpoint stays as it is). Decode reads every
                         weight per token, so fewer bytes decode faster; bf16/fp8 round the weights slightly
                         (f32 keeps the values; on AVX-512 CPUs they are re-laid out in 16-row panels for the
                         batched kernels; R1_QGEMM_NO_PANELS=1 keeps them row-major)
  --kv-cache T           KV cache values: auto (default: bf16 with --weights bf16/fp8, else f32), f32 or bf16
                         (half the bytes; keys, values and the scaled queries rounded to bf16)`;

/** The --weights value (default f32), with the command's name in the error. */
export function weightsFlag(cmd: string, v: Parsed['values']): WeightFormat {
  return v['weights'] === undefined ? 'f32' : parseWeightFormat(String(v['weights']), `r1 ${cmd}: --weights`);
}
/** The --kv-cache value (default auto). */
export function kvCacheFlag(cmd: string, v: Parsed['values']): KvCacheOption {
  return v['kv-cache'] === undefined ? 'auto' : parseKvCache(String(v['kv-cache']), `r1 ${cmd}: --kv-cache`);
}

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
  ...WEIGHTS_FLAG,
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
  --context N            positions to allocate (default min(max_position_embeddings, 4096))
${WEIGHTS_USAGE}`;

export interface GenerationFlags {
  sampling: SamplingParams;
  maxTokens?: number;
  stop?: string[];
  think: boolean;
  thinkingBudget?: number;
  context?: number;
  /** --weights (default 'f32'). */
  weights: WeightFormat;
  /** --kv-cache (default 'auto'). */
  kvCache: KvCacheOption;
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
    weights: weightsFlag(cmd, v),
    kvCache: kvCacheFlag(cmd, v),
  };
}

/**
 * Load a model folder for chatting, with a progress bar on stderr (none with --json). `weights` packs the Linear
 * weights to bf16/fp8 for inference (one line on stderr says how many and the bytes saved).
 */
export function loadChatModel(dir: string, context: number | undefined, quiet: boolean, maxBatch?: number, weights: WeightFormat = 'f32', kvCache: KvCacheOption = 'auto'): ChatModel {
  let bar: Progress | null = null;
  const m = ChatModel.load(dir, {
    maxPositions: context,
    maxBatch,
    weights,
    f32Panels: true, // chatting is inference only: f32 weights in panels where the kernels run (same values)
    kvCache,
    onProgress: (done, total, bytes, totalBytes) => {
      if (quiet) return;
      if (!bar) bar = new Progress({ total: totalBytes, label: 'loading', unit: 'bytes' });
      bar.update(bytes, { tensors: `${done}/${total}` });
    },
  });
  (bar as Progress | null)?.finish();
  const s = m.loaded.packed;
  if (!quiet && s) {
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    process.stderr.write(`weights: ${s.format}, ${s.layers} linear layers packed (${s.format === 'f32' ? `${mb(s.bytesAfter)} in 16-row panels` : `${mb(s.bytesBefore)} f32 -> ${mb(s.bytesAfter)}`})` +
      `${s.tiedHeadBytes ? `, tied head copy ${mb(s.tiedHeadBytes)}` : ''}${s.fused ? `, ${s.fused} groups of projections fused` : ''}${s.kept.length ? `, ${s.kept.length} kept in f32` : ''}\n`);
  }
  return m;
}
