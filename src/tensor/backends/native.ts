/**
 * The native backend: the C kernels of native/kernels.c (AVX2+FMA or portable C, chosen at run time,
 * multithreaded on the addon's pool) behind the Backend interface of ../backend.ts.
 *
 * The addon (build/Release/r1native.node, built by `node-gyp rebuild` from binding.gyp) takes typed
 * arrays and numbers only: strided operands are packed into one Float64Array "geometry"
 * [ndim, shape..., then per operand: offset, strides...] and op names into small integer codes
 * (the tables below must match the enums in native/kernels.h). The addon checks every range it will
 * touch and throws RangeError/TypeError instead of reading out of bounds.
 *
 * Routing: the native kernels implement Float32Array. Float64Array arguments, the cast pairs that do
 * not involve f32 <-> {f64, bf16, f16}, and argument errors the reference reports with its own typed
 * errors (missing scalar parameters, mismatched stride lists, argmax over an empty axis, k > n) go to
 * jsBackend, so both backends answer the same way.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  AnyArray, Backend, BinaryOp, CompareOp, FArray, ReduceOp, RopeLayout, Strided, UnaryGradOp, UnaryOp,
} from '../backend.js';
import { jsBackend } from './js.js';

export interface NativeBackend extends Backend {
  /** SIMD level the kernels run with: 'avx512bf16' | 'avx512' | 'avx2' | 'scalar' (R1_ISA caps it). */
  isa: string;
  /** Whether fp8 panels decode with GFNI byte maps (native/e4m3_bf16.h; bit-identical to the table decode, fewer
   * operations): AVX512_BF16 CPUs with GFNI, unless env R1_NO_GFNI is set. */
  gfni: boolean;
  /** Threads of the native pool (R1_THREADS sets the initial count). */
  getThreads(): number;
  setThreads(n: number): void;
  /**
   * Greedy decoding's pick over rows of logits [rows, V], one pass over each row: ids[r] = the argmax (the first of
   * equal maxima, the first NaN where there is one: as argReduce), lse[r] and loss[r] = lse[r] - logits[r, ids[r]]
   * (the pick's -logprob): as crossEntropy with the argmax as target, bit for bit.
   */
  greedyPick(ids: Int32Array, loss: Float32Array, lse: Float32Array, logits: Float32Array, rows: number, V: number): void;
}

type Arr = AnyArray;
/** The addon's exports (see native/addon.c). */
interface Addon {
  copy(dst: Arr, src: Arr, geom: Float64Array): void;
  cast(dst: Arr, dstCode: number, src: Arr, srcCode: number, n: number): void;
  unary(op: number, dst: Float32Array, src: Float32Array, n: number, s: number, s2: number): void;
  unaryGrad(op: number, dx: Float32Array, x: Float32Array, dy: Float32Array, n: number): void;
  binary(op: number, dst: Float32Array, a: Float32Array, b: Float32Array, geom: Float64Array): void;
  compare(op: number, dst: Uint8Array, a: Float32Array, b: Float32Array, geom: Float64Array): void;
  where(dst: Float32Array, cond: Uint8Array, a: Float32Array, b: Float32Array, geom: Float64Array): void;
  reduce(op: number, dst: Float32Array, src: Float32Array, outer: number, n: number, inner: number): void;
  argReduce(isMin: boolean, dst: Int32Array, src: Float32Array, outer: number, n: number, inner: number): void;
  matmul(c: Float32Array, cOff: number, a: Float32Array, aOff: number, aBS: number, lda: number, tA: boolean,
    b: Float32Array, bOff: number, bBS: number, ldb: number, tB: boolean,
    batch: number, m: number, n: number, k: number, acc: boolean): void;
  softmax(dst: Float32Array, src: Float32Array, rows: number, cols: number, log: boolean): void;
  softmaxGrad(dx: Float32Array, y: Float32Array, dy: Float32Array, rows: number, cols: number, log: boolean): void;
  rmsnorm(y: Float32Array, rstd: Float32Array, x: Float32Array, w: Float32Array, rows: number, cols: number, eps: number): void;
  rmsnormGrad(dx: Float32Array, dw: Float32Array, dy: Float32Array, x: Float32Array, w: Float32Array, rstd: Float32Array,
    rows: number, cols: number): void;
  rope(dst: Float32Array, x: Float32Array, cos: Float32Array, sin: Float32Array, pos: Int32Array,
    T: number, H: number, D: number, R: number, interleaved: boolean, inverse: boolean): void;
  crossEntropy(loss: Float32Array, lse: Float32Array, logits: Float32Array, targets: Int32Array, rows: number, V: number, ignore: number): void;
  greedyPick(ids: Int32Array, loss: Float32Array, lse: Float32Array, logits: Float32Array, rows: number, V: number): void;
  crossEntropyGrad(dlogits: Float32Array, logits: Float32Array, lse: Float32Array, targets: Int32Array, dloss: Float32Array,
    rows: number, V: number, ignore: number): void;
  attention(out: Float32Array, lse: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array,
    mask: Float32Array | null, maskGeom: Float64Array | null,
    B: number, Hq: number, Hkv: number, Sq: number, Sk: number, Dk: number, Dv: number, scale: number, causal: boolean,
    kvStrides: Float64Array | null): void;
  attentionRagged(out: Float32Array, q: Float32Array, kNew: Float32Array, vNew: Float32Array | null,
    kCaches: (Float32Array | Uint16Array)[], vCaches: (Float32Array | Uint16Array)[] | null, geom: Float64Array, Hq: number, Hkv: number, Dk: number,
    Dv: number, scale: number, valuesInKeys: boolean): void;
  attentionGrad(dq: Float32Array, dk: Float32Array, dv: Float32Array, dout: Float32Array, q: Float32Array, k: Float32Array,
    v: Float32Array, out: Float32Array, lse: Float32Array, mask: Float32Array | null, maskGeom: Float64Array | null,
    B: number, Hq: number, Hkv: number, Sq: number, Sk: number, Dk: number, Dv: number, scale: number, causal: boolean): void;
  siluMul(y: Float32Array, a: Float32Array, b: Float32Array, n: number): void;
  siluMulGrad(da: Float32Array, db: Float32Array, a: Float32Array, b: Float32Array, dy: Float32Array, n: number): void;
  indexSelect(dst: Arr, src: Arr, idx: Int32Array, outer: number, nSrc: number, nIdx: number, inner: number): void;
  indexAdd(dst: Float32Array, src: Float32Array, idx: Int32Array, outer: number, nDst: number, nIdx: number, inner: number): void;
  gather(dst: Arr, src: Arr, idx: Int32Array, outer: number, nSrc: number, nIdx: number, inner: number): void;
  scatter(dst: Float32Array, src: Float32Array, idx: Int32Array, outer: number, nDst: number, nIdx: number, inner: number, acc: boolean): void;
  topk(values: Float32Array, indices: Int32Array, src: Float32Array, rows: number, n: number, k: number, largest: boolean): void;
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number,
    lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number): void;
  isa(): string;
  gfni(): boolean;
  getThreads(): number;
  setThreads(n: number): void;
}

// Op codes: the order of the enums in native/kernels.h.
const UNARY: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, abs: 5, square: 6, sigmoid: 7, tanh: 8, relu: 9, silu: 10,
  gelu: 11, gelu_tanh: 12, pow_scalar: 13, add_scalar: 14, mul_scalar: 15, clamp: 16,
};
const UNARY_GRAD: Record<UnaryGradOp, number> = { sigmoid: 0, tanh: 1, relu: 2, silu: 3, gelu: 4, gelu_tanh: 5 };
const BINARY: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6 };
const COMPARE: Record<CompareOp, number> = { eq: 0, ne: 1, lt: 2, le: 3, gt: 4, ge: 5 };
const REDUCE: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2 };
/** Cast codes (T_F32.. in kernels.h) with the array kind each needs. */
const CAST_CODE: Record<string, number> = { f32: 0, f64: 1, bf16: 2, f16: 3 };

const MAX_DIMS = 16;

function f32(a: unknown): a is Float32Array {
  return a instanceof Float32Array;
}

/** Where the addon should be: <package root>/build/Release/r1native.node, found by walking up from
 * this module (dist/src/tensor/backends/ when compiled, src/tensor/backends/ when run from source). */
function addonPath(): string | null {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, 'package.json'))) {
      const p = join(d, 'build', 'Release', 'r1native.node');
      return existsSync(p) ? p : null;
    }
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  return null;
}

let cached: NativeBackend | null | undefined;
let loadError: string | null = null;
let rawModule: Record<string, unknown> | null = null;

/**
 * The addon's raw exports (after loadNative() succeeded), for modules that call kernels outside the Backend
 * interface (quant/fp8.ts's bulk codecs, quant/qgemm.ts's packed products); null when the addon is not loaded.
 */
export function nativeAddonExports(): Record<string, unknown> | null {
  return loadNative() ? rawModule : null;
}

/** Why the last loadNative() returned null (missing file or the loader's message), else null. */
export function nativeLoadError(): string | null {
  return loadError;
}

/** The native backend, or null (cached) when the addon is not built or fails to load. */
export function loadNative(): NativeBackend | null {
  if (cached !== undefined) return cached;
  const p = addonPath();
  if (!p) {
    loadError = 'build/Release/r1native.node not found (run `npm run build`)';
    cached = null;
    return null;
  }
  try {
    const req = createRequire(import.meta.url);
    rawModule = req(p) as Record<string, unknown>;
    cached = wrap(rawModule as unknown as Addon);
  } catch (e) {
    loadError = e instanceof Error ? e.message : String(e);
    cached = null;
  }
  return cached;
}

function wrap(A: Addon): NativeBackend {
  // Reused geometry buffer (JS is single-threaded and the addon reads it synchronously).
  const geom = new Float64Array(1 + MAX_DIMS + 4 * (1 + MAX_DIMS));
  const maskGeom = new Float64Array(5);

  /** Packs shape and operands into `geom`; false when the addon cannot take it (js then decides). */
  function pack(shape: readonly number[], ops: readonly { offset: number; strides: readonly number[] }[]): boolean {
    const nd = shape.length;
    if (nd > MAX_DIMS) return false;
    geom[0] = nd;
    for (let d = 0; d < nd; d++) geom[1 + d] = shape[d]!;
    let p = 1 + nd;
    for (const o of ops) {
      if (o.strides.length !== nd) return false;
      geom[p++] = o.offset;
      for (let d = 0; d < nd; d++) geom[p++] = o.strides[d]!;
    }
    return true;
  }

  function packMask(mask: Strided<FArray> | null): boolean {
    if (!mask) return true;
    if (!f32(mask.data) || mask.strides.length !== 4) return false;
    maskGeom[0] = mask.offset;
    for (let d = 0; d < 4; d++) maskGeom[1 + d] = mask.strides[d]!;
    return true;
  }

  const be: NativeBackend = {
    name: 'native',
    isa: A.isa(),
    gfni: A.gfni(),
    getThreads: () => A.getThreads(),
    setThreads: (n: number) => A.setThreads(n),
    greedyPick: (ids, loss, lse, logits, rows, V) => A.greedyPick(ids, loss, lse, logits, rows, V),

    copy(dst, src, shape) {
      if (dst.data.constructor !== src.data.constructor || !pack(shape, [dst, src])) return jsBackend.copy(dst, src, shape);
      A.copy(dst.data, src.data, geom);
    },

    cast(dst, dstDtype, src, srcDtype, n) {
      const dc = CAST_CODE[dstDtype], sc = CAST_CODE[srcDtype];
      const ok = dc !== undefined && sc !== undefined && (dc === 0 || sc === 0) &&
        kindOk(dstDtype, dst) && kindOk(srcDtype, src);
      if (!ok) return jsBackend.cast(dst, dstDtype, src, srcDtype, n);
      A.cast(dst, dc, src, sc, n);
    },

    unary(op, dst, src, n, s, s2) {
      const needS = op === 'pow_scalar' || op === 'add_scalar' || op === 'mul_scalar' || op === 'clamp';
      if (!f32(dst) || !f32(src) || (needS && (s === undefined || (op === 'clamp' && s2 === undefined))) || UNARY[op] === undefined) {
        return jsBackend.unary(op, dst, src, n, s, s2);
      }
      A.unary(UNARY[op], dst, src, n, s ?? 0, s2 ?? 0);
    },

    unaryGrad(op, dx, x, dy, n) {
      if (!f32(dx) || !f32(x) || !f32(dy) || UNARY_GRAD[op] === undefined) return jsBackend.unaryGrad(op, dx, x, dy, n);
      A.unaryGrad(UNARY_GRAD[op], dx, x, dy, n);
    },

    binary(op, dst, a, b, shape) {
      if (!f32(dst) || !f32(a.data) || !f32(b.data) || BINARY[op] === undefined || !pack(shape, [a, b])) {
        return jsBackend.binary(op, dst, a, b, shape);
      }
      A.binary(BINARY[op], dst, a.data, b.data, geom);
    },

    compare(op, dst, a, b, shape) {
      if (!(dst instanceof Uint8Array) || !f32(a.data) || !f32(b.data) || COMPARE[op] === undefined || !pack(shape, [a, b])) {
        return jsBackend.compare(op, dst, a, b, shape);
      }
      A.compare(COMPARE[op], dst, a.data, b.data, geom);
    },

    where(dst, cond, a, b, shape) {
      if (!f32(dst) || !(cond.data instanceof Uint8Array) || !f32(a.data) || !f32(b.data) || !pack(shape, [cond, a, b])) {
        return jsBackend.where(dst, cond, a, b, shape);
      }
      A.where(dst, cond.data, a.data, b.data, geom);
    },

    reduce(op, dst, src, outer, n, inner) {
      if (!f32(dst) || !f32(src) || REDUCE[op] === undefined) return jsBackend.reduce(op, dst, src, outer, n, inner);
      A.reduce(REDUCE[op], dst, src, outer, n, inner);
    },

    argReduce(op, dst, src, outer, n, inner) {
      // argmax of an empty axis has no answer: the reference raises its ShapeError.
      if (!f32(src) || !(dst instanceof Int32Array) || (n === 0 && outer * inner > 0)) {
        return jsBackend.argReduce(op, dst, src, outer, n, inner);
      }
      A.argReduce(op === 'argmin', dst, src, outer, n, inner);
    },

    matmul(c, cOffset, a, aOffset, aBatchStride, lda, transA, b, bOffset, bBatchStride, ldb, transB, batch, m, n, k, accumulate) {
      if (!f32(c) || !f32(a) || !f32(b)) {
        return jsBackend.matmul(c, cOffset, a, aOffset, aBatchStride, lda, transA, b, bOffset, bBatchStride, ldb, transB,
          batch, m, n, k, accumulate);
      }
      A.matmul(c, cOffset, a, aOffset, aBatchStride, lda, transA, b, bOffset, bBatchStride, ldb, transB, batch, m, n, k, accumulate);
    },

    softmax(dst, src, rows, cols, log) {
      if (!f32(dst) || !f32(src)) return jsBackend.softmax(dst, src, rows, cols, log);
      A.softmax(dst, src, rows, cols, log);
    },

    softmaxGrad(dx, y, dy, rows, cols, log) {
      if (!f32(dx) || !f32(y) || !f32(dy)) return jsBackend.softmaxGrad(dx, y, dy, rows, cols, log);
      A.softmaxGrad(dx, y, dy, rows, cols, log);
    },

    rmsnorm(y, rstd, x, w, rows, cols, eps) {
      if (!f32(y) || !f32(rstd) || !f32(x) || !f32(w)) return jsBackend.rmsnorm(y, rstd, x, w, rows, cols, eps);
      A.rmsnorm(y, rstd, x, w, rows, cols, eps);
    },

    rmsnormGrad(dx, dw, dy, x, w, rstd, rows, cols) {
      if (!f32(dx) || !f32(dw) || !f32(dy) || !f32(x) || !f32(w) || !f32(rstd)) {
        return jsBackend.rmsnormGrad(dx, dw, dy, x, w, rstd, rows, cols);
      }
      A.rmsnormGrad(dx, dw, dy, x, w, rstd, rows, cols);
    },

    rope(dst, x, cos, sin, pos, T, H, D, R, layout: RopeLayout, inverse) {
      if (!f32(dst) || !f32(x) || !f32(cos) || !f32(sin) || (layout !== 'half' && layout !== 'interleaved')) {
        return jsBackend.rope(dst, x, cos, sin, pos, T, H, D, R, layout, inverse);
      }
      A.rope(dst, x, cos, sin, pos, T, H, D, R, layout === 'interleaved', inverse);
    },

    crossEntropy(loss, lse, logits, targets, rows, V, ignoreIndex) {
      if (!f32(loss) || !f32(lse) || !f32(logits)) return jsBackend.crossEntropy(loss, lse, logits, targets, rows, V, ignoreIndex);
      A.crossEntropy(loss, lse, logits, targets, rows, V, ignoreIndex);
    },

    crossEntropyGrad(dlogits, logits, lse, targets, dloss, rows, V, ignoreIndex) {
      if (!f32(dlogits) || !f32(logits) || !f32(lse) || !f32(dloss)) {
        return jsBackend.crossEntropyGrad(dlogits, logits, lse, targets, dloss, rows, V, ignoreIndex);
      }
      A.crossEntropyGrad(dlogits, logits, lse, targets, dloss, rows, V, ignoreIndex);
    },

    attention(out, lse, q, k, v, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal, kvStrides = null) {
      if (!f32(out) || !f32(lse) || !f32(q) || !f32(k) || !f32(v) || !packMask(mask)) {
        return jsBackend.attention(out, lse, q, k, v, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal, kvStrides);
      }
      A.attention(out, lse, q, k, v, mask ? (mask.data as Float32Array) : null, mask ? maskGeom : null,
        B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal,
        kvStrides ? Float64Array.of(kvStrides.kRow, kvStrides.kHead, kvStrides.vRow, kvStrides.vHead) : null);
    },

    attentionRagged(out, q, kNew, vNew, kCaches, vCaches, segs, Hq, Hkv, Dk, Dv, scale, valuesInKeys) {
      // the caches: all f32, or all bf16 bit patterns (Uint16Array)
      const caches = valuesInKeys ? kCaches : [...kCaches, ...(vCaches ?? [])];
      const cachesOk = caches.every(f32) || (caches.length > 0 && caches.every((c) => c instanceof Uint16Array));
      if (!f32(out) || !f32(q) || !f32(kNew) || (!valuesInKeys && (!vNew || !f32(vNew) || !vCaches)) || !cachesOk) {
        return jsBackend.attentionRagged(out, q, kNew, vNew, kCaches, vCaches, segs, Hq, Hkv, Dk, Dv, scale, valuesInKeys);
      }
      const geom = new Float64Array(5 * segs.length);
      segs.forEach((g, s) => geom.set([g.n, g.past, g.cap, g.kOffset, g.vOffset], 5 * s));
      A.attentionRagged(out, q, kNew, valuesInKeys ? null : vNew as Float32Array, kCaches as (Float32Array | Uint16Array)[],
        valuesInKeys ? null : vCaches as (Float32Array | Uint16Array)[], geom, Hq, Hkv, Dk, Dv, scale, valuesInKeys);
    },

    attentionGrad(dq, dk, dv, dout, q, k, v, out, lse, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal) {
      if (!f32(dq) || !f32(dk) || !f32(dv) || !f32(dout) || !f32(q) || !f32(k) || !f32(v) || !f32(out) || !f32(lse) || !packMask(mask)) {
        return jsBackend.attentionGrad(dq, dk, dv, dout, q, k, v, out, lse, mask, B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
      }
      A.attentionGrad(dq, dk, dv, dout, q, k, v, out, lse, mask ? (mask.data as Float32Array) : null, mask ? maskGeom : null,
        B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal);
    },

    siluMul(y, a, b, n) {
      if (!f32(y) || !f32(a) || !f32(b)) return jsBackend.siluMul(y, a, b, n);
      A.siluMul(y, a, b, n);
    },

    siluMulGrad(da, db, a, b, dy, n) {
      if (!f32(da) || !f32(db) || !f32(a) || !f32(b) || !f32(dy)) return jsBackend.siluMulGrad(da, db, a, b, dy, n);
      A.siluMulGrad(da, db, a, b, dy, n);
    },

    // indexSelect / gather move raw elements, so the addon takes any (matching) array kind.
    indexSelect(dst, src, idx, outer, nSrc, nIdx, inner) {
      if (dst.constructor !== src.constructor) return jsBackend.indexSelect(dst, src, idx, outer, nSrc, nIdx, inner);
      A.indexSelect(dst, src, idx, outer, nSrc, nIdx, inner);
    },

    indexAdd(dst, src, idx, outer, nDst, nIdx, inner) {
      if (!f32(dst) || !f32(src)) return jsBackend.indexAdd(dst, src, idx, outer, nDst, nIdx, inner);
      A.indexAdd(dst, src, idx, outer, nDst, nIdx, inner);
    },

    gather(dst, src, idx, outer, nSrc, nIdx, inner) {
      if (dst.constructor !== src.constructor) return jsBackend.gather(dst, src, idx, outer, nSrc, nIdx, inner);
      A.gather(dst, src, idx, outer, nSrc, nIdx, inner);
    },

    scatter(dst, src, idx, outer, nDst, nIdx, inner, accumulate) {
      if (!f32(dst) || !f32(src)) return jsBackend.scatter(dst, src, idx, outer, nDst, nIdx, inner, accumulate);
      A.scatter(dst, src, idx, outer, nDst, nIdx, inner, accumulate);
    },

    topk(values, indices, src, rows, n, k, largest) {
      // k > n has no answer: the reference raises its ShapeError.
      if (!f32(values) || !f32(src) || k > n) return jsBackend.topk(values, indices, src, rows, n, k, largest);
      A.topk(values, indices, src, rows, n, k, largest);
    },

    adamw(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2) {
      if (!f32(p) || !f32(g) || !f32(m) || !f32(v)) return jsBackend.adamw(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
      A.adamw(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
    },
  };
  return be;
}

/** Whether a typed array is the storage kind the cast code expects. */
function kindOk(dtype: string, a: AnyArray): boolean {
  switch (dtype) {
    case 'f32': return a instanceof Float32Array;
    case 'f64': return a instanceof Float64Array;
    case 'bf16': case 'f16': return a instanceof Uint16Array;
    default: return false;
  }
}
