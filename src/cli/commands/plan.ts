import { writeFileSync } from 'node:fs';
import type { Command } from '../command.js';
import { parseFlags, numberFlag, type Parsed } from '../args.js';
import { UsageError } from '../../errors.js';
import { loadConfig } from '../../models/config.js';
import { formatCount } from '../../models/params.js';
import { gpuProfile, parsePrecision, GPUS } from '../../plan/hardware.js';
import { makeSchedule, SCHEDULES, type ScheduleName } from '../../plan/schedules.js';
import { simulate, type Durations } from '../../plan/simulator.js';
import { timelineSvg } from '../../plan/timeline-svg.js';
import { planServe, planTrain, V3_REPORT } from '../../plan/cost.js';
import { allToAll, nodeLimitSweep, syntheticRouting, asDeepseek } from '../../plan/expert-parallel.js';
import { rebalanceExperts } from '../../plan/eplb.js';
import { loadModel } from '../../models/load.js';
import { DeepseekV3ForCausalLM } from '../../models/deepseek-v3.js';
import { collectRouting } from '../../models/routing.js';
import { getTask, taskNames } from '../../tasks/index.js';
import { readFileSync } from 'node:fs';

const usage = `r1 plan <pipeline|train|serve|ep> [options] [--json]

  r1 plan pipeline [--schedule 1f1b|zb1p|dualpipe|dualpipev|all] [--pp 8] [--micro 20]
                   [--f 1] [--b 2] [--w 1] [--fb F+B] [--comm 0] [--svg timeline.svg]
      Simulate pipeline schedules as per-rank op lists: bubble (time units of F, B, W), the DualPipe-table closed
      form, activation memory (micro-batch·stage units) and parameter copies per rank. --pp counts pipeline
      stages (DualPipeV runs them on pp/2 devices). Default: all four schedules.

  r1 plan train [--config config.json] --gpu h800 --gpus 2048 [--tokens 14.8e12 | --weeks 1]
                [--pp 16] [--ep 64] [--precision fp8] [--price 2] [--mfu 0.2] [--seq 4096] [--schedule dualpipe]
      Parameters, FLOPs per token (6 x activated + attention + MTP), per-GPU memory (weights, gradients, ZeRO-1
      optimizer states, activations, pipeline copies), GPU-hours, wall-clock days and cost. The default MFU is the
      one DeepSeek-V3's report implies (180K H800 GPU-hours per trillion tokens). With --weeks and no config: just
      gpus x price x hours.

  r1 plan serve --config config.json --gpu h800 [--precision fp8] [--context 32768] [--batch 64] [--gpus N]
      Weight memory, KV cache per token (MLA's latent vs MHA), GPUs needed, decode roofline tokens/s.

  r1 plan ep --config config.json [--gpu h800] [--gpus 64] [--tokens-per-gpu 256] [--skew 1] [--seed 0]
             [--redundant 32]
  r1 plan ep --model <model-dir> [--task arithmetic --samples 64 | --text-file F] [--gpus E]
             [--gpus-per-node E/n_group] [--redundant R] [--gpu h800]
      The same from a real routing sample: a DeepSeek-V3 model folder's gate routes the tokens of a task's
      held-out problems and solutions (or each line of F); per MoE layer, the all-to-all of that sample (default
      layout: one expert per GPU, one expert group per node, so group-limited routing is node-limited routing),
      the expert-load imbalance, and EPLB before/after.
      Expert-parallel all-to-all volumes under node-limited routing (a sweep over the node limit M), and EPLB
      (hierarchical and global) on the sample's expert loads.

GPUs: ${Object.keys(GPUS).join(', ')}.`;

function out(json: boolean, obj: unknown, text: () => string): void {
  console.log(json ? JSON.stringify(obj) : text());
}

const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;

async function pipeline(argv: string[]): Promise<number> {
  const { values } = parseFlags('plan pipeline', argv, {
    schedule: { type: 'string' }, pp: { type: 'string' }, micro: { type: 'string' }, f: { type: 'string' }, b: { type: 'string' },
    w: { type: 'string' }, fb: { type: 'string' }, comm: { type: 'string' }, svg: { type: 'string' },
  }, false);
  const cmd = 'plan pipeline';
  const pp = numberFlag(cmd, 'pp', values['pp'], { int: true, min: 1, def: 8 });
  const micro = numberFlag(cmd, 'micro', values['micro'], { int: true, min: 1, def: 20 });
  const d: Durations = {
    F: numberFlag(cmd, 'f', values['f'], { min: 0, def: 1 }),
    B: numberFlag(cmd, 'b', values['b'], { min: 0, def: 2 }),
    W: numberFlag(cmd, 'w', values['w'], { min: 0, def: 1 }),
    comm: numberFlag(cmd, 'comm', values['comm'], { min: 0, def: 0 }),
  };
  d.FB = numberFlag(cmd, 'fb', values['fb'], { min: 0, def: d.F + d.B });
  const which = (values['schedule'] as string | undefined) ?? 'all';
  if (which !== 'all' && !(SCHEDULES as readonly string[]).includes(which)) throw new UsageError(`r1 plan pipeline: --schedule must be one of ${SCHEDULES.join(', ')}, all; got '${which}'`);
  const names = which === 'all' ? [...SCHEDULES] : [which as ScheduleName];
  const results = names.map((name) => {
    const r = simulate(makeSchedule(name, pp, micro), d);
    const closed = name === '1f1b' ? (pp - 1) * (d.F + d.B) : name === 'zb1p' ? (pp - 1) * (d.F + d.B - 2 * d.W) : (pp / 2 - 1) * (d.FB! + d.B - 3 * d.W);
    const formula = name === '1f1b' ? '(PP-1)(F+B)' : name === 'zb1p' ? '(PP-1)(F+B-2W)' : '(PP/2-1)(F&B+B-3W)';
    return { name, r, row: {
      schedule: name, pp, micro, devices: r.ranks, makespan: r.makespan, bubble: r.bubble, bubbleFormula: closed, formula,
      activationMicroBatches: r.activationMicroBatches, parameterCopies: r.parameterCopies,
      perRank: r.perRank,
    } };
  });
  if (values['svg']) {
    const path = values['svg'] as string;
    if (results.length !== 1) throw new UsageError('r1 plan pipeline: --svg needs a single --schedule');
    writeFileSync(path, timelineSvg(results[0]!.r));
  }
  const json = { durations: d, schedules: Object.fromEntries(results.map((x) => [x.name, x.row])) };
  out(values['json'] === true, json, () => {
    const lines = [`PP ${pp}, ${micro} micro-batches, F=${d.F} B=${d.B} W=${d.W} F&B=${d.FB} comm=${d.comm}`, '',
      `${'schedule'.padEnd(10)} ${'devices'.padStart(7)} ${'makespan'.padStart(9)} ${'bubble'.padStart(8)} ${'formula'.padStart(8)}  ${'closed form'.padEnd(20)} ${'act'.padStart(4)} ${'params'.padStart(6)}`];
    for (const { row } of results) {
      lines.push(`${row.schedule.padEnd(10)} ${String(row.devices).padStart(7)} ${String(row.makespan).padStart(9)} ${String(row.bubble).padStart(8)} ${String(row.bubbleFormula).padStart(8)}  ${row.formula.padEnd(20)} ${String(row.activationMicroBatches).padStart(4)} ${`${row.parameterCopies}x`.padStart(6)}`);
    }
    if (results.length === 1) {
      lines.push('');
      results[0]!.r.timeline.forEach((ops, rank) => lines.push(`rank ${String(rank).padStart(2)}: ${ops.map((o) => o.label).join(' ')}`));
    }
    if (values['svg']) lines.push('', `timeline written to ${values['svg'] as string}`);
    return lines.join('\n');
  });
  return 0;
}

async function train(argv: string[]): Promise<number> {
  const cmd = 'plan train';
  const { values } = parseFlags(cmd, argv, {
    config: { type: 'string' }, tokens: { type: 'string' }, gpu: { type: 'string' }, gpus: { type: 'string' }, pp: { type: 'string' },
    ep: { type: 'string' }, precision: { type: 'string' }, price: { type: 'string' }, mfu: { type: 'string' }, weeks: { type: 'string' },
    seq: { type: 'string' }, schedule: { type: 'string' }, micro: { type: 'string' },
  }, false);
  const config = values['config'] ? loadConfig(values['config'] as string) : undefined;
  const sched = values['schedule'] as string | undefined;
  if (sched !== undefined && !(SCHEDULES as readonly string[]).includes(sched)) throw new UsageError(`r1 plan train: --schedule must be one of ${SCHEDULES.join(', ')}`);
  const plan = planTrain({
    config,
    gpu: gpuProfile((values['gpu'] as string | undefined) ?? 'h800'),
    gpus: numberFlag(cmd, 'gpus', values['gpus'], { int: true, min: 1, def: 2048 }),
    precision: parsePrecision((values['precision'] as string | undefined) ?? 'fp8'),
    tokens: values['tokens'] === undefined ? undefined : numberFlag(cmd, 'tokens', values['tokens'], { min: 1 }),
    weeks: values['weeks'] === undefined ? undefined : numberFlag(cmd, 'weeks', values['weeks'], { min: 0 }),
    pp: values['pp'] === undefined ? undefined : numberFlag(cmd, 'pp', values['pp'], { int: true, min: 1 }),
    ep: values['ep'] === undefined ? undefined : numberFlag(cmd, 'ep', values['ep'], { int: true, min: 1 }),
    pricePerGpuHour: numberFlag(cmd, 'price', values['price'], { min: 0, def: V3_REPORT.pricePerGpuHour }),
    mfu: values['mfu'] === undefined ? undefined : numberFlag(cmd, 'mfu', values['mfu'], { min: 0, max: 1 }),
    seqLen: numberFlag(cmd, 'seq', values['seq'], { int: true, min: 1, def: V3_REPORT.seqLen }),
    schedule: sched as ScheduleName | undefined,
    microBatches: values['micro'] === undefined ? undefined : numberFlag(cmd, 'micro', values['micro'], { int: true, min: 1 }),
  });
  out(values['json'] === true, plan, () => {
    const l: string[] = [];
    if (plan.paramsTotal !== null) l.push(`parameters      ${formatCount(plan.paramsTotal)} total, ${formatCount(plan.paramsActive!)} activated per token`);
    if (plan.flops) l.push(`FLOPs/token     ${(plan.flops.total / 1e9).toFixed(1)} G (6 x active ${(plan.flops.dense / 1e9).toFixed(1)} G + attention ${(plan.flops.attention / 1e9).toFixed(1)} G + MTP ${(plan.flops.mtp / 1e9).toFixed(1)} G)`);
    if (plan.tokens !== null) l.push(`tokens          ${(plan.tokens / 1e12).toFixed(3)} T`);
    l.push(`hardware        ${plan.gpus.toLocaleString('en-US')} x ${plan.gpu} at ${plan.precision}, dense peak ${(plan.peakFlopsPerGpu / 1e12).toFixed(0)} TFLOPs`);
    l.push(`MFU             ${(plan.mfu * 100).toFixed(1)}% of the ${plan.precision} peak${plan.mfuBf16 !== null ? ` (${(plan.mfuBf16 * 100).toFixed(1)}% of BF16)` : ''}${values['mfu'] === undefined ? ', as implied by DeepSeek-V3\'s 180K H800 GPU-hours per trillion tokens' : ''}`);
    l.push(`GPU-hours       ${(plan.gpuHours / 1e6).toFixed(3)} M`);
    l.push(`wall clock      ${plan.wallClockDays.toFixed(1)} days`);
    l.push(`cost            $${(plan.costUsd / 1e6).toFixed(3)} M at $${plan.pricePerGpuHour}/GPU-hour`);
    if (plan.memory && plan.parallel) {
      const m = plan.memory, p = plan.parallel;
      l.push(`parallelism     PP ${p.pp} (${p.schedule}, ${p.parameterCopies}x params, ${p.activationMicroBatches} micro-batches in flight), EP ${p.ep}, DP ${p.dp} (experts ${p.expertDp})`);
      l.push(`memory/GPU      ${gb(m.total)} of ${gb(m.capacity)} ${m.fits ? '(fits)' : '(DOES NOT FIT)'}: weights ${gb(m.weights)}, gradients ${gb(m.gradients)}, optimizer ${gb(m.optimizer)}, activations ${gb(m.activations)}; pipeline copies account for ${gb(m.pipelineCopies)}`);
    }
    return l.join('\n');
  });
  return 0;
}

async function serve(argv: string[]): Promise<number> {
  const cmd = 'plan serve';
  const { values } = parseFlags(cmd, argv, {
    config: { type: 'string' }, gpu: { type: 'string' }, precision: { type: 'string' }, context: { type: 'string' }, batch: { type: 'string' },
    gpus: { type: 'string' }, mtp: { type: 'boolean' },
  }, false);
  if (!values['config']) throw new UsageError('r1 plan serve: --config is required');
  const c = loadConfig(values['config'] as string);
  const p = planServe({
    config: c,
    gpu: gpuProfile((values['gpu'] as string | undefined) ?? 'h800'),
    precision: parsePrecision((values['precision'] as string | undefined) ?? 'fp8'),
    context: numberFlag(cmd, 'context', values['context'], { int: true, min: 1, def: 32768 }),
    batch: numberFlag(cmd, 'batch', values['batch'], { int: true, min: 1, def: 64 }),
    gpus: values['gpus'] === undefined ? undefined : numberFlag(cmd, 'gpus', values['gpus'], { int: true, min: 1 }),
    mtp: values['mtp'] === true,
  });
  out(values['json'] === true, p, () => [
    `weights         ${gb(p.weightBytes)}`,
    `KV cache        ${p.kvCache.valuesPerTokenPerLayer} values/token/layer (MHA with the same heads: ${p.kvCache.mhaValuesPerTokenPerLayer}, ${p.kvCache.mlaVsMhaRatio.toFixed(1)}x; MHA of the same width: ${p.kvCache.mhaSameWidthValuesPerTokenPerLayer}) = ${(p.kvCache.bytesPerToken / 1e3).toFixed(1)} KB/token in BF16; ${gb(p.kvCache.totalBytes)} for the batch`,
    `GPUs needed     ${p.gpusNeeded} (using ${p.gpus})`,
    `decode          ${p.decode.tokensPerSecond.toFixed(0)} tokens/s (${p.decode.tokensPerSecondPerSequence.toFixed(1)} per sequence), ${p.decode.bound}-bound: ${gb(p.decode.bytesPerStep)} and ${(p.decode.flopsPerStep / 1e12).toFixed(1)} TFLOP per step${p.decode.expertsTouchedPerLayer !== null ? `, ${p.decode.expertsTouchedPerLayer.toFixed(1)} experts touched per layer` : ''}`,
  ].join('\n'));
  return 0;
}

async function ep(argv: string[]): Promise<number> {
  const cmd = 'plan ep';
  const { values } = parseFlags(cmd, argv, {
    config: { type: 'string' }, gpu: { type: 'string' }, gpus: { type: 'string' }, 'tokens-per-gpu': { type: 'string' },
    skew: { type: 'string' }, seed: { type: 'string' }, redundant: { type: 'string' }, efficiency: { type: 'string' },
    model: { type: 'string' }, task: { type: 'string' }, samples: { type: 'string' }, 'text-file': { type: 'string' },
    'gpus-per-node': { type: 'string' },
  }, false);
  if (values['model'] !== undefined) return epFromModel(values);
  for (const f of ['task', 'samples', 'text-file', 'gpus-per-node']) if (values[f] !== undefined) throw new UsageError(`r1 plan ep: --${f} needs --model`);
  if (!values['config']) throw new UsageError('r1 plan ep: --config or --model is required');
  const c = asDeepseek(loadConfig(values['config'] as string), 'r1 plan ep');
  const gpu = gpuProfile((values['gpu'] as string | undefined) ?? 'h800');
  const gpus = numberFlag(cmd, 'gpus', values['gpus'], { int: true, min: 1, def: c.nGroup * gpu.gpusPerNode });
  const tpg = numberFlag(cmd, 'tokens-per-gpu', values['tokens-per-gpu'], { int: true, min: 1, def: 256 });
  const skew = numberFlag(cmd, 'skew', values['skew'], { min: 0, def: 1 });
  const seed = numberFlag(cmd, 'seed', values['seed'], { int: true, min: 0, def: 0 });
  const efficiency = numberFlag(cmd, 'efficiency', values['efficiency'], { min: 0, max: 1, def: 0.5 });
  const redundant = numberFlag(cmd, 'redundant', values['redundant'], { int: true, min: 0, def: gpus });
  const sweep = nodeLimitSweep(c, gpu, { tokensPerGpu: tpg, gpusPerNode: gpu.gpusPerNode, seed, skew: 0, efficiency });
  const sample = syntheticRouting(c, { tokens: tpg * gpus, seed, skew });
  const a2a = allToAll(c, { gpus, gpusPerNode: gpu.gpusPerNode }, sample, gpu, { efficiency });
  const nodes = gpus / gpu.gpusPerNode;
  const base = { loads: a2a.expertLoads, physicalExperts: c.nRoutedExperts + redundant, groups: c.nGroup, nodes, gpus };
  const hier = c.nGroup % nodes === 0 ? rebalanceExperts({ ...base, policy: 'hierarchical' }) : null;
  const glob = rebalanceExperts({ ...base, policy: 'global' });
  const { perGpu: _p, expertLoads: _e, ...a2aSummary } = a2a;
  const json = { gpu: gpu.id, gpus, nodes, nodeLimitSweep: sweep, skewed: { skew, ...a2aSummary },
    eplb: { redundant, imbalanceBefore: glob.imbalanceBefore, hierarchical: hier && { imbalance: hier.imbalance }, global: { imbalance: glob.imbalance } } };
  out(values['json'] === true, json, () => {
    const l = [`${c.nRoutedExperts} experts, top-${c.numExpertsPerTok}, ${gpus} GPUs on ${nodes} nodes of ${gpu.gpusPerNode} (${gpu.name}: IB ${gpu.ibGBs} GB/s, NVLink ~${gpu.nvlinkEffectiveGBs} GB/s effective, ratio ${(gpu.nvlinkEffectiveGBs / gpu.ibGBs).toFixed(1)})`, '',
      'node limit M (uniform routing, forward dispatch + combine of one MoE layer):',
      '   M  nodes/token  experts/node  IB KB/token  NVLink KB/token  IB us  NVLink us  compute us  compute:comm  bound'];
    for (const r of sweep) {
      l.push(`  ${String(r.maxNodes).padStart(2)}  ${r.meanNodesPerToken.toFixed(2).padStart(11)}  ${r.expertsPerNode.toFixed(2).padStart(12)}  ${(r.ibBytesPerToken / 1e3).toFixed(1).padStart(11)}  ${(r.nvlinkBytesPerToken / 1e3).toFixed(1).padStart(15)}  ${(r.ibTimeS * 1e6).toFixed(0).padStart(5)}  ${(r.nvlinkTimeS * 1e6).toFixed(0).padStart(9)}  ${(r.computeTimeS * 1e6).toFixed(0).padStart(10)}  ${r.computeToCommRatio.toFixed(2).padStart(12)}  ${r.bound}`);
    }
    l.push('', 'NVLink stays hidden behind IB while experts/node <= NVLink/IB ratio; M caps the IB copies per token.');
    l.push('', `skewed sample (Zipf ${skew}, M = ${c.topkGroup}): GPU load imbalance (max/mean) ${a2a.loadImbalance.toFixed(2)}`);
    l.push(`EPLB with ${redundant} redundant experts: imbalance ${glob.imbalanceBefore.toFixed(2)} -> ${hier ? `${hier.imbalance.toFixed(2)} (hierarchical), ` : ''}${glob.imbalance.toFixed(2)} (global)`);
    return l.join('\n');
  });
  return 0;
}

/** `r1 plan ep --model DIR`: all-to-all and EPLB on the routing a real model's gate produces. */
function epFromModel(values: Parsed['values']): number {
  const cmd = 'plan ep';
  if (values['config'] !== undefined) throw new UsageError('r1 plan ep: give --config or --model, not both');
  if (values['skew'] !== undefined || values['tokens-per-gpu'] !== undefined) throw new UsageError('r1 plan ep: --skew and --tokens-per-gpu describe synthetic routing; with --model the sample comes from the gate');
  const dir = values['model'] as string;
  const { model, tokenizer, config } = loadModel(dir, { mtp: false });
  try {
    if (!(model instanceof DeepseekV3ForCausalLM)) throw new UsageError(`r1 plan ep: ${dir} is a ${config.modelType} model; routing needs a DeepSeek-V3 (MoE) model`);
    const c = asDeepseek(config, 'r1 plan ep');
    if (!tokenizer) throw new UsageError(`r1 plan ep: ${dir} has no tokenizer.json to turn text into tokens`);
    const ctx = c.maxPositionEmbeddings;
    let texts: string[];
    let source: string;
    if (values['text-file'] !== undefined) {
      if (values['task'] !== undefined || values['samples'] !== undefined) throw new UsageError('r1 plan ep: give --text-file or --task/--samples, not both');
      const f = values['text-file'] as string;
      let raw: string;
      try { raw = readFileSync(f, 'utf8'); } catch (e) { throw new UsageError(`r1 plan ep: cannot read --text-file ${f}: ${(e as Error).message}`); }
      texts = raw.split('\n').filter((l) => l.trim().length > 0);
      if (!texts.length) throw new UsageError(`r1 plan ep: ${f} has no non-empty lines`);
      source = f;
    } else {
      const name = (values['task'] as string | undefined) ?? 'arithmetic';
      if (!taskNames().includes(name)) throw new UsageError(`r1 plan ep: unknown --task '${name}' (one of ${taskNames().join(', ')})`);
      const task = getTask(name);
      const n = numberFlag(cmd, 'samples', values['samples'], { int: true, min: 1, def: 64 });
      texts = task.sample('test', n, { seed: numberFlag(cmd, 'seed', values['seed'], { int: true, min: 0, def: 0 }) }).map((p) => `${p.prompt}\n${task.solve(p)}`);
      source = `${n} held-out ${name} problems with solutions`;
    }
    const seqs = texts.map((t) => tokenizer.encode(t).slice(0, ctx)).filter((s) => s.length > 0);
    const layers = collectRouting(model, seqs);
    const gpu = gpuProfile((values['gpu'] as string | undefined) ?? 'h800');
    const E = c.nRoutedExperts;
    const gpus = numberFlag(cmd, 'gpus', values['gpus'], { int: true, min: 1, def: E });
    const gpusPerNode = numberFlag(cmd, 'gpus-per-node', values['gpus-per-node'], { int: true, min: 1, def: Math.max(1, gpus / c.nGroup) });
    if (gpus % gpusPerNode !== 0) throw new UsageError(`r1 plan ep: --gpus (${gpus}) must be a multiple of --gpus-per-node (${gpusPerNode})`);
    const nodes = gpus / gpusPerNode;
    const redundant = numberFlag(cmd, 'redundant', values['redundant'], { int: true, min: 0, def: gpus });
    const efficiency = numberFlag(cmd, 'efficiency', values['efficiency'], { min: 0, max: 1, def: 0.5 });
    const rows = layers.map((l) => {
      const a2a = allToAll(c, { gpus, gpusPerNode }, l, gpu, { efficiency });
      const loads = a2a.expertLoads;
      const mean = loads.reduce((a, b) => a + b, 0) / E;
      const base = { loads, physicalExperts: E + redundant, groups: c.nGroup, nodes, gpus };
      const hier = c.nGroup % nodes === 0 ? rebalanceExperts({ ...base, policy: 'hierarchical' }) : null;
      const glob = rebalanceExperts({ ...base, policy: 'global' });
      return {
        layer: l.layer, tokens: a2a.tokens, expertLoads: loads, expertImbalance: Math.max(...loads) / mean,
        meanNodesPerToken: a2a.meanNodesPerToken, maxNodesPerToken: a2a.maxNodesPerToken,
        ibBytesPerToken: a2a.ibBytesPerToken, nvlinkBytesPerToken: a2a.nvlinkBytesPerToken, computeToCommRatio: a2a.computeToCommRatio,
        gpuImbalanceBefore: glob.imbalanceBefore, eplb: { hierarchical: hier && hier.imbalance, global: glob.imbalance },
      };
    });
    const json = { model: dir, source, sequences: seqs.length, gpu: gpu.id, gpus, gpusPerNode, nodes, redundant, topkGroup: c.topkGroup, layers: rows };
    out(values['json'] === true, json, () => {
      const l = [`${dir}: ${E} experts in ${c.nGroup} groups, top-${c.numExpertsPerTok} (top-${c.topkGroup} groups); routing of ${seqs.length} sequences (${source})`,
        `layout: ${gpus} GPUs, ${gpusPerNode} per node, ${nodes} nodes; EPLB with ${redundant} redundant experts`, '',
        ' layer  tokens  expert max/mean  nodes/token (max)  IB KB/token  NVLink KB/token  GPU imbalance  EPLB hier  EPLB global'];
      for (const r of rows) {
        l.push(`  ${String(r.layer).padStart(4)}  ${String(r.tokens).padStart(6)}  ${r.expertImbalance.toFixed(2).padStart(15)}  ${`${r.meanNodesPerToken.toFixed(2)} (${r.maxNodesPerToken})`.padStart(17)}  ${(r.ibBytesPerToken / 1e3).toFixed(2).padStart(11)}  ${(r.nvlinkBytesPerToken / 1e3).toFixed(2).padStart(15)}  ${r.gpuImbalanceBefore.toFixed(2).padStart(13)}  ${(r.eplb.hierarchical === null ? '-' : r.eplb.hierarchical.toFixed(2)).padStart(9)}  ${r.eplb.global.toFixed(2).padStart(11)}`);
      }
      return l.join('\n');
    });
    return 0;
  } finally {
    model.dispose();
  }
}

const plan: Command = {
  name: 'plan',
  summary: 'pipeline schedules (DualPipe), expert-parallel all-to-all, train/serve memory and cost',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (rest.includes('--help') || rest.includes('-h') || sub === undefined) { console.log(usage); return sub === undefined ? 1 : 0; }
    switch (sub) {
      case 'pipeline': return pipeline(rest);
      case 'train': return train(rest);
      case 'serve': return serve(rest);
      case 'ep': return ep(rest);
      default: throw new UsageError(`r1 plan: unknown subcommand '${sub}'; one of pipeline, train, serve, ep`);
    }
  },
};
export default plan;
