/**
 * Rotary position embedding tables (Su et al. 2021) with the context-extension schemes HF configs name:
 * default, linear (position interpolation), llama3 (Llama 3.1's band-wise interpolation) and yarn
 * (Peng et al. 2023, as DeepSeek-V3 configures it). The table is [maxPositions, rotaryDim/2] of cos and
 * sin, with YaRN's attention factor baked in; the fused rope kernel applies it.
 *
 * Formulas follow HF transformers' modeling_rope_utils.py (_compute_{default,linear,llama3,yarn}_parameters)
 * and DeepSeek-V3 inference/model.py (precompute_freqs_cis, find_correction_range, linear_ramp_factor).
 */
import { Tensor, fromArray, keep } from '../tensor/index.js';
import type { DType } from '../tensor/index.js';
import { ConfigError } from '../errors.js';

export interface RopeScaling {
  type: string;
  factor?: number | null;
  originalMaxPositionEmbeddings?: number | null;
  betaFast?: number | null;
  betaSlow?: number | null;
  mscale?: number | null;
  mscaleAllDim?: number | null;
  lowFreqFactor?: number | null;
  highFreqFactor?: number | null;
  attentionFactor?: number | null;
}

/** YaRN's magnitude correction: 0.1 * mscale * ln(scale) + 1 for scale > 1 (DeepSeek-V3 yarn_get_mscale). */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/** Inverse frequencies theta^(-2i/d) for i < d/2, after the scaling scheme; and the cos/sin amplitude. */
export function ropeFrequencies(dim: number, theta: number, scaling: RopeScaling | null | undefined): { invFreq: Float64Array; attentionFactor: number } {
  if (dim % 2 !== 0 || dim <= 0) throw new ConfigError(`rope: rotary dim must be a positive even number, got ${dim}`);
  const half = dim / 2;
  const base = new Float64Array(half);
  for (let i = 0; i < half; i++) base[i] = 1 / Math.pow(theta, (2 * i) / dim);
  const type = scaling?.type ?? 'default';
  if (!scaling || type === 'default') return { invFreq: base, attentionFactor: 1 };
  const factor = scaling.factor ?? 1;
  if (!(factor > 0)) throw new ConfigError(`rope_scaling.factor must be > 0, got ${factor}`);
  if (type === 'linear') {
    return { invFreq: base.map((f) => f / factor), attentionFactor: 1 };
  }
  if (type === 'llama3') {
    const low = scaling.lowFreqFactor ?? 1;
    const high = scaling.highFreqFactor ?? 4;
    const old = scaling.originalMaxPositionEmbeddings ?? 8192;
    const lowWavelen = old / low;
    const highWavelen = old / high;
    const out = base.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) return f / factor;
      if (wavelen < highWavelen) return f;
      const smooth = (old / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
    return { invFreq: out, attentionFactor: 1 };
  }
  if (type === 'yarn') {
    const orig = scaling.originalMaxPositionEmbeddings ?? 4096;
    const betaFast = scaling.betaFast ?? 32;
    const betaSlow = scaling.betaSlow ?? 1;
    // Dimension index at which a frequency completes `rotations` turns over the original context.
    const corrDim = (rotations: number): number => (dim * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
    let lo = Math.floor(corrDim(betaFast));
    let hi = Math.ceil(corrDim(betaSlow));
    lo = Math.max(lo, 0);
    hi = Math.min(hi, dim - 1);
    if (lo === hi) hi += 0.001;
    const out = new Float64Array(half);
    for (let i = 0; i < half; i++) {
      const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
      const smooth = 1 - ramp; // 1 = keep the original (extrapolate), 0 = interpolate by factor
      out[i] = (base[i]! / factor) * (1 - smooth) + base[i]! * smooth;
    }
    // cos/sin amplitude: HF uses get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim) when both are
    // configured (DeepSeek: 1.0 / 1.0 = 1; its softmax scale carries mscale_all_dim instead), else 0.1 ln(factor) + 1.
    let attentionFactor: number;
    if (scaling.attentionFactor != null) attentionFactor = scaling.attentionFactor;
    else if (scaling.mscale != null && scaling.mscaleAllDim != null) attentionFactor = yarnMscale(factor, scaling.mscale) / yarnMscale(factor, scaling.mscaleAllDim);
    else attentionFactor = yarnMscale(factor);
    return { invFreq: out, attentionFactor };
  }
  throw new ConfigError(`rope_scaling.type '${type}' is not supported (default, linear, llama3, yarn)`);
}

/** cos/sin tables [positions, dim/2] for the fused rope op (kept out of tidy scopes). */
export function ropeTables(dim: number, theta: number, scaling: RopeScaling | null | undefined, positions: number, dtype: DType = 'f32'): { cos: Tensor; sin: Tensor } {
  const { invFreq, attentionFactor } = ropeFrequencies(dim, theta, scaling);
  const half = dim / 2;
  const n = positions * half;
  const c = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  const s = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      // angle in f32 like the reference implementations compute it (outer product of f32 tensors)
      const ang = dtype === 'f64' ? p * invFreq[i]! : Math.fround(p * Math.fround(invFreq[i]!));
      c[p * half + i] = Math.cos(ang) * attentionFactor;
      s[p * half + i] = Math.sin(ang) * attentionFactor;
    }
  }
  return { cos: keep(fromArray(c, [positions, half])), sin: keep(fromArray(s, [positions, half])) };
}
