/**
 * GGUF v3 (the llama.cpp / ggml file format): a streaming writer, a small reader (for tests and inspection),
 * the F32 / F16 / Q8_0 tensor encodings, and `writeQwen2Gguf`, which writes a dense Qwen2 model the way
 * llama.cpp's convert_hf_to_gguf.py does, so llama.cpp (e.g. through node-llama-cpp) can run the same weights.
 *
 * Layout (ggml docs/gguf.md; all little-endian):
 *   u32 magic "GGUF" | u32 version (3) | u64 tensor_count | u64 metadata_kv_count
 *   metadata_kv_count x { string key | u32 value_type | value }
 *   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] (innermost dimension FIRST) | u32 ggml_type | u64 offset }
 *   zero padding to `general.alignment` (default 32) | tensor data, each tensor at its offset (a multiple of the
 *   alignment, relative to the start of the data section).
 * A string is u64 byte length + UTF-8 bytes (no terminator); an array is u32 item type + u64 count + items.
 *
 * Shapes in this module's API are the usual row-major order (outermost first, as PyTorch / safetensors: an
 * HF Linear weight is [out, in]); the writer reverses them into GGUF's ne[] order (ne[0] = in), which leaves
 * the bytes in the same order.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { ConfigError, FormatError, ShapeError, UsageError } from '../errors.js';
import type { DenseConfig } from '../models/config.js';
import { f16BitsToF32, f32ToF16Bits } from '../tensor/backends/js.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** gguf_type: the metadata value types. */
export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8,
  ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** ggml_type values of the tensor encodings written here (ggml.h). */
export enum GgmlType { F32 = 0, F16 = 1, Q8_0 = 8 }

/** llama_ftype ("general.file_type"): what most tensors of the file are. */
export const LLAMA_FTYPE = { F32: 0, F16: 1, Q8_0: 7 } as const;

/** Q8_0: blocks of 32 values, each an f16 scale d followed by 32 int8 quants (ggml-common.h block_q8_0). */
export const QK8_0 = 32;
export const Q8_0_BLOCK_BYTES = 2 + QK8_0;

export type GgufScalar = number | bigint | boolean | string;
export interface GgufKV {
  key: string;
  type: GgufValueType;
  value: GgufScalar | GgufScalar[];
  /** For ARRAY values: the type of the items. */
  itemType?: GgufValueType;
}

/** Metadata constructors. */
export const kv = {
  u32: (key: string, value: number): GgufKV => ({ key, type: GgufValueType.UINT32, value }),
  i32: (key: string, value: number): GgufKV => ({ key, type: GgufValueType.INT32, value }),
  f32: (key: string, value: number): GgufKV => ({ key, type: GgufValueType.FLOAT32, value }),
  u64: (key: string, value: bigint | number): GgufKV => ({ key, type: GgufValueType.UINT64, value: BigInt(value) }),
  bool: (key: string, value: boolean): GgufKV => ({ key, type: GgufValueType.BOOL, value }),
  str: (key: string, value: string): GgufKV => ({ key, type: GgufValueType.STRING, value }),
  arr: (key: string, itemType: GgufValueType, value: GgufScalar[]): GgufKV => ({ key, type: GgufValueType.ARRAY, itemType, value }),
};

export interface GgufTensorIn {
  name: string;
  /** Row-major shape, outermost first (the writer stores it reversed, as GGUF's ne[]). */
  shape: readonly number[];
  type: GgmlType;
  /** f32 values in row-major order (a function is called once, when the tensor is written). */
  data: Float32Array | (() => Float32Array);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes of a tensor of `n` values (innermost dimension `inner`) in `type`. */
export function ggmlTensorBytes(type: GgmlType, shape: readonly number[]): number {
  const n = numel(shape);
  switch (type) {
    case GgmlType.F32: return 4 * n;
    case GgmlType.F16: return 2 * n;
    case GgmlType.Q8_0: {
      const inner = shape[shape.length - 1] ?? 1;
      if (inner % QK8_0 !== 0) throw new ShapeError(`gguf: Q8_0 needs the innermost dimension to be a multiple of ${QK8_0}, got shape [${shape.join(', ')}]`);
      return (n / QK8_0) * Q8_0_BLOCK_BYTES;
    }
    default: throw new FormatError(`gguf: unsupported ggml type ${String(type)}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Encodings
// ------------------------------------------------------------------------------------------------

/**
 * Q8_0 quantisation as ggml's quantize_row_q8_0_ref: per block of 32, d = amax / 127 and
 * q = roundf(x * (1/d)) (f32 arithmetic, round half away from zero), d stored as f16. The reciprocal-multiply
 * (rather than x / d) is what llama.cpp does, so the same input quantises to the same bytes.
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % QK8_0 !== 0) throw new ShapeError(`gguf: Q8_0 input length ${x.length} is not a multiple of ${QK8_0}`);
  const nb = x.length / QK8_0;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const dv = new DataView(out.buffer);
  const f = Math.fround;
  for (let b = 0; b < nb; b++) {
    const base = b * QK8_0;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) { const a = Math.abs(x[base + j]!); if (a > amax) amax = a; }
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    dv.setUint16(o, f32ToF16Bits(d), true);
    for (let j = 0; j < QK8_0; j++) {
      const v = f(x[base + j]! * id);
      const q = v < 0 ? -Math.round(-v) : Math.round(v); // roundf: half away from zero
      dv.setInt8(o + 2 + j, q);
    }
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  if (n % QK8_0 !== 0 || bytes.length < (n / QK8_0) * Q8_0_BLOCK_BYTES) throw new FormatError(`gguf: Q8_0 data of ${bytes.length} bytes cannot hold ${n} values`);
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < n / QK8_0; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(dv.getUint16(o, true));
    for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * dv.getInt8(o + 2 + j);
  }
  return out;
}

function encodeTensor(type: GgmlType, x: Float32Array): Uint8Array {
  switch (type) {
    case GgmlType.F32: return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case GgmlType.F16: {
      const h = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) h[i] = f32ToF16Bits(x[i]!);
      return new Uint8Array(h.buffer);
    }
    case GgmlType.Q8_0: return quantizeQ8_0(x);
    default: throw new FormatError(`gguf: unsupported ggml type ${String(type)}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Writer
// ------------------------------------------------------------------------------------------------

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  buf = Buffer.alloc(1 << 16);
  n = 0;
  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const b = Buffer.alloc(size);
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }
  u8(v: number): void { this.room(1); this.buf.writeUInt8(v, this.n); this.n += 1; }
  i8(v: number): void { this.room(1); this.buf.writeInt8(v, this.n); this.n += 1; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16LE(v, this.n); this.n += 2; }
  i16(v: number): void { this.room(2); this.buf.writeInt16LE(v, this.n); this.n += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32LE(v, this.n); this.n += 4; }
  i32(v: number): void { this.room(4); this.buf.writeInt32LE(v, this.n); this.n += 4; }
  f32(v: number): void { this.room(4); this.buf.writeFloatLE(v, this.n); this.n += 4; }
  f64(v: number): void { this.room(8); this.buf.writeDoubleLE(v, this.n); this.n += 8; }
  u64(v: bigint | number): void { this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.n); this.n += 8; }
  i64(v: bigint | number): void { this.room(8); this.buf.writeBigInt64LE(BigInt(v), this.n); this.n += 8; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.buf, this.n);
    this.n += b.length;
  }
  bytes(): Buffer { return this.buf.subarray(0, this.n); }
}

function checkInt(key: string, v: GgufScalar, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new UsageError(`gguf: metadata ${key}: ${String(v)} is not an integer in [${lo}, ${hi}]`);
  return v;
}

function writeValue(s: ByteSink, key: string, type: GgufValueType, v: GgufScalar): void {
  switch (type) {
    case GgufValueType.UINT8: s.u8(checkInt(key, v, 0, 0xff)); break;
    case GgufValueType.INT8: s.i8(checkInt(key, v, -128, 127)); break;
    case GgufValueType.UINT16: s.u16(checkInt(key, v, 0, 0xffff)); break;
    case GgufValueType.INT16: s.i16(checkInt(key, v, -0x8000, 0x7fff)); break;
    case GgufValueType.UINT32: s.u32(checkInt(key, v, 0, 0xffffffff)); break;
    case GgufValueType.INT32: s.i32(checkInt(key, v, -0x80000000, 0x7fffffff)); break;
    case GgufValueType.FLOAT32: if (typeof v !== 'number') throw new UsageError(`gguf: metadata ${key}: float expected`); s.f32(v); break;
    case GgufValueType.FLOAT64: if (typeof v !== 'number') throw new UsageError(`gguf: metadata ${key}: float expected`); s.f64(v); break;
    case GgufValueType.BOOL: if (typeof v !== 'boolean') throw new UsageError(`gguf: metadata ${key}: boolean expected`); s.u8(v ? 1 : 0); break;
    case GgufValueType.STRING: if (typeof v !== 'string') throw new UsageError(`gguf: metadata ${key}: string expected`); s.str(v); break;
    case GgufValueType.UINT64: if (typeof v !== 'bigint' && typeof v !== 'number') throw new UsageError(`gguf: metadata ${key}: integer expected`); s.u64(v); break;
    case GgufValueType.INT64: if (typeof v !== 'bigint' && typeof v !== 'number') throw new UsageError(`gguf: metadata ${key}: integer expected`); s.i64(v); break;
    default: throw new UsageError(`gguf: metadata ${key}: unsupported value type ${String(type)}`);
  }
}

export interface GgufWriteResult { bytes: number; tensors: number; dataOffset: number }

/**
 * Write a GGUF v3 file. Tensors are encoded and written one at a time (peak memory ~ one tensor), so a
 * 2 GB model does not need a 2 GB buffer. `general.alignment` is written when not the default.
 */
export function writeGguf(path: string, kvs: readonly GgufKV[], tensors: readonly GgufTensorIn[], opts: { alignment?: number } = {}): GgufWriteResult {
  const align = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(align) || align <= 0 || align % 8 !== 0) throw new UsageError(`gguf: alignment must be a positive multiple of 8, got ${align}`);
  const all = [...kvs];
  const keys = new Set<string>();
  for (const k of all) {
    if (keys.has(k.key)) throw new UsageError(`gguf: metadata key ${k.key} given twice`);
    keys.add(k.key);
  }
  if (align !== GGUF_DEFAULT_ALIGNMENT && !keys.has('general.alignment')) all.push(kv.u32('general.alignment', align));
  const names = new Set<string>();
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(all.length);
  for (const k of all) {
    s.str(k.key);
    s.u32(k.type);
    if (k.type === GgufValueType.ARRAY) {
      if (!Array.isArray(k.value) || k.itemType === undefined) throw new UsageError(`gguf: metadata ${k.key}: an array needs a value list and an itemType`);
      if (k.itemType === GgufValueType.ARRAY) throw new UsageError(`gguf: metadata ${k.key}: nested arrays are not supported`);
      s.u32(k.itemType);
      s.u64(k.value.length);
      for (const v of k.value) writeValue(s, k.key, k.itemType, v);
    } else {
      if (Array.isArray(k.value)) throw new UsageError(`gguf: metadata ${k.key}: a list needs type ARRAY`);
      writeValue(s, k.key, k.type, k.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    if (names.has(t.name)) throw new UsageError(`gguf: tensor ${t.name} given twice`);
    names.add(t.name);
    if (Buffer.byteLength(t.name) >= 64) throw new UsageError(`gguf: tensor name ${t.name} is longer than 63 bytes (GGML_MAX_NAME)`);
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isInteger(d) || d < 1)) throw new ShapeError(`gguf: tensor ${t.name}: shape [${t.shape.join(', ')}] must have 1-4 positive dimensions`);
    s.str(t.name);
    s.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) s.u64(t.shape[i]!); // ne[0] is the innermost dimension
    s.u32(t.type);
    s.u64(offset);
    offsets.push(offset);
    offset += ggmlTensorBytes(t.type, t.shape);
    offset = Math.ceil(offset / align) * align;
  }
  const header = s.bytes();
  const dataOffset = Math.ceil(header.length / align) * align;
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    let pos = header.length;
    const pad = (to: number): void => {
      if (to > pos) { writeSync(fd, Buffer.alloc(to - pos)); pos = to; }
    };
    pad(dataOffset);
    tensors.forEach((t, i) => {
      pad(dataOffset + offsets[i]!);
      const x = typeof t.data === 'function' ? t.data() : t.data;
      if (x.length !== numel(t.shape)) throw new ShapeError(`gguf: tensor ${t.name}: ${x.length} values for shape [${t.shape.join(', ')}]`);
      const b = encodeTensor(t.type, x);
      writeSync(fd, b);
      pos += b.length;
    });
    pad(dataOffset + offset);
    return { bytes: pos, tensors: tensors.length, dataOffset };
  } finally {
    closeSync(fd);
  }
}

// ------------------------------------------------------------------------------------------------
// Reader
// ------------------------------------------------------------------------------------------------

export interface GgufTensorInfo {
  name: string;
  /** GGUF order: ne[0] innermost. */
  ne: number[];
  /** Row-major shape (ne reversed). */
  shape: number[];
  type: number;
  /** Absolute byte offset in the file. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  alignment: number;
  kv: Map<string, GgufKV>;
  tensors: GgufTensorInfo[];
  dataOffset: number;
  buffer: Buffer;
}

/** Read a whole GGUF file into memory and parse its header (meant for tests and small files). */
export function readGguf(pathOrBuffer: string | Buffer): GgufFile {
  const buf = typeof pathOrBuffer === 'string' ? readFileSync(pathOrBuffer) : pathOrBuffer;
  const where = typeof pathOrBuffer === 'string' ? pathOrBuffer : 'gguf buffer';
  let p = 0;
  const need = (k: number): void => {
    if (p + k > buf.length) throw new FormatError(`${where}: truncated at byte ${p} (needs ${k} more, file has ${buf.length})`);
  };
  const u32 = (): number => { need(4); const v = buf.readUInt32LE(p); p += 4; return v; };
  const u64 = (): bigint => { need(8); const v = buf.readBigUInt64LE(p); p += 8; return v; };
  const num64 = (what: string): number => {
    const v = u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${where}: ${what} ${v} is too large`);
    return Number(v);
  };
  const str = (): string => {
    const n = num64('string length');
    need(n);
    const v = buf.toString('utf8', p, p + n);
    p += n;
    return v;
  };
  const value = (t: number): GgufScalar => {
    switch (t) {
      case GgufValueType.UINT8: need(1); return buf.readUInt8(p++);
      case GgufValueType.INT8: need(1); return buf.readInt8(p++);
      case GgufValueType.UINT16: { need(2); const v = buf.readUInt16LE(p); p += 2; return v; }
      case GgufValueType.INT16: { need(2); const v = buf.readInt16LE(p); p += 2; return v; }
      case GgufValueType.UINT32: return u32();
      case GgufValueType.INT32: { need(4); const v = buf.readInt32LE(p); p += 4; return v; }
      case GgufValueType.FLOAT32: { need(4); const v = buf.readFloatLE(p); p += 4; return v; }
      case GgufValueType.FLOAT64: { need(8); const v = buf.readDoubleLE(p); p += 8; return v; }
      case GgufValueType.BOOL: { need(1); const v = buf.readUInt8(p++); if (v > 1) throw new FormatError(`${where}: bool value ${v} at byte ${p - 1}`); return v === 1; }
      case GgufValueType.STRING: return str();
      case GgufValueType.UINT64: return u64();
      case GgufValueType.INT64: { need(8); const v = buf.readBigInt64LE(p); p += 8; return v; }
      default: throw new FormatError(`${where}: unknown metadata value type ${t} at byte ${p - 4}`);
    }
  };
  if (u32() !== GGUF_MAGIC) throw new FormatError(`${where}: not a GGUF file (bad magic)`);
  const version = u32();
  if (version !== 2 && version !== 3) throw new FormatError(`${where}: GGUF version ${version} is not supported (2 or 3)`);
  const nT = num64('tensor count');
  const nKV = num64('metadata count');
  const kvm = new Map<string, GgufKV>();
  for (let i = 0; i < nKV; i++) {
    const key = str();
    const type = u32();
    if (type === GgufValueType.ARRAY) {
      const itemType = u32();
      const n = num64(`${key} array length`);
      const vals: GgufScalar[] = [];
      for (let j = 0; j < n; j++) vals.push(value(itemType));
      kvm.set(key, { key, type, itemType, value: vals });
    } else {
      kvm.set(key, { key, type, value: value(type) });
    }
  }
  const alignKv = kvm.get('general.alignment');
  const alignment = alignKv ? Number(alignKv.value) : GGUF_DEFAULT_ALIGNMENT;
  const infos: Omit<GgufTensorInfo, 'offset'>[] = [];
  const rel: number[] = [];
  for (let i = 0; i < nT; i++) {
    const name = str();
    const nd = u32();
    if (nd < 1 || nd > 4) throw new FormatError(`${where}: tensor ${name} has ${nd} dimensions`);
    const ne: number[] = [];
    for (let j = 0; j < nd; j++) ne.push(num64(`${name} dimension`));
    const type = u32();
    rel.push(num64(`${name} offset`));
    const shape = [...ne].reverse();
    infos.push({ name, ne, shape, type, bytes: ggmlTensorBytes(type as GgmlType, shape) });
  }
  const dataOffset = Math.ceil(p / alignment) * alignment;
  const tensors = infos.map((t, i) => {
    const offset = dataOffset + rel[i]!;
    if (rel[i]! % alignment !== 0) throw new FormatError(`${where}: tensor ${t.name} offset ${rel[i]} is not aligned to ${alignment}`);
    if (offset + t.bytes > buf.length) throw new FormatError(`${where}: tensor ${t.name} runs past the end of the file`);
    return { ...t, offset };
  });
  return { version, alignment, kv: kvm, tensors, dataOffset, buffer: buf };
}

/** A tensor of a read file decoded to f32 (row-major). */
export function ggufTensorF32(f: GgufFile, name: string): Float32Array {
  const t = f.tensors.find((x) => x.name === name);
  if (!t) throw new FormatError(`gguf: no tensor ${name}`);
  const n = numel(t.shape);
  const raw = new Uint8Array(f.buffer.buffer, f.buffer.byteOffset + t.offset, t.bytes);
  switch (t.type) {
    case GgmlType.F32: return new Float32Array(raw.slice().buffer);
    case GgmlType.F16: {
      const h = new Uint16Array(raw.slice().buffer);
      return Float32Array.from(h, f16BitsToF32);
    }
    case GgmlType.Q8_0: return dequantizeQ8_0(raw, n);
    default: throw new FormatError(`gguf: tensor ${name} has unsupported type ${t.type}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Qwen2 models (llama.cpp architecture 'qwen2')
// ------------------------------------------------------------------------------------------------

/** A weight in HF naming: row-major shape and f32 values. */
export interface WeightIn { shape: readonly number[]; data: Float32Array | (() => Float32Array) }

/** The subset of a Hugging Face tokenizer.json used here. */
export interface TokenizerJson {
  model: { type?: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

export type GgufOutType = 'F32' | 'F16' | 'Q8_0';

export interface Qwen2GgufOptions {
  type?: GgufOutType;
  name?: string;
  /** qwen2.context_length (default: the config's max_position_embeddings). */
  contextLength?: number;
}

/** GGUF token types (llama.cpp llama_token_type / gguf-py TokenType). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/**
 * gpt2-style vocabulary as convert_hf_to_gguf.py writes it: one entry per id up to vocab_size, ids the
 * tokenizer does not define padded as "[PAD<id>]" (UNUSED) — Qwen2.5's config vocab (151936) is larger than its
 * tokenizer (151665). Added tokens are CONTROL when special, else USER_DEFINED. When the tokenizer has more
 * tokens than the model (a small test model), ids >= vocab_size are dropped along with every merge whose
 * parts or result fall outside, which leaves a consistent (if smaller) BPE.
 */
export function gpt2Vocab(tok: TokenizerJson, vocabSize: number): { tokens: string[]; types: number[]; merges: string[] } {
  if (tok.model.type !== undefined && tok.model.type !== 'BPE') throw new FormatError(`gguf: tokenizer model type ${tok.model.type} is not BPE`);
  const tokens: (string | undefined)[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TokenType.NORMAL);
  for (const [t, id] of Object.entries(tok.model.vocab)) if (id < vocabSize) tokens[id] = t;
  for (const a of tok.added_tokens ?? []) {
    if (a.id >= vocabSize) continue;
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }
  const present = new Set<string>();
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) { tokens[i] = `[PAD${i}]`; types[i] = TokenType.UNUSED; } else present.add(tokens[i]!);
  }
  const merges: string[] = [];
  for (const m of tok.model.merges) {
    const [a, b] = typeof m === 'string' ? splitMerge(m) : m;
    if (present.has(a) && present.has(b) && present.has(a + b)) merges.push(`${a} ${b}`);
  }
  return { tokens: tokens as string[], types, merges };
}

function splitMerge(m: string): [string, string] {
  const i = m.indexOf(' ', 1);
  if (i < 0) throw new FormatError(`gguf: tokenizer merge '${m}' has no space`);
  return [m.slice(0, i), m.slice(i + 1)];
}

/** HF parameter name -> llama.cpp tensor name (llama.cpp src/llama-arch.cpp LLM_ARCH_QWEN2). */
export function qwen2TensorName(hf: string): string | null {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (!m) return null;
  const map: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.weight': 'attn_v.weight', 'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  };
  const t = map[m[2]!];
  return t ? `blk.${m[1]}.${t}` : null;
}

/** The ggml type a tensor gets for a requested file type (convert_hf_to_gguf: 1-D tensors stay F32; Q8_0 needs rows of 32). */
export function tensorTypeFor(out: GgufOutType, shape: readonly number[]): GgmlType {
  if (out === 'F32' || shape.length < 2) return GgmlType.F32;
  if (out === 'F16') return GgmlType.F16;
  return shape[shape.length - 1]! % QK8_0 === 0 ? GgmlType.Q8_0 : GgmlType.F16;
}

/**
 * Write a dense Qwen2 model as a llama.cpp 'qwen2' GGUF. `weights` maps HF parameter names to f32 values.
 * llama.cpp's qwen2 graph uses NeoX-style (rotate-half) RoPE exactly as HF does, so q/k are written unpermuted.
 * It requires q/k/v biases; a config with attention_bias false gets zero biases (the same function).
 * Tied embeddings: no output.weight (llama.cpp then uses token_embd, as convert_hf_to_gguf leaves it out).
 */
export function writeQwen2Gguf(path: string, config: DenseConfig, weights: ReadonlyMap<string, WeightIn>, tokenizer: TokenizerJson, opts: Qwen2GgufOptions = {}): GgufWriteResult & { types: Record<string, GgmlType> } {
  if (config.modelType !== 'qwen2') throw new ConfigError(`gguf: writeQwen2Gguf needs a qwen2 config, got ${config.modelType}`);
  if (config.ropeScaling) throw new ConfigError(`gguf: rope_scaling ${JSON.stringify(config.ropeScaling)} is not written (llama.cpp qwen2 keys for it are not implemented here)`);
  if (config.useSlidingWindow) throw new ConfigError('gguf: sliding-window attention is not supported by llama.cpp qwen2');
  const out = opts.type ?? 'F16';
  const C = config;
  const tensors: GgufTensorIn[] = [];
  const types: Record<string, GgmlType> = {};
  const add = (name: string, w: WeightIn): void => {
    const type = tensorTypeFor(out, w.shape);
    types[name] = type;
    tensors.push({ name, shape: w.shape, type, data: w.data });
  };
  const get = (hf: string): WeightIn => {
    const w = weights.get(hf);
    if (!w) throw new FormatError(`gguf: weight ${hf} is missing`);
    return w;
  };
  const expectShape = (hf: string, shape: number[]): WeightIn => {
    const w = get(hf);
    if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) throw new ShapeError(`gguf: ${hf} has shape [${w.shape.join(', ')}], the config implies [${shape.join(', ')}]`);
    return w;
  };
  const H = C.hiddenSize, D = C.headDim, nq = C.numAttentionHeads * D, nkv = C.numKeyValueHeads * D;
  add('token_embd.weight', expectShape('model.embed_tokens.weight', [C.vocabSize, H]));
  for (let l = 0; l < C.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const b = `blk.${l}.`;
    add(`${b}attn_norm.weight`, expectShape(`${p}input_layernorm.weight`, [H]));
    add(`${b}attn_q.weight`, expectShape(`${p}self_attn.q_proj.weight`, [nq, H]));
    add(`${b}attn_k.weight`, expectShape(`${p}self_attn.k_proj.weight`, [nkv, H]));
    add(`${b}attn_v.weight`, expectShape(`${p}self_attn.v_proj.weight`, [nkv, H]));
    for (const [proj, n] of [['q', nq], ['k', nkv], ['v', nkv]] as const) {
      const hf = `${p}self_attn.${proj}_proj.bias`;
      add(`${b}attn_${proj}.bias`, weights.has(hf) ? expectShape(hf, [n]) : { shape: [n], data: new Float32Array(n) });
    }
    add(`${b}attn_output.weight`, expectShape(`${p}self_attn.o_proj.weight`, [H, nq]));
    if (weights.has(`${p}self_attn.o_proj.bias`)) throw new FormatError('gguf: o_proj bias is not part of llama.cpp qwen2');
    add(`${b}ffn_norm.weight`, expectShape(`${p}post_attention_layernorm.weight`, [H]));
    add(`${b}ffn_gate.weight`, expectShape(`${p}mlp.gate_proj.weight`, [C.intermediateSize, H]));
    add(`${b}ffn_up.weight`, expectShape(`${p}mlp.up_proj.weight`, [C.intermediateSize, H]));
    add(`${b}ffn_down.weight`, expectShape(`${p}mlp.down_proj.weight`, [H, C.intermediateSize]));
  }
  add('output_norm.weight', expectShape('model.norm.weight', [H]));
  if (!C.tieWordEmbeddings) add('output.weight', expectShape('lm_head.weight', [C.vocabSize, H]));

  const v = gpt2Vocab(tokenizer, C.vocabSize);
  const eos = Array.isArray(C.eosTokenId) ? C.eosTokenId[0] ?? null : C.eosTokenId;
  const kvs: GgufKV[] = [
    kv.str('general.architecture', 'qwen2'),
    kv.str('general.name', opts.name ?? 'r1ts-qwen2'),
    kv.u32('general.file_type', LLAMA_FTYPE[out]),
    kv.u32('general.quantization_version', 2),
    kv.u32('qwen2.context_length', opts.contextLength ?? C.maxPositionEmbeddings),
    kv.u32('qwen2.embedding_length', H),
    kv.u32('qwen2.block_count', C.numHiddenLayers),
    kv.u32('qwen2.feed_forward_length', C.intermediateSize),
    kv.u32('qwen2.attention.head_count', C.numAttentionHeads),
    kv.u32('qwen2.attention.head_count_kv', C.numKeyValueHeads),
    kv.f32('qwen2.rope.freq_base', C.ropeTheta),
    kv.f32('qwen2.attention.layer_norm_rms_epsilon', C.rmsNormEps),
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', 'qwen2'),
    kv.arr('tokenizer.ggml.tokens', GgufValueType.STRING, v.tokens),
    kv.arr('tokenizer.ggml.token_type', GgufValueType.INT32, v.types),
    kv.arr('tokenizer.ggml.merges', GgufValueType.STRING, v.merges),
    kv.bool('tokenizer.ggml.add_bos_token', false),
  ];
  // head_dim differing from hidden / heads must be spelled out (llama.cpp derives it otherwise).
  if (D * C.numAttentionHeads !== H) kvs.push(kv.u32('qwen2.attention.key_length', D), kv.u32('qwen2.attention.value_length', D));
  if (C.bosTokenId !== null && C.bosTokenId < C.vocabSize) kvs.push(kv.u32('tokenizer.ggml.bos_token_id', C.bosTokenId));
  if (eos !== null && eos < C.vocabSize) kvs.push(kv.u32('tokenizer.ggml.eos_token_id', eos));
  if (C.padTokenId !== null && C.padTokenId < C.vocabSize) kvs.push(kv.u32('tokenizer.ggml.padding_token_id', C.padTokenId));
  const r = writeGguf(path, kvs, tensors);
  return { ...r, types };
}

/** HF-named f32 views of a model's parameters (contiguous f32 storage, no copies). */
export function weightsOf(params: readonly (readonly [string, { shape: readonly number[]; raw: unknown; offset: number; size: number; dtype: string }])[]): Map<string, WeightIn> {
  const m = new Map<string, WeightIn>();
  for (const [name, t] of params) {
    if (t.dtype !== 'f32') throw new FormatError(`gguf: parameter ${name} is ${t.dtype}; f32 expected`);
    m.set(name, { shape: [...t.shape], data: (t.raw as Float32Array).subarray(t.offset, t.offset + t.size) });
  }
  return m;
}
