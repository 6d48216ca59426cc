/**
 * Expert-parallel all-to-all: dispatch and combine volumes per GPU and per link, with DeepSeek-V3's node-limited
 * routing, the time on a GPU profile and the computation-to-communication ratio.
 *
 * Layout: `gpus` GPUs hold the routed experts in order (expert e on GPU floor(e·gpus/E)), `gpusPerNode` per node.
 * V3 trains with EP64 over 8 nodes (report §3.2.2), so each of its 8 expert groups (n_group = 8) is one node and
 * group-limited routing (topk_group = 4) is node-limited routing: a token reaches at most M = 4 nodes.
 *
 * Communication per token follows V3 §3.2.2: dispatch crosses IB once per distinct remote node (to the GPU with
 * the same in-node index), then NVLink forwards to each distinct target GPU on that node; the combine is the
 * reverse, reduced within the node before crossing IB. Dispatch is FP8 (1 byte per value plus one FP32 scale per
 * 128 values, §3.3.4), combine BF16 (2 bytes).
 *
 * A routing sample is a list of expert ids per token: from a real model's gate, or `syntheticRouting` (the V3 gate —
 * sigmoid scores, group-limited top-k — on random logits with a skewed expert popularity).
 */
import { UsageError } from '../errors.js';
import { isDeepseek, type DeepseekConfig, type ModelConfig } from '../models/config.js';
import { peakFlops, type GpuProfile } from './hardware.js';
// The engine's seeded PRNG (plain arithmetic: no tensor is allocated).
import { Rng } from '../tensor/random.js';

export interface RoutingSample {
  /** Experts per token (k). */
  k: number;
  /** tokens × k expert ids. */
  experts: Int32Array;
}

export interface EpLayout {
  gpus: number;
  gpusPerNode: number;
}

export function asDeepseek(c: ModelConfig, what: string): DeepseekConfig {
  if (!isDeepseek(c) || c.nRoutedExperts === 0) throw new UsageError(`${what}: ${c.source} has no routed experts (model_type ${c.modelType})`);
  return c;
}

/**
 * Route `tokens` synthetic tokens with the V3 gate: scores = sigmoid(logit), logit ~ Logistic(0,1) + skew·log-popularity
 * (Zipf over a random permutation of experts, exponent `skew`; 0 = uniform); keep the `topkGroup` groups with the
 * largest sum of their top-2 scores, then the top-k experts within them (V3 §2.1.2, inference/model.py Gate).
 */
export function syntheticRouting(c: ModelConfig, opts: { tokens: number; seed?: number; skew?: number; topkGroup?: number }): RoutingSample {
  const d = asDeepseek(c, 'syntheticRouting');
  const E = d.nRoutedExperts, k = d.numExpertsPerTok, G = d.nGroup;
  const M = opts.topkGroup ?? d.topkGroup;
  if (!Number.isInteger(M) || M < 1 || M > G) throw new UsageError(`syntheticRouting: node/group limit must be in 1..${G}, got ${M}`);
  if (M * (E / G) < k) throw new UsageError(`syntheticRouting: ${M} groups of ${E / G} experts cannot hold ${k} experts`);
  if (!Number.isInteger(opts.tokens) || opts.tokens < 1) throw new UsageError(`syntheticRouting: tokens must be a positive integer, got ${opts.tokens}`);
  const rng = new Rng(opts.seed ?? 0);
  const r = () => rng.next();
  const skew = opts.skew ?? 0;
  const perm = Array.from({ length: E }, (_, i) => i);
  for (let i = E - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [perm[i], perm[j]] = [perm[j]!, perm[i]!]; }
  const bias = new Float64Array(E);
  for (let i = 0; i < E; i++) bias[perm[i]!] = -skew * Math.log(i + 1);
  const out = new Int32Array(opts.tokens * k);
  const logit = new Float64Array(E);
  const gs = E / G;
  const groupScore = new Float64Array(G);
  const chosenGroup = new Uint8Array(G);
  const topV = new Float64Array(k), topI = new Int32Array(k);
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  for (let t = 0; t < opts.tokens; t++) {
    // Logistic noise (log(u/(1-u))) is as heavy-tailed as a gate's logits need and costs one log per expert.
    for (let e = 0; e < E; e++) { const u = Math.min(Math.max(r(), 1e-12), 1 - 1e-12); logit[e] = Math.log(u / (1 - u)) + bias[e]!; }
    // Group score: sum of the group's top-2 sigmoid scores (sigmoid is monotone, so pick on logits).
    for (let g = 0; g < G; g++) {
      let a = -Infinity, b = -Infinity;
      for (let e = g * gs; e < (g + 1) * gs; e++) { const v = logit[e]!; if (v > a) { b = a; a = v; } else if (v > b) b = v; }
      groupScore[g] = sig(a) + (gs >= 2 ? sig(b) : 0);
      chosenGroup[g] = 0;
    }
    for (let i = 0; i < M; i++) {
      let best = -1;
      for (let g = 0; g < G; g++) if (!chosenGroup[g] && (best < 0 || groupScore[g]! > groupScore[best]!)) best = g;
      chosenGroup[best] = 1;
    }
    // Top-k over the kept groups' experts (insertion into a k-long sorted list).
    let n = 0;
    for (let g = 0; g < G; g++) {
      if (!chosenGroup[g]) continue;
      for (let e = g * gs; e < (g + 1) * gs; e++) {
        const v = logit[e]!;
        if (n === k && v <= topV[k - 1]!) continue;
        let j = n < k ? n++ : k - 1;
        while (j > 0 && topV[j - 1]! < v) { topV[j] = topV[j - 1]!; topI[j] = topI[j - 1]!; j--; }
        topV[j] = v;
        topI[j] = e;
      }
    }
    for (let j = 0; j < k; j++) out[t * k + j] = topI[j]!;
  }
  return { k, experts: out };
}

export interface A2AResult {
  tokens: number;
  gpus: number;
  nodes: number;
  /** Mean distinct nodes (incl. the source's) a token's experts live on. */
  meanNodesPerToken: number;
  maxNodesPerToken: number;
  /** Per token, averaged: bytes a token puts on IB and on NVLink for dispatch + combine. */
  ibBytesPerToken: number;
  nvlinkBytesPerToken: number;
  /** Per GPU, bytes sent (dispatch + combine). */
  perGpu: { ibSendBytes: number; nvlinkSendBytes: number; tokensReceived: number }[];
  /** Busiest GPU's link times, seconds, for the whole sample; the two links run concurrently. */
  ibTimeS: number;
  nvlinkTimeS: number;
  commTimeS: number;
  /** Busiest GPU's routed-expert GEMM time (forward) at `efficiency` of the dense peak. */
  computeTimeS: number;
  /** computeTimeS / commTimeS: ≥ 1 means the all-to-all can hide behind the experts' compute. */
  computeToCommRatio: number;
  /** Max / mean tokens received per GPU (expert load imbalance as the GPUs see it). */
  loadImbalance: number;
  expertLoads: number[];
}

/**
 * All-to-all volumes for one MoE layer's forward over a routing sample. Tokens are spread evenly over the GPUs
 * (token t starts on GPU t mod gpus).
 */
export function allToAll(c: ModelConfig, layout: EpLayout, sample: RoutingSample, gpu: GpuProfile, opts: { efficiency?: number; computePrecision?: 'fp8' | 'bf16' } = {}): A2AResult {
  const d = asDeepseek(c, 'allToAll');
  const E = d.nRoutedExperts, h = d.hiddenSize;
  const { gpus, gpusPerNode } = layout;
  if (!Number.isInteger(gpus) || gpus < 1 || E % gpus !== 0) throw new UsageError(`allToAll: gpus (${gpus}) must divide n_routed_experts (${E})`);
  if (!Number.isInteger(gpusPerNode) || gpusPerNode < 1 || gpus % gpusPerNode !== 0) throw new UsageError(`allToAll: gpus (${gpus}) must be a multiple of gpus per node (${gpusPerNode})`);
  const k = sample.k;
  const tokens = sample.experts.length / k;
  if (!Number.isInteger(tokens) || tokens < 1) throw new UsageError('allToAll: routing sample length must be a positive multiple of k');
  const nodes = gpus / gpusPerNode;
  const perGpuExperts = E / gpus;
  const dispatchBytes = h + 4 * Math.ceil(h / 128);
  const combineBytes = 2 * h;
  const ib = new Float64Array(gpus), nv = new Float64Array(gpus), recv = new Float64Array(gpus);
  const loads = new Array<number>(E).fill(0);
  let nodeSum = 0, nodeMax = 0, ibTotal = 0, nvTotal = 0;
  const gpuSeen = new Set<number>(), nodeSeen = new Set<number>();
  for (let t = 0; t < tokens; t++) {
    const src = t % gpus;
    const srcNode = Math.floor(src / gpusPerNode);
    gpuSeen.clear();
    nodeSeen.clear();
    for (let j = 0; j < k; j++) {
      const e = sample.experts[t * k + j]!;
      if (e < 0 || e >= E) throw new UsageError(`allToAll: expert id ${e} out of range 0..${E - 1}`);
      loads[e]!++;
      const g = Math.floor(e / perGpuExperts);
      if (!gpuSeen.has(g)) { gpuSeen.add(g); recv[g]!++; }
      nodeSeen.add(Math.floor(g / gpusPerNode));
    }
    nodeSum += nodeSeen.size;
    nodeMax = Math.max(nodeMax, nodeSeen.size);
    for (const n of nodeSeen) {
      if (n === srcNode) continue;
      // IB: one copy per remote node, from the source GPU to its peer (same in-node index) on node n; the combine
      // comes back the same way after the in-node reduction (sent by that peer).
      const peer = n * gpusPerNode + (src % gpusPerNode);
      ib[src]! += dispatchBytes;
      ib[peer]! += combineBytes;
      ibTotal += dispatchBytes + combineBytes;
    }
    for (const g of gpuSeen) {
      const n = Math.floor(g / gpusPerNode);
      const landing = n === srcNode ? src : n * gpusPerNode + (src % gpusPerNode);
      if (g === landing) continue;
      // NVLink: forward from the landing GPU to the expert's GPU, and the combine back.
      nv[landing]! += dispatchBytes;
      nv[g]! += combineBytes;
      nvTotal += dispatchBytes + combineBytes;
    }
  }
  const maxIb = Math.max(...ib), maxNv = Math.max(...nv);
  const ibTimeS = maxIb / (gpu.ibGBs * 1e9);
  const nvlinkTimeS = maxNv / (gpu.nvlinkEffectiveGBs * 1e9);
  const commTimeS = Math.max(ibTimeS, nvlinkTimeS);
  // Expert GEMMs: each (token, expert) pair costs 2·3·h·moe_intermediate FLOPs forward (gate, up, down).
  const gpuPairs = new Float64Array(gpus);
  for (let e = 0; e < E; e++) gpuPairs[Math.floor(e / perGpuExperts)]! += loads[e]!;
  const eff = opts.efficiency ?? 1;
  const computeTimeS = (Math.max(...gpuPairs) * 6 * h * d.moeIntermediateSize) / (peakFlops(gpu, opts.computePrecision ?? 'fp8') * eff);
  const meanRecv = recv.reduce((a, b) => a + b, 0) / gpus;
  return {
    tokens, gpus, nodes,
    meanNodesPerToken: nodeSum / tokens,
    maxNodesPerToken: nodeMax,
    ibBytesPerToken: ibTotal / tokens,
    nvlinkBytesPerToken: nvTotal / tokens,
    perGpu: Array.from({ length: gpus }, (_, g) => ({ ibSendBytes: ib[g]!, nvlinkSendBytes: nv[g]!, tokensReceived: recv[g]! })),
    ibTimeS, nvlinkTimeS, commTimeS, computeTimeS,
    computeToCommRatio: computeTimeS / commTimeS,
    loadImbalance: meanRecv === 0 ? 1 : Math.max(...recv) / meanRecv,
    expertLoads: loads,
  };
}

export interface NodeLimitRow {
  maxNodes: number;
  meanNodesPerToken: number;
  /** k / meanNodesPerToken: experts each IB copy fans out to over NVLink. */
  expertsPerNode: number;
  /** NVLink (effective) / IB bandwidth: how many experts per node NVLink can feed in the time IB delivers one copy. */
  nvlinkToIbRatio: number;
  ibBytesPerToken: number;
  nvlinkBytesPerToken: number;
  ibTimeS: number;
  nvlinkTimeS: number;
  computeTimeS: number;
  computeToCommRatio: number;
  /** Which link bounds the all-to-all. */
  bound: 'ib' | 'nvlink';
}

/**
 * Sweep the node limit M = 1..n_group with one expert group per node: how IB volume, NVLink fan-out and the
 * computation-to-communication ratio change. V3's argument (§3.2.2): on H800 NVLink (~160 GB/s) is 3.2× IB (50 GB/s),
 * so one IB copy of a token can be forwarded to up to ~3.2 experts inside its node in the time IB takes — NVLink is
 * then hidden behind IB. With k = 8 experts, M = 4 nodes gives ~2 experts per node (< 3.2: IB-bound, NVLink hidden)
 * while capping IB traffic at 4 copies per token; unrestricted routing reaches ~5.3 nodes (+33% IB), and M ≤ 2 makes
 * NVLink the bottleneck (4+ experts per node > 3.2). On H100 (NVLink 900 GB/s) the NVLink leg is never the bound.
 */
export function nodeLimitSweep(c: ModelConfig, gpu: GpuProfile, opts: { tokensPerGpu: number; gpusPerNode?: number; seed?: number; skew?: number; efficiency?: number }): NodeLimitRow[] {
  const d = asDeepseek(c, 'nodeLimitSweep');
  const gpn = opts.gpusPerNode ?? gpu.gpusPerNode;
  const gpus = d.nGroup * gpn;
  const rows: NodeLimitRow[] = [];
  for (let M = 1; M <= d.nGroup; M++) {
    if (M * (d.nRoutedExperts / d.nGroup) < d.numExpertsPerTok) continue;
    const sample = syntheticRouting(c, { tokens: opts.tokensPerGpu * gpus, seed: opts.seed ?? 0, skew: opts.skew ?? 0, topkGroup: M });
    const r = allToAll(c, { gpus, gpusPerNode: gpn }, sample, gpu, { efficiency: opts.efficiency });
    rows.push({
      maxNodes: M, meanNodesPerToken: r.meanNodesPerToken, expertsPerNode: d.numExpertsPerTok / r.meanNodesPerToken,
      nvlinkToIbRatio: gpu.nvlinkEffectiveGBs / gpu.ibGBs, ibBytesPerToken: r.ibBytesPerToken, nvlinkBytesPerToken: r.nvlinkBytesPerToken,
      ibTimeS: r.ibTimeS, nvlinkTimeS: r.nvlinkTimeS, computeTimeS: r.computeTimeS, computeToCommRatio: r.computeToCommRatio,
      bound: r.ibTimeS >= r.nvlinkTimeS ? 'ib' : 'nvlink',
    });
  }
  return rows;
}
