/**
 * The kernel interface every backend implements.
 *
 * Kernels work on raw typed arrays: no shapes beyond what each signature names, no autograd,
 * no allocation of outputs (the caller passes `dst`). The op layer (src/tensor/ops/*) owns
 * shape rules, broadcasting, views and gradients, and calls these kernels.
 *
 * Floating kernels take `FArray`: Float32Array or Float64Array. All float arguments of one call
 * have the same element type. The `js` backend implements every kernel for both; the `native`
 * backend implements Float32Array only (the op layer routes f64 to `js`).
 * Index arguments are always Int32Array. Masks/conditions are Uint8Array (0 = false).
 *
 * Unless a kernel says otherwise, arrays are dense row-major and start at index 0, and `dst`
 * never aliases an input.
 */

export type FArray = Float32Array | Float64Array;
/** An inference KV cache buffer: f32/f64 like the queries, or bf16 bit patterns (Uint16Array; new rows rounded to
 * nearest even on the append, read back exactly). All caches of one call share one type. */
export type CacheArray = FArray | Uint16Array;
/** Any storage array (see dtype.ts). */
export type AnyArray = Float32Array | Float64Array | Uint16Array | Uint8Array | Int32Array | BigInt64Array;

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'square'
  | 'sigmoid' | 'tanh' | 'relu' | 'silu'
  | 'gelu'        // exact: x * 0.5 * (1 + erf(x / sqrt(2)))   (PyTorch default)
  | 'gelu_tanh'   // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
  | 'pow_scalar'  // x ** s
  | 'add_scalar'  // x + s
  | 'mul_scalar'  // x * s
  | 'clamp';      // min(max(x, s), s2)   (s = lo, s2 = hi; either may be +-Infinity)

/** Unary ops whose gradient has a fused kernel (dx = dy * f'(x)). */
export type UnaryGradOp = 'sigmoid' | 'tanh' | 'relu' | 'silu' | 'gelu' | 'gelu_tanh';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum';
export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
export type ReduceOp = 'sum' | 'max' | 'min';
export type RopeLayout = 'half' | 'interleaved';

/**
 * A strided operand: element (i0, i1, ...) of the logical shape lives at
 * `data[offset + i0*strides[0] + i1*strides[1] + ...]`. Strides are in elements and may be 0
 * (broadcast) — but never negative.
 */
export interface Strided<A extends AnyArray = AnyArray> {
  data: A;
  offset: number;
  strides: readonly number[];
}

/**
 * Element strides of attention's k and v (forward only): key j of (batch b, kv head h) starts at
 * (b Hkv + h) kHead + j kRow (likewise v). Dense: kRow = Dk, kHead = Sk Dk. Lets an inference KV cache with spare
 * rows, or values that are the leading columns of the key rows (MLA's latent), be read in place.
 */
export interface KVStrides { kRow: number; kHead: number; vRow: number; vHead: number }

/** One sequence of a ragged attention call: n new tokens after `past` cached rows, in cache buffers of `cap` rows per
 * kv head that start at element kOffset (keys) / vOffset (values) of their arrays. */
export interface RaggedSegment { n: number; past: number; cap: number; kOffset: number; vOffset: number }

export interface Backend {
  readonly name: 'js' | 'native';

  /**
   * Strided copy: dst[dOff + sum i_d*dStrides_d] = src[sOff + sum i_d*sStrides_d] for every index of `shape`.
   * dst and src are arrays of the same kind (both Float32Array, both Int32Array, ...).
   * dst strides are never 0 on a dimension of size > 1. Used for contiguous(), concat, narrow backward.
   */
  copy(dst: Strided, src: Strided, shape: readonly number[]): void;

  /**
   * Element-type conversion of n contiguous elements. Supported pairs: any of
   * f32, f64, bf16, f16, i32, u8 (also bool) to any of the same set, plus i64 <-> i32/f32/f64.
   * bf16/f16 are Uint16Array bit patterns; float -> bf16/f16 rounds to nearest even (NaN stays NaN);
   * float -> int truncates toward zero. `bool` writes 1 for nonzero, 0 otherwise.
   */
  cast(dst: AnyArray, dstDtype: string, src: AnyArray, srcDtype: string, n: number): void;

  /** dst[i] = op(src[i]) for i < n. `s`, `s2` are the scalar parameters some ops take. */
  unary(op: UnaryOp, dst: FArray, src: FArray, n: number, s?: number, s2?: number): void;

  /** dx[i] = dy[i] * f'(x[i]) for i < n (x is the op's input). */
  unaryGrad(op: UnaryGradOp, dx: FArray, x: FArray, dy: FArray, n: number): void;

  /** dst (contiguous, `shape`) = a op b elementwise; a and b are strided (broadcast = stride 0). */
  binary(op: BinaryOp, dst: FArray, a: Strided<FArray>, b: Strided<FArray>, shape: readonly number[]): void;

  /** dst (Uint8Array, contiguous `shape`) = (a op b) ? 1 : 0. NaN compares false except 'ne'. */
  compare(op: CompareOp, dst: Uint8Array, a: Strided<FArray>, b: Strided<FArray>, shape: readonly number[]): void;

  /** dst (contiguous `shape`) = cond ? a : b, all three strided. */
  where(dst: FArray, cond: Strided<Uint8Array>, a: Strided<FArray>, b: Strided<FArray>, shape: readonly number[]): void;

  /**
   * src contiguous viewed as [outer, n, inner]; dst [outer, inner] = reduce over the middle axis.
   * sum of an empty axis (n = 0) is 0, max/min of an empty axis -Infinity/+Infinity. NaN propagates through max/min.
   */
  reduce(op: ReduceOp, dst: FArray, src: FArray, outer: number, n: number, inner: number): void;

  /** As reduce, writing the index (0..n-1) of the first maximum (argmax) or minimum. NaN counts as the maximum. */
  argReduce(op: 'argmax' | 'argmin', dst: Int32Array, src: FArray, outer: number, n: number, inner: number): void;

  /**
   * Batched GEMM. For each b < batch:
   *   C_b[m x n] (contiguous rows of length n, at c[cOffset + b*m*n])  (+)=  op(A_b) * op(B_b)
   * A_b starts at a[aOffset + b*aBatchStride]; op(A_b) = A_b (stored m x k with row stride lda)
   * or, if transA, A_b^T (A_b stored k x m with row stride lda). Likewise B (k x n, or n x k with transB).
   * Batch strides may be 0 (broadcast). If `accumulate`, C += product; otherwise C = product.
   */
  matmul(
    c: FArray, cOffset: number,
    a: FArray, aOffset: number, aBatchStride: number, lda: number, transA: boolean,
    b: FArray, bOffset: number, bBatchStride: number, ldb: number, transB: boolean,
    batch: number, m: number, n: number, k: number, accumulate: boolean,
  ): void;

  /** Row-wise over [rows, cols]: dst = softmax(src) or log_softmax(src) (stable: subtract the row max). */
  softmax(dst: FArray, src: FArray, rows: number, cols: number, log: boolean): void;
  /**
   * Gradient given the forward output y:
   * softmax:     dx = y * (dy - sum_j(dy_j * y_j))
   * log_softmax: dx = dy - exp(y) * sum_j(dy_j)
   */
  softmaxGrad(dx: FArray, y: FArray, dy: FArray, rows: number, cols: number, log: boolean): void;

  /**
   * RMSNorm over the last axis of x [rows, cols]: rstd[r] = 1 / sqrt(mean_j(x[r,j]^2) + eps);
   * y[r,j] = x[r,j] * rstd[r] * w[j]. rstd (length rows) is written for the backward pass.
   */
  rmsnorm(y: FArray, rstd: FArray, x: FArray, w: FArray, rows: number, cols: number, eps: number): void;
  /**
   * dx[r,j] = rstd*(w[j]*dy[r,j]) - x[r,j] * rstd^3 * mean_i(w[i]*dy[r,i]*x[r,i]);
   * dw[j] (written, not accumulated) = sum_r dy[r,j] * x[r,j] * rstd[r].
   */
  rmsnormGrad(dx: FArray, dw: FArray, dy: FArray, x: FArray, w: FArray, rstd: FArray, rows: number, cols: number): void;

  /**
   * Rotary embedding. x and dst are [T, H, D] (T tokens, H heads, D head dim); pos[t] is token t's position.
   * cos and sin are tables [P, R/2] (P >= max position + 1, R = rotary dims <= D, R even), row p giving
   * cos/sin(p * theta_i) for pair i — any frequency scaling (linear, llama3, YaRN incl. its mscale) is baked into the table.
   * Pair i of a head is (x[i], x[i + R/2]) for layout 'half' (Llama/Qwen) and (x[2i], x[2i+1]) for 'interleaved' (DeepSeek-V3):
   *   out_a = a*cos - b*sin,  out_b = b*cos + a*sin.
   * Dims R..D-1 are copied unchanged. If `inverse`, rotate by -theta (sin negated): that is the backward pass.
   * dst may equal x (in place).
   */
  rope(dst: FArray, x: FArray, cos: FArray, sin: FArray, pos: Int32Array,
    T: number, H: number, D: number, R: number, layout: RopeLayout, inverse: boolean): void;

  /**
   * Cross-entropy per row of logits [rows, V] against targets[r] in [0, V):
   * lse[r] = logsumexp(logits[r]); loss[r] = lse[r] - logits[r, targets[r]].
   * Rows whose target equals ignoreIndex get loss 0 (lse is still written).
   * A target outside [0, V) that is not ignoreIndex: the op layer validates before calling.
   */
  crossEntropy(loss: FArray, lse: FArray, logits: FArray, targets: Int32Array, rows: number, V: number, ignoreIndex: number): void;
  /** dlogits[r, j] = dloss[r] * (exp(logits[r,j] - lse[r]) - (j == targets[r])); zero rows where ignored. */
  crossEntropyGrad(dlogits: FArray, logits: FArray, lse: FArray, targets: Int32Array, dloss: FArray,
    rows: number, V: number, ignoreIndex: number): void;

  /**
   * Scaled-dot-product attention, fused (never materialises [Sq, Sk] for all heads at once).
   * q [B, Hq, Sq, Dk], k [B, Hkv, Sk, Dk], v [B, Hkv, Sk, Dv], out [B, Hq, Sq, Dv], lse [B, Hq, Sq]; Hq % Hkv == 0,
   * query head h reads kv head floor(h / (Hq/Hkv)) (GQA).
   * s[i,j] = scale * q_i . k_j  (+ mask[b, h, i, j] if a mask is given)
   * causal: key j is visible to query i iff j <= i + (Sk - Sq)  (queries are the last Sq positions).
   * lse[i] = logsumexp_j s[i,j] over visible j; out_i = sum_j softmax(s)[i,j] v_j.
   * A row with no visible key (or all -Infinity) gets out = 0 and lse = -Infinity.
   * mask: additive, addressed as mask.data[mask.offset + b*mask.strides[0] + h*mask.strides[1] + i*mask.strides[2] + j*mask.strides[3]]
   * (strides may be 0 to broadcast).
   */
  attention(out: FArray, lse: FArray, q: FArray, k: FArray, v: FArray, mask: Strided<FArray> | null,
    B: number, Hq: number, Hkv: number, Sq: number, Sk: number, Dk: number, Dv: number, scale: number, causal: boolean,
    kvStrides?: KVStrides | null): void;
  /**
   * Ragged inference attention with the KV-cache append (forward only, no lse). The tokens of q [N, Hq, Dk],
   * kNew [N, Hkv, Dk] and vNew [N, Hkv, Dv] (token-major) belong to the sequences of `segs` back to back. For each
   * sequence s: first its kNew/vNew rows are written into kCaches[s] ([Hkv, cap, Dk] from kOffset) and vCaches[s]
   * ([Hkv, cap, Dv] from vOffset) at rows [past, past + n); then its query i (head h, kv head floor(h / (Hq/Hkv)))
   * attends to cache rows [0, past + i]: out [N, Hq, Dv] = softmax(scale q k^T) v. valuesInKeys: the values are the
   * first Dv columns of the key rows (MLA's latent cache); vNew and vCaches are then unused (may be null).
   */
  attentionRagged(out: FArray, q: FArray, kNew: FArray, vNew: FArray | null, kCaches: readonly CacheArray[],
    vCaches: readonly CacheArray[] | null, segs: readonly RaggedSegment[], Hq: number, Hkv: number, Dk: number, Dv: number,
    scale: number, valuesInKeys: boolean): void;
  /**
   * Backward of attention given out and lse from the forward pass. dq, dk, dv are written (not accumulated):
   * P = exp(s - lse); dv_j = sum_i P_ij dout_i; dP_ij = dout_i . v_j; Di = dout_i . out_i;
   * dS_ij = P_ij (dP_ij - Di); dq_i = scale * sum_j dS_ij k_j; dk_j = scale * sum_i dS_ij q_i.
   * dk/dv sum over the query heads that share a kv head.
   */
  attentionGrad(dq: FArray, dk: FArray, dv: FArray, dout: FArray, q: FArray, k: FArray, v: FArray,
    out: FArray, lse: FArray, mask: Strided<FArray> | null,
    B: number, Hq: number, Hkv: number, Sq: number, Sk: number, Dk: number, Dv: number, scale: number, causal: boolean): void;

  /** y[i] = silu(a[i]) * b[i]  (SwiGLU), n elements. */
  siluMul(y: FArray, a: FArray, b: FArray, n: number): void;
  /** da[i] = dy[i] * b[i] * silu'(a[i]);  db[i] = dy[i] * silu(a[i]). */
  siluMulGrad(da: FArray, db: FArray, a: FArray, b: FArray, dy: FArray, n: number): void;

  /**
   * Axis-indexed gathers/scatters on [outer, n, inner] layouts (the op layer reshapes any axis to this).
   * indexSelect: dst[o, j, i] = src[o, idx[j], i]           (src [outer, nSrc, inner], idx [nIdx], dst [outer, nIdx, inner])
   * indexAdd:    dst[o, idx[j], i] += src[o, j, i]          (dst [outer, nDst, inner] accumulated, src [outer, nIdx, inner])
   * gather:      dst[o, j, i] = src[o, idx[o, j, i], i]     (idx and dst [outer, nIdx, inner])
   * scatter:     dst[o, idx[o, j, i], i] (+)= src[o, j, i]  (accumulate=true adds, else assigns; later j wins)
   * Indices are validated by the op layer (0 <= idx < nSrc / nDst).
   */
  indexSelect(dst: AnyArray, src: AnyArray, idx: Int32Array, outer: number, nSrc: number, nIdx: number, inner: number): void;
  indexAdd(dst: FArray, src: FArray, idx: Int32Array, outer: number, nDst: number, nIdx: number, inner: number): void;
  gather(dst: AnyArray, src: AnyArray, idx: Int32Array, outer: number, nSrc: number, nIdx: number, inner: number): void;
  scatter(dst: FArray, src: FArray, idx: Int32Array, outer: number, nDst: number, nIdx: number, inner: number, accumulate: boolean): void;

  /**
   * Top-k along the last axis of src [rows, n]: values/indices [rows, k], sorted by value
   * (descending if largest, else ascending); ties keep the lower index first. NaN counts as the largest.
   */
  topk(values: FArray, indices: Int32Array, src: FArray, rows: number, n: number, k: number, largest: boolean): void;

  /**
   * One fused AdamW step over n parameters, in place on p, m, v:
   * m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
   * p = p - lr * (wd * p + (m / bc1) / (sqrt(v / bc2) + eps))     (bc1 = 1 - b1^t, bc2 = 1 - b2^t)
   */
  adamw(p: FArray, g: FArray, m: FArray, v: FArray, n: number,
    lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number): void;
}
