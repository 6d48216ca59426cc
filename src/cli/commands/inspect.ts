import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../command.js';
import { parseFlags, numberFlag } from '../args.js';
import { UsageError, FormatError } from '../../errors.js';
import { openCheckpoint, type TensorSource } from '../../io/safetensors.js';
import { openHfFolder, summarizeSource, CONFIG_FILE, type SourceSummary } from '../../io/hf-folder.js';
import { isDeepseek, type ModelConfig } from '../../models/config.js';
import { countParameters, formatCount } from '../../models/params.js';

const usage = `r1 inspect <file-or-folder> [--json] [--summary] [--limit N]

Describe a checkpoint without loading its weights (only the safetensors headers are read):
a .safetensors file, a model.safetensors.index.json, or a Hugging Face model folder.

Prints every tensor (name, dtype, shape), the total parameter count and bytes, a dtype histogram,
the files' __metadata__, and for folders a config.json summary, the parameter count config.json
implies (r1 params) next to the count the checkpoint holds, and which tokenizer files are present.
DeepSeek FP8 checkpoints: F8_E4M3 weights and their weight_scale_inv block scales are counted apart.

  --json      one JSON object: {path, kind, files, metadata, config, tensors, totals, dtypes, ...}
  --summary   omit the per-tensor list
  --limit N   list at most N tensors (text and JSON)`;

export interface ConfigSummary {
  modelType: string | null;
  architectures: string[];
  /** Key sizes, as HF names them (from the typed config when available, else raw config.json). */
  fields: Record<string, unknown>;
  /** Parameters config.json implies (main model + MTP, as stored in HF checkpoints), or null when not computable. */
  expectedParams: number | null;
}

export interface InspectReport {
  path: string;
  kind: 'file' | 'index' | 'folder';
  config: ConfigSummary | null;
  configError: string | null;
  generationConfig: Record<string, unknown> | null;
  tokenizer: { tokenizerJson: boolean; tokenizerConfig: boolean } | null;
  weights: SourceSummary | null;
}

const RAW_KEYS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'max_position_embeddings', 'torch_dtype', 'tie_word_embeddings', 'rope_theta', 'q_lora_rank', 'kv_lora_rank',
  'n_routed_experts', 'n_shared_experts', 'num_experts_per_tok', 'moe_intermediate_size', 'first_k_dense_replace',
  'num_nextn_predict_layers',
];

function summarizeConfig(raw: Record<string, unknown>, cfg: ModelConfig | null): ConfigSummary {
  const fields: Record<string, unknown> = {};
  if (cfg) {
    Object.assign(fields, {
      vocab_size: cfg.vocabSize, hidden_size: cfg.hiddenSize, intermediate_size: cfg.intermediateSize,
      num_hidden_layers: cfg.numHiddenLayers, num_attention_heads: cfg.numAttentionHeads, num_key_value_heads: cfg.numKeyValueHeads,
      head_dim: cfg.headDim, max_position_embeddings: cfg.maxPositionEmbeddings, torch_dtype: cfg.torchDtype,
      tie_word_embeddings: cfg.tieWordEmbeddings, rope_scaling: cfg.ropeScaling?.type ?? null,
    });
    if (isDeepseek(cfg)) {
      Object.assign(fields, {
        q_lora_rank: cfg.qLoraRank, kv_lora_rank: cfg.kvLoraRank, n_routed_experts: cfg.nRoutedExperts,
        n_shared_experts: cfg.nSharedExperts, num_experts_per_tok: cfg.numExpertsPerTok, moe_intermediate_size: cfg.moeIntermediateSize,
        first_k_dense_replace: cfg.firstKDenseReplace, num_nextn_predict_layers: cfg.numNextnPredictLayers,
      });
    }
    if (cfg.quantization) fields['quantization'] = `${cfg.quantization.quantMethod}${cfg.quantization.fmt ? ` ${cfg.quantization.fmt}` : ''}${cfg.quantization.weightBlockSize ? ` blocks ${cfg.quantization.weightBlockSize.join('x')}` : ''}`;
  } else {
    for (const k of RAW_KEYS) if (raw[k] !== undefined) fields[k] = raw[k];
  }
  let expectedParams: number | null = null;
  if (cfg) {
    try {
      expectedParams = countParameters(cfg).totalWithMtp;
    } catch {
      expectedParams = null; // an architecture the accounting does not cover: leave it out rather than guess
    }
  }
  const arch = raw['architectures'];
  return {
    modelType: typeof raw['model_type'] === 'string' ? raw['model_type'] : null,
    architectures: Array.isArray(arch) ? arch.filter((a): a is string => typeof a === 'string') : [],
    fields,
    expectedParams,
  };
}

/** Build the report for a path (library entry point; the command only formats it). */
export function inspectPath(path: string): InspectReport {
  if (!existsSync(path)) throw new FormatError(`${path}: no such file or folder`);
  const isDir = statSync(path).isDirectory();
  if (isDir && existsSync(join(path, CONFIG_FILE))) {
    const f = openHfFolder(path, { weights: 'optional' });
    try {
      return {
        path, kind: 'folder',
        config: summarizeConfig(f.configRaw, f.config), configError: f.configError,
        generationConfig: f.generationConfig,
        tokenizer: { tokenizerJson: f.tokenizerJson !== null, tokenizerConfig: f.tokenizerConfig !== null },
        weights: f.weights ? summarizeSource(f.weights) : null,
      };
    } finally {
      f.close();
    }
  }
  let src: TensorSource | null = null;
  try {
    src = openCheckpoint(path);
    const kind = isDir ? 'folder' : path.endsWith('.index.json') ? 'index' : 'file';
    return { path, kind, config: null, configError: null, generationConfig: null, tokenizer: null, weights: summarizeSource(src) };
  } finally {
    src?.close();
  }
}

const bytesStr = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);
const countStr = (n: number) => (n >= 1000 ? `${n.toLocaleString('en-US')} (${formatCount(n)})` : String(n));

function formatText(r: InspectReport, list: boolean, limit: number): string {
  const out: string[] = [];
  out.push(`${r.path} (${r.kind === 'folder' ? 'model folder' : r.kind === 'index' ? 'sharded checkpoint index' : 'safetensors file'})`);
  if (r.config) {
    out.push('', `config: ${r.config.modelType ?? '(no model_type)'}${r.config.architectures.length ? ` [${r.config.architectures.join(', ')}]` : ''}`);
    for (const [k, v] of Object.entries(r.config.fields)) if (v !== null && v !== undefined) out.push(`  ${k.padEnd(26)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  if (r.configError) out.push(`  (config.json is not a supported typed config: ${r.configError})`);
  if (r.generationConfig) out.push(`generation_config.json: ${JSON.stringify(r.generationConfig)}`);
  if (r.tokenizer) out.push(`tokenizer: tokenizer.json ${r.tokenizer.tokenizerJson ? 'present' : 'missing'}, tokenizer_config.json ${r.tokenizer.tokenizerConfig ? 'present' : 'missing'}`);
  const w = r.weights;
  if (!w) {
    out.push('', 'weights: none (no model.safetensors or model.safetensors.index.json)');
    if (r.config?.expectedParams) out.push(`config.json implies ${countStr(r.config.expectedParams)} parameters`);
    return out.join('\n');
  }
  out.push('', `files: ${w.files.length}${w.files.length <= 4 ? ` (${w.files.join(', ')})` : ''}, ${bytesStr(w.totals.fileBytes)}`);
  if (Object.keys(w.metadata).length) out.push(`metadata: ${JSON.stringify(w.metadata)}`);
  if (list) {
    const shown = w.tensors.slice(0, limit);
    const nameW = Math.min(72, Math.max(4, ...shown.map((t) => t.name.length)));
    out.push('', `${'name'.padEnd(nameW)}  ${'dtype'.padEnd(8)} shape`);
    for (const t of shown) out.push(`${t.name.padEnd(nameW)}  ${t.dtype.padEnd(8)} [${t.shape.join(', ')}]${t.scaleInv ? '  (fp8, block scales in ' + t.scaleInv + ')' : ''}`);
    if (shown.length < w.tensors.length) out.push(`... ${w.tensors.length - shown.length} more (use --limit)`);
  }
  out.push('', `${'dtype'.padEnd(8)} ${'tensors'.padStart(8)} ${'elements'.padStart(22)} ${'bytes'.padStart(12)}`);
  for (const [d, h] of Object.entries(w.dtypes).sort((a, b) => b[1].bytes - a[1].bytes)) {
    out.push(`${d.padEnd(8)} ${String(h.tensors).padStart(8)} ${h.params.toLocaleString('en-US').padStart(22)} ${bytesStr(h.bytes).padStart(12)}`);
  }
  out.push('', `tensors:    ${w.totals.tensors}`);
  out.push(`parameters: ${countStr(w.totals.params)}${w.totals.scaleTensors ? ` (+ ${w.totals.scaleParams.toLocaleString('en-US')} FP8 block-scale values in ${w.totals.scaleTensors} weight_scale_inv tensors)` : ''}`);
  out.push(`data bytes: ${w.totals.bytes.toLocaleString('en-US')} (${bytesStr(w.totals.bytes)})`);
  if (r.config?.expectedParams !== null && r.config?.expectedParams !== undefined) {
    const e = r.config.expectedParams;
    out.push(`config.json implies ${countStr(e)} parameters: ${e === w.totals.params ? 'matches' : `checkpoint differs by ${(w.totals.params - e).toLocaleString('en-US')}`}`);
  }
  return out.join('\n');
}

const cmd: Command = {
  name: 'inspect',
  summary: 'list a checkpoint\'s tensors, dtypes, shapes, parameter count and config (headers only)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags('inspect', argv, { summary: { type: 'boolean' }, limit: { type: 'string' } });
    if (values['help']) { console.log(usage); return 0; }
    if (positionals.length !== 1) throw new UsageError(`r1 inspect: expected one <file-or-folder>, got ${positionals.length}. See 'r1 inspect --help'.`);
    const limit = numberFlag('inspect', 'limit', values['limit'], { int: true, min: 0, def: Number.MAX_SAFE_INTEGER });
    const r = inspectPath(positionals[0]!);
    if (values['json']) {
      const w = r.weights;
      const tensors = w && !values['summary'] ? w.tensors.slice(0, limit) : undefined;
      console.log(JSON.stringify({ ...r, weights: w ? { ...w, tensors } : null }));
      return 0;
    }
    console.log(formatText(r, !values['summary'], limit));
    return 0;
  },
};
export default cmd;
