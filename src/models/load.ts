/**
 * Build a model from a local Hugging Face folder (config.json + model.safetensors or shards).
 * Tensor names map 1:1 to parameter paths; missing, unexpected or mis-shaped tensors are one error listing all offenders.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../errors.js';
import { openSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { loadConfig, isDeepseek, type ModelConfig } from './config.js';
import { DenseCausalLM } from './llama.js';
import { DeepseekV3ForCausalLM } from './deepseek-v3.js';
import { tidy } from '../tensor/index.js';

export type CausalLM = DenseCausalLM | DeepseekV3ForCausalLM;

export function buildModel(config: ModelConfig, opts: { init?: 'random' | 'empty'; seed?: number; maxPositions?: number } = {}): CausalLM {
  return isDeepseek(config) ? new DeepseekV3ForCausalLM(config, opts) : new DenseCausalLM(config, opts);
}

/** The safetensors files of a folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
export function openWeights(dir: string): SafetensorsFile[] {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let j: { weight_map?: Record<string, string> };
    try {
      j = JSON.parse(readFileSync(index, 'utf8')) as typeof j;
    } catch (e) {
      throw new FormatError(`${index}: not valid JSON (${(e as Error).message})`);
    }
    if (!j.weight_map || typeof j.weight_map !== 'object') throw new FormatError(`${index}: missing weight_map`);
    const shards = [...new Set(Object.values(j.weight_map))];
    const files = shards.map((s) => {
      if (typeof s !== 'string' || s.includes('/') || s.includes('\\')) throw new FormatError(`${index}: bad shard name ${JSON.stringify(s)}`);
      return openSafetensors(join(dir, s));
    });
    for (const [name, shard] of Object.entries(j.weight_map)) {
      const f = files[shards.indexOf(shard)]!;
      if (!f.tensors.has(name)) throw new FormatError(`${index}: tensor '${name}' is listed in ${shard} but not there`);
    }
    return files;
  }
  if (existsSync(single)) return [openSafetensors(single)];
  for (const f of ['pytorch_model.bin', 'model.pt']) if (existsSync(join(dir, f))) openSafetensors(join(dir, f));
  throw new FormatError(`${dir}: no model.safetensors or model.safetensors.index.json`);
}

/** MTP layers in HF checkpoints carry copies of the shared embedding and head; they are accepted and checked for shape only. */
function isSharedCopy(name: string, config: ModelConfig): boolean {
  if (!isDeepseek(config)) return false;
  const m = /^model\.layers\.(\d+)\.(embed_tokens\.weight|shared_head\.head\.weight)$/.exec(name);
  return !!m && Number(m[1]) >= config.numHiddenLayers;
}

export function loadModel(dir: string, opts: { maxPositions?: number; mtp?: boolean } = {}): { config: ModelConfig; model: CausalLM } {
  const config = loadConfig(join(dir, 'config.json'));
  const model = isDeepseek(config) ? new DeepseekV3ForCausalLM(config, { init: 'empty', maxPositions: opts.maxPositions, mtp: opts.mtp }) : new DenseCausalLM(config, { init: 'empty', maxPositions: opts.maxPositions });
  const files = openWeights(dir);
  try {
    const params = new Map(model.namedParameters());
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const f of files) {
      for (const name of f.names) {
        const p = params.get(name);
        if (!p) {
          if (isSharedCopy(name, config)) continue;
          if (opts.mtp === false && isDeepseek(config) && /^model\.layers\.(\d+)\./.test(name) && Number(/^model\.layers\.(\d+)\./.exec(name)![1]) >= config.numHiddenLayers) continue;
          problems.push(`unexpected tensor ${name}`);
          continue;
        }
        const info = f.info(name);
        if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
          problems.push(`${name}: shape [${info.shape.join(', ')}] in ${f.path}, config.json implies [${p.shape.join(', ')}]`);
          continue;
        }
        seen.add(name);
        tidy(() => model.setParameter(name, f.read(name)));
      }
    }
    for (const name of params.keys()) if (!seen.has(name)) problems.push(`missing tensor ${name}`);
    if (problems.length) throw new FormatError(`${dir}: weights do not match config.json:\n  ${problems.join('\n  ')}`);
  } finally {
    for (const f of files) f.close();
  }
  return { config, model };
}
