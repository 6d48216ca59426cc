/**
 * Training and serving planners: memory, FLOPs, GPU-hours, cost and decode rooflines from a config and a GPU.
 * Pure arithmetic over models/config and models/params; nothing here allocates a tensor.
 *
 * Calibration (DeepSeek-V3 Technical Report, Table 1 and §1): pre-training 14.8T tokens took 2,664K H800 GPU-hours
 * (180K per trillion tokens, 3.7 days per trillion tokens on 2,048 GPUs), context extension 119K and post-training
 * 5K, 2,788K in total, $5.576M at $2 per GPU-hour.
 */
import { UsageError } from '../errors.js';
import { isDeepseek, isMoeLayer, type ModelConfig } from '../models/config.js';
import { countParameters, isFp8Quantized, numel, parameterShapes, type ParamEntry, type ParamReport } from '../models/params.js';
import { GPUS, bytesOf, peakFlops, type GpuProfile, type Precision } from './hardware.js';
import { makeSchedule, type ScheduleName } from './schedules.js';
import { simulate } from './simulator.js';

export const V3_REPORT = {
  gpu: 'h800',
  gpus: 2048,
  pretrainTokens: 14.8e12,
  gpuHoursPerTrillionTokens: 180e3,
  pretrainGpuHours: 2664e3,
  contextExtensionGpuHours: 119e3,
  postTrainingGpuHours: 5e3,
  totalGpuHours: 2788e3,
  pricePerGpuHour: 2,
  totalCostUsd: 5.576e6,
  /** Pre-training sequence length (§4.2). */
  seqLen: 4096,
} as const;

/**
 * Training FLOPs per token of DeepSeek-V3 at seq 4096 with its MTP module, as `trainFlopsPerToken` computes it
 * from ../shared/models/deepseek-v3/config.json (a test recomputes it from the config, so this cached number cannot
 * drift from the formula). It turns the report's 180K GPU-hours per trillion tokens into the default MFU.
 */
export const V3_TRAIN_FLOPS_PER_TOKEN = 260_648_010_240;

export interface FlopsBreakdown {
  /** 6 × activated parameters (forward 2, backward 4 multiply-adds per parameter per token). */
  dense: number;
  /** Causal attention scores and values: 3 × 2 × heads × (d_qk + d_v) × seq/2 per layer (forward + backward). */
  attention: number;
  /** The MTP modules' share (V3 trains with depth-1 MTP, §2.2). */
  mtp: number;
  total: number;
}

/** Attention matmul FLOPs per token per layer, forward, for a causal sequence of length `seq` (average context seq/2). */
function attentionFwdFlopsPerLayer(c: ModelConfig, seq: number): number {
  const dqk = isDeepseek(c) ? c.qkNopeHeadDim + c.qkRopeHeadDim : c.headDim;
  const dv = isDeepseek(c) ? c.vHeadDim : c.headDim;
  return 2 * c.numAttentionHeads * (dqk + dv) * (seq / 2);
}

/** Training FLOPs per token: 6 × activated (embedding lookup excluded, head included) + attention (+ MTP). */
export function trainFlopsPerToken(c: ModelConfig, seq: number, opts: { mtp?: boolean; report?: ParamReport } = {}): FlopsBreakdown {
  const r = opts.report ?? countParameters(c);
  const withMtp = opts.mtp ?? true;
  const mtpLayers = withMtp && isDeepseek(c) ? c.numNextnPredictLayers : 0;
  const dense = 6 * r.active;
  const attention = 3 * attentionFwdFlopsPerLayer(c, seq) * c.numHiddenLayers;
  const mtp = mtpLayers > 0 ? 6 * r.mtpDetail.active + 3 * attentionFwdFlopsPerLayer(c, seq) * mtpLayers : 0;
  return { dense, attention, mtp, total: dense + attention + mtp };
}

/** MFU implied by a measured GPU-hours-per-token figure. */
export function impliedMfu(flopsPerToken: number, gpuHoursPerToken: number, gpu: GpuProfile, precision: Precision): number {
  return flopsPerToken / (gpuHoursPerToken * 3600 * peakFlops(gpu, precision));
}

/** The MFU DeepSeek-V3's report implies on H800 at a precision (dense peak): the planner's default. */
export function v3CalibratedMfu(h800: GpuProfile, precision: Precision): number {
  return impliedMfu(V3_TRAIN_FLOPS_PER_TOKEN, V3_REPORT.gpuHoursPerTrillionTokens / 1e12, h800, precision);
}

// ---------------------------------------------------------------------------------------------------------------
// Training memory per GPU

/**
 * Bytes per parameter in training. fp8 follows DeepSeek-V3 §3.3: BF16 weights for the FP8 GEMMs' casts, FP32 master
 * weights and FP32 gradients (accumulation), AdamW moments in BF16. bf16: the usual mixed precision (FP32 master,
 * FP32 moments). fp32: weights are the master copy.
 */
export function trainBytesPerParam(p: Precision): { weight: number; grad: number; master: number; moments: number } {
  switch (p) {
    case 'fp8': return { weight: 2, grad: 4, master: 4, moments: 4 };
    case 'bf16': return { weight: 2, grad: 4, master: 4, moments: 8 };
    case 'fp32':
    case 'fp64': return { weight: bytesOf(p), grad: bytesOf(p), master: 0, moments: 2 * bytesOf(p) };
  }
}

/**
 * Activation bytes stored for backward per token per layer.
 *
 * Counted tensor by tensor (flash-style attention: no seq² scores are stored). With `v3Recipe` (the fp8 plan)
 * DeepSeek-V3's memory savings apply (report §3.2.3 and §3.3.4): all RMSNorm outputs and the MLA up-projections
 * (q, k, v from q_b_proj / kv_b_proj) are recomputed in backward, the SwiGLU output is recomputed from its cached
 * inputs, and the MoE inputs and SwiGLU inputs are cached in FP8 (1 byte). Otherwise everything is kept at
 * `bytesPerValue`.
 */
export function activationBytesPerTokenPerLayer(c: ModelConfig, layer: number, bytesPerValue: number, v3Recipe: boolean): number {
  const h = c.hiddenSize;
  const keepNorm = v3Recipe ? 0 : 1;
  const fp8 = v3Recipe ? 1 : bytesPerValue;
  let values = 0; // at bytesPerValue
  let small = 0; // at fp8 width when v3Recipe
  if (isDeepseek(c)) {
    const nh = c.numAttentionHeads, dqk = c.qkNopeHeadDim + c.qkRopeHeadDim;
    values += h + keepNorm * h; // norm input (residual) and output
    if (c.qLoraRank !== null) values += c.qLoraRank + keepNorm * c.qLoraRank;
    values += c.kvLoraRank + c.qkRopeHeadDim + keepNorm * c.kvLoraRank;
    if (!v3Recipe) values += nh * dqk * 2 + nh * c.vHeadDim; // q, k, v (up-projection outputs)
    values += nh * c.vHeadDim; // attention output (o_proj input)
  } else {
    const q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim;
    values += 2 * h + q + 2 * kv + q;
  }
  values += h + keepNorm * h; // MLP norm input and output
  if (isDeepseek(c) && isMoeLayer(c, layer)) {
    const mi = c.moeIntermediateSize;
    values += 2 * c.nRoutedExperts; // router scores in FP32
    const copies = c.numExpertsPerTok + (c.nSharedExperts > 0 ? 1 : 0);
    const width = (e: number) => (e === c.numExpertsPerTok ? mi * c.nSharedExperts : mi);
    for (let e = 0; e < copies; e++) {
      const w = width(e);
      if (e < c.numExpertsPerTok) small += h; // dispatched copy of the token (shared experts reuse the norm output)
      small += 2 * w; // SwiGLU inputs (gate and up outputs)
      if (!v3Recipe) values += w; // SwiGLU output (down_proj input)
    }
  } else {
    small += 2 * c.intermediateSize;
    if (!v3Recipe) values += c.intermediateSize;
  }
  return values * bytesPerValue + small * fp8;
}

export interface TrainPlanInput {
  config?: ModelConfig;
  gpu: GpuProfile;
  gpus: number;
  precision: Precision;
  /** Tokens to train on (ignored when `weeks` is given). */
  tokens?: number;
  /** Fixed duration instead of a token budget. */
  weeks?: number;
  pp?: number;
  ep?: number;
  pricePerGpuHour?: number;
  /** Model FLOPs utilisation against the dense peak at `precision`; default: the V3-calibrated figure. */
  mfu?: number;
  seqLen?: number;
  /** Sequences per micro-batch per GPU. */
  microBatchSeqs?: number;
  /** Micro-batches per step per pipeline (for the schedule's in-flight activations). */
  microBatches?: number;
  schedule?: ScheduleName;
}

export interface TrainPlan {
  paramsTotal: number | null;
  paramsActive: number | null;
  flopsPerToken: number | null;
  flops: FlopsBreakdown | null;
  tokens: number | null;
  gpu: string;
  gpus: number;
  precision: Precision;
  peakFlopsPerGpu: number;
  mfu: number;
  /** The same MFU expressed against the BF16 dense peak (the convention most reports use). */
  mfuBf16: number | null;
  gpuHours: number;
  wallClockDays: number;
  costUsd: number;
  pricePerGpuHour: number;
  memoryPerGpuBytes: number | null;
  memory: {
    weights: number; gradients: number; optimizer: number; activations: number; pipelineCopies: number;
    total: number; capacity: number; fits: boolean;
  } | null;
  parallel: { pp: number; ep: number; dp: number; expertDp: number; schedule: ScheduleName; parameterCopies: number; activationMicroBatches: number } | null;
}

function assertPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`plan train: ${name} must be a positive integer, got ${v}`);
}

export function planTrain(inp: TrainPlanInput): TrainPlan {
  const price = inp.pricePerGpuHour ?? V3_REPORT.pricePerGpuHour;
  assertPositiveInt('gpus', inp.gpus);
  if (!(price >= 0)) throw new UsageError(`plan train: price must be >= 0, got ${price}`);
  const peak = peakFlops(inp.gpu, inp.precision);
  // Default: the utilisation DeepSeek-V3 achieved on H800 at this precision, applied to the chosen GPU.
  const mfu = inp.mfu ?? v3CalibratedMfu(GPUS['h800']!, inp.precision);
  if (!(mfu > 0 && mfu <= 1)) throw new UsageError(`plan train: mfu must be in (0, 1], got ${mfu}`);
  const bf16Peak = inp.gpu.tflopsDense.bf16 === null ? null : inp.gpu.tflopsDense.bf16 * 1e12;
  const seq = inp.seqLen ?? V3_REPORT.seqLen;
  const c = inp.config;
  const report = c ? countParameters(c) : null;
  const flops = c ? trainFlopsPerToken(c, seq, { report: report! }) : null;

  let gpuHours: number;
  let tokens: number | null;
  if (inp.weeks !== undefined) {
    if (!(inp.weeks > 0)) throw new UsageError(`plan train: weeks must be > 0, got ${inp.weeks}`);
    gpuHours = inp.gpus * 24 * 7 * inp.weeks;
    tokens = flops ? (gpuHours * 3600 * peak * mfu) / flops.total : null;
  } else {
    if (!flops) throw new UsageError('plan train: --config is required unless --weeks is given');
    if (inp.tokens === undefined || !(inp.tokens > 0)) throw new UsageError(`plan train: tokens must be > 0, got ${inp.tokens}`);
    tokens = inp.tokens;
    gpuHours = (tokens * flops.total) / (peak * mfu) / 3600;
  }

  let memory: TrainPlan['memory'] = null;
  let parallel: TrainPlan['parallel'] = null;
  if (c && report) {
    const pp = inp.pp ?? 1, ep = inp.ep ?? 1;
    assertPositiveInt('pp', pp);
    assertPositiveInt('ep', ep);
    if (inp.gpus % pp !== 0) throw new UsageError(`plan train: gpus (${inp.gpus}) must be a multiple of pp (${pp})`);
    const dp = inp.gpus / pp;
    if (dp % ep !== 0) throw new UsageError(`plan train: gpus/pp (${dp}) must be a multiple of ep (${ep})`);
    if (isDeepseek(c) && c.nRoutedExperts > 0 && c.nRoutedExperts % ep !== 0) throw new UsageError(`plan train: ep (${ep}) must divide n_routed_experts (${c.nRoutedExperts})`);
    const schedule: ScheduleName = inp.schedule ?? (pp >= 2 && pp % 2 === 0 ? 'dualpipe' : '1f1b');
    const micro = inp.microBatches ?? (schedule === 'dualpipe' ? 2 * pp : Math.max(pp, 1));
    const sim = pp >= 2 ? simulate(makeSchedule(schedule, pp, micro), { F: 1, B: 2, W: 1 }) : { parameterCopies: 1, activationMicroBatches: 1 };
    // DualPipeV runs PP stages on PP/2 devices: each device holds two stages.
    const stagesPerDevice = schedule === 'dualpipev' ? 2 : 1;
    const copies = sim.parameterCopies;
    const routed = report.components.routedExperts + report.mtpDetail.components.routedExperts;
    const all = report.total + report.mtpDetail.unique;
    const nonExpert = all - routed;
    // Parameters one device holds: its share of the stages (times the pipeline copies), experts split EP ways.
    const perStageShare = (n: number) => (n / pp) * stagesPerDevice;
    const paramsPerGpuOne = perStageShare(nonExpert) + perStageShare(routed) / ep;
    const paramsPerGpu = paramsPerGpuOne * (copies / stagesPerDevice);
    const b = trainBytesPerParam(inp.precision);
    const weights = paramsPerGpu * b.weight;
    const gradients = paramsPerGpu * b.grad;
    // ZeRO-1: master weights and moments sharded over the data-parallel group of each parameter.
    const expertDp = dp / ep;
    const optPerParam = b.master + b.moments;
    const optimizer = (copies / stagesPerDevice) * ((perStageShare(nonExpert) * optPerParam) / dp + ((perStageShare(routed) / ep) * optPerParam) / expertDp);
    const seqs = inp.microBatchSeqs ?? 1;
    const layersPerStage = (c.numHiddenLayers + (isDeepseek(c) ? c.numNextnPredictLayers : 0)) / (pp * stagesPerDevice);
    const actBytesPerValue = inp.precision === 'fp32' || inp.precision === 'fp64' ? bytesOf(inp.precision) : 2;
    let bytesPerToken = 0; // averaged over layers
    for (let i = 0; i < c.numHiddenLayers; i++) bytesPerToken += activationBytesPerTokenPerLayer(c, i, actBytesPerValue, inp.precision === 'fp8' && isDeepseek(c));
    bytesPerToken /= c.numHiddenLayers;
    const activations = sim.activationMicroBatches * seqs * seq * layersPerStage * bytesPerToken;
    const pipelineCopies = (paramsPerGpu - paramsPerGpuOne) * (b.weight + b.grad);
    const total = weights + gradients + optimizer + activations;
    const capacity = inp.gpu.memoryGB * 1e9;
    memory = { weights, gradients, optimizer, activations, pipelineCopies, total, capacity, fits: total <= capacity };
    parallel = { pp, ep, dp, expertDp, schedule, parameterCopies: copies, activationMicroBatches: sim.activationMicroBatches };
  }

  return {
    paramsTotal: report ? report.total : null,
    paramsActive: report ? report.active : null,
    flopsPerToken: flops ? flops.total : null,
    flops,
    tokens,
    gpu: inp.gpu.id,
    gpus: inp.gpus,
    precision: inp.precision,
    peakFlopsPerGpu: peak,
    mfu,
    mfuBf16: bf16Peak === null ? null : (mfu * peak) / bf16Peak,
    gpuHours,
    wallClockDays: gpuHours / inp.gpus / 24,
    costUsd: gpuHours * price,
    pricePerGpuHour: price,
    memoryPerGpuBytes: memory ? memory.total : null,
    memory,
    parallel,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Serving

export interface KvCache {
  /** Values cached per token per layer (MLA: kv_lora_rank + qk_rope_head_dim = 576 for V3). */
  valuesPerTokenPerLayer: number;
  /** What a standard multi-head attention with the same heads would cache: heads × (d_k + d_v). */
  mhaValuesPerTokenPerLayer: number;
  /** MHA of the model's width: 2 × hidden_size (heads × head_dim = hidden). */
  mhaSameWidthValuesPerTokenPerLayer: number;
  bytesPerToken: number;
  layers: number;
}

/** KV cache per token (bytes at `bytesPerValue`, BF16 by default), over all decoder layers. */
export function kvCachePerToken(c: ModelConfig, bytesPerValue = 2): KvCache {
  let v: number, mha: number;
  if (isDeepseek(c)) {
    // MLA caches the compressed latent c_KV and the shared decoupled RoPE key (V3 report §2.1.1, eq. 1-5).
    v = c.kvLoraRank + c.qkRopeHeadDim;
    mha = c.numAttentionHeads * (c.qkNopeHeadDim + c.qkRopeHeadDim + c.vHeadDim);
  } else {
    v = 2 * c.numKeyValueHeads * c.headDim;
    mha = 2 * c.numAttentionHeads * c.headDim;
  }
  return {
    valuesPerTokenPerLayer: v,
    mhaValuesPerTokenPerLayer: mha,
    mhaSameWidthValuesPerTokenPerLayer: 2 * c.hiddenSize,
    bytesPerToken: v * c.numHiddenLayers * bytesPerValue,
    layers: c.numHiddenLayers,
  };
}

/** Weight bytes for inference at a precision: fp8 stores the quantizable Linear weights in FP8 + FP32 128×128 block scales, the rest in BF16. */
export function inferenceWeightBytes(entries: ParamEntry[], p: Precision): number {
  let bytes = 0;
  for (const e of entries) {
    const n = numel(e.shape);
    if (p === 'fp8') {
      if (isFp8Quantized(e)) bytes += n + 4 * Math.ceil(e.shape[0]! / 128) * Math.ceil(e.shape[1]! / 128);
      else bytes += 2 * n;
    } else bytes += bytesOf(p) * n;
  }
  return bytes;
}

export interface ServePlanInput {
  config: ModelConfig;
  gpu: GpuProfile;
  precision: Precision;
  context: number;
  batch: number;
  /** Fraction of GPU memory usable for weights + KV cache (the rest: activations, workspace). */
  usableFraction?: number;
  /** Serve the MTP module too (speculative decoding). */
  mtp?: boolean;
  gpus?: number;
}

export interface ServePlan {
  weightBytes: number;
  kvCache: KvCache & { totalBytes: number; mlaVsMhaRatio: number };
  gpusNeeded: number;
  gpus: number;
  decode: {
    bytesPerStep: number; flopsPerStep: number; memoryTimeS: number; computeTimeS: number;
    bound: 'memory' | 'compute'; tokensPerSecond: number; tokensPerSecondPerSequence: number; expertsTouchedPerLayer: number | null;
  };
}

export function planServe(inp: ServePlanInput): ServePlan {
  const c = inp.config;
  if (!Number.isInteger(inp.context) || inp.context < 1) throw new UsageError(`plan serve: context must be a positive integer, got ${inp.context}`);
  if (!Number.isInteger(inp.batch) || inp.batch < 1) throw new UsageError(`plan serve: batch must be a positive integer, got ${inp.batch}`);
  const usable = inp.usableFraction ?? 0.9;
  const entries = parameterShapes(c).filter((e) => inp.mtp || !e.mtp);
  const report = countParameters(c);
  const weightBytes = inferenceWeightBytes(entries, inp.precision);
  const kv = kvCachePerToken(c, 2);
  const kvTotal = kv.bytesPerToken * inp.context * inp.batch;
  const capacity = inp.gpu.memoryGB * 1e9 * usable;
  const gpusNeeded = Math.ceil((weightBytes + kvTotal) / capacity);
  const gpus = inp.gpus ?? gpusNeeded;

  // One decode step: every sequence emits one token. Bytes: the weights the batch touches + its KV cache reads.
  let expertsTouched: number | null = null;
  let touchedBytes = weightBytes;
  if (isDeepseek(c) && c.nRoutedExperts > 0) {
    const E = c.nRoutedExperts, k = c.numExpertsPerTok;
    // Expected distinct experts chosen by B tokens picking k of E each (uniform routing): E·(1 − (1 − k/E)^B).
    expertsTouched = E * (1 - Math.pow(1 - k / E, inp.batch));
    const routedBytes = inferenceWeightBytes(entries.filter((e) => e.component === 'routedExperts'), inp.precision);
    touchedBytes = weightBytes - routedBytes * (1 - expertsTouched / E);
  }
  // The embedding lookup reads B rows, not the matrix.
  const embBytes = inferenceWeightBytes(entries.filter((e) => e.component === 'embedding' && !e.mtp), inp.precision);
  touchedBytes -= embBytes * (1 - Math.min(1, inp.batch / c.vocabSize));
  const bytesPerStep = touchedBytes + kvTotal;
  // FLOPs: 2 per active parameter per token + attention over the context. MLA decodes in the absorbed form:
  // scores over kv_lora_rank + rope dims, values over kv_lora_rank (V3 inference/model.py, attn_impl "absorb").
  const perHeadAttn = isDeepseek(c) ? 2 * (c.kvLoraRank + c.qkRopeHeadDim) + 2 * c.kvLoraRank : 4 * c.headDim;
  const flopsPerStep = inp.batch * (2 * report.active + c.numHiddenLayers * c.numAttentionHeads * perHeadAttn * inp.context);
  const memoryTimeS = bytesPerStep / (gpus * inp.gpu.hbmTBs * 1e12);
  const computeTimeS = flopsPerStep / (gpus * peakFlops(inp.gpu, inp.precision === 'fp8' ? 'fp8' : 'bf16'));
  const step = Math.max(memoryTimeS, computeTimeS);
  return {
    weightBytes,
    kvCache: { ...kv, totalBytes: kvTotal, mlaVsMhaRatio: kv.mhaValuesPerTokenPerLayer / kv.valuesPerTokenPerLayer },
    gpusNeeded,
    gpus,
    decode: {
      bytesPerStep, flopsPerStep, memoryTimeS, computeTimeS, bound: memoryTimeS >= computeTimeS ? 'memory' : 'compute',
      tokensPerSecond: inp.batch / step, tokensPerSecondPerSequence: 1 / step, expertsTouchedPerLayer: expertsTouched,
    },
  };
}
