import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { loadConfig } from '../../src/models/config.js';
import { gpuProfile } from '../../src/plan/hardware.js';
import { allToAll, nodeLimitSweep, syntheticRouting } from '../../src/plan/expert-parallel.js';
import { balancedPacking, rebalanceExperts, replicateExperts } from '../../src/plan/eplb.js';
import { UsageError } from '../../src/errors.js';
import { repoPath } from '../util.js';

function realConfig(name: string) {
  const shared = repoPath('..', 'shared', 'models', name, 'config.json');
  return loadConfig(existsSync(shared) ? shared : repoPath('test', 'fixtures', 'models', name, 'config.json'));
}

test('synthetic routing is group-limited: at most topk_group nodes per token, k distinct experts', () => {
  const v3 = realConfig('deepseek-v3');
  const s = syntheticRouting(v3, { tokens: 200, seed: 3, skew: 0.5 });
  assert.equal(s.experts.length, 200 * 8);
  for (let t = 0; t < 200; t++) {
    const ex = Array.from(s.experts.slice(t * 8, t * 8 + 8));
    assert.equal(new Set(ex).size, 8);
    assert.ok(new Set(ex.map((e) => Math.floor(e / 32))).size <= 4);
  }
  // Reproducible from the seed.
  assert.deepEqual(syntheticRouting(v3, { tokens: 50, seed: 3 }).experts, syntheticRouting(v3, { tokens: 50, seed: 3 }).experts);
  assert.throws(() => syntheticRouting(realConfig('t1-dense'), { tokens: 1 }), UsageError);
});

test('all-to-all volumes: hand-checked two-token case', () => {
  const v3 = realConfig('deepseek-v3');
  const h = 7168, disp = h + 4 * 56, comb = 2 * h;
  // 64 GPUs, 8 per node, 4 experts per GPU. Token 0 on GPU 0 (node 0): experts on GPU 0 (local), GPU 1 (same node),
  // GPU 8 and GPU 9 (node 1), GPU 16 (node 2) and three more on GPU 16.
  const experts = new Int32Array([0, 4, 32, 36, 64, 65, 66, 67]);
  const r = allToAll(v3, { gpus: 64, gpusPerNode: 8 }, { k: 8, experts }, gpuProfile('h800'));
  assert.equal(r.meanNodesPerToken, 3);
  // IB: two remote nodes, one dispatch copy and one combine each.
  assert.equal(r.ibBytesPerToken, 2 * (disp + comb));
  // NVLink: GPU 1 from GPU 0; GPU 9 from landing GPU 8; GPU 16 is node 2's landing GPU (no hop).
  assert.equal(r.nvlinkBytesPerToken, 2 * (disp + comb));
  assert.equal(r.perGpu[0]!.ibSendBytes, 2 * disp);
  assert.equal(r.perGpu[8]!.ibSendBytes, comb);
  assert.throws(() => allToAll(v3, { gpus: 48, gpusPerNode: 8 }, { k: 8, experts }, gpuProfile('h800')), UsageError);
});

test('node-limited routing on H800: IB grows with M, NVLink binds for small M, V3\'s M=4 is IB-bound with NVLink hidden', () => {
  const v3 = realConfig('deepseek-v3');
  const rows = nodeLimitSweep(v3, gpuProfile('h800'), { tokensPerGpu: 24, seed: 1 });
  assert.equal(rows.length, 8);
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i]!.ibBytesPerToken >= rows[i - 1]!.ibBytesPerToken - 1e-9);
  const m4 = rows[3]!, m8 = rows[7]!, m2 = rows[1]!;
  assert.ok(m4.meanNodesPerToken <= 4);
  assert.ok(m8.meanNodesPerToken > 5, `unrestricted ${m8.meanNodesPerToken}`);
  assert.ok(m8.ibBytesPerToken > 1.25 * m4.ibBytesPerToken);
  assert.equal(m2.bound, 'nvlink');
  assert.equal(m4.bound, 'ib');
  assert.ok(m4.expertsPerNode < m4.nvlinkToIbRatio && m2.expertsPerNode > m2.nvlinkToIbRatio);
  // On H100 NVLink never binds.
  assert.ok(nodeLimitSweep(v3, gpuProfile('h100'), { tokensPerGpu: 24, seed: 1 }).every((r) => r.bound === 'ib'));
});

test('EPLB: packing, replication and both policies reduce imbalance', () => {
  const pk = balancedPacking([10, 9, 8, 1, 1, 1], 3);
  const loads = [0, 0, 0];
  [10, 9, 8, 1, 1, 1].forEach((w, i) => (loads[pk.pack[i]!]! += w));
  assert.deepEqual(loads.sort((a, b) => a - b), [9, 10, 11]);
  const rep = replicateExperts([100, 10, 10, 10], 6);
  assert.deepEqual(rep.count, [3, 1, 1, 1]);
  const v3 = realConfig('deepseek-v3');
  const s = syntheticRouting(v3, { tokens: 2048, seed: 7, skew: 1.2 });
  const a = allToAll(v3, { gpus: 64, gpusPerNode: 8 }, s, gpuProfile('h800'));
  const base = { loads: a.expertLoads, physicalExperts: 256 + 64, groups: 8, nodes: 8, gpus: 64 };
  const hier = rebalanceExperts({ ...base, policy: 'hierarchical' });
  const glob = rebalanceExperts({ ...base, policy: 'global' });
  assert.ok(hier.imbalanceBefore > 2, `skewed before ${hier.imbalanceBefore}`);
  assert.ok(hier.imbalance < hier.imbalanceBefore);
  assert.ok(glob.imbalance < 1.2, `global ${glob.imbalance}`);
  // Every slot filled, each logical expert at least once, total load preserved.
  assert.ok(glob.physicalToLogical.every((e) => e >= 0));
  assert.equal(new Set(glob.physicalToLogical).size, 256);
  const sum = (x: number[]) => x.reduce((p, q) => p + q, 0);
  assert.ok(Math.abs(sum(glob.gpuLoads) - sum(a.expertLoads)) < 1e-6);
  // Hierarchical keeps each node's experts within one expert group set: replicas stay on the group's node.
  for (let gpu = 0; gpu < 64; gpu++) {
    const node = Math.floor(gpu / 8);
    const groupsOnNode = new Set(hier.physicalToLogical.slice(gpu * 5, gpu * 5 + 5).map((e) => Math.floor(e / 32)));
    assert.equal(groupsOnNode.size, 1, `gpu ${gpu} (node ${node}) mixes groups`);
  }
  assert.throws(() => rebalanceExperts({ ...base, physicalExperts: 300 }), UsageError);
});
