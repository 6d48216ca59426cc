import type { Command } from '../command.js';
import { parseFlags } from '../args.js';
import { UsageError } from '../../errors.js';
import * as T from '../../tensor/index.js';
import { loadModel } from '../../models/load.js';
import { DeepseekV3ForCausalLM } from '../../models/deepseek-v3.js';

const usage = `r1 logits <model-dir> --ids 1,2,3 [--json] [--top N] [--text "..."]

Load a Hugging Face model folder (config.json + safetensors) and print the logits at every position of
the given token sequence — the tool for comparing r1ts with another implementation.

  --ids LIST     comma-separated token ids (or --text with the folder's tokenizer.json)
  --text STR     encode STR with the folder's tokenizer instead of --ids
  --json         {"ids": [...], "logits": [[...], ...]} (+ "mtp_logits" when the model has MTP modules:
                 row t predicts token t+2)
  --top N        text mode: show the N highest logits per position (default 5)
  --absorbed     DeepSeek models: use the absorbed-MLA inference path instead of the naive one`;

const command: Command = {
  name: 'logits',
  summary: 'print a model\'s logits for a token sequence (compare with another implementation)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags('logits', argv, { ids: { type: 'string' }, text: { type: 'string' }, top: { type: 'string' }, absorbed: { type: 'boolean' } });
    if (values['help']) { console.log(usage); return 0; }
    if (positionals.length !== 1) throw new UsageError(`r1 logits: expected one model folder, got ${positionals.length} arguments. See 'r1 logits --help'.`);
    const dir = positionals[0]!;
    if ((values['ids'] === undefined) === (values['text'] === undefined)) throw new UsageError('r1 logits: give exactly one of --ids or --text');
    const top = values['top'] === undefined ? 5 : Number(values['top']);
    if (!Number.isInteger(top) || top < 1) throw new UsageError(`r1 logits: --top must be a positive integer, got '${String(values['top'])}'`);
    const { model, config, tokenizer } = loadModel(dir);
    let ids: number[];
    if (values['ids'] !== undefined) {
      const parts = String(values['ids']).split(',').map((s) => s.trim());
      ids = parts.map((s, i) => {
        const v = Number(s);
        if (s === '' || !Number.isInteger(v) || v < 0) throw new UsageError(`r1 logits: --ids item ${i + 1} ('${s}') is not a token id`);
        if (v >= config.vocabSize) throw new UsageError(`r1 logits: token id ${v} is outside the vocabulary (vocab_size ${config.vocabSize})`);
        return v;
      });
    } else {
      if (!tokenizer) throw new UsageError(`r1 logits: --text needs ${dir}/tokenizer.json`);
      ids = tokenizer.encode(String(values['text']));
    }
    if (ids.length === 0) throw new UsageError('r1 logits: the sequence is empty');
    const ctx = model.cos.shape[0]!;
    if (ids.length > ctx) throw new UsageError(`r1 logits: ${ids.length} tokens exceed the context of ${ctx}`);
    const V = config.vocabSize;
    const { logits, mtp } = T.noGrad(() => T.tidy(() => {
      const x = T.tensor([ids], { dtype: 'i32' });
      if (model instanceof DeepseekV3ForCausalLM) {
        const o = model.forward(x, { absorbed: values['absorbed'] === true });
        return { logits: o.logits.toArray() as Float32Array, mtp: o.mtpLogits.length ? (o.mtpLogits[0]!.toArray() as Float32Array) : null };
      }
      return { logits: model.forward(x).logits.toArray() as Float32Array, mtp: null };
    }));
    const rows = (a: Float32Array) => Array.from({ length: a.length / V }, (_, i) => Array.from(a.subarray(i * V, (i + 1) * V)));
    if (values['json']) {
      const out: Record<string, unknown> = { ids, logits: rows(logits) };
      if (mtp) out['mtp_logits'] = rows(mtp);
      console.log(JSON.stringify(out));
    } else {
      console.log(`${config.modelType}, ${ids.length} tokens, vocab ${V}${mtp ? ', with MTP' : ''}`);
      rows(logits).forEach((r, t) => {
        const best = r.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, top);
        const show = best.map(([v, i]) => `${tokenizer ? JSON.stringify(tokenizer.decode([i])) : i}:${v.toFixed(4)}`).join('  ');
        console.log(`${String(t).padStart(4)} id ${String(ids[t]).padEnd(6)} ${show}`);
      });
    }
    model.dispose();
    return 0;
  },
};
export default command;
