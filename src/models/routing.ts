/**
 * Routing samples from a real model's gate: run token sequences through a DeepSeek-V3 model and record, for every MoE
 * layer, which routed experts each token chose (tokens x k, token-major). plan/expert-parallel.ts turns such samples
 * into all-to-all volumes and EPLB placements; plan/ itself never runs a model, so the sampling lives here.
 */
import { UsageError } from '../errors.js';
import { fromArray, noGrad, tidy } from '../tensor/index.js';
import { DeepseekV3ForCausalLM, MoE } from './deepseek-v3.js';

export interface LayerRouting {
  /** Decoder layer index (model.layers.<layer>.mlp). */
  layer: number;
  /** Experts per token. */
  k: number;
  /** tokens x k expert ids. */
  experts: Int32Array;
}

/** The routed experts of every MoE layer over `sequences` (token id lists; each runs as one forward, eval mode, no MTP). */
export function collectRouting(model: DeepseekV3ForCausalLM, sequences: readonly (readonly number[])[]): LayerRouting[] {
  const moes: { layer: number; moe: MoE }[] = [];
  model.model.layers.items.forEach((l, i) => { if (i < model.config.numHiddenLayers && l.mlp instanceof MoE) moes.push({ layer: i, moe: l.mlp }); });
  if (!moes.length) throw new UsageError(`collectRouting: ${model.config.source} has no MoE layers`);
  if (!sequences.length || sequences.some((s) => s.length === 0)) throw new UsageError('collectRouting: give at least one non-empty token sequence');
  const max = model.config.maxPositionEmbeddings;
  const long = sequences.findIndex((s) => s.length > max);
  if (long >= 0) throw new UsageError(`collectRouting: sequence ${long} has ${sequences[long]!.length} tokens, the model's context is ${max}`);
  const wasTraining = model.training;
  model.train(false);
  for (const m of moes) m.moe.routingLog = [];
  try {
    noGrad(() => {
      for (const s of sequences) tidy(() => { model.forward(fromArray(Int32Array.from(s), [1, s.length]), { mtp: false }); });
    });
    return moes.map(({ layer, moe }) => {
      const parts = moe.routingLog!;
      const experts = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of parts) { experts.set(p, o); o += p.length; }
      return { layer, k: model.config.numExpertsPerTok, experts };
    });
  } finally {
    for (const m of moes) m.moe.routingLog = null;
    model.train(wasTraining);
  }
}
