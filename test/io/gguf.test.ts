/**
 * GGUF v3: writer/reader round trip, Q8_0 against an independent f64 computation of the ggml block format,
 * and (when node-llama-cpp is installed) llama.cpp running a tiny random qwen2 model written by
 * writeQwen2Gguf gives the next-token logits r1ts computes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GgmlType, GgufValueType, Q8_0_BLOCK_BYTES, QK8_0, dequantizeQ8_0, ggufTensorF32, kv, quantizeQ8_0, readGguf,
  writeGguf, writeQwen2Gguf, weightsOf, gpt2Vocab, TokenType, qwen2TensorName, type TokenizerJson, type GgufOutType,
} from '../../src/io/gguf.js';
import { parseConfig, type DenseConfig } from '../../src/models/config.js';
import { buildModel } from '../../src/models/load.js';
import { ModelRunner, SequenceCache } from '../../src/infer/kv-cache.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/tensor/backends/js.js';
import { BYTE_TO_CHAR } from '../../src/io/tokenizer/bytes.js';
import { loadNodeLlamaCpp, nodeLlamaCppMissing } from '../../bench/peers/llama-cpp.js';
import { FormatError, ShapeError } from '../../src/errors.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'r1-gguf-'));
}

/** Deterministic values in [-s, s). */
function values(n: number, seed: number, s = 1): Float32Array {
  let x = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = ((x / 2 ** 32) * 2 - 1) * s;
  }
  return out;
}

test('GGUF round trip: header, every metadata type, arrays, tensor infos (ne innermost first), alignment, data', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'a.gguf');
    const a = values(3 * 5, 1);
    const b = values(64 * 2, 2);
    const c = values(7, 3);
    writeGguf(path, [
      kv.str('general.architecture', 'test'),
      kv.u32('test.u32', 4000000000),
      kv.i32('test.i32', -5),
      kv.f32('test.f32', 0.25),
      kv.bool('test.bool', true),
      kv.u64('test.u64', 2n ** 40n),
      { key: 'test.u8', type: GgufValueType.UINT8, value: 200 },
      { key: 'test.f64', type: GgufValueType.FLOAT64, value: Math.PI },
      kv.arr('test.strs', GgufValueType.STRING, ['x', 'Ġhé', '']),
      kv.arr('test.ints', GgufValueType.INT32, [1, -2, 3]),
    ], [
      { name: 'a', shape: [3, 5], type: GgmlType.F32, data: a },
      { name: 'b', shape: [2, 64], type: GgmlType.Q8_0, data: () => b },
      { name: 'c', shape: [7], type: GgmlType.F16, data: c },
    ]);
    const buf = readFileSync(path);
    assert.equal(buf.toString('latin1', 0, 4), 'GGUF');
    assert.equal(buf.readUInt32LE(4), 3);
    assert.equal(buf.readBigUInt64LE(8), 3n); // tensors
    assert.equal(buf.readBigUInt64LE(16), 10n); // kvs
    const f = readGguf(path);
    assert.equal(f.version, 3);
    assert.equal(f.alignment, 32);
    assert.equal(f.kv.get('general.architecture')!.value, 'test');
    assert.equal(f.kv.get('test.u32')!.value, 4000000000);
    assert.equal(f.kv.get('test.i32')!.value, -5);
    assert.equal(f.kv.get('test.f32')!.value, 0.25);
    assert.equal(f.kv.get('test.bool')!.value, true);
    assert.equal(f.kv.get('test.u64')!.value, 2n ** 40n);
    assert.equal(f.kv.get('test.u8')!.value, 200);
    assert.equal(f.kv.get('test.f64')!.value, Math.PI);
    assert.deepEqual(f.kv.get('test.strs')!.value, ['x', 'Ġhé', '']);
    assert.equal(f.kv.get('test.strs')!.itemType, GgufValueType.STRING);
    assert.deepEqual(f.kv.get('test.ints')!.value, [1, -2, 3]);
    assert.deepEqual(f.tensors.map((t) => [t.name, t.ne, t.type]), [['a', [5, 3], 0], ['b', [64, 2], 8], ['c', [7], 1]]);
    assert.equal(f.dataOffset % 32, 0);
    for (const t of f.tensors) assert.equal((t.offset - f.dataOffset) % 32, 0, `${t.name} aligned`);
    assert.equal(f.tensors[1]!.bytes, 4 * Q8_0_BLOCK_BYTES);
    assert.deepEqual(ggufTensorF32(f, 'a'), a);
    assert.deepEqual(ggufTensorF32(f, 'b'), dequantizeQ8_0(quantizeQ8_0(b), b.length));
    const cBack = ggufTensorF32(f, 'c');
    for (let i = 0; i < c.length; i++) assert.equal(cBack[i], f16BitsToF32(f32ToF16Bits(c[i]!)));
    // The file ends right after the last tensor's (aligned) data.
    assert.ok(buf.length >= f.tensors[2]!.offset + f.tensors[2]!.bytes);
    assert.throws(() => readGguf(buf.subarray(0, 40)), FormatError);
    assert.throws(() => writeGguf(join(dir, 'bad.gguf'), [], [{ name: 'q', shape: [2, 33], type: GgmlType.Q8_0, data: new Float32Array(66) }]), ShapeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Q8_0 blocks match an independent f64 computation (d = amax/127 as f16, q = round(x/d))', () => {
  const n = 32 * 200;
  const x = values(n, 7, 3);
  // Some special blocks: all zero, one spike, exact multiples.
  x.fill(0, 0, 32);
  x.fill(0, 32, 64); x[40] = -5;
  for (let j = 0; j < 32; j++) x[64 + j] = j - 16;
  const q = quantizeQ8_0(x);
  assert.equal(q.length, (n / QK8_0) * 34);
  const dv = new DataView(q.buffer);
  let ties = 0;
  for (let bI = 0; bI < n / 32; bI++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[bI * 32 + j]!));
    const d = amax / 127;
    const dBits = dv.getUint16(bI * 34, true);
    // f16(d) computed from the f64 quotient can differ from f16(f32(d)) only by double rounding: 1 f16 ulp at most.
    assert.ok(Math.abs(dBits - f32ToF16Bits(d)) <= 1, `block ${bI}: d bits ${dBits} vs ${f32ToF16Bits(d)}`);
    for (let j = 0; j < 32; j++) {
      const r = d === 0 ? 0 : x[bI * 32 + j]! / d;
      const expect = Math.sign(r) * Math.round(Math.abs(r));
      const got = dv.getInt8(bI * 34 + 2 + j);
      if (Math.abs(Math.abs(r % 1) - 0.5) < 1e-4) { ties++; assert.ok(Math.abs(got - expect) <= 1); continue; }
      assert.ok(got === expect, `got ${got}, expected ${expect}: block ${bI} [${j}]: x=${x[bI * 32 + j]} d=${d}`);
    }
  }
  assert.ok(ties < 5);
  // Hand-checked blocks: zeros stay zero with d = 0; the spike maps to -127; j - 16 maps to round((j-16)*127/16).
  assert.equal(dv.getUint16(0, true), 0);
  assert.equal(dv.getInt8(34 + 2 + 8), -127);
  assert.equal(dv.getInt8(68 + 2 + 0), -127);
  assert.equal(dv.getInt8(68 + 2 + 17), 8); // 127/16 = 7.94
  const back = dequantizeQ8_0(q, n);
  for (let i = 0; i < n; i++) {
    const bI = Math.floor(i / 32);
    const d = f16BitsToF32(dv.getUint16(bI * 34, true));
    // q was rounded against the f32 d; the stored d is f16 (relative error <= 2^-11), times |q| <= 127.
    assert.ok(Math.abs(back[i]! - x[i]!) <= d * (0.5 + 127 * 2 ** -11) + 1e-7, `dequant [${i}]`);
  }
});

/** A byte-level BPE with the 256 byte tokens, a few merges and <|endoftext|> (enough for llama.cpp's gpt2 vocab). */
function tinyTokenizer(): TokenizerJson {
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((ch, i) => { vocab[ch] = i; });
  const merges: [string, string][] = [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he']];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  return { model: { type: 'BPE', vocab, merges }, added_tokens: [{ id: 259, content: '<|endoftext|>', special: true }] };
}

function tinyConfig(): DenseConfig {
  return parseConfig({
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 288, hidden_size: 64, intermediate_size: 96,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_act: 'silu', max_position_embeddings: 128,
    rms_norm_eps: 1e-6, rope_theta: 10000.0, tie_word_embeddings: false, initializer_range: 0.15,
    bos_token_id: 259, eos_token_id: 259,
  }, 'tiny-qwen2') as DenseConfig;
}

test('gpt2 vocabulary: padded to vocab_size with [PAD] UNUSED entries, special tokens CONTROL, merges as "a b"', () => {
  const v = gpt2Vocab(tinyTokenizer(), 288);
  assert.equal(v.tokens.length, 288);
  assert.equal(v.tokens[287], '[PAD287]');
  assert.equal(v.types[287], TokenType.UNUSED);
  assert.equal(v.tokens[259], '<|endoftext|>');
  assert.equal(v.types[259], TokenType.CONTROL);
  assert.equal(v.types[65], TokenType.NORMAL);
  assert.deepEqual(v.merges, ['Ġ t', 'h e', 'Ġt he']);
  // Truncation below the tokenizer's size keeps only merges whose parts and result survive.
  assert.deepEqual(gpt2Vocab(tinyTokenizer(), 257).merges, ['Ġ t']);
});

test('writeQwen2Gguf: llama.cpp qwen2 metadata, tensor names and ne order; F16/Q8_0 pick per-tensor types', () => {
  const dir = tmp();
  const config = tinyConfig();
  const model = buildModel(config, { init: 'random', seed: 3 });
  try {
    const w = weightsOf(model.namedParameters());
    writeQwen2Gguf(join(dir, 'q8.gguf'), config, w, tinyTokenizer(), { type: 'Q8_0' });
    const f = readGguf(join(dir, 'q8.gguf'));
    const get = (k: string) => f.kv.get(k)?.value;
    assert.equal(get('general.architecture'), 'qwen2');
    assert.equal(get('qwen2.embedding_length'), 64);
    assert.equal(get('qwen2.block_count'), 2);
    assert.equal(get('qwen2.feed_forward_length'), 96);
    assert.equal(get('qwen2.attention.head_count'), 4);
    assert.equal(get('qwen2.attention.head_count_kv'), 2);
    assert.equal(get('qwen2.rope.freq_base'), 10000);
    assert.equal(get('qwen2.attention.layer_norm_rms_epsilon'), Math.fround(1e-6));
    assert.equal(get('tokenizer.ggml.model'), 'gpt2');
    assert.equal(get('tokenizer.ggml.pre'), 'qwen2');
    assert.equal((get('tokenizer.ggml.tokens') as string[]).length, 288);
    const t = new Map(f.tensors.map((x) => [x.name, x]));
    assert.deepEqual(t.get('token_embd.weight')!.ne, [64, 288]);
    assert.deepEqual(t.get('blk.1.ffn_down.weight')!.ne, [96, 64]);
    assert.deepEqual(t.get('blk.0.attn_k.weight')!.ne, [64, 32]);
    assert.equal(t.get('blk.0.attn_q.weight')!.type, GgmlType.Q8_0);
    assert.equal(t.get('blk.0.ffn_down.weight')!.type, GgmlType.Q8_0); // 96 = 3 x 32
    assert.equal(t.get('blk.0.attn_norm.weight')!.type, GgmlType.F32);
    assert.equal(t.get('blk.0.attn_q.bias')!.type, GgmlType.F32);
    assert.ok(t.has('output.weight'));
    assert.equal(f.tensors.length, 2 + 2 * 12 + 1);
    const emb = model.getParameter('model.embed_tokens.weight')!.toArray() as Float32Array;
    const back = ggufTensorF32(f, 'token_embd.weight');
    for (let i = 0; i < emb.length; i += 97) assert.ok(Math.abs(back[i]! - emb[i]!) < 0.01);
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

const missing = nodeLlamaCppMissing();
test('llama.cpp (node-llama-cpp) runs an F32 GGUF of a random qwen2 model to r1ts\'s next-token logits', { skip: missing ?? false, timeout: 120_000 }, async () => {
  const dir = tmp();
  const config = tinyConfig();
  const model = buildModel(config, { init: 'random', seed: 11 });
  const { llama } = await loadNodeLlamaCpp();
  try {
    const path = join(dir, 'tiny-f32.gguf');
    writeQwen2Gguf(path, config, weightsOf(model.namedParameters()), tinyTokenizer(), { type: 'F32' });
    const prompt = [72, 101, 108, 33, 200, 7, 256, 13, 99, 150, 3, 77];
    const runner = new ModelRunner(model);
    const cache = new SequenceCache();
    const ours = runner.step([{ ids: prompt, cache }], true)[0]!;
    const next = runner.step([{ ids: [42], cache }])[0]![0]!;
    cache.dispose();

    const m = await llama.loadModel({ modelPath: path });
    // llama.cpp keeps its KV cache in F16 by default, and its CPU flash attention (on under 'auto') works in F16:
    // both off, the comparison is exact up to summation order (with FA on the difference is ~1e-3).
    const ctx = await m.createContext({ contextSize: 64, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    const seq = ctx.getSequence();
    const input: Parameters<typeof seq.controlledEvaluate>[0] = prompt.map((id) => [id, { generateNext: { logits: true } }]);
    const res = await seq.controlledEvaluate(input);
    const res2 = await seq.controlledEvaluate([[42, { generateNext: { logits: true } }]]);
    const compare = (theirs: Map<number, number> | undefined, mine: Float32Array, where: string): void => {
      assert.ok(theirs && theirs.size === config.vocabSize, `${where}: llama.cpp returned ${theirs?.size} logits`);
      let maxDiff = 0, spread = 0;
      for (let v = 0; v < config.vocabSize; v++) {
        maxDiff = Math.max(maxDiff, Math.abs(theirs.get(v)! - mine[v]!));
        spread = Math.max(spread, Math.abs(mine[v]!));
      }
      assert.ok(spread > 0.5, `${where}: logits too flat (${spread}) for the comparison to mean anything`);
      assert.ok(maxDiff < 1e-4 * Math.max(1, spread), `${where}: max |llama.cpp - r1ts| = ${maxDiff} (max |logit| ${spread})`);
    };
    // Every prompt position (causal attention over the batch), then one decode step through llama.cpp's KV cache.
    prompt.forEach((_, i) => compare(res[i]?.next?.logits, ours[i]!, `prompt position ${i}`));
    compare(res2[0]?.next?.logits, next, 'decode step');
    seq.dispose();
    await ctx.dispose();
    await m.dispose();
  } finally {
    model.dispose();
    await llama.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('llama.cpp runs F16 and Q8_0 GGUFs to the logits of r1ts with the same (decoded) weights', { skip: missing ?? false, timeout: 120_000 }, async () => {
  const dir = tmp();
  const config = tinyConfig();
  const { llama } = await loadNodeLlamaCpp();
  try {
    // llama.cpp multiplies F16 weights by F16-rounded activations and Q8_0 weights by Q8_0-quantized activations
    // (ggml's vec_dot_type), so these tolerances are looser than the F32 test's; a wrong block layout, scale or
    // dimension order would be off by O(1).
    for (const [type, tol] of [['F16', 5e-3], ['Q8_0', 3e-2]] as [GgufOutType, number][]) {
      const model = buildModel(config, { init: 'random', seed: 5 });
      try {
        const path = join(dir, `tiny-${type}.gguf`);
        const w = weightsOf(model.namedParameters());
        writeQwen2Gguf(path, config, w, tinyTokenizer(), { type });
        // r1ts with the weights as the file holds them (read back and decoded by readGguf).
        const f = readGguf(path);
        for (const [name, v] of w) (v.data as Float32Array).set(ggufTensorF32(f, qwen2TensorName(name)!));
        const prompt = [5, 80, 120, 33, 250, 7, 9, 64];
        const ours = new ModelRunner(model).step([{ ids: prompt, cache: new SequenceCache() }], true)[0]!;
        const m = await llama.loadModel({ modelPath: path });
        const ctx = await m.createContext({ contextSize: 64, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
        const seq = ctx.getSequence();
        const res = await seq.controlledEvaluate(prompt.map((id) => [id, { generateNext: { logits: true } }]));
        prompt.forEach((_, i) => {
          const theirs = res[i]?.next?.logits;
          assert.ok(theirs && theirs.size === config.vocabSize);
          let maxDiff = 0, spread = 0;
          for (let v = 0; v < config.vocabSize; v++) {
            maxDiff = Math.max(maxDiff, Math.abs(theirs.get(v)! - ours[i]![v]!));
            spread = Math.max(spread, Math.abs(ours[i]![v]!));
          }
          assert.ok(spread > 0.5, `${type} position ${i}: logits too flat`);
          assert.ok(maxDiff < tol * spread, `${type} position ${i}: max |llama.cpp - r1ts| = ${maxDiff} (max |logit| ${spread})`);
        });
        seq.dispose();
        await ctx.dispose();
        await m.dispose();
      } finally {
        model.dispose();
      }
    }
  } finally {
    await llama.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
