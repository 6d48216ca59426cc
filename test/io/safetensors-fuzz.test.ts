/**
 * Fuzz: build valid safetensors files, mutate them thousands of times with a seeded PRNG, and require every attempt to
 * either parse into a consistent result or throw FormatError: never another exception type, a hang, or an allocation
 * larger than the file (the header-length bound and the in-file checks come before any buffer is made).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/tensor/random.js';
import {
  serializeSafetensors, parseSafetensors, readRawFromBuffer, openSafetensors, ioStats, SAFE_DTYPE_SIZE,
  type SafeDType, type WriteTensor,
} from '../../src/io/safetensors.js';
import { FormatError } from '../../src/errors.js';

/** Seeded uniform generator (the engine's Rng) so failures reproduce. */
function mulberry32(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

const DTYPES = Object.keys(SAFE_DTYPE_SIZE) as SafeDType[];

function validFile(rnd: () => number): Uint8Array {
  const n = 1 + Math.floor(rnd() * 5);
  const ts: WriteTensor[] = [];
  for (let i = 0; i < n; i++) {
    const dtype = DTYPES[Math.floor(rnd() * DTYPES.length)]!;
    const rank = Math.floor(rnd() * 3);
    const shape = Array.from({ length: rank }, () => Math.floor(rnd() * 4));
    const numel = shape.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(numel * SAFE_DTYPE_SIZE[dtype]).map(() => Math.floor(rnd() * 256));
    ts.push({ name: `layer.${i}.${['weight', 'bias', 'scale', 'ü'][i % 4]}`, dtype, shape, data: bytes });
  }
  return serializeSafetensors(ts, rnd() < 0.5 ? { format: 'pt', note: 'x' } : undefined);
}

function headerOf(b: Uint8Array): { len: number; json: Record<string, Record<string, unknown>> } {
  const len = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  return { len, json: JSON.parse(Buffer.from(b.subarray(8, 8 + len)).toString('utf8')) as Record<string, Record<string, unknown>> };
}

/** Re-assemble a file from a (mutated) header text and the original data section. */
function withHeader(b: Uint8Array, text: string): Uint8Array {
  const { len } = headerOf(b);
  const h = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + h.length + (b.length - 8 - len));
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(b.subarray(8 + len), 8 + h.length);
  return out;
}

const WEIRD: unknown[] = [-1, -8, 1e300, 2 ** 53, 2 ** 53 + 2, 1.5, '8', null, [], {}, true, 'F32', 'F8_E4M3', 'f32', 0, 3, 2 ** 31, 2 ** 32 + 8];

function mutate(b: Uint8Array, rnd: () => number): { bytes: Uint8Array; kind: string } {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const kind = pick(['truncate', 'bitflip', 'header-byte', 'data-byte', 'length', 'entry', 'json-text', 'append', 'swap-offsets'] as const);
  const c = b.slice();
  const { len, json } = headerOf(b);
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  switch (kind) {
    case 'truncate':
      return { bytes: c.subarray(0, Math.floor(rnd() * c.length)), kind };
    case 'bitflip': {
      const flips = 1 + Math.floor(rnd() * 8);
      for (let i = 0; i < flips; i++) { const p = Math.floor(rnd() * c.length); c[p] = c[p]! ^ (1 << Math.floor(rnd() * 8)); }
      return { bytes: c, kind };
    }
    case 'header-byte': {
      const k = 1 + Math.floor(rnd() * 4);
      for (let i = 0; i < k; i++) c[8 + Math.floor(rnd() * len)] = pick([0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x39, 0x2d, 0x00, 0xff, 0x5c, Math.floor(rnd() * 256)]);
      return { bytes: c, kind };
    }
    case 'data-byte': {
      if (c.length > 8 + len) for (let i = 0; i < 4; i++) c[8 + len + Math.floor(rnd() * (c.length - 8 - len))] = Math.floor(rnd() * 256);
      return { bytes: c, kind };
    }
    case 'length': {
      const v = pick([2n ** 64n - 1n, 2n ** 63n, 100_000_001n, 100_000_000n, BigInt(c.length), BigInt(c.length - 8), BigInt(len + 1), BigInt(len - 1), 0n, 1n, BigInt(Math.floor(rnd() * 2 ** 40))]);
      new DataView(c.buffer).setBigUint64(0, v, true);
      return { bytes: c, kind };
    }
    case 'entry': {
      if (names.length === 0) return { bytes: withHeader(b, '{"x":' + JSON.stringify(pick(WEIRD)) + '}'), kind };
      const e = json[pick(names)]!;
      const field = pick(['dtype', 'shape', 'data_offsets', 'extra', 'delete', 'offset-elem', 'shape-elem', 'rename-dup'] as const);
      if (field === 'delete') delete e[pick(['dtype', 'shape', 'data_offsets'])];
      else if (field === 'offset-elem') (e['data_offsets'] as unknown[])[Math.floor(rnd() * 2)] = pick(WEIRD);
      else if (field === 'shape-elem') (e['shape'] as unknown[]).push(pick(WEIRD));
      else if (field === 'rename-dup') {
        const text = JSON.stringify(json);
        const other = pick(names);
        return { bytes: withHeader(b, text.slice(0, -1) + `,${JSON.stringify(other)}:${JSON.stringify(json[other])}}`), kind };
      } else e[field] = pick(WEIRD);
      return { bytes: withHeader(b, JSON.stringify(json)), kind };
    }
    case 'swap-offsets': {
      // Overlapping / shifted / reversed offsets built from the real ones.
      if (names.length < 1) return { bytes: c, kind };
      const e = json[pick(names)]!;
      const [s, t] = e['data_offsets'] as [number, number];
      e['data_offsets'] = pick([[t, s], [s + 1, t + 1], [Math.max(0, s - 4), t - 4], [0, t - s], [s, t + 1e15], [s, 2 ** 64]]);
      return { bytes: withHeader(b, JSON.stringify(json)), kind };
    }
    case 'json-text': {
      const text = Buffer.from(b.subarray(8, 8 + len)).toString('utf8');
      const p = Math.floor(rnd() * text.length);
      const ins = pick(['{', '}', '[', ']', ',', ':', '"', '\\', '\\u12', '1e999', '-', 'null', '\n', '\u0001', '"__metadata__":1,', '[[[[[[[[', 'NaN', 'Infinity']);
      const mutated = rnd() < 0.5 ? text.slice(0, p) + ins + text.slice(p) : text.slice(0, p) + text.slice(p + 1 + Math.floor(rnd() * 5));
      return { bytes: withHeader(b, mutated), kind };
    }
    case 'append': {
      const extra = new Uint8Array(1 + Math.floor(rnd() * 16));
      const out = new Uint8Array(c.length + extra.length);
      out.set(c);
      return { bytes: out, kind };
    }
  }
}

/** A successful parse must describe a file its tensors tile exactly, and every tensor must be readable. */
function checkConsistent(bytes: Uint8Array, h: ReturnType<typeof parseSafetensors>): void {
  let pos = 8 + h.headerLength;
  const infos = [...h.tensors.values()].sort((a, b) => a.begin - b.begin);
  for (const t of infos) {
    assert.equal(t.begin, pos);
    assert.equal(t.end - t.begin, t.numel * SAFE_DTYPE_SIZE[t.dtype]);
    assert.equal(t.numel, t.shape.reduce((a, b) => a * b, 1));
    const raw = readRawFromBuffer(bytes, t);
    assert.equal(raw.data.length, t.numel);
    pos = t.end;
  }
  assert.equal(pos, bytes.length);
}

test('fuzz: thousands of mutated files parse consistently or throw FormatError, never anything else', () => {
  const rnd = mulberry32(20250101);
  const N = 6000;
  const t0 = performance.now();
  const outcomes: Record<string, { ok: number; err: number }> = {};
  const dir = mkdtempSync(join(tmpdir(), 'r1-fuzz-'));
  let slowest = 0;
  try {
    for (let i = 0; i < N; i++) {
      const base = validFile(rnd);
      checkConsistent(base, parseSafetensors(base));
      const { bytes, kind } = mutate(base, rnd);
      const o = (outcomes[kind] ??= { ok: 0, err: 0 });
      const s = performance.now();
      ioStats.largestAllocation = 0;
      try {
        const h = parseSafetensors(bytes, `mutant-${i}`);
        checkConsistent(bytes, h);
        o.ok++;
      } catch (e) {
        if (!(e instanceof FormatError)) throw new Error(`mutant ${i} (${kind}) threw ${String(e)} instead of FormatError`);
        o.err++;
      }
      // Every 8th mutant also goes through the lazy file reader, which allocates the header and tensor buffers.
      if (i % 8 === 0) {
        const p = join(dir, `m${i % 64}.safetensors`);
        writeFileSync(p, bytes);
        try {
          const f = openSafetensors(p);
          for (const n of f.names) assert.equal(f.readRaw(n).data.length, f.info(n).numel);
          f.close();
        } catch (e) {
          if (!(e instanceof FormatError)) throw new Error(`mutant ${i} (${kind}) via file threw ${String(e)} instead of FormatError`);
        }
        assert.ok(ioStats.largestAllocation <= bytes.length, `mutant ${i} (${kind}): allocated ${ioStats.largestAllocation} bytes for a ${bytes.length}-byte file`);
      }
      slowest = Math.max(slowest, performance.now() - s);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
  const ms = performance.now() - t0;
  if (process.env.R1_FUZZ_VERBOSE) console.log(JSON.stringify(outcomes), ms);
  // Every mutation kind was exercised, and the structural ones were caught.
  for (const k of ['truncate', 'bitflip', 'header-byte', 'data-byte', 'length', 'entry', 'json-text', 'append', 'swap-offsets']) {
    assert.ok(outcomes[k] && outcomes[k].ok + outcomes[k].err > 300, `mutation ${k} ran: ${JSON.stringify(outcomes[k])}`);
  }
  assert.ok(outcomes['data-byte']!.err === 0, 'data bytes are opaque: changing them never breaks the header');
  assert.ok(outcomes['append']!.ok === 0 && outcomes['length']!.err > 0 && outcomes['swap-offsets']!.err > 0);
  assert.ok(slowest < 1000, `slowest single mutant took ${slowest} ms`);
  assert.ok(ms < 20000, `fuzz took ${ms} ms`);
});

test('a hostile header length never allocates beyond the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-fuzz-'));
  try {
    for (const len of [2n ** 64n - 1n, 99_999_999n, 100_000_000n, 4096n]) {
      const b = new Uint8Array(64);
      new DataView(b.buffer).setBigUint64(0, len, true);
      b[8] = 0x7b;
      const p = join(dir, 'h.safetensors');
      writeFileSync(p, b);
      ioStats.largestAllocation = 0;
      assert.throws(() => openSafetensors(p), FormatError);
      assert.equal(ioStats.largestAllocation, 0, `length ${len}`);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});
