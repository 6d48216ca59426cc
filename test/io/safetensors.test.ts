import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, copyFileSync, unlinkSync, truncateSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  openSafetensors, openSafetensorsIndex, openCheckpoint, writeSafetensors, serializeSafetensors, parseSafetensors,
  readRawFromBuffer, ioStats, parseStrictJson, JsonNumber, type JsonValue, MAX_HEADER_BYTES, safetensorsSize, type RawTensor, type SafeDType, type WriteTensor,
} from '../../src/io/safetensors.js';
import { FormatError, DTypeError } from '../../src/errors.js';
import { decodeFp8Array } from '../../src/quant/fp8.js';

// dist/test/io -> repo root
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const FIX = join(ROOT, 'test', 'fixtures', 'io');

interface Expected {
  header_length: number;
  metadata: Record<string, string>;
  order: string[];
  tensors: Record<string, { dtype: SafeDType; shape: number[]; values: (number | string)[] }>;
  sharded: { 'a.weight': number[]; 'b.weight': number[]; 'c.weight': number[]; total_size: number };
}
const expected = JSON.parse(readFileSync(join(FIX, 'reference.json'), 'utf8')) as Expected;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'r1-st-'));
}

/** f16 / bf16 bits to a number (independent of the code under test). */
function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function bf16(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
}
function values(t: RawTensor): (number | string)[] {
  const d = t.data;
  switch (t.dtype) {
    case 'BF16': return [...(d as Uint16Array)].map(bf16);
    case 'F16': return [...(d as Uint16Array)].map(f16);
    case 'F8_E4M3': return [...decodeFp8Array(d as Uint8Array, 'e4m3')];
    case 'F8_E5M2': return [...decodeFp8Array(d as Uint8Array, 'e5m2')];
    case 'I64': return [...(d as BigInt64Array)].map(String);
    default: return Array.from(d as ArrayLike<number>, Number);
  }
}

test('reads the reference file written byte by byte by the Python generator', () => {
  const f = openSafetensors(join(FIX, 'reference.safetensors'));
  try {
    assert.equal(f.headerLength, expected.header_length);
    assert.deepEqual({ ...f.metadata }, expected.metadata);
    assert.deepEqual(f.names, expected.order, 'names come in file (offset) order');
    assert.equal(f.names.length, Object.keys(expected.tensors).length);
    for (const [name, e] of Object.entries(expected.tensors)) {
      const t = f.readRaw(name);
      assert.equal(t.dtype, e.dtype, name);
      assert.deepEqual(t.shape, e.shape, name);
      assert.deepEqual(values(t), e.values, name);
    }
    const kinds: Record<string, string> = {
      'model.embed_tokens.weight': 'Uint16Array', 'model.norm.weight': 'Uint16Array', 'lm_head.weight': 'Float32Array',
      'extra.f64': 'Float64Array', 'layers.0.mlp.weight': 'Uint8Array', 'ids.i64': 'BigInt64Array', 'ids.i32': 'Int32Array',
      'ids.i16': 'Int16Array', 'ids.i8': 'Int8Array', 'mask.u8': 'Uint8Array', 'mask.bool': 'Uint8Array',
    };
    for (const [name, k] of Object.entries(kinds)) assert.equal(f.readRaw(name).data.constructor.name, k, name);
    // The Tensor view used by the model loader.
    const lm = f.read('lm_head.weight');
    assert.deepEqual([...lm.shape], [2, 3]);
    assert.equal(lm.dtype, 'f32');
    assert.throws(() => f.read('ids.i16'), DTypeError);
    assert.throws(() => f.readRaw('nope'), (e: unknown) => e instanceof FormatError && /no tensor named 'nope'/.test(e.message));
  } finally {
    f.close();
  }
});

test('the writer reproduces the reference layout byte for byte (order, header JSON, space padding)', () => {
  const path = join(FIX, 'reference.safetensors');
  const f = openSafetensors(path);
  const ts = f.names.map((n) => f.readRaw(n));
  const md = { ...f.metadata };
  f.close();
  // Shuffle the input order: the writer sorts like the reference (dtype alignment desc, then name bytes).
  ts.reverse();
  const dir = tmp();
  const out = join(dir, 'copy.safetensors');
  writeSafetensors(out, ts, { metadata: md });
  assert.deepEqual(readFileSync(out), readFileSync(path));
  assert.deepEqual(Buffer.from(serializeSafetensors(ts, md)), readFileSync(path));
  assert.equal(safetensorsSize(ts, md), readFileSync(path).length);
  rmSync(dir, { recursive: true });
});

test('round trip of every dtype incl. U16/U32/U64, scalars, empty tensors, raw-byte data and thunks', () => {
  const ts: WriteTensor[] = [
    { name: 'f64', dtype: 'F64', shape: [2], data: new Float64Array([1.5, -2]) },
    { name: 'f32', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    { name: 'f16', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
    { name: 'bf16', dtype: 'BF16', shape: [3], data: () => new Uint16Array([0x3f80, 0xbf80, 0]) },
    { name: 'e4', dtype: 'F8_E4M3', shape: [2], data: new Uint8Array([0x7e, 0x77]) },
    { name: 'e5', dtype: 'F8_E5M2', shape: [1], data: new Uint8Array([0x7b]) },
    { name: 'i64', dtype: 'I64', shape: [1], data: new BigInt64Array([-(2n ** 62n)]) },
    { name: 'u64', dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
    { name: 'i32', dtype: 'I32', shape: [1], data: new Int32Array([-7]) },
    { name: 'u32', dtype: 'U32', shape: [1], data: new Uint32Array([4e9]) },
    { name: 'i16', dtype: 'I16', shape: [1], data: new Int16Array([-300]) },
    { name: 'u16', dtype: 'U16', shape: [1], data: new Uint16Array([65535]) },
    { name: 'i8', dtype: 'I8', shape: [1], data: new Int8Array([-1]) },
    { name: 'u8', dtype: 'U8', shape: [], data: new Uint8Array([200]) },
    { name: 'bool', dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
    { name: 'empty', dtype: 'F32', shape: [0, 5], data: new Float32Array(0) },
    { name: 'raw', dtype: 'F32', shape: [1], data: new Uint8Array(new Float32Array([9.5]).buffer) },
  ];
  const dir = tmp();
  const p = join(dir, 'all.safetensors');
  const size = writeSafetensors(p, ts, { metadata: { k: 'v', 'ü': '"quoted"\n' } });
  const f = openSafetensors(p);
  assert.equal(f.size, size);
  assert.equal((8 + f.headerLength) % 8, 0, 'data section 8-byte aligned');
  assert.deepEqual({ ...f.metadata }, { k: 'v', 'ü': '"quoted"\n' });
  for (const t of ts) {
    const r = f.readRaw(t.name);
    const d = typeof t.data === 'function' ? t.data() : t.data;
    assert.deepEqual(r.shape, [...t.shape]);
    assert.deepEqual(new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength), new Uint8Array(d.buffer, d.byteOffset, d.byteLength), t.name);
    assert.equal(r.data.byteOffset % 8, 0);
  }
  assert.equal(f.readRaw('raw').data[0], 9.5);
  f.close();
  assert.throws(() => f.readRaw('f32'), /closed/);
  // Errors on write: wrong array kind, wrong length, duplicate names, bad shape.
  assert.throws(() => writeSafetensors(p, [{ name: 'x', dtype: 'F32', shape: [2], data: new Float64Array(2) }]), /Float64Array cannot hold F32/);
  assert.throws(() => writeSafetensors(p, [{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) }]), /8 bytes of data for shape \[3\]/);
  assert.throws(() => writeSafetensors(p, [ts[0]!, ts[0]!]), /appears twice/);
  assert.throws(() => writeSafetensors(p, [{ name: 'x', dtype: 'F32', shape: [-1], data: new Float32Array(0) }]), /non-negative/);
  assert.throws(() => writeSafetensors(p, [{ name: '', dtype: 'F32', shape: [0], data: new Float32Array(0) }]), /empty name/);
  // A failed write leaves the previous file intact and no temp file behind.
  assert.equal(openSafetensors(p).names.length, ts.length);
  assert.deepEqual(readdirSync(dir), ['all.safetensors']);
  rmSync(dir, { recursive: true });
});

test('opening is lazy: a 3 GB (sparse) file opens instantly and allocates only its header', () => {
  const dir = tmp();
  const p = join(dir, 'big.safetensors');
  const n = 3_000_000_000;
  const hdr = Buffer.from(JSON.stringify({ small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, big: { dtype: 'U8', shape: [n], data_offsets: [8, 8 + n] } }));
  const pad = Buffer.alloc((8 - (hdr.length % 8)) % 8, 0x20);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hdr.length + pad.length));
  writeFileSync(p, Buffer.concat([len, hdr, pad, Buffer.from(new Float32Array([1, 2]).buffer)]));
  truncateSync(p, 8 + hdr.length + pad.length + 8 + n);
  ioStats.largestAllocation = 0;
  const t0 = performance.now();
  const f = openSafetensors(p);
  const ms = performance.now() - t0;
  assert.ok(ms < 200, `open took ${ms} ms`);
  assert.equal(ioStats.largestAllocation, hdr.length + pad.length);
  assert.equal(f.info('big').numel, n);
  assert.deepEqual([...(f.readRaw('small').data as Float32Array)], [1, 2]);
  assert.equal(ioStats.largestAllocation, hdr.length + pad.length, 'reading a small tensor allocates only that tensor');
  f.close();
  rmSync(dir, { recursive: true });
});

/** A file from a header object (serialized with JSON.stringify) and a data section. */
function fileOf(header: unknown, dataLen: number, rawHeader?: string): Uint8Array {
  const h = Buffer.from(rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  return out;
}
const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'U8', shape: [4], data_offsets: [8, 12] } };

test('every rule violation is a FormatError naming the file, the tensor and the rule', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['valid', fileOf(ok, 12), /^$/],
    ['short', new Uint8Array(5), /too short.*8-byte header length/],
    ['huge header length', (() => { const b = fileOf(ok, 12); new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true); return b; })(), /exceeds the 100000000-byte limit/],
    ['header past end', (() => { const b = fileOf(ok, 12); new DataView(b.buffer).setBigUint64(0, 5000n, true); return b; })(), /runs past the end of the file/],
    ['not JSON', fileOf(null, 0, '{"a": nope}'), /invalid JSON/],
    ['not object', fileOf(null, 0, '[1, 2, 3]  '), /must start with '\{'/],
    ['trailing garbage', fileOf(null, 0, '{} x'), /trailing characters/],
    ['bad utf8', fileOf(null, 0, '{"\xff"}').map((x, i) => (i === 10 ? 0xff : x)), /not valid UTF-8/],
    ['duplicate name', fileOf(null, 8, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'), /duplicate key "a"/],
    ['deep nesting', fileOf(null, 0, '{"__metadata__":' + '['.repeat(100000) + ']'.repeat(100000) + '}'), /nesting deeper than 64/],
    ['empty name', fileOf({ '': { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4), /empty name/],
    ['unknown key', fileOf({ a: { ...ok.a, extra: 1 }, b: ok.b }, 12), /tensor 'a': unknown key 'extra'/],
    ['missing key', fileOf({ a: { dtype: 'F32', shape: [2] }, b: ok.b }, 12), /tensor 'a': missing 'data_offsets'/],
    ['unknown dtype', fileOf({ a: { ...ok.a, dtype: 'F128' }, b: ok.b }, 12), /tensor 'a': unknown dtype "F128"/],
    ['negative dim', fileOf({ a: { ...ok.a, shape: [-2] }, b: ok.b }, 12), /tensor 'a': shape must be a list of non-negative integers/],
    ['fractional dim', fileOf({ a: { ...ok.a, shape: [2.5] }, b: ok.b }, 12), /tensor 'a': shape must be/],
    ['exponent dim', fileOf(null, 12, '{"a":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}'), /tensor 'a': shape must be/],
    ['unsafe dim', fileOf(null, 12, '{"a":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}'), /tensor 'a': shape must be/],
    ['offsets shape', fileOf({ a: { ...ok.a, data_offsets: [0] }, b: ok.b }, 12), /tensor 'a': data_offsets must be \[begin, end\]/],
    ['negative offset', fileOf({ a: { ...ok.a, data_offsets: [-8, 0] }, b: ok.b }, 12), /tensor 'a': data_offsets must be non-negative integers/],
    ['end before begin', fileOf({ a: { ...ok.a, data_offsets: [8, 0] }, b: ok.b }, 12), /tensor 'a': data_offsets end 0 is before begin 8/],
    ['past data', fileOf({ a: ok.a, b: { ...ok.b, data_offsets: [8, 1e12] } }, 12), /tensor 'b': data_offsets \[8, 1000000000000\] run past the data section \(12 bytes\)/],
    ['size mismatch', fileOf({ a: { ...ok.a, shape: [3] }, b: ok.b }, 12), /tensor 'a': data_offsets \[0, 8\] hold 8 bytes but shape \[3\] of F32 needs 12 bytes/],
    ['overflowing numel', fileOf({ a: { ...ok.a, shape: [2 ** 40, 2 ** 40] }, b: ok.b }, 12), /tensor 'a':.*needs more than 2\^53 bytes/],
    ['overlap', fileOf({ a: ok.a, b: { dtype: 'U8', shape: [4], data_offsets: [4, 8] } }, 12), /overlaps/],
    ['gap', fileOf({ a: ok.a, b: { dtype: 'U8', shape: [3], data_offsets: [9, 12] } }, 12), /tensor 'b': gap of 1 bytes/],
    ['uncovered tail', fileOf(ok, 20), /8 bytes after the last tensor 'b' are not covered/],
    ['metadata not strings', fileOf({ __metadata__: { a: 1 }, ...ok }, 12), /__metadata__ key 'a' must map to a string/],
    ['metadata not object', fileOf({ __metadata__: 'x', ...ok }, 12), /__metadata__ must be an object/],
    ['entry not object', fileOf({ a: [1, 2], b: ok.b }, 12), /tensor 'a': entry must be an object/],
  ];
  const dir = tmp();
  for (const [label, bytes, re] of cases) {
    const p = join(dir, `${label.replace(/ /g, '_')}.safetensors`);
    writeFileSync(p, bytes);
    if (label === 'valid') {
      assert.equal(openSafetensors(p).names.length, 2);
      assert.equal(parseSafetensors(bytes).tensors.size, 2);
      continue;
    }
    for (const attempt of [() => openSafetensors(p), () => parseSafetensors(bytes, p)]) {
      assert.throws(attempt, (e: unknown) => {
        assert.ok(e instanceof FormatError, `${label}: ${String(e)}`);
        assert.match(e.message, re, label);
        assert.ok(e.message.startsWith(p), `${label}: message names the file: ${e.message}`);
        return true;
      });
    }
  }
  // Zero-size tensors are legal (offsets [x, x]); an empty header is a valid empty file.
  assert.equal(parseSafetensors(fileOf({ z: { dtype: 'F32', shape: [0], data_offsets: [0, 0] }, ...ok }, 12)).tensors.size, 3);
  assert.equal(parseSafetensors(fileOf({}, 0)).tensors.size, 0);
  // A tensor named like an Object.prototype property is just a name.
  const proto = parseSafetensors(fileOf(null, 4, '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'));
  assert.deepEqual([...proto.tensors.keys()], ['__proto__']);
  assert.equal(MAX_HEADER_BYTES, 100_000_000);
  rmSync(dir, { recursive: true });
});

test('PyTorch pickles are refused with the conversion hint, never unpickled', () => {
  const dir = tmp();
  const cases: [string, Uint8Array][] = [
    ['pytorch_model.bin', fileOf(ok, 12)], // even valid safetensors bytes: the extension says pickle
    ['weights.safetensors', new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0, 0])], // zip (torch.save >= 1.6)
    ['old.safetensors', new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20])], // pickle protocol 2
    ['model.pt', new Uint8Array([1, 2, 3])],
  ];
  for (const [name, bytes] of cases) {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    assert.throws(() => openSafetensors(p), (e: unknown) => e instanceof FormatError && /PyTorch pickle checkpoint/.test(e.message) && /Convert it to safetensors/.test(e.message) && e.message.startsWith(p));
  }
  const folder = join(dir, 'pt-model');
  mkdirSync(folder);
  writeFileSync(join(folder, 'pytorch_model.bin'), new Uint8Array([0x80, 0x02]));
  assert.throws(() => openCheckpoint(folder), /PyTorch pickle checkpoint/);
  assert.throws(() => openCheckpoint(join(dir, 'missing')), /no such file or folder/);
  assert.throws(() => openSafetensors(join(dir, 'missing.safetensors')), (e: unknown) => e instanceof FormatError && /cannot open \(no such file\)/.test(e.message));
  assert.throws(() => openSafetensors(dir), FormatError);
  rmSync(dir, { recursive: true });
});

test('sharded checkpoint from the Python generator: read through the index', () => {
  const s = openSafetensorsIndex(join(FIX, 'sharded', 'model.safetensors.index.json'));
  assert.equal(s.shards.length, 2);
  assert.deepEqual([...s.names].sort(), ['a.weight', 'b.weight', 'c.weight']);
  assert.deepEqual([...(s.readRaw('a.weight').data as Float32Array)], expected.sharded['a.weight']);
  assert.deepEqual([...(s.readRaw('b.weight').data as Float32Array)], expected.sharded['b.weight']);
  assert.deepEqual([...(s.readRaw('c.weight').data as Uint16Array)].map(bf16), expected.sharded['c.weight']);
  assert.equal(s.declaredTotalSize, expected.sharded.total_size);
  assert.equal(s.info('b.weight').file, join(FIX, 'sharded', 'model-00002-of-00002.safetensors'));
  s.close();
  const viaFolder = openCheckpoint(join(FIX, 'sharded'));
  assert.equal(viaFolder.names.length, 3);
  viaFolder.close();
});

test('sharded index validation: missing shard, tensor not in its shard, unlisted tensor, bad shard names, bad JSON', () => {
  const src = join(FIX, 'sharded');
  const fresh = () => {
    const d = tmp();
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(d, f));
    return d;
  };
  const idx = (d: string) => join(d, 'model.safetensors.index.json');
  const edit = (d: string, fn: (j: { weight_map: Record<string, string> }) => void) => {
    const j = JSON.parse(readFileSync(idx(d), 'utf8')) as { weight_map: Record<string, string> };
    fn(j);
    writeFileSync(idx(d), JSON.stringify(j));
  };
  const expectErr = (d: string, re: RegExp) => {
    assert.throws(() => openSafetensorsIndex(idx(d)), (e: unknown) => e instanceof FormatError && re.test(e.message) && e.message.startsWith(idx(d)));
    rmSync(d, { recursive: true });
  };
  let d = fresh();
  unlinkSync(join(d, 'model-00002-of-00002.safetensors'));
  expectErr(d, /shard 'model-00002-of-00002.safetensors' \(listed for tensor 'b.weight'\) does not exist/);
  d = fresh();
  edit(d, (j) => { j.weight_map['b.weight'] = 'model-00001-of-00002.safetensors'; });
  expectErr(d, /tensor 'b.weight' is listed in shard 'model-00001-of-00002.safetensors' but that shard does not contain it/);
  d = fresh();
  edit(d, (j) => { delete j.weight_map['c.weight']; });
  expectErr(d, /contains tensor 'c.weight' which the weight_map does not list/);
  d = fresh();
  edit(d, (j) => { j.weight_map['a.weight'] = '../model-00001-of-00002.safetensors'; });
  expectErr(d, /not a plain file name/);
  d = fresh();
  writeFileSync(idx(d), '{"weight_map": {"a.weight": "x", "a.weight": "y"}}');
  expectErr(d, /duplicate key "a.weight"/);
  d = fresh();
  writeFileSync(idx(d), '{"metadata": {}}');
  expectErr(d, /'weight_map' must be an object/);
  d = fresh();
  writeFileSync(join(d, 'model-00002-of-00002.safetensors'), new Uint8Array(3));
  assert.throws(() => openSafetensorsIndex(idx(d)), (e: unknown) => e instanceof FormatError && /model-00002-of-00002.safetensors: too short/.test(e.message));
  rmSync(d, { recursive: true });
});

test('in-memory parse and read agree with the file reader', () => {
  const bytes = new Uint8Array(readFileSync(join(FIX, 'reference.safetensors')));
  const h = parseSafetensors(bytes);
  const f = openSafetensors(join(FIX, 'reference.safetensors'));
  for (const [name, info] of h.tensors) {
    assert.deepEqual(readRawFromBuffer(bytes, info), f.readRaw(name));
  }
  f.close();
});

test('strict JSON parser agrees with JSON.parse on valid input and rejects what it rejects (plus duplicates)', () => {
  const plain = (v: JsonValue): unknown => v instanceof JsonNumber ? v.value : v instanceof Map ? Object.fromEntries([...v].map(([k, x]) => [k, plain(x)])) : Array.isArray(v) ? v.map(plain) : v;
  const valid = [
    '{}', '[]', ' {"a" : [1, -2.5e3, 0, 1E+2, 0.125, true, false, null]} ', '"\\u00e9\\n\\t\\"\\\\\\/\\b\\f\\r"',
    '{"ü":"日本語","x":{"y":{"z":[[]]}}}', '"\\ud83d\\ude00"', '-0', '12345678901234567890',
  ];
  for (const t of valid) assert.deepEqual(plain(parseStrictJson(t, 'x')), JSON.parse(t), t);
  const invalid = ['', '{', '{"a"}', '{"a":}', '[1,]', '{"a":1,}', '01', '1.', '.5', '+1', '"\\x"', '"a\nb"', 'nul', '{} {}', "{'a':1}", '"\\u12"', 'NaN', '[1 2]'];
  for (const t of invalid) {
    assert.throws(() => JSON.parse(t), SyntaxError, `JSON.parse should reject ${t}`);
    assert.throws(() => parseStrictJson(t, 'x'), FormatError, t);
  }
  assert.throws(() => parseStrictJson('{"a":1,"a":1}', 'x'), /duplicate key "a"/);
  const ints = parseStrictJson('[1, 1.0, 1e0, -1, 0]', 'x') as JsonNumber[];
  assert.deepEqual(ints.map((x) => x.unsignedIntLiteral), [true, false, false, false, true]);
});
