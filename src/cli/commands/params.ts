import type { Command } from '../command.js';
import { parseFlags } from '../args.js';
import { UsageError } from '../../errors.js';
import { loadConfig } from '../../models/config.js';
import { COMPONENTS, countParameters, formatCount, fp8ScaleShapes, numel, parameterShapes } from '../../models/params.js';

const usage = `r1 params <config.json | model-dir> [--json] [--list]

Exact parameter accounting of a Hugging Face config (qwen2, llama, deepseek_v3, deepseek_v2), computed from the
list of checkpoint tensor names and shapes: total and activated-per-token parameters with a breakdown by component
(embedding, attention, dense MLP, shared experts, routed experts, gate, norms, head) and the MTP modules.

"active" excludes the embedding lookup (a row read, no FLOPs) and counts the lm_head matmul; "active + embedding"
adds the embedding matrix. Routed experts count num_experts_per_tok / n_routed_experts of their parameters.

  --json   one JSON object: total, active, activeWithEmbedding, mtp, totalWithMtp, components, ...
  --list   print every tensor name and shape instead (with --json: a JSON array)`;

const cmd: Command = {
  name: 'params',
  summary: "count a config's parameters: total, activated per token, by component, MTP",
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags('params', argv, { list: { type: 'boolean' } });
    if (values['help']) { console.log(usage); return 0; }
    if (positionals.length !== 1) throw new UsageError(`r1 params: expected one config.json path, got ${positionals.length}. See 'r1 params --help'.`);
    let path = positionals[0]!;
    if (!path.endsWith('.json')) path = `${path.replace(/\/$/, '')}/config.json`;
    const cfg = loadConfig(path);
    const entries = parameterShapes(cfg);
    if (values['list']) {
      if (values['json']) console.log(JSON.stringify(entries.map((e) => ({ name: e.name, shape: e.shape }))));
      else for (const e of entries) console.log(`${e.name}  [${e.shape.join(', ')}]`);
      return 0;
    }
    const r = countParameters(cfg, entries);
    const scales = fp8ScaleShapes(cfg, entries).reduce((s, e) => s + numel(e.shape), 0);
    if (values['json']) {
      console.log(JSON.stringify({ ...r, fp8ScaleElements: scales, checkpointElements: r.totalWithMtp + scales }));
      return 0;
    }
    const pad = (s: string) => s.padEnd(16);
    const num = (n: number) => `${n.toLocaleString('en-US').padStart(18)}  ${formatCount(n).padStart(8)}`;
    const lines = [`${cfg.modelType} (${path}): ${r.denseLayers} dense + ${r.moeLayers} MoE layers, ${r.tensors} tensors`, ''];
    lines.push(`${pad('component')}${'total'.padStart(28)}${'active/token'.padStart(30)}`);
    for (const k of COMPONENTS) if (k !== 'mtpProjection') lines.push(`${pad(k)}${num(r.components[k])}  ${num(r.activeComponents[k])}`);
    lines.push('');
    lines.push(`${pad('total')}${num(r.total)}    (without MTP)`);
    lines.push(`${pad('active')}${num(r.active)}    (per token, embedding lookup not counted)`);
    lines.push(`${pad('active + emb')}${num(r.activeWithEmbedding)}    (embedding matrix counted)`);
    if (r.mtp > 0) {
      lines.push(`${pad('mtp')}${num(r.mtp)}    (as stored; ${formatCount(r.mtpDetail.unique)} without its embedding/head copies)`);
      lines.push(`${pad('total + mtp')}${num(r.totalWithMtp)}`);
    }
    if (scales > 0) lines.push(`${pad('+ fp8 scales')}${num(r.totalWithMtp + scales)}    (checkpoint elements incl. ${scales.toLocaleString('en-US')} weight_scale_inv)`);
    console.log(lines.join('\n'));
    return 0;
  },
};
export default cmd;
