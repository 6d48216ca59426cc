/**
 * DeepSeek-V3 fine-grained FP8 quantization (DeepSeek-V3 technical report, section 3.3.2 "Improved Precision from
 * Quantization and Multiplication", Figure 7a):
 *   - activations are scaled per 1 x 128 tile (per token, per 128 channels),
 *   - weights per 128 x 128 block (per 128 output channels, per 128 input channels),
 *   - the scale is computed online from the tile/block absolute maximum so that amax maps onto FP8's largest value (448
 *     for E4M3).
 *
 * Convention (the one the released checkpoints use, DeepSeek-V3 `inference/kernel.py` act_quant / weight_dequant and
 * the HF `weight_scale_inv` tensors): we store `scaleInv = amax / 448`, the factor that DEQUANTIZES:
 *     code = fp8(x / scaleInv),      x ~= decode(code) * scaleInv.
 * A weight [rows, cols] has scaleInv of shape [ceil(rows / 128), ceil(cols / 128)]; edge blocks are partial (ceil-div)
 * and use the amax of the elements they actually hold.
 *
 * Arithmetic is f32 like the reference kernels: scaleInv = fround(amax / 448), q = fround(x / scaleInv) and then the
 * f32 -> fp8 cast rounds to nearest-even with saturation (only rounding can overshoot 448 here). A tile/block whose amax
 * is 0 (or so small that amax / 448 underflows to 0 in f32) gets scaleInv = 1 and all-zero codes: any scale decodes
 * zeros exactly, and 1 keeps every consumer free of a division by zero. Non-finite inputs make their tile's codes NaN.
 */
import { encodeFp8Array, decodeTable, fp8Spec, type Fp8Format } from './fp8.js';

export const DEFAULT_BLOCK = 128;

export interface BlockQuantized {
  /** FP8 codes, row-major [rows, cols]. */
  codes: Uint8Array;
  /** Dequantization factors (amax / fp8max), row-major [ceil(rows / blockRows), ceil(cols / blockCols)]. */
  scaleInv: Float32Array;
  rows: number;
  cols: number;
  blockRows: number;
  blockCols: number;
  format: Fp8Format;
}

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

/** Shape of the scale grid for a [rows, cols] matrix in [blockRows, blockCols] blocks (ceil-div at the edges). */
export function scaleShape(rows: number, cols: number, blockRows = DEFAULT_BLOCK, blockCols = DEFAULT_BLOCK): [number, number] {
  return [ceilDiv(rows, blockRows), ceilDiv(cols, blockCols)];
}

function checkDims(what: string, n: number, rows: number, cols: number, br: number, bc: number): void {
  for (const [k, v] of [['rows', rows], ['cols', cols]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what}: ${k} must be a non-negative integer, got ${v}`);
  }
  for (const [k, v] of [['blockRows', br], ['blockCols', bc]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${what}: ${k} must be a positive integer, got ${v}`);
  }
  if (n !== rows * cols) throw new RangeError(`${what}: ${n} values do not fill [${rows}, ${cols}]`);
}

/** The dequantization factor for a block whose absolute maximum is amax (f32 arithmetic, see the header). */
export function scaleInvFromAmax(amax: number, format: Fp8Format = 'e4m3'): number {
  if (Number.isNaN(amax) || amax === Infinity) return NaN;
  const s = Math.fround(amax / fp8Spec(format).max);
  return s > 0 ? s : 1;
}

/**
 * Quantize a row-major [rows, cols] f32 matrix in [blockRows, blockCols] blocks. Weights: 128 x 128 (the default);
 * activations: use `quantizeActivations` (1 x 128).
 */
export function quantizeBlockwise(
  x: Float32Array, rows: number, cols: number,
  opts: { blockRows?: number; blockCols?: number; format?: Fp8Format } = {},
): BlockQuantized {
  const br = opts.blockRows ?? DEFAULT_BLOCK;
  const bc = opts.blockCols ?? DEFAULT_BLOCK;
  const format = opts.format ?? 'e4m3';
  checkDims('quantizeBlockwise', x.length, rows, cols, br, bc);
  const [sr, sc] = scaleShape(rows, cols, br, bc);
  const scaleInv = new Float32Array(sr * sc);
  const codes = new Uint8Array(rows * cols);
  const scaled = new Float32Array(Math.min(bc, cols));
  for (let bi = 0; bi < sr; bi++) {
    const r0 = bi * br, r1 = Math.min(rows, r0 + br);
    for (let bj = 0; bj < sc; bj++) {
      const c0 = bj * bc, c1 = Math.min(cols, c0 + bc);
      let amax = 0;
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) {
          const a = Math.abs(x[r * cols + c]!);
          if (a > amax || Number.isNaN(a)) amax = Number.isNaN(a) || Number.isNaN(amax) ? NaN : a;
        }
      }
      const s = scaleInvFromAmax(amax, format);
      scaleInv[bi * sc + bj] = s;
      const w = c1 - c0;
      const seg = scaled.subarray(0, w);
      for (let r = r0; r < r1; r++) {
        const base = r * cols + c0;
        for (let k = 0; k < w; k++) seg[k] = x[base + k]! / s; // stored as f32: the reference divides in f32
        encodeFp8Array(seg, format, { saturate: true }, codes.subarray(base, base + w));
      }
    }
  }
  return { codes, scaleInv, rows, cols, blockRows: br, blockCols: bc, format };
}

/** Activations per 1 x 128 tile: one scale per token per 128 channels (scaleInv shape [rows, ceil(cols / 128)]). */
export function quantizeActivations(x: Float32Array, rows: number, cols: number, opts: { tile?: number; format?: Fp8Format } = {}): BlockQuantized {
  return quantizeBlockwise(x, rows, cols, { blockRows: 1, blockCols: opts.tile ?? DEFAULT_BLOCK, format: opts.format });
}

/** Weights per 128 x 128 block (scaleInv shape [ceil(rows / 128), ceil(cols / 128)]), like the released checkpoints. */
export function quantizeWeight(w: Float32Array, rows: number, cols: number, opts: { block?: number; format?: Fp8Format } = {}): BlockQuantized {
  const b = opts.block ?? DEFAULT_BLOCK;
  return quantizeBlockwise(w, rows, cols, { blockRows: b, blockCols: b, format: opts.format });
}

/**
 * Dequantize: w[i, j] = decode(codes[i, j]) * scaleInv[floor(i / blockRows), floor(j / blockCols)] in f32, as
 * DeepSeek-V3 `inference/kernel.py` weight_dequant does for a checkpoint's `weight_scale_inv`.
 */
export function dequantizeBlockwise(
  codes: Uint8Array, scaleInv: ArrayLike<number>, rows: number, cols: number,
  opts: { blockRows?: number; blockCols?: number; format?: Fp8Format; out?: Float32Array } = {},
): Float32Array {
  const br = opts.blockRows ?? DEFAULT_BLOCK;
  const bc = opts.blockCols ?? DEFAULT_BLOCK;
  checkDims('dequantizeBlockwise', codes.length, rows, cols, br, bc);
  const [sr, sc] = scaleShape(rows, cols, br, bc);
  if (scaleInv.length !== sr * sc) {
    throw new RangeError(`dequantizeBlockwise: ${scaleInv.length} scales for [${rows}, ${cols}] in ${br}x${bc} blocks; expected [${sr}, ${sc}] = ${sr * sc}`);
  }
  const table = decodeTable(opts.format ?? 'e4m3');
  const out = opts.out ?? new Float32Array(rows * cols);
  if (out.length < rows * cols) throw new RangeError(`dequantizeBlockwise: output holds ${out.length} values, need ${rows * cols}`);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / br) * sc;
    const base = r * cols;
    for (let bj = 0; bj < sc; bj++) {
      const s = scaleInv[srow + bj]!;
      const c1 = Math.min(cols, (bj + 1) * bc);
      for (let c = bj * bc; c < c1; c++) out[base + c] = table[codes[base + c]!]! * s; // f32 store rounds like the f32 multiply
    }
  }
  return out;
}

/** Per-tensor scaling (one amax for the whole tensor), for comparing against fine-grained scaling. */
export function quantizePerTensor(x: Float32Array, format: Fp8Format = 'e4m3'): { codes: Uint8Array; scaleInv: number } {
  let amax = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    if (Number.isNaN(a)) { amax = NaN; break; }
    if (a > amax) amax = a;
  }
  const s = scaleInvFromAmax(amax, format);
  const scaled = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) scaled[i] = x[i]! / s;
  return { codes: encodeFp8Array(scaled, format, { saturate: true }), scaleInv: s };
}

export function dequantizePerTensor(codes: Uint8Array, scaleInv: number, format: Fp8Format = 'e4m3'): Float32Array {
  const t = decodeTable(format);
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = t[codes[i]!]! * scaleInv;
  return out;
}
