/**
 * Packed inference weights (src/nn/packed-weights.ts, loadModel's `weights` option): tiny Qwen2 and DeepSeek-V3 models
 * with bf16 / fp8 Linear weights against
 *   (a) the same model in f32 with its weights replaced by the packed values dequantized and the inputs of those layers
 *       rounded to bf16, as the packed kernels round them (identical operands: only f32 summation order differs, so
 *       logits agree to ~1e-5 and greedy tokens are identical), and
 *   (b) the original f32 model (logits within the format's rounding: bf16 keeps 8 significant bits, E4M3 4).
 * Plus: bookkeeping (bytes, released f32 weights, inference-only errors), a tied head, and an FP8 checkpoint that
 * loads as fp8 with codes and scales bit-identical to the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.js';
import { loadModel, buildModel, type CausalLM } from '../../src/models/load.js';
import { parseConfig } from '../../src/models/config.js';
import { DeepseekV3ForCausalLM } from '../../src/models/deepseek-v3.js';
import { Linear, type LinearImpl } from '../../src/nn/linear.js';
import { ModelRunner } from '../../src/infer/kv-cache.js';
import { GenerationEngine } from '../../src/infer/generate.js';
import { packWeights, PackedLinear, weightBytes, parseWeightFormat } from '../../src/nn/packed-weights.js';
import { dequantPacked, fp8PanelsFromRows, packedLength, panelsPreferred } from '../../src/quant/qgemm.js';
import { quantizeWeight, dequantizeBlockwise } from '../../src/quant/blockwise.js';
import { saveHfFolder, openHfFolder } from '../../src/io/hf-folder.js';
import { DisposedError, UsageError } from '../../src/errors.js';
import { repoPath } from '../util.js';

const FIX = repoPath('test/fixtures/models');

function logitsOf(m: CausalLM, seq: number[]): Float32Array {
  return T.noGrad(() => T.tidy(() => {
    const x = T.tensor([seq], { dtype: 'i32' });
    const lg = m instanceof DeepseekV3ForCausalLM ? m.forward(x, { mtp: false }).logits : m.forward(x).logits;
    return lg.toArray() as Float32Array;
  }));
}

async function greedy(m: CausalLM, prompts: number[][], n: number): Promise<number[][]> {
  const engine = new GenerationEngine(new ModelRunner(m), null, { maxBatch: 2, prefillChunk: 3 });
  const got = await engine.generate(prompts.map((p) => ({ prompt: p, maxTokens: n, sampling: { temperature: 0 } })));
  return got.map((r) => r.tokens);
}

/** Rounds a packed layer's input to bf16 and multiplies in f32: what the packed kernels compute (src/quant/qgemm.ts). */
const BF16_INPUTS: LinearImpl = {
  name: 'bf16-inputs',
  forward: (x, layer) => T.tidy(() => T.linear(T.cast(T.cast(x, 'bf16'), 'f32'), layer.weight, layer.bias)),
};

/** The f32 model with every packed layer's weight replaced by its packed value, dequantized, and its input rounded
 * to bf16 as the packed kernels round it. */
function roundedTwin(dir: string, packed: CausalLM): CausalLM {
  const { model } = loadModel(dir, { maxPositions: 64 });
  const mods = new Map(model.namedModules());
  for (const [path, m] of packed.namedModules()) {
    if (m instanceof Linear && m.impl instanceof PackedLinear) {
      const w = m.impl.weight;
      model.setParameter(`${path}.weight`, T.fromArray(dequantPacked(w), [w.rows, w.cols]));
      (mods.get(path) as Linear).impl = BF16_INPUTS;
    }
  }
  return model;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}
function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** ||a - b|| / ||b|| over all logits. */
function relRms(a: Float32Array, b: Float32Array): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) { d += (a[i]! - b[i]!) ** 2; n += b[i]! ** 2; }
  return Math.sqrt(d / n);
}

// Logits against the original f32 weights. A weight rounds with relative error up to 2^-9 (bf16, 8 significant
// bits) or 2^-4 (E4M3, 4 bits; RMS ~2^-5.8 over a uniform error); independent errors partly cancel in each dot
// product and compound over layers. Measured on these fixtures: relative RMS ~0.003 (bf16), 0.04-0.08 (fp8).
// Bounds: relative RMS 2^-6 (bf16) and 2^-2.5 (fp8); max deviation 2^-6 x max|logit| for bf16 only, since with
// fp8 a router's top-k can flip at a near tie (MoE) and move single positions by more.
const RMS_VS_F32 = { bf16: 2 ** -6, fp8: 2 ** -2.5 } as const;
const MAX_VS_F32_BF16 = 2 ** -6;

for (const fam of ['qwen2-tiny', 'deepseek-v3-tiny']) {
  for (const fmt of ['bf16', 'fp8'] as const) {
    test(`${fam} ${fmt}: greedy generation and logits match f32 (identical weights: ~1e-5; original weights: ${fmt} rounding)`, async () => {
      const dir = join(FIX, fam);
      const f32 = loadModel(dir, { maxPositions: 64 }).model;
      const loaded = loadModel(dir, { maxPositions: 64, weights: fmt });
      const pk = loaded.model;
      assert.ok(loaded.packed && loaded.packed.layers > 0 && loaded.packed.format === fmt);
      if (fam.startsWith('deepseek')) assert.ok(loaded.packed.kept.some((n) => n.endsWith('kv_b_proj.weight')), 'kv_b_proj stays f32');
      const twin = roundedTwin(dir, pk);
      const prompts = [[1, 2, 3], [7, 8, 9, 10, 11, 12, 13], [40]];
      let bestTwin = Infinity;
      const [gPacked, gTwin] = [await greedy(pk, prompts, 10), await greedy(twin, prompts, 10)];
      assert.deepEqual(gPacked, gTwin, 'greedy tokens equal the f32 model holding the same (rounded) weights');
      for (let i = 0; i < prompts.length; i++) {
        const seq = [...prompts[i]!, ...gPacked[i]!];
        const lp = logitsOf(pk, seq), lt = logitsOf(twin, seq), lf = logitsOf(f32, seq);
        const scale = maxAbs(lf);
        const dTwin = maxDiff(lp, lt), dF32 = maxDiff(lp, lf);
        // Same operands up to f32 summation order; but a ~1e-7 difference upstream can move an activation across a
        // bf16 rounding boundary (one element changes by 2^-8 relative), so single logits may move by ~1e-3 of scale.
        // Where no boundary is crossed the two agree to ~1e-7 (required of the best sequence below).
        assert.ok(dTwin <= 2 ** -7 * scale, `${fam} ${fmt} seq ${i}: packed vs rounded twin differ by ${dTwin} (logit scale ${scale})`);
        const rt = relRms(lp, lt);
        assert.ok(rt <= 2e-3, `${fam} ${fmt} seq ${i}: packed vs rounded twin relative RMS ${rt}`);
        bestTwin = Math.min(bestTwin, rt);
        const rr = relRms(lp, lf);
        assert.ok(rr <= RMS_VS_F32[fmt], `${fam} ${fmt} seq ${i}: packed vs f32 relative RMS ${rr} > ${RMS_VS_F32[fmt]}`);
        if (fmt === 'bf16') assert.ok(dF32 <= MAX_VS_F32_BF16 * scale, `${fam} bf16 seq ${i}: packed vs f32 differ by ${dF32} (> ${MAX_VS_F32_BF16} x ${scale})`);
        assert.ok(dF32 > 0, 'the packed model really uses rounded weights');
      }
      assert.ok(bestTwin <= 1e-5, `${fam} ${fmt}: no sequence matches the rounded twin to 1e-5 (best relative RMS ${bestTwin})`);
      for (const m of [f32, pk, twin]) m.dispose();
    });
  }
}

for (const fam of ['qwen2-tiny', 'deepseek-v3-tiny']) {
  test(`${fam} f32 panels (f32Panels): the same values re-laid out; greedy tokens equal and logits match the f32 model to f32 rounding`, { skip: !panelsPreferred('f32') && 'the f32 panel kernels need AVX-512 and the native addon' }, async () => {
    const dir = join(FIX, fam);
    const f32 = loadModel(dir, { maxPositions: 64 }).model;
    const loaded = loadModel(dir, { maxPositions: 64, weights: 'f32', f32Panels: true });
    const pk = loaded.model;
    assert.ok(loaded.packed && loaded.packed.layers > 0 && loaded.packed.format === 'f32');
    assert.equal(loaded.packed.bytesAfter, loaded.packed.bytesBefore + [...pk.namedModules()].reduce((a, [, m]) =>
      a + (m instanceof Linear && m.impl instanceof PackedLinear ? 4 * (Math.ceil(m.outFeatures / 16) * 16 - m.outFeatures) * m.inFeatures : 0), 0),
      'the same 4 bytes per weight, rows padded to a multiple of 16');
    for (const [, m] of pk.namedModules()) {
      if (m instanceof Linear && m.impl instanceof PackedLinear) {
        assert.equal(m.impl.weight.layout, 'panels');
        assert.ok(m.weight.isDisposed, 'the row-major f32 weight is released');
      }
    }
    assert.equal(new ModelRunner(pk).cacheDtype, 'f32', "kvCache 'auto' stays f32: the weights keep their values");
    const prompts = [[1, 2, 3], [7, 8, 9, 10, 11, 12, 13], [40]];
    const [gPanels, gF32] = [await greedy(pk, prompts, 10), await greedy(f32, prompts, 10)];
    assert.deepEqual(gPanels, gF32);
    for (let i = 0; i < prompts.length; i++) {
      const seq = [...prompts[i]!, ...gPanels[i]!];
      const lp = logitsOf(pk, seq), lf = logitsOf(f32, seq);
      // f32 x f32 products in another summation order: ~1e-7 relative per product, compounded over the layers
      assert.ok(relRms(lp, lf) <= 1e-5, `${fam} seq ${i}: f32 panels vs f32 relative RMS ${relRms(lp, lf)}`);
      assert.ok(maxDiff(lp, lf) <= 1e-4 * maxAbs(lf), `${fam} seq ${i}: f32 panels vs f32 differ by ${maxDiff(lp, lf)}`);
    }
    pk.train();
    assert.throws(() => pk.forward(T.tensor([[1, 2]], { dtype: 'i32' })), (e: unknown) => e instanceof UsageError && /inference-only/.test(e.message));
    f32.dispose();
    pk.dispose();
  });
}

test('packWeights: summary, released f32 weights, tied head, inference-only', () => {
  const config = parseConfig({ model_type: 'qwen2', vocab_size: 300, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true, initializer_range: 0.2 }, 'tied');
  const ref = buildModel(config, { seed: 3, maxPositions: 64 });
  const seq = [5, 9, 200, 17, 3];
  const want = logitsOf(ref, seq);
  for (const fmt of ['bf16', 'fp8'] as const) {
    const model = buildModel(config, { seed: 3, maxPositions: 64 });
    const lin = model.namedModules().filter(([, m]) => m instanceof Linear) as [string, Linear][];
    const before = lin.reduce((a, [, m]) => a + m.weight.size * 4, 0);
    const denseBefore = weightBytes(model).dense;
    const s = packWeights(model, fmt);
    assert.equal(s.layers, lin.length);
    assert.equal(s.bytesBefore, before);
    // bf16: 2 bytes per weight (the panel layout pads rows to a multiple of 16 and K to even); fp8: a quarter plus
    // one f32 scale per 128x128 block (one block per matrix here).
    // (fp8 panels pad rows to a multiple of 16 and K to a multiple of 4.)
    const layout = panelsPreferred(fmt) ? 'panels' : 'rows';
    const perWeight = fmt === 'bf16' ? 2 : 1;
    const wBytes = lin.reduce((a, [, m]) => a + perWeight * packedLength(m.outFeatures, m.inFeatures, layout, fmt), 0);
    assert.equal(s.bytesAfter, fmt === 'bf16' ? wBytes : wBytes + 4 * lin.length);
    if (layout === 'rows' && fmt === 'fp8') assert.equal(s.bytesAfter, before / 4 + 4 * lin.length);
    assert.equal(s.tiedHeadBytes, fmt === 'bf16' ? 2 * packedLength(300, 64, layout) : packedLength(300, 64, layout, 'fp8') + 4 * 3);
    const wb = weightBytes(model);
    assert.equal(wb.dense, denseBefore - before, 'f32 Linear weights are released');
    assert.equal(wb.packed, s.bytesAfter + s.tiedHeadBytes);
    for (const [, m] of lin) {
      assert.ok(m.weight.isDisposed);
      assert.throws(() => m.weight.raw, DisposedError);
    }
    const got = logitsOf(model, seq);
    const rr = relRms(got, want);
    assert.ok(rr > 0 && rr <= RMS_VS_F32[fmt], `${fmt}: tied model logits: relative RMS ${rr}`);
    // Training through packed layers is refused with a clear error.
    model.train();
    assert.throws(() => model.forward(T.tensor([seq], { dtype: 'i32' })), (e: unknown) => e instanceof UsageError && /inference-only/.test(e.message));
    model.dispose();
  }
  const same = packWeights(ref, 'f32');
  assert.equal(same.layers, 0);
  assert.deepEqual(logitsOf(ref, seq), want, "'f32' leaves the model as it is");
  if (panelsPreferred('f32')) { // f32 in panels on request: every Linear and a copy of the tied head, 4 bytes a weight
    const model = buildModel(config, { seed: 3, maxPositions: 64 });
    const s = packWeights(model, 'f32', { f32Panels: true });
    const lin = model.namedModules().filter(([, m]) => m instanceof Linear) as [string, Linear][];
    assert.equal(s.layers, lin.length);
    assert.equal(s.bytesAfter, lin.reduce((a, [, m]) => a + 4 * packedLength(m.outFeatures, m.inFeatures, 'panels', 'f32'), 0));
    assert.equal(s.tiedHeadBytes, 4 * 304 * 64);
    const rr = relRms(logitsOf(model, seq), want);
    assert.ok(rr <= 1e-6, `f32 panels: tied model logits: relative RMS ${rr}`);
    model.dispose();
  }
  ref.dispose();
  assert.equal(parseWeightFormat('fp8'), 'fp8');
  assert.throws(() => parseWeightFormat('int4'), UsageError);
});

test('FP8 checkpoint: loads as fp8 with codes and scales bit-identical to the file; kv_b_proj dequantized to f32', () => {
  const src = join(FIX, 'deepseek-v3-tiny');
  const base = loadModel(src, { maxPositions: 64 }).model;
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  cfg['quantization_config'] = { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] };
  // As DeepSeek ships V3/R1: every Linear weight of the decoder in F8_E4M3 + weight_scale_inv; embeddings, norms,
  // router gate and lm_head in higher precision.
  const files = new Map<string, { codes: Uint8Array; scaleInv: Float32Array; rows: number; cols: number }>();
  const tensors = base.namedParameters().flatMap(([name, t]) => {
    const a = t.toArray() as Float32Array;
    const isLin = t.ndim === 2 && /\.(q_a_proj|q_b_proj|q_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj|gate_proj|up_proj|down_proj|eh_proj)\.weight$/.test(name);
    if (!isLin) return [{ name, dtype: 'F32' as const, shape: [...t.shape], data: a }];
    const [rows, cols] = t.shape as [number, number];
    // Blocks of very different magnitude so each scale matters.
    for (let i = 0; i < a.length; i++) a[i]! *= 1 + (i % 5);
    const q = quantizeWeight(a, rows, cols);
    files.set(name, { codes: q.codes, scaleInv: q.scaleInv, rows, cols });
    return [
      { name, dtype: 'F8_E4M3' as const, shape: [rows, cols], data: q.codes },
      { name: `${name}_scale_inv`, dtype: 'F32' as const, shape: [Math.ceil(rows / 128), Math.ceil(cols / 128)], data: q.scaleInv },
    ];
  });
  base.dispose();
  const root = mkdtempSync(join(tmpdir(), 'r1-fp8ckpt-'));
  try {
    const dir = join(root, 'm');
    saveHfFolder(dir, { config: cfg, tensors });
    assert.deepEqual(openHfFolder(dir).fp8BlockSize, [128, 128]);
    const { model, packed } = loadModel(dir, { maxPositions: 64, weights: 'fp8' });
    const mods = new Map(model.namedModules());
    let exact = 0;
    for (const [name, f] of files) {
      const m = mods.get(name.slice(0, -'.weight'.length)) as Linear;
      if (name.endsWith('kv_b_proj.weight')) {
        assert.equal(m.impl, null);
        assert.deepEqual(m.weight.toArray(), dequantizeBlockwise(f.codes, f.scaleInv, f.rows, f.cols));
        continue;
      }
      assert.ok(m.impl instanceof PackedLinear, `${name} packed`);
      const w = m.impl.weight;
      // the file's codes, reordered into panels where the fp8 panel kernels run
      assert.deepEqual(w.data, w.layout === 'panels' ? fp8PanelsFromRows(f.codes, f.rows, f.cols) : f.codes, `${name}: codes as in the file`);
      assert.equal(w.layout === 'panels', panelsPreferred('fp8'));
      assert.deepEqual(new Uint32Array(w.scaleInv!.buffer, w.scaleInv!.byteOffset, w.scaleInv!.length), new Uint32Array(f.scaleInv.buffer), `${name}: scales as in the file`);
      exact++;
    }
    assert.ok(exact > 10 && packed!.layers >= exact);
    // The same weights in f32 (FP8 ones dequantized; lm_head, F32 in the file and quantized by the fp8 load, replaced
    // by its packed value) give the same logits up to summation order.
    const f32 = roundedTwin(dir, model);
    const seq = [3, 14, 15, 92, 6, 5];
    const a = logitsOf(model, seq), b = logitsOf(f32, seq);
    // (Up to an activation crossing a bf16 rounding boundary, as in the greedy test above.)
    assert.ok(maxDiff(a, b) <= 2 ** -7 * maxAbs(b) && relRms(a, b) <= 2e-3, `fp8 vs dequantized f32: max ${maxDiff(a, b)}, relative RMS ${relRms(a, b)}`);
    model.dispose();
    f32.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
