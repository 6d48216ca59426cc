/**
 * safetensors (huggingface/safetensors format spec): 8-byte little-endian header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}, then the data.
 * Reading is lazy: open() reads only the header; tensors are read one at a time. Nothing in the file is
 * trusted: every rule broken is a FormatError naming the file, the tensor and the rule.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { FormatError } from '../errors.js';
import { Tensor, fromArray } from '../tensor/index.js';
import type { DType } from '../tensor/index.js';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const SAFE_DTYPE_SIZE: Readonly<Record<SafeDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Header bound: larger headers are refused before any allocation. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  name: string;
  dtype: SafeDType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export class SafetensorsFile {
  private fd: number | null;
  constructor(readonly path: string, fd: number, readonly tensors: Map<string, TensorInfo>, readonly metadata: Record<string, string>) {
    this.fd = fd;
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FormatError(`${this.path}: no tensor named '${name}'`);
    return t;
  }

  /** The raw bytes of one tensor. */
  readBytes(name: string): Uint8Array {
    if (this.fd === null) throw new FormatError(`${this.path}: file is closed`);
    const t = this.info(name);
    const buf = new Uint8Array(t.end - t.begin);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(this.fd, buf, got, buf.length - got, t.begin + got);
      if (n <= 0) throw new FormatError(`${this.path}: tensor '${name}': file ended while reading its data`);
      got += n;
    }
    return buf;
  }

  /** One tensor as an r1ts Tensor (F32/F64/BF16/F16/I32/I64/U8/BOOL/F8 kept in their storage dtype). */
  read(name: string): Tensor {
    const t = this.info(name);
    const bytes = this.readBytes(name);
    const ab = bytes.buffer;
    const n = t.shape.reduce((a, b) => a * b, 1);
    const map: Partial<Record<SafeDType, [DType, () => ArrayBufferView]>> = {
      F32: ['f32', () => new Float32Array(ab, 0, n)],
      F64: ['f64', () => new Float64Array(ab, 0, n)],
      BF16: ['bf16', () => new Uint16Array(ab, 0, n)],
      F16: ['f16', () => new Uint16Array(ab, 0, n)],
      I32: ['i32', () => new Int32Array(ab, 0, n)],
      I64: ['i64', () => new BigInt64Array(ab, 0, n)],
      U8: ['u8', () => bytes],
      BOOL: ['bool', () => bytes],
      F8_E4M3: ['fp8e4m3', () => bytes],
      F8_E5M2: ['fp8e5m2', () => bytes],
    };
    const m = map[t.dtype];
    if (!m) throw new FormatError(`${this.path}: tensor '${name}': dtype ${t.dtype} has no r1ts tensor type (convert it first)`);
    return fromArray(m[1]() as never, t.shape, m[0]);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Refuse pickle-based checkpoints outright (never unpickled). */
export function refusePickle(path: string, head: Uint8Array): void {
  const zip = head[0] === 0x50 && head[1] === 0x4b; // PyTorch >= 1.6 zip archive
  const pickle = head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5; // pickle protocol 2-5
  if (/\.(bin|pt|pth|ckpt|pkl)$/i.test(path) || zip || pickle) {
    throw new FormatError(`${path}: this is a PyTorch pickle checkpoint; r1ts never unpickles (it can run code). Convert it to safetensors first (e.g. with the safetensors library's convert script).`);
  }
}

/** Parse and validate the header of a safetensors file; keeps the file open for lazy reads. */
export function openSafetensors(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new FormatError(`${path}: cannot open (${(e as Error).message})`);
  }
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(8);
    const got = size >= 8 ? readSync(fd, head, 0, 8, 0) : 0;
    refusePickle(path, head);
    if (got < 8) throw new FormatError(`${path}: too short for a safetensors file (${size} bytes; the 8-byte header length is missing)`);
    const hlen64 = new DataView(head.buffer).getBigUint64(0, true);
    if (hlen64 > BigInt(MAX_HEADER_BYTES)) throw new FormatError(`${path}: header length ${hlen64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const hlen = Number(hlen64);
    if (8 + hlen > size) throw new FormatError(`${path}: header length ${hlen} runs past the end of the file (${size} bytes)`);
    const hbuf = new Uint8Array(hlen);
    if (hlen > 0 && readSync(fd, hbuf, 0, hlen, 8) !== hlen) throw new FormatError(`${path}: could not read the ${hlen}-byte header`);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hbuf));
    } catch (e) {
      throw new FormatError(`${path}: header is not valid UTF-8 JSON (${(e as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FormatError(`${path}: header must be a JSON object`);
    const dataStart = 8 + hlen;
    const dataLen = size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
          throw new FormatError(`${path}: __metadata__ must be an object of strings`);
        }
        metadata = v as Record<string, string>;
        continue;
      }
      const where = `${path}: tensor '${name}'`;
      if (name.length === 0) throw new FormatError(`${path}: empty tensor name`);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(`${where}: entry must be an object`);
      const e = v as Record<string, unknown>;
      for (const k of Object.keys(e)) if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') throw new FormatError(`${where}: unknown key '${k}'`);
      if (typeof e['dtype'] !== 'string' || !(e['dtype'] in SAFE_DTYPE_SIZE)) throw new FormatError(`${where}: unknown dtype ${JSON.stringify(e['dtype'])}`);
      const dtype = e['dtype'] as SafeDType;
      const shape = e['shape'];
      if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) throw new FormatError(`${where}: shape must be a list of non-negative integers`);
      const off = e['data_offsets'];
      if (!Array.isArray(off) || off.length !== 2 || off.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) throw new FormatError(`${where}: data_offsets must be [begin, end] non-negative integers`);
      const [b, en] = off as [number, number];
      if (en < b) throw new FormatError(`${where}: data_offsets end ${en} before begin ${b}`);
      if (en > dataLen) throw new FormatError(`${where}: data_offsets [${b}, ${en}] beyond the data section (${dataLen} bytes)`);
      let n = 1;
      for (const d of shape as number[]) n *= d;
      if (!Number.isSafeInteger(n * SAFE_DTYPE_SIZE[dtype]) || n * SAFE_DTYPE_SIZE[dtype] !== en - b) {
        throw new FormatError(`${where}: ${en - b} bytes do not hold shape [${(shape as number[]).join(', ')}] of ${dtype} (${n * SAFE_DTYPE_SIZE[dtype]} bytes)`);
      }
      tensors.set(name, { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + en });
    }
    // Tensors must tile the data section exactly: sorted, no overlap, no gap.
    const sorted = [...tensors.values()].sort((x, y) => x.begin - y.begin || x.end - y.end);
    let pos = dataStart;
    for (const t of sorted) {
      if (t.begin < pos) throw new FormatError(`${path}: tensor '${t.name}' overlaps the previous tensor`);
      if (t.begin > pos) throw new FormatError(`${path}: gap of ${t.begin - pos} bytes before tensor '${t.name}'`);
      pos = t.end;
    }
    if (pos !== size) throw new FormatError(`${path}: ${size - pos} bytes after the last tensor are not covered by the header`);
    return new SafetensorsFile(path, fd, tensors, metadata);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
