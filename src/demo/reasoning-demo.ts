/**
 * The main job (`npm start` = `r1 demo`): the R1 recipe in miniature, end to end on a laptop CPU.
 *   1. draw disjoint train/test problems from a built-in verifiable task (arithmetic by default);
 *   2. train a byte-level BPE tokenizer (digits isolated) on the training conversations;
 *   3. build a tiny DeepSeek-V3 (MLA + DeepSeekMoE with aux-loss-free routing + one MTP module);
 *   4. pretrain on plain problem + reasoning-trace text (packed), then SFT on chat-formatted traces with the
 *      loss on assistant tokens only (the cold-start SFT data the task's solver writes);
 *   5. export a Hugging Face folder, evaluate held-out accuracy with the generation engine (greedy, R1
 *      reasoning mode: the answer opens with "<think>\n", verified by the task's rule-based checker), and
 *      measure MTP speculative decoding on the trained model;
 *   6. write a report folder (markdown + loss/accuracy charts as SVG and PNG) and show one reasoning answer.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { trainBpe } from '../io/tokenizer/train.js';
import { Tokenizer } from '../io/tokenizer/tokenizer.js';
import { ChatTemplate, chatTemplateFromConfig } from '../io/chat-template.js';
import { parseConfig, type DeepseekConfig } from '../models/config.js';
import { DeepseekV3ForCausalLM } from '../models/deepseek-v3.js';
import { saveModel } from '../models/load.js';
import { runTraining } from '../train/run.js';
import { tokenizeRows, eosIdOf, padIdOf, type Row } from '../train/data.js';
import { cosineSchedule } from '../train/schedule.js';
import { readMetrics } from '../train/metrics.js';
import { getTask } from '../tasks/index.js';
import { makeArithmeticTask } from '../tasks/arithmetic.js';
import type { Problem, Task } from '../tasks/task.js';
import { ChatModel } from '../infer/chat.js';
import { speculativeGreedy } from '../infer/speculative.js';
import { renderChart, stackCharts } from '../report/plot.js';
import { manualSeed } from '../tensor/index.js';

export interface ReasoningDemoOptions {
  /** 'arithmetic' (default: addition and subtraction), or any registered task name. */
  task?: string;
  difficulties?: number[];
  trainProblems?: number;
  testProblems?: number;
  pretrainSteps?: number;
  sftSteps?: number;
  batch?: number;
  seqLen?: number;
  hidden?: number;
  layers?: number;
  experts?: number;
  vocab?: number;
  lr?: number;
  seed?: number;
  outDir?: string;
  /** Progress output (null = quiet, for --json). */
  stream?: NodeJS.WriteStream | null;
  log?: (line: string) => void;
}

export interface ReasoningDemoResult {
  task: string;
  params: number;
  trainSeconds: number;
  heldOutAccuracy: number;
  reportDir: string;
  testProblems: number;
  accuracyByDifficulty: Record<string, number>;
  pretrainLoss: [number, number];
  sftLoss: [number, number];
  tokensPerSecond: number;
  mtp: { acceptance: number; tokensPerMainPass: number };
  sample: { prompt: string; reasoning: string; content: string; correct: boolean };
  totalSeconds: number;
}

function demoTask(name: string, difficulties: number[] | undefined): Task {
  if (name === 'arithmetic') return makeArithmeticTask({ ops: ['add', 'sub'], difficulties: difficulties ?? [1, 2] });
  return getTask(name);
}

/** A tiny DeepSeek-V3 config: every V3 mechanism present (MLA with q LoRA, decoupled RoPE, YaRN-ready, MoE with groups, MTP). */
export function tinyV3Config(vocab: number, hidden: number, layers: number, experts: number, bos: number, eos: number): DeepseekConfig {
  const head = hidden / 4;
  return parseConfig({
    architectures: ['DeepseekV3ForCausalLM'], model_type: 'deepseek_v3',
    vocab_size: vocab, hidden_size: hidden, intermediate_size: 2 * hidden, moe_intermediate_size: hidden / 2,
    num_hidden_layers: layers, first_k_dense_replace: 1, num_attention_heads: 4, num_key_value_heads: 4,
    q_lora_rank: hidden / 2, kv_lora_rank: hidden / 4, qk_nope_head_dim: head / 2, qk_rope_head_dim: head / 2, v_head_dim: head / 2,
    n_routed_experts: experts, num_experts_per_tok: 2, n_group: 4, topk_group: 2, n_shared_experts: 1,
    routed_scaling_factor: 1.0, scoring_func: 'sigmoid', topk_method: 'noaux_tc', norm_topk_prob: true,
    num_nextn_predict_layers: 1, max_position_embeddings: 512, rms_norm_eps: 1e-6, rope_theta: 10000,
    initializer_range: 0.02, tie_word_embeddings: false, bos_token_id: bos, eos_token_id: eos, torch_dtype: 'float32',
  }, 'r1 demo (tiny DeepSeek-V3)') as DeepseekConfig;
}

export async function runReasoningDemo(o: ReasoningDemoOptions = {}): Promise<ReasoningDemoResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 0;
  manualSeed(seed);
  const taskName = o.task ?? 'arithmetic';
  const task = demoTask(taskName, o.difficulties);
  const out = resolve(o.outDir ?? 'r1-demo');
  mkdirSync(out, { recursive: true });
  const nTrain = o.trainProblems ?? 12000;
  const nTest = o.testProblems ?? 200;
  const train = task.sample('train', nTrain, { seed });
  const test = task.sample('test', nTest, { seed: seed + 1 });
  log(`task ${task.name} (${task.description}): ${train.length} training problems, ${test.length} held-out problems`);

  // Tokenizer: trained on the training conversations, digits kept apart.
  const tokDir = join(out, 'tokenizer');
  mkdirSync(tokDir, { recursive: true });
  const conv = (p: Problem) => `${p.prompt}\n${task.solve(p)}`;
  const trained = trainBpe(train.slice(0, 4000).map(conv), o.vocab ?? 384, { splitDigits: true });
  writeFileSync(join(tokDir, 'tokenizer.json'), JSON.stringify(trained.tokenizerJSON));
  writeFileSync(join(tokDir, 'tokenizer_config.json'), JSON.stringify(trained.tokenizerConfig, null, 2));
  const tok = Tokenizer.load(tokDir);
  const template: ChatTemplate = chatTemplateFromConfig(tok.config!);
  const eos = eosIdOf(tok);
  const bos = tok.config?.bosToken ? tok.tokenToId(tok.config.bosToken)! : 0;
  log(`tokenizer: ${trained.vocabSize} tokens (${trained.merges} merges)`);

  const config = tinyV3Config(trained.vocabSize, o.hidden ?? 128, o.layers ?? 4, o.experts ?? 8, bos, eos);
  const model = new DeepseekV3ForCausalLM(config, { seed, maxPositions: 512 });
  const params = model.numParameters();
  log(`model: tiny DeepSeek-V3, ${params.toLocaleString()} parameters (MLA, ${config.nRoutedExperts} routed experts top-${config.numExpertsPerTok} + ${config.nSharedExperts} shared, MTP depth ${config.numNextnPredictLayers})`);

  const seqLen = o.seqLen ?? 128;
  const batch = o.batch ?? 16;
  const lr = o.lr ?? 3e-3;
  const common = { model, batchSize: batch, seqLen, seed, tokenizerDir: tokDir, progressStream: o.stream, noExport: true, mtpWeight: 0.3, biasGamma: 0.001, weightDecay: 0.1, clip: 1.0 };

  // Phase 1: pretraining on plain text (problem + trace), packed.
  const preRows: Row[] = train.map((p, i) => ({ kind: 'text', text: conv(p), where: `pretrain:${i + 1}` }));
  const pre = runTraining({
    ...common, outDir: join(out, 'pretrain'), examples: tokenizeRows(preRows, tok, null), steps: o.pretrainSteps ?? 500, pack: true,
    lr: cosineSchedule({ lr, warmupSteps: Math.min(30, Math.floor((o.pretrainSteps ?? 500) / 10)), totalSteps: o.pretrainSteps ?? 500, minLr: lr * 0.3 }), label: 'pretrain', tags: { phase: 'pretrain' },
  });
  log(`pretrain: loss ${pre.firstLoss.toFixed(3)} -> ${pre.finalLoss.toFixed(3)} in ${pre.seconds.toFixed(0)} s (${pre.tokensPerSecond.toFixed(0)} tokens/s)`);

  // Phase 2: SFT on chat-formatted traces, loss on the assistant's tokens only.
  const sftRows: Row[] = train.map((p, i) => ({ kind: 'messages', messages: [{ role: 'user', content: p.prompt }, { role: 'assistant', content: task.solve(p) }], where: `sft:${i + 1}` }));
  const sftSteps = o.sftSteps ?? 400;
  const sft = runTraining({
    ...common, outDir: join(out, 'sft'), examples: tokenizeRows(sftRows, tok, template), steps: sftSteps, pack: true, padId: padIdOf(tok),
    lr: cosineSchedule({ lr: lr * 0.5, warmupSteps: Math.min(10, Math.floor(sftSteps / 10)), totalSteps: sftSteps, minLr: lr * 0.05 }), label: 'sft', tags: { phase: 'sft' }, stepOffset: pre.steps,
  });
  log(`sft: loss ${sft.firstLoss.toFixed(3)} -> ${sft.finalLoss.toFixed(3)} in ${sft.seconds.toFixed(0)} s`);
  const trainSeconds = pre.seconds + sft.seconds;

  // Export and evaluate with the one generation engine.
  const modelDir = join(out, 'model');
  saveModel(modelDir, model, { tokenizerFrom: tokDir, generationConfig: { bos_token_id: bos, eos_token_id: eos, do_sample: true, temperature: 0.6, top_p: 0.95 } });
  const chat = new ChatModel({ config, model, tokenizer: tok, generationConfig: null, dir: modelDir }, { maxBatch: 32 });
  const pending = test.map((p) => {
    const { req } = chat.request([{ role: 'user', content: p.prompt }], { sampling: { temperature: 0 }, maxTokens: 160 });
    return chat.engine.submit(req).then((r) => ({ p, r }));
  });
  chat.engine.runToCompletion();
  const results = await Promise.all(pending);
  const byDiff = new Map<number, [number, number]>();
  let correct = 0;
  for (const { p, r } of results) {
    const ok = task.verify(p, r.text).correct;
    if (ok) correct++;
    const c = byDiff.get(p.difficulty) ?? [0, 0];
    byDiff.set(p.difficulty, [c[0] + (ok ? 1 : 0), c[1] + 1]);
  }
  const acc = correct / results.length;
  const accuracyByDifficulty = Object.fromEntries([...byDiff.entries()].sort((a, b) => a[0] - b[0]).map(([d, [c, n]]) => [String(d), c / n]));
  log(`held-out accuracy (greedy, ${results.length} problems): ${(acc * 100).toFixed(1)}%  by difficulty ${JSON.stringify(accuracyByDifficulty)}`);

  // MTP speculative decoding on the trained model: same tokens as greedy, fewer main-model passes.
  let drafted = 0, accepted = 0, passes = 0, toks = 0;
  for (const p of test.slice(0, 20)) {
    const ids = chat.encode(chat.render([{ role: 'user', content: p.prompt }]));
    const s = speculativeGreedy(model, ids, { maxTokens: 160, stopTokenIds: [eos] });
    drafted += s.drafted; accepted += s.accepted; passes += s.mainPasses; toks += s.tokens.length;
  }
  const mtp = { acceptance: accepted / Math.max(1, drafted), tokensPerMainPass: toks / Math.max(1, passes) };
  log(`MTP speculative decoding: ${(mtp.acceptance * 100).toFixed(0)}% of drafts accepted, ${mtp.tokensPerMainPass.toFixed(2)} tokens per main-model pass`);

  // One answer shown in full.
  const show = test[0]!;
  const one = await chat.chat([{ role: 'user', content: show.prompt }], { sampling: { temperature: 0 }, maxTokens: 160 });
  const sample = { prompt: show.prompt, reasoning: one.reasoning, content: one.content, correct: task.verify(show, one.text).correct };

  // Report: charts and markdown.
  const recs = [...readMetrics(join(out, 'pretrain', 'metrics.jsonl')), ...readMetrics(join(out, 'sft', 'metrics.jsonl'))];
  const pts = (phase: string, key: string) => recs.filter((r) => r['phase'] === phase && typeof r[key] === 'number').map((r) => [r['step'] as number, r[key] as number] as [number, number]);
  const lossChart = renderChart([
    { name: 'pretrain loss', points: pts('pretrain', 'lm_loss') },
    { name: 'SFT loss (assistant tokens)', points: pts('sft', 'lm_loss') },
    { name: 'MTP loss', points: [...pts('pretrain', 'mtp_loss'), ...pts('sft', 'mtp_loss')] },
  ], { title: 'tiny DeepSeek-V3 training loss', xLabel: 'step', yLabel: 'cross-entropy', logY: true, smooth: 0.8 });
  const balChart = renderChart([
    { name: 'max/mean expert load', points: [...pts('pretrain', 'expert_imbalance'), ...pts('sft', 'expert_imbalance')] },
  ], { title: 'aux-loss-free load balancing', xLabel: 'step', yLabel: 'imbalance', smooth: 0.8 });
  const accChart = renderChart(Object.entries(accuracyByDifficulty).map(([d, a]) => ({ name: `${d} digits`, points: [[0, 0], [1, a]] as [number, number][] })), { title: 'held-out accuracy by difficulty', xLabel: '', yLabel: 'accuracy' });
  void accChart;
  const charts = stackCharts([lossChart, balChart]);
  writeFileSync(join(out, 'training.svg'), charts.toSvg());
  writeFileSync(join(out, 'training.png'), charts.toPng());
  const totalSeconds = (performance.now() - t0) / 1000;
  const md = [
    `# r1 demo report`,
    '',
    `A tiny DeepSeek-V3 (${params.toLocaleString()} parameters: MLA, ${config.nRoutedExperts} routed experts top-${config.numExpertsPerTok} in ${config.nGroup} groups + ${config.nSharedExperts} shared, aux-loss-free balancing, 1 MTP module) trained from scratch on ${task.name} reasoning traces.`,
    '',
    '| | |', '|---|---|',
    `| task | ${task.name}: ${task.description} |`,
    `| training problems / held-out problems | ${train.length} / ${test.length} (disjoint by construction) |`,
    `| tokenizer | byte-level BPE, ${trained.vocabSize} tokens, digits isolated |`,
    `| pretraining | ${pre.steps} steps x ${batch} x ${seqLen} tokens, loss ${pre.firstLoss.toFixed(3)} -> ${pre.finalLoss.toFixed(3)}, ${pre.seconds.toFixed(0)} s |`,
    `| SFT | ${sft.steps} steps, loss ${sft.firstLoss.toFixed(3)} -> ${sft.finalLoss.toFixed(3)}, ${sft.seconds.toFixed(0)} s |`,
    `| training throughput | ${((pre.tokensPerSecond * pre.seconds + sft.tokensPerSecond * sft.seconds) / trainSeconds).toFixed(0)} tokens/s |`,
    `| **held-out accuracy (greedy)** | **${(acc * 100).toFixed(1)}%** |`,
    ...Object.entries(accuracyByDifficulty).map(([d, a]) => `| accuracy, difficulty ${d} | ${(a * 100).toFixed(1)}% |`),
    `| MTP speculative decoding | ${(mtp.acceptance * 100).toFixed(0)}% drafts accepted, ${mtp.tokensPerMainPass.toFixed(2)} tokens per main pass |`,
    `| total time | ${totalSeconds.toFixed(0)} s |`,
    '',
    '![training curves](training.png)',
    '',
    `## One answer`,
    '',
    `**User:** ${sample.prompt}`,
    '',
    '```', `<think>\n${sample.reasoning}</think>\n\n${sample.content}`, '```',
    '',
    `Verdict: ${sample.correct ? 'correct' : 'wrong'}.`,
    '',
    `The trained model is a Hugging Face folder: \`r1 run ${modelDir} "${sample.prompt}"\`.`,
    '',
  ].join('\n');
  writeFileSync(join(out, 'report.md'), md);
  writeFileSync(join(out, 'results.json'), JSON.stringify({ task: task.name, params, trainSeconds, heldOutAccuracy: acc, accuracyByDifficulty, mtp, sample }, null, 2) + '\n');
  chat.dispose();
  return {
    task: task.name, params, trainSeconds, heldOutAccuracy: acc, reportDir: out, testProblems: results.length, accuracyByDifficulty,
    pretrainLoss: [pre.firstLoss, pre.finalLoss], sftLoss: [sft.firstLoss, sft.finalLoss],
    tokensPerSecond: (pre.tokensPerSecond * pre.seconds + sft.tokensPerSecond * sft.seconds) / trainSeconds, mtp, sample, totalSeconds,
  };
}
