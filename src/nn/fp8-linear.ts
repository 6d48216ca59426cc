/**
 * FP8 mixed-precision training of Linear layers: DeepSeek-V3 technical report, section 3.3 ("FP8 Training",
 * Figure 6) with the fine-grained quantization of 3.3.2 (Figure 7a) and the transposed-operand workflow of 3.5.2.
 *
 * For y = x W^T (+ b) with x [M, K] (M = tokens), W [N, K] (HF [out, in] layout), dY [M, N], the three GEMMs run on
 * E4M3 operands, each quantized along the GEMM's own reduction (K) dimension:
 *   - Fprop  y  = X · W^T      reduction over K (channels): X per 1 x 128 tile (per token, 128 channels),
 *                              W per 128 x 128 block.
 *   - Dgrad  dX = dY · W       reduction over N (output channels): dY per 1 x 128 tile (per token, 128 channels),
 *                              W per 128 x 128 block (the same blocks: a square block grid is its own transpose, so
 *                              the weight is quantized once per step and read transposed).
 *   - Wgrad  dW = dY^T · X     reduction over M (tokens): dY and X per 128 x 1 tile (128 tokens, one channel).
 *                              Per 3.5.2 the activation cached by Fprop is the 1 x 128 FP8 one; Wgrad reads it,
 *                              dequantizes, transposes and re-quantizes it into 128 x 1 tiles ('requantize-cached',
 *                              the default) — or quantizes the f32 activation afresh ('fresh').
 * Scales are online (3.3.2): scaleInv = amax / 448 per tile/block (blockwise.ts's convention, bit-identical codes).
 * Bias, its gradient, the weight gradient and the master weights stay f32 (3.3.1 keeps master weights, weight
 * gradients and optimizer states in higher precision; 3.3.3 keeps master weights and gradients in FP32 and the AdamW
 * moments in BF16 — train/optim.ts momentDtype). The bias gradient is a reduction, not a GEMM, and stays f32.
 *
 * Two GEMM engines:
 *   - 'f32' (default, fast): dequantize both operands to f32 (decode(code) * scaleInv) and run the engine's f32 GEMM.
 *     The products of two E4M3 significands (4 bits each) are exact; what differs from an FP8 GEMM with FP32
 *     accumulation (the paper's GEMM with its promotion fix) is f32 rounding only — the scales are applied to each
 *     operand before the sum instead of to the partial sums, and the summation order — relative 1e-7 effects, far
 *     below E4M3's 2^-4.
 *   - 'fp8-acc': quant/fp8-gemm.ts's emulation of the Tensor Cores' limited-precision accumulation (accBits,
 *     default 14) with promotion to FP32 every promoteEvery = 128 elements (3.3.2 "Increasing Accumulation
 *     Precision"). Faithful to that effect but slow (pure scalar code).
 *
 * Not modelled: the E5M6 format and power-of-two scales the paper uses for the cached input of the Linear after
 * attention and for the SwiGLU input of MoE up-projections (3.3.3 "Low-Precision Storage"); those inputs are treated
 * like every other activation here (E4M3, 1 x 128 tiles, amax scales).
 */
import { Tensor, empty, matmul, transpose, noGrad, isGradEnabled, reshape, sum, backendFor } from '../tensor/index.js';
import { record } from '../tensor/autograd.js';
import { ConfigError, DTypeError, ShapeError } from '../errors.js';
import type { Module } from './module.js';
import { Linear, type LinearImpl } from './linear.js';
import { type BlockQuantized, DEFAULT_BLOCK, scaleInvFromAmax, scaleShape } from '../quant/blockwise.js';
import { decodeTable, encodeFp8Array, fp8Native, type Fp8Format } from '../quant/fp8.js';
import { fp8GemmQuantized, type AccRounding } from '../quant/fp8-gemm.js';

export interface Fp8LinearOptions {
  /** FP8 format of every GEMM operand. Default 'e4m3' (the paper uses E4M3 for all tensors, 3.3.2). */
  format?: Fp8Format;
  /** Activation / gradient tile length along the GEMM's reduction dimension. Default 128. */
  tile?: number;
  /** Weight block edge. Default 128. */
  block?: number;
  /** 'f32' (default): dequantized operands through the f32 GEMM; 'fp8-acc': limited-precision accumulation. */
  gemm?: 'f32' | 'fp8-acc';
  /** For gemm 'fp8-acc' (see fp8-gemm.ts): accumulator bits (default 14), promotion interval (128), rounding. */
  accBits?: number;
  promoteEvery?: number;
  accRounding?: AccRounding;
  /** The X operand of Wgrad: re-quantize the cached FP8 activation (default, 3.5.2) or quantize f32 X afresh. */
  wgradInput?: 'requantize-cached' | 'fresh';
  /**
   * Which GEMMs run on FP8 operands (default all three). An ablation knob: a GEMM switched off runs on the f32
   * operands (gemm 'f32' only).
   */
  quantize?: { fprop?: boolean; dgrad?: boolean; wgrad?: boolean };
}

interface Resolved {
  format: Fp8Format; tile: number; block: number; gemm: 'f32' | 'fp8-acc';
  accBits?: number; promoteEvery?: number; accRounding?: AccRounding; wgradInput: 'requantize-cached' | 'fresh';
  fprop: boolean; dgrad: boolean; wgrad: boolean;
}

function resolve(o: Fp8LinearOptions): Resolved {
  const format = o.format ?? 'e4m3';
  if (format !== 'e4m3' && format !== 'e5m2') throw new ConfigError(`fp8Linear: format must be 'e4m3' or 'e5m2', got '${String(format)}'`);
  const tile = o.tile ?? DEFAULT_BLOCK;
  const block = o.block ?? DEFAULT_BLOCK;
  for (const [k, v] of [['tile', tile], ['block', block]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`fp8Linear: ${k} must be a positive integer, got ${v}`);
  }
  const gemm = o.gemm ?? 'f32';
  if (gemm !== 'f32' && gemm !== 'fp8-acc') throw new ConfigError(`fp8Linear: gemm must be 'f32' or 'fp8-acc', got '${String(gemm)}'`);
  const wgradInput = o.wgradInput ?? 'requantize-cached';
  if (wgradInput !== 'requantize-cached' && wgradInput !== 'fresh') {
    throw new ConfigError(`fp8Linear: wgradInput must be 'requantize-cached' or 'fresh', got '${String(wgradInput)}'`);
  }
  const q = o.quantize ?? {};
  const fprop = q.fprop ?? true, dgrad = q.dgrad ?? true, wgrad = q.wgrad ?? true;
  if (gemm === 'fp8-acc' && !(fprop && dgrad && wgrad)) throw new ConfigError(`fp8Linear: quantize can switch GEMMs off only with gemm 'f32'`);
  return { format, tile, block, gemm, accBits: o.accBits, promoteEvery: o.promoteEvery, accRounding: o.accRounding, wgradInput, fprop, dgrad, wgrad };
}

// ------------------------------------------------------------------------------------------------------------------
// Quantization (bit-identical to blockwise.ts's quantizeBlockwise / dequantizeBlockwise, in fewer passes: one amax
// pass, one scaling pass, one bulk encode, one decode pass).

let scratch = new Float32Array(0);
let scratchCodes = new Uint8Array(0);

/**
 * Quantize row-major x [rows, cols] in [br, bc] blocks (scaleInv = amax / fp8max per block, f32 arithmetic).
 * Writes the dequantized values (decode(code) * scaleInv, f32) into `deq` when given. Codes are a fresh array when
 * `keepCodes`, else a scratch buffer valid until the next call.
 */
export function quantizeTiles(
  x: Float32Array, rows: number, cols: number, br: number, bc: number, format: Fp8Format,
  opts: { deq?: Float32Array; keepCodes?: boolean } = {},
): BlockQuantized {
  const n = rows * cols;
  if (x.length < n) throw new ShapeError(`quantizeTiles: ${x.length} values do not fill [${rows}, ${cols}]`);
  const nat = fp8Native();
  if (!nat || !nat.fp8QuantizeTiles || n < 4096) return quantizeTilesJs(x, rows, cols, br, bc, format, opts);
  const [sr, sc] = scaleShape(rows, cols, br, bc);
  if (opts.deq && opts.deq.length < n) throw new ShapeError(`quantizeTiles: output holds ${opts.deq.length} values, need ${n}`);
  const scaleInv = new Float32Array(sr * sc);
  let codes: Uint8Array;
  if (opts.keepCodes) codes = new Uint8Array(n);
  else {
    if (scratchCodes.length < n) scratchCodes = new Uint8Array(n);
    codes = scratchCodes.subarray(0, n);
  }
  // native/fp8.c: the same arithmetic (amax, f32 scale, f32 division, RNE saturating encode, f32 dequantization)
  nat.fp8QuantizeTiles(x, rows, cols, br, bc, format === 'e4m3' ? 0 : 1, scaleInv, codes, opts.deq ?? null);
  return { codes, scaleInv, rows, cols, blockRows: br, blockCols: bc, format };
}

/** quantizeTiles in TypeScript: the reference the native kernel is tested against, and its fallback. */
export function quantizeTilesJs(
  x: Float32Array, rows: number, cols: number, br: number, bc: number, format: Fp8Format,
  opts: { deq?: Float32Array; keepCodes?: boolean } = {},
): BlockQuantized {
  const n = rows * cols;
  if (x.length < n) throw new ShapeError(`quantizeTiles: ${x.length} values do not fill [${rows}, ${cols}]`);
  const [sr, sc] = scaleShape(rows, cols, br, bc);
  const amax = new Float32Array(sr * sc);
  const nan = new Uint8Array(sr * sc);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / br) * sc, base = r * cols;
    for (let bj = 0; bj < sc; bj++) {
      const c1 = Math.min(cols, (bj + 1) * bc);
      let m = amax[srow + bj]!, bad = 0;
      for (let c = bj * bc; c < c1; c++) {
        const a = Math.abs(x[base + c]!);
        if (a > m) m = a;
        else if (a !== a) bad = 1;
      }
      amax[srow + bj] = m;
      if (bad) nan[srow + bj] = 1;
    }
  }
  const scaleInv = new Float32Array(sr * sc);
  for (let i = 0; i < sr * sc; i++) scaleInv[i] = nan[i] ? NaN : scaleInvFromAmax(amax[i]!, format);
  if (scratch.length < n) scratch = new Float32Array(n);
  const scaled = scratch.subarray(0, n);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / br) * sc, base = r * cols;
    for (let bj = 0; bj < sc; bj++) {
      const s = scaleInv[srow + bj]!;
      const c1 = Math.min(cols, (bj + 1) * bc);
      for (let c = bj * bc; c < c1; c++) scaled[base + c] = x[base + c]! / s; // f32 store: the reference divides in f32
    }
  }
  let codes: Uint8Array;
  if (opts.keepCodes) codes = new Uint8Array(n);
  else {
    if (scratchCodes.length < n) scratchCodes = new Uint8Array(n);
    codes = scratchCodes.subarray(0, n);
  }
  encodeFp8Array(scaled, format, { saturate: true }, codes);
  const deq = opts.deq;
  if (deq) {
    if (deq.length < n) throw new ShapeError(`quantizeTiles: output holds ${deq.length} values, need ${n}`);
    const table = decodeTable(format);
    for (let r = 0; r < rows; r++) {
      const srow = Math.floor(r / br) * sc, base = r * cols;
      for (let bj = 0; bj < sc; bj++) {
        const s = scaleInv[srow + bj]!;
        const c1 = Math.min(cols, (bj + 1) * bc);
        for (let c = bj * bc; c < c1; c++) deq[base + c] = table[codes[base + c]!]! * s;
      }
    }
  }
  return { codes, scaleInv, rows, cols, blockRows: br, blockCols: bc, format };
}

/** [rows, cols] -> [cols, rows]: the backend's strided copy (native when loaded), else blocked for the cache. */
export function transposeF32(src: Float32Array, rows: number, cols: number, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(rows * cols);
  if (rows * cols >= 4096) {
    backendFor('f32').copy({ data: dst, offset: 0, strides: [1, rows] }, { data: src, offset: 0, strides: [cols, 1] }, [rows, cols]);
    return dst;
  }
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c]!;
    }
  }
  return dst;
}

/** The transpose of a block-quantized matrix: codes transposed, scale grid transposed, block shape swapped. */
function transposeQuantized(q: BlockQuantized): BlockQuantized {
  const codes = new Uint8Array(q.codes.length);
  for (let r = 0; r < q.rows; r++) for (let c = 0; c < q.cols; c++) codes[c * q.rows + r] = q.codes[r * q.cols + c]!;
  const [sr, sc] = scaleShape(q.rows, q.cols, q.blockRows, q.blockCols);
  const scaleInv = new Float32Array(sr * sc);
  for (let i = 0; i < sr; i++) for (let j = 0; j < sc; j++) scaleInv[j * sr + i] = q.scaleInv[i * sc + j]!;
  return { codes, scaleInv, rows: q.cols, cols: q.rows, blockRows: q.blockCols, blockCols: q.blockRows, format: q.format };
}

function contiguousData(t: Tensor): { data: Float32Array; owned: Tensor | null } {
  const c = t.isContiguous() ? t : noGrad(() => t.contiguous());
  return { data: (c.raw as Float32Array).subarray(c.offset, c.offset + c.size), owned: c === t ? null : c };
}

function f32Tensor(shape: number[]): Tensor {
  return empty(shape, 'f32');
}

// ------------------------------------------------------------------------------------------------------------------
// The op.

/**
 * y = x W^T (+ b) with the Fprop, Dgrad and Wgrad GEMMs on FP8-quantized operands (see the header). x [..., K] f32,
 * weight [N, K] f32, bias [N] f32 or null. Differentiable in all three.
 */
export function fp8Linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Fp8LinearOptions = {}): Tensor {
  const o = resolve(options);
  for (const [k, t] of [['x', x], ['weight', weight], ['bias', bias]] as const) {
    if (t && t.dtype !== 'f32') throw new DTypeError(`fp8Linear: ${k} must be f32 (the FP8 path quantizes from f32 master values), got ${t.describe()}`);
  }
  if (weight.ndim !== 2) throw new ShapeError(`fp8Linear: weight must be [out, in], got ${weight.describe()}`);
  const [N, K] = weight.shape as [number, number];
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== K) throw new ShapeError(`fp8Linear: x ${x.describe()} does not end in the weight's in-features ${K} (weight ${weight.describe()})`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== N)) throw new ShapeError(`fp8Linear: bias ${bias.describe()} does not match out-features ${N}`);
  const lead = x.shape.slice(0, -1);
  const M = lead.reduce((a, d) => a * d, 1);
  const keepCodes = o.gemm === 'fp8-acc';

  const xs = contiguousData(x);
  const ws = contiguousData(weight);
  // Fprop operands: X per 1 x tile, W per block x block (or f32 copies where the ablation switches FP8 off).
  const xq = f32Tensor([M, K]);
  const qx = o.fprop ? quantizeTiles(xs.data, M, K, 1, o.tile, o.format, { deq: xq.raw as Float32Array, keepCodes }) : null;
  if (!o.fprop) (xq.raw as Float32Array).set(xs.data);
  const wq = o.fprop || o.dgrad ? f32Tensor([N, K]) : null;
  const qw = wq ? quantizeTiles(ws.data, N, K, o.block, o.block, o.format, { deq: wq.raw as Float32Array, keepCodes }) : null;
  let wRaw: Tensor | null = null;
  if (!o.fprop || !o.dgrad) { wRaw = f32Tensor([N, K]); (wRaw.raw as Float32Array).set(ws.data); }
  const out = noGrad(() => {
    let y2: Tensor;
    if (o.gemm === 'f32') {
      const wt = transpose(o.fprop ? wq! : wRaw!, 0, 1);
      y2 = matmul(xq, wt);
      wt.dispose();
    } else {
      y2 = f32Tensor([M, N]);
      (y2.raw as Float32Array).set(fp8GemmQuantized(qx!, qw!, gemmOpts(o)));
    }
    if (bias) { const yb = y2.add(bias); y2.dispose(); y2 = yb; }
    const y = reshape(y2, [...lead, N]);
    if (y !== y2) { /* a view shares the storage; the view keeps it alive */ y2.dispose(); }
    return y;
  });
  ws.owned?.dispose();
  const needGrad = isGradEnabled() && (x.requiresGrad || weight.requiresGrad || (bias?.requiresGrad ?? false));
  // Wgrad on f32 X ('fresh' input, or the ablation's unquantized Wgrad) needs the f32 activation in backward: keep a
  // copy (x itself may be disposed before backward). With Fprop unquantized, xq already is that copy.
  const wantRawX = (o.wgradInput === 'fresh' || !o.wgrad) && o.fprop;
  const xKeep = needGrad && wantRawX && weight.requiresGrad ? Float32Array.from(xs.data) : null;
  xs.owned?.dispose();
  if (!needGrad) { xq.dispose(); wq?.dispose(); wRaw?.dispose(); return out; }

  return record(out, 'fp8_linear', [x, weight, bias], (g) => {
    const gs = contiguousData(g);
    const gd = gs.data;
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (x.requiresGrad) {
      // Dgrad: dX [M, K] = dY [M, N] · W [N, K]; reduction over N: dY per 1 x tile along N, W's blocks transposed.
      const gq = f32Tensor([M, N]);
      const qg = o.dgrad ? quantizeTiles(gd, M, N, 1, o.tile, o.format, { deq: gq.raw as Float32Array, keepCodes }) : null;
      if (!o.dgrad) (gq.raw as Float32Array).set(gd);
      let dx2: Tensor;
      if (o.gemm === 'f32') dx2 = matmul(gq, o.dgrad ? wq! : wRaw!);
      else {
        dx2 = f32Tensor([M, K]);
        (dx2.raw as Float32Array).set(fp8GemmQuantized(qg!, transposeQuantized(qw!), gemmOpts(o)));
      }
      gq.dispose();
      dx = reshape(dx2, x.shape as number[]);
      if (dx !== dx2) dx2.dispose();
    }
    if (weight.requiresGrad) {
      // Wgrad: dW [N, K] = dY^T [N, M] · X [M, K]; reduction over M (tokens): both operands per 128 x 1 tile, done as
      // 1 x tile tiles of the transposed matrices.
      const gTq = f32Tensor([N, M]);
      const xTq = f32Tensor([K, M]);
      const xSrc = xKeep ?? (xq.raw as Float32Array).subarray(0, M * K);
      let qgT: BlockQuantized | null = null, qxT: BlockQuantized | null = null;
      if (o.wgrad) {
        qgT = quantizeTiles(transposeF32(gd, M, N), N, M, 1, o.tile, o.format, { deq: gTq.raw as Float32Array, keepCodes });
        qxT = quantizeTiles(transposeF32(xSrc, M, K), K, M, 1, o.tile, o.format, { deq: xTq.raw as Float32Array, keepCodes });
      } else {
        transposeF32(gd, M, N, gTq.raw as Float32Array);
        transposeF32(xSrc, M, K, xTq.raw as Float32Array);
      }
      if (o.gemm === 'f32') {
        const b = transpose(xTq, 0, 1);
        dw = matmul(gTq, b);
        b.dispose();
      } else {
        dw = f32Tensor([N, K]);
        (dw.raw as Float32Array).set(fp8GemmQuantized(qgT!, qxT!, gemmOpts(o)));
      }
      gTq.dispose();
      xTq.dispose();
    }
    if (bias && bias.requiresGrad) {
      const g2 = reshape(g, [M, N]);
      db = sum(g2, 0);
      if (g2 !== g) g2.dispose();
    }
    gs.owned?.dispose();
    return [dx, dw, db];
  });
}

function gemmOpts(o: Resolved): { accBits?: number; promoteEvery?: number; accRounding?: AccRounding } {
  return { accBits: o.accBits, promoteEvery: o.promoteEvery, accRounding: o.accRounding };
}

// ------------------------------------------------------------------------------------------------------------------
// BF16 operands: the baseline the paper compares FP8 against (3.3, "relative loss error ... below 0.25%" vs BF16).

/** dst[i] = bf16(src[i]) as f32 (round to nearest even, through the engine's f32 <-> bf16 casts). */
function roundBf16(src: Float32Array, dst: Float32Array): void {
  const n = src.length;
  const bits = new Uint16Array(n);
  const be = backendFor('f32');
  be.cast(bits, 'bf16', src, 'f32', n);
  be.cast(dst, 'f32', bits, 'bf16', n);
}

/**
 * y = x W^T (+ b) with the Fprop, Dgrad and Wgrad GEMMs on BF16-rounded operands and f32 accumulation (a BF16
 * mixed-precision Linear: weights, activations and output gradients cast to BF16 for the GEMM, master weights and
 * gradients f32). Used as a yardstick next to fp8Linear (bench/fp8-train.ts).
 */
export function bf16Linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  for (const [k, t] of [['x', x], ['weight', weight], ['bias', bias]] as const) {
    if (t && t.dtype !== 'f32') throw new DTypeError(`bf16Linear: ${k} must be f32, got ${t.describe()}`);
  }
  if (weight.ndim !== 2) throw new ShapeError(`bf16Linear: weight must be [out, in], got ${weight.describe()}`);
  const [N, K] = weight.shape as [number, number];
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== K) throw new ShapeError(`bf16Linear: x ${x.describe()} does not end in the weight's in-features ${K}`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== N)) throw new ShapeError(`bf16Linear: bias ${bias.describe()} does not match out-features ${N}`);
  const lead = x.shape.slice(0, -1);
  const M = lead.reduce((a, d) => a * d, 1);
  const xs = contiguousData(x), ws = contiguousData(weight);
  const xq = f32Tensor([M, K]), wq = f32Tensor([N, K]);
  roundBf16(xs.data, xq.raw as Float32Array);
  roundBf16(ws.data, wq.raw as Float32Array);
  xs.owned?.dispose(); ws.owned?.dispose();
  const out = noGrad(() => {
    const wt = transpose(wq, 0, 1);
    let y2 = matmul(xq, wt);
    wt.dispose();
    if (bias) { const yb = y2.add(bias); y2.dispose(); y2 = yb; }
    const y = reshape(y2, [...lead, N]);
    y2.dispose();
    return y;
  });
  const needGrad = isGradEnabled() && (x.requiresGrad || weight.requiresGrad || (bias?.requiresGrad ?? false));
  if (!needGrad) { xq.dispose(); wq.dispose(); return out; }
  return record(out, 'bf16_linear', [x, weight, bias], (g) => {
    const gs = contiguousData(g);
    const gq = f32Tensor([M, N]);
    roundBf16(gs.data, gq.raw as Float32Array);
    gs.owned?.dispose();
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (x.requiresGrad) { const d = matmul(gq, wq); dx = reshape(d, x.shape as number[]); d.dispose(); }
    if (weight.requiresGrad) { const gt = transpose(gq, 0, 1); dw = matmul(gt, xq); gt.dispose(); }
    if (bias && bias.requiresGrad) { const g2 = reshape(g, [M, N]); db = sum(g2, 0); g2.dispose(); }
    gq.dispose();
    return [dx, dw, db];
  });
}

/** The LinearImpl for bf16Linear. */
export class Bf16LinearImpl implements LinearImpl {
  readonly name = 'bf16-gemm';
  forward(x: Tensor, layer: Linear): Tensor {
    return bf16Linear(x, layer.weight, layer.bias);
  }
}

/** Install BF16-operand GEMMs on the same Linear layers FP8 training would use; returns their names. */
export function enableBf16Gemms(model: Module): string[] {
  const impl = new Bf16LinearImpl();
  const chosen = linearLayers(model).filter(([n]) => isFp8Layer(n));
  const clash = chosen.filter(([, l]) => l.impl && !(l.impl instanceof Bf16LinearImpl));
  if (clash.length) throw new ConfigError(`enableBf16Gemms: ${clash.map(([n, l]) => `${n} (${l.impl!.name})`).join(', ')} already use another Linear implementation`);
  for (const [, l] of chosen) l.impl = impl;
  return chosen.map(([n]) => n);
}

// ------------------------------------------------------------------------------------------------------------------
// Installing it on a model.

/** The LinearImpl that routes a Linear's product through fp8Linear. */
export class Fp8LinearImpl implements LinearImpl {
  readonly name = 'fp8-train';
  constructor(readonly options: Fp8LinearOptions = {}) {
    resolve(options); // report option errors at install time
  }
  forward(x: Tensor, layer: Linear): Tensor {
    return fp8Linear(x, layer.weight, layer.bias, this.options);
  }
}

/**
 * Which Linear layers run in FP8 (DeepSeek-V3 3.3.1: "the embedding module, the output head, MoE gating modules,
 * normalization operators, and attention operators" stay in BF16/FP32). Every Linear except the output head
 * (`lm_head`; the MTP modules' shared_head shares it) qualifies: attention projections, dense MLPs, routed and shared
 * experts, MTP eh_proj. Embeddings, the MoE gate, norms and attention's softmax/score products are not Linear layers.
 */
export function isFp8Layer(name: string): boolean {
  const parts = name.split('.');
  return !parts.includes('lm_head') && !parts.includes('shared_head') && !parts.includes('embed_tokens') && parts[parts.length - 1] !== 'gate';
}

function linearLayers(model: Module): [string, Linear][] {
  return model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear);
}

/**
 * Install FP8 training on the qualifying Linear layers of `model` (see isFp8Layer); returns their names (HF paths).
 * A layer that already carries another impl (e.g. packed inference weights) is an error rather than silently
 * replaced.
 */
export function enableFp8Training(model: Module, options: Fp8LinearOptions = {}): string[] {
  const impl = new Fp8LinearImpl(options);
  const chosen = linearLayers(model).filter(([n]) => isFp8Layer(n));
  const clash = chosen.filter(([, l]) => l.impl && !(l.impl instanceof Fp8LinearImpl));
  if (clash.length) throw new ConfigError(`enableFp8Training: ${clash.map(([n, l]) => `${n} (${l.impl!.name})`).join(', ')} already use another Linear implementation`);
  for (const [, l] of chosen) l.impl = impl;
  return chosen.map(([n]) => n);
}

/** Remove FP8 training from every Linear of `model` that has it; returns their names. */
export function disableFp8Training(model: Module): string[] {
  const out: string[] = [];
  for (const [n, l] of linearLayers(model)) {
    if (l.impl instanceof Fp8LinearImpl) { l.impl = null; out.push(n); }
  }
  return out;
}

/** Names of the Linear layers of `model` currently running in FP8. */
export function fp8Layers(model: Module): string[] {
  return linearLayers(model).filter(([, l]) => l.impl instanceof Fp8LinearImpl).map(([n]) => n);
}
