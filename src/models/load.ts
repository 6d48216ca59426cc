/**
 * Models <-> local Hugging Face folders. Loading reads config.json, then each weight lazily (one tensor in
 * memory at a time besides the model), dequantizing DeepSeek's FP8 block-scaled weights on the way; tensor
 * names map 1:1 to parameter paths, and missing, unexpected or mis-shaped tensors are one error listing
 * every offender. Saving writes a folder transformers loads as is (config.json, safetensors, tokenizer files).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../errors.js';
import { openHfFolder, readWeightF32Into, logicalWeightNames, saveHfFolder, fp8Scales, SCALE_INV_SUFFIX, type SavedFolder } from '../io/hf-folder.js';
import type { TensorSource } from '../io/safetensors.js';
import {
  packableLinears, packsWeights, fuseProjections, packMatrix, fp8Packed, installPacked, packTiedHead, checkNoNaNCodes, type WeightFormat, type PackSummary,
} from '../nn/packed-weights.js';
import { packedBytes, type PackedMatrix } from '../quant/qgemm.js';
import type { WriteTensor } from '../io/safetensors.js';
import { isDeepseek, type ModelConfig } from './config.js';
import { DenseCausalLM } from './llama.js';
import { DeepseekV3ForCausalLM } from './deepseek-v3.js';
import { Linear } from '../nn/linear.js';
import { Tokenizer } from '../io/tokenizer/tokenizer.js';
import { f32ToBf16Bits } from '../tensor/backends/js.js';

export type CausalLM = DenseCausalLM | DeepseekV3ForCausalLM;

export function buildModel(config: ModelConfig, opts: { init?: 'random' | 'empty'; seed?: number; maxPositions?: number; mtp?: boolean; dtype?: 'f32' | 'f64' } = {}): CausalLM {
  return isDeepseek(config) ? new DeepseekV3ForCausalLM(config, opts) : new DenseCausalLM(config, opts);
}

/** MTP layers in HF checkpoints carry copies of the shared embedding and head; they are accepted and checked for shape only. */
function isSharedCopy(name: string, config: ModelConfig): boolean {
  if (!isDeepseek(config)) return false;
  const m = /^model\.layers\.(\d+)\.(embed_tokens\.weight|shared_head\.head\.weight)$/.exec(name);
  return !!m && Number(m[1]) >= config.numHiddenLayers;
}

function mtpLayerIndex(name: string, config: ModelConfig): boolean {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return isDeepseek(config) && !!m && Number(m[1]) >= config.numHiddenLayers;
}

export interface LoadOptions {
  maxPositions?: number;
  /** Load the MTP modules of a DeepSeek-V3 checkpoint (default true when present). */
  mtp?: boolean;
  /** Called after each tensor with (tensors done, total, bytes done, total bytes) — for a progress bar. */
  onProgress?: (done: number, total: number, bytes: number, totalBytes: number) => void;
  /**
   * How Linear weights are held for inference (src/nn/packed-weights.ts): 'f32' (default, trainable), or packed 'bf16' /
   * 'fp8' (E4M3 + 128x128 block scales; inference only). Each weight is packed right after it is read, so the f32
   * copies do not pile up. An FP8 checkpoint's F8_E4M3 weights with 128x128 `weight_scale_inv` load as fp8 as they
   * are in the file (no dequantize / requantize round trip).
   */
  weights?: WeightFormat;
  /** With weights 'f32': re-lay the Linear weights out in f32 panels where the native panel kernels run (AVX-512):
   * faster batched decode, same values, but inference only (packed layers have no autograd). Default false. */
  f32Panels?: boolean;
}

export interface LoadedModel {
  config: ModelConfig;
  model: CausalLM;
  /** tokenizer.json (+ tokenizer_config.json) when the folder has them. */
  tokenizer: Tokenizer | null;
  generationConfig: Record<string, unknown> | null;
  dir: string;
  /** What the Linear weights were packed to (null or absent for f32). */
  packed?: PackSummary | null;
}

/** An FP8 checkpoint weight kept as it is: E4M3 codes + its 128x128 `_scale_inv` (checked as every FP8 read is), no conversion. */
function readFp8Packed(src: TensorSource, name: string): PackedMatrix {
  const { rows, cols, scales } = fp8Scales(src, name, [128, 128]);
  const data = src.readBytes(name);
  checkNoNaNCodes(data, `${src.info(name).file}: tensor '${name}'`);
  return fp8Packed(data, scales, rows, cols); // panels where the fp8 panel kernels run
}

export function loadModel(dir: string, opts: LoadOptions = {}): LoadedModel {
  const folder = openHfFolder(dir);
  try {
    const config = folder.config;
    if (!config) throw new FormatError(`${dir}: ${folder.configError}`);
    const src = folder.weights!;
    const names = logicalWeightNames(src);
    const hasMtp = isDeepseek(config) && names.some((n) => mtpLayerIndex(n, config));
    const mtp = opts.mtp ?? hasMtp;
    const model = isDeepseek(config)
      ? new DeepseekV3ForCausalLM(config, { init: 'empty', maxPositions: opts.maxPositions, mtp: mtp && hasMtp })
      : new DenseCausalLM(config, { init: 'empty', maxPositions: opts.maxPositions });
    let pack: PackSummary | null = null;
    try {
      const params = new Map(model.namedParameters());
      const fmt = opts.weights ?? 'f32';
      if (fmt !== 'f32' && fmt !== 'bf16' && fmt !== 'fp8') throw new FormatError(`loadModel: weights must be 'f32', 'bf16' or 'fp8', got '${String(fmt)}'`);
      const packTargets = packsWeights(fmt, { f32Panels: opts.f32Panels }) ? packableLinears(model) : null;
      if (packTargets) {
        model.eval(); // packed layers are inference-only
        pack = { format: fmt, layers: 0, params: 0, bytesBefore: 0, bytesAfter: 0, tiedHeadBytes: 0, kept: [] };
        for (const [path, m] of model.namedModules()) {
          if (m instanceof Linear && !packTargets!.has(`${path}.weight`)) pack.kept.push(`${path}.weight`);
        }
      }
      const problems: string[] = [];
      const seen = new Set<string>();
      const todo = names.filter((n) => params.has(n));
      const totalBytes = todo.reduce((a, n) => a + (src.info(n).end - src.info(n).begin), 0);
      let done = 0;
      let bytes = 0;
      for (const name of names) {
        const p = params.get(name);
        if (!p) {
          if (isSharedCopy(name, config)) continue;
          if (!mtp && mtpLayerIndex(name, config)) continue;
          problems.push(`unexpected tensor ${name}`);
          continue;
        }
        const info = src.info(name);
        if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
          problems.push(`${name}: shape [${info.shape.join(', ')}] in ${info.file}, config.json implies [${p.shape.join(', ')}]`);
          continue;
        }
        seen.add(name);
        const layer = packTargets?.get(name);
        const path = name.slice(0, -'.weight'.length);
        const bs = folder.fp8BlockSize;
        if (layer && fmt === 'fp8' && info.dtype === 'F8_E4M3' && src.has(name + SCALE_INV_SUFFIX) && (!bs || (bs[0] === 128 && bs[1] === 128))) {
          const packed = readFp8Packed(src, name);
          installPacked(layer, packed, path);
          pack!.layers++; pack!.params += p.size; pack!.bytesBefore += p.size * 4; pack!.bytesAfter += packedBytes(packed);
          bytes += info.end - info.begin;
          opts.onProgress?.(++done, todo.length, bytes, totalBytes);
          continue;
        }
        // Streamed straight into the parameter's storage: no second copy of any tensor (RSS stays ~1x the weights).
        const view = (p.raw as Float32Array).subarray(p.offset, p.offset + p.size);
        readWeightF32Into(src, name, view, { blockSize: bs ?? undefined });
        if (layer) {
          const packed = packMatrix(view, layer.outFeatures, layer.inFeatures, fmt, name);
          installPacked(layer, packed, path); // releases the f32 copy just read
          pack!.layers++; pack!.params += p.size; pack!.bytesBefore += p.size * 4; pack!.bytesAfter += packedBytes(packed);
        }
        bytes += info.end - info.begin;
        opts.onProgress?.(++done, todo.length, bytes, totalBytes);
      }
      for (const name of params.keys()) if (!seen.has(name)) problems.push(`missing tensor ${name}`);
      if (problems.length) {
        const shown = problems.length > 40 ? [...problems.slice(0, 40), `... and ${problems.length - 40} more`] : problems;
        throw new FormatError(`${dir}: weights do not match config.json (${problems.length} problems):\n  ${shown.join('\n  ')}`);
      }
      if (pack) {
        pack.tiedHeadBytes = packTiedHead(model, pack.format);
        pack.fused = fuseProjections(model);
      }
    } catch (e) {
      model.dispose();
      throw e;
    }
    const tokenizer = folder.tokenizerJson ? Tokenizer.load(dir) : null;
    return { config, model, tokenizer, generationConfig: folder.generationConfig, dir, packed: pack };
  } finally {
    folder.close();
  }
}

export interface SaveModelOptions {
  /** Tokenizer files to include: a folder holding tokenizer.json (+ tokenizer_config.json), or contents by name. */
  tokenizerFrom?: string;
  tokenizerFiles?: Record<string, string>;
  generationConfig?: Record<string, unknown>;
  /** Store weights as BF16 (half the bytes) instead of F32. */
  dtype?: 'F32' | 'BF16';
  maxShardBytes?: number;
}

/** f32 -> bf16 bits with the engine's own rounding (round to nearest even, as torch's .to(torch.bfloat16)). */
function f32ToBf16(a: Float32Array): Uint16Array {
  return Uint16Array.from(a, f32ToBf16Bits);
}

/** Write `model` as a Hugging Face folder (atomically: staged, then renamed into place). */
export function saveModel(dir: string, model: CausalLM, opts: SaveModelOptions = {}): SavedFolder {
  const config = model.config;
  const dtype = opts.dtype ?? 'F32';
  const tensors: WriteTensor[] = model.namedParameters().map(([name, t]) => ({
    name, dtype, shape: [...t.shape],
    data: () => {
      const a = t.dtype === 'f32' ? (t.toArray() as Float32Array) : Float32Array.from(t.toArray() as ArrayLike<number>);
      return dtype === 'BF16' ? f32ToBf16(a) : a;
    },
  }));
  const raw: Record<string, unknown> = { ...config.raw };
  raw['torch_dtype'] = dtype === 'BF16' ? 'bfloat16' : 'float32';
  const extraFiles: Record<string, string> = { ...(opts.tokenizerFiles ?? {}) };
  if (opts.tokenizerFrom) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      const p = join(opts.tokenizerFrom, f);
      if (existsSync(p)) extraFiles[f] = readFileSync(p, 'utf8');
    }
    if (!extraFiles['tokenizer.json']) throw new FormatError(`${opts.tokenizerFrom}: no tokenizer.json to copy`);
  }
  return saveHfFolder(dir, { config: raw, tensors, generationConfig: opts.generationConfig, extraFiles, maxShardBytes: opts.maxShardBytes });
}
