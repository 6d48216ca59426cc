/**
 * Hugging Face `config.json` → one typed `ModelConfig`.
 *
 * Hugging Face names are the wire format (DESIGN.md): every field below is read from its HF name, with the
 * default that the reference configuration class uses when the key is absent:
 *  - qwen2:       transformers `models/qwen2/configuration_qwen2.py` (Qwen2Config)
 *  - llama:       transformers `models/llama/configuration_llama.py` (LlamaConfig)
 *  - deepseek_v3: DeepSeek's `configuration_deepseek.py` shipped with deepseek-ai/DeepSeek-V3 (it adds
 *                 num_nextn_predict_layers, topk_method, scoring_func, moe_layer_freq, seq_aux, aux_loss_alpha that
 *                 transformers' DeepseekV3Config omits); same defaults as transformers' DeepseekV3Config otherwise.
 *  - deepseek_v2: DeepSeek's `configuration_deepseek.py` for DeepSeek-V2 (softmax gating, topk_method 'gready'
 *                 [sic], n_group/topk_group None, q_lora_rank may be null → a direct q_proj).
 *
 * One deliberate exception to "HF defaults for every key": the structural sizes (vocab_size, hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads, and for DeepSeek the MLA head sizes) are required.
 * A config without hidden_size is broken, and silently building a 4096-wide model from a class default would
 * hide that. Everything behavioural (eps, rope theta, routing knobs, ids) takes the HF default.
 *
 * The raw JSON is kept (`raw`) so a model can be saved back byte-for-byte in meaning.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

export type ModelType = 'qwen2' | 'llama' | 'deepseek_v3' | 'deepseek_v2';
export const MODEL_TYPES: readonly ModelType[] = ['qwen2', 'llama', 'deepseek_v3', 'deepseek_v2'];

export type RopeScalingType = 'linear' | 'dynamic' | 'yarn' | 'llama3';

/**
 * rope_scaling (or transformers v5's rope_parameters). Fields that a type does not use are null.
 * Defaults follow transformers `modeling_rope_utils.py` and DeepSeek's `DeepseekV3YarnRotaryEmbedding`
 * (beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 0).
 */
export interface RopeScaling {
  type: RopeScalingType;
  factor: number;
  /** yarn / llama3 / dynamic: the context length the model was pre-trained with. */
  originalMaxPositionEmbeddings: number | null;
  /** yarn only. */
  betaFast: number | null;
  betaSlow: number | null;
  mscale: number | null;
  mscaleAllDim: number | null;
  /** yarn: optional explicit attention scaling (transformers' `attention_factor`). */
  attentionFactor: number | null;
  /** llama3 only. */
  lowFreqFactor: number | null;
  highFreqFactor: number | null;
}

/** DeepSeek-V3's FP8 checkpoint format (`quantization_config`), needed by the loaders for `weight_scale_inv`. */
export interface QuantizationConfig {
  quantMethod: string;
  fmt: string | null;
  activationScheme: string | null;
  weightBlockSize: [number, number] | null;
}

interface BaseConfig {
  modelType: ModelType;
  /** The file (or label) the config came from; every ConfigError names it. */
  source: string;
  /** The JSON exactly as read, for saving back. */
  raw: Record<string, unknown>;
  architectures: string[];
  vocabSize: number;
  hiddenSize: number;
  /** Dense MLP width (DeepSeek: the first_k_dense_replace dense layers). */
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** Per-head width of q/k/v for the dense family; for DeepSeek (MLA) = qkNopeHeadDim + qkRopeHeadDim. */
  headDim: number;
  hiddenAct: string;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  /**
   * Bias on attention projections. qwen2: q/k/v have a bias, o_proj none (Qwen2Attention hard-codes it; we honour an
   * explicit `attention_bias` key when a config carries one, default true). llama: q/k/v/o all follow it.
   * deepseek: q_a_proj (or q_proj is unbiased), kv_a_proj_with_mqa and o_proj follow it (modeling_deepseek.py).
   */
  attentionBias: boolean;
  /** llama's mlp_bias (gate/up/down); always false for qwen2 and deepseek. */
  mlpBias: boolean;
  initializerRange: number;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  torchDtype: string | null;
  quantization: QuantizationConfig | null;
}

export interface DenseConfig extends BaseConfig {
  modelType: 'qwen2' | 'llama';
  family: 'dense';
  /** qwen2 only (sliding window attention, off by default and off in every Qwen2.5 release). */
  useSlidingWindow: boolean;
  slidingWindow: number | null;
  maxWindowLayers: number | null;
}

export type ScoringFunc = 'sigmoid' | 'softmax';

export interface DeepseekConfig extends BaseConfig {
  modelType: 'deepseek_v3' | 'deepseek_v2';
  family: 'deepseek';
  /** null: no low-rank q path, a direct q_proj (DeepSeek-V2-Lite). */
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  /** 0 when the config says null (a dense DeepSeek-V2). */
  nRoutedExperts: number;
  nSharedExperts: number;
  numExpertsPerTok: number;
  moeIntermediateSize: number;
  firstKDenseReplace: number;
  moeLayerFreq: number;
  /** 1 when the config says null (no group-limited routing). */
  nGroup: number;
  topkGroup: number;
  routedScalingFactor: number;
  scoringFunc: ScoringFunc;
  topkMethod: string;
  normTopkProb: boolean;
  numNextnPredictLayers: number;
  auxLossAlpha: number;
  seqAux: boolean;
  epSize: number;
}

export type ModelConfig = DenseConfig | DeepseekConfig;

export function isDeepseek(c: ModelConfig): c is DeepseekConfig {
  return c.family === 'deepseek';
}

/**
 * Whether decoder layer `i` has a DeepSeekMoE MLP (else a dense MLP of intermediateSize). Same rule as
 * modeling_deepseek.py DeepseekV3DecoderLayer: n_routed_experts set, i >= first_k_dense_replace, i % moe_layer_freq == 0.
 * MTP layers (i >= numHiddenLayers) follow the same rule, which makes V3's MTP block an MoE block.
 */
export function isMoeLayer(c: ModelConfig, i: number): boolean {
  if (!isDeepseek(c)) return false;
  return c.nRoutedExperts > 0 && i >= c.firstKDenseReplace && i % c.moeLayerFreq === 0;
}

/** Number of MTP modules (0 for the dense family). */
export function numMtpLayers(c: ModelConfig): number {
  return isDeepseek(c) ? c.numNextnPredictLayers : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Field readers: each names the field and the file in its error.

type Json = Record<string, unknown>;

class Reader {
  /** `prefix` qualifies nested fields in errors, e.g. 'rope_scaling.'. */
  constructor(readonly json: Json, readonly source: string, readonly prefix = '') {}

  fail(field: string, what: string): never {
    throw new ConfigError(`${this.source}: field '${this.prefix}${field}' ${what}`);
  }

  has(field: string): boolean {
    return this.json[field] !== undefined;
  }

  private got(v: unknown): string {
    return JSON.stringify(v) ?? String(v);
  }

  /** An integer; `def === undefined` makes the field required. */
  int(field: string, def?: number, min = 1): number {
    const v = this.json[field];
    if (v === undefined || v === null) {
      if (def === undefined) this.fail(field, 'is required (an integer)');
      return def;
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, `must be an integer, got ${this.got(v)}`);
    if (v < min) this.fail(field, `must be >= ${min}, got ${v}`);
    return v;
  }

  /** An integer or null (null/absent distinguished: absent takes `def`). */
  intOrNull(field: string, def: number | null, min = 1): number | null {
    const v = this.json[field];
    if (v === undefined) return def;
    if (v === null) return null;
    return this.int(field, undefined, min);
  }

  num(field: string, def?: number, opts: { positive?: boolean; min?: number } = {}): number {
    const v = this.json[field];
    if (v === undefined || v === null) {
      if (def === undefined) this.fail(field, 'is required (a number)');
      return def;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, `must be a finite number, got ${this.got(v)}`);
    if (opts.positive && !(v > 0)) this.fail(field, `must be > 0, got ${v}`);
    if (opts.min !== undefined && v < opts.min) this.fail(field, `must be >= ${opts.min}, got ${v}`);
    return v;
  }

  bool(field: string, def: boolean): boolean {
    const v = this.json[field];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${this.got(v)}`);
    return v;
  }

  str(field: string, def?: string): string {
    const v = this.json[field];
    if (v === undefined || v === null) {
      if (def === undefined) this.fail(field, 'is required (a string)');
      return def;
    }
    if (typeof v !== 'string' || v === '') this.fail(field, `must be a non-empty string, got ${this.got(v)}`);
    return v;
  }

  strOrNull(field: string): string | null {
    const v = this.json[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${this.got(v)}`);
    return v;
  }

  tokenId(field: string, def: number | null): number | null {
    const v = this.json[field];
    if (v === undefined) return def;
    if (v === null) return null;
    return this.int(field, undefined, 0);
  }

  tokenIds(field: string, def: number | number[] | null): number | number[] | null {
    const v = this.json[field];
    if (v === undefined) return def;
    if (v === null) return null;
    if (Array.isArray(v)) {
      return v.map((x, i) => {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) this.fail(`${field}[${i}]`, `must be a non-negative integer, got ${this.got(x)}`);
        return x;
      });
    }
    return this.int(field, undefined, 0);
  }

  oneOf<T extends string>(field: string, allowed: readonly T[], def: T): T {
    const v = this.str(field, def);
    if (!(allowed as readonly string[]).includes(v)) this.fail(field, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got '${v}'`);
    return v as T;
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** HF defaults per model type for the behavioural fields (see the file header for the source classes). */
const DEFAULTS = {
  qwen2: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false, bos: null, eos: null, slidingWindow: 4096, maxWindowLayers: 28 },
  llama: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false, bos: 1, eos: 2 },
  deepseek_v3: {
    maxPositionEmbeddings: 4096, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false, bos: 0, eos: 1,
    qLoraRank: 1536, nRoutedExperts: 256, nSharedExperts: 1, numExpertsPerTok: 8, nGroup: 8, topkGroup: 4,
    routedScalingFactor: 2.5, scoringFunc: 'sigmoid', topkMethod: 'noaux_tc', normTopkProb: true, firstKDenseReplace: 3,
    numNextnPredictLayers: 1,
  },
  deepseek_v2: {
    maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false, bos: 100000, eos: 100001,
    qLoraRank: 1536, nRoutedExperts: null, nSharedExperts: null, numExpertsPerTok: null, nGroup: null, topkGroup: null,
    routedScalingFactor: 1.0, scoringFunc: 'softmax', topkMethod: 'gready', normTopkProb: false, firstKDenseReplace: 0,
    numNextnPredictLayers: 0,
  },
} as const;

function parseRopeScaling(r: Reader, maxPos: number, yarnDefaultOmp: number | null): { theta: number | null; scaling: RopeScaling | null } {
  // transformers v5 moved rope_theta into `rope_parameters`; v4 files have `rope_scaling` (+ top-level rope_theta).
  const key = r.json['rope_scaling'] !== undefined && r.json['rope_scaling'] !== null ? 'rope_scaling' : 'rope_parameters';
  const v = r.json[key];
  if (v === undefined || v === null) return { theta: null, scaling: null };
  if (typeof v !== 'object' || Array.isArray(v)) r.fail(key, `must be an object or null, got ${JSON.stringify(v)}`);
  const sub: Reader = new Reader(v as Json, r.source, `${key}.`);
  const numOrNull = (name: string): number | null => (sub.json[name] === undefined || sub.json[name] === null ? null : sub.num(name));
  const theta = sub.has('rope_theta') ? sub.num('rope_theta', undefined, { positive: true }) : null;
  const typeField = sub.json['type'] !== undefined ? 'type' : 'rope_type';
  const typeRaw = sub.json[typeField];
  if (typeRaw === undefined || typeRaw === null || typeRaw === 'default') return { theta, scaling: null };
  const types: readonly RopeScalingType[] = ['linear', 'dynamic', 'yarn', 'llama3'];
  if (typeof typeRaw !== 'string' || !(types as readonly string[]).includes(typeRaw)) {
    sub.fail(typeField, `must be one of 'default', ${types.map((t) => `'${t}'`).join(', ')}, got ${JSON.stringify(typeRaw)}`);
  }
  const type = typeRaw as RopeScalingType;
  const s: RopeScaling = {
    type, factor: sub.num('factor', undefined, { positive: true }), originalMaxPositionEmbeddings: null, betaFast: null,
    betaSlow: null, mscale: null, mscaleAllDim: null, attentionFactor: null, lowFreqFactor: null, highFreqFactor: null,
  };
  if (type === 'yarn') {
    // DeepSeek's DeepseekV3YarnRotaryEmbedding defaults original_max_position_embeddings to 4096; transformers'
    // _compute_yarn_parameters falls back to max_position_embeddings / factor.
    s.originalMaxPositionEmbeddings = sub.int('original_max_position_embeddings', yarnDefaultOmp ?? Math.max(1, Math.round(maxPos / s.factor)));
    s.betaFast = sub.num('beta_fast', 32, { positive: true });
    s.betaSlow = sub.num('beta_slow', 1, { positive: true });
    s.mscale = sub.num('mscale', 1);
    s.mscaleAllDim = sub.num('mscale_all_dim', 0);
    s.attentionFactor = numOrNull('attention_factor');
    if (s.betaFast <= s.betaSlow) sub.fail('beta_fast', `must be > beta_slow (${s.betaSlow}), got ${s.betaFast}`);
  } else if (type === 'llama3') {
    // transformers' _compute_llama3_parameters reads all four keys without defaults.
    s.originalMaxPositionEmbeddings = sub.int('original_max_position_embeddings');
    s.lowFreqFactor = sub.num('low_freq_factor', undefined, { positive: true });
    s.highFreqFactor = sub.num('high_freq_factor', undefined, { positive: true });
    if (s.highFreqFactor <= s.lowFreqFactor) sub.fail('high_freq_factor', `must be > low_freq_factor (${s.lowFreqFactor}), got ${s.highFreqFactor}`);
  } else if (type === 'dynamic') {
    s.originalMaxPositionEmbeddings = sub.int('original_max_position_embeddings', maxPos);
  }
  return { theta, scaling: s };
}

function parseQuantization(r: Reader): QuantizationConfig | null {
  const v = r.json['quantization_config'];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) r.fail('quantization_config', 'must be an object');
  const q = v as Json;
  const method = q['quant_method'];
  if (typeof method !== 'string') r.fail('quantization_config.quant_method', `must be a string, got ${JSON.stringify(method)}`);
  let block: [number, number] | null = null;
  const b = q['weight_block_size'];
  if (b !== undefined && b !== null) {
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => Number.isInteger(x) && (x as number) > 0)) {
      r.fail('quantization_config.weight_block_size', `must be two positive integers, got ${JSON.stringify(b)}`);
    }
    block = [b[0] as number, b[1] as number];
  }
  const s = (k: string) => (typeof q[k] === 'string' ? (q[k] as string) : null);
  return { quantMethod: method, fmt: s('fmt'), activationScheme: s('activation_scheme'), weightBlockSize: block };
}

/**
 * Parse a config.json object. `source` names the file in errors.
 * Throws ConfigError for a missing required field, a wrong type, an unknown model_type or impossible sizes.
 */
export function parseConfig(json: unknown, source: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`${source}: a config must be a JSON object`);
  }
  const r: Reader = new Reader(json as Json, source);
  const mt = r.json['model_type'];
  if (mt === undefined) r.fail('model_type', `is required (one of ${MODEL_TYPES.join(', ')})`);
  if (typeof mt !== 'string' || !(MODEL_TYPES as readonly string[]).includes(mt)) {
    r.fail('model_type', `must be one of ${MODEL_TYPES.map((t) => `'${t}'`).join(', ')}, got ${JSON.stringify(mt)}`);
  }
  const modelType = mt as ModelType;
  const d = DEFAULTS[modelType];

  const archRaw = r.json['architectures'];
  let architectures: string[] = [];
  if (archRaw !== undefined && archRaw !== null) {
    if (!Array.isArray(archRaw) || !archRaw.every((a) => typeof a === 'string')) r.fail('architectures', 'must be a list of strings');
    architectures = archRaw as string[];
  }

  const vocabSize = r.int('vocab_size');
  const hiddenSize = r.int('hidden_size');
  const numHiddenLayers = r.int('num_hidden_layers');
  const numAttentionHeads = r.int('num_attention_heads');
  // HF: num_key_value_heads None → num_attention_heads (MHA).
  const numKeyValueHeads = r.int('num_key_value_heads', numAttentionHeads);
  if (numKeyValueHeads > numAttentionHeads || numAttentionHeads % numKeyValueHeads !== 0) {
    r.fail('num_key_value_heads', `(${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`);
  }
  const maxPositionEmbeddings = r.int('max_position_embeddings', d.maxPositionEmbeddings);
  const rmsNormEps = r.num('rms_norm_eps', d.rmsNormEps, { positive: true });
  const rope = parseRopeScaling(r, maxPositionEmbeddings, modelType === 'deepseek_v3' || modelType === 'deepseek_v2' ? 4096 : null);
  const ropeTheta = r.has('rope_theta') ? r.num('rope_theta', undefined, { positive: true }) : (rope.theta ?? d.ropeTheta);
  const hiddenAct = r.str('hidden_act', 'silu');
  const base = {
    source,
    raw: json as Record<string, unknown>,
    architectures,
    vocabSize,
    hiddenSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    hiddenAct,
    maxPositionEmbeddings,
    rmsNormEps,
    ropeTheta,
    ropeScaling: rope.scaling,
    tieWordEmbeddings: r.bool('tie_word_embeddings', d.tieWordEmbeddings),
    initializerRange: r.num('initializer_range', 0.02, { min: 0 }),
    bosTokenId: r.tokenId('bos_token_id', d.bos),
    eosTokenId: r.tokenIds('eos_token_id', d.eos),
    padTokenId: r.tokenId('pad_token_id', null),
    torchDtype: r.strOrNull('torch_dtype'),
    quantization: parseQuantization(r),
  };

  if (modelType === 'qwen2' || modelType === 'llama') {
    const intermediateSize = r.int('intermediate_size');
    // head_dim: LlamaConfig accepts an explicit head_dim (else hidden/heads); recent Qwen2 code reads it the same way.
    let headDim: number;
    if (r.has('head_dim') && r.json['head_dim'] !== null) headDim = r.int('head_dim');
    else {
      if (hiddenSize % numAttentionHeads !== 0) r.fail('num_attention_heads', `(${numAttentionHeads}) must divide hidden_size (${hiddenSize})`);
      headDim = hiddenSize / numAttentionHeads;
    }
    // RoPE rotates pairs: an odd head dim has no rotary layout.
    if (headDim % 2 !== 0) r.fail(r.has('head_dim') ? 'head_dim' : 'num_attention_heads', `gives an odd head dim (${headDim}); rotary embeddings need an even one`);
    const cfg: DenseConfig = {
      ...base,
      modelType,
      family: 'dense',
      intermediateSize,
      headDim,
      attentionBias: r.bool('attention_bias', modelType === 'qwen2'),
      mlpBias: modelType === 'llama' ? r.bool('mlp_bias', false) : false,
      useSlidingWindow: modelType === 'qwen2' ? r.bool('use_sliding_window', false) : false,
      slidingWindow: modelType === 'qwen2' ? r.intOrNull('sliding_window', DEFAULTS.qwen2.slidingWindow) : null,
      maxWindowLayers: modelType === 'qwen2' ? r.intOrNull('max_window_layers', DEFAULTS.qwen2.maxWindowLayers, 0) : null,
    };
    return cfg;
  }

  // DeepSeek V2/V3
  const dd = modelType === 'deepseek_v3' ? DEFAULTS.deepseek_v3 : DEFAULTS.deepseek_v2;
  const intermediateSize = r.int('intermediate_size');
  const qLoraRank = r.intOrNull('q_lora_rank', dd.qLoraRank);
  const kvLoraRank = r.int('kv_lora_rank');
  const qkNopeHeadDim = r.int('qk_nope_head_dim');
  const qkRopeHeadDim = r.int('qk_rope_head_dim');
  if (qkRopeHeadDim % 2 !== 0) r.fail('qk_rope_head_dim', `must be even (rotary pairs), got ${qkRopeHeadDim}`);
  const vHeadDim = r.int('v_head_dim');
  const nRoutedRaw = r.intOrNull('n_routed_experts', dd.nRoutedExperts);
  const nRoutedExperts = nRoutedRaw ?? 0;
  const nSharedExperts = r.intOrNull('n_shared_experts', dd.nSharedExperts, 0) ?? 0;
  let numExpertsPerTok = 0;
  let moeIntermediateSize = 0;
  let nGroup = 1;
  let topkGroup = 1;
  if (nRoutedExperts > 0) {
    const k = r.intOrNull('num_experts_per_tok', dd.numExpertsPerTok);
    if (k === null) r.fail('num_experts_per_tok', 'is required when n_routed_experts is set');
    numExpertsPerTok = k;
    if (numExpertsPerTok > nRoutedExperts) r.fail('num_experts_per_tok', `(${numExpertsPerTok}) must be <= n_routed_experts (${nRoutedExperts})`);
    moeIntermediateSize = r.int('moe_intermediate_size');
    nGroup = r.intOrNull('n_group', dd.nGroup) ?? 1;
    topkGroup = r.intOrNull('topk_group', dd.topkGroup) ?? 1;
    if (nRoutedExperts % nGroup !== 0) r.fail('n_group', `(${nGroup}) must divide n_routed_experts (${nRoutedExperts})`);
    if (topkGroup > nGroup) r.fail('topk_group', `(${topkGroup}) must be <= n_group (${nGroup})`);
    // Group-limited routing must leave at least k experts to choose from.
    if (topkGroup * (nRoutedExperts / nGroup) < numExpertsPerTok) {
      r.fail('topk_group', `(${topkGroup}) groups of ${nRoutedExperts / nGroup} experts cannot hold num_experts_per_tok (${numExpertsPerTok}) experts`);
    }
  } else if (nSharedExperts > 0) {
    moeIntermediateSize = r.int('moe_intermediate_size');
  }
  const scoringFunc = r.oneOf<ScoringFunc>('scoring_func', ['sigmoid', 'softmax'], dd.scoringFunc);
  const firstKDenseReplace = r.int('first_k_dense_replace', dd.firstKDenseReplace, 0);
  const moeLayerFreq = r.int('moe_layer_freq', 1);
  const numNextnPredictLayers = r.int('num_nextn_predict_layers', dd.numNextnPredictLayers, 0);
  const cfg: DeepseekConfig = {
    ...base,
    modelType,
    family: 'deepseek',
    intermediateSize,
    headDim: qkNopeHeadDim + qkRopeHeadDim,
    attentionBias: r.bool('attention_bias', false),
    mlpBias: false,
    qLoraRank,
    kvLoraRank,
    qkNopeHeadDim,
    qkRopeHeadDim,
    vHeadDim,
    nRoutedExperts,
    nSharedExperts,
    numExpertsPerTok,
    moeIntermediateSize,
    firstKDenseReplace,
    moeLayerFreq,
    nGroup,
    topkGroup,
    routedScalingFactor: r.num('routed_scaling_factor', dd.routedScalingFactor, { positive: true }),
    scoringFunc,
    topkMethod: r.str('topk_method', dd.topkMethod),
    normTopkProb: r.bool('norm_topk_prob', dd.normTopkProb),
    numNextnPredictLayers,
    auxLossAlpha: r.num('aux_loss_alpha', 0.001, { min: 0 }),
    seqAux: r.bool('seq_aux', true),
    epSize: r.int('ep_size', 1),
  };
  return cfg;
}

/** Read and parse a config.json file (errors name the path). */
export function loadConfig(path: string): ModelConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, path);
}

/** The config as HF JSON for saving back: the raw object (unknown keys preserved). */
export function configToJson(c: ModelConfig): Record<string, unknown> {
  return structuredClone(c.raw);
}
