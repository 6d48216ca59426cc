import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { loadConfig } from '../../src/models/config.js';
import { GPUS, gpuProfile, peakFlops } from '../../src/plan/hardware.js';
import { kvCachePerToken, planServe, planTrain, trainFlopsPerToken, V3_REPORT, V3_TRAIN_FLOPS_PER_TOKEN } from '../../src/plan/cost.js';
import { UsageError } from '../../src/errors.js';
import { repoPath } from '../util.js';

function realConfig(name: string) {
  const shared = repoPath('..', 'shared', 'models', name, 'config.json');
  return loadConfig(existsSync(shared) ? shared : repoPath('test', 'fixtures', 'models', name, 'config.json'));
}
const close = (a: number, b: number, rel: number, what: string) => assert.ok(Math.abs(a - b) <= rel * Math.abs(b), `${what}: ${a} vs ${b}`);

test('hardware: published H100/H800 figures, dense = half of with-sparsity', () => {
  const h100 = gpuProfile('h100'), h800 = gpuProfile('H800');
  assert.equal(peakFlops(h100, 'fp8'), 3958e12 / 2);
  assert.equal(peakFlops(h800, 'bf16'), 1979e12 / 2);
  assert.equal(h800.nvlinkGBs, 400);
  assert.equal(h100.nvlinkGBs, 900);
  assert.equal(h800.tflopsDense.fp64, 1);
  assert.equal(h100.tflopsDense.fp64, 34);
  assert.equal(h800.memoryGB, 80);
  assert.equal(h800.hbmTBs, 3.35);
  assert.equal(h800.nvlinkEffectiveGBs / h800.ibGBs, 3.2); // V3 §3.2.2
  for (const id of ['h200', 'a100', 'h20', 'b200']) assert.ok(GPUS[id], id);
  assert.throws(() => peakFlops(gpuProfile('a100'), 'fp8'), UsageError);
  assert.throws(() => gpuProfile('tpu'), /unknown GPU/);
});

test('V3 calibration: the cached FLOPs/token is the formula on the real config', () => {
  const v3 = realConfig('deepseek-v3');
  assert.equal(trainFlopsPerToken(v3, V3_REPORT.seqLen).total, V3_TRAIN_FLOPS_PER_TOKEN);
});

test('plan train reproduces DeepSeek-V3: 180K GPU-hours per trillion tokens, 2.664M pre-training, 3.7 days/T, $5.576M total', () => {
  const v3 = realConfig('deepseek-v3');
  const p = planTrain({ config: v3, gpu: gpuProfile('h800'), gpus: 2048, pp: 16, ep: 64, precision: 'fp8', tokens: 14.8e12 });
  close(p.gpuHours, V3_REPORT.pretrainGpuHours, 1e-9, 'gpuHours');
  close(p.gpuHours / 14.8, V3_REPORT.gpuHoursPerTrillionTokens, 1e-9, 'per trillion');
  close(p.wallClockDays / 14.8, 3.7, 0.02, 'days per trillion tokens');
  assert.ok(p.paramsTotal! > 670e9 && p.paramsTotal! < 672e9);
  assert.ok(p.paramsActive! > 36.5e9 && p.paramsActive! < 38e9);
  // 6 x activated + attention (+ MTP)
  assert.ok(p.flopsPerToken! > 6 * p.paramsActive!);
  // implied MFU: ~20% of the FP8 dense peak, ~40% of BF16
  assert.ok(p.mfu > 0.19 && p.mfu < 0.22, `mfu ${p.mfu}`);
  assert.ok(p.mfuBf16! > 0.38 && p.mfuBf16! < 0.44);
  // Total report: pre-training + context extension + post-training at $2/h.
  const total = p.gpuHours + V3_REPORT.contextExtensionGpuHours + V3_REPORT.postTrainingGpuHours;
  close(total, 2.788e6, 1e-9, 'total GPU-hours');
  close(total * 2, 5.576e6, 1e-9, 'total cost');
  // Memory: the V3 recipe (DualPipe 2 copies, EP64, ZeRO-1) fits in 80 GB.
  assert.ok(p.memory!.fits, `memory ${p.memoryPerGpuBytes}`);
  assert.equal(p.parallel!.parameterCopies, 2);
  assert.equal(p.parallel!.activationMicroBatches, 17);
  for (const k of ['paramsTotal', 'paramsActive', 'flopsPerToken', 'memoryPerGpuBytes', 'gpuHours', 'wallClockDays', 'costUsd', 'mfu']) {
    assert.ok(k in p && typeof (p as unknown as Record<string, unknown>)[k] === 'number', k);
  }
  // Half the GPUs: same GPU-hours, twice the days.
  const half = planTrain({ config: v3, gpu: gpuProfile('h800'), gpus: 1024, pp: 16, ep: 64, precision: 'fp8', tokens: 14.8e12 });
  close(half.wallClockDays, 2 * p.wallClockDays, 1e-12, 'days');
});

test('popular arithmetic: 50,000 GPUs x $1.35/h for a week is $11.34M, not $113M', () => {
  const p = planTrain({ gpu: gpuProfile('h100'), gpus: 50000, precision: 'bf16', weeks: 1, pricePerGpuHour: 1.35 });
  close(p.costUsd, 11.34e6, 1e-12, 'cost');
  assert.equal(p.gpuHours, 50000 * 24 * 7);
  assert.equal(p.tokens, null);
  assert.throws(() => planTrain({ gpu: gpuProfile('h100'), gpus: 8, precision: 'bf16', tokens: 1e9 }), /config is required/);
  assert.throws(() => planTrain({ config: realConfig('deepseek-v3'), gpu: gpuProfile('h800'), gpus: 2048, pp: 16, ep: 48, precision: 'fp8', tokens: 1e12 }), UsageError);
});

test('plan serve: MLA caches 576 values per token per layer; dense GQA; roofline is memory-bound at small batch', () => {
  const v3 = realConfig('deepseek-v3');
  const kv = kvCachePerToken(v3);
  assert.equal(kv.valuesPerTokenPerLayer, 576);
  assert.equal(kv.bytesPerToken, 576 * 61 * 2);
  assert.equal(kv.mhaValuesPerTokenPerLayer, 128 * (192 + 128));
  const p = planServe({ config: v3, gpu: gpuProfile('h800'), precision: 'fp8', context: 32768, batch: 64 });
  // FP8 weights ~ 671B bytes + BF16 embeddings/head + scales
  assert.ok(p.weightBytes > 671e9 && p.weightBytes < 700e9, `weights ${p.weightBytes}`);
  assert.equal(p.kvCache.totalBytes, 576 * 61 * 2 * 32768 * 64);
  assert.equal(p.gpusNeeded, Math.ceil((p.weightBytes + p.kvCache.totalBytes) / (80e9 * 0.9)));
  assert.equal(p.decode.bound, 'memory');
  assert.ok(p.decode.expertsTouchedPerLayer! > 200 && p.decode.expertsTouchedPerLayer! < 256);
  // Batch 1 reads far fewer experts: much less traffic per step.
  const one = planServe({ config: v3, gpu: gpuProfile('h800'), precision: 'fp8', context: 4096, batch: 1 });
  assert.ok(one.decode.bytesPerStep < p.decode.bytesPerStep / 5);
  const s1 = kvCachePerToken(realConfig('s1-qwen2.5-0.5b'));
  assert.equal(s1.valuesPerTokenPerLayer, 2 * 2 * 64);
  assert.throws(() => planServe({ config: v3, gpu: gpuProfile('h800'), precision: 'fp8', context: 0, batch: 1 }), UsageError);
});
