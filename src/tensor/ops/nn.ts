/**
 * Fused neural-network ops, each one kernel forward and one backward (DESIGN: "fuse where bytes dominate"):
 * softmax/log_softmax, RMSNorm, RoPE, cross-entropy, scaled-dot-product attention, SiLU*mul (SwiGLU).
 */
import type { CacheArray, FArray, KVStrides, RopeLayout } from '../backend.js';
import { record, isGradEnabled } from '../autograd.js';
import { Tensor, empty, fmtShape } from '../tensor.js';
import { DTypeError, ShapeError } from '../../errors.js';
import { backendFor, farr, floatArgs, normAxis, sameShape } from './common.js';
import { contiguous, transpose } from './shape.js';
import { indexArray } from './indexing.js';
import { mulScalar } from './elementwise.js';
import { nativeAddonExports } from '../backends/native.js';

/** Run fn on x with `dim` moved last and contiguous, moving the result back. */
function lastDim(x: Tensor, dim: number, fn: (c: Tensor) => Tensor): Tensor {
  const d = normAxis('softmax', dim, x.ndim);
  if (d === x.ndim - 1 || x.ndim === 0) return fn(x);
  const t = transpose(x, d, -1);
  const r = fn(t);
  const back = transpose(r, d, -1);
  return back;
}

function softmaxImpl(x: Tensor, log: boolean): Tensor {
  const dt = floatArgs(log ? 'logSoftmax' : 'softmax', x);
  const cols = x.ndim === 0 ? 1 : x.shape[x.ndim - 1]!;
  const rows = cols === 0 ? 0 : x.size / cols;
  const c = contiguous(x);
  const y = empty(x.shape, dt);
  if (x.size > 0) backendFor(dt).softmax(farr(y), farr(c), rows, cols, log);
  if (c !== x) c.dispose();
  return record(y, log ? 'logSoftmax' : 'softmax', [x], (g) => {
    const gc = contiguous(g);
    const dx = empty(x.shape, dt);
    if (x.size > 0) backendFor(dt).softmaxGrad(farr(dx), farr(y), farr(gc), rows, cols, log);
    if (gc !== g) gc.dispose();
    return [dx];
  });
}

export function softmax(x: Tensor, dim = -1): Tensor {
  return lastDim(x, dim, (c) => softmaxImpl(c, false));
}
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return lastDim(x, dim, (c) => softmaxImpl(c, true));
}

/** RMSNorm over the last dim: x * rsqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const dt = floatArgs('rmsNorm', x, weight);
  const cols = x.shape[x.ndim - 1] ?? 1;
  if (weight.ndim !== 1 || weight.shape[0] !== cols) {
    throw new ShapeError(`rmsNorm: weight ${weight.describe()} must be [${cols}] for input ${x.describe()}`);
  }
  const rows = cols === 0 ? 0 : x.size / cols;
  const c = contiguous(x);
  const w = contiguous(weight);
  const y = empty(x.shape, dt);
  const rstd = empty([rows], dt);
  backendFor(dt).rmsnorm(farr(y), farr(rstd), farr(c), farr(w), rows, cols, eps);
  return record(y, 'rmsNorm', [x, weight], (g) => {
    const gc = contiguous(g);
    const dx = empty(x.shape, dt);
    const dw = empty([cols], dt);
    backendFor(dt).rmsnormGrad(farr(dx), farr(dw), farr(gc), farr(c), farr(w), farr(rstd), rows, cols);
    if (gc !== g) gc.dispose();
    return [dx, weight.requiresGrad ? dw : (dw.dispose(), null)];
  });
}

/**
 * Rotary position embedding on x [..., S, H, D] (or [T, H, D]), rotating the first R = 2*cos.shape[1] dims of each head.
 * cos/sin: [P, R/2] tables (any scaling baked in). positions: i32/i64 tensor of length S (shared by the
 * leading batch dims) or of length T = all tokens. layout 'half' = Llama/Qwen rotate-half, 'interleaved' = DeepSeek-V3.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, layout: RopeLayout): Tensor {
  const dt = floatArgs('rope', x, cos, sin);
  if (x.ndim < 2) throw new ShapeError(`rope: input must be [..., heads, dim], got ${x.describe()}`);
  if (cos.ndim !== 2 || !sameShape(cos.shape, sin.shape)) throw new ShapeError(`rope: cos ${cos.describe()} and sin ${sin.describe()} must be equal [positions, rotary/2] tables`);
  const D = x.shape[x.ndim - 1]!;
  const H = x.shape[x.ndim - 2]!;
  const T = H * D === 0 ? 0 : x.size / (H * D);
  const R = 2 * cos.shape[1]!;
  if (R > D) throw new ShapeError(`rope: rotary dims ${R} exceed head dim ${D} (${x.describe()})`);
  const P = cos.shape[0]!;
  const pos = indexArray('rope', positions, P);
  let posT = pos;
  if (pos.length !== T) {
    if (pos.length === 0 || T % pos.length !== 0) throw new ShapeError(`rope: ${pos.length} positions for ${T} tokens of ${x.describe()}`);
    posT = new Int32Array(T);
    for (let i = 0; i < T; i++) posT[i] = pos[i % pos.length]!;
  }
  const c = contiguous(x);
  const cc = contiguous(cos);
  const sc = contiguous(sin);
  const y = empty(x.shape, dt);
  backendFor(dt).rope(farr(y), farr(c), farr(cc), farr(sc), posT, T, H, D, R, layout, false);
  if (c !== x) c.dispose();
  return record(y, 'rope', [x], (g) => {
    const gc = contiguous(g);
    const dx = empty(x.shape, dt);
    backendFor(dt).rope(farr(dx), farr(gc), farr(cc), farr(sc), posT, T, H, D, R, layout, true);
    if (gc !== g) gc.dispose();
    return [dx];
  });
}

/**
 * Cross-entropy of logits [..., V] against integer targets [...]. Targets equal to ignoreIndex
 * contribute nothing; 'mean' divides by the number of non-ignored targets (0 if there are none).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: { ignoreIndex?: number; reduction?: 'mean' | 'sum' | 'none' } = {}): Tensor {
  const dt = floatArgs('crossEntropy', logits);
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  const V = logits.shape[logits.ndim - 1] ?? 0;
  const rows = V === 0 ? 0 : logits.size / V;
  if (targets.size !== rows || !sameShape(targets.shape, logits.shape.slice(0, -1))) {
    throw new ShapeError(`crossEntropy: targets ${targets.describe()} must have shape ${fmtShape(logits.shape.slice(0, -1))} for logits ${logits.describe()}`);
  }
  // Validate targets: in [0, V) or ignoreIndex.
  const tv = targets.toArray();
  const tg = new Int32Array(rows);
  let count = 0;
  for (let i = 0; i < rows; i++) {
    const v = Number(tv[i]!);
    if (v === ignore) { tg[i] = ignore; continue; }
    if (!(Number.isInteger(v) && v >= 0 && v < V)) throw new ShapeError(`crossEntropy: target ${v} at position ${i} out of range [0, ${V}) (ignoreIndex ${ignore})`);
    tg[i] = v;
    count++;
  }
  const c = contiguous(logits);
  const loss = empty(targets.shape, dt);
  const lse = empty([rows], dt);
  const be = backendFor(dt);
  be.crossEntropy(farr(loss), farr(lse), farr(c), tg, rows, V, ignore);
  const perRow = record(loss, 'crossEntropy', [logits], (g) => {
    const gc = contiguous(g);
    const dl = empty(logits.shape, dt);
    backendFor(dt).crossEntropyGrad(farr(dl), farr(c), farr(lse), tg, farr(gc), rows, V, ignore);
    if (gc !== g) gc.dispose();
    return [dl];
  });
  if (reduction === 'none') return perRow;
  const s = perRow.sum();
  if (reduction === 'sum') return s;
  const m = mulScalar(s, count > 0 ? 1 / count : 0);
  return m;
}

/** Scratch limit for the GEMM form of the attention backward (two [B, Hq, Sq, Sk] buffers). */
const ATTENTION_GEMM_BYTES = 256 << 20;

/**
 * The attention backward as batched GEMMs (training-sized sequences, no additive mask): per (batch, kv head), the
 * g = Hq/Hkv query heads sharing it are one [g*Sq, D] matrix (q is [B, Hq, Sq, D], heads of a group adjacent), so
 *   P = exp(scale * Q K^T - lse) (causal entries zeroed), dV = P^T dO, dP = dO V^T,
 *   dS = P * (dP - rowsum(dO * O)), dQ = scale * dS K, dK = scale * dS^T Q
 * are six GEMMs over B*Hkv batches plus two elementwise passes, instead of the row-at-a-time fused kernel (the same
 * formulas as Backend.attentionGrad; that kernel stays the oracle and the path for masks and small shapes).
 */
function attentionGradGemm(be: ReturnType<typeof backendFor>, dq: FArray, dk: FArray, dv: FArray, dO: FArray, q: FArray, k: FArray, v: FArray,
  o: FArray, lse: FArray, B: number, Hq: number, Hkv: number, Sq: number, Sk: number, Dk: number, Dv: number, scale: number, causal: boolean): void {
  const g = Hq / Hkv;
  const batch = B * Hkv;
  const rows = g * Sq;
  const P = new Float32Array(batch * rows * Sk);
  const dS = new Float32Array(batch * rows * Sk);
  const off = Sk - Sq;
  be.matmul(P, 0, q, 0, rows * Dk, Dk, false, k, 0, Sk * Dk, Dk, true, batch, rows, Sk, Dk, false);
  for (let r = 0; r < batch * rows; r++) {
    const l = lse[r]!;
    const i = r % Sq;
    const base = r * Sk;
    const last = causal ? Math.min(Sk, i + off + 1) : Sk;
    for (let j = 0; j < last; j++) P[base + j] = Math.exp(P[base + j]! * scale - l);
    for (let j = last; j < Sk; j++) P[base + j] = 0;
  }
  be.matmul(dv, 0, P, 0, rows * Sk, Sk, true, dO, 0, rows * Dv, Dv, false, batch, Sk, Dv, rows, false);
  be.matmul(dS, 0, dO, 0, rows * Dv, Dv, false, v, 0, Sk * Dv, Dv, true, batch, rows, Sk, Dv, false);
  for (let r = 0; r < batch * rows; r++) {
    let d = 0;
    for (let t = r * Dv; t < (r + 1) * Dv; t++) d += dO[t]! * o[t]!;
    const base = r * Sk;
    for (let j = 0; j < Sk; j++) dS[base + j] = P[base + j]! * (dS[base + j]! - d) * scale;
  }
  be.matmul(dq, 0, dS, 0, rows * Sk, Sk, false, k, 0, Sk * Dk, Dk, false, batch, rows, Dk, Sk, false);
  be.matmul(dk, 0, dS, 0, rows * Sk, Sk, true, q, 0, rows * Dk, Dk, false, batch, Sk, Dk, rows, false);
}

/**
 * Scaled-dot-product attention, fused. q [B, Hq, Sq, Dk], k [B, Hkv, Sk, Dk], v [B, Hkv, Sk, Dv] -> [B, Hq, Sq, Dv].
 * GQA when Hkv < Hq (Hq % Hkv == 0). causal: queries are the last Sq of Sk positions.
 * mask: optional additive float mask broadcastable to [B, Hq, Sq, Sk]. scale defaults to 1/sqrt(Dk).
 */
/**
 * k, v [B, Hkv, Sk, D] as raw arrays + element strides for an in-place read, or null when a copy is needed (not
 * worth it when already contiguous; impossible when rows are not contiguous or batches are not evenly strided).
 */
function stridedKV(k: Tensor, v: Tensor, B: number, Hkv: number): { k: FArray; v: FArray; strides: KVStrides } | null {
  if (k.isContiguous() && v.isContiguous()) return null;
  const ok = (t: Tensor) => t.strides[3] === 1 || t.shape[3] === 1;
  if (!ok(k) || !ok(v)) return null;
  const sk = k.strides, sv = v.strides;
  // One stride per (batch, head) pair: batch b, head h at (b Hkv + h) * headStride.
  if (B > 1 && (sk[0] !== Hkv * sk[1]! || sv[0] !== Hkv * sv[1]!)) return null;
  const Sk = k.shape[2]!;
  const kRow = Sk > 1 ? sk[2]! : k.shape[3]!, vRow = Sk > 1 ? sv[2]! : v.shape[3]!;
  const kHead = Hkv > 1 || B > 1 ? sk[1]! : 0, vHead = Hkv > 1 || B > 1 ? sv[1]! : 0;
  if (kRow < k.shape[3]! || vRow < v.shape[3]! || kRow <= 0 || vRow <= 0 || kHead < 0 || vHead < 0) return null;
  const ext = (t: Tensor, row: number, head: number) => {
    const nbh = B * Hkv;
    return nbh > 0 && Sk > 0 ? (nbh - 1) * head + (Sk - 1) * row + t.shape[3]! : 0;
  };
  const kr = k.raw as FArray, vr = v.raw as FArray;
  return {
    k: kr.subarray(k.offset, k.offset + ext(k, kRow, kHead)) as FArray,
    v: vr.subarray(v.offset, v.offset + ext(v, vRow, vHead)) as FArray,
    strides: { kRow, kHead, vRow, vHead },
  };
}

/** One sequence of raggedAttention: `length` new tokens after `past` cached rows; k, v: its cache buffers. */
export interface RaggedSequence {
  length: number;
  past: number;
  /** Key cache buffer, contiguous [..., cap, Dk] with Hkv rows of `cap` (e.g. [1, Hkv, cap, Dk]). */
  k: Tensor;
  /** Value cache buffer [..., cap, Dv] like k; null when the values are the first columns of the key rows. */
  v: Tensor | null;
}

/**
 * Attention for a ragged inference batch in one call (forward only): q [N, Hq, Dk], kNew [N, Hkv, Dk] and
 * vNew [N, Hkv, Dv] hold the new tokens of several sequences back to back (token-major, as the projections produce
 * them). For each sequence the new keys/values are written into its cache buffers at rows [past, past + length) —
 * the buffers are modified in place — and its query i attends causally to cache rows [0, past + i]. Returns
 * out [N, Hq, Dv] (token-major). vNew null: the values are the first `valueDim` columns of the key rows (MLA's
 * latent cache; opts.valueDim required). A decode step of a batch is one call instead of one attention call, two
 * cache appends and a concatenation per sequence.
 */
export function raggedAttention(q: Tensor, kNew: Tensor, vNew: Tensor | null, seqs: readonly RaggedSequence[],
  opts: { scale?: number; valueDim?: number } = {}): Tensor {
  const caches = seqs.flatMap((s) => (s.v ? [s.k, s.v] : [s.k]));
  const dt = floatArgs('raggedAttention', q, kNew, ...(vNew ? [vNew] : []));
  // The caches: q's dtype, or all bf16 (a half-size inference cache: rows rounded on the append, read back exactly;
  // the scaled queries are then rounded to bf16 too, so each score is a sum of exact products, as llama.cpp rounds
  // queries to its F16 cache's type).
  const cacheDt = caches[0]?.dtype ?? dt;
  if ((cacheDt !== dt && cacheDt !== 'bf16') || caches.some((c) => c.dtype !== cacheDt)) {
    throw new DTypeError(`raggedAttention: the caches must all be ${dt} (as q) or all bf16, got ${[...new Set(caches.map((c) => c.dtype))].join(', ')}`);
  }
  if (isGradEnabled() && [q, kNew, vNew, ...caches].some((t) => t?.requiresGrad)) {
    throw new ShapeError('raggedAttention: inference only (it writes the caches in place); run it under noGrad');
  }
  if (q.ndim !== 3 || kNew.ndim !== 3 || (vNew && vNew.ndim !== 3)) {
    throw new ShapeError(`raggedAttention: q, kNew, vNew must be [N, heads, D], got ${q.describe()}, ${kNew.describe()}${vNew ? ', ' + vNew.describe() : ''}`);
  }
  const [N, Hq, Dk] = q.shape as [number, number, number];
  const Hkv = kNew.shape[1]!;
  if (kNew.shape[0] !== N || kNew.shape[2] !== Dk || Hkv === 0 || Hq % Hkv !== 0) {
    throw new ShapeError(`raggedAttention: kNew ${kNew.describe()} does not fit q ${q.describe()} (need [${N}, Hkv, ${Dk}] with Hkv dividing ${Hq})`);
  }
  const valuesInKeys = vNew === null;
  const Dv = valuesInKeys ? opts.valueDim ?? -1 : vNew.shape[2]!;
  if (valuesInKeys && !(Number.isInteger(Dv) && Dv >= 1 && Dv <= Dk)) {
    throw new ShapeError(`raggedAttention: without vNew, opts.valueDim must be an integer in [1, ${Dk}], got ${opts.valueDim}`);
  }
  if (vNew && (vNew.shape[0] !== N || vNew.shape[1] !== Hkv)) throw new ShapeError(`raggedAttention: vNew ${vNew.describe()} does not fit kNew ${kNew.describe()}`);
  let total = 0;
  const segs = seqs.map((s, i) => {
    const where = `raggedAttention: sequence ${i}`;
    if (!Number.isInteger(s.length) || s.length < 1 || !Number.isInteger(s.past) || s.past < 0) {
      throw new ShapeError(`${where}: length ${s.length} and past ${s.past} must be integers >= 1 and >= 0`);
    }
    const buf = (t: Tensor, D: number, name: string) => {
      const cap = t.ndim >= 2 ? t.shape[t.ndim - 2]! : 0;
      if (!t.isContiguous() || t.ndim < 2 || t.shape[t.ndim - 1] !== D || t.size !== Hkv * cap * D) {
        throw new ShapeError(`${where}: ${name} cache ${t.describe()} must be a contiguous [${Hkv}, cap, ${D}] buffer`);
      }
      if (s.past + s.length > cap) throw new ShapeError(`${where}: ${s.past} cached + ${s.length} new rows exceed the ${name} cache capacity ${cap}`);
      return cap;
    };
    const cap = buf(s.k, Dk, 'key');
    if (!valuesInKeys) {
      if (!s.v) throw new ShapeError(`${where}: no value cache (vNew was given)`);
      if (buf(s.v, Dv, 'value') !== cap) throw new ShapeError(`${where}: key and value caches differ in capacity`);
    }
    total += s.length;
    return { n: s.length, past: s.past, cap, kOffset: s.k.offset, vOffset: s.v && !valuesInKeys ? s.v.offset : 0 };
  });
  if (total !== N) throw new ShapeError(`raggedAttention: the sequences hold ${total} tokens but q has ${N}`);
  const out = empty([N, Hq, Dv], dt);
  const scale = opts.scale ?? 1 / Math.sqrt(Dk);
  backendFor(dt).attentionRagged(farr(out), farr(contiguous(q)), farr(contiguous(kNew)), vNew ? farr(contiguous(vNew)) : null,
    seqs.map((s) => s.k.raw as CacheArray), valuesInKeys ? null : seqs.map((s) => s.v!.raw as CacheArray), segs, Hq, Hkv, Dk, Dv,
    scale, valuesInKeys);
  return out;
}

export function attention(q: Tensor, k: Tensor, v: Tensor, opts: { causal?: boolean; mask?: Tensor | null; scale?: number } = {}): Tensor {
  const dt = floatArgs('attention', q, k, v);
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) throw new ShapeError(`attention: q, k, v must be 4-d [B, H, S, D], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  const [B, Hq, Sq, Dk] = q.shape as [number, number, number, number];
  const [B2, Hkv, Sk, Dk2] = k.shape as [number, number, number, number];
  const [B3, Hv, Sv, Dv] = v.shape as [number, number, number, number];
  if (B2 !== B || B3 !== B || Dk2 !== Dk || Hv !== Hkv || Sv !== Sk || Hkv === 0 || Hq % Hkv !== 0) {
    throw new ShapeError(`attention: incompatible q ${q.describe()}, k ${k.describe()}, v ${v.describe()} (need equal batch, k/v heads dividing q heads, equal key lengths and q/k head dims)`);
  }
  const causal = opts.causal ?? false;
  if (causal && Sq > Sk) throw new ShapeError(`attention: causal with more queries (${Sq}) than keys (${Sk})`);
  const scale = opts.scale ?? 1 / Math.sqrt(Dk);
  let mask = null as null | { data: FArray; offset: number; strides: number[] };
  const m = opts.mask ?? null;
  if (m) {
    floatArgs('attention mask', q, m);
    if (m.ndim > 4) throw new ShapeError(`attention: mask ${m.describe()} has more than 4 dims`);
    const full = [B, Hq, Sq, Sk];
    const strides = [0, 0, 0, 0];
    for (let i = 0; i < m.ndim; i++) {
      const j = 4 - m.ndim + i;
      const d = m.shape[i]!;
      if (d !== 1 && d !== full[j]) throw new ShapeError(`attention: mask ${m.describe()} does not broadcast to ${fmtShape(full)}`);
      strides[j] = d === 1 ? 0 : m.strides[i]!;
    }
    mask = { data: m.raw as FArray, offset: m.offset, strides };
  }
  const qc = contiguous(q);
  // Inference (nothing to differentiate): k and v are read in place when each row is contiguous — a KV cache view
  // with spare capacity, or MLA's latent read as values — instead of being copied every decode step.
  const inPlace = !(isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad));
  const kvIn = inPlace ? stridedKV(k, v, B, Hkv) : null;
  const kc = kvIn ? k : contiguous(k);
  const vc = kvIn ? v : contiguous(v);
  const out = empty([B, Hq, Sq, Dv], dt);
  const lse = empty([B, Hq, Sq], dt);
  backendFor(dt).attention(farr(out), farr(lse), farr(qc), kvIn ? kvIn.k : farr(kc), kvIn ? kvIn.v : farr(vc), mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal, kvIn?.strides ?? null);
  return record(out, 'attention', [q, k, v], (g) => {
    const gc = contiguous(g);
    const dq = empty(q.shape, dt);
    const dk = empty(k.shape, dt);
    const dv = empty(v.shape, dt);
    const be = backendFor(dt);
    if (!mask && be.name === 'native' && 2 * B * Hq * Sq * Sk * 4 <= ATTENTION_GEMM_BYTES && Sq * Sk >= 64 * 64) {
      attentionGradGemm(be, farr(dq), farr(dk), farr(dv), farr(gc), farr(qc), farr(kc), farr(vc), farr(out), farr(lse), B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
    } else {
      be.attentionGrad(farr(dq), farr(dk), farr(dv), farr(gc), farr(qc), farr(kc), farr(vc), farr(out), farr(lse), mask,
        B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
    }
    if (gc !== g) gc.dispose();
    return [dq, dk, dv];
  });
}

/** SwiGLU's core: silu(a) * b, fused. */
export function siluMul(a: Tensor, b: Tensor): Tensor {
  const dt = floatArgs('siluMul', a, b);
  if (!sameShape(a.shape, b.shape)) throw new ShapeError(`siluMul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} must match`);
  const ac = contiguous(a);
  const bc = contiguous(b);
  const y = empty(a.shape, dt);
  backendFor(dt).siluMul(farr(y), farr(ac), farr(bc), a.size);
  return record(y, 'siluMul', [a, b], (g) => {
    const gc = contiguous(g);
    const da = empty(a.shape, dt);
    const db = empty(b.shape, dt);
    backendFor(dt).siluMulGrad(farr(da), farr(db), farr(ac), farr(bc), farr(gc), a.size);
    if (gc !== g) gc.dispose();
    return [da, db];
  });
}

/** One product of a grouped GEMM: C (m x n, contiguous rows of n) = op(A) op(B), A/B/C at the given offsets. */
interface GemmGroup { c: FArray; cOff: number; a: FArray; aOff: number; b: FArray; bOff: number; m: number; k: number }
type GroupedFn = (cs: FArray[], cOffs: Int32Array, as: FArray[], aOffs: Int32Array, lda: number, transA: boolean,
  bs: FArray[], bOffs: Int32Array, ldb: number, transB: boolean, ms: Int32Array, n: number, ks: Int32Array, ldc: number, acc: boolean) => void;

/**
 * Many small independent products (one per expert): natively spread over the threads with each product
 * single-threaded (native/grouped.c) — hundreds of tiny multithreaded GEMMs in a row would each pay a pool
 * wake-up and packing set-up — else one backend matmul per group.
 */
function groupedGemm(be: ReturnType<typeof backendFor>, groups: readonly GemmGroup[], n: number, lda: number, transA: boolean, ldb: number, transB: boolean, acc: boolean): void {
  const live = groups.filter((g) => g.m > 0);
  if (!live.length || n === 0) return;
  const fn = be.name === 'native' && live[0]!.c instanceof Float32Array ? (nativeAddonExports()?.['gemmGrouped'] as GroupedFn | undefined) : undefined;
  if (fn && live.length > 1) {
    fn(live.map((g) => g.c), Int32Array.from(live, (g) => g.cOff), live.map((g) => g.a), Int32Array.from(live, (g) => g.aOff), lda, transA,
      live.map((g) => g.b), Int32Array.from(live, (g) => g.bOff), ldb, transB, Int32Array.from(live, (g) => g.m), n, Int32Array.from(live, (g) => g.k), n, acc);
    return;
  }
  for (const g of live) {
    if (g.k === 0) { if (!acc) g.c.fill(0, g.cOff, g.cOff + g.m * n); continue; }
    be.matmul(g.c, g.cOff, g.a, g.aOff, 0, lda, transA, g.b, g.bOff, 0, ldb, transB, 1, g.m, n, g.k, acc);
  }
}

/**
 * A mixture of SwiGLU experts over rows grouped by expert (DeepSeekMoE's routed experts as one op):
 * rows [o_e, o_e + counts[e]) of xs [P, D] go through expert e, and each output row is scaled by its routing weight:
 *   y_p = rw_p * down_e(silu(gate_e x_p) * up_e x_p),  gate_e/up_e [I, D], down_e [D, I] (HF's Linear layout).
 * One GEMM per expert and direction over exactly its rows (compute proportional to activated experts); the backward
 * writes each expert's weight gradients and one dX for all rows, so nothing of size [P, D] is built per expert
 * (per-expert gathers and slices would each backpropagate through a full-size zero tensor).
 */
export function groupedSwiGLU(xs: Tensor, rw: Tensor, counts: readonly number[], gate: readonly Tensor[], up: readonly Tensor[], down: readonly Tensor[]): Tensor {
  const E = counts.length;
  if (gate.length !== E || up.length !== E || down.length !== E) throw new ShapeError(`groupedSwiGLU: ${E} counts but ${gate.length}/${up.length}/${down.length} gate/up/down weights`);
  const dt = floatArgs('groupedSwiGLU', xs, rw, ...gate, ...up, ...down);
  if (xs.ndim !== 2) throw new ShapeError(`groupedSwiGLU: rows must be [P, D], got ${xs.describe()}`);
  const [P, D] = xs.shape as [number, number];
  if (rw.ndim !== 1 || rw.shape[0] !== P) throw new ShapeError(`groupedSwiGLU: routing weights must be [${P}], got ${rw.describe()}`);
  if (counts.some((c) => !Number.isInteger(c) || c < 0) || counts.reduce((a, b) => a + b, 0) !== P) throw new ShapeError(`groupedSwiGLU: counts must be non-negative integers summing to ${P} rows`);
  const I = gate[0]?.shape[0] ?? 0;
  for (let e = 0; e < E; e++) {
    const ok = gate[e]!.ndim === 2 && up[e]!.ndim === 2 && down[e]!.ndim === 2 && sameShape(gate[e]!.shape, [I, D]) && sameShape(up[e]!.shape, [I, D]) && sameShape(down[e]!.shape, [D, I]);
    if (!ok) throw new ShapeError(`groupedSwiGLU: expert ${e} weights ${gate[e]!.describe()}, ${up[e]!.describe()}, ${down[e]!.describe()} do not match [${I}, ${D}], [${I}, ${D}], [${D}, ${I}]`);
  }
  const be = backendFor(dt);
  const xc = contiguous(xs);
  const rc = contiguous(rw);
  const wg = gate.map((w) => contiguous(w)), wu = up.map((w) => contiguous(w)), wd = down.map((w) => contiguous(w));
  const X = farr(xc), R = farr(rc);
  const A = empty([P, I], dt), Bu = empty([P, I], dt), H = empty([P, I], dt), Z = empty([P, D], dt), Y = empty([P, D], dt);
  const fa = farr(A), fb = farr(Bu), fh = farr(H), fz = farr(Z), fy = farr(Y);
  const offs: number[] = [];
  for (let e = 0, o = 0; e < E; e++) { offs.push(o); o += counts[e]!; }
  const rowsOf = (e: number) => counts[e]!;
  groupedGemm(be, counts.map((n, e) => ({ c: fa, cOff: offs[e]! * I, a: X, aOff: offs[e]! * D, b: farr(wg[e]!), bOff: 0, m: n, k: D })), I, D, false, D, true, false);
  groupedGemm(be, counts.map((n, e) => ({ c: fb, cOff: offs[e]! * I, a: X, aOff: offs[e]! * D, b: farr(wu[e]!), bOff: 0, m: n, k: D })), I, D, false, D, true, false);
  if (P * I > 0) be.siluMul(fh, fa, fb, P * I);
  groupedGemm(be, counts.map((n, e) => ({ c: fz, cOff: offs[e]! * D, a: fh, aOff: offs[e]! * I, b: farr(wd[e]!), bOff: 0, m: n, k: I })), D, I, false, I, true, false);
  for (let p = 0; p < P; p++) { const r = R[p]!; for (let j = p * D; j < (p + 1) * D; j++) fy[j] = fz[j]! * r; }
  const inputs = [xs, rw, ...gate, ...up, ...down];
  const out = record(Y, 'groupedSwiGLU', inputs, (g) => {
    const gc = contiguous(g);
    const G = farr(gc);
    const dZ = empty([P, D], dt), dH = empty([P, I], dt), dA = empty([P, I], dt), dB = empty([P, I], dt);
    const fdz = farr(dZ), fdh = farr(dH), fda = farr(dA), fdb = farr(dB);
    const dR = empty([P], dt);
    const fdr = farr(dR);
    for (let p = 0; p < P; p++) {
      const r = R[p]!;
      let s = 0;
      for (let j = p * D; j < (p + 1) * D; j++) { s += G[j]! * fz[j]!; fdz[j] = G[j]! * r; }
      fdr[p] = s;
    }
    const dX = xs.requiresGrad ? empty([P, D], dt) : null;
    // dH_e = dZ_e Wd_e; dWd_e = dZ_e^T H_e (experts with rows and a trainable weight only).
    groupedGemm(be, counts.map((n, e) => ({ c: fdh, cOff: offs[e]! * I, a: fdz, aOff: offs[e]! * D, b: farr(wd[e]!), bOff: 0, m: n, k: D })), I, D, false, I, false, false);
    const wgrad = (ws: readonly Tensor[], shape: [number, number]) => ws.map((w, e) => (rowsOf(e) > 0 && w.requiresGrad ? empty(shape, dt) : null));
    const gD = wgrad(down, [D, I]);
    groupedGemm(be, gD.map((gw, e) => ({ c: gw ? farr(gw) : fdz, cOff: 0, a: fdz, aOff: offs[e]! * D, b: fh, bOff: offs[e]! * I, m: gw ? D : 0, k: rowsOf(e) })), I, D, true, I, false, false);
    if (P * I > 0) be.siluMulGrad(fda, fdb, fa, fb, fdh, P * I);
    // dWg_e = dA_e^T X_e, dWu_e = dB_e^T X_e; dX_e = dA_e Wg_e + dB_e Wu_e.
    const gG = wgrad(gate, [I, D]), gU = wgrad(up, [I, D]);
    groupedGemm(be, gG.map((gw, e) => ({ c: gw ? farr(gw) : fda, cOff: 0, a: fda, aOff: offs[e]! * I, b: X, bOff: offs[e]! * D, m: gw ? I : 0, k: rowsOf(e) })), D, I, true, D, false, false);
    groupedGemm(be, gU.map((gw, e) => ({ c: gw ? farr(gw) : fdb, cOff: 0, a: fdb, aOff: offs[e]! * I, b: X, bOff: offs[e]! * D, m: gw ? I : 0, k: rowsOf(e) })), D, I, true, D, false, false);
    if (dX) {
      const fx = farr(dX);
      groupedGemm(be, counts.map((n, e) => ({ c: fx, cOff: offs[e]! * D, a: fda, aOff: offs[e]! * I, b: farr(wg[e]!), bOff: 0, m: n, k: I })), D, I, false, D, false, false);
      groupedGemm(be, counts.map((n, e) => ({ c: fx, cOff: offs[e]! * D, a: fdb, aOff: offs[e]! * I, b: farr(wu[e]!), bOff: 0, m: n, k: I })), D, I, false, D, false, true);
    }
    if (dX && P > 0 && D > 0 && I === 0) farr(dX).fill(0);
    for (const t of [dZ, dH, dA, dB]) t.dispose();
    if (gc !== g) gc.dispose();
    return [dX, rw.requiresGrad ? dR : (dR.dispose(), null), ...gG, ...gU, ...gD];
  });
  if (!out.requiresGrad) {
    for (const t of [A, Bu, H, Z]) t.dispose();
    if (xc !== xs) xc.dispose();
    if (rc !== rw) rc.dispose();
  }
  return out;
}
