import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  openHfFolder, saveHfFolder, planShards, readWeightF32, isFp8Weight, logicalWeightNames, bf16ToF32, f16ToF32,
} from '../../src/io/hf-folder.js';
import { openSafetensors, writeSafetensors, type WriteTensor } from '../../src/io/safetensors.js';
import { quantizeWeight, dequantizeBlockwise } from '../../src/quant/blockwise.js';
import { ConfigError, FormatError } from '../../src/errors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const FIX = join(ROOT, 'test', 'fixtures');
const tmp = () => mkdtempSync(join(tmpdir(), 'r1-hf-'));
const qwenConfig = () => JSON.parse(readFileSync(join(FIX, 'models', 'qwen2-tiny', 'config.json'), 'utf8')) as Record<string, unknown>;

function tensors(): WriteTensor[] {
  return [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [10, 4], data: new Float32Array(40).map((_, i) => i) },
    { name: 'model.norm.weight', dtype: 'BF16', shape: [4], data: new Uint16Array([0x3f80, 0x4000, 0xbf80, 0]) },
    { name: 'lm_head.weight', dtype: 'F16', shape: [10, 4], data: new Uint16Array(40).fill(0x3c00) },
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [8, 4], data: new Float32Array(32).fill(-1) },
  ];
}

test('save a single-file folder and open it back: config (typed), generation config, tokenizer files, weights', () => {
  const root = tmp();
  const dir = join(root, 'model');
  const r = saveHfFolder(dir, {
    config: qwenConfig(), tensors: tensors(), generationConfig: { do_sample: true, temperature: 0.6 },
    extraFiles: { 'tokenizer.json': '{"model": {}}', 'tokenizer_config.json': '{}' },
  });
  assert.deepEqual(r.shards, ['model.safetensors']);
  assert.equal(r.totalSize, 160 + 8 + 80 + 128);
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.deepEqual(readdirSync(root), ['model'], 'no staging folder left behind');
  const f = openHfFolder(dir);
  try {
    assert.equal(f.config?.modelType, 'qwen2');
    assert.equal(f.configError, null);
    assert.deepEqual(f.configRaw, qwenConfig());
    assert.deepEqual(f.generationConfig, { do_sample: true, temperature: 0.6 });
    assert.equal(f.tokenizerJson, join(dir, 'tokenizer.json'));
    assert.equal(f.tokenizerConfig, join(dir, 'tokenizer_config.json'));
    assert.equal(f.weightsPath, join(dir, 'model.safetensors'));
    assert.deepEqual({ ...f.weights!.metadata }, { format: 'pt' });
    assert.deepEqual([...(f.weights!.readRaw('model.embed_tokens.weight').data as Float32Array)], [...new Float32Array(40).map((_, i) => i)]);
    assert.deepEqual([...readWeightF32(f.weights!, 'model.norm.weight').data], [1, 2, -1, 0]);
    assert.ok((readWeightF32(f.weights!, 'lm_head.weight').data as Float32Array).every((x) => x === 1));
    assert.equal(f.fp8BlockSize, null);
  } finally {
    f.close();
  }
  rmSync(root, { recursive: true });
});

test('sharding over a size limit: transformers-style names and index; reopened values equal', () => {
  const root = tmp();
  const dir = join(root, 'm');
  const r = saveHfFolder(dir, { config: qwenConfig(), tensors: tensors(), maxShardBytes: 170 });
  // 160 | 8 + 80 (88) | 128  -> embed alone (160), norm+head (88; +128 would exceed 170), up_proj
  assert.deepEqual(r.shards, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
  assert.equal(index.metadata.total_size, 376);
  assert.deepEqual(Object.keys(index.weight_map), [...Object.keys(index.weight_map)].sort());
  assert.equal(index.weight_map['lm_head.weight'], 'model-00002-of-00003.safetensors');
  const f = openHfFolder(dir);
  assert.equal(f.weightsPath, join(dir, 'model.safetensors.index.json'));
  for (const t of tensors()) {
    const got = f.weights!.readRaw(t.name);
    assert.deepEqual([...got.data as ArrayLike<number> as Float32Array], [...(t.data as Float32Array)], t.name);
  }
  f.close();
  // planShards: a tensor larger than the limit gets a shard of its own; nothing is dropped.
  const big: WriteTensor = { name: 'big', dtype: 'F32', shape: [100], data: new Float32Array(100) };
  assert.deepEqual(planShards([tensors()[1]!, big, tensors()[1]!], 50).map((s) => s.map((t) => t.name)), [['model.norm.weight'], ['big'], ['model.norm.weight']]);
  assert.throws(() => planShards([], 0), FormatError);
  rmSync(root, { recursive: true });
});

test('saving over an existing folder: atomic swap, other files kept, stale shards removed, failure keeps the old folder', () => {
  const root = tmp();
  const dir = join(root, 'm');
  saveHfFolder(dir, { config: qwenConfig(), tensors: tensors(), maxShardBytes: 100, extraFiles: { 'tokenizer.json': 'TOK', 'README.md': 'hi' } });
  assert.ok(existsSync(join(dir, 'model.safetensors.index.json')));
  // Now single-file: the old shards and index must disappear, the tokenizer and README stay.
  saveHfFolder(dir, { config: { ...qwenConfig(), note: 'v2' }, tensors: tensors() });
  assert.deepEqual(readdirSync(dir).sort(), ['README.md', 'config.json', 'model.safetensors', 'tokenizer.json']);
  assert.equal(readFileSync(join(dir, 'tokenizer.json'), 'utf8'), 'TOK');
  assert.equal((JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { note: string }).note, 'v2');
  // A save that fails midway (bad tensor data) leaves the folder exactly as it was and no staging folder.
  const before = readFileSync(join(dir, 'model.safetensors'));
  assert.throws(() => saveHfFolder(dir, { config: qwenConfig(), tensors: [...tensors(), { name: 'bad', dtype: 'F32', shape: [3], data: new Float32Array(2) }] }), FormatError);
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), before);
  assert.deepEqual(readdirSync(root), ['m']);
  assert.throws(() => saveHfFolder(dir, { config: qwenConfig(), tensors: [], extraFiles: { '../x': 'no' } }), /plain file name/);
  assert.throws(() => saveHfFolder(join(root, 'no', 'such'), { config: {}, tensors: [] }), /parent folder/);
  // A typed config is saved as its raw JSON.
  saveHfFolder(dir, { config: openHfFolder(dir, { weights: false }).config!, tensors: tensors() });
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { ...qwenConfig(), note: 'v2' });
  rmSync(root, { recursive: true });
});

test('DeepSeek FP8 checkpoint fixture (Python, torch f32): dequantized weight matches w = fp8 * scale_inv per 128x128 block', () => {
  const src = openSafetensors(join(FIX, 'io', 'fp8_block.safetensors'));
  const name = 'model.layers.0.mlp.down_proj.weight';
  assert.ok(isFp8Weight(src, name));
  assert.deepEqual(logicalWeightNames(src), [name, 'expected.dequantized'].sort((a, b) => src.names.indexOf(a) - src.names.indexOf(b)));
  const got = readWeightF32(src, name);
  const want = src.readRaw('expected.dequantized');
  assert.deepEqual(got.shape, [130, 129]);
  assert.equal(got.dtype, 'F32');
  assert.deepEqual(got.data, want.data);
  // The wrong block size no longer matches the scale grid: a FormatError naming both tensors.
  assert.throws(() => readWeightF32(src, name, { blockSize: [64, 64] }), (e: unknown) => e instanceof FormatError && /weight_scale_inv': shape \[2, 2\] does not match weight 'model.layers.0.mlp.down_proj.weight' \[130, 129\] in 64x64 blocks \(expected \[3, 3\]\)/.test(e.message));
  src.close();
});

test('FP8 round trip through a folder: quantize 128x128, write F8_E4M3 + weight_scale_inv, read back dequantized', () => {
  const rows = 200, cols = 300;
  const w = new Float32Array(rows * cols).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
  const q = quantizeWeight(w, rows, cols);
  const cfg = JSON.parse(readFileSync(join(FIX, 'models', 'deepseek-v3-tiny', 'config.json'), 'utf8')) as Record<string, unknown>;
  cfg['quantization_config'] = { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] };
  const root = tmp();
  const dir = join(root, 'fp8');
  saveHfFolder(dir, {
    config: cfg,
    tensors: [
      { name: 'proj.weight', dtype: 'F8_E4M3', shape: [rows, cols], data: q.codes },
      { name: 'proj.weight_scale_inv', dtype: 'F32', shape: [2, 3], data: q.scaleInv },
      { name: 'lonely.weight', dtype: 'F8_E4M3', shape: [2], data: new Uint8Array(2) },
      { name: 'bad.weight', dtype: 'F8_E4M3', shape: [4], data: new Uint8Array(4) },
      { name: 'bad.weight_scale_inv', dtype: 'F32', shape: [1, 1], data: new Float32Array(1) },
    ],
  });
  const f = openHfFolder(dir);
  assert.deepEqual(f.fp8BlockSize, [128, 128]);
  assert.equal(f.config?.quantization?.quantMethod, 'fp8');
  const got = readWeightF32(f.weights!, 'proj.weight', { blockSize: f.fp8BlockSize! });
  assert.deepEqual(got.data, dequantizeBlockwise(q.codes, q.scaleInv, rows, cols));
  let maxRel = 0;
  for (let i = 0; i < w.length; i++) if (Math.abs(w[i]!) > 0.5) maxRel = Math.max(maxRel, Math.abs((got.data[i] as number) - w[i]!) / Math.abs(w[i]!));
  assert.ok(maxRel <= 2 ** -4, `max relative error ${maxRel}`);
  assert.throws(() => readWeightF32(f.weights!, 'lonely.weight'), /F8_E4M3 weight without its 'lonely.weight_scale_inv' block scales/);
  assert.throws(() => readWeightF32(f.weights!, 'bad.weight'), /must be 2-D/);
  f.close();
  rmSync(root, { recursive: true });
});

test('bf16/f16 conversion matches the values torch wrote in the reference fixture', () => {
  const ref = JSON.parse(readFileSync(join(FIX, 'io', 'reference.json'), 'utf8')) as { tensors: Record<string, { values: number[] }> };
  const src = openSafetensors(join(FIX, 'io', 'reference.safetensors'));
  assert.deepEqual([...bf16ToF32(src.readRaw('model.embed_tokens.weight').data as Uint16Array)], ref.tensors['model.embed_tokens.weight']!.values);
  assert.deepEqual([...f16ToF32(src.readRaw('model.norm.weight').data as Uint16Array)], ref.tensors['model.norm.weight']!.values);
  assert.throws(() => readWeightF32(src, 'ids.i32'), /not a floating-point type/);
  src.close();
});

test('clear errors: missing folder, no config, bad config JSON, no weights, pickle-only, unsupported model type', () => {
  const root = tmp();
  assert.throws(() => openHfFolder(join(root, 'nope')), (e: unknown) => e instanceof FormatError && /no such folder/.test(e.message));
  const d = join(root, 'd');
  mkdirSync(d);
  assert.throws(() => openHfFolder(d), (e: unknown) => e instanceof ConfigError && /no config.json/.test(e.message));
  writeFileSync(join(d, 'config.json'), '{"model_type": ');
  assert.throws(() => openHfFolder(d), (e: unknown) => e instanceof ConfigError && /config.json: config is not valid JSON/.test(e.message));
  writeFileSync(join(d, 'config.json'), JSON.stringify(qwenConfig()));
  assert.throws(() => openHfFolder(d), (e: unknown) => e instanceof FormatError && /no model.safetensors or model.safetensors.index.json/.test(e.message));
  assert.equal(openHfFolder(d, { weights: 'optional' }).weights, null);
  writeFileSync(join(d, 'pytorch_model.bin'), new Uint8Array([0x80, 2]));
  assert.throws(() => openHfFolder(d), /PyTorch pickle checkpoint/);
  writeFileSync(join(d, 'config.json'), JSON.stringify({ model_type: 'mistral', hidden_size: 8 }));
  const f = openHfFolder(d, { weights: false });
  assert.equal(f.config, null);
  assert.match(f.configError!, /model_type/);
  assert.equal(f.configRaw['hidden_size'], 8);
  writeFileSync(join(d, 'generation_config.json'), '[1]');
  assert.throws(() => openHfFolder(d, { weights: false }), (e: unknown) => e instanceof FormatError && /generation config must be a JSON object/.test(e.message));
  rmSync(root, { recursive: true });
});

test('the sharded fixture written by Python opens as a model folder', () => {
  const root = tmp();
  const dir = join(root, 'm');
  mkdirSync(dir);
  for (const f of readdirSync(join(FIX, 'io', 'sharded'))) writeFileSync(join(dir, f), readFileSync(join(FIX, 'io', 'sharded', f)));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(qwenConfig()));
  const f = openHfFolder(dir);
  assert.deepEqual([...f.weights!.names].sort(), ['a.weight', 'b.weight', 'c.weight']);
  assert.deepEqual([...readWeightF32(f.weights!, 'c.weight').data], [1.5, 2.5]);
  f.close();
  rmSync(root, { recursive: true });
});

test('an FP8 tensor without a _scale_inv sibling is not a block-quantized weight', () => {
  const root = tmp();
  const p = join(root, 'x.safetensors');
  writeSafetensors(p, [{ name: 'a.weight', dtype: 'F8_E5M2', shape: [1, 1], data: new Uint8Array([0x3c]) }]);
  const s = openSafetensors(p);
  assert.equal(isFp8Weight(s, 'a.weight'), false);
  s.close();
  rmSync(root, { recursive: true });
});

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
function r1(args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    return { code: 0, stdout: execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }), stderr: '' };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { code: x.status, stdout: x.stdout, stderr: x.stderr };
  }
}

test('r1 inspect: file, folder (config summary + expected params), FP8 scales counted apart, clear errors', () => {
  const file = r1(['inspect', join(FIX, 'io', 'reference.safetensors'), '--json']);
  assert.equal(file.code, 0, file.stderr);
  const j = JSON.parse(file.stdout) as { kind: string; weights: { totals: { tensors: number; params: number; scaleTensors: number; scaleParams: number; bytes: number }; dtypes: Record<string, { tensors: number }>; metadata: Record<string, string>; tensors: { name: string; shape: number[] }[] } };
  assert.equal(j.kind, 'file');
  assert.equal(j.weights.totals.tensors, 17);
  assert.equal(j.weights.totals.scaleTensors, 1);
  assert.equal(j.weights.totals.scaleParams, 1);
  // 12+5+6+3+8+3+3+4+2+3+4+4+0+1+1+1 elements, the F32 [1,1] scale apart
  assert.equal(j.weights.totals.params, 60);
  assert.equal(j.weights.dtypes['F32']!.tensors, 6);
  assert.equal(j.weights.metadata['source'], 'make_safetensors.py');
  assert.deepEqual(j.weights.tensors.find((t) => t.name === 'scalar.f32')!.shape, []);

  const folder = r1(['inspect', join(FIX, 'models', 'deepseek-v3-tiny'), '--json', '--summary']);
  assert.equal(folder.code, 0, folder.stderr);
  const fj = JSON.parse(folder.stdout) as { kind: string; config: { modelType: string; expectedParams: number; fields: Record<string, unknown> }; weights: { totals: { params: number }; tensors?: unknown } };
  assert.equal(fj.kind, 'folder');
  assert.equal(fj.config.modelType, 'deepseek_v3');
  assert.equal(fj.config.fields['kv_lora_rank'], 16);
  assert.equal(fj.config.expectedParams, fj.weights.totals.params, 'the checkpoint holds what config.json implies');
  assert.equal(fj.weights.tensors, undefined, '--summary drops the list');

  const text = r1(['inspect', join(FIX, 'models', 'qwen2-tiny'), '--limit', '2']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /config: qwen2/);
  assert.match(text.stdout, /more \(use --limit\)/);
  assert.match(text.stdout, /config.json implies .* parameters: matches/);

  const missing = r1(['inspect', '/no/such/path']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\/no\/such\/path: no such file or folder/);
  const notSt = r1(['inspect', join(ROOT, 'package.json')]);
  assert.equal(notSt.code, 2);
  assert.match(notSt.stderr, /is this a safetensors file\?/);
  assert.equal(r1(['inspect']).code, 2);
  assert.equal(r1(['inspect', 'a', '--limit', 'x']).code, 2);
});
