/**
 * Fused packed projections (src/nn/packed-weights.ts: fuseLinears, fuseProjections): Linears that read the same
 * input (q/k/v, gate/up) multiplied as one packed matrix. Each part's output must be bit for bit what its own product
 * gives, in every format and layout, at one row and at many; the parts keep working (pointed at their slices of the
 * fused data, no second copy); parts that do not end on a panel or fp8 scale-block boundary are not fused; and
 * generation with fused projections equals generation without, token for token and logprob for logprob. A gate/up
 * pair in panels also runs as one GLU product at two rows or more (silu(gate) * up as the sums are stored), bit for
 * bit what the product and siluMul give.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { buildModel } from '../../src/models/load.js';
import { loadConfig, parseConfig } from '../../src/models/config.js';
import { MLA } from '../../src/models/deepseek-v3.js';
import { repoPath } from '../util.js';
import { Linear } from '../../src/nn/linear.js';
import { GQAttention } from '../../src/nn/attention.js';
import { SwiGLU } from '../../src/nn/mlp.js';
import { ModelRunner } from '../../src/infer/kv-cache.js';
import { GenerationEngine } from '../../src/infer/generate.js';
import { fuseLinears, installPacked, type FusedPacked, packMatrix, packWeights, PackedLinear, weightBytes } from '../../src/nn/packed-weights.js';
import { panelsPreferred, qgemm, type PackedFormat, type PackedLayout } from '../../src/quant/qgemm.js';

function rand(n: number, seed: number): Float32Array {
  const r = new T.Rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r.normal() * 0.05;
  return a;
}

/** Packed Linears [rows_i, K] (with a bias on the parts that ask for one) and their packed matrices. */
function packedLayers(rows: number[], K: number, fmt: PackedFormat, layout: PackedLayout, biased: boolean[]): Linear[] {
  return rows.map((n, i) => {
    const l = new Linear(K, n, biased[i]!, 'empty');
    if (l.bias) (l.bias.raw as Float32Array).set(rand(n, 100 + i));
    installPacked(l, packMatrix(rand(n * K, i), n, K, fmt, `part ${i}`, layout), `part${i}`);
    return l;
  });
}

const cases: { fmt: PackedFormat; layout: PackedLayout; rows: number[] }[] = [
  { fmt: 'bf16', layout: 'rows', rows: [40, 24, 20] }, // any row counts: row-major data follows on
  { fmt: 'fp8', layout: 'rows', rows: [256, 128, 100] }, // scale blocks of 128 rows
];
if (panelsPreferred('bf16')) cases.push({ fmt: 'bf16', layout: 'panels', rows: [48, 16, 20] });
if (panelsPreferred('fp8')) cases.push({ fmt: 'fp8', layout: 'panels', rows: [128, 256, 40] });
if (panelsPreferred('f32')) cases.push({ fmt: 'f32', layout: 'panels', rows: [32, 16, 8] });

for (const { fmt, layout, rows } of cases) {
  test(`fuseLinears ${fmt} ${layout}: each part's output bit for bit its own product's, at 1 to 16 rows; no second copy`, () => {
    const K = 130; // K padded in the panel layouts (bf16 to even, fp8 to a multiple of 4) and two fp8 scale blocks wide
    const layers = packedLayers(rows, K, fmt, layout, [true, false, true]);
    const xs = [1, 2, 5, 16].map((M) => rand(M * K, 7 + M));
    const before = xs.map((x) => layers.map((l) => qgemm(x, x.length / K, (l.impl as PackedLinear).weight, l.bias ? (l.bias.raw as Float32Array) : null)));
    const bytes = layers.reduce((a, l) => a + (l.impl as PackedLinear).weight.data.byteLength, 0);
    const f = fuseLinears(layers, 'fused');
    assert.ok(f, 'fused');
    assert.deepEqual(f.widths, rows);
    assert.equal(f.weight.data.byteLength, bytes, 'the fused data is the parts end to end');
    for (const l of layers) assert.equal((l.impl as PackedLinear).weight.data.buffer, f.weight.data.buffer, 'each part is a slice of the fused data');
    xs.forEach((x, xi) => {
      const M = x.length / K;
      const parts = T.noGrad(() => f.apply(T.fromArray(x, [M, K])));
      assert.equal(f.serves(T.fromArray(x, [M, K])), M === 1);
      layers.forEach((l, i) => {
        assert.deepEqual(parts[i]!.shape, [M, rows[i]]);
        const got = parts[i]!.contiguous().toArray() as Float32Array;
        assert.deepEqual(got, before[xi]![i], `part ${i} at ${M} row(s): the fused product differs`);
        const again = qgemm(x, M, (l.impl as PackedLinear).weight, l.bias ? (l.bias.raw as Float32Array) : null);
        assert.deepEqual(again, before[xi]![i], `part ${i} at ${M} row(s): the part's own product changed`);
      });
      for (const p of parts) p.dispose();
    });
  });
}

for (const fmt of ['bf16', 'fp8', 'f32'] as const) {
  test(`FusedPacked.glu ${fmt} panels: silu(gate) * up bit for bit what apply + siluMul give, 1 to 300 rows`, { skip: !panelsPreferred(fmt) && `the ${fmt} panel kernels do not run here` }, () => {
    // K padded (bf16: even, fp8: multiple of 4) and two fp8 scale blocks wide. H: 16 or 104 panels per part (the
    // driver goes 48 output panels at a time per thread, in three runs plus a strip of the rest), 3 (bf16, f32)
    for (const H of fmt === 'fp8' ? [256, 1664] : [256, 1664, 48]) glu(fmt, 130, H);
  });
}
/** FusedPacked.glu of a [H, K] gate and up pair against apply + siluMul, at 1 to 300 rows. */
function glu(fmt: PackedFormat, K: number, H: number): void {
  const f = fuseLinears(packedLayers([H, H], K, fmt, 'panels', [false, false]), 'mlp.gate_proj+up_proj')!;
  assert.ok(f, 'fused');
  for (const M of [1, 2, 3, 8, 16, 17, 300]) { // 300: two slabs of the panel driver (256 rows each)
    const x = T.fromArray(rand(M * K, 40 + M), [M, K]);
    const got = T.noGrad(() => f.glu(x));
    assert.ok(got, `glu ran at ${M} rows`);
    assert.deepEqual(got.shape, [M, H]);
    const [g, u] = T.noGrad(() => f.apply(x));
    const want = T.siluMul(g!.contiguous(), u!.contiguous()).toArray() as Float32Array;
    // one row: both run the GEMV's kernel (the GLU on each thread's share of gate, then up panels); more: the blocks
    assert.deepEqual(got.toArray() as Float32Array, want, `${H} wide, ${M} rows: glu differs from apply + siluMul`);
  }
}

test('FusedPacked.gluAtOneRow: fp8 pairs only (the measured choice for batch 1)', () => {
  const pair = (H: number, K: number, fmt: PackedFormat, layout: PackedLayout) => fuseLinears(packedLayers([H, H], K, fmt, layout, [false, false]), 'mlp.gate_proj+up_proj')!;
  assert.equal(pair(128, 64, 'fp8', 'rows').gluAtOneRow, true);
  assert.equal(pair(128, 64, 'bf16', 'rows').gluAtOneRow, false);
  if (panelsPreferred('f32')) assert.equal(pair(32, 64, 'f32', 'panels').gluAtOneRow, false);
});

test('FusedPacked.glu: null (the caller multiplies and applies siluMul) for rows layout, biased or unequal parts, three parts', () => {
  const K = 64, x = T.zeros([4, K]);
  const rows = fuseLinears(packedLayers([128, 128], K, 'fp8', 'rows', [false, false]), 'x')!;
  assert.equal(T.noGrad(() => rows.glu(x)), null);
  if (!panelsPreferred('bf16')) return;
  assert.equal(T.noGrad(() => fuseLinears(packedLayers([32, 32], K, 'bf16', 'panels', [true, false]), 'x')!.glu(x)), null);
  assert.equal(T.noGrad(() => fuseLinears(packedLayers([32, 48], K, 'bf16', 'panels', [false, false]), 'x')!.glu(x)), null);
  assert.equal(T.noGrad(() => fuseLinears(packedLayers([32, 32, 32], K, 'bf16', 'panels', [false, false, false]), 'x')!.glu(x)), null);
  const ok = fuseLinears(packedLayers([32, 32], K, 'bf16', 'panels', [false, false]), 'mlp.gate_proj+up_proj')!;
  assert.deepEqual(T.noGrad(() => ok.glu(x))!.shape, [4, 32]);
  assert.throws(() => T.noGrad(() => ok.glu(T.zeros([4, 32]))), /mlp\.gate_proj\+up_proj: expects \[\.\.\., 64\], got \[4, 32\]/);
  assert.throws(() => ok.glu(T.zeros([4, K]).setRequiresGrad(true)), /inference-only/);
});

test('fuseLinears: not fused when a part does not end on a panel / scale-block boundary, or the parts differ', () => {
  // fp8: 128-row scale blocks
  assert.equal(fuseLinears(packedLayers([100, 128], 64, 'fp8', 'rows', [false, false]), 'x'), null);
  if (panelsPreferred('bf16')) assert.equal(fuseLinears(packedLayers([24, 16], 64, 'bf16', 'panels', [false, false]), 'x'), null);
  // the last part may end anywhere
  assert.ok(fuseLinears(packedLayers([128, 100], 64, 'fp8', 'rows', [false, false]), 'x'));
  // formats, input widths, unpacked layers
  const a = packedLayers([128], 64, 'fp8', 'rows', [false])[0]!, b = packedLayers([128], 64, 'bf16', 'rows', [false])[0]!;
  assert.equal(fuseLinears([a, b], 'x'), null);
  assert.equal(fuseLinears([a, packedLayers([128], 32, 'fp8', 'rows', [false])[0]!], 'x'), null);
  assert.equal(fuseLinears([a, new Linear(64, 128, false, 'empty')], 'x'), null);
});

// A Qwen2 (q/k/v biases) whose every projection ends on a 128-row boundary, so all three formats fuse.
const config = parseConfig({ model_type: 'qwen2', vocab_size: 97, hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 4, max_position_embeddings: 64, tie_word_embeddings: false, initializer_range: 0.1 }, 'fusable');

for (const fmt of ['bf16', 'fp8', 'f32'] as const) {
  test(`fuseProjections ${fmt}: packWeights fuses q/k/v and gate/up of every layer; generation equals the unfused model's, logprobs too`, { skip: fmt === 'f32' && !panelsPreferred('f32') && 'f32 packs only into the AVX-512 panels' }, async () => {
    const build = (fuse: boolean) => {
      const m = buildModel(config, { seed: 5, maxPositions: 64 });
      const s = packWeights(m, fmt, { fuse, f32Panels: true });
      return { m, s };
    };
    const plain = build(false), fused = build(true);
    assert.equal(plain.s.fused, undefined);
    assert.equal(fused.s.fused, 4, 'two layers x (q/k/v, gate/up)');
    assert.deepEqual(weightBytes(fused.m), weightBytes(plain.m), 'no weight held twice');
    let calls = 0, gluCalls = 0; // the fused products really run (batch 1; gate/up as the GLU at more rows, in the panel layouts)
    const count = (f: FusedPacked) => { const apply = f.apply.bind(f); f.apply = (x) => { calls++; return apply(x); }; };
    const countGlu = (f: FusedPacked) => { const glu = f.glu.bind(f); f.glu = (x) => { const r = glu(x); if (r) gluCalls++; return r; }; };
    for (const [, mod] of fused.m.namedModules()) {
      if (mod instanceof GQAttention) { assert.ok(mod.qkv && mod.qkv.bias, 'q/k/v fused, with their biases'); count(mod.qkv); }
      if (mod instanceof SwiGLU) { assert.ok(mod.gateUp && !mod.gateUp.bias); count(mod.gateUp); countGlu(mod.gateUp); }
    }
    // batch 1 decodes through the fused products (one row); two sequences at once through the parts
    const gen = async (m: typeof plain.m, prompts: number[][]) => {
      const engine = new GenerationEngine(new ModelRunner(m), null, { maxBatch: 2 });
      const r = await engine.generate(prompts.map((p) => ({ prompt: p, maxTokens: 8, sampling: { temperature: 0 } })));
      return r.map((x) => ({ tokens: x.tokens, logprobs: x.logprobs }));
    };
    for (const prompts of [[[3, 1, 4, 1, 5]], [[9, 2, 6], [5, 3, 5, 8, 9, 7]]]) {
      assert.deepEqual(await gen(fused.m, prompts), await gen(plain.m, prompts));
    }
    // in the panel layouts gate/up run as the GLU product at more rows, and at batch 1 too where gluAtOneRow says so (fp8)
    const glu1 = fmt === 'fp8' && panelsPreferred(fmt);
    assert.ok(calls >= (glu1 ? 2 : 4) * 7, `fused products ran ${calls} times`);
    if (panelsPreferred(fmt)) assert.ok(gluCalls >= (glu1 ? 2 * 7 : 0) + 2 * 2, `the GLU products (prompts of several tokens, two sequences${glu1 ? ', batch 1' : ''}) ran ${gluCalls} times`);
    plain.m.dispose();
    fused.m.dispose();
  });
}

for (const [fix, q] of [['deepseek-v3-tiny', 'q_a_proj'], ['deepseek-v2-tiny', 'q_proj (no q LoRA)']] as const) test(`fuseProjections ${fix}: MLA ${q} + kv_a_proj_with_mqa and the dense MLP fuse (experts of 24 rows do not); generation equals the unfused model's`, { skip: !panelsPreferred('bf16') && 'the fixture fuses in the bf16 panel layout only (16-row boundaries)' }, async () => {
  const ds = loadConfig(repoPath(`test/fixtures/models/${fix}/config.json`));
  const build = (fuse: boolean) => {
    const m = buildModel(ds, { seed: 2, maxPositions: 64 });
    return { m, s: packWeights(m, 'bf16', { fuse }) };
  };
  const plain = build(false), fused = build(true);
  const mla = fused.m.namedModules().filter(([, m]) => m instanceof MLA) as [string, MLA][];
  assert.ok(mla.length >= 2 && mla.every(([, m]) => m.xProj && (q === 'q_a_proj') === (m.q_a_proj !== null)), 'every MLA (an MTP layer\'s too) fuses its two projections of x');
  let calls = 0;
  for (const [, m] of mla) { const f = m.xProj!, apply = f.apply.bind(f); f.apply = (x) => { calls++; return apply(x); }; }
  const experts = fused.m.namedModules().filter(([p, m]) => m instanceof SwiGLU && /\.experts\.\d+$/.test(p)) as [string, SwiGLU][];
  assert.ok(experts.length > 0 && experts.every(([, m]) => !m.gateUp), 'experts with 24-row projections stay apart');
  const gen = async (m: typeof plain.m, prompts: number[][]) => {
    const engine = new GenerationEngine(new ModelRunner(m), null, { maxBatch: 2 });
    const r = await engine.generate(prompts.map((p) => ({ prompt: p, maxTokens: 8, sampling: { temperature: 0 } })));
    return r.map((x) => ({ tokens: x.tokens, logprobs: x.logprobs }));
  };
  for (const prompts of [[[3, 1, 4, 1, 5]], [[9, 2, 6], [5, 3, 5, 8, 9, 7]]]) assert.deepEqual(await gen(fused.m, prompts), await gen(plain.m, prompts));
  assert.ok(calls >= 7, `the fused MLA products ran ${calls} times`);
  plain.m.dispose();
  fused.m.dispose();
});

test('FusedPacked.apply: bad inputs get clear errors (width, dtype, autograd)', () => {
  const f = fuseLinears(packedLayers([128, 128], 64, 'fp8', 'rows', [false, false]), 'layers.0.mlp.gate_proj+up_proj')!;
  assert.throws(() => T.noGrad(() => f.apply(T.zeros([1, 32]))), /layers\.0\.mlp\.gate_proj\+up_proj: expects \[\.\.\., 64\], got \[1, 32\]/);
  assert.throws(() => T.noGrad(() => f.apply(T.zeros([1, 64], 'f64'))), /take f32 activations/);
  assert.throws(() => f.apply(T.zeros([1, 64]).setRequiresGrad(true)), /inference-only/);
});
