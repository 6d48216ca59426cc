/**
 * Packed weights for inference: every eligible Linear of a model gets a LinearImpl (src/nn/linear.ts) that keeps
 * its weight as bf16 (2 bytes / parameter) or FP8 E4M3 with 128 x 128 block scales (1 byte / parameter + one f32
 * per block; DeepSeek-V3 technical report section 3.3.2, the `weight_scale_inv` convention of the released
 * checkpoints, src/quant/blockwise.ts) and multiplies through native/qgemm.c with the dequantization fused in.
 * Batch-1 decode reads every weight once per token, so its speed follows the weight bytes.
 * A third format, f32 in 16-row panels (opts.f32Panels), keeps the values and only re-lays them out for the native
 * panel kernels: at batch 16 the row-major f32 product runs at ~145 GFLOP/s, the panels at ~2x that (bench qgemm).
 *
 * Inference only: a packed layer has no autograd. Its forward throws UsageError when gradients are being recorded
 * (grad mode on and the input requires grad, or the layer is in training mode); the inference paths run under
 * noGrad() with model.eval() (src/infer/kv-cache.ts, speculative.ts).
 *
 * The f32 weight is released: the parameter tensor is disposed (any later read, e.g. saving the model, throws
 * DisposedError naming it) and its storage drops the array, so the bytes go back to the garbage collector; weights
 * that came from the tensor pool are dropped from the pool too (clearPool), not kept for reuse. Shapes stay, so
 * parameter counts still add up. Biases stay f32 (they are tiny and added in the kernel).
 *
 * Layers left in f32: DeepSeek MLA's kv_b_proj (the absorbed attention path reads kv_b_proj.weight directly,
 * src/models/deepseek-v3.ts), the MoE gate (not a Linear), embeddings and norms. A tied output head (the dense
 * models' lm_head = embed_tokens.weight^T) keeps the f32 embedding for the token lookup and, when the model offers
 * the `tiedHeadImpl` hook, gets a packed copy of the head for the logits product (opts.tiedHead, default on):
 * it is the largest matrix of a small model (S1: 136M of 494M parameters).
 */
import { Tensor, empty, isGradEnabled, clearPool } from '../tensor/index.js';
import type { Module } from './module.js';
import { Linear, type LinearImpl } from './linear.js';
import { loadNative } from '../tensor/backends/native.js';
import { f32ToBf16Bits } from '../tensor/backends/js.js';
import { DEFAULT_BLOCK, quantizeWeight } from '../quant/blockwise.js';
import { DTypeError, FormatError, ShapeError, UsageError } from '../errors.js';
import { PANEL_ROWS, checkPacked, f32PanelsFromRows, fp8PanelsFromRows, packedBytes, packedLength, panelsFromRows, panelsPreferred, qgemm, qgemmGlu, qgemmNative, type PackedFormat, type PackedLayout, type PackedMatrix } from '../quant/qgemm.js';

export type WeightFormat = PackedFormat;
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'bf16', 'fp8'];

/** Parse a --weights value. */
export function parseWeightFormat(s: string, where = '--weights'): WeightFormat {
  if (s === 'f32' || s === 'bf16' || s === 'fp8') return s;
  throw new UsageError(`${where} must be one of ${WEIGHT_FORMATS.join(', ')}, got '${s}'`);
}

/**
 * Pack a row-major f32 matrix [rows, cols]: bf16 rounds to nearest even; fp8 quantizes per 128 x 128 block; f32
 * keeps the values (panels only: a re-layout for the panel kernels).
 * bf16 goes into the 'panels' layout where the native panel kernels run (src/quant/qgemm.ts), else 'rows';
 * `layout` forces one.
 */
export function packMatrix(w: Float32Array, rows: number, cols: number, format: PackedFormat, where = 'packMatrix', layout?: PackedLayout): PackedMatrix {
  if (w.length !== rows * cols) throw new ShapeError(`${where}: ${w.length} values do not fill [${rows}, ${cols}]`);
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i]!)) throw new FormatError(`${where}: weight [${rows}, ${cols}] holds a non-finite value (${w[i]}) at ${i}; packed formats need finite weights`);
  }
  if (format === 'bf16') {
    const lay = layout ?? (panelsPreferred() ? 'panels' : 'rows');
    // rounding and reordering in one native pass (136M values for S1's head)
    const native = lay === 'panels' ? nativePanels((n) => new Uint16Array(n), w, rows, cols, 'bf16') : null;
    if (native) return { format, rows, cols, data: native, scaleInv: null, layout: lay };
    const data = new Uint16Array(w.length);
    const nat = loadNative();
    if (nat && w.length > 0) nat.cast(data, 'bf16', w, 'f32', w.length); // same round-to-nearest-even as f32ToBf16Bits
    else for (let i = 0; i < w.length; i++) data[i] = f32ToBf16Bits(w[i]!);
    if (lay === 'panels') return { format, rows, cols, data: panelsFromRows(data, rows, cols), scaleInv: null, layout: lay };
    return { format, rows, cols, data, scaleInv: null, layout: lay };
  }
  if (format === 'f32') {
    if (layout !== undefined && layout !== 'panels') throw new FormatError(`${where}: packed f32 weights come in the 'panels' layout only, got '${layout}'`);
    const data = nativePanels((n) => new Float32Array(n), w, rows, cols, 'f32') ?? f32PanelsFromRows(w, rows, cols);
    return { format, rows, cols, data, scaleInv: null, layout: 'panels' };
  }
  if (format === 'fp8') {
    const q = quantizeWeight(w, rows, cols); // 128 x 128 blocks, e4m3, scaleInv = amax / 448
    return fp8Packed(q.codes, q.scaleInv, rows, cols, layout);
  }
  throw new FormatError(`${where}: unknown packed format '${String(format)}' (bf16, fp8, f32)`);
}

/** fp8 codes [rows, cols] (row-major) and their block scales as a packed matrix: in the 'panels' layout where the
 * native fp8 panel kernels run (or when `layout` asks for it), else 'rows'. */
export function fp8Packed(codes: Uint8Array, scaleInv: Float32Array, rows: number, cols: number, layout?: PackedLayout): PackedMatrix {
  const lay = layout ?? (panelsPreferred('fp8') ? 'panels' : 'rows');
  if (lay !== 'panels') return { format: 'fp8', rows, cols, data: codes, scaleInv };
  const data = nativePanels((n) => new Uint8Array(n), codes, rows, cols, 'fp8') ?? fp8PanelsFromRows(codes, rows, cols);
  return { format: 'fp8', rows, cols, data, scaleInv, layout: 'panels' };
}

/** The panel layout of `src` [rows, cols] made by the addon's qpanelPack (f32 values -> bf16 or f32 panels, E4M3
 * codes -> fp8 panels), or null without the addon (callers then use the TypeScript reorder). */
function nativePanels<T extends Uint16Array | Float32Array | Uint8Array>(make: (n: number) => T, src: Float32Array | Uint8Array,
  rows: number, cols: number, format: PackedFormat): T | null {
  const q = qgemmNative();
  if (!q) return null;
  const data = make(packedLength(rows, cols, 'panels', format));
  if (data.length > 0) q.qpanelPack(data, src, rows, cols);
  return data;
}

/** E4M3fn's NaN codes (0x7f, 0xff): the kernels' SIMD decode does not reproduce NaN, so packed fp8 refuses them. */
export function checkNoNaNCodes(codes: Uint8Array, where: string): void {
  for (let i = 0; i < codes.length; i++) {
    if ((codes[i]! & 0x7f) === 0x7f) throw new FormatError(`${where}: FP8 E4M3 NaN code 0x${codes[i]!.toString(16)} at element ${i}`);
  }
}

function viewF32(t: Tensor): Float32Array {
  if (t.dtype !== 'f32') throw new DTypeError(`${t.describe()}: packed inference needs f32 tensors, got ${t.dtype}`);
  return (t.raw as Float32Array).subarray(t.offset, t.offset + t.size);
}

/** The checks every packed product makes of its input: inference only, x's width and dtype. */
function checkProductInput(w: PackedMatrix, x: Tensor, path: string, training: boolean): void {
  if (isGradEnabled() && (x.requiresGrad || training)) {
    const how = w.format === 'f32' ? 'load it without f32Panels (plain f32 tensors)' : 'load the model with --weights f32';
    throw new UsageError(`${path}: ${w.format} packed weights are inference-only (no autograd); run under noGrad() with model.eval(), or ${how} to train`);
  }
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== w.cols) throw new ShapeError(`${path}: expects [..., ${w.cols}], got ${x.describe()}`);
  if (x.dtype !== 'f32') throw new DTypeError(`${path}: packed weights take f32 activations, got ${x.describe()}`);
}

/** y [..., N] = x [..., K] W^T (+ bias) through qgemm, with the checks every packed product makes (inference only,
 * x's width and dtype); PackedLinear and FusedPacked. */
function packedProduct(w: PackedMatrix, x: Tensor, bias: Float32Array | null, path: string, training: boolean): Tensor {
  const K = w.cols, N = w.rows;
  checkProductInput(w, x, path, training);
  const xc = x.isContiguous() ? x : x.contiguous();
  const out = empty([...x.shape.slice(0, -1), N], 'f32');
  qgemm(viewF32(xc), x.size / K, w, bias, out.raw as Float32Array);
  if (xc !== x) xc.dispose();
  return out;
}

/** The LinearImpl of a packed layer: y = x W^T + b through native/qgemm.c (or its TypeScript reference). */
export class PackedLinear implements LinearImpl {
  readonly name: string;
  constructor(readonly weight: PackedMatrix, readonly path: string) {
    checkPacked(weight, path);
    this.name = `packed-${weight.format}`;
  }

  /** y [..., N] = x [..., K] W^T (+ bias) for a layer of this shape. */
  apply(x: Tensor, bias: Tensor | null, training: boolean): Tensor {
    return packedProduct(this.weight, x, bias ? viewF32(bias) : null, this.path, training);
  }

  forward(x: Tensor, layer: Linear): Tensor {
    return this.apply(x, layer.bias, layer.training);
  }
}

/**
 * Drop a parameter's f32 array (see the header): dispose the tensor, then make its storage forget the array so the
 * garbage collector reclaims it. A pooled array went back to the tensor pool on dispose; the pool is cleared so it
 * is not kept there either (the pool only caches idle buffers, refilled on demand).
 */
export function releaseTensor(t: Tensor): void {
  const st = t.storage;
  t.dispose();
  if (st.refs > 0) return; // another view still uses the array
  st.data = new Float32Array(0);
  if (st.pooled) clearPool();
}

/** Install a packed weight on a Linear and release its f32 weight. */
export function installPacked(layer: Linear, packed: PackedMatrix, path: string): PackedLinear {
  if (packed.rows !== layer.outFeatures || packed.cols !== layer.inFeatures) {
    throw new ShapeError(`${path}: packed weight [${packed.rows}, ${packed.cols}] does not fit Linear(${layer.inFeatures} -> ${layer.outFeatures})`);
  }
  const impl = new PackedLinear(packed, path);
  layer.impl = impl;
  if (!layer.weight.isDisposed) releaseTensor(layer.weight);
  return impl;
}

/** Whether a Linear (at HF path `path`, without '.weight') may be packed. */
export function isPackable(path: string, layer: Linear): boolean {
  // MLA's absorbed inference path reads kv_b_proj.weight itself (deepseek-v3.ts): it must stay a dense f32 tensor.
  if (/(^|\.)kv_b_proj$/.test(path)) return false;
  return layer.weight.dtype === 'f32' && !layer.weight.isDisposed && !layer.impl;
}

/** The packable Linears of a model by parameter name ('<path>.weight'). */
export function packableLinears(model: Module, skip?: (name: string) => boolean): Map<string, Linear> {
  const out = new Map<string, Linear>();
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Linear)) continue;
    const name = `${path}.weight`;
    if (skip?.(name)) continue;
    if (isPackable(path, m)) out.set(name, m);
  }
  return out;
}

/** A model whose output head may be tied to the embedding (DenseCausalLM offers the hook). */
interface TiedHeadModel {
  lm_head: Linear | null;
  tiedHeadImpl?: ((n: Tensor) => Tensor) | null;
  model: { embed_tokens: { weight: Tensor } };
}
function tiedHeadHost(model: Module): TiedHeadModel | null {
  const m = model as unknown as Partial<TiedHeadModel>;
  return m.lm_head === null && 'tiedHeadImpl' in m && m.model?.embed_tokens?.weight instanceof Tensor ? (m as TiedHeadModel) : null;
}

const tiedHeadBytes = new WeakMap<object, number>();

/** Install a packed copy of a tied head (embedding stays f32 for the token lookup). Returns the packed bytes. */
export function packTiedHead(model: Module, format: PackedFormat, packed?: PackedMatrix): number {
  const host = tiedHeadHost(model);
  if (!host) return 0;
  const w = host.model.embed_tokens.weight;
  if (w.dtype !== 'f32' || w.ndim !== 2) return 0;
  const [V, D] = w.shape as [number, number];
  const p = packed ?? packMatrix(viewF32(w), V, D, format, 'model.embed_tokens.weight (tied head)');
  const impl = new PackedLinear(p, 'lm_head (tied to model.embed_tokens.weight)');
  host.tiedHeadImpl = (n: Tensor) => impl.apply(n, null, false);
  tiedHeadBytes.set(host, packedBytes(p));
  return packedBytes(p);
}

export interface PackOptions {
  /** Leave these parameter names ('<path>.weight') in f32. */
  skip?: (name: string) => boolean;
  /** Pack a copy of a tied output head (default true; costs its packed bytes on top of the f32 embedding). */
  tiedHead?: boolean;
  /** format 'f32': re-lay the weights out in f32 panels where the native panel kernels run (AVX-512), which makes
   * the layers inference-only like the other packed formats (default false: 'f32' then changes nothing). */
  f32Panels?: boolean;
  /** Fuse the projections that share an input (q/k/v, gate/up) into one packed product each (default true). */
  fuse?: boolean;
}

/** Whether packing with `format` and `opts` converts anything here: bf16 and fp8 always; f32 only when asked
 * (opts.f32Panels) and the f32 panel kernels run. */
export function packsWeights(format: WeightFormat, opts: { f32Panels?: boolean } = {}): boolean {
  return format !== 'f32' || (opts.f32Panels === true && panelsPreferred('f32'));
}

export interface PackSummary {
  format: WeightFormat;
  /** Linears converted. */
  layers: number;
  /** Parameters in them. */
  params: number;
  /** f32 bytes of those weights before, packed bytes after (weights + fp8 scales). */
  bytesBefore: number;
  bytesAfter: number;
  /** Packed bytes of the tied head copy (0 when none). */
  tiedHeadBytes: number;
  /** Linears left in f32 (by parameter name) and why. */
  kept: string[];
  /** Groups of packed Linears fused into one product each (fuseProjections; absent: none tried). */
  fused?: number;
}

/**
 * Convert every eligible Linear of `model` to packed `format` weights (see the header for what is eligible and how
 * the f32 weights are released). Call once, after loading and before inference. 'f32' changes nothing (an empty
 * summary) unless opts.f32Panels asks for f32 panels and they run here (packsWeights), so callers can pass a
 * --weights value straight through.
 */
export function packWeights(model: Module, format: WeightFormat, opts: PackOptions = {}): PackSummary {
  if (format !== 'f32' && format !== 'bf16' && format !== 'fp8') throw new UsageError(`packWeights: format must be 'f32', 'bf16' or 'fp8', got '${String(format)}'`);
  const sum: PackSummary = { format, layers: 0, params: 0, bytesBefore: 0, bytesAfter: 0, tiedHeadBytes: 0, kept: [] };
  if (!packsWeights(format, opts)) return sum; // nothing to do: f32 is the layers' own format
  const targets = packableLinears(model, opts.skip);
  for (const [path, m] of model.namedModules()) {
    if (m instanceof Linear && !targets.has(`${path}.weight`)) sum.kept.push(`${path}.weight`);
  }
  for (const [name, layer] of targets) {
    const w = layer.weight;
    const packed = packMatrix(viewF32(w), layer.outFeatures, layer.inFeatures, format, name);
    sum.layers++;
    sum.params += w.size;
    sum.bytesBefore += w.size * 4;
    sum.bytesAfter += packedBytes(packed);
    installPacked(layer, packed, name.slice(0, -'.weight'.length));
  }
  if (opts.tiedHead ?? true) sum.tiedHeadBytes = packTiedHead(model, format);
  if (opts.fuse ?? true) sum.fused = fuseProjections(model);
  return sum;
}

/** Whether any Linear of the model holds rounded weights (packed bf16 or fp8; f32 panels keep the values). */
export function hasRoundedWeights(model: Module): boolean {
  for (const [, m] of model.namedModules()) if (m instanceof Linear && m.impl instanceof PackedLinear && m.impl.weight.format !== 'f32') return true;
  return false;
}

/** Bytes of a model's weights as held now: live f32/f64 parameters, and packed layers (tied head copy included). */
export function weightBytes(model: Module): { dense: number; packed: number } {
  let dense = 0, packed = 0;
  for (const [, t] of model.namedParameters()) if (!t.isDisposed) dense += t.size * (t.dtype === 'f64' ? 8 : 4);
  for (const [, m] of model.namedModules()) if (m instanceof Linear && m.impl instanceof PackedLinear) packed += packedBytes(m.impl.weight);
  const host = tiedHeadHost(model);
  if (host?.tiedHeadImpl) packed += tiedHeadBytes.get(host) ?? 0;
  return { dense, packed };
}

/**
 * Several packed Linears that read the same input, multiplied as one matrix (their rows one after another): a
 * layer's q/k/v projections, an MLP's gate and up projections. One product instead of two or three at batch 1
 * (serves): fewer native calls and thread hand-offs a token (much of a tiny model's decode step; T1 bf16 and fp8
 * +12-14%) and fuller ones (S1's k/v projections have 8 panels each, too few to keep two cores streaming: S1 fp8
 * +14%). With more rows q/k/v run apart (see serves), and a gate/up pair in panels runs as one GLU product (see
 * glu; at one row too where gluAtOneRow says so).
 *
 * The fused data is the parts' packed data end to end, so each output is computed exactly as the part's own
 * product computes it (the kernels reduce each row over K on their own; tested bit for bit), and the parts'
 * PackedLinears are re-pointed at their slices of it: no second copy of any weight. That needs every part but the
 * last to end where a panel (16 rows) or an fp8 scale block (128 rows) ends; otherwise the layers stay apart.
 * The biases are copied into one f32 vector (zeros for parts without one) when the group is made.
 */
export class FusedPacked {
  readonly name: string;
  constructor(readonly weight: PackedMatrix, readonly widths: readonly number[], readonly bias: Float32Array | null, readonly path: string) {
    checkPacked(weight, path);
    if (widths.reduce((a, b) => a + b, 0) !== weight.rows) throw new ShapeError(`${path}: parts of ${widths.join(' + ')} rows do not fill [${weight.rows}, ${weight.cols}]`);
    this.name = `fused-${weight.format}`;
  }

  /** Whether the fused product serves x: one row (a batch-1 decode step). With more rows each part's output is a
   * strided view (its rows are Ntot apart), and the ops after the projections (rope, siluMul, the attention's
   * append) would copy them contiguous (on T1 at batch 16 that measured x0.96: the copies ate the saved products). */
  serves(x: Tensor): boolean {
    return x.size === this.weight.cols;
  }

  /**
   * Whether a one-row input should go through glu() rather than apply + siluMul (SwiGLU.forward; both give the same
   * values): for fp8 weights. Measured alternating in one process at batch 1 (medians of 10 runs), S1: fp8 x1.031 /
   * x1.041 / x1.03, bf16 x0.985 / x0.966 / x0.990 (its gate and up passes, each half as long as the one fused
   * product's, stream less well from DRAM). The tiny T1's steps (~0.5 ms) moved too much to tell (x0.74-1.29).
   */
  get gluAtOneRow(): boolean {
    return this.weight.format === 'fp8';
  }

  /** Set when glu() found that the native GLU product does not run for this matrix here (asked once). */
  private gluOff = false;

  /**
   * For a gate/up pair (two parts of equal width, no bias): silu(gate(x)) * up(x), [..., width], in one native call
   * (qgemmGlu: each thread multiplies its share of the gate and up panels into a scratch and applies silu there; one
   * row with the GEMV's kernel), each value what apply + siluMul give. The gate and up outputs stay in the cache of the
   * core that computed them (siluMul read them from both cores' caches: ~45 us a layer of S1 at batch 16) and one call
   * replaces three (two at one row): S1's gate/up set from DRAM at batch 16 +1-6%, at 64-256 rows (prefill) +4-10%.
   * Null where that does not run here (TypeScript backend, rows layout, kernels missing): apply + siluMul then.
   */
  glu(x: Tensor): Tensor | null {
    if (this.gluOff || this.widths.length !== 2 || this.widths[0] !== this.widths[1] || this.bias) return null;
    checkProductInput(this.weight, x, this.path, false);
    const xc = x.isContiguous() ? x : x.contiguous();
    const out = empty([...x.shape.slice(0, -1), this.widths[0]!], 'f32');
    const done = qgemmGlu(viewF32(xc), x.size / this.weight.cols, this.weight, out.raw as Float32Array) !== null;
    if (xc !== x) xc.dispose();
    if (done) return out;
    out.dispose();
    this.gluOff = true;
    return null;
  }

  /** x [..., K] -> one output [..., width] per part, views of one product's output (contiguous when x is one row). */
  apply(x: Tensor): Tensor[] {
    const y = packedProduct(this.weight, x, this.bias, this.path, false);
    let off = 0;
    const parts = this.widths.map((w) => { const v = y.narrow(y.ndim - 1, off, w); off += w; return v; });
    y.dispose(); // the views hold the storage
    return parts;
  }
}

/** Rows a part must be a multiple of to be followed by another in one packed matrix of this format and layout. */
function fuseAlign(w: PackedMatrix): number {
  return w.format === 'fp8' ? DEFAULT_BLOCK : w.layout === 'panels' ? PANEL_ROWS : 1;
}

/**
 * The Linears' packed weights as one FusedPacked (see the class), or null when they cannot be fused: a layer not
 * packed, formats, layouts or input widths that differ, or a part that does not end on a panel / scale-block
 * boundary.
 */
export function fuseLinears(layers: readonly Linear[], path: string): FusedPacked | null {
  if (layers.length < 2) return null;
  const impls = layers.map((l) => l.impl);
  if (!impls.every((i): i is PackedLinear => i instanceof PackedLinear)) return null;
  const ws = impls.map((i) => i.weight);
  const w0 = ws[0]!;
  const layout = w0.layout ?? 'rows';
  if (ws.some((w) => w.format !== w0.format || (w.layout ?? 'rows') !== layout || w.cols !== w0.cols)) return null;
  if (ws.slice(0, -1).some((w) => w.rows % fuseAlign(w) !== 0)) return null;
  const rows = ws.reduce((a, w) => a + w.rows, 0);
  const len = ws.reduce((a, w) => a + w.data.length, 0);
  const data = w0.data instanceof Uint16Array ? new Uint16Array(len) : w0.data instanceof Uint8Array ? new Uint8Array(len) : new Float32Array(len);
  const scaleInv = w0.scaleInv ? new Float32Array(ws.reduce((a, w) => a + w.scaleInv!.length, 0)) : null;
  let off = 0, soff = 0;
  for (const w of ws) {
    data.set(w.data as never, off);
    w.data = data.subarray(off, off + w.data.length);
    off += w.data.length;
    if (scaleInv) {
      scaleInv.set(w.scaleInv!, soff);
      w.scaleInv = scaleInv.subarray(soff, soff + w.scaleInv!.length);
      soff += w.scaleInv.length;
    }
  }
  const fused: PackedMatrix = { format: w0.format, rows, cols: w0.cols, data, scaleInv, layout };
  let bias: Float32Array | null = null;
  if (layers.some((l) => l.bias)) {
    bias = new Float32Array(rows);
    let r = 0;
    for (const l of layers) {
      if (l.bias) bias.set(viewF32(l.bias), r);
      r += l.outFeatures;
    }
  }
  return new FusedPacked(fused, ws.map((w) => w.rows), bias, path);
}

/** A module whose Linears that share an input can run as one packed product (GQAttention: q/k/v; SwiGLU: gate/up). */
export interface FusableModule { fuseProjections(path: string): boolean }
function isFusable(m: Module): m is Module & FusableModule {
  return typeof (m as Partial<FusableModule>).fuseProjections === 'function';
}

/** Fuse the packed projections of every module that offers it (after packing). Returns how many groups were made. */
export function fuseProjections(model: Module): number {
  let n = 0;
  for (const [path, m] of model.namedModules()) if (isFusable(m) && m.fuseProjections(path)) n++;
  return n;
}
