/**
 * safetensors (format spec: huggingface/safetensors README and `safetensors/src/tensor.rs`):
 *
 *   8 bytes   N, u64 little-endian: the header length
 *   N bytes   UTF-8 JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"?: {str: str}},
 *             padded with spaces to a multiple of 8 bytes on write (so every tensor's data is 8-byte aligned)
 *   rest      the data section; offsets are relative to its start; little-endian, C order
 *
 * Reading is lazy: `openSafetensors` reads only the 8-byte length and the header (fs.openSync + readSync), validates
 * it, and keeps the file open; each tensor is read on demand into its own exactly-sized buffer, so opening a
 * multi-GB checkpoint is instant and loading peaks near the weights' size.
 *
 * Nothing in the file is trusted. Rules (each violation is a FormatError naming the file, the tensor and the rule):
 *   - the header length is at most MAX_HEADER_BYTES (100,000,000, the reference's MAX_HEADER_SIZE) and within the file,
 *     so no buffer larger than the file itself is ever allocated;
 *   - the header is valid UTF-8 and strict JSON (RFC 8259; duplicate keys are refused since a name must be unique,
 *     nesting is bounded), and a JSON object;
 *   - `__metadata__`, if present, is an object of strings; every other key is a non-empty tensor name whose entry has
 *     exactly the keys dtype, shape and data_offsets;
 *   - dtype is known; shape is a list of non-negative integers (integer literals, safe range); data_offsets is
 *     [begin, end] integers with begin <= end <= data section length; end - begin = product(shape) x dtype size;
 *   - sorted by offset, the tensors are contiguous: no overlap, no gap, and they end exactly at the end of the file
 *     (the reference's validate(): each begin equals the previous end, the last end is the buffer end).
 *
 * PyTorch pickle checkpoints (.bin/.pt/.pth/.ckpt/.pkl, zip archives, raw pickle streams) are refused, never unpickled.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync, existsSync, statSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { endianness } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DTypeError, FormatError } from '../errors.js';
import { fromArray, type Tensor, type DType } from '../tensor/index.js';

export type SafeDType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Bytes per element. */
export const SAFE_DTYPE_SIZE: Readonly<Record<SafeDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/**
 * The reference's Dtype enum order ("increasing alignment"): the writer sorts tensors by this, descending, then by
 * name, exactly like `prepare()` in safetensors/src/tensor.rs, so our files match the reference writer's layout.
 */
const DTYPE_ORDER: readonly SafeDType[] = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'];

export function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFE_DTYPE_SIZE, s);
}

/** The reference's MAX_HEADER_SIZE: larger headers are refused before anything is allocated. */
export const MAX_HEADER_BYTES = 100_000_000;
/** JSON nesting allowed in a header or index (the valid structure needs 3). */
const MAX_JSON_DEPTH = 64;

/** The typed array of a dtype's natural kind: F16/BF16 as their bit patterns, FP8 as their codes, BOOL as 0/1 bytes. */
export type TensorData =
  | Float64Array | Float32Array | Uint16Array | Uint8Array | Int8Array | Int16Array | Int32Array
  | BigInt64Array | Uint32Array | BigUint64Array;

/** A tensor as raw data (the lead connects it to Tensor). */
export interface RawTensor {
  name: string;
  dtype: SafeDType;
  shape: number[];
  data: TensorData;
}

type ArrayCtor = { new (buffer: ArrayBuffer, byteOffset: number, length: number): TensorData; name: string };
const ARRAY_OF: Readonly<Record<SafeDType, ArrayCtor>> = {
  F64: Float64Array, F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, F8_E4M3: Uint8Array, F8_E5M2: Uint8Array,
  I64: BigInt64Array, I32: Int32Array, I16: Int16Array, I8: Int8Array,
  U64: BigUint64Array, U32: Uint32Array, U16: Uint16Array, U8: Uint8Array, BOOL: Uint8Array,
};

/** r1ts Tensor dtypes for the safetensors dtypes that have one (used by `read`). */
const TENSOR_DTYPE: Partial<Record<SafeDType, DType>> = {
  F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16', F8_E4M3: 'fp8e4m3', F8_E5M2: 'fp8e5m2', I64: 'i64', I32: 'i32', U8: 'u8', BOOL: 'bool',
};

export interface TensorInfo {
  name: string;
  dtype: SafeDType;
  shape: number[];
  /** Number of elements. */
  numel: number;
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  /** The file holding it. */
  file: string;
}

/** Instrumentation for the fuzz test: the largest single buffer any read in this module allocated. */
export const ioStats = { largestAllocation: 0 };
function alloc(n: number): Uint8Array {
  if (n > ioStats.largestAllocation) ioStats.largestAllocation = n;
  return new Uint8Array(n);
}

function assertLittleEndian(): void {
  // safetensors is little-endian; typed arrays use the host order. Every platform Node 20 ships for is LE.
  if (endianness() !== 'LE') throw new FormatError('safetensors: big-endian hosts are not supported (the format is little-endian)');
}

/** Anything that lists tensors and reads them on demand: one file, or the shards of an index. */
export interface TensorSource {
  /** The file or index path (for messages). */
  readonly path: string;
  /** Tensor names in file order (by offset; shards in index order). */
  readonly names: string[];
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The raw little-endian bytes of one tensor, in a fresh exactly-sized buffer. */
  readBytes(name: string): Uint8Array;
  /** dst.length bytes of one tensor's data starting `start` bytes into it, read into dst (no allocation). */
  readRange(name: string, start: number, dst: Uint8Array): void;
  /** One tensor as raw data of its natural typed-array kind. */
  readRaw(name: string): RawTensor;
  /** One tensor as an r1ts Tensor (dtypes without an r1ts dtype, e.g. I8/I16/U16/U32/U64, throw DTypeError). */
  read(name: string): Tensor;
  close(): void;
}

function rawFromBytes(info: TensorInfo, bytes: Uint8Array): RawTensor {
  const C = ARRAY_OF[info.dtype];
  // bytes is a fresh buffer starting at offset 0, so any element size is aligned.
  const data = C === Uint8Array ? bytes : new C(bytes.buffer as ArrayBuffer, bytes.byteOffset, info.numel);
  return { name: info.name, dtype: info.dtype, shape: [...info.shape], data };
}

function tensorFromRaw(path: string, raw: RawTensor): Tensor {
  const dt = TENSOR_DTYPE[raw.dtype];
  if (!dt) throw new DTypeError(`${path}: tensor '${raw.name}': dtype ${raw.dtype} has no r1ts tensor type (use readRaw)`);
  return fromArray(raw.data as never, raw.shape, dt);
}

export class SafetensorsFile implements TensorSource {
  private fd: number | null;
  readonly names: string[];
  constructor(
    readonly path: string,
    fd: number,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
    /** Header length N (without the 8-byte prefix). */
    readonly headerLength: number,
    /** File size in bytes. */
    readonly size: number,
  ) {
    this.fd = fd;
    this.names = [...tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FormatError(`${this.path}: no tensor named '${name}'`);
    return t;
  }

  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const buf = alloc(t.end - t.begin);
    this.readRange(name, 0, buf);
    return buf;
  }

  readRange(name: string, start: number, dst: Uint8Array): void {
    if (this.fd === null) throw new FormatError(`${this.path}: file is closed`);
    const t = this.info(name);
    if (!Number.isSafeInteger(start) || start < 0 || start + dst.length > t.end - t.begin) {
      throw new RangeError(`${this.path}: tensor '${name}': bytes [${start}, ${start + dst.length}) are outside its ${t.end - t.begin} bytes`);
    }
    let got = 0;
    while (got < dst.length) {
      // readSync moves at most ~2 GiB per call; loop for larger tensors and short reads.
      const n = readSync(this.fd, dst, got, Math.min(dst.length - got, 0x40000000), t.begin + start + got);
      if (n <= 0) throw new FormatError(`${this.path}: tensor '${name}': file ended while reading its data (was it truncated after opening?)`);
      got += n;
    }
  }

  readRaw(name: string): RawTensor {
    assertLittleEndian();
    return rawFromBytes(this.info(name), this.readBytes(name));
  }

  read(name: string): Tensor {
    return tensorFromRaw(this.path, this.readRaw(name));
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pickle refusal

/** Refuse pickle-based checkpoints outright (never unpickled: unpickling can run arbitrary code). */
export function refusePickle(path: string, head: Uint8Array): void {
  const zip = head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04; // torch.save >= 1.6: zip
  const pickle = head.length >= 2 && head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5; // PROTO opcode, protocols 2-5
  const ext = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i.test(path);
  if (ext || zip || pickle) {
    const why = ext ? 'its extension' : zip ? 'it is a zip archive (torch.save format)' : 'it starts with a pickle PROTO opcode';
    throw new FormatError(
      `${path}: looks like a PyTorch pickle checkpoint (${why}); r1ts never unpickles files because unpickling can run arbitrary code. ` +
        'Convert it to safetensors first (e.g. `safetensors.torch.save_file(torch.load(path, weights_only=True), "model.safetensors")` in a trusted environment).',
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Strict JSON (RFC 8259) with duplicate-key detection and bounded nesting.
// JSON.parse silently keeps the last of duplicate keys and can overflow the stack on deep nesting, which would be a
// RangeError rather than a FormatError; a header is untrusted, so we parse it ourselves.

/** A JSON number with whether it was written as an unsigned integer literal (shape and offsets must be). */
export class JsonNumber {
  constructor(readonly value: number, readonly unsignedIntLiteral: boolean) {}
}
export type JsonValue = null | boolean | JsonNumber | string | JsonValue[] | Map<string, JsonValue>;

const STRING_SPECIAL = /["\\\x00-\x1f]/g;

export function parseStrictJson(text: string, where: string): JsonValue {
  let i = 0;
  const n = text.length;
  const fail = (msg: string): never => {
    throw new FormatError(`${where}: invalid JSON at character ${i}: ${msg}`);
  };
  const code = (k: number) => (k < n ? text.charCodeAt(k) : -1);
  const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const str = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      // Jump to the next quote, backslash or control character with a native regex scan.
      STRING_SPECIAL.lastIndex = i;
      const m = STRING_SPECIAL.exec(text);
      if (!m) { i = n; return fail('unterminated string'); }
      const j = m.index;
      out += text.slice(i, j);
      i = j;
      const c = text.charCodeAt(i);
      if (c === 0x22) { i++; return out; }
      if (c < 0x20) fail('control character in string');
      // backslash escape
      const e = text[i + 1];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const h = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(h, 16));
          i += 4;
          break;
        }
        default: fail('bad escape');
      }
      i += 2;
    }
  };
  const num = (): JsonNumber => {
    const s = i;
    if (code(i) === 0x2d) i++;
    if (code(i) === 0x30) i++;
    else if (code(i) >= 0x31 && code(i) <= 0x39) while (isDigit(code(i))) i++;
    else fail('bad number');
    let int = text.charCodeAt(s) !== 0x2d;
    if (code(i) === 0x2e) {
      int = false;
      i++;
      if (!isDigit(code(i))) fail('bad number fraction');
      while (isDigit(code(i))) i++;
    }
    if (code(i) === 0x65 || code(i) === 0x45) {
      int = false;
      i++;
      if (code(i) === 0x2b || code(i) === 0x2d) i++;
      if (!isDigit(code(i))) fail('bad number exponent');
      while (isDigit(code(i))) i++;
    }
    return new JsonNumber(Number(text.slice(s, i)), int);
  };
  const lit = (word: string, v: JsonValue): JsonValue => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return v;
    }
    return fail('unexpected token');
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_JSON_DEPTH) fail(`nesting deeper than ${MAX_JSON_DEPTH}`);
    ws();
    if (i >= n) fail('unexpected end');
    const c = text.charCodeAt(i);
    if (c === 0x7b) { // {
      i++;
      const m = new Map<string, JsonValue>();
      ws();
      if (code(i) === 0x7d) { i++; return m; }
      for (;;) {
        ws();
        if (code(i) !== 0x22) fail('expected a string key');
        const k = str();
        if (m.has(k)) fail(`duplicate key ${JSON.stringify(k)}`);
        ws();
        if (code(i) !== 0x3a) fail("expected ':'");
        i++;
        m.set(k, value(depth + 1));
        ws();
        const d = code(i);
        if (d === 0x2c) { i++; continue; }
        if (d === 0x7d) { i++; return m; }
        fail("expected ',' or '}'");
      }
    }
    if (c === 0x5b) { // [
      i++;
      const a: JsonValue[] = [];
      ws();
      if (code(i) === 0x5d) { i++; return a; }
      for (;;) {
        a.push(value(depth + 1));
        ws();
        const d = code(i);
        if (d === 0x2c) { i++; continue; }
        if (d === 0x5d) { i++; return a; }
        fail("expected ',' or ']'");
      }
    }
    if (c === 0x22) return str();
    if (c === 0x2d || isDigit(c)) return num();
    if (c === 0x74) return lit('true', true);
    if (c === 0x66) return lit('false', false);
    if (c === 0x6e) return lit('null', null);
    return fail(`unexpected character ${JSON.stringify(text[i])}`);
  };
  const v = value(0);
  ws();
  if (i !== n) fail('trailing characters after the JSON value');
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Header validation

export interface ParsedHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  headerLength: number;
}

const ENTRY_KEYS = ['dtype', 'shape', 'data_offsets'];

function uint(v: JsonValue | undefined): number | null {
  return v instanceof JsonNumber && v.unsignedIntLiteral && Number.isSafeInteger(v.value) ? v.value : null;
}

/**
 * Validate a header given its bytes and the total file size. `path` names the file in errors.
 * Pure (no I/O), shared by openSafetensors and parseSafetensors.
 */
export function parseHeader(path: string, headerBytes: Uint8Array, fileSize: number): ParsedHeader {
  const headerLength = headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new FormatError(`${path}: header is not valid UTF-8`);
  }
  if (!text.startsWith('{')) throw new FormatError(`${path}: header must start with '{' (a JSON object)`);
  const header = parseStrictJson(text, `${path}: header`);
  if (!(header instanceof Map)) throw new FormatError(`${path}: header must be a JSON object`);
  const dataStart = 8 + headerLength;
  const dataLen = fileSize - dataStart;
  const list: TensorInfo[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of header) {
    if (name === '__metadata__') {
      if (!(v instanceof Map)) throw new FormatError(`${path}: __metadata__ must be an object of strings`);
      const md: Record<string, string> = Object.create(null) as Record<string, string>;
      for (const [k, s] of v) {
        if (typeof s !== 'string') throw new FormatError(`${path}: __metadata__ key '${k}' must map to a string`);
        md[k] = s;
      }
      metadata = md;
      continue;
    }
    const where = `${path}: tensor '${name}'`;
    if (name.length === 0) throw new FormatError(`${path}: a tensor has an empty name`);
    if (!(v instanceof Map)) throw new FormatError(`${where}: entry must be an object {dtype, shape, data_offsets}`);
    for (const k of v.keys()) if (!ENTRY_KEYS.includes(k)) throw new FormatError(`${where}: unknown key '${k}' (allowed: dtype, shape, data_offsets)`);
    for (const k of ENTRY_KEYS) if (!v.has(k)) throw new FormatError(`${where}: missing '${k}'`);
    const dtype = v.get('dtype');
    if (!isSafeDType(dtype)) {
      const shown = typeof dtype === 'string' ? JSON.stringify(dtype) : dtype instanceof JsonNumber ? String(dtype.value) : `a ${dtype instanceof Map ? 'object' : Array.isArray(dtype) ? 'list' : String(dtype)}`;
      throw new FormatError(`${where}: unknown dtype ${shown} (known: ${Object.keys(SAFE_DTYPE_SIZE).join(', ')})`);
    }
    const shapeJ = v.get('shape');
    if (!Array.isArray(shapeJ)) throw new FormatError(`${where}: shape must be a list of non-negative integers`);
    const shape: number[] = [];
    let numel = 1;
    for (const d of shapeJ) {
      const x = uint(d);
      if (x === null) throw new FormatError(`${where}: shape must be a list of non-negative integers`);
      shape.push(x);
      numel *= x;
    }
    if (shape.includes(0)) numel = 0;
    const offJ = v.get('data_offsets');
    if (!Array.isArray(offJ) || offJ.length !== 2) throw new FormatError(`${where}: data_offsets must be [begin, end]`);
    const b = uint(offJ[0]), e = uint(offJ[1]);
    if (b === null || e === null) throw new FormatError(`${where}: data_offsets must be non-negative integers`);
    if (e < b) throw new FormatError(`${where}: data_offsets end ${e} is before begin ${b}`);
    if (e > dataLen) throw new FormatError(`${where}: data_offsets [${b}, ${e}] run past the data section (${dataLen} bytes)`);
    const bytes = numel * SAFE_DTYPE_SIZE[dtype];
    if (!Number.isSafeInteger(bytes) || bytes !== e - b) {
      throw new FormatError(`${where}: data_offsets [${b}, ${e}] hold ${e - b} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${Number.isSafeInteger(bytes) ? bytes : 'more than 2^53'} bytes`);
    }
    list.push({ name, dtype, shape, numel, begin: dataStart + b, end: dataStart + e, file: path });
  }
  // Tensors must tile the data section: sorted by offset, each begins where the previous ended, the last ends the file.
  list.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let pos = dataStart;
  let prev = '';
  for (const t of list) {
    if (t.begin < pos) throw new FormatError(`${path}: tensor '${t.name}' overlaps tensor '${prev}' (bytes ${t.begin - dataStart}..${pos - dataStart} of the data section)`);
    if (t.begin > pos) throw new FormatError(`${path}: tensor '${t.name}': gap of ${t.begin - pos} bytes before it in the data section (tensors must be contiguous)`);
    pos = t.end;
    prev = t.name;
  }
  if (pos !== fileSize) throw new FormatError(`${path}: ${fileSize - pos} bytes after the last tensor${prev ? ` '${prev}'` : ''} are not covered by the header (tensors must cover the data section exactly)`);
  const tensors = new Map<string, TensorInfo>();
  for (const t of list) tensors.set(t.name, t);
  return { tensors, metadata, headerLength };
}

/** Read the 8-byte header length and check it is bounded and inside a file of `size` bytes. */
function headerLengthOf(path: string, prefix: Uint8Array, size: number): number {
  if (size < 8) throw new FormatError(`${path}: too short for a safetensors file (${size} bytes; the 8-byte header length is missing)`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new FormatError(`${path}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (is this a safetensors file?)`);
  const hlen = Number(n);
  if (8 + hlen > size) throw new FormatError(`${path}: header length ${hlen} runs past the end of the file (${size} bytes; truncated, or not a safetensors file)`);
  if (hlen < 2) throw new FormatError(`${path}: header length ${hlen} is too small for a JSON object`);
  return hlen;
}

/** Parse a whole safetensors file held in memory (tests, small files). Tensors' begin/end index into `bytes`. */
export function parseSafetensors(bytes: Uint8Array, path = '<buffer>'): ParsedHeader {
  refusePickle(path, bytes.subarray(0, 8));
  const hlen = headerLengthOf(path, bytes, bytes.length);
  return parseHeader(path, bytes.subarray(8, 8 + hlen), bytes.length);
}

/** Read one tensor from an in-memory file parsed by parseSafetensors (copies into an aligned buffer). */
export function readRawFromBuffer(bytes: Uint8Array, info: TensorInfo): RawTensor {
  assertLittleEndian();
  const copy = alloc(info.end - info.begin);
  copy.set(bytes.subarray(info.begin, info.end));
  return rawFromBytes(info, copy);
}

/** Open a safetensors file lazily: reads and validates only the header; tensors are read on demand. */
export function openSafetensors(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(`${path}: cannot open (${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FormatError(`${path}: not a regular file`);
    const size = st.size;
    const prefix = new Uint8Array(8);
    const got = size > 0 ? readSync(fd, prefix, 0, Math.min(8, size), 0) : 0;
    refusePickle(path, prefix.subarray(0, got));
    const hlen = headerLengthOf(path, prefix, size);
    const hbuf = alloc(hlen); // bounded by MAX_HEADER_BYTES and by the file size (checked above)
    let off = 0;
    while (off < hlen) {
      const r = readSync(fd, hbuf, off, hlen - off, 8 + off);
      if (r <= 0) throw new FormatError(`${path}: file ended inside the ${hlen}-byte header`);
      off += r;
    }
    const h = parseHeader(path, hbuf, size);
    return new SafetensorsFile(path, fd, h.tensors, h.metadata, hlen, size);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sharded checkpoints: model.safetensors.index.json {"metadata": {"total_size": N}, "weight_map": {tensor: shard}}

export class ShardedSafetensors implements TensorSource {
  readonly names: string[];
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  private readonly owner: Map<string, SafetensorsFile>;
  constructor(
    readonly path: string,
    readonly shards: SafetensorsFile[],
    /** The index's own metadata (e.g. total_size), as strings. */
    readonly metadata: Readonly<Record<string, string>>,
    /** `metadata.total_size` as declared by the index, or null. */
    readonly declaredTotalSize: number | null,
  ) {
    const tensors = new Map<string, TensorInfo>();
    this.owner = new Map();
    for (const s of shards) {
      for (const [name, info] of s.tensors) {
        tensors.set(name, info);
        this.owner.set(name, s);
      }
    }
    this.tensors = tensors;
    this.names = [...tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  private file(name: string): SafetensorsFile {
    const f = this.owner.get(name);
    if (!f) throw new FormatError(`${this.path}: no tensor named '${name}'`);
    return f;
  }
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }
  readBytes(name: string): Uint8Array {
    return this.file(name).readBytes(name);
  }

  readRange(name: string, start: number, dst: Uint8Array): void {
    this.file(name).readRange(name, start, dst);
  }
  readRaw(name: string): RawTensor {
    return this.file(name).readRaw(name);
  }
  read(name: string): Tensor {
    return this.file(name).read(name);
  }
  close(): void {
    for (const s of this.shards) s.close();
  }
}

/**
 * Open a sharded checkpoint through its index. Validates: the index is a JSON object with a `weight_map` object of
 * tensor -> shard file name; shard names are plain file names in the index's folder; every shard exists and is a valid
 * safetensors file; every listed tensor is in the shard the map names; every tensor in a shard is listed for it.
 */
export function openSafetensorsIndex(indexPath: string): ShardedSafetensors {
  let raw: Buffer;
  try {
    if (statSync(indexPath).size > MAX_HEADER_BYTES) throw new FormatError(`${indexPath}: index larger than ${MAX_HEADER_BYTES} bytes`);
    raw = readFileSync(indexPath);
  } catch (e) {
    if (e instanceof FormatError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(`${indexPath}: cannot read (${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new FormatError(`${indexPath}: not valid UTF-8`);
  }
  const j = parseStrictJson(text, indexPath);
  if (!(j instanceof Map)) throw new FormatError(`${indexPath}: must be a JSON object`);
  const wm = j.get('weight_map');
  if (!(wm instanceof Map)) throw new FormatError(`${indexPath}: 'weight_map' must be an object of tensor name -> shard file`);
  const md = j.get('metadata');
  const metadata: Record<string, string> = {};
  let declaredTotalSize: number | null = null;
  if (md !== undefined && md !== null) {
    if (!(md instanceof Map)) throw new FormatError(`${indexPath}: 'metadata' must be an object`);
    for (const [k, v] of md) {
      metadata[k] = v instanceof JsonNumber ? String(v.value) : typeof v === 'string' ? v : JSON.stringify(v instanceof Map ? Object.fromEntries(v) : v);
      if (k === 'total_size' && v instanceof JsonNumber) declaredTotalSize = v.value;
    }
  }
  const dir = dirname(indexPath);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of wm) {
    if (name.length === 0) throw new FormatError(`${indexPath}: weight_map has an empty tensor name`);
    if (typeof shard !== 'string') throw new FormatError(`${indexPath}: weight_map['${name}'] must be a shard file name (a string)`);
    if (shard === '' || shard === '.' || shard === '..' || /[/\\\0]/.test(shard)) {
      throw new FormatError(`${indexPath}: weight_map['${name}'] = ${JSON.stringify(shard)} is not a plain file name in the index's folder`);
    }
    let l = byShard.get(shard);
    if (!l) byShard.set(shard, (l = []));
    l.push(name);
  }
  const files: SafetensorsFile[] = [];
  try {
    for (const [shard, names] of byShard) {
      const p = join(dir, shard);
      if (!existsSync(p)) throw new FormatError(`${indexPath}: shard '${shard}' (listed for tensor '${names[0]}'${names.length > 1 ? ` and ${names.length - 1} more` : ''}) does not exist`);
      const f = openSafetensors(p);
      files.push(f);
      for (const name of names) if (!f.has(name)) throw new FormatError(`${indexPath}: tensor '${name}' is listed in shard '${shard}' but that shard does not contain it`);
      for (const name of f.names) {
        const listed = wm.get(name);
        if (listed !== shard) {
          throw new FormatError(`${indexPath}: shard '${shard}' contains tensor '${name}' which the weight_map ${listed === undefined ? 'does not list' : `assigns to '${String(listed)}'`}`);
        }
      }
    }
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  return new ShardedSafetensors(indexPath, files, metadata, declaredTotalSize);
}

/**
 * Open a checkpoint: a .safetensors file, a model.safetensors.index.json, or a folder holding either (when a folder
 * has both, the index is used: it is what transformers' from_pretrained reads first for sharded checkpoints).
 * Folders holding only PyTorch pickles are refused with the conversion hint.
 */
export function openCheckpoint(path: string): TensorSource {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new FormatError(`${path}: no such file or folder`);
  }
  if (st.isDirectory()) {
    const index = join(path, 'model.safetensors.index.json');
    const single = join(path, 'model.safetensors');
    if (existsSync(index)) return openSafetensorsIndex(index);
    if (existsSync(single)) return openSafetensors(single);
    for (const f of ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.pt', 'consolidated.00.pth']) {
      if (existsSync(join(path, f))) refusePickle(join(path, f.replace(/\.index\.json$/, '')), new Uint8Array(0));
    }
    throw new FormatError(`${path}: no model.safetensors or model.safetensors.index.json in this folder`);
  }
  if (path.endsWith('.bin.index.json')) refusePickle(path.slice(0, -'.index.json'.length), new Uint8Array(0));
  if (path.endsWith('.index.json')) return openSafetensorsIndex(path);
  return openSafetensors(path);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

/** A tensor to write: data of its natural kind (or raw little-endian bytes as a Uint8Array), or a thunk producing it. */
export interface WriteTensor {
  name: string;
  dtype: SafeDType;
  shape: readonly number[];
  data: TensorData | (() => TensorData);
}

function byteCompare(a: string, b: string): number {
  // The reference sorts names as Rust strings: by UTF-8 bytes.
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function checkWriteEntry(t: WriteTensor, where: string): number {
  if (typeof t.name !== 'string' || t.name.length === 0) throw new FormatError(`${where}: a tensor has an empty name`);
  if (t.name === '__metadata__') throw new FormatError(`${where}: '__metadata__' cannot be a tensor name`);
  if (!isSafeDType(t.dtype)) throw new FormatError(`${where}: tensor '${t.name}': unknown dtype ${JSON.stringify(t.dtype)}`);
  let numel = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new FormatError(`${where}: tensor '${t.name}': shape [${t.shape.join(', ')}] must be non-negative integers`);
    numel *= d;
  }
  return numel * SAFE_DTYPE_SIZE[t.dtype];
}

function dataBytes(t: WriteTensor, nbytes: number, where: string): Uint8Array {
  const data = typeof t.data === 'function' ? t.data() : t.data;
  const C = ARRAY_OF[t.dtype];
  const asBytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (!(data instanceof C) && !(data instanceof Uint8Array)) {
    throw new FormatError(`${where}: tensor '${t.name}': a ${data.constructor.name} cannot hold ${t.dtype} (expected ${C.name}, or raw bytes as a Uint8Array)`);
  }
  if (asBytes.length !== nbytes) {
    throw new FormatError(`${where}: tensor '${t.name}': ${asBytes.length} bytes of data for shape [${t.shape.join(', ')}] of ${t.dtype} (${nbytes} bytes)`);
  }
  return asBytes;
}

interface Layout {
  header: Uint8Array;
  order: { t: WriteTensor; nbytes: number }[];
  total: number;
}

/** Header bytes and tensor order exactly as the reference writer (safetensors/src/tensor.rs `prepare`) makes them. */
function layout(tensors: readonly WriteTensor[], metadata: Record<string, string> | undefined, where: string): Layout {
  const names = new Set<string>();
  const order = tensors.map((t) => {
    const nbytes = checkWriteEntry(t, where);
    if (names.has(t.name)) throw new FormatError(`${where}: tensor '${t.name}' appears twice`);
    names.add(t.name);
    return { t, nbytes };
  });
  order.sort((a, b) => DTYPE_ORDER.indexOf(b.t.dtype) - DTYPE_ORDER.indexOf(a.t.dtype) || byteCompare(a.t.name, b.t.name));
  // JSON.stringify escapes like serde_json (", \, control characters; non-ASCII kept as UTF-8), and keeps key order:
  // __metadata__ first, then tensors in data order. Build by hand so a tensor named e.g. "__proto__" is kept.
  const parts: string[] = [];
  if (metadata) {
    const md: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new FormatError(`${where}: metadata '${k}' must be a string`);
      md.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${md.join(',')}}`);
  }
  let off = 0;
  for (const { t, nbytes } of order) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${off},${off + nbytes}]}`);
    off += nbytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8; // pad with spaces so the data section starts 8-byte aligned
  if (padded > MAX_HEADER_BYTES) throw new FormatError(`${where}: header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  const header = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, order, total: 8 + padded + off };
}

/** Serialize to one in-memory buffer (small files, tests). */
export function serializeSafetensors(tensors: readonly WriteTensor[], metadata?: Record<string, string>): Uint8Array {
  assertLittleEndian();
  const L = layout(tensors, metadata, '<buffer>');
  const out = new Uint8Array(L.total);
  out.set(L.header, 0);
  let pos = L.header.length;
  for (const { t, nbytes } of L.order) {
    out.set(dataBytes(t, nbytes, '<buffer>'), pos);
    pos += nbytes;
  }
  return out;
}

/** A temp path in the same folder (so rename is atomic on one filesystem). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(bytes.length - off, 0x40000000));
}

/**
 * Write a safetensors file atomically: a temp file in the same folder, fsync, then rename over `path`; a reader never
 * sees a half-written file, and a failure leaves any previous file intact. Data is streamed tensor by tensor
 * (thunks are called one at a time), so writing needs no whole-file buffer. Returns the file size.
 */
export function writeSafetensors(path: string, tensors: readonly WriteTensor[], opts: { metadata?: Record<string, string> } = {}): number {
  assertLittleEndian();
  const L = layout(tensors, opts.metadata, path);
  const tmp = tempPathFor(path);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    writeAll(fd, L.header);
    for (const { t, nbytes } of L.order) writeAll(fd, dataBytes(t, nbytes, path));
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  return L.total;
}

/** Bytes a file of these tensors takes (header included), without writing it. */
export function safetensorsSize(tensors: readonly WriteTensor[], metadata?: Record<string, string>): number {
  return layout(tensors, metadata, '<size>').total;
}
