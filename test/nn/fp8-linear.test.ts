/**
 * FP8 training Linear (src/nn/fp8-linear.ts) against an independent reference: operands quantized with
 * blockwise.ts's quantizers (separate code from fp8-linear's quantizeTiles), dequantized, and multiplied in f64 here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { quantizeBlockwise, dequantizeBlockwise } from '../../src/quant/blockwise.js';
import { fp8Native } from '../../src/quant/fp8.js';
import { fp8Linear, bf16Linear, quantizeTiles, quantizeTilesJs, transposeF32, enableFp8Training, disableFp8Training, fp8Layers } from '../../src/nn/fp8-linear.js';
import { parseConfig } from '../../src/models/config.js';
import { buildModel } from '../../src/models/load.js';
import { Trainer } from '../../src/train/loop.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lcg, writeTokenizerFolder } from '../util.js';

function gaussian(n: number, seed: number, std = 1): Float32Array {
  const rnd = lcg(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  return out;
}

/** Reference quantize -> dequantize with blockwise.ts (E4M3, [br, bc] blocks). */
function qdq(x: Float32Array, rows: number, cols: number, br: number, bc: number): Float32Array {
  const q = quantizeBlockwise(x, rows, cols, { blockRows: br, blockCols: bc });
  return dequantizeBlockwise(q.codes, q.scaleInv, rows, cols, { blockRows: br, blockCols: bc });
}

/** C[i, j] = sum_k A[i, k] B[j, k] in f64 (A [m, k], B [n, k]). */
function gemmABt(a: ArrayLike<number>, b: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += a[i * k + t]! * b[j * k + t]!;
    c[i * n + j] = s;
  }
  return c;
}
function transpose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}
/** max |got - want| / max |want|. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d = 0, m = 0;
  for (let i = 0; i < want.length; i++) { d = Math.max(d, Math.abs(got[i]! - want[i]!)); m = Math.max(m, Math.abs(want[i]!)); }
  return d / m;
}

// Shapes that cross 128-boundaries with partial edge tiles/blocks in every dimension: M = 2 x 150 tokens.
const B = 2, S = 150, M = B * S, K = 200, N = 260;

function setup(seed: number) {
  const xd = gaussian(M * K, seed);
  // Give channels different magnitudes so per-tile scales matter.
  for (let i = 0; i < M; i++) for (let c = 0; c < K; c++) xd[i * K + c]! *= c < 128 ? 1 : 20;
  const wd = gaussian(N * K, seed + 1, 0.05);
  const bd = gaussian(N, seed + 2, 0.1);
  const gd = gaussian(M * N, seed + 3, 1e-3);
  const x = T.fromArray(Float32Array.from(xd), [B, S, K]).setRequiresGrad(true).keep();
  const w = T.fromArray(Float32Array.from(wd), [N, K]).setRequiresGrad(true).keep();
  const b = T.fromArray(Float32Array.from(bd), [N]).setRequiresGrad(true).keep();
  return { xd, wd, bd, gd, x, w, b };
}

test('fp8Linear forward = f64 product of the 1x128-tile activations and 128x128-block weights (+ f32 bias)', () => {
  const { xd, wd, bd, x, w, b } = setup(11);
  const y = T.noGrad(() => fp8Linear(x, w, b));
  assert.deepEqual(y.shape, [B, S, N]);
  const want = gemmABt(qdq(xd, M, K, 1, 128), qdq(wd, N, K, 128, 128), M, N, K);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) want[i * N + j]! += bd[j]!;
  const got = y.toArray() as Float32Array;
  assert.ok(relErr(got, want) < 2e-6, `forward vs reference: ${relErr(got, want)}`);
  // And it is an FP8 product, not the f32 one: it differs from the unquantized product by E4M3-sized amounts.
  const exact = gemmABt(xd, wd, M, N, K);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) exact[i * N + j]! += bd[j]!;
  const e = relErr(got, exact);
  assert.ok(e > 1e-4 && e < 0.05, `forward vs unquantized: ${e}`);
});

test('fp8Linear gradients: Dgrad on 1x128 dY tiles x 128x128 W blocks, Wgrad on 128x1 (token) tiles, f32 bias grad', () => {
  const { xd, wd, gd, x, w, b } = setup(21);
  T.tidy(() => {
    const y = fp8Linear(x, w, b);
    y.backward(T.fromArray(Float32Array.from(gd), [B, S, N]));
  });
  // Dgrad: dX = dY W with dY per 1 x 128 tile (along N, the reduction) and W per 128 x 128 block.
  const wq = qdq(wd, N, K, 128, 128);
  const dx = gemmABt(qdq(gd, M, N, 1, 128), transpose(wq, N, K), M, K, N);
  assert.ok(relErr(x.grad!.toArray() as Float32Array, dx) < 2e-6, `dX vs reference: ${relErr(x.grad!.toArray() as Float32Array, dx)}`);
  // Wgrad: dW = dY^T X, reduction over the M tokens: dY per 128 x 1 tile, X = the cached 1x128-quantized activation
  // re-quantized per 128 x 1 tile (DeepSeek-V3 3.5.2).
  const gq = qdq(gd, M, N, 128, 1);
  const xq = qdq(qdq(xd, M, K, 1, 128), M, K, 128, 1);
  const dw = gemmABt(transpose(gq, M, N), transpose(xq, M, K), N, K, M);
  assert.ok(relErr(w.grad!.toArray() as Float32Array, dw) < 2e-6, `dW vs reference: ${relErr(w.grad!.toArray() as Float32Array, dw)}`);
  // Bias: plain f32 sum over tokens.
  const db = new Float64Array(N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) db[j]! += gd[i * N + j]!;
  assert.ok(relErr(b.grad!.toArray() as Float32Array, db) < 1e-5);
  for (const t of [x, w, b]) t.zeroGrad();
});

test("fp8Linear wgradInput 'fresh' quantizes the f32 activation per 128 x 1 tile directly", () => {
  const { xd, gd, x, w } = setup(31);
  T.tidy(() => fp8Linear(x, w, null, { wgradInput: 'fresh' }).backward(T.fromArray(Float32Array.from(gd), [B, S, N])));
  const dw = gemmABt(transpose(qdq(gd, M, N, 128, 1), M, N), transpose(qdq(xd, M, K, 128, 1), M, K), N, K, M);
  assert.ok(relErr(w.grad!.toArray() as Float32Array, dw) < 2e-6);
  x.zeroGrad(); w.zeroGrad();
});

test('quantizeTiles is bit-identical to blockwise.ts for 1x128, 128x1 and 128x128 (codes, scales, dequantized)', () => {
  const rows = 260, cols = 300;
  const x = gaussian(rows * cols, 5);
  x[17] = 0; x[1000] = 3000; x[rows * cols - 1] = -1e-30;
  for (const [br, bc] of [[1, 128], [128, 1], [128, 128]] as const) {
    const ref = quantizeBlockwise(x, rows, cols, { blockRows: br, blockCols: bc });
    const deq = new Float32Array(rows * cols);
    const got = quantizeTiles(x, rows, cols, br, bc, 'e4m3', { deq, keepCodes: true });
    assert.deepEqual(got.scaleInv, ref.scaleInv, `${br}x${bc} scales`);
    assert.deepEqual(got.codes, ref.codes, `${br}x${bc} codes`);
    assert.deepEqual(deq, dequantizeBlockwise(ref.codes, ref.scaleInv, rows, cols, { blockRows: br, blockCols: bc }));
  }
});

test('quantizeTiles: the native kernel equals the TypeScript reference bit for bit (NaN, inf and zero tiles, tails, E5M2)', () => {
  assert.ok(fp8Native()?.fp8QuantizeTiles, 'the native kernel is built');
  const rows = 131, cols = 200;
  const x = gaussian(rows * cols, 9);
  x[5] = NaN; // tile row 0 (1x128), block (0, 0)
  x[3 * cols + 150] = Infinity; // row 3's second tile
  for (let j = 0; j < cols; j++) x[7 * cols + j] = 0; // an all-zero row: scale 1
  x[9 * cols + 20] = 1e6; x[10 * cols + 21] = -3e-41; // saturation (E4M3) and a subnormal input
  for (const format of ['e4m3', 'e5m2'] as const) {
    for (const [br, bc] of [[1, 128], [128, 1], [128, 128], [3, 50]] as const) {
      const d1 = new Float32Array(rows * cols), d2 = new Float32Array(rows * cols);
      const a = quantizeTiles(x, rows, cols, br, bc, format, { deq: d1, keepCodes: true });
      const b = quantizeTilesJs(x, rows, cols, br, bc, format, { deq: d2, keepCodes: true });
      const where = `${format} ${br}x${bc}`;
      assert.deepEqual(Buffer.from(a.scaleInv.buffer), Buffer.from(b.scaleInv.buffer), `${where} scales`);
      assert.deepEqual(a.codes, b.codes, `${where} codes`);
      assert.deepEqual(Buffer.from(d1.buffer), Buffer.from(d2.buffer), `${where} dequantized`);
      const c = quantizeTiles(x, rows, cols, br, bc, format); // no deq, scratch codes
      assert.deepEqual(c.codes, b.codes, `${where} codes without deq`);
    }
  }
});

test('transposeF32 (strided copy above 4096 values, blocked loop below) transposes', () => {
  for (const [r, c] of [[70, 90], [5, 7], [1, 5000]] as const) {
    const x = gaussian(r * c, 3);
    const t = transposeF32(x, r, c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) assert.equal(t[j * r + i], x[i * c + j]);
  }
});

test('tiling: an outlier in one 128-tile changes only that tile of the forward operand, and only its token column in Wgrad', () => {
  const Mx = 4, Kx = 256, Nx = 8;
  const base = gaussian(Mx * Kx, 41);
  const w = T.fromArray(gaussian(Nx * Kx, 42, 0.1), [Nx, Kx]);
  const outl = Float32Array.from(base);
  outl[1 * Kx + 200] = 1e4; // token 1, channel 200: tile (1, [128, 256))
  const fwd = (d: Float32Array) => {
    const deq = new Float32Array(Mx * Kx);
    quantizeTiles(d, Mx, Kx, 1, 128, 'e4m3', { deq });
    return deq;
  };
  const a = fwd(base), o = fwd(outl);
  for (let i = 0; i < Mx; i++) for (let c = 0; c < Kx; c++) {
    const inTile = i === 1 && c >= 128;
    if (!inTile) assert.equal(o[i * Kx + c], a[i * Kx + c], `token ${i} channel ${c} changed`);
  }
  // The outlier's tile lost precision (its small values flush towards 0); the op's output for that token shows it.
  const ya = T.noGrad(() => fp8Linear(T.fromArray(base, [Mx, Kx]), w)).toArray() as Float32Array;
  const yo = T.noGrad(() => fp8Linear(T.fromArray(outl, [Mx, Kx]), w)).toArray() as Float32Array;
  for (const i of [0, 2, 3]) for (let j = 0; j < Nx; j++) assert.equal(yo[i * Nx + j], ya[i * Nx + j]);
  // Per-tensor scaling, by contrast, would move every token: check the 128 x 1 Wgrad tiling does the transposed thing:
  // an outlier at (token 1, channel 200) affects only channel 200's token tile.
  const tq = (d: Float32Array) => { const deq = new Float32Array(Mx * Kx); quantizeTiles(d, Mx, Kx, 128, 1, 'e4m3', { deq }); return deq; };
  const ta = tq(base), to = tq(outl);
  for (let i = 0; i < Mx; i++) for (let c = 0; c < Kx; c++) if (c !== 200) assert.equal(to[i * Kx + c], ta[i * Kx + c]);
});

test("gemm 'fp8-acc' (limited-precision accumulation, promotion every 128) matches 'f32' closely at accBits 24 and drifts at 10", () => {
  const { x, w, b, gd } = setup(51);
  const run = (opts: Parameters<typeof fp8Linear>[3]) => {
    for (const t of [x, w, b]) t.zeroGrad();
    const y = T.tidy(() => {
      const y = fp8Linear(x, w, b, opts);
      y.backward(T.fromArray(Float32Array.from(gd), [B, S, N]));
      return y.detach().toArray() as Float32Array;
    });
    return { y, dx: x.grad!.toArray() as Float32Array, dw: w.grad!.toArray() as Float32Array };
  };
  const f = run({});
  const a24 = run({ gemm: 'fp8-acc', accBits: 24 });
  const a10 = run({ gemm: 'fp8-acc', accBits: 10 });
  for (const k of ['y', 'dx', 'dw'] as const) {
    assert.ok(relErr(a24[k], f[k]) < 1e-5, `${k}: accBits 24 vs f32 GEMM ${relErr(a24[k], f[k])}`);
    const e10 = relErr(a10[k], f[k]);
    assert.ok(e10 > 1e-4 && e10 < 0.05, `${k}: accBits 10 vs f32 GEMM ${e10}`);
  }
  for (const t of [x, w, b]) t.zeroGrad();
});

test('gradcheck-style: FP8 gradients agree with the exact f64 gradients of the unquantized linear to E4M3 precision, and composed in a graph', () => {
  // Within E4M3's 3-bit mantissa (relative rounding <= 2^-4 per operand), products of sums of many terms average out:
  // the FP8 gradients sit within a few percent of the exact ones, and their direction is nearly identical.
  const Mx = 64, Kx = 256, Nx = 96;
  const xd = gaussian(Mx * Kx, 61), wd = gaussian(Nx * Kx, 62, 0.1), r = gaussian(Mx * Nx, 63);
  const loss = (lin: (x: T.Tensor, w: T.Tensor) => T.Tensor, dt: 'f32' | 'f64') => {
    const x = T.fromArray(dt === 'f32' ? Float32Array.from(xd) : Float64Array.from(xd), [Mx, Kx]).setRequiresGrad(true).keep();
    const w = T.fromArray(dt === 'f32' ? Float32Array.from(wd) : Float64Array.from(wd), [Nx, Kx]).setRequiresGrad(true).keep();
    const R = T.fromArray(dt === 'f32' ? Float32Array.from(r) : Float64Array.from(r), [Mx, Nx]);
    const l = T.tidy(() => { const v = T.sum(T.mul(lin(x, w).silu(), R)); v.backward(); return v.item(); });
    return { l, dx: x.grad!.toArray() as ArrayLike<number>, dw: w.grad!.toArray() as ArrayLike<number> };
  };
  const exact = loss((x, w) => T.linear(x, w), 'f64');
  const fp8 = loss((x, w) => fp8Linear(x, w), 'f32');
  const cos = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! ** 2; bb += b[i]! ** 2; }
    return ab / Math.sqrt(aa * bb);
  };
  const l2 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let d = 0, n = 0;
    for (let i = 0; i < a.length; i++) { d += (a[i]! - b[i]!) ** 2; n += b[i]! ** 2; }
    return Math.sqrt(d / n);
  };
  for (const k of ['dx', 'dw'] as const) {
    assert.ok(cos(fp8[k], exact[k]) > 0.998, `${k} cosine ${cos(fp8[k], exact[k])}`);
    assert.ok(l2(fp8[k], exact[k]) < 0.06, `${k} relative L2 error ${l2(fp8[k], exact[k])}`);
  }
  assert.ok(Math.abs(fp8.l - exact.l) / Math.abs(exact.l) < 0.05);
});

const tinyQwen = () => parseConfig({
  model_type: 'qwen2', vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000,
  tie_word_embeddings: false,
}, 'tiny-qwen2');
const tinyV3 = () => parseConfig({
  model_type: 'deepseek_v3', vocab_size: 61, hidden_size: 32, intermediate_size: 48, moe_intermediate_size: 16,
  num_hidden_layers: 2, first_k_dense_replace: 1, num_attention_heads: 4, num_key_value_heads: 4,
  q_lora_rank: 24, kv_lora_rank: 16, qk_nope_head_dim: 8, qk_rope_head_dim: 4, v_head_dim: 8,
  n_routed_experts: 2, num_experts_per_tok: 1, n_group: 1, topk_group: 1, n_shared_experts: 1,
  routed_scaling_factor: 1, scoring_func: 'sigmoid', topk_method: 'noaux_tc', norm_topk_prob: true,
  num_nextn_predict_layers: 1, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000,
}, 'tiny-v3');

test('enableFp8Training picks exactly the attention/MLP/expert/eh_proj Linears (not lm_head, embeddings, gate, norms)', () => {
  const q = buildModel(tinyQwen(), { seed: 1 });
  const attn = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((p) => `self_attn.${p}`);
  const mlp = ['gate_proj', 'up_proj', 'down_proj'].map((p) => `mlp.${p}`);
  const want = [0, 1].flatMap((l) => [...attn, ...mlp].map((p) => `model.layers.${l}.${p}`)).sort();
  assert.deepEqual(enableFp8Training(q).sort(), want);
  assert.deepEqual(fp8Layers(q).sort(), want);
  assert.deepEqual(disableFp8Training(q).sort(), want);
  assert.deepEqual(fp8Layers(q), []);

  const v = buildModel(tinyV3(), { seed: 1 });
  const mla = ['q_a_proj', 'q_b_proj', 'kv_a_proj_with_mqa', 'kv_b_proj', 'o_proj'].map((p) => `self_attn.${p}`);
  const swiglu = (pre: string) => ['gate_proj', 'up_proj', 'down_proj'].map((p) => `${pre}.${p}`);
  const wantV = [
    ...mla.map((p) => `model.layers.0.${p}`), ...swiglu('model.layers.0.mlp'),
    ...mla.map((p) => `model.layers.1.${p}`), ...swiglu('model.layers.1.mlp.experts.0'), ...swiglu('model.layers.1.mlp.experts.1'),
    ...swiglu('model.layers.1.mlp.shared_experts'),
    // The MTP module (layer index num_hidden_layers): its block's Linears and eh_proj; shared_head is a norm + lm_head.
    ...mla.map((p) => `model.layers.2.${p}`), ...swiglu('model.layers.2.mlp.experts.0'), ...swiglu('model.layers.2.mlp.experts.1'),
    ...swiglu('model.layers.2.mlp.shared_experts'), 'model.layers.2.eh_proj',
  ].sort();
  assert.deepEqual(enableFp8Training(v).sort(), wantV);
  const all = v.namedModules().map(([n]) => n);
  assert.ok(all.includes('lm_head') && all.includes('model.layers.1.mlp.gate') && all.includes('model.embed_tokens'));
  disableFp8Training(v);
});

test('a few FP8 training steps reduce the loss on a tiny qwen2 and deepseek_v3 (AdamW moments in BF16)', () => {
  for (const cfg of [tinyQwen(), tinyV3()]) {
    const model = buildModel(cfg, { seed: 7 });
    enableFp8Training(model);
    const trainer = new Trainer(model, { lr: () => 3e-3, precision: 'fp8' });
    const seq = 16, bsz = 2;
    const ids = new Int32Array(bsz * seq), labels = new Int32Array(bsz * seq);
    for (let i = 0; i < ids.length; i++) ids[i] = (i * 7 + 3) % 20;
    for (let i = 0; i < ids.length; i++) labels[i] = (i + 1) % seq === 0 ? -100 : ids[i + 1]!;
    const batch = { ids, labels, batch: bsz, seqLen: seq };
    const losses = Array.from({ length: 8 }, () => trainer.trainStep([batch]).lmLoss);
    assert.ok(losses[7]! < losses[0]! * 0.8, `${cfg.modelType}: losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    // The moments are BF16 values (low 16 bits of the f32 pattern zero).
    for (const m of [...trainer.optimizer.m, ...trainer.optimizer.v]) {
      const u = new Uint32Array((m.toArray() as Float32Array).buffer);
      assert.ok(u.every((b) => (b & 0xffff) === 0));
    }
  }
});

test('r1 pretrain --precision fp8 trains through the FP8 path; a bad value is a usage error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-fp8-cli-'));
  const orig = console.log;
  try {
    const tokDir = join(dir, 'tok');
    const vocabSize = writeTokenizerFolder(tokDir, ['12+34=46', '7-5=2', '3+3=6'], 270);
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({
      model_type: 'qwen2', vocab_size: vocabSize, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 1,
      num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: false,
    }));
    const { default: pretrain } = await import('../../src/cli/commands/pretrain.js');
    const lines: string[] = [];
    console.log = (x: string) => { lines.push(String(x)); };
    const base = ['--model', cfg, '--tokenizer', tokDir, '--task', 'arithmetic', '--problems', '50', '--steps', '3', '--batch', '2', '--seq', '32', '--lr', '1e-3', '--json'];
    assert.equal(await pretrain.run([...base, '--out', join(dir, 'a'), '--precision', 'fp8']), 0);
    const sum = JSON.parse(lines[0]!) as { precision: string; steps: number; finalLoss: number };
    assert.equal(sum.precision, 'fp8');
    assert.equal(sum.steps, 3);
    assert.ok(Number.isFinite(sum.finalLoss));
    await assert.rejects(() => pretrain.run([...base, '--out', join(dir, 'b'), '--precision', 'bf16']), /--precision must be f32 or fp8/);
    lines.length = 0;
    assert.equal(await pretrain.run(['--help']), 0);
    assert.match(lines.join('\n'), /--precision P/);
  } finally {
    console.log = orig;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("AdamW momentDtype 'bf16': moments stored as round-to-nearest-even BF16 of the f32 moments; the step's update unchanged", async () => {
  const { AdamW } = await import('../../src/train/optim.js');
  /** Independent RNE f32 -> bf16 -> f32 on the bit pattern. */
  const bf16 = (x: number): number => {
    const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
    const lsb = (u[0]! >>> 16) & 1;
    u[0] = ((u[0]! + 0x7fff + lsb) >>> 16) << 16;
    return f[0]!;
  };
  const n = 1000;
  const g0 = gaussian(n, 71, 1e-3), g1 = gaussian(n, 72, 1e-3);
  const mk = (dt: 'f32' | 'bf16') => {
    const p = T.fromArray(gaussian(n, 70), [n]).setRequiresGrad(true).keep();
    return { p, opt: new AdamW([p], { lr: 1e-2, momentDtype: dt }) };
  };
  const a = mk('f32'), b = mk('bf16');
  for (const { p, opt } of [a, b]) { p.grad = T.fromArray(Float32Array.from(g0), [n]).keep(); opt.stepUpdate(); }
  const ma = a.opt.m[0]!.toArray() as Float32Array, va = a.opt.v[0]!.toArray() as Float32Array;
  const mb = b.opt.m[0]!.toArray() as Float32Array, vb = b.opt.v[0]!.toArray() as Float32Array;
  let rounded = 0;
  for (let i = 0; i < n; i++) {
    assert.equal(mb[i], bf16(ma[i]!));
    assert.equal(vb[i], bf16(va[i]!));
    if (mb[i] !== ma[i]) rounded++;
  }
  assert.ok(rounded > n / 2, 'most f32 moments are not BF16 values');
  assert.deepEqual(b.p.toArray(), a.p.toArray()); // step 1 updates from the unrounded f32 moments in both
  // Step 2 starts from the stored BF16 moments: the parameters now differ slightly.
  for (const { p, opt } of [a, b]) { p.grad!.dispose(); p.grad = T.fromArray(Float32Array.from(g1), [n]).keep(); opt.stepUpdate(); }
  const pa = a.p.toArray() as Float32Array, pb = b.p.toArray() as Float32Array;
  assert.ok(pa.some((v, i) => v !== pb[i]) && relErr(pb, pa) < 1e-3);
});

test("Trainer precision 'f32' removes FP8 from a model; 'fp8' installs it", () => {
  const model = buildModel(tinyQwen(), { seed: 3 });
  const t8 = new Trainer(model, { lr: () => 1e-3, precision: 'fp8' });
  assert.equal(fp8Layers(model).length, 14);
  assert.equal(t8.optimizer.momentDtype, 'bf16');
  const t32 = new Trainer(model, { lr: () => 1e-3, precision: 'f32' });
  assert.equal(fp8Layers(model).length, 0);
  assert.equal(t32.optimizer.momentDtype, 'f32');
});

test('bf16Linear (the BF16 yardstick): forward and gradients = f64 products of RNE-BF16 operands', () => {
  const bf = (a: Float32Array) => {
    const f = Float32Array.from(a), u = new Uint32Array(f.buffer);
    for (let i = 0; i < u.length; i++) u[i] = ((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16) << 16;
    return f;
  };
  const { xd, wd, bd, gd, x, w, b } = setup(81);
  T.tidy(() => {
    const y = bf16Linear(x, w, b);
    const want = gemmABt(bf(xd), bf(wd), M, N, K);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) want[i * N + j]! += bd[j]!;
    assert.ok(relErr(y.detach().toArray() as Float32Array, want) < 2e-6);
    y.backward(T.fromArray(Float32Array.from(gd), [B, S, N]));
  });
  const gq = bf(gd), wq = bf(wd), xq = bf(xd);
  assert.ok(relErr(x.grad!.toArray() as Float32Array, gemmABt(gq, transpose(wq, N, K), M, K, N)) < 2e-6);
  assert.ok(relErr(w.grad!.toArray() as Float32Array, gemmABt(transpose(gq, M, N), transpose(xq, M, K), N, K, M)) < 2e-6);
  for (const t of [x, w, b]) t.zeroGrad();
});

test('quantize ablation: a GEMM switched off runs on f32 operands, the others stay FP8', () => {
  const { xd, wd, gd, x, w } = setup(91);
  const run = (quantize: { fprop?: boolean; dgrad?: boolean; wgrad?: boolean }) => {
    x.zeroGrad(); w.zeroGrad();
    const y = T.tidy(() => {
      const y = fp8Linear(x, w, null, { quantize });
      y.backward(T.fromArray(Float32Array.from(gd), [B, S, N]));
      return y.detach().toArray() as Float32Array;
    });
    return { y, dx: x.grad!.toArray() as Float32Array, dw: w.grad!.toArray() as Float32Array };
  };
  const exactY = gemmABt(xd, wd, M, N, K);
  const exactDx = gemmABt(gd, transpose(wd, N, K), M, K, N);
  const exactDw = gemmABt(transpose(gd, M, N), transpose(xd, M, K), N, K, M);
  const off = run({ fprop: false, dgrad: false, wgrad: false });
  assert.ok(relErr(off.y, exactY) < 2e-6 && relErr(off.dx, exactDx) < 2e-6 && relErr(off.dw, exactDw) < 2e-6);
  const noW = run({ wgrad: false });
  assert.ok(relErr(noW.dw, exactDw) < 2e-6, 'Wgrad off: f32 dY^T X');
  const fp8Dx = gemmABt(qdq(gd, M, N, 1, 128), transpose(qdq(wd, N, K, 128, 128), N, K), M, K, N);
  assert.ok(relErr(noW.dx, fp8Dx) < 2e-6, 'Dgrad still FP8');
  assert.ok(relErr(noW.y, exactY) > 1e-4, 'Fprop still FP8');
  const noF = run({ fprop: false });
  assert.ok(relErr(noF.y, exactY) < 2e-6 && relErr(noF.dx, fp8Dx) < 2e-6);
  // Wgrad's X is then the f32 activation (nothing FP8 was cached), per 128 x 1 tile.
  const dwQ = gemmABt(transpose(qdq(gd, M, N, 128, 1), M, N), transpose(qdq(xd, M, K, 128, 1), M, K), N, K, M);
  assert.ok(relErr(noF.dw, dwQ) < 2e-6);
  x.zeroGrad(); w.zeroGrad();
});
