/**
 * Expert-parallel load balancing (EPLB): place redundant copies of heavily loaded experts so the per-GPU load evens
 * out. The policies follow deepseek-ai/EPLB `eplb.py` (our own code, one MoE layer at a time):
 *  - hierarchical (when the expert groups divide evenly over the nodes): pack expert groups onto nodes with balanced
 *    load, replicate experts within each node, then pack the replicas onto that node's GPUs — keeping the
 *    group-limited routing's traffic inside the node the group landed on;
 *  - global: replicate over all experts and pack the replicas onto all GPUs, ignoring groups.
 * Replication: repeatedly give one more replica to the expert with the highest load per replica. Packing:
 * heaviest item first into the lightest pack that still has room (every pack receives the same number of items).
 */
import { UsageError } from '../errors.js';

export type EplbPolicy = 'hierarchical' | 'global';

export interface EplbInput {
  /** Load (tokens routed) of each logical expert, for one MoE layer. */
  loads: number[];
  /** Physical expert slots in total (logical experts + redundant copies); a multiple of `gpus`. */
  physicalExperts: number;
  /** Expert groups (n_group); used by the hierarchical policy. */
  groups: number;
  nodes: number;
  gpus: number;
  policy?: EplbPolicy;
}

export interface EplbResult {
  policy: EplbPolicy;
  /** Logical expert of each physical slot; slot s lives on GPU floor(s / slotsPerGpu). */
  physicalToLogical: number[];
  /** Replicas per logical expert. */
  replicas: number[];
  gpuLoads: number[];
  /** max / mean GPU load after balancing (1 = perfect). */
  imbalance: number;
  /** max / mean GPU load with no redundancy and experts laid out in order (expert e on GPU floor(e·gpus/E)). */
  imbalanceBefore: number;
  gpuLoadsBefore: number[];
}

/** Balanced packing of weighted items into `packs` packs of equal item count; returns [pack, slot-in-pack] per item. */
export function balancedPacking(weights: number[], packs: number): { pack: number[]; rank: number[] } {
  const n = weights.length;
  if (n % packs !== 0) throw new UsageError(`balancedPacking: ${n} items do not split evenly into ${packs} packs`);
  const per = n / packs;
  const pack = new Array<number>(n).fill(-1), rank = new Array<number>(n).fill(-1);
  const load = new Array<number>(packs).fill(0), count = new Array<number>(packs).fill(0);
  const order = weights.map((w, i) => [w, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [w, i] of order) {
    let best = -1;
    for (let p = 0; p < packs; p++) if (count[p]! < per && (best < 0 || load[p]! < load[best]!)) best = p;
    pack[i] = best;
    rank[i] = count[best]!;
    load[best]! += w;
    count[best]!++;
  }
  return { pack, rank };
}

/** Give `physical − logical` extra replicas, each to the expert with the highest load per replica. */
export function replicateExperts(loads: number[], physical: number): { phyToLog: number[]; count: number[] } {
  if (physical < loads.length) throw new UsageError(`replicateExperts: ${physical} physical slots for ${loads.length} experts`);
  const count = loads.map(() => 1);
  const phyToLog = loads.map((_, i) => i);
  for (let s = loads.length; s < physical; s++) {
    let best = 0;
    for (let e = 1; e < loads.length; e++) if (loads[e]! / count[e]! > loads[best]! / count[best]!) best = e;
    phyToLog.push(best);
    count[best]!++;
  }
  return { phyToLog, count };
}

const ratio = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return mean === 0 ? 1 : Math.max(...xs) / mean;
};

export function rebalanceExperts(inp: EplbInput): EplbResult {
  const E = inp.loads.length;
  const { gpus, nodes, groups } = inp;
  for (const [k, v] of Object.entries({ gpus, nodes, groups, physicalExperts: inp.physicalExperts })) {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`eplb: ${k} must be a positive integer, got ${v}`);
  }
  if (inp.loads.some((l) => !(l >= 0))) throw new UsageError('eplb: loads must be non-negative numbers');
  if (gpus % nodes !== 0) throw new UsageError(`eplb: gpus (${gpus}) must be a multiple of nodes (${nodes})`);
  if (inp.physicalExperts % gpus !== 0) throw new UsageError(`eplb: physical experts (${inp.physicalExperts}) must be a multiple of gpus (${gpus})`);
  if (inp.physicalExperts < E) throw new UsageError(`eplb: physical experts (${inp.physicalExperts}) < logical experts (${E})`);
  if (E % groups !== 0) throw new UsageError(`eplb: groups (${groups}) must divide the experts (${E})`);
  if (E % gpus !== 0) throw new UsageError(`eplb: gpus (${gpus}) must divide the experts (${E}) for the baseline layout`);
  const policy: EplbPolicy = inp.policy ?? (groups % nodes === 0 ? 'hierarchical' : 'global');
  const g = policy === 'hierarchical' ? groups : 1;
  const nd = policy === 'hierarchical' ? nodes : 1;
  if (policy === 'hierarchical' && groups % nodes !== 0) throw new UsageError(`eplb: hierarchical policy needs nodes (${nodes}) to divide groups (${groups})`);
  const groupSize = E / g;
  const perNodeLogical = E / nd;
  const perNodePhysical = inp.physicalExperts / nd;
  const gpusPerNode = gpus / nd;
  const slotsPerGpu = inp.physicalExperts / gpus;
  if (perNodePhysical < perNodeLogical) throw new UsageError('eplb: fewer physical slots per node than experts per node');

  // Step 1: groups → nodes.
  const groupLoads = Array.from({ length: g }, (_, j) => inp.loads.slice(j * groupSize, (j + 1) * groupSize).reduce((a, b) => a + b, 0));
  const gp = balancedPacking(groupLoads, nd);
  const nodeExperts: number[][] = Array.from({ length: nd }, () => []);
  const groupsPerNode = g / nd;
  const nodeGroupSlots: number[][] = Array.from({ length: nd }, () => new Array<number>(groupsPerNode).fill(-1));
  for (let j = 0; j < g; j++) nodeGroupSlots[gp.pack[j]!]![gp.rank[j]!] = j;
  for (let n = 0; n < nd; n++) for (const j of nodeGroupSlots[n]!) for (let e = 0; e < groupSize; e++) nodeExperts[n]!.push(j * groupSize + e);

  const physicalToLogical = new Array<number>(inp.physicalExperts).fill(-1);
  const replicas = new Array<number>(E).fill(0);
  const gpuLoads = new Array<number>(gpus).fill(0);
  for (let n = 0; n < nd; n++) {
    const experts = nodeExperts[n]!;
    // Step 2: replicate within the node.
    const rep = replicateExperts(experts.map((e) => inp.loads[e]!), perNodePhysical);
    rep.count.forEach((c, i) => (replicas[experts[i]!] = c));
    // Step 3: replicas → the node's GPUs.
    const replicaLoads = rep.phyToLog.map((i) => inp.loads[experts[i]!]! / rep.count[i]!);
    const pk = balancedPacking(replicaLoads, gpusPerNode);
    for (let s = 0; s < rep.phyToLog.length; s++) {
      const gpu = n * gpusPerNode + pk.pack[s]!;
      physicalToLogical[gpu * slotsPerGpu + pk.rank[s]!] = experts[rep.phyToLog[s]!]!;
      gpuLoads[gpu]! += replicaLoads[s]!;
    }
  }
  const gpuLoadsBefore = new Array<number>(gpus).fill(0);
  for (let e = 0; e < E; e++) gpuLoadsBefore[Math.floor((e * gpus) / E)]! += inp.loads[e]!;
  return { policy, physicalToLogical, replicas, gpuLoads, imbalance: ratio(gpuLoads), imbalanceBefore: ratio(gpuLoadsBefore), gpuLoadsBefore };
}
