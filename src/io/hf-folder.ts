/**
 * A local Hugging Face model folder, as `save_pretrained` writes it and the Hub serves it:
 *   config.json                       model hyperparameters (typed by models/config.ts `parseConfig`)
 *   generation_config.json            optional sampling defaults
 *   model.safetensors                 the weights, or
 *   model.safetensors.index.json      {"metadata": {"total_size"}, "weight_map": {tensor: shard}} + model-0000i-of-0000N.safetensors
 *   tokenizer.json, tokenizer_config.json   (only their presence is recorded here; io/tokenizer parses them)
 *
 * DeepSeek-V3/R1 FP8 checkpoints store most linear weights as F8_E4M3 with a `<name>_scale_inv` sibling
 * (`...weight` + `...weight_scale_inv`, F32, one value per 128x128 block, ceil-div at the edges) and declare
 * `quantization_config: {quant_method: "fp8", fmt: "e4m3", weight_block_size: [128, 128]}`. `readWeightF32`
 * dequantizes such a weight on load: w = fp8 * scale_inv per block (DeepSeek-V3 inference/kernel.py weight_dequant,
 * inference/fp8_cast_bf16.py).
 *
 * Saving writes a complete folder atomically: everything is staged in a sibling temp folder, then swapped in with
 * renames, so a reader never sees a half-written model and a crash leaves the previous folder in place.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, openSync, fsyncSync, closeSync, cpSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, FormatError } from '../errors.js';
import { loadConfig, type ModelConfig } from '../models/config.js';
import {
  openSafetensors, openSafetensorsIndex, refusePickle, writeSafetensors, SAFE_DTYPE_SIZE,
  type RawTensor, type TensorSource, type WriteTensor,
} from './safetensors.js';
import { decodeTable } from '../quant/fp8.js';
import { dequantizeBlockwise, scaleShape } from '../quant/blockwise.js';

export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
/** The sibling suffix of DeepSeek's FP8 block scales: `foo.weight` -> `foo.weight_scale_inv`. */
export const SCALE_INV_SUFFIX = '_scale_inv';
/** DeepSeek-V3's weight_block_size, used when config.json does not say. */
export const DEFAULT_FP8_BLOCK: readonly [number, number] = [128, 128];

export interface HfFolder {
  dir: string;
  /** config.json exactly as read. */
  configRaw: Record<string, unknown>;
  /** The typed config, or null when models/config.ts does not support this model (see configError). */
  config: ModelConfig | null;
  configError: string | null;
  generationConfig: Record<string, unknown> | null;
  /** The weights (single file or shards), or null when opened with `weights: false` / `weights: 'optional'` and absent. */
  weights: TensorSource | null;
  /** model.safetensors or model.safetensors.index.json, or null. */
  weightsPath: string | null;
  /** Paths of the tokenizer files when present. */
  tokenizerJson: string | null;
  tokenizerConfig: string | null;
  /** FP8 block size from quantization_config.weight_block_size (or DeepSeek's 128x128 when fp8 is declared without it). */
  fp8BlockSize: [number, number] | null;
  close(): void;
}

function readJsonObject(path: string, what: string, Err: typeof FormatError | typeof ConfigError): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Err(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Err(`${path}: ${what} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Err(`${path}: ${what} must be a JSON object`);
  return j as Record<string, unknown>;
}

function blockSizeFromRaw(raw: Record<string, unknown>, path: string): [number, number] | null {
  const q = raw['quantization_config'];
  if (q === undefined || q === null) return null;
  if (typeof q !== 'object' || Array.isArray(q)) throw new ConfigError(`${path}: quantization_config must be an object`);
  const qq = q as Record<string, unknown>;
  if (qq['quant_method'] !== 'fp8') return null;
  const b = qq['weight_block_size'];
  if (b === undefined || b === null) return [...DEFAULT_FP8_BLOCK];
  if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => Number.isSafeInteger(x) && (x as number) > 0)) {
    throw new ConfigError(`${path}: quantization_config.weight_block_size must be two positive integers, got ${JSON.stringify(b)}`);
  }
  return [b[0] as number, b[1] as number];
}

/**
 * Open a local HF model folder. `weights`: 'required' (default) throws when the folder has no safetensors weights;
 * 'optional' opens them when present; false never opens them (config only).
 */
export function openHfFolder(dir: string, opts: { weights?: 'required' | 'optional' | false } = {}): HfFolder {
  const mode = opts.weights ?? 'required';
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new FormatError(`${dir}: no such folder`);
  }
  if (!st.isDirectory()) throw new FormatError(`${dir}: not a folder (expected a Hugging Face model folder with config.json)`);
  const configPath = join(dir, CONFIG_FILE);
  if (!existsSync(configPath)) throw new ConfigError(`${dir}: no ${CONFIG_FILE} in this folder`);
  const configRaw = readJsonObject(configPath, 'config', ConfigError);
  let config: ModelConfig | null = null;
  let configError: string | null = null;
  try {
    config = loadConfig(configPath);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    configError = e.message;
  }
  const fp8BlockSize = config?.quantization
    ? config.quantization.quantMethod === 'fp8' ? (config.quantization.weightBlockSize ?? [...DEFAULT_FP8_BLOCK]) : null
    : blockSizeFromRaw(configRaw, configPath);
  const genPath = join(dir, GENERATION_CONFIG_FILE);
  const generationConfig = existsSync(genPath) ? readJsonObject(genPath, 'generation config', FormatError) : null;

  let weights: TensorSource | null = null;
  let weightsPath: string | null = null;
  if (mode !== false) {
    const index = join(dir, WEIGHTS_INDEX_FILE);
    const single = join(dir, SINGLE_WEIGHTS_FILE);
    if (existsSync(index)) {
      weightsPath = index;
      weights = openSafetensorsIndex(index);
    } else if (existsSync(single)) {
      weightsPath = single;
      weights = openSafetensors(single);
    } else {
      for (const f of ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.pt', 'consolidated.00.pth']) {
        if (existsSync(join(dir, f))) refusePickle(join(dir, f.replace(/\.index\.json$/, '')), new Uint8Array(0));
      }
      if (mode === 'required') throw new FormatError(`${dir}: no ${SINGLE_WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} in this folder`);
    }
  }
  const has = (f: string) => (existsSync(join(dir, f)) ? join(dir, f) : null);
  return {
    dir, configRaw, config, configError, generationConfig, weights, weightsPath,
    tokenizerJson: has(TOKENIZER_FILE), tokenizerConfig: has(TOKENIZER_CONFIG_FILE), fp8BlockSize,
    close: () => weights?.close(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// FP8 weights

/** True when `name` is an FP8 weight with a `<name>_scale_inv` sibling (DeepSeek's block-quantized checkpoints). */
export function isFp8Weight(src: TensorSource, name: string): boolean {
  const t = src.tensors.get(name);
  return !!t && (t.dtype === 'F8_E4M3' || t.dtype === 'F8_E5M2') && src.has(name + SCALE_INV_SUFFIX);
}

/** The checkpoint's logical weights: every tensor except the `_scale_inv` siblings of FP8 weights. */
export function logicalWeightNames(src: TensorSource): string[] {
  return src.names.filter((n) => !(n.endsWith(SCALE_INV_SUFFIX) && isFp8Weight(src, n.slice(0, -SCALE_INV_SUFFIX.length))));
}

/** bf16 bits -> f32 (exact: bf16 is the top half of an f32). */
export function bf16ToF32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
  return out;
}

let F16_TABLE: Float32Array | null = null;
/** f16 bits -> f32 (exact), by a 65536-entry table built once from the IEEE binary16 definition. */
export function f16ToF32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
      F16_TABLE[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  const t = F16_TABLE;
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  return out;
}

/** Any float tensor's data as f32 (F64 rounds to nearest; FP8 decoded without any scale). */
export function toF32(raw: RawTensor, where = raw.name): Float32Array {
  switch (raw.dtype) {
    case 'F32': return raw.data as Float32Array;
    case 'F64': return Float32Array.from(raw.data as Float64Array);
    case 'BF16': return bf16ToF32(raw.data as Uint16Array);
    case 'F16': return f16ToF32(raw.data as Uint16Array);
    case 'F8_E4M3': case 'F8_E5M2': {
      const t = decodeTable(raw.dtype === 'F8_E4M3' ? 'e4m3' : 'e5m2');
      const c = raw.data as Uint8Array;
      const out = new Float32Array(c.length);
      for (let i = 0; i < c.length; i++) out[i] = t[c[i]!]!;
      return out;
    }
    default: throw new FormatError(`${where}: dtype ${raw.dtype} is not a floating-point type`);
  }
}

/** Bytes read per chunk when streaming a weight into its destination: the only transient memory of a load. */
const STREAM_CHUNK_BYTES = 8 << 20;
let streamScratch: Uint8Array | null = null;
/** One scratch buffer reused by every read (fresh buffers per tensor would pile up as garbage between GCs). */
function scratchBytes(n: number): Uint8Array {
  if (!streamScratch || streamScratch.length < n) streamScratch = new Uint8Array(Math.max(n, STREAM_CHUNK_BYTES));
  return streamScratch.subarray(0, n);
}

/** The FP8 block scales of `name` after checking them against the weight's shape and the block size. */
export function fp8Scales(src: TensorSource, name: string, blockSize: readonly [number, number]): { rows: number; cols: number; scales: Float32Array } {
  const info = src.info(name);
  const where = `${info.file}: tensor '${name}'`;
  const sname = name + SCALE_INV_SUFFIX;
  if (!src.has(sname)) throw new FormatError(`${where}: ${info.dtype} weight without its '${sname}' block scales`);
  const sinfo = src.info(sname);
  const swhere = `${sinfo.file}: tensor '${sname}'`;
  if (info.shape.length !== 2) throw new FormatError(`${where}: FP8 block-quantized weights must be 2-D, got shape [${info.shape.join(', ')}]`);
  const [rows, cols] = info.shape as [number, number];
  const [br, bc] = blockSize;
  const [sr, sc] = scaleShape(rows, cols, br, bc);
  if (sinfo.shape.length !== 2 || sinfo.shape[0] !== sr || sinfo.shape[1] !== sc) {
    throw new FormatError(`${swhere}: shape [${sinfo.shape.join(', ')}] does not match weight '${name}' [${rows}, ${cols}] in ${br}x${bc} blocks (expected [${sr}, ${sc}])`);
  }
  if (!['F32', 'BF16', 'F16', 'F64'].includes(sinfo.dtype)) throw new FormatError(`${swhere}: scales must be a float dtype, got ${sinfo.dtype}`);
  return { rows, cols, scales: toF32(src.readRaw(sname), swhere) };
}

/**
 * Read a weight as f32 straight into `out` (its element count), streaming the file in chunks so the transient memory
 * is a few MB whatever the tensor's size: an F32 tensor is read into out's own bytes, other float dtypes are converted
 * chunk by chunk, FP8 weights with a `_scale_inv` sibling are dequantized one row of blocks at a time (w = fp8 *
 * scale_inv, block size from config.json's quantization_config or 128x128). This is what keeps a model's load near
 * 1x its weights in RSS. An FP8 weight without its scale is refused: its codes alone do not say what it means.
 */
export function readWeightF32Into(src: TensorSource, name: string, out: Float32Array, opts: { blockSize?: readonly [number, number] } = {}): void {
  const info = src.info(name);
  const where = `${info.file}: tensor '${name}'`;
  if (out.length !== info.numel) throw new RangeError(`${where}: ${info.numel} elements, destination holds ${out.length}`);
  if (info.dtype === 'F8_E4M3' || info.dtype === 'F8_E5M2') {
    const blockSize = opts.blockSize ?? DEFAULT_FP8_BLOCK;
    const { rows, cols, scales } = fp8Scales(src, name, blockSize);
    const [br, bc] = blockSize;
    const sc = Math.ceil(cols / bc);
    const format = info.dtype === 'F8_E4M3' ? 'e4m3' : 'e5m2';
    // Whole rows of blocks per chunk so each chunk's scales are a contiguous slice.
    const blockRowsPerChunk = Math.max(1, Math.floor(STREAM_CHUNK_BYTES / Math.max(1, br * cols)));
    const codes = scratchBytes(Math.min(rows, blockRowsPerChunk * br) * cols);
    for (let r0 = 0, b0 = 0; r0 < rows; r0 += blockRowsPerChunk * br, b0 += blockRowsPerChunk) {
      const n = Math.min(rows - r0, blockRowsPerChunk * br);
      const chunk = codes.subarray(0, n * cols);
      src.readRange(name, r0 * cols, chunk);
      const nb = Math.ceil(n / br);
      dequantizeBlockwise(chunk, scales.subarray(b0 * sc, (b0 + nb) * sc), n, cols, { blockRows: br, blockCols: bc, format, out: out.subarray(r0 * cols, (r0 + n) * cols) });
    }
    return;
  }
  const size = SAFE_DTYPE_SIZE[info.dtype];
  if (info.dtype === 'F32') {
    src.readRange(name, 0, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    return;
  }
  if (!['F64', 'BF16', 'F16'].includes(info.dtype)) throw new FormatError(`${where}: dtype ${info.dtype} is not a floating-point type`);
  const per = STREAM_CHUNK_BYTES / size;
  const scratch = scratchBytes(Math.min(info.numel, per) * size);
  for (let i = 0; i < info.numel; i += per) {
    const n = Math.min(per, info.numel - i);
    const bytes = scratch.subarray(0, n * size);
    src.readRange(name, i * size, bytes);
    const dst = out.subarray(i, i + n) as Float32Array<ArrayBuffer>;
    if (info.dtype === 'BF16') bf16ToF32(new Uint16Array(bytes.buffer, 0, n), dst);
    else if (info.dtype === 'F16') f16ToF32(new Uint16Array(bytes.buffer, 0, n), dst);
    else dst.set(new Float64Array(bytes.buffer, 0, n));
  }
}

/** Read a weight as f32 into a fresh array (see readWeightF32Into for the conversions and checks). */
export function readWeightF32(src: TensorSource, name: string, opts: { blockSize?: readonly [number, number] } = {}): RawTensor {
  const info = src.info(name);
  const out = new Float32Array(info.numel);
  readWeightF32Into(src, name, out, opts);
  return { name, dtype: 'F32', shape: [...info.shape], data: out };
}

// ---------------------------------------------------------------------------------------------------------------
// Summaries (r1 inspect)

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  bytes: number;
  file: string;
  /** For FP8 weights: the name of the `_scale_inv` sibling; for such siblings: the weight they scale. */
  scaleInv?: string;
  scales?: string;
}

export interface SourceSummary {
  /** The files holding tensors, in order. */
  files: string[];
  tensors: TensorSummary[];
  /** Parameters = elements of every tensor except FP8 block scales (counted apart in scaleParams). */
  totals: { tensors: number; params: number; bytes: number; fileBytes: number; fp8Weights: number; scaleTensors: number; scaleParams: number };
  /** Per dtype: tensor count, elements and bytes. */
  dtypes: Record<string, { tensors: number; params: number; bytes: number }>;
  metadata: Record<string, string>;
}

/** Names, dtypes, shapes and counts of a checkpoint, from its header(s) only (no tensor data is read). */
export function summarizeSource(src: TensorSource): SourceSummary {
  const files: string[] = [];
  const tensors: TensorSummary[] = [];
  const dtypes: SourceSummary['dtypes'] = {};
  const totals = { tensors: 0, params: 0, bytes: 0, fileBytes: 0, fp8Weights: 0, scaleTensors: 0, scaleParams: 0 };
  for (const name of src.names) {
    const t = src.info(name);
    if (!files.includes(t.file)) {
      files.push(t.file);
      totals.fileBytes += statSync(t.file).size;
    }
    const s: TensorSummary = { name, dtype: t.dtype, shape: [...t.shape], numel: t.numel, bytes: t.end - t.begin, file: t.file };
    const isScale = name.endsWith(SCALE_INV_SUFFIX) && isFp8Weight(src, name.slice(0, -SCALE_INV_SUFFIX.length));
    if (isScale) {
      s.scales = name.slice(0, -SCALE_INV_SUFFIX.length);
      totals.scaleTensors++;
      totals.scaleParams += t.numel;
    } else {
      totals.params += t.numel;
      if (isFp8Weight(src, name)) {
        s.scaleInv = name + SCALE_INV_SUFFIX;
        totals.fp8Weights++;
      }
    }
    totals.tensors++;
    totals.bytes += s.bytes;
    const h = (dtypes[t.dtype] ??= { tensors: 0, params: 0, bytes: 0 });
    h.tensors++;
    h.params += t.numel;
    h.bytes += s.bytes;
    tensors.push(s);
  }
  // A file with no tensors still counts (an empty checkpoint is valid).
  if (files.length === 0 && 'size' in src && typeof (src as { size: unknown }).size === 'number') totals.fileBytes = (src as { size: number }).size;
  return { files, tensors, totals, dtypes, metadata: { ...src.metadata } };
}

// ---------------------------------------------------------------------------------------------------------------
// Saving

/** transformers' save_pretrained default max_shard_size ("5GB" = 5 * 10^9 bytes). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface SaveHfOptions {
  /** config.json: a JSON object, or a typed config (its `raw` is written). */
  config: Record<string, unknown> | { raw: Record<string, unknown> };
  tensors: readonly WriteTensor[];
  generationConfig?: Record<string, unknown>;
  /** Start a new shard when the next tensor would push the current one past this many bytes of data. */
  maxShardBytes?: number;
  /** safetensors __metadata__ (default {format: 'pt'}, which transformers checks when loading). */
  metadata?: Record<string, string>;
  /** Extra files to write (e.g. tokenizer.json, tokenizer_config.json): name -> contents. */
  extraFiles?: Record<string, string | Uint8Array>;
  /**
   * When `dir` already exists, carry over its other files (tokenizer files, README, ...) that this save does not
   * write; stale weight files are never carried over. Default true.
   */
  keepExisting?: boolean;
}

export interface SavedFolder {
  dir: string;
  /** Weight files written, in order. */
  shards: string[];
  /** Sum of tensor data bytes (the index's total_size). */
  totalSize: number;
}

function tensorBytes(t: WriteTensor): number {
  return t.shape.reduce((a, b) => a * b, 1) * SAFE_DTYPE_SIZE[t.dtype];
}

/** Split tensors, in the given order, into shards of at most maxShardBytes (a bigger tensor gets a shard of its own). */
export function planShards(tensors: readonly WriteTensor[], maxShardBytes: number): WriteTensor[][] {
  if (!(maxShardBytes > 0)) throw new FormatError(`planShards: maxShardBytes must be positive, got ${maxShardBytes}`);
  const shards: WriteTensor[][] = [];
  let cur: WriteTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const n = tensorBytes(t);
    if (cur.length > 0 && size + n > maxShardBytes) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += n;
  }
  if (cur.length > 0 || shards.length === 0) shards.push(cur);
  return shards;
}

function fsyncPath(p: string): void {
  const fd = openSync(p, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

function writeFileDurable(p: string, data: string | Uint8Array): void {
  writeFileSync(p, data);
  fsyncPath(p);
}

const isWeightFile = (f: string) => f === SINGLE_WEIGHTS_FILE || f === WEIGHTS_INDEX_FILE || /^model-\d+-of-\d+\.safetensors$/.test(f);

/**
 * Save a model folder atomically: config.json, generation_config.json (if given), model.safetensors or
 * model-0000i-of-0000N.safetensors + model.safetensors.index.json when the data exceeds maxShardBytes, and extra files.
 */
export function saveHfFolder(dir: string, opts: SaveHfOptions): SavedFolder {
  const target = resolve(dir);
  const parent = dirname(target);
  if (!existsSync(parent)) throw new FormatError(`${dir}: parent folder ${parent} does not exist`);
  if (existsSync(target) && !statSync(target).isDirectory()) throw new FormatError(`${dir}: exists and is not a folder`);
  // A typed ModelConfig carries the JSON it was parsed from in `raw` (with modelType/source beside it).
  const c = opts.config as Record<string, unknown>;
  const typed = 'raw' in c && 'modelType' in c && 'source' in c && typeof c['raw'] === 'object' && c['raw'] !== null;
  const config = typed ? (c['raw'] as Record<string, unknown>) : c;
  const tag = `${process.pid}.${randomBytes(4).toString('hex')}`;
  const stage = join(parent, `.${basename(target)}.saving.${tag}`);
  mkdirSync(stage);
  const shardsOut: string[] = [];
  let totalSize = 0;
  try {
    writeFileDurable(join(stage, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
    if (opts.generationConfig) writeFileDurable(join(stage, GENERATION_CONFIG_FILE), JSON.stringify(opts.generationConfig, null, 2) + '\n');
    for (const [name, contents] of Object.entries(opts.extraFiles ?? {})) {
      if (name === '' || /[/\\\0]/.test(name) || name === '.' || name === '..') throw new FormatError(`${dir}: extra file name ${JSON.stringify(name)} must be a plain file name`);
      if (name === CONFIG_FILE || name === GENERATION_CONFIG_FILE || isWeightFile(name)) throw new FormatError(`${dir}: extra file '${name}' would overwrite a file the save writes itself`);
      writeFileDurable(join(stage, name), contents);
    }
    const metadata = opts.metadata ?? { format: 'pt' };
    const shards = planShards(opts.tensors, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
    for (const t of opts.tensors) totalSize += tensorBytes(t);
    if (shards.length === 1) {
      writeSafetensors(join(stage, SINGLE_WEIGHTS_FILE), shards[0]!, { metadata });
      shardsOut.push(SINGLE_WEIGHTS_FILE);
    } else {
      // transformers names shards model-00001-of-00003.safetensors (5 digits).
      const pad = (i: number) => String(i).padStart(5, '0');
      const weightMap: Record<string, string> = {};
      shards.forEach((ts, i) => {
        const f = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
        writeSafetensors(join(stage, f), ts, { metadata });
        shardsOut.push(f);
        for (const t of ts) weightMap[t.name] = f;
      });
      const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
      writeFileDurable(join(stage, WEIGHTS_INDEX_FILE), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sorted }, null, 2) + '\n');
    }
    if (existsSync(target) && (opts.keepExisting ?? true)) {
      for (const f of readdirSync(target)) {
        if (isWeightFile(f) || existsSync(join(stage, f))) continue;
        cpSync(join(target, f), join(stage, f), { recursive: true });
      }
    }
    fsyncPath(stage);
  } catch (e) {
    rmSync(stage, { recursive: true, force: true });
    throw e;
  }
  // Swap: rename the old folder aside, the staged one into place, then delete the old one.
  if (existsSync(target)) {
    const old = join(parent, `.${basename(target)}.old.${tag}`);
    renameSync(target, old);
    try {
      renameSync(stage, target);
    } catch (e) {
      renameSync(old, target);
      rmSync(stage, { recursive: true, force: true });
      throw e;
    }
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(stage, target);
  }
  fsyncPath(parent);
  return { dir: target, shards: shardsOut, totalSize };
}
