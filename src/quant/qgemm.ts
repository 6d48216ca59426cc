/**
 * Packed weight matrices for inference and their product y = x W^T (+ b), with W [N, K] stored as
 *   - bf16: Uint16Array bit patterns (the top half of an f32, rounded to nearest even), 2 bytes / weight;
 *   - fp8:  E4M3fn codes (Uint8Array) + f32 dequantization factors per 128 x 128 block, row-major
 *           [ceil(N / 128), ceil(K / 128)], w = decode(code) * scaleInv (DeepSeek-V3 technical report
 *           section 3.3.2; the released checkpoints' `weight_scale_inv`; src/quant/blockwise.ts), 1 byte / weight.
 *
 *   - f32:  Float32Array, in the 'panels' layout only (4 bytes / weight): the same values as the model's own f32
 *           weights, re-laid out for the panel kernels (a batched decode multiplies f32 weights ~2.5x faster this
 *           way than row-major); products f32 x f32 with f32 sums, activations not rounded.
 *
 * bf16 has two layouts: 'rows' (row-major [N, K], the checkpoint order) and 'panels' (native/qpanel.c): panels of 16
 * rows in which the two weights of each K pair (2p, 2p+1) of the 16 rows sit together, P[((q K2 + p) 16 + c) 2 + h]
 * = W[16 q + c, 2 p + h] (K2 = ceil(K / 2), zero past N and past an odd K), so the AVX512_BF16 pair dot product
 * multiplies a broadcast activation pair by a panel row directly. packMatrix chooses 'panels' where those kernels run.
 * f32 panels hold one K index per panel row: P[(q K + k) 16 + c] = W[16 q + c, k] (zero past N). fp8 panels hold
 * the codes of two K pairs per 64-byte group, K padded to a multiple of 4, in the byte order the native decode's
 * in-lane unpacks restore (fp8PanelOffset); the block scales stay [ceil(N / 128), ceil(K / 128)].
 *
 * The product runs in native/qgemm.c (dequantization fused into the GEMV/GEMM, AVX-512 / AVX2+F16C / scalar)
 * when the addon is loaded, else in the TypeScript reference below (same definition, f32 weights, f64-free f32
 * accumulation order differs). R1_BACKEND=js forces the reference.
 */
import { nativeAddonExports } from '../tensor/backends/native.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../tensor/backends/js.js';
import { decodeTable } from './fp8.js';
import { DEFAULT_BLOCK, scaleShape } from './blockwise.js';
import { FormatError, ShapeError } from '../errors.js';

export type PackedFormat = 'bf16' | 'fp8' | 'f32';
/** Element order of packed data (f32 is always 'panels'). */
export type PackedLayout = 'rows' | 'panels';
/** Rows per panel of the 'panels' layout. */
export const PANEL_ROWS = 16;

export interface PackedMatrix {
  format: PackedFormat;
  /** Output features N (rows of W). */
  rows: number;
  /** Input features K (columns of W). */
  cols: number;
  /** bf16 bit patterns (Uint16Array), E4M3 codes (Uint8Array) or f32 values (Float32Array), row-major [rows, cols]
   * or (bf16, f32) in panels. */
  data: Uint16Array | Uint8Array | Float32Array;
  /** Element order of `data`; absent = 'rows'. */
  layout?: PackedLayout;
  /** fp8 only: dequantization factors [ceil(rows / 128), ceil(cols / 128)]; null for bf16. */
  scaleInv: Float32Array | null;
}

/** Bytes a packed matrix occupies (weights + scales). */
export function packedBytes(w: PackedMatrix): number {
  return w.data.byteLength + (w.scaleInv ? w.scaleInv.byteLength : 0);
}

/** Values the data of a [rows, cols] matrix holds in a layout (bf16 panels pad K to even, f32 panels do not). */
export function packedLength(rows: number, cols: number, layout: PackedLayout = 'rows', format: PackedFormat = 'bf16'): number {
  if (layout !== 'panels') return rows * cols;
  return Math.ceil(rows / PANEL_ROWS) * PANEL_ROWS * (format === 'f32' ? cols : format === 'fp8' ? Math.ceil(cols / 4) * 4 : cols + (cols & 1));
}

interface QgemmAddon {
  qgemm(y: Float32Array, x: Float32Array, w: Uint16Array | Uint8Array | Float32Array, scaleInv: Float32Array | null,
    bias: Float32Array | null, M: number, N: number, K: number, layout: 0 | 1): void;
  qdequant(dst: Float32Array, w: Uint16Array | Uint8Array | Float32Array, scaleInv: Float32Array | null, N: number, K: number,
    r0: number, r1: number, layout: 0 | 1): void;
  qpanelPack(dst: Uint16Array | Float32Array | Uint8Array, w: Float32Array | Uint8Array, N: number, K: number): void;
  qpanelPreferred(format?: 'bf16' | 'f32' | 'fp8'): boolean;
  qpanelGlu?(y: Float32Array, x: Float32Array, w: Uint16Array | Uint8Array | Float32Array, scaleInv: Float32Array | null,
    M: number, N: number, K: number): boolean;
}

let addon: QgemmAddon | null | undefined;
let nativeOn = process.env['R1_BACKEND'] !== 'js';

/** Use the native kernels (default when the addon is built) or the TypeScript reference. */
export function setQgemmNative(on: boolean): void {
  nativeOn = on;
}

/** The addon's qgemm/qdequant, or null (disabled, not built, or built before qgemm.c existed). */
export function qgemmNative(): QgemmAddon | null {
  if (!nativeOn) return null;
  if (addon !== undefined) return addon;
  addon = null;
  const mod = nativeAddonExports() as Partial<QgemmAddon> | null;
  if (mod && typeof mod.qgemm === 'function' && typeof mod.qdequant === 'function' && typeof mod.qpanelPack === 'function') addon = mod as QgemmAddon;
  return addon;
}

/** Throws unless `w` is a well-formed packed matrix. */
export function checkPacked(w: PackedMatrix, what = 'packed weight'): void {
  const { rows, cols } = w;
  if (!Number.isSafeInteger(rows) || rows < 0 || !Number.isSafeInteger(cols) || cols < 0) {
    throw new ShapeError(`${what}: invalid shape [${rows}, ${cols}]`);
  }
  const layout = w.layout ?? 'rows';
  if (layout !== 'rows' && layout !== 'panels') throw new FormatError(`${what}: unknown layout '${String(layout)}' (rows, panels)`);
  if (w.format === 'bf16') {
    if (!(w.data instanceof Uint16Array)) throw new FormatError(`${what}: bf16 weights must be a Uint16Array`);
  } else if (w.format === 'f32') {
    if (layout !== 'panels') throw new FormatError(`${what}: packed f32 weights come in the 'panels' layout only (row-major f32 is the Linear's own weight)`);
    if (!(w.data instanceof Float32Array)) throw new FormatError(`${what}: f32 weights must be a Float32Array`);
  } else if (w.format === 'fp8') {
    if (!(w.data instanceof Uint8Array)) throw new FormatError(`${what}: fp8 weights must be a Uint8Array of E4M3 codes`);
    const [sr, sc] = scaleShape(rows, cols, DEFAULT_BLOCK, DEFAULT_BLOCK);
    if (!w.scaleInv || w.scaleInv.length !== sr * sc) {
      throw new ShapeError(`${what}: fp8 needs scaleInv [${sr}, ${sc}] (128x128 blocks of [${rows}, ${cols}]), got ${w.scaleInv ? w.scaleInv.length : 'none'}`);
    }
  } else {
    throw new FormatError(`${what}: unknown packed format ${String((w as { format: unknown }).format)}`);
  }
  const want = packedLength(rows, cols, layout, w.format);
  if (w.data.length !== want) throw new ShapeError(`${what}: ${w.data.length} values do not fill [${rows}, ${cols}]${layout === 'panels' ? ` in 16-row panels (${want})` : ''}`);
}

/** Where W[row, 0] sits in the 'panels' layout of a matrix with `cols` columns; W[row, k] is at
 * panelBase(row, cols) + panelStep(k). */
function panelBase(row: number, cols: number): number {
  return Math.floor(row / PANEL_ROWS) * Math.ceil(cols / 2) * 2 * PANEL_ROWS + (row % PANEL_ROWS) * 2;
}
function panelStep(k: number): number {
  return (k >> 1) * 2 * PANEL_ROWS + (k & 1);
}

/** bf16 bits of W [rows, cols] (row-major) in the 'panels' layout; the TypeScript reference of native qpanelPack. */
export function panelsFromRows(bits: Uint16Array, rows: number, cols: number): Uint16Array {
  if (bits.length !== rows * cols) throw new ShapeError(`panelsFromRows: ${bits.length} values do not fill [${rows}, ${cols}]`);
  const out = new Uint16Array(packedLength(rows, cols, 'panels'));
  for (let n = 0; n < rows; n++) {
    const base = panelBase(n, cols);
    for (let k = 0; k < cols; k++) out[base + panelStep(k)] = bits[n * cols + k]!;
  }
  return out;
}

/** f32 W [rows, cols] (row-major) in the f32 'panels' layout; the TypeScript reference of native qpanelPack. */
export function f32PanelsFromRows(w: Float32Array, rows: number, cols: number): Float32Array {
  if (w.length !== rows * cols) throw new ShapeError(`f32PanelsFromRows: ${w.length} values do not fill [${rows}, ${cols}]`);
  const out = new Float32Array(packedLength(rows, cols, 'panels', 'f32'));
  for (let n = 0; n < rows; n++) {
    const base = Math.floor(n / PANEL_ROWS) * cols * PANEL_ROWS + (n % PANEL_ROWS);
    for (let k = 0; k < cols; k++) out[base + k * PANEL_ROWS] = w[n * cols + k]!;
  }
  return out;
}

/** Where the code of W[row, k] sits in the fp8 'panels' layout of a matrix with `cols` columns (native/qpanel.c). */
export function fp8PanelOffset(row: number, k: number, cols: number): number {
  const ps = PANEL_ROWS * Math.ceil(cols / 4) * 4, p = k >> 1, w = 2 * (row % PANEL_ROWS) + (k & 1);
  return Math.floor(row / PANEL_ROWS) * ps + 64 * (p >> 1) + 16 * (w >> 3) + 8 * (p & 1) + (w & 7);
}

/** E4M3 codes [rows, cols] (row-major) in the fp8 'panels' layout; the TypeScript reference of native qpanelPack. */
export function fp8PanelsFromRows(codes: Uint8Array, rows: number, cols: number): Uint8Array {
  if (codes.length !== rows * cols) throw new ShapeError(`fp8PanelsFromRows: ${codes.length} codes do not fill [${rows}, ${cols}]`);
  const out = new Uint8Array(packedLength(rows, cols, 'panels', 'fp8'));
  for (let n = 0; n < rows; n++) for (let k = 0; k < cols; k++) out[fp8PanelOffset(n, k, cols)] = codes[n * cols + k]!;
  return out;
}

/** True when weights of `format` should be packed in panels here: their native panel kernels run (bf16: AVX512_BF16,
 * f32: AVX-512, fp8: AVX512_BF16 + AVX512_VBMI) and R1_QGEMM_NO_PANELS is unset. */
export function panelsPreferred(format: PackedFormat = 'bf16'): boolean {
  const n = qgemmNative();
  return n !== null && n.qpanelPreferred(format);
}

/**
 * y[M, N] = bf16(x)[M, K] . W^T (+ bias[N]); x and y contiguous row-major. y is returned (allocated when not given).
 * (f32 weights: x . W^T in f32, x as it is.)
 * The activations are rounded to bf16 (nearest even) before the product, on every path and at every M — what
 * PyTorch's bf16 inference and llama.cpp's F16/BF16 dot products do, and what lets the native kernels use the CPU's
 * bf16 dot-product instructions (native/qsmall.c). Products of bf16 activations with bf16 or E4M3 weights are
 * exact in f32; the sums are f32.
 */
export function qgemm(x: Float32Array, M: number, w: PackedMatrix, bias: Float32Array | null = null, y?: Float32Array): Float32Array {
  const N = w.rows, K = w.cols;
  if (x.length < M * K) throw new ShapeError(`qgemm: x holds ${x.length} values, need ${M} x ${K}`);
  const out = y ?? new Float32Array(M * N);
  if (out.length < M * N) throw new ShapeError(`qgemm: y holds ${out.length} values, need ${M} x ${N}`);
  if (bias && bias.length < N) throw new ShapeError(`qgemm: bias holds ${bias.length} values, need ${N}`);
  const n = qgemmNative();
  if (n) {
    n.qgemm(out, x, w.data, w.scaleInv, bias, M, N, K, w.layout === 'panels' ? 1 : 0);
    return out;
  }
  return qgemmJs(x, M, w, bias, out);
}

/**
 * y [M, N] = silu(x Wg^T) * (x Wu^T) in one native call, where w is W = [Wg; Wu] ([2N, K]) in the panel layout: each
 * output the f32 that qgemm of the whole W followed by siluMul gives (for M >= 2; see native/qpanel.h), without
 * writing the two products out. Returns null (nothing written) where this cannot run — the TypeScript reference, an
 * addon without it, rows-layout weights, panel kernels that do not run here, or N not a multiple of 16 (fp8: 128) —
 * and the caller then multiplies and applies siluMul itself.
 */
export function qgemmGlu(x: Float32Array, M: number, w: PackedMatrix, y?: Float32Array): Float32Array | null {
  const n = qgemmNative();
  if (!n?.qpanelGlu || w.layout !== 'panels' || w.rows % 2 !== 0) return null;
  const N = w.rows / 2, K = w.cols;
  if (x.length < M * K) throw new ShapeError(`qgemmGlu: x holds ${x.length} values, need ${M} x ${K}`);
  const out = y ?? new Float32Array(M * N);
  if (out.length < M * N) throw new ShapeError(`qgemmGlu: y holds ${out.length} values, need ${M} x ${N}`);
  return n.qpanelGlu(out, x, w.data, w.scaleInv, M, N, K) ? out : null;
}

/** x rounded to bf16 (nearest even), as f32 values: the activations qgemm multiplies. */
export function roundActivations(x: Float32Array, n = x.length): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(f32ToBf16Bits(x[i]!));
  return out;
}

/** The TypeScript reference: bf16-rounded x; dequantize row by row (f32, as dequantizeBlockwise); accumulate in f32. */
export function qgemmJs(x0: Float32Array, M: number, w: PackedMatrix, bias: Float32Array | null = null, y?: Float32Array): Float32Array {
  const N = w.rows, K = w.cols;
  const x = w.format === 'f32' ? x0 : roundActivations(x0, M * K);
  const out = y ?? new Float32Array(M * N);
  const row = new Float32Array(K);
  for (let j = 0; j < N; j++) {
    dequantRowJs(w, j, row);
    const b = bias ? bias[j]! : 0;
    for (let i = 0; i < M; i++) {
      let s = 0;
      const xo = i * K;
      for (let p = 0; p < K; p++) s = Math.fround(s + Math.fround(x[xo + p]! * row[p]!));
      out[i * N + j] = Math.fround(s + b);
    }
  }
  return out;
}

function dequantRowJs(w: PackedMatrix, j: number, row: Float32Array): void {
  const K = w.cols;
  if (w.format === 'f32') { // panels
    const d = w.data as Float32Array, base = Math.floor(j / PANEL_ROWS) * K * PANEL_ROWS + (j % PANEL_ROWS);
    for (let p = 0; p < K; p++) row[p] = d[base + p * PANEL_ROWS]!;
    return;
  }
  if (w.format === 'bf16') {
    const d = w.data as Uint16Array;
    if (w.layout === 'panels') {
      const base = panelBase(j, K);
      for (let p = 0; p < K; p++) row[p] = bf16BitsToF32(d[base + panelStep(p)]!);
    } else for (let p = 0; p < K; p++) row[p] = bf16BitsToF32(d[j * K + p]!);
    return;
  }
  const t = decodeTable('e4m3');
  const d = w.data as Uint8Array;
  const sc = Math.ceil(K / DEFAULT_BLOCK);
  const srow = Math.floor(j / DEFAULT_BLOCK) * sc;
  if (w.layout === 'panels') {
    for (let p = 0; p < K; p++) row[p] = t[d[fp8PanelOffset(j, p, K)]!]! * w.scaleInv![srow + Math.floor(p / DEFAULT_BLOCK)]!;
    return;
  }
  for (let p = 0; p < K; p++) row[p] = t[d[j * K + p]!]! * w.scaleInv![srow + Math.floor(p / DEFAULT_BLOCK)]!;
}

/** W (or rows [r0, r1) of it) as f32, row-major. */
export function dequantPacked(w: PackedMatrix, r0 = 0, r1 = w.rows, out?: Float32Array): Float32Array {
  const K = w.cols;
  const dst = out ?? new Float32Array((r1 - r0) * K);
  const n = qgemmNative();
  if (n) {
    n.qdequant(dst, w.data, w.scaleInv, w.rows, K, r0, r1, w.layout === 'panels' ? 1 : 0);
    return dst;
  }
  const row = new Float32Array(K);
  for (let j = r0; j < r1; j++) {
    dequantRowJs(w, j, row);
    dst.set(row, (j - r0) * K);
  }
  return dst;
}
