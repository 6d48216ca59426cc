/**
 * Exact parameter accounting, computed from the list of Hugging Face parameter names and shapes.
 *
 * `parameterShapes(config)` is the single description of what tensors a model has: the model code and the file
 * loaders use it to build and to check checkpoints, and `countParameters` sums it, so the counts can never disagree
 * with the tensors. Names are the HF checkpoint names (DESIGN.md: "Hugging Face names are the wire format"):
 *  - qwen2 / llama: transformers' Qwen2ForCausalLM / LlamaForCausalLM.
 *  - deepseek_v3 / v2: DeepSeek's modeling_deepseek.py (DeepseekV3ForCausalLM) and the released checkpoint, whose
 *    MTP module is stored as decoder layer `model.layers.<num_hidden_layers + k>` with the extra tensors
 *    embed_tokens, enorm, hnorm, eh_proj, shared_head.norm, shared_head.head (DeepSeek-V3 README_WEIGHTS.md).
 *
 * Shapes are PyTorch's: a Linear weight is [out_features, in_features].
 */
import { isDeepseek, isMoeLayer, numMtpLayers, type DeepseekConfig, type ModelConfig } from './config.js';

/** 'mtpProjection' is MTP's eh_proj, the only MTP tensor with no counterpart in a decoder layer. */
export type Component = 'embedding' | 'attention' | 'denseMlp' | 'sharedExperts' | 'routedExperts' | 'gate' | 'norms' | 'head' | 'mtpProjection';
export const COMPONENTS: readonly Component[] = ['embedding', 'attention', 'denseMlp', 'sharedExperts', 'routedExperts', 'gate', 'norms', 'head', 'mtpProjection'];

export interface ParamEntry {
  /** HF tensor name, e.g. 'model.layers.3.self_attn.kv_a_proj_with_mqa.weight'. */
  name: string;
  shape: number[];
  /** What the tensor is part of; MTP tensors keep their kind and set `mtp`. All RMSNorm weights count as 'norms'. */
  component: Component;
  /** Decoder layer index (MTP modules: numHiddenLayers + k), or null for embedding / final norm / head. */
  layer: number | null;
  /** Routed expert index, or null. */
  expert: number | null;
  /** Part of a multi-token-prediction module. */
  mtp: boolean;
  /**
   * The tensor this one duplicates in meaning: V3's MTP embed_tokens and shared_head.head are stored in the checkpoint
   * but the paper shares them with the main model (§2.2, "shared embedding and output head").
   */
  tiedTo?: string;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

type Push = (name: string, shape: number[], component: Component, expert?: number | null) => void;

function denseMlp(push: Push, p: string, hidden: number, inter: number, bias: boolean, component: Component, expert: number | null = null): void {
  push(`${p}.gate_proj.weight`, [inter, hidden], component, expert);
  if (bias) push(`${p}.gate_proj.bias`, [inter], component, expert);
  push(`${p}.up_proj.weight`, [inter, hidden], component, expert);
  if (bias) push(`${p}.up_proj.bias`, [inter], component, expert);
  push(`${p}.down_proj.weight`, [hidden, inter], component, expert);
  if (bias) push(`${p}.down_proj.bias`, [hidden], component, expert);
}

function denseAttention(push: Push, p: string, c: ModelConfig): void {
  const h = c.hiddenSize, hd = c.headDim, q = c.numAttentionHeads * hd, kv = c.numKeyValueHeads * hd;
  // Qwen2Attention: bias on q/k/v only; LlamaAttention: attention_bias on q/k/v/o.
  const qkvBias = c.attentionBias;
  const oBias = c.modelType === 'llama' && c.attentionBias;
  push(`${p}.q_proj.weight`, [q, h], 'attention');
  if (qkvBias) push(`${p}.q_proj.bias`, [q], 'attention');
  push(`${p}.k_proj.weight`, [kv, h], 'attention');
  if (qkvBias) push(`${p}.k_proj.bias`, [kv], 'attention');
  push(`${p}.v_proj.weight`, [kv, h], 'attention');
  if (qkvBias) push(`${p}.v_proj.bias`, [kv], 'attention');
  push(`${p}.o_proj.weight`, [h, q], 'attention');
  if (oBias) push(`${p}.o_proj.bias`, [h], 'attention');
}

/** MLA (DeepSeek-V2 paper §2.1, V3 §2.1.1): low-rank q (optional) and the joint kv compression. */
function mlaAttention(push: Push, p: string, c: DeepseekConfig): void {
  const h = c.hiddenSize, nh = c.numAttentionHeads, qk = c.qkNopeHeadDim + c.qkRopeHeadDim;
  const b = c.attentionBias;
  if (c.qLoraRank === null) {
    push(`${p}.q_proj.weight`, [nh * qk, h], 'attention');
  } else {
    push(`${p}.q_a_proj.weight`, [c.qLoraRank, h], 'attention');
    if (b) push(`${p}.q_a_proj.bias`, [c.qLoraRank], 'attention');
    push(`${p}.q_a_layernorm.weight`, [c.qLoraRank], 'norms');
    push(`${p}.q_b_proj.weight`, [nh * qk, c.qLoraRank], 'attention');
  }
  // Compressed latent c_KV plus the decoupled RoPE key shared by all heads: kv_lora_rank + qk_rope_head_dim (576 in V3).
  push(`${p}.kv_a_proj_with_mqa.weight`, [c.kvLoraRank + c.qkRopeHeadDim, h], 'attention');
  if (b) push(`${p}.kv_a_proj_with_mqa.bias`, [c.kvLoraRank + c.qkRopeHeadDim], 'attention');
  push(`${p}.kv_a_layernorm.weight`, [c.kvLoraRank], 'norms');
  push(`${p}.kv_b_proj.weight`, [nh * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank], 'attention');
  push(`${p}.o_proj.weight`, [h, nh * c.vHeadDim], 'attention');
  if (b) push(`${p}.o_proj.bias`, [h], 'attention');
}

/** DeepSeekMoE (V3 §2.1.2): gate (+ the aux-loss-free correction bias for noaux_tc), routed experts, shared experts. */
function moe(push: Push, p: string, c: DeepseekConfig): void {
  const h = c.hiddenSize;
  push(`${p}.gate.weight`, [c.nRoutedExperts, h], 'gate');
  // modeling_deepseek.py MoEGate: e_score_correction_bias exists only for topk_method == 'noaux_tc'.
  if (c.topkMethod === 'noaux_tc') push(`${p}.gate.e_score_correction_bias`, [c.nRoutedExperts], 'gate');
  for (let e = 0; e < c.nRoutedExperts; e++) denseMlp(push, `${p}.experts.${e}`, h, c.moeIntermediateSize, false, 'routedExperts', e);
  // DeepseekMoE: the shared experts are one MLP of width moe_intermediate_size * n_shared_experts.
  if (c.nSharedExperts > 0) denseMlp(push, `${p}.shared_experts`, h, c.moeIntermediateSize * c.nSharedExperts, false, 'sharedExperts');
}

function decoderLayer(push: Push, i: number, c: ModelConfig): void {
  const p = `model.layers.${i}`;
  push(`${p}.input_layernorm.weight`, [c.hiddenSize], 'norms');
  if (isDeepseek(c)) mlaAttention(push, `${p}.self_attn`, c);
  else denseAttention(push, `${p}.self_attn`, c);
  push(`${p}.post_attention_layernorm.weight`, [c.hiddenSize], 'norms');
  if (isDeepseek(c) && isMoeLayer(c, i)) moe(push, `${p}.mlp`, c);
  else denseMlp(push, `${p}.mlp`, c.hiddenSize, c.intermediateSize, c.mlpBias, 'denseMlp');
}

/**
 * Every parameter of the model (HF names, shapes), in checkpoint order: embedding, layers, final norm, head,
 * then the MTP modules. A tied head (tie_word_embeddings) has no lm_head.weight entry.
 */
export function parameterShapes(c: ModelConfig): ParamEntry[] {
  const out: ParamEntry[] = [];
  let layer: number | null = null;
  let mtp = false;
  const push: Push = (name, shape, component, expert = null) => {
    out.push({ name, shape, component, layer, expert, mtp });
  };
  push('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize], 'embedding');
  for (let i = 0; i < c.numHiddenLayers; i++) {
    layer = i;
    decoderLayer(push, i, c);
  }
  layer = null;
  push('model.norm.weight', [c.hiddenSize], 'norms');
  if (!c.tieWordEmbeddings) push('lm_head.weight', [c.vocabSize, c.hiddenSize], 'head');
  // MTP (V3 §2.2): module k combines RMSNorm(h) and RMSNorm(emb(next token)) → eh_proj [H, 2H] → one block → head.
  mtp = true;
  for (let k = 0; k < numMtpLayers(c); k++) {
    const i = c.numHiddenLayers + k;
    layer = i;
    const p = `model.layers.${i}`;
    push(`${p}.embed_tokens.weight`, [c.vocabSize, c.hiddenSize], 'embedding');
    out[out.length - 1]!.tiedTo = 'model.embed_tokens.weight';
    push(`${p}.enorm.weight`, [c.hiddenSize], 'norms');
    push(`${p}.hnorm.weight`, [c.hiddenSize], 'norms');
    push(`${p}.eh_proj.weight`, [c.hiddenSize, 2 * c.hiddenSize], 'mtpProjection');
    decoderLayer(push, i, c);
    push(`${p}.shared_head.norm.weight`, [c.hiddenSize], 'norms');
    push(`${p}.shared_head.head.weight`, [c.vocabSize, c.hiddenSize], 'head');
    out[out.length - 1]!.tiedTo = c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  }
  return out;
}

export type ComponentCounts = Record<Component, number>;

export interface MtpCounts {
  /** As stored in the HF checkpoint, with its own embed_tokens and shared_head.head copies. */
  total: number;
  /** Without the embedding and head copies (they are shared with the main model in the paper). */
  unique: number;
  /** Per token per MTP depth, excluding the embedding lookup; the head matmul is counted. */
  active: number;
  components: ComponentCounts;
}

export interface ParamReport {
  modelType: string;
  source: string;
  /** Main model parameters, excluding MTP modules. */
  total: number;
  /**
   * Parameters a token passes through, per token, in the main model, EXCLUDING the embedding lookup (a row read,
   * no FLOPs) and including the lm_head matmul (with tied embeddings that matmul uses the embedding matrix).
   * Routed experts count num_experts_per_tok / n_routed_experts of their parameters; the gate counts in full.
   */
  active: number;
  /** `active` plus the embedding matrix (the convention that gives DeepSeek-V3's ~37.5B rather than ~36.6B). */
  activeWithEmbedding: number;
  embeddingLookupCounted: false;
  /** MTP parameters as stored (the difference between 671B and HF's 685B). */
  mtp: number;
  mtpDetail: MtpCounts;
  /** total + mtp: everything in an HF checkpoint. */
  totalWithMtp: number;
  components: ComponentCounts;
  activeComponents: ComponentCounts;
  denseLayers: number;
  moeLayers: number;
  /** Parameters of one routed expert (0 for dense models). */
  paramsPerExpert: number;
  /** Number of tensors in the checkpoint (MTP included). */
  tensors: number;
}

function zero(): ComponentCounts {
  return { embedding: 0, attention: 0, denseMlp: 0, sharedExperts: 0, routedExperts: 0, gate: 0, norms: 0, head: 0, mtpProjection: 0 };
}

/** Active fraction of a tensor per token: routed experts k/n, the rest 1 (the lookup is handled by the caller). */
function activeFraction(c: ModelConfig, e: ParamEntry): number {
  if (e.component === 'routedExperts' && isDeepseek(c)) return c.numExpertsPerTok / c.nRoutedExperts;
  return 1;
}

/** Count parameters by component, total and activated, from `parameterShapes(c)`. */
export function countParameters(c: ModelConfig, entries: ParamEntry[] = parameterShapes(c)): ParamReport {
  const comp = zero(), act = zero(), mtpComp = zero();
  let mtpActive = 0, mtpCopies = 0, tiedEmbedding = 0, perExpert = 0;
  for (const e of entries) {
    const n = numel(e.shape);
    if (e.mtp) {
      mtpComp[e.component] += n;
      if (e.tiedTo !== undefined && e.component === 'embedding') mtpCopies += n;
      else if (e.tiedTo !== undefined) { mtpCopies += n; mtpActive += n; }
      else mtpActive += n * activeFraction(c, e);
      continue;
    }
    comp[e.component] += n;
    if (e.component === 'embedding') {
      if (c.tieWordEmbeddings) tiedEmbedding = n;
      continue;
    }
    act[e.component] += n * activeFraction(c, e);
    if (e.component === 'routedExperts' && e.layer === firstMoeLayer(c) && e.expert === 0) perExpert += n;
  }
  // A tied head is the embedding matrix used as a matmul: it is active even though the lookup is not counted.
  act.head += tiedEmbedding;
  const sum = (x: ComponentCounts) => COMPONENTS.reduce((s, k) => s + x[k], 0);
  const total = sum(comp);
  const active = Math.round(sum(act));
  const mtpTotal = sum(mtpComp);
  let moeLayers = 0;
  for (let i = 0; i < c.numHiddenLayers; i++) if (isMoeLayer(c, i)) moeLayers++;
  return {
    modelType: c.modelType,
    source: c.source,
    total,
    active,
    // Tied: the embedding matrix is already counted once as the head; the same parameters are not counted twice.
    activeWithEmbedding: active + (c.tieWordEmbeddings ? 0 : comp.embedding),
    embeddingLookupCounted: false,
    mtp: mtpTotal,
    mtpDetail: { total: mtpTotal, unique: mtpTotal - mtpCopies, active: Math.round(mtpActive), components: mtpComp },
    totalWithMtp: total + mtpTotal,
    components: comp,
    activeComponents: roundAll(act),
    denseLayers: c.numHiddenLayers - moeLayers,
    moeLayers,
    paramsPerExpert: perExpert,
    tensors: entries.length,
  };
}

function firstMoeLayer(c: ModelConfig): number {
  for (let i = 0; i < c.numHiddenLayers; i++) if (isMoeLayer(c, i)) return i;
  return -1;
}

function roundAll(x: ComponentCounts): ComponentCounts {
  const r = zero();
  for (const k of COMPONENTS) r[k] = Math.round(x[k]);
  return r;
}

/** 671_026_419_200 → '671.03B'. */
export function formatCount(n: number): string {
  if (n >= 1e12) return `${(n / 1e12).toFixed(3)}T`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** Whether DeepSeek-V3's FP8 release stores this tensor as FP8 with block scales (see fp8ScaleShapes). */
export function isFp8Quantized(e: ParamEntry): boolean {
  if (e.shape.length !== 2 || !e.name.endsWith('.weight')) return false;
  return !(e.component === 'embedding' || e.component === 'head' || e.component === 'gate' || e.component === 'mtpProjection');
}

/**
 * The FP8 block-scale tensors of a checkpoint with `quantization_config.quant_method == 'fp8'` (DeepSeek-V3's
 * release): every 2-D Linear weight of the decoder layers is stored as float8_e4m3 with a float32
 * `<name>_scale_inv` of shape [ceil(out/128), ceil(in/128)]. Kept in higher precision (no scales): embeddings,
 * lm_head, MTP's shared_head.head and eh_proj, the router gate, norms and biases (V3 report §3.3.1 keeps embedding,
 * output head, MoE gating and normalization in BF16/FP32). Together with the parameters these give the 684,531,386,000
 * tensor elements the Hugging Face hub lists for deepseek-ai/DeepSeek-V3 ("685B").
 */
export function fp8ScaleShapes(c: ModelConfig, entries: ParamEntry[] = parameterShapes(c)): { name: string; shape: [number, number]; of: string }[] {
  const q = c.quantization;
  if (!q || q.quantMethod !== 'fp8') return [];
  const [bo, bi] = q.weightBlockSize ?? [128, 128];
  const out: { name: string; shape: [number, number]; of: string }[] = [];
  for (const e of entries) {
    if (!isFp8Quantized(e)) continue;
    out.push({ name: `${e.name}_scale_inv`, shape: [Math.ceil(e.shape[0]! / bo), Math.ceil(e.shape[1]! / bi)], of: e.name });
  }
  return out;
}
